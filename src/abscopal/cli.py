"""Command-line interface: ``abscopal simulate | endpoints | fit | fit-report | validate | crossval | study |
regimens | model | cite``.

Every command is a thin layer over one documented function call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ._version import __version__
from .errors import AbscopalError

__all__ = ["main"]


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .io import write_atomic, write_netcdf
    from .scenario import load_scenario
    from .simulate import simulate

    scenario = load_scenario(args.scenario, n_patients=args.patients, seed=args.seed, allow_large=args.allow_large)
    if args.endpoints or args.endpoints_out or args.endpoints_figure:
        _assessment(args)  # checks --orr-visit-day before any work
    out = Path(args.out)
    if out.exists() and not args.force:  # fail before any work
        raise AbscopalError(f"{str(out)!r} exists; choose another --out or pass --force")
    for path in (args.figure, args.endpoints_out, args.endpoints_figure):
        if path and Path(path).exists() and not args.force:
            raise AbscopalError(f"{path!r} exists; choose another path or pass --force")
    t0 = time.perf_counter()
    ds = simulate(scenario.model, scenario.arms, **scenario.simulate_kwargs(), allow_large=args.allow_large)
    ds.attrs["scenario"] = scenario.source
    ds.attrs["scenario_title"] = scenario.title
    ds.attrs["fit"] = scenario.fit or "none (model defaults, uncalibrated)"
    ds.attrs["fit_survival"] = json.dumps(dict(scenario.survival))
    write_netcdf(ds, out, force=args.force)
    print(f"simulated {ds.sizes['arm']} arm(s) x {ds.sizes['patient']} patient(s) in "
          f"{time.perf_counter() - t0:.1f} s -> {out}")
    if args.endpoints:
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
        write_atomic(args.figure, lambda tmp: fig.savefig(tmp, format=Path(args.figure).suffix[1:] or "png",
                                                          dpi=120), force=args.force)
        print(f"figure -> {args.figure}")
    return 0


def _assessment(args: argparse.Namespace, survival: dict | None = None):
    from dataclasses import replace

    from .endpoints.recist import IRECIST, RECIST_1_1
    from .endpoints.summary import Assessment, SurvivalModel

    return Assessment(orr_visit_day=args.orr_visit_day, exclude_irradiated=not args.include_irradiated,
                      rules=IRECIST if args.irecist else RECIST_1_1,
                      survival=replace(SurvivalModel(), **(survival or {})))


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
    import xarray as xr

    for path in (args.endpoints_out, args.endpoints_figure):
        if path and Path(path).exists() and not args.force:
            raise AbscopalError(f"{path!r} exists; choose another path or pass --force")
    _assessment(args)  # checks --orr-visit-day before reading the result
    with xr.open_dataset(args.result, engine="h5netcdf") as ds:
        _print_endpoints(ds.load(), args)
    return 0


def _add_assessment_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--orr-visit-day", type=float, default=None,
                   help="ORR at the first scan on/after this day (PEMBRO-RT: 84); default best response")
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
        import xarray as xr

        with xr.open_dataset(args.result, engine="h5netcdf") as ds:
            print(cite(ds))
            return 0
    from .model.library import get_model

    print(cite(get_model(args.model)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``abscopal`` command."""
    p = argparse.ArgumentParser(prog="abscopal", description="RT + immune-checkpoint blockade modelling (NSCLC)")
    p.add_argument("--version", action="version", version=f"abscopal {__version__}")
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
    s.add_argument("--allow-large", action="store_true",
                   help="run even above the cost limits (1e6 patients, 2 GiB of output, 1e5 RT fractions + drug "
                        "doses per arm; abscopal.limits)")
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
    from .calibrate.fit import add_fit_command

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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``abscopal`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except AbscopalError as exc:
        print(f"abscopal: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `abscopal regimens | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
