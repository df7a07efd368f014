"""Calibration objective: weighted, smooth residuals of simulated trial arms against reported outcomes.

A :class:`CalibrationProblem` draws every arm's virtual patients once (common random numbers: the seed of an arm
is a sha256 of ``seed``, trial id and arm name, never Python's ``hash``), places the RT targets and builds the
plans and assessments. :meth:`~CalibrationProblem.residuals` then maps lmfit ``Parameters`` (typical values;
everything else stays at ``base_parameters`` / the model defaults) to a residual vector that is a deterministic,
piecewise-smooth function of the parameters (architecture.md, "The calibration objective is deterministic").

What varies: lmfit parameter names are typical values of model parameters, ``omega__<param>`` (inter-patient SD
of the log or logit of a parameter with variability) or ``effect__pretreated__<param>`` /
``effect__squamous__<param>`` (covariate log-effects) or ``survival__<field>`` (the tumour-size-linked death
model, e.g. ``survival__base_hazard_per_day``). Omegas and effects rescale the same standard-normal draws
of the same patients, so they stay common random numbers (plausibility rejection used the draw's own omegas).
Per-patient values that variability pushes outside a parameter's bounds are truncated to the bounds
(``simulate(..., out_of_bounds="clip")``), so wide trial omegas do not abort a fit.

Smooth predictions (what the residuals compare; :meth:`~CalibrationProblem.predict`):

* ``orr``: mean over patients of ``expit((-30 - pct) / w)`` with ``w`` = :data:`ORR_WIDTH_PCT` (2 percentage
  points), ``pct`` the percent change of the target sum at the ORR visit (or the best change when the ORR is a
  best overall response), times ``expit((visit - new_lesion_day) / h)`` (a new lesion before the visit is PD, so
  a non-responder; ``h`` = :data:`EVENT_WIDTH_DAY`). Confirmation and non-target progression are ignored.
* ``median_os_month``: :func:`~abscopal.endpoints.survival.smooth_survival_at` of the simulated OS at the
  *reported* median (bandwidth 7 days); target 0.5. Death times are continuous in the parameters.
* ``median_pfs_month``: simulated PFS times sit on scan days, so the KM surrogate of the endpoint times is still
  step-valued in the parameters. We use a soft RECIST surrogate instead: at scan ``v`` progression has
  probability ``1 - (1 - q_v)(1 - n_v)`` with ``q_v = expit((sum_v - thr_v) / 1 mm)``, ``thr_v = max((1 + 0.2)
  nadir, nadir + 5 mm)`` (RECIST 1.1 rules of the assessment; nadir = smallest earlier sum, baseline included),
  ``n_v = expit((s_v - new_lesion_day) / h)``; the first-progression masses are spread over time with a logistic
  of bandwidth half the scan interval and multiplied by a soft survival ``expit((death - t) / 7 d)``. It tends to
  the KM estimate without censoring before ``t`` (follow-up ends after the medians of interest) as the widths go
  to 0, but ignores non-target progression and iRECIST confirmation. Evaluated at the reported median; target 0.5.
* ``hr_pfs`` / ``hr_os``: a Cox HR depends on the ranks of the times only, so it is step-valued in the
  parameters. With ``smooth_hr`` (default) the HR is ``log S_arm(t) / log S_ref(t)`` of the smooth survivals at
  ``t`` = the reference arm's reported median (exact under proportional hazards); without that median, or with
  ``smooth_hr=False``, the Cox HR of :func:`~abscopal.endpoints.survival.hazard_ratio`.

Residuals (:meth:`~CalibrationProblem.residuals`), each times ``sqrt(weight)`` of the confidence tag:
proportions ``(pred - obs) / SE_binomial``; medians ``(S_pred(median_obs) - 0.5) / SE_S`` with
``SE_S = 0.5 ln 2 SE(log median)`` (delta method: for exponential survival ``S(t) = 2^(-t/m)``, so
``dS/d log m = S ln 2 t / m = 0.5 ln 2`` at ``t = m``); hazard ratios ``(log hr_pred - log hr_obs) / SE(log HR)``.
Survival times are counted from each arm's own start (the first RT fraction if it precedes the drug, else day 0).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.special import expit

from ..endpoints.summary import DAYS_PER_MONTH, endpoints
from ..endpoints.survival import hazard_ratio, smooth_survival_at
from ..errors import ParameterError, unknown_name_message
from ..fitted.values import (
    EFFECT_MAX,
    EFFECT_PREFIX,
    OMEGA_MAX,
    OMEGA_PREFIX,
    SURVIVAL_BOUNDS,
    SURVIVAL_PREFIX,
    SplitValues,
    population_for,
    split_values,
)
from ..patients import VirtualPatients, draw_patients
from ..simulate import simulate
from ..targeting import place_rt_targets
from ..treatment.plan import TreatmentPlan
from ..trials import ArmTarget, TrialTargets

__all__ = [
    "DEFAULT_FREE",
    "EVENT_WIDTH_DAY",
    "ORR_WIDTH_PCT",
    "OS_BANDWIDTH_DAY",
    "PFS_SUM_WIDTH_MM",
    "CalibrationProblem",
    "arm_seed",
    "default_parameters",
]

ORR_WIDTH_PCT = 2.0
"""Logistic width (percentage points) of the soft response indicator at -30%."""
EVENT_WIDTH_DAY = 7.0
"""Logistic width (days) of the soft 'new lesion / death before day t' indicators."""
OS_BANDWIDTH_DAY = 7.0
"""Bandwidth of the smooth OS survival (days)."""
PFS_SUM_WIDTH_MM = 1.0
"""Logistic width (mm) of the soft PD indicator of the target sum."""
DEFAULT_FREE = (
    "max_kill_per_day",
    "new_lesion_rate_per_day",
    "tumour_doubling_time_day",
    "survival__base_hazard_per_day",
)
"""What :func:`default_parameters` and ``abscopal fit`` let vary: the values the default fit set identifies.

