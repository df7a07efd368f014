"""SBML import (:func:`abscopal.sbml.read_sbml`): the curated Kosinsky 2018 SBML imported, compiled and run for a
virtual population agrees with libRoadRunner patient by patient, and with abscopal's hand re-expression
(:func:`abscopal.model.library.kosinsky2018`); elements outside the subset are refused by name.

Population: log-normal variability on five parameters (``r`` 0.2, ``kLN`` 0.3, ``S_L`` 0.696 (the paper's omega),
``n_e`` 0.3, ``Kpdl`` 0.3), typical values the SBML's with ``mAb = 10`` nM, seed 2018 (:class:`VirtualPopulation`).
Output: the curated SED-ML grid (0-40 days, 0.4-day steps). Relative error per state and time:

    |a - b| / (|b| + abs_tol_s)

with abs_tol_s the imported state's absolute tolerance (1e-6); the requirement is 1e-6. The default run has 200
patients; the 1,000-patient run is marked slow (``pytest -m slow``).

Run:  PYTHONPATH=src python -m pytest tests/integration/test_sbml_import.py -v -s
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

roadrunner = pytest.importorskip("roadrunner")
libsbml = pytest.importorskip("libsbml")

from abscopal.errors import ModelError  # noqa: E402
from abscopal.model import compile_model  # noqa: E402
from abscopal.model.library import kosinsky2018  # noqa: E402
from abscopal.population import LogNormal, VirtualPopulation  # noqa: E402
from abscopal.sbml import from_sbml, read_sbml  # noqa: E402
from abscopal.sbml.read import MAX_SBML_BYTES  # noqa: E402
from abscopal.solver import EventSchedule, SolverOptions, solve  # noqa: E402

SBML = Path(__file__).resolve().parents[1] / "data" / "kosinsky2018" / "Kosinsky2018.xml"
REL_REQUIRED = 1e-6
OPTIONS = SolverOptions(rtol=1e-11, atol_scale=1e-6)
RR_RTOL, RR_ATOL = 1e-12, 1e-14
T_OUT = np.linspace(0.0, 40.0, 101)
VARIABILITY = {
    "r": LogNormal(omega=0.2),
    "kLN": LogNormal(omega=0.3),
    "S_L": LogNormal(omega=0.696),
    "n_e": LogNormal(omega=0.3),
    "Kpdl": LogNormal(omega=0.3),
}


@pytest.fixture(scope="module")
def imported():
    return read_sbml(SBML)


def population_matrix(spec, n: int) -> np.ndarray:
    pop = VirtualPopulation(n_patients=n, variability=VARIABILITY, seed=2018)
    return pop.parameter_matrix(spec, {**spec.default_values(), "mAb": 10.0})


def roadrunner_population(spec, P: np.ndarray) -> np.ndarray:
    """libRoadRunner in a loop: reset, set the patient's parameters (SBML ids), simulate."""
    rr = roadrunner.RoadRunner(str(SBML))
    rr.integrator.relative_tolerance = RR_RTOL
    rr.integrator.absolute_tolerance = RR_ATOL
    rr.integrator.maximum_num_steps = 1_000_000
    rr.timeCourseSelections = ["time", *(f"[{s}]" for s in spec.state_names)]
    sbml_ids = {v: k for k, v in read_sbml(SBML).names.items()}
    cols = [(sbml_ids.get(n, n), k) for k, n in enumerate(spec.parameter_names) if n in {*VARIABILITY, "mAb"}]
    out = np.empty((P.shape[0], T_OUT.size, len(spec.states)))
    for i, row in enumerate(P):
        rr.resetAll()
        for sid, k in cols:
            rr[sid] = row[k]
        out[i] = np.asarray(rr.simulate(times=list(T_OUT)))[:, 1:]
    return out


def rel_error(spec, a, b):
    atol = np.array([s.abs_tol for s in spec.states])
    return np.abs(a - b) / (np.abs(b) + atol)


