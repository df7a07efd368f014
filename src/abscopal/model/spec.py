"""The model specification language: a model is data, not code.

A :class:`ModelSpec` holds states, parameters, sympy rate expressions, events (jump maps),
observables and named mechanisms. Nothing in it runs; :func:`abscopal.model.compile_model`
turns it into compiled kernels.

Conventions
-----------
* Every state and parameter is a sympy ``Symbol`` with the same name (use :func:`sym`).
  The independent variable is :data:`TIME` (``t``, in days).
* Each :class:`Mechanism` owns a switch parameter ``on_<name>`` (default 1). Rate terms that
  belong to the mechanism are multiplied by that switch, so setting it to 0 makes them vanish;
  a mechanism may also list ``neutral`` parameter values applied when it is switched off.
* Events are jump maps applied exactly at their times: ``jumps`` maps a state name to the new
  value as an expression of the pre-jump states, the parameters and the event's arguments.
  All jumps of one event are applied simultaneously.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import sympy as sp

from .._frozen import FrozenMap
from ..errors import ModelError, unknown_name_message

__all__ = [
    "OBSERVABLE_ROLES",
    "TIME",
    "Event",
    "EventArgument",
    "Mechanism",
    "ModelSpec",
    "Observable",
    "Parameter",
    "State",
    "sym",
]

TIME = sp.Symbol("t", real=True)
"""The independent variable (days)."""

OBSERVABLE_ROLES: Mapping[str, str] = FrozenMap(
    {
        "lesion_diameter": "per-lesion diameter (mm), scored by RECIST",
        "lesion_volume": "per-lesion volume (mm3 or µL), scored by RECIST as a sphere-equivalent diameter "
        "when the model has no lesion_diameter",
        "new_lesion_hazard": "cumulative hazard of a new lesion (1); a new lesion appears when it crosses the "
        "patient's Exp(1) draw",
        "tumour_burden": "total tumour burden, the death hazard's tumour-size link",
        "lymphocytes": "absolute lymphocyte count (1e9/L), for the lymphocyte nadir",
        "rt_dose": "per-lesion cumulative RT dose (Gy), which lesions were irradiated",
    }
)
"""The roles a model output can play in trial scoring (role -> what the endpoints read from it).

