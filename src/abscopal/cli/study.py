"""``abscopal study STUDY.toml --out DIR``: the command-line face of :func:`abscopal.studies.study`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._common import Subparsers

__all__ = ["add_study_command"]


def _cmd_study(args: argparse.Namespace) -> int:
    from ..parallel import check_scheduler
    from ..studies import load_study, run_study, summary_table
    from ..studies.outputs import check_study_dir
    from ..studies.table import format_summary

    if args.scheduler is not None:
        check_scheduler(args.scheduler)
    check_study_dir(Path(args.out), force=args.force, inputs=[args.study])  # before reading or running anything
    overrides = {
        k: v for k, v in (("n_patients", args.patients), ("seed", args.seed), ("n_draws", args.draws)) if v is not None
    }
    design = load_study(args.study, **overrides)  # validates the whole file before any work
    out = Path(args.out)
    t0 = time.perf_counter()
    ds = run_study(
        design,
        out,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=not args.quiet,
        force=args.force,
        report=not args.no_report,
        allow_large=args.allow_large,
    )
    rows = summary_table(ds)
    print(format_summary(rows))
    print(
        f"\n{len(rows)} cells ({ds.attrs['cells_computed']} computed, {ds.attrs['cells_cached']} reused), "
        f"{ds.sizes['patient']} patients, {ds.sizes['draw'] - 1} parameter draws, "
        f"{time.perf_counter() - t0:.1f} s -> {out}/ (endpoints.nc, summary.csv"
        f"{', report.html' if not args.no_report else ''})"
    )
    return 0


def add_study_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``study STUDY.toml --out DIR [--patients N] [--seed S] [--draws K] [--scheduler ADDRESS | --workers N]
    [--force] [--no-report] [-q]`` to the ``abscopal`` subparsers; returns the subparser."""
    s = subparsers.add_parser("study", help="run a timing x fractionation x site x drug study and write its report")
    s.add_argument("study", help="study TOML file (format: docs/studies.md)")
    s.add_argument(
        "--out", required=True, help="output folder: new, empty or a study's (its finished cells are reused on a rerun)"
    )
    s.add_argument("--patients", type=int, default=None, help="virtual patients (overrides the file)")
    s.add_argument("--seed", type=int, default=None, help="patient seed (overrides the file)")
    s.add_argument("--draws", type=int, default=None, help="parameter draws from the fit (overrides the file)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:8786)")
    g.add_argument("--workers", type=int, default=None, help="start a local Dask cluster with N worker processes")
    s.add_argument("--force", action="store_true", help="rewrite the outputs of a completed study in --out")
    s.add_argument("--no-report", action="store_true", help="skip figures and report.html")
    s.add_argument(
        "--allow-large",
        action="store_true",
        help="run even above the cost limit (2e6 patient simulations = cells x (draws + 1) x patients; "
        "abscopal.limits)",
    )
    s.set_defaults(func=_cmd_study)
    return s
