"""An imported SBML model named in a scenario or study file: the ``[model]`` table with ``sbml = "model.xml"``.

Format (docs/interop.md, "Using an imported model in scenarios and studies")::

    [model]
    sbml = "models/Kosinsky2018.xml"                  # relative to the TOML file's folder
    roles = { lesion_volume = "TV", tumour_burden = "TV" }   # role -> state or observable of the imported model
    units = { TV = "uL" }                                    # optional: unit strings overriding the file's

(``model = "models/model.xml"``, a string ending in ``.xml``, is the same without roles or units.) Roles are
:data:`abscopal.model.spec.OBSERVABLE_ROLES`; scoring (``abscopal simulate --endpoints``, studies) needs
``lesion_diameter`` or ``lesion_volume``. :func:`model_from_table` checks every key, reads the file with
:func:`abscopal.sbml.read_sbml` (its checks: a regular UTF-8 file of at most 64 MiB, no DOCTYPE, the supported
subset) and records the file's path and sha256 for the provenance (:meth:`ImportedModel.provenance`).

Events: an imported model's SBML events are argument-less events fired at fixed times
(:attr:`~abscopal.sbml.SbmlModel.schedule`); scenarios and studies fire them in every arm or cell. Treatment plans
need the model's ``radiation_fraction`` (RT) and ``drug_dose`` (drug) events taking the dose, which an SBML file
cannot give (an event it names so has no arguments); :func:`check_treatment` refuses such arms or study axes before
any work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ModelError, ScheduleError, unknown_name_message
from ..model.spec import OBSERVABLE_ROLES, ModelSpec
from .read import SbmlModel, read_sbml

__all__ = ["MODEL_TABLE_KEYS", "ImportedModel", "check_treatment", "is_sbml_model", "model_from_table"]

MODEL_TABLE_KEYS = frozenset({"sbml", "roles", "units"})
"""The keys of a ``[model]`` table that names an SBML file."""
LESION_ROLES = ("lesion_diameter", "lesion_volume")
"""The roles scoring needs (one of them)."""


@dataclass(frozen=True)
class ImportedModel:
    """An SBML model read for a scenario or study: the import, the file's resolved path and sha256, the table."""

    sbml: SbmlModel
    path: Path
    sha256: str
    roles: Mapping[str, str] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> ModelSpec:
        """The model spec, with the table's roles."""
        return self.sbml.spec

    @property
    def schedule(self) -> tuple[tuple[float, str, tuple[float, ...]], ...]:
        """The model's own timed events (:attr:`SbmlModel.schedule`)."""
        return self.sbml.schedule

    def provenance(self) -> dict[str, Any]:
        """What a result records about the model's source: path, sha256, roles, units, notes and timed events."""
        return {
            "sbml": str(self.path),
            "sbml_sha256": self.sha256,
            "roles": dict(self.roles),
            "units": dict(self.units),
            "notes": list(self.sbml.notes),
            "timed_events": [[t, name] for t, name, _ in self.schedule],
        }

    @property
    def scoreable(self) -> bool:
        """True if the model has a lesion-size role (``lesion_diameter`` or ``lesion_volume``)."""
        return any(r in self.roles for r in LESION_ROLES)


def is_sbml_model(value: Any) -> bool:
    """True if a ``model`` value of a scenario or study names an SBML file (a table with ``sbml``, or a string)."""
    return (isinstance(value, Mapping) and "sbml" in value) or isinstance(value, str)


