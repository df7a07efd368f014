"""Reproduce ``fits/default.json``: calibration v2 of the default model (v2) to the whole fit set.

The shipped fit is ``.venv/bin/python fits/make_default.py --force --profiles --workers 2``: 500 virtual patients per
arm (common random numbers), seed 0, one least-squares fit of :data:`SHIPPED_FREE`, then profile likelihoods of every
free value on a local Dask cluster, then the fit report (``fits/default_report.html``). The defaults are the shipped
recipe; the command line that made a file is in its ``provenance["recipe"]``, and the times of the fit and the
profiles, where they ran and the patients per arm in ``provenance["timing"]``.

:data:`SHIPPED_FREE` is :data:`~abscopal.calibrate.objective.NTCP_FREE` (the pneumonitis NTCP's concurrent-ICI factor,
fitted to ``fits/targets/pneumonitis.toml`` in the same objective: the cohorts are predicted from their plans, so
this adds no simulation, and no residual depends on both it and the others), then
:data:`~abscopal.calibrate.objective.DEFAULT_FREE` (kill capacity, new-lesion rate, doubling time, and the intercept
and pretreated log time ratio of the Struemper 2025 OS link), then the pretreated effect on the effector baseline
(``--extra-free``; the model selection in docs/calibration.md: a QAIC gain of 10.7). ``--no-pneumonitis`` leaves the
NTCP factor out; ``--pneumonitis-only`` prints that part alone (:func:`pneumonitis_fit`, a few seconds) and writes
nothing. Model v2's RT-immune parameters stay at their defaults: in exploratory fits of the same set,
``icd_signal_per_gy`` came out with a relative standard error of 2,384% and ``effector_death_per_day`` of 4,590% (at
its upper bound), i.e. the fit set does not identify them (:data:`UNIDENTIFIED`, recorded in the fit's
``identifiability``).

``--profiles`` re-fits the other values on a grid of each free value (``--profile-points``, default 5 per profile);
``--workers N`` runs the sides on a local Dask cluster of N processes, ``--scheduler ADDRESS`` on a running Dask
scheduler (the same result as serially: :func:`~abscopal.calibrate.uncertainty.profile_likelihood`). Their
intervals are read at the misfit-scaled chi-square rise, like the standard errors. Without ``--profiles`` the fit
takes 1-6.5 minutes here (idle to busy); fit plus profiles took 52 minutes on two idle cores (docs/calibration.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import math
import sys
import time
from pathlib import Path
from typing import Any

from abscopal.calibrate import Calibration, CalibrationProblem, calibrate, default_parameters
from abscopal.calibrate.objective import DEFAULT_FREE, NTCP_FREE
from abscopal.calibrate.report import fit_report
from abscopal.calibrate.uncertainty import profile_likelihood, with_uncertainty
from abscopal.endpoints.outcomes import DEFAULT_FIT_OUTCOMES, PNEUMONITIS_OUTCOMES
from abscopal.errors import AbscopalError
from abscopal.parallel import check_parallel, task_runner
from abscopal.trials import load_all

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_EXTRA_FREE = ("effect__pretreated__effector_baseline",)
"""Values fitted besides ``NTCP_FREE + DEFAULT_FREE`` in the shipped fit (``--extra-free`` default)."""
SHIPPED_FREE = NTCP_FREE + DEFAULT_FREE + SHIPPED_EXTRA_FREE
"""The free values of the shipped fit, in the fit's order (ntcp values first: their finite-difference steps then
reuse the simulation at the current point)."""
UNIDENTIFIED = {"icd_signal_per_gy": 23.84, "effector_death_per_day": 45.90}
"""Relative standard errors (1 = 100%) of the RT-immune values when freed in exploratory fits (5 free values each,
100 patients per arm, seed 0): they stay at the model defaults."""


def pneumonitis_fit(path: str | Path = ROOT / "fits" / "targets" / "pneumonitis.toml") -> Calibration:
    """Fit :data:`NTCP_FREE` to the pneumonitis cohorts alone (no patient is simulated: a few seconds). The same
    values and standard errors as the ``--pneumonitis`` part of the main fit (the two blocks share no residual)."""
    problem = CalibrationProblem(targets=tuple(load_all([str(path)]).values()), outcomes=PNEUMONITIS_OUTCOMES)
    return calibrate(problem, default_parameters(problem, NTCP_FREE))


def _start_values(text: str, params: Any) -> dict[str, float]:
    """``{name: value}`` from ``--start NAME=VALUE,...``: free values inside their bounds, or exit with the reason."""
    out: dict[str, float] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, sep, raw = (x.strip() for x in item.partition("="))
        if not sep or name not in params or not params[name].vary:
            free = ", ".join(k for k, p in params.items() if p.vary)
            sys.exit(f"--start: {item!r} is not NAME=VALUE of a free value ({free})")
        try:
            value = float(raw)
        except ValueError:
            sys.exit(f"--start: {name}={raw!r} is not a number")
        lo, hi = params[name].min, params[name].max
        if not (math.isfinite(value) and lo <= value <= hi):
            sys.exit(f"--start: {name}={value!r} is outside its bounds [{lo}, {hi}]")
        out[name] = value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=500, help="virtual patients per arm (default 500)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "fits" / "default.json"))
    ap.add_argument("--report", default=str(ROOT / "fits" / "default_report.html"))
    ap.add_argument("--profiles", action="store_true", help="add profile likelihoods (docs/calibration.md: their cost)")
    ap.add_argument("--profile-points", type=int, default=5)
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, help="profiles on a local Dask cluster of N processes")
    where.add_argument("--scheduler", default=None, help="profiles on the Dask scheduler at ADDRESS")
    ap.add_argument(
        "--pneumonitis",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit the pneumonitis NTCP's concurrent-ICI factor (NTCP_FREE) too (default; --no-pneumonitis: not)",
    )
    ap.add_argument("--pneumonitis-only", action="store_true", help="print the pneumonitis fit alone; write nothing")
    ap.add_argument(
        "--extra-free",
        default=",".join(SHIPPED_EXTRA_FREE),
        help="comma-separated values to fit besides DEFAULT_FREE (default: %(default)s; '' for none)",
    )
    ap.add_argument(
        "--start",
        default="",
        help="start values NAME=VALUE,... of free values (default: the model defaults); e.g. the lowest point a "
        "profile found, when the fit's findings say it is a local minimum",
    )
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    if args.pneumonitis_only:
        t0 = time.perf_counter()
        cal = pneumonitis_fit()
        print(cal.summary_table(), f"\nfit: {time.perf_counter() - t0:.1f} s")
        return 0
    for path in (args.out, args.report):
        if Path(path).exists() and not args.force:
            sys.exit(f"{path} exists; pass --force to replace it")
    if (args.workers is not None or args.scheduler is not None) and not args.profiles:
        sys.exit("--workers / --scheduler run the profiles in parallel; add --profiles")
    try:
        check_parallel(args.workers, args.scheduler)
        if args.scheduler is not None:  # a scheduler that does not answer fails now, not after the fit
            with task_runner(args.scheduler, None):
                pass
    except AbscopalError as exc:
        sys.exit(str(exc))
    files = sorted(glob.glob(str(ROOT / "fits" / "targets" / "*.toml")))
    targets = tuple(load_all(files).values())
    outcomes = DEFAULT_FIT_OUTCOMES + (PNEUMONITIS_OUTCOMES if args.pneumonitis else ())
    # ntcp values first: their finite-difference steps then reuse the simulation at the current point
    extra = tuple(n.strip() for n in args.extra_free.split(",") if n.strip())
    free = (NTCP_FREE if args.pneumonitis else ()) + DEFAULT_FREE + extra
    problem = CalibrationProblem(targets=targets, n_patients_per_arm=args.patients, seed=args.seed, outcomes=outcomes)
    t0 = time.perf_counter()
    try:
        params = default_parameters(problem, free)  # unknown names fail here, before any simulation
    except AbscopalError as exc:
        sys.exit(f"--extra-free: {exc}")
    start = _start_values(args.start, params)
    for name, value in start.items():
        params[name].set(value=value)
    cal = calibrate(problem, params)
    t_fit = time.perf_counter() - t0
    print(cal.summary_table(), f"\nfit: {t_fit:.0f} s", flush=True)
    t_prof = 0.0
    profiles = None
    if args.profiles:
        t0 = time.perf_counter()
        profiles = profile_likelihood(
            problem, cal, n_points=args.profile_points, workers=args.workers, scheduler=args.scheduler
        )
        t_prof = time.perf_counter() - t0
        print(f"profiles: {t_prof:.0f} s", flush=True)
    timing = {"profiles_s": round(t_prof, 1), "profile_workers": args.workers, "profile_scheduler": args.scheduler}
    cal = with_uncertainty(cal, profiles=profiles, timing=timing if args.profiles else None)
    note = (
        "calibration v2 of model v2: "
        + " and ".join(f"{k} (relative standard error {v:.0%} when freed)" for k, v in UNIDENTIFIED.items())
        + " are not identified by the fit set and stay at the model defaults"
    )
    command = ["fits/make_default.py", *(sys.argv[1:] if argv is None else argv)]
    provenance = dict(cal.provenance) | {"recipe": " ".join(command), "start_values": start}
    cal = dataclasses.replace(cal, provenance=provenance, identifiability=[note, *cal.identifiability])
    cal.save(args.out, force=args.force)
    fit_report(cal, args.report, force=args.force)
    print(f"-> {args.out}, {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
