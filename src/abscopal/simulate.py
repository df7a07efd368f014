"""``simulate``: many patients x arms in one call, returned as a self-describing xarray Dataset.

The flow is a chain of plain functions on immutable inputs::

    values  = resolve_values(model, parameters, arm overrides, mechanisms_off)   # per arm
    P       = population.parameter_matrix(model, values)                          # per arm
    events  = plan_events(model, arm.plan, t_end_day)                             # per arm
    states  = solver.solve(compiled, P, t_out, events)                            # all at once
    dataset = to_dataset(...)

What does not depend on the parameter values or the population (the checked arms, their events and packed
schedule, the output grid, the stored outputs, the plans' treatment summary) is built by
:func:`prepare_simulation` into a :class:`PreparedSimulation`; :func:`simulate` is :func:`prepare_simulation` then
:func:`simulate_prepared`, and a caller that runs the same arms many times (the calibration objective) prepares
them once.

Time 0 is the first checkpoint-drug dose (RT before the drug has negative days). The
simulation starts at ``start_day`` (default: the earliest event of any arm, or 0), where the
patients' drawn lesion sizes hold. With a prior course (``RadiationCourse(prior=True)``: RT before
enrolment) in any arm, the drawn sizes hold at the trial's time zero instead (day 0, or the first
protocol event if earlier) and the simulation before it is the patients' history
(:mod:`abscopal.history`; docs/design.md, "Time zero").
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numba
import numpy as np
import xarray as xr

from ._frozen import FrozenMap
from ._version import __version__
from .blood_dose import FractionExposure, fraction_exposure, reference_field
from .errors import (
    ParameterError,
    ScheduleError,
    SterilisedLesionWarning,
    StiffFallbackWarning,
    unknown_name_message,
)
from .history import HistoryFit, hold_sizes_at_time_zero, size_parameters
from .limits import MAX_EVENTS_PER_ARM, MAX_OUTPUT_BYTES, check_cost
from .model.compile import CompiledModel, compile_model
from .model.spec import ModelSpec
from .outputs import OutputLayout, check_dtype, solve_to_store
from .parameters import ParameterSet, resolve_values
from .population import VirtualPopulation
from .provenance import environment
from .solver import EventSchedule, SolverOptions
from .treatment.plan import TreatmentPlan
from .treatment.radiation import RadiationCourse

__all__ = ["Arm", "PreparedSimulation", "plan_events", "prepare_simulation", "simulate", "simulate_prepared"]


@dataclass(frozen=True, kw_only=True)
class Arm:
    """A trial arm: a treatment plan and optional arm-specific parameter values.

    Attributes
    ----------
    name
        Arm label (unique within a simulation).
    plan
        The treatment plan every patient of the arm receives.
    parameters
        Arm-specific typical values (override the simulation's ``parameters`` and the drug's PK).
    rt_start_day
        Optional per-patient day of the first RT fraction (one entry per patient of the population; NaN = this
        patient gets no RT). The plan's radiation courses are moved together to start on that day
        (:meth:`TreatmentPlan.with_rt_offset`); the drug keeps its schedule. This is how RT "at progression"
        is simulated: each patient's salvage course starts at the scan that showed their progression. Prior
        courses (history) are not moved, and a NaN patient keeps them.
    """

    name: str
    plan: TreatmentPlan
    parameters: Mapping[str, float] = field(default_factory=dict)
    rt_start_day: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ScheduleError(f"arm name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.plan, TreatmentPlan):
            raise ScheduleError(f"arm {self.name!r}: plan must be a TreatmentPlan, got {type(self.plan).__name__}")
        object.__setattr__(self, "parameters", FrozenMap(dict(self.parameters)))
        if self.rt_start_day is not None:
            days = np.array(self.rt_start_day, dtype=float).ravel()
            if not self.plan.protocol_courses:
                raise ScheduleError(
                    f"arm {self.name!r}: rt_start_day is given but the plan has no radiation course to move "
                    "(prior courses are history and stay); add a RadiationCourse or drop rt_start_day"
                )
            if np.any(np.isinf(days)):
                raise ScheduleError(
                    f"arm {self.name!r}: rt_start_day must be finite days or NaN (no RT), got "
                    f"{days[np.isinf(days)][:3]}"
                )
            days.setflags(write=False)
            object.__setattr__(self, "rt_start_day", days)

    def patient_plans(self, n_patients: int) -> list[TreatmentPlan]:
        """The plan of each of ``n_patients`` patients (all :attr:`plan` unless :attr:`rt_start_day` is set)."""
        if self.rt_start_day is None:
            return [self.plan] * n_patients
        if self.rt_start_day.size != n_patients:
            raise ScheduleError(
                f"arm {self.name!r}: rt_start_day has {self.rt_start_day.size} entries for "
                f"{n_patients} patients; give one day (or NaN) per patient"
            )
        plain = replace(self.plan, radiation=self.plan.prior_courses)  # no protocol RT; the history stays
        cache: dict[float, TreatmentPlan] = {}
        out = []
        for d in self.rt_start_day:
            if math.isnan(d):
                out.append(plain)
            else:
                if float(d) not in cache:
                    cache[float(d)] = self.plan.with_rt_offset(float(d), drug_to_day0=False)
                out.append(cache[float(d)])
        return out


def _as_arms(arms: Mapping[str, TreatmentPlan] | Sequence[Arm] | TreatmentPlan) -> tuple[Arm, ...]:
    if isinstance(arms, TreatmentPlan):
        return (Arm(name=arms.name or "arm", plan=arms),)
    if isinstance(arms, Mapping):
        out = tuple(Arm(name=k, plan=v) for k, v in arms.items())
    else:
        out = tuple(arms)
        for a in out:
            if not isinstance(a, Arm):
                raise ScheduleError(f"arms must be Arm objects or a {{name: TreatmentPlan}} mapping, got {a!r}")
    if not out:
        raise ScheduleError("arms is empty; give at least one arm")
    names = [a.name for a in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ScheduleError(f"arm names must be unique; repeated: {sorted(dup)}")
    return out


def _blood_exposure(course: RadiationCourse) -> FractionExposure:
    """Blood dose and exposed share of one fraction of ``course`` on its reference field."""
    return fraction_exposure(
        course.dose_per_fraction_gy, reference_field(course), blood_dose_gy=course.blood_dose_per_fraction_gy
    )


def plan_events(spec: ModelSpec, plan: TreatmentPlan, t_end_day: float) -> list[tuple[float, str, list[float]]]:
    """Translate a treatment plan into the model's events.

    Radiation fractions become ``radiation_fraction`` events whose arguments are filled by name:
    ``dose_gy_<j>`` (dose if lesion j is in the field, else 0), ``dose_gy`` (models without
    lesion structure: the fraction dose), ``blood_dose_gy`` (the course's blood dose, default 0.1 x the dose),
    ``mean_lung_dose_gy``, ``mean_blood_dose_gy`` and ``exposed_blood_fraction`` (the blood-flow model of
    :func:`abscopal.blood_dose.fraction_exposure` on the course's reference field; a course's explicit
    ``blood_dose_per_fraction_gy`` replaces the mean blood dose) and ``course_last_fraction`` (1 at the last
    fraction of each course, else 0). Drug doses become ``drug_dose`` events with ``dose_mg`` and
    ``dose_mg_per_kg``.
    """
    events: list[tuple[float, str, list[float]]] = []
    names = [e.name for e in spec.events]
    fractions = plan.course_fractions()
    if fractions:
        if "radiation_fraction" not in names:
            raise ScheduleError(f"model {spec.name!r} has no 'radiation_fraction' event; it cannot take RT plans")
        ev = spec.event("radiation_fraction")
        n_les = max(spec.n_lesions, 1)
        blood = {"mean_blood_dose_gy", "exposed_blood_fraction"} & set(ev.argument_names)
        exposure = {id(c): _blood_exposure(c) for c in plan.radiation} if blood else {}  # once per course
        for fr, course, last in fractions:
            bad = [j for j in fr.lesions if j >= n_les]
            if bad:
                raise ScheduleError(
                    f"RT fraction at day {fr.time_day:g} targets lesion {bad[0]}, but model {spec.name!r} has "
                    f"{n_les} lesion(s) (indices 0..{n_les - 1}); change target_lesions"
                )
            if fr.time_day > t_end_day:
                continue
            args = []
            for a in ev.argument_names:
                if a.startswith("dose_gy_"):
                    args.append(fr.dose_gy if int(a.rsplit("_", 1)[1]) in fr.lesions else 0.0)
                elif a == "dose_gy":
                    args.append(fr.dose_gy)
                elif a == "blood_dose_gy":
                    args.append(fr.blood_dose_gy)
                elif a == "mean_lung_dose_gy":
                    args.append(fr.mean_lung_dose_gy)
                elif a == "mean_blood_dose_gy":
                    args.append(exposure[id(course)].mean_blood_dose_gy)
                elif a == "exposed_blood_fraction":
                    args.append(exposure[id(course)].exposed_blood_fraction)
                elif a == "course_last_fraction":
                    args.append(1.0 if last else 0.0)
                else:
                    raise ScheduleError(
                        f"radiation_fraction argument {a!r} of model {spec.name!r} has no "
                        "counterpart in a treatment Fraction"
                    )
            events.append((fr.time_day, "radiation_fraction", args))
    doses = plan.drug_doses(t_end_day)
    if doses:
        if "drug_dose" not in names:
            raise ScheduleError(f"model {spec.name!r} has no 'drug_dose' event; it cannot take drug regimens")
        ev = spec.event("drug_dose")
        for d in doses:
            lookup = {"dose_mg": d.dose_mg, "dose_mg_per_kg": d.dose_mg_per_kg}
            events.append((d.time_day, "drug_dose", [lookup[a] for a in ev.argument_names]))
    return events


def _model_events(
    spec: ModelSpec, events: Sequence[tuple[float, str, Sequence[float]]], t_end_day: float
) -> list[tuple[float, str, list[float]]]:
    """The checked ``model_events`` of :func:`simulate` up to ``t_end_day`` (ScheduleError naming a bad one)."""
    names = [e.name for e in spec.events]
    out = []
    for k, item in enumerate(events):
        try:
            t, name, args = item
        except (TypeError, ValueError):
            raise ScheduleError(f"model_events[{k}] must be (time_day, event name, args), got {item!r}") from None
        if name not in names:
            raise ScheduleError(f"model_events[{k}]: " + unknown_name_message("event", str(name), names))
        n_args = len(spec.event(name).arguments)
        if len(args) != n_args:
            raise ScheduleError(f"model_events[{k}]: event {name!r} takes {n_args} arguments, got {list(args)!r}")
        t = _check_finite(f"model_events[{k}] time", t)
        if t <= t_end_day:
            out.append((t, str(name), [float(x) for x in args]))
    return out


def _check_finite(name: str, value: float) -> float:
    if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(float(value)):
        raise ScheduleError(f"{name} must be a finite number of days, got {value!r}")
    return float(value)


def simulate(
    model: ModelSpec | CompiledModel,
    arms: Mapping[str, TreatmentPlan] | Sequence[Arm] | TreatmentPlan,
    *,
    population: VirtualPopulation | None = None,
    parameters: ParameterSet | Mapping[str, float] | None = None,
    t_end_day: float = 730.0,
    output_interval_day: float = 1.0,
    output_times_day: Sequence[float] | np.ndarray | None = None,
    start_day: float | None = None,
    mechanisms_off: Iterable[str] = (),
    solver: SolverOptions | None = None,
    variables: Iterable[str] | None = None,
    out_of_bounds: str = "raise",
    allow_large: bool = False,
    dtype: str = "float64",
    model_events: Sequence[tuple[float, str, Sequence[float]]] = (),
    model_source: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Simulate every patient of ``population`` under every arm.

    Parameters
    ----------
    model
        A model spec (compiled on first use, cached on disk) or an already compiled model.
    arms
        ``{name: TreatmentPlan}``, a sequence of :class:`Arm`, or one plan.
    population
        Virtual patients; default one patient at the typical values.
    parameters
        Typical values (a :class:`ParameterSet` or a mapping). Precedence, lowest first: the model defaults, the
        arm's drug PK (:meth:`TreatmentPlan.parameter_overrides`), ``parameters``, then :attr:`Arm.parameters`.
        So a value given here (e.g. ``pk_cl_l_per_day``, or a fitted value) applies in every arm, drug or not.
    t_end_day
        Last output time (days after the first drug dose).
    output_interval_day
        Spacing of the output grid, anchored at day 0 (plus ``start_day`` and ``t_end_day``);
        ignored if ``output_times_day`` is given.
    output_times_day
        Explicit output times (strictly increasing).
    start_day
        Start of the simulation; default ``min(0, earliest event)``. Without prior courses the drawn lesion sizes
        (the population's ``baseline_volume_mm3_<j>``) hold here. With a prior course in any arm they hold at time
        zero (the earliest :attr:`TreatmentPlan.time_zero_day` of the arms, added to the output grid): each
        patient's start sizes are chosen by :func:`abscopal.history.hold_sizes_at_time_zero`, and the dataset
        records ``time_zero_day`` and ``history_start_day`` (attributes), the shooting (provenance ``time_zero``),
        ``baseline_volume_drawn_mm3`` and ``history_sterilised``; :func:`abscopal.score` scores from time zero.
    mechanisms_off
        Names of mechanisms to switch off (see ``model.mechanism_names``).
    solver
        Solver settings (tolerances are explicit; see :class:`SolverOptions`).
    variables
        Output variable groups to keep (states and observables); default all. Only these are stored, and the
        observables are evaluated only if one of them is kept (e.g. ``abscopal.endpoints.readout.scored_outputs(spec)``:
        what :func:`abscopal.score` reads).
    out_of_bounds
        What to do when variability or covariates push a patient's value outside the parameter's bounds:
        ``"raise"`` (default, a ParameterError naming arm, patient and parameter) or ``"clip"`` (truncate to the
        bounds; a calibration exploring wide omegas uses this, and the count of clipped values is stored in the
        provenance). Non-finite values always raise.
    allow_large
        Lift the cost guards of :mod:`abscopal.limits`: more than 2 GiB of output (patients x arms x output times x
        kept values (the states and observables of ``variables``) x bytes per value of ``dtype``) or more than
        100,000 RT fractions plus drug doses in one arm are refused before any work unless this is true.
    dtype
        Storage type of the outputs: ``"float64"`` (default) or ``"float32"`` (half the memory, about 7 significant
        digits; the integration is float64 either way). Recorded in ``attrs["output_dtype"]``.
    model_events
        ``[(time_day, event name, args), ...]``: events of the model fired at fixed times in every arm and for every
        patient, besides the plan's (an imported SBML model's own timed events, :attr:`abscopal.sbml.SbmlModel.
        schedule`; events after ``t_end_day`` are dropped). At the same time, the plan's events fire first, then
        these in the order given. Recorded in the provenance (``model_events``).
    model_source
        Where the model came from (e.g. an SBML file's path and sha256), recorded in the provenance
        (``model_source``).

    Returns
    -------
    xarray.Dataset
        Dims ``arm``, ``patient``, ``time`` and ``lesion`` (per-lesion variables); every variable
        has ``units`` and ``long_name``; provenance in ``attrs["provenance"]`` (JSON); the model's output roles
        (:attr:`ModelSpec.roles`, read by :func:`abscopal.score`) in ``attrs["roles"]`` (JSON). The outputs are
        views of one store (:mod:`abscopal.outputs`), so their ``.values`` are not C-contiguous.

    Raises
    ------
    ParameterError, ScheduleError
        For invalid input or a run above the cost limits, before any integration starts; an RT fraction after
        ``t_end_day`` in an arm's plan is refused (it would be reported as delivered but never simulated); so is a
        prior course on a model without per-lesion start sizes.

    Warns
    -----
    AbscopalWarning
        When patients fall back to the stiff solver (Rodas4, see :mod:`abscopal.solver`); the count per arm is also in
        the provenance.
        :class:`~abscopal.errors.SterilisedLesionWarning` when a prior course sterilises lesions
        (:mod:`abscopal.history`).
    SolverError
        If a patient cannot be integrated (names arm, patient and time).
    """
    # ---- validate everything before any work -------------------------------------------------
    spec = model.spec if isinstance(model, CompiledModel) else model
    if not isinstance(spec, ModelSpec):
        raise ParameterError(f"model must be a ModelSpec or CompiledModel, got {type(model).__name__}")
    arm_list = _as_arms(arms)
    population = population or VirtualPopulation(n_patients=1)
    if not isinstance(solver or SolverOptions(), SolverOptions):
        raise ParameterError(f"solver must be a SolverOptions, got {type(solver).__name__}")
    if not isinstance(population, VirtualPopulation):
        raise ParameterError(f"population must be a VirtualPopulation, got {type(population).__name__}")
    population.check(spec)
    prepared = prepare_simulation(
        spec,
        arm_list,
        n_patients=int(population.n_patients),
        t_end_day=t_end_day,
        output_interval_day=output_interval_day,
        output_times_day=output_times_day,
        start_day=start_day,
        mechanisms_off=mechanisms_off,
        solver=solver,
        variables=variables,
        allow_large=allow_large,
        dtype=dtype,
        model_events=model_events,
        parameters=parameters,
    )
    return _run_prepared(model, prepared, population, parameters, out_of_bounds, model_source, stacklevel=3)


@dataclass(frozen=True, eq=False)
class PreparedSimulation:
    """Everything :func:`simulate` derives from the model, the arms and the settings before a parameter value or a
    patient enters: the checked arms, their model events and packed event schedule, the output grid, the stored
    outputs and the plans' treatment summary. Made by :func:`prepare_simulation`; :func:`simulate_prepared` runs it
    for a population and parameters, so a caller that simulates the same arms many times (the calibration
    objective) builds them once. Do not modify its arrays."""

    spec: ModelSpec
    arms: tuple[Arm, ...]
    n_patients: int
    mechanisms_off: tuple[str, ...]
    solver: SolverOptions
    model_events: tuple[tuple[float, str, list[float]], ...]
    arm_events: tuple[Any, ...]  # per arm: one event list for all patients, or one list per patient
    schedule: EventSchedule
    start_day: float
    time_zero_day: float
    history: bool
    t_out: np.ndarray
    layout: OutputLayout
    dtype: np.dtype
    labels: tuple[str, ...]
    treatment: Mapping[str, tuple[Any, ...]]


def prepare_simulation(
    model: ModelSpec | CompiledModel,
    arms: Mapping[str, TreatmentPlan] | Sequence[Arm] | TreatmentPlan,
    *,
    n_patients: int,
    t_end_day: float = 730.0,
    output_interval_day: float = 1.0,
    output_times_day: Sequence[float] | np.ndarray | None = None,
    start_day: float | None = None,
    mechanisms_off: Iterable[str] = (),
    solver: SolverOptions | None = None,
    variables: Iterable[str] | None = None,
    allow_large: bool = False,
    dtype: str = "float64",
    model_events: Sequence[tuple[float, str, Sequence[float]]] = (),
    parameters: ParameterSet | Mapping[str, float] | None = None,
) -> PreparedSimulation:
    """Check and build what :func:`simulate` needs besides the population and the parameter values (arguments as
    there; ``n_patients`` of the population to come). ``parameters`` only enters the check that the arms' drug PK
    resolves (their values are given again to :func:`simulate_prepared`).

    Raises
    ------
    ParameterError, ScheduleError
        As :func:`simulate`, before any integration.
    """
    spec = model.spec if isinstance(model, CompiledModel) else model
    if not isinstance(spec, ModelSpec):
        raise ParameterError(f"model must be a ModelSpec or CompiledModel, got {type(model).__name__}")
    arm_list = _as_arms(arms)
    solver = solver or SolverOptions()
    if not isinstance(solver, SolverOptions):
        raise ParameterError(f"solver must be a SolverOptions, got {type(solver).__name__}")
    if isinstance(mechanisms_off, str):
        raise ParameterError(
            f"mechanisms_off must be a list of mechanism names, got the string {mechanisms_off!r}; "
            f"write [{mechanisms_off!r}]"
        )
    mechanisms_off = tuple(mechanisms_off)
    for m in mechanisms_off:
        if m not in spec.mechanism_names:
            raise ParameterError("mechanisms_off: " + unknown_name_message("mechanism", m, spec.mechanism_names))
    t_end_day = _check_finite("t_end_day", t_end_day)
    for a in arm_list:
        _check_plan_cost(a, t_end_day, allow_large)
        if a.rt_start_day is None:
            late = [fr.time_day for fr in a.plan.fractions() if fr.time_day > t_end_day]
            if late:
                raise ScheduleError(
                    f"arm {a.name!r}: RT fraction on day {late[0]:g} is after t_end_day = "
                    f"{t_end_day:g} ({len(late)} fraction(s) would never be given); raise t_end_day or "
                    "move the course earlier"
                )
        missing = sorted(set(a.plan.parameter_overrides()) - set(spec.parameter_names))
        if missing:
            raise ScheduleError(
                f"arm {a.name!r}: model {spec.name!r} has no drug PK parameters {missing}; "
                "it cannot take drug regimens (remove the drug or use a model with PK)"
            )
    # one precedence, lowest first: model defaults < the arm's drug PK < ``parameters`` (a fit's typical values
    # and a scenario's [parameters]) < the arm's own ``parameters``
    for a in arm_list:
        resolve_values(spec, a.plan.parameter_overrides(), parameters, a.parameters, mechanisms_off=mechanisms_off)
    n = int(n_patients)
    extra = _model_events(spec, model_events, t_end_day)
    arm_events: list[Any] = []  # per arm: one event list shared by all patients, or one list per patient
    for a in arm_list:
        if a.rt_start_day is None:
            arm_events.append(plan_events(spec, a.plan, t_end_day) + extra)
        else:
            memo: dict[int, list] = {}
            arm_events.append(
                [memo.setdefault(id(pl), plan_events(spec, pl, t_end_day) + extra) for pl in a.patient_plans(n)]
            )
    first = min(
        [0.0]
        + [
            e[0]
            for a, evs in zip(arm_list, arm_events, strict=True)
            for e in (evs if a.rt_start_day is None else [x for lst in evs for x in lst])
        ]
    )
    t0 = first if start_day is None else _check_finite("start_day", start_day)
    if t0 > first:
        raise ScheduleError(f"start_day = {t0} is after the first event at day {first}; start earlier")
    # time zero (docs/design.md): with a prior course in any arm, day 0 or the first protocol event of any arm
    # (the simulation start without the history); the drawn sizes hold there. Without one: the start, as ever.
    history = any(a.plan.prior_courses for a in arm_list)
    time_zero = (
        min(pl.time_zero_day for a in arm_list for pl in {id(p): p for p in a.patient_plans(n)}.values())
        if history
        else t0
    )
    if output_times_day is not None:
        try:
            t_out = np.asarray(output_times_day, float)
        except (TypeError, ValueError):
            raise ScheduleError(f"output_times_day must be a sequence of days, got {output_times_day!r}") from None
        n_times: float = t_out.size
    else:
        if (
            isinstance(output_interval_day, bool)
            or not isinstance(output_interval_day, int | float | np.number)
            or not (output_interval_day > 0 and math.isfinite(output_interval_day))
        ):
            raise ScheduleError(f"output_interval_day must be > 0, got {output_interval_day!r}")
        n_times = (t_end_day - t0) / output_interval_day + 2
    store_dtype = check_dtype(dtype)
    groups = _groups(spec)
    keep = tuple(groups) if variables is None else tuple(variables)
    for v in keep:
        if v not in groups:
            raise ParameterError("variables: " + unknown_name_message("output variable", v, groups))
    layout = OutputLayout.of(groups, keep)
    n_values = layout.n_columns
    check_cost(
        f"output of {len(arm_list)} arm(s) x {n} patients x {n_times:.3g} output times x {n_values} values "
        f"({store_dtype.name})",
        float(store_dtype.itemsize) * len(arm_list) * n * n_times * n_values,
        MAX_OUTPUT_BYTES,
        "bytes",
        allow_large,
    )
    if output_times_day is None:
        # the grid is anchored at day 0 (first drug dose), so weekly output always contains the
        # scan days of a trial schedule, whatever the start; start and end are always included
        first = math.ceil(t0 / output_interval_day - 1e-9)
        last = math.floor(t_end_day / output_interval_day + 1e-9)
        grid = output_interval_day * np.arange(first, last + 1)
        t_out = np.unique(np.concatenate([[t0], grid[(grid > t0) & (grid < t_end_day)], [t_end_day]]))
        if history:  # the baseline scan is at time zero
            t_out = np.unique(np.concatenate([t_out, [time_zero]]))
    if (
        t_out.ndim != 1
        or t_out.size == 0
        or not np.all(np.isfinite(t_out))
        or np.any(np.diff(t_out) <= 0)
        or t_out[0] < t0
    ):
        raise ScheduleError(
            f"output_times_day must be finite, strictly increasing and not before start_day "
            f"({t0:g}); got {t_out[:6]}{'...' if t_out.size > 6 else ''}"
        )
    if history:
        size_parameters(spec)  # refuses a model without per-lesion start sizes before any work
    blocks = [
        EventSchedule.concatenate([(EventSchedule.from_lists(spec, [evs]), n)])
        if a.rt_start_day is None
        else EventSchedule.from_lists(spec, evs)
        for a, evs in zip(arm_list, arm_events, strict=True)
    ]
    sched = _stack(blocks)
    t_out = np.array(t_out, dtype=float)  # (arrays the kernels read stay writable: numba types read-only apart)
    treatment = _treatment_summary(spec, arm_list, len(arm_list), n, float(t_out[-1]))
    for item in treatment.values():
        item[1].setflags(write=False)
    return PreparedSimulation(
        spec=spec,
        arms=arm_list,
        n_patients=n,
        mechanisms_off=mechanisms_off,
        solver=solver,
        model_events=tuple(extra),
        arm_events=tuple(arm_events),
        schedule=sched,
        start_day=float(t0),
        time_zero_day=float(time_zero),
        history=history,
        t_out=t_out,
        layout=layout,
        dtype=store_dtype,
        labels=tuple(f"arm {a.name!r}, patient {i}" for a in arm_list for i in range(n)),
        treatment=treatment,
    )


def simulate_prepared(
    model: ModelSpec | CompiledModel,
    prepared: PreparedSimulation,
    *,
    population: VirtualPopulation | None = None,
    parameters: ParameterSet | Mapping[str, float] | None = None,
    out_of_bounds: str = "raise",
    model_source: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """:func:`simulate` of the arms and settings of ``prepared`` (:func:`prepare_simulation` of the same model) for a
    population and parameter values: the same dataset, bit for bit (tested)."""
    spec = model.spec if isinstance(model, CompiledModel) else model
    if not isinstance(prepared, PreparedSimulation):
        raise ParameterError(f"prepared must be a PreparedSimulation, got {type(prepared).__name__}")
    if spec is not prepared.spec and spec.content_hash() != prepared.spec.content_hash():
        raise ParameterError(
            f"prepared: made for model {prepared.spec.name!r}, not {spec.name!r}; call prepare_simulation with this "
            "model"
        )
    population = population or VirtualPopulation(n_patients=1)
    if not isinstance(population, VirtualPopulation):
        raise ParameterError(f"population must be a VirtualPopulation, got {type(population).__name__}")
    population.check(spec)
    return _run_prepared(model, prepared, population, parameters, out_of_bounds, model_source, stacklevel=3)


def _run_prepared(
    model: ModelSpec | CompiledModel,
    prepared: PreparedSimulation,
    population: VirtualPopulation,
    parameters: ParameterSet | Mapping[str, float] | None,
    out_of_bounds: str,
    model_source: Mapping[str, Any] | None,
    *,
    stacklevel: int,
) -> xr.Dataset:
    """The rest of :func:`simulate` once the population is checked: values, bounds, history, solve, dataset."""
    spec = prepared.spec
    n = int(population.n_patients)
    if n != prepared.n_patients:
        raise ParameterError(
            f"population has {n} patients, the prepared simulation {prepared.n_patients}; prepare it for {n}"
        )
    arm_list, solver, mechanisms_off = prepared.arms, prepared.solver, prepared.mechanisms_off
    arm_values = [
        resolve_values(spec, a.plan.parameter_overrides(), parameters, a.parameters, mechanisms_off=mechanisms_off)
        for a in arm_list
    ]
    if out_of_bounds not in ("raise", "clip"):
        raise ParameterError(f"out_of_bounds must be 'raise' or 'clip', got {out_of_bounds!r}")
    Ps = [population.parameter_matrix(spec, vals) for vals in arm_values]
    n_clipped = 0
    if out_of_bounds == "clip":
        lo = np.array([p.lower for p in spec.all_parameters])
        hi = np.array([p.upper for p in spec.all_parameters])
        for k, P in enumerate(Ps):
            n_clipped += int(np.sum((P < lo) | (P > hi)))
            Ps[k] = np.clip(P, lo, hi)
    for a, P in zip(arm_list, Ps, strict=True):
        _check_patient_bounds(spec, P, a.name)

    # ---- work ---------------------------------------------------------------------------------
    compiled = compile_model(model) if not isinstance(model, CompiledModel) else model
    t0, time_zero, t_out = prepared.start_day, prepared.time_zero_day, prepared.t_out
    fits: list[HistoryFit] = []
    if prepared.history:  # choose the start sizes so that the drawn sizes hold at time zero (abscopal.history)
        for k, (a, evs) in enumerate(zip(arm_list, prepared.arm_events, strict=True)):
            Ps[k], fit = hold_sizes_at_time_zero(
                compiled,
                Ps[k],
                [evs] * n if a.rt_start_day is None else evs,
                start_day=t0,
                time_zero_day=time_zero,
                t_end_day=float(t_out[-1]),
                options=solver,
                labels=[f"arm {a.name!r}, patient {i} (history)" for i in range(n)],
            )
            fits.append(fit)
    P_all = np.concatenate(Ps, axis=0)
    layout = prepared.layout
    sol = solve_to_store(
        compiled,
        P_all,
        t_out,
        events=prepared.schedule,
        t0=t0,
        options=solver,
        labels=prepared.labels,
        layout=layout,
        dtype=prepared.dtype,
        n_threads=numba.get_num_threads() if solver.parallel else 1,
    )
    if sol.n_fallback:
        per_arm = np.bincount(np.asarray(sol.fallback_patients, int) // n, minlength=len(arm_list))
        which = ", ".join(f"{int(k)} in arm {a.name!r}" for a, k in zip(arm_list, per_arm, strict=True) if k)
        warnings.warn(
            f"{sol.n_fallback} of {n * len(arm_list)} patients ({which}) were too stiff for the explicit "
            "solver and were re-integrated with the compiled Rosenbrock solver Rodas4 (results are valid; "
            "SolverOptions(method='auto') detects stiffness early); recorded as stiff_fallback_patients in the "
            "provenance",
            StiffFallbackWarning,
            stacklevel=stacklevel,
        )
    ds = _to_dataset(
        spec,
        compiled,
        arm_list,
        population,
        parameters,
        mechanisms_off,
        solver,
        t_out,
        t0,
        P_all,
        layout.views(sol.store, len(arm_list)),
        layout,
        sol.n_fallback,
        prepared.dtype.name,
        prepared.treatment,
    )
    if out_of_bounds == "clip":
        prov = json.loads(ds.attrs["provenance"]) | {"out_of_bounds": "clip", "clipped_values": n_clipped}
        ds.attrs["provenance"] = json.dumps(prov, sort_keys=True)
    extra = prepared.model_events
    if extra or model_source:
        prov = json.loads(ds.attrs["provenance"])
        if extra:
            prov["model_events"] = [[t, name, list(args)] for t, name, args in extra]
        if model_source:
            prov["model_source"] = dict(model_source)
        ds.attrs["provenance"] = json.dumps(prov, sort_keys=True, default=str)
    if prepared.history:
        _record_history(ds, arm_list, fits, t0, time_zero)
    return ds


def _record_history(ds: xr.Dataset, arms: Sequence[Arm], fits: Sequence[HistoryFit], start: float, zero: float) -> None:
    """Time zero, the history start and the shooting of each arm, in the dataset (attrs, provenance, variables)."""
    n_steril = sum(int(f.sterilised.sum()) for f in fits)
    if n_steril:
        warnings.warn(
            f"{n_steril} lesion(s) are sterilised by the prior RT: even the largest start size the model allows "
            f"leaves less than the drawn size at time zero (day {zero:g}); they start at that bound and are smaller "
            "than drawn at time zero (variable history_sterilised; abscopal.history)",
            SterilisedLesionWarning,
            stacklevel=3,
        )
    dims = ("arm", "patient", "lesion")
    ds["baseline_volume_drawn_mm3"] = (
        dims,
        np.stack([f.target_volume_mm3 for f in fits]),
        {"units": "mm3", "long_name": "drawn lesion volume, held at time zero (the baseline scan)"},
    )
    ds["history_sterilised"] = (
        dims,
        np.stack([f.sterilised for f in fits]),
        {"units": "1", "long_name": "lesion sterilised by the prior RT (smaller than drawn at time zero)"},
    )
    ds.attrs["time_zero_day"] = float(zero)
    ds.attrs["history_start_day"] = float(start)
    prov = json.loads(ds.attrs["provenance"])
    prov["time_zero"] = {
        "time_zero_day": float(zero),
        "history_start_day": float(start),
        "rule": "drawn lesion sizes hold at time zero; prior courses are simulated before it (abscopal.history)",
        "arms": {a.name: f.summary() for a, f in zip(arms, fits, strict=True)},
    }
    ds.attrs["provenance"] = json.dumps(prov, sort_keys=True)


def _check_plan_cost(arm: Arm, t_end_day: float, allow_large: bool) -> None:
    """Refuse an arm whose plan has more events than :data:`~abscopal.limits.MAX_EVENTS_PER_ARM` (before expanding)."""
    n_fx = sum(int(c.n_fractions) for c in arm.plan.radiation)
    drug, n_doses = arm.plan.drug, 0.0
    if drug is not None:
        span = min(float(drug.max_duration_day), max(t_end_day - float(drug.start_day), 0.0))
        n_doses = span / float(drug.interval_day) + 1
        if drug.n_doses is not None:
            n_doses = min(n_doses, drug.n_doses)
    check_cost(
        f"arm {arm.name!r}: {n_fx} RT fractions and about {n_doses:.3g} drug doses",
        n_fx + n_doses,
        MAX_EVENTS_PER_ARM,
        "events",
        allow_large,
    )


def _stack(blocks: Sequence[EventSchedule]) -> EventSchedule:
    """Concatenate multi-patient schedules (patients of block 0, then block 1, ...)."""
    width = max([b.args.shape[1] for b in blocks] + [1])
    ptrs, offset = [np.zeros(1, np.int64)], 0
    for b in blocks:
        ptrs.append(offset + b.ptr[1:])
        offset += int(b.ptr[-1])
    args = [np.pad(b.args, ((0, 0), (0, width - b.args.shape[1]))) for b in blocks]
    return EventSchedule(
        np.concatenate(ptrs),
        np.concatenate([b.times for b in blocks]),
        np.concatenate([b.kinds for b in blocks]),
        np.concatenate(args, axis=0),
    )


def _check_patient_bounds(spec: ModelSpec, P: np.ndarray, arm: str) -> None:
    for k, p in enumerate(spec.all_parameters):
        col = P[:, k]
        bad = np.flatnonzero(~np.isfinite(col) | (col < p.lower) | (col > p.upper))
        if bad.size:
            i = int(bad[0])
            raise ParameterError(
                f"arm {arm!r}, patient {i}: parameter {p.name!r} = {col[i]!r} is outside its bounds "
                f"[{p.lower}, {p.upper}] after applying variability; narrow the variability or the typical value"
            )


def _treatment_summary(
    spec: ModelSpec, arms: Sequence[Arm], n_arms: int, n_patients: int, t_end_day: float
) -> dict[str, Any]:
    """Per-arm facts of the plans that endpoints need (irradiated lesions, doses, timing)."""
    from .treatment.plan import rt_drug_gap_day

    n_les = max(spec.n_lesions, 1)
    gap = np.full(n_arms, np.nan)
    dose = np.zeros((n_arms, n_les))
    mld = np.zeros(n_arms)
    n_fx = np.zeros(n_arms)
    rt_first = np.full(n_arms, np.nan)
    drug_first = np.full(n_arms, np.nan)
    for a, arm in enumerate(arms):
        fractions = arm.plan.fractions()
        for fr in fractions:
            for j in fr.lesions:
                if j < n_les:
                    dose[a, j] += fr.dose_gy
            mld[a] += fr.mean_lung_dose_gy
        n_fx[a] = len(fractions)
        if fractions:
            rt_first[a] = min(fr.time_day for fr in fractions)
            if arm.rt_start_day is not None:  # per-patient starts: the earliest one
                rt_first[a] = np.nanmin(arm.rt_start_day) if np.any(~np.isnan(arm.rt_start_day)) else np.nan
        doses = arm.plan.drug_doses(math.inf)
        if doses:
            drug_first[a] = doses[0].time_day
        gaps = [  # per-patient starts: each patient's course, and the smallest gap of any patient
            rt_drug_gap_day((f.time_day for f in pl.fractions()), (d.time_day for d in pl.drug_doses(t_end_day)))
            for pl in {id(pl): pl for pl in arm.patient_plans(n_patients)}.values()
        ]
        gaps = [g for g in gaps if not math.isnan(g)]
        gap[a] = min(gaps) if gaps else np.nan
    lesion_dims = ("arm", "lesion") if spec.n_lesions else ("arm", "rt_target")
    return {
        "rt_dose_gy": (lesion_dims, dose, {"units": "Gy", "long_name": "total physical RT dose to the lesion"}),
        "mean_lung_dose_gy": (("arm",), mld, {"units": "Gy", "long_name": "physical mean lung dose of the RT plan"}),
        "rt_n_fractions": (("arm",), n_fx, {"units": "1", "long_name": "number of RT fractions"}),
        "rt_first_day": (("arm",), rt_first, {"units": "day", "long_name": "day of the first RT fraction"}),
        "drug_first_day": (("arm",), drug_first, {"units": "day", "long_name": "day of the first drug dose"}),
        "rt_drug_gap_day": (
            ("arm",),
            gap,
            {
                "units": "day",
                "long_name": "smallest interval between an RT fraction and a drug dose (NaN: no RT or no drug)",
            },
        ),
    }


def _groups(spec: ModelSpec) -> dict[str, list[tuple[str, int, int | None, str, str]]]:
    """Output groups: name -> [(kind, index, lesion, units, long_name)]."""
    groups: dict[str, list[tuple[str, int, int | None, str, str]]] = {}
    for i, s in enumerate(spec.states):
        groups.setdefault(s.group or s.name, []).append(("state", i, s.lesion, s.units, s.long_name))
    for i, o in enumerate(spec.observables):
        groups.setdefault(o.group or o.name, []).append(("obs", i, o.lesion, o.units, o.long_name))
    return groups


def _to_dataset(
    spec,
    compiled,
    arms,
    population,
    parameters,
    mechanisms_off,
    solver,
    t_out,
    t0,
    P_all,
    values,
    layout,
    n_fallback,
    dtype_name,
    treatment,
) -> xr.Dataset:
    n_arms, n = len(arms), int(population.n_patients)
    coords: dict[str, Any] = {
        "arm": ("arm", [a.name for a in arms], {"long_name": "trial arm", "units": "1"}),
        "patient": ("patient", np.arange(n), {"long_name": "virtual patient index", "units": "1"}),
        "time": ("time", t_out, {"long_name": "time since first drug dose", "units": "day"}),
    }
    if spec.n_lesions:
        coords["lesion"] = ("lesion", np.arange(spec.n_lesions), {"long_name": "lesion index", "units": "1"})
    data: dict[str, Any] = {}
    for name, members in layout.groups.items():  # views of the store (abscopal.outputs), no copies
        _, _, lesion, units, long_name = members[0]
        dims = ("arm", "patient", "time") if lesion is None else ("arm", "patient", "lesion", "time")
        data[name] = (dims, values[name], {"units": units, "long_name": long_name})
    data.update({k: (dims, np.array(v), attrs) for k, (dims, v, attrs) in treatment.items()})  # copies: writable
    starts = np.array(
        [
            np.full(n, np.nan if not a.plan.fractions() else min(f.time_day for f in a.plan.fractions()))
            if a.rt_start_day is None
            else a.rt_start_day
            for a in arms
        ],
        dtype=float,
    )
    data["rt_start_day"] = (
        ("arm", "patient"),
        starts,
        {"units": "day", "long_name": "day of the patient's first RT fraction (NaN: no RT)"},
    )
    pnames = list(spec.parameter_names)
    units_of = {p.name: p.units for p in spec.all_parameters}
    data["parameter_value"] = (
        ("arm", "patient", "parameter"),
        P_all.reshape(n_arms, n, -1),
        {"units": "see coordinate parameter_units", "long_name": "per-patient parameter value"},
    )
    coords["parameter"] = ("parameter", pnames, {"long_name": "parameter name", "units": "1"})
    coords["parameter_units"] = (
        "parameter",
        [units_of[p] for p in pnames],
        {"long_name": "parameter units", "units": "1"},
    )
    if population.varying:
        data["population_z"] = (
            ("patient", "varying_parameter"),
            np.asarray(population.z),
            {"units": "1", "long_name": "standard-normal draws (common random numbers)"},
        )
        coords["varying_parameter"] = (
            "varying_parameter",
            list(population.varying),
            {"long_name": "parameter with inter-patient variability", "units": "1"},
        )
    pset = parameters.name if isinstance(parameters, ParameterSet) else ("custom" if parameters else "defaults")
    provenance = {
        "package": "abscopal",
        "version": __version__,
        "environment": environment(),
        "model": spec.name,
        "model_hash": spec.content_hash(),
        "kernel_key": compiled.key,
        "parameter_set": pset,
        "parameter_overrides": dict(parameters.values if isinstance(parameters, ParameterSet) else parameters or {}),
        "population": population.describe(),
        "seed": int(population.seed),
        "arms": {
            a.name: {
                "plan": a.plan.describe(),
                "parameters": dict(a.parameters),
                **({} if a.rt_start_day is None else {"rt_start_day": "per patient (variable rt_start_day)"}),
            }
            for a in arms
        },
        "mechanisms_off": list(mechanisms_off),
        "solver": solver.as_dict(),
        "stiff_fallback_patients": int(n_fallback),
        "start_day": float(t0),
        "sources": spec.sources(),  # parameter sources and model references travel with the result
    }
    attrs = {
        "title": f"abscopal simulation of model {spec.name}",
        "provenance": json.dumps(provenance, sort_keys=True),
        "abscopal_version": __version__,
        "model_hash": spec.content_hash(),
        "seed": int(population.seed),
        "roles": json.dumps(dict(spec.roles), sort_keys=True),  # which output plays which part in scoring
        "output_dtype": dtype_name,  # how the outputs are stored (simulate(dtype=...))
    }
    return xr.Dataset(data_vars=data, coords=coords, attrs=attrs)
