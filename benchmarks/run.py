"""Solver benchmark of abscopal's simulation core (issue 2, section 6).

Workload: the default NSCLC model with 3 lesions; SBRT 24 Gy/3 to lesion 0 starting 7 days
before pembrolizumab 200 mg q3w; 2 years; daily output; log-normal variability on three
parameters. Everything is measured in this run, on this machine:

* ``compile_seconds_cold``: a fresh process with an empty kernel cache generates the kernel
  source, numba-compiles it and solves one patient;
* ``compile_seconds_warm``: a second fresh process on the now-populated cache does the same
  (the "warm start": kernel lookup, import and numba cache load); the import of abscopal and
  the (sympy) construction of the model spec are reported separately (``import_seconds``,
  ``build_spec_seconds``);
* ``seconds_10k_warm``: 10,000 patients with :func:`abscopal.solver.solve` (states and
  observables, all cores) once compiled, and the same through :func:`abscopal.simulate`
  (``seconds_10k_simulate_xarray``: every state and observable, daily, float64: 2.2 GB, so
  ``allow_large=True``); ``seconds_10k_simulate_xarray_scored``: the same patients through
  :func:`abscopal.simulate` asking only for what scoring reads (``variables=scored_outputs(spec)``),
  on the weekly grid of :func:`abscopal.arms.run_arm`, stored as float32;
* ``parallel_efficiency_2_threads``: time of :func:`abscopal.simulate` (2,000 of the patients, daily
  output, every variable) on one thread divided by its time on two (``numba.set_num_threads``;
  the runs alternate, medians of ``--repeats``);
* ``scoring_to_solver_ratio``: a cell of ``studies/default.toml`` (its 200 patients, SBRT 24 Gy/3
  from day -7 + pembrolizumab, the shipped fit's point values, through :func:`abscopal.arms.run_arm`):
  the time of :func:`abscopal.score` (RECIST 1.1 at every scan, new lesions, deaths, PFS / OS,
  per-arm summaries with KM curves, log-rank and Cox) divided by the time of
  :func:`abscopal.solver.solve` on the same patients, events and output grid (medians of
  ``--repeats``; ``scoring_seconds_200`` and ``solver_seconds_200`` are the two times);
* ``speedup_vs_scipy_loop_n1000``: per-patient time of a loop of ``scipy.integrate.solve_ivp``
  (LSODA, same tolerances, the model's own *Python* right-hand side: the generated code run
  by the interpreter, with the same exact jumps between events) divided by abscopal's
  per-patient time at N = 1000. The loop's per-patient cost is measured on ``--loop-patients``
  patients (default 50; it is a plain loop, linear in N); pass ``--loop-patients 1000`` to run all of them.
  The loop and the compiled N = 1000 solve are timed back to back ``--repeats`` times:
  ``speedup_vs_scipy_loop_n1000_repeats`` / ``_min`` / ``_max`` give the spread of the ratio over repeats;
* ``max_rel_error_vs_radau``: abscopal (benchmark tolerances) against scipy ``Radau`` at
  rtol 1e-10 on every state at every output time, error ``|a - b| / (|b| + atol_i)`` with
  ``atol_i`` the state's ``abs_tol`` (the magnitude below which the model calls a state
  negligible: 1e-6 for normalised compartments, 1e-3 mm3 for volumes);
* ``speedup_vs_roadrunner_n1000``: the same 1,000 patients (same draws) on the SBML export of the workload
  (:func:`abscopal.sbml.export_sbml`: the plan's fractions and doses are SBML events), simulated by libRoadRunner
  (CVODE) in a loop (reset, set the patient's varied parameters, reset the states, simulate the daily grid,
  every state) with the same relative tolerance and the same per-state absolute tolerances, divided by abscopal's batch
  ``solve`` of the 1,000 (states and observables); ``max_rel_error_vs_roadrunner`` compares the two on every state
  of the first 20 patients (same error as for Radau); ``roadrunner_patients_measured`` is the loop's length
  (``--roadrunner-patients``, default 1000);
* ``speedup_vs_roadrunner_kosinsky_n1000``: the same comparison on the Kosinsky 2018 SBML
  (``tests/data/kosinsky2018/Kosinsky2018.xml``) imported with :func:`abscopal.sbml.read_sbml` (abscopal runs the
  import, libRoadRunner the file): 1,000 patients with log-normal variability on five parameters (as in
  ``tests/integration/test_sbml_import.py``), 0-40 days on the SED-ML grid (101 times);
* the roadrunner figures are ``null`` (and ``roadrunner`` says why) when libroadrunner or python-libsbml is
  missing;
* all of the above use one setting, rtol 1e-7 with absolute tolerances ``abs_tol x 1e-8`` (so
  exponentially decaying signals are followed relatively); ``seconds_10k_default_tolerances``
  and ``max_rel_error_vs_radau_default_tolerances`` report :class:`SolverOptions` defaults
  (rtol 1e-6, absolute tolerance = abs_tol) for comparison.

Stiff workload (``stiff_*``): the stiff receptor-binding model
(:mod:`abscopal.model.library.receptor_binding`: binding at kon C ~ 1e4-5e4 per day), the same plan (SBRT 24 Gy/3
from day -7, pembrolizumab 200 mg q3w, 737 days, daily output), 1,000 patients with log-normal variability on kon,
clearance and growth, rtol 1e-7 with absolute tolerance = abs_tol:

* ``stiff_speedup_vs_python_radau``: per-patient time of scipy ``Radau`` (the Python stiff fallback before the
  compiled solver; compiled RHS and analytic Jacobian, ``solve(method="radau")``), measured on
  ``--stiff-radau-patients`` patients (default 20; a plain loop, linear in N) and scaled per patient, divided by
  the per-patient time of the compiled Rodas4 (``method="rosenbrock"``) on all 1,000 patients (all cores, as every
  ``seconds`` figure here); ``stiff_speedup_vs_python_radau_serial`` the same against Rodas4 on one thread;
* ``stiff_seconds_1k_auto``: the 1,000 patients with ``method="auto"`` (Dormand-Prince until its stiffness test
  fires, then Rodas4); ``stiff_dopri5_fallback_seconds_per_patient``: the default ``method="dopri5"``, which burns
  its 200,000-step budget before handing over to Rodas4 (measured on the Radau patients);
* ``stiff_max_rel_error_rodas4_vs_radau``: Rodas4 against that Radau run (same tolerances), error
  ``|a - b| / (|b| + atol_i)`` on every state and day.

``--stiff-only`` runs the stiff workload alone.

Calibration workload: ``calibration_seconds_per_eval_500`` (and ``_100``): one evaluation of the calibration
objective over the whole fit set (``fits/targets/*.toml``) with 500 (100) virtual patients per arm at the shipped
fit's values, warm, median of ``--repeats`` (at least 3), with its CPU time and the shares of solve, scoring and
the rest (:func:`calibration_per_eval`).

Study workload: ``study_seconds_default``: ``studies/default.toml`` (its cells x the shipped fit's parameter draws
x 200 patients) run in memory by :func:`abscopal.studies.run.run_study` on ``--study-workers`` local Dask processes
(default: the machine's cores), kernels warm, nothing written or reused (:func:`study_default`); ``--study-only``
runs it alone, ``--no-study`` skips it.

Usage: ``python benchmarks/run.py`` (table) or ``python benchmarks/run.py --json``; ``--speed-keys`` measures
only the two 10k ``simulate()`` times, ``parallel_efficiency_2_threads``, ``scoring_to_solver_ratio`` and the
calibration keys; ``--calibration-only`` the calibration keys alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from _output import print_result
from scipy.integrate import solve_ivp

from abscopal.endpoints import score
from abscopal.endpoints.readout import scored_outputs
from abscopal.model.compile import compile_model
from abscopal.model.library.nsclc import nsclc_model
from abscopal.model.library.receptor_binding import receptor_binding_model
from abscopal.parameters import resolve_values
from abscopal.population import LogNormal, VirtualPopulation
from abscopal.simulate import plan_events, simulate
from abscopal.solver import EventSchedule, SolverOptions, solve
from abscopal.treatment import TreatmentPlan, drug_regimen, radiation_regimen

RTOL = 1e-7
# absolute tolerance = each state's abs_tol x ATOL_SCALE: decaying signals (danger, TGF-beta) are then
# tracked relatively, which the 1e-5 relative agreement with Radau on every state requires
ATOL_SCALE = 1e-8
START_DAY = -7.0
END_DAY = 730.0
VARIABILITY = {
    "effector_baseline": LogNormal(omega=0.8),
    "tumour_doubling_time_day": LogNormal(omega=0.4),
    "max_kill_per_day": LogNormal(omega=0.5),
}


def workload():
    """Model spec, plan, typical values and output grid of the benchmark."""
    spec = nsclc_model(3)
    plan = TreatmentPlan(
        drug=drug_regimen("pembrolizumab_200mg_q3w"),
        radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=START_DAY),),
    )
    values = resolve_values(spec, plan.parameter_overrides())
    t_out = np.arange(START_DAY, END_DAY + 1.0)
    return spec, plan, values, t_out


def population_inputs(model, spec, plan, values, n):
    pop = VirtualPopulation(n_patients=n, variability=VARIABILITY, seed=20261127)
    P = pop.parameter_matrix(spec, values)
    events = EventSchedule.concatenate([(EventSchedule.from_lists(model, [plan_events(spec, plan, END_DAY)]), n)])
    return P, events


def _compile_in_subprocess(cache_dir: str) -> dict[str, float]:
    code = r"""
