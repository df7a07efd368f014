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
    (computed from the data, with an honest statement of the uncertainty), how robust those conclusions are (only
    when a sensitivity analysis of this study lies in ``OUT/sensitivity/``: :mod:`abscopal.studies.robustness`),
    the summary table, the figures, the
    sources of every parameter and the provenance.

Figures are :class:`matplotlib.figure.Figure` objects rendered by Agg; pyplot and matplotlib's global state are not
used. :func:`study_figures` and :func:`study_report_html` build the PNG bytes and the HTML text without writing.
The page is the jinja2 template ``study_report.html.j2`` of :mod:`abscopal.templates`; this module computes its
content (sentences, tables, numbers) and the template escapes every text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import xarray as xr

from ..io import write_atomic
from ..provenance import format_environment
from ..templates import render
from .design import AXES
from .figures import FIGURES, study_figures
from .formatting import (
    LOW_PNEUMONITIS_RISK,
    _best_cells,
    _cell_name,
    _fmt,
    _fmt_interval,
    _labels,
    _n_draws,
    _no_rt_labels,
    _num,
    _provenance,
    _reference_row,
    _row_index,
    _value_with_interval,
)

__all__ = ["FIGURES", "LOW_PNEUMONITIS_RISK", "study_figures", "study_report_html", "write_study_report"]


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


def study_report_html(
    ds: xr.Dataset,
    rows: Sequence[Mapping[str, Any]],
    images: Mapping[str, bytes],
    robustness: Mapping[str, Any] | None = None,
) -> str:
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
    robustness
        The verdicts of a sensitivity analysis of this study (:func:`abscopal.studies.robustness.read_robustness`),
        shown as the section "How robust are these conclusions"; None: no such section.

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
        robustness=robustness,
    )


def write_study_report(
    ds: xr.Dataset, rows: list[dict], out_dir: Path, robustness: Mapping[str, Any] | None = None
) -> list[Path]:
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
    robustness
        As :func:`study_report_html`.

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
    text = study_report_html(ds, rows, images, robustness)
    written.append(
        write_atomic(out_dir / "report.html", lambda tmp: tmp.write_text(text, encoding="utf-8"), force=True)
    )
    return written
