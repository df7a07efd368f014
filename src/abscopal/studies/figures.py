"""The study figures (:data:`FIGURES`): heatmaps, Kaplan-Meier curves, the therapeutic-ratio plot and the waterfall,
rendered to PNG bytes by :func:`study_figures` (the module docstring of :mod:`abscopal.studies.report` describes each).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..plot import figure_png, message_figure, new_figure
from .design import AXES
from .formatting import (
    LOW_PNEUMONITIS_RISK,
    _best_cells,
    _cell_name,
    _combo_title,
    _combos,
    _fmt,
    _fmt_interval,
    _labels,
    _n_draws,
    _no_rt_labels,
    _num,
    _point,
    _quantiles,
    _reference_row,
    _row_index,
)

__all__ = ["FIGURES", "study_figures"]


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


_DPI = 110


_MAX_PANELS = 12  # heatmap / therapeutic-ratio panels (site x drug combinations)


_MAX_KM_ROWS = 3  # site x drug rows of the KM figures


_MAX_KM_COLS = 6  # timings of the KM figures


_MAX_ANNOTATED = 100  # heatmap cells per panel with a value printed


_MAX_INTERVAL_ANNOTATED = 49  # ... and with the interval printed as well


_MAX_LEGEND = 12


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")


_NO_RT_COLOUR = "black"


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
