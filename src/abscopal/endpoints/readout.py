"""What the endpoints read from a simulation dataset, found by the model's observable roles.

A model declares which of its outputs plays which part in trial scoring (:attr:`ModelSpec.roles
<abscopal.model.spec.ModelSpec>`); :func:`abscopal.simulate` writes that mapping into the dataset's
``roles`` attribute, and :func:`read_outputs` looks the variables up by role, never by state name:

* ``lesion_diameter`` (or ``lesion_volume``, turned into a sphere-equivalent diameter): RECIST; required;
* ``new_lesion_hazard``: the cumulative hazard whose crossing of an Exp(1) draw is a new lesion;
  absent: no new lesions are drawn;
* ``tumour_burden``: the death hazard's tumour-size link; absent: no deaths are drawn (OS not evaluable);
* ``lymphocytes``: the lymphocyte nadir; absent: NaN;
* ``rt_dose``: which lesions were irradiated; absent: the plan's dose per lesion (``rt_dose_gy``, written by
  :func:`abscopal.simulate` for every model).

A model without lesion structure (one tumour, outputs without a ``lesion`` dimension) is scored as one lesion.
Each role that the model lacks adds a sentence to :attr:`ModelOutputs.notes`. A dataset written before roles
existed (no ``roles`` attribute) is read with the names of the default NSCLC model.

A simulation with a history (prior RT before enrolment; its ``time_zero_day`` attribute, set by
:func:`abscopal.simulate`) is scored from its time zero on: :func:`trial_segment` cuts the history off and counts
the cumulative new-lesion hazard from time zero (a lesion that appeared before enrolment is part of the baseline
disease, not a new lesion).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..errors import ParameterError
from ..model.spec import OBSERVABLE_ROLES, ModelSpec

__all__ = ["LEGACY_ROLES", "ModelOutputs", "dataset_roles", "read_outputs", "scored_outputs", "trial_segment"]

LEGACY_ROLES: Mapping[str, str] = {
    "lesion_diameter": "lesion_diameter",
    "new_lesion_hazard": "H",
    "tumour_burden": "total_burden",
    "lymphocytes": "L",
}
"""Roles of a dataset without a ``roles`` attribute (the default NSCLC model's variable names)."""

_MM = {"mm": 1.0, "cm": 10.0}
_MM3 = {"mm3": 1.0, "µL": 1.0, "uL": 1.0, "ul": 1.0, "cm3": 1000.0, "mL": 1000.0, "ml": 1000.0}


@dataclass(frozen=True, kw_only=True, eq=False)
class ModelOutputs:
    """The simulated variables trial scoring needs, by role (``None``: the model has no such output).

    Arrays are indexed ``(arm, patient[, lesion], time)``; ``irradiated`` is ``(arm, lesion)``.
    """

    roles: Mapping[str, str]
    lesion_diameter_mm: np.ndarray
    new_lesion_hazard: np.ndarray | None
    tumour_burden: np.ndarray | None
    lymphocytes: np.ndarray | None
    irradiated: np.ndarray
    notes: tuple[str, ...]

    @property
    def n_lesions(self) -> int:
        """Number of lesions scored (1 for a model without lesion structure)."""
        return int(self.lesion_diameter_mm.shape[2])


def scored_outputs(spec: ModelSpec) -> tuple[str, ...]:
    """The outputs of ``spec`` that :func:`read_outputs` reads (for ``simulate(..., variables=...)``)."""
    roles = dict(spec.roles)
    if "lesion_diameter" in roles:
        roles.pop("lesion_volume", None)  # the diameter is read, not the volume
    return tuple(dict.fromkeys(roles.values()))


def dataset_roles(ds: xr.Dataset) -> dict[str, str]:
    """Role -> variable name of a simulation dataset (its ``roles`` attribute; :data:`LEGACY_ROLES` without)."""
    text = ds.attrs.get("roles")
    if text is None:
        roles = {k: v for k, v in LEGACY_ROLES.items() if k != "lymphocytes" or v in ds}
        return roles
    try:
        roles = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"dataset attribute 'roles' is not JSON ({exc}); simulate the dataset again") from exc
    if not isinstance(roles, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in roles.items()):
        raise ParameterError(f"dataset attribute 'roles' must map role names to variable names, got {text!r}")
    unknown = sorted(set(roles) - set(OBSERVABLE_ROLES))
    if unknown:
        raise ParameterError(
            f"dataset attribute 'roles' names unknown role {unknown[0]!r}; known roles: {sorted(OBSERVABLE_ROLES)}"
        )
    return roles


def _variable(ds: xr.Dataset, roles: Mapping[str, str], role: str) -> xr.DataArray:
    name = roles[role]
    if name not in ds:
        raise ParameterError(
            f"dataset lacks {name!r}, the model's {role!r} output; simulate with all variables or with "
            f"variables including {name!r}"
        )
    return ds[name]


