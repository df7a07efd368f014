"""Calibration objective: weighted, smooth residuals of simulated trial arms against reported outcomes.

A :class:`CalibrationProblem` draws every arm's virtual patients once (common random numbers: the seed of an arm
is a sha256 of ``seed``, trial id and arm name, never Python's ``hash``), places the RT targets and builds the
plans and assessments. :meth:`~CalibrationProblem.residuals` then maps lmfit ``Parameters`` (typical values;
everything else stays at ``base_parameters`` / the model defaults) to a residual vector that is a deterministic,
piecewise-smooth function of the parameters (architecture.md, "The calibration objective is deterministic").

What varies: lmfit parameter names are typical values of model parameters, ``omega__<param>`` (inter-patient SD
of the log or logit of a parameter with variability) or ``effect__pretreated__<param>`` /
``effect__squamous__<param>`` (covariate log-effects) or ``survival__<field>`` (the tumour-size-linked death
model, e.g. ``survival__base_hazard_per_day``) or ``ntcp__<field>`` (the pneumonitis model, e.g.
``ntcp__td50_gy``). Omegas and effects rescale the same standard-normal draws
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

Pneumonitis (docs/calibration.md, "Pneumonitis in the fit"): with pneumonitis outcomes among ``outcomes``
(:data:`~abscopal.endpoints.outcomes.PNEUMONITIS_OUTCOMES`), the toxicity-only cohorts (arms without a population
mix) are fitted too. Their prediction depends on the plan's exposure only (mean lung dose, fractions, the gap
between RT and the drug), so it is computed from the plan without simulating patients
(:meth:`~abscopal.endpoints.outcomes.PneumonitisRate.of_plan`); a course that gives no ``mean_lung_dose_gy``
takes :func:`~abscopal.endpoints.toxicity.assumed_mean_lung_dose_gy` (the studies' rule). Cohorts without RT are
not fitted: the model predicts radiation pneumonitis only (0 without lung dose), while such a cohort measures
checkpoint-inhibitor pneumonitis, which it does not represent (docs/calibration.md). Only the ``ntcp__``
values move these residuals, and only arms with a keyed outcome are simulated, so a fit of pneumonitis alone
simulates nothing; in a joint fit the last simulation is reused when only ``ntcp__`` values changed (the
finite-difference steps of the ``ntcp__`` columns cost no simulation).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..arms import ArmRun, arm_patients, baseline_day, prepare_arm, run_arm
from ..endpoints import DAYS_PER_MONTH
from ..endpoints.assessment import DEATH_MODELS
from ..endpoints.outcomes import (
    COMPARISONS,
    DEFAULT_FIT_OUTCOMES,
    OUTCOMES,
    PNEUMONITIS_OUTCOMES,
    PneumonitisRate,
    ScoredArm,
    fittable_outcomes,
)
from ..endpoints.readout import scored_outputs
from ..endpoints.toxicity import PneumonitisModel, assumed_mean_lung_dose_gy, target_in_lung
from ..errors import ParameterError, SterilisedLesionWarning, StiffFallbackWarning, unknown_name_message
from ..fitted.values import (
    EFFECT_MAX,
    EFFECT_PREFIX,
    NTCP_BOUNDS,
    NTCP_PREFIX,
    OMEGA_MAX,
    OMEGA_PREFIX,
    SURVIVAL_PREFIX,
    SplitValues,
    split_values,
)
from ..model.spec import ModelSpec
from ..patients import VirtualPatients
from ..targeting import place_rt_targets
from ..treatment.plan import TreatmentPlan, rt_drug_gap_day
from ..trials import ArmTarget, ComparisonTarget, Outcome, TrialTargets

if TYPE_CHECKING:
    from ..endpoints.assessment import DeathModel, TrialAssessment
    from ..model.compile import CompiledModel
    from ..simulate import PreparedSimulation

__all__ = [
    "DEFAULT_FREE",
    "NTCP_FREE",
    "ONCE_PER_ARM",
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


ONCE_PER_ARM: tuple[type[Warning], ...] = (SterilisedLesionWarning, StiffFallbackWarning)
"""Warnings about the virtual patients of an arm that a calibration problem says once per arm (first evaluation)."""
NTCP_FREE = ("ntcp__concurrent_multiplier",)
"""The pneumonitis-model value a calibration fits to the pneumonitis cohorts (docs/calibration.md, "Pneumonitis in
the fit"): the factor of RT given within 30 days of a checkpoint-drug dose, the one number the cohorts identify
(profile 95% interval 2.5-9.8 around 6.2). The others stay at their sources: freeing TD50 as well lowered the
chi-square by 0.002 (TD50 31.4 Gy, Seppenwoolde 2003's 30.8 Gy; 95% profile 20.6 Gy to the 150 Gy bound), freeing the
grade >= 3 share by 1.7 (0.86, 95% profile 0.04 to the bound 1); ``m`` cannot be told from TD50 over the cohorts'
assumed mean lung doses (5-15 Gy), and a per-regimen mean-lung-dose factor is confounded with TD50 (two of the four
irradiated cohorts share one regimen and disagree: 6% vs 24% grade >= 2). Any field of
:data:`~abscopal.fitted.values.NTCP_BOUNDS` may still be freed by name."""


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
    ``hr_<endpoint>`` is in ``outcomes`` and both its arms name a mix. A toxicity-only cohort (no mix) with RT
    gives its pneumonitis outcomes that are in ``outcomes`` (predicted from its plan: ``arms`` is empty; a cohort
    without RT has no pneumonitis in the model). Targets marked ``fit = false`` (an arm's outcomes, or a
    comparison) are validate-only: included only with ``include_validate_only``.
    """
    simulable = {a.name for a in trial.arms if a.population.mix is not None}
    out: list[TargetKey] = []
    for arm in trial.arms:
        if not (arm.fit or include_validate_only):
            continue
        if arm.name not in simulable:
            if arm.radiation:
                out += [
                    TargetKey(trial.id, arm.name, o.name, o, (), arm.fit)
                    for o in arm.outcomes
                    if o.name in outcomes and o.name in PNEUMONITIS_OUTCOMES
                ]
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


@dataclass(frozen=True)
class _ToxicitySetup:
    """A toxicity-only cohort: its plan (every course with a mean lung dose) and whether that dose was assumed."""

    trial: str
    arm: ArmTarget
    plan: TreatmentPlan
    until_day: float
    assumed_mean_lung_dose: bool


_TOXICITY_UNTIL_DAY = 730.0
"""Drug doses counted for a toxicity cohort's RT-drug gap (as the efficacy arms' simulations: two years)."""


@dataclass(frozen=True, kw_only=True)
class CalibrationProblem:
    """Trials to fit, the model and the common random numbers (drawn once, at construction).

    Parameters
    ----------
    targets
        The trials (:class:`~abscopal.trials.TrialTargets`); arms without a population mix are skipped unless they
        report a pneumonitis outcome that is fitted (module docstring).
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
    _cache: dict[Any, Any] = field(init=False, repr=False, compare=False)  # compiled model, prepared arms
    _setups: dict[tuple[str, str], _ArmSetup] = field(init=False, repr=False, compare=False)
    _toxicity: dict[tuple[str, str], _ToxicitySetup] = field(init=False, repr=False, compare=False)
    _simulated: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)  # arms the keys need
    _memo: dict[str, Any] = field(init=False, repr=False, compare=False)  # the last simulation (module docstring)
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
        object.__setattr__(self, "_memo", {})
        found = [k for t in targets for k in target_keys(t, outs, include_validate_only=self.include_validate_only)]
        if not found:
            raise ParameterError(f"no usable outcome among {list(outs)} in the targets; nothing to fit")
        needed = {(k.trial, a) for k in found for a in k.arms}
        toxicity_arms = {(k.trial, k.arm) for k in found if not k.arms}
        setups: dict[tuple[str, str], _ArmSetup] = {}
        toxicity: dict[tuple[str, str], _ToxicitySetup] = {}
        for trial in targets:  # only arms with a residual are simulated (file order: same seeds, same patients)
            for arm in trial.arms:
                if (trial.id, arm.name) in needed:
                    setups[(trial.id, arm.name)] = self._prepare_arm(trial, arm, spec)
                elif (trial.id, arm.name) in toxicity_arms:  # predicted from its plan alone (module docstring)
                    toxicity[(trial.id, arm.name)] = self._prepare_toxicity_arm(trial, arm)
        object.__setattr__(self, "_setups", setups)
        object.__setattr__(self, "_toxicity", toxicity)
        object.__setattr__(
            self,
            "_variability_names",
            tuple(dict.fromkeys(k for st in setups.values() for k in st.patients.variability)),
        )
        object.__setattr__(self, "_keys", [k.key for k in found])
        object.__setattr__(self, "_validate_only", frozenset(k.key[:3] for k in found if not k.fitted))
        object.__setattr__(self, "_simulated", tuple(setups))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the last simulation and the prepared arms (a worker process starts with an empty memo and
        prepares its arms at its first evaluation); the compiled model pickles as a reference to its kernel file."""
        return self.__dict__ | {"_memo": {}, "_cache": {k: v for k, v in self._cache.items() if k == "model"}}

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

    def _prepare_toxicity_arm(self, trial: TrialTargets, arm: ArmTarget) -> _ToxicitySetup:
        """The plan of a toxicity-only cohort: its courses (on lesion 0: the lesion does not matter for the lung
        dose) with the given mean lung dose, else the assumed one (module docstring), and its drug."""
        courses, assumed = [], False
        for rt in arm.radiation:
            course = rt.build(target_lesions=rt.target if isinstance(rt.target, tuple) else (0,))
            if rt.mean_lung_dose_gy is None:
                mld = assumed_mean_lung_dose_gy(
                    course.total_dose_gy, course.dose_per_fraction_gy, in_lung=target_in_lung(rt.target)
                )
                course, assumed = replace(course, mean_lung_dose_gy=mld), True
            courses.append(course)
        drug = arm.drug.build() if arm.drug else None
        plan = TreatmentPlan(radiation=tuple(courses), drug=drug, name=arm.name)
        return _ToxicitySetup(
            trial=trial.id, arm=arm, plan=plan, until_day=_TOXICITY_UNTIL_DAY, assumed_mean_lung_dose=assumed
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
    def toxicity_exposure(self) -> list[dict[str, Any]]:
        """The exposure of each fitted toxicity-only cohort (what its pneumonitis prediction depends on): trial,
        arm, physical mean lung dose (Gy, and whether it was assumed), fractions, smallest RT-drug gap (days;
        None without a drug: not NaN, so a fit file that stores it compares equal to itself after a round trip) and
        whether that gap counts as concurrent for the default pneumonitis model."""
        out = []
        default = PneumonitisModel()
        for (trial, arm), t in self._toxicity.items():
            fractions = t.plan.fractions()
            doses = t.plan.drug_doses(t.until_day)
            gap = rt_drug_gap_day((f.time_day for f in fractions), (d.time_day for d in doses))
            out.append(
                {
                    "trial": trial,
                    "arm": arm,
                    "mean_lung_dose_gy": float(sum(f.mean_lung_dose_gy for f in fractions)),
                    "mean_lung_dose_assumed": t.assumed_mean_lung_dose,
                    "n_fractions": len(fractions),
                    "rt_drug_gap_day": gap if math.isfinite(gap) else None,
                    "concurrent": bool(gap <= default.concurrent_window_day),
                }
            )
        return out

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

    def _prepared(self, s: _ArmSetup, split: SplitValues) -> PreparedSimulation:
        """The arm's simulation before any value enters (plan, events, output grid; :func:`~abscopal.arms.prepare_arm`),
        built at the first evaluation and reused: only the outputs the scoring reads are kept
        (:func:`~abscopal.endpoints.readout.scored_outputs`)."""
        key = ("prepared", s.trial, s.arm.name)
        if key not in self._cache:
            self._cache[key] = prepare_arm(
                self._spec,
                s.plan,
                s.patients.n_patients,
                start_day=s.start_day,
                t_end_day=s.t_end_day,
                name=s.arm.name,
                variables=scored_outputs(self._spec),
                parameters=split.typical,
            )
        return self._cache[key]

    def _simulate_arm(self, s: _ArmSetup, split: SplitValues) -> ArmRun:
        """One arm at ``split``. The warnings of :data:`ONCE_PER_ARM` (prior RT sterilises lesions; stiff patients
        re-integrated with Rodas4) are said once per arm and kind for this problem, at the first evaluation that
        raises them, naming the arm; a fit evaluates each arm hundreds of times and the counts move with the
        values, so repeating them would bury other warnings."""
        said = self._memo.setdefault("said_once", set())
        with warnings.catch_warnings(record=True) as caught:
            for kind in ONCE_PER_ARM:
                warnings.simplefilter("ignore" if (s.trial, s.arm.name, kind) in said else "always", kind)
            run = run_arm(
                self._compiled(),
                s.plan,
                s.patients,
                s.assessment,
                split,
                start_day=s.start_day,
                t_end_day=s.t_end_day,
                name=s.arm.name,
                pfs_bandwidth_day=s.bandwidth_pfs_day,
                variables=scored_outputs(self._spec),
                prepared=self._prepared(s, split),
            )
        for w in caught:
            once = next((k for k in ONCE_PER_ARM if issubclass(w.category, k)), None)
            if once is not None:
                said.add((s.trial, s.arm.name, once))
                warnings.warn(
                    f"{s.trial}, arm {s.arm.name!r}: {w.message} (said once per arm of this calibration problem; "
                    "the count depends on the parameter values)",
                    w.category,
                    stacklevel=2,
                )
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        return run

    def _run(self, values: Mapping[str, float]) -> dict[tuple[str, str], ScoredArm]:
        """The scored arms the residuals need at ``values`` (toxicity-only cohorts are not simulated). When no
        simulated arm has a fitted pneumonitis outcome, ``ntcp__`` values move no residual of a simulated arm, so the
        last simulation is reused when only they changed (the simulation is deterministic given the other values)."""
        split = self._split(values)
        if not self._simulated:
            return {}
        merged = dict(self.base_parameters) | {k: float(v) for k, v in values.items()}
        reuse = not any(
            name in PNEUMONITIS_OUTCOMES and (trial, arm) in self._setups for trial, arm, name, _ in self._keys
        )
        key = tuple(sorted((k, v) for k, v in merged.items() if not (reuse and k.startswith(NTCP_PREFIX))))
        last = self._memo.get("last")  # one (key, scored) tuple, read once
        if last is not None and last[0] == key:
            return dict(last[1])
        scored = {k: self._simulate_arm(self._setups[k], split).scored for k in self._simulated}
        self._memo["last"] = (key, scored)
        return dict(scored)

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
        values = values or {}
        return self._smooth_from(self._run(values), self._toxicity_predictions(values))

    def _toxicity_predictions(self, values: Mapping[str, float]) -> dict[tuple[str, str, str], float]:
        """Pneumonitis predictions of the toxicity-only cohorts from their plans (no simulation)."""
        if not self._toxicity:
            return {}
        model = self._split(values).pneumonitis()
        out: dict[tuple[str, str, str], float] = {}
        for trial, arm, name, _ in self._keys:
            setup = self._toxicity.get((trial, arm))
            rate = OUTCOMES.get(name)
            if setup is not None and isinstance(rate, PneumonitisRate):
                out[(trial, arm, name)] = rate.of_plan(model, setup.plan, setup.until_day)
        return out

    def _smooth_from(
        self, scored: Mapping[tuple[str, str], ScoredArm], toxicity: Mapping[tuple[str, str, str], float]
    ) -> dict[tuple[str, str, str], float]:
        out: dict[tuple[str, str, str], float] = dict(toxicity)
        for trial, arm, name, target in self._keys:
            if (trial, arm, name) in toxicity:
                continue
            if isinstance(target, ComparisonTarget):  # name in COMPARISONS
                out[(trial, arm, name)] = self._smooth_hr(trial, target, scored)
            else:
                out[(trial, arm, name)] = OUTCOMES[name].smooth(scored[(trial, arm)], target)
        return out

    def predict_report(self, values: Mapping[str, float] | None = None) -> dict[tuple[str, str, str], float]:
        """Trial-style (step-valued) predictions for reporting: RECIST proportions, KM medians in months (inf if
        not reached) and landmarks, Cox hazard ratios."""
        values = values or {}
        return self._report_from(self._run(values), self._toxicity_predictions(values))

    def _report_from(
        self, scored: Mapping[tuple[str, str], ScoredArm], toxicity: Mapping[tuple[str, str, str], float]
    ) -> dict[tuple[str, str, str], float]:
        out: dict[tuple[str, str, str], float] = dict(toxicity)  # a probability is its own reported value
        for trial, arm, name, target in self._keys:
            if (trial, arm, name) in toxicity:
                continue
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
        survival is 0.5 (brentq); HRs are computed after the medians they use have been replaced. Pneumonitis
        outcomes of toxicity-only cohorts are replaced by their predictions (binomial SE from ``n``)."""
        scored = self._run(values)
        predicted = set(self.keys)
        toxicity = self._toxicity_predictions(values)
        new: list[TrialTargets] = []
        for trial in self.targets:
            arms = []
            for arm in trial.arms:
                s = scored.get((trial.id, arm.name))
                outs = [
                    replace(o, value=toxicity[key], ci_lower=None, ci_upper=None)
                    if (key := (trial.id, arm.name, o.name)) in toxicity
                    else OUTCOMES[o.name].synthetic(s, o)
                    if s is not None and key in predicted
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
        values = values or {}
        eps, toxicity = self._run(values), self._toxicity_predictions(values)
        smooth = self._smooth_from(eps, toxicity)
        return self._report_from(eps, toxicity), smooth, self._weighted(smooth)

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
    :class:`~abscopal.endpoints.death.SurvivalModel`), bounded by the bounds it declares (``FITTABLE``);
    ``ntcp__<field>`` starts at the default :class:`~abscopal.endpoints.toxicity.PneumonitisModel`'s value, bounded
    by :data:`~abscopal.fitted.values.NTCP_BOUNDS`.
    """
    import lmfit

    spec = problem._spec
    params = lmfit.Parameters()
    ntcp = [n for n in names if n.startswith(NTCP_PREFIX)]
    if ntcp and not any(name in PNEUMONITIS_OUTCOMES for _, _, name, _ in problem._keys):
        raise ParameterError(
            f"{ntcp}: ntcp__ values move only pneumonitis outcomes, and this problem fits none (outcomes "
            f"{list(problem._outcomes)}); pass outcomes=(... + PNEUMONITIS_OUTCOMES) and targets with pneumonitis "
            "cohorts (fits/targets/pneumonitis.toml), or leave the ntcp__ values out"
        )
    ntcp_default = {NTCP_PREFIX + k: float(getattr(PneumonitisModel(), k)) for k in NTCP_BOUNDS}
    problem._split({n: problem.base_parameters.get(n, ntcp_default.get(n, 0.0)) for n in names})  # validate names
    for name in names:
        if name.startswith(NTCP_PREFIX):
            field_name = name[len(NTCP_PREFIX) :]
            start = getattr(PneumonitisModel(), field_name)
            lo, hi = NTCP_BOUNDS[field_name]
        elif name.startswith(OMEGA_PREFIX):
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
            first = next(iter(problem._setups.values())).patients
            start = dict(getattr(first.effects, f"{cov}_log_effect")).get(target, 0.0)
            lo, hi = -EFFECT_MAX, EFFECT_MAX
        else:
            p = spec.parameter(name)
            start, lo, hi = p.default, p.lower, p.upper
        value = float(problem.base_parameters.get(name, start))
        params.add(name, value=value, vary=True, min=lo, max=hi)
    return params
