"""The published tumour-growth-rate -> OS link (:mod:`abscopal.endpoints.survival_link`): closed forms, the Stein
fit, the post-progression step, its fittable fields, and published calibration anchors (pretreated NSCLC on PD-1)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import brentq

from abscopal.endpoints import SurvivalModel, TrialAssessment, TumourGrowthSurvival
from abscopal.endpoints.death import DeathInputs
from abscopal.endpoints.survival_link import DISTRIBUTIONS, SteinPrior, fit_stein, stein_sld
from abscopal.errors import ParameterError
from abscopal.fitted.values import SURVIVAL_BOUNDS, SURVIVAL_FIELDS, SplitValues, split_values
from abscopal.model.library import nsclc_model

MONTH = 30.4375
VISITS = np.arange(0.0, 730.0 + 1e-9, 42.0)  # a baseline scan, then every 6 weeks for two years


def _inputs(sums: np.ndarray, *, progression: np.ndarray | None = None, pretreated=None) -> DeathInputs:
    n = sums.shape[0]
    return DeathInputs(
        times=np.arange(0.0, 20000.0, 1.0),  # a long simulation: deaths beyond it are inf
        tumour_burden=None,
        new_lesion_day=np.full(n, np.inf),
        visit_days=VISITS,
        target_sum_mm=sums,
        progression_day=np.full(n, np.inf) if progression is None else progression,
        pretreated=np.zeros(n, dtype=bool) if pretreated is None else pretreated,
        follow_up_day=float(VISITS[-1]),
    )


def _exp1_quantiles(n: int) -> np.ndarray:
    """Exp(1) draws at the mid-quantiles: the middle one of an odd ``n`` is log 2, the median."""
    return -np.log1p(-(np.arange(n) + 0.5) / n)


def _same_patients(n: int, kg=0.0015, ks=0.004, sld0=80.0) -> np.ndarray:
    return np.tile(stein_sld(VISITS, sld0, kg, ks), (n, 1))


# ---- closed forms -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_median_os_with_constant_covariates_is_the_closed_form(distribution):
    """Equal patients (one ``mu``): the median death day is ``exp(mu) (log 2)^sigma`` for the Weibull
    (``S = exp(-(t e^-mu)^(1/sigma))``), ``exp(mu)`` for the log-normal and the log-logistic."""
    model = TumourGrowthSurvival(distribution=distribution)
    inputs = _inputs(_same_patients(101))
    mu = model.location(inputs)
    assert np.ptp(mu) == 0.0
    closed = math.exp(mu[0]) * (math.log(2.0) ** model.scale if distribution == "weibull" else 1.0)
    death = model.death_day(inputs, _exp1_quantiles(101))
    assert float(np.median(death)) == pytest.approx(closed, rel=1e-10)
    assert float(model.median_day(mu[0])) == pytest.approx(closed, rel=1e-12)
    assert float(model.survival(closed, mu[0])) == pytest.approx(0.5, rel=1e-12)


def test_weibull_hazard_ratio_per_unit_log_kg_is_exp_of_its_ph_coefficient():
    """A Weibull AFT is also PH: ``h(t | mu) = h0(t) exp(-mu/sigma)``. With ``log_kg_coefficient = b`` (and the
    Emax and TTG terms off) one unit of log KG multiplies the hazard by ``exp(coef)``, ``coef = -b/sigma``, at
    every time; the log-normal's time ratio (ratio of medians) per unit of log KG is ``exp(b)``."""
    b = -0.4
    weibull = TumourGrowthSurvival(
        distribution="weibull", kg_emax_log_day=0.0, ttg_slope_per_week=0.0, log_kg_coefficient=b
    )
    kg = np.array([0.001, 0.001 * math.e])
    mu = weibull.log_time_location(kg, np.full(2, 0.004), np.full(2, 80.0))
    coef = -b / weibull.scale
    for t in (30.0, 200.0, 700.0):
        dt = 1e-4 * t
        hazard = (weibull.cumulative_hazard(t + dt, mu) - weibull.cumulative_hazard(t - dt, mu)) / (2 * dt)
        assert hazard[1] / hazard[0] == pytest.approx(math.exp(coef), rel=1e-7)
    lognormal = replace(weibull, distribution="lognormal")
    medians = lognormal.median_day(lognormal.log_time_location(kg, np.full(2, 0.004), np.full(2, 80.0)))
    assert medians[1] / medians[0] == pytest.approx(math.exp(b), rel=1e-12)


