"""``endpoints(dataset, assessment=...)``: score simulated patients the way trials score patients.

Pipeline, per arm and patient (all pure functions of the simulation dataset plus explicit draws):

1. lesion diameters at the scan visits (visits must lie on the simulation's time grid);
2. RECIST 1.1 (or iRECIST) on the lesions the trial counts (irradiated lesions excluded when
   ``exclude_irradiated``: PEMBRO-RT and MDACC scored non-irradiated lesions), with new lesions
   from the model's cumulative new-lesion hazard ``H(t)``: a new lesion appears when ``H``
   crosses the patient's Exp(1) draw (common random numbers);
3. death from a tumour-size-linked hazard (:class:`SurvivalModel`, tumour-growth-inhibition /
   overall-survival link, Claret 2009, Bruno 2020) plus background mortality, again against an
   Exp(1) draw; PFS = first RECIST progression scan or death; administrative censoring at the
   end of follow-up;
4. radiation pneumonitis risk from an LKB NTCP on the EQD2-corrected mean lung dose
   (Seppenwoolde 2003), times an interaction factor when RT and the drug overlap;
5. per-arm summaries: ORR (at a fixed visit or best), DCR, KM medians with CIs, landmark rates,
   log-rank and Cox hazard ratios against the first arm, pneumonitis rate, lymphocyte nadir.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from scipy.stats import binomtest

from ..errors import ParameterError, ScheduleError, unknown_name_message
from ..radiobiology import eqd2, lkb_ntcp
from .recist import RECIST_1_1, SITES, RecistRules, select_targets
from .recist import assess_population as _assess_population
from .scans import ExplicitScans, ScanSchedule, as_visit_days
from .survival import hazard_ratio, kaplan_meier, logrank_test

__all__ = ["DAYS_PER_MONTH", "Assessment", "PneumonitisModel", "SurvivalModel", "endpoints", "trial_scans"]

DAYS_PER_MONTH = 30.44  # mean calendar month (365.25 / 12 d), the usual convention for survival medians


def trial_scans(
    start_day: float,
    *,
    interval_week: float = 6.0,
    switch_week: float = 52.0,
    later_interval_week: float = 9.0,
    end_day: float = 730.0,
) -> ExplicitScans:
    """Baseline scan at ``start_day``, then scans every ``interval_week`` counted from day 0 (first
    drug dose) until ``switch_week``, then every ``later_interval_week`` until ``end_day``."""
    days = [float(start_day)]
    t = interval_week * 7.0
    while t <= min(switch_week * 7.0, end_day) + 1e-9:
        if t > start_day:
            days.append(t)
        t += interval_week * 7.0
    t = days[-1] + later_interval_week * 7.0
    while t <= end_day + 1e-9:
        days.append(t)
        t += later_interval_week * 7.0
    return ExplicitScans(days=tuple(days))


@dataclass(frozen=True, kw_only=True)
class SurvivalModel:
    """Death hazard linked to the simulated tumour burden (TGI-OS link).

    ``hazard(t) = base_hazard_per_day * (B(t)/B(0))**size_exponent * nl_hr**[new lesion] + background``

    The tumour-size dependence follows the tumour-growth-inhibition / OS models (Claret 2009,
    J Clin Oncol 27:4103; Bruno 2020, Clin Cancer Res 26:1787, NSCLC under atezolizumab). Values
    are assumptions to be calibrated: the base hazard gives a median OS of about 8 months at a
    constant burden (PEMBRO-RT control arm 7.6 months, Theelen 2019 JAMA Oncol 5:1276).
    """

    base_hazard_per_day: float = math.log(2) / (8.0 * DAYS_PER_MONTH)
    size_exponent: float = 1.0
    new_lesion_hazard_ratio: float = 1.5
    background_per_day: float = 0.05 / 365.25  # assumption: about 5%/year other-cause mortality

    def __post_init__(self) -> None:
        for name in ("base_hazard_per_day", "size_exponent", "new_lesion_hazard_ratio", "background_per_day"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ParameterError(f"SurvivalModel.{name} must be a finite number >= 0, got {v!r}")


@dataclass(frozen=True, kw_only=True)
class PneumonitisModel:
    """Radiation pneumonitis probability: LKB NTCP on the EQD2 mean lung dose x ICI interaction.

    Defaults: TD50 30.8 Gy, m 0.37 (Seppenwoolde 2003, grade >= 2, MLD with n about 1); lung
    alpha/beta 3 Gy (late-lung convention); the interaction multiplies the NTCP when the first
    fraction and the first drug dose are within ``concurrent_window_day`` days (Tian 2020 defined
    concurrent as within 30 days); ``concurrent_multiplier`` 1.8 is the ratio 7.1%/3.9% of
    grade >= 3 pneumonitis concurrent vs sequential in Li B 2021 [SEED, weak: to be calibrated].
    """

    td50_gy: float = 30.8
    m: float = 0.37
    alpha_beta_lung_gy: float = 3.0
    concurrent_window_day: float = 30.0
    concurrent_multiplier: float = 1.8
    sequential_multiplier: float = 1.0

    def ntcp(self, mean_lung_dose_gy: float, n_fractions: float) -> float:
        """LKB NTCP of the EQD2 mean lung dose, without the drug interaction (0 without lung dose)."""
        if not (mean_lung_dose_gy > 0 and n_fractions >= 1):
            return 0.0
        d = float(eqd2(mean_lung_dose_gy, int(n_fractions), self.alpha_beta_lung_gy))
        return float(lkb_ntcp(d, td50_gy=self.td50_gy, m=self.m))

    def probability(
        self, mean_lung_dose_gy: float, n_fractions: float, rt_first_day: float, drug_first_day: float
    ) -> float:
        """Pneumonitis probability of one arm's plan."""
        if not (mean_lung_dose_gy > 0 and n_fractions >= 1):
            return 0.0
        p = self.ntcp(mean_lung_dose_gy, n_fractions)
        if math.isfinite(drug_first_day):
            concurrent = abs(rt_first_day - drug_first_day) <= self.concurrent_window_day
            p *= self.concurrent_multiplier if concurrent else self.sequential_multiplier
        return min(p, 1.0)


