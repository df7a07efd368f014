"""Fitted values and where they go: model parameters, variabilities, covariate effects, the death model, the
pneumonitis NTCP.

A fit (:class:`~abscopal.fitted.format.Fit`) stores values under five kinds of name:

* a model parameter name: its typical value;
* ``omega__<param>`` (:data:`OMEGA_PREFIX`): the inter-patient SD of the log (or logit) of ``<param>``, which
  replaces the omega of the population's variability;
* ``effect__pretreated__<param>`` / ``effect__squamous__<param>`` (:data:`EFFECT_PREFIX`): natural-log covariate
  effects on ``<param>`` of drawn virtual patients;
* ``survival__<field>`` (:data:`SURVIVAL_PREFIX`): a field of the assessment's death model. Each death model
  declares the fields a calibration may fit and their bounds (``FITTABLE``); the default
  :class:`~abscopal.endpoints.death.SurvivalModel`'s are :data:`SURVIVAL_FIELDS` / :data:`SURVIVAL_BOUNDS`, those
  of :class:`~abscopal.endpoints.survival_link.TumourGrowthSurvival` its own (pass ``survival_fields``);
* ``ntcp__<field>`` (:data:`NTCP_PREFIX`): a field of the assessment's pneumonitis model
  (:class:`~abscopal.endpoints.toxicity.PneumonitisModel`, fittable fields and bounds :data:`NTCP_BOUNDS`), e.g.
  ``ntcp__td50_gy``.

:func:`split_values` sorts a fit's values into these destinations (checking every name) and
:func:`population_for` applies omegas and effects to drawn virtual patients (:func:`with_omegas`: the omegas alone,
to a plain population: scenario files, studies of an imported model); scenario files, studies and the calibration
objective all apply a fit this way. :data:`SURVIVAL_BOUNDS`, :data:`OMEGA_MAX` and :data:`EFFECT_MAX`
are the bounds within which a calibration fits these values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from .._frozen import FrozenMap
from ..endpoints.assessment import DEATH_MODELS
from ..endpoints.death import SurvivalModel
from ..endpoints.survival_link import TumourGrowthSurvival
from ..endpoints.toxicity import PneumonitisModel
from ..errors import ParameterError, unknown_name_message
from ..patients import VirtualPatients

if TYPE_CHECKING:
    from ..endpoints.assessment import TrialAssessment
    from ..model.spec import ModelSpec
    from ..population import Variability, VirtualPopulation

__all__ = [
    "EFFECT_MAX",
    "EFFECT_PREFIX",
    "NTCP_BOUNDS",
    "NTCP_PREFIX",
    "OMEGA_MAX",
    "OMEGA_PREFIX",
    "SURVIVAL_BOUNDS",
    "SURVIVAL_FIELDS",
    "SURVIVAL_PREFIX",
    "SplitValues",
    "population_for",
    "split_values",
    "with_omegas",
]

OMEGA_PREFIX = "omega__"
"""Prefix of a fittable inter-patient SD: ``omega__tumour_doubling_time_day``."""
EFFECT_PREFIX = "effect__"
"""Prefix of a fittable covariate log-effect: ``effect__pretreated__effector_baseline``."""
SURVIVAL_PREFIX = "survival__"
"""Prefix of a fittable field of the death model: ``survival__base_hazard_per_day``."""
SURVIVAL_BOUNDS: Mapping[str, tuple[float, float]] = {
    **SurvivalModel.FITTABLE,
    **TumourGrowthSurvival.FITTABLE,
}
"""Bounds of the fittable fields of every death model (their names are disjoint, so the fields a fit names say which
death model it is for): the default :class:`~abscopal.endpoints.survival_link.TumourGrowthSurvival`
(``TumourGrowthSurvival.FITTABLE``) and model v1's :class:`~abscopal.endpoints.death.SurvivalModel`
(``SurvivalModel.FITTABLE``: base hazard from a median OS of about 14 days to 190 years at constant burden; size
exponent up to 3; a new lesion at most multiplies the hazard by 10; background mortality at most about 30%/year)."""
SURVIVAL_FIELDS = tuple(SURVIVAL_BOUNDS)
"""Fields of the death models a calibration may fit."""
NTCP_PREFIX = "ntcp__"
"""Prefix of a fittable field of the pneumonitis model: ``ntcp__td50_gy``."""
NTCP_BOUNDS: Mapping[str, tuple[float, float]] = PneumonitisModel.FITTABLE
"""Bounds of the fittable fields of :class:`~abscopal.endpoints.toxicity.PneumonitisModel` (its ``FITTABLE``)."""
OMEGA_MAX = 3.0
"""Upper bound of a fitted omega (SD of the log: a 20-fold spread per SD is beyond any popPK/PD report)."""
EFFECT_MAX = 3.0
"""Bound on a fitted covariate log-effect."""


class SplitValues(NamedTuple):
    """Calibration values by kind (:func:`split_values`)."""

    typical: dict[str, float]
    omegas: dict[str, float]
    effects: dict[str, dict[str, float]]
    survival: dict[str, float]
    ntcp: Mapping[str, float] = FrozenMap()

    def pneumonitis(self, base: PneumonitisModel | None = None) -> PneumonitisModel:
        """``base`` (default :class:`~abscopal.endpoints.toxicity.PneumonitisModel`) with the ``ntcp__`` fields
        replaced (a ParameterError naming the field for an unknown field or an invalid value)."""
        model = PneumonitisModel() if base is None else base
        for name, v in self.ntcp.items():
            if name not in PneumonitisModel.FITTABLE:
                raise ParameterError(
                    f"'{NTCP_PREFIX}{name}': "
                    + unknown_name_message("pneumonitis-model field", name, tuple(PneumonitisModel.FITTABLE))
                )
            try:
                model = replace(model, **{name: v})
            except ParameterError as exc:
                raise ParameterError(f"'{NTCP_PREFIX}{name}' = {v!r}: {exc}") from None
        return model

    def assessment(self, base: TrialAssessment) -> TrialAssessment:
        """``base`` (an :class:`~abscopal.endpoints.TrialAssessment`) with the death-model fields and the
        pneumonitis-model fields replaced (a ParameterError for a field the assessment's death model does not
        declare fittable, or an unknown pneumonitis field)."""
        if self.ntcp:
            base = replace(base, pneumonitis=self.pneumonitis(base.pneumonitis))
        if not self.survival:
            return base
        model: Any = base.survival  # a SurvivalModel or a TumourGrowthSurvival: fields checked below
        if not set(self.survival) <= set(type(model).FITTABLE):  # the fit's fields name another death model
            for cls in DEATH_MODELS:
                if set(self.survival) <= set(cls.FITTABLE):
                    model = cls()
                    break
        for name in self.survival:
            if name not in type(model).FITTABLE:
                raise ParameterError(
                    f"'{SURVIVAL_PREFIX}{name}': "
                    + unknown_name_message(f"{type(model).__name__} field", name, tuple(type(model).FITTABLE))
                )
        return replace(base, survival=replace(model, **self.survival))


def split_values(
    spec: ModelSpec,
    values: Mapping[str, float],
    variability_names: Sequence[str] = (),
    survival_fields: Mapping[str, tuple[float, float]] | None = None,
) -> SplitValues:
    """Split calibration values into typical values, omegas, covariate log-effects, survival-model fields and
    pneumonitis-model fields.

    Parameters
    ----------
    spec
        The model spec (its parameter names are the valid typical values).
    values
        ``{name: value}`` with names: a model parameter (typical value); ``omega__<param>`` (inter-patient SD of
        the log, or logit, of ``<param>``); ``effect__pretreated__<param>`` or ``effect__squamous__<param>``
        (natural-log covariate effect on ``<param>``); ``survival__<field>`` (a fittable field of the death
        model: by default :class:`~abscopal.endpoints.death.SurvivalModel`'s ``base_hazard_per_day``,
        ``size_exponent``, ``new_lesion_hazard_ratio``, ``background_per_day``); ``ntcp__<field>`` (a field of
        :data:`NTCP_BOUNDS`, e.g. ``ntcp__td50_gy``).
    variability_names
        Parameters with inter-patient variability (the only valid ``omega__`` targets).
    survival_fields
        The death model's fittable fields and bounds (its ``FITTABLE``); default :data:`SURVIVAL_BOUNDS`. A
        field whose bounds are non-negative must be >= 0.

    Returns
    -------
    SplitValues
        ``(typical, omegas, effects, survival, ntcp)``; ``effects`` is ``{"pretreated": {param: beta}, "squamous":
        {param: beta}}``.

    Raises
    ------
    ParameterError
        For an unknown name (with a suggestion), a negative / non-finite omega or an invalid death-model or
        pneumonitis-model value.
    """
    fields = SURVIVAL_BOUNDS if survival_fields is None else survival_fields
    names = set(spec.parameter_names)
    typical: dict[str, float] = {}
    omegas: dict[str, float] = {}
    effects: dict[str, dict[str, float]] = {"pretreated": {}, "squamous": {}}
    survival: dict[str, float] = {}
    ntcp: dict[str, float] = {}
    known_var = set(variability_names)
    for k, v in values.items():
        v = float(v)
        if k.startswith(NTCP_PREFIX):
            name = k[len(NTCP_PREFIX) :]
            if name not in NTCP_BOUNDS:
                raise ParameterError(
                    f"{k!r}: " + unknown_name_message("pneumonitis-model field", name, tuple(NTCP_BOUNDS))
                )
            if not math.isfinite(v):
                raise ParameterError(f"{k!r} = {v!r}: pneumonitis-model values must be finite")
            ntcp[name] = v
        elif k.startswith(SURVIVAL_PREFIX):
            name = k[len(SURVIVAL_PREFIX) :]
            if name not in fields:
                raise ParameterError(f"{k!r}: " + unknown_name_message("survival-model field", name, tuple(fields)))
            if not math.isfinite(v):
                raise ParameterError(f"{k!r} = {v!r}: survival-model values must be finite")
            if fields[name][0] >= 0.0 and not v >= 0.0:
                raise ParameterError(f"{k!r} = {v!r}: survival-model values must be finite and >= 0")
            survival[name] = v
        elif k.startswith(OMEGA_PREFIX):
            target = k[len(OMEGA_PREFIX) :]
            if target not in known_var:
                raise ParameterError(
                    f"{k!r}: "
                    + unknown_name_message("varying parameter", target, sorted(known_var))
                    + "; omegas can be fitted only for parameters with inter-patient variability"
                )
            if not (v >= 0.0 and math.isfinite(v)):
                raise ParameterError(f"{k!r} = {v!r}: an omega must be a finite number >= 0")
            omegas[target] = v
        elif k.startswith(EFFECT_PREFIX):
            parts = k[len(EFFECT_PREFIX) :].split("__", 1)
            if len(parts) != 2 or parts[0] not in effects or parts[1] not in names:
                raise ParameterError(
                    f"{k!r}: covariate effects are named 'effect__pretreated__<parameter>' or "
                    f"'effect__squamous__<parameter>' with a model parameter"
                )
            effects[parts[0]][parts[1]] = v
        elif k in names:
            typical[k] = v
        else:
            raise ParameterError(
                unknown_name_message("parameter", k, sorted(names))
                + "; calibrate typical values of model parameters, 'omega__<parameter>', "
                "'effect__pretreated__<parameter>' / 'effect__squamous__<parameter>', "
                "'survival__<field>' or 'ntcp__<field>'"
            )
    split = SplitValues(typical, omegas, effects, survival, FrozenMap(ntcp))
    if ntcp:
        split.pneumonitis()  # check the values (td50 > 0, shares in [0, 1]) before any work
    return split


def with_omegas(variability: Mapping[str, Variability], omegas: Mapping[str, float]) -> dict[str, Variability]:
    """``variability`` with the omegas of a fit (``omega__<param>`` values, split by :func:`split_values`) replacing
    its own, in the same order; omegas of parameters without variability are ignored."""
    return {k: (replace(v, omega=omegas[k]) if k in omegas else v) for k, v in variability.items()}


def population_for(
    patients: VirtualPatients,
    omegas: Mapping[str, float] | None = None,
    effects: Mapping[str, Mapping[str, float]] | None = None,
) -> VirtualPopulation:
    """``patients.population()`` with omegas and covariate log-effects replaced (same draws: common random
    numbers). ``omegas`` for parameters without variability in ``patients`` are ignored."""
    variability = None
    if omegas:
        variability = with_omegas(patients.variability, omegas)
    eff = None
    if effects and (effects.get("pretreated") or effects.get("squamous")):
        eff = replace(
            patients.effects,
            pretreated_log_effect=dict(patients.effects.pretreated_log_effect) | dict(effects.get("pretreated", {})),
            squamous_log_effect=dict(patients.effects.squamous_log_effect) | dict(effects.get("squamous", {})),
        )
    return patients.population(eff, variability)
