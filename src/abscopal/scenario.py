"""Scenario files (TOML) for ``abscopal simulate``: keys map one to one onto the plan objects.

Format (every table is optional except ``[[arm]]``)::

    title = "SBRT + pembrolizumab vs pembrolizumab"
    fit = "default"              # the shipped calibration fits/default.json (default), "none" (model defaults,
                                 # uncalibrated) or the path of a calibration JSON written by `abscopal fit`

    [model]                      # a library model and its options
    name = "nsclc"               # nsclc | kosinsky2018
    n_lesions = 3
    growth = "gompertz"

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

Every key is checked: an unknown key raises with the closest valid key as a suggestion.

Parameter layers, lowest first (one precedence, applied by :func:`abscopal.simulate`): model defaults, the arm's drug
PK (the regimen's population PK), the fit's typical values, ``[parameters]``, ``[arm.parameters]``. So a drug PK value
such as ``pk_cl_l_per_day`` given in ``[parameters]`` applies in every arm, with or without a drug.
The fit's omegas (``omega__<param>``) replace the omegas of the population's variability; its survival-model
fields go to :attr:`Scenario.survival` (used by ``abscopal simulate --endpoints``). Covariate effects of the fit
act on drawn virtual patients (studies, calibration), not on a plain scenario population, and are ignored here.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ParameterError, ScheduleError, unknown_name_message
from .model.library import default_variability, get_model
from .model.spec import ModelSpec
from .population import LogitNormal, LogNormal, VirtualPopulation
from .simulate import Arm
from .solver import SolverOptions
from .treatment import (
    Daily,
    DrugRegimen,
    EveryOtherDay,
    ExplicitDays,
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
_CALENDARS = {"weekday_daily": WeekdayDaily, "daily": Daily, "every_other_day": EveryOtherDay, "weekly": Weekly,
              "spaced_pulses": SpacedPulses, "explicit_days": ExplicitDays}
_DISTRIBUTIONS = {"lognormal": LogNormal, "logitnormal": LogitNormal}


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

    def simulate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`abscopal.simulate`."""
        kwargs = {"population": self.population, "parameters": dict(self.parameters) or None,
                  "solver": self.solver, **self.simulation}
        if self.fit is not None:  # as in the calibration: patient values beyond a bound are truncated to it
            kwargs["out_of_bounds"] = "clip"
        return kwargs


