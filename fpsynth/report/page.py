"""``report.html``: one self-contained static page (inline CSS, ``data:`` images, inline SVG plots).

It loads nothing (no script, no stylesheet, no image file, no font), so it opens from disk without
a server and can be mailed or archived as one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from fpsynth.report import grids, sections, utility_section
from fpsynth.report.config import PageConfig
from fpsynth.report.markup import CSS, definition_list, esc, num, section
from fpsynth.stages import GENERATE, TRAIN
from fpsynth.version import __version__

TOC = (
    ("provenance", "Data and what was evaluated"),
    ("table1", "Table 1"),
    ("missing", "Missing metrics"),
    ("afid", "aFID"),
    ("grids", "Generated images"),
    ("breakdowns", "Breakdowns"),
    ("distributions", "Distributions"),
    ("identity", "Identity fidelity"),
    ("expression", "Expression fidelity"),
    ("privacy", "Privacy audit"),
    ("training", "Training"),
    ("networks", "Networks and settings"),
)


def contents(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(anchor, title) of the page's contents list: TOC, plus the utility section (after the privacy
    audit, where the page shows it) when ``fpsynth utility`` has run (report["utility"] holds its utility.json)."""
    entries = list(TOC)
    if report.get("utility"):  # utility_section.render draws the section exactly then
        entries.insert(entries.index(("privacy", "Privacy audit")) + 1, (utility_section.ANCHOR, utility_section.TITLE))
    return entries


def render(
    report: dict[str, Any],
    sets: dict[str, pd.DataFrame],
    afid_plan: pd.DataFrame | None,
    train_log: pd.DataFrame | None,
    prepare_dir: Path,
    cfg: PageConfig,
    config_toml: str,
) -> str:
    """The whole page as HTML text."""
    show_real = cfg.show_real_faces
    fig1 = {
        name: grids.fig1_grid(items, cfg.grid_identities, cfg.grid_expressions)
        for name, items in sets.items()
        if name == "dataset" and len(items)
    }
    examples = (
        grids.afid_examples(afid_plan, cfg.afid_examples, show_real) if afid_plan is not None and len(afid_plan) else ""
    )
    pairs = {
        name: grids.privacy_pairs(
            sets[name], block["privacy"]["flagged"], prepare_dir, report["config"]["privacy"]["max_listed"], show_real
        )
        for name, block in report["sets"].items()
        if block.get("privacy", {}).get("status") == "ok" and block["privacy"]["n_flagged"]
    }
    body = [
        _header(report, show_real),
        _provenance(report),
        sections.table1(report),
        sections.missing(report),
        sections.afid(report, examples),
        sections.grids(fig1),
        sections.breakdowns(report),
        sections.distributions(report, sets, cfg.histogram_bins),
        sections.identity(report),
        sections.expression(report),
        sections.privacy(report, pairs),
        utility_section.render(report.get("utility")),
        sections.training(train_log, report["training"]["log"] if report["training"] else None),
        sections.networks(report, config_toml),
    ]
    title = "fpsynth report" + (" (SYNTHETIC DEMO DATA)" if report["provenance"]["synthetic_demo"] else "")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head><body><main>{''.join(body)}</main></body></html>\n"
    )