import json, time
t0 = time.perf_counter()
import abscopal.solver as S
from abscopal.model.library.nsclc import nsclc_model
from abscopal.model.compile import compile_model
import numpy as np
t1 = time.perf_counter()
spec = nsclc_model(3)
spec.content_hash()
t_spec = time.perf_counter()
cm = compile_model(spec)
p = np.array([[spec.default_values()[n] for n in spec.parameter_names]])
S.solve(cm, p, np.array([0.0, 1.0]))
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "build_spec": t_spec - t1, "compile_and_first_solve": t2 - t_spec}))
"""
    env = dict(os.environ, ABSCOPAL_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def scipy_loop_per_patient(model, P, events, t_out, atol) -> float:
    """Seconds per patient of a solve_ivp(LSODA) loop with the interpreted generated RHS."""
    mod = model.module
    rhs_py, jump_py, extend_py, init_py = mod.rhs.py_func, mod.jump.py_func, mod.extend.py_func, mod.initial.py_func
    ns = len(model.spec.states)
    t_start = time.perf_counter()
    for i in range(P.shape[0]):
        pe = np.empty(mod.N_EXT)
        extend_py(P[i], pe)
        y = np.empty(ns)
        init_py(pe, y)
        a, b = events.ptr[i], events.ptr[i + 1]
        ev_t, ev_k, ev_a = events.times[a:b], events.kinds[a:b], events.args[a:b]

        def f(t, y, pe=pe):
            dy = np.empty(ns)
            rhs_py(t, y, pe, dy)
            return dy

        t, e = t_out[0], 0
        while True:
            while e < ev_t.size and ev_t[e] <= t:
                jump_py(int(ev_k[e]), t, y, pe, ev_a[e])
                e += 1
            tb = min(t_out[-1], ev_t[e]) if e < ev_t.size else t_out[-1]
            if tb <= t:
                break
            inside = t_out[(t_out > t) & (t_out <= tb)]
            sol = solve_ivp(f, (t, tb), y, method="LSODA", rtol=RTOL, atol=atol, t_eval=inside)
            if sol.status != 0:
                raise RuntimeError(f"scipy LSODA failed for patient {i}: {sol.message}")
            y = sol.y[:, -1].copy()
            t = tb
    return (time.perf_counter() - t_start) / P.shape[0]


KOSINSKY_SBML = Path(__file__).resolve().parents[1] / "tests" / "data" / "kosinsky2018" / "Kosinsky2018.xml"
KOSINSKY_VARIABILITY = {
    "r": LogNormal(omega=0.2),
    "kLN": LogNormal(omega=0.3),
    "S_L": LogNormal(omega=0.696),
    "n_e": LogNormal(omega=0.3),
    "Kpdl": LogNormal(omega=0.3),
}


def _roadrunner(text_or_path: str, rtol: float, atol_by_id: dict[str, float]):
    import roadrunner

    rr = roadrunner.RoadRunner(text_or_path)
    rr.integrator.relative_tolerance = rtol
    rr.integrator.maximum_num_steps = 1_000_000
    for sid, atol in atol_by_id.items():
        rr.integrator.setIndividualTolerance(sid, atol)
    return rr


def roadrunner_loop(rr, P, columns, selections, t_out) -> tuple[float, np.ndarray]:
    """Seconds per patient of libRoadRunner in a loop (reset everything, set the varied parameters, reset the states:
    the initial assignments follow the parameters; simulate), and the states of every patient ``(n, time, state)``.
    (Setting ``init(p)`` instead regenerates the model: 0.2 s per patient.)"""
    rr.timeCourseSelections = ["time", *selections]
    out = np.empty((P.shape[0], t_out.size, len(selections)))
    times = list(t_out)
    t0 = time.perf_counter()
    for i in range(P.shape[0]):
        rr.resetAll()
        for sid, k in columns:
            rr[sid] = P[i, k]
        rr.reset()
        out[i] = np.asarray(rr.simulate(times=times))[:, 1:]
    return (time.perf_counter() - t0) / P.shape[0], out


def roadrunner_comparison(model, spec, plan, P1k, ev1k, t_out, opts, t_1k, n_rr: int) -> dict[str, object]:
    """``speedup_vs_roadrunner_n1000`` and ``speedup_vs_roadrunner_kosinsky_n1000`` (see the module docstring)."""
    try:
        import libsbml  # noqa: F401
        import roadrunner  # noqa: F401
    except ImportError as exc:
        return {
            "roadrunner": f"skipped: {exc.name} is not installed (pip install abscopal[sbml] libroadrunner)",
            "speedup_vs_roadrunner_n1000": None,
            "speedup_vs_roadrunner_kosinsky_n1000": None,
        }
    from abscopal.sbml import export_sbml, read_sbml

    atol = np.array([s.abs_tol for s in spec.states]) * ATOL_SCALE
    export = export_sbml(spec, plan, t_end_day=END_DAY)
    assert export.start_day == START_DAY
    rr = _roadrunner(export.text, RTOL, dict(zip(spec.state_names, atol, strict=True)))
    cols = [(n, spec.parameter_names.index(n)) for n in VARIABILITY]
    n = min(n_rr, P1k.shape[0])
    rr_pp, rr_y = roadrunner_loop(rr, P1k[:n], cols, spec.state_names, t_out - export.start_day)  # SBML time
    ours = solve(
        model,
        P1k[:20],
        t_out,
        events=EventSchedule(ev1k.ptr[:21], ev1k.times, ev1k.kinds, ev1k.args),
        t0=START_DAY,
        options=opts,
    ).y
    m = min(20, n)
    rel = np.abs(ours[:m] - rr_y[:m]) / (np.abs(rr_y[:m]) + atol / ATOL_SCALE)

    imp = read_sbml(KOSINSKY_SBML)
    kspec = imp.spec
    kmodel = compile_model(kspec)
    pop = VirtualPopulation(n_patients=1000, variability=KOSINSKY_VARIABILITY, seed=2018)
    KP = pop.parameter_matrix(kspec, {**kspec.default_values(), "mAb": 10.0})
    k_t = np.linspace(0.0, 40.0, 101)
    k_atol = np.array([s.abs_tol for s in kspec.states]) * ATOL_SCALE
    k_opts = SolverOptions(rtol=RTOL, atol_scale=ATOL_SCALE)
    solve(kmodel, KP[:4], k_t, options=k_opts)  # JIT warm-up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        k_ours = solve(kmodel, KP, k_t, options=k_opts).y
        times.append(time.perf_counter() - t0)
    k_pp = float(np.median(times)) / KP.shape[0]
    sbml_ids = {v: k for k, v in imp.names.items()}
    k_rr = _roadrunner(str(KOSINSKY_SBML), RTOL, {s: a for s, a in zip(kspec.state_names, k_atol, strict=True)})
    k_cols = [(sbml_ids.get(name, name), kspec.parameter_names.index(name)) for name in [*KOSINSKY_VARIABILITY, "mAb"]]
    nk = min(n_rr, KP.shape[0])
    k_rr_pp, k_rr_y = roadrunner_loop(k_rr, KP[:nk], k_cols, [f"[{s}]" for s in kspec.state_names], k_t)
    k_rel = np.abs(k_ours[:nk] - k_rr_y) / (np.abs(k_rr_y) + k_atol / ATOL_SCALE)
    return {
        "roadrunner": f"libroadrunner {__import__('roadrunner').__version__} (CVODE), same rtol and per-state atol",
        "roadrunner_patients_measured": n,
        "roadrunner_seconds_per_patient": rr_pp,
        "speedup_vs_roadrunner_n1000": rr_pp / (t_1k / 1000),
        "max_rel_error_vs_roadrunner": float(rel.max()),
        "kosinsky_roadrunner_seconds_per_patient": k_rr_pp,
        "kosinsky_seconds_per_patient_n1000": k_pp,
        "speedup_vs_roadrunner_kosinsky_n1000": k_rr_pp / k_pp,
        "max_rel_error_vs_roadrunner_kosinsky": float(k_rel.max()),
    }


def speed_keys(spec, plan, repeats: int) -> dict[str, float]:
    """The four keys of the speed issue, in one process (``--speed-keys``)."""
    model = compile_model(spec)
    sim = {"t_end_day": END_DAY, "start_day": START_DAY, "solver": SolverOptions(rtol=RTOL, atol_scale=ATOL_SCALE)}
    warm = VirtualPopulation(n_patients=8, variability=VARIABILITY, seed=1)
    simulate(model, {"sbrt+pembro": plan}, population=warm, **sim)  # JIT and dispatch warm-up
    pop = VirtualPopulation(n_patients=10_000, variability=VARIABILITY, seed=20261127)
    lean = {"output_interval_day": 7.0, "variables": scored_outputs(spec), "dtype": "float32"}

    def timed(kwargs) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            simulate(model, {"sbrt+pembro": plan}, population=pop, **sim, **kwargs)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    efficiency = parallel_efficiency(model, plan, sim, repeats)
    scoring = scoring_to_solver(repeats)
    return calibration_per_eval(repeats) | {
        "threads": numba.get_num_threads(),
        "seconds_10k_simulate_xarray": timed({"allow_large": True}),
        "seconds_10k_simulate_xarray_scored": timed(lean),
        "parallel_efficiency_2_threads": efficiency["efficiency"],
        "seconds_2k_simulate_1_thread": efficiency["serial"],
        "seconds_2k_simulate_2_threads": efficiency["parallel"],
        "scoring_to_solver_ratio": scoring["scoring"] / scoring["solver"],
        "scoring_seconds_200": scoring["scoring"],
        "solver_seconds_200": scoring["solver"],
    }


def parallel_efficiency(model, plan, sim, repeats: int, n: int = 2000, threads: int = 2) -> dict[str, float]:
    """Median time of the same :func:`simulate` on one thread and on ``threads`` threads (runs alternate)."""
    pop = VirtualPopulation(n_patients=n, variability=VARIABILITY, seed=20261127)
    before = numba.get_num_threads()
    times: dict[int, list[float]] = {1: [], threads: []}
    try:
        for _ in range(repeats):
            for k in (1, threads):
                numba.set_num_threads(k)
                t0 = time.perf_counter()
                simulate(model, {"sbrt+pembro": plan}, population=pop, **sim)
                times[k].append(time.perf_counter() - t0)
    finally:
        numba.set_num_threads(before)
    serial, parallel = float(np.median(times[1])), float(np.median(times[threads]))
    return {"serial": serial, "parallel": parallel, "efficiency": serial / parallel}


def scoring_to_solver(repeats: int) -> dict[str, float]:
    """Scoring and solver time of one cell of the default study (module docstring)."""
    from abscopal.arms import run_arm
    from abscopal.studies.design import load_study
    from abscopal.studies.run import prepare_study

    study = Path(__file__).resolve().parents[1] / "studies" / "default.toml"
    setup = prepare_study(load_study(study))
    task = next(t for t in setup.tasks if t.cell.has_rt and not t.cell.timing.at_progression)
    plan = task.cell.plan(task.target_lesions).for_model(task.model.spec)
    run = run_arm(
        task.model,
        plan,
        task.patients,
        task.assessment,
        task.draws[0],
        variability_names=task.variability_names,
        start_day=task.start_day,
        t_end_day=task.t_end_day,
        solver=task.solver,
        variables=scored_outputs(task.model.spec),
    )
    ds, assessment = run.simulation, run.scored.assessment
    n = ds.sizes["patient"]
    P = ds.parameter_value.values[0]
    events = EventSchedule.concatenate(
        [(EventSchedule.from_lists(task.model, [plan_events(task.model.spec, plan, task.t_end_day)]), n)]
    )
    t_out = ds.time.values

    def solver() -> None:
        solve(task.model, P, t_out, events=events, t0=float(t_out[0]), options=task.solver)

    def scoring() -> None:
        score(ds, assessment, patients=task.patients)

    solver()
    scoring()
    times: dict[str, list[float]] = {"solver": [], "scoring": []}
    for _ in range(max(repeats, 5)):
        for name, fn in (("solver", solver), ("scoring", scoring)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def calibration_per_eval(repeats: int, sizes: tuple[int, ...] = (100, 500)) -> dict[str, float | int]:
    """``calibration_seconds_per_eval_<n>``: one objective evaluation over the whole fit set (every
    ``fits/targets/*.toml``, as ``fits/make_default.py`` loads it) with ``n`` virtual patients per arm, at the shipped
    fit's values, kernels warm (one evaluation first; the last-simulation memo is cleared before each timed one);
    median of ``repeats`` (at least 3). Also the CPU time of the process (both threads count), and for the largest
    ``n`` the shares of one more evaluation spent in the compiled solves (``simulate``'s solve and the history
    shooting of arms with prior RT), in scoring (``abscopal.score``, with the Stein fits of the OS link) and in
    everything else (plans, datasets, smooth predictions)."""
    import glob
    from importlib import import_module

    from abscopal.calibrate.objective import CalibrationProblem
    from abscopal.fitted.format import Fit
    from abscopal.trials import load_all

    root = Path(__file__).resolve().parents[1]
    targets = tuple(load_all(sorted(glob.glob(str(root / "fits" / "targets" / "*.toml")))).values())
    values = Fit.load(root / "fits" / "default.json").values
    sim_module, arms_module = import_module("abscopal.simulate"), import_module("abscopal.arms")
    out: dict[str, float | int] = {"threads": numba.get_num_threads()}
    for n in sizes:
        problem = CalibrationProblem(targets=targets, n_patients_per_arm=n, seed=0)
        problem.residuals_from_values(values)  # warm-up: kernels, prepared arms
        wall, cpu = [], []
        for _ in range(max(repeats, 3)):
            problem._memo.clear()  # the objective reuses the last simulation at the same values: measure a new one
            t0, c0 = time.perf_counter(), time.process_time()
            problem.residuals_from_values(values)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        out[f"calibration_seconds_per_eval_{n}"] = float(np.median(wall))
        out[f"calibration_cpu_seconds_per_eval_{n}"] = float(np.median(cpu))
        out["calibration_arms_simulated"] = len(problem._simulated)
        out["calibration_residuals"] = len(problem.keys)
    spent = {"solve": 0.0, "scoring": 0.0}
    wrapped = {
        (sim_module, "solve_to_store"): "solve",
        (sim_module, "hold_sizes_at_time_zero"): "solve",
        (arms_module, "score"): "scoring",
    }
    originals = {key: getattr(*key) for key in wrapped}

    def timing(fn, part):
        def inner(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[part] += time.perf_counter() - t0

        return inner

    try:
        for (module, name), part in wrapped.items():
            setattr(module, name, timing(originals[(module, name)], part))
        problem._memo.clear()
        t0 = time.perf_counter()
        problem.residuals_from_values(values)
        total = time.perf_counter() - t0
    finally:
        for (module, name), fn in originals.items():
            setattr(module, name, fn)
    n = max(sizes)
    out[f"calibration_{n}_solve_share"] = spent["solve"] / total
    out[f"calibration_{n}_scoring_share"] = spent["scoring"] / total
    out[f"calibration_{n}_other_share"] = 1.0 - (spent["solve"] + spent["scoring"]) / total
    return out


STIFF_VARIABILITY = {
    "kon_per_nm_day": LogNormal(omega=0.5),
    "pk_cl_l_per_day": LogNormal(omega=0.3),
    "growth_per_day": LogNormal(omega=0.4),
}


def stiff_benchmark(radau_patients: int, repeats: int, timed) -> dict[str, float | int | str]:
    """The stiff workload (module docstring): compiled Rodas4 against the scipy Radau fallback."""
    plan = TreatmentPlan(
        drug=drug_regimen("pembrolizumab_200mg_q3w"),
        radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=START_DAY),),
    )
    t_out = np.arange(START_DAY, END_DAY + 1.0)
    spec = receptor_binding_model()
    model = compile_model(spec)
    n = 1000
    pop = VirtualPopulation(n_patients=n, variability=STIFF_VARIABILITY, seed=20261127)
    P = pop.parameter_matrix(spec, resolve_values(spec, plan.parameter_overrides()))
    events = EventSchedule.concatenate([(EventSchedule.from_lists(model, [plan_events(spec, plan, END_DAY)]), n)])

    def run(options: SolverOptions, m: int = n):
        ev = EventSchedule(events.ptr[: m + 1], events.times, events.kinds, events.args)
        return solve(model, P[:m], t_out, events=ev, t0=START_DAY, options=options)

    ros = SolverOptions(method="rosenbrock", rtol=RTOL)
    run(ros, 4), run(SolverOptions(method="auto", rtol=RTOL), 4)  # JIT warm-up
    run(SolverOptions(method="rosenbrock", rtol=RTOL, parallel=False), 1)
    t_ros = timed(lambda: run(ros))
    t_ros_serial = timed(lambda: run(SolverOptions(method="rosenbrock", rtol=RTOL, parallel=False)))
    t_auto = timed(lambda: run(SolverOptions(method="auto", rtol=RTOL)))
    nr = min(radau_patients, n)
    t0 = time.perf_counter()
    ref = run(SolverOptions(method="radau", rtol=RTOL), nr)
    radau_pp = (time.perf_counter() - t0) / nr
    t0 = time.perf_counter()
    fallback = run(SolverOptions(rtol=RTOL), nr)
    dopri_pp = (time.perf_counter() - t0) / nr
    sol = run(ros)
    atol = np.array([s.abs_tol for s in spec.states])
    err = np.abs(sol.y[:nr] - ref.y) / (np.abs(ref.y) + atol)
    c = spec.state_names.index("C")
    kon = P[:, spec.parameter_names.index("kon_per_nm_day")]
    return {
        "stiff_workload": "receptor_binding (TMDD + tumour), SBRT 24 Gy/3 + pembrolizumab 200 mg q3w, 737 days, "
        "daily output, 1000 patients, rtol 1e-7, atol = abs_tol",
        "stiff_fastest_rate_per_day_median": float(np.median(kon * sol.y[:, :, c].max(axis=1))),
        "stiff_rodas4_seconds_per_patient_n1000": t_ros / n,
        "stiff_rodas4_serial_seconds_per_patient_n1000": t_ros_serial / n,
        "stiff_rodas4_steps_per_patient_median": float(np.median(sol.counts[:, 0] + sol.counts[:, 1])),
        "stiff_radau_seconds_per_patient": radau_pp,
        "stiff_radau_patients_measured": nr,
        "stiff_speedup_vs_python_radau": radau_pp / (t_ros / n),
        "stiff_speedup_vs_python_radau_serial": radau_pp / (t_ros_serial / n),
        "stiff_seconds_1k_auto": t_auto,
        "stiff_dopri5_fallback_seconds_per_patient": dopri_pp,
        "stiff_dopri5_fallback_patients": int(fallback.n_fallback),
        "stiff_max_rel_error_rodas4_vs_radau": float(err.max()),
    }


def study_default(workers: int) -> dict[str, float | int]:
    """``study_seconds_default``: ``studies/default.toml`` (the shipped fit, its parameter draws, 200 patients per
    cell) in memory (``out_dir=None``: nothing written or reused), warm kernels, on ``workers`` local Dask processes
    (1: in this process). The kernels are compiled and loaded by a first run of one cell beforehand."""
    from abscopal.studies.design import load_study
    from abscopal.studies.run import prepare_study, run_study

    path = Path(__file__).resolve().parents[1] / "studies" / "default.toml"
    design = load_study(path)
    setup = prepare_study(design)  # compiles (or loads) the kernel: not timed
    t0 = time.perf_counter()
    run_study(design, None, workers=workers if workers > 1 else None, report=False)
    return {
        "study_seconds_default": time.perf_counter() - t0,
        "study_cells_default": len(setup.tasks),
        "study_workers": workers,
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--loop-patients", type=int, default=50, help="patients in the scipy loop baseline (>= 50)")
    ap.add_argument("--radau-patients", type=int, default=5, help="patients in the Radau accuracy check")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the timed solves (median reported)")
    ap.add_argument(
        "--roadrunner-patients", type=int, default=1000, help="patients in the libRoadRunner loops (default 1000)"
    )
    ap.add_argument("--only-roadrunner", action="store_true", help="only the libRoadRunner comparisons")
    ap.add_argument(
        "--speed-keys",
        action="store_true",
        help="only the keys of the 'speed where users wait' issue: the two 10k simulate() times, "
        "parallel_efficiency_2_threads and scoring_to_solver_ratio (about a minute)",
    )
    ap.add_argument(
        "--calibration-only",
        action="store_true",
        help="only calibration_seconds_per_eval_100 / _500 and their parts (about a minute)",
    )
    ap.add_argument("--stiff-radau-patients", type=int, default=20, help="patients of the stiff Radau baseline")
    ap.add_argument("--stiff-only", action="store_true", help="run the stiff workload (stiff_*) only")
    ap.add_argument("--study-only", action="store_true", help="run study_seconds_default only (minutes)")
    ap.add_argument("--no-study", action="store_true", help="skip study_seconds_default in the full run")
    ap.add_argument(
        "--study-workers", type=int, default=os.cpu_count() or 1, help="Dask processes of the study (default: cores)"
    )
    args = ap.parse_args(argv)

    def timed(fn) -> float:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    if args.study_only:
        study = study_default(args.study_workers)
        print_result(study, as_json=args.json)
        return study
    if args.calibration_only:
        calibration = calibration_per_eval(args.repeats)
        print_result(calibration, as_json=args.json)
        return calibration
    if args.stiff_only:
        stiff_only = {"threads": int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1))}
        stiff_only |= stiff_benchmark(args.stiff_radau_patients, args.repeats, timed)
        print_result(stiff_only, as_json=args.json)
        return stiff_only

    spec, plan, values, t_out = workload()
    if args.speed_keys:
        result = speed_keys(spec, plan, args.repeats)
        print_result(result, as_json=args.json)
        return result
    cold = warm = {"import": float("nan"), "build_spec": float("nan"), "compile_and_first_solve": float("nan")}
    if not args.only_roadrunner:
        with tempfile.TemporaryDirectory() as tmp:
            cold = _compile_in_subprocess(tmp)
            warm = _compile_in_subprocess(tmp)
    model = compile_model(spec)
    atol = np.array([s.abs_tol for s in spec.states])
    opts = SolverOptions(rtol=RTOL, atol_scale=ATOL_SCALE)
    P1k, ev1k = population_inputs(model, spec, plan, values, 1000)
    solve(
        model,
        P1k[:4],
        t_out,
        events=EventSchedule(ev1k.ptr[:5], ev1k.times, ev1k.kinds, ev1k.args),
        t0=START_DAY,
        options=opts,
    )  # JIT warm-up in this process

    t_1k = timed(lambda: solve(model, P1k, t_out, events=ev1k, t0=START_DAY, options=opts))
    peers = roadrunner_comparison(model, spec, plan, P1k, ev1k, t_out, opts, t_1k, args.roadrunner_patients)
    if args.only_roadrunner:
        result = {"seconds_per_patient_n1000": t_1k / 1000, **peers}
        print_result(result, as_json=args.json)
        return result
    n_loop = min(args.loop_patients, 1000)
    # the loop and the compiled solve measured back to back per repeat: the ratio's spread over repeats (it moved
    # between 161x and 424x across machines and loads)
    loop_ratios, loop_times = [], []
    for _ in range(args.repeats):
        lp = scipy_loop_per_patient(model, P1k[:n_loop], ev1k, t_out, atol * ATOL_SCALE)
        t0 = time.perf_counter()
        solve(model, P1k, t_out, events=ev1k, t0=START_DAY, options=opts)
        loop_times.append(lp)
        loop_ratios.append(lp / ((time.perf_counter() - t0) / 1000))
    loop_pp = float(np.median(loop_times))
    P10k, ev10k = population_inputs(model, spec, plan, values, 10_000)
    t_10k = timed(lambda: solve(model, P10k, t_out, events=ev10k, t0=START_DAY, options=opts))
    t_10k_serial = (
        timed(
            lambda: solve(
                model,
                P10k[:2000],
                t_out,
                events=EventSchedule(ev10k.ptr[:2001], ev10k.times, ev10k.kinds, ev10k.args),
                t0=START_DAY,
                options=SolverOptions(rtol=RTOL, atol_scale=ATOL_SCALE, parallel=False),
            )
        )
        * 5
    )
    t_10k_default = timed(lambda: solve(model, P10k, t_out, events=ev10k, t0=START_DAY, options=SolverOptions()))
    pop10k = VirtualPopulation(n_patients=10_000, variability=VARIABILITY, seed=20261127)
    sim = {"t_end_day": END_DAY, "start_day": START_DAY, "solver": opts}
    t_sim = timed(lambda: simulate(model, {"sbrt+pembro": plan}, population=pop10k, **sim, allow_large=True))
    t_sim_scored = timed(
        lambda: simulate(
            model,
            {"sbrt+pembro": plan},
            population=pop10k,
            **sim,
            output_interval_day=7.0,
            variables=scored_outputs(spec),
            dtype="float32",
        )
    )
    efficiency = parallel_efficiency(model, plan, sim, args.repeats)
    scoring = scoring_to_solver(args.repeats)
    calibration = calibration_per_eval(args.repeats)
    nr = args.radau_patients
    ev_r = EventSchedule(ev1k.ptr[: nr + 1], ev1k.times, ev1k.kinds, ev1k.args)
    ours = solve(model, P1k[:nr], t_out, events=ev_r, t0=START_DAY, options=opts).y
    t0 = time.perf_counter()
    ref = solve(
        model,
        P1k[:nr],
        t_out,
        events=ev_r,
        t0=START_DAY,
        options=SolverOptions(method="radau", rtol=1e-10, atol_scale=1e-10),
    ).y
    default = solve(model, P1k[:nr], t_out, events=ev_r, t0=START_DAY, options=SolverOptions()).y
    t_radau = (time.perf_counter() - t0) / nr
    rel = np.abs(ours - ref) / (np.abs(ref) + atol)
    rel_default = np.abs(default - ref) / (np.abs(ref) + atol)
    worst = np.unravel_index(np.argmax(rel), rel.shape)
    result = {
        "workload": "nsclc 3 lesions, SBRT 24 Gy/3 + pembrolizumab 200 mg q3w, 737 days, daily output",
        "rtol": RTOL,
        "atol_scale": ATOL_SCALE,
        "threads": int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1)),
        "import_seconds": warm["import"],
        "build_spec_seconds": warm["build_spec"],
        "compile_seconds_cold": cold["compile_and_first_solve"],
        "compile_seconds_warm": warm["compile_and_first_solve"],
        "seconds_per_patient_n1000": t_1k / 1000,
        "scipy_loop_seconds_per_patient": loop_pp,
        "scipy_loop_patients_measured": n_loop,
        "speedup_vs_scipy_loop_n1000": loop_pp / (t_1k / 1000),
        "speedup_vs_scipy_loop_n1000_repeats": [float(r) for r in loop_ratios],
        "speedup_vs_scipy_loop_n1000_min": float(min(loop_ratios)),
        "speedup_vs_scipy_loop_n1000_max": float(max(loop_ratios)),
        "seconds_10k_warm": t_10k,
        "seconds_10k_warm_serial_extrapolated": t_10k_serial,
        "seconds_10k_simulate_xarray": t_sim,
        "seconds_10k_simulate_xarray_scored": t_sim_scored,
        "parallel_efficiency_2_threads": efficiency["efficiency"],
        "seconds_2k_simulate_1_thread": efficiency["serial"],
        "seconds_2k_simulate_2_threads": efficiency["parallel"],
        "scoring_to_solver_ratio": scoring["scoring"] / scoring["solver"],
        "scoring_seconds_200": scoring["scoring"],
        "solver_seconds_200": scoring["solver"],
        **{k: v for k, v in calibration.items() if k != "threads"},
        "seconds_10k_default_tolerances": t_10k_default,
        "max_rel_error_vs_radau_default_tolerances": float(rel_default.max()),
        "radau_seconds_per_patient": t_radau,
        "speedup_vs_radau": t_radau / (t_1k / 1000),
        "max_rel_error_vs_radau": float(rel.max()),
        "worst_state": spec.states[worst[2]].name,
        "worst_time_day": float(t_out[worst[1]]),
        **peers,
    }
    result |= stiff_benchmark(args.stiff_radau_patients, args.repeats, timed)
    if not args.no_study:
        result |= study_default(args.study_workers)
    print_result(result, as_json=args.json)
    return result


if __name__ == "__main__":
    main()
