"""``abscopal sensitivity STUDY.toml --method morris|sobol --out DIR``: the command-line face of
:func:`abscopal.studies.sensitivity.run_sensitivity`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._common import Subparsers

__all__ = ["add_sensitivity_command"]


def _cmd_sensitivity(args: argparse.Namespace) -> int:
    from ..errors import ParameterError
    from ..studies import load_study
    from ..studies.run import check_scheduler
    from ..studies.sensitivity import SensitivitySpec, check_sensitivity_dir, format_verdicts, run_sensitivity

    factors = None if args.factors is None else tuple(x.strip() for x in args.factors.split(",") if x.strip())
    spec = SensitivitySpec(  # checked before any work
        method=args.method, samples=args.samples, seed=args.seed, factors=factors
    )
    if args.patients is not None and args.patients < 1:
        raise ParameterError(f"--patients {args.patients}: give a number of virtual patients >= 1, e.g. 100")
    if args.workers is not None and args.workers < 1:
        raise ParameterError(f"--workers {args.workers}: give a number of worker processes >= 1, e.g. 2")
    if args.scheduler is not None:
        check_scheduler(args.scheduler)
    if not Path(args.study).is_file():
        raise ParameterError(f"STUDY {args.study!r}: no such file; give a study TOML file, e.g. studies/default.toml")
    check_sensitivity_dir(Path(args.out), force=args.force, inputs=[args.study])
    design = load_study(args.study, **({} if args.patients is None else {"n_patients": args.patients}))
    t0 = time.perf_counter()
    result = run_sensitivity(
        design,
        spec,
        Path(args.out),
        scheduler=args.scheduler,
        workers=args.workers,
        progress=not args.quiet,
        force=args.force,
        allow_large=args.allow_large,
    )
    print(format_verdicts(result))
    print(
        f"\n{spec.method}: {result.dataset.sizes['run']} runs + the reference, {len(result.factors)} factors, "
        f"{design.n_patients} patients, {time.perf_counter() - t0:.1f} s -> {args.out}/ (report.md, indices.csv, "
        "samples.nc, tornado.png, sensitivity.json)"
    )
    return 0


def add_sensitivity_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``sensitivity STUDY.toml --method morris|sobol [--samples N] [--seed S] [--patients P]
    [--factors A,B] [--scheduler ADDRESS | --workers N] --out DIR [--force] [--allow-large]``; returns the
    subparser."""
    s = subparsers.add_parser(
        "sensitivity",
        help="how robust a study's conclusions are to the assumed and fitted parameters (SALib Morris or Sobol')",
        description="Vary every parameter that is not sourced (2-fold, within its bounds) and every fitted value "
        "(over its uncertainty) and judge the study's headline conclusions: the 12-month OS hazard ratio of SBRT "
        "vs no RT, the out-of-field ORR of SBRT minus conventional RT, the best RT timing (docs/sensitivity.md).",
    )
    s.add_argument("study", help="study TOML file (format: docs/studies.md)")
    s.add_argument("--method", default="morris", help="morris (screening, default) or sobol (variance-based)")
    s.add_argument(
        "--samples",
        type=int,
        default=None,
        help="Morris trajectories (default 10, at least 2) or the Sobol' base sample (a power of 2, default 64); "
        "runs: samples x (factors + 1) for Morris, samples x (factors + 2) for Sobol'",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the SALib design (the patients use the study's seed)")
    s.add_argument("--patients", type=int, default=None, help="virtual patients per cell (overrides the study file)")
    s.add_argument(
        "--factors",
        default=None,
        help="vary only these factors, comma-separated (e.g. the top of a Morris screening before a Sobol' run); "
        "default: every parameter that is not sourced and every fitted value",
    )
    s.add_argument("--out", required=True, help="output folder: new, empty or a sensitivity output's")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:8786)")
    g.add_argument("--workers", type=int, default=None, help="start a local Dask cluster with N worker processes")
    s.add_argument("--force", action="store_true", help="rewrite a completed sensitivity output in --out")
    s.add_argument(
        "--allow-large",
        action="store_true",
        help="run even above the cost limit (2e6 patient simulations = runs x cells x patients; abscopal.limits)",
    )
    s.set_defaults(func=_cmd_sensitivity)
    return s
