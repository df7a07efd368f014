"""Model v2 (``nsclc_model(version=2)``, the default), item 1 of issue 11: the untreated steady state as the initial
state.

v1 stays bit-identical (its content hash is pinned) and runs by name (``version=1``). v2 has its own name, so
fits and kernels never mix the versions; the version option reaches ``get_model``, fit provenance, scenario and
study files and ``abscopal diagnose``. At rest (untreated, t = 0) every non-tumour state of v2 has a zero
derivative, for several patients (PD-L1 TPS 0, 0.5, 1; one lesion of 10, 30 or 100 mm) and parameter sets, with
any mechanism switched off; PD-L1 stays at its TPS-derived level; an untreated lesion doubles in
``tumour_doubling_time_day`` (within 10%). Treatment still acts, and switching a mechanism off removes its effect.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from abscopal.cli import main
from abscopal.diagnose import model_card
from abscopal.errors import AbscopalError, ModelError, ParameterError
from abscopal.model import compile_model
from abscopal.model.library import get_model, library_model, model_from_provenance, nsclc_model
from abscopal.model.library.nsclc_v2 import MECHANISMS_V2
from abscopal.parameters import parameter_vector, resolve_values
from abscopal.scenario import load_scenario
from abscopal.simulate import Arm, simulate
from abscopal.studies.design import parse_study
from abscopal.treatment import TreatmentPlan, drug_regimen, radiation_regimen

V1_HASH_3 = "6b43c5617f6ab1160cd6c1c7e37c07c638beb82309877f47ad9080e23a082856"
"""v1 with 3 lesions, as the shipped fit fits/default.json records it (also pinned in tests/unit/test_spec.py)."""

TPS = (0.0, 0.5, 1.0)
DIAMETERS_MM = (10.0, 30.0, 100.0)
TUMOUR_STATES = ("V_", "D_", "H")

FIT_LIKE = {
    "effector_baseline": 98.32,
    "max_kill_per_day": 0.04545,
    "new_lesion_rate_per_day": 0.000846,
    "tumour_doubling_time_day": 70.23,
}
"""The typical values of the shipped v1 fit (fits/default.json) that v2 still has, as one more parameter set."""
STRONG_IMMUNITY = {
    "max_kill_per_day": 0.5,
    "kill_half_sat_relative": 0.5,
    "m2_to_m1_ifng_per_day": 0.5,
    "macrophage_turnover_per_day": 0.01,
    "tnf_suppressor_kill": 2.0,
    "treg_burden_induction": 5.0,
    "pdl1_tps_zero_level": 0.3,
    "m1_kill_per_day": 0.05,
    "effector_baseline": 10.0,
}
"""Far from the defaults: a strong, fast immune response with strong suppression and macrophage conversion."""
PARAMETER_SETS = {"defaults": {}, "v1_fit": FIT_LIKE, "strong_immunity": STRONG_IMMUNITY}


@pytest.fixture(scope="module")
def v2():
    return compile_model(nsclc_model(3, version=2))


def _volume(d_mm: float) -> float:
    return math.pi / 6.0 * d_mm**3


def _one_lesion(tps: float, d_mm: float) -> dict[str, float]:
    """One lesion of ``d_mm`` (the others absent) and the PD-L1 TPS."""
    return {"pdl1_tps": tps, "baseline_volume_mm3_0": _volume(d_mm), "baseline_volume_mm3_1": 0.0,
            "baseline_volume_mm3_2": 0.0}  # fmt: skip


def _rest_rel(model, values: dict[str, float], off: tuple[str, ...] = ()) -> dict[str, float]:
    """|dy/dt| / max(|y|, abs_tol) at t = 0, untreated, for the non-tumour states."""
    spec = model.spec
    p = parameter_vector(spec, resolve_values(spec, values, {}, mechanisms_off=off))
    y = model.initial(p)
    dy = model.rhs(0.0, y, p)
    return {
        s.name: abs(float(dy[i])) / max(abs(float(y[i])), s.abs_tol)
        for i, s in enumerate(spec.states)
        if not s.name.startswith(TUMOUR_STATES)
    }


# ---- versions: v1 unchanged, v2 by name, the option everywhere -----------------------------------------------------
def test_v2_is_the_default_and_v1_is_unchanged():
    v1 = nsclc_model(3, version=1)
    assert v1.content_hash() == V1_HASH_3
    assert v1.name == "nsclc_rt_icb_3lesion_gompertz" and get_model("nsclc", version=1).content_hash() == V1_HASH_3
    assert nsclc_model(3).name == "nsclc_v2_rt_icb_3lesion_gompertz" == get_model("nsclc").name


def test_v2_has_its_own_name_hash_and_description():
    for growth in ("gompertz", "logistic", "exponential"):
        for pk, tail in (("analytic", ""), ("ode", "_odepk")):
            v1, v2 = nsclc_model(2, version=1, growth=growth, pk=pk), nsclc_model(2, version=2, growth=growth, pk=pk)
            assert v2.name == f"nsclc_v2_rt_icb_2lesion_{growth}{tail}" != v1.name
            assert v2.content_hash() != v1.content_hash()
    spec = get_model("nsclc", version=2, n_lesions=3)
    assert "Model v2" in spec.description and "[v2]" in spec.description
    assert spec.mechanism_names == tuple(m.name for m in MECHANISMS_V2)
    assert "antigen_priming" in spec.mechanism_names


@pytest.mark.parametrize("bad", [0, 3, "2", True, 2.5, None])
def test_an_unknown_version_is_refused_with_the_versions(bad):
    with pytest.raises(ModelError, match=r"nsclc model version must be one of \[1, 2\]"):
        nsclc_model(3, version=bad)
    with pytest.raises(ModelError, match="version"):
        get_model("nsclc", version=bad)


def test_every_v2_parameter_has_units_bounds_and_a_source():
    spec = nsclc_model(3, version=2)
    v1_names = set(nsclc_model(3, version=1).parameter_names)
    for p in spec.all_parameters:
        assert p.units and p.source and p.description, p.name
        assert (p.lower <= p.default <= p.upper and p.lower < p.upper) or p.name == "pk_cl_time_emax", p.name
    names = set(spec.parameter_names)
    assert v1_names - names == {
        "growth_reference_volume_mm3",
        "pdl1_ifng_half_sat",
        "kill_half_sat_ratio",
        "icd_yield_per_mm3",
        "dc_maturation_half_sat_per_day",
        "blood_fraction_exposed",
        "lql_transition_dose_gy",
        "on_lq_linear_high_dose",
    }
    per_lesion = {f"{stem}_{j}" for stem in ("control_quantile", "start_volume_factor") for j in range(3)}
    assert (
        names - v1_names
        == {
            "pdl1_tps_zero_level",
            "on_antigen_priming",
            "on_clonogen_sterilisation",
            "clonogen_density_per_cm3",
            "icd_signal_per_gy",
            "dc_rest_signal",
            "kill_half_sat_relative",
        }
        | per_lesion
    )
    assert spec.parameter("carrying_capacity_mm3").default == 1.0e7
    assert spec.parameter("lymphocyte_alpha_per_gy").default == 0.40  # Jin 2020
    assert spec.parameter("tumour_alpha_per_gy").default == 0.236  # tumour_control's LC calibration
    assert spec.parameter("macrophage_rt_shift").default == 0.0  # item 7: no dose -> M1 rule
    assert "assumption" in spec.parameter("pdl1_tps_zero_level").source


def test_the_library_finds_each_version_and_fit_provenance_rebuilds_it():
    v1, v2 = nsclc_model(2, version=1), nsclc_model(2, version=2)
    assert library_model(v1) == ("nsclc", {"n_lesions": 2, "version": 1})
    assert library_model(v2) == ("nsclc", {"n_lesions": 2, "version": 2})
    prov = {"model_name_library": "nsclc", "n_lesions": 2}
    assert model_from_provenance(prov).content_hash() == v1.content_hash()  # fits older than v2: version 1
    assert model_from_provenance(prov | {"model_version": 2}).content_hash() == v2.content_hash()
    assert model_from_provenance({"model_name_library": None, "n_lesions": 2}) is None


def test_scenario_and_study_files_take_the_version(tmp_path):
    arm = '[[arm]]\nname = "pembro"\ndrug = "pembrolizumab_200mg_q3w"\n'
    good = tmp_path / "v2.toml"
    good.write_text('fit = "none"\n[model]\nname = "nsclc"\nversion = 2\n' + arm)
    assert load_scenario(good).model.name == "nsclc_v2_rt_icb_3lesion_gompertz"
    bad = tmp_path / "v9.toml"
    bad.write_text('fit = "none"\n[model]\nversion = 9\n' + arm)
    with pytest.raises(ModelError, match=r"v9\.toml: nsclc model version must be one of \[1, 2\]"):
        load_scenario(bad)
    shipped = tmp_path / "shipped.toml"  # the shipped fit is for v2: refused for v1, never mixed
    shipped.write_text("[model]\nversion = 1\n" + arm)
    with pytest.raises(AbscopalError, match="was made for model 'nsclc_v2_rt_icb_3lesion_gompertz'"):
        load_scenario(shipped)
    axes = {"axes": {"fractionation": ["none"]}}
    assert parse_study({"model": {"version": 2}} | axes).model_version == 2
    assert parse_study(axes).model_version is None
    assert parse_study({"model": {"version": 2}} | axes).canonical() != parse_study(axes).canonical()
    bad_versions = (
        ({"version": 3}, r"model 'nsclc' has versions \[1, 2\]"),
        ({"version": 2.0}, r"model 'nsclc' has versions \[1, 2\] \(2: model v2\), not 2\.0"),
        ({"name": "kosinsky2018", "version": 2}, "only model 'nsclc' has versions"),
    )
    for model, match in bad_versions:
        with pytest.raises(AbscopalError, match=f"model.version: {match}"):
            parse_study({"model": model} | axes)


# ---- rest: the untreated steady state ------------------------------------------------------------------------------
@pytest.mark.parametrize("pset", list(PARAMETER_SETS))
def test_every_non_tumour_state_is_at_rest_at_t0(v2, pset):
    for tps in TPS:
        for d in DIAMETERS_MM:
            rel = _rest_rel(v2, PARAMETER_SETS[pset] | _one_lesion(tps, d))
            worst = max(rel, key=lambda k: rel[k])
            assert rel[worst] <= 1e-6, (pset, tps, d, worst, rel[worst])
    three = _rest_rel(v2, PARAMETER_SETS[pset] | {"pdl1_tps": 0.3})  # the default three lesions
    assert max(three.values()) <= 1e-6


def test_rest_holds_with_any_mechanism_switched_off(v2):
    for m in v2.spec.mechanism_names:
        rel = _rest_rel(v2, _one_lesion(0.5, 30.0), off=(m,))
        assert max(rel.values()) <= 1e-6, m


def test_v1_was_not_at_rest():
    """What item 1 fixes: in v1 the IFN-gamma term drives PD-L1 off its TPS at rest (and the macrophages)."""
    rel = _rest_rel(compile_model(nsclc_model(3, version=1)), {"pdl1_tps": 0.3})
    assert rel["P_0"] > 0.1 and rel["M1"] > 1e-3


def test_the_initial_state_is_the_tps_derived_pdl1_and_the_resting_macrophages(v2):
    spec = v2.spec
    for tps in TPS:
        p = parameter_vector(spec, resolve_values(spec, _one_lesion(tps, 30.0), {}))
        y = dict(zip(spec.state_names, v2.initial(p), strict=True))
        assert y["P_0"] == pytest.approx(0.1 + 0.9 * tps, abs=1e-15) and y["E"] == 1.0
        assert y["M1"] / (y["M1"] + y["M2"]) > 0.3  # the resting IFN-gamma M2-to-M1 conversion
        off = ("macrophage_polarisation",)
        p_off = parameter_vector(spec, resolve_values(spec, _one_lesion(tps, 30.0), mechanisms_off=off))
        y_off = dict(zip(spec.state_names, v2.initial(p_off), strict=True))
        assert y_off["M1"] / (y_off["M1"] + y_off["M2"]) == pytest.approx(0.3, rel=1e-12)


def _untreated(model, pset: dict[str, float], t_day: float, times=None):
    arms, cases = [], []
    for tps in TPS:
        for d in DIAMETERS_MM:
            arms.append(Arm(name=f"tps{tps}_d{d:g}", plan=TreatmentPlan(), parameters=pset | _one_lesion(tps, d)))
            cases.append((tps, d))
    times = np.array([0.0, 7.0, t_day]) if times is None else times
    return cases, simulate(model, arms, t_end_day=float(times[-1]), output_times_day=times)


@pytest.mark.parametrize("pset", ["defaults", "v1_fit"])
def test_pdl1_drifts_less_than_5_percent_in_7_untreated_days(v2, pset):
    cases, ds = _untreated(v2, PARAMETER_SETS[pset], 7.0, np.array([0.0, 7.0]))
    p = ds["pdl1"].values[:, 0, 0, :]  # arm, time (lesion 0)
    drift = np.abs(p[:, 1] - p[:, 0]) / np.maximum(p[:, 0], 1e-6)
    assert drift.max() <= 0.05, dict(zip(cases, drift.round(4), strict=True))
    assert np.allclose(p[:, 0], [0.1 + 0.9 * tps for tps, _ in cases])


@pytest.mark.parametrize("pset", ["defaults", "v1_fit"])
def test_the_untreated_doubling_time_is_the_parameter_within_10_percent(v2, pset):
    vdt = PARAMETER_SETS[pset].get("tumour_doubling_time_day", 100.0)
    cases, ds = _untreated(v2, PARAMETER_SETS[pset], vdt)
    vol = ds["lesion_volume"].values[:, 0, 0, :]  # arm, time
    sim = vdt * math.log(2.0) / np.log(vol[:, -1] / vol[:, 0])
    err = np.abs(sim / vdt - 1.0)
    assert err.max() <= 0.10, dict(zip(cases, sim.round(1), strict=True))


@pytest.mark.slow  # compiles three one-lesion variants (25 s each cold); runs in CI's slow stage
@pytest.mark.parametrize("growth", ["gompertz", "logistic", "exponential"])
def test_the_intrinsic_growth_doubles_a_baseline_lesion_in_exactly_the_doubling_time(growth):
    """With the immune kill held at rest (no effectors, no macrophage kill), growth alone: exact for every law."""
    model = compile_model(nsclc_model(1, version=2, growth=growth))
    frozen = {"max_kill_per_day": 0.0, "m1_kill_per_day": 0.0, "tumour_doubling_time_day": 60.0}
    for d in DIAMETERS_MM:
        ds = simulate(
            model,
            [Arm(name="a", plan=TreatmentPlan(), parameters=frozen | {"baseline_volume_mm3_0": _volume(d)})],
            t_end_day=60.0,
            output_times_day=np.array([0.0, 60.0]),
        )
        v = ds["lesion_volume"].values[0, 0, 0]
        assert v[1] / v[0] == pytest.approx(2.0, rel=1e-5), (growth, d)


# ---- treatment acts; a mechanism switched off removes its effect ---------------------------------------------------
def _arms_pembro_rt(pset: dict[str, float]) -> list[Arm]:
    base = pset | {"pdl1_tps": 0.5}
    return [
        Arm(name="untreated", plan=TreatmentPlan(), parameters=base),
        Arm(name="pembro", plan=TreatmentPlan(drug=drug_regimen("pembrolizumab_200mg_q3w")), parameters=base),
        Arm(
            name="rt",
            plan=TreatmentPlan(radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=0.0, target_lesions=(0,)),)),
            parameters=base,
        ),
    ]


def _run(model, off: tuple[str, ...] = (), pset: dict[str, float] | None = None):
    t = np.arange(0.0, 85.0, 7.0)
    return simulate(model, _arms_pembro_rt(pset or {}), t_end_day=84.0, output_times_day=t, mechanisms_off=off)


@pytest.fixture(scope="module")
def treated(v2):
    return _run(v2)


def test_pembrolizumab_slows_the_tumours_and_rt_kills_the_irradiated_lesion(treated):
    burden = treated["total_burden"].values[:, 0, :]  # arm, time
    untreated, pembro, _ = burden
    assert pembro[-1] < 0.95 * untreated[-1]  # slower growth (or shrinkage) on pembrolizumab
    lesion0 = treated["lesion_volume"].values[:, 0, 0, :]
    viable0 = treated["viable_volume"].values[:, 0, 0, :]
    assert viable0[2, 1] < 0.05 * viable0[0, 1]  # 3 x 8 Gy: few viable cells left in the irradiated lesion
    assert lesion0[2, -1] < lesion0[2, 0] < lesion0[0, -1]  # it shrinks as the doomed cells clear
    e = treated["E"].values[:, 0, :]
    assert e[1].max() > 1.05 * e[0].max()  # the blockade raises priming


def test_v2_fit_like_values_also_respond_to_pembrolizumab(v2):
    burden = _run(v2, pset=FIT_LIKE)["total_burden"].values[:, 0, :]
    assert burden[1, -1] < 0.9 * burden[0, -1]


def test_without_checkpoint_blockade_pembrolizumab_does_nothing(v2):
    ds = _run(v2, off=("checkpoint_blockade",))
    burden = ds["total_burden"].values[:, 0, :]
    np.testing.assert_allclose(burden[1], burden[0], rtol=1e-6)  # the drug doses only restart the solver


def test_without_ifng_pdl1_induction_pdl1_stays_at_its_tps_level_on_pembrolizumab(v2, treated):
    p_on = treated["pdl1"].values[1, 0, 0]  # pembro arm, lesion 0, time
    assert p_on.max() > 0.55 + 0.01  # adaptive resistance: IFN-gamma from the expanded effectors
    p_off = _run(v2, off=("ifng_pdl1",))["pdl1"].values[1, 0, 0]
    np.testing.assert_allclose(p_off, 0.55, rtol=1e-9)


def test_without_antigen_priming_the_effectors_do_not_follow_the_burden(v2):
    t = np.array([0.0, 200.0])
    arms = [Arm(name="untreated", plan=TreatmentPlan(), parameters={"pdl1_tps": 0.5})]
    on = simulate(v2, arms, t_end_day=200.0, output_times_day=t)
    off = simulate(v2, arms, t_end_day=200.0, output_times_day=t, mechanisms_off=("antigen_priming",))
    for ds in (on, off):
        assert float(ds["E"].values[0, 0, 0]) == pytest.approx(1.0, rel=1e-14)
    growth = float(on["total_burden"].values[0, 0, 1] / on["total_burden"].values[0, 0, 0])
    assert growth > 3.0
    assert float(on["E"].values[0, 0, 1]) == pytest.approx(growth, rel=0.1)  # E follows the antigen load
    assert float(off["E"].values[0, 0, 1]) < 1.0  # v1's priming: more burden, more suppression, fewer effectors
    r_on, r_off = (float(ds["effector_to_burden_ratio"].values[0, 0, 1]) for ds in (on, off))
    assert r_off < 0.5 * r_on


def test_rt_kill_is_pure_lq(treated):
    """The first 8 Gy fraction (day 0; the output at an event time is after its jump) leaves exp(-(alpha d +
    beta d^2)) of the viable cells (v2 is pure LQ, as the local-control anchors)."""
    alpha, ab = 0.236, 10.0
    v = treated["viable_volume"].values[:, 0, 0, 0]  # arm, at day 0
    assert v[2] / v[0] == pytest.approx(math.exp(-(alpha * 8.0 + alpha / ab * 64.0)), rel=1e-9)


# ---- the model card ------------------------------------------------------------------------------------------------
def test_the_v2_card_passes_every_rest_metric():
    card = model_card(fit="none", version=2, metrics=["rest."], n_patients=5)
    assert card.provenance["model"] == "nsclc_v2_rt_icb_3lesion_gompertz"
    for r in card.results:
        assert r.passed is True, (r.name, r.value)
    assert card["rest.max_rel_derivative_t0"].value <= 1e-9
    v1 = model_card(fit="none", version=1, metrics=["rest."], n_patients=5)
    assert all(r.passed is False for r in v1.results)


def test_the_card_refuses_a_version_that_does_not_exist():
    with pytest.raises(ParameterError, match=r"version: model 'nsclc' has versions \[1, 2\] \(2: model v2\), not 7"):
        model_card(fit="none", version=7, metrics=["parameters.n"], n_patients=5)
    with pytest.raises(ParameterError, match="version: only model 'nsclc' has versions"):
        model_card("kosinsky2018", fit="none", version=2, metrics=["parameters.n"], n_patients=5)
    with pytest.raises(AbscopalError, match="was made for model"):  # the shipped fit is for v2
        model_card(fit="default", version=1, metrics=["parameters.n"], n_patients=5)


def test_cli_diagnose_model_version_1_uses_the_v1_defaults(capsys):
    assert main(["diagnose", "--model-version", "1", "--metric", "rest.", "--patients", "5"]) == 0
    captured = capsys.readouterr()
    assert "nsclc_rt_icb_3lesion_gompertz" in captured.out and "fit none (model defaults)" in captured.out
    assert "0 pass, 3 fail" in captured.out  # v1 is not at rest
    assert "the shipped fit is for model 'nsclc' version 2, not 'nsclc' version 1" in captured.err
    assert main(["diagnose", "--model-version", "2", "--metric", "rest.", "--patients", "5"]) == 0
    out = capsys.readouterr().out
    assert "fits/default.json" in out and "3 pass, 0 fail" in out  # version 2 is the shipped fit's


@pytest.mark.parametrize("argv", [["--model-version", "3"], ["--model", "kosinsky2018", "--model-version", "2"]])
def test_cli_a_bad_model_version_is_one_line_naming_the_option(capsys, argv):
    assert main(["diagnose", *argv, "--metric", "parameters.n", "--patients", "5"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("abscopal: error: --model-version: ") and len(err) <= 2


def test_cli_model_and_cite_take_the_version(capsys):
    assert main(["model", "--model-version", "2", "--n-lesions", "2"]) == 0
    assert "Model nsclc_v2_rt_icb_2lesion_gompertz" in capsys.readouterr().out
    assert main(["cite", "--model-version", "2"]) == 0
    assert "nsclc_v2_rt_icb_3lesion_gompertz" in capsys.readouterr().out
    assert main(["model", "--model-version", "5"]) == 3
    assert "--model-version: model 'nsclc' has versions [1, 2]" in capsys.readouterr().err