Fitting the whole fit set with ``effector_baseline``, ``icd_yield_per_mm3`` or ``omega__effector_baseline`` free as
well left each with a relative standard error above 150% (flat directions of chi-square: these targets cannot
tell them apart from the others), while the four here are identified to 13-26% (benchmarks/README.md)."""
_USABLE = ("orr", "median_pfs_month", "median_os_month", "hr_pfs", "hr_os")
_SE_S_FACTOR = 0.5 * math.log(2.0)


def _default_model() -> Any:
    from ..model.library.nsclc import nsclc_model

    return nsclc_model(3)


def _constant_clearance_only(spec: Any) -> bool:
    """True if ``spec`` fixes the time-varying clearance at 0 (exact analytic PK)."""
    if "pk_cl_time_emax" not in spec.parameter_names:
        return False
    p = spec.parameter("pk_cl_time_emax")
    return p.lower == p.upper == 0.0


def arm_seed(seed: int, trial: str, arm: str) -> int:
    """Stable 32-bit seed of an arm: sha256 of ``"seed/trial/arm"`` (independent of PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.sha256(f"{int(seed)}/{trial}/{arm}".encode()).digest()[:4], "big")


@dataclass(frozen=True)
class _ArmSetup:
    trial: str
    arm: ArmTarget
    patients: VirtualPatients
    plan: TreatmentPlan
    assessment: Any
    start_day: float
    t_end_day: float
    bandwidth_pfs_day: float


