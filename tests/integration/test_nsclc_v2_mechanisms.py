"""Model v2, items 2-5 and 7 of issue 11: each mechanism does what it is named for, and switched off removes it.

- Item 3, the immune route to unirradiated lesions: the priming signal rises with the dose per fraction (not
  saturated in the clinical range; the TREX1 decline above ~12 Gy), the kill responds to effector numbers, and
  SBRT + pembrolizumab shrinks an unirradiated lesion more than pembrolizumab alone only through the
  immunogenic-cell-death route (off: no gain; the debulking alone lowers the antigen-driven priming).
- Item 4, lymphocytes by blood dose: each fraction's mean blood dose and exposed share come from
  :func:`abscopal.blood_dose.fraction_exposure` on the course's reference field; the nadirs fall in the published
  ranges; the SBRT advantage over conventional fractionation out of the field disappears without the kill.
- Item 5, local control: a course sterilises a lesion (V = 0) only when its Poisson probability exp(-mu) exceeds
  the lesion's draw, at the course's last fraction; off, the LQ survival is applied to the volume (v1).
- Item 7: no radiation-driven macrophage switch by default.
- Time zero with a history: the drawn sizes hold at day 0 while the growth anchors stay the drawn sizes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from abscopal.blood_dose import fraction_exposure, reference_field
from abscopal.model import compile_model
from abscopal.model.library import nsclc_model
from abscopal.parameters import parameter_vector, resolve_values
from abscopal.simulate import Arm, plan_events, simulate
from abscopal.treatment import RadiationCourse, TreatmentPlan, drug_regimen, radiation_regimen

PEMBRO = drug_regimen("pembrolizumab_200mg_q3w")


@pytest.fixture(scope="module")
def v2():
    return compile_model(nsclc_model(3, version=2))


def _rt(name: str, start_day: float = 0.0, **kw) -> TreatmentPlan:
    return TreatmentPlan(radiation=(radiation_regimen(name, start_day=start_day, target_lesions=(0,), **kw),))


def _peak_dc_rise(model, regimens, off=()) -> np.ndarray:
    arms = [Arm(name="none", plan=TreatmentPlan())] + [Arm(name=r, plan=_rt(r)) for r in regimens]
    ds = simulate(model, arms, t_end_day=60.0, mechanisms_off=off)
    a = ds["A"].values[:, 0, :]
    return (a[1:] - a[0]).max(axis=1)


# ---- item 3: priming signal, kill, the out-of-field route ------------------------------------------------------------
def test_the_priming_signal_rises_with_the_dose_and_is_not_saturated(v2):
    rise = _peak_dc_rise(v2, ["sbrt_8gy_1fx", "sbrt_24gy_3fx"])
    assert rise[1] > 1.1 * rise[0] > 0  # three fractions of 8 Gy prime more than one
    a = simulate(v2, [Arm(name="x", plan=_rt("sbrt_24gy_3fx"))], t_end_day=60.0)["A"].values[0, 0]
    assert a.max() < 0.9  # the DC signal stays below saturation after SBRT (v1: ~0.99 for every regimen)
    assert a[0] == pytest.approx(0.1, rel=1e-12)  # resting DC level x0^2 / (1 + x0^2) with x0 = 1/3


def test_without_immunogenic_cell_death_rt_raises_no_priming_signal(v2):
    rise = _peak_dc_rise(v2, ["sbrt_24gy_3fx"], off=("immunogenic_cell_death",))
    assert rise[0] < 0.01 * _peak_dc_rise(v2, ["sbrt_24gy_3fx"])[0]


def test_the_trex1_decline_lowers_the_signal_of_a_single_20_gy_fraction(v2):
    big = TreatmentPlan(radiation=(RadiationCourse(dose_per_fraction_gy=20.0, n_fractions=1),))
    arms = [Arm(name="none", plan=TreatmentPlan()), Arm(name="20gy", plan=big)]
    on = simulate(v2, arms, t_end_day=30.0)["I"].values[1, 0].max()
    off = simulate(v2, arms, t_end_day=30.0, mechanisms_off=("trex1_decline",))["I"].values[1, 0].max()
    d, dt, h = 20.0, 12.0, 4.0  # defaults trex1_threshold_gy, trex1_hill
    assert on / off == pytest.approx(1.0 / (1.0 + (d / dt) ** h), rel=1e-9)


def test_the_kill_responds_to_effector_numbers_at_rest(v2):
    """d ln(kill) / d ln(E) at rest is kappa / (1 + kappa) = 2/3 (v1's fitted r/(1+r) ~ 0.99 gave ~0.01)."""
    spec = v2.spec
    p = parameter_vector(spec, resolve_values(spec, {"m1_kill_per_day": 0.0}, {}))
    y = v2.initial(p)
    i_v, i_e = spec.state_names.index("V_1"), spec.state_names.index("E")

    def kill_rate(scale: float) -> float:  # the growth is anchored at rest: dV/dt = g + (kill0 - kill) V
        z = y.copy()
        z[i_e] *= scale
        return float(v2.rhs(0.0, z, p)[i_v])

    g0, dk = kill_rate(1.0), kill_rate(1.0 + 1e-6)
    kappa = spec.parameter("kill_half_sat_relative").default
    sat0 = 1.0 / (1.0 + kappa)
    kill0 = spec.parameter("max_kill_per_day").default  # times access, suppression and PD-L1 inhibition at rest
    elasticity = (g0 - dk) / y[i_v] / 1e-6
    assert 0.0 < elasticity
    assert elasticity / (kill0 * sat0) < 1.0  # bounded by the saturation: not pinned at its maximum
    assert spec.parameter("kill_half_sat_relative").lower >= 0.25  # the kill at rest is at most 80% of maximum


def _out_of_field(model, off=()) -> dict[str, float]:
    arms = {
        "pembro": TreatmentPlan(drug=PEMBRO),
        "sbrt": TreatmentPlan(radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=-7.0),), drug=PEMBRO),
        "conv": TreatmentPlan(radiation=(radiation_regimen("conv_45gy_15fx", start_day=-7.0),), drug=PEMBRO),
    }
    ds = simulate(model, arms, t_end_day=84.0, start_day=-8.0, output_times_day=[-8.0, 84.0], mechanisms_off=off)
    d = ds["lesion_diameter"].values[:, 0, 1, -1]  # arm, lesion 1 (not irradiated), day 84
    return dict(zip(arms, d, strict=True))


