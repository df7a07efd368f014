"""Stacking the cells into the study dataset (:func:`assemble`) and reducing it to one row per cell with intervals
over the parameter draws (:func:`summary_table`).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .._version import __version__
from ..endpoints.survival import hazard_ratio
from ..errors import AbscopalError
from .design import AXES

if TYPE_CHECKING:
    pass

from .cell import SUMMARY_METRICS, StudySetup

__all__ = ["assemble", "summary_table"]


# ---- assembling -------------------------------------------------------------------------------------------------
def assemble(setup: StudySetup, results: Mapping[str, xr.Dataset]) -> xr.Dataset:
    """Stack the cell results into the study dataset.

    Dims ``timing, fractionation, site, drug`` (axis labels as coordinates, plus numeric ``timing_start_day``,
    ``dose_per_fraction_gy``, ``n_fractions``, ``total_dose_gy``, ``bed10_gy``, ``eqd2_10_gy``,
    ``mean_lung_dose_gy``), ``draw`` (0 = point values), ``patient`` and ``km_month``. Adds the Cox hazard ratios
    ``hr_pfs`` / ``hr_os`` of each cell against the no-RT cell of the same timing, site and drug (NaN where the
    study has no ``"no RT"`` fractionation), per draw. Provenance JSON in ``attrs["provenance"]``.
    """
    from ..radiobiology import bed

    design = setup.design
    shape = design.shape
    cells = design.cells()
    first = results[setup.cell_keys[0]]
    n_draw, n_pat = first.sizes["draw"], first.sizes["patient"]
    dims = (*AXES, "draw")
    data: dict[Hashable, Any] = {}  # xarray names variables by any hashable
    for name, var in first.data_vars.items():
        extra = var.dims[1:]
        arr = np.empty((*shape, n_draw, *[first.sizes[d] for d in extra]), dtype=var.dtype)
        for cell, key in zip(cells, setup.cell_keys, strict=True):
            arr[cell.index] = results[key][name].values
        data[name] = ((*dims, *extra), arr, dict(var.attrs))
    hr = {e: np.full((*shape, n_draw), np.nan) for e in ("pfs", "os")}
    no_rt = [j for j, f in enumerate(design.axes["fractionation"]) if f.course is None]
    if no_rt:
        j0 = no_rt[0]
        for cell in cells:
            i, j, k, m = cell.index
            if j == j0:
                continue
            for e in ("pfs", "os"):
                for d in range(n_draw):
                    t_ref, e_ref = data[f"{e}_day"][1][i, j0, k, m, d], data[f"{e}_event"][1][i, j0, k, m, d]
                    t_arm, e_arm = data[f"{e}_day"][1][i, j, k, m, d], data[f"{e}_event"][1][i, j, k, m, d]
                    try:
                        hr[e][i, j, k, m, d] = hazard_ratio(
                            np.concatenate([t_ref, t_arm]),
                            np.concatenate([e_ref, e_arm]).astype(bool),
                            np.repeat([0, 1], n_pat),
                            reference=0,
                        ).hr
                    except (AbscopalError, ValueError):
                        pass  # no events in one arm: HR not estimable, left NaN
    for e, long in (("pfs", "progression-free"), ("os", "overall")):
        data[f"hr_{e}"] = (
            dims,
            hr[e],
            {
                "units": "1",
                "long_name": f"Cox hazard ratio of {long} survival vs the "
                "no-RT cell of the same timing, site and drug (same patients)",
            },
        )
    fr = design.axes["fractionation"]
    sites = design.axes["site"]
    from .design import default_mean_lung_dose_gy

    coords: dict[str, Any] = {
        "timing": ("timing", [t.label for t in design.axes["timing"]], {"units": "1", "long_name": "RT timing"}),
        "fractionation": ("fractionation", [f.label for f in fr], {"units": "1", "long_name": "fractionation"}),
        "site": ("site", [s.label for s in sites], {"units": "1", "long_name": "irradiated site"}),
        "drug": ("drug", [d.label for d in design.axes["drug"]], {"units": "1", "long_name": "drug regimen"}),
        "draw": ("draw", np.arange(n_draw), {"units": "1", "long_name": "parameter draw (0: point values)"}),
        "patient": ("patient", np.arange(n_pat), {"units": "1", "long_name": "virtual patient index"}),
        "km_month": ("km_month", first.km_month.values, {"units": "month", "long_name": "time from study start"}),
        "timing_start_day": (
            "timing",
            [np.nan if t.start_day is None else t.start_day for t in design.axes["timing"]],
            {"units": "day", "long_name": "first RT fraction after the first drug dose (NaN: at progression)"},
        ),
        "dose_per_fraction_gy": (
            "fractionation",
            [0.0 if f.course is None else f.course.dose_per_fraction_gy for f in fr],
            {"units": "Gy", "long_name": "dose per fraction"},
        ),
        "n_fractions": (
            "fractionation",
            [0 if f.course is None else f.course.n_fractions for f in fr],
            {"units": "1", "long_name": "number of fractions"},
        ),
        "total_dose_gy": (
            "fractionation",
            [f.total_dose_gy for f in fr],
            {"units": "Gy", "long_name": "prescribed total dose"},
        ),
        "bed10_gy": (
            "fractionation",
            [0.0 if f.course is None else float(bed(f.total_dose_gy, f.course.n_fractions, 10.0)) for f in fr],
            {"units": "Gy", "long_name": "BED, alpha/beta 10 Gy"},
        ),
        "mean_lung_dose_gy": (
            ("fractionation", "site"),
            [[default_mean_lung_dose_gy(s, f) for s in sites] for f in fr],
            {"units": "Gy", "long_name": "physical mean lung dose (pneumonitis NTCP input)"},
        ),
    }
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(
        {
            "title": design.title,
            "provenance": json.dumps(setup.provenance, sort_keys=True, default=str),
            "abscopal_version": __version__,
            "model_hash": setup.provenance["model_hash"],
            "fit": str(setup.provenance["fit"]),
            "seed": design.seed,
            "cell_keys": json.dumps(list(setup.cell_keys)),
        }
    )
    return ds


def summary_table(ds: xr.Dataset, *, level: float = 0.95) -> list[dict[str, Any]]:
    """One row per cell: axis labels, treatment numbers, and for each metric its point value (draw 0) and the
    central ``level`` interval over draws 1..n (empty without draws)."""
    q = ((1 - level) / 2, 1 - (1 - level) / 2)
    metrics = [*SUMMARY_METRICS, "hr_pfs", "hr_os"]
    rows = []
    stacked = ds[metrics].stack(cell=AXES)
    for c in range(stacked.sizes["cell"]):
        sel = stacked.isel(cell=c)
        row: dict[str, Any] = {a: str(sel[a].values) for a in AXES}
        row["total_dose_gy"] = float(ds.total_dose_gy.sel(fractionation=row["fractionation"]))
        row["n_fractions"] = int(ds.n_fractions.sel(fractionation=row["fractionation"]))
        row["bed10_gy"] = float(ds.bed10_gy.sel(fractionation=row["fractionation"]))
        row["mean_lung_dose_gy"] = float(ds.mean_lung_dose_gy.sel(fractionation=row["fractionation"], site=row["site"]))
        for m in metrics:
            v = sel[m].values
            row[m] = float(v[0])
            if v.size > 1 and np.any(np.isfinite(v[1:])):
                finite = v[1:][~np.isnan(v[1:])]
                lo, hi = np.quantile(finite, q) if finite.size else (np.nan, np.nan)
                row[f"{m}_lower"], row[f"{m}_upper"] = float(lo), float(hi)
            else:
                row[f"{m}_lower"], row[f"{m}_upper"] = None, None
        rows.append(row)
    return rows
