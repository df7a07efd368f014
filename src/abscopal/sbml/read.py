"""Import an SBML model (a documented subset) as a :class:`~abscopal.model.spec.ModelSpec`.

The subset (docs/interop.md, "SBML import"): SBML Level 2 or 3 core with

* constant compartments (their sizes become parameters);
* species, as amounts (``hasOnlySubstanceUnits``) or concentrations (amount / compartment size); a species
  changed by reactions gets ``d[S]/dt = sum(stoichiometry * rate) / size`` as a concentration, without the
  division as an amount; boundary and constant species are not changed by reactions;
* parameters: constant ones are abscopal parameters (bounds unlimited), ones with a rate rule or changed by
  events are states, ones with an assignment rule are observables;
* reactions with kinetic laws (local parameters become parameters ``<reaction>_<id>``) and constant stoichiometry;
  a reaction's id in math is its rate;
* rate rules, assignment rules (inlined wherever they are used, and kept as observables), initial assignments
  (a state's initial value; for a constant, inlined);
* function definitions (inlined at each call);
* events whose trigger is ``time >= T`` (or ``time > T``, ``T <= time``, ``T < time``) with a number T, no delay, a
  constant priority (optional). abscopal has no events at fixed times inside a model: events are jump maps fired
  by a schedule. So each SBML event becomes a spec :class:`~abscopal.model.spec.Event` without arguments (its
  assignments are the jump map) and :attr:`SbmlModel.schedule` lists when it fires. Simultaneous events fire in
  decreasing priority (then document order), each from the state the previous one left.

Anything else (algebraic rules, constraints, delays, ``rateOf``, non-time or parameter-dependent triggers, fast
reactions, variable stoichiometry or compartments, conversion factors, SBML packages, a piecewise without
otherwise) raises a :class:`~abscopal.errors.ModelError` that names the element. Math is read from libSBML's parsed
tree (:func:`.mathml.from_ast`), never evaluated as code.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy as sp

from .._frozen import FrozenMap
from ..errors import ModelError
from ..model.spec import _IDENT, _RESERVED, TIME, Event, ModelSpec, Observable, Parameter, State, sym
from .mathml import from_ast
from .write import require_libsbml

__all__ = ["MAX_SBML_BYTES", "SbmlModel", "from_sbml", "read_sbml"]

MAX_SBML_BYTES = 64 * 1024**2
"""Largest SBML file read (64 MiB)."""

_IGNORED_PACKAGES = frozenset({"layout", "render", "l3v2extendedmath"})
"""SBML packages that are ignored: drawing (layout, render) and libSBML's name for L3V2 core math (min, max...);
any other package is refused."""
_STATE_ABS_TOL = 1e-6
"""Absolute tolerance scale of every imported state (SBML has none); ``SolverOptions.atol_scale`` rescales it."""


@dataclass(frozen=True)
class SbmlModel:
    """An imported SBML model.

    Attributes
    ----------
    spec
        The model spec (states, parameters, rates, observables, one argument-less event per SBML event).
    schedule
        ``((time_day, event name, ()), ...)`` in firing order: when the SBML events fire. Give it to
        :meth:`abscopal.solver.EventSchedule.from_lists` (see :meth:`event_lists`).
    names
        SBML id -> abscopal name, for the ids that had to be renamed (reserved in abscopal, e.g. ``a`` -> ``a_sbml``).
    path
        The file read.
    notes
        What the import changed or assumed, one sentence each (empty if nothing).
    """

    spec: ModelSpec
    schedule: tuple[tuple[float, str, tuple[float, ...]], ...]
    names: Mapping[str, str] = field(default_factory=dict)
    path: str = ""
    notes: tuple[str, ...] = ()

    @property
    def start_day(self) -> float:
        """Where a run starts: day 0, or the first scheduled event if earlier."""
        return min([0.0] + [t for t, _, _ in self.schedule])

    def event_lists(self, n_patients: int) -> list[list[tuple[float, str, list[float]]]]:
        """The schedule once per patient, for :meth:`abscopal.solver.EventSchedule.from_lists`."""
        one = [(t, name, list(args)) for t, name, args in self.schedule]
        return [one] * int(n_patients)


# ---- reading the file safely --------------------------------------------------------------------------------------
def _read_text(path: str | os.PathLike[str]) -> str:
    if not isinstance(path, str | os.PathLike):
        raise ModelError(f"SBML path must be a file path, got {path!r}")
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise ModelError(f"SBML file {str(p)!r} cannot be read ({exc.strerror or exc}); check the path") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"SBML file {str(p)!r} is not a regular file; give the path of an .xml file")
    if st.st_size > MAX_SBML_BYTES:
        raise ModelError(
            f"SBML file {str(p)!r} has {st.st_size} bytes, more than the {MAX_SBML_BYTES} abscopal reads; "
            "is it really one model?"
        )
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"SBML file {str(p)!r} is not UTF-8 text; give an SBML .xml file") from None
    if re.search(r"<!DOCTYPE|<!ENTITY", text[:65536], re.IGNORECASE):
        raise ModelError(
            f"SBML file {str(p)!r} declares a DOCTYPE or XML entities, which SBML never needs; refused "
            "(entities can expand to gigabytes or read other files)"
        )
    return text


def _units_text(model: Any, uid: str) -> str:
    if not uid:
        return ""
    if uid == "dimensionless":
        return "1"
    ud = model.getUnitDefinition(uid)
    if ud is not None and ud.isSetName() and ud.getName().strip():
        return str(ud.getName().strip())
    return str(uid)


def _rename(ids: Sequence[str]) -> dict[str, str]:
    """SBML id -> abscopal name (identifiers reserved by abscopal get ``_sbml``; never a clash)."""
    used = set(ids)
    out: dict[str, str] = {}
    for i in ids:
        name = i
        if not _IDENT.match(name) or name in _RESERVED:
            name = re.sub(r"\W", "_", f"{i}_sbml")
            while name in used:
                name += "_"
            used.add(name)
        out[i] = name
    return out


def read_sbml(
    path: str | os.PathLike[str],
    *,
    roles: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
) -> SbmlModel:
    """Import the SBML file at ``path`` (see the module docstring for the subset).

    Parameters
    ----------
    path
        An SBML Level 2 or 3 file (UTF-8, at most :data:`MAX_SBML_BYTES`, no DOCTYPE).
    roles
        ``{role: output name}`` of the model (:data:`abscopal.model.spec.OBSERVABLE_ROLES`), e.g.
        ``{"lesion_volume": "TV"}``, so that trials can score it; names are abscopal names (SBML ids unless renamed).
    units
        ``{name: unit string}`` overriding the units read from the file (e.g. ``{"TV": "µL"}``: a role may need
        a unit it knows).

    Raises
    ------
    ModelError
        For an unreadable or invalid file, or an element outside the subset (named in the message).
    """
    lib = require_libsbml()
    text = _read_text(path)
    doc = lib.readSBMLFromString(text)
    where_file = f"SBML file {str(path)!r}"
    problems = [
        doc.getError(i) for i in range(doc.getNumErrors()) if doc.getError(i).getSeverity() >= lib.LIBSBML_SEV_ERROR
    ]
    if problems:
        e = problems[0]
        raise ModelError(
            f"{where_file} is not valid SBML ({len(problems)} error(s)); first, line {e.getLine()}: "
            f"{e.getMessage().strip()}"
        )
    model = doc.getModel()
    if model is None:
        raise ModelError(f"{where_file} has no <model>")
    return _Importer(lib, doc, model, str(path), roles or {}, units or {}).run()


def from_sbml(
    path: str | os.PathLike[str],
    *,
    roles: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
) -> ModelSpec:
    """The :class:`ModelSpec` of the SBML file at ``path`` (:func:`read_sbml`'s ``spec``; its timed events, if any,
    are in :func:`read_sbml`'s ``schedule``)."""
    return read_sbml(path, roles=roles, units=units).spec


class _Importer:
    """One import (the passes of :func:`read_sbml`)."""

    def __init__(self, lib: Any, doc: Any, model: Any, path: str, roles: Mapping[str, str], units: Mapping[str, str]):
        self.lib, self.doc, self.model, self.path = lib, doc, model, path
        self.roles, self.unit_overrides = dict(roles), dict(units)
        self.notes: list[str] = []
        self.functions = {fd.getId(): fd for fd in model.getListOfFunctionDefinitions()}

    def fail(self, what: str) -> ModelError:
        return ModelError(f"SBML file {self.path!r}: {what}; outside abscopal's SBML subset (docs/interop.md)")

    # ---- pass 1: what is allowed ----------------------------------------------------------------------------------
    def check_subset(self) -> None:
        m, lib = self.model, self.lib
        pkgs = sorted(
            {
                name
                for i in range(self.doc.getNumPlugins())
                if (name := self.doc.getPlugin(i).getPackageName()) not in _IGNORED_PACKAGES
                and self.doc.isPackageEnabled(name)
            }
        )
        if pkgs:
            raise self.fail(f"uses the SBML package(s) {pkgs}")
        if m.getNumConstraints():
            raise self.fail(f"constraint {m.getConstraint(0).getMetaId() or 0!r} (constraints are not checked)")
        for rule in m.getListOfRules():
            if rule.isAlgebraic():
                raise self.fail(f"algebraic rule {lib.formulaToL3String(rule.getMath())!r}")
        if m.getLevel() >= 3 and m.isSetConversionFactor():
            raise self.fail("model conversionFactor")
        for c in m.getListOfCompartments():
            if not c.getConstant():
                raise self.fail(f"compartment {c.getId()!r} is not constant")
        for s in m.getListOfSpecies():
            if m.getLevel() >= 3 and s.isSetConversionFactor():
                raise self.fail(f"species {s.getId()!r} has a conversionFactor")
        for r in m.getListOfReactions():
            if r.isSetFast() and r.getFast():
                raise self.fail(f"reaction {r.getId()!r} is fast")
            if not r.isSetKineticLaw() or r.getKineticLaw().getMath() is None:
                raise self.fail(f"reaction {r.getId()!r} has no kinetic law")
            for ref in [*r.getListOfReactants(), *r.getListOfProducts()]:
                variable = (m.getLevel() >= 3 and not ref.getConstant()) or (
                    m.getLevel() < 3 and ref.isSetStoichiometryMath()
                )
                if variable:
                    raise self.fail(f"reaction {r.getId()!r}: species {ref.getSpecies()!r} has variable stoichiometry")

    # ---- the import -----------------------------------------------------------------------------------------------
    def run(self) -> SbmlModel:
        m = self.model
        self.check_subset()
        rate_rules = {r.getVariable(): r for r in m.getListOfRules() if r.isRate()}
        assign_rules = {r.getVariable(): r for r in m.getListOfRules() if r.isAssignment()}
        init_assign = {a.getSymbol(): a for a in m.getListOfInitialAssignments()}
        event_targets = {ea.getVariable() for ev in m.getListOfEvents() for ea in ev.getListOfEventAssignments()}
        local_params: dict[str, Any] = {}  # abscopal id "<reaction>_<local>" -> the local parameter
        for r in m.getListOfReactions():
            kl = r.getKineticLaw()
            for lp in [*kl.getListOfParameters(), *(kl.getListOfLocalParameters() if m.getLevel() >= 3 else [])]:
                local_params[f"{r.getId()}_{lp.getId()}"] = lp

        # classify every id: state, parameter, rule (observable), derived (constant with an initial assignment)
        kind: dict[str, str] = {}
        for c in m.getListOfCompartments():
            kind[c.getId()] = "derived" if c.getId() in init_assign else "parameter"
        for p in m.getListOfParameters():
            i = p.getId()
            if i in assign_rules:
                kind[i] = "rule"
            elif i in rate_rules or (not p.getConstant() and i in event_targets):
                kind[i] = "state"
            else:
                kind[i] = "derived" if i in init_assign else "parameter"
        for s in m.getListOfSpecies():
            i = s.getId()
            if i in assign_rules:
                kind[i] = "rule"
            elif i in rate_rules or i in event_targets:
                kind[i] = "state"
            elif s.getConstant() or s.getBoundaryCondition():
                kind[i] = "derived" if i in init_assign else "parameter"
            else:
                kind[i] = "state"
        for i in local_params:
            if i in kind:
                raise self.fail(f"local parameter {i!r} clashes with a global id")
            kind[i] = "parameter"
        for r in m.getListOfReactions():
            kind[r.getId()] = "rule"  # a reaction's id is its rate
        for target in event_targets:
            if kind.get(target) != "state":
                raise self.fail(f"an event assigns {target!r}, which is not a variable species or parameter")

        names = _rename(list(kind))
        symbols = {i: sym(names[i]) for i in kind}
        species = {s.getId(): s for s in m.getListOfSpecies()}
        compartments = {c.getId(): c for c in m.getListOfCompartments()}

        def math_of(node: Any, where: str, local: Mapping[str, Any] | None = None) -> sp.Expr:
            table = {**symbols, **(local or {})}
            return sp.sympify(from_ast(node, table, self.functions, f"SBML file {self.path!r}, {where}"))

        # expressions standing for rule variables, reaction rates and initial-assigned constants (resolved later)
        defs: dict[sp.Symbol, sp.Expr] = {}
        for i, rule in assign_rules.items():
            if i not in kind:
                raise self.fail(f"assignment rule for {i!r}, which is not a species or parameter")
            defs[symbols[i]] = math_of(rule.getMath(), f"assignment rule of {i!r}")
        rates_raw: dict[str, sp.Expr] = {}
        for r in m.getListOfReactions():
            kl = r.getKineticLaw()
            local = {
                lp.getId(): symbols[f"{r.getId()}_{lp.getId()}"]
                for lp in [*kl.getListOfParameters(), *(kl.getListOfLocalParameters() if m.getLevel() >= 3 else [])]
            }
            rates_raw[r.getId()] = math_of(kl.getMath(), f"kinetic law of reaction {r.getId()!r}", local)
            defs[symbols[r.getId()]] = rates_raw[r.getId()]
        for i, k in kind.items():
            if k == "derived":
                defs[symbols[i]] = math_of(init_assign[i].getMath(), f"initial assignment of {i!r}")

        resolved: dict[sp.Symbol, sp.Expr] = {}

        def resolve(e: sp.Expr, chain: tuple[sp.Symbol, ...] = ()) -> sp.Expr:
            subs = {}
            for s in e.free_symbols & defs.keys():
                if s in chain:
                    raise self.fail(f"rules and initial assignments depend on each other in a cycle through {s.name!r}")
                if s not in resolved:
                    resolved[s] = resolve(defs[s], (*chain, s))
                subs[s] = resolved[s]
            return e.xreplace(subs) if subs else e

        # parameters (and their values)
        params: list[Parameter] = []

        def value_of(i: str) -> float:
            el: Any = compartments.get(i) or species.get(i) or m.getParameter(i) or local_params.get(i)
            if i in compartments:
                v = el.getSize() if el.isSetSize() else math.nan
            elif i in species:
                v = self._species_initial_number(el, compartments)
            else:
                v = el.getValue() if el.isSetValue() else math.nan
            if not math.isfinite(v):
                raise self.fail(f"{i!r} has no finite value (and no initial assignment)")
            return float(v)

        def units_of(i: str) -> str:
            if names[i] in self.unit_overrides:
                return str(self.unit_overrides[names[i]])
            if i in species:
                s = species[i]
                model_sub = _units_text(m, m.getSubstanceUnits()) if m.getLevel() >= 3 else ""
                sub = _units_text(m, s.getSubstanceUnits()) or model_sub or "substance"
                if s.getHasOnlySubstanceUnits():
                    return sub
                comp = compartments.get(s.getCompartment())
                size_units = _units_text(m, comp.getUnits()) if comp is not None else ""
                return f"{sub}/{size_units or 'volume'}"
            el = compartments.get(i) or m.getParameter(i) or local_params.get(i)
            return _units_text(m, el.getUnits()) if el is not None and el.isSetUnits() else ""

        def long_name(i: str) -> str:
            el = compartments.get(i) or species.get(i) or m.getParameter(i) or local_params.get(i)
            return str(el.getName()) if el is not None and el.isSetName() and el.getName() else i

        for i, k in kind.items():
            if k == "parameter":
                params.append(
                    Parameter(
                        name=names[i],
                        units=units_of(i) or "",
                        default=value_of(i),
                        description=long_name(i) + (" (compartment size)" if i in compartments else ""),
                        source=f"SBML {Path(self.path).name}",
                    )
                )

        # states: rates and initial values
        state_ids = [i for i, k in kind.items() if k == "state"]
        stoich: dict[str, list[tuple[float, str]]] = {i: [] for i in state_ids}
        for r in m.getListOfReactions():
            for sign, refs in ((-1.0, r.getListOfReactants()), (1.0, r.getListOfProducts())):
                for ref in refs:
                    sid = ref.getSpecies()
                    s = species.get(sid)
                    if s is None:
                        raise self.fail(f"reaction {r.getId()!r} names unknown species {sid!r}")
                    if s.getBoundaryCondition() or s.getConstant() or sid in rate_rules or sid in assign_rules:
                        continue
                    n = ref.getStoichiometry() if ref.isSetStoichiometry() or m.getLevel() < 3 else math.nan
                    if not math.isfinite(n):
                        raise self.fail(f"reaction {r.getId()!r}: stoichiometry of {sid!r} is not set")
                    stoich[sid].append((sign * n, r.getId()))
        rates: dict[str, sp.Expr] = {}
        initial_raw: dict[str, sp.Expr] = {}
        for i in state_ids:
            if i in rate_rules:
                rate = math_of(rate_rules[i].getMath(), f"rate rule of {i!r}")
            elif i in species and not (species[i].getBoundaryCondition() or species[i].getConstant()):
                rate = sp.Add(*[sp.Float(n) * rates_raw[rid] if n != 1 else rates_raw[rid] for n, rid in stoich[i]])
                if not species[i].getHasOnlySubstanceUnits():
                    rate = rate / self._size_symbol(species[i], symbols)
            else:
                rate = sp.Integer(0)  # changed only by events
            rates[names[i]] = resolve(rate)
            if i in init_assign:
                initial_raw[i] = math_of(init_assign[i].getMath(), f"initial assignment of {i!r}")
            elif i in species:
                initial_raw[i] = self._species_initial(species[i], symbols)
            else:
                initial_raw[i] = sp.Float(value_of(i))
        # initial values may name other states (their initial values), rules (at the start) and time (0)
        init_done: dict[str, sp.Expr] = {}
        state_sym = {symbols[i]: i for i in state_ids}

        def initial(i: str, chain: tuple[str, ...] = ()) -> sp.Expr:
            if i in init_done:
                return init_done[i]
            if i in chain:
                raise self.fail(f"initial values of {' -> '.join((*chain, i))} depend on each other")
            e = resolve(initial_raw[i]).xreplace({TIME: sp.Integer(0)})
            e = e.xreplace({s: initial(state_sym[s], (*chain, i)) for s in e.free_symbols & state_sym.keys()})
            init_done[i] = e
            return e

        states = [
            State(
                name=names[i],
                units=units_of(i) or "",
                long_name=long_name(i),
                initial=initial(i),
                nonnegative=False,
                abs_tol=_STATE_ABS_TOL,
            )
            for i in state_ids
        ]
        observables = [
            Observable(
                name=names[i],
                units=units_of(i) or "",
                long_name=long_name(i),
                expr=resolve(symbols[i]),
            )
            for i in assign_rules
        ]

        events, schedule = self._events(math_of, resolve, names, kind)
        spec_name = re.sub(r"\W", "_", m.getId() or Path(self.path).stem) or "sbml_model"
        description = (
            f"Imported from SBML {Path(self.path).name} (model id {m.getId()!r}, name {m.getName()!r}) by "
            "abscopal.sbml.read_sbml."
        )
        try:
            spec = ModelSpec(
                name=spec_name,
                description=description,
                states=tuple(states),
                parameters=tuple(params),
                rates=rates,
                events=tuple(events),
                observables=tuple(observables),
                roles=self.roles,
            )
        except ModelError as exc:
            raise ModelError(f"SBML file {self.path!r}: {exc}") from None
        renamed = FrozenMap({i: n for i, n in names.items() if i != n})
        if renamed:
            self.notes.append("renamed (reserved in abscopal): " + ", ".join(f"{i} -> {n}" for i, n in renamed.items()))
        return SbmlModel(spec=spec, schedule=schedule, names=renamed, path=self.path, notes=tuple(self.notes))

    # ---- helpers --------------------------------------------------------------------------------------------------
    def _size_symbol(self, s: Any, symbols: Mapping[str, sp.Symbol]) -> sp.Expr:
        comp = s.getCompartment()
        if comp not in symbols:
            raise self.fail(f"species {s.getId()!r} is in unknown compartment {comp!r}")
        return symbols[comp]

    def _species_initial_number(self, s: Any, compartments: Mapping[str, Any]) -> float:
        comp = compartments.get(s.getCompartment())
        size = comp.getSize() if comp is not None and comp.isSetSize() else math.nan
        if s.getHasOnlySubstanceUnits():
            if s.isSetInitialAmount():
                return float(s.getInitialAmount())
            return float(s.getInitialConcentration() * size) if s.isSetInitialConcentration() else math.nan
        if s.isSetInitialConcentration():
            return float(s.getInitialConcentration())
        return float(s.getInitialAmount() / size) if s.isSetInitialAmount() else math.nan

    def _species_initial(self, s: Any, symbols: Mapping[str, sp.Symbol]) -> sp.Expr:
        size = self._size_symbol(s, symbols)
        if s.getHasOnlySubstanceUnits():
            if s.isSetInitialAmount():
                return sp.Float(s.getInitialAmount())
            if s.isSetInitialConcentration():
                return sp.Float(s.getInitialConcentration()) * size
        else:
            if s.isSetInitialConcentration():
                return sp.Float(s.getInitialConcentration())
            if s.isSetInitialAmount():
                return sp.Float(s.getInitialAmount()) / size
        raise self.fail(f"species {s.getId()!r} has no initial amount, concentration or initial assignment")

    def _events(
        self, math_of: Any, resolve: Any, names: Mapping[str, str], kind: Mapping[str, str]
    ) -> tuple[list[Event], tuple[tuple[float, str, tuple[float, ...]], ...]]:
        lib, m = self.lib, self.model
        used = set(names.values())
        events: list[Event] = []
        timed: list[tuple[float, float, int, str, bool]] = []
        for k, ev in enumerate(m.getListOfEvents()):
            eid = ev.getId() if ev.isSetId() and ev.getId() else f"event_{k + 1}"
            label = f"event {eid!r}"
            if ev.isSetDelay():
                raise self.fail(f"{label} has a delay")
            trig = ev.getTrigger()
            if trig is None or trig.getMath() is None:
                raise self.fail(f"{label} has no trigger")
            cond = resolve(math_of(trig.getMath(), f"trigger of {label}"))
            t_fire = _trigger_time(cond)
            if t_fire is None:
                raise self.fail(
                    f"{label} has the trigger {lib.formulaToL3String(trig.getMath())!r}; only 'time >= T' with a "
                    "number T (or time > T) is supported"
                )
            priority = -math.inf  # no priority: after the events that have one
            if ev.isSetPriority() and ev.getPriority().getMath() is not None:
                pr = resolve(math_of(ev.getPriority().getMath(), f"priority of {label}"))
                if pr.free_symbols:
                    raise self.fail(f"{label} has a priority that is not a number")
                priority = float(pr)
            initial_value = m.getLevel() < 3 or trig.getInitialValue()
            name = re.sub(r"\W", "_", eid)
            if not _IDENT.match(name) or name in _RESERVED or name in used:
                name = f"{name}_event"
                while name in used:
                    name += "_"
            used.add(name)
            jumps = {}
            for ea in ev.getListOfEventAssignments():
                target = ea.getVariable()
                jumps[names[target]] = resolve(math_of(ea.getMath(), f"{label}, assignment of {target!r}"))
            events.append(Event(name=name, arguments=(), jumps=jumps, description=f"SBML {label}"))
            timed.append((t_fire, -priority, k, name, bool(initial_value)))
        timed.sort()
        start = min([0.0] + [t for t, *_ in timed])
        schedule = []
        for t, _, _, name, initial_value in timed:
            if t <= start and initial_value:
                self.notes.append(
                    f"event {name!r} at day {t:g} does not fire: its trigger is already true at the start (day "
                    f"{start:g}) and its initialValue is true, so it never changes from false to true"
                )
                continue
            schedule.append((float(t), name, ()))
        simultaneous = any(a[0] == b[0] for a, b in itertools.pairwise(schedule))
        if simultaneous and any(m.getLevel() < 3 or e.getUseValuesFromTriggerTime() for e in m.getListOfEvents()):
            self.notes.append(
                "simultaneous events are applied one after the other (each from the state the previous one left), "
                "also where useValuesFromTriggerTime is true"
            )
        return events, tuple(schedule)


def _trigger_time(cond: Any) -> float | None:
    """T of a trigger ``time >= T`` (also ``>``, ``T <= time``, ``T < time``) with a number T; else None."""
    if isinstance(cond, sp.GreaterThan | sp.StrictGreaterThan):
        lhs, rhs = cond.lhs, cond.rhs
    elif isinstance(cond, sp.LessThan | sp.StrictLessThan):
        lhs, rhs = cond.rhs, cond.lhs
    else:
        return None
    if lhs != TIME or rhs.free_symbols:
        return None
    try:
        t = float(rhs)
    except TypeError:
        return None
    return t if math.isfinite(t) else None