@dataclass(frozen=True, kw_only=True)
class Assessment:
    """How a trial assessed its patients.

    Parameters
    ----------
    scans
        Scan visits (visit 0 = baseline); default :func:`trial_scans` from the simulation start.
    rules
        RECIST 1.1 (default) or iRECIST thresholds.
    orr_visit_day
        ORR at the first scan on or after this day (PEMBRO-RT: 84, week 12); ``None`` = best
        overall response.
    exclude_irradiated
        Score only non-irradiated lesions (out-of-field response; PEMBRO-RT, MDACC).
    follow_up_day
        Administrative censoring; default the last scan.
    lesion_sites
        Site of each model lesion (lesion 0 is the lung primary); used for RECIST per-organ rules.
    survival, pneumonitis
        The death-hazard and pneumonitis models.
    seed
        Seed of the Exp(1) event draws when the dataset carries none (default: the dataset's seed).
    """

    scans: ScanSchedule | ExplicitScans | None = None
    rules: RecistRules = RECIST_1_1
    orr_visit_day: float | None = None
    exclude_irradiated: bool = True
    follow_up_day: float | None = None
    lesion_sites: tuple[str, ...] = ("lung", "lymph_node", "liver", "adrenal", "bone", "brain", "lung", "liver")
    survival: SurvivalModel = field(default_factory=SurvivalModel)
    pneumonitis: PneumonitisModel = field(default_factory=PneumonitisModel)
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("orr_visit_day", "follow_up_day"):
            v = getattr(self, name)
            if v is not None and (
                isinstance(v, bool)
                or not isinstance(v, int | float | np.integer | np.floating)
                or not math.isfinite(v)
                or v < 0
            ):
                hint = "None for the best overall response" if name == "orr_visit_day" else "None for the last scan"
                raise ParameterError(f"{name} must be a finite day >= 0 or None, got {v!r}; give a day or {hint}")
        if not isinstance(self.exclude_irradiated, bool | np.bool_):
            raise ParameterError(f"exclude_irradiated must be True or False, got {self.exclude_irradiated!r}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or self.seed < 0
        ):
            raise ParameterError(f"seed must be a non-negative integer or None, got {self.seed!r}")
        if not isinstance(self.lesion_sites, tuple | list):
            raise ParameterError(
                f"lesion_sites must be a tuple of sites, got {self.lesion_sites!r}; e.g. ('lung', 'liver')"
            )
        object.__setattr__(self, "lesion_sites", tuple(self.lesion_sites))
        for s in self.lesion_sites:
            if not isinstance(s, str) or s not in SITES:
                raise ParameterError("lesion_sites: " + unknown_name_message("site", s, SITES))

    def describe(self) -> dict[str, object]:
        """Plain description for provenance."""
        return {
            "rules": self.rules.describe(),
            "orr_visit_day": self.orr_visit_day,
            "exclude_irradiated": self.exclude_irradiated,
            "follow_up_day": self.follow_up_day,
            "lesion_sites": list(self.lesion_sites),
            "survival": self.survival.__dict__,
            "pneumonitis": self.pneumonitis.__dict__,
        }


