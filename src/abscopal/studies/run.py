"""Running a study: one pure task per grid cell, cached by content, in process or on Dask.

:func:`run_study` draws the virtual patients once (the same patients in every cell: common random numbers),
turns every cell of the design into a :class:`CellTask` and runs :func:`run_cell` on each, in process or on a
Dask cluster. A cell simulates the point values of the fit (draw 0) and ``n_draws`` parameter draws of its
uncertainty (draws 1..n), scores every patient like a trial patient (:func:`abscopal.score`) and
returns a small dataset. Each finished cell is written to ``OUT/cells/<key>.npz`` atomically; ``key`` is a
sha256 of everything the cell's result depends on (package version, model hash, fit file hash, draws, patients,
plan, assessment, solver), so a rerun of an interrupted study skips the finished cells and a changed study
recomputes only what changed. A cell file stores its own key and a sha256 of its content; a cell whose stored key
differs from its file name's (a file copied over another), or that is truncated or corrupt, is recomputed with an
:class:`~abscopal.errors.AbscopalWarning` naming the file, never used. Cells are read with
``np.load(allow_pickle=False)``: a cell file cannot run code. :func:`assemble` stacks the cells into the study
dataset (dims ``timing, fractionation, site, drug, draw`` plus ``patient`` / ``km_month``) and
:func:`summary_table` reduces it to one row per cell with intervals over the draws.

Output folder (``OUT``): the outputs (``endpoints.nc``, ``summary.csv``, figures, ``report.html``, ``study.json``)
are written into a fresh hidden folder ``OUT/.outputs-<token>/``; when all are written, the symbolic link
``OUT/outputs`` is switched to it in one atomic rename, and ``OUT/<name>`` are fixed relative links
``outputs/<name>``. An interrupted or failed write therefore leaves ``OUT`` showing the old complete study (or
none), never new data files beside old figures; the previous output folder is deleted after the switch, and
leftovers of an interrupted write are removed by the next run. (Renaming each file in turn could not switch them as
a whole; a link switch needs no copy and keeps ``OUT/report.html`` where it was. Where symbolic links are not
available, the files are moved into ``OUT`` one by one, ``study.json`` last.) A folder that is neither empty nor a
study (no ``study.json``, no ``cells/``) is refused: the study never writes into a folder that is not its own.

RT at progression: each draw first runs the drug alone; every patient whose RECIST progression is seen at a scan
gets the course ``salvage_delay_day`` after that scan (:attr:`abscopal.simulate.Arm.rt_start_day`), the others
no RT. PFS is then the same as without RT by construction (RT starts after the progression); the salvage course
acts on overall survival, on later response and on pneumonitis.

Pneumonitis risk of a patient: the LKB NTCP of the EQD2 mean lung dose of the patient's own plan, times the
concurrency multiplier when any drug dose falls within ``concurrent_window_day`` of an RT fraction: the one rule of
:mod:`abscopal.endpoints.toxicity`, also used by :func:`abscopal.score` (RT given during maintenance therapy is
concurrent). The cell's risk is the mean over patients (0 for those not irradiated).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import xarray as xr

from .._version import __version__
from ..arms import ArmRun, run_arm
from ..endpoints import DAYS_PER_MONTH, TrialAssessment, score
from ..endpoints.outcomes import OUTCOMES
from ..endpoints.readout import scored_outputs
from ..endpoints.scans import ExplicitScans
from ..endpoints.survival import hazard_ratio, kaplan_meier
from ..errors import AbscopalError, AbscopalWarning, ParameterError
from ..fitted.shipped import fit_file_hash, resolve_fit_path
from ..fitted.values import split_values
from ..io import OutputPathError, check_output_dir, write_netcdf
from ..model.compile import CompiledModel, compile_model
from ..patients import VirtualPatients, draw_patients
from ..provenance import environment
from ..targeting import place_rt_targets
from .design import AXES, Cell, StudyDesign

if TYPE_CHECKING:
    from ..fitted.format import Fit
    from ..solver import SolverOptions
    from ..treatment.plan import TreatmentPlan

__all__ = [
    "SUMMARY_METRICS",
    "CellTask",
    "StudySetup",
    "assemble",
    "prepare_study",
    "run_cell",
    "run_study",
    "summary_table",
]

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
_REGISTRY_METRICS = ("orr", "dcr", "median_pfs_month", "median_os_month", "pfs_12mo", "os_12mo", "os_24mo")
"""Summary variables whose trial-style value is the outcome registry's (:mod:`abscopal.endpoints.outcomes`)."""
_KM_STEP_MONTH = 0.5
log = logging.getLogger(__name__)


