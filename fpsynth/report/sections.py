"""The sections of the report page, each from report.json's figures (and per-image tables for plots).

Every section states what its figures were computed on (n, networks, thresholds, units); a metric
whose network is missing shows as missing with the config key that would enable it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fpsynth.data.scores import eface_bands_text
from fpsynth.diffusion.config import SamplerKind
from fpsynth.diffusion.samplers import sampler_class
from fpsynth.metrics.expression import Asymmetry
from fpsynth.metrics.table1 import PAIR_METRICS, REFERENCES, TABLE1_COLUMNS
from fpsynth.report import svg
from fpsynth.report.markup import definition_list, esc, is_ok, missing_cell, note, num, pct, section, table
from fpsynth.report.summary import EXPRESSION_UNIT
from fpsynth.stages import REPORT
from fpsynth.train.logs import LOSS_TERMS

TOTALS = ("loss", "first", "second")
SET_LABELS = {"dataset": "Generated dataset", "model": "Model (aFID first pass on test patients)"}
REF_LABELS = {"x_id": "X_ID", "x_style": "X_Style"}
CONVENTION_LABELS = {
    "authors": "the CCFExp authors' evaluation script: the paper's scale",
    "standard": "each metric as its defining paper states it",
}


def _arrow(metric: str) -> str:
    return "&uarr;" if PAIR_METRICS[metric].higher_is_better else "&darr;"


def _table1_metrics(report: dict[str, Any]) -> list[str]:
    """The pair metrics Table 1 shows, in column order (report.json's ``table1_convention``)."""
    columns = report["table1_convention"]["columns"]
    return [columns[c]["metric"] for c in TABLE1_COLUMNS]


def table1(report: dict[str, Any]) -> str:
    rows = report["table1"]
    convention = report["table1_convention"]["name"]
    shown = _table1_metrics(report)
    metrics = "".join(
        f'<th colspan="2">{PAIR_METRICS[m].label} {_arrow(m)}<br><span class="muted">{esc(m)}</span></th>'
        for m in shown
    )
    refs = "".join(f"<th>{REF_LABELS[r]}</th>" for _ in shown for r in REFERENCES)
    head = (
        f'<tr><th rowspan="2">evaluated set</th><th rowspan="2">n images</th><th rowspan="2">aFID &darr;</th>'
        f'<th rowspan="2">FID &darr;</th>{metrics}</tr><tr>{refs}</tr>'
    )
    body = []
    for row in rows:
        block = report["sets"][row["set"]]
        cells = [
            esc(SET_LABELS[row["set"]]) + _switches(report["evaluated"]["model"] if row["set"] == "model" else None),
            num(row["n"]),
            num(row["afid"], 4) if row["afid"] is not None else _afid_cell(report, row["set"]),
            num(block["fid"]["value"], 4) if is_ok(block["fid"]) else missing_cell(block["fid"]),
        ]
        tds = "".join(f"<td>{c}</td>" for c in cells)
        for col, m in zip(TABLE1_COLUMNS, shown):  # a missing metric spans its X_ID and X_Style columns
            if row[col] is None:
                tds += f'<td colspan="2">{missing_cell(block["pairwise"][m])}</td>'
            else:
                tds += "".join(f"<td>{num(row[col][r])}</td>" for r in REFERENCES)
        body.append(tds)
    rows_html = "".join(f"<tr>{r}</tr>" for r in body)
    definitions = "".join(
        f"<li><b>{PAIR_METRICS[m].label}</b> (<code>{esc(m)}</code>, {esc(PAIR_METRICS[m].unit)}): "
        f"{esc(PAIR_METRICS[m].definition)}</li>"
        for m in shown
    )
    intro = (
        f"Convention <b>{esc(convention)}</b> ({esc(CONVENTION_LABELS.get(convention, convention))}; "
        "<code>report.metrics.table1</code>; report.json holds both conventions under their own names). "
        "The paper's Table 1 layout: each metric compares a generated image with its identity source "
        "(X_ID) and with its palsy style image (X_Style); values are means over the n images. "
        f"FID compares the generated images with the real frames of the "
        f"<code>{esc(report['reference']['split'])}</code> split (n = {num(report['reference']['n'])})."
    )
    return section(
        "table1",
        f"Table 1: image quality against X_ID and X_Style ({convention} convention)",
        f'<table class="table1 numbers"><thead>{head}</thead><tbody>{rows_html}</tbody></table><ul>{definitions}</ul>',
        intro,
    )


def _switches(model: dict[str, Any] | None) -> str:
    """The paper's Table 1 method columns for a model: DCFace grid size, or CCFExp's LM / CF / CD."""
    if model is None:
        return ""
    sw = model["switches"]
    if model["variant"] == "dcface":
        return f'<br><span class="muted">DCFace, GS {esc(sw["grid"])}</span>'
    mark = {True: "&#10003;", False: "&#10007;", None: "?"}
    return (
        f'<br><span class="muted">CCFExp: LM {mark[sw["landmarks"]]} CF {mark[sw["cross_fusion"]]} '
        f"CD {mark[sw['cycle']]}</span>"
    )


def _afid_cell(report: dict[str, Any], set_name: str) -> str:
    if set_name != "model":
        return '<span class="muted" title="aFID needs the model (two transfer passes)">n/a</span>'
    return missing_cell(report["afid"])


def missing(report: dict[str, Any]) -> str:
    rows = report["missing"]
    if not rows:
        return section("missing", "Missing metrics", "<p>None: every metric's network was available.</p>")
    body = [
        [
            esc(r["metric"]),
            esc(r["network"]),
            esc(r["reason"]),
            f"<code>{esc(r['config_key'])}</code>",
            ", ".join(f"<code>{esc(f)}</code>" for f in r["files"]),
            esc(r["source"]),
        ]
        for r in rows
    ]
    intro = (
        "A metric is <b>missing</b> when the pretrained network it is defined with is not available here. "
        "It is not computed and never replaced by another network, so the figures that are shown keep "
        "their published meaning. To compute it, supply the file and set the config key (in the pipeline "
        f"TOML or with <code>--set KEY=PATH</code>), then run <code>{REPORT.command} --force</code>."
    )
    return section(
        "missing",
        "Missing metrics",
        table(["metric", "network", "why", "config key", "file", "where to get it"], body),
        intro,
    )


def afid(report: dict[str, Any], examples: str) -> str:
    block = report["afid"]
    intro = (
        "Aligned FID (paper, section 4.2): for each test patient P, P's frames are used as the style onto "
        "other individuals (first pass), then the results are used as the style with P's real images as "
        "identity (second pass); aFID is the FID between the returned images and P's real frames. Lower "
        "is better; 0 would mean the round trip returns P's images exactly."
    )
    if "sampler" not in block:  # no model was evaluated
        return section("afid", "aFID", f"<p>{missing_cell(block)}</p>", intro)
    ok = is_ok(block)
    value = (
        f"<b>{num(block['pooled']['value'], 4)}</b> (returned n = {num(block['pooled']['n_b'])}, real n = "
        f"{num(block['pooled']['n_a'])})"
        if ok
        else missing_cell(block)
    )
    facts = [("pooled aFID", value)]
    if ok:
        facts += [
            ("mean of per-patient aFID", num(block["mean_per_patient"], 4)),
            ("patients", f"{len(block['per_patient'])} evaluated, {len(block['skipped'])} skipped"),
        ]
    facts += [
        ("patients from split", f"<code>{esc(block['split'])}</code>"),
        ("sampler", _sampler(block["sampler"])),
        ("identity pool (first pass)", esc(block["identity_pool"])),
        ("images per patient", esc(block["images_per_patient"] or "all of the patient's frames")),
    ]
    body = definition_list(facts)
    if ok:
        rank = (
            "Each per-patient set has far fewer images than the 2048 Inception features, so its covariance is "
            "singular: those values are biased upward and comparable only between runs with equal n "
            "(<code>rank_deficient</code> in report.json)."
        )
        rows = [
            [
                esc(p["patient"]),
                num(p["n_real"]),
                num(p["n_returned"]),
                num(p["value"], 4) if p["value"] is not None else f'<span class="missing">{esc(p["error"])}</span>',
            ]
            for p in block["per_patient"]
        ]
        body += note(rank) + table(["patient", "real frames", "returned images", "aFID"], rows, cls="numbers")
    if block["skipped"]:
        body += table(["patient skipped", "why"], [[esc(s["patient"]), esc(s["reason"])] for s in block["skipped"]])
    if examples:
        body += "<h3>Round-trip examples</h3>" + examples
    return section("afid", "aFID", body, intro)


def _sampler(cfg: dict[str, Any]) -> str:
    eta = f", eta {cfg['eta']}" if sampler_class(SamplerKind(cfg["kind"])).uses_eta else ""
    return esc(f"{cfg['kind'].upper()}, {cfg['steps']} steps{eta}, x0 clipped: {cfg['clip_x0']}")


def grids(sets_html: dict[str, str]) -> str:
    if not sets_html:
        return section("grids", "Generated images", "<p>No generated dataset was evaluated.</p>")
    body = "".join(f"<h3>{esc(SET_LABELS[k])}</h3>{v}" for k, v in sets_html.items())
    intro = (
        "Laid out like the paper's Fig. 1: each row is one identity (its source image first), each column "
        "one palsy expression; the label under an image is the severity category of its style image. "
        "Hover an image for its item id, phase and style subject."
    )
    return section("grids", "Generated images (Fig. 1 layout)", body, intro)


def breakdowns(report: dict[str, Any]) -> str:
    parts = []
    for name, block in report["sets"].items():
        for by in ("severity", "expression"):
            rows = block[f"by_{by}"]
            if not rows:
                continue
            columns = [c for c in rows[0] if c not in (by, "n")]
            body = [[esc(r[by]), num(r["n"]), *[num(r[c]) for c in columns]] for r in rows]
            parts.append(
                f"<h3>{esc(SET_LABELS[name])}: per {by}</h3>"
                + table([by, "n", *[_column_label(c) for c in columns]], body, cls="numbers")
            )
    intro = (
        f"Means per severity category (from the style subject's eFACE: {eface_bands_text('&lt;')}) and per expression."
    )
    return section(
        "breakdowns", "Per-severity and per-expression breakdowns", "".join(parts) or "<p>No images.</p>", intro
    )


def _column_label(column: str) -> str:
    for metric in PAIR_METRICS.values():  # every registered pair metric, both conventions
        for r, c in zip(REFERENCES, metric.columns):
            if column == c:
                return f"{metric.label} vs {REF_LABELS[r]}"
    return {
        "identity_score": "identity score",
        "identity_same": "verified share",
        "expression_error": "expression error (IOD)",
        "privacy_score": "nearest training score",
        "privacy_flagged": "flagged share",
    }.get(column, column)


def distributions(report: dict[str, Any], sets: dict[str, pd.DataFrame], bins: int) -> str:
    parts = []
    for name, items in sets.items():
        plots = []
        for metric in (PAIR_METRICS[m] for m in _table1_metrics(report)):
            cols = {REF_LABELS[r]: items[c] for r, c in zip(REFERENCES, metric.columns) if c in items}
            if cols:
                plots.append(
                    svg.histogram(
                        cols,
                        xlabel=f"{metric.label} ({metric.unit})",
                        bins=bins,
                        title=f"{metric.label} {'higher' if metric.higher_is_better else 'lower'} is better",
                    )
                )
        ident = report["sets"][name]["identity"]
        if is_ok(ident):
            plots.append(
                svg.histogram(
                    {"vs X_ID": items["identity_score"]},
                    bins=bins,
                    title="identity to X_ID",
                    xlabel=f"{ident['embedder']} {ident['score']}",
                    marker=(ident["threshold"], f"threshold {ident['threshold']}"),
                )
            )
        if "expression_error" in items:
            plots.append(
                svg.histogram(
                    {"vs X_Style": items["expression_error"]},
                    bins=bins,
                    title="expression transfer error",
                    xlabel=EXPRESSION_UNIT,
                )
            )
        if "privacy_score" in items:
            priv = report["sets"][name]["privacy"]
            plots.append(
                svg.histogram(
                    {"nearest subject": items["privacy_score"]},
                    bins=bins,
                    title="nearest training subject",
                    xlabel=f"{priv['score']}",
                    marker=(priv["threshold"], f"threshold {priv['threshold']}"),
                )
            )
        parts.append(f'<h3>{esc(SET_LABELS[name])}</h3><div class="plots">{"".join(plots)}</div>')
    intro = "Histograms of the per-image values (counts of images per bin); each legend gives its n."
    return section("distributions", "Metric distributions", "".join(parts), intro)


def identity(report: dict[str, Any]) -> str:
    rows = []
    for name, block in report["sets"].items():
        ident = block["identity"]
        if not is_ok(ident):
            rows.append([esc(SET_LABELS[name]), missing_cell(ident), "", "", "", ""])
            continue
        d = ident["distribution"]
        rows.append(
            [
                esc(SET_LABELS[name]),
                num(ident["n"]),
                esc(f"{ident['embedder']} ({ident['score']})"),
                f"{num(d['mean'])} &plusmn; {num(d['std'])}",
                esc(ident["rule"]).replace("threshold", f"{ident['threshold']}"),
                pct(ident["verification_rate"]),
            ]
        )
    intro = (
        "Similarity of each generated image to its identity source X_ID, and the share a face verifier "
        "accepts as the same person at the stated threshold (dlib: Euclidean distance of 128-d "
        "descriptors, lower is closer; IR-50: cosine similarity, higher is closer)."
    )
    return section(
        "identity",
        "Identity fidelity",
        table(["set", "n", "embedder (score)", "mean ± sd", "rule", "verification rate"], rows),
        intro,
    )


def expression(report: dict[str, Any]) -> str:
    parts = []
    for name, block in report["sets"].items():
        expr = block["expression"]
        if not is_ok(expr):
            parts.append(f"<h3>{esc(SET_LABELS[name])}</h3><p>{missing_cell(expr)}</p>")
            continue
        e = expr["expression_error"]
        head = (
            f"<p>Landmark expression error: <b>{num(e['mean'])}</b> &plusmn; {num(e['std'])} IOD "
            f"(median {num(e['median'])}, n = {num(e['n'])}; {num(expr['without_rest_frame'])} images have no "
            "rest frame for their style clip and no error).</p>"
        )
        rows = [
            [
                esc(r["severity"]),
                num(r["n"]),
                *[num(r[f"{a}_{k}"]) for a in Asymmetry.NAMES for k in ("style", "gen", "err")],
            ]
            for r in expr["asymmetry_by_severity"]
        ]
        headers = ["severity", "n"] + [
            f"{a.replace('_', ' ')}: {k}" for a in Asymmetry.NAMES for k in ("style |x|", "generated |x|", "|error|")
        ]
        groups = [r["severity"] for r in expr["asymmetry_by_severity"]]
        bars = "".join(
            svg.bar_chart(
                groups,
                {
                    "style": [r[f"{a}_style"] for r in expr["asymmetry_by_severity"]],
                    "generated": [r[f"{a}_gen"] for r in expr["asymmetry_by_severity"]],
                },
                ylabel="mean |index|",
                title=f"{a.replace('_', ' ')} asymmetry by severity",
                width=380,
            )
            for a in Asymmetry.NAMES
        )
        corr = ", ".join(f"{a.replace('_', ' ')} r = {num(v)}" for a, v in expr["asymmetry_correlation"].items())
        parts.append(
            f"<h3>{esc(SET_LABELS[name])}</h3>{head}"
            f'{table(headers, rows, cls="numbers")}<div class="plots">{bars}</div>'
            f"<p>Correlation of signed indices, generated vs style: {corr}.</p>"
        )
    intro = (
        "Expression error: the displacement of the generated face's 68 landmarks from its identity "
        "source's (at rest) against the style face's displacement from its clip's neutral frame, after "
        "removing head pose and scale; mean point distance in inter-ocular distances (IOD). Asymmetry "
        "indices (left minus right): eye closure (eye-aspect-ratio difference), mouth-corner droop and brow "
        "height (IOD); shown as magnitudes, since the palsied side differs between patients. A generated "
        "image carries the palsy over when its asymmetry matches its style image's."
    )
    return section("expression", "Expression fidelity and facial asymmetry", "".join(parts), intro)


def privacy(report: dict[str, Any], pairs: dict[str, str]) -> str:
    parts = []
    for name, block in report["sets"].items():
        priv = block.get("privacy")
        if priv is None:
            continue
        if not is_ok(priv):
            parts.append(f"<p>{missing_cell(priv)}</p>")
            continue
        facts = definition_list(
            [
                ("images audited", num(priv["n"])),
                (
                    "training subjects / frames compared",
                    f"{num(priv['training']['subjects'])} / {num(priv['training']['frames'])}",
                ),
                ("rule", esc(priv["rule"]) + f" ({esc(priv['score'])}, threshold {num(priv['threshold'])})"),
                (
                    "flagged",
                    f"<b>{num(priv['n_flagged'])}</b> ({pct(priv['share_flagged'])}); of these, "
                    f"{num(priv['n_flagged_identity_source_is_subject'])} have an identity source that is itself "
                    "recognised as that training subject (a patient's face used as identity: expected, not memorised)",
                ),
            ]
        )
        listed = pairs.get(name, "")
        parts.append(
            f"<h3>{esc(SET_LABELS[name])}</h3>{facts}"
            + (
                listed
                if priv["n_flagged"]
                else "<p>No generated image passes the threshold against any training subject.</p>"
            )
        )
    intro = (
        "For every generated image, its nearest training subject by identity similarity (the best score over "
        "all of that subject's training frames). An image a face verifier would accept as a training patient "
        "may be a memorised patient: these are listed, most similar first, with the closest training frame. "
        "Every flagged image is in report.json."
    )
    return section("privacy", "Privacy audit", "".join(parts) or "<p>No generated dataset was audited.</p>", intro)


def training(log: pd.DataFrame | None, log_path: str | None) -> str:
    if log is None:
        return section(
            "training", "Training", "<p>No training log (<code>WORKSPACE/train/log.csv</code>) was found.</p>"
        )
    present = [c for c in LOSS_TERMS if c in log and log[c].notna().any()]
    groups = {
        "total, first and second pass": [c for c in present if c in TOTALS],
        "loss terms (MSE, identity, landmark; 2 = second pass)": [c for c in present if c not in TOTALS],
    }
    plots = ""
    for title, columns in groups.items():
        if columns:
            series = {c: log[c] for c in columns}
            positive = all((v.dropna() > 0).all() for v in series.values())
            plots += svg.line_chart(
                log["step"], series, xlabel="training step", ylabel="loss", title=title, log_y=positive
            )
    for column, label in (("lr", "learning rate"), ("images_per_s", "images per second")):
        if column in log and log[column].notna().any():
            plots += svg.line_chart(
                log["step"], {column: log[column]}, xlabel="training step", ylabel=label, title=label, width=420
            )
    last = log.iloc[-1]
    facts = definition_list(
        [
            ("log", f"<code>{esc(log_path)}</code> ({num(len(log))} rows, one per logging window)"),
            ("last step", num(int(last["step"]))),
        ]
        + [(f"last {c}", num(float(last[c]), 4)) for c in present]
    )
    return section(
        "training",
        "Training",
        facts + f'<div class="plots">{plots}</div>',
        "Means of the loss terms over each logging window of <code>fpsynth train</code>, against the step "
        "(log scale when every value is positive).",
    )


def networks(report: dict[str, Any], config_toml: str) -> str:
    rows = []
    for metric, block in report["networks"].items():
        if block.get("status") != "ok":
            rows.append([esc(metric), missing_cell(block), "", ""])
            continue
        for r in block["records"]:
            origin = "<b>random initialisation</b>" if r["random_init"] else f"<code>{esc(r['path'])}</code>"
            digest = f"<code>{esc(r['sha256'][:16])}</code>" if r["sha256"] else "&ndash;"
            rows.append([esc(metric), esc(r["name"]), origin, digest])
    timings = [[esc(k), num(v, 4)] for k, v in sorted(report["timings_s"].items(), key=lambda kv: -kv[1])]
    body = (
        table(["metric", "network", "file", "sha256 (first 16)"], rows)
        + "<h3>Time per part of the work (seconds)</h3>"
        + table(["part", "seconds"], timings, cls="numbers")
        + "<h3>Report configuration</h3><pre>"
        + esc(config_toml)
        + "</pre>"
    )
    return section("networks", "Networks, files and settings", body)
