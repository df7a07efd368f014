"""A fit made for another model (other lesion count, growth law or structure) is refused wherever a fit is applied:
scenario files, studies and the shared helper ``load_fit``, with an :class:`AbscopalError` naming the fit file, the
fit's model and the model at hand. All checks run before any compilation or simulation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abscopal.calibrate.fit import Calibration
from abscopal.errors import EXIT_CODES, AbscopalError
from abscopal.fitted.shipped import load_fit
from abscopal.model.library import nsclc_model
from abscopal.scenario import parse_scenario
from abscopal.studies.design import parse_study

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "fits" / "default.json"
ARM = [{"name": "pembro", "drug": "pembrolizumab_200mg_q3w"}]
STUDY = {"population": {"mix": "pembro_rt", "n_patients": 2}, "axes": {"timing": [0]}}


@pytest.fixture
def other_model_fit(tmp_path) -> Path:
    """The shipped fit, relabelled as made for the 2-lesion model."""
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    data["provenance"] |= {"n_lesions": 2, "model_hash": nsclc_model(2).content_hash()}
    path = tmp_path / "two_lesions.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _expect_refusal(path: Path, at_hand_lesions: int):
    return pytest.raises(
        AbscopalError,
        match=rf"fit file '{path}' was made for model .* with \d lesion\(s\) .*not "
        rf"for the model at hand, .* with {at_hand_lesions} lesion\(s\).*refit"
        rf".*fit = 'none'",
    )


def test_check_model_accepts_the_fit_model_and_refuses_another():
    cal = Calibration.load(SHIPPED)
    n = cal.provenance["n_lesions"]
    cal.check_model(nsclc_model(n), SHIPPED)  # no error
    with _expect_refusal(SHIPPED, n + 1):
        cal.check_model(nsclc_model(n + 1), SHIPPED)
    with pytest.raises(AbscopalError, match="does not name the model"):
        Calibration.from_dict(cal.to_dict() | {"provenance": {}}).check_model(nsclc_model(n), "hand.json")


def test_load_fit_checks_the_model_when_given(other_model_fit):
    assert load_fit(other_model_fit).provenance["n_lesions"] == 2  # without model=: loaded as before
    assert load_fit(other_model_fit, model=nsclc_model(2)) is not None
    with _expect_refusal(other_model_fit, 3):
        load_fit(other_model_fit, model=nsclc_model(3))
    assert load_fit("none", model=nsclc_model(3)) is None


def test_scenario_refuses_a_fit_of_another_model(other_model_fit):
    with _expect_refusal(other_model_fit, 3):
        parse_scenario({"fit": str(other_model_fit), "arm": ARM})
    ok = parse_scenario({"fit": str(other_model_fit), "model": {"name": "nsclc", "n_lesions": 2}, "arm": ARM})
    assert ok.fit == str(other_model_fit)
    with _expect_refusal(SHIPPED, 2):  # the shipped fit is for 3 lesions
        parse_scenario({"model": {"name": "nsclc", "n_lesions": 2}, "arm": ARM})
    assert parse_scenario({"fit": "none", "model": {"name": "nsclc", "n_lesions": 2}, "arm": ARM}).fit is None


def test_study_refuses_a_fit_of_another_model_before_compiling(monkeypatch):
    from abscopal.studies import run

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled before the fit's model was checked")

    monkeypatch.setattr(run, "compile_model", no_compile)
    for model in ({"n_lesions": 2}, {"growth": "logistic"}):
        with pytest.raises(AbscopalError, match=rf"fit file '{SHIPPED}' was made for model .*refit"):
            run.prepare_study(parse_study(STUDY | {"fit": "default", "model": model}))


def test_crossval_like_refuses_a_fit_of_another_model(other_model_fit, tmp_path, capsys):
    from abscopal.cli import main

    out = tmp_path / "cv.json"
    argv = ["crossval", str(ROOT / "fits" / "targets"), "--like", str(other_model_fit), "--out", str(out)]
    assert main(argv) == EXIT_CODES["input"]
    err = capsys.readouterr().err
    assert f"fit file '{other_model_fit}' was made for model" in err and "fit = 'none'" in err and not out.exists()
