"""Exceptions and warnings raised by abscopal.

Every error names the argument, shows the offending value and says how to fix it.
Use :func:`unknown_name_message` for unknown identifiers so users get a suggestion.

Exit codes of the ``abscopal`` command (one place: :data:`EXIT_CODES`; each error class carries its
``exit_code``): 0 success, 2 usage error (argparse), 3 input error (:class:`AbscopalError` and its subclasses, a
missing or unreadable input file), 4 numerical failure (:class:`SolverError`), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "EXIT_CODES",
    "AbscopalError",
    "AbscopalWarning",
    "ModelError",
    "ParameterError",
    "ScheduleError",
    "SolverError",
    "SterilisedLesionWarning",
    "StiffFallbackWarning",
    "TargetError",
    "unknown_name_message",
]


EXIT_CODES: dict[str, int] = {"ok": 0, "usage": 2, "input": 3, "numerical": 4, "interrupted": 130}
"""Exit codes of the ``abscopal`` command by outcome (documented in ``abscopal --help``)."""


class AbscopalError(Exception):
    """Base class of every error raised on purpose by abscopal."""

    exit_code: int = EXIT_CODES["input"]
    """Exit code of the ``abscopal`` command when this error ends it."""


class ModelError(AbscopalError, ValueError):
    """A model specification is inconsistent (unknown symbol, duplicate name, ...)."""


class ParameterError(AbscopalError, ValueError):
    """A parameter name or value is invalid (unknown, NaN, outside its bounds)."""


class ScheduleError(AbscopalError, ValueError):
    """A treatment plan is invalid (negative dose, zero fractions, clashing times, ...)."""


class TargetError(AbscopalError, ValueError):
    """A trial-target file is invalid; the message names the file, the table/key and the value."""


class SolverError(AbscopalError, RuntimeError):
    """The ODE solver failed; the message names the arm, the patient and the time."""

    exit_code: int = EXIT_CODES["numerical"]


class AbscopalWarning(UserWarning):
    """Warnings issued by abscopal."""


class SterilisedLesionWarning(AbscopalWarning):
    """A prior RT course leaves a lesion smaller at time zero than its drawn size, whatever its start size
    (:mod:`abscopal.history`); the lesions are marked in the simulation's ``history_sterilised``."""


class StiffFallbackWarning(AbscopalWarning):
    """Some patients were too stiff for the explicit solver and were re-integrated with the compiled Rosenbrock
    solver (Rodas4): the results are valid; the patients are in the provenance's ``stiff_fallback_patients``."""


def unknown_name_message(kind: str, name: str, known: Iterable[str]) -> str:
    """Build an 'unknown name' message with the closest known names as a suggestion.

    Parameters
    ----------
    kind
        What the name refers to, e.g. ``"parameter"``.
    name
        The unknown name that was given.
    known
        The valid names.

    Returns
    -------
    str
        A message such as ``unknown parameter 'alpah'; did you mean 'alpha'?``.
    """
    known = sorted(set(known))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        hint = f"valid names are: {shown}"
    return f"unknown {kind} {name!r}; {hint}"
