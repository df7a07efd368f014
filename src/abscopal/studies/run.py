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
concurrent). The cell's risk is the mean over patients (0 for those not irradiated). A fit's ``ntcp__`` values
(pneumonitis model fitted to the pneumonitis cohorts, docs/calibration.md) replace the model's defaults in each
draw, so the risk's interval carries their uncertainty; without them it has none (every draw gives the same risk).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import xarray as xr

from .._version import __version__
from ..arms import arm_patients
from ..endpoints import DAYS_PER_MONTH
from ..endpoints.scans import ExplicitScans
from ..errors import AbscopalWarning, ParameterError
from ..fitted.shipped import fit_file_hash, resolve_fit_path
from ..fitted.values import split_values
from ..model.compile import compile_model
from ..parallel import CONNECT_TIMEOUT_S, check_parallel, task_runner
from ..parallel import check_scheduler as check_scheduler  # re-exported (it was defined here)
from ..patients import VirtualPatients
from ..population import VirtualPopulation
from ..provenance import environment
from ..targeting import place_rt_targets
from .assemble import assemble, summary_table
from .cache import _BadCellError, _load_cell, _save_cell
from .cell import _KM_STEP_MONTH, SUMMARY_METRICS, CellTask, StudySetup, run_cell
from .design import StudyDesign
from .outputs import _clean_staging, _write_outputs, check_study_dir

if TYPE_CHECKING:
    from ..fitted.format import Fit
    from ..model.spec import ModelSpec

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

log = logging.getLogger(__name__)


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
    before any simulation. A library study draws NSCLC virtual patients (:func:`abscopal.arms.arm_patients`); a
    study of an imported SBML model draws a plain population, as a scenario file does (:func:`_imported_cohort`).
    """
    fit_path = _fit_path(design, relative_to)
    from ..fitted.format import Fit

    cal = None if fit_path is None else Fit.load(fit_path)
    prov = {} if cal is None else cal.provenance
    name, spec = _library_spec(design, prov) if design.imported is None else ("", design.imported.spec)
    if cal is not None:
        cal.check_model(spec, fit_path)  # a fit made for another model (lesion count, growth, an SBML file) is refused
    for s in design.axes["site"]:
        if design.imported is None and s.n_lesions > spec.n_lesions:
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
    cohort = _library_cohort(design, spec) if design.imported is None else _imported_cohort(design, spec)
    patients, var_names = cohort.patients, cohort.variability_names
    for d in draws:  # every name of the fit must be usable here (typical value, omega or covariate effect)
        split_values(spec, d, var_names)
    starts = [t.start_day for t in design.axes["timing"] if t.start_day is not None]
    start_day = min([0.0, *starts])
    t_end = design.t_end_day
    assessment = design.trial_assessment(start_day, t_end)
    km_month = np.arange(0.0, (t_end - start_day) / DAYS_PER_MONTH + 1e-9, _KM_STEP_MONTH)
    placed: dict[str, tuple[VirtualPatients, tuple[int, ...]]] = {}
    if isinstance(patients, VirtualPatients):  # an imported model's cells have no RT (design.py)
        for s in design.axes["site"]:
            placed[s.label] = place_rt_targets(patients, s.target, n_lesions=s.n_lesions)  # raises before any work
    model = compile_model(spec)
    fit_hash = fit_file_hash(fit_path)
    common = {
        "version": __version__,
        "model_hash": spec.content_hash(),
        "fit_hash": fit_hash,
        "draws": [sorted(d.items()) for d in draws],
        "mix": cohort.mix,
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
        **cohort.key,  # only for an imported model, so that library cells keep their keys
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
            model_events=cohort.model_events,
        )
    provenance = {
        "package": "abscopal",
        "version": __version__,
        "environment": environment(),
        "model": spec.name,
        "model_hash": spec.content_hash(),
        "n_lesions": cohort.n_lesions,
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
        "mix_source": cohort.source,
        "sources": spec.sources(),
        **({"model_source": dict(design.model_sbml)} if design.imported is not None else {}),
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


def _library_spec(design: StudyDesign, prov: Mapping[str, Any]) -> tuple[str, ModelSpec]:
    """The library model of a study, by name: the design's options, else the fit's model (default ``nsclc``, 3
    lesions)."""
    from ..model.library import get_model, version_options

    name = design.model_name or prov.get("model_name_library") or "nsclc"
    n_lesions = design.n_lesions or int(prov.get("n_lesions") or 3)
    opts: dict[str, Any] = {"n_lesions": n_lesions} | ({"growth": design.growth} if design.growth else {})
    fit_version = prov.get("model_version") if name == prov.get("model_name_library") else None
    opts |= version_options(name, design.model_version or fit_version)
    return name, get_model(name, **opts)


@dataclass(frozen=True, kw_only=True)
class _Cohort:
    """A study's patients and what the cell keys and the provenance say about them."""

    patients: VirtualPatients | VirtualPopulation
    variability_names: tuple[str, ...]
    mix: str | None
    source: str
    n_lesions: int
    key: Mapping[str, Any] = field(default_factory=dict)
    model_events: tuple[tuple[float, str, tuple[float, ...]], ...] = ()


