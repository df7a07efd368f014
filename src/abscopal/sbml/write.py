"""Export a :class:`~abscopal.model.spec.ModelSpec` (and a treatment plan) as SBML Level 3 Version 2.

The mapping (docs/interop.md, "SBML"):

* every **state** is a global SBML ``parameter`` (``constant="false"``) with the state's name as id and a
  ``rateRule`` (not a species: abscopal states are volumes, rates, fractions, drug modes and a time, not amounts in
  compartments, so there is no compartment to divide by and no ``hasOnlySubstanceUnits`` question); its initial
  value is the ``value`` attribute when it is a number, else an ``initialAssignment`` (the model's analytic rest
  state, so changing a parameter before a run moves the start state exactly as in abscopal);
* every **parameter** (mechanism switches ``on_<name>`` included) is a constant ``parameter`` with the value
  abscopal would use (defaults < the plan's drug PK < ``parameters`` < ``mechanisms_off``, as in
  :func:`abscopal.simulate`);
* every **observable** is a non-constant ``parameter`` with an ``assignmentRule``;
* each event of the plan (from :func:`abscopal.simulate.plan_events`, the function ``simulate`` uses) is one SBML
  ``event`` triggered by ``time >= t`` with the model's jump map as ``eventAssignment``\\ s, the event's arguments
  (``dose_gy_0``, ``blood_dose_gy``, ``dose_mg``...) replaced by the plan's numbers. ``useValuesFromTriggerTime`` is
  false and the priority falls with abscopal's order (fractions before drug doses at the same time, as the solver
  applies them), so simultaneous events run one after the other, each from the state the previous one left;
  within one event all assignments are simultaneous, as in abscopal. The trigger's ``initialValue`` is false, so
  an event at the start time fires at the start.
* time: SBML simulations start at time 0, so the document's ``time`` is abscopal's day minus the start day
  (:attr:`SbmlExport.start_day`: day 0, or the plan's first event if earlier, where abscopal starts and the initial
  values hold). With RT before the first drug dose (e.g. SBRT from day -7) SBML time 0 is day -7 and every use of
  abscopal's time in the math is written ``(time + start_day)``. (libRoadRunner 2.10 also mis-fires events at
  the first simulation of a freshly loaded model from a negative start time; starting at 0 avoids that.)
* units: a ``unitDefinition`` per unit string (:mod:`.units`); a string that cannot be expressed leaves the
  quantity without units and is listed in :attr:`SbmlExport.unexpressed_units`.

Not exported: the clip of non-negative states to 0 after each step and jump (a numerical safeguard of abscopal's
solver; at the tolerances of the tests no state goes negative), the states' absolute tolerances, groups and
lesion indices, and the model's roles.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sympy as sp

from ..errors import AbscopalError, ModelError, ScheduleError
from ..model.spec import TIME, ModelSpec, sym
from ..parameters import ParameterSet, resolve_values
from ..simulate import plan_events
from ..treatment.plan import TreatmentPlan
from .mathml import to_ast
from .units import unit_definition, unit_id

__all__ = ["SBML_LEVEL", "SBML_VERSION", "SbmlExport", "export_sbml", "require_libsbml", "to_sbml"]

SBML_LEVEL, SBML_VERSION = 3, 2
"""The SBML level and version written (L3V2: ``min``/``max`` are MathML there)."""


def require_libsbml() -> Any:
    """Import and return ``libsbml``; an :class:`AbscopalError` naming the ``sbml`` extra if it is missing."""
    try:
        import libsbml
    except ImportError:
        raise AbscopalError(
            "SBML export and import need python-libsbml, which is not installed: pip install abscopal[sbml] "
            "(or pip install python-libsbml)"
        ) from None
    return libsbml


@dataclass(frozen=True)
class SbmlExport:
    """The SBML text of an export and what a user of it should know.

    Attributes
    ----------
    text
        The SBML document (XML).
    start_day
        The abscopal day at SBML time 0 (abscopal's start for the plan: day 0, or the first event if earlier; the
        initial values hold there): SBML time t is abscopal day ``t + start_day``.
    n_events
        Number of SBML events (treatment events of the plan).
    unexpressed_units
        Unit strings of the spec that could not be written as SBML units (those quantities have no units).
    warnings
        libSBML's consistency-check messages of warning severity (there are no errors: an error raises).
    """

    text: str
    start_day: float
    n_events: int
    unexpressed_units: tuple[str, ...]
    warnings: tuple[str, ...]


_RESERVED_IDS = {"time", "avogadro"}


def _sid(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return s if s and not s[0].isdigit() else "m_" + s


def _check(code: int, what: str) -> None:
    import libsbml

    if code != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise AbscopalError(f"libSBML refused {what}: {libsbml.OperationReturnValue_toString(code)}")


def export_sbml(
    spec: ModelSpec,
    plan: TreatmentPlan | None = None,
    parameters: ParameterSet | Mapping[str, float] | None = None,
    *,
    t_end_day: float = 730.0,
    mechanisms_off: Iterable[str] = (),
) -> SbmlExport:
    """Export ``spec`` (with ``plan``'s treatment as timed events) as SBML L3V2; see the module docstring.

    Parameters
    ----------
    spec
        The model.
    plan
        Treatment plan; its RT fractions and drug doses up to ``t_end_day`` become events. None: no events.
    parameters
        Parameter values (a :class:`ParameterSet` or mapping) over the defaults and the plan's drug PK.
    t_end_day
        Last day of the simulation the document is for (drug doses after it are left out; an RT fraction after
        it is refused, as :func:`abscopal.simulate` refuses it).
    mechanisms_off
        Mechanisms to switch off (their switches are 0 in the document).

    Raises
    ------
    AbscopalError
        Without python-libsbml (``pip install abscopal[sbml]``), or if libSBML finds an error in the document.
    ModelError, ParameterError, ScheduleError
        For a name SBML reserves (``time``), an expression without an SBML form, or invalid values and plans.
    """
    libsbml = require_libsbml()
    if not isinstance(spec, ModelSpec):
        raise ModelError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    if plan is not None and not isinstance(plan, TreatmentPlan):
        raise ScheduleError(f"plan must be a TreatmentPlan or None, got {type(plan).__name__}")
    if not (isinstance(t_end_day, int | float) and math.isfinite(t_end_day)):
        raise ScheduleError(f"t_end_day must be a finite number of days, got {t_end_day!r}")
    values = resolve_values(
        spec, plan.parameter_overrides() if plan else None, parameters, mechanisms_off=tuple(mechanisms_off)
    )
    events: list[tuple[float, str, list[float]]] = []
    if plan is not None:
        late = [fr.time_day for fr in plan.fractions() if fr.time_day > t_end_day]
        if late:
            raise ScheduleError(
                f"RT fraction on day {late[0]:g} is after t_end_day = {t_end_day:g}; raise t_end_day or move the course"
            )
        events = sorted(plan_events(spec, plan, float(t_end_day)), key=lambda e: e[0])  # stable, as the solver
    start = min([0.0] + [e[0] for e in events])
    day = {TIME: TIME + sp.Float(start)} if start != 0 else {}  # abscopal's day in SBML time

    def shifted(expr: Any) -> Any:
        return sp.sympify(expr).xreplace(day) if day else expr

    names = [*spec.state_names, *spec.parameter_names]
    clash = sorted(set(names) & _RESERVED_IDS)
    if clash:
        raise ModelError(f"model {spec.name!r}: {clash[0]!r} is reserved in SBML math; rename it")
    taken = set(names)
    obs_ids: dict[str, str] = {}
    for ob in spec.observables:
        oid = ob.name
        while oid in taken:
            oid += "_obs"
        obs_ids[ob.name] = oid
        taken.add(oid)

    doc = libsbml.SBMLDocument(SBML_LEVEL, SBML_VERSION)
    model = doc.createModel()
    model_id = _sid("abscopal_" + spec.name)
    while model_id in taken:
        model_id += "_"
    _check(model.setId(model_id), "the model id")
    model.setName(spec.name)

    # ---- units ----
    unit_ids: dict[str, str] = {"1": "dimensionless"}
    unexpressed: list[str] = []
    strings = [
        *(s.units for s in spec.states),
        *(p.units for p in spec.all_parameters),
        *(o.units for o in spec.observables),
        "day",
    ]
    for text in dict.fromkeys(strings):
        if text in unit_ids:
            continue
        units = unit_definition(text)
        if units is None:
            unexpressed.append(text)
            continue
        if units == unit_definition("1"):
            unit_ids[text] = "dimensionless"
            continue
        ud = model.createUnitDefinition()
        uid = unit_id(text, unit_ids.values())
        _check(ud.setId(uid), f"unit id {uid!r}")
        ud.setName(text)
        for u in units:
            unit = ud.createUnit()
            unit.setKind(libsbml.UnitKind_forName(u.kind))
            unit.setExponent(u.exponent)
            unit.setScale(u.scale)
            unit.setMultiplier(u.multiplier)
        unit_ids[text] = uid
    model.setTimeUnits(unit_ids["day"])

    def add_parameter(pid: str, units: str, constant: bool, name: str) -> Any:
        p = model.createParameter()
        _check(p.setId(pid), f"id {pid!r}")
        p.setConstant(constant)
        if name:
            p.setName(name)
        if units in unit_ids:
            p.setUnits(unit_ids[units])
        return p

    for par in spec.all_parameters:
        add_parameter(par.name, par.units, True, par.description).setValue(values[par.name])
    subs = {sym(k): sp.Float(v) for k, v in values.items()}
    for st in spec.states:
        p = add_parameter(st.name, st.units, False, st.long_name)
        init = st.initial
        p.setValue(float(init.xreplace(subs)))
        if init.free_symbols:
            ia = model.createInitialAssignment()
            ia.setSymbol(st.name)
            _check(ia.setMath(to_ast(init, model, f"initial value of {st.name!r}")), f"initial value of {st.name!r}")
        rule = model.createRateRule()
        rule.setVariable(st.name)
        _check(
            rule.setMath(to_ast(shifted(spec.rates[st.name]), model, f"rate of {st.name!r}")), f"rate of {st.name!r}"
        )
    for ob in spec.observables:
        oid = obs_ids[ob.name]
        p = add_parameter(oid, ob.units, False, ob.long_name)
        p.setValue(float("nan"))
        rule = model.createAssignmentRule()
        rule.setVariable(oid)
        _check(rule.setMath(to_ast(shifted(ob.expr), model, f"observable {ob.name!r}")), f"observable {ob.name!r}")

    # ---- the plan's events, in abscopal's order ----
    n = len(events)
    width = len(str(n))
    for k, (t, name, args) in enumerate(events):
        ev = spec.event(name)
        eid = f"{name}_{k + 1:0{width}d}"
        while eid in taken:
            eid += "_"
        taken.add(eid)
        e = model.createEvent()
        _check(e.setId(eid), f"event id {eid!r}")
        e.setName(
            f"{name} at day {t:g}: " + ", ".join(f"{a} = {v:g}" for a, v in zip(ev.argument_names, args, strict=True))
        )
        e.setUseValuesFromTriggerTime(False)
        trig = e.createTrigger()
        trig.setInitialValue(False)
        trig.setPersistent(True)
        where = f"event {eid!r}"
        _check(trig.setMath(_time_trigger(libsbml, t - start)), f"{where}, trigger")
        prio = e.createPriority()
        prio.setMath(libsbml.parseL3Formula(str(n - k)))
        arg_subs = {sym(a): sp.Float(float(v)) for a, v in zip(ev.argument_names, args, strict=True)}
        for target, expr in ev.jumps.items():
            new = shifted(expr.xreplace(arg_subs))
            if new == sym(target):
                continue  # no change at this event (e.g. PD-L1 of a lesion outside the field)
            ea = e.createEventAssignment()
            ea.setVariable(target)
            _check(ea.setMath(to_ast(new, model, f"{where}, jump of {target!r}")), f"{where}, jump of {target!r}")

    notes = (
        f"Exported by abscopal from model {spec.name} (content hash {spec.content_hash()}). "
        f"Time in days; SBML time 0 is abscopal day {start:g} (the simulation start, where the initial values "
        f"hold): day = time + ({start:g}). "
        + (f"{n} treatment events (RT fractions, drug doses) at fixed times. " if n else "No treatment events. ")
        + (
            f"Quantities without units (unit strings with no SBML form): {', '.join(unexpressed)}."
            if unexpressed
            else ""
        )
    )
    model.setNotes(f'<body xmlns="http://www.w3.org/1999/xhtml"><p>{_xml_escape(notes)}</p></body>')

    doc.checkConsistency()
    errors: list[str] = []
    warnings: list[str] = []
    for i in range(doc.getNumErrors()):
        err = doc.getError(i)
        msg = f"{err.getCategoryAsString()} {err.getErrorId()}: {err.getShortMessage()} ({err.getMessage().strip()})"
        (errors if err.getSeverity() >= libsbml.LIBSBML_SEV_ERROR else warnings).append(msg)
    if errors:
        raise AbscopalError(f"libSBML finds {len(errors)} error(s) in the exported model; first: {errors[0]}")
    return SbmlExport(
        text=libsbml.writeSBMLToString(doc),
        start_day=start,
        n_events=n,
        unexpressed_units=tuple(unexpressed),
        warnings=tuple(warnings),
    )


def _time_trigger(libsbml: Any, t: float) -> Any:
    """``time >= t`` as a libSBML AST (the time csymbol, whatever the model's ids)."""
    from .mathml import l3_formula

    ast = libsbml.parseL3Formula(f"time >= {l3_formula(sp.Float(t))}")
    if ast is None:  # pragma: no cover - the formula is ours
        raise AbscopalError(f"libSBML cannot parse the trigger of an event at day {t}")
    return ast


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_sbml(
    spec: ModelSpec,
    plan: TreatmentPlan | None = None,
    parameters: ParameterSet | Mapping[str, float] | None = None,
    *,
    t_end_day: float = 730.0,
    mechanisms_off: Iterable[str] = (),
) -> str:
    """The SBML L3V2 text of ``spec`` with ``plan``'s treatment as events (:func:`export_sbml` without the
    report)."""
    return export_sbml(spec, plan, parameters, t_end_day=t_end_day, mechanisms_off=mechanisms_off).text
