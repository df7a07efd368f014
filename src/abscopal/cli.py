"""Command-line interface: ``abscopal simulate | endpoints | fit | fit-report | validate | crossval | study |
regimens | model | cite``.

Every command is a thin layer over one documented function call. Every output path is checked
(:func:`abscopal.io.check_outputs`) before any work; errors end the command with one line on stderr and the exit
code of :data:`abscopal.errors.EXIT_CODES`, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import EXIT_CODES, AbscopalError

__all__ = ["main"]

log = logging.getLogger(__name__)

EPILOG = f"""exit codes:
  {EXIT_CODES["ok"]:<4} success
  {EXIT_CODES["usage"]:<4} usage error (unknown option, missing argument)
  {EXIT_CODES["input"]:<4} input error: a bad value in a file or option, a missing or unreadable input, a refused output
  {EXIT_CODES["numerical"]:<4} numerical failure (the ODE solver failed)
  {EXIT_CODES["interrupted"]:<4} interrupted (Ctrl-C)

-v/--verbose (twice: debug) and -q/--quiet work before or after the command."""

_NETCDF_MAGIC = (b"\x89HDF\r\n\x1a\n",)  # netCDF-4 is HDF5; abscopal writes netCDF-4 only


def open_result(path: str | Path, option: str) -> xr.Dataset:  # noqa: F821 - xarray imported lazily
    """Load a netCDF result written by abscopal; :class:`AbscopalError` naming ``option`` and the file if it is
    missing, not a file, or not netCDF-4."""
    import xarray as xr

    p = Path(path)
    if not p.exists():
        raise AbscopalError(f"{option} {str(p)!r} does not exist; pass a netCDF file written by abscopal")
    if not p.is_file():
        raise AbscopalError(f"{option} {str(p)!r} is not a file; pass a netCDF file written by abscopal")
    with open(p, "rb") as fh:  # OSError (permission denied) is reported by main()
        head = fh.read(8)
    if head not in _NETCDF_MAGIC:
        raise AbscopalError(
            f"{option} {str(p)!r} is not a netCDF-4 file; pass a .nc file written by abscopal "
            "simulate, endpoints or study"
        )
    try:
        with xr.open_dataset(p, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, ValueError, KeyError) as exc:
        raise AbscopalError(
            f"{option} {str(p)!r} cannot be read as netCDF ({exc}); pass a file written by abscopal"
        ) from None


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .io import check_outputs, write_atomic, write_netcdf
    from .scenario import load_scenario
    from .simulate import simulate

    outputs = {
        "--out": args.out,
        "--figure": args.figure,
        "--endpoints-out": args.endpoints_out,
        "--endpoints-figure": args.endpoints_figure,
    }
    scenario = load_scenario(args.scenario, n_patients=args.patients, seed=args.seed, allow_large=args.allow_large)
    check_outputs(
        outputs,
        inputs=[args.scenario, scenario.fit],
        force=args.force,  # the fit is an input too
        figures=("--figure", "--endpoints-figure"),
    )
    if args.endpoints or args.endpoints_out or args.endpoints_figure:
        _assessment(args)  # checks --orr-visit-day before any work
    out = Path(args.out)
    t0 = time.perf_counter()
    ds = simulate(scenario.model, scenario.arms, **scenario.simulate_kwargs(), allow_large=args.allow_large)
    ds.attrs["scenario"] = scenario.source
    ds.attrs["scenario_title"] = scenario.title
    ds.attrs["fit"] = scenario.fit or "none (model defaults, uncalibrated)"
    ds.attrs["fit_survival"] = json.dumps(dict(scenario.survival))
    write_netcdf(ds, out, force=args.force)
    print(
        f"simulated {ds.sizes['arm']} arm(s) x {ds.sizes['patient']} patient(s) in "
        f"{time.perf_counter() - t0:.1f} s -> {out}"
    )
    if args.endpoints or args.endpoints_out or args.endpoints_figure:  # asking for an endpoint file implies them
        _print_endpoints(ds, args)
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .plot import plot_lesion_trajectories, plot_median_burden

        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        plot_median_burden(ds, ax=axes[0])
        if "lesion_diameter" in ds:
            plot_lesion_trajectories(ds, arm=str(ds.arm.values[-1]), ax=axes[1])
        fig.suptitle(scenario.title)
        fig.tight_layout()
        write_atomic(
            args.figure,
            lambda tmp: fig.savefig(tmp, format=Path(args.figure).suffix[1:] or "png", dpi=120),
            force=args.force,
        )
        print(f"figure -> {args.figure}")
    return 0


def _assessment(args: argparse.Namespace, survival: dict | None = None):
    from dataclasses import replace

    from .endpoints.recist import IRECIST, RECIST_1_1
    from .endpoints.summary import Assessment, SurvivalModel

    return Assessment(
        orr_visit_day=args.orr_visit_day,
        exclude_irradiated=not args.include_irradiated,
        rules=IRECIST if args.irecist else RECIST_1_1,
        survival=replace(SurvivalModel(), **(survival or {})),
    )


def _print_endpoints(ds, args: argparse.Namespace) -> None:
    from .endpoints.summary import endpoints
    from .endpoints.table import format_table
    from .io import write_netcdf

    ep = endpoints(ds, _assessment(args, json.loads(ds.attrs.get("fit_survival", "{}"))))
    print(format_table(ep))
    if getattr(args, "endpoints_out", None):
        write_netcdf(ep, args.endpoints_out, force=args.force)
        print(f"endpoints -> {args.endpoints_out}")
    if getattr(args, "endpoints_figure", None):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .io import write_atomic
        from .plot import plot_km, plot_spider, plot_waterfall

        fig, axes = plt.subplots(2, 2, figsize=(13, 10), layout="constrained")
        plot_km(ep, "pfs", ax=axes[0, 0])
        plot_km(ep, "os", ax=axes[0, 1])
        last = str(ep.arm.values[-1])
        plot_waterfall(ep, arm=last, ax=axes[1, 0])
        plot_spider(ep, arm=last, ax=axes[1, 1])
        fmt = Path(args.endpoints_figure).suffix[1:] or "png"
        write_atomic(args.endpoints_figure, lambda tmp: fig.savefig(tmp, format=fmt, dpi=110), force=args.force)
        print(f"endpoint figure -> {args.endpoints_figure}")


def _cmd_endpoints(args: argparse.Namespace) -> int:
    from .io import check_outputs

    check_outputs(
        {"--out": args.endpoints_out, "--figure": args.endpoints_figure},
        inputs=[args.result],
        force=args.force,
        figures=("--figure",),
    )
    _assessment(args)  # checks --orr-visit-day before reading the result
    _print_endpoints(open_result(args.result, "result"), args)
    return 0


def _add_assessment_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--orr-visit-day",
        type=float,
        default=None,
        help="ORR at the first scan on/after this day (PEMBRO-RT: 84); default best response",
    )
    p.add_argument("--include-irradiated", action="store_true", help="also score irradiated lesions")
    p.add_argument("--irecist", action="store_true", help="iRECIST instead of RECIST 1.1")


def _cmd_regimens(args: argparse.Namespace) -> int:
    from .treatment import DRUG_REGIMENS, regimen_table

    rows = regimen_table(alpha_beta_tumour_gy=args.alpha_beta_tumour, alpha_beta_lung_gy=args.alpha_beta_lung)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    keys = [k for k in rows[0] if k != "source"]
    print("Radiation regimens (BED and EQD2 in Gy)")
    print("  ".join(f"{k:>16}" if i else f"{k:<16}" for i, k in enumerate(keys)))
    for r in rows:
        print("  ".join(f"{r[k]:>16.4g}" if isinstance(r[k], float) else f"{r[k]!s:<16}" for k in keys))
    print("\nCheckpoint-inhibitor regimens")
    for name, spec in DRUG_REGIMENS.items():
        print(f"  {name:<28} {getattr(spec, 'source', '')}")
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    from .model.library import get_model

    options = {"n_lesions": args.n_lesions} if args.name == "nsclc" else {}
    spec = get_model(args.name, **options)
    print(spec.equations_latex() if args.latex else spec.summary())
    return 0


def _cmd_cite(args: argparse.Namespace) -> int:
    from .cite import cite

    if args.result:
        print(cite(open_result(args.result, "--result")))
        return 0
    from .model.library import get_model

    print(cite(get_model(args.model)))
    return 0


# ---- abscopal fit ----------------------------------------------------------------------------------------------------
def _check_fit_args(args: argparse.Namespace) -> None:
    """Every check of ``abscopal fit`` that needs no simulation (raises :class:`AbscopalError`)."""
    from .io import check_outputs
    from .trials import target_files

    outputs: dict[str, Any] = {"--out": args.out}
    if args.report is not None:
        from .calibrate.report import report_paths

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
    if args.multistart is not None and args.multistart < 1:
        raise AbscopalError(f"--multistart {args.multistart}: give the number of starts, at least 1")
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
    from .calibrate.fit import calibrate
    from .calibrate.objective import CalibrationProblem, default_parameters
    from .trials import load_all, target_files

    _check_fit_args(args)  # fail before any work
    out = Path(args.out)
    t0 = time.perf_counter()
    targets = load_all(target_files(args.targets))
    problem = CalibrationProblem(targets=tuple(targets.values()), n_patients_per_arm=args.patients, seed=args.seed)
    params = default_parameters(problem, names=tuple(args.free))
    cal = calibrate(problem, params, method=args.method, multistart=args.multistart, seed=args.start_seed)
    if args.profile is not None or args.posterior:
        from .calibrate.uncertainty import posterior, profile_likelihood, with_uncertainty

        profiles = profile_likelihood(problem, cal, args.profile or None) if args.profile is not None else None
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
        cal = with_uncertainty(cal, profiles=profiles, posterior=post)
    cal.save(out, force=args.force)
    print(cal.summary_table())
    for sentence in cal.identifiability:
        print(f"- {sentence}")
    if args.report is not None:
        from .calibrate.report import fit_report

        for path in fit_report(cal, args.report, force=args.force):
            print(f"report: {path}")
    print(
        f"\nfitted {len(args.free)} parameter(s) to {len(problem.keys)} target(s) in "
        f"{time.perf_counter() - t0:.1f} s -> {out}"
    )
    return 0


def add_fit_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``abscopal fit`` to the ``subparsers`` of the ``abscopal`` parser (handler in ``func``).

    ``fit TARGETS... --out OUT.json [--patients N] [--seed S] [--force] [--free NAME ...] [--method M]
    [--multistart K] [--start-seed S] [--profile [NAME ...]] [--posterior [--walkers N] [--steps N] [--burn N]
    [--thin N]] [--report PATH.html|PATH.md]``; every option is checked before any simulation. Returns the
    subparser.
    """
    from .calibrate.fit import METHODS
    from .calibrate.objective import DEFAULT_FREE

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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``abscopal`` command."""
    p = argparse.ArgumentParser(
        prog="abscopal",
        description="RT + immune-checkpoint blockade modelling (NSCLC)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"abscopal {__version__}")
    _add_verbosity(p, top=True)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate", help="simulate a scenario TOML file to netCDF")
    s.add_argument("scenario", help="scenario TOML file (format: abscopal.scenario)")
    s.add_argument("--patients", type=int, default=None, help="number of virtual patients (overrides the file)")
    s.add_argument("--seed", type=int, default=None, help="population seed (overrides the file)")
    s.add_argument("--out", required=True, help="output netCDF file")
    s.add_argument("--figure", default=None, help="also write a PNG/SVG figure")
    s.add_argument("--force", action="store_true", help="overwrite existing outputs")
    s.add_argument("--endpoints", action="store_true", help="score the patients and print the arm table")
    s.add_argument("--endpoints-out", default=None, help="also write the endpoints dataset (netCDF)")
    s.add_argument("--endpoints-figure", default=None, help="KM, waterfall and spider plots (PNG/SVG)")
    s.add_argument(
        "--allow-large",
        action="store_true",
        help="run even above the cost limits (1e6 patients, 2 GiB of output, 1e5 RT fractions + drug "
        "doses per arm; abscopal.limits)",
    )
    _add_assessment_options(s)
    s.set_defaults(func=_cmd_simulate)
    e = sub.add_parser("endpoints", help="score a simulation result (RECIST, ORR, PFS, OS, HR, pneumonitis)")
    e.add_argument("result", help="netCDF file written by abscopal simulate")
    e.add_argument("--out", dest="endpoints_out", default=None, help="write the endpoints dataset (netCDF)")
    e.add_argument("--figure", dest="endpoints_figure", default=None, help="KM, waterfall and spider plots")
    e.add_argument("--force", action="store_true", help="overwrite --out and --figure")
    _add_assessment_options(e)
    e.set_defaults(func=_cmd_endpoints)
    r = sub.add_parser("regimens", help="list named regimens with BED and EQD2")
    r.add_argument("--alpha-beta-tumour", type=float, default=10.0)
    r.add_argument("--alpha-beta-lung", type=float, default=3.0)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_cmd_regimens)
    m = sub.add_parser("model", help="print a library model's states and parameters (or LaTeX equations)")
    m.add_argument("name", nargs="?", default="nsclc")
    m.add_argument("--n-lesions", type=int, default=3)
    m.add_argument("--latex", action="store_true")
    m.set_defaults(func=_cmd_model)
    add_fit_command(sub)
    from .calibrate.crossval import add_crossval_command
    from .calibrate.report import add_fit_report_command
    from .calibrate.validate import add_validate_command
    from .studies.command import add_study_command

    add_fit_report_command(sub)
    add_validate_command(sub)
    add_crossval_command(sub)

    add_study_command(sub)
    c = sub.add_parser("cite", help="print the sources behind a model or a result file")
    c.add_argument("--model", default="nsclc")
    c.add_argument("--result", default=None, help="a netCDF file written by abscopal")
    c.set_defaults(func=_cmd_cite)
    for command in sub.choices.values():  # the same -v/-q on every command (also after the command name)
        _add_verbosity(command, top=False)
        command.epilog = command.epilog or "exit codes: see 'abscopal --help'"
    return p


def _add_verbosity(p: argparse.ArgumentParser, *, top: bool) -> None:
    default = {} if top else {"default": argparse.SUPPRESS}  # a command's own -v/-q must not reset the top one
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-v", "--verbose", action="count", help="log progress (twice: debug messages)", **({"default": 0} | default)
    )
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="only errors: no progress messages or progress bar",
        **({"default": False} | default),
    )


class _StderrHandler(logging.Handler):
    """Log records as ``abscopal: message`` lines on the current ``sys.stderr`` (which tests may swap)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"abscopal: {self.format(record)}\n")
        except Exception:
            self.handleError(record)