def _check_keys(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    if not isinstance(table, Mapping):
        raise ScheduleError(f"{where} must be a table, got {table!r}")
    for key in table:
        if key not in allowed:
            raise ScheduleError(f"{where}: " + unknown_name_message("key", key, allowed))


def _calendar(where: str, spec: Any) -> Any:
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
    spec = dict(spec)
    if "target_lesions" in spec:
        spec["target_lesions"] = tuple(spec["target_lesions"])
    if "calendar" in spec:
        spec["calendar"] = _calendar(where, spec["calendar"])
    if "regimen" in spec:
        name = spec.pop("regimen")
        allowed = {"start_day", "target_lesions", "blood_dose_per_fraction_gy", "mean_lung_dose_gy"}
        _check_keys(f"{where} (named regimen {name!r})", spec, allowed)
        return radiation_regimen(name, **spec)
    fields = set(RadiationCourse.__dataclass_fields__)
    _check_keys(where, spec, fields)
    return RadiationCourse(**spec)


def _drug(where: str, spec: Any) -> DrugRegimen:
    if isinstance(spec, str):
        return drug_regimen(spec)
    if isinstance(spec, Mapping):
        spec = dict(spec)
        if "regimen" in spec:
            name = spec.pop("regimen")
            _check_keys(f"{where} (named regimen {name!r})", spec, {"start_day", "max_duration_day"})
            return drug_regimen(name, **spec)
        _check_keys(where, spec, set(DrugRegimen.__dataclass_fields__))
        return DrugRegimen(**spec)
    raise ScheduleError(f"{where} must be a regimen name or a table, got {spec!r}")


def _variability(model: ModelSpec, spec: Any) -> dict[str, Any]:
    if spec is None:
        return {}
    if spec == "default":
        return default_variability() if model.name.startswith("nsclc") else {}
    if not isinstance(spec, Mapping):
        raise ParameterError(f"population.variability must be 'default' or a table, got {spec!r}")
    out = {}
    for name, entry in spec.items():
        _check_keys(f"population.variability.{name}", entry, {"distribution", "omega"})
        dist = entry.get("distribution", "lognormal")
        if dist not in _DISTRIBUTIONS:
            raise ParameterError(f"population.variability.{name}: "
                                 + unknown_name_message("distribution", str(dist), _DISTRIBUTIONS))
        out[name] = _DISTRIBUTIONS[dist](omega=float(entry.get("omega", 0.0)))
    return out


def parse_scenario(data: Mapping[str, Any], *, n_patients: int | None = None, seed: int | None = None,
                   source: str = "") -> Scenario:
    """Build a :class:`Scenario` from a parsed TOML mapping (CLI overrides for size and seed)."""
    _check_keys("scenario", data, _TOP)
    model_spec = dict(data.get("model", {"name": "nsclc"}))
    name = model_spec.pop("name", "nsclc")
    model = get_model(name, **model_spec)
    sim = dict(data.get("simulation", {}))
    _check_keys("simulation", sim, _SIM)
    if "mechanisms_off" in sim:
        sim["mechanisms_off"] = tuple(sim["mechanisms_off"])
    for key in ("t_end_day", "output_interval_day", "start_day"):
        if key in sim and not (isinstance(sim[key], (int, float)) and math.isfinite(sim[key])):
            raise ScheduleError(f"simulation.{key} must be a number of days, got {sim[key]!r}")
    solver_spec = data.get("solver", {})
    _check_keys("solver", solver_spec, set(SolverOptions.__dataclass_fields__))
    pop = dict(data.get("population", {}))
    _check_keys("population", pop, _POP)
    variability = _variability(model, pop.get("variability"))
    fit_name = data.get("fit", "default")
    if not isinstance(fit_name, str):
        raise ParameterError(f"fit must be 'default', 'none' or a calibration file path, got {fit_name!r}")
    fit_typical: dict[str, float] = {}
    survival: dict[str, float] = {}
    fit_path = None
    if fit_name != "none":
        from .calibrate.objective import split_values
        from .calibrate.shipped import load_fit, resolve_fit_path

        base = Path(source).parent if source else None
        fit_path = resolve_fit_path(fit_name, relative_to=base)
        cal = load_fit(fit_path, model=model)  # refuses a fit made for another model
        split = split_values(model, cal.all_values(), tuple(variability))
        fit_typical, survival = split.typical, split.survival
        variability = {k: (type(v)(omega=split.omegas[k]) if k in split.omegas else v) for k, v in variability.items()}
    population = VirtualPopulation(
        n_patients=int(n_patients if n_patients is not None else pop.get("n_patients", 1)),
        seed=int(seed if seed is not None else pop.get("seed", 0)),
        variability=variability,
    )
    arms_data = data.get("arm")
    if not arms_data:
        raise ScheduleError("scenario has no [[arm]] tables; define at least one arm")
    arms = []
    for i, arm in enumerate(arms_data):
        where = f"arm[{i}]"
        _check_keys(where, arm, _ARM)
        courses = tuple(_course(f"{where}.radiation[{k}]", c) for k, c in enumerate(arm.get("radiation", [])))
        drug = _drug(f"{where}.drug", arm["drug"]) if "drug" in arm else None
        label = arm.get("name", f"arm{i}")
        arms.append(Arm(name=label, plan=TreatmentPlan(radiation=courses, drug=drug, name=label),
                        parameters=arm.get("parameters", {})))
    return Scenario(title=str(data.get("title", "")), model=model, arms=tuple(arms), population=population,
                    parameters=fit_typical | dict(data.get("parameters", {})), solver=SolverOptions(**solver_spec),
                    simulation=sim, source=source, fit=None if fit_path is None else str(fit_path),
                    survival=survival)


def load_scenario(path: str | Path, *, n_patients: int | None = None, seed: int | None = None) -> Scenario:
    """Read and validate a scenario TOML file."""
    path = Path(path)
    if not path.is_file():
        raise ScheduleError(f"scenario file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ScheduleError(f"scenario file {str(path)!r} is not valid TOML: {exc}") from None
    return parse_scenario(data, n_patients=n_patients, seed=seed, source=str(path))