def test_sbrt_shrinks_an_unirradiated_lesion_through_immunogenic_cell_death(v2):
    on = _out_of_field(v2)
    assert on["sbrt"] < on["pembro"] - 0.5  # mm: the abscopal gain
    off = _out_of_field(v2, off=("immunogenic_cell_death",))
    assert off["sbrt"] >= off["pembro"]  # without it the debulking alone lowers the antigen-driven priming


def test_sbrt_beats_conventional_out_of_field_through_lymphocyte_sparing(v2):
    on = _out_of_field(v2)
    assert on["sbrt"] < on["conv"] - 1.0
    off = _out_of_field(v2, off=("lymphocyte_kill",))
    assert abs(off["sbrt"] - off["conv"]) < 0.25 * abs(on["sbrt"] - on["conv"])


# ---- item 4: lymphocytes by blood dose -------------------------------------------------------------------------------
@pytest.mark.parametrize("regimen", ["sbrt_24gy_3fx", "conv_60gy_30fx"])
def test_each_fraction_carries_the_blood_flow_models_dose_and_exposed_share(v2, regimen):
    plan = _rt(regimen)
    course = plan.radiation[0]
    exp = fraction_exposure(course.dose_per_fraction_gy, reference_field(course))
    events = [e for e in plan_events(v2.spec, plan, 730.0) if e[1] == "radiation_fraction"]
    names = v2.spec.event("radiation_fraction").argument_names
    col = {n: names.index(n) for n in ("mean_blood_dose_gy", "exposed_blood_fraction", "course_last_fraction")}
    assert [e[2][col["mean_blood_dose_gy"]] for e in events] == [exp.mean_blood_dose_gy] * course.n_fractions
    assert [e[2][col["exposed_blood_fraction"]] for e in events] == [exp.exposed_blood_fraction] * course.n_fractions
    assert [e[2][col["course_last_fraction"]] for e in events] == [0.0] * (course.n_fractions - 1) + [1.0]


