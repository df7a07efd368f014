"""Reproduce ``fits/v1.json``: the calibration of model v1 (``nsclc_model(version=1)``) to the whole fit set.

It was the shipped fit until model v2 became the default (``fits/make_default.py`` makes today's); it is kept for
the comparison of the two models. Run from the repository root:
``.venv/bin/python fits/make_v1.py [--force] [--patients 100] [--seed 0]``
(about 10-20 minutes on a 2-core machine; the time of each stage is printed and stored in the provenance).

Two stages, because the fit set does not identify every parameter that shapes the predictions:

1. least squares over six typical values: :data:`~abscopal.calibrate.objective.DEFAULT_FREE_V1` plus
   ``effector_baseline`` and ``icd_yield_per_mm3``. The last two come out with relative standard errors far above
   100% (flat directions of chi-square: the targets cannot tell them from the others).
2. those two are fixed at their stage-1 values (``base_parameters``) and the four identified values are refitted
   from the stage-1 optimum, so the stored covariance, the parameter draws of studies and the profiles describe
   identified parameters only. Profile likelihoods of the four follow, then the fit report
   (``fits/v1_report.html``).

3. if a profile finds a lower chi-square than the fit (the least-squares run stopped in a local minimum), least
   squares restarts from the best profile point, and the profiles are recomputed at the new optimum (at most
   ``--max-restarts`` times).

The stage-1 values, standard errors and chi-square are kept in ``provenance["stage1"]``, the restarts in
``provenance["restarts"]`` and the reason for fixing the two parameters in ``identifiability``.
``--resume FIT.json`` continues from a stage-2 (or later) result of this script instead of refitting stages 1-2.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import sys
import time
from pathlib import Path

from abscopal.calibrate import CalibrationProblem, calibrate, default_parameters
from abscopal.calibrate.objective import DEFAULT_FREE_V1 as DEFAULT_FREE
from abscopal.calibrate.report import fit_report
from abscopal.calibrate.uncertainty import profile_likelihood, with_uncertainty
from abscopal.model.library import nsclc_model
from abscopal.trials import load_all

ROOT = Path(__file__).resolve().parents[1]
FLAT = ("effector_baseline", "icd_yield_per_mm3")
V1 = nsclc_model(3, version=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=100, help="virtual patients per arm (default 100)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "fits" / "v1.json"))
    ap.add_argument("--report", default=str(ROOT / "fits" / "v1_report.html"))
    ap.add_argument("--profile-points", type=int, default=5)
    ap.add_argument("--max-restarts", type=int, default=2)
    ap.add_argument("--resume", default=None, help="continue from a saved stage-2 result of this script")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    for path in (args.out, args.report):
        if Path(path).exists() and not args.force:
            sys.exit(f"{path} exists; pass --force to replace it")
    files = sorted(glob.glob(str(ROOT / "fits" / "targets" / "*.toml")))
    targets = tuple(load_all(files).values())

    from abscopal.calibrate import Calibration

    if args.resume:
        previous = Calibration.load(args.resume)
        stage1_info = previous.provenance["stage1"]
        base = {k: stage1_info["values"][k] for k in FLAT}
        problem = CalibrationProblem(
            targets=targets, model=V1, n_patients_per_arm=args.patients, seed=args.seed, base_parameters=base
        )
        cal, t1, t2 = previous, stage1_info["elapsed_s"], previous.provenance.get("timing_s", {}).get("stage2", 0.0)
    else:
        t0 = time.perf_counter()
        problem1 = CalibrationProblem(targets=targets, model=V1, n_patients_per_arm=args.patients, seed=args.seed)
        stage1 = calibrate(problem1, default_parameters(problem1, (*DEFAULT_FREE, *FLAT)))
        t1 = time.perf_counter() - t0
        print(stage1.summary_table(), f"\nstage 1: {t1:.0f} s\n", flush=True)
        stage1_info = {
            "free": list(stage1.provenance["free"]),
            "values": stage1.values,
            "stderr": stage1.stderr,
            "chisqr": stage1.chisqr,
            "nfev": stage1.nfev,
            "elapsed_s": round(t1, 1),
        }
        base = {k: stage1.values[k] for k in FLAT}
        problem = CalibrationProblem(
            targets=targets, model=V1, n_patients_per_arm=args.patients, seed=args.seed, base_parameters=base
        )
        params = default_parameters(problem, DEFAULT_FREE)
        for name in DEFAULT_FREE:
            params[name].value = stage1.values[name]
        t0 = time.perf_counter()
        cal = calibrate(problem, params)
        t2 = time.perf_counter() - t0
        print(cal.summary_table(), f"\nstage 2: {t2:.0f} s", flush=True)

    checkpoint = Path(args.out).with_suffix(".stage2.json")  # the profiles take longest; keep the fit meanwhile
    restarts = []
    t3 = float(cal.provenance.get("timing_s", {}).get("profiles", 0.0)) if args.resume else 0.0
    profiles = cal.profiles if args.resume else None  # a resumed fit's stored profiles decide the first restart
    for attempt in range(args.max_restarts + 1):
        cal = dataclasses.replace(cal, provenance=dict(cal.provenance) | {"stage1": stage1_info})
        cal.save(checkpoint, force=True)
        if profiles is None:
            t0 = time.perf_counter()
            profiles = profile_likelihood(problem, cal, n_points=args.profile_points)
            t3 += time.perf_counter() - t0
            print(f"profiles: {t3:.0f} s", flush=True)
        best_name, best = min(profiles.items(), key=lambda kv: min(kv[1]["chisqr"]))
        i = int(min(range(len(best["chisqr"])), key=lambda j: best["chisqr"][j]))
        if best["chisqr"][i] >= cal.chisqr - 1e-3 or attempt == args.max_restarts:
            break
        start = {best_name: best["values"][i]} | {k: v[i] for k, v in best["others"].items()}
        params = cal.parameters()
        for k, v in start.items():
            params[k].value = v
        t0 = time.perf_counter()
        refit = calibrate(problem, params)
        restarts.append(
            {
                "from": start,
                "chisqr_before": cal.chisqr,
                "chisqr_after": refit.chisqr,
                "elapsed_s": round(time.perf_counter() - t0, 1),
            }
        )
        print(f"restart from the {best_name} profile: chi-square {cal.chisqr:.4g} -> {refit.chisqr:.4g}", flush=True)
        cal, profiles = refit, None
    cal = with_uncertainty(cal, profiles=profiles)
    rel = {k: (stage1_info["stderr"].get(k) or float("nan")) / abs(stage1_info["values"][k]) for k in FLAT}
    note = (
        f"{' and '.join(FLAT)} were fitted in stage 1 with relative standard errors "
        + ", ".join(f"{rel[k]:.0%}" for k in FLAT)
        + "; the fit set does not identify them, so they are fixed at their stage-1 values "
        + ", ".join(f"{k} = {stage1_info['values'][k]:.4g}" for k in FLAT)
        + " (base_parameters)."
    )
    provenance = dict(cal.provenance) | {
        "stage1": stage1_info,
        "restarts": restarts,
        "timing_s": {
            "stage1": round(t1, 1),
            "stage2": round(t2, 1),
            "profiles": round(t3, 1),
            "restarts": round(sum(r["elapsed_s"] for r in restarts), 1),
        },
        "recipe": "fits/make_v1.py",
    }
    cal = dataclasses.replace(
        cal, provenance=provenance, identifiability=[note, *[x for x in cal.identifiability if x != note]]
    )
    cal.save(args.out, force=args.force)
    checkpoint.unlink()
    fit_report(cal, args.report, force=args.force)
    print(f"-> {args.out}, {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
