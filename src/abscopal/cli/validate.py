"""``abscopal validate`` (predict trial targets with a calibration: z-scores and prediction intervals) and
``abscopal crossval`` (leave-one-trial-out cross-validation of the calibration).

Command lines::

    abscopal validate --fit FIT.json TARGETS.toml... [--format table|json] [--patients N] [--resamples K]
                      [--draws M] [--seed S] [--level L] [--out FILE] [--force]
    abscopal crossval TARGETS... --out FILE.json [--free NAME ...] [--patients N] [--seed S] [--method M]
                      [--like FIT.json] [--force]

Progress goes to the ``abscopal`` logger (shown with ``-v``); results to stdout or ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AbscopalError

if TYPE_CHECKING:
    from ._common import Subparsers

__all__ = ["add_crossval_command", "add_validate_command"]

log = logging.getLogger(__name__)


def _cmd_validate(args: argparse.Namespace) -> int:
    from ..calibrate.validate import _as_trials, validate
    from ..io import check_outputs, write_atomic

    out = Path(args.out) if args.out else None
    if not Path(args.fit).is_file():
        raise AbscopalError(
            f"--fit: calibration file {args.fit!r} does not exist; pass the JSON written by 'abscopal fit'"
        )
    for name, value, low in (
        ("--patients", args.patients, 1),
        ("--resamples", args.resamples, 0),
        ("--draws", args.draws, 0),
        ("--seed", args.seed, 0),
    ):
        if value is not None and value < low:
            raise AbscopalError(f"{name}: {value} is below {low}")
    if not 0.0 < args.level < 1.0:
        raise AbscopalError(f"--level: {args.level} is not in (0, 1); e.g. 0.95")
    missing = [t for t in args.targets if not Path(t).exists()]
    if missing:
        raise AbscopalError(f"targets: {missing} not found; pass existing target TOML files or directories")
    from ..trials import target_files

    check_outputs({"--out": out}, inputs=[args.fit, *target_files(args.targets)], force=args.force)  # before work
    trials = _as_trials(list(args.targets))
    result = validate(
        args.fit,
        trials,
        n_patients_per_arm=args.patients,
        n_population_resamples=args.resamples,
        n_parameter_draws=args.draws,
        seed=args.seed,
        level=args.level,
        progress=log.info,
    )
    text = result.to_table() + "\n" if args.format == "table" else result.to_json()
    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=args.force)
        print(result.to_table() if args.format == "table" else f"{len(result.entries)} target(s) validated")
        print(f"-> {out}")
    return 0


def add_validate_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``validate --fit FIT TARGETS... [--format table|json] [--patients N] [--resamples K] [--draws M]
    [--seed S] [--level L] [--out FILE] [--force]`` to the ``subparsers`` of the ``abscopal`` parser (handler in
    ``func``); returns the subparser."""
    v = subparsers.add_parser("validate", help="predict trial targets with a calibration; z-scores and intervals")
    v.add_argument("targets", nargs="+", help="target TOML files or directories (any trials, fitted or not)")
    v.add_argument("--fit", required=True, help="calibration JSON file (from 'abscopal fit')")
    v.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    v.add_argument("--patients", type=int, default=None, help="virtual patients per arm (default: the fit's)")
    v.add_argument("--resamples", type=int, default=10, help="population re-draws at the fitted values (default 10)")
    v.add_argument("--draws", type=int, default=20, help="parameter draws (default 20; 0 disables)")
    v.add_argument("--seed", type=int, default=0, help="seed of the re-draws and parameter draws (default 0)")
    v.add_argument("--level", type=float, default=0.95, help="coverage of the prediction intervals (default 0.95)")
    v.add_argument("--out", default=None, help="write the output here (atomic) instead of stdout")
    v.add_argument("--force", action="store_true", help="overwrite --out")
    v.set_defaults(func=_cmd_validate)
    return v


def _cmd_crossval(args: argparse.Namespace) -> int:
    from ..calibrate.crossval import cross_validate
    from ..io import check_outputs
    from ..trials import target_files

    out = Path(args.out)
    missing = [t for t in args.targets if not Path(t).exists()]
    if missing:
        raise AbscopalError(f"targets: {missing} not found; pass existing target TOML files or directories")
    if args.like is not None and not Path(args.like).is_file():
        raise AbscopalError(
            f"--like: calibration file {args.like!r} does not exist; pass the JSON written by 'abscopal fit'"
        )
    check_outputs({"--out": out}, inputs=[*target_files(args.targets), args.like], force=args.force)  # before work
    if args.patients < 1 or args.seed < 0:
        raise AbscopalError(f"--patients {args.patients} must be >= 1 and --seed {args.seed} >= 0")

    settings: dict[str, Any] = {"free": tuple(args.free), "n_patients_per_arm": args.patients, "seed": args.seed}
    if args.like is not None:  # the recipe of an existing fit: its free set, base values, start, patients, seed
        from ..calibrate.fit import Calibration
        from ..calibrate.objective import _default_model

        like = Calibration.load(args.like)
        like.check_model(_default_model(), args.like)  # its values are applied to the default model
        prov = like.provenance
        settings = {
            "params": like.parameters(),
            "base_parameters": dict(prov.get("base_parameters") or {}),
            "n_patients_per_arm": int(prov["n_patients_per_arm"]),
            "seed": int(prov["seed"]),
        }
    result = cross_validate(list(args.targets), **settings, fit_kwargs={"method": args.method}, progress=log.info)
    result.save(out, force=args.force)
    print(result.to_table())
    print(f"-> {out}")
    return 0


def add_crossval_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``crossval TARGETS... --out FILE [--free NAME ...] [--patients N] [--seed S] [--method M] [--like FIT]
    [--force]``
    to the ``subparsers`` of the ``abscopal`` parser (handler in ``func``); returns the subparser."""
    from ..calibrate.objective import DEFAULT_FREE

    c = subparsers.add_parser("crossval", help="leave-one-trial-out cross-validation of the calibration")
    c.add_argument("targets", nargs="+", help="target TOML files or directories (at least two usable trials)")
    c.add_argument("--out", required=True, help="output JSON file")
    c.add_argument(
        "--free",
        nargs="+",
        default=list(DEFAULT_FREE),
        metavar="NAME",
        help=f"typical values to fit (default: {' '.join(DEFAULT_FREE)})",
    )
    c.add_argument("--patients", type=int, default=100, help="virtual patients per arm (default 100)")
    c.add_argument("--seed", type=int, default=0, help="master seed of the virtual patients (default 0)")
    c.add_argument("--method", default="least_squares", help="lmfit minimiser (default least_squares)")
    c.add_argument(
        "--like",
        default=None,
        metavar="FIT",
        help="refit each fold like this calibration (its free parameters, base values, start at its "
        "fitted values, patients per arm and seed); overrides --free/--patients/--seed",
    )
    c.add_argument("--force", action="store_true", help="overwrite --out")
    c.set_defaults(func=_cmd_crossval)
    return c
