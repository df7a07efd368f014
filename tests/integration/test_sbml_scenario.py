"""An imported SBML model in scenario and study files (``[model] sbml = "model.xml"``, roles, units).

* End to end: the curated Kosinsky 2018 SBML through ``abscopal simulate scenario.toml --endpoints`` (control vs
  anti-PD-L1 10 nM), scored; the same patients on the hand re-expression (:func:`abscopal.kosinsky2018`) give the
  same PFS and response (without RT, TVd stays 0, so the hand model's ``total_volume`` equals the SBML's ``TV``).
* The model's own timed events fire in every arm (a small SBML file with one bolus, against the closed form).
* Provenance: the SBML file's path and sha256 in the dataset and the study design.
* Errors before any work, naming key, value and fix: unknown role, unknown output, missing file, a role whose unit
  the file does not give, library options, the shipped fit, arms or study axes with RT or a drug on a model without
  ``radiation_fraction`` / ``drug_dose`` events (or with an SBML event of that name, which takes no dose).
* Studies of an imported model (docs/studies.md, "Studies of an imported SBML model"): a 2-cell study of a small
  SBML model with a closed form (a decaying diameter, a timed bolus) scored from its ``lesion_diameter`` role against
  the closed form, outputs and report written, identical on a rerun; a fit made for the model; the options such a
  study refuses (RT, timing, site, NSCLC population keys, ...), each by key; slow: the Kosinsky 2018 SBML study
  against the hand re-expression (1e-6 relative required).

Run:  PYTHONPATH=src python -m pytest tests/integration/test_sbml_scenario.py -q
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("libsbml")

import abscopal as ab
from abscopal.cli import main
from abscopal.endpoints import RecistRules
from abscopal.endpoints.scans import ExplicitScans
from abscopal.errors import AbscopalError
from abscopal.scenario import load_scenario
from abscopal.studies.design import load_study
from abscopal.studies.run import prepare_study

KOSINSKY = Path(__file__).resolve().parents[1] / "data" / "kosinsky2018" / "Kosinsky2018.xml"
SHA256 = hashlib.sha256(KOSINSKY.read_bytes()).hexdigest()

MODEL = """
[model]
sbml = "models/Kosinsky2018.xml"
roles = { lesion_volume = "TV", tumour_burden = "TV" }
units = { TV = "uL" }
"""
ARMS = """
[simulation]
t_end_day = 120
output_interval_day = 1
[population]
n_patients = 8
seed = 3
[population.variability]
S_L = { omega = 0.696 }
[[arm]]
name = "control"
[[arm]]
name = "anti-PD-L1"
[arm.parameters]
mAb = 10.0
"""


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "models").mkdir()
    shutil.copy(KOSINSKY, tmp_path / "models" / "Kosinsky2018.xml")
    return tmp_path


def _write(folder: Path, text: str, name: str = "s.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.mark.slow  # 28 s; runs in CI's slow stage
def test_scenario_with_the_kosinsky_sbml_runs_end_to_end_and_is_scored(folder, capsys):
    toml = _write(folder, 'title = "Kosinsky SBML"\n' + MODEL + ARMS)
    out = folder / "out.nc"
    assert main(["-q", "simulate", str(toml), "--out", str(out), "--endpoints"]) == 0
    table = capsys.readouterr().out
    assert "control" in table and "anti-PD-L1" in table and "ORR" in table

    import xarray as xr

    with xr.open_dataset(out) as ds:
        ds.load()
    prov = json.loads(ds.attrs["provenance"])
    src = prov["model_source"]
    assert src["sbml_sha256"] == SHA256 and src["sbml"].endswith("models/Kosinsky2018.xml")
    assert src["roles"] == {"lesion_volume": "TV", "tumour_burden": "TV"} and src["units"] == {"TV": "uL"}
    assert ds.attrs["fit"].startswith("none")  # no fit key: an imported model runs at the file's values
    assert json.loads(ds.attrs["roles"])["lesion_volume"] == "TV"

    # the hand re-expression, same patients and arms: same tumour volume, so the same scores
    scenario = load_scenario(toml)
    hand = ab.simulate(
        ab.kosinsky2018(),
        scenario.arms,
        population=scenario.population,
        t_end_day=120.0,
        output_interval_day=1.0,
        solver=scenario.solver,
    )
    np.testing.assert_allclose(ds.TV.values, hand.total_volume.values, rtol=1e-5, atol=1e-6)
    # mouse scans and rules, as for the hand model in tests/integration/test_endpoints.py
    assessment = ab.TrialAssessment(
        scans=ExplicitScans(days=(7.0, 14.0, 21.0, 28.0, 35.0)),
        rules=RecistRules(measurable_mm=2.0, gone_mm=0.5, pd_absolute_mm=1.0),
        exclude_irradiated=False,
        lesion_sites=("soft_tissue",),
    )
    a, b = ab.score(ds, assessment), ab.score(hand, assessment)
    np.testing.assert_allclose(a.pfs_day.values, b.pfs_day.values, rtol=1e-6)  # deaths: continuous hazard
    for name in ("pfs_event", "objective_response"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert a.pfs_event.sel(arm="control").values.any()  # the untreated tumours grow


def test_a_string_model_is_an_sbml_file_without_roles(folder, capsys):
    toml = _write(folder, 'model = "models/Kosinsky2018.xml"\n' + ARMS)
    sc = load_scenario(toml)
    assert sc.model.state_names[0] == "TV" and dict(sc.model.roles) == {} and sc.fit is None
    assert sc.model_source["sbml_sha256"] == SHA256
    # --endpoints needs a lesion role: refused before any simulation
    assert main(["-q", "simulate", str(toml), "--out", str(folder / "x.nc"), "--endpoints"]) != 0
    assert "no 'lesion_diameter' or 'lesion_volume' role; give [model] roles" in capsys.readouterr().err
    assert not (folder / "x.nc").exists()


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (MODEL.replace("lesion_volume =", "lesion_vol ="), r"model\.roles: unknown role 'lesion_vol'; did you mean"),
        (MODEL.replace('"TV", tumour', '"TVX", tumour'), r"model\.roles\.lesion_volume = 'TVX': unknown output 'TVX'"),
        (MODEL.replace("models/", "elsewhere/"), r"model\.sbml = 'elsewhere/Kosinsky2018\.xml': no such file"),
        (MODEL.replace('units = { TV = "uL" }', ""), r"has units \['substance/volume'\].*units = \{ TV = \"uL\" \}"),
        (MODEL.replace("TV = ", "TQ = "), r"model\.units: unknown state, observable or parameter 'TQ'"),
        (MODEL + "n_lesions = 2\n", r"model: unknown key 'n_lesions'.*do not apply to an imported SBML model"),
        ('model = "nsclc"\n', r"must be an SBML file ending in \.xml; for a library model write \[model\]"),
        ('fit = "default"\n' + MODEL, r"shipped fit is a calibration of the library model 'nsclc'"),
    ],
)
def test_bad_model_tables_are_refused_by_key(folder, model, match):
    toml = _write(folder, model + ARMS)
    with pytest.raises(AbscopalError, match=match) as exc:
        load_scenario(toml)
    assert str(exc.value).startswith(str(toml))


@pytest.mark.parametrize(
    ("arm", "match"),
    [
        (
            '[[arm.radiation]]\nregimen = "sbrt_24gy_3fx"\n',
            r"gives RT, but the imported model .* no 'radiation_fraction'",
        ),
        ('drug = "pembrolizumab_200mg_q3w"\n', r"gives a drug, but the imported model .* no 'drug_dose' event"),
    ],
)
def test_arms_with_treatment_the_model_cannot_take_are_refused(folder, arm, match):
    toml = _write(folder, MODEL + ARMS.replace('name = "control"\n', 'name = "control"\n' + arm))
    with pytest.raises(AbscopalError, match=match) as exc:
        load_scenario(toml)
    assert "arm 'control'" in str(exc.value) and "without [[arm.radiation]] and drug" in str(exc.value)


BOLUS = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="bolus_model">
    <listOfUnitDefinitions>
      <unitDefinition id="mm" name="mm"><listOfUnits>
        <unit kind="metre" exponent="1" scale="-3" multiplier="1"/></listOfUnits></unitDefinition>
    </listOfUnitDefinitions>
    <listOfParameters>
      <parameter id="X" value="4" constant="false" units="mm"/>
      <parameter id="kel" value="0.1" constant="true"/>
    </listOfParameters>
    <listOfRules>
      <rateRule variable="X"><math xmlns="http://www.w3.org/1998/Math/MathML">
        <apply><times/><apply><minus/><ci>kel</ci></apply><ci>X</ci></apply></math></rateRule>
    </listOfRules>
    <listOfEvents>
      <event id="bolus" useValuesFromTriggerTime="false">
        <trigger initialValue="false" persistent="true"><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><geq/><csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/time">t</csymbol>
          <cn>3</cn></apply></math></trigger>
        <listOfEventAssignments><eventAssignment variable="X"><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><plus/><ci>X</ci><cn>5</cn></apply></math></eventAssignment></listOfEventAssignments>
      </event>
    </listOfEvents>
  </model>
</sbml>
"""


