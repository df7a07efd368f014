"""Tests of abscopal.blood_dose: blood dose per fraction, exposed share, lymphocyte kill, EDIC, the count
through a course, and the published lymphopenia ranges it must reproduce."""

from __future__ import annotations

import dataclasses
import itertools
import math
import pickle

import numpy as np
import pytest

import abscopal.blood_dose as bd
from abscopal.errors import ParameterError
from abscopal.sites import SITES as LESION_SITES
from abscopal.treatment import (
    RADIATION_REGIMENS,
    Daily,
    ExplicitDays,
    RadiationCourse,
    WeekdayDaily,
    radiation_regimen,
)

SBRT = bd.REFERENCE_FIELDS["sbrt_lung"]
CONV = bd.REFERENCE_FIELDS["conventional_thorax"]
NO_RECOVERY = bd.LymphocyteKinetics(recovery_per_day=0.0)


def _course(dose: float, n: int, calendar=None, **kw) -> RadiationCourse:
    return RadiationCourse(dose_per_fraction_gy=dose, n_fractions=n, calendar=calendar or Daily(), **kw)


# --------------------------------------------------------------------------- tables and inputs


def test_every_lesion_site_has_a_blood_geometry():
    assert set(LESION_SITES) <= set(bd.SITES)
    for site in bd.SITES.values():
        assert math.isclose(sum(site.compartment_shares.values()), 1.0)
        assert set(site.compartment_shares) <= set(bd.COMPARTMENTS)


def test_compartment_blood_shares_are_the_icrp89_hedos_values():
    """ICRP 89 male (HEDOS ICRP89_compartment_model.xlsx): lung 10.5 + bronchial 2.0 % of TBV, heart chambers
    4.5 + 4.5 + coronary 1 %, liver 10 % and 25.5 % of CO, brain 1.2 % and 12 %, skeleton 7 % and 5 %."""
    c = bd.COMPARTMENTS
    assert c["lung"].blood_volume_fraction == pytest.approx(0.125)
    assert c["heart"].blood_volume_fraction == pytest.approx(0.10)
    assert (c["liver"].blood_volume_fraction, c["liver"].blood_flow_fraction) == pytest.approx((0.10, 0.255))
    assert (c["brain"].blood_volume_fraction, c["brain"].blood_flow_fraction) == pytest.approx((0.012, 0.12))
    assert (c["bone"].blood_volume_fraction, c["bone"].blood_flow_fraction) == pytest.approx((0.07, 0.05))
    assert (bd.MALE.total_blood_volume_l, bd.MALE.cardiac_output_l_per_min) == (5.3, 6.5)
    assert (bd.FEMALE.total_blood_volume_l, bd.FEMALE.cardiac_output_l_per_min) == (3.9, 5.9)