def _nadir(model, regimen: str, off=()) -> float:
    ds = simulate(model, [Arm(name=regimen, plan=_rt(regimen))], t_end_day=365.0, start_day=-1.0, mechanisms_off=off)
    lym = ds["L"].values[0, 0]
    return float(lym.min() / lym[0])


def test_nadirs_fall_in_the_published_ranges(v2):
    # lung SBRT: the issue's >= 0.7 (published ratios 0.50-0.65 are for larger fields; docs/blood_dose.md)
    assert _nadir(v2, "sbrt_24gy_3fx") >= 0.7 and _nadir(v2, "sbrt_50gy_4fx") >= 0.7
    # conventional thoracic 60 Gy / 30: ratios 0.29-0.33 (Chen 2020; docs/blood_dose.md)
    assert 0.2 <= _nadir(v2, "conv_60gy_30fx") <= 0.4


def test_without_lymphocyte_kill_the_count_does_not_fall(v2):
    assert _nadir(v2, "conv_60gy_30fx", off=("lymphocyte_kill",)) == pytest.approx(1.0, abs=1e-12)


# ---- item 5: local control ------------------------------------------------------------------------------------------
def _viable_after(model, plan: TreatmentPlan, values: dict[str, float], off=()) -> float:
    last = float(plan.radiation[0].fraction_days[-1])
    ds = simulate(
        model,
        [Arm(name="rt", plan=plan, parameters=values)],
        t_end_day=last + 1.0,
        output_times_day=sorted({0.0, last}),
        mechanisms_off=off,
    )
    return float(ds["viable_volume"].values[0, 0, 0, -1])


def test_sbrt_sterilises_and_palliative_rt_does_not(v2):
    assert _viable_after(v2, _rt("sbrt_50gy_4fx"), {}) == 0.0  # mu ~ 1e-4 surviving clonogens
    assert _viable_after(v2, _rt("conv_30gy_10fx"), {}) > 0.1  # mu ~ 1e3: clonogens survive and regrow


def test_the_sterilisation_follows_the_poisson_probability_and_the_draw(v2):
    """alpha chosen so that mu = 1 surviving clonogen after 20 Gy x 1 to lesion 0: sterilised iff q < exp(-1)."""
    v0 = nsclc_model(3, version=2).parameter("baseline_volume_mm3_0").default
    n0 = 1e7 * v0 / 1000.0  # clonogens at the default density
    alpha = math.log(n0) / (20.0 + 40.0)  # -ln S = alpha d + alpha / 10 d^2 = ln(n0)
    plan = TreatmentPlan(radiation=(RadiationCourse(dose_per_fraction_gy=20.0, n_fractions=1),))
    for q, sterilised in ((math.exp(-1.0) - 0.01, True), (math.exp(-1.0) + 0.01, False)):
        v = _viable_after(v2, plan, {"tumour_alpha_per_gy": alpha, "control_quantile_0": q})
        assert (v == 0.0) is sterilised, q
        if not sterilised:
            assert v == pytest.approx(v0 * math.exp(-alpha * 60.0), rel=1e-9)  # mu = 1: one clonogen
    off = _viable_after(v2, _rt("sbrt_50gy_4fx"), {}, off=("clonogen_sterilisation",))
    assert off > 0.0  # switched off: the LQ survival applied to the volume, as v1


def test_patients_draw_one_control_quantile_per_lesion():
    from abscopal.patients import MIXES, draw_patients

    mix = MIXES["pembro_rt"].capped(3)
    a = draw_patients(mix, 50, n_lesions=3, seed=4)
    b = draw_patients(mix, 50, n_lesions=3, seed=4)
    np.testing.assert_array_equal(a.control_quantile, b.control_quantile)
    assert a.control_quantile.shape == (50, 3) and 0.0 < a.control_quantile.min() < a.control_quantile.max() < 1.0
    spec = nsclc_model(3, version=2)
    P = a.population().parameter_matrix(spec, {p.name: p.default for p in spec.all_parameters})
    np.testing.assert_array_equal(P[:, spec.parameter_names.index("control_quantile_2")], a.control_quantile[:, 2])
    v1 = nsclc_model(3)  # v1 has no such parameter: the draw is ignored, not an error
    a.population().parameter_matrix(v1, {p.name: p.default for p in v1.all_parameters})