# ---- tasks ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class CellTask:
    """Everything :func:`run_cell` needs for one cell (picklable; the model travels as spec + kernel path)."""

    key: str
    cell: Cell
    model: CompiledModel
    patients: VirtualPatients
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


def _pneumonitis(task: CellTask, plans: Sequence[TreatmentPlan]) -> np.ndarray:
    """Per-patient pneumonitis probability of each patient's plan (:meth:`PneumonitisModel.plan_probability
    <abscopal.endpoints.toxicity.PneumonitisModel.plan_probability>`, drug doses up to the end of the simulation)."""
    model = task.assessment.pneumonitis
    memo: dict[int, float] = {}
    for plan in plans:
        if id(plan) not in memo:
            memo[id(plan)] = model.plan_probability(plan, task.t_end_day)
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
    )


def _km(time_day: np.ndarray, event: np.ndarray, grid_day: np.ndarray) -> np.ndarray:
    return np.asarray(kaplan_meier(time_day, event).survival_at(grid_day), dtype=float)


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
        if task.cell.has_rt and not task.cell.timing.at_progression:
            if task.assessment.exclude_irradiated:
                summary["abscopal_orr"][k] = float(e.orr)
            else:
                out_of_field = replace(task.assessment, exclude_irradiated=True)
                try:
                    summary["abscopal_orr"][k] = float(score(ds, out_of_field, patients=task.patients).orr[0])
                except ParameterError:  # some patient has no lesion outside the field: undefined
                    pass
        for name in _REGISTRY_METRICS:
            summary[name][k] = OUTCOMES[name].value(scored)
        risk = _pneumonitis(task, plans)
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


def _draw_values(cal: Fit | None, design: StudyDesign) -> tuple[tuple[Mapping[str, float], ...], str]:
    if cal is None:
        if design.n_draws:
            raise ParameterError(
                f"uncertainty.n_draws = {design.n_draws} needs a fit to draw from; set fit = "
                "'default' or a calibration file, or n_draws = 0"
            )
        return ({},), "none (model defaults)"
    point = cal.all_values()  # base parameters of the fit included
    if not design.n_draws:
        return (point,), "point values only"
    from ..fitted.draws import parameter_draws

    pd = parameter_draws(cal, design.n_draws, seed=design.draw_seed, source=design.draw_source)
    return (point, *(point | {k: float(v) for k, v in d.items()} for d in pd.as_dicts())), str(pd.source)


def _fit_path(design: StudyDesign, relative_to: str | Path | None) -> Path | None:
    """The calibration file the study names (relative paths: from ``relative_to``, else the study file's folder)."""
    base = Path(design.source).parent if design.source and relative_to is None else relative_to
    return resolve_fit_path(design.fit, relative_to=base)


