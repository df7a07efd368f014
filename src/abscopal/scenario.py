"""Scenario files (TOML) for ``abscopal simulate``: keys map one to one onto the plan objects.

Format (every table is optional except ``[[arm]]``)::

    title = "SBRT + pembrolizumab vs pembrolizumab"
    fit = "default"              # the shipped calibration fits/default.json (default), "none" (model defaults,
                                 # uncalibrated) or the path of a calibration JSON written by `abscopal fit`

    [model]                      # a library model and its options
    name = "nsclc"               # nsclc | kosinsky2018
    n_lesions = 3
    version = 2                  # nsclc: 2 (default, model v2) or 1 (model v1, kept for comparison)
    growth = "gompertz"
    # or an imported SBML model (abscopal.sbml.table; docs/interop.md, "Using an imported model in scenarios"):
    # sbml = "models/Kosinsky2018.xml"                        # relative to this file's folder
    # roles = { lesion_volume = "TV", tumour_burden = "TV" }   # which outputs are scored (OBSERVABLE_ROLES)
    # units = { TV = "uL" }                                    # optional unit overrides
    # (model = "models/model.xml" is the same without roles or units)

    [simulation]
    t_end_day = 730
    output_interval_day = 7
    start_day = -14              # optional; default: the earliest event or 0
    mechanisms_off = []          # e.g. ["lymphocyte_kill"]

    [solver]                     # abscopal.solver.SolverOptions fields
    rtol = 1e-6

    [parameters]                 # typical values overriding the model defaults
    tumour_alpha_per_gy = 0.25

    [population]
    n_patients = 100             # --patients overrides
    seed = 1                     # --seed overrides
    variability = "default"      # the model's default, or a table:
    # [population.variability]
    # effector_baseline = { distribution = "lognormal", omega = 0.8 }

    [[arm]]
    name = "pembro"
    drug = "pembrolizumab_200mg_q3w"      # a named regimen, or a table of DrugRegimen fields

    [[arm]]
    name = "sbrt+pembro"
    drug = "pembrolizumab_200mg_q3w"
    [[arm.radiation]]                     # a named regimen plus course fields ...
    regimen = "sbrt_24gy_3fx"
    start_day = -7
    target_lesions = [0]
    # ... or RadiationCourse fields: dose_per_fraction_gy, n_fractions, calendar
    # ("weekday_daily", "daily", "every_other_day", "weekly", or a table
    #  { type = "spaced_pulses", interval_day = 10 } / { type = "explicit_days", offsets_day = [0, 3] })
    [arm.parameters]                      # arm-specific parameter values

    [[arm]]
    name = "prior RT+pembro"
    drug = "pembrolizumab_200mg_q3w"
    [[arm.radiation]]                     # RT before enrolment: the patients' history, not protocol treatment
    regimen = "conv_30gy_10fx"
    start_day = -90
    prior = true                          # every fraction must be before day 0

A course with ``prior = true`` (:attr:`RadiationCourse.prior <abscopal.treatment.RadiationCourse>`) is history: the
simulation starts at its first fraction (or ``start_day``), and each patient's lesion sizes at the start are chosen
so that the sizes hold at time zero (day 0, or the first protocol event of any arm if earlier; docs/design.md,
"Time zero", :mod:`abscopal.history`). ``--endpoints`` then scores from time zero (baseline scan there, PFS and OS
counted from it). ``prior = true`` on a course with a fraction at or after day 0 (or after a protocol event) is an
error naming the course, its fraction days and the fix.

An imported SBML model (``[model] sbml = ...``, :mod:`abscopal.sbml.table`) runs at the file's values: ``fit``
defaults to ``"none"`` (``"default"``, the shipped ``nsclc`` calibration, is refused; a calibration file made for
this model applies), ``variability = "default"`` is none. Its SBML events fire at their fixed times in every arm
(:attr:`Scenario.model_events`); arms with ``[[arm.radiation]]`` or a ``drug`` need the model's
``radiation_fraction`` / ``drug_dose`` events and are refused otherwise, so such arms differ by
``[arm.parameters]``. ``abscopal simulate --endpoints`` needs a ``lesion_diameter`` or ``lesion_volume`` role. The
file's path and sha256 are in the result's provenance (``model_source``).

Every key is checked: an unknown key raises with the closest valid key as a suggestion; a value of the wrong type
(``n_patients = 2.7`` or ``"3"``, ``mechanisms_off = "name"``), a file that is not UTF-8 or a title with a control
character raises an :class:`~abscopal.errors.AbscopalError` whose message starts with the file name. More than
:data:`abscopal.limits.MAX_PATIENTS` patients are refused unless ``allow_large=True`` (CLI ``--allow-large``).

Parameter layers, lowest first (one precedence, applied by :func:`abscopal.simulate`): model defaults, the arm's drug
PK (the regimen's population PK), the fit's typical values, ``[parameters]``, ``[arm.parameters]``. So a drug PK value
such as ``pk_cl_l_per_day`` given in ``[parameters]`` applies in every arm, with or without a drug.
The fit's omegas (``omega__<param>``) replace the omegas of the population's variability; its survival-model
fields go to :attr:`Scenario.survival` and its pneumonitis-model fields (``ntcp__<field>``) to :attr:`Scenario.ntcp`
(both used by ``abscopal simulate --endpoints``). Covariate effects of the fit
act on drawn virtual patients (studies, calibration), not on a plain scenario population, and are ignored here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._inputs import check_text, construct, names, read_toml, required_fields, with_context
from .errors import AbscopalError, ModelError, ParameterError, ScheduleError, unknown_name_message
from .limits import MAX_PATIENTS, check_cost
from .model.library import get_model
from .model.library.nsclc import model_variability
from .model.spec import ModelSpec
from .population import LogitNormal, LogNormal, Variability, VirtualPopulation
from .sbml.table import check_treatment, is_sbml_model, model_from_table
from .simulate import Arm
from .solver import SolverOptions
from .treatment import (
    Daily,
    DrugRegimen,
    EveryOtherDay,
    ExplicitDays,
    FractionCalendar,
    RadiationCourse,
    SpacedPulses,
    TreatmentPlan,
    WeekdayDaily,
    Weekly,
    drug_regimen,
    radiation_regimen,
)

__all__ = ["Scenario", "load_scenario", "parse_scenario"]

_TOP = {"title", "fit", "model", "simulation", "solver", "parameters", "population", "arm"}
_SIM = {"t_end_day", "output_interval_day", "output_times_day", "start_day", "mechanisms_off"}
_POP = {"n_patients", "seed", "variability"}
_ARM = {"name", "drug", "radiation", "parameters"}
_CALENDARS = {
    "weekday_daily": WeekdayDaily,
    "daily": Daily,
    "every_other_day": EveryOtherDay,
    "weekly": Weekly,
    "spaced_pulses": SpacedPulses,
    "explicit_days": ExplicitDays,
}
_DISTRIBUTIONS: dict[str, type[LogNormal] | type[LogitNormal]] = {"lognormal": LogNormal, "logitnormal": LogitNormal}


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A parsed scenario: everything :func:`abscopal.simulate` needs."""

    title: str
    model: ModelSpec
    arms: tuple[Arm, ...]
    population: VirtualPopulation
    parameters: Mapping[str, float] = field(default_factory=dict)
    solver: SolverOptions = field(default_factory=SolverOptions)
    simulation: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    fit: str | None = None
    survival: Mapping[str, float] = field(default_factory=dict)
    ntcp: Mapping[str, float] = field(default_factory=dict)
    """The fit's pneumonitis-model fields (``ntcp__<field>`` without the prefix), used when scoring."""
    model_events: tuple[tuple[float, str, tuple[float, ...]], ...] = ()
    """An imported SBML model's own timed events, fired in every arm (:attr:`abscopal.sbml.SbmlModel.schedule`)."""
    model_source: Mapping[str, Any] = field(default_factory=dict)
    """An imported SBML model's file, sha256, roles and units (:meth:`abscopal.sbml.table.ImportedModel.provenance`);
    empty for a library model."""

    def simulate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`abscopal.simulate`."""
        kwargs: dict[str, Any] = {
            "population": self.population,
            "parameters": dict(self.parameters) or None,
            "solver": self.solver,
            **self.simulation,
        }
        if self.model_events:
            kwargs["model_events"] = self.model_events
        if self.model_source:
            kwargs["model_source"] = dict(self.model_source)
        if self.fit is not None:  # as in the calibration: patient values beyond a bound are truncated to it
            kwargs["out_of_bounds"] = "clip"
        return kwargs


def _check_keys(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    if not isinstance(table, Mapping):
        raise ScheduleError(f"{where} must be a table, got {table!r}")
    for key in table:
        if key not in allowed:
            raise ScheduleError(f"{where}: " + unknown_name_message("key", key, allowed))


def _values(where: str, table: Any, model: ModelSpec) -> dict[str, float]:
    """A table of finite values of the model's parameters."""
    if not isinstance(table, Mapping):
        raise ParameterError(f"{where} must be a table of parameter values, got {table!r}")
    for k, v in table.items():
        if k not in model.parameter_names:
            raise ParameterError(
                f"{where}: " + unknown_name_message(f"parameter of model {model.name!r}", k, model.parameter_names)
            )
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ParameterError(f"{where}.{k} must be a finite number, got {v!r}")
    return dict(table)