def _per_lesion(var: xr.DataArray) -> np.ndarray:
    """``(arm, patient, lesion, time)`` values; a variable without a lesion dimension is one lesion."""
    if "lesion" in var.dims:
        return var.transpose("arm", "patient", "lesion", "time").values
    return var.transpose("arm", "patient", "time").values[:, :, None, :]


def _factor(var: xr.DataArray, role: str, table: Mapping[str, float]) -> float:
    units = str(var.attrs.get("units", ""))
    if units not in table:
        raise ParameterError(
            f"variable {var.name!r} (role {role!r}) has units {units!r}; the endpoints read "
            f"{' or '.join(repr(u) for u in table)}"
        )
    return table[units]


def _lesion_diameter(ds: xr.Dataset, roles: Mapping[str, str], notes: list[str]) -> np.ndarray:
    if "lesion_diameter" in roles:
        var = _variable(ds, roles, "lesion_diameter")
        # clipped at 0 as volumes are: a state that is not clipped by the solver (an imported SBML model's) and decays
        # to 0 carries solver noise of either sign, within its absolute tolerance
        values = np.clip(_per_lesion(var), 0.0, None)
        factor = _factor(var, "lesion_diameter", _MM)
        return values if factor == 1.0 else values * factor
    if "lesion_volume" in roles:
        var = _variable(ds, roles, "lesion_volume")
        volume = np.clip(_per_lesion(var), 0.0, None) * _factor(var, "lesion_volume", _MM3)
        notes.append(f"lesion diameters are the sphere-equivalent diameters of {var.name!r} (role lesion_volume)")
        return np.cbrt(6.0 * volume / math.pi)
    raise ParameterError(
        "the model declares no 'lesion_diameter' or 'lesion_volume' role, so RECIST cannot be scored; "
        "declare one in ModelSpec(roles={'lesion_diameter': ...})"
    )


def _irradiated(ds: xr.Dataset, roles: Mapping[str, str], n_lesions: int) -> np.ndarray:
    if "rt_dose" in roles:
        dose = _per_lesion(_variable(ds, roles, "rt_dose"))
        # numpy's stubs type .any(axis=...) as scalar or array; over two axes of a 4-D array it is a 2-D array
        return (dose > 0).any(axis=(1, 3))  # type: ignore[return-value]
    if "rt_dose_gy" not in ds:
        raise ParameterError("dataset lacks 'rt_dose_gy'; score a dataset made by abscopal.simulate")
    irradiated = ds.rt_dose_gy.values > 0
    if irradiated.shape[1] != n_lesions:
        raise ParameterError(
            f"rt_dose_gy describes {irradiated.shape[1]} lesions, the lesion outputs {n_lesions}; "
            "score a dataset made by abscopal.simulate"
        )
    return irradiated


def read_outputs(ds: xr.Dataset) -> ModelOutputs:
    """Look up every variable trial scoring needs by role (module docstring)."""
    roles = dataset_roles(ds)
    notes: list[str] = []
    diameter = _lesion_diameter(ds, roles, notes)
    optional: dict[str, np.ndarray | None] = {}
    missing = {
        "new_lesion_hazard": "no new lesions are drawn (progression from the target and non-target lesions only)",
        "tumour_burden": "no deaths are drawn: overall survival is not evaluable (NaN) and PFS counts progression only",
        "lymphocytes": "the lymphocyte nadir is NaN",
    }
    for role, consequence in missing.items():
        if role in roles:
            optional[role] = _variable(ds, roles, role).transpose("arm", "patient", "time").values
        else:
            optional[role] = None
            notes.append(f"the model has no {role!r} output: {consequence}")
    return ModelOutputs(
        roles=dict(roles),
        lesion_diameter_mm=diameter,
        new_lesion_hazard=optional["new_lesion_hazard"],
        tumour_burden=optional["tumour_burden"],
        lymphocytes=optional["lymphocytes"],
        irradiated=_irradiated(ds, roles, diameter.shape[2]),
        notes=tuple(notes),
    )


def trial_segment(ds: xr.Dataset) -> xr.Dataset:
    """The part of a simulation a trial scores: from its time zero on (module docstring).

    A dataset without a ``time_zero_day`` attribute (no history) is returned as it is. Otherwise the output times
    before time zero are dropped and the ``new_lesion_hazard`` output counts from time zero.

    Raises
    ------
    ParameterError
        If time zero is not an output time of the dataset.
    """
    if "time_zero_day" not in ds.attrs:
        return ds
    zero = float(ds.attrs["time_zero_day"])
    times = ds.time.values
    at = np.flatnonzero(np.isclose(times, zero, rtol=0.0, atol=1e-9))
    if at.size == 0:
        raise ParameterError(
            f"the dataset's time zero (day {zero:g}) is not one of its output times; simulate with output times "
            "that include it (the default grid does)"
        )
    trial = ds.isel(time=slice(int(at[0]), None))
    name = dataset_roles(ds).get("new_lesion_hazard")
    if name is not None and name in trial:
        hazard = trial[name]
        trial[name] = (hazard - hazard.isel(time=0)).assign_attrs(hazard.attrs)
    return trial