def test_every_table_entry_carries_a_source():
    for table in (bd.COMPARTMENTS, bd.SITES):
        for entry in table.values():
            assert entry.source.strip()
    assert bd.MALE.source and bd.FEMALE.source


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: bd.Field(site="lung", target_volume_cm3=0.0), "target_volume_cm3"),
        (lambda: bd.Field(site="lung", target_volume_cm3=float("nan")), "target_volume_cm3"),
        (lambda: bd.Field(site="lung", target_volume_cm3=40.0, beam_on_time_s=-1.0), "beam_on_time_s"),
        (lambda: bd.Field(site="lungs", target_volume_cm3=40.0), "lung"),  # suggests the closest site
        (lambda: bd.BloodDoseModel(spill_shell_thickness_cm=-1.0), "spill_shell_thickness_cm"),
        (lambda: bd.BloodDoseModel(target_dose_rate_gy_per_min=0.0), "target_dose_rate_gy_per_min"),
        (lambda: bd.LymphocyteKinetics(alpha_per_gy=0.0), "alpha_per_gy"),
        (lambda: bd.LymphocyteKinetics(recovery_per_day=-0.1), "recovery_per_day"),
        (lambda: bd.LymphocyteKinetics(beta_per_gy2=True), "beta_per_gy2"),
        (lambda: bd.Circulation(total_blood_volume_l=0.0, cardiac_output_l_per_min=6.5, source="x"), "total_blood"),
        (lambda: bd.blood_dose_per_fraction_gy(-1.0, SBRT), "dose_per_fraction_gy"),
        (lambda: bd.blood_dose_per_fraction_gy(2.0, "lung"), "field must be a Field"),
        (lambda: bd.lymphocyte_kill_fraction(0.1, 1.5), "exposed_fraction"),
        (lambda: bd.lymphocyte_kill_fraction(0.1, 0.0), "exposed_fraction must be > 0"),
        (lambda: bd.lymphocyte_surviving_fraction([1.0, -1.0]), "dose_gy"),
        (lambda: bd.nadir_ratio(_course(2.0, 5), 0.0), "baseline_alc_1e9_per_l"),
        (lambda: bd.nadir_ratio("sbrt_24gy_3fx"), "course must be a RadiationCourse"),
        (
            lambda: bd.edic_gy(mean_lung_dose_gy=1, mean_heart_dose_gy=1, integral_total_dose_gy_cm3=1, n_fractions=0),
            "n_fractions",
        ),
        (
            lambda: bd.TreatedSite(name="x", compartment_shares={"lung": 0.5}, source="s"),
            "must sum to 1",
        ),
        (lambda: bd.TreatedSite(name="x", compartment_shares={"spleen": 1.0}, source="s"), "spleen"),
    ],
)
def test_invalid_inputs_raise_parameter_error_naming_the_problem(call, argument):
    with pytest.raises(ParameterError, match=argument):
        call()


