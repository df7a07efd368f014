"""The shipped calibration ``fits/default.json``: it belongs to the current model and targets, reproduces its own
predictions, carries a usable covariance and profiles, and is what scenario files and studies use by default."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from abscopal.calibrate import Calibration
from abscopal.calibrate.objective import DEFAULT_FREE
from abscopal.fitted.draws import parameter_draws
from abscopal.fitted.shipped import default_fit_path, load_fit, resolve_fit_path
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


# The stored predictions were computed on the machine that made the fit. Another CPU, libm or numpy/numba build
# may round differently in the last place (seen: 0.381171370028607 vs 0.38117137002860707), so stored-vs-recomputed
# is compared to a relative 1e-9: far above rounding noise (~1e-16 per operation, amplified by the ODE solve)
# and far below any change that matters (a model or target change moves predictions by 1e-4 or more).
# Bit-identity is asserted only where it must hold: two computations in one process.
STORED_RTOL = 1e-9


def _same(a: float, b: float, rtol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    # values near 0 (a residual that happens to vanish) compare absolutely, to 1e-12 in their own units
    return a == b if rtol == 0 else math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12)


def _compare(new_predictions, old_predictions, rtol: float) -> list[tuple]:
    assert [(p["trial"], p["arm"], p["outcome"]) for p in new_predictions] == [
        (p["trial"], p["arm"], p["outcome"]) for p in old_predictions
    ]
    return [
        (new["trial"], new["arm"], new["outcome"], key, new[key], old[key])
        for new, old in zip(new_predictions, old_predictions, strict=True)
        for key in ("predicted", "smooth", "residual")
        if not _same(new[key], old[key], rtol)
    ]


def test_shipped_fit_reproduces_its_stored_predictions_to_1e9(shipped):
    again = shipped.predict()
    assert _compare(again, shipped.predictions, STORED_RTOL) == []
    # the same machine and process reproduces its own computation bit for bit
    assert _compare(shipped.predict(), again, 0.0) == []


def test_stored_prediction_comparison_fails_beyond_the_tolerance(shipped):
    stored = shipped.predictions
    value = next(p["predicted"] for p in stored if not math.isnan(p["predicted"]) and p["predicted"] != 0)
    assert _same(value, value * (1 + 1e-12), STORED_RTOL)  # last-place rounding: accepted
    assert not _same(value, value * (1 + 1e-7), STORED_RTOL)  # a real change: caught
    assert not _same(value, value * (1 + 1e-12), 0.0)  # the same-process check is exact
    assert not _same(value, math.nan, STORED_RTOL)


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
