"""One study cell: the task (:class:`CellTask`), the prepared study (:class:`StudySetup`) and :func:`run_cell`.

A cell simulates the fit's point values (draw 0) and each parameter draw through the shared run-arm path
(:func:`abscopal.arms.run_arm`) and reduces the scored patients to the :data:`SUMMARY_METRICS`, Kaplan-Meier curves
and per-patient endpoints (the module docstring of :mod:`abscopal.studies.run` says how RT at progression and the
pneumonitis risk are computed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ..arms import ArmRun, run_arm
from ..endpoints import DAYS_PER_MONTH, TrialAssessment, score
from ..endpoints.outcomes import OUTCOMES
from ..endpoints.readout import scored_outputs
from ..endpoints.survival import kaplan_meier
from ..errors import ParameterError, SolverError
from ..model.compile import CompiledModel
from ..patients import VirtualPatients
from ..population import VirtualPopulation
from .design import Cell, StudyDesign

if TYPE_CHECKING:
    from ..endpoints.toxicity import PneumonitisModel
    from ..solver import SolverOptions
    from ..treatment.plan import TreatmentPlan

__all__ = ["SUMMARY_METRICS", "CellTask", "StudySetup", "run_cell"]

SUMMARY_METRICS: Mapping[str, tuple[str, str]] = {
    "orr": ("1", "objective response rate (RECIST 1.1 at the ORR visit, lesions counted by the assessment)"),
    "abscopal_orr": ("1", "objective response rate of the lesions outside the RT field (NaN without RT)"),
    "dcr": ("1", "disease control rate"),
    "median_pfs_month": ("month", "Kaplan-Meier median progression-free survival (inf: not reached)"),
    "median_os_month": ("month", "Kaplan-Meier median overall survival (inf: not reached)"),
    "pfs_12mo": ("1", "progression-free survival at 12 months"),
    "os_12mo": ("1", "overall survival at 12 months"),
    "os_24mo": ("1", "overall survival at 24 months"),
    "pneumonitis_risk": ("1", "mean probability of grade >= 2 radiation pneumonitis"),
    "irradiated_fraction": ("1", "fraction of patients who received RT"),
    "lymphocyte_nadir": ("1e9/L", "mean lymphocyte count nadir"),
}
"""Per-cell, per-draw summary variables of a study (units, long name)."""


_REGISTRY_METRICS = tuple(name for name in SUMMARY_METRICS if name in OUTCOMES)
"""Summary variables whose trial-style value is the outcome registry's (:mod:`abscopal.endpoints.outcomes`)."""


_KM_STEP_MONTH = 0.5


# ---- tasks ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class CellTask:
    """Everything :func:`run_cell` needs for one cell (picklable; the model travels as spec + kernel path).

    ``patients``: NSCLC virtual patients, or an imported model's plain population (:mod:`abscopal.arms`);
    ``model_events``: an imported model's own timed events, fired in every cell."""

    key: str
    cell: Cell
    model: CompiledModel
    patients: VirtualPatients | VirtualPopulation
    target_lesions: tuple[int, ...]
    draws: tuple[Mapping[str, float], ...]
    variability_names: tuple[str, ...]
    assessment: TrialAssessment
    start_day: float
    t_end_day: float
    salvage_delay_day: float
    mechanisms_off: tuple[str, ...]
    solver: SolverOptions
    km_month: np.ndarray
    out_of_field: bool = True
    """Score the out-of-field ORR (``abscopal_orr``); False leaves it NaN and skips that second scoring (a
    sensitivity analysis needs it only in some cells)."""
    model_events: tuple[tuple[float, str, tuple[float, ...]], ...] = ()
    failed_draws: str = "raise"
    """``"raise"``: a draw whose simulation fails (:class:`~abscopal.errors.SolverError`) stops the cell; ``"nan"``:
    that draw's results are NaN (responses and events False) and the others are kept (a sensitivity analysis
    explores corners of the parameter space where a rare virtual patient may exceed the solver's step budget; it
    leaves such runs out of its indices and says how many)."""


