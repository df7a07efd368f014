"""``abscopal fit`` (calibrate typical values to trial targets; optional profiles, posterior and report) and
``abscopal fit-report`` (render a saved calibration as HTML or Markdown).

Command lines::

    abscopal fit fits/targets/*.toml --out fits/NAME.json [--patients N] [--seed S] [--force] [--free NAME ...]
        [--outcomes NAME ...] [--method {least_squares,differential_evolution}] [--multistart K] [--start-seed S]
        [--profile [NAME ...] [--workers N | --scheduler ADDRESS]]
        [--posterior [--walkers N] [--steps N] [--burn N] [--thin N]]
        [--report REPORT.html|REPORT.md]
    abscopal fit-report fits/NAME.json --out fits/NAME.html [--force] [--targets FILES...]

Every option is checked, and every output path, before any simulation or loading.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AbscopalError

if TYPE_CHECKING:
    from ._common import Subparsers

__all__ = ["add_fit_command", "add_fit_report_command"]


def _check_fit_args(args: argparse.Namespace) -> None:
    """Every check of ``abscopal fit`` that needs no simulation (raises :class:`AbscopalError`)."""
    from ..io import check_outputs
    from ..trials import target_files

    outputs: dict[str, Any] = {"--out": args.out}
    if args.report is not None:
        from ..calibrate.report import report_paths

        outputs |= {
            "--report" if i == 0 else f"--report (figure {p.name})": p
            for i, p in enumerate(report_paths(args.report, force=True))
        }
    missing = [t for t in args.targets if not Path(t).exists()]
    if missing:
        raise AbscopalError(f"targets: {missing} not found; pass existing target TOML files or directories")
    check_outputs(outputs, inputs=target_files(args.targets), force=args.force)  # device, input, twice, writable
    if args.patients < 1:
        raise AbscopalError(f"--patients {args.patients}: give at least 1 virtual patient per arm")
    from ..endpoints.outcomes import fittable_outcomes

    bad = [o for o in args.outcomes if o not in fittable_outcomes()]
    if bad:
        raise AbscopalError(f"--outcomes {' '.join(bad)}: not fittable; choose from {' '.join(fittable_outcomes())}")
    if args.multistart is not None and args.multistart < 1:
        raise AbscopalError(f"--multistart {args.multistart}: give the number of starts, at least 1")
    if (args.workers is not None or args.scheduler is not None) and args.profile is None:
        flag = f"--workers {args.workers}" if args.workers is not None else f"--scheduler {args.scheduler}"
        raise AbscopalError(
            f"{flag}: runs the profile likelihood's re-fits in parallel, but no --profile is asked for; add "
            f"--profile (or drop {flag.split()[0]})"
        )
    from ..parallel import check_parallel

    check_parallel(args.workers, args.scheduler)
    if args.profile is not None:
        unknown = [n for n in args.profile if n not in args.free]
        if unknown:
            raise AbscopalError(
                f"--profile {' '.join(unknown)}: only fitted parameters can be profiled; "
                f"the --free parameters are {' '.join(args.free)}"
            )
    sampling = {"--walkers": args.walkers, "--steps": args.steps, "--burn": args.burn, "--thin": args.thin}
    if not args.posterior:
        given = [k for k, v in sampling.items() if v is not None]
        if given:
            raise AbscopalError(f"{', '.join(given)} set the posterior sampling; add --posterior")
    for k, v in sampling.items():
        if v is not None and (v < 1 if k != "--burn" else v < 0):
            raise AbscopalError(f"{k} {v}: must be {'>= 0' if k == '--burn' else '>= 1'}")
    if args.posterior:
        steps = args.steps if args.steps is not None else 200
        burn = args.burn if args.burn is not None else steps // 4
        if burn >= steps:
            raise AbscopalError(f"--burn {burn} discards every one of --steps {steps}; use a smaller --burn")
        if args.walkers is not None and args.walkers < 2 * len(args.free):
            raise AbscopalError(
                f"--walkers {args.walkers}: emcee needs at least twice the number of free "
                f"parameters ({2 * len(args.free)})"
            )


def _cmd_fit(args: argparse.Namespace) -> int:
    from ..calibrate.fit import calibrate
    from ..calibrate.objective import CalibrationProblem, default_parameters
    from ..trials import load_all, target_files

    _check_fit_args(args)  # fail before any work
    if args.scheduler is not None:  # a scheduler that does not answer fails now, not after the fit
        from ..parallel import task_runner

        with task_runner(args.scheduler, None):
            pass
    out = Path(args.out)
    t0 = time.perf_counter()
    targets = load_all(target_files(args.targets))
    problem = CalibrationProblem(
        targets=tuple(targets.values()),
        n_patients_per_arm=args.patients,
        seed=args.seed,
        outcomes=tuple(args.outcomes),
    )
    params = default_parameters(problem, names=tuple(args.free))
    cal = calibrate(problem, params, method=args.method, multistart=args.multistart, seed=args.start_seed)
    if args.profile is not None or args.posterior:
        from ..calibrate.uncertainty import posterior, profile_likelihood, with_uncertainty

        profiles, timing = None, None
        if args.profile is not None:
            t_prof = time.perf_counter()
            profiles = profile_likelihood(
                problem, cal, args.profile or None, workers=args.workers, scheduler=args.scheduler
            )
            timing = {
                "profiles_s": round(time.perf_counter() - t_prof, 3),
                "profile_workers": args.workers,
                "profile_scheduler": args.scheduler,
            }
        post = None
        if args.posterior:
            steps = args.steps if args.steps is not None else 200
            post = posterior(
                problem,
                cal,
                n_walkers=args.walkers,
                n_steps=steps,
                burn=args.burn if args.burn is not None else steps // 4,
                thin=args.thin or 1,
                seed=args.start_seed,
            )
        cal = with_uncertainty(cal, profiles=profiles, posterior=post, timing=timing)
    cal.save(out, force=args.force)
    print(cal.summary_table())
    for sentence in cal.identifiability:
        print(f"- {sentence}")
    if args.report is not None:
        from ..calibrate.report import fit_report

        for path in fit_report(cal, args.report, force=args.force):
            print(f"report: {path}")
    print(
        f"\nfitted {len(args.free)} parameter(s) to {len(problem.keys)} target(s) in "
        f"{time.perf_counter() - t0:.1f} s -> {out}"
    )
    return 0


def add_fit_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``abscopal fit`` to the ``subparsers`` of the ``abscopal`` parser (handler in ``func``).

    ``fit TARGETS... --out OUT.json [--patients N] [--seed S] [--force] [--free NAME ...] [--method M]
    [--multistart K] [--start-seed S] [--profile [NAME ...] [--workers N | --scheduler ADDRESS]] [--posterior
    [--walkers N] [--steps N] [--burn N] [--thin N]] [--report PATH.html|PATH.md]``; every option is checked before
    any simulation (a scheduler that does not answer, too). Returns the subparser.
    """
    from ..calibrate.fit import METHODS
    from ..calibrate.objective import DEFAULT_FREE
    from ..endpoints.outcomes import DEFAULT_FIT_OUTCOMES

    f = subparsers.add_parser("fit", help="calibrate typical parameter values to trial targets (JSON result)")
    f.add_argument("targets", nargs="+", help="target TOML files or directories (format: docs/targets.md)")
    f.add_argument("--out", required=True, help="output calibration JSON file")
    f.add_argument("--patients", type=int, default=200, help="virtual patients per arm (default 200)")
    f.add_argument("--seed", type=int, default=0, help="master seed of the virtual patients (default 0)")
    f.add_argument(
        "--free",
        nargs="+",
        default=list(DEFAULT_FREE),
        metavar="NAME",
        help=f"typical values to fit (default: {' '.join(DEFAULT_FREE)})",
    )
    f.add_argument(
        "--outcomes",
        nargs="+",
        default=list(DEFAULT_FIT_OUTCOMES),
        metavar="NAME",
        help=f"outcomes to fit (default: {' '.join(DEFAULT_FIT_OUTCOMES)}); add pneumonitis_grade2plus "
        "pneumonitis_grade2 pneumonitis_grade3 to fit ntcp__ values to the pneumonitis cohorts",
    )
    f.add_argument("--method", default="least_squares", choices=METHODS, help="minimiser (default least_squares)")
    f.add_argument(
        "--multistart",
        type=int,
        default=None,
        metavar="K",
        help="K least-squares fits from Latin-hypercube starts within the bounds; keep the best",
    )
    f.add_argument(
        "--start-seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the multistart sample, differential evolution and the posterior (default 0)",
    )
    f.add_argument(
        "--profile",
        nargs="*",
        default=None,
        metavar="NAME",
        help="profile-likelihood intervals of these free parameters (no NAME: all)",
    )
    where = f.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="run the --profile re-fits on a local Dask cluster of N worker processes (same result as serial)",
    )
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the --profile re-fits on the Dask scheduler at ADDRESS ([tcp://]host:port)",
    )
    f.add_argument("--posterior", action="store_true", help="sample the posterior with emcee (flat prior in bounds)")
    f.add_argument("--walkers", type=int, default=None, help="emcee walkers (default max(8, 2 x free + 2))")
    f.add_argument("--steps", type=int, default=None, help="emcee steps per walker (default 200)")
    f.add_argument("--burn", type=int, default=None, help="steps discarded per walker (default steps // 4)")
    f.add_argument("--thin", type=int, default=None, help="keep every N-th step (default 1)")
    f.add_argument(
        "--report",
        default=None,
        metavar="PATH",
        help="also write a report: PATH.html (one file) or PATH.md (PNG figures next to it)",
    )
    f.add_argument("--force", action="store_true", help="overwrite --out (and --report)")
    f.set_defaults(func=_cmd_fit)
    return f


def _cmd_fit_report(args: argparse.Namespace) -> int:
    from ..calibrate.report import fit_report, report_paths
    from ..io import check_outputs
    from ..trials import target_files

    paths = report_paths(args.out, force=True)
    if not Path(args.fit).is_file():
        raise AbscopalError(
            f"fit: calibration file {args.fit!r} does not exist; pass the JSON written by 'abscopal fit'"
        )
    inputs = [args.fit, *(target_files(args.targets) if args.targets else [])]
    check_outputs(
        {"--out" if i == 0 else f"--out (figure {p.name})": p for i, p in enumerate(paths)},
        inputs=inputs,
        force=args.force,
    )  # fail before any work
    from ..calibrate.fit import Calibration

    cal = Calibration.load(args.fit)
    targets = None
    if args.targets:
        from ..trials import load_all

        targets = load_all(target_files(args.targets))
    for p in fit_report(cal, args.out, targets=targets, force=args.force):
        print(p)
    return 0


def add_fit_report_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``fit-report FIT.json --out PATH.html|PATH.md [--force] [--targets FILES...]`` to the ``subparsers``
    of the ``abscopal`` parser (handler in ``func``); returns the subparser."""
    f = subparsers.add_parser("fit-report", help="render a saved calibration as an HTML or Markdown report")
    f.add_argument("fit", help="calibration JSON file written by 'abscopal fit'")
    f.add_argument("--out", required=True, help="report file: .html (self-contained) or .md (PNG files next to it)")
    f.add_argument(
        "--targets",
        nargs="+",
        default=None,
        metavar="FILE",
        help="target TOML files or directories for outcome-level sources (default: the stored files)",
    )
    f.add_argument("--force", action="store_true", help="overwrite the report files")
    f.set_defaults(func=_cmd_fit_report)
    return f
