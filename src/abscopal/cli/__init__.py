"""Command-line interface: ``abscopal simulate | endpoints | fit | fit-report | validate | crossval | study |
sensitivity | diagnose | export | sbml | regimens | model | cite``.

This package is the only place that prints; the library returns data and text. :func:`build_parser` and
:func:`main` (the ``abscopal`` console script, also ``python -m abscopal.cli``) live here; each command group is a
module that adds its subcommands and holds their handlers:

* :mod:`~abscopal.cli.simulate`: ``simulate``, ``endpoints``;
* :mod:`~abscopal.cli.fit`: ``fit``, ``fit-report``;
* :mod:`~abscopal.cli.validate`: ``validate``, ``crossval``;
* :mod:`~abscopal.cli.study`: ``study``;
* :mod:`~abscopal.cli.sensitivity`: ``sensitivity``;
* :mod:`~abscopal.cli.diagnose`: ``diagnose``;
* :mod:`~abscopal.cli.export`: ``export``;
* :mod:`~abscopal.cli.sbml`: ``sbml export``, ``sbml import``;
* :mod:`~abscopal.cli.info`: ``regimens``, ``model``, ``cite``.

Every command is a thin layer over one documented function call. Every output path is checked
(:func:`abscopal.io.check_outputs`) before any work; errors end the command with one line on stderr and the exit
code of :data:`abscopal.errors.EXIT_CODES`, never a traceback.

Each command's handler ``_cmd_<name>`` is re-exported here, and :func:`build_parser` takes the handler of every
command from this module's namespace: replacing ``abscopal.cli._cmd_<name>`` replaces what ``abscopal <name>``
runs (the tests use this to raise chosen errors).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ..errors import EXIT_CODES, AbscopalError
from .diagnose import _cmd_diagnose as _cmd_diagnose
from .diagnose import add_diagnose_command
from .export import _cmd_export as _cmd_export
from .export import add_export_command
from .fit import _cmd_fit as _cmd_fit
from .fit import _cmd_fit_report as _cmd_fit_report
from .fit import add_fit_command, add_fit_report_command
from .info import _cmd_cite as _cmd_cite
from .info import _cmd_model as _cmd_model
from .info import _cmd_regimens as _cmd_regimens
from .info import add_cite_command, add_model_command, add_regimens_command
from .sbml import _cmd_sbml as _cmd_sbml
from .sbml import add_sbml_command
from .sensitivity import _cmd_sensitivity as _cmd_sensitivity
from .sensitivity import add_sensitivity_command
from .simulate import _cmd_endpoints as _cmd_endpoints
from .simulate import _cmd_simulate as _cmd_simulate
from .simulate import add_endpoints_command, add_simulate_command
from .study import _cmd_study as _cmd_study
from .study import add_study_command
from .validate import _cmd_crossval as _cmd_crossval
from .validate import _cmd_validate as _cmd_validate
from .validate import add_crossval_command, add_validate_command

__all__ = [
    "add_cite_command",
    "add_crossval_command",
    "add_diagnose_command",
    "add_endpoints_command",
    "add_export_command",
    "add_fit_command",
    "add_fit_report_command",
    "add_model_command",
    "add_regimens_command",
    "add_sbml_command",
    "add_sensitivity_command",
    "add_simulate_command",
    "add_study_command",
    "add_validate_command",
    "build_parser",
    "main",
]

EPILOG = f"""exit codes:
  {EXIT_CODES["ok"]:<4} success
  {EXIT_CODES["usage"]:<4} usage error (unknown option, missing argument)
  {EXIT_CODES["input"]:<4} input error: a bad value in a file or option, a missing or unreadable input, a refused output
  {EXIT_CODES["numerical"]:<4} numerical failure (the ODE solver failed)
  {EXIT_CODES["interrupted"]:<4} interrupted (Ctrl-C)

-v/--verbose (twice: debug) and -q/--quiet work before or after the command."""


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
    for add in (
        add_simulate_command,
        add_endpoints_command,
        add_regimens_command,
        add_model_command,
        add_fit_command,
        add_fit_report_command,
        add_validate_command,
        add_crossval_command,
        add_study_command,
        add_sensitivity_command,
        add_diagnose_command,
        add_export_command,
        add_sbml_command,
        add_cite_command,
    ):
        add(sub)
    here = globals()
    for command in sub.choices.values():
        handler = command.get_default("func")
        command.set_defaults(func=here[handler.__name__])  # the handler as bound in this module (see above)
        _add_verbosity(command, top=False)  # the same -v/-q on every command (also after the command name)
        command.epilog = command.epilog or "exit codes: see 'abscopal --help'"
    return p


def _add_verbosity(p: argparse.ArgumentParser, *, top: bool) -> None:
    # a command's own -v/-q must not reset the top one (argparse keyword arguments, hence Any)
    default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-v", "--verbose", action="count", help="log progress (twice: debug messages)", **{"default": 0, **default}
    )
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="only errors: no progress messages or progress bar",
        **{"default": False, **default},
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
