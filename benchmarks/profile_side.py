"""One side of one profile likelihood of the shipped fit, timed point by point (issue "Speed where users wait", item 3).

A full ``fits/make_default.py --profiles --workers 2`` at 500 patients per arm takes longer than a measurement
window on a shared machine; this times one of its tasks: the side ``--side`` of the profile of ``--name`` on the
problem of ``fits/default.json`` (``Calibration.problem()``: its targets, patients per arm, seed and base values),
with the grid of ``profile_likelihood`` (``--points`` as ``n_points``, span 3 standard errors, up to 3 extensions and
6 bisections), on ``--threads`` compiled-kernel threads (1: as each worker of a 2-worker local cluster on 2 cores).
Reports each point's value, chi-square, evaluations and seconds, and the side's totals.

Usage: ``python benchmarks/profile_side.py [--name max_kill_per_day] [--side upper] [--threads 1] [--json]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numba
from _output import print_result

from abscopal.calibrate import uncertainty
from abscopal.calibrate.fit import LEAST_SQUARES_OPTIONS, Calibration

FIT = Path(__file__).resolve().parents[1] / "fits" / "default.json"


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default="max_kill_per_day", help="free value of the shipped fit to profile")
    ap.add_argument("--side", choices=("lower", "upper"), default="upper")
    ap.add_argument("--points", type=int, default=5, help="n_points of the profile (default 5, as make_default)")
    ap.add_argument("--threads", type=int, default=1, help="compiled-kernel threads (default 1: one worker's)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    numba.set_num_threads(args.threads)
    cal = Calibration.load(FIT)
    params = cal.parameters()
    free = [k for k, p in params.items() if p.vary]
    if args.name not in free:
        raise SystemExit(f"--name {args.name}: not a free value of {FIT}; choose one of {' '.join(free)}")
    t0 = time.perf_counter()
    problem = cal.problem()
    chi0 = uncertainty._chisqr(problem, params)  # also warms the kernels and prepares the arms
    t_first = time.perf_counter() - t0
    points: list[dict[str, float]] = []
    calls = {"n": 0}
    residuals = problem.residuals

    def counted(p):
        calls["n"] += 1
        return residuals(p)

    object.__setattr__(problem, "residuals", counted)
    real_point = uncertainty._profile_point

    def timed_point(problem, params, name, x, warm, opts):
        t, c = time.perf_counter(), calls["n"]
        out = real_point(problem, params, name, x, warm, opts)
        points.append({"value": x, "chisqr": out[0], "evaluations": calls["n"] - c, "seconds": time.perf_counter() - t})
        return out

    p = params[args.name]
    sign = -1 if args.side == "lower" else 1
    se = cal.stderr.get(args.name)
    n_side = (args.points - 1) // 2
    half = 3.0 * se if se else 0.5 * abs(float(p.value))
    grid = uncertainty._SideGrid(
        name=args.name,
        sign=sign,
        x0=float(p.value),
        bound=float(p.min if sign < 0 else p.max),
        lower=float(p.min),
        upper=float(p.max),
        h=half / n_side,
        half=half,
        n_side=n_side,
        max_extend=3,
        n_refine=6,
    )
    warm = {k: cal.values[k] for k in free if k != args.name}
    opts = {"scale_covar": False} | dict(LEAST_SQUARES_OPTIONS)
    uncertainty._profile_point = timed_point
    try:
        t0 = time.perf_counter()
        uncertainty._profile_side(problem, params, grid, chi0, warm, opts)
        total = time.perf_counter() - t0
    finally:
        uncertainty._profile_point = real_point
    evaluations = sum(int(q["evaluations"]) for q in points)
    result: dict[str, object] = {
        "fit": str(FIT),
        "n_patients_per_arm": cal.provenance["n_patients_per_arm"],
        "free": len(free),
        "name": args.name,
        "side": args.side,
        "threads": args.threads,
        "load_average": os.getloadavg()[0],
        "first_evaluation_seconds": t_first,
        "chisqr_reproduced": chi0,
        "points": points,
        "side_seconds": total,
        "side_evaluations": evaluations,
        "seconds_per_evaluation": total / max(evaluations, 1),
    }
    print_result(result, as_json=args.json)
    return result


if __name__ == "__main__":
    main()