def test_the_models_own_timed_events_fire_in_every_arm(tmp_path):
    (tmp_path / "bolus.xml").write_text(BOLUS)
    toml = _write(
        tmp_path,
        '[model]\nsbml = "bolus.xml"\n[simulation]\nt_end_day = 6\noutput_times_day = [0, 2, 3, 5, 6]\n'
        '[[arm]]\nname = "a"\n[[arm]]\nname = "b"\n[arm.parameters]\nkel = 0.2\n',
    )
    sc = load_scenario(toml)
    assert [(t, n) for t, n, _ in sc.model_events] == [(3.0, "bolus")]
    ds = ab.simulate(sc.model, sc.arms, **sc.simulate_kwargs())
    for arm, kel in (("a", 0.1), ("b", 0.2)):
        want = [4 * math.exp(-kel * t) if t < 3 else (4 * math.exp(-3 * kel) + 5) * math.exp(-kel * (t - 3)) for t in
                (0, 2, 3, 5, 6)]  # fmt: skip
        np.testing.assert_allclose(ds.X.sel(arm=arm).values[0], want, rtol=1e-5)
    prov = json.loads(ds.attrs["provenance"])
    assert prov["model_events"] == [[3.0, "bolus", []]]
    assert prov["model_source"]["timed_events"] == [[3.0, "bolus"]]