def _pneumonitis(model: PneumonitisModel, plans: Sequence[TreatmentPlan], until_day: float) -> np.ndarray:
    """Per-patient pneumonitis probability of each patient's plan (:meth:`PneumonitisModel.plan_probability
    <abscopal.endpoints.toxicity.PneumonitisModel.plan_probability>`, drug doses up to ``until_day``) under the
    draw's pneumonitis model (the fit's ``ntcp__`` values of that draw, so the risk carries their uncertainty)."""
    memo: dict[int, float] = {}
    for plan in plans:
        if id(plan) not in memo:
            memo[id(plan)] = model.plan_probability(plan, until_day)
    return np.array([memo[id(plan)] for plan in plans], dtype=float).reshape(len(plans))


def _run_arm(
    task: CellTask, values: Mapping[str, float], plan: TreatmentPlan, rt_start_day: np.ndarray | None = None
) -> ArmRun:
    """One draw of a cell through the shared run-arm path (:func:`abscopal.arms.run_arm`)."""
    return run_arm(
        task.model,
        plan,
        task.patients,
        task.assessment,
        values,
        variability_names=task.variability_names,
        start_day=task.start_day,
        t_end_day=task.t_end_day,
        name="cell",
        rt_start_day=rt_start_day,
        mechanisms_off=task.mechanisms_off,
        solver=task.solver,
        variables=scored_outputs(task.model.spec),  # found by role (lesion diameter, new lesions, burden, ...)
        parameters=task.cell.drug.parameters,  # an imported model's drug as parameter values
        model_events=task.model_events,
    )


def _km(time_day: np.ndarray, event: np.ndarray, grid_day: np.ndarray) -> np.ndarray:
    return np.asarray(kaplan_meier(time_day, event).survival_at(grid_day), dtype=float)


def _draw(
    task: CellTask,
    plan: TreatmentPlan,
    k: int,
    values: Mapping[str, float],
    summary: dict[str, np.ndarray],
    per: dict[str, np.ndarray],
    flags: dict[str, np.ndarray],
    curves: dict[str, np.ndarray],
    grid_day: np.ndarray,
) -> None:
    """Simulate and score draw ``k`` of a cell into row ``k`` of the result arrays (:func:`run_cell`)."""
    if task.cell.timing.at_progression and task.cell.has_rt:
        no_rt = type(plan)(drug=plan.drug, name=plan.name)
        prog = _run_arm(task, values, no_rt).scored.endpoints.progression_day.values[0]
        starts = np.where(np.isfinite(prog), prog + task.salvage_delay_day, np.nan)
        starts[starts > task.t_end_day] = np.nan
        run = _run_arm(task, values, plan, starts)
    else:
        run = _run_arm(task, values, plan)
    ds, ep, plans, scored = run.simulation, run.scored.endpoints, run.plans, run.scored
    e = ep.isel(arm=0)
    summary["abscopal_orr"][k] = np.nan
    if task.out_of_field and task.cell.has_rt and not task.cell.timing.at_progression:
        if task.assessment.exclude_irradiated:
            summary["abscopal_orr"][k] = float(e.orr)
        else:
            out_of_field = replace(task.assessment, exclude_irradiated=True)
            try:
                pats = task.patients if isinstance(task.patients, VirtualPatients) else None
                summary["abscopal_orr"][k] = float(score(ds, out_of_field, patients=pats).orr[0])
            except ParameterError:  # some patient has no lesion outside the field: undefined
                pass
    for name in _REGISTRY_METRICS:
        summary[name][k] = OUTCOMES[name].value(scored)
    risk = _pneumonitis(scored.assessment.pneumonitis, plans, task.t_end_day)  # the draw's ntcp__ values
    summary["pneumonitis_risk"][k] = float(risk.mean())
    starts_k = ds.rt_start_day.values[0]
    summary["irradiated_fraction"][k] = float(np.mean(np.isfinite(starts_k))) if task.cell.has_rt else 0.0
    nadir = e.lymphocyte_nadir.values
    summary["lymphocyte_nadir"][k] = float(np.nanmean(nadir)) if np.any(~np.isnan(nadir)) else np.nan
    for name in ("pfs_day", "os_day", "best_percent_change"):
        per[name][k] = e[name].values
    per["rt_start_day"][k] = starts_k
    for name in ("pfs_event", "os_event", "objective_response"):
        flags[name][k] = e[name].values.astype(bool)
    for name, endpoint in (("pfs_survival", "pfs"), ("os_survival", "os")):
        curves[name][k] = _km(e[f"{endpoint}_day"].values, e[f"{endpoint}_event"].values, grid_day)