def test_tables_and_parameters_are_read_only():
    with pytest.raises(TypeError):
        bd.SITES["lung"] = bd.SITES["liver"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        bd.LymphocyteKinetics().alpha_per_gy = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        bd.SITES["lung"].compartment_shares["lung"] = 1.0  # type: ignore[index]


# --------------------------------------------------------------------------- analytic checks


def test_zero_dose_gives_no_blood_dose_and_no_kill():
    assert bd.blood_dose_per_fraction_gy(0.0, CONV) == 0.0
    exposure = bd.fraction_exposure(0.0, CONV)
    assert exposure.mean_blood_dose_gy == 0.0 and exposure.lymphocyte_kill_fraction == 0.0
    assert exposure.beam_on_time_s == 0.0 and exposure.dose_to_exposed_blood_gy == 0.0
    assert bd.lymphocyte_kill_fraction(0.0, 0.0) == 0.0
    np.testing.assert_array_equal(bd.lymphocyte_surviving_fraction([0.0, 0.0]), [1.0, 1.0])


def test_blood_dose_is_the_hedos_mean_blood_dose():
    """b = sum_o w_o Dbar_o with Dbar_o = d * share * V_dw / V_o (HEDOS: MBD = sum V_blood,i Dbar_i / TBV)."""
    dose, field = 2.0, CONV
    v_dw = bd.dose_weighted_volume_cm3(field.target_volume_cm3)
    assert v_dw == pytest.approx(500.0 + 5.0 * (36 * math.pi) ** (1 / 3) * 500.0 ** (2 / 3))
    organ = bd.mean_organ_doses_per_fraction_gy(dose, field)
    expected = sum(
        bd.COMPARTMENTS[o].blood_volume_fraction * dose * share * v_dw / bd.COMPARTMENTS[o].tissue_volume_cm3
        for o, share in field.treated_site.compartment_shares.items()
    )
    assert bd.blood_dose_per_fraction_gy(dose, field) == pytest.approx(expected)
    assert sum(bd.COMPARTMENTS[o].blood_volume_fraction * d for o, d in organ.items()) == pytest.approx(expected)
    # linear in the dose per fraction
    assert bd.blood_dose_per_fraction_gy(6.0, field) == pytest.approx(3 * expected)


def test_an_organ_cannot_receive_more_than_the_prescribed_dose():
    huge = bd.Field(site="brain", target_volume_cm3=5000.0)
    assert bd.mean_organ_doses_per_fraction_gy(3.0, huge) == {"brain": pytest.approx(3.0)}
    assert bd.blood_dose_per_fraction_gy(3.0, huge) == pytest.approx(0.012 * 3.0)


def test_exposed_fraction_closed_form_and_limits():
    field = bd.Field(site="brain", target_volume_cm3=100.0, beam_on_time_s=60.0)
    v = bd.dose_weighted_volume_cm3(100.0) / 1400.0
    expected = 1 - math.exp(-v * (0.012 + 0.12 * 6.5 * 1.0 / 5.3))
    assert bd.exposed_blood_fraction(2.0, field) == pytest.approx(expected)
    # a very long beam-on time exposes (almost) all the blood; it never exceeds 1
    long = dataclasses.replace(CONV, beam_on_time_s=3600.0)
    assert 0.999 < bd.exposed_blood_fraction(2.0, long) <= 1.0


def test_kill_limits_uniform_exposure_and_saturation():
    kin = bd.LymphocyteKinetics(alpha_per_gy=0.4)
    # f = 1: the whole pool receives b
    assert bd.lymphocyte_kill_fraction(0.5, 1.0, kin) == pytest.approx(1 - math.exp(-0.2))
    # small f with a high dose to the exposed blood: every exposed cell dies, K -> f
    assert bd.lymphocyte_kill_fraction(5.0, 0.01, kin) == pytest.approx(0.01)
    # at equal mean blood dose, concentrating it on less blood kills fewer cells (kill saturation)
    kills = [bd.lymphocyte_kill_fraction(0.5, f, kin) for f in (1.0, 0.5, 0.2, 0.05)]
    assert kills == sorted(kills, reverse=True)
    # linear-quadratic option
    lq = bd.LymphocyteKinetics(alpha_per_gy=0.182, beta_per_gy2=0.143)
    assert float(bd.lymphocyte_surviving_fraction(2.0, lq)) == pytest.approx(math.exp(-(0.364 + 0.572)))


def test_no_recovery_limit_is_a_product_of_survivals():
    """k = 0: L_n / L0 = (1 - K)^n, and with f -> 1 this is exp(-alpha n b) (the uniform-exposure closed form)."""
    course = _course(2.0, 30, WeekdayDaily())
    ratio = bd.nadir_ratio(course, field=CONV, kinetics=NO_RECOVERY)
    kill = bd.fraction_exposure(2.0, CONV).lymphocyte_kill_fraction
    assert ratio == pytest.approx((1 - kill) ** 30)
    uniform = dataclasses.replace(CONV, beam_on_time_s=1e5)  # f = 1
    b = bd.blood_dose_per_fraction_gy(2.0, uniform)
    assert bd.nadir_ratio(course, field=uniform, kinetics=NO_RECOVERY) == pytest.approx(math.exp(-0.40 * 30 * b))


def test_recovery_closed_form_for_equally_spaced_fractions():
    """L_j = (1-K) [L0 + (L_{j-1} - L0) e^{-k D}]: a geometric sequence with fixed point
    L* / L0 = (1-K)(1-e^{-kD}) / (1 - (1-K) e^{-kD})."""
    k, spacing, n = 0.015, 1.0, 200
    kin = bd.LymphocyteKinetics(recovery_per_day=k)
    course = _course(2.0, n)
    lc = bd.simulate_lymphocytes(course, 1.7, field=CONV, kinetics=kin)
    kill = lc.exposures[0].lymphocyte_kill_fraction
    q = (1 - kill) * math.exp(-k * spacing)
    fixed = (1 - kill) * (1 - math.exp(-k * spacing)) / (1 - q)
    j = np.arange(1, n + 1)
    expected = fixed + ((1 - kill) - fixed) * q ** (j - 1)
    np.testing.assert_allclose(lc.alc_after_fraction_1e9_per_l / 1.7, expected, rtol=1e-12)
    assert lc.nadir_ratio == pytest.approx(expected.min())


def test_count_between_fractions_relaxes_to_baseline():
    lc = bd.simulate_lymphocytes(_course(12.5, 4, ExplicitDays(offsets_day=(0, 2, 4, 6))), 2.0, field=SBRT)
    after_last = lc.alc_after_fraction_1e9_per_l[-1]
    days = np.array([-1.0, 0.0, 6.0, 6.0 + 46.21, 1e4])
    alc = lc.alc_1e9_per_l(days)
    assert alc[0] == 2.0 and alc[1] == lc.alc_after_fraction_1e9_per_l[0] and alc[2] == after_last
    assert alc[3] == pytest.approx(2.0 - (2.0 - after_last) / 2, rel=1e-3)  # half-time ln2/0.015 = 46.2 d
    assert alc[4] == pytest.approx(2.0)
    assert lc.nadir_day == 6.0 and lc.nadir_alc_1e9_per_l == pytest.approx(after_last)


def test_the_ratio_does_not_depend_on_the_baseline_but_the_nadir_does():
    course = radiation_regimen("conv_60gy_30fx")
    low, high = (bd.simulate_lymphocytes(course, alc) for alc in (0.8, 2.4))
    assert low.nadir_ratio == pytest.approx(high.nadir_ratio)
    assert high.nadir_alc_1e9_per_l == pytest.approx(3 * low.nadir_alc_1e9_per_l)


def test_an_explicit_course_blood_dose_replaces_the_geometry():
    course = _course(2.0, 10, blood_dose_per_fraction_gy=0.3)
    lc = bd.simulate_lymphocytes(course, 1.5, field=CONV)
    assert lc.exposures[0].mean_blood_dose_gy == 0.3
    assert bd.course_blood_dose_gy(course) == pytest.approx(3.0)


# --------------------------------------------------------------------------- monotonicity and direction


def test_kill_and_nadir_are_monotone_in_dose_per_fraction():
    doses = [1.0, 2.0, 3.0, 5.0, 8.0, 12.5, 18.0]
    kills = [bd.fraction_exposure(d, SBRT).lymphocyte_kill_fraction for d in doses]
    assert all(b > a for a, b in itertools.pairwise(kills))
    ratios = [bd.nadir_ratio(_course(d, 5), field=SBRT) for d in doses]
    assert all(b < a for a, b in itertools.pairwise(ratios))


def test_nadir_is_monotone_in_the_number_of_fractions_at_equal_dose_per_fraction():
    for field, dose in ((SBRT, 10.0), (CONV, 2.0)):
        ratios = [bd.nadir_ratio(_course(dose, n, WeekdayDaily()), field=field) for n in (1, 3, 5, 10, 20, 30)]
        assert all(b < a for a, b in itertools.pairwise(ratios)), ratios


def test_larger_fields_deplete_more():
    ratios = [
        bd.nadir_ratio(_course(10.0, 5), field=bd.Field(site="lung", target_volume_cm3=v)) for v in (10, 40, 100, 300)
    ]
    assert all(b < a for a, b in itertools.pairwise(ratios)), ratios
    blood = [
        bd.blood_dose_per_fraction_gy(2.0, bd.Field(site="thorax_central", target_volume_cm3=v)) for v in (100, 500)
    ]
    assert blood[1] > 2 * blood[0]


def test_site_order_follows_blood_content():
    """Blood-rich fields (central thorax with the heart, liver) deplete most; brain and bone least, as in
    palliative RT on PD-1 inhibitors, where brain RT barely changed the count (median change -48/uL) while
    extracranial RT lowered it (-384/uL) (Pike LRG et al., Int J Radiat Oncol Biol Phys 2019;103:142-151)."""
    ratio = {
        site: bd.nadir_ratio(_course(8.0, 3), field=bd.Field(site=site, target_volume_cm3=60.0))
        for site in ("thorax_central", "liver", "lung", "soft_tissue", "bone", "brain")
    }
    assert ratio["thorax_central"] < ratio["lung"] < ratio["bone"]
    assert ratio["liver"] < ratio["lung"]
    assert ratio["brain"] > ratio["lung"] and ratio["brain"] > 0.95
    assert max(ratio, key=ratio.__getitem__) in {"brain", "bone", "soft_tissue"}


def test_longer_beam_on_time_depletes_more():
    """Longer delivery exposes more blood at a lower dose each, so more cells die (HEDOS: the exposed share grows
    with delivery time, Shin J et al., Phys Med Biol 2021;66(16); clinically a longer total beam-on time predicted a
    lower post-SBRT count, Zhao Q et al., Front Oncol 2020;9:1488)."""
    ratios = [
        bd.nadir_ratio(_course(12.5, 4), field=dataclasses.replace(SBRT, beam_on_time_s=t)) for t in (30, 180, 900)
    ]
    assert ratios[0] > ratios[1] > ratios[2]
    mean_blood = {bd.blood_dose_per_fraction_gy(12.5, dataclasses.replace(SBRT, beam_on_time_s=t)) for t in (30, 900)}
    assert len(mean_blood) == 1  # the mean blood dose does not depend on the delivery time (HEDOS)


def test_more_fractions_at_equal_total_dose_deplete_more_when_exposure_saturates():
    """Splitting 24 Gy into more fractions exposes more of the pool (Yovino S et al., Cancer Invest 2013;31:140);
    the direction matches cranial RT, where 24 Gy in 5/12/20 fractions left 1.84/1.12/0.64 x 1e9/L at 3 months
    (MacLennan IC et al., Cancer 1978;41:108) -- the size of that effect is not reproduced (docs/blood_dose.md)."""
    brain = bd.Field(site="brain", target_volume_cm3=1400.0, beam_on_time_s=10.0)
    ratios = [bd.nadir_ratio(_course(24.0 / n, n), field=brain, kinetics=NO_RECOVERY) for n in (1, 5, 12, 20)]
    assert all(b < a for a, b in itertools.pairwise(ratios)), ratios


# --------------------------------------------------------------------------- published ranges


@pytest.mark.parametrize(
    "name", ["sbrt_24gy_3fx", "sbrt_50gy_4fx", "sbrt_50gy_5fx", "sbrt_54gy_3fx", "sbrt_30gy_5fx", "sbrt_28p5gy_3fx"]
)
def test_lung_sbrt_keeps_the_nadir_ratio_at_or_above_0p7(name):
    """Target of the Model v2 issue: nadir/baseline >= 0.7 after lung SBRT, i.e. SBRT spares lymphocytes
    (in metastatic lung cancer on immunotherapy only traditional 45 Gy/15 RT, not SBRT 50 Gy/4 or 60 Gy/10,
    predicted a fall in the count: Chen D et al., Radiother Oncol 2020; pancreatic SBRT 33 Gy/5 left 13.8% of
    patients below 500/uL at 1 month vs 71.7% after 50.4 Gy/28: Wild AT et al., Int J Radiat Oncol Biol Phys
    2016;94:571). Reference field: peripheral lung, 40 cm3 PTV. Early-stage SBRT cohorts report lower median
    ratios, 0.65 (1700 -> 1100/uL; Zhao Q et al., Technol Cancer Res Treat 2022;21:15330338221112287) and 0.54
    (1.90 -> 1.03 x 1e9/L; Li R et al., Chin J Radiat Oncol 2024;33:909); see the central-field test below."""
    ratio = bd.nadir_ratio(radiation_regimen(name))
    assert 0.7 <= ratio < 1.0


def test_conventional_60gy_30fx_gives_the_published_thoracic_nadir_ratio():
    """Nadir/baseline 0.2-0.4 for 60 Gy/30 thoracic RT (Model v2 issue). Published stage III cohorts: total
    lymphocyte count fell 67% (ratio 0.33; Campian JL et al., Cancer Invest 2013;31:183, PMID 23432821) and
    1.65 -> 0.48 x 1e9/L (ratio 0.29; Yu Y et al., LS-SCLC EDIC cohort). Both include chemotherapy."""
    ratio = bd.nadir_ratio(radiation_regimen("conv_60gy_30fx"))
    assert 0.2 <= ratio <= 0.4
    assert 0.27 <= ratio <= 0.35  # the published 0.29-0.33, with a small margin


def test_conventional_nadir_falls_late_in_the_course():
    """The nadir falls in the last weeks of a 6-week course, not after one fraction (median week 5: Zhao Q et al.,
    Radiat Oncol 2019;14:86)."""
    lc = bd.simulate_lymphocytes(radiation_regimen("conv_60gy_30fx"), 1.65)
    assert lc.nadir_day >= 28


def test_central_or_large_sbrt_fields_reach_the_published_early_stage_sbrt_ratios():
    """Early-stage lung SBRT cohorts: median nadir ratios 0.54 (Li 2024) and 0.65 (Zhao 2022); lower counts with
    higher mean lung dose and heart V5 (Zhao 2020). A central 100 cm3 field lands in that band."""
    ratio = bd.nadir_ratio(
        radiation_regimen("sbrt_50gy_5fx"), field=bd.Field(site="thorax_central", target_volume_cm3=100)
    )
    assert 0.54 <= ratio <= 0.7


def test_sbrt_spares_lymphocytes_compared_with_conventional_rt():
    sbrt = max(bd.nadir_ratio(radiation_regimen(n)) for n in ("sbrt_24gy_3fx", "sbrt_50gy_4fx"))
    conv = min(bd.nadir_ratio(radiation_regimen(n)) for n in ("conv_45gy_15fx", "conv_60gy_30fx"))
    assert sbrt - conv > 0.3


def test_the_kill_is_not_saturated():
    """45 Gy/15 and 60 Gy/30 differ (the count is not pinned at a floor): less blood dose in the shorter course
    leaves a higher nadir; 66 Gy/33 goes lower still; and the nadir still moves with field size and radiosensitivity."""
    r45, r60, r66 = (
        bd.nadir_ratio(radiation_regimen(n)) for n in ("conv_45gy_15fx", "conv_60gy_30fx", "conv_66gy_33fx")
    )
    assert r45 > r60 > r66
    assert r45 - r60 > 0.01
    course = radiation_regimen("conv_60gy_30fx")
    smaller = bd.nadir_ratio(course, field=bd.Field(site="thorax_central", target_volume_cm3=250.0))
    assert smaller - r60 > 0.05
    sensitive = bd.nadir_ratio(course, kinetics=bd.LymphocyteKinetics(alpha_per_gy=0.8))
    assert r60 - sensitive > 0.05


def test_course_blood_dose_matches_the_edic_of_rtog0617():
    """The reference 60 Gy/30 thoracic course: blood dose and EDIC near the RTOG 0617 median EDIC, 5.6 Gy (range
    2.1-12.2; Jin JY et al., Cancers 2021;13:6193); SBRT courses stay near 0.5 Gy."""
    course = radiation_regimen("conv_60gy_30fx")
    blood, edic = bd.course_blood_dose_gy(course), bd.course_edic_gy(course)
    assert 2.1 <= blood <= 12.2 and 2.1 <= edic <= 12.2
    assert abs(edic - 5.6) / 5.6 < 0.25 and abs(blood - edic) / edic < 0.25
    for name in ("sbrt_24gy_3fx", "sbrt_50gy_4fx"):
        assert bd.course_blood_dose_gy(radiation_regimen(name)) < 1.0


def test_breast_edic_anchor():
    """Breast RT: mean EDIC 1.7 Gy gave a mean post/pre ratio of 0.66 (Chen F, Jin JY, ..., Kong FM, Front Oncol
    2022;12:768956). The same kill and recovery applied to that blood dose (25 weekday fractions, uniform exposure)
    give a ratio within 0.1 of it -- a check of alpha = 0.40 (Jin 2020) and k = 0.015/day, not a fit."""
    course = _course(2.0, 25, WeekdayDaily(), blood_dose_per_fraction_gy=1.7 / 25)
    uniform = dataclasses.replace(CONV, beam_on_time_s=1e5)
    assert abs(bd.nadir_ratio(course, field=uniform) - 0.66) < 0.1


def test_edic_formula():
    """Thoracic EDIC (Jin): 0.12 MLD + 0.08 MHD + [0.45 + 0.35 0.85 sqrt(n/45)] ITD / 61.8e3; the liver term
    0.15 0.85 sqrt(n/45) MlD (oesophageal form, Xu 2020)."""
    value = bd.edic_gy(
        mean_lung_dose_gy=15, mean_heart_dose_gy=10, integral_total_dose_gy_cm3=5 * 61.8e3, n_fractions=30
    )
    assert value == pytest.approx(0.12 * 15 + 0.08 * 10 + (0.45 + 0.2975 * math.sqrt(30 / 45)) * 5)
    assert value == pytest.approx(6.07, abs=0.01)
    with_liver = bd.edic_gy(
        mean_lung_dose_gy=0, mean_heart_dose_gy=0, integral_total_dose_gy_cm3=0, n_fractions=45, mean_liver_dose_gy=10
    )
    assert with_liver == pytest.approx(0.15 * 0.85 * 10)


def test_every_named_regimen_runs_and_sbrt_beats_conventional():
    ratios = {name: bd.nadir_ratio(radiation_regimen(name)) for name in RADIATION_REGIMENS}
    assert all(0.0 < r < 1.0 for r in ratios.values())
    assert min(r for n, r in ratios.items() if n.startswith(("sbrt", "pulsar"))) > 0.7
    assert max(r for n, r in ratios.items() if n.startswith("conv")) < 0.5


def test_a_female_circulation_changes_the_blood_dose():
    female = bd.BloodDoseModel(circulation=bd.FEMALE)
    # same blood shares, so the same mean blood dose; the exposed share rises (CO/TBV is larger)
    assert bd.blood_dose_per_fraction_gy(2.0, CONV, female) == pytest.approx(bd.blood_dose_per_fraction_gy(2.0, CONV))
    assert bd.exposed_blood_fraction(2.0, CONV, female) > bd.exposed_blood_fraction(2.0, CONV)


def test_sites_fields_and_courses_pickle_for_worker_processes():
    site = bd.TreatedSite(name="custom", compartment_shares={"lung": 0.5, "heart": 0.5}, source="test")
    field = bd.Field(site=site, target_volume_cm3=80.0)
    back = pickle.loads(pickle.dumps(field))
    assert back.treated_site.compartment_shares == {"lung": 0.5, "heart": 0.5}
    assert bd.blood_dose_per_fraction_gy(2.0, back) == bd.blood_dose_per_fraction_gy(2.0, field)
    lc = bd.simulate_lymphocytes(radiation_regimen("sbrt_24gy_3fx"), 1.7)
    assert pickle.loads(pickle.dumps(lc)).nadir_ratio == lc.nadir_ratio
    with pytest.raises(ValueError):
        lc.alc_after_fraction_1e9_per_l[0] = 0.0  # read-only arrays


def test_edic_accepts_numpy_integers():
    value = bd.edic_gy(mean_lung_dose_gy=4, mean_heart_dose_gy=1, integral_total_dose_gy_cm3=0, n_fractions=np.int64(5))
    assert value == pytest.approx(0.12 * 4 + 0.08)
