"""A published tumour-growth-rate -> overall-survival link (TGI-OS) on the trial-measured sum of diameters.

:class:`TumourGrowthSurvival` is a death model for :class:`~abscopal.endpoints.TrialAssessment` (``survival=``),
an alternative to the default :class:`~abscopal.endpoints.death.SurvivalModel`. It reads only what a trial
measures: the sum of the target-lesion diameters (SLD) at the scans, RECIST progression and the line of
therapy. Per patient:

1. **Tumour kinetics.** The biexponential (Stein) model ``SLD(t) = SLD0 (exp(-KS t) + exp(KG t) - 1)`` is fitted
   to the patient's simulated SLD at the scans (:func:`fit_stein`), ``t`` from the baseline scan, ``SLD0`` the
   baseline SLD (a regressor, not estimated, as in Ribba 2022). The fit is the individual maximum a posteriori
   (empirical Bayes) estimate of a nonlinear mixed-effects model: log-normal KG and KS around a published
   population (:class:`SteinPrior`), combined additive + proportional residual error. With many scans the data
   decide; with one or two the estimate shrinks to the population, as a NONMEM/Monolix individual estimate does.
   A patient without target lesions at baseline (SLD0 = 0) is not evaluable and gets the population KG and KS
   (assumption; Claret 2014 gave such patients a separate albumin-only model, and the virtual patients have no
   albumin).
2. **OS.** Log-normal accelerated failure time (Struemper 2025): ``log T = mu + sigma W``, W standard normal,
   ``T`` in days from the start of the trial, and

   ``mu = intercept + Emax KG/(KG + EC50) + b_SLD (SLD0 - 100) + b_TTG (TTG - 39.9) + b_logKG log(KG/KG_ref)
   + b_pre [pretreated]``

   with KG in 1/week and the time to tumour growth ``TTG = max(0, log(KS/KG)/(KG + KS))`` in weeks. The
   Weibull and log-logistic members of the same (``survreg``) family are available (``distribution``).
3. **Post-progression survival.** After the first RECIST progression scan the hazard is multiplied by
   ``post_progression_hazard_ratio`` (default 1, see below).

A patient dies when the cumulative hazard reaches the patient's Exp(1) draw (common random numbers), computed in
closed form: ``S(T) = exp(-E)``.

What is sourced and what is assumed
-----------------------------------
Sourced (numbers as transcribed, table by table, in the nlmixr2 model library ``nlmixr2/nlmixr2lib``, model
``Struemper_2025_tumorsize_OS_nsclc``, from Struemper H, Rathi C, Muliaditan M, et al. Development of a joint
tumor size-overall survival modeling and simulation framework supporting oncology development decision-making.
*CPT Pharmacometrics Syst Pharmacol* 2025;14(6):1006-1017, doi:10.1002/psp4.70002; 786 patients with advanced
NSCLC in seven trials of PD-1 inhibitors, chemotherapy and combinations): the OS distribution (log-normal AFT),
its intercept and scale, the KG Emax link, the SLD and TTG slopes and their centring values (Table 3), and the
Stein population of the pembrolizumab monotherapy arm with its variabilities and residual error (Table 2). The
Stein form: Stein WD et al., *Clin Cancer Res* 2011;17:907-917.

Not in the published model, and so assumptions here:

* **Laboratory covariates.** Struemper 2025 also has baseline albumin, total protein and the neutrophil-to-
  lymphocyte ratio on ``mu`` (centred at the pooled medians 39.4 g/L, 71 g/L and 4.1). The virtual patients have
  none, so every patient sits at those medians and the terms vanish; the OS scale ``sigma`` (the scatter given
  all covariates) is kept, so OS is slightly less dispersed than in the source population.
* **Line of therapy.** Not a covariate of the published model (it pooled first-line and pretreated trials); a
  later line acts through KG, TTG and SLD0, which the simulation produces. ``pretreated_log_time_ratio``
  (default 0) adds an explicit log time ratio for pretreated patients, to be fitted.
* **ECOG performance status.** Not in the published model, and the virtual patients have none.
* **Post-progression survival.** The published link has no progression term: KG and TTG, which describe the
  regrowth that RECIST calls progression, carry it, and the model predicted OS without one. A further hazard
  ratio after progression would count progression twice, so the default is 1 (no extra effect); a median
  post-progression survival for pretreated NSCLC on PD-1 was not found. The PPS this model implies is tested
  against the published PPS-OS correlation (r = 0.85, second-line nivolumab, Imai H et al. *Thorac Cancer*
  2021;12:1171; r = 0.76, first-line pembrolizumab, PD-L1 >= 50%, n = 133, https://acemap.info/paper/291622260).
* **New lesions** change OS only through RECIST progression (the SLD sums target lesions only).
* **KG from all scans** up to ``kg_data_cutoff_day`` (default: the end of follow-up), as the published models
  estimate KG from each patient's whole tumour-size profile; a simulated patient's tumour keeps growing after
  death, so scans after a patient's death day can inform KG (as a trait of the patient, the way the published
  model uses it). The Box-Cox transform of the KG random effect and the small KG-KS correlation of the source
  are left out (log-normal, independent), and the residual weights use the observed SLD.

The hazard depends on an irradiated lesion only through the SLD: when the trial does not score irradiated
lesions (``exclude_irradiated``, PEMBRO-RT), shrinking the irradiated lesion changes OS only through what it does
to the other lesions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy.special import log_ndtr, ndtri

from .._frozen import FrozenMap
from ..errors import ParameterError
from .death import DeathInputs

__all__ = ["DISTRIBUTIONS", "SteinFit", "SteinPrior", "TumourGrowthSurvival", "fit_stein", "stein_sld"]

DISTRIBUTIONS = ("lognormal", "weibull", "loglogistic")
"""Survival-time distributions of the AFT model ``log T = mu + sigma W`` (R ``survreg`` parametrisation)."""

_DAYS_PER_WEEK = 7.0
_LOG_RATE_BOUNDS = (math.log(1e-7), math.log(0.1))  # KG, KS per day: 1e-7 .. 0.1 (doubling in a week)
_GRID = np.linspace(math.log(1e-4), math.log(0.1), 9)  # start values of the fit (per day)


def stein_sld(t_day: np.ndarray, sld0_mm: np.ndarray, kg_per_day: np.ndarray, ks_per_day: np.ndarray) -> np.ndarray:
    """The Stein biexponential ``SLD0 (exp(-KS t) + exp(KG t) - 1)`` (broadcasting)."""
    t = np.asarray(t_day, dtype=float)
    return np.asarray(sld0_mm) * (np.exp(-np.asarray(ks_per_day) * t) + np.exp(np.asarray(kg_per_day) * t) - 1.0)


@dataclass(frozen=True, kw_only=True)
class SteinPrior:
    """Population distribution of the Stein rates and the residual error of the SLD (the fit's prior).

    Defaults: the pembrolizumab monotherapy arm of Struemper 2025 Table 2 (as transcribed in nlmixr2lib):
    typical KG 0.00651 /week, KS 0.01700 /week; inter-patient variances of log KG 0.8715 and log KS 0.9174 (SDs
    0.934 and 0.958); residual error additive variance 6.324 mm2 (SD 2.51 mm) and proportional variance 0.01276
    (SD 0.113). For comparison, the OAK fit of Ribba 2022 (*Front Pharmacol* 13:1058220; pretreated NSCLC,
    atezolizumab and docetaxel pooled): KG 0.0016 /day, KS 0.0014 /day, SDs 1.03 and 1.64.
    """

    kg_per_week: float = 0.00651
    ks_per_week: float = 0.01700
    omega_log_kg: float = math.sqrt(0.8715)
    omega_log_ks: float = math.sqrt(0.9174)
    additive_sd_mm: float = math.sqrt(6.324)
    proportional_sd: float = math.sqrt(0.01276)

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ParameterError(f"SteinPrior.{name} must be a finite number > 0, got {value!r}")

    @property
    def log_rates_per_day(self) -> tuple[float, float]:
        """Typical log KG and log KS (per day)."""
        return math.log(self.kg_per_week / _DAYS_PER_WEEK), math.log(self.ks_per_week / _DAYS_PER_WEEK)


@dataclass(frozen=True, kw_only=True, eq=False)
class SteinFit:
    """Per-patient Stein estimates (:func:`fit_stein`); arrays over patients."""

    kg_per_day: np.ndarray
    ks_per_day: np.ndarray
    sld0_mm: np.ndarray
    n_scans: np.ndarray  # post-baseline scans used
    evaluable: np.ndarray  # bool: target lesions at baseline

    @property
    def ttg_day(self) -> np.ndarray:
        """Time to tumour growth (the nadir of the Stein curve), ``max(0, log(KS/KG)/(KG + KS))`` days."""
        kg, ks = self.kg_per_day, self.ks_per_day
        return np.maximum(0.0, (np.log(ks) - np.log(kg)) / (kg + ks))


def fit_stein(
    t_day: np.ndarray,
    sld_mm: np.ndarray,
    sld0_mm: np.ndarray,
    prior: SteinPrior | None,
    *,
    max_iter: int = 200,
) -> SteinFit:
    """Fit the Stein model to each patient's SLD (module docstring, step 1), all patients at once.

    Parameters
    ----------
    t_day
        Scan days from the baseline scan ``(visit,)``; scans at ``t <= 0`` are not used (the baseline is ``SLD0``).
    sld_mm
        SLD at each scan ``(patient, visit)``; NaN: not used (e.g. after a cutoff).
    sld0_mm
        Baseline SLD ``(patient,)``; 0 or NaN: not evaluable (population KG and KS).
    prior
        Population distribution and residual error; ``None``: weighted least squares without a prior (residual
        error from :class:`SteinPrior` defaults), for checking that the fit recovers known curves.
    max_iter
        Levenberg-Marquardt iterations (the fit stops earlier once no step changes the estimates).

    Returns
    -------
    SteinFit
        KG and KS (per day), the baseline, the number of post-baseline scans used, and evaluability.
    """
    t = np.asarray(t_day, dtype=float)[None, :]
    y = np.atleast_2d(np.asarray(sld_mm, dtype=float))
    y0 = np.asarray(sld0_mm, dtype=float).reshape(-1)
    if y.shape != (y0.size, t.shape[1]):
        raise ParameterError(f"sld_mm must be (patients, visits) = {(y0.size, t.shape[1])}, got {y.shape}")
    evaluable = np.isfinite(y0) & (y0 > 0)
    mask = np.isfinite(y) & (t > 0) & evaluable[:, None]
    y0 = np.where(evaluable, y0, 1.0)
    err = prior or SteinPrior()
    w = 1.0 / np.sqrt(err.additive_sd_mm**2 + (err.proportional_sd * np.where(mask, y, 0.0)) ** 2)
    if prior is not None:
        mu = np.array(prior.log_rates_per_day)
        inv_omega = np.array([1.0 / prior.omega_log_kg, 1.0 / prior.omega_log_ks])
    else:
        mu, inv_omega = np.zeros(2), np.zeros(2)

    # start: the best point of a coarse grid (the prior mean among them), then Levenberg-Marquardt, patient by
    # patient in compiled code (abscopal.endpoints._stein_kernel); the loop stops at the first iteration after
    # which every patient has made a step that changes nothing (or has no step left), else after max_iter
    from ._stein_kernel import lm_batch

    n = y0.size
    iters = max(int(max_iter), 0)
    hist = np.empty((n, iters, 2))
    done = np.zeros((n, iters), dtype=np.bool_)
    theta = np.empty((n, 2))
    singular = lm_batch(
        np.ascontiguousarray(t[0]),
        np.ascontiguousarray(y),
        np.ascontiguousarray(y0),
        np.ascontiguousarray(w),
        np.ascontiguousarray(mask),
        mu.astype(float),
        inv_omega.astype(float),
        _GRID,  # the starts: (a, b) for a, b in the grid, then the prior mean
        prior is not None,
        _LOG_RATE_BOUNDS[0],
        _LOG_RATE_BOUNDS[1],
        iters,
        hist,
        done,
        theta,
    )
    stop = np.flatnonzero(done.all(axis=0)) if n else np.zeros(1, dtype=np.int64)
    last = int(stop[0]) if stop.size else iters - 1
    if n and last >= 0 and int(singular.min()) <= last:
        raise np.linalg.LinAlgError("Singular matrix")
    if last >= 0 and n:
        theta = hist[:, last].copy()
    typical = np.array(err.log_rates_per_day)
    theta[~evaluable] = typical
    return SteinFit(
        kg_per_day=np.exp(theta[:, 0]),
        ks_per_day=np.exp(theta[:, 1]),
        sld0_mm=np.where(evaluable, y0, 0.0),
        n_scans=mask.sum(axis=1),
        evaluable=evaluable,
    )


def _cumhaz(z: np.ndarray, distribution: str) -> np.ndarray:
    """Cumulative hazard of the standardised log time ``z = (log t - mu)/sigma``."""
    if distribution == "lognormal":
        return -log_ndtr(-z)
    if distribution == "weibull":
        return np.exp(z)
    return np.logaddexp(0.0, z)  # log-logistic: log(1 + e^z)


def _z_at(cumhaz: np.ndarray, distribution: str) -> np.ndarray:
    """Inverse of :func:`_cumhaz`: the standardised log time at a cumulative hazard (inf at inf)."""
    with np.errstate(divide="ignore", over="ignore"):
        if distribution == "lognormal":  # z = Phi^-1(1 - S), S = e^-H, from whichever tail is accurate
            surv = np.exp(-cumhaz)
            return np.where(surv < 0.5, -ndtri(surv), ndtri(-np.expm1(-cumhaz)))
        if distribution == "weibull":
            return np.log(cumhaz)
        return np.where(cumhaz > 30.0, cumhaz + np.log1p(-np.exp(-cumhaz)), np.log(np.expm1(cumhaz)))


@dataclass(frozen=True, kw_only=True)
class TumourGrowthSurvival:
    """OS from the trial-measured tumour growth rate (module docstring): the Struemper 2025 TGI-OS link.

    Defaults: Struemper 2025, Table 3 as transcribed in nlmixr2lib, unless marked "assumption"; the fields a
    calibration may fit (``survival__<field>``) and their bounds are :attr:`FITTABLE`.

    Parameters
    ----------
    distribution
        ``"lognormal"`` (published), ``"weibull"`` or ``"loglogistic"`` (same AFT form, other baselines).
    intercept_log_day
        6.94 (95% CI 6.75-7.13): ``mu`` of the reference patient, log days.
    scale
        ``sigma`` = exp(-0.331) = 0.718: SD of log OS given the covariates.
    kg_emax_log_day, kg_ec50_per_week
        -6.91 (fixed in the source: a 1000-fold shorter median at saturating KG) and 0.109 /week (95% CI
        0.0764-0.142): ``Emax KG/(KG + EC50)``.
    sld_slope_per_mm, sld_reference_mm
        -0.00366 per mm of baseline SLD, centred at 100 mm.
    ttg_slope_per_week, ttg_reference_week
        0.0124 per week of time to tumour growth, centred at 39.9 weeks.
    log_kg_coefficient, kg_reference_per_week
        ``b_logKG log(KG/KG_ref)``, the log-linear link of Claret 2018 / Chan 2021 (atezolizumab, NSCLC), whose
        coefficients were not retrieved: default 0 (the Emax term is the published link); reference 0.013 /week
        (Struemper 2025 Figure 3, typical subject).
    pretreated_log_time_ratio
        Assumption, default 0: log time ratio of pretreated patients (not in the published model).
    post_progression_hazard_ratio
        Assumption, default 1: hazard multiplier after the first RECIST progression scan.
    kg_data_cutoff_day
        Scans used for KG: on or before this day (``None``: the end of follow-up).
    irradiated_lesions_in_sld
        ``False`` (default): the link reads the SLD of the lesions outside every radiation field, even when the trial
        scores irradiated lesions for response. The published link was fitted on patients on PD-1 inhibitors and
        chemotherapy without RT (Struemper 2025), so its KG describes the systemic disease; an irradiated lesion's
        shrinkage and sterilisation is local control, not systemic kinetics, and would otherwise move KG and TTG
        (and so OS) through one lesion. ``True``: the trial-measured SLD as scored.
    stein_prior
        Population of the Stein rates (:class:`SteinPrior`).
    """

    distribution: str = "lognormal"
    intercept_log_day: float = 6.94
    scale: float = math.exp(-0.331)
    kg_emax_log_day: float = -6.91
    kg_ec50_per_week: float = 0.109
    sld_slope_per_mm: float = -0.00366
    sld_reference_mm: float = 100.0
    ttg_slope_per_week: float = 0.0124
    ttg_reference_week: float = 39.9
    log_kg_coefficient: float = 0.0
    kg_reference_per_week: float = 0.013
    pretreated_log_time_ratio: float = 0.0
    post_progression_hazard_ratio: float = 1.0
    kg_data_cutoff_day: float | None = None
    irradiated_lesions_in_sld: bool = False
    stein_prior: SteinPrior = field(default_factory=SteinPrior)

    FITTABLE: ClassVar[Mapping[str, tuple[float, float]]] = FrozenMap(
        {
            "intercept_log_day": (5.0, 9.0),
            "scale": (0.2, 2.0),
            "kg_ec50_per_week": (0.01, 1.0),
            "log_kg_coefficient": (-3.0, 3.0),
            "pretreated_log_time_ratio": (-2.0, 2.0),
            "post_progression_hazard_ratio": (0.5, 10.0),
        }
    )
    """Fields a calibration may fit (``survival__<field>``) and their bounds: the intercept within about e^2 of
    the published 6.94 (median 5 months to 22 years for the reference patient); the scale 0.2-2 (published 0.72);
    EC50 0.01-1 /week (published 0.109); a log-KG coefficient and a pretreated log time ratio within +-3 and +-2
    (factors of 20 and 7.4); a post-progression hazard ratio 0.5-10."""
    requires_tumour_burden: ClassVar[bool] = False
    """Reads the trial-measured SLD, not the model's burden: OS is evaluable for any model with lesions."""

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ParameterError(f"distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")
        positive = ("scale", "kg_ec50_per_week", "post_progression_hazard_ratio", "kg_reference_per_week")
        for name in (*positive, "intercept_log_day", "kg_emax_log_day", "sld_slope_per_mm", "sld_reference_mm"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ParameterError(f"TumourGrowthSurvival.{name} must be a finite number, got {v!r}")
            if name in positive and v <= 0:
                raise ParameterError(f"TumourGrowthSurvival.{name} must be > 0, got {v!r}")
        for name in ("ttg_slope_per_week", "ttg_reference_week", "log_kg_coefficient", "pretreated_log_time_ratio"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ParameterError(f"TumourGrowthSurvival.{name} must be a finite number, got {v!r}")
        cut = self.kg_data_cutoff_day
        if cut is not None and (isinstance(cut, bool) or not isinstance(cut, int | float) or not math.isfinite(cut)):
            raise ParameterError(f"kg_data_cutoff_day must be a finite day or None, got {cut!r}")
        if not isinstance(self.irradiated_lesions_in_sld, bool):
            raise ParameterError(
                f"irradiated_lesions_in_sld must be true or false, got {self.irradiated_lesions_in_sld!r}"
            )
        if not isinstance(self.stein_prior, SteinPrior):
            raise ParameterError(f"stein_prior must be a SteinPrior, got {type(self.stein_prior).__name__}")

    # ---- the link ---------------------------------------------------------------------------------------------
    def log_time_location(
        self,
        kg_per_day: np.ndarray,
        ks_per_day: np.ndarray,
        sld0_mm: np.ndarray,
        pretreated: np.ndarray | bool = False,
    ) -> np.ndarray:
        """``mu`` (log days) of each patient from its Stein estimates, baseline SLD and line of therapy."""
        kg_w = np.asarray(kg_per_day, dtype=float) * _DAYS_PER_WEEK
        ks_w = np.asarray(ks_per_day, dtype=float) * _DAYS_PER_WEEK
        ttg_w = np.maximum(0.0, (np.log(ks_w) - np.log(kg_w)) / (kg_w + ks_w))
        return (
            self.intercept_log_day
            + self.kg_emax_log_day * kg_w / (kg_w + self.kg_ec50_per_week)
            + self.log_kg_coefficient * np.log(kg_w / self.kg_reference_per_week)
            + self.sld_slope_per_mm * (np.asarray(sld0_mm, dtype=float) - self.sld_reference_mm)
            + self.ttg_slope_per_week * (ttg_w - self.ttg_reference_week)
            + self.pretreated_log_time_ratio * np.asarray(pretreated, dtype=float)
        )

    def cumulative_hazard(self, t_day: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Cumulative hazard at ``t`` days of patients with location ``mu`` (no progression term)."""
        with np.errstate(divide="ignore"):
            z = (np.log(np.asarray(t_day, dtype=float)) - np.asarray(mu)) / self.scale
        return _cumhaz(z, self.distribution)

    def survival(self, t_day: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Survival at ``t`` days with location ``mu`` (no progression term)."""
        return np.exp(-self.cumulative_hazard(t_day, mu))

    def median_day(self, mu: np.ndarray | float) -> np.ndarray:
        """Median OS (days) with location ``mu`` and no progression: ``exp(mu)`` (log-normal, log-logistic),
        ``exp(mu) (log 2)^sigma`` (Weibull)."""
        mu = np.asarray(mu, dtype=float)
        return np.exp(mu + self.scale * _z_at(np.full(mu.shape, math.log(2.0)), self.distribution))

    def time_at(self, cumulative_hazard: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Days at which the cumulative hazard (no progression term) reaches ``cumulative_hazard``."""
        return np.exp(
            np.asarray(mu) + self.scale * _z_at(np.asarray(cumulative_hazard, dtype=float), self.distribution)
        )

    # ---- the death-model protocol -----------------------------------------------------------------------------
    def stein_fit(self, inputs: DeathInputs) -> SteinFit:
        """The Stein estimates of the patients from their scans up to the KG cutoff."""
        visits = np.asarray(inputs.visit_days, dtype=float)
        cut = inputs.follow_up_day if self.kg_data_cutoff_day is None else self.kg_data_cutoff_day
        sums = np.asarray(inputs.target_sum_mm, dtype=float)
        used = np.where((visits <= cut + 1e-9)[None, :], sums, np.nan)
        return fit_stein(visits - visits[0], used, sums[:, 0], self.stein_prior)

    def location(self, inputs: DeathInputs) -> np.ndarray:
        """``mu`` (log days) of each patient (:meth:`stein_fit`, then :meth:`log_time_location`)."""
        fit = self.stein_fit(inputs)
        return self.log_time_location(fit.kg_per_day, fit.ks_per_day, fit.sld0_mm, inputs.pretreated)

    def death_day(self, inputs: DeathInputs, draw: np.ndarray) -> np.ndarray:
        """Day of death of each patient (inf: none within the simulation), in closed form.

        Cumulative hazard ``H0`` of the AFT model from the start; after the first progression scan ``tp`` the
        increments are multiplied by the post-progression hazard ratio. Death when ``H`` reaches the draw ``E``.
        """
        start, end = float(inputs.times[0]), float(inputs.times[-1])
        mu = self.location(inputs)
        e = np.asarray(draw, dtype=float)
        tp = np.asarray(inputs.progression_day, dtype=float) - start
        h_prog = np.where(np.isfinite(tp) & (tp > 0), self.cumulative_hazard(np.maximum(tp, 1e-300), mu), np.inf)
        h_prog = np.where(np.isfinite(tp) & (tp <= 0), 0.0, h_prog)
        finite = np.isfinite(h_prog)
        after = np.where(finite, h_prog, 0.0) + (e - np.where(finite, h_prog, 0.0)) / self.post_progression_hazard_ratio
        base = np.where(e <= h_prog, e, after)
        day = start + self.time_at(base, mu)
        return np.where(day <= end, day, np.inf)

    def describe(self) -> dict[str, object]:
        """Plain description for provenance (the model, every field, the Stein prior)."""
        return {"model": "TumourGrowthSurvival"} | {
            k: (dict(v.__dict__) if isinstance(v, SteinPrior) else v) for k, v in self.__dict__.items()
        }
