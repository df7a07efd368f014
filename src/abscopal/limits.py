"""Cost guards: refuse, before any work, a run that would take hours or exhaust memory.

Each limit can be lifted for one call with ``allow_large=True`` (library) or ``--allow-large`` (CLI
``abscopal simulate`` and ``abscopal study``). The limits are deliberately far above every shipped scenario and study:

================================  =============  ==============================================================
limit                             value          what it bounds
================================  =============  ==============================================================
:data:`MAX_PATIENTS`              1,000,000      virtual patients of one population (drawing them alone is O(n))
:data:`MAX_OUTPUT_BYTES`          2 GiB          ``simulate`` output: patients x arms x output times x
                                                 (states + observables) x 8 bytes
:data:`MAX_EVENTS_PER_ARM`        100,000        RT fractions plus drug doses of one arm's plan
:data:`MAX_STUDY_SIMULATIONS`     2,000,000      patient simulations of a study: cells x (draws + 1) x patients
================================  =============  ==============================================================

For scale: ``scenarios/pembro_sbrt.toml`` writes about 40 MB; ``studies/default.toml`` runs 42 cells x 21 x 200 =
176,400 patient simulations.
"""

from __future__ import annotations

from .errors import AbscopalError, ScheduleError

__all__ = ["MAX_EVENTS_PER_ARM", "MAX_OUTPUT_BYTES", "MAX_PATIENTS", "MAX_STUDY_SIMULATIONS", "check_cost"]

MAX_PATIENTS = 1_000_000
MAX_OUTPUT_BYTES = 2 * 1024**3
MAX_EVENTS_PER_ARM = 100_000
MAX_STUDY_SIMULATIONS = 2_000_000


def _human(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 1024**3:.3g} GiB"
    return f"{value:,.0f} {unit}"


def check_cost(
    what: str, estimate: float, limit: float, unit: str, allow_large: bool, error: type[AbscopalError] = ScheduleError
) -> None:
    """Raise ``error`` if ``estimate`` exceeds ``limit`` and ``allow_large`` is false.

    Parameters
    ----------
    what
        What is estimated and from what, e.g. ``"output of 2 arms x 100 patients x 10^6 times x 40 values"``.
    estimate, limit
        The estimated cost and its limit, in ``unit`` (``"bytes"`` is shown in GiB).
    allow_large
        The caller's override.
    error
        The error class to raise.
    """
    if estimate > limit and not allow_large:
        raise error(
            f"{what}: estimated {_human(estimate, unit)}, above the limit of {_human(limit, unit)} "
            "(abscopal.limits); reduce the size, or pass allow_large=True (CLI: --allow-large) if you mean it"
        )
