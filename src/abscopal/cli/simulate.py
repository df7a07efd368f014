"""``abscopal simulate`` (a scenario file to netCDF, optionally scored) and ``abscopal endpoints`` (score a result)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ._common import open_result

if TYPE_CHECKING:
    from ._common import Subparsers

__all__ = ["add_endpoints_command", "add_simulate_command"]


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ..io import check_outputs, write_atomic, write_netcdf
    from ..scenario import load_scenario
    from ..simulate import simulate

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
        roles = scenario.model.roles
        if scenario.model_source and not ("lesion_diameter" in roles or "lesion_volume" in roles):
            from ..errors import ParameterError

            raise ParameterError(
                f"{args.scenario}: --endpoints scores lesion sizes, but the imported model has no "
                "'lesion_diameter' or 'lesion_volume' role; give [model] roles = { lesion_volume = \"<output>\" } "
                "(or lesion_diameter), or run without --endpoints"
            )
    out = Path(args.out)
    t0 = time.perf_counter()
    ds = simulate(scenario.model, scenario.arms, **scenario.simulate_kwargs(), allow_large=args.allow_large)
    ds.attrs["scenario"] = scenario.source
    ds.attrs["scenario_title"] = scenario.title
    ds.attrs["fit"] = scenario.fit or "none (model defaults, uncalibrated)"
    ds.attrs["fit_survival"] = json.dumps(dict(scenario.survival))
    ds.attrs["fit_ntcp"] = json.dumps(dict(scenario.ntcp))
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

        from ..plot import plot_lesion_trajectories, plot_median_burden

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


def _assessment(args: argparse.Namespace, survival: dict | None = None, ntcp: dict | None = None):
    from ..endpoints import IRECIST, RECIST_1_1, TrialAssessment
    from ..fitted.values import SplitValues

    base = TrialAssessment(
        orr_visit_day=args.orr_visit_day,
        exclude_irradiated=not args.include_irradiated,
        rules=IRECIST if args.irecist else RECIST_1_1,
    )
    # the fit's survival fields choose its death model (the default link, or model v1's burden hazard); its ntcp
    # fields set the pneumonitis model
    return SplitValues({}, {}, {}, dict(survival or {}), dict(ntcp or {})).assessment(base)


def _print_endpoints(ds, args: argparse.Namespace) -> None:
    from ..endpoints import score
    from ..endpoints.table import format_table
    from ..io import write_netcdf

    ep = score(
        ds,
        _assessment(args, json.loads(ds.attrs.get("fit_survival", "{}")), json.loads(ds.attrs.get("fit_ntcp", "{}"))),
    )
    print(format_table(ep))
    if getattr(args, "endpoints_out", None):
        write_netcdf(ep, args.endpoints_out, force=args.force)
        print(f"endpoints -> {args.endpoints_out}")
    if getattr(args, "endpoints_figure", None):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..io import write_atomic
        from ..plot import plot_km, plot_spider, plot_waterfall

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
    from ..io import check_outputs

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


def add_simulate_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``simulate SCENARIO.toml --out OUT.nc [...]`` to the ``abscopal`` subparsers; returns the subparser."""
    s = subparsers.add_parser("simulate", help="simulate a scenario TOML file to netCDF")
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
    return s


def add_endpoints_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``endpoints RESULT.nc [--out FILE] [--figure FILE] [...]`` to the ``abscopal`` subparsers; returns the
    subparser."""
    e = subparsers.add_parser("endpoints", help="score a simulation result (RECIST, ORR, PFS, OS, HR, pneumonitis)")
    e.add_argument("result", help="netCDF file written by abscopal simulate")
    e.add_argument("--out", dest="endpoints_out", default=None, help="write the endpoints dataset (netCDF)")
    e.add_argument("--figure", dest="endpoints_figure", default=None, help="KM, waterfall and spider plots")
    e.add_argument("--force", action="store_true", help="overwrite --out and --figure")
    _add_assessment_options(e)
    e.set_defaults(func=_cmd_endpoints)
    return e
