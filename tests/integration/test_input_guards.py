"""Guards that need a compiled model: the stiff-solver fallback is announced with an AbscopalWarning."""

from __future__ import annotations

import json

import pytest

from abscopal.errors import AbscopalWarning
from abscopal.population import VirtualPopulation
from abscopal.simulate import Arm, simulate
from abscopal.solver import SolverOptions
from abscopal.treatment import TreatmentPlan


def test_stiff_fallback_warns_with_the_count_and_the_arm(toy):
    arms = [Arm(name="control", plan=TreatmentPlan(name="control")), Arm(name="other", plan=TreatmentPlan())]
    # a step budget of 10 is too small for 200 days: every patient falls back to Radau
    with pytest.warns(AbscopalWarning, match=r"4 of 4 patients \(2 in arm 'control', 2 in arm 'other'\).*Radau"):
        ds = simulate(toy, arms, population=VirtualPopulation(n_patients=2), t_end_day=200.0,
                      solver=SolverOptions(max_steps=10, parallel=False))
    assert json.loads(ds.attrs["provenance"])["stiff_fallback_patients"] == 4


def test_no_warning_without_fallback(toy, recwarn):
    ds = simulate(toy, TreatmentPlan(name="control"), t_end_day=200.0)
    assert json.loads(ds.attrs["provenance"])["stiff_fallback_patients"] == 0
    assert not [w for w in recwarn if issubclass(w.category, AbscopalWarning)]
