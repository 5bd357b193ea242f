"""The ``fpsynth`` command: one thin Typer command per stage over importable ``run`` functions.

Every stage command takes ``--workspace`` (default ``./workspace``), ``--config`` (a pipeline file
or a name in ``pipelines/``, default ``paper``), repeated ``--set section.key=value`` overrides
checked against the config types, and ``--force``. Stage-specific flags (``--meei``, ``--ids``...)
are shorthands for fields of that stage's config section.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from fpsynth.data.input_sources import INPUT_SOURCES
from fpsynth.errors import FpsynthError
from fpsynth.lock import folder_lock
from fpsynth.outputs import os_write_error
from fpsynth.pipeline import DEFAULT_CONFIG, DEFAULT_WORKSPACE, PipelineConfig, load_pipeline, with_section
from fpsynth.stages import GENERATE, PREPARE, REPORT, TRAIN, UTILITY, StageSpec
from fpsynth.version import __version__

app = typer.Typer(
    name="fpsynth",
    help="Synthetic facial-palsy datasets with CCFExp: prepare -> train -> generate -> report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)

Workspace = Annotated[Path, typer.Option("--workspace", "-w", help="Where every stage writes its outputs.")]
ConfigOpt = Annotated[str, typer.Option("--config", "-c", help="Pipeline TOML (path, or a name in pipelines/).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value, e.g. --set train.optim.lr=2e-4 (repeatable)."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo the stage even if nothing changed.")]


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print FpsynthError messages plainly and exit 2, and so an I/O error whose cause is outside
    fpsynth (full disk, read-only filesystem, permissions); anything else is a bug and keeps its
    traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FpsynthError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(code=2) from None
        except OSError as exc:
            message = os_write_error(exc)
            if message is None:
                raise
            console.print(f"[bold red]error:[/] {message}", highlight=False)
            raise typer.Exit(code=2) from None

    return wrapper


def _load(config: str, overrides: list[str] | None) -> PipelineConfig:
    return load_pipeline(config, overrides or [])


def _stage_lock(workspace: Path, spec: StageSpec) -> contextlib.AbstractContextManager[Any]:
    """One writer at a time in the stage's folder; a second is told which command holds it."""
    return folder_lock(Path(workspace) / spec.name, spec.command)


def _print_result(result: Any) -> None:
    if isinstance(result, dict) and result.get("skipped"):
        console.print(f"[yellow]nothing changed, skipping[/] (use --force to redo): {result.get('stage', '')}")