@dataclass(frozen=True, kw_only=True)
class CalibrationProblem:
    """Trials to fit, the model and the common random numbers (drawn once, at construction).

    Parameters
    ----------
    targets
        The trials (:class:`~abscopal.trials.TrialTargets`); arms without a population mix are skipped.
    model
        A ModelSpec or CompiledModel (default ``nsclc_model(3)``); compiled once, on first use.
    n_patients_per_arm, seed
        Virtual patients per arm and the master seed of their draws.
    base_parameters
        Typical values that override the model defaults; fitted values override these.
    outcomes
        Outcome names to fit (default: every one of ``orr``, ``median_pfs_month``, ``median_os_month``, ``hr_pfs``,
        ``hr_os`` the targets report).
    smooth_hr
        Smooth HR surrogate (module docstring) instead of the rank-based Cox HR in the residuals.
    """

    targets: tuple[TrialTargets, ...]
    model: Any = field(default_factory=_default_model)
    n_patients_per_arm: int = 200
    seed: int = 0
    base_parameters: Mapping[str, float] = field(default_factory=dict)
    outcomes: tuple[str, ...] | None = None
    smooth_hr: bool = True

    def __post_init__(self) -> None:
        targets = (self.targets,) if isinstance(self.targets, TrialTargets) else tuple(self.targets)
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "base_parameters", dict(self.base_parameters))
        outs = _USABLE if self.outcomes is None else tuple(self.outcomes)
        for o in outs:
            if o not in _USABLE:
                raise ParameterError("outcomes: " + unknown_name_message("outcome", o, _USABLE))
        object.__setattr__(self, "outcomes", outs)
        spec = getattr(self.model, "spec", self.model)
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_cache", {})
        setups: dict[tuple[str, str], _ArmSetup] = {}
        for trial in targets:
            for arm in trial.arms:
                if arm.population.mix is None:
                    continue
                setups[(trial.id, arm.name)] = self._prepare_arm(trial, arm, spec)
        object.__setattr__(self, "_setups", setups)
        object.__setattr__(
            self,
            "_variability_names",
            tuple(dict.fromkeys(k for st in setups.values() for k in st.patients.variability)),
        )
        object.__setattr__(self, "_keys", self._residual_keys())
        if not self._keys:
            raise ParameterError(f"no usable outcome among {list(outs)} in the targets; nothing to fit")

    # ---- preparation (common random numbers) ---------------------------------------------------------------------
    def _prepare_arm(self, trial: TrialTargets, arm: ArmTarget, spec: Any) -> _ArmSetup:
        L = spec.n_lesions
        mix = arm.population.patient_mix()
        mix = mix.capped(L) if mix.max_lesions > L else mix
        seed = arm_seed(self.seed, trial.id, arm.name)
        patients = draw_patients(mix, self.n_patients_per_arm, n_lesions=L, seed=seed)
        courses = []
        for k, rt in enumerate(arm.radiation):  # the first course's rule reorders the lesions (place_rt_targets)
            if k == 0:
                patients, lesions = place_rt_targets(patients, rt.target)
            elif isinstance(rt.target, tuple):
                lesions = rt.target
            else:
                raise ParameterError(
                    f"{trial.id}, arm {arm.name!r}: only the first RT course may use a target rule "
                    f"({rt.target!r}); give later courses lesion indices"
                )
            courses.append(rt.build(target_lesions=lesions))
        drug = arm.drug.build() if arm.drug else None
        if drug is not None and drug.pk.cl_time_emax != 0.0 and _constant_clearance_only(spec):
            drug = replace(drug, constant_clearance=True)  # analytic PK; see DrugRegimen.constant_clearance
        plan = TreatmentPlan(radiation=tuple(courses), drug=drug, name=arm.name)
        events = [f.time_day for f in plan.fractions()] + [d.time_day for d in plan.drug_doses(730.0)]
        start = min([0.0, *events])
        fu = arm.assessment.follow_up_month
        t_end = 730.0 if fu is None else max(730.0, 7.0 * math.ceil(fu * DAYS_PER_MONTH / 7.0))
        assessment = arm.assessment.to_assessment(start, t_end)
        interval = 7.0 * (arm.assessment.scan_interval_week or 6.0)
        return _ArmSetup(
            trial=trial.id,
            arm=arm,
            patients=patients,
            plan=plan,
            assessment=assessment,
            start_day=start,
            t_end_day=t_end,
            bandwidth_pfs_day=0.5 * interval,
        )

    def _residual_keys(self) -> list[tuple[Any, ...]]:
        keys: list[tuple[Any, ...]] = []
        for trial in self.targets:
            for arm in trial.arms:
                if (trial.id, arm.name) not in self._setups:
                    continue
                keys += [(trial.id, arm.name, o.name, o) for o in arm.outcomes if o.name in self.outcomes]
            for c in trial.comparisons:
                name = f"hr_{c.endpoint}"
                if name in self.outcomes and {(trial.id, c.arm), (trial.id, c.reference)} <= set(self._setups):
                    keys.append((trial.id, f"{c.arm} vs {c.reference}", name, c))
        return keys

    @property
    def keys(self) -> list[tuple[str, str, str]]:
        """``(trial, arm, outcome)`` of each residual, in order (comparisons: arm ``"<arm> vs <reference>"``)."""
        return [k[:3] for k in self._keys]

    @property
    def patients(self) -> dict[tuple[str, str], VirtualPatients]:
        """The fixed virtual patients of each ``(trial, arm)`` (RT targets placed)."""
        return {k: s.patients for k, s in self._setups.items()}

    def _compiled(self) -> Any:
        if "model" not in self._cache:
            from ..model.compile import CompiledModel, compile_model

            m = self.model
            self._cache["model"] = m if isinstance(m, CompiledModel) else compile_model(m)
        return self._cache["model"]

    # ---- simulation ---------------------------------------------------------------------------------------------
    def _split(self, values: Mapping[str, float]) -> SplitValues:
        return split_values(
            self._spec, dict(self.base_parameters) | {k: float(v) for k, v in values.items()}, self._variability_names
        )

    def _simulate_arm(self, s: _ArmSetup, split: SplitValues) -> tuple[Any, Any]:
        ds = simulate(
            self._compiled(),
            {s.arm.name: s.plan},
            population=population_for(s.patients, split.omegas, split.effects),
            parameters=split.typical,
            t_end_day=s.t_end_day,
            output_interval_day=7.0,
            start_day=s.start_day,
            out_of_bounds="clip",
        )
        return ds, endpoints(ds, split.assessment(s.assessment), patients=s.patients)

    def _run(self, values: Mapping[str, float]) -> dict[tuple[str, str], Any]:
        split = self._split(values)
        return {k: self._simulate_arm(s, split)[1] for k, s in self._setups.items()}

    # ---- smooth per-arm quantities ------------------------------------------------------------------------------
    def _soft_orr(self, s: _ArmSetup, ep: Any) -> float:
        visits = ep.visit_day.values
        new_day = ep.new_lesion_day.values[0]
        visit = s.assessment.orr_visit_day
        if visit is None:
            pct, day = ep.best_percent_change.values[0], visits[min(1, visits.size - 1)]
        else:
            k = int(np.searchsorted(visits, visit - 1e-9))
            pct, day = ep.percent_change.values[0, :, k], visits[k]
        pct = np.nan_to_num(pct, nan=0.0)
        soft = expit((-100.0 * s.assessment.rules.pr_fraction - pct) / ORR_WIDTH_PCT)
        return float(np.mean(soft * expit((new_day - day) / EVENT_WIDTH_DAY)))

    def _soft_pfs(self, s: _ArmSetup, ep: Any, t_day: float) -> float:
        """Soft RECIST PFS survival at ``t_day`` after the arm start (module docstring)."""
        rules = s.assessment.rules
        visits = ep.visit_day.values
        follow = float(ep.attrs["follow_up_day"])
        sums = np.nan_to_num(ep.sum_of_diameters.values[0], nan=0.0)  # (patient, visit)
        new_day, death = ep.new_lesion_day.values[0], ep.death_day.values[0]
        nadir = np.minimum.accumulate(sums, axis=1)[:, :-1]  # smallest sum before each later visit
        thr = np.maximum((1.0 + rules.pd_fraction) * nadir, nadir + rules.pd_absolute_mm)
        q = np.where(nadir > 0, expit((sums[:, 1:] - thr) / PFS_SUM_WIDTH_MM), 0.0)
        n = expit((visits[None, 1:] - new_day[:, None]) / EVENT_WIDTH_DAY)
        free = np.cumprod((1.0 - q) * (1.0 - n), axis=1) * (visits[None, 1:] <= follow)
        g = np.concatenate([np.ones((free.shape[0], 1)), free], axis=1)
        mass = g[:, :-1] - g[:, 1:]  # probability of first detected progression at each post-baseline scan
        t_abs = t_day + s.start_day
        prog_free = 1.0 - mass @ expit((t_abs - visits[1:]) / s.bandwidth_pfs_day)
        alive = expit((death - t_abs) / OS_BANDWIDTH_DAY)
        return float(np.mean(prog_free * alive))

    def _smooth_survival(self, s: _ArmSetup, ep: Any, endpoint: str, t_day: float) -> float:
        if endpoint == "pfs":
            return self._soft_pfs(s, ep, t_day)
        return float(
            smooth_survival_at(ep.os_day.values[0], ep.os_event.values[0], t_day, bandwidth_day=OS_BANDWIDTH_DAY)
        )

    def _reference_median_day(self, trial: str, arm: str, endpoint: str) -> float | None:
        t = next(t for t in self.targets if t.id == trial)
        for o in t.arm(arm).outcomes:
            if o.name == f"median_{endpoint}_month":
                return o.value * DAYS_PER_MONTH
        return None

    def _smooth_hr(self, trial: str, c: Any, eps: Mapping[tuple[str, str], Any]) -> float:
        t_ref = self._reference_median_day(trial, c.reference, c.endpoint) if self.smooth_hr else None
        if t_ref is None:
            return self._cox_hr(trial, c, eps)
        s_ref, s_arm = (
            self._smooth_survival(self._setups[(trial, a)], eps[(trial, a)], c.endpoint, t_ref)
            for a in (c.reference, c.arm)
        )
        s_ref, s_arm = (min(max(v, 1e-9), 1.0 - 1e-9) for v in (s_ref, s_arm))
        return math.log(s_arm) / math.log(s_ref)

    def _cox_hr(self, trial: str, c: Any, eps: Mapping[tuple[str, str], Any]) -> float:
        times, events, group = [], [], []
        for g, a in enumerate((c.reference, c.arm)):
            ep = eps[(trial, a)]
            times.append(ep[f"{c.endpoint}_day"].values[0])
            events.append(ep[f"{c.endpoint}_event"].values[0])
            group.append(np.full(times[-1].size, g))
        return float(hazard_ratio(np.concatenate(times), np.concatenate(events), np.concatenate(group), reference=0).hr)

    # ---- public API ---------------------------------------------------------------------------------------------
    def predict(self, values: Mapping[str, float] | None = None) -> dict[tuple[str, str, str], float]:
        """Smooth predictions (module docstring) at typical values ``base_parameters | values``.

        ``orr``: soft proportion; ``median_*``: smooth simulated survival at the reported median (target 0.5);
        ``hr_*``: hazard ratio (natural scale).
        """
        return self._smooth_from(self._run(values or {}))

    def _smooth_from(self, eps: Mapping[tuple[str, str], Any]) -> dict[tuple[str, str, str], float]:
        out: dict[tuple[str, str, str], float] = {}
        for trial, arm, name, target in self._keys:
            if name == "orr":
                out[(trial, arm, name)] = self._soft_orr(self._setups[(trial, arm)], eps[(trial, arm)])
            elif name.startswith("median_"):
                endpoint = name.split("_")[1]
                out[(trial, arm, name)] = self._smooth_survival(
                    self._setups[(trial, arm)], eps[(trial, arm)], endpoint, target.value * DAYS_PER_MONTH
                )
            else:
                out[(trial, arm, name)] = self._smooth_hr(trial, target, eps)
        return out

    def predict_report(self, values: Mapping[str, float] | None = None) -> dict[tuple[str, str, str], float]:
        """Plain (step-valued) predictions for reporting: ORR of :func:`endpoints`, KM medians in months (inf if
        not reached), Cox hazard ratios."""
        return self._report_from(self._run(values or {}))

    def _report_from(self, eps: Mapping[tuple[str, str], Any]) -> dict[tuple[str, str, str], float]:
        out: dict[tuple[str, str, str], float] = {}
        for trial, arm, name, target in self._keys:
            if name == "orr":
                out[(trial, arm, name)] = float(eps[(trial, arm)].orr.values[0])
            elif name.startswith("median_"):
                day = float(eps[(trial, arm)][f"median_{name.split('_')[1]}_day"].values[0])
                out[(trial, arm, name)] = day / DAYS_PER_MONTH if np.isfinite(day) else math.inf
            else:
                out[(trial, arm, name)] = self._cox_hr(trial, target, eps)
        return out

    def synthetic_targets(self, values: Mapping[str, float]) -> tuple[TrialTargets, ...]:
        """The targets with every fitted value replaced by what the smooth predictions give at ``values``, so the
        residuals vanish there (for recovery tests). CIs are rebuilt with the original SEs: proportions keep ``n``
        (binomial SE at the new value); medians and HRs keep ``SE(log)``. Medians are the days where the smooth
        survival is 0.5 (brentq); HRs are computed after the medians they use have been replaced."""
        from dataclasses import replace

        from scipy.optimize import brentq

        eps = self._run(values)
        z = 1.959963984540054
        new: list[TrialTargets] = []
        for trial in self.targets:
            arms = []
            for arm in trial.arms:
                outs = []
                for o in arm.outcomes:
                    s = self._setups.get((trial.id, arm.name))
                    if s is None or o.name not in self.outcomes:
                        outs.append(o)
                    elif o.name == "orr":
                        outs.append(
                            replace(o, value=self._soft_orr(s, eps[(trial.id, arm.name)]), ci_lower=None, ci_upper=None)
                        )
                    else:
                        endpoint, se = o.name.split("_")[1], o.log_standard_error()
                        ep = eps[(trial.id, arm.name)]
                        day = brentq(
                            lambda t, s=s, ep=ep, e=endpoint: self._smooth_survival(s, ep, e, t) - 0.5,
                            1.0,
                            s.t_end_day - s.start_day,
                            xtol=1e-6,
                        )
                        m = day / DAYS_PER_MONTH
                        outs.append(replace(o, value=m, ci_lower=m * math.exp(-z * se), ci_upper=m * math.exp(z * se)))
                arms.append(replace(arm, outcomes=tuple(outs)))
            new.append(replace(trial, arms=tuple(arms)))
        probe = replace(self, targets=tuple(new))  # same seed: same patients; HR at the new reference medians
        out = []
        for trial in new:
            comps = []
            for c in trial.comparisons:
                if f"hr_{c.endpoint}" not in self.outcomes or (trial.id, c.arm) not in self._setups:
                    comps.append(c)
                    continue
                se, hr = c.log_standard_error(), probe._smooth_hr(trial.id, c, eps)
                comps.append(replace(c, hr=hr, ci_lower=hr * math.exp(-z * se), ci_upper=hr * math.exp(z * se)))
            out.append(replace(trial, comparisons=tuple(comps)))
        return tuple(out)

    def residuals_from_values(self, values: Mapping[str, float]) -> np.ndarray:
        """Weighted residuals (module docstring) at typical values ``base_parameters | values``."""
        return self._weighted(self.predict(values))

    def evaluate(self, values: Mapping[str, float]) -> tuple[dict, dict, np.ndarray]:
        """Report predictions, smooth predictions and weighted residuals from one simulation of every arm."""
        eps = self._run(values or {})
        smooth = self._smooth_from(eps)
        return self._report_from(eps), smooth, self._weighted(smooth)

    def _weighted(self, pred: Mapping[tuple[str, str, str], float]) -> np.ndarray:
        res = np.empty(len(self._keys))
        for i, (trial, arm, name, target) in enumerate(self._keys):
            p, w = pred[(trial, arm, name)], math.sqrt(target.weight)
            if name == "orr":
                res[i] = (p - target.value) / target.standard_error()
            elif name.startswith("median_"):
                res[i] = (p - 0.5) / (_SE_S_FACTOR * target.log_standard_error())
            else:
                res[i] = (math.log(max(p, 1e-12)) - math.log(target.hr)) / target.log_standard_error()
            res[i] *= w
        return res

    def residuals(self, params: Any) -> np.ndarray:
        """Residual vector for ``lmfit.minimize(problem.residuals, params)`` (``params``: lmfit Parameters or a
        mapping of typical values). Deterministic given the parameters."""
        values = params.valuesdict() if hasattr(params, "valuesdict") else dict(params)
        return self.residuals_from_values(values)