Per-lesion roles (``lesion_diameter``, ``lesion_volume``, ``rt_dose``) name a per-lesion output group in a
model with lesions; in a model without lesion structure (``n_lesions = 0``) they name a systemic output,
scored as one lesion. Every role is optional for the model; endpoints that need a missing role are NaN
(see :mod:`abscopal.endpoints.readout`)."""
_LESION_ROLES = frozenset({"lesion_diameter", "lesion_volume", "rt_dose"})
_ROLE_UNITS = {"lesion_diameter": ("mm", "cm"), "lesion_volume": ("mm3", "µL", "uL", "cm3", "mL")}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {"t", "y", "p", "a", "dy", "J", "out", "math", "np", "nb", "k"}


def sym(name: str) -> sp.Symbol:
    """Return the sympy symbol used for the state, parameter or argument ``name``."""
    return sp.Symbol(name, real=True)


def _check_ident(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _IDENT.match(name) or name in _RESERVED:
        raise ModelError(
            f"{kind} name {name!r} is not a valid identifier; use letters, digits and '_' "
            f"(not starting with a digit) and avoid the reserved names {sorted(_RESERVED)}"
        )


def _freeze(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return FrozenMap(dict(mapping or {}))


@dataclass(frozen=True, kw_only=True)
class State:
    """A state variable.

    Parameters
    ----------
    name
        Identifier (also the sympy symbol name).
    units
        Units string, e.g. ``"mm3"``.
    long_name
        Human-readable name used for plot labels.
    initial
        Initial value: a number or a sympy expression of parameters.
    group
        Name of the output variable this state belongs to. States of one group that differ by
        ``lesion`` are stacked along a ``lesion`` dimension. Defaults to ``name``.
    lesion
        0-based lesion index for per-lesion states, ``None`` for systemic states.
    nonnegative
        Clip tiny negative values produced by the integrator to zero.
    abs_tol
        Absolute tolerance scale of the state (in its units).
    """

    name: str
    units: str
    long_name: str
    initial: Any = 0.0
    group: str | None = None
    lesion: int | None = None
    nonnegative: bool = True
    abs_tol: float = 1e-8

    def __post_init__(self) -> None:
        _check_ident("state", self.name)
        object.__setattr__(self, "initial", sp.sympify(self.initial))
        if self.group is None:
            object.__setattr__(self, "group", self.name)
        if self.lesion is not None and (not isinstance(self.lesion, int) or self.lesion < 0):
            raise ModelError(f"state {self.name!r}: lesion must be an int >= 0, got {self.lesion!r}")
        if not (self.abs_tol > 0 and math.isfinite(self.abs_tol)):
            raise ModelError(f"state {self.name!r}: abs_tol must be > 0, got {self.abs_tol!r}")

    @property
    def symbol(self) -> sp.Symbol:
        """The sympy symbol of this state."""
        return sym(self.name)


@dataclass(frozen=True, kw_only=True)
class Parameter:
    """A model parameter with units, default, bounds and its source.

    Parameters
    ----------
    name
        Identifier (lmfit-compatible).
    units
        Units string (``"1"`` for dimensionless).
    default
        Default value.
    lower, upper
        Plausible bounds (inclusive); values outside are rejected by :meth:`ModelSpec.check_values`.
    description
        What the parameter means.
    source
        Where the default comes from (citation, or ``"assumption: ..."``).
    """

    name: str
    units: str
    default: float
    lower: float = -math.inf
    upper: float = math.inf
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        _check_ident("parameter", self.name)
        default = float(self.default)
        object.__setattr__(self, "default", default)
        if not math.isfinite(default):
            raise ModelError(f"parameter {self.name!r}: default must be finite, got {default!r}")
        if not (self.lower <= default <= self.upper):
            raise ModelError(
                f"parameter {self.name!r}: default {default} lies outside its bounds "
                f"[{self.lower}, {self.upper}]; fix the default or the bounds"
            )

    @property
    def symbol(self) -> sp.Symbol:
        """The sympy symbol of this parameter."""
        return sym(self.name)


@dataclass(frozen=True, kw_only=True)
class Mechanism:
    """A named mechanism that can be switched off for ablation studies.

    Its switch parameter is ``on_<name>``; rate and jump terms that belong to it are multiplied
    by :attr:`switch`. ``neutral`` lists parameter values that make the mechanism inert and are
    applied as well when it is switched off.
    """

    name: str
    description: str
    source: str = ""
    neutral: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_ident("mechanism", self.name)
        object.__setattr__(self, "neutral", _freeze({k: float(v) for k, v in self.neutral.items()}))

    @property
    def switch_name(self) -> str:
        """Name of the switch parameter."""
        return f"on_{self.name}"

    @property
    def switch(self) -> sp.Symbol:
        """Sympy symbol of the switch parameter (1 = on, 0 = off)."""
        return sym(self.switch_name)


@dataclass(frozen=True, kw_only=True)
class EventArgument:
    """A named numerical argument of an event (e.g. the dose of a fraction)."""

    name: str
    units: str
    description: str = ""
    lower: float = 0.0
    upper: float = math.inf

    def __post_init__(self) -> None:
        _check_ident("event argument", self.name)


@dataclass(frozen=True, kw_only=True)
class Event:
    """A discrete event: a jump map applied exactly at the event time.

    Parameters
    ----------
    name
        Identifier, e.g. ``"radiation_fraction"`` or ``"drug_dose"``.
    arguments
        The event's numerical arguments (symbols usable in ``jumps``).
    jumps
        ``{state name: new value expression}``; unlisted states are unchanged.
    description, source
        What the event does and where its form comes from.
    """

    name: str
    arguments: tuple[EventArgument, ...]
    jumps: Mapping[str, Any]
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        _check_ident("event", self.name)
        object.__setattr__(self, "arguments", tuple(self.arguments))
        object.__setattr__(self, "jumps", _freeze({k: sp.sympify(v) for k, v in self.jumps.items()}))

    @property
    def argument_names(self) -> tuple[str, ...]:
        """Names of the arguments, in order."""
        return tuple(a.name for a in self.arguments)


@dataclass(frozen=True, kw_only=True)
class Observable:
    """A derived output (e.g. lesion volume, longest diameter, total burden)."""

    name: str
    units: str
    long_name: str
    expr: Any
    group: str | None = None
    lesion: int | None = None

    def __post_init__(self) -> None:
        _check_ident("observable", self.name)
        object.__setattr__(self, "expr", sp.sympify(self.expr))
        if self.group is None:
            object.__setattr__(self, "group", self.name)


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A complete ODE model with events, as data.

    Parameters
    ----------
    name
        Model identifier.
    description
        Docstring-style description, including the equations.
    states, parameters, events, observables, mechanisms
        The model's parts (tuples; order defines vector layout).
    rates
        ``{state name: d(state)/dt expression}``; every state needs one.
    references
        ``{key: full citation}`` of the sources the model rests on.
    n_lesions
        Number of lesions (0 for models without lesion structure).
    roles
        ``{role: output name}``: which output (a state or observable group, as in the simulated dataset)
        plays which part in trial scoring; roles are in :data:`OBSERVABLE_ROLES`, and a model declares only
        those it has. Roles describe how outputs are read, not the model: they are not in :meth:`content_hash`.
    """

    name: str
    description: str
    states: tuple[State, ...]
    parameters: tuple[Parameter, ...]
    rates: Mapping[str, Any]
    events: tuple[Event, ...] = ()
    observables: tuple[Observable, ...] = ()
    mechanisms: tuple[Mechanism, ...] = ()
    references: Mapping[str, str] = field(default_factory=dict)
    n_lesions: int = 0
    roles: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for attr in ("states", "parameters", "events", "observables", "mechanisms"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        object.__setattr__(self, "rates", _freeze({k: sp.sympify(v) for k, v in self.rates.items()}))
        object.__setattr__(self, "references", _freeze(self.references))
        if not isinstance(self.roles, Mapping):
            raise ModelError(
                f"model {self.name!r}: roles must be a mapping {{role: output name}}, got {self.roles!r}; "
                "e.g. roles={'lesion_diameter': 'lesion_diameter'}"
            )
        object.__setattr__(self, "roles", _freeze(self.roles))
        self._validate()
        self._validate_roles()

    # -- validation --------------------------------------------------------------------------
    def _validate(self) -> None:
        names: dict[str, str] = {}
        for kind, items in (
            ("state", self.states),
            ("parameter", self.all_parameters),
            ("event", self.events),
            ("observable", self.observables),
        ):
            for item in items:
                if item.name in names and not (kind == "observable" and names[item.name] == "state"):
                    raise ModelError(
                        f"{kind} name {item.name!r} is already used by a {names[item.name]}; names must be unique"
                    )
                names.setdefault(item.name, kind)
        state_names = set(self.state_names)
        missing = state_names - set(self.rates)
        if missing:
            raise ModelError(f"model {self.name!r}: no rate given for states {sorted(missing)}")
        extra = set(self.rates) - state_names
        if extra:
            bad = sorted(extra)[0]
            raise ModelError("rates: " + unknown_name_message("state", bad, state_names))
        allowed = state_names | set(self.parameter_names) | {TIME.name}
        for s, expr in self.rates.items():
            self._check_free(f"rate of {s!r}", expr, allowed)
        for st in self.states:
            self._check_free(f"initial value of {st.name!r}", st.initial, set(self.parameter_names))
        for ev in self.events:
            ev_allowed = allowed | set(ev.argument_names)
            for s, expr in ev.jumps.items():
                if s not in state_names:
                    raise ModelError(f"event {ev.name!r}: " + unknown_name_message("state", s, state_names))
                self._check_free(f"jump of {s!r} in event {ev.name!r}", expr, ev_allowed)
        for ob in self.observables:
            self._check_free(f"observable {ob.name!r}", ob.expr, allowed)
        for mech in self.mechanisms:
            for pname in mech.neutral:
                if pname not in self.parameter_names:
                    raise ModelError(
                        f"mechanism {mech.name!r} neutral values: "
                        + unknown_name_message("parameter", pname, self.parameter_names)
                    )

    def _validate_roles(self) -> None:
        outputs: dict[str, list[tuple[int | None, str]]] = {}
        items: list[State | Observable] = [*self.states, *self.observables]
        for item in items:
            # group is set to the name in __post_init__; `or` matches how simulate names the output variables
            outputs.setdefault(item.group or item.name, []).append((item.lesion, item.units))
        for role, name in self.roles.items():
            where = f"model {self.name!r}, roles[{role!r}]"
            if role not in OBSERVABLE_ROLES:
                raise ModelError(
                    f"model {self.name!r}, roles: " + unknown_name_message("role", str(role), OBSERVABLE_ROLES)
                )
            if not isinstance(name, str) or name not in outputs:
                raise ModelError(
                    f"{where} = {name!r}: "
                    + unknown_name_message("output (state or observable group)", str(name), outputs)
                    + "; name an output of the model or leave the role out"
                )
            members = outputs[name]
            if (
                role in _LESION_ROLES
                and self.n_lesions
                and sorted(m[0] for m in members if m[0] is not None) != list(range(self.n_lesions))
            ):
                raise ModelError(
                    f"{where} = {name!r}: a per-lesion role needs an output with one member per lesion "
                    f"(0..{self.n_lesions - 1}); name a per-lesion group"
                )
            units = {m[1] for m in members}
            if role in _ROLE_UNITS and not units <= set(_ROLE_UNITS[role]):
                raise ModelError(
                    f"{where} = {name!r} has units {sorted(units)}; role {role!r} needs "
                    + " or ".join(repr(u) for u in _ROLE_UNITS[role])
                )

    def output(self, role: str) -> str | None:
        """The output (state or observable group) that plays ``role``; ``None`` if the model has none."""
        if role not in OBSERVABLE_ROLES:
            raise ModelError(unknown_name_message("role", str(role), OBSERVABLE_ROLES))
        return self.roles.get(role)

    @staticmethod
    def _check_free(where: str, expr: sp.Expr, allowed: set[str]) -> None:
        for s in expr.free_symbols:
            if s.name not in allowed:
                raise ModelError(f"{where}: " + unknown_name_message("symbol", s.name, allowed))

    # -- lookup ------------------------------------------------------------------------------
    @property
    def all_parameters(self) -> tuple[Parameter, ...]:
        """Model parameters followed by one switch parameter per mechanism."""
        switches = tuple(
            Parameter(
                name=m.switch_name,
                units="1",
                default=1.0,
                lower=0.0,
                upper=1.0,
                description=f"switch of mechanism {m.name!r} (1 on, 0 off): {m.description}",
                source=m.source,
            )
            for m in self.mechanisms
        )
        return self.parameters + switches

    @property
    def state_names(self) -> tuple[str, ...]:
        """State names in vector order."""
        return tuple(s.name for s in self.states)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Parameter names (switches included) in vector order."""
        return tuple(p.name for p in self.all_parameters)

    @property
    def mechanism_names(self) -> tuple[str, ...]:
        """Names of the switchable mechanisms."""
        return tuple(m.name for m in self.mechanisms)

    def parameter(self, name: str) -> Parameter:
        """Return the parameter called ``name`` (raises with a suggestion if unknown)."""
        for p in self.all_parameters:
            if p.name == name:
                return p
        raise ModelError(unknown_name_message("parameter", name, self.parameter_names))

    def state(self, name: str) -> State:
        """Return the state called ``name``."""
        for s in self.states:
            if s.name == name:
                return s
        raise ModelError(unknown_name_message("state", name, self.state_names))

    def event(self, name: str) -> Event:
        """Return the event called ``name``."""
        for e in self.events:
            if e.name == name:
                return e
        raise ModelError(unknown_name_message("event", name, [e.name for e in self.events]))

    def mechanism(self, name: str) -> Mechanism:
        """Return the mechanism called ``name``."""
        for m in self.mechanisms:
            if m.name == name:
                return m
        raise ModelError(unknown_name_message("mechanism", name, self.mechanism_names))

    # -- derived -----------------------------------------------------------------------------
    def default_values(self) -> dict[str, float]:
        """Default parameter values (switches on)."""
        return {p.name: p.default for p in self.all_parameters}

    def ablation(self, off: tuple[str, ...] | list[str] = ()) -> dict[str, float]:
        """Parameter overrides that switch off the named mechanisms.

        Returns ``{"on_<name>": 0.0, **neutral values}`` for each mechanism in ``off``.
        """
        out: dict[str, float] = {}
        for name in off:
            mech = self.mechanism(name)
            out[mech.switch_name] = 0.0
            out.update(mech.neutral)
        return out

    def content_hash(self) -> str:
        """SHA-256 of the model's canonical content (names, units, defaults and expressions)."""
        return self._content_hash

    @cached_property
    def _content_hash(self) -> str:
        # computed once per (immutable) spec; cached_property writes to the instance __dict__
        h = hashlib.sha256()

        def put(*parts: Any) -> None:
            for part in parts:
                h.update(repr(part).encode())
                h.update(b"\x00")

        put("abscopal-model-v1", self.name, self.n_lesions)
        for s in self.states:
            put("state", s.name, s.units, s.group, s.lesion, s.nonnegative, s.abs_tol, sp.srepr(s.initial))
            put("rate", sp.srepr(self.rates[s.name]))
        for p in self.all_parameters:
            put("param", p.name, p.units, p.default, p.lower, p.upper)
        for e in self.events:
            put("event", e.name, e.argument_names)
            for k in sorted(e.jumps):
                put(k, sp.srepr(e.jumps[k]))
        for o in self.observables:
            put("obs", o.name, o.units, o.group, o.lesion, sp.srepr(o.expr))
        for m in self.mechanisms:
            put("mech", m.name, sorted(m.neutral.items()))
        return h.hexdigest()

    def equations_latex(self, states: Iterable[str] | None = None) -> str:
        """The right-hand sides (of ``states``, default all) as a LaTeX ``align`` block (for documentation)."""
        names = {sym(n): r"\mathtt{" + n.replace("_", r"\_") + "}" for n in (*self.state_names, *self.parameter_names)}
        chosen = None if states is None else set(states)
        lines = [
            rf"\frac{{d\,{names[s.symbol]}}}{{dt}} &= {sp.latex(self.rates[s.name], symbol_names=names)}"
            for s in self.states
            if chosen is None or s.name in chosen
        ]
        return "\\begin{align}\n" + " \\\\\n".join(lines) + "\n\\end{align}"

    def sources(self) -> dict[str, str]:
        """Parameter name -> source, plus the model's references (for :func:`abscopal.cite`)."""
        out = {f"parameter {p.name}": p.source for p in self.all_parameters if p.source}
        out.update({f"reference {k}": v for k, v in self.references.items()})
        return out

    def summary(self) -> str:
        """A short plain-text table of states and parameters."""
        rows = [f"Model {self.name}: {len(self.states)} states, {len(self.all_parameters)} parameters"]
        rows += [f"  state {s.name:<16} [{s.units}] {s.long_name}" for s in self.states]
        rows += [f"  param {p.name:<28} = {p.default:<10.4g} [{p.units}] {p.description}" for p in self.all_parameters]
        return "\n".join(rows)
