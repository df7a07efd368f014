"""Guards that need a compiled model: the stiff-solver fallback is announced with a StiffFallbackWarning."""

from __future__ import annotations

import json

import pytest

from abscopal.errors import EXIT_CODES, AbscopalWarning, StiffFallbackWarning
from abscopal.population import VirtualPopulation
from abscopal.simulate import Arm, simulate
from abscopal.solver import SolverOptions
from abscopal.treatment import TreatmentPlan


def test_stiff_fallback_warns_with_the_count_and_the_arm(toy):
    arms = [Arm(name="control", plan=TreatmentPlan(name="control")), Arm(name="other", plan=TreatmentPlan())]
    # a step budget of 10 is too small for 200 days: every patient falls back to the compiled Rodas4
    with pytest.warns(StiffFallbackWarning, match=r"4 of 4 patients \(2 in arm 'control', 2 in arm 'other'\).*Rodas4"):
        ds = simulate(
            toy,
            arms,
            population=VirtualPopulation(n_patients=2),
            t_end_day=200.0,
            solver=SolverOptions(max_steps=10, parallel=False),
        )
    assert json.loads(ds.attrs["provenance"])["stiff_fallback_patients"] == 4


def test_no_warning_without_fallback(toy, recwarn):
    ds = simulate(toy, TreatmentPlan(name="control"), t_end_day=200.0)
    assert json.loads(ds.attrs["provenance"])["stiff_fallback_patients"] == 0
    assert not [w for w in recwarn if issubclass(w.category, AbscopalWarning)]


# ---- the command line: refused before any work, with the override named -----------------------------------------
SCENARIO = """fit = "none"
[simulation]
t_end_day = 100
output_interval_day = 7
[[arm]]
name = "a"
drug = "pembrolizumab_200mg_q3w"
"""


def test_cli_simulate_refuses_a_huge_population_and_names_the_flag(tmp_path, capsys):
    from abscopal.cli import main

    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    out = tmp_path / "out.nc"
    assert main(["simulate", str(path), "--out", str(out), "--patients", str(10**7)]) == EXIT_CODES["input"]
    err = capsys.readouterr().err
    assert "10,000,000 patients" in err and "--allow-large" in err
    assert not out.exists()


def test_cli_refuses_a_negative_orr_visit_day_before_reading_the_result(tmp_path, capsys):
    from abscopal.cli import main

    missing = tmp_path / "missing.nc"  # never opened: the option is checked first
    assert main(["endpoints", str(missing), "--orr-visit-day", "-5"]) == EXIT_CODES["input"]
    assert "orr_visit_day must be a finite day >= 0" in capsys.readouterr().err


def test_cli_study_refuses_a_huge_grid_unless_allowed(tmp_path, capsys):
    from abscopal.cli import build_parser, main

    study = tmp_path / "big.toml"
    timing = ", ".join(str(i) for i in range(1000))
    fractions = ", ".join(f"{{ dose_per_fraction_gy = {1 + i / 10}, n_fractions = 1 }}" for i in range(1001))
    study.write_text(
        f'fit = "none"\n[population]\nn_patients = 5\n[axes]\ntiming = [{timing}]\nfractionation = [{fractions}]\n'
    )
    out = tmp_path / "out"
    assert main(["study", str(study), "--out", str(out), "--quiet"]) == EXIT_CODES["input"]
    assert "1001000 cells" in capsys.readouterr().err
    assert not (out / "cells").exists()
    assert build_parser().parse_args(["study", str(study), "--out", str(out), "--allow-large"]).allow_large
