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

Smooth predictions (what the residuals compare; :meth:`~CalibrationProblem.predict`) and the residuals are
those of the outcome registry :mod:`abscopal.endpoints.outcomes` (one definition per outcome: its trial-style value,
smooth surrogate, standard error and residual). Each residual is multiplied by ``sqrt(weight)`` of the confidence
tag. With ``smooth_hr=False`` hazard ratios use the rank-based Cox HR instead of the smooth surrogate.
Only targets marked for the fit are residuals (:func:`target_keys`, the one rule of what is usable): an arm or
comparison with ``fit = false`` in its target file (validate-only, e.g. an arm whose patients another fitted arm
already counts) is neither simulated nor compared, unless ``include_validate_only`` (validation). Arms without a
residual are not simulated.
Survival times are counted from each arm's own start (the first RT fraction if it precedes the drug, else day 0);
an arm with prior courses (``prior = true`` in its target file: RT before enrolment) is simulated from its first
prior fraction, with the drawn sizes held at its time zero, where its scans start and its survival is counted from
(docs/design.md, "Time zero").
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..arms import ArmRun, arm_patients, baseline_day, run_arm
from ..endpoints import DAYS_PER_MONTH
from ..endpoints.assessment import DEATH_MODELS
from ..endpoints.outcomes import (
    COMPARISONS,
    DEFAULT_FIT_OUTCOMES,
    OUTCOMES,
    ScoredArm,
    fittable_outcomes,
)
from ..errors import ParameterError, unknown_name_message
from ..fitted.values import (
    EFFECT_MAX,
    EFFECT_PREFIX,
    OMEGA_MAX,
    OMEGA_PREFIX,
    SURVIVAL_PREFIX,
    SplitValues,
    split_values,
)
from ..model.spec import ModelSpec
from ..patients import VirtualPatients
from ..targeting import place_rt_targets
from ..treatment.plan import TreatmentPlan
from ..trials import ArmTarget, ComparisonTarget, Outcome, TrialTargets

if TYPE_CHECKING:
    from ..endpoints.assessment import DeathModel, TrialAssessment
    from ..model.compile import CompiledModel

__all__ = [
    "DEFAULT_FREE",
    "CalibrationProblem",
    "TargetKey",
    "arm_seed",
    "default_parameters",
    "target_keys",
]

DEFAULT_FREE = (
    "max_kill_per_day",
    "new_lesion_rate_per_day",
    "tumour_doubling_time_day",
    "survival__intercept_log_day",
    "survival__pretreated_log_time_ratio",
)
"""What :func:`default_parameters` and ``abscopal fit`` let vary for model v2 (the default): the kill capacity,
new-lesion rate and doubling time (response, PFS), and the intercept and the pretreated log time ratio (line of
therapy) of the Struemper 2025 OS link (its slopes stay published). The RT-immune parameters were not identified by
the fit set: free in a first fit, ``icd_signal_per_gy`` had a relative standard error above 2000% and
``effector_death_per_day`` above 4000% (at its upper bound), so they stay at their defaults until the calibration
adds targets that tell them apart (docs/calibration.md)."""
DEFAULT_FREE_V1 = (
    "max_kill_per_day",
    "new_lesion_rate_per_day",
    "tumour_doubling_time_day",
    "survival__base_hazard_per_day",
)
"""The same for model v1 (its death model is the burden hazard :class:`~abscopal.endpoints.death.SurvivalModel`).

Fitting the whole fit set with ``effector_baseline``, ``icd_yield_per_mm3`` or ``omega__effector_baseline`` free as
well left each with a relative standard error above 150% (flat directions of chi-square: these targets cannot
tell them apart from the others), while the four here are identified to 13-26% (benchmarks/README.md)."""


def _default_model() -> ModelSpec:
    from ..model.library.nsclc import nsclc_model

    return nsclc_model(3)