STUDY = """
[population]
n_patients = 4
[assessment]
orr_visit_day = "best"
"""
DRUG_AXIS = '[axes]\ndrug = ["none", { label = "anti-PD-L1 10 nM", parameters = { mAb = 10.0 } }]\n'


def test_a_study_parses_an_imported_model_without_rt_or_drug_by_default(folder):
    toml = _write(folder, MODEL + STUDY + DRUG_AXIS, "study.toml")
    design = load_study(toml)
    assert design.fit is None  # no fit key: none
    assert design.model_sbml["sbml_sha256"] == SHA256
    assert design.describe()["model_sbml"]["roles"]["lesion_volume"] == "TV"
    assert "model_sbml" in design.canonical()
    assert design.population.mix is None and dict(design.variability) == {}  # no covariates, no variability
    assert design.shape == (1, 1, 1, 2)
    cells = design.cells()
    assert [c.has_rt for c in cells] == [False, False] and [c.drug.regimen for c in cells] == [None, None]
    assert [dict(c.drug.parameters) for c in cells] == [{}, {"mAb": 10.0}]
    assert cells[0].canonical() != cells[1].canonical()  # the parameters make the cells differ (and their keys)


MIX = STUDY.replace("n_patients = 4", 'n_patients = 4\nmix = "pembro_rt"')
STUDY_ERRORS = [
    # RT and drug regimens need events an SBML file cannot give; timing and site act only on RT
    (STUDY + '[axes]\nfractionation = ["sbrt_24gy_3fx"]\n', r"axes\.fractionation\[0\] \('sbrt_24gy_3fx'\) gives "
     r"RT.*no 'radiation_fraction'.*write axes\.fractionation = \[\"none\"\]"),
    (STUDY + '[axes]\ndrug = ["pembrolizumab_200mg_q3w"]\n', r"axes\.drug\[0\].*gives a drug.*no 'drug_dose'.*"
     r"parameter values"),
    (STUDY + '[treatment]\ndrug = "pembrolizumab_200mg_q3w"\n[axes]\nfractionation = ["none"]\n',
     r"treatment\.drug \('pembrolizumab_200mg_q3w'\) gives a drug.*write treatment\.drug = \"none\""),
    (STUDY + '[axes]\nsite = ["lung_primary"]\n', r"axes\.site: an imported SBML model takes no RT.*leave axes\.site "
     r"out"),
    (STUDY + '[axes]\ntiming = [-7, 0]\n', r"axes\.timing: an imported SBML model takes no RT.*leave axes\.timing out"),
    (STUDY + '[treatment]\nsalvage_delay_day = 7\n' + DRUG_AXIS, r"treatment\.salvage_delay_day: an imported SBML"),
    # NSCLC covariates do not apply; variability and drug parameters name the model's parameters
    (STUDY + '[population.variability]\nS_L = { omega = 0.7 }\n' + DRUG_AXIS, None),
    (MIX + DRUG_AXIS, r"population\.mix: describes NSCLC virtual patients"),
    (STUDY + '[population.variability]\nS_LL = { omega = 0.7 }\n' + DRUG_AXIS,
     r"population\.variability: unknown parameter of model .*'S_LL'; did you mean 'S_L'"),
    (STUDY + '[axes]\ndrug = [{ label = "x", parameters = { mab = 10.0 } }]\n',
     r"axes\.drug\[0\]\.parameters: unknown parameter of model .*'mab'; did you mean 'mAb'"),
    (STUDY + '[axes]\ndrug = [{ label = "x", parameters = { mAb = "10" } }]\n',
     r"axes\.drug\[0\]\.parameters\.mAb: must be a finite number"),
    # scoring: sites and RECIST thresholds
    (STUDY + '[assessment.rules]\nmeasurable = 2.0\n' + DRUG_AXIS,
     r"assessment\.rules: unknown key 'measurable'.*measurable_mm"),
    (STUDY + '[assessment.rules]\nmeasurable_mm = -2.0\n' + DRUG_AXIS, r"assessment\.rules.*measurable_mm"),
    (STUDY + '[assessment.rules]\nirecist = true\n' + DRUG_AXIS, r"assessment\.rules: unknown key 'irecist'"),
    (STUDY.replace('"best"', '"best"\nlesion_sites = ["livr"]') + DRUG_AXIS,
     r"assessment\.lesion_sites: unknown site 'livr'; did you mean 'liver'"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "match"), STUDY_ERRORS)
