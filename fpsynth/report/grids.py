"""Image grids of the page: the paper's Fig. 1 layout, aFID's round trips, the privacy audit's pairs.

Cells are ``<img>`` elements with ``data:`` URIs (JPEG thumbnails of the lossless crops), so the
page stays one file; every image carries a tooltip saying what it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from fpsynth.report.images import file_data_uri
from fpsynth.report.markup import esc, img, num, table

PHASE_PREFERENCE = ("peak", "development", "onset", "dissipation", "neutral")  # most expressive first
THUMB = 96  # displayed size in CSS px (the 112 px crop is embedded whole)


def _thumb(path: str, alt: str, title: str = "") -> str:
    return img(file_data_uri(path), alt, title, THUMB)


def fig1_cells(
    items: pd.DataFrame, identities: int, expressions: int
) -> tuple[list[str], list[str], dict[tuple[str, str], pd.Series]]:
    """Rows (identities), columns (expressions) and the item shown in each cell.

    Columns: the most frequent expressions; rows: the identities covering most of them; per cell
    the most expressive phase available (peak first), then the lowest item id.
    """
    counts = items["expression"].value_counts()
    cols = sorted(sorted(counts.index, key=lambda e: (-counts[e], e))[:expressions])
    chosen = items[items["expression"].isin(cols)].copy()
    rank = {p: i for i, p in enumerate(PHASE_PREFERENCE)}
    chosen["_phase_rank"] = chosen["phase"].map(lambda p: rank.get(p, len(rank)))
    chosen = chosen.sort_values(["_phase_rank", "item"])
    cover = chosen.groupby("identity")["expression"].nunique()
    rows = sorted(cover.index, key=lambda i: (-cover[i], i))[:identities]
    cells = {
        (ident, expr): group.iloc[0]
        for (ident, expr), group in chosen[chosen["identity"].isin(rows)].groupby(["identity", "expression"])
    }
    return rows, cols, cells


def fig1_grid(items: pd.DataFrame, identities: int, expressions: int) -> str:
    """Rows = identities (their X_ID first), columns = expressions, like the paper's Fig. 1."""
    rows, cols, cells = fig1_cells(items, identities, expressions)
    id_image = items.drop_duplicates("identity").set_index("identity")["id_image"]
    body = []
    for ident in rows:
        line = [
            f"{_thumb(id_image[ident], f'identity {ident}', f'identity source {ident} (X_ID)')}"
            f'<div class="label">{esc(ident)}</div>'
        ]
        for expr in cols:
            item = cells.get((ident, expr))
            if item is None:
                line.append('<span class="muted">&ndash;</span>')
                continue
            title = (
                f"item {item['item']}: identity {ident}, {expr}, phase {item['phase']}, severity "
                f"{item['severity']}, style from {item['style_subject']}"
            )
            line.append(
                _thumb(item["image"], f"generated {item['item']}", title)
                + f'<div class="label">{esc(item["severity"])}</div>'
            )
        body.append(line)
    return table(["identity (X_ID)", *cols], body, cls="grid")


def afid_examples(plan: pd.DataFrame, n: int, show_real: bool) -> str:
    """Round trips of aFID, one patient after another: real frame -> other person -> back."""
    order = plan.sort_values(["k", "patient"]).head(n)
    headers = (
        [
            "patient",
            "P's frame (X_Style)",
            "other person (X_ID)",
            "first pass",
            "P's identity image",
            "returned (ideally = P's frame)",
        ]
        if show_real
        else ["patient", "first pass", "returned"]
    )
    body = []
    for row in order.itertuples(index=False):
        first = _thumb(row.first_image, "first pass", f"{row.patient}'s expression on {row.id_subject}")
        back = _thumb(row.returned_image, "returned", f"carried back onto {row.patient}")
        if show_real:
            body.append(
                [
                    esc(row.patient),
                    _thumb(row.style_image, "real frame", f"{row.patient}, {row.expression}"),
                    _thumb(row.id_image, "identity", f"identity source {row.id_subject}"),
                    first,
                    _thumb(row.back_image, "identity of P", f"{row.patient}, another frame"),
                    back,
                ]
            )
        else:
            body.append([esc(row.patient), first, back])
    return table(headers, body, cls="grid")


def privacy_pairs(
    items: pd.DataFrame, flagged: list[dict[str, Any]], prepare_dir: Path, limit: int, show_real: bool
) -> str:
    """The flagged images (most similar first) beside the closest training frame of their nearest subject."""
    by_item = items.set_index("item")
    headers = [
        "item",
        "style subject",
        "nearest training subject",
        "score",
        "identity source is that subject",
        "generated image",
    ]
    headers += ["closest training frame"] if show_real else []
    body = []
    for row in flagged[:limit]:
        item = by_item.loc[row["item"]]
        line = [
            esc(row["item"]),
            esc(item["style_subject"]),
            esc(row["subject"]),
            num(row["score"]),
            num(row["identity_source_is_subject"]),
            _thumb(item["image"], f"generated {row['item']}"),
        ]
        if show_real:
            line.append(
                _thumb(str(Path(prepare_dir) / row["training_path"]), f"training frame {row['training_frame']}")
            )
        body.append(line)
    return table(headers, body, cls="grid")