def prepare_study(design: StudyDesign, *, relative_to: str | Path | None = None) -> StudySetup:
    """Resolve the fit, compile the model, draw the patients and build one :class:`CellTask` per distinct cell.

    Every check (fit file, model size, RT targets for every patient, parameter names of the fit) runs here,
    before any simulation.
    """
    from ..model.library import get_model

    fit_path = _fit_path(design, relative_to)
    from ..fitted.format import Fit

    cal = None if fit_path is None else Fit.load(fit_path)
    prov = {} if cal is None else cal.provenance
    name = design.model_name or prov.get("model_name_library") or "nsclc"
    n_lesions = design.n_lesions or int(prov.get("n_lesions") or 3)
    opts = {"n_lesions": n_lesions} | ({"growth": design.growth} if design.growth else {})
    spec = get_model(name, **opts)
    if cal is not None:
        cal.check_model(spec, fit_path)  # a fit made for another model (lesion count, growth) is refused
    for s in design.axes["site"]:
        if s.n_lesions > spec.n_lesions:
            raise ParameterError(
                f"axes.site {s.label!r}: n_lesions = {s.n_lesions} but model {name!r} has "
                f"{spec.n_lesions} lesions; set model.n_lesions"
            )
    for m in design.mechanisms_off:
        if m not in spec.mechanism_names:
            from ..errors import unknown_name_message

            raise ParameterError(
                "simulation.mechanisms_off: " + unknown_name_message("mechanism", m, spec.mechanism_names)
            )
    draws, draw_source = _draw_values(cal, design)
    mix = design.population.patient_mix()
    mix = mix.capped(spec.n_lesions) if mix.max_lesions > spec.n_lesions else mix
    patients = draw_patients(mix, design.n_patients, n_lesions=spec.n_lesions, seed=design.seed)
    var_names = tuple(patients.variability)
    for d in draws:  # every name of the fit must be usable here (typical value, omega or covariate effect)
        split_values(spec, d, var_names)
    starts = [t.start_day for t in design.axes["timing"] if t.start_day is not None]
    start_day = min([0.0, *starts])
    t_end = design.t_end_day
    assessment = design.assessment.to_assessment(start_day, t_end)
    km_month = np.arange(0.0, (t_end - start_day) / DAYS_PER_MONTH + 1e-9, _KM_STEP_MONTH)
    placed: dict[str, tuple[VirtualPatients, tuple[int, ...]]] = {}
    for s in design.axes["site"]:
        placed[s.label] = place_rt_targets(patients, s.target, n_lesions=s.n_lesions)  # raises before any work
    model = compile_model(spec)
    fit_hash = fit_file_hash(fit_path)
    common = {
        "version": __version__,
        "model_hash": spec.content_hash(),
        "fit_hash": fit_hash,
        "draws": [sorted(d.items()) for d in draws],
        "mix": mix.name,
        "population": [
            json.dumps(design.population.line_of_therapy and dict(design.population.line_of_therapy)),
            json.dumps(design.population.pdl1_tps_mix and dict(design.population.pdl1_tps_mix)),
            design.n_patients,
            design.seed,
            spec.n_lesions,
        ],
        "assessment": json.dumps(assessment.describe(), default=str, sort_keys=True),
        "scans": [float(x) for x in (assessment.scans.days if isinstance(assessment.scans, ExplicitScans) else [])],
        "salvage_delay_day": design.salvage_delay_day,
        "start_day": start_day,
        "t_end_day": t_end,
        "mechanisms_off": list(design.mechanisms_off),
        "solver": design.solver.as_dict(),
        "km_month_step": _KM_STEP_MONTH,
    }
    tasks: dict[str, CellTask] = {}
    keys = []
    for cell in design.cells():
        canon = cell.canonical()
        key = hashlib.sha256(
            json.dumps({"common": common, "cell": canon}, sort_keys=True, default=str).encode()
        ).hexdigest()[:32]
        keys.append(key)
        if key in tasks:
            continue
        pats, targets = placed[cell.site.label] if cell.has_rt else (patients, (0,))
        tasks[key] = CellTask(
            key=key,
            cell=cell,
            model=model,
            patients=pats,
            target_lesions=targets,
            draws=draws,
            variability_names=var_names,
            assessment=assessment,
            start_day=start_day,
            t_end_day=t_end,
            salvage_delay_day=design.salvage_delay_day,
            mechanisms_off=design.mechanisms_off,
            solver=design.solver,
            km_month=km_month,
        )
    provenance = {
        "package": "abscopal",
        "version": __version__,
        "environment": environment(),
        "model": spec.name,
        "model_hash": spec.content_hash(),
        "n_lesions": spec.n_lesions,
        "fit": None if fit_path is None else str(fit_path),
        "fit_hash": fit_hash,
        "fit_values": draws[0],
        "fit_targets": prov.get("targets"),
        "draw_source": draw_source,
        "n_draws": len(draws) - 1,
        "draw_seed": design.draw_seed,
        "seed": design.seed,
        "design": design.describe(),
        "design_hash": design.content_hash(),
        "start_day": start_day,
        "solver": design.solver.as_dict(),
        "mix_source": mix.source,
        "sources": spec.sources(),
    }
    return StudySetup(
        design=design,
        model=model,
        fit_path=fit_path,
        fit_hash=fit_hash,
        draws=draws,
        draw_source=draw_source,
        tasks=tuple(tasks.values()),
        cell_keys=tuple(keys),
        start_day=start_day,
        provenance=provenance,
    )