def test_study_options_an_imported_model_cannot_honour_are_refused_by_key(folder, body, match):
    toml = _write(folder, MODEL + body, "study.toml")
    if match is None:
        assert "S_L" in load_study(toml).variability
        return
    with pytest.raises(AbscopalError, match=match) as exc:
        load_study(toml)
    assert str(exc.value).startswith(str(toml))


@pytest.mark.parametrize(
    ("study", "match"),
    [
        ({"population": {"variability": {"effector_baseline": {"omega": 0.5}}}}, r"population\.variability: applies "
         r"to an imported SBML model"),
        ({"assessment": {"lesion_sites": ["liver"]}}, r"assessment\.lesion_sites: applies to an imported SBML model"),
        ({"assessment": {"rules": {"measurable_mm": 5}}}, r"assessment\.rules: applies to an imported SBML model"),
        ({"axes": {"drug": [{"label": "x", "parameters": {"max_kill_per_day": 0.1}}]}}, r"axes\.drug\[0\]\."
         r"parameters: a drug given as parameter values is for an imported SBML model"),
    ],
)  # fmt: skip
def test_imported_model_options_are_refused_for_the_library_model(study, match):
    from abscopal.studies.design import parse_study

    with pytest.raises(AbscopalError, match=match):
        parse_study({"axes": {"timing": [0]}} | study)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (MODEL.replace('roles = { lesion_volume = "TV", tumour_burden = "TV" }', ""), "scored only with a lesion"),
        ('fit = "default"\n' + MODEL, "shipped calibration of the library model 'nsclc'"),
        (MODEL.replace("models/", "nowhere/"), "no such file"),
    ],
)
def test_study_model_errors(folder, model, match):
    toml = _write(folder, model + STUDY + DRUG_AXIS, "study.toml")
    with pytest.raises(AbscopalError, match=match) as exc:
        load_study(toml)
    assert str(exc.value).startswith(str(toml))