def _library_cohort(design: StudyDesign, spec: ModelSpec) -> _Cohort:
    """NSCLC virtual patients of the design's mix (:func:`abscopal.arms.arm_patients`)."""
    patients = arm_patients(design.population.patient_mix(), design.n_patients, spec.n_lesions, design.seed, spec)
    return _Cohort(
        patients=patients,
        variability_names=tuple(patients.variability),
        mix=patients.mix.name,
        source=patients.mix.source,
        n_lesions=spec.n_lesions,
    )


def _imported_cohort(design: StudyDesign, spec: ModelSpec) -> _Cohort:
    """An imported model's patients, as a scenario file draws them (:func:`abscopal.scenario.parse_scenario`): a
    plain :class:`~abscopal.population.VirtualPopulation` with the design's variability, no covariates; scored
    without patients (lesion sites from the assessment, event draws from the seed: :func:`abscopal.arms.run_arm`).
    The SBML file's own timed events fire in every cell."""
    imported = design.imported
    assert imported is not None  # the caller's branch
    population = VirtualPopulation(n_patients=design.n_patients, seed=design.seed, variability=design.variability)
    population.check(spec)
    var = ", ".join(f"{k} {type(v).__name__} omega {v.omega:g}" for k, v in design.variability.items()) or "none"
    return _Cohort(
        patients=population,
        variability_names=tuple(design.variability),
        mix=None,
        source=(
            f"imported SBML model {str(imported.path)!r} (sha256 {imported.sha256[:12]}...): a plain population "
            f"without NSCLC covariates, between-patient variability: {var}"
        ),
        n_lesions=max(spec.n_lesions, 1),  # a lesion role without lesion structure is scored as one lesion
        key={
            "imported": {
                "sbml_sha256": imported.sha256,
                "roles": dict(imported.roles),
                "units": dict(imported.units),
                "variability": {k: [type(v).__name__, v.omega] for k, v in design.variability.items()},
                "model_events": [[t, name, list(args)] for t, name, args in imported.schedule],
            }
        },
        model_events=imported.schedule,
    )


# ---- execution --------------------------------------------------------------------------------------------------
def _progress_printer(stream: TextIO | None = None, unit: str = "cells") -> Callable[[int, int, int, str], None]:
    stream = stream or sys.stderr
    t0 = time.perf_counter()

    def show(done: int, total: int, cached: int, label: str) -> None:
        el = time.perf_counter() - t0
        width = 30
        fill = int(width * done / max(total, 1))
        left = (el / max(done - cached, 1)) * (total - done) if done > cached else float("nan")
        eta = f"~{left:4.0f} s left" if math.isfinite(left) else ""
        stream.write(
            f"\r[{'#' * fill}{'-' * (width - fill)}] {done}/{total} {unit}"
            + (f" ({cached} cached) " if unit == "cells" else " ")
            + f"{el:5.0f} s {eta} {label[:40]:<40}"
        )
        if done == total:
            stream.write("\n")
        stream.flush()

    return show


_CONNECT_TIMEOUT_S = CONNECT_TIMEOUT_S


def _execute(
    tasks: Sequence[CellTask], scheduler: str | None, workers: int | None
) -> Iterator[tuple[CellTask, xr.Dataset]]:
    """Run the cells in process, on a local cluster of ``workers`` processes or on ``scheduler``
    (:func:`abscopal.parallel.task_runner`)."""
    with task_runner(scheduler, workers, timeout_s=_CONNECT_TIMEOUT_S) as run:
        yield from run(run_cell, tasks, [f"abscopal-cell-{t.key}" for t in tasks])


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
    check_parallel(workers, scheduler)
    check_study_cost(design, allow_large)
    out = None if out_dir is None else Path(out_dir)
    if out is not None:  # the fit is an input too
        sbml = None if design.imported is None else design.imported.path
        check_study_dir(out, force=force, inputs=[design.source, _fit_path(design, relative_to), sbml])
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