def check_population(imported, n: int) -> None:
    spec = imported.spec
    P = population_matrix(spec, n)
    t0 = time.perf_counter()
    ref = roadrunner_population(spec, P)
    t_rr = time.perf_counter() - t0
    model = compile_model(spec)
    solve(model, P[:2], T_OUT, options=OPTIONS)  # warm (numba)
    t0 = time.perf_counter()
    sol = solve(model, P, T_OUT, options=OPTIONS)
    t_ab = time.perf_counter() - t0
    assert sol.n_fallback == 0
    rel = rel_error(spec, sol.y, ref)
    worst = rel.max(axis=(0, 1))
    print(
        f"\nKosinsky 2018 SBML import, {n} patients: max relative error vs roadrunner {worst.max():.2e} ("
        + ", ".join(f"{s} {e:.1e}" for s, e in zip(spec.state_names, worst, strict=True))
        + f"); roadrunner loop {t_rr:.2f} s, abscopal {t_ab:.3f} s"
    )
    # the population really varies: day-40 tumour volumes spread over more than a factor 2
    tv40 = ref[:, -1, 0]
    assert tv40.max() > 2 * tv40.min()
    assert worst.max() <= REL_REQUIRED

    # the hand re-expression, same patients (its a_error is the SBML's a; no compartment; TV0 = 15)
    hand = kosinsky2018()
    d = hand.default_values()
    Ph = np.tile([d[n] for n in hand.parameter_names], (n, 1))
    for k, name in enumerate(hand.parameter_names):
        src = {"a_error": "a_sbml"}.get(name, name)
        if src in spec.parameter_names:
            Ph[:, k] = P[:, spec.parameter_names.index(src)]
    hand_y = solve(compile_model(hand), Ph, T_OUT, options=OPTIONS).y
    assert hand.state_names == spec.state_names
    rel_hand = rel_error(spec, hand_y, sol.y).max()
    print(f"hand re-expression vs import, same {n} patients: max relative difference {rel_hand:.2e}")
    assert rel_hand <= REL_REQUIRED


def test_import_structure(imported):
    spec = imported.spec
    assert spec.state_names == ("TV", "U", "nTeff", "dTeff", "PDL1", "TVd")
    assert imported.names == {"a": "a_sbml"}  # 'a' is reserved in abscopal
    assert "a -> a_sbml" in imported.notes[0]
    assert spec.parameter("compartment").default == 1.0
    assert spec.state("TV").initial == 15.0
    assert imported.schedule == ()
    # the assignment rule radiation_Dose = 0 is an observable, and inlined (no radiation term left)
    assert [o.name for o in spec.observables] == ["radiation_Dose"]
    assert "radiation_Dose" not in {s.name for r in spec.rates.values() for s in r.free_symbols}
    # function definitions were inlined: only states, parameters (and no time) remain
    for r in spec.rates.values():
        assert {s.name for s in r.free_symbols} <= set(spec.state_names) | set(spec.parameter_names)
    assert from_sbml(SBML).content_hash() == spec.content_hash()


