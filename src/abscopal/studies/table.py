"""A study's summary rows as a plain-text table (:func:`format_summary`; printed by ``abscopal study``)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["format_summary"]


def _fmt(row: dict[str, Any], metric: str, *, percent: bool) -> str:
    v, lo, hi = row[metric], row.get(f"{metric}_lower"), row.get(f"{metric}_upper")

    def one(x: float) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "-"
        if math.isinf(x):
            return "NR"
        return f"{100 * x:.0f}%" if percent else f"{x:.1f}"

    return one(v) + (f" [{one(lo)}, {one(hi)}]" if lo is not None and hi is not None else "")


def format_summary(rows: list[dict[str, Any]], *, limit: int | None = None) -> str:
    """Plain-text table of :func:`~abscopal.studies.assemble.summary_table` rows (one per cell, every axis named),
    best 12-month OS first."""
    order = sorted(rows, key=lambda r: -(r["os_12mo"] if math.isfinite(r["os_12mo"]) else -1.0))
    head = (
        f"{'timing':<16}{'fractionation':<20}{'site':<20}{'drug':<24}{'ORR':>16}{'median PFS (mo)':>22}"
        f"{'OS 12 mo':>18}{'pneumonitis':>16}"
    )
    lines = [head, "-" * len(head)]
    for r in order[:limit]:
        lines.append(
            f"{r['timing'][:15]:<16}{r['fractionation'][:19]:<20}{r['site'][:19]:<20}{r['drug'][:23]:<24}"
            f"{_fmt(r, 'orr', percent=True):>16}{_fmt(r, 'median_pfs_month', percent=False):>22}"
            f"{_fmt(r, 'os_12mo', percent=True):>18}{_fmt(r, 'pneumonitis_risk', percent=True):>16}"
        )
    return "\n".join(lines)
