"""Per-patient scoring from scans: RECIST 1.1 / iRECIST responses, progression and new lesions.

For one arm: the lesion diameters at the scan visits (visits must lie on the simulation's time grid), target
selection on the lesions the trial counts (irradiated lesions excluded when the assessment says so), the
day of each patient's first new lesion (the cumulative new-lesion hazard crossing the patient's Exp(1)
draw), and the RECIST (or iRECIST) assessment at every scan (:func:`~abscopal.endpoints.recist.assess`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError, ScheduleError
from .recist import (
    RESPONSE_CODES,
    RecistRules,
    _assess_population_loop,
    _lesion_array,
    assess_targets,
    events_seen_batch,
    select_targets,
    select_targets_batch,
    tagged,
    target_sums,
)

_RESPONDING = [RESPONSE_CODES.index(c) for c in ("CR", "PR")]
_CONTROLLED = [RESPONSE_CODES.index(c) for c in ("CR", "PR", "SD", "NN")]

__all__ = ["ResponseScores", "duration_of_response", "excluded_lesions", "score_responses", "visit_index"]


@dataclass(frozen=True, kw_only=True, eq=False)
class ResponseScores:
    """RECIST scores of one arm's patients: arrays over patients, and over scan visits where stated."""

    responses: np.ndarray  # (patient, visit) response code at each scan
    percent_change: np.ndarray  # (patient, visit) change of the target sum from baseline, %
    sum_of_diameters: np.ndarray  # (patient, visit) target sum, mm
    best_overall_response: np.ndarray  # (patient,) code
    best_percent_change: np.ndarray  # (patient,) %
    objective_response: np.ndarray  # (patient,) bool: CR or PR at the ORR visit (or best response)
    disease_control: np.ndarray  # (patient,) bool: best response CR, PR, SD (or non-CR/non-PD)
    progression_day: np.ndarray  # (patient,) RECIST progression within follow-up (inf: none)
    response_day: np.ndarray  # (patient,) first CR/PR scan of a best-response responder (NaN: none)


def visit_index(times: np.ndarray, visits: np.ndarray) -> np.ndarray:
    """Index of each scan day on the simulation's time grid (a ScheduleError if one is not on it)."""
    idx = np.searchsorted(times, visits)
    ok = (idx < times.size) & (np.abs(times[np.minimum(idx, times.size - 1)] - visits) < 1e-6)
    if not np.all(ok):
        bad = visits[~ok][0]
        raise ScheduleError(
            f"scan day {bad:g} is not on the simulation's time grid; simulate with output times that "
            "include every scan (e.g. output_interval_day=1 or output_times_day=scans)"
        )
    return idx


def excluded_lesions(irradiated: np.ndarray, exclude_irradiated: bool, arm: str) -> tuple[int, ...]:
    """Lesions not scored in an arm: the irradiated ones if the trial excludes them (an error if that is all)."""
    exclude = tuple(int(j) for j in np.flatnonzero(irradiated)) if exclude_irradiated else ()
    if len(exclude) == irradiated.size:
        raise ParameterError(
            f"arm {arm!r}: every lesion is irradiated and excluded; nothing is left to assess "
            "(set exclude_irradiated=False)"
        )
    return exclude


def score_responses(
    diameters_mm: np.ndarray,
    visits: np.ndarray,
    sites: Sequence[Sequence[str]],
    *,
    exclude: tuple[int, ...],
    new_lesion_day: np.ndarray,
    rules: RecistRules,
    orr_visit_day: float | None,
    follow_up_day: float,
) -> ResponseScores:
    """RECIST (or iRECIST) scores of one arm.

    ``diameters_mm`` is ``(patient, lesion, visit)`` at the scans ``visits``; ``sites`` one row of lesion
    sites per patient; ``exclude`` the lesions not scored; ``new_lesion_day`` each patient's first new
    lesion (inf: none). Progression after ``follow_up_day`` is not counted. The objective response is
    taken at the first scan on or after ``orr_visit_day`` (``None``: the best overall response).
    """
    n_pat = diameters_mm.shape[0]
    targets = select_targets_batch(diameters_mm[:, :, 0], sites, exclude=exclude, rules=rules)
    d = _lesion_array("diameters_mm", diameters_mm, 3)
    new = events_seen_batch(new_lesion_day, visits, n_pat)
    if new is None or visits.size < 2 or n_pat == 0:  # the per-patient path (and its error messages)
        sel = [select_targets(d[p, :, 0], sites[p], exclude=exclude, rules=rules) for p in range(n_pat)]
        r = _assess_population_loop(
            d, visits, sel, new_lesion_day=new_lesion_day, nontarget_progression_day=np.inf, rules=rules
        )
        codes = np.vectorize(lambda x: RESPONSE_CODES.index(str(x).lstrip("i")), otypes=[np.int64])
        r["codes"] = codes(r["responses"]).reshape(r["responses"].shape)
        r["bor_code"] = codes(r["best_overall_response"]).reshape(n_pat)
    else:
        r = assess_targets(d, visits, targets, new, np.zeros_like(new), rules)
        r |= tagged(r, rules)
    if orr_visit_day is None:
        orr = np.asarray(r["objective_response"], dtype=bool)
    else:
        k = int(np.searchsorted(visits, orr_visit_day - 1e-9))
        if k >= visits.size:
            raise ScheduleError(f"orr_visit_day {orr_visit_day} is after the last scan {visits[-1]}")
        orr = np.isin(r["codes"][:, k], _RESPONDING)
    control = np.isin(r["bor_code"], _CONTROLLED).reshape(n_pat)
    return ResponseScores(
        responses=r["responses"],
        percent_change=r["percent_change_from_baseline"],
        sum_of_diameters=r["sums_mm"],
        best_overall_response=r["best_overall_response"],
        best_percent_change=r["best_percent_change"],
        objective_response=orr.reshape(n_pat),
        disease_control=control,
        progression_day=np.where(r["progression_day"] <= follow_up_day, r["progression_day"], np.inf),
        response_day=np.where(r["objective_response"], r["response_day"], np.nan),
    )


def target_sum_of_diameters(
    diameters_mm: np.ndarray, sites: Sequence[Sequence[str]], *, exclude: tuple[int, ...], rules: RecistRules
) -> np.ndarray:
    """The ``sum_of_diameters`` of :func:`score_responses` with the lesions ``exclude`` left out of the target
    selection, without scoring responses: ``(patient, visit)``."""
    targets = select_targets_batch(diameters_mm[:, :, 0], sites, exclude=exclude, rules=rules)
    return target_sums(_lesion_array("diameters_mm", diameters_mm, 3), targets, rules)


def duration_of_response(scores: ResponseScores, death_day: np.ndarray, follow_up_day: float) -> np.ndarray:
    """First CR/PR scan to progression or death (NaN for non-responders; responders without an event are
    censored at the end of follow-up: the value runs to follow-up)."""
    return np.minimum(np.minimum(scores.progression_day, death_day), follow_up_day) - scores.response_day