def _names(where: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ModelError(f'{where} must be a table {{name = "value"}}, got {value!r}')
    for k, v in value.items():
        if not isinstance(v, str) or not v:
            raise ModelError(f"{where}.{k} must be a name (a non-empty string), got {v!r}; quote it")
    return dict(value)


def model_from_table(
    value: Any, *, relative_to: str | Path | None = None, where: str = "model", require_roles: bool = False
) -> ImportedModel:
    """Read the SBML model that a scenario's or study's ``model`` value names (module docstring).

    Parameters
    ----------
    value
        ``{"sbml": path, "roles": {...}, "units": {...}}`` or a path string ending in ``.xml``.
    relative_to
        The folder of the TOML file: a relative path is taken from there (default: the working directory).
    where
        The key, for messages.
    require_roles
        Refuse a model without a ``lesion_diameter`` or ``lesion_volume`` role (studies always score).

    Raises
    ------
    ModelError
        Naming the key, the value and the fix: an unknown key, a missing or unreadable file, a file outside the
        SBML subset, an unknown role, an output the model does not have, a unit a role cannot use.
    """
    if isinstance(value, str):
        if not value.lower().endswith(".xml"):
            raise ModelError(
                f"{where} = {value!r}: a model given as a string must be an SBML file ending in .xml; for a "
                f'library model write [{where}] with name = {value!r}, for an SBML file [{where}] with sbml = "..."'
            )
        value = {"sbml": value}
    if not isinstance(value, Mapping):
        raise ModelError(f'{where} must be a table ([{where}] with sbml = "model.xml"), got {value!r}')
    for k in value:
        if k not in MODEL_TABLE_KEYS:
            hint = (
                "; library-model options (name, n_lesions, growth, version) do not apply to an imported SBML model"
                if k in ("name", "n_lesions", "growth", "version", "dsb_repair", "pk")
                else ""
            )
            raise ModelError(f"{where}: " + unknown_name_message("key", str(k), sorted(MODEL_TABLE_KEYS)) + hint)
    raw = value["sbml"]
    if not isinstance(raw, str) or not raw.strip():
        raise ModelError(f'{where}.sbml must be the path of an SBML file (a string), got {raw!r}; e.g. "model.xml"')
    path = Path(raw)
    if not path.is_absolute() and relative_to is not None:
        path = Path(relative_to) / path
    if not path.exists():
        raise ModelError(
            f"{where}.sbml = {raw!r}: no such file ({str(path)!r}); a relative path is taken from the folder of the "
            "scenario or study file"
        )
    if not path.is_file():
        raise ModelError(f"{where}.sbml = {raw!r}: {str(path)!r} is not a regular file; give the path of an .xml file")
    roles = _names(f"{where}.roles", value.get("roles", {}))
    units = _names(f"{where}.units", value.get("units", {}))
    for role in roles:
        if role not in OBSERVABLE_ROLES:
            raise ModelError(
                f"{where}.roles: " + unknown_name_message("role", role, OBSERVABLE_ROLES) + f" (got {role} = "
                f"{roles[role]!r})"
            )
    if require_roles and not any(r in roles for r in LESION_ROLES):
        raise ModelError(
            f"{where}.roles: an imported model is scored only with a lesion size; give "
            'roles = { lesion_diameter = "<output in mm>" } or { lesion_volume = "<output in mm3 or uL>" }'
        )
    try:
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()  # read_sbml checks the size before it reads
    except OSError as exc:
        raise ModelError(f"{where}.sbml = {raw!r}: {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    try:
        imported = read_sbml(path, units=units)
    except ModelError as exc:
        raise ModelError(f"{where}.sbml = {raw!r}: {exc}") from None
    spec = imported.spec
    names = {*spec.state_names, *(o.name for o in spec.observables), *spec.parameter_names}
    for name in units:
        if name not in names:
            raise ModelError(
                f"{where}.units: "
                + unknown_name_message("state, observable or parameter", name, sorted(names))
                + f" in {raw!r}"
            )
    outputs = sorted({s.group or s.name for s in spec.states} | {o.group or o.name for o in spec.observables})
    for role, output in roles.items():
        if output not in outputs:
            raise ModelError(
                f"{where}.roles.{role} = {output!r}: "
                + unknown_name_message("output", output, outputs)
                + f" in {raw!r}; name a state or an assignment-rule observable of the SBML model (ids the "
                "import renamed, e.g. a -> a_sbml, go by their new names)"
            )
    try:
        spec = replace(spec, roles=roles)
    except ModelError as exc:
        msg = str(exc)
        if "has units" in msg:
            role = next(r for r in roles if f"roles[{r!r}]" in msg)
            msg += (
                f"; give the output's unit in [{where}], e.g. units = {{ {roles[role]} = "
                f'"{"mm" if role == "lesion_diameter" else "uL"}" }} (the SBML file\'s own units are not read as mm '
                "or uL)"
            )
        raise ModelError(f"{where}.roles: {msg}") from None
    return ImportedModel(sbml=replace(imported, spec=spec), path=path, sha256=sha256, roles=roles, units=units)


def check_treatment(spec: ModelSpec, *, rt: bool, drug: bool, where: str, fix: str) -> None:
    """Refuse RT without a ``radiation_fraction`` event or a drug without a ``drug_dose`` event in ``spec``
    (``where``: the arm or axis; ``fix``: what to write instead).

    The event must also take the dose (:func:`abscopal.simulate.plan_events` fills ``dose_gy`` / ``dose_gy_<j>``,
    ``dose_mg`` / ``dose_mg_per_kg`` by name): an SBML event of that name has no arguments and fires at its own
    time, so a plan's doses would be lost; it is refused too."""
    names = {e.name for e in spec.events}
    for needed, event, what, dose in (
        (rt, "radiation_fraction", "RT", lambda a: a == "dose_gy" or a.startswith("dose_gy_")),
        (drug, "drug_dose", "a drug", lambda a: a in ("dose_mg", "dose_mg_per_kg")),
    ):
        if not needed:
            continue
        if event not in names:
            own = sorted(names)
            raise ScheduleError(
                f"{where} gives {what}, but the imported model {spec.name!r} has no {event!r} event (its events: "
                f"{own or 'none'}; an SBML model's own events fire at their fixed times); {fix}"
            )
        if not any(dose(a) for a in spec.event(event).argument_names):
            raise ScheduleError(
                f"{where} gives {what}, but the event {event!r} of the imported model {spec.name!r} takes no dose "
                "argument (SBML events have none and fire at their own times), so the plan's doses would be lost; "
                f"{fix}"
            )