def test_the_published_link_terms():
    """``mu`` is the Struemper 2025 sum, term by term (KG 0.013 /week and TTG 14 weeks: the typical subject of
    their Figure 3), and the pretreated log time ratio shifts ``mu`` by exactly its value."""
    m = TumourGrowthSurvival(pretreated_log_time_ratio=-0.3)
    kg_w, ttg_w = 0.013, 14.0
    ks_w = float(brentq(lambda s: math.log(s / kg_w) / (kg_w + s) - ttg_w, 0.1, 10.0))
    mu = m.log_time_location(np.array([kg_w / 7]), np.array([ks_w / 7]), np.array([74.0]), np.array([False, True]))
    expected = 6.94 - 6.91 * kg_w / (kg_w + 0.109) - 0.00366 * (74.0 - 100.0) + 0.0124 * (ttg_w - 39.9)
    assert mu[0] == pytest.approx(expected, abs=1e-9)
    assert mu[1] - mu[0] == pytest.approx(-0.3, abs=1e-12)
    assert m.scale == pytest.approx(math.exp(-0.331))


# ---- the Stein fit ----------------------------------------------------------------------------------------------
def test_stein_fit_recovers_kg_and_ks_of_synthetic_curves():
    """Curves of the Stein model itself, without noise and without a prior (weighted least squares): KG and KS
    are recovered to 1e-6, over growth rates from 1e-4 to 0.02 /day and shrinkage from 1e-4 to 0.05 /day."""
    rng = np.random.default_rng(0)
    n = 300
    kg = np.exp(rng.uniform(math.log(1e-4), math.log(0.02), n))
    ks = np.exp(rng.uniform(math.log(1e-4), math.log(0.05), n))
    sld0 = rng.uniform(20.0, 200.0, n)
    fit = fit_stein(VISITS, stein_sld(VISITS[None], sld0[:, None], kg[:, None], ks[:, None]), sld0, None)
    np.testing.assert_allclose(fit.kg_per_day, kg, rtol=1e-6)
    np.testing.assert_allclose(fit.ks_per_day, ks, rtol=1e-6)
    assert np.all(fit.n_scans == VISITS.size - 1) and np.all(fit.evaluable)


def test_stein_fit_with_the_population_prior_is_an_individual_estimate():
    """With the Struemper 2025 population as prior (the default): KG of every patient whose tumour regrows
    visibly within the two years (KG x 730 d >= 1) is within 10% of the truth without noise; with the published
    residual error (2.5 mm + 11%) the estimates still correlate with the truth (r > 0.95); a patient without
    post-baseline scans, or without target lesions, gets the population's typical KG and KS."""
    prior = SteinPrior()
    rng = np.random.default_rng(3)
    n = 400
    lkg, lks = prior.log_rates_per_day
    kg = np.exp(lkg + prior.omega_log_kg * rng.standard_normal(n))
    ks = np.exp(lks + prior.omega_log_ks * rng.standard_normal(n))
    sld0 = np.full(n, 80.0)
    y = stein_sld(VISITS[None], sld0[:, None], kg[:, None], ks[:, None])
    fit = fit_stein(VISITS, y, sld0, prior)
    visible = kg * 730.0 >= 1.0
    assert visible.sum() > 50
    np.testing.assert_allclose(fit.kg_per_day[visible], kg[visible], rtol=0.1)
    noisy = y * (1 + prior.proportional_sd * rng.standard_normal(y.shape)) + prior.additive_sd_mm * rng.standard_normal(
        y.shape
    )
    noisy_fit = fit_stein(VISITS, noisy, sld0, prior)
    assert np.corrcoef(np.log(noisy_fit.kg_per_day), np.log(kg))[0, 1] > 0.95

    only_baseline = np.full((2, VISITS.size), np.nan)
    only_baseline[:, 0] = [80.0, 0.0]
    typical = fit_stein(VISITS, only_baseline, only_baseline[:, 0], prior)
    np.testing.assert_allclose(typical.kg_per_day, prior.kg_per_week / 7.0, rtol=1e-12)
    np.testing.assert_allclose(typical.ks_per_day, prior.ks_per_week / 7.0, rtol=1e-12)
    assert typical.evaluable.tolist() == [True, False] and typical.n_scans.tolist() == [0, 0]