def _header(report: dict[str, Any], show_real: bool) -> str:
    prov = report["provenance"]
    banners = []
    if prov["synthetic_demo"]:
        banners.append(
            '<div class="banner">SYNTHETIC DEMO DATA: the prepared frames were rendered by fpsynth\'s '
            "demo renderer (faces of no real person, with a parametric palsy). Nothing on this page says "
            "anything about real patients. Face recognition networks were trained on photographs and "
            "tell rendered faces apart poorly, so identity and privacy figures here are not meaningful "
            "either.</div>"
        )
    model = report["evaluated"]["model"]
    random = {
        "metric networks": report["random_init"],
        "the trained model's pretrained networks": model["random_init"] if model else [],
    }
    if any(random.values()):
        names = "; ".join(
            f"{what}: " + ", ".join(f"<code>{esc(n)}</code>" for n in names) for what, names in random.items() if names
        )
        banners.append(
            f'<div class="banner">RANDOM WEIGHTS ({names}) were used with random initialisation '
            "(allowed by <code>weights.random_init</code>, for tests and demos). Figures that depend on "
            "them have no meaning beyond exercising the pipeline.</div>"
        )
    if show_real and not prov["synthetic_demo"]:
        banners.append(
            '<div class="warn">This page shows real face crops of the prepared data (style images, '
            "training frames in the privacy audit). Keep it with the data; for a page you can share, set "
            "<code>report.page.show_real_faces = false</code>.</div>"
        )
    toc = "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t in contents(report))
    return (
        f'<header><h1>{esc("fpsynth report")}</h1><p class="muted">created {esc(report["created_at"])} by fpsynth '
        f"{esc(__version__)}; workspace <code>{esc(report['workspace'])}</code>; machine-readable figures in "
        f"<code>report.json</code>, per-image values in <code>items-*.parquet</code>.</p>{''.join(banners)}"
        f"<nav><ol>{toc}</ol></nav></header>"
    )


def _provenance(report: dict[str, Any]) -> str:
    prov = report["provenance"]
    sources = (
        "".join(
            f"<li><code>--{esc(s['kind'])} {esc(s['path'])}</code>: "
            + (
                "<b>synthetic demo renderer</b>"
                if s["synthetic"]
                else "recorded data"
                if s["found"]
                else "folder not found now"
            )
            + "</li>"
            for s in prov["sources"]
        )
        or "<li>unknown (no prepare/config.toml)</li>"
    )
    splits = ", ".join(
        f"{esc(k)}: {num(v['subjects'])} subjects / {num(v['frames'])} frames" for k, v in prov["splits"].items()
    )
    severities = ", ".join(f"{esc(k)} {num(v)}" for k, v in prov["severity_subjects"].items())
    items = [
        ("prepared data", f"{num(prov['frames'])} crops of {num(prov['subjects'])} subjects ({splits})"),
        ("sources", f"<ul>{sources}</ul>"),
        ("subjects per severity", severities or "&ndash;"),
    ]
    dataset, model = report["evaluated"]["dataset"], report["evaluated"]["model"]
    if dataset:
        items.append(
            (
                "generated dataset",
                f"<code>{esc(dataset['path'])}</code>: {num(dataset['images_evaluated'])} of "
                f"{num(dataset['images_total'])} images evaluated ({esc(dataset['subset'])}); "
                f"{num(dataset['identities'])} identities"
                + (" (synthetic demo faces)" if dataset["ids_synthetic"] else "")
                + f", styles from {num(dataset['style_subjects'])} subjects; "
                f"sampler {esc(', '.join(map(str, dataset['samplers'])))} "
                f"with {esc(', '.join(map(str, dataset['steps'])))} "
                f"steps; checkpoint {esc(', '.join(c[:12] for c in map(str, dataset['checkpoints'])))}",
            )
        )
    else:
        items.append(("generated dataset", f"none (run <code>{esc(GENERATE.usage)}</code>)"))
    if model:
        random = ", ".join(model["random_init"]) or "none"
        items.append(
            (
                "trained model",
                f"<code>{esc(model['path'])}</code>: step {num(model['step'])}, "
                f"sha256 {esc(str(model['sha256'])[:12])}, variant {esc(model['variant'])}, profile "
                f"{esc(model.get('profile', 'fpsynth'))}"
                + (f" (published {esc(model['published']['file'])})" if model.get("published") else "")
                + "; networks with random "
                f"weights in it: {esc(random)}",
            )
        )
    else:
        items.append(("trained model", f"none (run <code>{esc(TRAIN.usage)}</code>): no aFID"))
    return section("provenance", "Data and what was evaluated", definition_list(items))
