"""Tests of abscopal.endpoints.recist and abscopal.endpoints.scans (RECIST 1.1, iRECIST, scan schedules).

Expected values are hand-computed in the comments. Sums of diameters are exact decimal inputs, so
every response code is exact; float results are compared with the tolerance stated at each check.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from abscopal.endpoints.recist import (
    IRECIST,
    RECIST_1_1,
    RecistRules,
    TargetSelection,
    assess,
    assess_population,
    diameter_from_volume,
    select_targets,
)
from abscopal.endpoints.scans import ExplicitScans, ScanSchedule, as_visit_days, events_seen
from abscopal.errors import ParameterError, ScheduleError

Q6W = (0.0, 42.0, 84.0, 126.0, 168.0)  # baseline, then every 6 weeks
CONFIRMED = RecistRules(require_confirmation=True)


def one_lung(*sums_mm: float, rules: RecistRules = RECIST_1_1, days=None, **kwargs):
    """Assess one lung target lesion whose diameter is the target sum at each scan."""
    d = np.array([sums_mm], dtype=float)
    sel = select_targets(d[:, 0], ("lung",))
    return assess(d, Q6W[: d.shape[1]] if days is None else days, sel, rules=rules, **kwargs)


# --------------------------------------------------------------------------- scan schedules


def test_default_schedule_q6w_to_week_48_then_q9w_to_day_730():
    # weeks 0, 6, ..., 48 (54 > 52), then 57, 66, ..., 102 (102 wk = 714 d <= 730; 111 wk = 777 d > 730)
    expected_weeks = [*range(0, 49, 6), *range(57, 103, 9)]
    np.testing.assert_allclose(ScanSchedule().visit_days(), 7.0 * np.array(expected_weeks), rtol=0, atol=1e-9)
    assert ScanSchedule().describe() == "scans every 6 wk to week 52, then every 9 wk, days 0-730"


def test_schedule_switch_on_a_scan_and_inclusive_end_day():
    # q8w to week 48 (48 is a multiple of 8), then q12w: 60, 72 weeks; 72 wk = 504 d = end_day, kept
    days = ScanSchedule(interval_week=8, switch_week=48, later_interval_week=12, end_day=504.0).visit_days()
    np.testing.assert_allclose(days / 7.0, [0, 8, 16, 24, 32, 40, 48, 60, 72], rtol=0, atol=1e-9)
    shifted = ScanSchedule(baseline_day=-7.0, end_day=77.0).visit_days()  # -7, 35, 77
    np.testing.assert_allclose(shifted, [-7.0, 35.0, 77.0], rtol=0, atol=1e-9)


def test_explicit_scans_and_as_visit_days():
    scans = ExplicitScans(days=[0, 84])
    assert scans.days == (0.0, 84.0)
    assert scans.describe() == "scans on days 0, 84"
    np.testing.assert_array_equal(as_visit_days(scans), [0.0, 84.0])
    np.testing.assert_array_equal(as_visit_days([0, 42]), [0.0, 42.0])


def test_events_seen_at_or_after_their_day():
    # events on days 10, 42 (a scan day: seen that day) and 50; inf is "never"
    counts = events_seen([50.0, 10.0, 42.0, math.inf], np.array([0.0, 42.0, 84.0]))
    np.testing.assert_array_equal(counts, [0, 2, 3])
    with pytest.raises(ParameterError, match=r"event_day must be days after the baseline scan \(day 0\)"):
        events_seen(-1.0, np.array([0.0, 42.0]))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ExplicitScans(days=(0, 42, 42)), r"days\[2\] = 42.0 is not after days\[1\] = 42.0"),
        (lambda: ExplicitScans(days=()), "non-empty"),
        (lambda: as_visit_days([0, 42, 30]), r"visit_days\[2\] = 30.0 is not after visit_days\[1\] = 42.0"),
        (lambda: as_visit_days([0, math.nan]), r"visit_days\[1\] = nan"),
        (lambda: ScanSchedule(interval_week=0), "interval_week must be > 0, got 0.0"),
        (lambda: ScanSchedule(end_day=-1.0), "end_day must be >= baseline_day = 0.0, got -1.0"),
        (lambda: ScanSchedule(switch_week=-1), "switch_week must be >= 0"),
    ],
)
def test_bad_schedules_raise_schedule_error(make, match):
    with pytest.raises(ScheduleError, match=match):
        make()


def test_assess_rejects_visit_days_not_increasing():
    sel = select_targets([20.0], ("lung",))
    with pytest.raises(ScheduleError, match=r"visit_days\[2\] = 42.0 is not after visit_days\[1\] = 42.0"):
        assess([[20.0, 20.0, 20.0]], [0, 42, 42], sel)


# --------------------------------------------------------------------------- diameters


def test_diameter_from_volume_sphere_and_node_short_axis():
    # V = pi/6 * 10^3 mm3 is a 10 mm sphere; a node with short-axis ratio 0.8 measures 8 mm
    v = math.pi / 6.0 * 1000.0
    np.testing.assert_allclose(diameter_from_volume(v), 10.0, rtol=1e-12)
    got = diameter_from_volume([v, v], ("lung", "lymph_node"), node_short_axis_ratio=0.8)
    np.testing.assert_allclose(got, [10.0, 8.0], rtol=1e-12)
    # (patient, lesion, visit): the lesion axis is -2 by default
    got3 = diameter_from_volume(np.full((2, 2, 3), v), ("lymph_node", "liver"), node_short_axis_ratio=0.5)
    np.testing.assert_allclose(got3[:, 0, :], 5.0, rtol=1e-12)
    np.testing.assert_allclose(got3[:, 1, :], 10.0, rtol=1e-12)
    np.testing.assert_allclose(diameter_from_volume(0.0), 0.0, atol=0)


def test_diameter_from_volume_bad_input():
    with pytest.raises(ParameterError, match="volume_mm3 must be finite and >= 0"):
        diameter_from_volume([-1.0])
    with pytest.raises(ParameterError, match="sites has 1 entries"):
        diameter_from_volume([1.0, 2.0], ("lung",))
    with pytest.raises(ParameterError, match="node_short_axis_ratio must be > 0 and <= 1"):
        diameter_from_volume([1.0], ("lung",), node_short_axis_ratio=1.5)


# --------------------------------------------------------------------------- target selection


def test_targets_largest_first():
    sel = select_targets([12.0, 30.0, 20.0], ("lung", "liver", "adrenal"))
    assert sel.targets == (1, 2, 0)
    assert sel.nontargets == () and sel.excluded == () and sel.not_followed == ()


def test_at_most_two_targets_per_organ():
    # four lung lesions and one liver lesion: the two largest lung lesions and the liver lesion
    sel = select_targets([50.0, 40.0, 30.0, 20.0, 15.0], ("lung",) * 4 + ("liver",))
    assert sel.targets == (0, 1, 4)
    assert sel.nontargets == (2, 3)


def test_at_most_five_targets_and_trial_cap():
    sites = ("lung", "liver", "adrenal", "bone", "brain", "kidney", "skin")
    sizes = [70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 10.0]
    sel = select_targets(sizes, sites)
    assert sel.targets == (0, 1, 2, 3, 4) and sel.nontargets == (5, 6)
    assert select_targets(sizes, sites, max_targets=3).targets == (0, 1, 2)
    wider = dataclasses.replace(RECIST_1_1, max_targets=10)  # KEYNOTE-010-style modified rule
    assert len(select_targets(sizes, sites, rules=wider).targets) == 7


def test_irradiated_lesion_excluded_from_both_sets():
    sel = select_targets([40.0, 25.0, 8.0], ("lung", "liver", "liver"), exclude=[0])
    assert sel.targets == (1,) and sel.nontargets == (2,) and sel.excluded == (0,)


def test_measurability_boundaries():
    sizes = [10.0, 9.9, 15.0, 14.9, 10.0, 9.9, 0.5]
    sites = ("lung", "liver", "lymph_node", "lymph_node", "lymph_node", "lymph_node", "bone")
    sel = select_targets(sizes, sites)
    # lung 10 mm and node 15 mm short axis are measurable; liver 9.9 mm and nodes 10-14.9 mm are
    # non-target; a 9.9 mm node is normal and a 0.5 mm lesion (< gone_mm = 1) invisible: not followed
    assert sel.targets == (2, 0)
    assert sel.nontargets == (1, 3, 4)
    assert sel.not_followed == (5, 6)


def test_equal_sizes_lower_index_first():
    assert select_targets([20.0] * 3, ("lung", "lung", "lung")).targets == (0, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sites": ("lung", "lymph node")}, r"sites\[1\]: unknown lesion site 'lymph node'; did you mean 'lymph_node'"),
        ({"max_targets": 6}, "max_targets = 6 requested, more than rules.max_targets = 5"),
        ({"max_targets": 0}, "max_targets must be an integer >= 1, got 0"),
        ({"exclude": (5,)}, "exclude contains lesion index 5, out of range for 2 lesions; give indices 0 to 1"),
        ({"exclude": (-1,)}, "lesion index -1, out of range"),
        ({"sites": ("lung",)}, "sites has 1 entries but baseline_mm has 2"),
    ],
)
def test_select_targets_bad_input(kwargs, match):
    args = {"baseline_mm": [20.0, 12.0], "sites": ("lung", "liver")} | kwargs
    with pytest.raises(ParameterError, match=match):
        select_targets(**args)


def test_target_selection_groups_must_partition_the_lesions():
    with pytest.raises(ParameterError, match="every lesion 0 to 1 must be in exactly one group"):
        TargetSelection(sites=("lung", "liver"), baseline_mm=(20.0, 15.0), targets=(0,))  # lesion 1 missing
    with pytest.raises(ParameterError, match="every lesion 0 to 0 must be in exactly one group"):
        TargetSelection(sites=("lung",), baseline_mm=(20.0,), targets=(0,), excluded=(0,))  # lesion 0 twice
    with pytest.raises(ParameterError, match="nontargets contains lesion index 3, out of range for 1 lesions"):
        TargetSelection(sites=("lung",), baseline_mm=(20.0,), targets=(0,), nontargets=(3,))
    sel = TargetSelection(sites=("lung", "liver"), baseline_mm=(20.0, 15.0), targets=(0,), excluded=(1,))
    assert sel.describe() == "targets [0]; non-targets []; excluded [1]; not followed []"
    assert sel.is_node == (False, False)


# --------------------------------------------------------------------------- RECIST 1.1 thresholds


def test_exactly_minus_30_percent_is_pr_and_minus_29_9_is_sd():
    assert one_lung(100.0, 70.0).responses == ("BL", "PR")  # (70 - 100) / 100 = -30%
    assert one_lung(100.0, 70.1).responses == ("BL", "SD")  # -29.9%
    # two targets: 60 + 40 = 100 -> 42 + 28 = 70, again exactly -30%
    d = np.array([[60.0, 42.0], [40.0, 28.0]])
    res = assess(d, (0, 42), select_targets(d[:, 0], ("lung", "liver")))
    assert res.responses == ("BL", "PR")
    np.testing.assert_allclose(res.percent_change_from_baseline, [0.0, -30.0], rtol=0, atol=1e-9)


def test_pd_needs_20_percent_and_5_mm():
    # nadir 25 -> 30: +20% and +5 mm -> PD on day 42
    res = one_lung(25.0, 30.0)
    assert res.responses == ("BL", "PD") and res.progressed and res.progression_day == 42.0
    # nadir 24.5 -> 29.4: +20% but +4.9 mm -> SD
    assert one_lung(24.5, 29.4).responses == ("BL", "SD")
    # nadir 50.25 -> 60.25: +10 mm but +19.9% -> SD
    res = one_lung(50.25, 60.25)
    assert res.responses == ("BL", "SD") and not res.progressed and res.progression_day == math.inf
    np.testing.assert_allclose(res.percent_change_from_baseline[1], 19.900497512437813, rtol=1e-12)


def test_nadir_not_baseline_is_the_pd_reference():
    # 100 -> 50 (PR, -50%) -> 60: 40% below baseline but +20% and +10 mm over the nadir 50 -> PD
    res = one_lung(100.0, 50.0, 60.0, 40.0)
    assert res.responses == ("BL", "PR", "PD", "NA")
    np.testing.assert_allclose(res.nadir_mm[:3], [100.0, 100.0, 50.0], rtol=0, atol=0)
    assert res.progression_day == 84.0 and res.best_overall_response == "PR" and res.response_day == 42.0
    np.testing.assert_allclose(res.best_percent_change, -50.0, rtol=0, atol=1e-9)


def test_new_lesion_while_shrinking_is_pd():
    res = one_lung(100.0, 60.0, new_lesion_day=30.0)  # appears day 30, seen at the day-42 scan
    assert res.responses == ("BL", "PD") and res.progression_day == 42.0
    res = one_lung(100.0, 60.0, 50.0, new_lesion_day=50.0)  # appears day 50, seen on day 84
    assert res.responses == ("BL", "PR", "PD") and res.progression_day == 84.0
    assert res.best_overall_response == "PR"


def test_unequivocal_nontarget_progression_is_pd():
    res = one_lung(100.0, 90.0, 80.0, nontarget_progression_day=84.0)  # on a scan day: seen that day
    assert res.responses == ("BL", "SD", "PD") and res.progression_day == 84.0


def test_cr_with_nodes_below_10_mm_short_axis():
    # targets: lung 20 mm and node 16 mm short axis. Lung 0.5 mm (< gone_mm = 1 mm, i.e. 0) with the
    # node at 9.9 mm (normal) is CR; with the node at 10 mm it is not (sum 10 vs 36 = -72%: PR).
    sel = select_targets([20.0, 16.0], ("lung", "lymph_node"))
    assert sel.targets == (0, 1)
    assert assess([[20.0, 0.5], [16.0, 9.9]], (0, 42), sel).responses == ("BL", "CR")
    res = assess([[20.0, 0.0], [16.0, 10.0]], (0, 42), sel)
    assert res.responses == ("BL", "PR")
    np.testing.assert_allclose(res.sums_mm, [36.0, 10.0], rtol=0, atol=0)


def test_target_cr_with_nontarget_present_is_pr():
    # RECIST 1.1 table 4: target CR + non-target non-CR/non-PD = PR
    sel = select_targets([20.0, 8.0], ("lung", "liver"))
    assert sel.nontargets == (1,)
    assert assess([[20.0, 0.0], [8.0, 8.0]], (0, 42), sel).responses == ("BL", "PR")
    assert assess([[20.0, 0.0], [8.0, 0.0]], (0, 42), sel).responses == ("BL", "CR")


def test_excluded_lesion_does_not_count():
    # the irradiated lesion 0 grows, the scored lesion 1 shrinks by 40%: PR (best out-of-field response)
    sel = select_targets([30.0, 20.0], ("lung", "liver"), exclude=(0,))
    res = assess([[30.0, 60.0], [20.0, 12.0]], (0, 42), sel)
    assert res.responses == ("BL", "PR")


def test_no_target_lesions_scores_non_cr_non_pd():
    sel = select_targets([8.0], ("liver",))  # non-measurable only
    res = assess([[8.0, 8.0, 0.0]], (0, 42, 84), sel)
    assert res.responses == ("BL", "NN", "CR") and res.best_overall_response == "CR"
    assert math.isnan(res.best_percent_change)


def test_best_overall_response_and_sd_minimum_duration():
    res = one_lung(100.0, 95.0, 130.0)  # SD, then +36.8% and +35 mm over the nadir 95: PD
    assert res.responses == ("BL", "SD", "PD") and res.best_overall_response == "SD"
    late_sd = dataclasses.replace(RECIST_1_1, sd_min_day=49.0)  # SD on day 42 is too early
    assert one_lung(100.0, 95.0, 130.0, rules=late_sd).best_overall_response == "PD"
    assert one_lung(100.0, 95.0, rules=late_sd).best_overall_response == "NE"
    assert one_lung(100.0).best_overall_response == "NE"  # baseline only


# --------------------------------------------------------------------------- confirmation of CR/PR


def test_pr_confirmed_at_week_12():
    res = one_lung(100.0, 60.0, 60.0, rules=CONFIRMED)  # PR day 42, PR day 84 (42 d >= 28 d later)
    assert res.best_overall_response == "PR" and res.response_day == 42.0 and res.objective_response


def test_pr_unconfirmed_when_next_scan_is_sd():
    # 71: -29% from baseline (not PR), +18.3% over the nadir 60 (not PD): SD
    res = one_lung(100.0, 60.0, 71.0, rules=CONFIRMED)
    assert res.responses == ("BL", "PR", "SD")
    assert res.best_overall_response == "SD" and res.response_day == math.inf and not res.objective_response
    assert one_lung(100.0, 60.0, 71.0).best_overall_response == "PR"  # without confirmation


def test_confirmation_interval_shorter_than_28_days_does_not_confirm():
    res = one_lung(100.0, 60.0, 60.0, rules=CONFIRMED, days=(0, 42, 63))  # 21 d < 28 d
    assert res.best_overall_response == "SD"
    # a further PR on day 84 (42 d after day 42, PR in between) confirms the day-42 PR
    res = one_lung(100.0, 60.0, 60.0, 60.0, rules=CONFIRMED, days=(0, 42, 63, 84))
    assert res.best_overall_response == "PR" and res.response_day == 42.0


def test_cr_confirmation():
    assert one_lung(20.0, 0.0, 0.0, rules=CONFIRMED).best_overall_response == "CR"
    assert one_lung(20.0, 0.0, 4.0, rules=CONFIRMED).best_overall_response == "PR"  # CR then PR (-80%)
    assert one_lung(20.0, 0.0, rules=CONFIRMED).best_overall_response == "SD"  # no later scan


# --------------------------------------------------------------------------- iRECIST


def test_irecist_iupd_confirmed_by_5_mm_further_growth():
    # 125 = +25% and +25 mm over the nadir 100: iUPD on day 42; 130 - 125 = +5 mm on day 84 (42 d): iCPD
    res = one_lung(100.0, 125.0, 130.0, 50.0, rules=IRECIST)
    assert res.responses == ("BL", "iUPD", "iCPD", "NA")
    assert res.progressed and res.best_overall_response == "iCPD"
    assert res.progression_day == 42.0 and res.progression_confirmed_day == 84.0  # PFS event at the iUPD
    assert res.notes == ()


def test_irecist_4_9_mm_further_growth_does_not_confirm():
    res = one_lung(100.0, 125.0, 129.9, rules=IRECIST)
    assert res.responses == ("BL", "iUPD", "iUPD")
    assert not res.progressed and res.progression_day == math.inf
    assert res.unconfirmed_progression_day == 42.0 and res.best_overall_response == "iUPD"


def test_irecist_reset_after_pseudoprogression():
    # iUPD on day 42; day 84: 90 is no longer PD over the nadir 100: reset to iSD (-10%); day 126: -40%: iPR
    res = one_lung(100.0, 125.0, 90.0, 60.0, rules=IRECIST)
    assert res.responses == ("BL", "iUPD", "iSD", "iPR")
    assert not res.progressed and res.best_overall_response == "iPR" and res.response_day == 126.0
    assert res.unconfirmed_progression_day == math.inf
    # RECIST 1.1 stops at the first PD
    recist = one_lung(100.0, 125.0, 90.0, 60.0)
    assert recist.responses == ("BL", "PD", "NA", "NA") and recist.best_overall_response == "PD"


def test_irecist_new_progression_after_reset_needs_pd_over_nadir():
    # after the reset the nadir is still the running minimum (60 on day 84); 72 = +20% and +12 mm: iUPD again
    res = one_lung(100.0, 125.0, 60.0, 72.0, 80.0, rules=IRECIST)
    assert res.responses == ("BL", "iUPD", "iPR", "iUPD", "iCPD")  # 80 - 72 = +8 mm on day 168 (42 d later)
    assert res.progression_day == 126.0 and res.progression_confirmed_day == 168.0
    assert res.best_overall_response == "iPR"


def test_irecist_new_lesion_then_shrinkage_resets_scenario_b():
    # new lesion seen day 42 (iUPD, sum 80); day 84: sum 60 is >= 5 mm below 80: reset, -40% from baseline: iPR
    res = one_lung(100.0, 80.0, 60.0, rules=IRECIST, new_lesion_day=30.0)
    assert res.responses == ("BL", "iUPD", "iPR") and not res.progressed


def test_irecist_new_lesion_without_change_stays_iupd_scenario_f():
    # iPR day 42; new lesion seen day 84 (iUPD); no change on day 126: remains iUPD
    res = one_lung(100.0, 60.0, 60.0, 60.0, rules=IRECIST, new_lesion_day=60.0)
    assert res.responses == ("BL", "iPR", "iUPD", "iUPD") and res.best_overall_response == "iPR"
    # an additional new lesion (day 100, seen day 126) confirms: iCPD, progression on the iUPD day 84
    res = one_lung(100.0, 60.0, 60.0, 60.0, rules=IRECIST, new_lesion_day=[60.0, 100.0])
    assert res.responses == ("BL", "iPR", "iUPD", "iCPD") and res.progression_day == 84.0


def test_irecist_confirmation_by_a_new_category():
    # target-driven iUPD (day 42) confirmed by a new lesion (day 60, seen day 84), targets +1 mm only
    res = one_lung(100.0, 125.0, 126.0, rules=IRECIST, new_lesion_day=60.0)
    assert res.responses == ("BL", "iUPD", "iCPD")


def test_irecist_scan_less_than_4_weeks_after_iupd_is_disregarded():
    # day 56 is 14 d after the iUPD: +10 mm there does not confirm; day 84: +1 mm over the iUPD, still iUPD
    res = one_lung(100.0, 125.0, 135.0, 126.0, rules=IRECIST, days=(0, 42, 56, 84))
    assert res.responses == ("BL", "iUPD", "iUPD", "iUPD") and not res.progressed


def test_irecist_note_when_no_scan_in_the_4_to_8_week_window():
    res = one_lung(100.0, 125.0, 131.0, rules=IRECIST, days=(0, 42, 105))  # 63 d after the iUPD
    assert res.responses == ("BL", "iUPD", "iCPD")
    assert len(res.notes) == 1 and "beyond the 28-56 d window" in res.notes[0]


# --------------------------------------------------------------------------- assess: bad input


def test_assess_bad_input():
    sel = select_targets([20.0], ("lung",))
    with pytest.raises(ParameterError, match=r"diameters_mm must have shape \(n_lesions, n_visits\) = \(1, 3\)"):
        assess([[20.0, 20.0], [1.0, 1.0]], (0, 42, 84), sel)
    with pytest.raises(ParameterError, match="diameters_mm must be 2-D"):
        assess([20.0, 20.0], (0, 42), sel)
    with pytest.raises(ParameterError, match=r"diameters_mm must be finite and >= 0, got -1.0 at \(0, 1\)"):
        assess([[20.0, -1.0]], (0, 42), sel)
    with pytest.raises(ParameterError, match=r"new_lesion_day must be days after the baseline scan \(day 0\)"):
        assess([[20.0, 20.0]], (0, 42), sel, new_lesion_day=0.0)


def test_rules_validation_and_description():
    with pytest.raises(ParameterError, match=r"pr_fraction must be > 0 and <= 1, got 1\.5"):
        RecistRules(pr_fraction=1.5)
    with pytest.raises(ParameterError, match="max_targets_per_organ must be an integer >= 1, got 0"):
        RecistRules(max_targets_per_organ=0)
    with pytest.raises(ParameterError, match=r"irecist_window_day\[1\] must be >= 56"):
        RecistRules(irecist_window_day=(56.0, 28.0))
    assert RECIST_1_1.describe() == "RECIST 1.1 (PR -30%, PD +20% and +5 mm)"
    assert "require_confirmation=True" in CONFIRMED.describe()
    assert len(IRECIST.citations) == 2 and "Eur J Cancer 2009;45:228-247" in IRECIST.citations[0]


# --------------------------------------------------------------------------- population


def test_assess_population_matches_per_patient_assessment():
    # p0: PR, PR; p1: SD, PD on day 84 (+30%, +30 mm); p2: shrinking but a new lesion by day 42: PD
    d = np.array([[[100.0, 60.0, 60.0]], [[100.0, 100.0, 130.0]], [[100.0, 90.0, 80.0]]])
    sel = select_targets([100.0], ("lung",))
    out = assess_population(d, ScanSchedule(end_day=84.0), sel, new_lesion_day=[math.inf, math.inf, 10.0])
    assert out["best_overall_response"].tolist() == ["PR", "SD", "PD"]
    assert out["objective_response"].tolist() == [True, False, False]
    assert out["progressed"].tolist() == [False, True, True]
    np.testing.assert_array_equal(out["progression_day"], [math.inf, 84.0, 42.0])
    np.testing.assert_allclose(out["best_percent_change"], [-40.0, 0.0, -10.0], rtol=0, atol=1e-9)
    assert out["responses"].shape == (3, 3) and out["responses"][1].tolist() == ["BL", "SD", "PD"]
    for p in range(3):
        one = assess(d[p], (0, 42, 84), sel, new_lesion_day=[math.inf, math.inf, 10.0][p])
        np.testing.assert_allclose(out["sums_mm"][p], one.sums_mm, rtol=0, atol=0)


def test_assess_population_per_patient_selections_and_event_rows():
    d = np.array([[[30.0, 15.0], [20.0, 10.0]], [[30.0, 60.0], [20.0, 10.0]]])
    sites = ("lung", "liver")
    sels = [select_targets([30.0, 20.0], sites), select_targets([30.0, 20.0], sites, exclude=(0,))]
    out = assess_population(d, (0, 42), sels, nontarget_progression_day=[[math.inf, math.inf], [math.inf, 99.0]])
    # p0: 50 -> 25 (-50%): PR; p1: only lesion 1 scored, 20 -> 10 (-50%): PR despite the irradiated lesion
    assert out["best_overall_response"].tolist() == ["PR", "PR"]


def test_assess_population_bad_input():
    d = np.full((2, 1, 2), 20.0)
    sel = select_targets([20.0], ("lung",))
    with pytest.raises(ParameterError, match=r"new_lesion_day must have shape \(\), \(2,\) or \(2, k\)"):
        assess_population(d, (0, 42), sel, new_lesion_day=[50.0, 50.0, 50.0])
    with pytest.raises(ParameterError, match="selections has 1 entries for 2 patients"):
        assess_population(d, (0, 42), [sel])
    with pytest.raises(ParameterError, match=r"patient 1: new_lesion_day must be days after the baseline"):
        assess_population(d, (0, 42), sel, new_lesion_day=[50.0, -3.0])
    with pytest.raises(ParameterError, match="diameters_mm must be 3-D"):
        assess_population(d[0], (0, 42), sel)
