"""Stage machinery shared by prepare, train, generate and report.

A stage lives in ``WORKSPACE/<name>/``. Its inputs (files or folders, each with the command that
makes it), params and outputs are declared in :mod:`fpsynth.stages` (:meth:`Stage.declared`
builds a run from that), and it writes ``stage.json`` when it finishes with a fingerprint of (its
params, its inputs, the sha256 of its weight files, the package version). A second run with the same fingerprint
and all outputs present says "nothing changed, skipping" unless ``force``. A stage that others read
records its outputs' sizes and hashes (``verified``, see :mod:`fpsynth.outputs`): its own rerun
checks them cheaply, and a downstream stage's ``require_inputs`` refuses its folder while its record
says unfinished or a file fails the check. Every file is written
atomically (temporary name in the same folder, fsync, rename) so that a kill never leaves a
half-written artifact under its final name. Per-item stages keep one small part file per finished
item under ``parts/<fingerprint>/`` (see :class:`ItemStore`) and resume from them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpsynth.config import to_dict, to_toml
from fpsynth.errors import FpsynthError
from fpsynth.outputs import (
    RECORD_FILE,
    UpstreamError,
    file_check,
    outputs_problem,
    read_record,
    sha256_file,
    upstream_problem,
)
from fpsynth.stages import STAGES, StageSpec
from fpsynth.version import __version__

if TYPE_CHECKING:  # pipeline.py sits above every stage
    from fpsynth.pipeline import PipelineConfig

# Files up to this size are fingerprinted by content; larger ones (raw videos) by size and mtime,
# which is what make does and keeps a re-run over a 100 GB video tree instant.
_HASH_CONTENT_BELOW = 64 * 1024 * 1024


class MissingInputError(FpsynthError, FileNotFoundError):
    """A declared input is absent; the message names the command that makes it."""


# --------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary name keeps the suffix (writers such as OpenCV pick the format from it) and starts
    with a dot so that globbing for outputs never sees it. On error it is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:  # flush the data before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno is None or exc.filename not in (None, str(tmp_path)):
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc  # name the file, not its temporary
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_parquet(path: Path, frame: Any) -> None:
    """Write a pandas DataFrame (or pyarrow Table) as Parquet, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- fingerprints


def _hash_file(path: Path, h: hashlib._Hash) -> None:
    st = path.stat()
    if st.st_size < _HASH_CONTENT_BELOW:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    else:
        h.update(f"size={st.st_size};mtime={st.st_mtime_ns}".encode())


def _visible_files(root: Path) -> list[Path]:
    """Regular files below ``root`` whose names have no leading dot, sorted, through folder links
    too (input trees are often assembled from links, and a change behind one must change the
    fingerprint); a folder already walked, by (device, inode), is not walked again: a loop ends."""
    seen: set[tuple[int, int]] = set()
    out = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        out += [Path(folder, n) for n in names if not n.startswith(".") and os.path.isfile(os.path.join(folder, n))]
    return sorted(out)


def hash_paths(paths: Mapping[str, Path]) -> str:
    """Content fingerprint of named files/folders (folders: every file below, sorted)."""
    h = hashlib.sha256()
    for name in sorted(paths):
        p = Path(paths[name])
        h.update(f"\0{name}\0".encode())
        if p.is_file():
            _hash_file(p, h)
        elif p.is_dir():
            for f in _visible_files(p):
                h.update(str(f.relative_to(p)).encode())
                _hash_file(f, h)
        else:
            h.update(b"<missing>")
    return h.hexdigest()


