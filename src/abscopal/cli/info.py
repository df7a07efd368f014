"""Reference commands: ``abscopal regimens`` (named regimens with BED and EQD2), ``abscopal model`` (a library
model's states, parameters or equations) and ``abscopal cite`` (the sources behind a model or a result file)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ._common import open_result

if TYPE_CHECKING:
    from ._common import Subparsers

__all__ = ["add_cite_command", "add_model_command", "add_regimens_command"]

_VERSION_HELP = "version of the nsclc model: 2 (default, model v2) or 1 (model v1, for comparison)"


def _cmd_regimens(args: argparse.Namespace) -> int:
    from ..treatment import DRUG_REGIMENS, regimen_table

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


def _version_options(name: str, version: int | None) -> dict[str, int]:
    """``{"version": N}`` for ``--model-version N``; an error naming the option for a version ``name`` lacks."""
    from ..errors import AbscopalError, ModelError
    from ..model.library import version_options

    try:
        return version_options(name, version)
    except ModelError as exc:
        raise AbscopalError(f"--model-version: {exc}") from None


def _cmd_model(args: argparse.Namespace) -> int:
    from ..model.library import get_model

    options = {"n_lesions": args.n_lesions} if args.name == "nsclc" else {}
    spec = get_model(args.name, **options, **_version_options(args.name, args.model_version))
    print(spec.equations_latex() if args.latex else spec.summary())
    return 0


def _cmd_cite(args: argparse.Namespace) -> int:
    from ..cite import cite

    if args.result:
        print(cite(open_result(args.result, "--result")))
        return 0
    from ..model.library import get_model

    print(cite(get_model(args.model, **_version_options(args.model, args.model_version))))
    return 0


def add_regimens_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``regimens [--alpha-beta-tumour X] [--alpha-beta-lung X] [--json]``; returns the subparser."""
    r = subparsers.add_parser("regimens", help="list named regimens with BED and EQD2")
    r.add_argument("--alpha-beta-tumour", type=float, default=10.0)
    r.add_argument("--alpha-beta-lung", type=float, default=3.0)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_cmd_regimens)
    return r


def add_model_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``model [NAME] [--n-lesions N] [--model-version N] [--latex]``; returns the subparser."""
    m = subparsers.add_parser("model", help="print a library model's states and parameters (or LaTeX equations)")
    m.add_argument("name", nargs="?", default="nsclc")
    m.add_argument("--n-lesions", type=int, default=3)
    m.add_argument("--model-version", type=int, default=None, metavar="N", help=_VERSION_HELP)
    m.add_argument("--latex", action="store_true")
    m.set_defaults(func=_cmd_model)
    return m


def add_cite_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``cite [--model NAME] [--model-version N] [--result FILE.nc]``; returns the subparser."""
    c = subparsers.add_parser("cite", help="print the sources behind a model or a result file")
    c.add_argument("--model", default="nsclc")
    c.add_argument("--model-version", type=int, default=None, metavar="N", help=_VERSION_HELP)
    c.add_argument("--result", default=None, help="a netCDF file written by abscopal")
    c.set_defaults(func=_cmd_cite)
    return c
