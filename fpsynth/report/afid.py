"""Aligned FID (paper 4.2) of a trained model: two transfer passes per test patient, then FID.

For each test patient P (``report.split``) and each of P's chosen frames s_k:

1. first pass: identity = a real image of another individual (``afid.identity_pool``), style =
   s_k -> g_k, P's palsy expression on someone else;
2. second pass: identity = a real image of P other than s_k, style = g_k -> r_k, the expression
   carried back onto P;
3. aFID(P) = FID(Inception features of {r_k}, of {s_k}); pooled = all patients' r against all
   their s (the figure comparable to the paper's Table 1). Ideally r_k = s_k.

The first-pass images g_k are also an evaluation set of the model itself (identity = another
person, style = an unseen patient's frame): the report computes Table 1 on them.

Both passes write their images as PNGs under ``report/afid/`` and the second pass reads g_k back
from its PNG, so an interrupted report resumes patient by patient (``Stage.items``) and gives the
same images as an uninterrupted one. Every image has its own seed, from (run seed, patient, k,
pass) only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fpsynth.generate.synthesizer import Synthesizer
from fpsynth.metrics.fid import AFIDResult, afid
from fpsynth.metrics.suite import Opened
from fpsynth.report.config import AFIDConfig, IdentityPool
from fpsynth.report.evaluate import Timings
from fpsynth.report.images import batched, load_images, save_png
from fpsynth.report.networks import Networks
from fpsynth.report.sources import Prepared
from fpsynth.seeds import derive, rng
from fpsynth.stage import ItemStore

AFID_DIR = "afid"
_PLAN_COLUMNS = ["severity", "expression", "phase", "rest_image"]


def plan_afid(prepared: Prepared, cfg: AFIDConfig, split: str, seed: int) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """One row per (patient, style frame): the images and seeds of both passes; and the patients
    that cannot be evaluated, with the reason."""
    frames = prepared.frames.sort_values("frame_id").reset_index(drop=True)
    patients = sorted(frames.loc[frames["split"] == split, "subject"].unique())
    if cfg.patients is not None and len(patients) > cfg.patients:
        capped = rng(seed, "report-afid-patients").choice(patients, size=cfg.patients, replace=False)
        patients = sorted(capped.tolist())
    rows, skipped = [], []
    for patient in patients:
        draw = rng(seed, "report-afid", patient)
        own = frames[frames["subject"] == patient]
        pool = frames[frames["subject"] != patient]
        if cfg.identity_pool is IdentityPool.OTHER_TEST_SUBJECTS:
            pool = pool[pool["split"] == split]
        n = len(own) if cfg.images_per_patient is None else min(cfg.images_per_patient, len(own))
        if n < 2:
            skipped.append({"patient": patient, "reason": f"{len(own)} frame(s): needs 2 (FID needs 2 images a side)"})
            continue
        if not len(pool):
            skipped.append(
                {"patient": patient, "reason": f"no other individual in the identity pool ({cfg.identity_pool.value})"}
            )
            continue
        styles = own.iloc[np.sort(draw.choice(len(own), size=n, replace=False))]
        for k, style in enumerate(styles.itertuples(index=False)):
            other = pool.iloc[int(draw.integers(len(pool)))]
            back_pool = own[own["frame_id"] != style.frame_id]
            back = back_pool.iloc[int(draw.integers(len(back_pool)))]
            item = f"{patient}-afid-{k:04d}"
            rows.append(
                {
                    "item": item,
                    "patient": patient,
                    "k": k,
                    "style_frame": style.frame_id,
                    "style_image": style.image,
                    **{c: getattr(style, c) for c in _PLAN_COLUMNS},
                    "id_frame": other["frame_id"],
                    "id_image": other["image"],
                    "id_subject": other["subject"],
                    "back_frame": back["frame_id"],
                    "back_image": back["image"],
                    "seed_first": derive(seed, "report-afid", patient, k, 1),
                    "seed_back": derive(seed, "report-afid", patient, k, 2),
                }
            )
    return pd.DataFrame(rows), skipped


def run_transfers(
    plan: pd.DataFrame, synth: Synthesizer, batch_size: int, out_dir: Path, store: ItemStore, timings: Timings
) -> pd.DataFrame:
    """Both passes for every patient of ``plan`` with the generate stage's sampler (resuming finished
    patients from ``store``); returns ``plan`` with ``first_image`` and ``returned_image`` paths."""
    done = []
    for patient, rows in plan.groupby("patient", sort=True):
        if store.done(patient):
            kept = store.read(patient)
            if all(Path(p).is_file() for p in (*kept["first_image"], *kept["returned_image"])):
                done.append(kept)
                continue
        rows = rows.assign(
            first_image=[str(out_dir / "first" / patient / f"{i}.png") for i in rows["item"]],
            returned_image=[str(out_dir / "returned" / patient / f"{i}.png") for i in rows["item"]],
        ).reset_index(drop=True)
        for sl in batched(len(rows), batch_size):
            part = rows.iloc[sl]
            with timings("afid_sampling"):
                first = synth(
                    load_images(part["id_image"]), load_images(part["style_image"]), part["seed_first"].tolist()
                )
                for image, path in zip(first, part["first_image"]):
                    save_png(Path(path), image)
                # the second pass reads the first pass back from its PNG: a resumed run sees the same input
                back = synth(
                    load_images(part["back_image"]), load_images(part["first_image"]), part["seed_back"].tolist()
                )
                for image, path in zip(back, part["returned_image"]):
                    save_png(Path(path), image)
        store.write(patient, rows)
        done.append(rows)
    return pd.concat(done, ignore_index=True) if done else plan.assign(first_image=[], returned_image=[])


@torch.inference_mode()
def afid_of(plan: pd.DataFrame, nets: Networks, batch_size: int, eps: float, timings: Timings) -> AFIDResult:
    """aFID per patient and pooled from the returned images and the patients' real style frames."""
    real, returned = {}, {}
    with timings("fid_features"):
        for patient, rows in plan.groupby("patient", sort=True):
            real[patient] = _features(nets, rows["style_image"].tolist(), batch_size)
            returned[patient] = _features(nets, rows["returned_image"].tolist(), batch_size)
    with timings("fid_distance"):
        return afid(real, returned, eps)


def _features(nets: Networks, paths: list[str], batch_size: int) -> np.ndarray:
    fid = nets.fid
    assert isinstance(fid, Opened), "aFID runs only when the FID network is present"
    chunks = [
        fid.net(load_images(paths[sl]).to(nets.device)).double().cpu().numpy() for sl in batched(len(paths), batch_size)
    ]
    return np.concatenate(chunks)  # (n, 2048)
