"""Tests of abscopal.patients: virtual patients (covariates, lesions, plausibility, CRN draws, RT targets).

Statistical checks use n = 4000 patients and state their tolerance: proportions within 3 binomial standard
errors sqrt(p (1 - p) / n) (a false failure rate of about 0.3% per proportion, with fixed seeds so the
tests are deterministic), the SLD median within 5% of the requested value (its sampling SE is about
1.25 omega / sqrt(n) = 1% on the log scale).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import abscopal
from abscopal.errors import ParameterError, ScheduleError
from abscopal.model.library.nsclc import default_variability, nsclc_model
from abscopal.patients import (
    EVENT_DRAW_COLUMNS,
    HISTOLOGIES,
    LINES,
    MIXES,
    TPS_CATEGORIES,
    CovariateEffects,
    PlausibilityRules,
    draw_patients,
    irradiated_lesions,
)
from abscopal.population import LogNormal
from abscopal.treatment import TreatmentPlan, drug_regimen

N = 4000


@pytest.fixture(scope="module")
def mdacc_4000():
    """4000 MDACC patients (mixed lines, so every covariate has two levels)."""
    return draw_patients(MIXES["mdacc"], N, n_lesions=5, seed=11)


@pytest.fixture(scope="module")
def spec3():
    return nsclc_model(3)


def within_3_se(observed: np.ndarray, p: float, label: str) -> None:
    se = math.sqrt(p * (1 - p) / observed.size)
    assert abs(observed.mean() - p) <= 3 * se + 1e-12, f"{label}: {observed.mean():.4f} vs {p} (3 SE = {3 * se:.4f})"


# ------------------------------------------------------------------ distributions of the draws


def test_covariate_and_lesion_proportions_converge_to_the_mix(mdacc_4000):
    vp, mix = mdacc_4000, MIXES["mdacc"]
    for cat in TPS_CATEGORIES:
        within_3_se(vp.pdl1_category == cat, mix.pdl1_tps_mix.get(cat, 0.0), f"TPS {cat}")
    for line in LINES:
        within_3_se(vp.line_of_therapy == line, mix.line_of_therapy.get(line, 0.0), line)
    for hist in HISTOLOGIES:
        within_3_se(vp.histology == hist, mix.histology[hist], hist)
    counts = vp.present.sum(axis=1)
    for count, p in mix.lesion_count.items():
        within_3_se(counts == count, p, f"{count} lesions")
    metastases = vp.sites[:, 1:][vp.present[:, 1:]]  # sites are drawn independently per non-primary lesion
    for site, p in mix.metastasis_sites.items():
        within_3_se(metastases == site, p, f"site {site}")


def test_sld_median_matches_the_mix_within_5_percent(mdacc_4000):
    for vp in (mdacc_4000, draw_patients(MIXES["first_line_pdl1_high"], N, n_lesions=5, seed=5)):
        median = float(np.median(vp.baseline_sld_mm))
        assert median == pytest.approx(vp.mix.baseline_sld_median_mm, rel=0.05), vp.mix.name


def test_lesions_measurable_primary_in_lung_absent_lesions_empty(mdacc_4000):
    vp = mdacc_4000
    d, present = vp.baseline_diameter_mm, vp.present
    assert np.all(d[present] >= 10.0 - 1e-9) and np.all(d[present] <= 100.0 + 1e-9)  # mix size range, 1e-9 mm slack
    assert np.all(vp.sites[:, 0] == "lung") and np.all(present[:, 0])
    assert np.all(d[~present] == 0.0) and np.all(vp.sites[~present] == "")
    assert np.all(np.diff(present.astype(int), axis=1) <= 0)  # lesions 0..m-1 present, the rest absent
    np.testing.assert_allclose(vp.baseline_sld_mm, d.sum(axis=1), rtol=0, atol=1e-12)
    assert vp.size_rejections.sum() > 0  # splits with a lesion above 100 mm happen and are counted


def test_tps_scores_lie_in_their_categories(mdacc_4000):
    vp = mdacc_4000
    for cat, (low, high) in CovariateEffects().tps_ranges.items():
        tps = vp.pdl1_tps[vp.pdl1_category == cat]
        assert tps.size > 0 and np.all((tps >= low) & (tps <= high)), cat


def test_event_draws_are_exp1(mdacc_4000):
    e = mdacc_4000.event_draws
    assert e.shape == (N, len(EVENT_DRAW_COLUMNS)) and np.all(e > 0)
    np.testing.assert_allclose(e.mean(axis=0), 1.0, atol=4 / math.sqrt(N))  # Exp(1): SD 1, so 4 SE


# ------------------------------------------------------------------ reproducibility


def test_patient_k_is_the_same_whatever_n():
    small = draw_patients(MIXES["pembro_rt"], 5, n_lesions=5, seed=3)
    large = draw_patients(MIXES["pembro_rt"], 50, n_lesions=5, seed=3)
    for key, value in small.table().items():
        np.testing.assert_array_equal(value, large.table()[key][:5], err_msg=key)
    for key, value in large.subset(5).table().items():
        np.testing.assert_array_equal(value, small.table()[key], err_msg=key)
    assert large.subset(5).rejected_draws == small.rejected_draws


def test_draws_are_deterministic_and_depend_on_the_seed():
    a, b = (draw_patients(MIXES["pembro_rt"], 30, n_lesions=5, seed=8) for _ in range(2))
    for key, value in a.table().items():
        np.testing.assert_array_equal(value, b.table()[key], err_msg=key)
    c = draw_patients(MIXES["pembro_rt"], 30, n_lesions=5, seed=9)
    assert not np.array_equal(a.baseline_diameter_mm, c.baseline_diameter_mm)
    assert not np.array_equal(a.z, c.z)


def test_population_carries_lesions_tps_multipliers_and_stored_draws(spec3):
    vp = draw_patients(MIXES["pembro_rt"].capped(3), 20, n_lesions=3, seed=4)
    pop = vp.population()
    np.testing.assert_array_equal(pop.z, vp.z)
    volume = math.pi / 6 * vp.baseline_diameter_mm[:, 1] ** 3
    np.testing.assert_allclose(pop.per_patient["baseline_volume_mm3_1"], volume, rtol=1e-12)
    np.testing.assert_array_equal(pop.per_patient["pdl1_tps"], vp.pdl1_tps)
    # new omegas (same parameters, same order) keep the draws: the same patients under new parameters
    wider = {k: LogNormal(omega=2 * v.omega) for k, v in vp.variability.items()}
    np.testing.assert_array_equal(vp.population(variability=wider).z, vp.z)
    with pytest.raises(ParameterError, match="in this order"):
        vp.population(variability={"effector_baseline": LogNormal(omega=1.0)})
    P = pop.parameter_matrix(spec3, spec3.default_values())
    vdt = P[:, spec3.parameter_names.index("tumour_doubling_time_day")]
    np.testing.assert_allclose(vdt, vp.untreated_vdt_day, rtol=1e-12)


# ------------------------------------------------------------------ plausibility rules


def test_plausibility_rejects_and_counts_draws_outside_the_vdt_range(spec3):
    wide = {"tumour_doubling_time_day": LogNormal(omega=2.0), "effector_baseline": LogNormal(omega=1.0)}
    vp = draw_patients(MIXES["pembro_rt"].capped(3), 300, n_lesions=3, seed=2, variability=wide)
    # P(outside 20-1000 d) at omega 2 is 0.34 (typical 100 d, adeno) or 0.45 (33 d, squamous): about 0.6
    # rejected draws per patient, so about 180 expected here
    assert vp.rejected_draws > 100
    assert vp.rejected_draws == int(vp.vdt_rejections.sum())
    P = vp.population().parameter_matrix(spec3, spec3.default_values())
    vdt = P[:, spec3.parameter_names.index("tumour_doubling_time_day")]
    assert np.all((vdt >= 20.0) & (vdt <= 1000.0))
    # a rejected patient's accepted draw comes from its stream (k, attempt), attempt = number of rejections
    k = int(np.argmax(vp.vdt_rejections))
    rng = np.random.default_rng(np.random.SeedSequence(2, spawn_key=(k, int(vp.vdt_rejections[k]))))
    np.testing.assert_array_equal(vp.z[k], rng.standard_normal(2))


def test_plausibility_cap_raises_naming_the_patient():
    rules = PlausibilityRules(vdt_range_day=(99.0, 101.0), max_attempts=2)
    with pytest.raises(ParameterError, match=r"patient \d+: no tumour_doubling_time_day within"):
        draw_patients(
            MIXES["pembro_rt"],
            50,
            n_lesions=5,
            seed=0,
            plausibility=rules,
            variability={"tumour_doubling_time_day": LogNormal(omega=1.0)},
        )


def test_correlated_draws():
    rho = 0.8
    vp = draw_patients(
        MIXES["pembro_rt"],
        2000,
        n_lesions=5,
        seed=6,
        variability={"tumour_doubling_time_day": LogNormal(omega=0.3), "max_kill_per_day": LogNormal(omega=0.5)},
        correlation=np.array([[1.0, rho], [rho, 1.0]]),
        plausibility=PlausibilityRules(vdt_range_day=(1.0, 1e5)),
    )
    assert vp.rejected_draws == 0
    # SE of a sample correlation about (1 - rho^2) / sqrt(n) = 0.008; tolerance 0.04 = 5 SE
    assert np.corrcoef(vp.z.T)[0, 1] == pytest.approx(rho, abs=0.04)
    with pytest.raises(ParameterError, match="positive definite"):  # equicorrelation -0.5 < -1/3 of 4 parameters
        draw_patients(MIXES["pembro_rt"], 5, n_lesions=5, seed=6, correlation=1.5 * np.eye(4) - 0.5)


# ------------------------------------------------------------------ covariate effects


def test_covariate_multipliers_applied_with_variability_off(spec3):
    vp = draw_patients(MIXES["mdacc"].capped(3), 200, n_lesions=3, seed=1, variability={})
    assert vp.z.shape == (200, 0) and vp.rejected_draws == 0
    P = vp.population().parameter_matrix(spec3, typical := spec3.default_values())
    eff = P[:, spec3.parameter_names.index("effector_baseline")]
    vdt = P[:, spec3.parameter_names.index("tumour_doubling_time_day")]
    pre, sq = vp.line_of_therapy == "pretreated", vp.histology == "squamous"
    assert pre.any() and (~pre).any() and sq.any() and (~sq).any()
    np.testing.assert_allclose(eff[pre], typical["effector_baseline"] * math.exp(-0.3), rtol=1e-12)
    np.testing.assert_allclose(eff[~pre], typical["effector_baseline"], rtol=1e-12)
    np.testing.assert_allclose(vdt[sq], typical["tumour_doubling_time_day"] * 0.0034 / 0.0103, rtol=1e-12)
    np.testing.assert_allclose(vdt[~sq], typical["tumour_doubling_time_day"], rtol=1e-12)
    # refit effects on the same patients: new multipliers, same covariates
    other = CovariateEffects(pretreated_log_effect={"max_kill_per_day": 0.5}, squamous_log_effect={})
    mult = vp.population(effects=other).multipliers
    assert set(mult) == {"max_kill_per_day"}
    np.testing.assert_allclose(mult["max_kill_per_day"], np.where(pre, math.exp(0.5), 1.0), rtol=1e-12)


def test_tps_ranges_are_refittable_on_the_same_patients():
    vp = draw_patients(MIXES["pembro_rt"], 40, n_lesions=5, seed=2)
    narrow = CovariateEffects(tps_ranges={"<1%": (0.0, 0.0), "1-49%": (0.2, 0.2), ">=50%": (0.9, 0.9)})
    tps = vp.population(effects=narrow).per_patient["pdl1_tps"]
    np.testing.assert_allclose(
        tps, np.select([vp.pdl1_category == c for c in TPS_CATEGORIES], [0.0, 0.2, 0.9]), rtol=0, atol=1e-12
    )


# ------------------------------------------------------------------ RT target rules


def test_rt_target_rules():
    vp = draw_patients(MIXES["pembro_rt"], 40, n_lesions=5, seed=7)
    lung = irradiated_lesions(vp, "lung_primary")
    assert lung.shape == (40, 5) and np.all(lung[:, 0]) and lung.sum() == 40
    largest = irradiated_lesions(vp, "largest")
    assert np.all(largest.sum(axis=1) == 1)
    np.testing.assert_array_equal(vp.baseline_diameter_mm[largest], vp.baseline_diameter_mm.max(axis=1))
    explicit = irradiated_lesions(vp, (0, 1))  # pembro_rt patients have >= 2 lesions
    assert np.all(explicit[:, :2]) and not explicit[:, 2:].any()
    only_lung = dataclasses.replace(MIXES["pembro_rt"], metastasis_sites={"lung": 0.5, "bone": 0.5})
    vp2 = draw_patients(only_lung, 200, n_lesions=5, seed=7)
    site = irradiated_lesions(vp2, "lung")  # largest lung lesion; the primary always qualifies
    lung_sizes = np.where(vp2.sites == "lung", vp2.baseline_diameter_mm, -np.inf).max(axis=1)
    np.testing.assert_array_equal(vp2.baseline_diameter_mm[site], lung_sizes)
    assert (site[:, 1:].any(axis=1)).any()  # sometimes a lung metastasis is larger than the primary


def test_rt_target_rule_errors():
    vp = draw_patients(MIXES["pembro_rt"], 40, n_lesions=5, seed=7)
    with pytest.raises(ScheduleError, match=r"RT target rule 'brain': patient \d+ has no brain lesion"):
        irradiated_lesions(vp, "brain")
    with pytest.raises(ScheduleError, match="5 is not a lesion index of 5 lesions"):
        irradiated_lesions(vp, (0, 5))
    with pytest.raises(ScheduleError, match=r"patient \d+ lacks lesion\(s\) \[4\]"):
        irradiated_lesions(vp, (4,))
    with pytest.raises(ScheduleError, match="did you mean 'lymph_node'"):
        irradiated_lesions(vp, "lymph_nodes")


# ------------------------------------------------------------------ bad input


def test_bad_mix_input():
    base = MIXES["pembro_rt"]
    with pytest.raises(ParameterError, match="metastasis_sites: unknown level 'livr'; did you mean 'liver'"):
        dataclasses.replace(base, metastasis_sites={"livr": 0.5, "bone": 0.5})
    with pytest.raises(ParameterError, match=r"pdl1_tps_mix probabilities must sum to 1 \(within 1e-9\)"):
        dataclasses.replace(base, pdl1_tps_mix={"<1%": 0.5, ">=50%": 0.4})
    with pytest.raises(ParameterError, match="line_of_therapy: unknown level 'pretrated'"):
        dataclasses.replace(base, line_of_therapy={"pretrated": 1.0})
    with pytest.raises(ParameterError, match="lesion_count key must be an integer >= 1"):
        dataclasses.replace(base, lesion_count={0: 1.0})
    with pytest.raises(ParameterError, match="cannot be the median SLD"):
        dataclasses.replace(base, baseline_sld_median_mm=12.0)  # every patient has >= 2 lesions of >= 10 mm
    with pytest.raises(ParameterError, match="baseline_sld_omega must be > 0"):
        dataclasses.replace(base, baseline_sld_omega=0.0)
    assert base.capped(3).lesion_count == {2: 0.35, 3: 0.65}


def test_bad_draw_input():
    mix = MIXES["pembro_rt"]
    with pytest.raises(ParameterError, match=r"n_lesions = 3; use mix\.capped"):
        draw_patients(mix, 5, n_lesions=3, seed=0)
    with pytest.raises(ParameterError, match="n_patients must be an integer >= 1, got -2"):
        draw_patients(mix, -2, n_lesions=5, seed=0)
    with pytest.raises(ParameterError, match="seed must be an integer >= 0"):
        draw_patients(mix, 5, n_lesions=5, seed=-1)
    with pytest.raises(ParameterError, match="unknown parameter 'effector_baseln'; did you mean 'effector_baseline'"):
        draw_patients(
            mix, 5, n_lesions=5, seed=0, effects=CovariateEffects(pretreated_log_effect={"effector_baseln": -0.3})
        )
    with pytest.raises(ParameterError, match="'pdl1_tps' is set per patient"):
        draw_patients(mix, 5, n_lesions=5, seed=0, variability=default_variability())
    with pytest.raises(ParameterError, match="tps_ranges must give"):
        CovariateEffects(tps_ranges={"<1%": (0.0, 0.01)})
    with pytest.raises(ParameterError, match=r"vdt_range_day\[1\] must be > 100"):
        PlausibilityRules(vdt_range_day=(100.0, 50.0))
    with pytest.raises(ParameterError, match="n_patients must be an integer >= 1 and <= 5"):
        draw_patients(mix, 5, n_lesions=5, seed=0).subset(6)


# ------------------------------------------------------------------ integration smoke test


def test_simulate_smoke_absent_lesions_stay_empty(nsclc3):
    one_lesion = dataclasses.replace(MIXES["first_line_pdl1_high"], lesion_count={1: 0.5, 3: 0.5})
    vp = draw_patients(one_lesion, 6, n_lesions=3, seed=12)
    assert (~vp.present).any() and vp.present[:, 2].any()
    ds = abscopal.simulate(
        nsclc3,
        {"pembro": TreatmentPlan(drug=drug_regimen("pembrolizumab_200mg_q3w"))},
        population=vp.population(),
        t_end_day=84,
        output_interval_day=42,
    )
    vol = ds["lesion_volume"].sel(arm="pembro").values  # (patient, lesion, time)
    assert np.all(np.isfinite(vol))
    assert np.all(vol[~vp.present] == 0.0)  # absent lesions never grow (V = 0 is a fixed point)
    assert np.all(vol[vp.present] > 0.0)
    np.testing.assert_allclose(vol[..., 0], math.pi / 6 * vp.baseline_diameter_mm**3, rtol=1e-9)


def test_place_rt_targets_moves_the_chosen_lesion_to_the_front():
    from abscopal.patients import MIXES, draw_patients, irradiated_lesions
    from abscopal.targeting import place_rt_targets

    vp = draw_patients(MIXES["pembro_rt"].capped(3), 40, n_lesions=3, seed=4)
    placed, targets = place_rt_targets(vp, "largest")
    assert targets == (0,)
    largest = vp.baseline_diameter_mm.max(axis=1)
    np.testing.assert_array_equal(placed.baseline_diameter_mm[:, 0], largest)  # exact: values are moved
    np.testing.assert_array_equal(irradiated_lesions(placed, "largest")[:, 0], True)
    # the same multiset of lesions per patient, sites travel with their lesion
    for p in range(40):
        assert sorted(zip(vp.sites[p], vp.baseline_diameter_mm[p], strict=True)) == sorted(
            zip(placed.sites[p], placed.baseline_diameter_mm[p], strict=True)
        )
    # everything else is unchanged (same draws, same covariates)
    np.testing.assert_array_equal(placed.z, vp.z)
    np.testing.assert_array_equal(placed.event_draws, vp.event_draws)


def test_place_rt_targets_several_lesions_and_largest_metastasis():
    from abscopal.patients import MIXES, draw_patients
    from abscopal.targeting import place_rt_targets

    vp = draw_patients(MIXES["first_line_pdl1_high"].capped(4), 60, n_lesions=4, seed=5)
    placed, targets = place_rt_targets(vp, "lung_primary", n_lesions=3)
    assert targets == (0, 1, 2)
    for p in range(60):
        n_present = int(vp.present[p].sum())
        # the primary stays first; then the largest other present lesions; every present lesion is kept
        assert placed.baseline_diameter_mm[p, 0] == vp.baseline_diameter_mm[p, 0]
        others = sorted(vp.baseline_diameter_mm[p, 1:][vp.present[p, 1:]], reverse=True)
        want = others[:2]
        got = sorted(placed.baseline_diameter_mm[p, 1:3][placed.present[p, 1:3]], reverse=True)
        assert got == want[: max(0, min(2, n_present - 1))]
        assert int(placed.present[p].sum()) == n_present
    with pytest.raises(ScheduleError, match="has no largest_metastasis lesion"):
        place_rt_targets(vp, "largest_metastasis")  # some first-line patients have the primary only
    vp = draw_patients(MIXES["pembro_rt"].capped(4), 60, n_lesions=4, seed=5)  # >= 2 lesions each
    meta, t = place_rt_targets(vp, "largest_metastasis")
    assert t == (0,)
    has_meta = vp.present[:, 1:].any(axis=1)
    np.testing.assert_array_equal(
        meta.baseline_diameter_mm[has_meta, 0],
        np.where(vp.present[:, 1:], vp.baseline_diameter_mm[:, 1:], -1).max(axis=1)[has_meta],
    )
    with pytest.raises(ScheduleError, match="n_lesions = 5 irradiated lesions"):
        place_rt_targets(vp, "largest", n_lesions=5)