def test_kg_uses_scans_up_to_the_cutoff_only():
    """Scans after ``kg_data_cutoff_day`` do not change KG."""
    sums = _same_patients(1, kg=0.003, ks=0.01)
    later = sums.copy()
    later[0, VISITS > 200.0] *= 3.0
    model = TumourGrowthSurvival(kg_data_cutoff_day=200.0)
    assert model.stein_fit(_inputs(sums)).kg_per_day == model.stein_fit(_inputs(later)).kg_per_day
    assert TumourGrowthSurvival().stein_fit(_inputs(later)).kg_per_day > model.stein_fit(_inputs(later)).kg_per_day


# ---- post-progression -------------------------------------------------------------------------------------------
def test_post_progression_hazard_ratio_multiplies_the_hazard_after_the_progression_scan():
    """``H(t) = H0(tp) + HR (H0(t) - H0(tp))`` after progression at ``tp``; death where ``H`` reaches the draw.
    HR = 1 is the model without a progression term; a death before ``tp`` does not depend on HR."""
    n = 51
    draws = _exp1_quantiles(n)
    progression = np.full(n, 126.0)
    plain = TumourGrowthSurvival()
    faster = replace(plain, post_progression_hazard_ratio=2.5)
    inputs = _inputs(_same_patients(n), progression=progression)
    mu = plain.location(inputs)
    d1, d2 = plain.death_day(inputs, draws), faster.death_day(inputs, draws)
    np.testing.assert_array_equal(d1, plain.death_day(_inputs(_same_patients(n)), draws))
    h_tp = plain.cumulative_hazard(126.0, mu)
    before = draws <= h_tp
    assert before.any() and (~before).any()
    np.testing.assert_array_equal(d2[before], d1[before])
    h = h_tp + 2.5 * (plain.cumulative_hazard(d2, mu) - h_tp)
    np.testing.assert_allclose(h[~before], draws[~before], rtol=1e-9)
    assert np.all(d2[~before] < d1[~before])


# ---- calibration anchors: pretreated NSCLC on PD-(L)1 --------------------------------------------------------
OAK_KG_PER_DAY, OAK_KS_PER_DAY = 0.0016, 0.0014
"""Typical Stein rates of OAK (pretreated NSCLC, atezolizumab and docetaxel pooled): Ribba B et al. Front Pharmacol
2022;13:1058220, Supplementary Data (as transcribed in nlmixr2lib ``Ribba_2022_sld``); inter-patient SDs of
log KG 1.03 and log KS 1.64."""
TYPICAL_SLD0_MM = 74.0
"""Median baseline SLD of the Struemper 2025 population (Figure 3 caption)."""


def test_anchor_median_os_of_a_typical_pretreated_patient():
    """Median OS of a pretreated patient with the typical OAK kinetics (KG 0.0016 /day, KS 0.0014 /day: TTG 0)
    and SLD0 74 mm under the published link: 11.95 months. Anchors: PEMBRO-RT control (pembrolizumab alone,
    pretreated) median OS 7.6 months, 95% CI 6.0-13.9 (Theelen WSME et al. JAMA Oncol 2019;5:1276): inside the CI, above
    the point estimate (``pretreated_log_time_ratio = log(7.6/11.95) = -0.45`` would match it); OAK (the trial
    the kinetics come from) 13.8 (atezolizumab) and 9.6 months (docetaxel) (Rittmeyer 2017 Lancet 389:255): in
    between, as the pooled kinetics should be."""
    m = TumourGrowthSurvival()
    mu = m.log_time_location(np.array([OAK_KG_PER_DAY]), np.array([OAK_KS_PER_DAY]), np.array([TYPICAL_SLD0_MM]))
    median_month = float(m.median_day(mu)[0]) / MONTH
    assert median_month == pytest.approx(11.95, abs=0.01)
    assert 6.0 <= median_month <= 13.9 and 9.6 <= median_month <= 13.8
    assert math.log(7.6 / median_month) == pytest.approx(-0.45, abs=0.01)