def test_imported_rates_equal_the_hand_model(imported):
    """The import's right-hand side equals the hand re-expression's (switches on) at random states, to rounding."""
    hand = kosinsky2018()
    a, b = compile_model(hand), compile_model(imported.spec)
    d = hand.default_values()
    p_hand = np.array([d[n] for n in hand.parameter_names])
    d_imp = imported.spec.default_values()
    p_imp = np.array([d_imp[n] for n in imported.spec.parameter_names])
    rng = np.random.default_rng(3)
    for _ in range(50):
        y = rng.uniform([0.1, 0, 0, 0, 0, 0], [2500, 100, 2000, 500, 1, 500])
        np.testing.assert_allclose(b.rhs(0.0, y, p_imp), a.rhs(0.0, y, p_hand), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(b.initial(p_imp), a.initial(p_hand))


def test_population_matches_roadrunner(imported):
    check_population(imported, 200)


@pytest.mark.slow
def test_population_of_1000_matches_roadrunner(imported):
    check_population(imported, 1000)


# ---- timed events -------------------------------------------------------------------------------------------------
EVENTS = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="dosing">
    <listOfCompartments><compartment id="c" constant="true" size="2" spatialDimensions="3"/></listOfCompartments>
    <listOfSpecies>
      <species id="X" compartment="c" initialAmount="4" hasOnlySubstanceUnits="false" boundaryCondition="false"
               constant="false"/>
      <species id="Y" compartment="c" initialAmount="0" hasOnlySubstanceUnits="true" boundaryCondition="false"
               constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="k" value="0.3" constant="true"/>
      <parameter id="dose" value="5" constant="true"/>
      <parameter id="Z" value="1" constant="false"/>
    </listOfParameters>
    <listOfRules>
      <rateRule variable="Z"><math xmlns="http://www.w3.org/1998/Math/MathML">
        <apply><times/><cn>-0.1</cn><ci>Z</ci></apply></math></rateRule>
    </listOfRules>
    <listOfReactions>
      <reaction id="R1" reversible="false">
        <listOfReactants><speciesReference species="X" stoichiometry="1" constant="true"/></listOfReactants>
        <listOfProducts><speciesReference species="Y" stoichiometry="2" constant="true"/></listOfProducts>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci>k</ci><ci>c</ci><ci>X</ci></apply></math></kineticLaw>
      </reaction>
    </listOfReactions>
    <listOfEvents>
      <event id="bolus" useValuesFromTriggerTime="false">
        <trigger initialValue="false" persistent="true"><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><geq/><csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/time">t</csymbol>
          <cn>3</cn></apply></math></trigger>
        <priority><math xmlns="http://www.w3.org/1998/Math/MathML"><cn>1</cn></math></priority>
        <listOfEventAssignments><eventAssignment variable="X"><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><plus/><ci>X</ci><ci>dose</ci></apply></math></eventAssignment></listOfEventAssignments>
      </event>
      <event id="halve" useValuesFromTriggerTime="false">
        <trigger initialValue="false" persistent="true"><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><geq/><csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/time">t</csymbol>
          <cn>3</cn></apply></math></trigger>
        <priority><math xmlns="http://www.w3.org/1998/Math/MathML"><cn>0</cn></math></priority>
        <listOfEventAssignments><eventAssignment variable="X"><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><divide/><ci>X</ci><cn>2</cn></apply></math></eventAssignment></listOfEventAssignments>
      </event>
    </listOfEvents>
  </model>
</sbml>
"""


def test_timed_events_reactions_and_amounts_match_roadrunner(tmp_path):
    """Amount and concentration species, stoichiometry 2, a rate rule, two simultaneous events in priority order."""
    path = tmp_path / "dosing.xml"
    path.write_text(EVENTS)
    imp = read_sbml(path)
    assert [(t, n) for t, n, _ in imp.schedule] == [(3.0, "bolus"), (3.0, "halve")]
    spec = imp.spec
    # 4 (amount) / c (compartment size, 2): a concentration that follows the compartment parameter
    assert spec.state("X").initial == 4.0 / sp.Symbol("c", real=True)
    t_out = np.linspace(0, 10, 41)
    model = compile_model(spec)
    d = spec.default_values()
    P = np.array([[d[n] for n in spec.parameter_names]])
    got = solve(model, P, t_out, events=EventSchedule.from_lists(model, imp.event_lists(1)), options=OPTIONS).y[0]
    rr = roadrunner.RoadRunner(EVENTS)
    rr.integrator.relative_tolerance = RR_RTOL
    rr.integrator.absolute_tolerance = RR_ATOL
    assert spec.state_names == ("Z", "X", "Y")
    rr.timeCourseSelections = ["time", "Z", "[X]", "Y"]  # X a concentration, Y an amount
    ref = np.asarray(rr.simulate(times=list(t_out)))[:, 1:]
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-9


# ---- refused: outside the subset, unsafe or broken files ---------------------------------------------------------
def _model_with(tmp_path, extra: str, name: str = "bad.xml") -> Path:
    text = EVENTS.replace("<listOfEvents>", extra + "<listOfEvents>", 1)
    path = tmp_path / name
    path.write_text(text)
    return path


MATH = '<math xmlns="http://www.w3.org/1998/Math/MathML">{}</math>'


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (
            "<listOfConstraints><constraint>"
            + MATH.format("<apply><gt/><ci>X</ci><cn>0</cn></apply>")
            + "</constraint></listOfConstraints>",
            "constraint",
        ),
    ],
)
def test_constraints_are_refused(tmp_path, extra, match):
    with pytest.raises(ModelError, match=match):
        read_sbml(_model_with(tmp_path, extra))


def _edit(tmp_path, old: str, new: str) -> Path:
    assert old in EVENTS
    path = tmp_path / "edited.xml"
    path.write_text(EVENTS.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (
            '<rateRule variable="Z">',
            "<algebraicRule>",
            "algebraic rule",
        ),
        (
            '<trigger initialValue="false" persistent="true">',
            "<delay>" + MATH.format("<cn>1</cn>") + '</delay><trigger initialValue="false" persistent="true">',
            "event 'bolus' has a delay",
        ),
        ("<cn>3</cn></apply></math></trigger>", "<ci>k</ci></apply></math></trigger>", "event 'bolus' has the trigger"),
        ("<apply><geq/>", "<apply><leq/>", "event 'bolus' has the trigger"),
        (
            "<apply><times/><ci>k</ci><ci>c</ci><ci>X</ci></apply>",
            "<apply><times/><ci>k</ci><apply><csymbol encoding='text' "
            "definitionURL='http://www.sbml.org/sbml/symbols/delay'>delay</csymbol><ci>X</ci><cn>1</cn></apply></apply>",
            "kinetic law of reaction 'R1'",
        ),
        ('<compartment id="c" constant="true"', '<compartment id="c" constant="false"', "compartment 'c' is not"),
        (
            '<speciesReference species="Y" stoichiometry="2" constant="true"/>',
            '<speciesReference species="Y" stoichiometry="2" constant="false"/>',
            "variable stoichiometry",
        ),
    ],
    ids=["algebraic rule", "delay", "parameter trigger", "falling trigger", "delay csymbol", "compartment", "stoich"],
)
def test_elements_outside_the_subset_are_named(tmp_path, old, new, match):
    if old == '<rateRule variable="Z">':
        path = _edit(tmp_path, '<rateRule variable="Z">', "<algebraicRule>")
        path.write_text(path.read_text().replace("</math></rateRule>", "</math></algebraicRule>", 1))
    else:
        path = _edit(tmp_path, old, new)
    with pytest.raises(ModelError, match=match) as info:
        read_sbml(path)
    assert "outside abscopal's SBML subset" in str(info.value)


def test_unsafe_or_broken_files_are_refused(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="cannot be read"):
        read_sbml(tmp_path / "missing.xml")
    with pytest.raises(ModelError, match="not a regular file"):
        read_sbml(tmp_path)
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><sbml>&lol;</sbml>')
    with pytest.raises(ModelError, match="DOCTYPE"):
        read_sbml(bomb)
    junk = tmp_path / "junk.xml"
    junk.write_text("<sbml>not a model")
    with pytest.raises(ModelError, match="not valid SBML"):
        read_sbml(junk)
    monkeypatch.setattr("abscopal.sbml.read.MAX_SBML_BYTES", 100)
    with pytest.raises(ModelError, match="more than the 100"):
        read_sbml(SBML)
    assert MAX_SBML_BYTES == 64 * 1024**2