def arm_seed(seed: int, trial: str, arm: str) -> int:
    """Stable 32-bit seed of an arm: sha256 of ``"seed/trial/arm"`` (independent of PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.sha256(f"{int(seed)}/{trial}/{arm}".encode()).digest()[:4], "big")


_Key = tuple[str, str, str, Outcome | ComparisonTarget]
"""A residual: ``(trial, arm, outcome name, reported target)``; a comparison's arm is ``"<arm> vs <reference>"``."""


@dataclass(frozen=True)
class TargetKey:
    """A reported number the model can predict (:func:`target_keys`): ``trial``, ``arm`` (``"<arm> vs
    <reference>"`` for a comparison), ``outcome`` name, the reported ``target``, the simulated ``arms`` it needs
    and ``fitted`` (False: validate-only, ``fit = false`` in its target file)."""

    trial: str
    arm: str
    outcome: str
    target: Outcome | ComparisonTarget
    arms: tuple[str, ...]
    fitted: bool

    @property
    def key(self) -> _Key:
        return (self.trial, self.arm, self.outcome, self.target)


def target_keys(
    trial: TrialTargets, outcomes: Sequence[str] = DEFAULT_FIT_OUTCOMES, *, include_validate_only: bool = False
) -> list[TargetKey]:
    """The targets of ``trial`` the objective compares with the model, in file order: the one rule of what is
    usable (used by :class:`CalibrationProblem`, validation and cross-validation).

    An arm outcome is usable when its arm names a population mix and its name is in ``outcomes`` and in the
    outcome registry (an ``hr_*`` reported for one arm has no reference to compare with); a comparison when
    ``hr_<endpoint>`` is in ``outcomes`` and both its arms name a mix. Targets marked ``fit = false`` (an arm's
    outcomes, or a comparison) are validate-only: included only with ``include_validate_only``.
    """
    simulable = {a.name for a in trial.arms if a.population.mix is not None}
    out: list[TargetKey] = []
    for arm in trial.arms:
        if arm.name not in simulable or not (arm.fit or include_validate_only):
            continue
        out += [
            TargetKey(trial.id, arm.name, o.name, o, (arm.name,), arm.fit)
            for o in arm.outcomes
            if o.name in outcomes and o.name in OUTCOMES
        ]
    for c in trial.comparisons:
        name = f"hr_{c.endpoint}"
        if (
            name in outcomes
            and name in COMPARISONS
            and {c.arm, c.reference} <= simulable
            and (c.fit or include_validate_only)
        ):
            out.append(TargetKey(trial.id, f"{c.arm} vs {c.reference}", name, c, (c.arm, c.reference), c.fit))
    return out


