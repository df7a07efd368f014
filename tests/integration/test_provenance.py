"""Every saved artefact records the software environment that made it (``abscopal.provenance.environment``):
simulation datasets, calibrations, validations, cross-validations and studies, and the fit and study reports
show it. Small runs (10 virtual patients per arm, fits started next to the truth) on the session's compiled
3-lesion model."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

import pytest

from abscopal._version import __version__
from abscopal.calibrate.crossval import cross_validate
from abscopal.calibrate.fit import Calibration, calibrate
from abscopal.calibrate.objective import CalibrationProblem, default_parameters
from abscopal.calibrate.report import fit_report
from abscopal.calibrate.validate import validate
from abscopal.population import VirtualPopulation
from abscopal.provenance import ENVIRONMENT_PACKAGES, environment, format_environment
from abscopal.simulate import simulate
from abscopal.studies import parse_study, run_study, summary_table
from abscopal.studies.report import study_report_html
from abscopal.treatment import TreatmentPlan
from abscopal.trials import load_targets

TARGETS = Path(__file__).resolve().parents[2] / "fits" / "targets"
REQUIRED = (
    "python",
    "abscopal",
    "numpy",
    "scipy",
    "numba",
    "llvmlite",
    "sympy",
    "lmfit",
    "xarray",
    "h5netcdf",
    "platform",
)


def _check(env: object) -> None:
    """``env`` is this process's environment, and names the versions a rerun elsewhere would need."""
    assert isinstance(env, dict)
    assert env == environment()
    for key in REQUIRED:
        assert isinstance(env[key], str) and env[key], key


def test_environment_names_python_the_numerical_libraries_and_the_platform():
    env = environment()
    assert env["python"] == platform.python_version() and env["abscopal"] == __version__
    for name in ENVIRONMENT_PACKAGES:
        try:
            assert env[name] == metadata.version(name), name
        except metadata.PackageNotFoundError:
            assert env[name] is None, name
    import numba
    import numpy

    assert env["numpy"] == numpy.__version__ and env["numba"] == numba.__version__
    assert json.loads(json.dumps(env)) == env
    env["numpy"] = "changed"
    assert environment()["numpy"] == numpy.__version__  # each call returns a fresh dict
    line = format_environment(environment())
    assert f"numpy {numpy.__version__}" in line and f"Python {platform.python_version()}" in line
    assert format_environment(None) == "-" and format_environment(["not", "a", "dict"]) == "-"


def test_simulation_dataset_records_the_environment(nsclc3):
    ds = simulate(
        nsclc3,
        {"untreated": TreatmentPlan()},
        population=VirtualPopulation(n_patients=2, seed=1),
        t_end_day=20.0,
        output_interval_day=10.0,
    )
    _check(json.loads(ds.attrs["provenance"])["environment"])


# Model v2 sterilises some lesions irradiated by the prior courses of Ratnayake 2020 (prior = true; docs/diagnose.md):
# an expected SterilisedLesionWarning of the population, not of what these tests check.
quiet_sterilised = pytest.mark.filterwarnings("ignore::abscopal.errors.SterilisedLesionWarning")


@pytest.fixture(scope="module")
def synthetic(nsclc3, reachable_os_base) -> tuple:
    trials = (load_targets(TARGETS / "pembro_rt.toml"), load_targets(TARGETS / "ratnayake2020.toml"))
    base = CalibrationProblem(
        targets=trials, model=nsclc3, n_patients_per_arm=10, seed=1, base_parameters=reachable_os_base
    )
    return base.synthetic_targets({"max_kill_per_day": 0.06})


@pytest.fixture(scope="module")
def calibration(synthetic, nsclc3, reachable_os_base) -> Calibration:
    problem = CalibrationProblem(
        targets=synthetic[:1], model=nsclc3, n_patients_per_arm=10, seed=1, base_parameters=reachable_os_base
    )
    params = default_parameters(problem, names=("max_kill_per_day",))
    params["max_kill_per_day"].set(value=0.059)
    return calibrate(problem, params)  # starts next to the truth: a few evaluations


@quiet_sterilised
def test_calibration_file_and_fit_report_record_the_environment(calibration, tmp_path):
    _check(calibration.provenance["environment"])
    path = tmp_path / "fit.json"
    calibration.save(path)
    _check(json.loads(path.read_text(encoding="utf-8"))["provenance"]["environment"])
    _check(Calibration.load(path).provenance["environment"])
    written = fit_report(calibration, tmp_path / "fit.md")
    assert tmp_path / "fit.md" in written
    assert format_environment(environment()) in (tmp_path / "fit.md").read_text(encoding="utf-8")


@quiet_sterilised
def test_validation_and_cross_validation_record_the_environment(calibration, synthetic, nsclc3, tmp_path):
    result = validate(
        calibration, synthetic[:1], n_patients_per_arm=10, n_population_resamples=1, n_parameter_draws=0, model=nsclc3
    )
    _check(result.provenance["environment"])
    result.save(tmp_path / "validation.json")
    _check(json.loads((tmp_path / "validation.json").read_text(encoding="utf-8"))["provenance"]["environment"])
    cv = cross_validate(
        synthetic,
        free=("max_kill_per_day",),
        n_patients_per_arm=10,
        seed=1,
        model=nsclc3,
        base_parameters=calibration.provenance["base_parameters"],
    )
    _check(cv.provenance["environment"])
    cv.save(tmp_path / "crossval.json")
    _check(json.loads((tmp_path / "crossval.json").read_text(encoding="utf-8"))["provenance"]["environment"])


def test_study_dataset_file_and_report_record_the_environment(tmp_path):
    design = parse_study(
        {
            "title": "provenance",
            "fit": "none",
            "population": {"mix": "pembro_rt", "n_patients": 4, "seed": 3},
            "simulation": {"t_end_day": 120},
            "axes": {"timing": [0], "fractionation": ["none"]},
        }
    )
    ds = run_study(design, tmp_path / "study", report=False)
    _check(json.loads(ds.attrs["provenance"])["environment"])
    _check(json.loads((tmp_path / "study" / "study.json").read_text(encoding="utf-8"))["provenance"]["environment"])
    html = study_report_html(ds, summary_table(ds), {})
    assert f"numba {environment()['numba']}" in html