def fingerprint(params: Any, inputs: Mapping[str, Path], digests: Mapping[str, str] | None = None) -> str:
    """sha256 of (params, inputs' contents, package version, sha256 of files counted by content)."""
    sec = to_dict(params) if dataclasses.is_dataclass(params) else params
    payload = json.dumps(
        {"params": sec, "inputs": hash_paths(inputs), "version": __version__, "digests": dict(digests or {})},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def config_value(cfg: Any, dotted: str) -> Any:
    """The value at a dotted key of a (pipeline) config: ``"weights.dlib_models"``, ``"prepare"``."""
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def params_of(spec: StageSpec, cfg: Any) -> dict[str, Any]:
    """A stage's declared params read from ``cfg``, as plain values, less its ``ignore`` keys."""
    params = {}
    for key in spec.params:
        value = config_value(cfg, key)
        params[key] = to_dict(value) if dataclasses.is_dataclass(value) else value
    for dotted in spec.ignore:
        owner = next(k for k in spec.params if dotted.startswith(f"{k}."))  # a typo fails here, loudly
        tree = params[owner]
        *path, last = dotted[len(owner) + 1 :].split(".")
        for part in path:
            tree = tree.get(part, {})
        tree.pop(last, None)  # to_dict leaves out None fields
    return params


def weights_made_by(key: str) -> str:
    """What a user does about a missing weights file (``key``: "weights.ir50_id")."""
    return f"--set {key}=PATH (see `fpsynth weights`)"


# --------------------------------------------------------------------------- the stage


@dataclasses.dataclass(frozen=True)
class Input:
    """A declared input: where it is, and the command a user runs to make it."""

    path: Path
    made_by: str  # e.g. "fpsynth prepare --meei DIR"

    @classmethod
    def made_by_stage(cls, path: Path, stage: str) -> Input:
        """An input that the stage ``stage`` (a name in :data:`fpsynth.stages.STAGES`) makes."""
        return cls(Path(path), STAGES[stage].usage)


class Stage:
    """Bookkeeping of one stage run in ``workspace/<name>``.

    Usage (a declared stage; ``Stage(name, workspace, params, inputs, outputs)`` builds one by hand)::

        stage = Stage.declared(TRAIN, workspace, pipeline_cfg, force=force)
        stage.require_inputs()
        if stage.is_up_to_date():
            return stage.skipped()
        stage.begin(pipeline_cfg)
        ...  # work, writing with atomic_* helpers
        stage.finish({"steps": 1000})
    """

    def __init__(
        self,
        name: str,
        workspace: Path,
        params: Any,
        inputs: Mapping[str, Input] | None = None,
        outputs: list[str] | None = None,
        force: bool = False,
        verified: list[str] | None = None,
        verified_lists: list[str] | None = None,
        digests: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.workspace = Path(workspace)
        self.dir = self.workspace / name
        self.params = params
        self.inputs = dict(inputs or {})
        self.outputs = [self.dir / o for o in (outputs or [])]
        self.force = force
        self.digests = dict(digests or {})  # input key -> sha256 of a file counted by content
        # files (relative to the folder) whose size/mtime/sha256 the finished record keeps, and
        # Parquet lists of many more (fpsynth.outputs); later stages check them before reading
        self.verified = list(verified or [])
        self.verified_lists = list(verified_lists or [])
        self._fingerprint: str | None = None

    @classmethod
    def declared(
        cls,
        spec: StageSpec,
        workspace: Path,
        cfg: PipelineConfig,
        *,
        force: bool = False,
        folder: Path | None = None,
        at: Mapping[str, Path | None] | None = None,
        inputs: Mapping[str, Input] | None = None,
        digests: Mapping[str, str] | None = None,
        weights: tuple[str, ...] | None = None,
    ) -> Stage:
        """The run of a declared stage (:mod:`fpsynth.stages`) for the pipeline config ``cfg``.

        ``folder``: the stage's folder when not ``workspace/<name>`` (``generate --out``; the
        record then takes the folder's name). ``at``: where this run finds declared dependencies
        (None leaves out an optional one). ``inputs``/``digests``: inputs only the run knows (the
        user's data, ``train.init_from``), and the sha256 of those counted by content. ``weights``:
        the declared weight keys this run reads, when fewer (DCFace trains without expression and
        landmark networks).
        """
        workspace = Path(workspace)
        at = dict(at or {})
        unknown = set(at) - set(spec.deps)
        if unknown:
            raise KeyError(f"{spec.name}: {sorted(unknown)} are not declared dependencies")
        found: dict[str, Input] = {}
        for key, dep in spec.deps.items():
            path = at[key] if key in at else workspace / dep.path
            if path is None:
                if not dep.optional:
                    raise ValueError(f"{spec.name}: dependency '{key}' is not optional")
                continue
            found[key] = Input.made_by_stage(path, dep.stage)
        hashed = dict(digests or {})
        for name in spec.weights if weights is None else weights:
            if name not in spec.weights:
                raise KeyError(f"{spec.name}: weights.{name} is not a declared weight")
            path = config_value(cfg, f"weights.{name}")
            if path is None:
                continue
            key, path = f"weights.{name}", Path(path).expanduser()
            if spec.weights_required:
                found[key] = Input(path, weights_made_by(key))
            # by the full sha256: big inputs are otherwise fingerprinted by size and mtime, which a
            # replaced file of the same size copied with its times kept would not change
            if path.is_file():
                hashed[key] = sha256_file(path)
        found.update(inputs or {})
        folder = Path(folder) if folder is not None else workspace / spec.name
        return cls(
            folder.name,
            folder.parent,
            params_of(spec, cfg),
            inputs=found,
            outputs=list(spec.outs),
            force=force,
            verified=list(spec.verified),
            verified_lists=list(spec.verified_lists),
            digests=hashed,
        )

    @property
    def record_path(self) -> Path:
        return self.dir / RECORD_FILE

    def require_inputs(self) -> None:
        """Every input exists, and every stage folder it lies in (an earlier stage with verified
        outputs) finished and passes the cheap check of its recorded outputs."""
        checked: set[Path] = {self.dir.resolve()}
        for name, inp in self.inputs.items():
            folder = Path(inp.path).parent
            problem = None if folder.resolve() in checked else upstream_problem(folder)
            checked.add(folder.resolve())
            if problem is not None:
                raise UpstreamError(
                    f"{self.name}: {problem}; run `{inp.made_by}` again (it redoes only what is unfinished or damaged)"
                )
            if not Path(inp.path).exists():
                raise MissingInputError(
                    f"{self.name}: input '{name}' not found at {inp.path}; run `{inp.made_by}` first"
                )

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.params, {k: v.path for k, v in self.inputs.items()}, self.digests)
        return self._fingerprint

    def record(self) -> dict[str, Any] | None:
        return read_record(self.dir)

    def is_up_to_date(self) -> bool:
        """True when the last finished run had this fingerprint and its outputs are all present."""
        if self.force:
            return False
        rec = self.record()
        return (
            rec is not None
            and rec.get("fingerprint") == self.fingerprint
            and rec.get("status") == "finished"
            and all(p.exists() for p in self.outputs)
        )

    def damage(self) -> str | None:
        """What fails the cheap check among the recorded outputs of the last finished run (None: intact)."""
        rec = self.record()
        return None if rec is None else outputs_problem(self.dir, rec)

    def begin(self, pipeline_cfg: PipelineConfig) -> None:
        """Create the stage folder and write the resolved pipeline config beside the outputs.

        The record says "running" from here to :meth:`finish`: a later stage refuses the folder
        in between (a kill between two manifests never passes for a finished set)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            self.record_path,
            {
                "stage": self.name,
                "status": "running",
                "fingerprint": self.fingerprint,
                "version": __version__,
                "started_at": _now(),
                "verified_outputs": bool(self.verified),
            },
        )
        atomic_write_text(self.dir / "config.toml", to_toml(pipeline_cfg))

    def finish(self, summary: Mapping[str, Any] | None = None) -> dict[str, Any]:
        rec = {
            "stage": self.name,
            "status": "finished",
            "fingerprint": self.fingerprint,
            "version": __version__,
            "finished_at": _now(),
            "outputs": [str(p.relative_to(self.workspace)) for p in self.outputs],
            "summary": dict(summary or {}),
            "verified_outputs": bool(self.verified),
            "checks": {rel: file_check(self.dir / rel) for rel in self.verified},
            "check_lists": self.verified_lists,
        }
        atomic_write_json(self.record_path, rec)
        return rec

    def skipped(self) -> dict[str, Any]:
        rec = self.record() or {}
        return {**rec, "skipped": True}

    def items(self, kind: str = "items") -> ItemStore:
        """Per-item resume store for this run's fingerprint (a config change starts afresh)."""
        return ItemStore(self.dir / "parts" / kind / self.fingerprint[:16])


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- per-item resume


class ItemStore:
    """One Parquet part file per finished item; a kill loses at most the items in flight.

    Keys are free strings (a clip's pseudonymous id, a shard number); they are hashed into file
    names so that any key is safe on disk. An item counts as done only once its part file has been
    renamed into place, so a resumed run redoes exactly the unfinished items and never duplicates.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.parquet"

    def done(self, key: str) -> bool:
        """Finished = its part is in place and readable. Parts are renamed into place whole, so an
        unreadable one was damaged from outside: it is removed and the item counts as unfinished."""
        path = self._path(key)
        if not path.exists():
            return False
        if _readable_parquet(path):
            return True
        path.unlink(missing_ok=True)
        return False

    def write(self, key: str, frame: Any) -> None:
        atomic_write_parquet(self._path(key), frame)

    def forget(self, key: str) -> None:
        """Mark an item unfinished again (its outputs were found damaged: the run redoes it)."""
        self._path(key).unlink(missing_ok=True)

    def read(self, key: str) -> Any:
        import pandas as pd

        return pd.read_parquet(self._path(key))

    def read_all(self) -> Any:
        """All finished parts concatenated (an empty DataFrame when there are none)."""
        import pandas as pd

        # pathlib's glob also matches dot files: skip the temporaries of a write killed mid-way
        parts = sorted(p for p in self.folder.glob("*.parquet") if not p.name.startswith("."))
        damaged = [p.name for p in parts if not _readable_parquet(p)]
        if damaged:  # only outside damage does this (parts are written atomically): never a silent loss
            raise FpsynthError(
                f"{self.folder}: damaged resume part(s) {', '.join(damaged)}; run the stage "
                f"again: it redoes the items of damaged parts"
            )
        frames = [pd.read_parquet(p) for p in parts]
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _readable_parquet(path: Path) -> bool:
    """The footer parses (a truncated or overwritten part fails here; a cheap read, no row data)."""
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return False
    return True
