"""``cite(*objects)``: the sources behind a model, a parameter set or a simulation result."""

from __future__ import annotations

import json
from typing import Any

import xarray as xr

from .model.compile import CompiledModel
from .model.spec import ModelSpec
from .parameters import ParameterSet

__all__ = ["cite"]


def cite(*objects: Any) -> str:
    """Plain-text list of the sources behind each object.

    Accepts model specs (their references and per-parameter sources), compiled models,
    parameter sets and simulation datasets (their provenance).
    """
    lines: list[str] = []
    for obj in objects:
        if isinstance(obj, CompiledModel):
            obj = obj.spec
        if isinstance(obj, ModelSpec):
            lines.append(f"Model {obj.name} (hash {obj.content_hash()[:12]})")
            lines += [f"  [{k}] {v}" for k, v in obj.references.items()]
            lines += [f"  {p.name} = {p.default:g} {p.units}: {p.source}" for p in obj.all_parameters if p.source]
            for ev in obj.events:
                if ev.source:
                    lines.append(f"  event {ev.name}: {ev.source}")
        elif isinstance(obj, ParameterSet):
            lines.append(f"Parameter set {obj.name}: {obj.citation}")
            lines += [f"  {k} = {v:g}: {obj.source_of(k)}" for k, v in obj.values.items()]
        elif isinstance(obj, xr.Dataset):
            prov = json.loads(obj.attrs.get("provenance", "{}"))
            lines.append(
                f"Result of model {prov.get('model')} (hash {str(prov.get('model_hash'))[:12]}), "
                f"abscopal {prov.get('version')}, parameter set {prov.get('parameter_set')}, "
                f"seed {prov.get('seed')}"
            )
            overrides = prov.get("parameter_overrides") or {}
            lines += [
                f"  {k} = {v:g}: set by the user (parameter set {prov.get('parameter_set')})"
                for k, v in overrides.items()
            ]
            lines += [
                f"  {k}: {v}"
                for k, v in (prov.get("sources") or {}).items()
                if k.removeprefix("parameter ") not in overrides
            ]
        else:
            raise TypeError(f"cite() does not know how to cite {type(obj).__name__}")
    return "\n".join(lines)