def _event_draws(seed: int, n: int, k: int) -> np.ndarray:
    """Exp(1) draws per patient from per-patient streams (patient k independent of n)."""
    return np.array(
        [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i, 7919))).exponential(size=k) for i in range(n)]
    )


def _first_crossing(times: np.ndarray, cumulative: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """First time each row of ``cumulative`` reaches its threshold (linear interpolation), inf if never."""
    out = np.full(cumulative.shape[0], np.inf)
    for i in range(cumulative.shape[0]):
        k = int(np.searchsorted(cumulative[i], threshold[i]))
        if k == 0:
            out[i] = times[0] if cumulative[i, 0] >= threshold[i] else np.inf
        elif k < times.size:
            c0, c1 = cumulative[i, k - 1], cumulative[i, k]
            out[i] = times[k - 1] + (threshold[i] - c0) / (c1 - c0) * (times[k] - times[k - 1]) if c1 > c0 else times[k]
    return out


def _visit_index(times: np.ndarray, visits: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(times, visits)
    ok = (idx < times.size) & (np.abs(times[np.minimum(idx, times.size - 1)] - visits) < 1e-6)
    if not np.all(ok):
        bad = visits[~ok][0]
        raise ScheduleError(
            f"scan day {bad:g} is not on the simulation's time grid; simulate with output times that "
            "include every scan (e.g. output_interval_day=1 or output_times_day=scans)"
        )
    return idx


def endpoints(ds: xr.Dataset, assessment: Assessment | None = None, *, patients: object = None) -> xr.Dataset:
    """Per-patient responses and per-arm trial endpoints of a simulation dataset.

    ``patients`` (an :class:`abscopal.patients.VirtualPatients` the population was built from)
    supplies per-patient lesion sites (absent lesions are not followed) and the stored Exp(1)
    event draws (common random numbers); without it, ``assessment.lesion_sites`` applies to
    every patient and the draws come from the dataset's seed.

    Returns an xarray Dataset with per-patient variables (dims ``arm, patient[, visit]``),
    per-arm summaries (dim ``arm``) and Kaplan-Meier curves (dims ``arm, km_time``), each with
    ``units`` and ``long_name``; provenance of the simulation and the assessment in ``attrs``.
    """
    a = assessment or Assessment()
    for var in ("lesion_diameter", "H", "total_burden", "rt_dose_gy"):
        if var not in ds:
            raise ParameterError(f"dataset lacks {var!r}; simulate the default NSCLC model with all variables")
    times = ds.time.values
    start = float(times[0])
    visits = as_visit_days(a.scans if a.scans is not None else trial_scans(start, end_day=float(times[-1])))
    vidx = _visit_index(times, visits)
    follow_up = float(visits[-1] if a.follow_up_day is None else a.follow_up_day)
    n_arm, n_pat, n_les = ds.sizes["arm"], ds.sizes["patient"], ds.sizes["lesion"]
    if len(a.lesion_sites) < n_les:
        raise ParameterError(f"lesion_sites names {len(a.lesion_sites)} sites for {n_les} lesions; give one per lesion")
    seed = int(ds.attrs.get("seed", 0) if a.seed is None else a.seed)
    if patients is None:
        site_rows = [list(a.lesion_sites[:n_les])] * n_pat
        draws = _event_draws(seed, n_pat, 2)  # column 0 new lesion, column 1 death
    else:
        sites_arr = np.asarray(patients.sites)
        if sites_arr.shape != (n_pat, n_les):
            raise ParameterError(
                f"patients describe {sites_arr.shape} (patients, lesions), the dataset "
                f"({n_pat}, {n_les}); pass the VirtualPatients the population was drawn from"
            )
        site_rows = [[s if s else "other" for s in row] for row in sites_arr.tolist()]  # "" = absent lesion
        draws = np.asarray(patients.event_draws)[:, :2]  # new lesion, death (EVENT_DRAW_COLUMNS)
    diam = ds.lesion_diameter.values[..., vidx]  # (arm, patient, lesion, visit)
    out: dict[str, tuple] = {}
    resp = np.empty((n_arm, n_pat, visits.size), dtype=object)
    per = {
        k: np.empty((n_arm, n_pat))
        for k in (
            "pfs_day",
            "pfs_event",
            "os_day",
            "os_event",
            "best_pct",
            "progression_day",
            "new_lesion_day",
            "death_day",
            "orr_flag",
            "dc_flag",
            "alc_nadir",
            "dor_day",
        )
    }
    bor = np.empty((n_arm, n_pat), dtype=object)
    pct = np.zeros((n_arm, n_pat, visits.size))
    sums = np.zeros((n_arm, n_pat, visits.size))
    pneu = np.zeros(n_arm)
    for ai in range(n_arm):
        irradiated = ds.rt_dose_gy.values[ai] > 0
        exclude = tuple(int(j) for j in np.flatnonzero(irradiated)) if a.exclude_irradiated else ()
        if len(exclude) == n_les:
            raise ParameterError(
                f"arm {str(ds.arm.values[ai])!r}: every lesion is irradiated and excluded; "
                "nothing is left to assess (set exclude_irradiated=False)"
            )
        sel = [select_targets(diam[ai, p, :, 0], site_rows[p], exclude=exclude, rules=a.rules) for p in range(n_pat)]
        # new lesions: H(t) crosses the patient's Exp(1) draw
        new_day = _first_crossing(times, ds.H.values[ai], draws[:, 0])
        # death: cumulative hazard of the tumour-linked model
        burden = ds.total_burden.values[ai]
        rel = burden / np.maximum(burden[:, :1], 1e-9)
        sm = a.survival
        haz = (
            sm.base_hazard_per_day
            * rel**sm.size_exponent
            * np.where(times[None, :] >= new_day[:, None], sm.new_lesion_hazard_ratio, 1.0)
        )
        haz = haz + sm.background_per_day
        cum = np.concatenate(
            [np.zeros((n_pat, 1)), np.cumsum(0.5 * (haz[:, 1:] + haz[:, :-1]) * np.diff(times), 1)], axis=1
        )
        death = _first_crossing(times, cum, draws[:, 1])
        r = _assess_population(diam[ai], visits, sel, new_lesion_day=new_day, rules=a.rules)
        prog = np.where(r["progression_day"] <= follow_up, r["progression_day"], np.inf)
        pfs_t = np.minimum(prog, death)
        per["pfs_event"][ai] = np.isfinite(pfs_t) & (pfs_t <= follow_up)
        last_scan = visits[visits <= follow_up][-1]
        per["pfs_day"][ai] = np.where(per["pfs_event"][ai] > 0, pfs_t, last_scan) - start
        per["os_event"][ai] = death <= follow_up
        per["os_day"][ai] = np.minimum(death, follow_up) - start
        per["progression_day"][ai], per["new_lesion_day"][ai], per["death_day"][ai] = prog, new_day, death
        resp[ai], pct[ai], sums[ai] = r["responses"], r["percent_change_from_baseline"], r["sums_mm"]
        bor[ai] = r["best_overall_response"]
        per["best_pct"][ai] = r["best_percent_change"]
        # duration of response: first CR/PR scan to progression or death (NaN for non-responders;
        # responders without an event are censored at the follow-up end: value to follow-up)
        resp_day = np.where(r["objective_response"], r["response_day"], np.nan)
        per["dor_day"][ai] = np.minimum(np.minimum(prog, death), follow_up) - resp_day
        if a.orr_visit_day is None:
            per["orr_flag"][ai] = r["objective_response"]
        else:
            k = int(np.searchsorted(visits, a.orr_visit_day - 1e-9))
            if k >= visits.size:
                raise ScheduleError(f"orr_visit_day {a.orr_visit_day} is after the last scan {visits[-1]}")
            per["orr_flag"][ai] = [str(x).lstrip("i") in ("CR", "PR") for x in r["responses"][:, k]]
        per["dc_flag"][ai] = [str(x).lstrip("i") in ("CR", "PR", "SD", "NN") for x in r["best_overall_response"]]
        per["alc_nadir"][ai] = ds.L.values[ai].min(axis=1) if "L" in ds else np.nan
        pneu[ai] = a.pneumonitis.probability(
            float(ds.mean_lung_dose_gy.values[ai]),
            float(ds.rt_n_fractions.values[ai]),
            float(ds.rt_first_day.values[ai]),
            float(ds.drug_first_day.values[ai]),
        )
    dims_p, dims_v = ("arm", "patient"), ("arm", "patient", "visit")
    out["response"] = (dims_v, resp.astype(str), {"units": "1", "long_name": "RECIST response at the visit"})
    out["percent_change"] = (dims_v, pct, {"units": "%", "long_name": "change of the sum of diameters from baseline"})
    out["sum_of_diameters"] = (dims_v, sums, {"units": "mm", "long_name": "sum of target-lesion diameters"})
    out["best_overall_response"] = (dims_p, bor.astype(str), {"units": "1", "long_name": "best overall response"})
    out["best_percent_change"] = (
        dims_p,
        per["best_pct"],
        {"units": "%", "long_name": "best change of the sum of diameters"},
    )
    out["objective_response"] = (
        dims_p,
        per["orr_flag"].astype(bool),
        {"units": "1", "long_name": "objective response (CR or PR)"},
    )
    out["disease_control"] = (
        dims_p,
        per["dc_flag"].astype(bool),
        {"units": "1", "long_name": "disease control (CR, PR or SD)"},
    )
    for key, long in (("pfs", "progression-free survival"), ("os", "overall survival")):
        out[f"{key}_day"] = (
            dims_p,
            per[f"{key}_day"],
            {"units": "day", "long_name": f"{long} time from the simulation start"},
        )
        out[f"{key}_event"] = (
            dims_p,
            per[f"{key}_event"].astype(bool),
            {"units": "1", "long_name": f"{long} event observed"},
        )
    for key, long in (
        ("progression_day", "day of RECIST progression"),
        ("new_lesion_day", "day a new lesion appears"),
        ("death_day", "day of death"),
    ):
        out[key] = (dims_p, per[key], {"units": "day", "long_name": long + " (inf: none)"})
    out["duration_of_response_day"] = (
        dims_p,
        per["dor_day"],
        {
            "units": "day",
            "long_name": "duration of response, to progression, death or end of follow-up (NaN: no response)",
        },
    )
    out["lymphocyte_nadir"] = (dims_p, per["alc_nadir"], {"units": "1e9/L", "long_name": "lymphocyte count nadir"})
    out["pneumonitis_probability"] = (("arm",), pneu, {"units": "1", "long_name": "radiation pneumonitis probability"})
    out.update(_arm_summaries(per, ds.arm.values, visits, start))
    coords = {
        "arm": ds.arm.values,
        "patient": ds.patient.values,
        "visit": ("visit", np.arange(visits.size), {"units": "1", "long_name": "scan visit index"}),
        "visit_day": ("visit", visits, {"units": "day", "long_name": "scan day"}),
    }
    result = xr.Dataset(out, coords=coords)
    result.coords["arm"].attrs.update({"units": "1", "long_name": "trial arm"})
    result.coords["patient"].attrs.update({"units": "1", "long_name": "virtual patient index"})
    result.attrs.update(
        {
            "provenance": ds.attrs.get("provenance", "{}"),
            "assessment": json.dumps(a.describe(), default=str),
            "event_seed": seed,
            "follow_up_day": follow_up,
            "start_day": start,
        }
    )
    return result


def _arm_summaries(per: dict[str, np.ndarray], arms: np.ndarray, visits: np.ndarray, start: float) -> dict[str, tuple]:
    n_arm = len(arms)
    names = (
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
    s = {k: np.full(n_arm, np.nan) for k in names}
    km_grid = np.unique(np.concatenate([[0.0], visits - start]))
    km = {
        k: np.full((n_arm, km_grid.size), np.nan)
        for k in (
            "km_pfs",
            "km_os",
            "at_risk_pfs",
            "at_risk_os",
            "km_pfs_lower",
            "km_pfs_upper",
            "km_os_lower",
            "km_os_upper",
        )
    }
    for ai in range(n_arm):
        flags = per["orr_flag"][ai].astype(bool)
        n = flags.size
        s["orr"][ai] = flags.mean()
        ci = binomtest(int(flags.sum()), n).proportion_ci(method="exact")  # Clopper-Pearson
        s["orr_lower"][ai], s["orr_upper"][ai] = ci.low, ci.high
        s["dcr"][ai] = per["dc_flag"][ai].mean()
        for key in ("pfs", "os"):
            fit = kaplan_meier(per[f"{key}_day"][ai], per[f"{key}_event"][ai].astype(bool))
            s[f"median_{key}_day"][ai] = fit.median_day()
            s[f"median_{key}_lower_day"][ai], s[f"median_{key}_upper_day"][ai] = fit.median_ci_day()
            s[f"{key}_6mo"][ai] = fit.survival_at(6 * DAYS_PER_MONTH)
            s[f"{key}_12mo"][ai] = fit.survival_at(12 * DAYS_PER_MONTH)
            km[f"km_{key}"][ai] = fit.survival_at(km_grid)
            bands = np.array([fit.landmark(float(t))[1:] for t in km_grid])  # log(-log) 95% band
            km[f"km_{key}_lower"][ai], km[f"km_{key}_upper"][ai] = bands[:, 0], bands[:, 1]
            km[f"at_risk_{key}"][ai] = fit.numbers_at_risk(km_grid)
        if ai == 0:
            continue
        for key in ("pfs", "os"):
            t = np.concatenate([per[f"{key}_day"][0], per[f"{key}_day"][ai]])
            e = np.concatenate([per[f"{key}_event"][0], per[f"{key}_event"][ai]]).astype(bool)
            g = np.r_[np.zeros(per[f"{key}_day"][0].size), np.ones(per[f"{key}_day"][ai].size)]
            try:
                hr = hazard_ratio(t, e, g, reference=0.0)
                s[f"hr_{key}"][ai], s[f"hr_{key}_lower"][ai], s[f"hr_{key}_upper"][ai] = hr.hr, hr.lower, hr.upper
                s[f"hr_{key}_p"][ai] = hr.p_value
            except ParameterError:
                pass  # not estimable (e.g. no events in one arm): left as NaN
            if key == "pfs":
                try:
                    s["logrank_pfs_p"][ai] = logrank_test(
                        per["pfs_day"][0],
                        per["pfs_event"][0].astype(bool),
                        per["pfs_day"][ai],
                        per["pfs_event"][ai].astype(bool),
                    )[1]
                except ParameterError:
                    pass
    units = {k: ("day" if k.endswith("_day") else "1") for k in names}
    out = {k: (("arm",), v, {"units": units[k], "long_name": k.replace("_", " ")}) for k, v in s.items()}
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
