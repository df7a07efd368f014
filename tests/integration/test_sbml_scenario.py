"""An imported SBML model in scenario and study files (``[model] sbml = "model.xml"``, roles, units).

* End to end: the curated Kosinsky 2018 SBML through ``abscopal simulate scenario.toml --endpoints`` (control vs
  anti-PD-L1 10 nM), scored; the same patients on the hand re-expression (:func:`abscopal.kosinsky2018`) give the
  same PFS and response (without RT, TVd stays 0, so the hand model's ``total_volume`` equals the SBML's ``TV``).
* The model's own timed events fire in every arm (a small SBML file with one bolus, against the closed form).
* Provenance: the SBML file's path and sha256 in the dataset and the study design.
* Errors before any work, naming key, value and fix: unknown role, unknown output, missing file, a role whose unit
  the file does not give, library options, the shipped fit, arms or study axes with RT or a drug on a model without
  ``radiation_fraction`` / ``drug_dose`` events.

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
    <listOfParameters>
      <parameter id="X" value="4" constant="false"/>
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


def test_a_study_parses_an_imported_model_and_refuses_to_run_it(folder):
    toml = _write(folder, MODEL + STUDY + '[axes]\nfractionation = ["none"]\ndrug = ["none"]\n', "study.toml")
    design = load_study(toml)
    assert design.fit is None  # no fit key: none
    assert design.model_sbml["sbml_sha256"] == SHA256
    assert design.describe()["model_sbml"]["roles"]["lesion_volume"] == "TV"
    assert "model_sbml" in design.canonical()
    with pytest.raises(AbscopalError, match="studies draw NSCLC virtual patients"):
        prepare_study(design)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ('[axes]\ntiming = [-7, 0]\ndrug = ["none"]\n', r"axes\.fractionation\[0\] \('sbrt_24gy_3fx'\) gives RT.*"
         r"no 'radiation_fraction'.*the axis was not given"),
        ('[axes]\nfractionation = ["none"]\n', r"axes\.drug\[0\].*gives a drug.*no 'drug_dose'.*treatment\.drug"),
        ('[axes]\nfractionation = ["none"]\ndrug = ["none"]\n', None),
    ],
)  # fmt: skip
def test_study_axes_need_the_models_events(folder, extra, match):
    toml = _write(folder, MODEL + STUDY + extra, "study.toml")
    if match is None:
        load_study(toml)
        return
    with pytest.raises(AbscopalError, match=match):
        load_study(toml)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (MODEL.replace('roles = { lesion_volume = "TV", tumour_burden = "TV" }', ""), "scored only with a lesion"),
        ('fit = "default"\n' + MODEL, "shipped calibration of the library model 'nsclc'"),
        (MODEL.replace("models/", "nowhere/"), "no such file"),
    ],
)
def test_study_model_errors(folder, model, match):
    toml = _write(folder, model + STUDY + '[axes]\nfractionation = ["none"]\ndrug = ["none"]\n', "study.toml")
    with pytest.raises(AbscopalError, match=match) as exc:
        load_study(toml)
    assert str(exc.value).startswith(str(toml))