def default_parameters(problem: CalibrationProblem, names: Sequence[str] = DEFAULT_FREE) -> Any:
    """lmfit ``Parameters`` of ``names`` (varying), starting at ``base_parameters`` or the current value.

    Typical values start at the model default and take the model's parameter bounds (infinite bounds stay
    open). ``omega__<param>`` starts at the virtual patients' omega, bounded to [0, :data:`OMEGA_MAX`];
    ``effect__<covariate>__<param>`` starts at the patients' covariate effect (0 if none), bounded to
    [-:data:`EFFECT_MAX`, :data:`EFFECT_MAX`] (a factor of e^3 = 20 either way); ``survival__<field>`` starts at
    the assessment's :class:`~abscopal.endpoints.summary.SurvivalModel` value, bounded by
    :data:`SURVIVAL_BOUNDS`.
    """
    import lmfit

    spec = problem._spec
    params = lmfit.Parameters()
    first = next(iter(problem._setups.values())).patients
    problem._split({n: problem.base_parameters.get(n, 0.0) for n in names})  # validate every name first
    for name in names:
        if name.startswith(OMEGA_PREFIX):
            target = name[len(OMEGA_PREFIX) :]
            pats = next(st.patients for st in problem._setups.values() if target in st.patients.variability)
            start, lo, hi = pats.variability[target].omega, 0.0, OMEGA_MAX
        elif name.startswith(SURVIVAL_PREFIX):
            field_name = name[len(SURVIVAL_PREFIX) :]
            start = getattr(next(iter(problem._setups.values())).assessment.survival, field_name)
            lo, hi = SURVIVAL_BOUNDS[field_name]
        elif name.startswith(EFFECT_PREFIX):
            cov, target = name[len(EFFECT_PREFIX) :].split("__", 1)
            start = dict(getattr(first.effects, f"{cov}_log_effect")).get(target, 0.0)
            lo, hi = -EFFECT_MAX, EFFECT_MAX
        else:
            p = spec.parameter(name)
            start, lo, hi = p.default, p.lower, p.upper
        value = float(problem.base_parameters.get(name, start))
        params.add(name, value=value, vary=True, min=lo, max=hi)
    return params
