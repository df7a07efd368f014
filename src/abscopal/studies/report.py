"""Figures and a self-contained HTML report of a finished study (``OUT/report.html`` and ``OUT/*.png``).

:func:`write_study_report` is called by :func:`abscopal.studies.run.run_study` (``report=True``) with the study
dataset (:func:`~abscopal.studies.assemble.assemble`) and its summary rows
(:func:`~abscopal.studies.assemble.summary_table`).
It writes, atomically and overwriting (the runner decides whether a study folder may be rewritten):

``heatmap_orr.png``, ``heatmap_median_pfs.png``, ``heatmap_os_12mo.png``, ``heatmap_pneumonitis.png``
    Timing (rows) x fractionation (columns) of one metric, one panel per site x drug; each cell shows the point
    value (draw 0) and, when the study has parameter draws, their central 95% interval.
``km_pfs.png``, ``km_os.png``
    Kaplan-Meier curves of every fractionation, one panel per timing (columns) and site x drug (rows); point curve
    of draw 0 and the 2.5-97.5% pointwise band of the draws.
``therapeutic_ratio.png``
    12-month overall survival against pneumonitis risk, one point per cell (95% intervals of the draws as error
    bars), coloured by fractionation, marker by timing; the no-RT reference as a dotted line.
``waterfall.png``
    Best percent change of the target sum (draw 0) of every virtual patient for the no-RT reference and the best
    cells by 12-month OS, with the RECIST -30% and +20% lines.
``report.html``
    One file with the figures embedded as base64 PNG: what was simulated, which fit, what the model favours
    (computed from the data, with an honest statement of the uncertainty), the summary table, the figures, the
    sources of every parameter and the provenance.

Figures are :class:`matplotlib.figure.Figure` objects rendered by Agg; pyplot and matplotlib's global state are not
used. :func:`study_figures` and :func:`study_report_html` build the PNG bytes and the HTML text without writing.
The page is the jinja2 template ``study_report.html.j2`` of :mod:`abscopal.templates`; this module computes its
content (sentences, tables, numbers) and the template escapes every text.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..io import write_atomic
from ..plot import figure_png, message_figure, new_figure
from ..provenance import format_environment
from ..templates import render
from .design import AXES

__all__ = ["FIGURES", "LOW_PNEUMONITIS_RISK", "study_figures", "study_report_html", "write_study_report"]

FIGURES: Mapping[str, str] = {
    "heatmap_orr": "Objective response rate (RECIST 1.1) by RT timing (rows) and fractionation (columns).",
    "heatmap_median_pfs": "Median progression-free survival in months by RT timing and fractionation "
    "(NR: median not reached within the follow-up; the colour scale is clipped there).",
    "heatmap_os_12mo": "Overall survival at 12 months by RT timing and fractionation.",
    "heatmap_pneumonitis": "Mean risk of grade >= 2 radiation pneumonitis by RT timing and fractionation.",
    "km_pfs": "Kaplan-Meier progression-free survival of every fractionation, one panel per RT timing "
    "(and per site x drug); dashed black: no RT.",
    "km_os": "Kaplan-Meier overall survival of every fractionation, one panel per RT timing (and per site x drug); "
    "dashed black: no RT.",
    "therapeutic_ratio": "Therapeutic ratio: 12-month overall survival against pneumonitis risk, one point per "
    "cell; colour: fractionation, marker: timing; dotted line: no RT; dashed vertical line: the "
    "5% pneumonitis threshold used in 'what the model favours'; error bars (studies with "
    "parameter draws): 95% of the draws.",
    "waterfall": "Best percent change of the sum of target-lesion diameters of every virtual patient (point "
    "values), for the no-RT reference and the best cells by 12-month OS; dashed: RECIST -30% (partial "
    "response) and +20% (progression).",
}
"""Figure names (files ``<name>.png``) and their captions, in report order."""

LOW_PNEUMONITIS_RISK = 0.05
"""Pneumonitis risk below which a cell counts as low-toxicity in "what the model favours"."""

_DPI = 110
_MAX_PANELS = 12  # heatmap / therapeutic-ratio panels (site x drug combinations)
_MAX_KM_ROWS = 3  # site x drug rows of the KM figures
_MAX_KM_COLS = 6  # timings of the KM figures
_MAX_ANNOTATED = 100  # heatmap cells per panel with a value printed
_MAX_INTERVAL_ANNOTATED = 49  # ... and with the interval printed as well
_MAX_LEGEND = 12
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
_NO_RT_COLOUR = "black"

# Metric formatting: kind "pct" (proportion shown in %), "month", "hr" (ratio), "gy", "count".
_TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("orr", "ORR", "pct"),
    ("abscopal_orr", "Abscopal ORR", "pct"),
    ("dcr", "DCR", "pct"),
    ("median_pfs_month", "Median PFS (mo)", "month"),
    ("median_os_month", "Median OS (mo)", "month"),
    ("pfs_12mo", "PFS 12 mo", "pct"),
    ("os_12mo", "OS 12 mo", "pct"),
    ("os_24mo", "OS 24 mo", "pct"),
    ("pneumonitis_risk", "Pneumonitis (G\u22652)", "pct1"),
    ("hr_pfs", "HR PFS", "hr"),
    ("hr_os", "HR OS", "hr"),
)


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


# ---- figures --------------------------------------------------------------------------------------------------------
def _png(fig: Any) -> bytes:
    return figure_png(fig, dpi=_DPI)


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(n, max_cols))
    return math.ceil(n / cols), cols


def _heatmap(
    ds: xr.Dataset,
    index: Mapping[tuple[str, ...], Mapping[str, Any]],
    metric: str,
    kind: str,
    title: str,
    cmap_name: str,
) -> bytes:
    """One metric over timing x fractionation, one panel per site x drug, shared colour scale."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    timings, fracs = _labels(ds, "timing"), _labels(ds, "fractionation")
    combos = _combos(ds)
    shown = combos[:_MAX_PANELS]
    scale = 100.0 if kind in ("pct", "pct1") else 1.0
    values = np.asarray(ds[metric].sel(draw=0).values, dtype=float) * scale  # (timing, fract, site, drug)
    finite = values[np.isfinite(values)]
    if finite.size:
        vmin, vmax = float(finite.min()), float(finite.max())
    else:
        vmin, vmax = 0.0, 1.0
    if kind in ("pct", "pct1"):
        vmin = min(vmin, 0.0)
    if vmax <= vmin:
        vmax = vmin + (abs(vmin) * 0.1 or 1.0)
    norm = Normalize(vmin=vmin, vmax=vmax)
    cmap = colormaps[cmap_name].with_extremes(bad="0.85")
    n_rows, n_cols = _grid(len(shown))
    w_panel = max(3.2, 0.95 * len(fracs) + 1.8)
    h_panel = max(2.4, 0.5 * len(timings) + 1.6)
    fig = new_figure(min(w_panel * n_cols + 1.0, 24.0), min(h_panel * n_rows + 0.6, 30.0))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    n_cells = len(timings) * len(fracs)
    annotate = n_cells <= _MAX_ANNOTATED
    with_interval = _n_draws(ds) > 0 and n_cells <= _MAX_INTERVAL_ANNOTATED
    fs = 8 if n_cells <= 25 else (7 if n_cells <= 49 else 5.5)
    image = None
    for p, (site, drug) in enumerate(shown):
        ax = axes[p // n_cols][p % n_cols]
        k, m = _labels(ds, "site").index(site), _labels(ds, "drug").index(drug)
        grid = values[:, :, k, m]
        shown_grid = np.where(np.isposinf(grid), vmax, np.where(np.isneginf(grid), vmin, grid))
        image = ax.imshow(
            np.ma.masked_invalid(shown_grid), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest"
        )
        ax.set_xticks(range(len(fracs)), fracs, rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(len(timings)), timings, fontsize=7)
        ax.set_xlabel("fractionation", fontsize=8)
        ax.set_ylabel("RT timing", fontsize=8)
        ax.set_title(_combo_title(site, drug), fontsize=8)
        if not annotate:
            continue
        for i, t in enumerate(timings):
            for j, f in enumerate(fracs):
                row = index.get((t, f, site, drug), {})
                v = grid[i, j]
                text = _fmt(v / scale if np.isfinite(v) else v, kind)
                if with_interval:
                    iv = _fmt_interval(row.get(f"{metric}_lower"), row.get(f"{metric}_upper"), kind)
                    text = f"{text}\n{iv}" if iv else text
                if np.isnan(v):
                    colour = "black"
                else:
                    r, g, b, _ = cmap(norm(shown_grid[i, j]))
                    colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                ax.text(j, i, text, ha="center", va="center", fontsize=fs, color=colour, linespacing=1.1)
    for p in range(len(shown), n_rows * n_cols):
        axes[p // n_cols][p % n_cols].axis("off")
    if image is not None:
        unit = "%" if kind in ("pct", "pct1") else ("months" if kind == "month" else "")
        cb = fig.colorbar(image, ax=axes, shrink=0.8)
        cb.set_label(f"{title} [{unit}]" if unit else title, fontsize=8)
        cb.ax.tick_params(labelsize=7)
    suffix = f" (first {len(shown)} of {len(combos)} site x drug combinations)" if len(shown) < len(combos) else ""
    fig.suptitle(f"{title}{suffix}" + ("" if finite.size else ": no finite values"), fontsize=10)
    return _png(fig)


def _fraction_colours(fracs: Sequence[str], no_rt: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    rt = [f for f in fracs if f not in no_rt]
    cmap = colormaps["tab10"] if len(rt) <= 10 else colormaps["turbo"]
    out: dict[str, Any] = {f: _NO_RT_COLOUR for f in no_rt}
    for i, f in enumerate(rt):
        out[f] = cmap(i % 10) if len(rt) <= 10 else cmap(0.05 + 0.9 * i / max(len(rt) - 1, 1))
    return out


def _km(ds: xr.Dataset, endpoint: str) -> bytes:
    """KM curves of every fractionation: panels = timing (columns) x site/drug (rows)."""
    name = f"{endpoint}_survival"
    if name not in ds or "km_month" not in ds.dims:
        return _png(message_figure(f"no Kaplan-Meier curves ({name}) in this dataset"))
    timings, all_fracs = _labels(ds, "timing"), _labels(ds, "fractionation")
    no_rt = _no_rt_labels(ds)
    fracs = ([f for f in all_fracs if f in no_rt][:1] + [f for f in all_fracs if f not in no_rt])[:_MAX_LEGEND]
    combos = _combos(ds)[:_MAX_KM_ROWS]
    cols = timings[:_MAX_KM_COLS]
    colours = _fraction_colours(fracs, no_rt)
    months = np.asarray(ds.km_month.values, dtype=float)
    draws = _n_draws(ds) > 0
    fig = new_figure(min(3.0 * len(cols) + 2.6, 24.0), min(2.6 * len(combos) + 0.8, 20.0))
    axes = fig.subplots(len(combos), len(cols), squeeze=False, sharex=True, sharey=True)
    handles: dict[str, Any] = {}
    for r, (site, drug) in enumerate(combos):
        for c, timing in enumerate(cols):
            ax = axes[r][c]
            for f in fracs:
                curves = np.asarray(
                    ds[name].sel(timing=timing, fractionation=f, site=site, drug=drug).values, dtype=float
                )  # (draw, km_month)
                is_ref = f in no_rt
                if draws:
                    lo, hi = _quantiles(curves[1:], axis=0)
                    ok = np.isfinite(lo) & np.isfinite(hi)
                    if ok.any():
                        ax.fill_between(
                            months,
                            np.where(ok, lo, np.nan),
                            np.where(ok, hi, np.nan),
                            step="post",
                            color=colours[f],
                            alpha=0.10 if is_ref else 0.15,
                            linewidth=0,
                        )
                (line,) = ax.step(
                    months,
                    curves[0],
                    where="post",
                    color=colours[f],
                    linestyle="--" if is_ref else "-",
                    linewidth=1.6 if is_ref else 1.2,
                    label=f"{f} (no RT)" if is_ref and f.lower() != "no rt" else f,
                )
                handles.setdefault(f, line)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3, linewidth=0.5)
            title = f"RT {timing}" if timing != "at progression" else "RT at progression"
            if len(_combos(ds)) > 1:
                title += f"\n{site} | {drug}"
            ax.set_title(title, fontsize=8)
            ax.tick_params(labelsize=7)
            if r == len(combos) - 1:
                ax.set_xlabel("months from study start", fontsize=8)
            if c == 0:
                ax.set_ylabel("overall survival" if endpoint == "os" else "progression-free survival", fontsize=8)
    fig.legend(
        list(handles.values()),
        [h.get_label() for h in handles.values()],
        loc="outside right upper",
        fontsize=7,
        title="fractionation",
        title_fontsize=7,
        frameon=False,
    )
    what = "Overall survival" if endpoint == "os" else "Progression-free survival"
    notes = []
    if len(all_fracs) > len(fracs):
        notes.append(f"{len(fracs)} of {len(all_fracs)} fractionations")
    if len(timings) > len(cols):
        notes.append(f"first {len(cols)} of {len(timings)} timings")
    if len(_combos(ds)) > len(combos):
        notes.append(f"first {len(combos)} of {len(_combos(ds))} site x drug combinations")
    if draws:
        notes.append("bands: 2.5-97.5% of the parameter draws")
    fig.suptitle(what + (f" ({'; '.join(notes)})" if notes else ""), fontsize=10)
    return _png(fig)


def _therapeutic_ratio(ds: xr.Dataset, index: Mapping[tuple[str, ...], Mapping[str, Any]]) -> bytes:
    """12-month OS vs pneumonitis risk, one point per cell, one panel per site x drug."""
    from matplotlib.lines import Line2D

    timings, fracs = _labels(ds, "timing"), _labels(ds, "fractionation")
    no_rt = _no_rt_labels(ds)
    colours = _fraction_colours(fracs, no_rt)
    markers = {t: _MARKERS[i % len(_MARKERS)] for i, t in enumerate(timings)}
    combos = _combos(ds)
    shown = combos[:_MAX_PANELS]
    n_rows, n_cols = _grid(len(shown))
    fig = new_figure(min(4.2 * n_cols + 2.6, 24.0), min(3.4 * n_rows + 0.8, 30.0))
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True, sharey=True)
    any_point = False
    for p, (site, drug) in enumerate(shown):
        ax = axes[p // n_cols][p % n_cols]
        ref_values = set()
        for t in timings:
            for f in fracs:
                row = index.get((t, f, site, drug))
                if row is None:
                    continue
                x, y = 100 * _num(row.get("pneumonitis_risk")), 100 * _num(row.get("os_12mo"))
                if not (math.isfinite(x) and math.isfinite(y)):
                    continue
                any_point = True
                if f in no_rt:
                    ref_values.add(round(y, 6))
                xerr = yerr = None
                xl, xh = _num(row.get("pneumonitis_risk_lower")), _num(row.get("pneumonitis_risk_upper"))
                yl, yh = _num(row.get("os_12mo_lower")), _num(row.get("os_12mo_upper"))
                if math.isfinite(xl) and math.isfinite(xh):
                    xerr = [[max(x - 100 * xl, 0.0)], [max(100 * xh - x, 0.0)]]
                if math.isfinite(yl) and math.isfinite(yh):
                    yerr = [[max(y - 100 * yl, 0.0)], [max(100 * yh - y, 0.0)]]
                ax.errorbar(
                    [x],
                    [y],
                    xerr=xerr,
                    yerr=yerr,
                    fmt=markers[t],
                    color=colours[f],
                    markersize=5,
                    elinewidth=0.7,
                    capsize=1.5,
                    alpha=0.85,
                    markerfacecolor="white" if f in no_rt else colours[f],
                )
        for k, y in enumerate(sorted(ref_values)[:3]):
            ax.axhline(y, color=_NO_RT_COLOUR, linestyle=":", linewidth=0.9)
            ax.annotate(
                "no RT" if k == 0 else "",
                xy=(1.0, y),
                xycoords=ax.get_yaxis_transform(),
                xytext=(-3, 3),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=7,
            )
        ax.axvline(100 * LOW_PNEUMONITIS_RISK, color="0.6", linestyle="--", linewidth=0.6)
        ax.grid(alpha=0.3, linewidth=0.5)
        ax.set_title(_combo_title(site, drug), fontsize=8)
        ax.tick_params(labelsize=7)
        if p // n_cols == n_rows - 1 or p + n_cols >= len(shown):
            ax.set_xlabel("pneumonitis risk, grade >= 2 [%]", fontsize=8)
        if p % n_cols == 0:
            ax.set_ylabel("overall survival at 12 months [%]", fontsize=8)
    for p in range(len(shown), n_rows * n_cols):
        axes[p // n_cols][p % n_cols].axis("off")
    handles = [
        Line2D(
            [],
            [],
            color=colours[f],
            marker="s",
            linestyle="none",
            markersize=6,
            label=f + (" (no RT)" if f in no_rt and f.lower() != "no rt" else ""),
        )
        for f in fracs
    ]
    handles_t = [
        Line2D([], [], color="0.3", marker=markers[t], linestyle="none", markersize=6, label=t) for t in timings
    ]
    h = handles[:_MAX_LEGEND] + handles_t[:_MAX_LEGEND]
    fig.legend(
        handles=h,
        loc="outside right upper",
        fontsize=7,
        frameon=False,
        title="colour: fractionation\nmarker: timing",
        title_fontsize=7,
    )
    fig.suptitle("12-month OS vs pneumonitis risk" + ("" if any_point else " (no finite values)"), fontsize=10)
    return _png(fig)


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


def _waterfall_cells(ds: xr.Dataset, rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    index = _row_index(rows)
    no_rt = _no_rt_labels(ds)
    best = _best_cells(rows, "os_12mo", exclude=no_rt, n=3)
    cells: list[tuple[str, Mapping[str, Any]]] = []
    ref = _reference_row(index, best[0], no_rt) if best else None
    if ref is None and no_rt:
        ref = next((r for r in rows if r["fractionation"] in no_rt), None)
    if ref is not None:
        cells.append(("no RT reference", ref))
    for i, r in enumerate(best):
        cells.append((f"#{i + 1} by 12-month OS", r))
    if not cells and rows:
        cells.append(("first cell", rows[0]))
    return cells


def _waterfall(ds: xr.Dataset, rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Best percent change (draw 0) per patient for the reference and the best cells."""
    cells = _waterfall_cells(ds, rows)
    if "best_percent_change" not in ds or not cells:
        return _png(message_figure("no per-patient best percent change in this dataset"))
    n_rows, n_cols = _grid(len(cells), 2)
    fig = new_figure(min(5.0 * n_cols, 14.0), min(3.0 * n_rows + 0.5, 16.0))
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharey=True)
    varying = [a for a in AXES if ds.sizes[a] > 1]
    for p, (what, row) in enumerate(cells):
        ax = axes[p // n_cols][p % n_cols]
        sel = {a: str(row[a]) for a in AXES}
        change = _point(ds, "best_percent_change", **sel)
        resp = (_point(ds, "objective_response", **sel) > 0) if "objective_response" in ds else None
        keep = np.flatnonzero(np.isfinite(change))
        order = keep[np.argsort(-change[keep], kind="stable")]
        colours = []
        for i in order:
            if (resp is not None and resp[i]) or change[i] <= -30.0:
                colours.append("#5ab35f")
            elif change[i] >= 20.0:
                colours.append("#c8281e")
            else:
                colours.append("#f2b134")
        ax.bar(np.arange(order.size), change[order], width=0.85, color=colours)
        ax.axhline(0.0, color="black", linewidth=0.7)
        for level, text in ((20.0, "+20%"), (-30.0, "-30%")):
            ax.axhline(level, color="0.3", linestyle="--", linewidth=0.8)
            ax.annotate(
                text,
                xy=(1.0, level),
                xycoords=ax.get_yaxis_transform(),
                xytext=(-2, 2),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=7,
                color="0.3",
            )
        ax.set_xlim(-0.6, max(order.size, 1) - 0.4)
        ax.set_xticks([])
        orr = _fmt(row.get("orr"), "pct")
        ax.set_title(f"{what}: {_cell_name(row, varying)}\nORR {orr}, n = {order.size}", fontsize=8)
        ax.tick_params(labelsize=7)
        if p % n_cols == 0:
            ax.set_ylabel("best change of target sum [%]", fontsize=8)
        ax.set_xlabel("virtual patients, sorted", fontsize=8)
    for p in range(len(cells), n_rows * n_cols):
        axes[p // n_cols][p % n_cols].axis("off")
    fig.suptitle("Waterfall plots (point values; green: response, amber: stable, red: >= +20%)", fontsize=10)
    return _png(fig)


def study_figures(ds: xr.Dataset, rows: Sequence[Mapping[str, Any]]) -> dict[str, bytes]:
    """Render every figure of :data:`FIGURES` as PNG bytes.

    Parameters
    ----------
    ds
        Study dataset (:func:`abscopal.studies.assemble.assemble`).
    rows
        Its summary rows (:func:`abscopal.studies.assemble.summary_table`).

    Returns
    -------
    dict of str to bytes
        PNG bytes by figure name, in :data:`FIGURES` order.
    """
    index = _row_index(rows)
    out = {
        "heatmap_orr": _heatmap(ds, index, "orr", "pct", "Objective response rate", "viridis"),
        "heatmap_median_pfs": _heatmap(ds, index, "median_pfs_month", "month", "Median PFS", "viridis"),
        "heatmap_os_12mo": _heatmap(ds, index, "os_12mo", "pct", "Overall survival at 12 months", "viridis"),
        "heatmap_pneumonitis": _heatmap(ds, index, "pneumonitis_risk", "pct1", "Pneumonitis risk (grade >= 2)", "Reds"),
        "km_pfs": _km(ds, "pfs"),
        "km_os": _km(ds, "os"),
        "therapeutic_ratio": _therapeutic_ratio(ds, index),
        "waterfall": _waterfall(ds, rows),
    }
    return {k: out[k] for k in FIGURES}


# ---- HTML (template study_report.html.j2) -------------------------------------------------------------------------
def _simulated_context(ds: xr.Dataset, prov: Mapping[str, Any]) -> dict[str, Any]:
    """What was simulated: population, model, the levels of every axis, assessment, salvage RT and uncertainty."""
    design = prov.get("design") or {}
    fr_info = []
    for f in _labels(ds, "fractionation"):
        sel = ds.sel(fractionation=f)
        n_fx = int(sel.n_fractions) if "n_fractions" in ds.coords else 0
        if n_fx == 0:
            fr_info.append(f"{f} (no RT)")
        else:
            fr_info.append(
                f"{f} ({_fmt(float(sel.total_dose_gy), 'gy')} Gy in {n_fx} fractions, "
                f"BED10 {_fmt(float(sel.bed10_gy), 'gy')} Gy)"
            )
    t_info = []
    for t in _labels(ds, "timing"):
        start = float(ds.timing_start_day.sel(timing=t)) if "timing_start_day" in ds.coords else math.nan
        t_info.append(
            f"{t} (salvage RT after progression)"
            if math.isnan(start)
            else f"{t} (first fraction on day {start:+g} relative to the first drug dose)"
        )
    assess = design.get("assessment")
    delay = design.get("salvage_delay_day")
    return {
        "description": design.get("description") or None,
        "n_patients": design.get("n_patients", ds.sizes.get("patient")),
        "mix": design.get("mix", "?"),
        "seed": design.get("seed", prov.get("seed", "?")),
        "model": prov.get("model", "?"),
        "n_lesions": prov.get("n_lesions", "?"),
        "follow_up_months": _fmt(_num(design.get("t_end_day")) / 30.44, "month"),
        "mix_source": prov.get("mix_source") or None,
        "levels": [
            ("RT timing", "; ".join(t_info)),
            ("fractionation", "; ".join(fr_info)),
            ("irradiated site", "; ".join(_labels(ds, "site"))),
            ("drug", "; ".join(_labels(ds, "drug"))),
        ],
        "assessment": json.dumps(assess, default=str) if assess else None,
        "salvage_delay": _fmt(delay, "count") if delay is not None else "a fixed delay",
        "n_draws": _n_draws(ds),
        "draw_source": prov.get("draw_source", "?"),
        "draw_seed": prov.get("draw_seed", "?"),
    }


def _fit_context(prov: Mapping[str, Any]) -> dict[str, Any] | None:
    """Which calibration: None without a fit; else the fit file, its fitted values and its trials."""
    if not prov.get("fit"):
        return None
    targets = prov.get("fit_targets") or {}
    items = targets.items() if isinstance(targets, Mapping) else ((t, "") for t in targets)
    return {
        "file": [
            ("fit file", prov.get("fit")),
            ("file hash (sha256)", prov.get("fit_hash") or "-"),
            ("parameter draws", prov.get("draw_source", "-")),
        ],
        "fitted": [(k, f"{_num(v):.4g}") for k, v in sorted((prov.get("fit_values") or {}).items())],
        "targets": [(t, h) for t, h in items],
    }


def _overlaps(a: Mapping[str, Any], b: Mapping[str, Any], metric: str) -> bool | None:
    """Whether the draw intervals of ``metric`` overlap (None without intervals)."""
    al, ah, bl, bh = (
        _num(a.get(f"{metric}_lower")),
        _num(a.get(f"{metric}_upper")),
        _num(b.get(f"{metric}_lower")),
        _num(b.get(f"{metric}_upper")),
    )
    if any(math.isnan(v) for v in (al, ah, bl, bh)):
        return None
    return not (al > bh or bl > ah)


def _favours_context(ds: xr.Dataset, rows: Sequence[Mapping[str, Any]], prov: Mapping[str, Any]) -> dict[str, Any]:
    """What the model favours: the best cells, each compared with its no-RT reference, and the caveats.

    Every item of ``best`` is ``{"lead", "cell", "text", "caveat", "tail"}``, shown as ``lead`` **``cell``**: ``text``
    *``caveat``* ``tail`` (``cell`` and ``caveat`` may be None); caveats are sentences.
    """
    index = _row_index(rows)
    no_rt = _no_rt_labels(ds)
    varying = [a for a in AXES if ds.sizes[a] > 1]
    n_draws = _n_draws(ds)
    items: list[dict[str, Any]] = []

    def compare(lead: str, row: Mapping[str, Any], metric: str, kind: str, what: str) -> dict[str, Any]:
        item = {"lead": lead, "cell": _cell_name(row, varying), "caveat": None, "tail": ""}
        text = f"{what} {_value_with_interval(row, metric, kind)}"
        ref = _reference_row(index, row, no_rt)
        if ref is None or ref is row:
            item["text"] = text + (" (no no-RT cell to compare with)." if ref is None else ".")
            return item
        text += f" vs {_value_with_interval(ref, metric, kind)} without RT"
        hr_metric = "hr_os" if metric.startswith(("os", "median_os")) else "hr_pfs"
        if math.isfinite(_num(row.get(hr_metric))):
            text += f" (hazard ratio {_value_with_interval(row, hr_metric, 'hr')})"
        ov = _overlaps(row, ref, metric)
        if ov:
            text += ". "
            item["caveat"] = (
                "Caveat: its 95% interval overlaps the no-RT reference's; the model does not clearly "
                "separate this cell from no RT."
            )
        elif ov is False:
            text += ". Its 95% interval does not overlap the no-RT reference's."
        else:
            text += "."
        item["text"] = text
        return item

    def ties(best: Mapping[str, Any], metric: str) -> str:
        v = _num(best.get(metric))
        same = [r for r in rows if r is not best and r["fractionation"] not in no_rt and _num(r.get(metric)) == v]
        if not same:
            return ""
        names = "; ".join(_cell_name(r, varying) for r in same[:4]) + ("; ..." if len(same) > 4 else "")
        return f" Tied with {len(same)} other cell{'s' if len(same) > 1 else ''} ({names})."

    best_os = _best_cells(rows, "os_12mo", exclude=no_rt)
    if best_os:
        item = compare("Best 12-month overall survival: ", best_os[0], "os_12mo", "pct", "12-month OS")
        item["tail"] = ties(best_os[0], "os_12mo")
        items.append(item)
    best_pfs = _best_cells(rows, "median_pfs_month", exclude=no_rt)
    if best_pfs:
        item = compare(
            "Longest median progression-free survival: ",
            best_pfs[0],
            "median_pfs_month",
            "month",
            "median PFS (months)",
        )
        item["tail"] = ties(best_pfs[0], "median_pfs_month")
        items.append(item)
    low = _best_cells(rows, "os_12mo", exclude=no_rt, max_risk=LOW_PNEUMONITIS_RISK)
    threshold = f"{100 * LOW_PNEUMONITIS_RISK:.0f}%"
    if low:
        r = low[0]
        item = compare(
            f"Best 12-month OS with pneumonitis risk below {threshold}: ", r, "os_12mo", "pct", "12-month OS"
        )
        item["tail"] = f" Pneumonitis risk {_value_with_interval(r, 'pneumonitis_risk', 'pct1')}."
        items.append(item)
    elif best_os:
        items.append(
            {
                "lead": f"No RT cell has a pneumonitis risk below {threshold}.",
                "cell": None,
                "text": "",
                "caveat": None,
                "tail": "",
            }
        )
    if not items:
        return {"best": [], "caveats": []}
    caveats = []
    if not no_rt:
        caveats.append("The study has no 'no RT' fractionation, so no cell can be compared with the drug alone.")
    if any(str(t) == "at progression" for t in _labels(ds, "timing")):
        caveats.append("For RT at progression, PFS equals the no-RT PFS by construction; compare OS instead.")
    n_pat = int(ds.sizes.get("patient", 0))
    if n_draws == 0:
        se = 50.0 / math.sqrt(max(n_pat, 1))
        caveats.append(
            f"Without parameter draws there are no intervals: these are point values of one parameter set "
            f"on {n_pat} virtual patients, and differences of a few percentage points between cells "
            f"(a binomial standard error with {n_pat} patients is up to {se:.0f} points) should not be "
            "read as real."
        )
    if not prov.get("fit"):
        caveats.append(
            "The model is uncalibrated (model defaults): treat the ranking as a hypothesis about the "
            "mechanisms, not as a prediction."
        )
    return {"best": items, "caveats": caveats}


def _summary_context(ds: xr.Dataset, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The summary table: ``header`` and ``rows`` (``{"ref": no-RT row, "cells": [{"text", "interval", "n"}]}``)."""
    no_rt = set(_no_rt_labels(ds))
    header = [
        "timing",
        "fractionation",
        "site",
        "drug",
        "dose / fx",
        "BED10 (Gy)",
        "MLD (Gy)",
        *(h for _, h, _ in _TABLE_COLUMNS),
    ]
    body = []
    for r in rows:
        n_fx = int(_num(r.get("n_fractions")) or 0) if math.isfinite(_num(r.get("n_fractions"))) else 0
        dose = "no RT" if n_fx == 0 else f"{_fmt(r.get('total_dose_gy'), 'gy')} Gy / {n_fx}"
        cells = [{"text": str(r[a]), "interval": "", "n": False} for a in AXES]
        cells += [
            {"text": dose, "interval": "", "n": True},
            {"text": _fmt(r.get("bed10_gy"), "gy"), "interval": "", "n": True},
            {"text": _fmt(r.get("mean_lung_dose_gy"), "gy"), "interval": "", "n": True},
        ]
        for m, _, kind in _TABLE_COLUMNS:
            cells.append(
                {
                    "text": _fmt(r.get(m), kind),
                    "interval": _fmt_interval(r.get(f"{m}_lower"), r.get(f"{m}_upper"), kind),
                    "n": True,
                }
            )
        body.append({"ref": r["fractionation"] in no_rt, "cells": cells})
    return {"header": header, "rows": body, "draws": _n_draws(ds) > 0}


def _sources_context(prov: Mapping[str, Any]) -> dict[str, Any]:
    """Sources: every parameter with its source, the trials of the calibration, the population mix."""
    return {
        "parameters": sorted((prov.get("sources") or {}).items()),
        "trials": [str(t) for t in prov.get("fit_targets") or {}],
        "mix_source": prov.get("mix_source") or None,
    }


def _provenance_items(ds: xr.Dataset, prov: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The provenance list at the end of the report."""
    design = prov.get("design") or {}
    elapsed = ds.attrs.get("elapsed_s")
    return [
        ("abscopal version", prov.get("version", ds.attrs.get("abscopal_version", "?"))),
        ("environment", format_environment(prov.get("environment"))),
        ("model", prov.get("model", "?")),
        ("model hash", prov.get("model_hash", ds.attrs.get("model_hash", "?"))),
        ("design hash", prov.get("design_hash", "?")),
        ("design file", design.get("source") or "-"),
        ("fit", prov.get("fit") or "none (model defaults, uncalibrated)"),
        ("fit hash", prov.get("fit_hash") or "-"),
        ("patient seed / draw seed", f"{prov.get('seed', '?')} / {prov.get('draw_seed', '?')}"),
        ("parameter draws", f"{_n_draws(ds)} ({prov.get('draw_source', '?')})"),
        ("solver", json.dumps(prov.get("solver"), sort_keys=True, default=str) if prov.get("solver") else "-"),
        ("elapsed", "-" if elapsed is None else f"{_num(elapsed):.1f} s"),
        ("cells computed / cached", f"{ds.attrs.get('cells_computed', '?')} / {ds.attrs.get('cells_cached', '?')}"),
    ]


def study_report_html(ds: xr.Dataset, rows: Sequence[Mapping[str, Any]], images: Mapping[str, bytes]) -> str:
    """The text of ``report.html``: one self-contained page with ``images`` embedded as base64 PNG.

    The page is the template ``study_report.html.j2`` (:mod:`abscopal.templates`) filled with the sections
    computed here.

    Parameters
    ----------
    ds
        Study dataset (:func:`abscopal.studies.assemble.assemble`).
    rows
        Its summary rows (:func:`abscopal.studies.assemble.summary_table`).
    images
        PNG bytes by figure name (:func:`study_figures`); names outside :data:`FIGURES` are ignored.

    Returns
    -------
    str
        The HTML document; every text from the dataset is escaped.
    """
    prov = _provenance(ds)
    return render(
        "study_report.html.j2",
        title=str(ds.attrs.get("title") or (prov.get("design") or {}).get("title") or "Study report"),
        simulated=_simulated_context(ds, prov),
        fit=_fit_context(prov),
        favours=_favours_context(ds, rows, prov),
        summary=_summary_context(ds, rows),
        figures=[
            {"name": name, "caption": caption, "png": images[name]}
            for name, caption in FIGURES.items()
            if name in images
        ],
        sources=_sources_context(prov),
        provenance=_provenance_items(ds, prov),
    )


def write_study_report(ds: xr.Dataset, rows: list[dict], out_dir: Path) -> list[Path]:
    """Write the figures and report.html of a finished study into out_dir; return the paths written.

    Parameters
    ----------
    ds
        Study dataset (:func:`abscopal.studies.assemble.assemble`).
    rows
        ``abscopal.studies.assemble.summary_table(ds)``.
    out_dir
        Study folder; ``<name>.png`` for every name of :data:`FIGURES` and ``report.html`` are written there
        atomically, overwriting (the study runner decides whether a folder may be rewritten).

    Returns
    -------
    list of pathlib.Path
        The PNG files in :data:`FIGURES` order, then ``report.html``.
    """
    out_dir = Path(out_dir)
    images = study_figures(ds, rows)
    written = []
    for name, data in images.items():
        written.append(write_atomic(out_dir / f"{name}.png", partial(Path.write_bytes, data=data), force=True))
    text = study_report_html(ds, rows, images)
    written.append(
        write_atomic(out_dir / "report.html", lambda tmp: tmp.write_text(text, encoding="utf-8"), force=True)
    )
    return written
