"""``abscopal export``: a result as per-patient tables (CSV, Parquet) or a NONMEM-style PK dataset."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import open_result

if TYPE_CHECKING:
    from ._common import Subparsers

__all__ = ["EXPORT_FORMATS", "add_export_command"]

EXPORT_FORMATS = ("csv", "parquet", "nonmem")
"""Values of ``--format``: long table as CSV or Parquet, or the NONMEM-style PK dataset (CSV)."""


def _cmd_export(args: argparse.Namespace) -> int:
    from ..errors import AbscopalError
    from ..export import _parquet_engine, long_table, nonmem_table, patient_table, write_table
    from ..io import check_outputs

    fmt = str(args.format).lower()
    if fmt not in EXPORT_FORMATS:
        raise AbscopalError(f"--format {args.format!r} is not a format; use one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "nonmem" and args.patients_out:
        raise AbscopalError(
            f"--patients-out {args.patients_out!r} does not go with --format nonmem (the covariates are columns "
            "of the NONMEM dataset); drop --patients-out or use --format csv or parquet"
        )
    check_outputs({"--out": args.out, "--patients-out": args.patients_out}, inputs=[args.result], force=args.force)
    if fmt == "parquet":
        _parquet_engine()  # before reading the input: a missing pyarrow fails at once
    ds = open_result(args.result, "result")
    if fmt == "nonmem":
        table = nonmem_table(ds)
        write_table(table, args.out, "csv", force=args.force, nonmem=True)
        n_id = table["ID"].nunique()
        print(f"NONMEM dataset: {len(table)} records of {n_id} subject(s) (TIME in h, AMT mg, DV mg/L) -> {args.out}")
        return 0
    table = long_table(ds)
    write_table(table, args.out, fmt, force=args.force)
    print(f"long table: {len(table)} rows ({table['variable'].nunique()} variables) -> {args.out}")
    if args.patients_out:
        patients = patient_table(ds)
        write_table(patients, args.patients_out, fmt, force=args.force)
        print(f"patient table: {len(patients)} rows x {patients.shape[1]} columns -> {args.patients_out}")
    return 0


def add_export_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``export RESULT.nc --out FILE [--format csv|parquet|nonmem] [--patients-out FILE] [--force]`` to the
    ``abscopal`` subparsers; returns the subparser."""
    x = subparsers.add_parser(
        "export",
        help="export a result as per-patient tables (CSV, Parquet) or a NONMEM-style PK dataset",
        description="Long table (arm, patient, lesion, time, variable, value, units) of a simulate or endpoints "
        "result, optionally with a patient table (covariates and parameter values); or the drug PK as a "
        "NONMEM-style dataset (ID TIME[h] EVID AMT[mg] CMT DV[mg/L] MDV + covariates). See docs/interop.md.",
    )
    x.add_argument("result", help="netCDF file written by abscopal simulate (or endpoints)")
    x.add_argument("--out", required=True, help="output file (the long table, or the NONMEM dataset)")
    x.add_argument(
        "--format",
        default="csv",
        metavar="{csv,parquet,nonmem}",
        help="csv (default), parquet (needs pyarrow: pip install abscopal[export]) or nonmem (CSV, '.' = missing)",
    )
    x.add_argument(
        "--patients-out", default=None, help="also write the patient table (one row per arm x patient), same format"
    )
    x.add_argument("--force", action="store_true", help="overwrite --out and --patients-out")
    x.set_defaults(func=_cmd_export)
    return x
