"""The shipped calibration ``fits/default.json``: it belongs to the current model (v2) and targets, reproduces its
own predictions, carries a usable covariance, and is what scenario files and studies use by default.

It is calibration v2 of model v2 (``fits/make_default.py --force --profiles --workers 2``, 500 patients per arm): the
five free values of the tumour model, the pretreated effect on the effector baseline and the pneumonitis model's
concurrent-ICI factor, nothing fixed in ``base_parameters``, and profile likelihoods of every free value, read at the
misfit-scaled chi-square rise (docs/calibration.md)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from abscopal.calibrate import Calibration
from abscopal.calibrate.objective import DEFAULT_FREE, NTCP_FREE
from abscopal.fitted.draws import parameter_draws
from abscopal.fitted.shipped import default_fit_path, load_fit, resolve_fit_path
from abscopal.model.library import nsclc_model

ROOT = Path(__file__).resolve().parents[2]
FREE = NTCP_FREE + DEFAULT_FREE + ("effect__pretreated__effector_baseline",)  # make_default.py's order


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
    assert set(shipped.provenance["free"]) == set(FREE)


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


# Model v2 sterilises some lesions irradiated by the prior courses of KEYNOTE-001 and Ratnayake 2020 (prior = true;
# docs/diagnose.md): the fit's own predictions raise this expected warning.
@pytest.mark.filterwarnings("ignore::abscopal.errors.SterilisedLesionWarning")
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
    for name in FREE:
        se = shipped.stderr[name]
        assert se is not None and se > 0, name
        # identified (relative SE below 100%) except the pretreated effect, whose chi-square is flat towards strong
        # effects (one-sided: docs/calibration.md)
        assert name == "effect__pretreated__effector_baseline" or se < abs(shipped.values[name]), name
    assert shipped.provenance["timing"]["n_patients_per_arm"] == shipped.provenance["n_patients_per_arm"] == 500
    assert shipped.provenance["recipe"].split()[:2] == ["fits/make_default.py", "--force"]
    assert "--profiles" in shipped.provenance["recipe"].split()
    assert shipped.identifiability[0].startswith("calibration v2 of model v2: ")
    # profiles of every free value, at the misfit-scaled thresholds, each containing its optimum
    c = shipped.provenance["misfit"]["covariance_scale"]
    assert shipped.profiles is not None and set(shipped.profiles) == set(FREE)
    assert shipped.provenance["timing"]["profiles_s"] > 0
    for name, prof in shipped.profiles.items():
        assert prof["misfit_scale"] == c and prof["thresholds"]["95"] == pytest.approx(3.841458820694124 * c)
        lo, hi = prof["interval_95"]
        assert lo <= shipped.values[name] <= hi, name
        # the objective is rough at the scale of a chi-square unit (Monte Carlo patients, scan grids): a profile
        # may find a point a little below the fit (the pretreated effect at its bound: 0.45 lower), but never by a
        # share of the 95% rise that would move an interval (docs/calibration.md, "Profiles of the shipped fit")
        assert shipped.chisqr - prof["chisqr_min"] < 0.05 * prof["thresholds"]["95"], name
    draws = parameter_draws(shipped, 50, seed=1)
    arr = np.asarray(draws.array)
    assert arr.shape[0] == 50 and np.all(np.isfinite(arr))
    assert shipped.identifiability  # the plain-words findings are stored with the fit


def test_all_values_are_the_fitted_values_as_nothing_is_fixed(shipped):
    """The v2 fit fixes nothing in ``base_parameters`` (its unidentified RT-immune values stay at the model
    defaults): every value its predictions used is a fitted one, the free values of model v2 and the NTCP factor."""
    assert shipped.provenance["base_parameters"] == {}
    assert shipped.all_values() == shipped.values
    assert list(shipped.values) == list(FREE)


def test_scenarios_use_the_shipped_fit_unless_told_otherwise(shipped):
    from abscopal.scenario import parse_scenario

    arm = [{"name": "pembro", "drug": "pembrolizumab_200mg_q3w"}]
    fitted = parse_scenario({"arm": arm})
    plain = parse_scenario({"fit": "none", "arm": arm})
    assert fitted.fit == str(ROOT / "fits" / "default.json") and plain.fit is None
    assert fitted.parameters["max_kill_per_day"] == shipped.values["max_kill_per_day"]
    assert fitted.parameters["tumour_doubling_time_day"] == shipped.values["tumour_doubling_time_day"]
    assert "max_kill_per_day" not in plain.parameters
    # the OS link's fields (the default death model of v2) go to the scenario's survival fields
    assert dict(fitted.survival) == {
        "intercept_log_day": shipped.values["survival__intercept_log_day"],
        "pretreated_log_time_ratio": shipped.values["survival__pretreated_log_time_ratio"],
    }
    assert not plain.survival
