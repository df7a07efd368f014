"""``abscopal sbml export | import``: the written file is the model with the arm's treatment, bad input is one line
naming the argument and the fix (exit code 3, no traceback), outputs are atomic and never over an input."""

from __future__ import annotations

from pathlib import Path

import pytest

libsbml = pytest.importorskip("libsbml")

from abscopal.cli import main  # noqa: E402

KOSINSKY = Path(__file__).resolve().parents[1] / "data" / "kosinsky2018" / "Kosinsky2018.xml"
SCENARIO = """
title = "sbml export"
fit = "none"
[model]
name = "nsclc"
n_lesions = 2
[simulation]
t_end_day = 100
[parameters]
tumour_alpha_per_gy = 0.2
[[arm]]
name = "pembro"
drug = "pembrolizumab_200mg_q3w"
[[arm]]
name = "sbrt + pembro"
drug = "pembrolizumab_200mg_q3w"
[arm.parameters]
effector_baseline = 2.0
[[arm.radiation]]
regimen = "sbrt_24gy_3fx"
start_day = -7
target_lesions = [0]
"""


@pytest.fixture
def scenario(tmp_path) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    return path


def test_export_a_library_model(tmp_path, capsys):
    out = tmp_path / "m.xml"
    assert main(["sbml", "export", "nsclc", "--model-version", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "nsclc_v2_rt_icb_3lesion" in text and "0 events" in text and "0 errors" in text
    doc = libsbml.readSBMLFromFile(str(out))
    assert doc.getModel().getNumEvents() == 0 and doc.getModel().getParameter("V_2") is not None


def test_export_a_scenario_arm(tmp_path, scenario, capsys):
    out = tmp_path / "arm.xml"
    rc = main(
        ["-q", "sbml", "export", "nsclc", "--scenario", str(scenario), "--arm", "sbrt + pembro", "--out", str(out)]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "SBML time 0 = day -7" in text and "arm 'sbrt + pembro'" in text
    m = libsbml.readSBMLFromFile(str(out)).getModel()
    assert m.getNumEvents() == 3 + 5  # SBRT days -7, -5, -3; pembrolizumab days 0, 21, 42, 63, 84 (t_end_day 100)
    assert m.getParameter("tumour_alpha_per_gy").getValue() == 0.2  # [parameters]
    assert m.getParameter("effector_baseline").getValue() == 2.0  # [arm.parameters]
    assert m.getParameter("V_1") is not None and m.getParameter("V_2") is None  # n_lesions = 2


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["sbml", "export", "nosuch", "--out", "{tmp}/x.xml"], "MODEL 'nosuch' is not a library model"),
        (["sbml", "export", "nsclc", "--scenario", "{scenario}", "--out", "{tmp}/x.xml"], "choose one with --arm"),
        (["sbml", "export", "nsclc", "--scenario", "{scenario}", "--arm", "x", "--out", "{tmp}/x.xml"], "its arms"),
        (["sbml", "export", "nsclc", "--arm", "pembro", "--out", "{tmp}/x.xml"], "--arm 'pembro' needs --scenario"),
        (["sbml", "export", "kosinsky2018", "--scenario", "{scenario}", "--out", "{tmp}/x.xml"], "is not the model"),
        (["sbml", "export", "kosinsky2018", "--model-version", "2", "--out", "{tmp}/x.xml"], "only model 'nsclc'"),
        (["sbml", "export", "nsclc", "--scenario", "{scenario}", "--out", "{scenario}"], "input"),
        (["sbml", "import", "{tmp}/missing.xml"], "FILE '.*missing.xml' does not exist"),
        (["sbml", "import", "{scenario}"], "not valid SBML"),
    ],
    ids=[
        "model",
        "several arms",
        "unknown arm",
        "arm without scenario",
        "other model",
        "version",
        "over input",
        "missing",
        "not sbml",
    ],
)
def test_bad_input_is_one_line(tmp_path, scenario, capsys, argv, match):
    argv = [a.format(tmp=tmp_path, scenario=scenario) for a in argv]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.startswith("abscopal: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert pytest.importorskip("re").search(match, err), err


def test_export_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "m.xml"
    out.write_text("keep")
    assert main(["sbml", "export", "kosinsky2018", "--out", str(out)]) == 3
    assert "exists" in capsys.readouterr().err and out.read_text() == "keep"
    assert main(["-q", "sbml", "export", "kosinsky2018", "--out", str(out), "--force"]) == 0
    assert out.read_text().startswith("<?xml")
    assert [p.name for p in tmp_path.iterdir()] == ["m.xml"]  # no temporary file left behind


def test_import_prints_the_model_and_checks_it(capsys):
    assert main(["sbml", "import", str(KOSINSKY), "--check"]) == 0
    out = capsys.readouterr().out
    assert "6 states, 27 parameters, 1 observables, 0 events" in out
    assert "TV " in out and "a_sbml" in out and "note: renamed" in out
    assert "all values finite = True" in out


def test_import_of_an_unsupported_element_names_it(tmp_path, capsys):
    text = KOSINSKY.read_text().replace(
        "<listOfRules>",
        '<listOfRules><algebraicRule><math xmlns="http://www.w3.org/'
        '1998/Math/MathML"><ci> TV </ci></math></algebraicRule>',
        1,
    )
    path = tmp_path / "alg.xml"
    path.write_text(text)
    assert main(["sbml", "import", str(path)]) == 3
    err = capsys.readouterr().err
    assert "algebraic rule" in err and "outside abscopal's SBML subset" in err
