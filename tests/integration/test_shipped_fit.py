"""The shipped calibration ``fits/default.json``: it belongs to the current model and targets, reproduces its own
predictions, carries a usable covariance and profiles, and is what scenario files and studies use by default."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from abscopal.calibrate import Calibration, parameter_draws
from abscopal.calibrate.objective import DEFAULT_FREE
from abscopal.calibrate.shipped import default_fit_path, load_fit, resolve_fit_path
from abscopal.model.library import nsclc_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shipped() -> Calibration:
    return Calibration.load(ROOT / "fits" / "default.json")


def test_shipped_fit_is_found_and_matches_the_current_model_and_targets(shipped):
    assert default_fit_path() == ROOT / "fits" / "default.json"
    assert resolve_fit_path("none") is None and load_fit("none") is None
    # a model change without a refit must fail here: the fit's predictions would silently no longer hold
    assert shipped.provenance["model_hash"] == nsclc_model(shipped.provenance["n_lesions"]).content_hash()
    problem = shipped.problem()  # raises if any target file changed since the fit
    assert {t.id for t in problem.targets} == set(shipped.provenance["targets"])
    assert set(shipped.provenance["free"]) == set(DEFAULT_FREE)


def test_shipped_fit_reproduces_its_stored_predictions_exactly(shipped):
    again = shipped.predict()
    assert [(p["trial"], p["arm"], p["outcome"]) for p in again] == [
        (p["trial"], p["arm"], p["outcome"]) for p in shipped.predictions]
    for new, old in zip(again, shipped.predictions, strict=True):
        for key in ("predicted", "smooth", "residual"):
            a, b = new[key], old[key]
            assert a == b or (math.isnan(a) and math.isnan(b)), (new["trial"], new["arm"], new["outcome"], key)


def test_shipped_fit_has_covariance_profiles_and_usable_draws(shipped):
    for name in DEFAULT_FREE:
        se = shipped.stderr[name]
        assert se is not None and 0 < se < abs(shipped.values[name]), name  # identified: relative SE below 100%
        prof = shipped.profiles[name]
        assert min(prof["chisqr"]) >= shipped.chisqr - 1e-6 * shipped.chisqr  # the fit is the profile minimum
    draws = parameter_draws(shipped, 50, seed=1)
    arr = np.asarray(draws.array)
    assert arr.shape[0] == 50 and np.all(np.isfinite(arr))
    assert shipped.identifiability  # the plain-words findings are stored with the fit


def test_all_values_include_the_fixed_base_parameters(shipped):
    base = shipped.provenance["base_parameters"]
    assert base, "the shipped fit fixes unidentified values in base_parameters"
    merged = shipped.all_values()
    assert all(merged[k] == v for k, v in base.items())
    assert all(merged[k] == v for k, v in shipped.values.items())


def test_scenarios_use_the_shipped_fit_unless_told_otherwise(shipped):
    from abscopal.scenario import parse_scenario

    arm = [{"name": "pembro", "drug": "pembrolizumab_200mg_q3w"}]
    fitted = parse_scenario({"arm": arm})
    plain = parse_scenario({"fit": "none", "arm": arm})
    assert fitted.fit == str(ROOT / "fits" / "default.json") and plain.fit is None
    assert fitted.parameters["max_kill_per_day"] == shipped.values["max_kill_per_day"]
    assert fitted.parameters["effector_baseline"] == shipped.provenance["base_parameters"]["effector_baseline"]
    assert "max_kill_per_day" not in plain.parameters
    assert fitted.survival["base_hazard_per_day"] == shipped.values["survival__base_hazard_per_day"]