# ---- the cell cache ------------------------------------------------------------------------------------------
def _cell_digest(meta_bytes: bytes, arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 of a cell's header and arrays (names, dtypes, shapes, bytes), in name order."""
    h = hashlib.sha256(meta_bytes)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _save_cell(ds: xr.Dataset, path: Path) -> None:
    """Write a cell result as ``.npz`` (arrays) with a JSON header (dims, attrs), its key and a sha256, atomically.

    An internal cache format: an order of magnitude faster than netCDF for these small datasets (0.4 s per
    h5netcdf file was most of a small study's time), and loaded back losslessly by :func:`_load_cell`, which checks
    the stored key and digest.
    """
    from ..io import write_atomic

    meta = {"attrs": dict(ds.attrs), "vars": {}, "coords": {}}
    arrays: dict[str, np.ndarray] = {}
    for kind, items in (("vars", ds.data_vars.items()), ("coords", ds.coords.items())):
        for name, var in items:
            meta[kind][name] = {"dims": list(var.dims), "attrs": dict(var.attrs)}
            arrays[f"{kind}/{name}"] = var.values
    meta_bytes = json.dumps(meta, default=str).encode()
    arrays["__meta__"] = np.frombuffer(meta_bytes, dtype=np.uint8)
    arrays["__key__"] = np.frombuffer(str(ds.attrs["key"]).encode(), dtype=np.uint8)
    arrays["__sha256__"] = np.frombuffer(
        _cell_digest(meta_bytes, {k: v for k, v in arrays.items() if k not in ("__meta__", "__sha256__")}).encode(),
        dtype=np.uint8,
    )

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # mypy matches **arrays against allow_pickle too

    write_atomic(path, write, force=True)


class _BadCellError(Exception):
    """A cached cell file that must not be used (the message says why)."""


def _load_cell(path: Path, key: str | None = None) -> xr.Dataset:
    """Load a cell written by :func:`_save_cell`; raise :class:`_BadCellError` unless its stored key is ``key`` (if
    given) and its digest matches its content. Never unpickles (``allow_pickle=False``)."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:  # our handle: closed on any error
            arrays = {name: z[name] for name in z.files}
    except Exception as exc:
        raise _BadCellError(f"unreadable ({type(exc).__name__}: {exc})") from None
    if "__key__" not in arrays or "__sha256__" not in arrays or "__meta__" not in arrays:
        raise _BadCellError("no stored key or digest (written by an older abscopal)")
    try:
        stored_key = bytes(arrays.pop("__key__")).decode()
        digest = bytes(arrays.pop("__sha256__")).decode()
        meta_bytes = bytes(arrays["__meta__"])
        if (
            _cell_digest(
                meta_bytes,
                {k: v for k, v in arrays.items() if k != "__meta__"}
                | {"__key__": np.frombuffer(stored_key.encode(), dtype=np.uint8)},
            )
            != digest
        ):
            raise _BadCellError("content does not match its stored sha256 (corrupt or edited)")
        if key is not None and stored_key != key:
            raise _BadCellError(f"holds cell {stored_key!r}, not {key!r} (a cell file copied over another)")
        meta = json.loads(meta_bytes.decode())
        coords = {n: (m["dims"], arrays[f"coords/{n}"], m["attrs"]) for n, m in meta["coords"].items()}
        data = {n: (m["dims"], arrays[f"vars/{n}"], m["attrs"]) for n, m in meta["vars"].items()}
        return xr.Dataset(data, coords=coords, attrs=meta["attrs"])
    except _BadCellError:
        raise
    except Exception as exc:
        raise _BadCellError(f"inconsistent content ({type(exc).__name__}: {exc})") from None


# ---- execution --------------------------------------------------------------------------------------------------
def _progress_printer(stream: TextIO | None = None) -> Callable[[int, int, int, str], None]:
    stream = stream or sys.stderr
    t0 = time.perf_counter()

    def show(done: int, total: int, cached: int, label: str) -> None:
        el = time.perf_counter() - t0
        width = 30
        fill = int(width * done / max(total, 1))
        left = (el / max(done - cached, 1)) * (total - done) if done > cached else float("nan")
        eta = f"~{left:4.0f} s left" if math.isfinite(left) else ""
        stream.write(
            f"\r[{'#' * fill}{'-' * (width - fill)}] {done}/{total} cells ({cached} cached) "
            f"{el:5.0f} s {eta} {label[:40]:<40}"
        )
        if done == total:
            stream.write("\n")
        stream.flush()

    return show


_CONNECT_TIMEOUT_S = 10
_SCHEDULER = re.compile(r"^(?:(?:tcp|tls|ws|wss|ucx)://)?(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$")


def check_scheduler(address: str) -> str:
    """Check that ``address`` looks like a Dask scheduler address (``[tcp://]host:port``); return it.

    Raises :class:`AbscopalError` naming the value before any work (the connection itself is tried later).
    """
    m = _SCHEDULER.match(address) if isinstance(address, str) else None
    if m is None or not 1 <= int(m.group(1)) <= 65535:
        raise AbscopalError(
            f"--scheduler {address!r} is not a Dask scheduler address; give [tcp://]host:port, "
            "e.g. tcp://127.0.0.1:8786"
        )
    return address


def _execute(
    tasks: Sequence[CellTask], scheduler: str | None, workers: int | None
) -> Iterator[tuple[CellTask, xr.Dataset]]:
    if scheduler is None and workers is None:
        for t in tasks:
            yield t, run_cell(t)
        return
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - dask is a declared dependency
        raise AbscopalError("--scheduler / --workers need dask.distributed: pip install 'dask[distributed]'") from None
    cluster = None
    if scheduler is None and workers is not None:  # (both None ran in process above)
        cluster = LocalCluster(
            n_workers=int(workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=_CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise AbscopalError(
                f"--scheduler {scheduler!r}: cannot connect to a Dask scheduler there ({exc}); "
                "start one (dask scheduler) or check the address"
            ) from None
    try:
        by_key = {f"abscopal-cell-{t.key}": t for t in tasks}
        futures = client.map(run_cell, list(tasks), key=list(by_key), pure=False)
        for fut in as_completed(futures):
            yield by_key[fut.key], fut.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def check_study_cost(design: StudyDesign, allow_large: bool = False) -> None:
    """Refuse a study above :data:`abscopal.limits.MAX_STUDY_SIMULATIONS` patient simulations (or a population
    above :data:`~abscopal.limits.MAX_PATIENTS`) unless ``allow_large``."""
    from ..limits import MAX_PATIENTS, MAX_STUDY_SIMULATIONS, check_cost

    check_cost(f"population.n_patients = {design.n_patients}", design.n_patients, MAX_PATIENTS, "patients", allow_large)
    n_cells = math.prod(design.shape)
    check_cost(
        f"study of {' x '.join(map(str, design.shape))} = {n_cells} cells x ({design.n_draws} draws + 1) x "
        f"{design.n_patients} patients",
        n_cells * (design.n_draws + 1) * design.n_patients,
        MAX_STUDY_SIMULATIONS,
        "patient simulations",
        allow_large,
    )


def run_study(
    design: StudyDesign,
    out_dir: str | Path | None = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool | Callable[[int, int, int, str], None] = False,
    force: bool = False,
    report: bool = True,
    relative_to: str | Path | None = None,
    allow_large: bool = False,
) -> xr.Dataset:
    """Run every cell of ``design`` and return the study dataset (see :func:`assemble`).

    Parameters
    ----------
    design
        The study (:func:`~abscopal.studies.design.load_study`).
    out_dir
        Folder for ``cells/`` (finished cells, checked and reused on a rerun), ``endpoints.nc``, ``summary.csv``,
        figures, ``report.html`` and ``study.json`` (switched in as a whole; a study is complete when
        ``study.json`` exists; see the module docstring). Must be new, empty or a study's folder. None: nothing is
        written and nothing is reused.
    scheduler, workers
        Run on the Dask scheduler at this address, or on a local cluster of ``workers`` processes; default in
        process. Results are identical: each cell is a pure function of its task.
    progress
        True for a progress bar on stderr, or a callable ``(done, total, cached, label)``.
    force
        Rewrite the outputs of a completed study in ``out_dir`` (cells are still reused).
    report
        Write figures and ``report.html`` (needs matplotlib).
    allow_large
        Lift the cost guard: a study of more than :data:`abscopal.limits.MAX_STUDY_SIMULATIONS` patient simulations
        (cells x (draws + 1) x patients) is refused before any work unless this is true.

    Raises
    ------
    AbscopalError
        If ``out_dir`` holds a completed study and ``force`` is false, or both ``scheduler`` and ``workers`` are
        given, or ``scheduler`` is not ``[tcp://]host:port`` or does not answer; design errors
        (:class:`~abscopal.errors.ScheduleError`, ParameterError) before any simulation.
    OutputPathError
        If ``out_dir`` is not a folder, cannot be written, holds other files and no study, or an input is inside
        it; all before any cell is computed.

    Warns
    -----
    AbscopalWarning
        For each cached cell that is not used (another cell's file, truncated, corrupt, older format); it is
        recomputed.
    """
    if scheduler is not None and workers is not None:
        raise AbscopalError("give --scheduler ADDRESS or --workers N, not both")
    check_study_cost(design, allow_large)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise AbscopalError(f"workers = {workers!r}: give a number of worker processes >= 1")
    if scheduler is not None:
        check_scheduler(scheduler)
    out = None if out_dir is None else Path(out_dir)
    if out is not None:  # the fit is an input too
        _check_study_dir(out, force=force, inputs=[design.source, _fit_path(design, relative_to)])
    setup = prepare_study(design, relative_to=relative_to)
    if out is not None:
        (out / "cells").mkdir(parents=True, exist_ok=True)
        _clean_staging(out)
    show = _progress_printer() if progress is True else (progress or None)
    results: dict[str, xr.Dataset] = {}
    todo = []
    for t in setup.tasks:
        path = None if out is None else out / "cells" / f"{t.key}.npz"
        if path is not None and os.path.lexists(path):
            try:
                results[t.key] = _load_cell(path, t.key)
                continue
            except _BadCellError as exc:
                warnings.warn(f"study cell {str(path)!r}: {exc}; recomputing it", AbscopalWarning, stacklevel=2)
        todo.append(t)
    log.info("%d of %d cells cached in %s", len(results), len(setup.tasks), out)
    cached = len(results)
    total = len(setup.tasks)
    if show:
        show(cached, total, cached, "cached cells loaded" if cached else "starting")
    t0 = time.perf_counter()
    for task, ds in _execute(todo, scheduler, workers):
        if out is not None:
            _save_cell(ds, out / "cells" / f"{task.key}.npz")
        results[task.key] = ds
        if show:
            show(len(results), total, cached, task.cell.label)
    elapsed = time.perf_counter() - t0
    result = assemble(setup, results)
    result.attrs["elapsed_s"] = round(elapsed, 3)
    result.attrs["cells_computed"] = len(todo)
    result.attrs["cells_cached"] = cached
    if out is not None:
        _write_outputs(result, out, report=report)
    return result


# ---- assembling -------------------------------------------------------------------------------------------------
def assemble(setup: StudySetup, results: Mapping[str, xr.Dataset]) -> xr.Dataset:
    """Stack the cell results into the study dataset.

    Dims ``timing, fractionation, site, drug`` (axis labels as coordinates, plus numeric ``timing_start_day``,
    ``dose_per_fraction_gy``, ``n_fractions``, ``total_dose_gy``, ``bed10_gy``, ``eqd2_10_gy``,
    ``mean_lung_dose_gy``), ``draw`` (0 = point values), ``patient`` and ``km_month``. Adds the Cox hazard ratios
    ``hr_pfs`` / ``hr_os`` of each cell against the no-RT cell of the same timing, site and drug (NaN where the
    study has no ``"no RT"`` fractionation), per draw. Provenance JSON in ``attrs["provenance"]``.
    """
    from ..radiobiology import bed

    design = setup.design
    shape = design.shape
    cells = design.cells()
    first = results[setup.cell_keys[0]]
    n_draw, n_pat = first.sizes["draw"], first.sizes["patient"]
    dims = (*AXES, "draw")
    data: dict[Hashable, Any] = {}  # xarray names variables by any hashable
    for name, var in first.data_vars.items():
        extra = var.dims[1:]
        arr = np.empty((*shape, n_draw, *[first.sizes[d] for d in extra]), dtype=var.dtype)
        for cell, key in zip(cells, setup.cell_keys, strict=True):
            arr[cell.index] = results[key][name].values
        data[name] = ((*dims, *extra), arr, dict(var.attrs))
    hr = {e: np.full((*shape, n_draw), np.nan) for e in ("pfs", "os")}
    no_rt = [j for j, f in enumerate(design.axes["fractionation"]) if f.course is None]
    if no_rt:
        j0 = no_rt[0]
        for cell in cells:
            i, j, k, m = cell.index
            if j == j0:
                continue
            for e in ("pfs", "os"):
                for d in range(n_draw):
                    t_ref, e_ref = data[f"{e}_day"][1][i, j0, k, m, d], data[f"{e}_event"][1][i, j0, k, m, d]
                    t_arm, e_arm = data[f"{e}_day"][1][i, j, k, m, d], data[f"{e}_event"][1][i, j, k, m, d]
                    try:
                        hr[e][i, j, k, m, d] = hazard_ratio(
                            np.concatenate([t_ref, t_arm]),
                            np.concatenate([e_ref, e_arm]).astype(bool),
                            np.repeat([0, 1], n_pat),
                            reference=0,
                        ).hr
                    except (AbscopalError, ValueError):
                        pass  # no events in one arm: HR not estimable, left NaN
    for e, long in (("pfs", "progression-free"), ("os", "overall")):
        data[f"hr_{e}"] = (
            dims,
            hr[e],
            {
                "units": "1",
                "long_name": f"Cox hazard ratio of {long} survival vs the "
                "no-RT cell of the same timing, site and drug (same patients)",
            },
        )
    fr = design.axes["fractionation"]
    sites = design.axes["site"]
    from .design import default_mean_lung_dose_gy

    coords: dict[str, Any] = {
        "timing": ("timing", [t.label for t in design.axes["timing"]], {"units": "1", "long_name": "RT timing"}),
        "fractionation": ("fractionation", [f.label for f in fr], {"units": "1", "long_name": "fractionation"}),
        "site": ("site", [s.label for s in sites], {"units": "1", "long_name": "irradiated site"}),
        "drug": ("drug", [d.label for d in design.axes["drug"]], {"units": "1", "long_name": "drug regimen"}),
        "draw": ("draw", np.arange(n_draw), {"units": "1", "long_name": "parameter draw (0: point values)"}),
        "patient": ("patient", np.arange(n_pat), {"units": "1", "long_name": "virtual patient index"}),
        "km_month": ("km_month", first.km_month.values, {"units": "month", "long_name": "time from study start"}),
        "timing_start_day": (
            "timing",
            [np.nan if t.start_day is None else t.start_day for t in design.axes["timing"]],
            {"units": "day", "long_name": "first RT fraction after the first drug dose (NaN: at progression)"},
        ),
        "dose_per_fraction_gy": (
            "fractionation",
            [0.0 if f.course is None else f.course.dose_per_fraction_gy for f in fr],
            {"units": "Gy", "long_name": "dose per fraction"},
        ),
        "n_fractions": (
            "fractionation",
            [0 if f.course is None else f.course.n_fractions for f in fr],
            {"units": "1", "long_name": "number of fractions"},
        ),
        "total_dose_gy": (
            "fractionation",
            [f.total_dose_gy for f in fr],
            {"units": "Gy", "long_name": "prescribed total dose"},
        ),
        "bed10_gy": (
            "fractionation",
            [0.0 if f.course is None else float(bed(f.total_dose_gy, f.course.n_fractions, 10.0)) for f in fr],
            {"units": "Gy", "long_name": "BED, alpha/beta 10 Gy"},
        ),
        "mean_lung_dose_gy": (
            ("fractionation", "site"),
            [[default_mean_lung_dose_gy(s, f) for s in sites] for f in fr],
            {"units": "Gy", "long_name": "physical mean lung dose (pneumonitis NTCP input)"},
        ),
    }
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(
        {
            "title": design.title,
            "provenance": json.dumps(setup.provenance, sort_keys=True, default=str),
            "abscopal_version": __version__,
            "model_hash": setup.provenance["model_hash"],
            "fit": str(setup.provenance["fit"]),
            "seed": design.seed,
            "cell_keys": json.dumps(list(setup.cell_keys)),
        }
    )
    return ds


def summary_table(ds: xr.Dataset, *, level: float = 0.95) -> list[dict[str, Any]]:
    """One row per cell: axis labels, treatment numbers, and for each metric its point value (draw 0) and the
    central ``level`` interval over draws 1..n (empty without draws)."""
    q = ((1 - level) / 2, 1 - (1 - level) / 2)
    metrics = [*SUMMARY_METRICS, "hr_pfs", "hr_os"]
    rows = []
    stacked = ds[metrics].stack(cell=AXES)
    for c in range(stacked.sizes["cell"]):
        sel = stacked.isel(cell=c)
        row: dict[str, Any] = {a: str(sel[a].values) for a in AXES}
        row["total_dose_gy"] = float(ds.total_dose_gy.sel(fractionation=row["fractionation"]))
        row["n_fractions"] = int(ds.n_fractions.sel(fractionation=row["fractionation"]))
        row["bed10_gy"] = float(ds.bed10_gy.sel(fractionation=row["fractionation"]))
        row["mean_lung_dose_gy"] = float(ds.mean_lung_dose_gy.sel(fractionation=row["fractionation"], site=row["site"]))
        for m in metrics:
            v = sel[m].values
            row[m] = float(v[0])
            if v.size > 1 and np.any(np.isfinite(v[1:])):
                finite = v[1:][~np.isnan(v[1:])]
                lo, hi = np.quantile(finite, q) if finite.size else (np.nan, np.nan)
                row[f"{m}_lower"], row[f"{m}_upper"] = float(lo), float(hi)
            else:
                row[f"{m}_lower"], row[f"{m}_upper"] = None, None
        rows.append(row)
    return rows


_OUTPUTS_LINK = "outputs"
_STAGING_PREFIX = ".outputs-"


def _output_names(report: bool) -> list[str]:
    names = ["endpoints.nc", "summary.csv"]
    if report:
        from .report import FIGURES

        names += [f"{n}.png" for n in FIGURES] + ["report.html"]
    return [*names, "study.json"]


def _check_study_dir(out: Path, *, force: bool, inputs: Sequence[str | Path | None] = ()) -> None:
    """Every check of a study's output folder, before any work (see the module docstring)."""
    check_output_dir(out)
    if not out.exists():
        return
    entries = [p.name for p in out.iterdir()]
    is_study = os.path.lexists(out / "study.json") or (out / "cells").is_dir()
    if entries and not is_study:
        shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
        raise OutputPathError(
            f"--out {str(out)!r} is a folder that holds other files ({shown}) and no study "
            "(no study.json, no cells/); choose a new or empty folder"
        )
    if (out / "study.json").exists() and not force:
        raise AbscopalError(
            f"{str(out)!r} holds a completed study (study.json exists); choose another --out or "
            "pass --force to rewrite its outputs"
        )
    link = out / _OUTPUTS_LINK
    if os.path.lexists(link) and not link.is_symlink():
        raise OutputPathError(f"--out {str(out)!r}: {str(link)!r} is not the study's outputs link; move it away")
    for name in ("cells", *_output_names(True)):
        p = out / name
        if name == "cells":
            if os.path.lexists(p) and (p.is_symlink() or not p.is_dir()):
                raise OutputPathError(f"--out {str(out)!r}: {str(p)!r} is not a folder of cells; move it away")
        elif os.path.lexists(p) and not p.is_symlink() and not p.is_file():
            raise OutputPathError(
                f"--out {str(out)!r}: {str(p)!r} is not a regular file and cannot be replaced; move it away"
            )
    root = out.resolve()
    for i in inputs:
        if i is not None and os.path.exists(i) and root in Path(i).resolve().parents:
            raise OutputPathError(
                f"input {str(i)!r} is inside the study folder --out {str(out)!r}; keep inputs "
                "outside it (its outputs are rewritten)"
            )


def _clean_staging(out: Path) -> None:
    """Remove output folders and links left by an interrupted write (anything ``.outputs-*`` not in use)."""
    link = out / _OUTPUTS_LINK
    current = os.readlink(link) if link.is_symlink() else None
    for p in out.glob(f"{_STAGING_PREFIX}*"):
        if p.name == current:
            continue
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)


def _replace_with_link(path: Path, target: str) -> None:
    if path.is_symlink() and os.readlink(path) == target:
        return
    tmp = path.with_name(f"{_STAGING_PREFIX}link-{uuid.uuid4().hex[:12]}")
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _write_outputs(ds: xr.Dataset, out: Path, *, report: bool) -> None:
    """Write the study's outputs into a staging folder and switch ``OUT/outputs`` to it (module docstring)."""
    import csv
    import io

    from ..io import write_atomic

    staging = out / f"{_STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        write_netcdf(ds, staging / "endpoints.nc", force=True)
        rows = summary_table(ds)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
        write_atomic(staging / "summary.csv", lambda tmp: tmp.write_text(text, encoding="utf-8"), force=True)
        outputs = ["endpoints.nc", "summary.csv"]
        if report:
            from .report import write_study_report

            outputs += [str(p.relative_to(staging)) for p in write_study_report(ds, rows, staging)]
        manifest = {
            "outputs": outputs,
            "elapsed_s": ds.attrs.get("elapsed_s"),
            "cells_computed": ds.attrs.get("cells_computed"),
            "cells_cached": ds.attrs.get("cells_cached"),
            "provenance": json.loads(ds.attrs["provenance"]),
        }
        body = json.dumps(manifest, indent=1, default=str) + "\n"
        write_atomic(staging / "study.json", lambda tmp: tmp.write_text(body, encoding="utf-8"), force=True)
        outputs.append("study.json")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        _replace_with_link(out / _OUTPUTS_LINK, staging.name)  # the switch: one atomic rename
    except OSError as exc:  # no symbolic links here (some Windows setups): move the files, study.json last
        log.warning("cannot switch %s with a symbolic link (%s); moving the files one by one", out, exc)
        for name in outputs:
            os.replace(staging / name, out / name)
        shutil.rmtree(staging, ignore_errors=True)
        return
    for name in outputs:  # fixed links OUT/<name> -> outputs/<name> (an old study's plain files are replaced)
        _replace_with_link(out / name, f"{_OUTPUTS_LINK}/{name}")
    for name in _output_names(True):  # links of outputs this run did not write (e.g. --no-report) would dangle
        p = out / name
        if name not in outputs and p.is_symlink() and os.readlink(p).startswith(f"{_OUTPUTS_LINK}/"):
            p.unlink()
        elif name not in outputs and p.is_file():
            p.unlink()  # a plain file of an older layout: it belongs to the replaced study
    _clean_staging(out)
