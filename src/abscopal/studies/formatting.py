"""Numbers, intervals and cell names as the study report and its figures print them, and the small readers of the
study dataset (labels of an axis, point values, draw quantiles, the best cells) they share.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .design import AXES

__all__ = ["LOW_PNEUMONITIS_RISK"]

LOW_PNEUMONITIS_RISK = 0.05
"""Pneumonitis risk below which a cell counts as low-toxicity in "what the model favours"."""


# ---- formatting -----------------------------------------------------------------------------------------------------
def _num(v: Any) -> float:
    """``v`` as a float (None -> NaN)."""
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _fmt(v: Any, kind: str) -> str:
    """One value as text: percentages, months (``NR`` for inf), ratios; ``-`` for NaN / None."""
    x = _num(v)
    if math.isnan(x):
        return "-"
    if kind == "month":
        return "NR" if math.isinf(x) else f"{x:.1f}"
    if math.isinf(x):
        return "inf"
    if kind == "pct":
        return f"{100 * x:.0f}%"
    if kind == "pct1":
        return f"{100 * x:.1f}%"
    if kind == "hr":
        return f"{x:.2f}"
    if kind == "gy":
        return f"{x:.3g}"
    return f"{x:g}"


def _fmt_interval(lo: Any, hi: Any, kind: str) -> str:
    """``"[lo-hi]"`` or an empty string when the interval is missing."""
    if lo is None or hi is None or (math.isnan(_num(lo)) and math.isnan(_num(hi))):
        return ""
    a, b = _fmt(lo, kind), _fmt(hi, kind)
    if kind in ("pct", "pct1"):
        a = a.rstrip("%")
    return f"[{a}\u2013{b}]"


def _value_with_interval(row: Mapping[str, Any], metric: str, kind: str) -> str:
    text = _fmt(row.get(metric), kind)
    iv = _fmt_interval(row.get(f"{metric}_lower"), row.get(f"{metric}_upper"), kind)
    return f"{text} {iv}" if iv else text


def _cell_name(row: Mapping[str, Any], varying: Sequence[str] = AXES) -> str:
    """Readable name of a cell from the axis labels that vary in the study."""
    parts = []
    no_rt = _num(row.get("n_fractions")) == 0
    for a in AXES:
        if a == "timing" and no_rt:
            continue  # the timing of a cell without RT does not matter
        if a in varying or a in ("timing", "fractionation"):
            lab = str(row[a])
            parts.append(
                f"RT {lab}"
                if a == "timing" and lab != "at progression"
                else ("RT at progression" if a == "timing" else lab)
            )
    return ", ".join(parts)


# ---- dataset helpers ------------------------------------------------------------------------------------------------
def _labels(ds: xr.Dataset, axis: str) -> list[str]:
    return [str(v) for v in ds[axis].values]


def _no_rt_labels(ds: xr.Dataset) -> list[str]:
    """Fractionation labels without RT (no fractions)."""
    fr = _labels(ds, "fractionation")
    if "n_fractions" in ds.coords:
        return [f for f, n in zip(fr, ds.n_fractions.values, strict=True) if int(n) == 0]
    return [f for f in fr if f.lower() in ("no rt", "none")]


def _n_draws(ds: xr.Dataset) -> int:
    """Number of parameter draws (excluding draw 0)."""
    return int(ds.sizes.get("draw", 1)) - 1


def _provenance(ds: xr.Dataset) -> dict[str, Any]:
    raw = ds.attrs.get("provenance")
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        out = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def _row_index(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, ...], Mapping[str, Any]]:
    return {tuple(str(r[a]) for a in AXES): r for r in rows}


def _quantiles(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2.5% and 97.5% quantiles along ``axis`` ignoring NaN (NaN where every value is NaN), without warnings."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(values, [0.025, 0.975], axis=axis)
    return np.asarray(lo), np.asarray(hi)


def _combos(ds: xr.Dataset) -> list[tuple[str, str]]:
    """(site, drug) combinations in dataset order."""
    return [(s, d) for s in _labels(ds, "site") for d in _labels(ds, "drug")]


def _combo_title(site: str, drug: str) -> str:
    return f"site: {site}\ndrug: {drug}"


def _point(ds: xr.Dataset, name: str, **sel: str) -> np.ndarray:
    return np.asarray(ds[name].sel({"draw": 0, **sel}).values, dtype=float)


def _best_cells(
    rows: Sequence[Mapping[str, Any]],
    metric: str,
    *,
    exclude: Sequence[str] = (),
    max_risk: float | None = None,
    n: int = 1,
) -> list[Mapping[str, Any]]:
    """The ``n`` rows with the highest finite-or-inf ``metric`` (NaN excluded), ties broken by lower pneumonitis."""
    cand = []
    for r in rows:
        v = _num(r.get(metric))
        if math.isnan(v) or r["fractionation"] in exclude:
            continue
        risk = _num(r.get("pneumonitis_risk"))
        if max_risk is not None and not (risk < max_risk):
            continue
        cand.append((v, -risk if math.isfinite(risk) else -math.inf, r))
    cand.sort(key=lambda c: (c[0], c[1]), reverse=True)
    return [c[2] for c in cand[:n]]


def _reference_row(
    index: Mapping[tuple[str, ...], Mapping[str, Any]], row: Mapping[str, Any], no_rt: Sequence[str]
) -> Mapping[str, Any] | None:
    """The no-RT row of the same timing, site and drug as ``row`` (None when the study has none)."""
    for f in no_rt:
        ref = index.get((str(row["timing"]), f, str(row["site"]), str(row["drug"])))
        if ref is not None:
            return ref
    return None
