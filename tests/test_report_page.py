"""Pieces of the report page and its summaries, on small tables: no network, no file."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from fpsynth.report import svg
from fpsynth.report.grids import fig1_cells
from fpsynth.report.markup import esc, missing_cell, num
from fpsynth.report.run import plain_json
from fpsynth.report.summary import breakdown, describe

SVG = "{http://www.w3.org/2000/svg}"


def test_nice_ticks_cover_the_range_with_round_steps():
    assert svg.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svg.nice_ticks(13.2, 27.9) == [10.0, 15.0, 20.0, 25.0, 30.0]
    ticks = svg.nice_ticks(-3e-5, 7e-5)
    assert ticks[0] <= -3e-5 and ticks[-1] >= 7e-5 and len(ticks) <= 8
    assert svg.nice_ticks(5.0, 5.0)[0] <= 5.0 <= svg.nice_ticks(5.0, 5.0)[-1]  # a constant series still gets an axis


def test_histogram_draws_one_bar_per_filled_bin_and_counts_every_finite_value():
    values = np.array([0.1, 0.1, 0.15, 0.9, np.nan, np.inf])
    root = ET.fromstring(svg.histogram({"a": values}, xlabel="x", title="t", bins=4, marker=(0.5, "threshold 0.5")))
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("fill-opacity")]
    assert len(bars) == 2  # bins [0.1, 0.3) holds 3 values, [0.7, 0.9] holds 1
    heights = sorted(float(b.get("height")) for b in bars)
    assert heights[1] == pytest.approx(3 * heights[0], rel=1e-3)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "a (n=4)" in texts and "threshold 0.5" in texts and "t" in texts
    assert root.find(f"{SVG}title").text == "t"


def test_plots_escape_labels_and_say_when_there_is_nothing_to_draw():
    root = ET.fromstring(svg.bar_chart(["<b>&"], {"s": [1.0]}, ylabel="y", title="bars & <things>"))
    assert root.find(f"{SVG}title").text == "bars & <things>"
    empty = svg.histogram({"a": [np.nan]}, xlabel="x", title="nothing")
    assert "no finite values" in empty and ET.fromstring(empty) is not None


def test_line_chart_breaks_at_missing_values_and_uses_log_scale_on_request():
    root = ET.fromstring(
        svg.line_chart(
            [1, 2, 3, 4, 5],
            {"loss": [1.0, 0.1, np.nan, 0.01, 0.001]},
            xlabel="step",
            ylabel="loss",
            title="t",
            log_y=True,
        )
    )
    lines = list(root.iter(f"{SVG}polyline"))
    assert len(lines) == 2 and [len(p.get("points").split()) for p in lines] == [2, 2]
    assert "log10 loss" in [t.text for t in root.iter(f"{SVG}text")]


def test_numbers_and_missing_cells_read_well():
    assert num(None) == num(float("nan")) == "&ndash;"
    assert num(0.123456) == "0.123" and num(1234) == "1,234" and num(2.5e-5) == "2.50e-05" and num(True) == "yes"
    cell = missing_cell({"status": "missing", "config_key": "weights.inception", "message": "fid: <file>"})
    assert "weights.inception" in cell and "&lt;file&gt;" in cell
    assert esc('"<x>"') == "&quot;&lt;x&gt;&quot;"


def test_describe_counts_finite_values_and_nans_apart():
    d = describe([1.0, 2.0, 3.0, np.nan])
    assert (d["n"], d["n_nan"], d["mean"], d["median"]) == (3, 1, 2.0, 2.0) and d["std"] == pytest.approx(1.0)
    assert describe([np.nan])["mean"] is None and describe([])["n"] == 0


def test_breakdown_orders_severities_clinically_and_means_each_metric():
    items = pd.DataFrame(
        {
            "severity": ["complete", "normal", "mild", "normal", None],
            "psnr_x_id": [10.0, 20.0, 15.0, 22.0, 5.0],
            "identity_same": [True, False, True, True, False],
            "asym_eye_closure_gen": [0.1] * 5,
        }
    )
    rows = breakdown(items, "severity")
    assert [r["severity"] for r in rows] == ["normal", "mild", "complete", "unknown"]
    assert rows[0]["n"] == 2 and rows[0]["psnr_x_id"] == 21.0 and rows[0]["identity_same"] == 0.5
    assert "asym_eye_closure_gen" not in rows[0]  # asymmetry has its own per-severity table


def test_fig1_grid_picks_the_best_covered_identities_and_the_peak_frame():
    rows = []
    for ident, exprs in (("A", "xyz"), ("B", "xy"), ("C", "x"), ("D", "xyz")):
        for e in exprs:
            for phase in ("onset", "peak"):
                rows.append({"item": f"{ident}{e}{phase}", "identity": ident, "expression": e, "phase": phase})
    ids, cols, cells = fig1_cells(pd.DataFrame(rows), identities=3, expressions=2)
    assert cols == ["x", "y"] and ids == ["A", "B", "D"]  # A, B, D cover both columns; C only one
    assert cells[("A", "x")]["item"] == "Axpeak" and ("C", "x") not in cells


def test_plain_json_writes_valid_json():
    out = plain_json({"a": np.float32(1.5), "b": [np.int64(2), float("nan")], "c": np.array([1, 2]), 3: math.inf})
    assert out == {"a": 1.5, "b": [2, None], "c": [1, 2], "3": None}