# ---- item 7: macrophages ---------------------------------------------------------------------------------------------
def test_rt_does_not_switch_macrophages_by_default(v2):
    arms = [Arm(name="none", plan=TreatmentPlan()), Arm(name="rt", plan=_rt("conv_30gy_10fx"))]
    ds = simulate(v2, arms, t_end_day=30.0, output_times_day=[0.0])
    m1 = ds["M1"].values[:, 0, 0]
    assert m1[1] == pytest.approx(m1[0], rel=1e-12)  # the day-0 fraction's jump leaves M1 unchanged


# ---- time zero with a history ----------------------------------------------------------------------------------------
def test_prior_rt_holds_the_drawn_sizes_at_day_0_and_keeps_the_growth_anchors(v2):
    prior = radiation_regimen("conv_30gy_10fx", start_day=-90.0, target_lesions=(0,), prior=True)
    plan = TreatmentPlan(radiation=(prior,), drug=PEMBRO)
    ds = simulate(v2, [Arm(name="prior", plan=plan)], t_end_day=84.0, output_times_day=[0.0, 84.0])
    spec = v2.spec
    drawn = np.array([spec.parameter(f"baseline_volume_mm3_{j}").default for j in range(3)])
    vol = ds["lesion_volume"].values[0, 0, :, 0]
    np.testing.assert_allclose(vol, drawn, rtol=1e-9)
    used = json_parameters(ds)
    assert [used[f"baseline_volume_mm3_{j}"] for j in range(3)] == pytest.approx(list(drawn), rel=1e-15)
    assert used["start_volume_factor_0"] > 1.0  # the irradiated lesion started larger


def json_parameters(ds) -> dict[str, float]:
    """The parameters of patient 0 as simulated (dataset variable ``parameter_value``)."""
    pv = ds["parameter_value"]
    names = [str(n) for n in pv["parameter"].values]
    vals = pv.values.reshape(-1, len(names))[0] if pv.ndim > 1 else pv.values
    return dict(zip(names, (float(v) for v in vals), strict=True))


# ---- item 6: the OS link reads the systemic disease ------------------------------------------------------------------
def test_the_os_link_reads_the_lesions_outside_the_field_even_when_the_trial_scores_all(v2):
    """A trial that scores every lesion for response (exclude_irradiated=False) still gets OS from the SLD of the
    lesions outside the field: sterilising the irradiated lesion must not move KG (and OS) by itself."""
    from dataclasses import replace

    from abscopal import score
    from abscopal.endpoints import TrialAssessment, TumourGrowthSurvival
    from abscopal.population import LogNormal, VirtualPopulation

    plan = TreatmentPlan(radiation=(radiation_regimen("sbrt_50gy_4fx", start_day=-7.0),), drug=PEMBRO)
    pop = VirtualPopulation(n_patients=40, variability={"max_kill_per_day": LogNormal(omega=0.7)}, seed=3)
    ds = simulate(v2, {"sbrt": plan}, population=pop, t_end_day=730.0, start_day=-8.0, output_interval_day=7.0)
    shrunk = ds.copy(deep=True)  # the irradiated lesion (0) replaced by one that vanishes at once
    lesion0 = shrunk["lesion_diameter"].values[:, :, 0, :]
    lesion0[..., shrunk.time.values > -7.0] = 0.0
    base = TrialAssessment(exclude_irradiated=False)
    a, b = score(ds, base), score(shrunk, base)
    np.testing.assert_array_equal(a.os_day.values, b.os_day.values)  # OS reads lesions 1 and 2 only
    assert not np.array_equal(a.best_percent_change.values, b.best_percent_change.values)  # response reads all
    both = replace(base, survival=TumourGrowthSurvival(irradiated_lesions_in_sld=True))
    assert not np.array_equal(score(ds, both).os_day.values, score(shrunk, both).os_day.values)
