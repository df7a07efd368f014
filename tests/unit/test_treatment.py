"""Tests of abscopal.treatment: calendars, courses, drug regimens, plans, named regimens."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from abscopal.errors import ParameterError, ScheduleError
from abscopal.treatment import (
    DRUG_PK,
    DRUG_REGIMENS,
    RADIATION_REGIMENS,
    Daily,
    DrugDose,
    DrugPK,
    DrugRegimen,
    DrugRegimenSpec,
    EveryOtherDay,
    ExplicitDays,
    Fraction,
    RadiationCourse,
    RadiationRegimenSpec,
    SpacedPulses,
    TreatmentPlan,
    WeekdayDaily,
    Weekly,
    drug_regimen,
    radiation_regimen,
    regimen_table,
)

# --------------------------------------------------------------------------- calendars


def test_weekday_daily_skips_weekends():
    np.testing.assert_array_equal(WeekdayDaily().days(5, 0.0), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(WeekdayDaily().days(6, 0.0), [0, 1, 2, 3, 4, 7])
    np.testing.assert_array_equal(WeekdayDaily().days(11, 0.0), [0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 14])
    # starting on a Thursday (3): Thu, Fri, Mon, Tue
    np.testing.assert_array_equal(WeekdayDaily(start_weekday=3).days(4, -10.0), [-10, -9, -6, -5])


def test_weekday_daily_rejects_weekend_start():
    with pytest.raises(
        ScheduleError,
        match=r"start_weekday must be an integer 0 \(Monday\) to 4 \(Friday\), got 5",
    ):
        WeekdayDaily(start_weekday=5)


def test_simple_calendars():
    np.testing.assert_array_equal(EveryOtherDay().days(3, 1.0), [1, 3, 5])
    np.testing.assert_array_equal(Daily().days(4, 0.0), [0, 1, 2, 3])
    np.testing.assert_array_equal(Weekly().days(3, -14.0), [-14, -7, 0])
    np.testing.assert_array_equal(SpacedPulses().days(3, 0.0), [0, 10, 20])
    np.testing.assert_array_equal(SpacedPulses(interval_day=9.5).days(2, 1.0), [1.0, 10.5])
    assert WeekdayDaily().days(3, 0.0).dtype == np.float64


def test_explicit_days():
    calendar = ExplicitDays(offsets_day=(0, 2, 7))
    np.testing.assert_array_equal(calendar.days(3, -7.0), [-7.0, -5.0, 0.0])
    assert calendar.offsets_day == (0.0, 2.0, 7.0)
    with pytest.raises(ScheduleError, match=r"n_fractions must equal len\(offsets_day\) = 3, got 4"):
        calendar.days(4, 0.0)
    with pytest.raises(
        ScheduleError,
        match=r"offsets_day must be strictly increasing, got \(0\.0, 2\.0, 2\.0\)",
    ):
        ExplicitDays(offsets_day=(0, 2, 2))
    with pytest.raises(ScheduleError, match=r"offsets_day must not be empty"):
        ExplicitDays(offsets_day=())


def test_spaced_pulses_rejects_non_positive_interval():
    with pytest.raises(ScheduleError, match=r"interval_day must be > 0, got 0\.0"):
        SpacedPulses(interval_day=0.0)


# --------------------------------------------------------------------------- radiation courses


def test_course_properties_and_fractions():
    course = RadiationCourse(
        dose_per_fraction_gy=8.0,
        n_fractions=3,
        calendar=EveryOtherDay(),
        start_day=-10.0,
        target_lesions=(1, 2),
        mean_lung_dose_gy=6.0,
    )
    assert course.total_dose_gy == 24.0  # exact: 8 x 3
    np.testing.assert_array_equal(course.fraction_days, [-10.0, -8.0, -6.0])
    assert course.bed_gy(10.0) == pytest.approx(43.2, abs=1e-9)
    assert course.eqd2_gy(3.0) == pytest.approx(52.8, abs=1e-9)
    fractions = course.fractions()
    assert [f.time_day for f in fractions] == [-10.0, -8.0, -6.0]
    assert all(f.lesions == (1, 2) and f.dose_gy == 8.0 for f in fractions)
    # MLD is the course total: 6 Gy over 3 fractions (tolerance: float rounding)
    assert [f.mean_lung_dose_gy for f in fractions] == pytest.approx([2.0, 2.0, 2.0], abs=1e-12)
    # derived blood dose: 0.1 x fraction dose (documented assumption)
    assert [f.blood_dose_gy for f in fractions] == pytest.approx([0.8, 0.8, 0.8], abs=1e-12)


def test_course_explicit_blood_dose_and_no_lung_dose():
    course = RadiationCourse(dose_per_fraction_gy=3.0, n_fractions=2, blood_dose_per_fraction_gy=0.5)
    assert [f.blood_dose_gy for f in course.fractions()] == [0.5, 0.5]  # exact copy
    assert [f.mean_lung_dose_gy for f in course.fractions()] == [
        0.0,
        0.0,
    ]  # exact: none given
    # default calendar is weekdays from a Monday
    np.testing.assert_array_equal(
        RadiationCourse(dose_per_fraction_gy=2.0, n_fractions=6).fraction_days,
        [0, 1, 2, 3, 4, 7],
    )


def test_shifted_returns_a_new_course():
    course = RadiationCourse(dose_per_fraction_gy=8.0, n_fractions=3, calendar=EveryOtherDay())
    moved = course.shifted(-7.0)
    assert moved is not course
    assert course.start_day == 0.0  # unchanged (exact)
    np.testing.assert_array_equal(moved.fraction_days, [-7.0, -5.0, -3.0])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"dose_per_fraction_gy": -2.0},
            r"dose_per_fraction_gy must be > 0, got -2\.0; give a positive dose",
        ),
        ({"dose_per_fraction_gy": 0.0}, r"dose_per_fraction_gy must be > 0, got 0\.0"),
        (
            {"dose_per_fraction_gy": math.inf},
            r"dose_per_fraction_gy must be a finite number, got inf",
        ),
        (
            {"n_fractions": 0},
            r"n_fractions must be an integer >= 1, got 0; give a whole number",
        ),
        ({"n_fractions": 2.5}, r"n_fractions must be an integer >= 1, got 2\.5"),
        ({"n_fractions": True}, r"n_fractions must be an integer >= 1, got True"),
        (
            {"target_lesions": ()},
            r"target_lesions must name a lesion, got \(\)",
        ),
        (
            {"target_lesions": (0, -1)},
            r"target_lesions must hold integers >= 0, got -1 in \(0, -1\)",
        ),
        (
            {"target_lesions": (1, 1)},
            r"target_lesions must not repeat a lesion, got \(1, 1\)",
        ),
        (
            {"blood_dose_per_fraction_gy": -0.1},
            r"blood_dose_per_fraction_gy must be >= 0, got -0\.1",
        ),
        ({"mean_lung_dose_gy": -3.0}, r"mean_lung_dose_gy must be >= 0, got -3\.0"),
        (
            {"calendar": ExplicitDays(offsets_day=(0, 1))},
            r"n_fractions must equal len\(offsets_day\) = 2, got 3",
        ),
        (
            {"calendar": "weekdays"},
            r"calendar must be a fraction calendar, got 'weekdays'",
        ),
    ],
)
def test_course_validation(kwargs, pattern):
    base = {"dose_per_fraction_gy": 8.0, "n_fractions": 3}
    with pytest.raises(ScheduleError, match=pattern):
        RadiationCourse(**(base | kwargs))


def test_fraction_validation():
    with pytest.raises(ScheduleError, match=r"dose_gy must be >= 0, got -1\.0"):
        Fraction(time_day=0.0, dose_gy=-1.0, lesions=(0,), blood_dose_gy=0.0)
    assert Fraction(time_day=1, dose_gy=2, lesions=[3], blood_dose_gy=0).lesions == (3,)


def test_dataclasses_are_frozen_and_keyword_only():
    course = RadiationCourse(dose_per_fraction_gy=8.0, n_fractions=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        course.n_fractions = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        RadiationCourse(8.0, 3)  # type: ignore[misc]


# --------------------------------------------------------------------------- drugs

SECTION_5_PARAMETER_NAMES = {
    "pk_cl_l_per_day",
    "pk_vc_l",
    "pk_q_l_per_day",
    "pk_vp_l",
    "pk_cl_time_emax",
    "pk_cl_time_t50_day",
    "pk_cl_time_hill",
    "ro_ec50_ug_per_ml",
}


def test_drug_pk_table_values_from_the_cited_poppk_models():
    assert set(DRUG_PK) == {
        "pembrolizumab",
        "nivolumab",
        "durvalumab",
        "atezolizumab",
        "sintilimab",
    }
    pembro = DRUG_PK["pembrolizumab"].as_parameters()
    # constant clearance: the time-course shape parameters are left to the model
    assert set(pembro) == SECTION_5_PARAMETER_NAMES - {"pk_cl_time_t50_day", "pk_cl_time_hill"}
    assert set(DRUG_PK["nivolumab"].as_parameters()) == SECTION_5_PARAMETER_NAMES
    assert pembro["pk_cl_l_per_day"] == 0.22 and pembro["pk_vc_l"] == 3.48  # exact copies of Ahamadi 2017
    assert pembro["pk_cl_time_emax"] == 0.0
    nivo = DRUG_PK["nivolumab"]
    assert nivo.cl_l_per_day == pytest.approx(0.226, abs=5e-4)  # 9.4 mL/h = 0.2256 L/d, reported as 0.226
    assert nivo.cl_time_t50_day == pytest.approx(58.75, abs=1e-12)  # 1410 h
    assert (nivo.cl_time_emax, nivo.cl_time_hill) == (-0.295, 3.15)
    assert DRUG_PK["atezolizumab"].vp_l == pytest.approx(3.63, abs=1e-12)  # Vss 6.91 - Vc 3.28
    assert DRUG_PK["durvalumab"].target == "PD-L1"
    assert all(pk.source for pk in DRUG_PK.values())
    assert DRUG_PK["sintilimab"].assumptions  # flagged as class-typical
    assert DRUG_PK["pembrolizumab"].ec50_ug_per_ml == pytest.approx(0.0043, abs=1e-4)  # Kd 29 pM


@pytest.mark.parametrize(
    ("drug", "time_day", "half_life_day"),
    [
        ("pembrolizumab", 0.0, 25.8),  # derived [D] t1/2 beta (Ahamadi 2017 values)
        ("nivolumab", 0.0, 20.9),  # derived [D], baseline CL (Bajaj 2017 values)
        ("nivolumab", 1e5, 27.6),  # derived [D], steady-state CL
        ("durvalumab", 0.0, 13.9),  # derived [D], baseline CL (Abegesah 2025 values)
    ],
)
def test_terminal_half_lives_match_the_derived_values(drug, time_day, half_life_day):
    # the derived values are rounded to 0.1 d: tolerance half a unit
    assert DRUG_PK[drug].terminal_half_life_day(time_day) == pytest.approx(half_life_day, abs=0.05 + 1e-9)


def test_time_varying_clearance():
    nivo = DRUG_PK["nivolumab"]
    cl = nivo.clearance_l_per_day([0.0, 58.75, 1e6])
    # CL0, CL0 exp(Emax/2) at T50, CL0 exp(Emax) at t -> inf (tolerances: float rounding)
    np.testing.assert_allclose(
        cl[:2],
        [nivo.cl_l_per_day, nivo.cl_l_per_day * math.exp(-0.295 / 2)],
        rtol=1e-12,
    )
    assert cl[2] == pytest.approx(nivo.cl_l_per_day * math.exp(-0.295), rel=1e-6)
    with pytest.raises(ScheduleError, match=r"time_day must be finite and >= 0.*got -1\.0"):
        nivo.clearance_l_per_day(-1.0)


def test_drug_pk_validation():
    base = {
        "name": "x",
        "target": "PD-1",
        "cl_l_per_day": 0.2,
        "vc_l": 3.0,
        "q_l_per_day": 0.7,
        "vp_l": 3.0,
    }
    with pytest.raises(ParameterError, match=r"vc_l must be > 0, got -3\.0"):
        DrugPK(**(base | {"vc_l": -3.0}), source="test")
    with pytest.raises(ParameterError, match=r"target must be 'PD-1' or 'PD-L1', got 'CTLA-4'"):
        DrugPK(**(base | {"target": "CTLA-4"}), source="test")
    with pytest.raises(ParameterError, match=r"source must be a non-empty citation, got ''"):
        DrugPK(**base, source="")


def test_drug_regimen_dose_times_and_max_duration():
    regimen = DrugRegimen(drug="pembrolizumab", dose_mg=200.0, interval_day=21.0)
    doses = regimen.doses()
    # 730 d of q3w: k * 21 < 730 -> k = 0..34 (35 doses), last on day 714
    assert len(doses) == 35
    assert doses[0].time_day == 0.0 and doses[-1].time_day == 714.0  # exact multiples of 21
    assert all(d.dose_mg == 200.0 and d.dose_mg_per_kg == 0.0 and d.drug == "pembrolizumab" for d in doses)
    # until_day is inclusive
    assert [d.time_day for d in regimen.doses(42.0)] == [0.0, 21.0, 42.0]
    assert regimen.doses(-1.0) == ()
    # max duration is exclusive: 42 d of q3w -> days 0 and 21 only
    short = DrugRegimen(drug="pembrolizumab", dose_mg=200.0, interval_day=21.0, max_duration_day=42.0)
    assert [d.time_day for d in short.doses()] == [0.0, 21.0]
    # n_doses caps the count; start_day shifts the grid
    capped = DrugRegimen(drug="pembrolizumab", dose_mg=200.0, interval_day=21.0, n_doses=2, start_day=5.0)
    assert [d.time_day for d in capped.doses()] == [5.0, 26.0]
    assert regimen.pk is DRUG_PK["pembrolizumab"]


def test_weight_based_dose():
    regimen = drug_regimen("nivolumab_3mgkg_q2w")
    first = regimen.doses(0.0)[0]
    assert (first.dose_mg, first.dose_mg_per_kg) == (0.0, 3.0)
    assert first.amount_mg(80.0) == pytest.approx(240.0, abs=1e-12)
    flat = drug_regimen("nivolumab_240mg_q2w").doses(0.0)[0]
    assert flat.amount_mg(55.0) == 240.0  # flat dose ignores weight (exact)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"drug": "pembrolizumb"},
            r"unknown drug 'pembrolizumb'; did you mean 'pembrolizumab'",
        ),
        (
            {"dose_mg_per_kg": 2.0},
            r"give exactly one of dose_mg and dose_mg_per_kg, got dose_mg=200\.0",
        ),
        (
            {"dose_mg": None},
            r"give exactly one of dose_mg and dose_mg_per_kg, got dose_mg=None, dose_mg_per_kg=None",
        ),
        ({"dose_mg": -200.0}, r"dose_mg must be > 0, got -200\.0"),
        ({"interval_day": 0.0}, r"interval_day must be > 0, got 0\.0"),
        ({"max_duration_day": -1.0}, r"max_duration_day must be > 0, got -1\.0"),
        ({"n_doses": 0}, r"n_doses must be an integer >= 1 or None, got 0"),
    ],
)
def test_drug_regimen_validation(kwargs, pattern):
    base = {"drug": "pembrolizumab", "dose_mg": 200.0, "interval_day": 21.0}
    with pytest.raises(ScheduleError, match=pattern):
        DrugRegimen(**(base | kwargs))


def test_drug_dose_validation():
    with pytest.raises(ScheduleError, match=r"exactly one of dose_mg and dose_mg_per_kg must be > 0"):
        DrugDose(time_day=0.0, dose_mg=200.0, dose_mg_per_kg=2.0, drug="pembrolizumab")


# --------------------------------------------------------------------------- plans


def _sbrt(**kwargs):
    return RadiationCourse(dose_per_fraction_gy=8.0, n_fractions=3, calendar=EveryOtherDay(), **kwargs)


def test_plan_same_time_same_lesion_clash_names_both_courses_and_time():
    first = _sbrt(name="lung SBRT", target_lesions=(0, 1))
    second = _sbrt(name="boost", start_day=2.0, target_lesions=(1,))
    with pytest.raises(
        ScheduleError,
        match=r"radiation courses radiation\[0\] \(lung SBRT\) and radiation\[1\] \(boost\) both irradiate "
        r"lesion\(s\) \[1\] at day 2; shift one course",
    ):
        TreatmentPlan(radiation=(first, second))


def test_plan_allows_same_day_on_different_lesions():
    plan = TreatmentPlan(radiation=(_sbrt(target_lesions=(0,)), _sbrt(target_lesions=(1,))))
    fractions = plan.fractions()
    assert [f.time_day for f in fractions] == [0.0, 0.0, 2.0, 2.0, 4.0, 4.0]
    assert [f.lesions for f in fractions[:2]] == [(0,), (1,)]  # ties keep course order


def test_plan_rejects_wrong_types():
    with pytest.raises(ScheduleError, match=r"radiation\[0\] must be a RadiationCourse, got 'sbrt'"):
        TreatmentPlan(radiation=("sbrt",))
    with pytest.raises(ScheduleError, match=r"drug must be a DrugRegimen or None, got 'pembro'"):
        TreatmentPlan(drug="pembro")


def test_plan_parameter_overrides_and_doses():
    plan = TreatmentPlan(
        radiation=radiation_regimen("sbrt_24gy_3fx"),
        drug=drug_regimen("pembrolizumab_200mg_q3w"),
    )
    assert plan.radiation == (radiation_regimen("sbrt_24gy_3fx"),)  # single course wrapped in a tuple
    assert plan.parameter_overrides() == DRUG_PK["pembrolizumab"].as_parameters()
    assert [d.time_day for d in plan.drug_doses(21.0)] == [0.0, 21.0]
    rt_only = TreatmentPlan(radiation=(radiation_regimen("conv_30gy_10fx"),))
    assert rt_only.parameter_overrides() == {} and rt_only.drug_doses(100.0) == ()


def test_with_rt_offset():
    plan = TreatmentPlan(
        radiation=(
            _sbrt(start_day=3.0, target_lesions=(0,)),
            _sbrt(start_day=10.0, target_lesions=(1,)),
        ),
        drug=DrugRegimen(drug="pembrolizumab", dose_mg=200.0, interval_day=21.0, start_day=4.0),
        name="arm B",
    )
    before = plan.with_rt_offset(-9.0)
    assert before.drug is not None and before.drug.start_day == 0.0  # drug moved to day 0
    assert before.drug_doses(0.0)[0].time_day == 0.0
    # first fraction at -9; the second course keeps its 7-day lag
    assert [f.time_day for f in before.fractions()] == [
        -9.0,
        -7.0,
        -5.0,
        -2.0,
        0.0,
        2.0,
    ]
    after = plan.with_rt_offset(14.0)
    assert after.fractions()[0].time_day == 14.0
    assert plan.fractions()[0].time_day == 3.0  # original unchanged (exact)
    assert "arm B" in before.describe() and "pembrolizumab 200 mg q21d" in before.describe()
    with pytest.raises(
        ScheduleError,
        match=r"with_rt_offset needs a radiation course, got radiation=\(\)",
    ):
        TreatmentPlan(drug=drug_regimen("pembrolizumab_200mg_q3w")).with_rt_offset(-7.0)
    with pytest.raises(ScheduleError, match=r"offset_day must be a finite number of days, got nan"):
        plan.with_rt_offset(float("nan"))


# --------------------------------------------------------------------------- named regimens

# hand-computed worked examples: regimen -> (BED10, EQD2_10, BED3, EQD2_3), 1-decimal values
WORKED_EXAMPLES_BY_REGIMEN = {
    "sbrt_24gy_3fx": (43.2, 36.0, 88.0, 52.8),
    "sbrt_50gy_4fx": (112.5, 93.8, 258.3, 155.0),
    "conv_45gy_15fx": (58.5, 48.8, 90.0, 54.0),
    "sbrt_54gy_3fx": (151.2, 126.0, 378.0, 226.8),
    "sbrt_50gy_5fx": (100.0, 83.3, 216.7, 130.0),
    "conv_60gy_30fx": (72.0, 60.0, 100.0, 60.0),
    "conv_66gy_33fx": (79.2, 66.0, 110.0, 66.0),
    "conv_30gy_10fx": (39.0, 32.5, 60.0, 36.0),
    "sbrt_28p5gy_3fx": (55.6, 46.3, 118.7, 71.2),
    "sbrt_30gy_5fx": (48.0, 40.0, 90.0, 54.0),
    "sbrt_8gy_1fx": (14.4, 12.0, 29.3, 17.6),
}
TABLE_ATOL = 0.05 + 1e-9  # half a unit of the table's last decimal, plus float representation


def test_required_regimens_exist():
    required_rt = {
        "sbrt_24gy_3fx", "sbrt_50gy_4fx", "sbrt_50gy_5fx", "sbrt_54gy_3fx", "sbrt_30gy_5fx",
        "conv_60gy_30fx", "conv_45gy_15fx", "conv_30gy_10fx", "pulsar_3x10gy",
    }  # fmt: skip
    required_drug = {
        "pembrolizumab_200mg_q3w", "pembrolizumab_400mg_q6w", "nivolumab_240mg_q2w", "nivolumab_480mg_q4w",
        "nivolumab_3mgkg_q2w", "durvalumab_1500mg_q4w", "durvalumab_10mgkg_q2w", "atezolizumab_1200mg_q3w",
        "sintilimab_200mg_q3w",
    }  # fmt: skip
    assert required_rt <= set(RADIATION_REGIMENS)
    assert required_drug <= set(DRUG_REGIMENS)
    assert all(spec.source for spec in [*RADIATION_REGIMENS.values(), *DRUG_REGIMENS.values()])


@pytest.mark.parametrize(("name", "expected"), sorted(WORKED_EXAMPLES_BY_REGIMEN.items()))
def test_named_regimen_bed_matches_the_worked_examples(name, expected):
    course = radiation_regimen(name)
    bed10, eqd2_10, bed3, eqd2_3 = expected
    assert course.bed_gy(10.0) == pytest.approx(bed10, abs=TABLE_ATOL)
    assert course.eqd2_gy(10.0) == pytest.approx(eqd2_10, abs=TABLE_ATOL)
    assert course.bed_gy(3.0) == pytest.approx(bed3, abs=TABLE_ATOL)
    assert course.eqd2_gy(3.0) == pytest.approx(eqd2_3, abs=TABLE_ATOL)


def test_regimen_table_rows():
    rows = {row["name"]: row for row in regimen_table()}
    assert set(rows) == set(RADIATION_REGIMENS)
    for name, (bed10, eqd2_10, bed3, eqd2_3) in WORKED_EXAMPLES_BY_REGIMEN.items():
        row = rows[name]
        assert row["bed10"] == pytest.approx(bed10, abs=TABLE_ATOL)
        assert row["eqd2_10"] == pytest.approx(eqd2_10, abs=TABLE_ATOL)
        assert row["bed3"] == pytest.approx(bed3, abs=TABLE_ATOL)
        assert row["eqd2_3"] == pytest.approx(eqd2_3, abs=TABLE_ATOL)
    assert rows["sbrt_24gy_3fx"]["source"].startswith("PEMBRO-RT")
    assert "bed20" in regimen_table(alpha_beta_tumour_gy=20.0)[0]
    with pytest.raises(ParameterError, match=r"alpha_beta_lung_gy must be > 0, got 0\.0"):
        regimen_table(alpha_beta_lung_gy=0.0)


def test_named_regimen_calendars_and_options():
    sbrt = radiation_regimen("sbrt_24gy_3fx", start_day=-9.0, target_lesions=(2,), mean_lung_dose_gy=3.0)
    np.testing.assert_array_equal(sbrt.fraction_days, [-9.0, -7.0, -5.0])  # every other day
    assert sbrt.target_lesions == (2,) and sbrt.name == "sbrt_24gy_3fx"
    np.testing.assert_array_equal(radiation_regimen("conv_45gy_15fx").fraction_days[:6], [0, 1, 2, 3, 4, 7])
    np.testing.assert_array_equal(radiation_regimen("pulsar_3x10gy").fraction_days, [0.0, 10.0, 20.0])


def test_named_drug_regimens():
    pembro = drug_regimen("pembrolizumab_200mg_q3w", start_day=0.0)
    assert (pembro.dose_mg, pembro.interval_day, pembro.max_duration_day) == (
        200.0,
        21.0,
        730.0,
    )
    assert drug_regimen("pembrolizumab_400mg_q6w").interval_day == 42.0
    assert drug_regimen("durvalumab_10mgkg_q2w").max_duration_day == 365.0  # PACIFIC: up to 12 months
    assert drug_regimen("nivolumab_480mg_q4w", max_duration_day=56.0).doses()[-1].time_day == 28.0


def test_unknown_regimen_names_suggest_the_closest():
    with pytest.raises(
        ScheduleError,
        match=r"unknown radiation regimen 'sbrt_24gy_3f'; did you mean 'sbrt_24gy_3fx'",
    ):
        radiation_regimen("sbrt_24gy_3f")
    with pytest.raises(
        ScheduleError,
        match=r"unknown drug regimen 'pembrolizumab_200mg_q3'; did you mean",
    ):
        drug_regimen("pembrolizumab_200mg_q3")


def test_regimen_specs_are_validated():
    with pytest.raises(ScheduleError, match=r"n_fractions must be an integer >= 1, got 0"):
        RadiationRegimenSpec(name="bad", dose_per_fraction_gy=8.0, n_fractions=0, source="x")
    with pytest.raises(ScheduleError, match=r"source must be a non-empty string, got ''"):
        RadiationRegimenSpec(name="bad", dose_per_fraction_gy=8.0, n_fractions=3, source="")
    with pytest.raises(ScheduleError, match=r"unknown drug 'nivo'"):
        DrugRegimenSpec(name="bad", drug="nivo", dose_mg=240.0, interval_day=14.0, source="x")


def test_constant_clearance_drops_only_the_time_varying_term():
    from abscopal.treatment.drugs import DRUG_PK, DrugRegimen

    varying = DrugRegimen(drug="nivolumab", dose_mg_per_kg=3.0, interval_day=14.0)
    constant = DrugRegimen(drug="nivolumab", dose_mg_per_kg=3.0, interval_day=14.0, constant_clearance=True)
    assert varying.pk is DRUG_PK["nivolumab"] and varying.pk.cl_time_emax < 0
    assert constant.pk.cl_time_emax == 0.0
    assert constant.pk.cl_l_per_day == varying.pk.cl_l_per_day and constant.pk.vc_l == varying.pk.vc_l
    assert "pk_cl_time_emax" not in constant.pk.as_parameters() or constant.pk.as_parameters()["pk_cl_time_emax"] == 0


def test_with_rt_offset_can_keep_the_drug_schedule():
    from abscopal.treatment import TreatmentPlan, drug_regimen, radiation_regimen

    drug = drug_regimen("pembrolizumab_200mg_q3w", start_day=14.0)
    plan = TreatmentPlan(radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=0.0),), drug=drug)
    moved = plan.with_rt_offset(63.0)
    kept = plan.with_rt_offset(63.0, drug_to_day0=False)
    assert moved.drug.start_day == 0.0 and kept.drug is drug
    assert moved.fractions()[0].time_day == kept.fractions()[0].time_day == 63.0


def test_for_model_applies_the_constant_clearance_rule_only_where_the_model_needs_it():
    """Analytic PK fixes pk_cl_time_emax at 0: a nivolumab arm then runs at its baseline clearance; a model with
    ODE PK keeps the time-varying term, and a constant-clearance drug is left as it is."""
    from abscopal.model.library.nsclc import nsclc_model
    from abscopal.treatment.regimens import drug_regimen

    nivo = TreatmentPlan(drug=drug_regimen("nivolumab_240mg_q2w"))
    analytic, ode = nsclc_model(1), nsclc_model(1, pk="ode")
    assert nivo.parameter_overrides()["pk_cl_time_emax"] < 0.0
    fixed = nivo.for_model(analytic)
    assert fixed.drug.constant_clearance and fixed.parameter_overrides()["pk_cl_time_emax"] == 0.0
    assert fixed.parameter_overrides()["pk_cl_l_per_day"] == nivo.parameter_overrides()["pk_cl_l_per_day"]
    assert nivo.for_model(ode) is nivo
    pembro = TreatmentPlan(drug=drug_regimen("pembrolizumab_200mg_q3w"))
    assert pembro.for_model(analytic) is pembro
