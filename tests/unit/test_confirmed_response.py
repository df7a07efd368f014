"""Confirmed responses (``confirm_response`` in a target file): RECIST scoring and the smooth ORR surrogate.

Three hand-made patients, one 40 mm lung lesion each, scans every 9 weeks (days 0, 63, ..., 252):

* ``once``: -35% at day 63 only, then -25% (a 15% rise from the nadir: stable, not progression);
* ``held``: -40% at day 63, -45% after: a response still present at the next scan, 63 d >= 28 d later;
* ``new_lesion``: like ``held``, but a new lesion appears on day 100, before the confirmation scan (day 126).

RECIST 1.1 (Eisenhauer 2009): unconfirmed, all three responded (CR/PR on some scan before progression); with
confirmation only ``held`` did (``once`` is SD; ``new_lesion`` progressed at the confirmation scan).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

import abscopal.endpoints.outcomes as outcomes
from abscopal.endpoints.outcomes import OUTCOMES, ScoredArm
from abscopal.endpoints.scoring import score_responses
from abscopal.trials import AssessmentSpec

VISITS = np.array([0.0, 63.0, 126.0, 189.0, 252.0])
DIAMETERS = np.array(
    [
        [[40.0, 26.0, 30.0, 30.0, 30.0]],  # once
        [[40.0, 24.0, 22.0, 22.0, 22.0]],  # held
        [[40.0, 24.0, 22.0, 22.0, 22.0]],  # new_lesion
    ]
)
NEW_LESION_DAY = np.array([math.inf, math.inf, 100.0])


def _scored(confirm: bool) -> tuple[ScoredArm, np.ndarray]:
    """The arm scored with the assessment a target file with ``confirm_response = confirm`` builds."""
    assessment = AssessmentSpec(scan_interval_week=9, confirm_response=confirm).to_assessment(end_day=252.0)
    assert assessment.rules.require_confirmation is confirm
    r = score_responses(
        DIAMETERS,
        VISITS,
        [["lung"]] * 3,
        exclude=(),
        new_lesion_day=NEW_LESION_DAY,
        rules=assessment.rules,
        orr_visit_day=None,
        follow_up_day=252.0,
    )
    dims = ("arm", "patient", "visit")
    ds = xr.Dataset(
        {
            "response": (dims, r.responses[None].astype(str)),
            "percent_change": (dims, r.percent_change[None]),
            "best_percent_change": (("arm", "patient"), r.best_percent_change[None]),
            "new_lesion_day": (("arm", "patient"), NEW_LESION_DAY[None]),
            "orr": (("arm",), [float(np.mean(r.objective_response))]),
        },
        coords={"visit_day": ("visit", VISITS)},
    )
    return ScoredArm(endpoints=ds, assessment=assessment, start_day=0.0, t_end_day=252.0), r.objective_response


def test_a_response_seen_on_one_scan_counts_only_without_confirmation():
    _, unconfirmed = _scored(confirm=False)
    _, confirmed = _scored(confirm=True)
    assert unconfirmed.tolist() == [True, True, True]
    assert confirmed.tolist() == [False, True, False]


@pytest.mark.parametrize(("confirm", "hard"), [(False, 1.0), (True, 1.0 / 3.0)])
def test_smooth_orr_respects_confirmation(confirm, hard):
    """The smooth ORR follows the scoring: near the trial-style ORR at the default widths (the soft indicators of
    -35% and -25% at the -30% threshold, width 2 points, are 0.92 and 0.08), equal to it as the widths go to 0."""
    arm, responders = _scored(confirm)
    assert float(np.mean(responders)) == pytest.approx(hard)
    assert OUTCOMES["orr"].value(arm) == pytest.approx(hard)
    assert OUTCOMES["orr"].smooth(arm) == pytest.approx(hard, abs=0.06)


@pytest.mark.parametrize("confirm", [False, True])
def test_smooth_orr_equals_the_scored_orr_in_the_sharp_limit(confirm, monkeypatch):
    monkeypatch.setattr(outcomes, "ORR_WIDTH_PCT", 1e-3)
    monkeypatch.setattr(outcomes, "EVENT_WIDTH_DAY", 1e-3)
    arm, responders = _scored(confirm)
    assert OUTCOMES["orr"].smooth(arm) == pytest.approx(float(np.mean(responders)), abs=1e-9)
