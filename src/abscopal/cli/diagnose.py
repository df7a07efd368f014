"""``abscopal diagnose [--fit F] [--model NAME] [--model-version N] [--json]``: the model card of
:func:`abscopal.diagnose.model_card`.

The card is measured for the model and fit at hand: by default the shipped fit ``fits/default.json`` and its model;
``--model`` / ``--model-version`` alone take the shipped fit if it was made for that model (and version), else the
model's defaults (said on stderr; ``--model-version 2`` is model v2, which has no shipped fit yet);
``--fit none`` always means model defaults. The table (or ``--json``) goes to stdout, progress to the ``abscopal``
logger (``-v``). The exit code is 0 whether metrics pass or fail; it is non-zero only for bad arguments or a failed
simulation.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import AbscopalError, unknown_name_message

if TYPE_CHECKING:
    from ._common import Subparsers

__all__ = ["add_diagnose_command"]

log = logging.getLogger(__name__)

_MAX_PATIENTS = 100_000
_OPTIONS = {
    "metric: ": "--metric: ",
    "mechanisms_off: ": "--mechanisms-off: ",
    "model: ": "--model: ",
    "version: ": "--model-version: ",
}
"""The prefix of a library error about an argument -> the prefix naming the option."""


def _fit_for(fit: str | None, model: str | None, version: int | None = None) -> str:
    """The fit of the card: ``--fit`` if given; else the shipped fit, unless ``--model`` / ``--model-version`` name
    another model or version."""
    if fit is not None:
        if fit not in ("default", "none") and not Path(fit).is_file():
            raise AbscopalError(
                f"--fit: calibration file {fit!r} does not exist; pass a JSON written by 'abscopal fit', "
                "'default' (the shipped fit) or 'none' (model defaults)"
            )
        return fit
    if model is None and version is None:
        return "default"
    from ..fitted import load_fit

    shipped = load_fit("default")
    prov = {} if shipped is None else shipped.provenance
    made_for = prov.get("model_name_library")
    made_for_version = (prov.get("model_version") or 1) if made_for == "nsclc" else None
    wanted = model or made_for or "nsclc"
    if made_for == wanted and version in (None, made_for_version):
        return "default"
    fit_model = f"{made_for!r}" + (f" version {made_for_version}" if made_for_version else "")
    wanted_model = f"{wanted!r}" + (f" version {version}" if version is not None else "")
    log.warning(
        "the shipped fit is for model %s, not %s: the card uses the defaults of model %s",
        fit_model,
        wanted_model,
        wanted_model,
    )
    return "none"


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from ..diagnose import model_card
    from ..model.library import MODELS

    if not 1 <= args.patients <= _MAX_PATIENTS:
        raise AbscopalError(f"--patients: {args.patients} is not between 1 and {_MAX_PATIENTS}")
    if args.seed < 0:
        raise AbscopalError(f"--seed: {args.seed} is below 0; give a seed >= 0")
    if args.model is not None and args.model not in MODELS:
        raise AbscopalError("--model: " + unknown_name_message("model", args.model, MODELS))
    fit = _fit_for(args.fit, args.model, args.model_version)
    try:
        card = model_card(
            args.model,
            fit,
            version=args.model_version,
            seed=args.seed,
            n_patients=args.patients,
            metrics=args.metric,
            mechanisms_off=args.mechanisms_off or (),
            progress=log.info,
        )
    except AbscopalError as exc:  # name the option, not the library argument
        text = str(exc)
        for argument, option in _OPTIONS.items():
            if text.startswith(argument):
                raise AbscopalError(option + text.removeprefix(argument)) from None
        if "was made for model" in text or "does not name the model" in text:
            raise AbscopalError("--fit / --model: " + text) from None
        raise
    sys.stdout.write(card.to_json() + "\n" if args.json else card.to_table() + "\n")
    return 0


def add_diagnose_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``diagnose [--fit F] [--model NAME] [--model-version N] [--json] [--patients N] [--seed S]
    [--metric NAME ...] [--mechanisms-off NAME ...]`` to the ``abscopal`` subparsers (handler in ``func``);
    returns the subparser."""
    from ..diagnose import DEFAULT_PATIENTS

    d = subparsers.add_parser(
        "diagnose",
        help="the model card: diagnostic metrics of a model and its fit, each with its target (docs/diagnose.md)",
    )
    d.add_argument(
        "--fit",
        default=None,
        help="calibration JSON, 'default' (the shipped fit) or 'none' (model defaults); default: the shipped fit, "
        "or model defaults if --model names another model",
    )
    d.add_argument("--model", default=None, help="library model (nsclc, kosinsky2018); default: the fit's model")
    d.add_argument(
        "--model-version",
        type=int,
        default=None,
        metavar="N",
        help="version of the nsclc model (1, or 2 for model v2); default: the fit's, else 1",
    )
    d.add_argument("--json", action="store_true", help="machine-readable JSON instead of the table")
    d.add_argument(
        "--patients",
        type=int,
        default=DEFAULT_PATIENTS,
        help=f"virtual patients of the population metrics (default {DEFAULT_PATIENTS})",
    )
    d.add_argument("--seed", type=int, default=0, help="seed of the virtual patients (default 0)")
    d.add_argument(
        "--metric",
        action="append",
        default=None,
        metavar="NAME",
        help="measure only this metric (repeatable; 'rest.' or 'rest*' selects a group); default all",
    )
    d.add_argument(
        "--mechanisms-off",
        nargs="+",
        default=None,
        metavar="NAME",
        help="switch these mechanisms off in every simulation of the card (ablation)",
    )
    d.set_defaults(func=_cmd_diagnose)
    return d