def test_anchor_three_year_os_of_a_pretreated_population():
    """OS of a population with the OAK kinetics and their variability (Ribba 2022: SDs 1.03 and 1.64 of log KG
    and log KS; baseline SLD log-normal, median 74 mm, log-SD 0.5 as the virtual patients') under the published
    link: 3-year OS 16.3%, median 11.9 months. Anchor: real-world nivolumab, pretreated NSCLC (n = 259), 3-year
    OS 16.6% (Geier M et al. Cancer Med 2020, PMC7541160)."""
    rng = np.random.default_rng(1)
    n = 200_000
    kg = OAK_KG_PER_DAY * np.exp(1.03 * rng.standard_normal(n))
    ks = OAK_KS_PER_DAY * np.exp(1.64 * rng.standard_normal(n))
    sld0 = TYPICAL_SLD0_MM * np.exp(0.5 * rng.standard_normal(n))
    m = TumourGrowthSurvival()
    os_day = m.time_at(rng.exponential(size=n), m.log_time_location(kg, ks, sld0))
    three_year = float(np.mean(os_day > 3 * 365.25))
    assert three_year == pytest.approx(0.166, abs=0.02)
    assert float(np.median(os_day)) / MONTH == pytest.approx(11.9, abs=0.3)


# ---- fittable fields and selection ------------------------------------------------------------------------------
def test_the_fittable_fields_of_both_death_models_are_known_and_disjoint():
    v1_fields = ("base_hazard_per_day", "size_exponent", "new_lesion_hazard_ratio", "background_per_day")
    assert SURVIVAL_FIELDS == v1_fields + tuple(TumourGrowthSurvival.FITTABLE)
    assert not set(SurvivalModel.FITTABLE) & set(TumourGrowthSurvival.FITTABLE)  # a fit's fields name its model
    assert {k: SURVIVAL_BOUNDS[k] for k in v1_fields} == {
        "base_hazard_per_day": (1e-5, 0.05),
        "size_exponent": (0.0, 3.0),
        "new_lesion_hazard_ratio": (1.0, 10.0),
        "background_per_day": (0.0, 1e-3),
    }
    with pytest.raises(ParameterError, match="must be finite and >= 0"):
        split_values(nsclc_model(3), {"survival__size_exponent": -1.0})


def test_survival_fields_of_the_link_are_fittable_through_the_same_names():
    spec = nsclc_model(3)
    fields = TumourGrowthSurvival.FITTABLE
    split = split_values(
        spec, {"survival__intercept_log_day": 6.5, "survival__pretreated_log_time_ratio": -0.45}, (), fields
    )
    assert split.survival == {"intercept_log_day": 6.5, "pretreated_log_time_ratio": -0.45}
    a = split.assessment(TrialAssessment(survival=TumourGrowthSurvival()))
    assert isinstance(a.survival, TumourGrowthSurvival)
    assert (a.survival.intercept_log_day, a.survival.pretreated_log_time_ratio) == (6.5, -0.45)
    for name, (lo, hi) in fields.items():
        assert lo < getattr(TumourGrowthSurvival(), name) < hi, name  # the published values lie inside the bounds
    assert split_values(spec, {"survival__intercept_log_day": 6.5}).survival == {"intercept_log_day": 6.5}
    with pytest.raises(ParameterError, match="survival-model field"):
        split_values(spec, {"survival__intercept_log_day": 6.5}, (), SurvivalModel.FITTABLE)
    with pytest.raises(ParameterError, match="survival-model field"):
        split_values(spec, {"survival__intercept": 6.5})  # a typo: no death model has it
    # the fields a fit names choose the death model: model v1's burden hazard from a v1 fit
    v1 = SplitValues({}, {}, {}, {"base_hazard_per_day": 0.01}).assessment(TrialAssessment())
    assert isinstance(v1.survival, SurvivalModel) and v1.survival.base_hazard_per_day == 0.01
    with pytest.raises(ParameterError, match="TumourGrowthSurvival field"):  # fields of two models: refused
        SplitValues({}, {}, {}, {"base_hazard_per_day": 0.01, "intercept_log_day": 6.5}).assessment(
            TrialAssessment(survival=TumourGrowthSurvival())
        )


def test_trial_assessment_selects_the_death_model_and_describes_it():
    a = TrialAssessment(survival=TumourGrowthSurvival())
    described = json.loads(json.dumps(a.describe()))
    assert described["survival"]["model"] == "TumourGrowthSurvival"
    assert described["survival"]["stein_prior"]["kg_per_week"] == 0.00651
    assert TrialAssessment().describe()["survival"] == described["survival"]  # the link is the default
    with pytest.raises(ParameterError, match="SurvivalModel or a TumourGrowthSurvival"):
        TrialAssessment(survival="weibull")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="distribution"):
        TumourGrowthSurvival(distribution="gompertz")
    with pytest.raises(ParameterError, match="scale"):
        TumourGrowthSurvival(scale=0.0)