def test_an_sbml_event_named_like_a_plan_event_is_refused_for_rt(tmp_path):
    """An SBML event called radiation_fraction takes no dose: RT on it would lose the plan's doses."""
    (tmp_path / "rt.xml").write_text(BOLUS.replace('id="bolus"', 'id="radiation_fraction"'))
    arms = '[[arm]]\nname = "rt"\n[[arm.radiation]]\nregimen = "sbrt_24gy_3fx"\n'
    toml = _write(tmp_path, '[model]\nsbml = "rt.xml"\n' + arms)
    with pytest.raises(AbscopalError, match=r"arm 'rt' gives RT, but the event 'radiation_fraction' of the imported "
                       r"model .* takes no dose argument"):  # fmt: skip
        load_scenario(toml)


def test_a_fit_for_another_model_or_a_mechanism_it_lacks_is_refused_before_any_work(folder, monkeypatch):
    import abscopal.arms as arms
    import abscopal.studies.run as run

    monkeypatch.setattr(arms, "simulate_prepared", lambda *a, **k: pytest.fail("simulated before validating"))
    monkeypatch.setattr(run, "compile_model", lambda *a, **k: pytest.fail("compiled before validating"))
    shipped = Path(__file__).resolve().parents[2] / "fits" / "default.json"
    toml = _write(folder, f"fit = {str(shipped)!r}\n" + MODEL + STUDY + DRUG_AXIS, "study.toml")
    with pytest.raises(AbscopalError, match=r"was made for model .*not for the model at hand"):
        prepare_study(load_study(toml))
    toml = _write(folder, MODEL + STUDY + '[simulation]\nmechanisms_off = ["rt_priming"]\n' + DRUG_AXIS, "s2.toml")
    with pytest.raises(AbscopalError, match=r"simulation\.mechanisms_off: unknown mechanism 'rt_priming'"):
        prepare_study(load_study(toml))


BOLUS_STUDY = """
title = "bolus model: two clearance levels"
[model]
sbml = "bolus.xml"
roles = { lesion_diameter = "X" }     # X is in mm in the file
[population]
n_patients = 8
seed = 11
[population.variability]
kel = { omega = 0.5 }
[assessment]
scan_interval_week = 1
orr_visit_day = "best"
lesion_sites = ["liver"]
[assessment.rules]
measurable_mm = 2.0
gone_mm = 0.5
[simulation]
t_end_day = 42
[axes]
drug = [{ label = "slow", parameters = { kel = 0.03 } }, { label = "fast", parameters = { kel = 0.3 } }]
"""


def _bolus_best_percent_change(kel: np.ndarray, scans_day: np.ndarray) -> np.ndarray:
    """Closed form of the bolus model (X(0) = 4 mm, dX/dt = -kel X, X += 5 mm at day 3), measured at the scans with
    RECIST's "gone" rule (a lesion below gone_mm = 0.5 mm is 0 mm): best % change of the diameter from baseline."""
    x = (4.0 * np.exp(-3.0 * kel[:, None]) + 5.0) * np.exp(-kel[:, None] * (scans_day - 3.0))
    x = np.where(x < 0.5, 0.0, x)
    return (x.min(axis=1) / 4.0 - 1.0) * 100.0


