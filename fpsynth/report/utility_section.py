"""The report's "Utility" section: ``WORKSPACE/utility/utility.json`` (``fpsynth utility``) as tables and plots.

Shown only when that file exists. One table per task (rows: grader x regime; the headline metric
with its subject-bootstrap CI, its gain over real-only, and the other metrics) and one plot per
task and grader: the headline metric against the synthetic ratio, with the real-only value as a
flat baseline line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fpsynth.report import svg
from fpsynth.report.markup import esc, num, section, table

UTILITY_JSON = Path("utility") / "utility.json"
ANCHOR, TITLE = "utility", "Utility: train on synthetic, test on real"


def read(workspace: Path) -> dict[str, Any] | None:
    """utility.json of the workspace, or None when the stage has not run (or its file is unreadable)."""
    try:
        return json.loads((Path(workspace) / UTILITY_JSON).read_text())
    except (OSError, ValueError):
        return None


def _ci(m: dict[str, Any]) -> str:
    lo, hi = m.get("ci") or (None, None)
    return f"{num(m['value'])} [{num(lo)}, {num(hi)}]" if lo is not None else num(m["value"])


def render(utility: dict[str, Any] | None) -> str:
    if not utility:
        return ""
    proto, lk = utility["protocol"], utility["leaks"]
    conf = f"{round(100 * proto['confidence'])}%"
    parts = []
    for name, task in utility["tasks"].items():
        if task["status"] != "ok":
            parts.append(f'<h3>{esc(name)}</h3><p class="muted">skipped: {esc(task["reason"])}</p>')
            continue
        metric, rows, plots = task["metric"], [], []
        others: list[str] = []
        for grader, regs in task["graders"].items():
            xs, ys = [], []
            base = regs.get("real", {}).get("metrics", {}).get(metric, {}).get("value")
            for label, r in regs.items():
                if r["status"] != "ok":
                    rows.append([esc(grader), esc(label), "", "", f'<span class="muted">{esc(r["reason"])}</span>', ""])
                    continue
                others = [k for k in r["metrics"] if k != metric]
                gain = r.get("gain_vs_real")
                rows.append(
                    [
                        esc(grader),
                        esc(label),
                        f"{num(r['n_train_real'])} / {num(r['n_train_synthetic'])}",
                        _ci(r["metrics"][metric]),
                        _ci(gain) if gain else "baseline",
                        "; ".join(f"{esc(k)} {num(r['metrics'][k]['value'])}" for k in others),
                    ]
                )
                if r["regime"] == "real+synthetic" and r["metrics"][metric]["value"] is not None:
                    xs.append(r["ratio"])
                    ys.append(r["metrics"][metric]["value"])
            if xs:
                series = {f"real + synthetic ({grader})": ys}
                if base is not None:
                    series["real only (baseline)"] = [base] * len(xs)
                plots.append(
                    svg.line_chart(
                        xs,
                        series,
                        xlabel="synthetic images per real training image",
                        ylabel=metric,
                        title=f"{name}: {metric} vs synthetic ratio ({grader})",
                        width=460,
                    )
                )
        arrow = "higher" if task["higher_is_better"] else "lower"
        parts.append(
            f"<h3>{esc(name)}: {esc(task['what'])}</h3><p>{num(task['n_test'])} test images of "
            f"{num(task['n_test_subjects'])} test subjects; headline metric <b>{esc(metric)}</b> ({arrow} is "
            f"better), mean over {num(proto['repeats'])} repeats with its {conf} CI over test subjects.</p>"
            + table(
                [
                    "grader",
                    "regime",
                    "train real / synthetic",
                    f"{metric} [{conf} CI]",
                    f"gain vs real [{conf} CI]",
                    "other metrics",
                ],
                rows,
                cls="numbers",
            )
            + f'<div class="plots">{"".join(plots)}</div>'
        )
    excluded = ", ".join(f"{esc(k)}: {num(v)}" for k, v in lk["synthetic_excluded"].items()) or "none"
    intro = (
        "Does the generated dataset make a better palsy grader? Graders trained on the real train split "
        "(baseline), on generated images only, and on real plus generated images at ratios of the real count, "
        f"all tested on the real test split ({num(proto['test_subjects'])} subjects, never seen in training). "
        f"Generated images usable for training: {num(lk['synthetic_usable'])} of {num(lk['synthetic_total'])} "
        f"(excluded by the leak rules: {excluded}). A gain whose CI lies above zero (below, for an error) "
        "means the generated data helped; a flat or falling line means it did not. Per-run values: "
        "<code>utility/runs.parquet</code>."
    )
    return section(ANCHOR, TITLE, "".join(parts), intro)