def _count(where: str, value: Any, low: int) -> int:
    """An integer >= ``low`` (bools, floats such as 2.7 and strings such as "3" are refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ParameterError(f"{where} must be an integer >= {low}, got {value!r}; write a whole number without quotes")
    return value


def _calendar(where: str, spec: Any) -> FractionCalendar:
    if isinstance(spec, str):
        if spec not in _CALENDARS:
            raise ScheduleError(f"{where}.calendar: " + unknown_name_message("calendar", spec, _CALENDARS))
        return _CALENDARS[spec]()
    if isinstance(spec, Mapping):
        kind = spec.get("type")
        if kind not in _CALENDARS:
            raise ScheduleError(f"{where}.calendar: " + unknown_name_message("calendar type", str(kind), _CALENDARS))
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items() if k != "type"}
        try:
            return _CALENDARS[kind](**kwargs)
        except TypeError as exc:
            raise ScheduleError(f"{where}.calendar: {exc}") from None
    raise ScheduleError(f"{where}.calendar must be a name or a table, got {spec!r}")


def _course(where: str, spec: Mapping[str, Any]) -> RadiationCourse:
    if not isinstance(spec, Mapping):
        raise ScheduleError(f"{where} must be a table ([[arm.radiation]]), got {spec!r}")
    spec = dict(spec)
    if "target_lesions" in spec:
        lesions = spec["target_lesions"]
        if not isinstance(lesions, list):
            raise ScheduleError(
                f"{where}.target_lesions must be a list of lesion indices, got {lesions!r}; write e.g. [{lesions!r}]"
            )
        spec["target_lesions"] = tuple(lesions)
    if "calendar" in spec:
        spec["calendar"] = _calendar(where, spec["calendar"])
    if "regimen" in spec:
        name = spec.pop("regimen")
        allowed = {"start_day", "target_lesions", "blood_dose_per_fraction_gy", "mean_lung_dose_gy", "prior"}
        _check_keys(f"{where} (named regimen {name!r})", spec, allowed)
        if not isinstance(name, str):
            raise ScheduleError(f"{where}.regimen must be a regimen name, got {name!r}")
        return construct(where, lambda **kw: radiation_regimen(name, **kw), spec)
    fields = set(RadiationCourse.__dataclass_fields__)
    _check_keys(where, spec, fields)
    return construct(where, RadiationCourse, spec, required_fields(RadiationCourse))


def _drug(where: str, spec: Any) -> DrugRegimen:
    if isinstance(spec, str):
        return construct(where, drug_regimen, {"name": spec})
    if isinstance(spec, Mapping):
        spec = dict(spec)
        if "regimen" in spec:
            name = spec.pop("regimen")
            _check_keys(f"{where} (named regimen {name!r})", spec, {"start_day", "max_duration_day"})
            if not isinstance(name, str):
                raise ScheduleError(f"{where}.regimen must be a regimen name, got {name!r}")
            return construct(where, lambda **kw: drug_regimen(name, **kw), spec)
        _check_keys(where, spec, set(DrugRegimen.__dataclass_fields__))
        return construct(where, DrugRegimen, spec, required_fields(DrugRegimen))
    raise ScheduleError(f"{where} must be a regimen name or a table, got {spec!r}")


def _variability(model: ModelSpec, spec: Any, imported: bool = False) -> dict[str, Variability]:
    if spec is None:
        return {}
    if spec == "default":  # only the library nsclc model has a default variability
        return model_variability(model) if model.name.startswith("nsclc") and not imported else {}
    if not isinstance(spec, Mapping):
        raise ParameterError(f"population.variability must be 'default' or a table, got {spec!r}")
    out: dict[str, Variability] = {}
    for name, entry in spec.items():
        _check_keys(f"population.variability.{name}", entry, {"distribution", "omega"})
        dist = entry.get("distribution", "lognormal")
        if dist not in _DISTRIBUTIONS:
            raise ParameterError(
                f"population.variability.{name}: " + unknown_name_message("distribution", str(dist), _DISTRIBUTIONS)
            )
        omega = entry.get("omega", 0.0)
        if isinstance(omega, bool) or not isinstance(omega, int | float):
            raise ParameterError(f"population.variability.{name}.omega must be a number >= 0, got {omega!r}")
        out[name] = _DISTRIBUTIONS[dist](omega=float(omega))
    return out


def parse_scenario(
    data: Mapping[str, Any],
    *,
    n_patients: int | None = None,
    seed: int | None = None,
    source: str = "",
    allow_large: bool = False,
) -> Scenario:
    """Build a :class:`Scenario` from a parsed TOML mapping (CLI overrides for size and seed).

    More than :data:`abscopal.limits.MAX_PATIENTS` patients are refused unless ``allow_large`` is true.
    """
    _check_keys("scenario", data, _TOP)
    title = check_text("title", data.get("title", ""))
    model_table = data.get("model", {"name": "nsclc"})
    imported = None
    if is_sbml_model(model_table):
        imported = model_from_table(model_table, relative_to=Path(source).parent if source else None)
        model = imported.spec
    else:
        if not isinstance(model_table, Mapping):
            raise ModelError(
                f'model must be a table ([model] with name = "nsclc", ...) or an SBML file ("model.xml"), '
                f"got {model_table!r}"
            )
        model_spec = dict(model_table)
        name = model_spec.pop("name", "nsclc")
        model = get_model(name, **model_spec)
    sim = dict(_table("simulation", data.get("simulation", {})))
    _check_keys("simulation", sim, _SIM)
    if "mechanisms_off" in sim:
        sim["mechanisms_off"] = names("simulation.mechanisms_off", sim["mechanisms_off"])
        for m in sim["mechanisms_off"]:
            if m not in model.mechanism_names:
                raise ParameterError(
                    "simulation.mechanisms_off: " + unknown_name_message("mechanism", m, model.mechanism_names)
                )
    for key in ("t_end_day", "output_interval_day", "start_day"):
        v = sim.get(key, 0)
        if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v)):
            raise ScheduleError(f"simulation.{key} must be a number of days, got {v!r}")
    for key in ("t_end_day", "output_interval_day"):
        if key in sim and sim[key] <= 0:
            raise ScheduleError(f"simulation.{key} must be > 0 days, got {sim[key]!r}")
    if "output_times_day" in sim:
        times = sim["output_times_day"]
        if (
            not isinstance(times, list)
            or not times
            or not all(isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) for t in times)
        ):
            raise ScheduleError(f"simulation.output_times_day must be a non-empty list of finite days, got {times!r}")
    solver_spec = data.get("solver", {})
    _check_keys("solver", solver_spec, set(SolverOptions.__dataclass_fields__))
    parameters = _values("parameters", data.get("parameters", {}), model)
    pop = dict(_table("population", data.get("population", {})))
    _check_keys("population", pop, _POP)
    variability = _variability(model, pop.get("variability"), imported is not None)
    fit_name = data.get("fit", "default" if imported is None else "none")
    if not isinstance(fit_name, str):
        raise ParameterError(f"fit must be 'default', 'none' or a calibration file path, got {fit_name!r}")
    if imported is not None and fit_name == "default":
        raise ParameterError(
            f"fit = 'default': the shipped fit is a calibration of the library model 'nsclc', not of the imported "
            f"SBML model {str(imported.path)!r}; leave fit out or write fit = 'none' (the SBML file's values), or "
            "give a calibration file made for this model"
        )
    fit_typical: dict[str, float] = {}
    survival: dict[str, float] = {}
    ntcp: dict[str, float] = {}
    fit_path = None
    if fit_name != "none":
        from .fitted.shipped import resolve_fit_path

        base = Path(source).parent if source else None
        fit_path = resolve_fit_path(fit_name, relative_to=base)
    if fit_path is not None:  # None only for fit = "none"
        from .fitted.format import Fit
        from .fitted.values import split_values, with_omegas

        cal = Fit.load(fit_path)
        cal.check_model(model, fit_path)  # refuses a fit made for another model
        split = split_values(model, cal.all_values(), tuple(variability))
        fit_typical, survival, ntcp = split.typical, split.survival, dict(split.ntcp)
        variability = with_omegas(variability, split.omegas)
    size = _count("population.n_patients", n_patients if n_patients is not None else pop.get("n_patients", 1), 1)
    check_cost(f"population.n_patients = {size}", size, MAX_PATIENTS, "patients", allow_large, ParameterError)
    population = VirtualPopulation(
        n_patients=size,
        seed=_count("population.seed", seed if seed is not None else pop.get("seed", 0), 0),
        variability=variability,
    )
    arms_data = data.get("arm")
    if not arms_data:
        raise ScheduleError("scenario has no [[arm]] tables; define at least one arm")
    if not isinstance(arms_data, list):
        raise ScheduleError(f"arm must be an array of tables ([[arm]]), got {arms_data!r}")
    arms = []
    for i, arm in enumerate(arms_data):
        where = f"arm[{i}]"
        try:
            arms.append(_arm(where, arm, i, model))
            if imported is not None:
                plan = arms[-1].plan
                check_treatment(
                    model,
                    rt=bool(plan.radiation),
                    drug=plan.drug is not None,
                    where=f"arm {arms[-1].name!r}",
                    fix="give this model arms without [[arm.radiation]] and drug (they differ by [arm.parameters]), "
                    "or add the events to the SBML file (docs/interop.md, 'Using an imported model in scenarios "
                    "and studies')",
                )
        except AbscopalError as exc:
            raise with_context(exc, where) from None
    return Scenario(
        title=title,
        model=model,
        arms=tuple(arms),
        population=population,
        parameters=fit_typical | parameters,
        solver=SolverOptions(**solver_spec),
        simulation=sim,
        source=source,
        fit=None if fit_path is None else str(fit_path),
        survival=survival,
        ntcp=ntcp,
        model_events=() if imported is None else imported.schedule,
        model_source={} if imported is None else imported.provenance(),
    )


def _arm(where: str, arm: Any, i: int, model: ModelSpec) -> Arm:
    """One ``[[arm]]`` table."""
    _check_keys(where, arm, _ARM)
    radiation = arm.get("radiation", [])
    if not isinstance(radiation, list):
        raise ScheduleError(f"{where}.radiation must be an array of tables ([[arm.radiation]]), got {radiation!r}")
    courses = tuple(_course(f"{where}.radiation[{k}]", c) for k, c in enumerate(radiation))
    drug = _drug(f"{where}.drug", arm["drug"]) if "drug" in arm else None
    label = arm.get("name", f"arm{i}")
    return Arm(
        name=label,
        plan=TreatmentPlan(radiation=courses, drug=drug, name=label),
        parameters=_values(f"{where}.parameters", arm.get("parameters", {}), model),
    )


def load_scenario(
    path: str | Path, *, n_patients: int | None = None, seed: int | None = None, allow_large: bool = False
) -> Scenario:
    """Read and validate a scenario TOML file (``allow_large``: see :func:`parse_scenario`).

    Raises
    ------
    AbscopalError
        A subclass (ScheduleError, ParameterError, ModelError, ...) whose message starts with the file name, then
        names the table/key, the value and the fix.
    """
    path = Path(path)
    data = read_toml(path, "scenario file", ScheduleError)
    try:
        return parse_scenario(data, n_patients=n_patients, seed=seed, source=str(path), allow_large=allow_large)
    except AbscopalError as exc:
        raise with_context(exc, str(path)) from None


def _table(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScheduleError(f"{where} must be a table ([{where}]), got {value!r}")
    return value
