"""Pseudonyms: what leaves ``prepare/private/`` never names a patient or an original path.

Subjects are numbered ``P0001``... after a shuffle seeded by the pipeline seed, so the number
says nothing about the original id or its sort order, and the same inputs and seed always give
the same pseudonyms (a resumed run agrees with the killed one). Every input gets a pseudonymous
id built from the subject pseudonym and the (non-identifying) expression, side or a counter.
The only link back is ``private/mapping.parquet``.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from fpsynth.data.sources import Found, Kind, take_once
from fpsynth.seeds import rng


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of work (a clip, a photo, an annotated sequence), pseudonymised."""

    input: str  # pseudonymous id: the manifests' ``clip``, the resume key
    dataset: str
    kind: Kind
    subject: str  # pseudonym
    expression: str
    side: str | None
    files: tuple[str, ...]  # original paths (private: used to read, never written to manifests)
    phases: tuple[str | None, ...] = ()
    segment: bool = False  # a video of a whole sequence of movements: cut into movements (session.py)
    note: tuple[str, str] | None = None  # (reason, detail) of a row the job adds about itself


@dataclasses.dataclass(frozen=True)
class Pseudonymised:
    jobs: list[Job]
    unusable: list[tuple[str, Found]]  # (pseudonymous input id, found with a reason)
    subjects: dict[tuple[str, str], str]  # (dataset, original subject) -> pseudonym
    mapping: pd.DataFrame  # the private link: input, dataset, kind, subject, subject_original, file_index, path


def subject_pseudonyms(keys: list[tuple[str, str]], seed: int) -> dict[tuple[str, str], str]:
    keys = sorted(set(keys))
    order = rng(seed, "prepare-pseudonyms").permutation(len(keys))
    width = max(4, len(str(len(keys))))
    return {key: f"P{int(n) + 1:0{width}d}" for key, n in zip(keys, order)}


def pseudonymise(found: list[Found], seed: int) -> Pseudonymised:
    """Pseudonyms for every found input, each real file in one job only (:func:`take_once`)."""
    found = take_once(found)
    subjects = subject_pseudonyms([(f.dataset, f.subject) for f in found if f.kind and f.subject], seed)
    used: set[str] = set()
    counters: dict[str, int] = {}
    jobs, unusable, mapping = [], [], []

    def unique(base: str) -> str:
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        return name

    for f in found:
        if f.kind is None or f.subject is None:
            counters[f.dataset] = counters.get(f.dataset, 0) + 1
            input_id = unique(f"{f.dataset}-file-{counters[f.dataset]:04d}")
            unusable.append((input_id, f))
            subject = original = None
        else:
            subject, original = subjects[(f.dataset, f.subject)], f.subject
            input_id = unique(_base_id(f, subject, counters))
            jobs.append(
                Job(
                    input_id,
                    f.dataset,
                    f.kind,
                    subject,
                    f.expression,
                    f.side,
                    tuple(str(p) for p in f.files),
                    f.phases,
                    f.segment,
                    f.note,
                )
            )
        for i, path in enumerate(f.files):
            mapping.append(
                {
                    "input": input_id,
                    "dataset": f.dataset,
                    "kind": f.kind.value if f.kind else None,
                    "subject": subject,
                    "subject_original": original,
                    "file_index": i,
                    "path": str(path.absolute()),
                }
            )
    return Pseudonymised(jobs, unusable, subjects, pd.DataFrame(mapping, columns=MAPPING_COLUMNS))


MAPPING_COLUMNS = ["input", "dataset", "kind", "subject", "subject_original", "file_index", "path"]


def _base_id(f: Found, subject: str, counters: dict[str, int]) -> str:
    if f.dataset == "images":  # plain photos carry no expression: number them per subject
        counters[subject] = counters.get(subject, 0) + 1
        return f"{subject}-{counters[subject]:03d}"
    base = f"{subject}-{f.expression}" + (f"-{f.side}" if f.side else "")
    return base + ("-photo" if f.kind is Kind.PHOTO else "")
