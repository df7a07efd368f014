"""Plain-text arm-by-arm table of an endpoints dataset (used by the CLI)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .survival import DAYS_PER_MONTH

__all__ = ["format_table"]


def _months(day: float) -> str:
    return "NR" if not np.isfinite(day) else f"{day / DAYS_PER_MONTH:.1f}"


def format_table(ep: xr.Dataset) -> str:
    """Arm-by-arm table: ORR (95% CI), DCR, median PFS and OS (95% CI, months), HR vs the first
    arm, 6/12-month PFS, pneumonitis probability."""
    head = (
        f"{'arm':<24} {'n':>5} {'ORR % (95% CI)':>18} {'DCR %':>6} {'mPFS mo (95% CI)':>20} "
        f"{'HR PFS (95% CI)':>18} {'mOS mo (95% CI)':>20} {'HR OS':>6} {'PFS6 %':>7} {'pneum %':>8}"
    )
    rows = [head, "-" * len(head)]
    for i, arm in enumerate(ep.arm.values):
        v = {k: float(ep[k].values[i]) for k in ep.data_vars if ep[k].dims == ("arm",)}
        hr = (
            "ref"
            if i == 0
            else (
                f"{v['hr_pfs']:.2f} ({v['hr_pfs_lower']:.2f}-{v['hr_pfs_upper']:.2f})"
                if np.isfinite(v["hr_pfs"])
                else "n/e"
            )
        )
        hr_os = "ref" if i == 0 else (f"{v['hr_os']:.2f}" if np.isfinite(v["hr_os"]) else "n/e")
        rows.append(
            f"{arm!s:<24} {ep.sizes['patient']:>5} "
            f"{100 * v['orr']:>5.1f} ({100 * v['orr_lower']:.1f}-{100 * v['orr_upper']:.1f})".ljust(49)
            + f"{100 * v['dcr']:>6.1f} "
            f"{_months(v['median_pfs_day']):>6} ({_months(v['median_pfs_lower_day'])}-"
            f"{_months(v['median_pfs_upper_day'])})".rjust(21)
            + f" {hr:>18} "
            + f"{_months(v['median_os_day']):>6} ({_months(v['median_os_lower_day'])}-"
            f"{_months(v['median_os_upper_day'])})".rjust(20)
            + f" {hr_os:>6} {100 * v['pfs_6mo']:>7.1f} {100 * float(ep.pneumonitis_probability.values[i]):>8.1f}"
        )
    return "\n".join(rows)
