"""One way to run a trial arm: plan -> patients -> simulate -> score.

The calibration objective (:mod:`abscopal.calibrate.objective`) and the studies (:mod:`abscopal.studies.run`)
both run their arms through :func:`run_arm`, and draw their patients with :func:`arm_patients`, so how an arm
is simulated and scored is written once:

1. fitted values are split into typical values, omegas, covariate effects and death-model fields
   (:func:`~abscopal.fitted.values.split_values`);
2. the plan is adapted to the model (:meth:`~abscopal.treatment.plan.TreatmentPlan.for_model`: constant
   clearance on a model with analytic PK);
3. the patients' draws are rescaled by the omegas and effects (common random numbers,
   :func:`~abscopal.fitted.values.population_for`) and simulated; per-patient values that variability pushes
   outside a parameter's bounds are truncated to the bounds (``out_of_bounds="clip"``);
4. the arm is scored with the assessment (death-model fields replaced by fitted ones; lesions irradiated as
   salvage RT stay assessed) into a :class:`~abscopal.endpoints.outcomes.ScoredArm`.

The patients of a model that is not the NSCLC model (an imported SBML model in a study) are a plain
:class:`~abscopal.population.VirtualPopulation`, as in a scenario file: the fit's omegas replace the population's
(:func:`~abscopal.fitted.values.with_omegas`), covariate effects do not apply (there are no covariates), and the arm
is scored without patients (lesion sites from the assessment, event draws from the population's seed:
:func:`abscopal.score`).

Time zero (docs/design.md): a plan with prior courses (``RadiationCourse(prior=True)``: RT before enrolment) is
simulated from ``start_day`` (the first prior fraction: the history start), with each patient's start sizes
chosen so that the drawn sizes hold at the plan's time zero (:attr:`TreatmentPlan.time_zero_day
<abscopal.treatment.plan.TreatmentPlan.time_zero_day>`: day 0, or the first protocol event if earlier;
:mod:`abscopal.history`). The assessment's scans then start at time zero, and survival counts from it
(:attr:`ScoredArm.start_day <abscopal.endpoints.outcomes.ScoredArm.start_day>` is time zero). Without prior
courses nothing changes: the simulation start is the baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from .endpoints import TrialAssessment, score
from .endpoints.outcomes import ScoredArm
from .errors import ParameterError
from .fitted.values import SplitValues, population_for, split_values, with_omegas
from .model.compile import CompiledModel
from .model.library.nsclc import model_variability
from .model.spec import ModelSpec
from .patients import PatientMix, VirtualPatients, draw_patients
from .population import VirtualPopulation
from .simulate import Arm, PreparedSimulation, prepare_simulation, simulate_prepared
from .solver import SolverOptions
from .treatment.plan import TreatmentPlan

__all__ = ["OUTPUT_INTERVAL_DAY", "ArmRun", "arm_patients", "baseline_day", "prepare_arm", "run_arm"]

OUTPUT_INTERVAL_DAY = 7.0
"""Spacing of the simulated output grid (days): scans fall on whole weeks of it."""


@dataclass(frozen=True, kw_only=True)
class ArmRun:
    """What :func:`run_arm` returns.

    Attributes
    ----------
    simulation
        The :func:`~abscopal.simulate` dataset of the arm.
    scored
        Its endpoints with what the outcome registry needs (:class:`~abscopal.endpoints.outcomes.ScoredArm`).
    plans
        The plan of each patient (differs between patients only with per-patient RT starts).
    """

    simulation: xr.Dataset
    scored: ScoredArm
    plans: tuple[TreatmentPlan, ...]


def arm_patients(
    mix: PatientMix, n_patients: int, n_lesions: int, seed: int, spec: ModelSpec | None = None
) -> VirtualPatients:
    """Virtual patients of an arm: ``mix`` drawn with ``seed``, lesion counts capped at the model's lesions, with
    the between-patient variability of the NSCLC version ``spec`` is (default: the default version's)."""
    mix = mix.capped(n_lesions) if mix.max_lesions > n_lesions else mix
    var = None if spec is None else {k: v for k, v in model_variability(spec).items() if k != "pdl1_tps"}
    return draw_patients(mix, n_patients, n_lesions=n_lesions, seed=seed, variability=var)


def baseline_day(plan: TreatmentPlan, start_day: float) -> float:
    """Day of an arm's baseline scan when it is simulated from ``start_day``: the plan's time zero if it has prior
    courses (``start_day`` is then the history start), else ``start_day`` (module docstring)."""
    return plan.time_zero_day if plan.prior_courses else float(start_day)


def prepare_arm(
    model: CompiledModel | ModelSpec,
    plan: TreatmentPlan,
    n_patients: int,
    *,
    start_day: float,
    t_end_day: float,
    name: str = "arm",
    rt_start_day: np.ndarray | None = None,
    mechanisms_off: Iterable[str] = (),
    solver: SolverOptions | None = None,
    variables: Iterable[str] | None = None,
    parameters: Mapping[str, float] | None = None,
    arm_parameters: Mapping[str, float] | None = None,
    model_events: Sequence[tuple[float, str, Sequence[float]]] = (),
) -> PreparedSimulation:
    """What :func:`run_arm` simulates, before any parameter value or patient enters
    (:func:`~abscopal.simulate.prepare_simulation` of the arm: its plan adapted to the model, events, output grid).
    A caller that runs the same arm many times (the calibration objective) prepares it once and passes it to
    :func:`run_arm` as ``prepared``. Arguments as :func:`run_arm`'s (its ``parameters`` are ``arm_parameters``
    here); ``parameters`` (typical values) only enter the checks."""
    spec = model.spec if isinstance(model, CompiledModel) else model
    arm = Arm(name=name, plan=plan.for_model(spec), parameters=arm_parameters or {}, rt_start_day=rt_start_day)
    return prepare_simulation(
        spec,
        [arm],
        n_patients=n_patients,
        t_end_day=t_end_day,
        output_interval_day=OUTPUT_INTERVAL_DAY,
        start_day=start_day,
        mechanisms_off=mechanisms_off,
        solver=solver,
        variables=variables,
        parameters=parameters,
        model_events=model_events,
    )


def run_arm(
    model: CompiledModel,
    plan: TreatmentPlan,
    patients: VirtualPatients | VirtualPopulation,
    assessment: TrialAssessment,
    values: Mapping[str, float] | SplitValues,
    *,
    start_day: float,
    t_end_day: float,
    variability_names: Sequence[str] = (),
    name: str = "arm",
    rt_start_day: np.ndarray | None = None,
    mechanisms_off: Iterable[str] = (),
    solver: SolverOptions | None = None,
    variables: Iterable[str] | None = None,
    pfs_bandwidth_day: float | None = None,
    parameters: Mapping[str, float] | None = None,
    model_events: Sequence[tuple[float, str, Sequence[float]]] = (),
    prepared: PreparedSimulation | None = None,
) -> ArmRun:
    """Simulate and score one arm (module docstring).

    Parameters
    ----------
    model
        The compiled model.
    plan
        The arm's treatment plan (adapted to the model by :meth:`TreatmentPlan.for_model`).
    patients
        The arm's virtual patients (RT targets placed), or a plain population (module docstring).
    assessment
        How the arm is scored.
    values
        Fitted values by name (typical values, ``omega__``, ``effect__``, ``survival__`` fields of the
        assessment's death model), or already split.
    start_day, t_end_day
        Simulation window (days). Survival counts from ``start_day``, or from the plan's time zero when the plan
        has prior courses (then ``start_day`` is the history start and ``assessment``'s scans start at time zero).
    variability_names
        Parameters with inter-patient variability (the valid ``omega__`` names).
    name
        Arm name in the datasets.
    rt_start_day
        Per-patient day of the first fraction (NaN: no RT), e.g. salvage RT at progression; ``None``: the plan's.
    mechanisms_off, solver, variables
        Passed to :func:`~abscopal.simulate`.
    pfs_bandwidth_day
        Bandwidth of the soft PFS (default: half the scan interval).
    parameters
        The arm's own typical values (:attr:`Arm.parameters <abscopal.simulate.Arm.parameters>`: over ``values``).
    model_events
        An imported model's own timed events (:func:`~abscopal.simulate`'s ``model_events``).
    prepared
        :func:`prepare_arm` of this arm with the same plan, patient count, window, ``rt_start_day``,
        ``mechanisms_off``, ``solver``, ``variables``, ``parameters`` and ``model_events`` (those arguments are then
        not used again); default: prepared here. The result is the same bit for bit.
    """
    split = values if isinstance(values, SplitValues) else split_values(model.spec, values, variability_names)
    if prepared is None:
        prepared = prepare_arm(
            model,
            plan,
            patients.n_patients,
            start_day=start_day,
            t_end_day=t_end_day,
            name=name,
            rt_start_day=rt_start_day,
            mechanisms_off=mechanisms_off,
            solver=solver,
            variables=variables,
            parameters=split.typical,
            arm_parameters=parameters,
            model_events=model_events,
        )
    elif prepared.n_patients != patients.n_patients or prepared.arms[0].name != name:
        raise ParameterError(
            f"prepared: made for arm {prepared.arms[0].name!r} with {prepared.n_patients} patients, not arm "
            f"{name!r} with {patients.n_patients}; prepare it with prepare_arm for this arm"
        )
    arm = prepared.arms[0]
    if isinstance(patients, VirtualPopulation):  # a plain population (module docstring)
        population = (
            replace(patients, variability=with_omegas(patients.variability, split.omegas)) if split.omegas else patients
        )
    else:
        population = population_for(patients, split.omegas, split.effects)
    ds = simulate_prepared(
        model,
        prepared,
        population=population,
        parameters=split.typical,
        out_of_bounds="clip",
    )
    scored_with = split.assessment(assessment)
    if arm.rt_start_day is not None:  # salvage RT: the lesion was not irradiated at baseline, so it stays assessed
        scored_with = replace(scored_with, exclude_irradiated=False)
    scored = ScoredArm(
        endpoints=score(ds, scored_with, patients=patients if isinstance(patients, VirtualPatients) else None),
        assessment=scored_with,
        start_day=float(ds.attrs.get("time_zero_day", start_day)),  # the survival origin: time zero
        t_end_day=t_end_day,
        pfs_bandwidth_day=pfs_bandwidth_day,
    )
    return ArmRun(simulation=ds, scored=scored, plans=tuple(arm.patient_plans(patients.n_patients)))