def _input_source_flags(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One ``--<name> DIR`` option per input source (``fpsynth.data.input_sources``), put ahead of
    the command's own options in the signature Typer reads; the command gets them in ``**roots``."""
    own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
    flags = [
        inspect.Parameter(
            s.name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=None,
            annotation=Annotated[Path | None, typer.Option(help=s.flag_help)],
        )
        for s in INPUT_SOURCES
    ]
    fn.__signature__ = inspect.Signature([*flags, *own])  # type: ignore[attr-defined]
    return fn


@app.command()
@_user_errors
@_input_source_flags
def prepare(
    scores: Annotated[
        Path | None, typer.Option(help="Grades table, CSV or XLSX: subject, eFACE[, House-Brackmann, Sunnybrook].")
    ] = None,
    workspace: Workspace = DEFAULT_WORKSPACE,
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    force: ForceOpt = False,
    **roots: Path | None,
) -> None:
    """Frames and photos -> aligned 112x112 crops + frames/pairs/rejects Parquet manifests."""
    from fpsynth.data.prepare import run

    cfg = with_section(_load(config, set_), "prepare", **roots, scores=scores)
    with _stage_lock(workspace, PREPARE):
        _print_result(run(cfg, workspace, force=force))


@app.command()
@_user_errors
def train(
    workspace: Workspace = DEFAULT_WORKSPACE,
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Train CCFExp on the prepared pairs (resumes from the latest checkpoint)."""
    from fpsynth.train.run import run

    with _stage_lock(workspace, TRAIN):
        _print_result(run(_load(config, set_), workspace, force=force))


@app.command()
@_user_errors
def generate(
    ids: Annotated[Path | None, typer.Option(help="Folder of identity face photos.")] = None,
    count: Annotated[int | None, typer.Option(help="Number of images to generate.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint (default: the workspace's latest).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: WORKSPACE/generate).")] = None,
    shard: Annotated[str | None, typer.Option(help="i/n: this machine's share of the items.")] = None,
    workspace: Workspace = DEFAULT_WORKSPACE,
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Mass-generate a labelled synthetic facial-palsy dataset."""
    from fpsynth.generate.run import run

    cfg = with_section(
        _load(config, set_), "generate", ids=ids, count=count, checkpoint=checkpoint, out=out, shard=shard
    )
    gen = cfg.generate
    folder = Path(gen.out) if gen.out is not None else Path(workspace) / GENERATE.name
    # --shard i/n: machines writing their own shards of one run into one folder, by design
    lock = contextlib.nullcontext() if gen.shard is not None else folder_lock(folder, GENERATE.command)
    with lock:
        _print_result(run(cfg, workspace, force=force))


@app.command()
@_user_errors
def report(
    run_dir: Annotated[Path | None, typer.Option("--run", help="Generated dataset to evaluate.")] = None,
    workspace: Workspace = DEFAULT_WORKSPACE,
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Evaluate a model / generated dataset: report.json and a self-contained report.html."""
    from fpsynth.report.run import run

    cfg = with_section(_load(config, set_), "report", run=run_dir)
    with _stage_lock(workspace, REPORT):
        _print_result(run(cfg, workspace, force=force))


@app.command()
@_user_errors
def utility(
    run_dir: Annotated[
        Path | None, typer.Option("--run", help="Generated dataset to test (default: WORKSPACE/generate).")
    ] = None,
    workspace: Workspace = DEFAULT_WORKSPACE,
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Does the synthetic dataset make a better palsy grader? Train on synthetic, test on real test subjects."""
    from fpsynth.utility.run import run

    cfg = with_section(_load(config, set_), "utility", run=run_dir)
    with _stage_lock(workspace, UTILITY):
        _print_result(run(cfg, workspace, force=force))


@app.command()
@_user_errors
def demo(
    videos: Annotated[Path | None, typer.Option(help="Run on a folder of real face videos instead.")] = None,
    workspace: Annotated[Path, typer.Option("--workspace", "-w")] = Path("workspace-demo"),
    config: Annotated[str, typer.Option("--config", "-c")] = "demo",
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """prepare -> train -> generate -> report end to end on a built-in synthetic dataset."""
    from fpsynth.demo.run import run

    run(_load(config, set_), workspace, videos=videos, force=force)


config_app = typer.Typer(help="Inspect pipeline configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
@_user_errors
def config_show(config: ConfigOpt = DEFAULT_CONFIG, set_: SetOpt = None) -> None:
    """Print the resolved pipeline config as TOML."""
    from fpsynth.config import to_toml

    sys.stdout.write(to_toml(_load(config, set_)))


weights_app = typer.Typer(
    help="The pretrained networks fpsynth uses, and import of the authors' published checkpoints.",
    invoke_without_command=True,
)
app.add_typer(weights_app, name="weights")


@weights_app.callback()
def weights(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the pretrained networks fpsynth can use, where each comes from and its config key."""
    if ctx.invoked_subcommand is not None:
        return
    from fpsynth.nets.specs import all_weight_specs

    specs = all_weight_specs()
    if as_json:
        sys.stdout.write(json.dumps([s.__dict__ for s in specs], indent=2) + "\n")
        return
    from rich.table import Table

    table = Table("network", "config key", "files", "source")
    for s in specs:
        table.add_row(s.name, s.config_key, ", ".join(s.files), s.source)
    Console().print(table)


@weights_app.command("import")
@_user_errors
def weights_import(
    file: Annotated[
        Path, typer.Argument(help="A published checkpoint: CCFExp.ckpt, dcface_3x3.ckpt, dcface_5x5.ckpt.")
    ],
    kind: Annotated[str, typer.Option(help="auto, ccfexp, dcface-3x3 or dcface-5x5.")] = "auto",
    workspace: Workspace = DEFAULT_WORKSPACE,
    out: Annotated[Path | None, typer.Option(help="Output folder root (default: WORKSPACE/published).")] = None,
    force: ForceOpt = False,
    check: Annotated[bool, typer.Option("--check", help="Read, map and check every key; write nothing.")] = False,
) -> None:
    """Turn a published checkpoint into a self-contained fpsynth checkpoint (safetensors + JSON)."""
    from fpsynth.published.importer import PUBLISHED_DIR, convert, import_published

    root = out if out is not None else Path(workspace) / PUBLISHED_DIR
    if check:
        folder, source, reused = None, convert(file, kind).source, False
        console.print(
            f"checked: {file} ({source['kind']}, sha256 {source['sha256'][:12]}...): every key "
            f"mapped or deliberately left; nothing written",
            highlight=False,
        )
    else:
        folder, source, reused = import_published(file, root, kind=kind, force=force)
        console.print(
            f"{'already imported' if reused else 'imported'}: {file} ({source['kind']}, sha256 "
            f"{source['sha256'][:12]}...) -> {folder}",
            highlight=False,
        )
    console.print(f"profile: {source['profile']} (the authors' behaviour; see README, 'Profiles')", highlight=False)
    console.print(
        f"mapped {source['mapped_keys']} tensors: " + ", ".join(f"{m} {n}" for m, n in source["mapped"].items()),
        highlight=False,
    )
    for prefix, left in source["left"].items():
        console.print(f"left {left['keys']} tensors {prefix}*: {left['reason']}", highlight=False)
    if source.get("refused_globals"):
        console.print("not unpickled (inert placeholders): " + ", ".join(source["refused_globals"]), highlight=False)
    if folder is not None:
        sys.stdout.write(str(folder) + "\n")


def _version(value: bool) -> None:
    if value:
        print(f"fpsynth {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    """fpsynth."""


if __name__ == "__main__":  # pragma: no cover
    app()
