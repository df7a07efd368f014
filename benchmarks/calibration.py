"""Calibration benchmark (issue 4): cost of one objective evaluation and of a complete fit.

Everything is measured in this run, on this machine, in one process with the kernel already compiled:

* ``baseline_simulate_seconds``: one :func:`abscopal.simulate` of 1000 patients of the default NSCLC model
  (3 lesions; SBRT 24 Gy/3 from day -7 + pembrolizumab 200 mg q3w; 730 days; weekly output, as the objective
  uses; no inter-patient variability), median of ``--repeats``;
* ``evaluation_seconds``: one :meth:`CalibrationProblem.evaluate` (every arm simulated, endpoints, report and
  smooth predictions, weighted residuals) on the default fit set (``fits/targets/*.toml``) with ``--patients``
  virtual patients per arm (default 100), median of ``--repeats``; ``evaluation_vs_baseline`` is the ratio;
  ``problem_build_seconds`` is the construction of the problem (patient draws, RT target placement, plans);
* with ``--full``: the complete :func:`~abscopal.calibrate.fit.calibrate` of that problem with the default free
  parameters (:data:`~abscopal.calibrate.objective.DEFAULT_FREE`, from the model defaults): ``fit_seconds``,
  ``fit_nfev`` and ``fit_seconds_per_evaluation``; ``--max-nfev`` caps the evaluations (a subset measurement).

Usage: ``python benchmarks/calibration.py [--json] [--patients N] [--repeats R] [--full [--max-nfev K]]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from _output import print_result

from abscopal.calibrate.fit import calibrate
from abscopal.calibrate.objective import DEFAULT_FREE, CalibrationProblem, default_parameters
from abscopal.errors import AbscopalError
from abscopal.model.compile import compile_model
from abscopal.model.library.nsclc import nsclc_model
from abscopal.population import VirtualPopulation
from abscopal.simulate import simulate
from abscopal.treatment import TreatmentPlan, drug_regimen, radiation_regimen
from abscopal.trials import load_all

TARGETS = Path(__file__).resolve().parents[1] / "fits" / "targets"


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--patients", type=int, default=100, help="virtual patients per arm (default 100)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the timed calls (median reported)")
    ap.add_argument("--full", action="store_true", help="also run the complete calibration")
    ap.add_argument("--max-nfev", type=int, default=None, help="cap on the evaluations of --full")
    args = ap.parse_args(argv)

    spec = nsclc_model(3)
    model = compile_model(spec)
    plan = TreatmentPlan(
        drug=drug_regimen("pembrolizumab_200mg_q3w"), radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=-7.0),)
    )
    pop = VirtualPopulation(n_patients=1000, seed=20261127)

    def baseline():
        simulate(model, {"sbrt+pembro": plan}, population=pop, t_end_day=730.0, output_interval_day=7.0, start_day=-7.0)

    baseline()  # warm-up (numba dispatch, first allocation)
    t_base = _timed(baseline, args.repeats)
    targets = load_all(sorted(TARGETS.glob("*.toml")))
    t0 = time.perf_counter()
    problem = CalibrationProblem(targets=tuple(targets.values()), model=model, n_patients_per_arm=args.patients, seed=0)
    t_build = time.perf_counter() - t0
    values = default_parameters(problem).valuesdict()
    problem.evaluate(values)  # warm-up
    t_eval = _timed(lambda: problem.evaluate(values), args.repeats)
    n_arms = len(problem.patients)
    result: dict[str, object] = {
        "threads": int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1)),
        "targets": sorted(targets),
        "n_arms_simulated": n_arms,
        "n_residuals": len(problem.keys),
        "patients_per_arm": args.patients,
        "baseline_simulate_seconds": t_base,
        "problem_build_seconds": t_build,
        "evaluation_seconds": t_eval,
        "evaluation_vs_baseline": t_eval / t_base,
        "evaluation_patients_vs_baseline": n_arms * args.patients / 1000,
    }
    if args.full:
        kwargs = {} if args.max_nfev is None else {"max_nfev": args.max_nfev}
        t0 = time.perf_counter()
        try:
            cal = calibrate(problem, default_parameters(problem, DEFAULT_FREE), **kwargs)
            nfev, status = cal.nfev, "converged"
        except AbscopalError as exc:  # max_nfev reached: still a timing of that many evaluations
            nfev, status = args.max_nfev, f"stopped: {str(exc)[:80]}"
        t_fit = time.perf_counter() - t0
        result |= {
            "free": list(DEFAULT_FREE),
            "fit_seconds": t_fit,
            "fit_nfev": nfev,
            "fit_status": status,
            "fit_seconds_per_evaluation": t_fit / nfev if nfev else None,
        }
    print_result(result, as_json=args.json)
    return result


if __name__ == "__main__":
    main()