def test_a_study_of_an_imported_model_is_scored_from_its_lesion_role_and_reruns_identically(tmp_path):
    """End to end on a small imported model with a closed form: 2 cells (the drug axis as parameter values), the
    model's own timed event in every cell, per-patient log-normal clearance; responses scored from the
    lesion_diameter role with the study's RECIST thresholds match the closed form; outputs are written; a rerun
    with the same seed is identical and another seed is not."""
    from abscopal.population import LogNormal, VirtualPopulation
    from abscopal.studies import run_study, summary_table

    (tmp_path / "bolus.xml").write_text(BOLUS)
    toml = _write(tmp_path, BOLUS_STUDY, "study.toml")
    design = load_study(toml)
    ds = run_study(design, tmp_path / "out")
    z = VirtualPopulation(n_patients=8, seed=11, variability={"kel": LogNormal(omega=0.5)}).z[:, 0]
    scans = np.arange(7.0, 43.0, 7.0)  # weekly scans after the baseline on day 0 (no PD: the rise stays < 5 mm)
    for label, kel in (("slow", 0.03), ("fast", 0.3)):
        want = _bolus_best_percent_change(kel * np.exp(0.5 * z), scans)
        cell = ds.sel(timing="no RT", fractionation="no RT", site="no RT", drug=label, draw=0)
        np.testing.assert_allclose(cell.best_percent_change.values, want, rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(cell.objective_response.values.astype(bool), want <= -30.0)
        assert float(cell.orr) == pytest.approx(np.mean(want <= -30.0))
    slow = ds.sel(drug="slow", draw=0).objective_response.values
    assert 0 < slow.sum() < slow.size  # the slow level has responders and non-responders: a real test of the rule

    out = tmp_path / "out"
    for name in ("endpoints.nc", "summary.csv", "report.html", "study.json"):
        assert (out / name).exists(), name
    assert len(summary_table(ds)) == 2
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Simulated an imported SBML model" in report and "stage IV NSCLC were drawn" not in report
    manifest = json.loads((out / "study.json").read_text(encoding="utf-8"))
    prov = manifest["provenance"]
    assert prov["model_source"]["roles"] == {"lesion_diameter": "X"}
    assert prov["model_source"]["timed_events"] == [[3.0, "bolus"]]
    assert (
        "plain population without NSCLC covariates" in prov["mix_source"]
        and "kel LogNormal omega 0.5" in (prov["mix_source"])
    )

    again = run_study(load_study(toml), tmp_path / "again", report=False)
    for name in ds.data_vars:
        np.testing.assert_array_equal(again[name].values, ds[name].values, err_msg=name)
    other = run_study(load_study(toml, seed=12), None, report=False)
    assert not np.array_equal(other.best_percent_change.values, ds.best_percent_change.values)


KOSINSKY_STUDY = """
[population]
n_patients = 6
seed = 3
[population.variability]
S_L = { omega = 0.696 }
[assessment]
scan_interval_week = 1
orr_visit_day = "best"
lesion_sites = ["soft_tissue"]
[assessment.rules]                  # mouse tumours of 3-17 mm (as in tests/integration/test_endpoints.py)
measurable_mm = 2.0
gone_mm = 0.5
pd_absolute_mm = 1.0
[simulation]
t_end_day = 56
"""


@pytest.mark.slow  # compiles the imported model with TV in uL (about 30 s cold; shared with the scenario test above)
def test_a_kosinsky_sbml_study_runs_writes_outputs_reruns_identically_and_agrees_with_the_hand_model(folder):
    """The study on the imported Kosinsky 2018 SBML (2 cells: control, anti-PD-L1 10 nM) against the hand
    re-expression (abscopal.kosinsky2018) run on the same patients through simulate + score with the study's
    assessment: without RT, TVd stays 0, so the hand model's total_volume is the SBML's TV and the scores agree."""
    from abscopal.population import LogNormal, VirtualPopulation
    from abscopal.studies import run_study, summary_table

    toml = _write(folder, 'title = "Kosinsky 2018 (SBML)"\n' + MODEL + KOSINSKY_STUDY + DRUG_AXIS, "study.toml")
    design = load_study(toml)
    out = folder / "out"
    ds = run_study(design, out, report=False)
    for name in ("endpoints.nc", "summary.csv", "study.json"):
        assert (out / name).exists(), name
    rows = summary_table(ds)
    assert [r["drug"] for r in rows] == ["no drug", "anti-PD-L1 10 nM"]
    assert json.loads((out / "study.json").read_text())["provenance"]["model_source"]["sbml_sha256"] == SHA256

    setup = prepare_study(design)
    assessment = setup.tasks[0].assessment
    population = VirtualPopulation(n_patients=6, seed=3, variability={"S_L": LogNormal(omega=0.696)})
    arms = [ab.Arm(name="control", plan=ab.TreatmentPlan()), ab.Arm(name="mAb", plan=ab.TreatmentPlan(),
            parameters={"mAb": 10.0})]  # fmt: skip
    hand = ab.simulate(ab.kosinsky2018(), arms, population=population, t_end_day=56.0, output_interval_day=7.0,
                       solver=design.solver, out_of_bounds="clip")  # fmt: skip
    scored = ab.score(hand, assessment)
    for arm, label in (("control", "no drug"), ("mAb", "anti-PD-L1 10 nM")):
        cell, want = ds.sel(drug=label, draw=0).squeeze(), scored.sel(arm=arm)
        for name in ("best_percent_change", "pfs_day", "os_day"):
            np.testing.assert_allclose(cell[name].values, want[name].values, rtol=1e-6, err_msg=name)
        np.testing.assert_array_equal(cell.objective_response.values.astype(bool), want.objective_response.values)
    cells = ds.sel(draw=0).squeeze()
    assert np.all(cells.best_percent_change.values > 0)  # both arms grow (anti-PD-L1 alone: Kosinsky 2018)
    assert (
        cells.best_percent_change.sel(drug="anti-PD-L1 10 nM") < cells.best_percent_change.sel(drug="no drug")
    ).all()

    again = run_study(load_study(toml), folder / "again", report=False)
    for name in ds.data_vars:
        np.testing.assert_array_equal(again[name].values, ds[name].values, err_msg=name)


def test_a_calibration_made_for_the_imported_model_applies_like_parameter_values(tmp_path):
    """A fit file made for this very model (same content hash): its typical value and omega act as the same value
    given as a drug level's parameters and [population.variability] (the scenario files' precedence)."""
    from abscopal.calibrate.fit import Calibration
    from abscopal.studies import run_study

    (tmp_path / "bolus.xml").write_text(BOLUS)
    spec = load_study(_write(tmp_path, BOLUS_STUDY, "probe.toml")).imported.spec
    data = json.loads((Path(__file__).resolve().parents[2] / "fits" / "default.json").read_text(encoding="utf-8"))
    values = {"kel": 0.3, "omega__kel": 0.2}
    data |= {
        "values": values,
        "stderr": dict.fromkeys(values, 0.01),
        "correlations": {},
        "params_json": [
            {"name": k, "value": v, "vary": True, "min": 0.0, "max": 10.0, "stderr": 0.01, "expr": None, "correl": {}}
            for k, v in values.items()
        ],
        "predictions": [],
        "provenance": {"model_hash": spec.content_hash(), "model_name": spec.name, "n_lesions": spec.n_lesions},
        "identifiability": [],
    }
    (tmp_path / "fit.json").write_text(json.dumps(Calibration.from_dict(data).to_dict()), encoding="utf-8")
    base = BOLUS_STUDY.split("[axes]")[0]
    fitted = _write(tmp_path, 'fit = "fit.json"\n' + base + '[axes]\ndrug = ["none"]\n', "fitted.toml")
    by_hand = _write(
        tmp_path,
        base.replace("omega = 0.5", "omega = 0.2")
        + '[axes]\ndrug = [{ label = "no drug", parameters = { kel = 0.3 } }]\n',
        "by_hand.toml",
    )
    a, b = run_study(load_study(fitted), None, report=False), run_study(load_study(by_hand), None, report=False)
    np.testing.assert_allclose(a.best_percent_change.values, b.best_percent_change.values, rtol=1e-12)
    assert json.loads(a.attrs["provenance"])["fit_values"] == values
    unfitted = run_study(load_study(_write(tmp_path, base + '[axes]\ndrug = ["none"]\n', "none.toml")), None,
                         report=False)  # fmt: skip
    assert not np.allclose(unfitted.best_percent_change.values, a.best_percent_change.values)


def test_the_printed_summary_names_the_drug_level_of_each_cell():
    """The drug axis is the only one an imported model's study varies: the plain-text table must name it."""
    from abscopal.studies.table import format_summary

    row = dict.fromkeys(("orr", "median_pfs_month", "os_12mo", "pneumonitis_risk"), 0.5)
    rows = [row | {"timing": "no RT", "fractionation": "no RT", "site": "no RT", "drug": d} for d in ("slow", "fast")]
    lines = format_summary(rows).splitlines()
    assert "drug" in lines[0] and [ln.split()[6] for ln in lines[2:]] == ["slow", "fast"]