_HANDLER = _StderrHandler()


def _configure_logging(verbose: int, quiet: bool) -> None:
    """Send the ``abscopal`` loggers to stderr at WARNING (``-v``: INFO, ``-vv``: DEBUG, ``-q``: ERROR)."""
    logger = logging.getLogger("abscopal")
    if _HANDLER not in logger.handlers:
        logger.addHandler(_HANDLER)
    logger.propagate = False
    logger.setLevel(
        logging.ERROR if quiet else logging.DEBUG if verbose >= 2 else logging.INFO if verbose else logging.WARNING
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``abscopal`` command; returns an exit code of :data:`abscopal.errors.EXIT_CODES`."""
    args = build_parser().parse_args(argv)  # usage errors: argparse exits with code 2
    _configure_logging(args.verbose or 0, bool(args.quiet))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("abscopal: interrupted", file=sys.stderr)
        return EXIT_CODES["interrupted"]
    except AbscopalError as exc:
        print(f"abscopal: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `abscopal regimens | head`
        return EXIT_CODES["ok"]
    except OSError as exc:  # an input that cannot be read, an output folder that vanished: no traceback
        where = f" {str(exc.filename)!r}" if exc.filename is not None else ""
        print(
            f"abscopal: error: cannot access{where}: {exc.strerror or exc}; check the path and its permissions",
            file=sys.stderr,
        )
        return EXIT_CODES["input"]


if __name__ == "__main__":
    sys.exit(main())
