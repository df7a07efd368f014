"""Per-arm trial summaries: ORR with its exact CI, DCR, Kaplan-Meier medians and landmarks, hazard ratios.

Each arm's objective-response and disease-control flags and PFS / OS times become the variables of the
endpoints dataset with dimension ``arm`` (ORR with its Clopper-Pearson interval, DCR, KM medians with CIs,
6- and 12-month landmark rates, log-rank p and Cox hazard ratios against the first arm) and ``arm, km_time``
(Kaplan-Meier curves with 95% log(-log) bands and numbers at risk on the scan grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy.stats import binomtest

from ..errors import ParameterError
from .death import SurvivalTimes
from .scoring import ResponseScores
from .survival import DAYS_PER_MONTH, hazard_ratio, kaplan_meier, logrank_test

__all__ = ["SUMMARY_NAMES", "arm_summaries", "clopper_pearson"]

SUMMARY_NAMES = (
    "orr",
    "orr_lower",
    "orr_upper",
    "dcr",
    "median_pfs_day",
    "median_pfs_lower_day",
    "median_pfs_upper_day",
    "median_os_day",
    "median_os_lower_day",
    "median_os_upper_day",
    "pfs_6mo",
    "pfs_12mo",
    "os_6mo",
    "os_12mo",
    "hr_pfs",
    "hr_pfs_lower",
    "hr_pfs_upper",
    "hr_pfs_p",
    "logrank_pfs_p",
    "hr_os",
    "hr_os_lower",
    "hr_os_upper",
    "hr_os_p",
)
"""The per-arm summary variables (dimension ``arm``)."""

_KM_NAMES = (
    "km_pfs",
    "km_os",
    "at_risk_pfs",
    "at_risk_os",
    "km_pfs_lower",
    "km_pfs_upper",
    "km_os_lower",
    "km_os_upper",
)


_Variable = tuple[tuple[str, ...], np.ndarray, dict[str, str]]
"""One data variable as ``(dims, values, attrs)``."""


@lru_cache(maxsize=4096)
def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95% interval of ``k`` responders out of ``n`` (scipy's ``binomtest``; cached: studies
    ask for the same few ``(k, n)`` again and again)."""
    ci = binomtest(k, n).proportion_ci(method="exact")
    return float(ci.low), float(ci.high)


def _times(survival: SurvivalTimes, key: str) -> tuple[np.ndarray, np.ndarray]:
    return getattr(survival, f"{key}_day"), getattr(survival, f"{key}_event")


def arm_summaries(
    responses: Sequence[ResponseScores],
    survival: Sequence[SurvivalTimes],
    visits: np.ndarray,
    start: float,
    *,
    os_evaluable: bool = True,
) -> dict[str, _Variable]:
    """The per-arm summary variables as ``{name: (dims, values, attrs)}`` (module docstring).

    Hazard ratios and the log-rank p compare each arm with the first; they are NaN for the first arm
    and where not estimable (e.g. no events in one arm). Without ``os_evaluable`` the OS summaries are NaN.
    """
    n_arm = len(responses)
    s = {k: np.full(n_arm, np.nan) for k in SUMMARY_NAMES}
    km_grid = np.unique(np.concatenate([[0.0], visits - start]))
    km = {k: np.full((n_arm, km_grid.size), np.nan) for k in _KM_NAMES}
    keys = ("pfs", "os") if os_evaluable else ("pfs",)
    for ai in range(n_arm):
        flags = responses[ai].objective_response
        n = flags.size
        s["orr"][ai] = flags.mean()
        s["orr_lower"][ai], s["orr_upper"][ai] = clopper_pearson(int(flags.sum()), n)
        s["dcr"][ai] = responses[ai].disease_control.mean()
        for key in keys:
            fit = kaplan_meier(*_times(survival[ai], key))
            s[f"median_{key}_day"][ai] = fit.median_day()
            s[f"median_{key}_lower_day"][ai], s[f"median_{key}_upper_day"][ai] = fit.median_ci_day()
            s[f"{key}_6mo"][ai] = fit.survival_at(6 * DAYS_PER_MONTH)
            s[f"{key}_12mo"][ai] = fit.survival_at(12 * DAYS_PER_MONTH)
            km[f"km_{key}"][ai] = fit.survival_at(km_grid)
            at = np.searchsorted(fit.time_day, km_grid, side="right") - 1  # as KaplanMeier.landmark, all at once
            km[f"km_{key}_lower"][ai], km[f"km_{key}_upper"][ai] = fit.lower[at], fit.upper[at]  # log(-log) 95% band
            km[f"at_risk_{key}"][ai] = fit.numbers_at_risk(km_grid)
        if ai == 0:
            continue
        for key in keys:
            (t0, e0), (t1, e1) = _times(survival[0], key), _times(survival[ai], key)
            t = np.concatenate([t0, t1])
            e = np.concatenate([e0, e1]).astype(bool)
            g = np.r_[np.zeros(t0.size), np.ones(t1.size)]
            try:
                hr = hazard_ratio(t, e, g, reference=0.0)
                s[f"hr_{key}"][ai], s[f"hr_{key}_lower"][ai], s[f"hr_{key}_upper"][ai] = hr.hr, hr.lower, hr.upper
                s[f"hr_{key}_p"][ai] = hr.p_value
            except ParameterError:
                pass  # not estimable (e.g. no events in one arm): left as NaN
            if key == "pfs":
                try:
                    s["logrank_pfs_p"][ai] = logrank_test(t0, e0.astype(bool), t1, e1.astype(bool))[1]
                except ParameterError:
                    pass
    units = {k: ("day" if k.endswith("_day") else "1") for k in SUMMARY_NAMES}
    out: dict[str, _Variable] = {
        k: (("arm",), v, {"units": units[k], "long_name": k.replace("_", " ")}) for k, v in s.items()
    }
    out["km_pfs"] = (("arm", "km_time"), km["km_pfs"], {"units": "1", "long_name": "Kaplan-Meier PFS"})
    out["km_os"] = (("arm", "km_time"), km["km_os"], {"units": "1", "long_name": "Kaplan-Meier OS"})
    for key, long in (("pfs", "PFS"), ("os", "OS")):
        for side in ("lower", "upper"):
            out[f"km_{key}_{side}"] = (
                ("arm", "km_time"),
                km[f"km_{key}_{side}"],
                {"units": "1", "long_name": f"Kaplan-Meier {long}, 95% CI {side} bound"},
            )
    out["at_risk_pfs"] = (("arm", "km_time"), km["at_risk_pfs"], {"units": "1", "long_name": "numbers at risk (PFS)"})
    out["at_risk_os"] = (("arm", "km_time"), km["at_risk_os"], {"units": "1", "long_name": "numbers at risk (OS)"})
    out["km_time"] = (("km_time",), km_grid, {"units": "day", "long_name": "time from the simulation start"})
    return out
