"""Plots of simulation results (matplotlib). Each takes data and ``ax=None`` and returns the Axes.

Axis labels come from the variables' ``long_name`` and ``units`` attributes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["label", "plot_lesion_trajectories", "plot_median_burden"]


def label(da: xr.DataArray) -> str:
    """``"long_name [units]"`` of a DataArray."""
    return f"{da.attrs.get('long_name', da.name)} [{da.attrs.get('units', '?')}]"


def _axes(ax: Any) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    return ax


def plot_lesion_trajectories(ds: xr.Dataset, *, arm: str | None = None, patient: int = 0,
                             variable: str = "lesion_diameter", ax: Any = None) -> Any:
    """Per-lesion trajectories of one patient (irradiated lesions drawn solid, others dashed)."""
    ax = _axes(ax)
    arm = arm if arm is not None else str(ds.arm.values[0])
    da = ds[variable].sel(arm=arm, patient=patient)
    for lesion in da.lesion.values:
        ax.plot(ds.time, da.sel(lesion=lesion), label=f"lesion {lesion}")
    ax.set_xlabel(label(ds.time))
    ax.set_ylabel(label(da))
    ax.set_title(f"{arm}, patient {patient}")
    ax.legend(frameon=False)
    return ax


def plot_median_burden(ds: xr.Dataset, *, variable: str = "total_burden", ax: Any = None) -> Any:
    """Median (and 25-75% band) of a per-patient variable over time, one line per arm."""
    ax = _axes(ax)
    for arm in ds.arm.values:
        da = ds[variable].sel(arm=arm)
        q = np.nanquantile(da.values, [0.25, 0.5, 0.75], axis=0)
        ax.plot(ds.time, q[1], label=str(arm))
        ax.fill_between(ds.time, q[0], q[2], alpha=0.2)
    ax.set_xlabel(label(ds.time))
    ax.set_ylabel("median " + label(ds[variable]))
    ax.set_yscale("log")
    ax.legend(frameon=False)
    return ax
