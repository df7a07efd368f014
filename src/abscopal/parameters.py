"""Parameter sets: named values with their sources, validated against a model.

A :class:`ParameterSet` is an immutable mapping ``name -> value`` plus ``name -> source``;
it holds only what differs from the model defaults (or everything, when loaded from a fit).
:func:`resolve_values` merges defaults and overrides and validates the result against the
model's parameter specs (unknown names with a suggestion, NaN, outside bounds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ._frozen import FrozenMap
from .errors import ParameterError, unknown_name_message
from .model.spec import ModelSpec

__all__ = ["ParameterSet", "parameter_vector", "resolve_values", "validate_values"]


@dataclass(frozen=True, kw_only=True)
class ParameterSet:
    """Named parameter values with a source per value.

    Parameters
    ----------
    name
        Identifier of the set, e.g. ``"defaults"`` or the fit file it came from.
    values
        ``{parameter name: value}``.
    sources
        ``{parameter name: citation or fit}``; values without an entry inherit ``citation``.
    citation
        Source of the whole set.
    """

    name: str
    values: Mapping[str, float] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    citation: str = ""

    def __post_init__(self) -> None:
        vals = {}
        for k, v in self.values.items():
            try:
                vals[k] = float(v)
            except (TypeError, ValueError):
                raise ParameterError(f"parameter {k!r} in set {self.name!r} must be a number, got {v!r}") from None
        object.__setattr__(self, "values", FrozenMap(vals))
        object.__setattr__(self, "sources", FrozenMap(dict(self.sources)))

    def with_values(self, values: Mapping[str, float], source: str) -> ParameterSet:
        """Return a new set with ``values`` added or replaced, each attributed to ``source``."""
        merged = dict(self.values) | {k: float(v) for k, v in values.items()}
        sources = dict(self.sources) | {k: source for k in values}
        return ParameterSet(name=self.name, values=merged, sources=sources, citation=self.citation)

    def source_of(self, name: str) -> str:
        """Where the value of ``name`` comes from."""
        return self.sources.get(name, self.citation)


def validate_values(spec: ModelSpec, values: Mapping[str, float], *, argument: str = "parameters") -> None:
    """Raise :class:`ParameterError` for unknown names, non-finite or out-of-bounds values."""
    known = spec.parameter_names
    for name, value in values.items():
        if name not in known:
            raise ParameterError(f"{argument}: " + unknown_name_message("parameter", name, known))
        p = spec.parameter(name)
        if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(float(value)):
            raise ParameterError(f"{argument}: parameter {name!r} must be a finite number, got {value!r}")
        if not (p.lower <= float(value) <= p.upper):
            hint = p.description if p.lower == p.upper else "give a value inside the bounds"
            raise ParameterError(
                f"{argument}: parameter {name!r} = {value!r} is outside its bounds [{p.lower}, {p.upper}] "
                f"[{p.units}]; {hint}"
            )


def resolve_values(
    spec: ModelSpec, *layers: Mapping[str, float] | ParameterSet | None, mechanisms_off: Iterable[str] = ()
) -> dict[str, float]:
    """Model defaults overridden by each layer in turn, then the ablation of ``mechanisms_off``.

    Every layer is validated before it is applied.
    """
    values = spec.default_values()
    for i, layer in enumerate(layers):
        if layer is None:
            continue
        mapping = layer.values if isinstance(layer, ParameterSet) else layer
        validate_values(spec, mapping, argument=getattr(layer, "name", f"parameter layer {i}"))
        values.update({k: float(v) for k, v in mapping.items()})
    values.update(spec.ablation(tuple(mechanisms_off)))
    return values


def parameter_vector(spec: ModelSpec, values: Mapping[str, float]) -> np.ndarray:
    """Values in the model's parameter order."""
    return np.array([values[n] for n in spec.parameter_names], dtype=float)