def run_cell(task: CellTask) -> xr.Dataset:
    """Simulate and score one cell for every draw (a pure function of ``task``; see the module docstring).

    Returns a dataset with dims ``draw`` (0 = point values), ``patient`` and ``km_month``: the
    :data:`SUMMARY_METRICS`, KM curves ``pfs_survival`` / ``os_survival`` and per-patient ``pfs_day``,
    ``pfs_event``, ``os_day``, ``os_event``, ``best_percent_change``, ``objective_response``, ``rt_start_day``.
    """
    t0 = time.perf_counter()
    n_draw, n = len(task.draws), task.patients.n_patients
    grid_day = task.km_month * DAYS_PER_MONTH
    summary = {k: np.zeros(n_draw) for k in SUMMARY_METRICS}
    per = {k: np.zeros((n_draw, n)) for k in ("pfs_day", "os_day", "best_percent_change", "rt_start_day")}
    flags = {k: np.zeros((n_draw, n), bool) for k in ("pfs_event", "os_event", "objective_response")}
    curves = {k: np.zeros((n_draw, grid_day.size)) for k in ("pfs_survival", "os_survival")}
    plan = task.cell.plan(task.target_lesions)
    for k, values in enumerate(task.draws):
        try:
            _draw(task, plan, k, values, summary, per, flags, curves, grid_day)
        except SolverError:
            if task.failed_draws != "nan":
                raise
            for group in (summary, per, curves):
                for arr in group.values():
                    arr[k] = np.nan
            for arr in flags.values():
                arr[k] = False
    data: dict[str, Any] = {}
    for name, (units, long) in SUMMARY_METRICS.items():
        data[name] = (("draw",), summary[name], {"units": units, "long_name": long})
    data["pfs_survival"] = (
        ("draw", "km_month"),
        curves["pfs_survival"],
        {"units": "1", "long_name": "Kaplan-Meier progression-free survival"},
    )
    data["os_survival"] = (
        ("draw", "km_month"),
        curves["os_survival"],
        {"units": "1", "long_name": "Kaplan-Meier overall survival"},
    )
    per_patient = {
        "pfs_day": ("day", "progression-free survival time from the study start"),
        "os_day": ("day", "overall survival time from the study start"),
        "best_percent_change": ("%", "best percent change of the target sum from baseline"),
        "rt_start_day": ("day", "day of the patient's first RT fraction (NaN: no RT)"),
    }
    for name, (u, long) in per_patient.items():
        data[name] = (("draw", "patient"), per[name], {"units": u, "long_name": long})
    for name, long in (
        ("pfs_event", "progression or death observed"),
        ("os_event", "death observed"),
        ("objective_response", "objective response at the ORR visit"),
    ):
        data[name] = (("draw", "patient"), flags[name].astype(np.int8), {"units": "1", "long_name": long})
    out = xr.Dataset(
        data,
        coords={
            "draw": (
                "draw",
                np.arange(n_draw),
                {"units": "1", "long_name": "parameter draw (0: point values of the fit)"},
            ),
            "patient": ("patient", np.arange(n), {"units": "1", "long_name": "virtual patient index"}),
            "km_month": ("km_month", task.km_month, {"units": "month", "long_name": "time from study start"}),
        },
    )
    out.attrs.update(
        {
            "key": task.key,
            "label": task.cell.label,
            "index": json.dumps(list(task.cell.index)),
            "canonical": json.dumps(task.cell.canonical(), sort_keys=True, default=str),
            "elapsed_s": round(time.perf_counter() - t0, 3),
        }
    )
    return out


# ---- preparing the tasks ------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class StudySetup:
    """The resolved inputs of a study: model, fit, draws, patients and one task per distinct cell."""

    design: StudyDesign
    model: CompiledModel
    fit_path: Path | None
    fit_hash: str | None
    draws: tuple[Mapping[str, float], ...]
    draw_source: str
    tasks: tuple[CellTask, ...]
    cell_keys: tuple[str, ...]
    start_day: float
    provenance: Mapping[str, Any]
