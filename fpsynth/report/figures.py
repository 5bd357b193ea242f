"""The report's figures as types: one dataclass per block of report.json's ``sets.<name>``.

``fpsynth.report.summary`` computes them from the per-image tables; :func:`as_json` (called by
:meth:`SetSummary.to_json` when report.json is assembled) is the one place they become the plain
dicts of report.json, which the page then reads. A block whose network is missing is the
:class:`~fpsynth.nets.loading.MissingNetwork` itself (its ``to_dict`` is the missing row).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fpsynth.metrics.fid import FIDResult
from fpsynth.nets.loading import MissingNetwork

Distribution = dict[str, Any]  # summary.describe(): n, n_nan, mean, std, median, p05, p95
Row = dict[str, Any]  # a breakdown row: the group, its n, then one mean per per-image column


@dataclasses.dataclass(frozen=True)
class NotComputed:
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"status": "not computed", "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class FIDSummary:
    result: FIDResult
    reference: str  # what the generated images were compared with

    def to_json(self) -> dict[str, Any]:
        return {"status": "ok", **self.result.to_dict(), "reference": self.reference}


@dataclasses.dataclass(frozen=True)
class PairSummary:
    """One pair metric over a set: the distribution against each Table 1 reference."""

    by_reference: dict[str, Distribution]  # "x_id" / "x_style" -> distribution
    unit: str
    definition: str

    def to_json(self) -> dict[str, Any]:
        return {**self.by_reference, "unit": self.unit, "definition": self.definition}


@dataclasses.dataclass(frozen=True)
class IdentitySummary:
    """Similarity of each image to its identity source, and the share a verifier accepts."""

    embedder: str
    score: str  # "euclidean" distance (lower = closer) or "cosine" similarity
    threshold: float
    rule: str
    distribution: Distribution
    verification_rate: float | None
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"status": "ok", **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class ExpressionSummary:
    """Landmark expression-transfer error and facial asymmetry, generated vs style."""

    expression_error: Distribution
    without_rest_frame: int
    unit: str
    asymmetry_unit: str
    asymmetry_by_severity: list[Row]  # per severity: |index| of style and generated, and |error|
    asymmetry_correlation: dict[str, float | None]  # Pearson r of signed indices, generated vs style

    def to_json(self) -> dict[str, Any]:
        return {"status": "ok", **dataclasses.asdict(self)}


Block = FIDSummary | PairSummary | IdentitySummary | ExpressionSummary | NotComputed | MissingNetwork


def as_json(block: Block) -> dict[str, Any]:
    """A figure block as report.json writes it."""
    return block.to_dict() if isinstance(block, MissingNetwork) else block.to_json()


@dataclasses.dataclass
class SetSummary:
    """The figures of one evaluated set (report.json's ``sets.<name>``)."""

    n: int
    fid: FIDSummary | NotComputed | MissingNetwork
    pairwise: dict[str, PairSummary | MissingNetwork]  # every registered pair metric, in registry order
    identity: IdentitySummary | MissingNetwork
    expression: ExpressionSummary | MissingNetwork
    by_severity: list[Row]  # the breakdowns mean the Table 1 convention's pair metrics
    by_expression: list[Row]
    privacy: dict[str, Any] | None = None  # the generated dataset's privacy audit, when it ran

    def to_json(self) -> dict[str, Any]:
        block = {
            "n": self.n,
            "fid": as_json(self.fid),
            "pairwise": {name: as_json(s) for name, s in self.pairwise.items()},
            "identity": as_json(self.identity),
            "expression": as_json(self.expression),
            "by_severity": self.by_severity,
            "by_expression": self.by_expression,
        }
        if self.privacy is not None:
            block["privacy"] = self.privacy
        return block