@dataclass(frozen=True)
class _ArmSetup:
    trial: str
    arm: ArmTarget
    patients: VirtualPatients
    plan: TreatmentPlan
    assessment: TrialAssessment
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
        Outcome names to fit, from :func:`~abscopal.endpoints.outcomes.fittable_outcomes` (default: those of
        :data:`~abscopal.endpoints.outcomes.DEFAULT_FIT_OUTCOMES` the targets report).
    smooth_hr
        Smooth HR surrogate (module docstring) instead of the rank-based Cox HR in the residuals.
    include_validate_only
        Also predict the targets marked ``fit = false`` (validate-only; :func:`target_keys`). For validation
        only: :func:`~abscopal.calibrate.fit.calibrate` refuses such a problem, so no patient is fitted twice.
    """

    targets: tuple[TrialTargets, ...]
    model: ModelSpec | CompiledModel = field(default_factory=_default_model)
    n_patients_per_arm: int = 200
    seed: int = 0
    base_parameters: Mapping[str, float] = field(default_factory=dict)
    outcomes: tuple[str, ...] | None = None
    smooth_hr: bool = True
    include_validate_only: bool = False
    # set by __post_init__ (the common random numbers and what the residuals compare)
    _outcomes: tuple[str, ...] = field(init=False, repr=False, compare=False)  # outcomes, the default filled in
    _spec: ModelSpec = field(init=False, repr=False, compare=False)
    _cache: dict[str, CompiledModel] = field(init=False, repr=False, compare=False)
    _setups: dict[tuple[str, str], _ArmSetup] = field(init=False, repr=False, compare=False)
    _variability_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _keys: list[_Key] = field(init=False, repr=False, compare=False)
    _validate_only: frozenset[tuple[str, str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        targets = (self.targets,) if isinstance(self.targets, TrialTargets) else tuple(self.targets)
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "base_parameters", dict(self.base_parameters))
        outs = DEFAULT_FIT_OUTCOMES if self.outcomes is None else tuple(self.outcomes)
        for o in outs:
            if o not in fittable_outcomes():
                raise ParameterError("outcomes: " + unknown_name_message("outcome", o, fittable_outcomes()))
        object.__setattr__(self, "outcomes", outs)
        object.__setattr__(self, "_outcomes", outs)
        if not isinstance(self.include_validate_only, bool):
            raise ParameterError(f"include_validate_only must be True or False, got {self.include_validate_only!r}")
        spec = self.model if isinstance(self.model, ModelSpec) else self.model.spec
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_cache", {})
        found = [k for t in targets for k in target_keys(t, outs, include_validate_only=self.include_validate_only)]
        if not found:
            raise ParameterError(f"no usable outcome among {list(outs)} in the targets; nothing to fit")
        needed = {(k.trial, a) for k in found for a in k.arms}
        setups: dict[tuple[str, str], _ArmSetup] = {}
        for trial in targets:  # only arms with a residual are simulated (file order: same seeds, same patients)
            for arm in trial.arms:
                if (trial.id, arm.name) in needed:
                    setups[(trial.id, arm.name)] = self._prepare_arm(trial, arm, spec)
        object.__setattr__(self, "_setups", setups)
        object.__setattr__(
            self,
            "_variability_names",
            tuple(dict.fromkeys(k for st in setups.values() for k in st.patients.variability)),
        )
        object.__setattr__(self, "_keys", [k.key for k in found])
        object.__setattr__(self, "_validate_only", frozenset(k.key[:3] for k in found if not k.fitted))

    # ---- preparation (common random numbers) ---------------------------------------------------------------------
    def _prepare_arm(self, trial: TrialTargets, arm: ArmTarget, spec: ModelSpec) -> _ArmSetup:
        L = spec.n_lesions
        seed = arm_seed(self.seed, trial.id, arm.name)
        patients = arm_patients(arm.population.patient_mix(), self.n_patients_per_arm, L, seed, spec)
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
        plan = TreatmentPlan(radiation=tuple(courses), drug=drug, name=arm.name)
        events = [f.time_day for f in plan.fractions()] + [d.time_day for d in plan.drug_doses(730.0)]
        start = min([0.0, *events])  # with prior courses: the history start
        fu = arm.assessment.follow_up_month
        t_end = 730.0 if fu is None else max(730.0, 7.0 * math.ceil(fu * DAYS_PER_MONTH / 7.0))
        # the baseline scan: time zero with prior courses (docs/design.md, "Time zero"), else the simulation start
        assessment = arm.assessment.to_assessment(baseline_day(plan, start), t_end)
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

    @property
    def keys(self) -> list[tuple[str, str, str]]:
        """``(trial, arm, outcome)`` of each residual, in order (comparisons: arm ``"<arm> vs <reference>"``)."""
        return [k[:3] for k in self._keys]

    @property
    def weights(self) -> np.ndarray:
        """Confidence-tag weight of each residual, in order (:data:`~abscopal.trials.TAG_WEIGHTS`): the residuals are
        the plain ones (reported standard errors) times ``sqrt(weight)``."""
        return np.array([k[3].weight for k in self._keys], dtype=float)

    @property
    def validate_only(self) -> frozenset[tuple[str, str, str]]:
        """The :attr:`keys` marked ``fit = false`` (empty unless ``include_validate_only``)."""
        return self._validate_only

    @property
    def patients(self) -> dict[tuple[str, str], VirtualPatients]:
        """The fixed virtual patients of each ``(trial, arm)`` (RT targets placed)."""
        return {k: s.patients for k, s in self._setups.items()}

    def _compiled(self) -> CompiledModel:
        if "model" not in self._cache:
            from ..model.compile import CompiledModel, compile_model

            m = self.model
            self._cache["model"] = m if isinstance(m, CompiledModel) else compile_model(m)
        return self._cache["model"]

    # ---- simulation ---------------------------------------------------------------------------------------------
    def _survival_model(self) -> DeathModel:
        """The death model of the arms' assessments (the first arm's: every arm is scored with the same kind)."""
        return next(iter(self._setups.values())).assessment.survival

    def _split(self, values: Mapping[str, float]) -> SplitValues:
        return split_values(
            self._spec,
            dict(self.base_parameters) | {k: float(v) for k, v in values.items()},
            self._variability_names,
        )

    def _simulate_arm(self, s: _ArmSetup, split: SplitValues) -> ArmRun:
        return run_arm(
            self._compiled(),
            s.plan,
            s.patients,
            s.assessment,
            split,
            start_day=s.start_day,
            t_end_day=s.t_end_day,
            name=s.arm.name,
            pfs_bandwidth_day=s.bandwidth_pfs_day,
        )

    def _run(self, values: Mapping[str, float]) -> dict[tuple[str, str], ScoredArm]:
        split = self._split(values)
        return {k: self._simulate_arm(s, split).scored for k, s in self._setups.items()}

    # ---- smooth per-arm quantities ------------------------------------------------------------------------------
    def _reference_median_day(self, trial: str, arm: str, endpoint: str) -> float | None:
        t = next(t for t in self.targets if t.id == trial)
        for o in t.arm(arm).outcomes:
            if o.name == f"median_{endpoint}_month":
                return o.value * DAYS_PER_MONTH
        return None

    def _smooth_hr(self, trial: str, c: ComparisonTarget, scored: Mapping[tuple[str, str], ScoredArm]) -> float:
        hr = COMPARISONS[f"hr_{c.endpoint}"]
        t_ref = self._reference_median_day(trial, c.reference, c.endpoint) if self.smooth_hr else None
        return hr.smooth(scored[(trial, c.arm)], scored[(trial, c.reference)], t_ref)

    # ---- public API ---------------------------------------------------------------------------------------------
    def predict(self, values: Mapping[str, float] | None = None) -> dict[tuple[str, str, str], float]:
        """Smooth predictions (:mod:`abscopal.endpoints.outcomes`) at typical values ``base_parameters | values``.

        Proportions: soft proportion; ``median_*``: smooth simulated survival at the reported median (target 0.5);
        ``hr_*``: hazard ratio (natural scale).
        """
        return self._smooth_from(self._run(values or {}))

    def _smooth_from(self, scored: Mapping[tuple[str, str], ScoredArm]) -> dict[tuple[str, str, str], float]:
        out: dict[tuple[str, str, str], float] = {}
        for trial, arm, name, target in self._keys:
            if isinstance(target, ComparisonTarget):  # name in COMPARISONS
                out[(trial, arm, name)] = self._smooth_hr(trial, target, scored)
            else:
                out[(trial, arm, name)] = OUTCOMES[name].smooth(scored[(trial, arm)], target)
        return out

    def predict_report(self, values: Mapping[str, float] | None = None) -> dict[tuple[str, str, str], float]:
        """Trial-style (step-valued) predictions for reporting: RECIST proportions, KM medians in months (inf if
        not reached) and landmarks, Cox hazard ratios."""
        return self._report_from(self._run(values or {}))

    def _report_from(self, scored: Mapping[tuple[str, str], ScoredArm]) -> dict[tuple[str, str, str], float]:
        out: dict[tuple[str, str, str], float] = {}
        for trial, arm, name, target in self._keys:
            if isinstance(target, ComparisonTarget):  # name in COMPARISONS
                out[(trial, arm, name)] = COMPARISONS[name].value(
                    scored[(trial, target.arm)], scored[(trial, target.reference)]
                )
            else:
                out[(trial, arm, name)] = OUTCOMES[name].value(scored[(trial, arm)])
        return out

    def synthetic_targets(self, values: Mapping[str, float]) -> tuple[TrialTargets, ...]:
        """The targets with every fitted value replaced by what the smooth predictions give at ``values``, so the
        residuals vanish there (for recovery tests). CIs are rebuilt with the original SEs: proportions keep ``n``
        (binomial SE at the new value); medians and HRs keep ``SE(log)``. Medians are the days where the smooth
        survival is 0.5 (brentq); HRs are computed after the medians they use have been replaced."""
        scored = self._run(values)
        predicted = set(self.keys)
        new: list[TrialTargets] = []
        for trial in self.targets:
            arms = []
            for arm in trial.arms:
                s = scored.get((trial.id, arm.name))
                outs = [
                    OUTCOMES[o.name].synthetic(s, o)
                    if s is not None and (trial.id, arm.name, o.name) in predicted
                    else o
                    for o in arm.outcomes
                ]
                arms.append(replace(arm, outcomes=tuple(outs)))
            new.append(replace(trial, arms=tuple(arms)))
        probe = replace(self, targets=tuple(new))  # same seed: same patients; HR at the new reference medians
        out = []
        for trial in new:
            comps = []
            for c in trial.comparisons:
                name = f"hr_{c.endpoint}"
                if (trial.id, f"{c.arm} vs {c.reference}", name) not in predicted:
                    comps.append(c)
                    continue
                comps.append(COMPARISONS[name].synthetic(probe._smooth_hr(trial.id, c, scored), c))
            out.append(replace(trial, comparisons=tuple(comps)))
        return tuple(out)

    def residuals_from_values(self, values: Mapping[str, float]) -> np.ndarray:
        """Weighted residuals (module docstring) at typical values ``base_parameters | values``."""
        return self._weighted(self.predict(values))

    def evaluate(
        self, values: Mapping[str, float]
    ) -> tuple[dict[tuple[str, str, str], float], dict[tuple[str, str, str], float], np.ndarray]:
        """Report predictions, smooth predictions and weighted residuals from one simulation of every arm."""
        eps = self._run(values or {})
        smooth = self._smooth_from(eps)
        return self._report_from(eps), smooth, self._weighted(smooth)

    def _weighted(self, pred: Mapping[tuple[str, str, str], float]) -> np.ndarray:
        res = np.empty(len(self._keys))
        for i, (trial, arm, name, target) in enumerate(self._keys):
            p = pred[(trial, arm, name)]
            r = (
                COMPARISONS[name].residual(p, target)
                if isinstance(target, ComparisonTarget)
                else OUTCOMES[name].residual(p, target)
            )
            res[i] = r * math.sqrt(target.weight)
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
    the value of the death model that declares the field (the assessment's, default
    :class:`~abscopal.endpoints.survival_link.TumourGrowthSurvival`, or model v1's
    :class:`~abscopal.endpoints.death.SurvivalModel`), bounded by the bounds it declares (``FITTABLE``).
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
            survival = problem._survival_model()
            if field_name not in type(survival).FITTABLE:  # a field of another death model (e.g. v1's)
                survival = next(cls() for cls in DEATH_MODELS if field_name in cls.FITTABLE)
            start = getattr(survival, field_name)
            lo, hi = type(survival).FITTABLE[field_name]
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
