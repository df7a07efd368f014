"""The model card: diagnostic metrics of a model and its fit (``abscopal diagnose``).

:func:`model_card` measures, for the model and fit at hand (default: the shipped fit ``fits/default.json`` and its
model), a fixed set of properties that a credible RT + anti-PD-(L)1 model should have: rest states that are at
rest, drawn sizes that hold at enrolment (time zero), an abscopal gain that is not debulking, graded priming,
lymphopenia and local control of the right size, where the survival benefit of RT comes from and how many
parameters rest on data. Each metric has units, a definition, a target (``want``) and a pass/fail flag; a metric
a model cannot have (the Kosinsky 2018 model has no lymphocytes) is *not applicable*, with the reason, never an
error. The metrics and their values for the shipped fit are listed in ``docs/diagnose.md``.

The metrics are a registry (:data:`METRICS`, :func:`register`): each is a small function of a
:class:`CardContext` (the compiled model, the fitted values, the seed, the virtual patients, shared simulations)
returning a :class:`Measured` value or raising :class:`NotApplicableError`. A later model adds metrics by registering
more. Population metrics run their arms through :func:`abscopal.arms.run_arm` and score them with
:func:`abscopal.score` and the outcome registry (:mod:`abscopal.endpoints.outcomes`); metrics of the typical
patient call :func:`abscopal.simulate` (or the compiled right-hand side) directly.

Deterministic: every population metric uses the same virtual patients, ``n_patients`` of the PEMBRO-RT mix drawn
with ``seed`` (:func:`abscopal.arms.arm_patients`); nothing else is random. This module never prints; the CLI
(:mod:`abscopal.cli.diagnose`) does.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ._version import __version__
from .arms import ArmRun, arm_patients, baseline_day, run_arm
from .endpoints import score
from .endpoints.outcomes import COMPARISONS, OUTCOMES, ScoredArm
from .endpoints.readout import read_outputs
from .errors import AbscopalError, ModelError, ParameterError, SterilisedLesionWarning, unknown_name_message
from .fitted import Fit, fit_file_hash, resolve_fit_path, split_values
from .fitted.values import SplitValues
from .model.compile import CompiledModel, compile_model
from .model.spec import ModelSpec
from .parameters import parameter_vector, resolve_values
from .patients import MIXES, VirtualPatients
from .simulate import Arm, simulate
from .targeting import place_rt_targets
from .treatment import TreatmentPlan, drug_regimen, radiation_regimen
from .trials import AssessmentSpec

__all__ = [
    "DEFAULT_PATIENTS",
    "EXCISION_MECHANISMS_OFF",
    "EXCISION_PARAMETERS",
    "METRICS",
    "SOURCED_CATEGORIES",
    "CardContext",
    "Measured",
    "Metric",
    "MetricResult",
    "ModelCard",
    "NotApplicableError",
    "Want",
    "model_card",
    "parameter_sources",
    "register",
    "resolve_model",
]

log = logging.getLogger(__name__)

DEFAULT_PATIENTS = 1000
"""Virtual patients of every population metric (one PEMBRO-RT population, reused by all of them)."""

MIX = "pembro_rt"
"""The patient mix of the population metrics (:data:`abscopal.patients.MIXES`): stage IV, pretreated, >= 2 lesions."""

# ---- the PEMBRO-RT design (as in fits/targets/pembro_rt.toml; tests/integration/test_diagnose.py checks) ----------
PEMBRO_RT_DRUG = "pembrolizumab_200mg_q3w"
PEMBRO_RT_RT = "sbrt_24gy_3fx"
PEMBRO_RT_RT_START_DAY = -7.0
PEMBRO_RT_TARGET = "lung_primary"
PEMBRO_RT_ASSESSMENT = AssessmentSpec(
    criteria="recist1.1", scan_interval_week=6, orr_visit_day=84, exclude_irradiated=True
)
T_END_DAY = 730.0
"""Simulated follow-up of the population arms (days; two years)."""

EXCISION_MECHANISMS_OFF = (
    "immunogenic_cell_death",
    "trex1_decline",
    "rt_pdl1",
    "rt_suppression",
    "lymphocyte_kill",
)
"""Radiation-specific immune mechanisms switched off in the 'excision' arm (those the model has): danger signal and
antigen release of dying irradiated cells (and its TREX1 decline), RT-induced PD-L1, RT-induced TGF-beta / Tregs /
MDSCs, and the kill of blood lymphocytes and in-field effector cells. The cell kill (LQ / LQ-L, the doomed
compartment and its clearance: ``lq_linear_high_dose``, ``dose_dependent_death``) is kept, so the irradiated
lesion loses the same viable volume on the same days."""
EXCISION_PARAMETERS: Mapping[str, float] = {"macrophage_rt_shift": 0.0}
"""Parameters set in the excision arm (those the model has): the radiation jump of macrophage polarisation. The
mechanism ``macrophage_polarisation`` stays on, because it also carries the PD-1-blockade and IFN-gamma shifts,
which are not radiation-specific."""
_INSTANT_CLEARANCE = ("doomed_clearance_low_dose_per_day", "doomed_clearance_max_per_day")
"""Set to their upper bounds in the 'instant excision' variant (details only): the removed volume is gone within
about a day instead of clearing as doomed cells."""

NADIR_REGIMENS = ("sbrt_24gy_3fx", "sbrt_50gy_4fx", "conv_45gy_15fx", "conv_60gy_30fx")
LOCAL_CONTROL_REGIMENS = ("sbrt_50gy_4fx", "conv_30gy_10fx")
PRIOR_RT_REGIMEN, PRIOR_RT_START_DAY, PRIOR_RT_TARGET = "conv_30gy_10fx", -90.0, "largest"
"""The prior RT course of the time-zero check (KEYNOTE-001 prior-RT arm, fits/targets/keynote001_shaverdian2017.toml:
palliative 30 Gy / 10 to the largest lesion, 90 days before the first dose)."""


# ---- targets, values, results ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Want:
    """A metric's target: ``at_least`` / ``at_most`` bounds, or ``|value - away_from| >= by``."""

    at_least: float | None = None
    at_most: float | None = None
    away_from: float | None = None
    by: float = 0.0

    def check(self, value: float | None) -> bool:
        """Whether ``value`` meets the target (a missing or NaN value never does)."""
        if value is None or math.isnan(value):
            return False
        if self.at_least is not None and not value >= self.at_least:
            return False
        if self.at_most is not None and not value <= self.at_most:
            return False
        return self.away_from is None or abs(value - self.away_from) >= self.by

    def text(self) -> str:
        """Readable form, e.g. ``<= 1e-06``, ``0.2 to 0.4``, ``|x - 1| >= 0.1``."""
        if self.at_least is not None and self.at_most is not None:
            return f"{self.at_least:g} to {self.at_most:g}"
        if self.at_least is not None:
            return f">= {self.at_least:g}"
        if self.at_most is not None:
            return f"<= {self.at_most:g}"
        return f"|x - {self.away_from:g}| >= {self.by:g}"

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable form: the bounds that are set and the text."""
        out: dict[str, Any] = {
            k: getattr(self, k) for k in ("at_least", "at_most", "away_from") if getattr(self, k) is not None
        }
        if self.away_from is not None:
            out["by"] = self.by
        return out | {"text": self.text()}


class NotApplicableError(Exception):
    """Raised by a metric the model cannot have; the message is the reason."""


@dataclass(frozen=True, kw_only=True)
class Measured:
    """What a metric function returns: the value (None: not computable although applicable, see ``note``), and
    details (intermediate values, per-case values, what was switched off)."""

    value: float | None
    details: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Metric:
    """A registered metric: name, units, definition, target (None: reported without a target) and its function."""

    name: str
    units: str
    definition: str
    want: Want | None
    compute: Callable[[CardContext], Measured]


@dataclass(frozen=True, kw_only=True)
class MetricResult:
    """One measured metric of a :class:`ModelCard`.

    ``passed`` is None when the metric has no target or is not applicable; ``reason`` says why a metric is not
    applicable or why its value is missing."""

    name: str
    units: str
    definition: str
    want: Want | None
    value: float | None
    passed: bool | None
    applicable: bool
    reason: str
    details: Mapping[str, Any]
    elapsed_s: float

    @property
    def status(self) -> str:
        """``pass``, ``FAIL``, ``-`` (no target) or ``n/a``."""
        if not self.applicable:
            return "n/a"
        return "-" if self.passed is None else ("pass" if self.passed else "FAIL")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready record (non-finite floats as ``"inf"``, ``"-inf"``, ``"nan"``)."""
        return {
            "name": self.name,
            "value": _plain(self.value),
            "units": self.units,
            "definition": self.definition,
            "want": None if self.want is None else self.want.to_dict(),
            "pass": self.passed,
            "applicable": self.applicable,
            "reason": self.reason,
            "details": _plain(self.details),
            "elapsed_s": round(self.elapsed_s, 3),
        }


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """The measured metrics (in registry order) and the provenance of the card."""

    results: tuple[MetricResult, ...]
    provenance: Mapping[str, Any]

    def __getitem__(self, name: str) -> MetricResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(unknown_name_message("metric", name, [r.name for r in self.results]))

    @property
    def names(self) -> tuple[str, ...]:
        """Metric names, in order."""
        return tuple(r.name for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """``{"format", "provenance", "metrics": {name: record}}``."""
        return {
            "format": "abscopal-model-card-v1",
            "provenance": _plain(self.provenance),
            "metrics": {r.name: r.to_dict() for r in self.results},
        }

    def to_json(self) -> str:
        """Strict JSON (:meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def to_table(self) -> str:
        """Readable table: metric, value, units, target, status; then notes and the definitions."""
        p = self.provenance
        fit = p.get("fit") or "none (model defaults)"
        head = [
            f"Model card of {p['model']} (hash {str(p['model_hash'])[:12]}), fit {fit}"
            + (f" (sha256 {str(p['fit_hash'])[:12]})" if p.get("fit_hash") else ""),
            f"abscopal {p['version']}, seed {p['seed']}, {p['n_patients']} virtual patients ({p['mix']} mix)"
            + (f", mechanisms off: {', '.join(p['mechanisms_off'])}" if p.get("mechanisms_off") else "")
            + f"; {p['elapsed_s']:.1f} s",
            "",
        ]
        rows = [("metric", "value", "units", "want", "status")]
        for r in self.results:
            rows.append(
                (
                    r.name,
                    "-" if r.value is None else _fmt(r.value),
                    r.units,
                    "-" if r.want is None else r.want.text(),
                    r.status,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        notes = [f"  {r.name}: {r.reason}" for r in self.results if r.reason]
        n_pass = sum(r.passed is True for r in self.results)
        n_fail = sum(r.passed is False for r in self.results)
        n_na = sum(not r.applicable for r in self.results)
        summary = [
            "",
            f"{n_pass} pass, {n_fail} fail, {len(self.results) - n_pass - n_fail - n_na} without a target, "
            f"{n_na} not applicable",
        ]
        defs = ["", "Definitions:"] + [f"  {r.name} [{r.units}]: {r.definition}" for r in self.results]
        return "\n".join(head + lines + summary + (["", "Notes:", *notes] if notes else []) + defs)


def _fmt(x: float) -> str:
    if math.isinf(x) or math.isnan(x):
        return str(x)
    return f"{x:.5g}" if x != int(x) or abs(x) >= 1e5 else f"{int(x)}"


def _plain(x: Any) -> Any:
    """JSON-ready copy: numpy to Python, non-finite floats to strings."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, bool | str) or x is None:
        return x
    if hasattr(x, "tolist"):
        return _plain(x.tolist())
    if isinstance(x, int):
        return x
    x = float(x)
    return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


# ---- the context every metric gets ---------------------------------------------------------------------------------
class CardContext:
    """What the metrics share: the model, the fitted values, the seed, the patients and the shared simulations.

    Parameters
    ----------
    model
        The compiled model.
    values
        Fitted values (:meth:`abscopal.fitted.Fit.all_values`: typical values, ``omega__``, ``effect__``,
        ``survival__``); empty for model defaults.
    seed, n_patients
        Seed and size of the virtual population of the population metrics.
    mechanisms_off
        Mechanisms switched off in every simulation of the card (to check what a metric depends on).
    fitted, fixed_by_fit
        Parameters the fit estimated (its free, identified values) and parameters it fixed at values it could not
        identify (``provenance["base_parameters"]``).
    """

    def __init__(
        self,
        model: CompiledModel,
        values: Mapping[str, float],
        *,
        seed: int,
        n_patients: int,
        mechanisms_off: Sequence[str] = (),
        fitted: Iterable[str] = (),
        fixed_by_fit: Iterable[str] = (),
    ) -> None:
        self.model = model
        self.fitted = frozenset(fitted)
        self.fixed_by_fit = frozenset(fixed_by_fit)
        self.spec: ModelSpec = model.spec
        self.values = dict(values)
        self.seed = seed
        self.n_patients = n_patients
        self.mechanisms_off = tuple(mechanisms_off)
        names = set(self.spec.parameter_names)
        self.typical = {k: v for k, v in self.values.items() if k in names}
        """Typical values of the model's parameters from the fit (what the typical patient runs with)."""
        self._cache: dict[str, Any] = {}

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per card (simulations shared by several metrics)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # -- the typical patient --------------------------------------------------------------------------------------
    def parameter_vector(self, **overrides: float) -> np.ndarray:
        """The typical patient's parameter vector (fit typical values, ``overrides``, mechanisms off)."""
        values = resolve_values(self.spec, self.typical, overrides, mechanisms_off=self.mechanisms_off)
        return parameter_vector(self.spec, values)

    def simulate_typical(
        self, arms: Sequence[Arm], times_day: Sequence[float] | np.ndarray, *, start_day: float = 0.0
    ) -> xr.Dataset:
        """One typical patient per arm, output at ``times_day``."""
        t = np.asarray(times_day, dtype=float)
        return simulate(
            self.model,
            list(arms),
            parameters=self.typical,
            t_end_day=float(t[-1]),
            output_times_day=t,
            start_day=start_day,
            mechanisms_off=self.mechanisms_off,
        )

    # -- the virtual patients ---------------------------------------------------------------------------------------
    def patients(self) -> VirtualPatients:
        """The card's virtual patients (``n_patients`` of the PEMBRO-RT mix, ``seed``); NotApplicableError for a model
        the patients cannot be applied to (no lesions, or without the parameters they set)."""

        def draw() -> VirtualPatients | str:
            spec = self.spec
            if spec.n_lesions < 2:
                shape = "no lesion structure (one tumour)" if spec.n_lesions == 0 else "one lesion"
                return (
                    f"model {spec.name!r} has {shape}: no out-of-field lesion; the virtual patients ({MIX} mix) "
                    "have 2 to 5 lesions"
                )
            patients = arm_patients(MIXES[MIX], self.n_patients, spec.n_lesions, self.seed, spec)
            needed = [*patients.population().per_patient, *patients.variability]
            missing = [n for n in needed if n not in spec.parameter_names]
            if missing:
                return f"the virtual patients set parameters model {spec.name!r} lacks: {missing}"
            return patients

        got = self.cached("patients", draw)
        if isinstance(got, str):
            raise NotApplicableError(got)
        return got

    def split(self, patients: VirtualPatients) -> SplitValues:
        """The fitted values split for these patients (their variability names the valid omegas)."""
        return split_values(self.spec, self.values, tuple(patients.variability))

    def run(
        self,
        plan: TreatmentPlan,
        patients: VirtualPatients,
        assessment: AssessmentSpec,
        *,
        start_day: float,
        t_end_day: float = T_END_DAY,
        name: str = "arm",
        mechanisms_off: Iterable[str] = (),
        parameters: Mapping[str, float] | None = None,
    ) -> ArmRun:
        """Run and score one arm through :func:`abscopal.arms.run_arm` (extra mechanisms off and typical values
        on top of the card's)."""
        split = self.split(patients)
        if parameters:
            split = split._replace(typical=split.typical | dict(parameters))
        return run_arm(
            self.model,
            plan,
            patients,
            assessment.to_assessment(baseline_day(plan, start_day), t_end_day),
            split,
            start_day=start_day,
            t_end_day=t_end_day,
            name=name,
            mechanisms_off=tuple(dict.fromkeys((*self.mechanisms_off, *mechanisms_off))),
        )


# ---- the registry --------------------------------------------------------------------------------------------------
METRICS: dict[str, Metric] = {}
"""Every metric of the card by name, in card order (:func:`register` adds one)."""


def register(metric: Metric) -> Metric:
    """Add ``metric`` to :data:`METRICS` (a name may be registered once); returns it."""
    if metric.name in METRICS:
        raise ParameterError(f"metric {metric.name!r} is already registered")
    METRICS[metric.name] = metric
    return metric


# ---- helpers on model structure (roles, states, parameters) -----------------------------------------------------
def _output_states(spec: ModelSpec, output: str) -> set[str]:
    """States behind an output (a state group, or the states in an observable group's expressions)."""
    states = {s.name for s in spec.states if s.group == output}
    for o in spec.observables:
        if o.group == output:
            states |= {str(x) for x in o.expr.free_symbols} & set(spec.state_names)
    return states


def _tumour_states(spec: ModelSpec) -> set[str]:
    """States behind the lesion size, tumour burden and new-lesion hazard roles."""
    out: set[str] = set()
    for role in ("lesion_diameter", "lesion_volume", "tumour_burden", "new_lesion_hazard"):
        name = spec.roles.get(role)
        if name:
            out |= _output_states(spec, name)
    return out


_PER_PATIENT = re.compile(r"^(start_volume_factor|control_quantile)_\d+$")
"""Per-lesion parameters set per virtual patient besides the sizes: the start-size factor of a history (model v2;
:mod:`abscopal.history`) and the local-control draw."""


def _size_symbol(initial: Any, spec: ModelSpec) -> str | None:
    """The parameter that sets a state's initial value: the value itself, or (model v2) the time-zero size that a
    start-size factor multiplies."""
    names = {str(x) for x in getattr(initial, "free_symbols", ())} & set(spec.parameter_names)
    sizes = {n for n in names if not _PER_PATIENT.match(n)}
    if len(sizes) != 1 or not (initial.is_Symbol or initial.is_Mul):
        return None
    return sizes.pop()


def _size_parameters(spec: ModelSpec) -> list[str]:
    """Per lesion (index order), the parameter that is the initial volume of its tumour state (NotApplicableError if
    the model's lesion size is not set by one parameter per lesion)."""
    role = spec.roles.get("lesion_volume") or spec.roles.get("lesion_diameter")
    if role is None:
        raise NotApplicableError(
            f"model {spec.name!r} has no lesion size output (role lesion_volume or lesion_diameter)"
        )
    out = []
    for j in range(max(spec.n_lesions, 1)):
        found = [
            size
            for s in spec.states
            if s.name in _output_states(spec, role)
            and (s.lesion == j or spec.n_lesions == 0)
            and (size := _size_symbol(s.initial, spec)) is not None
        ]
        if len(found) != 1:
            raise NotApplicableError(
                f"the size of lesion {j} of model {spec.name!r} is not the initial value of one parameter"
            )
        out.append(found[0])
    return out


def _volume_mm3(diameter_mm: float) -> float:
    return math.pi / 6.0 * diameter_mm**3


def _states_matching(spec: ModelSpec, pattern: str) -> list[str]:
    """States whose name, group or long name matches ``pattern`` (case-insensitive regular expression)."""
    rx = re.compile(pattern, re.IGNORECASE)
    return [s.name for s in spec.states if rx.search(s.name) or rx.search(str(s.group)) or rx.search(s.long_name)]


def _rt_alone(regimen: str, lesions: tuple[int, ...] = (0,), start_day: float = 0.0) -> TreatmentPlan:
    return TreatmentPlan(
        radiation=(radiation_regimen(regimen, start_day=start_day, target_lesions=lesions),), name=regimen
    )


def _needs_rt(spec: ModelSpec) -> None:
    if "radiation_fraction" not in {e.name for e in spec.events}:
        raise NotApplicableError(f"model {spec.name!r} has no radiation_fraction event")


# ---- rest: the untreated typical patient -----------------------------------------------------------------------------
def _rest_derivative(ctx: CardContext) -> Measured:
    spec = ctx.spec
    p = ctx.parameter_vector()
    y = ctx.model.initial(p)
    dy = ctx.model.rhs(0.0, y, p)
    tumour = _tumour_states(spec)
    rel = {
        s.name: abs(float(dy[i])) / max(abs(float(y[i])), s.abs_tol)
        for i, s in enumerate(spec.states)
        if s.name not in tumour
    }
    if not rel:
        raise NotApplicableError(f"model {spec.name!r} has no state besides its tumour states")
    worst = sorted(rel, key=lambda k: -rel[k])
    return Measured(
        value=rel[worst[0]],
        details={
            "worst_state": worst[0],
            "largest": {k: rel[k] for k in worst[:8]},
            "excluded_tumour_states": sorted(tumour),
            "scale": "the state's absolute tolerance (abs_tol) where |y| is smaller",
        },
    )


def _doubling_time(ctx: CardContext) -> Measured:
    spec = ctx.spec
    if "tumour_doubling_time_day" not in spec.parameter_names:
        raise NotApplicableError(f"model {spec.name!r} has no tumour_doubling_time_day parameter")
    sizes = _size_parameters(spec)
    vdt = float(ctx.typical.get("tumour_doubling_time_day", spec.parameter("tumour_doubling_time_day").default))
    tps_values = (0.0, 0.5, 1.0) if "pdl1_tps" in spec.parameter_names else (None,)
    cases, arms = [], []
    for tps in tps_values:
        for d in (10.0, 30.0, 100.0):
            over = {sizes[0]: _volume_mm3(d)} | {q: 0.0 for q in sizes[1:]}
            if tps is not None:
                over["pdl1_tps"] = tps
            cases.append((tps, d))
            arms.append(Arm(name=f"tps{tps}_d{d:g}", plan=TreatmentPlan(), parameters=over))
    ds = ctx.simulate_typical(arms, [0.0, vdt])
    diam = read_outputs(ds).lesion_diameter_mm[:, 0, 0, :]  # arm, time (lesion 0, the only one present)
    rows, worst = [], 0.0
    for (tps, d), (d0, d1) in zip(cases, diam, strict=True):
        growth = 3.0 * math.log(d1 / d0) if d0 > 0 and d1 > 0 else -math.inf  # log volume ratio over vdt days
        sim = vdt * math.log(2.0) / growth if growth > 0 else math.inf
        err = abs(sim / vdt - 1.0) if math.isfinite(sim) else math.inf
        worst = max(worst, err)
        rows.append({"pdl1_tps": tps, "diameter_mm": d, "simulated_doubling_time_day": sim, "rel_error": err})
    return Measured(
        value=worst,
        details={
            "tumour_doubling_time_day": vdt,
            "window_day": vdt,
            "cases": rows,
            "note": "one lesion of the given diameter (the others absent), untreated; doubling time from the volume "
            "ratio over one nominal doubling time",
        },
    )


def _pdl1_drift(ctx: CardContext) -> Measured:
    spec = ctx.spec
    states = _states_matching(spec, r"pd.?l1")
    if not states:
        raise NotApplicableError(f"model {spec.name!r} has no PD-L1 state")
    ds = ctx.simulate_typical([Arm(name="untreated", plan=TreatmentPlan())], [0.0, 7.0])
    rel: dict[str, float] = {}
    for name in states:
        st = spec.state(name)
        var = ds[str(st.group)]
        v = var.isel(lesion=st.lesion) if st.lesion is not None and "lesion" in var.dims else var
        v0, v7 = (float(x) for x in v.values[0, 0])
        rel[name] = abs(v7 - v0) / max(abs(v0), st.abs_tol)
    worst = max(rel, key=lambda k: rel[k])
    return Measured(value=rel[worst], details={"per_state": rel, "worst_state": worst})


# ---- time zero: the drawn sizes hold at enrolment (day 0) -----------------------------------------------------------
def _time_zero(ctx: CardContext) -> Measured:
    _needs_rt(ctx.spec)
    patients, lesions = place_rt_targets(ctx.patients(), PRIOR_RT_TARGET)
    drawn = np.asarray(patients.baseline_diameter_mm)
    present = np.asarray(patients.present)
    irradiated = np.zeros_like(present)
    irradiated[:, list(lesions)] = True

    def errors(prior: bool) -> tuple[np.ndarray, xr.Dataset]:
        course = radiation_regimen(PRIOR_RT_REGIMEN, start_day=PRIOR_RT_START_DAY, target_lesions=lesions, prior=prior)
        plan = TreatmentPlan(radiation=(course,), drug=drug_regimen(PEMBRO_RT_DRUG), name="prior_rt")
        with warnings.catch_warnings():  # the sterilised lesions are counted in the details
            warnings.simplefilter("ignore", SterilisedLesionWarning)
            run = ctx.run(
                plan, patients, AssessmentSpec(), start_day=PRIOR_RT_START_DAY, t_end_day=84.0, name="prior_rt"
            )
        ds = run.simulation
        k = int(np.flatnonzero(np.isclose(ds.time.values, 0.0))[0])
        sim = read_outputs(ds).lesion_diameter_mm[0, :, :, k]  # patient, lesion
        return np.abs(sim - drawn) / np.where(present, drawn, 1.0), ds  # absent lesions: masked below

    err, ds = errors(prior=True)
    sterilised = np.asarray(ds.history_sterilised.values[0], dtype=bool)
    held = present & ~sterilised
    old, _ = errors(prior=False)  # the course as protocol treatment: the drawn sizes sit at its first fraction

    def worst(e: np.ndarray, mask: np.ndarray) -> float | None:
        return float(e[mask].max()) if mask.any() else None

    shooting = json.loads(ds.attrs["provenance"])["time_zero"]["arms"]["prior_rt"]
    return Measured(
        value=worst(err, held),
        details={
            "rt": f"{PRIOR_RT_REGIMEN} to the {PRIOR_RT_TARGET} lesion from day {PRIOR_RT_START_DAY:g}, prior = true",
            "median_rel_error": float(np.median(err[held])) if held.any() else None,
            "max_rel_error_irradiated": worst(err, held & irradiated),
            "max_rel_error_not_irradiated": worst(err, held & ~irradiated),
            "n_lesions_compared": int(held.sum()),
            "n_sterilised": int(sterilised.sum()),
            "sterilised_fraction_of_irradiated": float(sterilised[present & irradiated].mean()),
            "max_rel_error_sterilised": worst(err, present & sterilised),
            "shooting_iterations": int(shooting["iterations"]),
            "shooting_patient_solves": int(shooting["patient_solves"]),
            "simulation_start_day": float(ds.time.values[0]),
            "time_zero_day": float(ds.attrs["time_zero_day"]),
            "without_prior_max_rel_error": float(old[present].max()),
            "without_prior_median_rel_error": float(np.median(old[present])),
        },
    )


# ---- abscopal: PEMBRO-RT out-of-field response ------------------------------------------------------------------
def _excision_settings(spec: ModelSpec) -> tuple[tuple[str, ...], dict[str, float]]:
    off = tuple(m for m in EXCISION_MECHANISMS_OFF if m in spec.mechanism_names)
    params = {k: v for k, v in EXCISION_PARAMETERS.items() if k in spec.parameter_names}
    return off, params


def _pembro_rt_runs(ctx: CardContext) -> dict[str, Any]:
    """The PEMBRO-RT arms on the card's patients: pembrolizumab, SBRT + pembrolizumab, excision + pembrolizumab
    (radiation-specific effects off) and, for the details, an instant excision."""

    def compute() -> dict[str, Any]:
        _needs_rt(ctx.spec)
        patients, lesions = place_rt_targets(ctx.patients(), PEMBRO_RT_TARGET)
        drug = drug_regimen(PEMBRO_RT_DRUG)
        rt = radiation_regimen(PEMBRO_RT_RT, start_day=PEMBRO_RT_RT_START_DAY, target_lesions=lesions)
        off, params = _excision_settings(ctx.spec)
        instant = params | {k: ctx.spec.parameter(k).upper for k in _INSTANT_CLEARANCE if k in ctx.spec.parameter_names}
        run = partial(ctx.run, patients=patients, assessment=PEMBRO_RT_ASSESSMENT, start_day=PEMBRO_RT_RT_START_DAY)
        alone = TreatmentPlan(drug=drug, name="pembro")
        combo = TreatmentPlan(radiation=(rt,), drug=drug, name="sbrt+pembro")
        return {
            "patients": patients,
            "lesions": lesions,
            "excision_off": off,
            "excision_parameters": params,
            "instant_parameters": instant,
            "pembro": run(alone, name="pembro"),
            "sbrt": run(combo, name="sbrt+pembro"),
            "excision": run(combo, name="excision+pembro", mechanisms_off=off, parameters=params),
            "excision_instant": run(combo, name="instant_excision+pembro", mechanisms_off=off, parameters=instant),
        }

    return ctx.cached("pembro_rt", compute)


def _orr(run: ArmRun) -> float:
    return OUTCOMES["orr"].value(run.scored)


def _paired_se(a: ArmRun, b: ArmRun) -> float:
    """Standard error of the ORR difference of two arms of the same patients (paired responses)."""
    x = a.scored.endpoints.objective_response.values[0].astype(float)
    y = b.scored.endpoints.objective_response.values[0].astype(float)
    return float(np.std(x - y, ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan


def _gain(ctx: CardContext) -> Measured:
    runs = _pembro_rt_runs(ctx)
    a, b = _orr(runs["sbrt"]), _orr(runs["pembro"])
    return Measured(
        value=a - b,
        details={
            "orr_sbrt_pembro": a,
            "orr_pembro": b,
            "paired_standard_error": _paired_se(runs["sbrt"], runs["pembro"]),
            "reported_pembro_rt": {"sbrt+pembro": 0.36, "pembro": 0.18},
        },
    )


def _retained(ctx: CardContext) -> Measured:
    runs = _pembro_rt_runs(ctx)
    if not runs["excision_off"] and not runs["excision_parameters"]:
        raise NotApplicableError(
            f"model {ctx.spec.name!r} has none of the radiation-specific mechanisms {list(EXCISION_MECHANISMS_OFF)}"
        )
    base = _orr(runs["pembro"])
    gain = _orr(runs["sbrt"]) - base
    gain_exc = _orr(runs["excision"]) - base
    gain_inst = _orr(runs["excision_instant"]) - base
    details = {
        "out_of_field_gain": gain,
        "excision_gain": gain_exc,
        "excision_vs_sbrt_paired_standard_error": _paired_se(runs["excision"], runs["sbrt"]),
        "instant_excision_gain": gain_inst,
        "excision_mechanisms_off": list(runs["excision_off"]),
        "excision_parameters": dict(runs["excision_parameters"]),
        "instant_excision_parameters": dict(runs["instant_parameters"]),
        "kept": "the LQ / LQ-L cell kill, the doomed compartment and its clearance",
    }
    if not gain > 0:
        return Measured(value=None, details=details, note=f"SBRT adds no out-of-field response (gain {gain:.4g})")
    return Measured(value=1.0 - gain_exc / gain, details=details)


def _os_share(ctx: CardContext) -> Measured:
    runs = _pembro_rt_runs(ctx)
    rt, ref = runs["sbrt"], runs["pembro"]
    roles = json.loads(rt.simulation.attrs["roles"])
    if "tumour_burden" not in roles:
        raise NotApplicableError(f"model {ctx.spec.name!r} has no tumour_burden output: no deaths are drawn")
    burden_name = roles["tumour_burden"]
    scale = {"mm3": 1.0, "µL": 1.0, "uL": 1.0, "cm3": 1e-3, "mL": 1e-3}.get(
        str(rt.simulation[burden_name].attrs.get("units")), None
    )
    if scale is None:
        raise NotApplicableError(f"the tumour burden {burden_name!r} is not a volume")
    lesions = list(runs["lesions"])

    def irradiated_volume(run: ArmRun) -> np.ndarray:  # patient, time (mm3)
        d = read_outputs(run.simulation).lesion_diameter_mm[0][:, lesions, :]
        return (math.pi / 6.0 * d**3).sum(axis=1)

    ds = rt.simulation.copy()
    ds[burden_name] = ds[burden_name] + scale * (irradiated_volume(ref) - irradiated_volume(rt))[None, :, :]
    held = ScoredArm(
        endpoints=score(ds, rt.scored.assessment, patients=runs["patients"]),
        assessment=rt.scored.assessment,
        start_day=rt.scored.start_day,
        t_end_day=rt.scored.t_end_day,
        pfs_bandwidth_day=rt.scored.pfs_bandwidth_day,
    )
    hr = COMPARISONS["hr_os"].value(rt.scored, ref.scored)
    hr_held = COMPARISONS["hr_os"].value(held, ref.scored)
    details = {"hr_os": hr, "hr_os_irradiated_burden_held": hr_held, "reported_pembro_rt_hr_os": 0.66}
    if not (math.isfinite(hr) and abs(math.log(hr)) > 1e-3):
        return Measured(value=None, details=details, note=f"the OS hazard ratio ({hr:.4g}) is about 1: no share")
    return Measured(value=1.0 - math.log(hr_held) / math.log(hr), details=details)


# ---- priming, lymphocytes, local control --------------------------------------------------------------------------
def _dc_ratio(ctx: CardContext) -> Measured:
    spec = ctx.spec
    _needs_rt(spec)
    found = _states_matching(spec, r"dendritic")
    if not found:
        raise NotApplicableError(f"model {spec.name!r} has no dendritic-cell (priming) state")
    name = found[0]
    t = np.arange(0.0, 61.0)
    arms = [
        Arm(name="none", plan=TreatmentPlan()),
        Arm(name="8gy1", plan=_rt_alone("sbrt_8gy_1fx")),
        Arm(name="24gy3", plan=_rt_alone("sbrt_24gy_3fx")),
    ]
    sig = ctx.simulate_typical(arms, t)[name].values[:, 0, :]  # arm, time
    excess = sig[1:] - sig[0]
    peak, auc = excess.max(axis=1), np.trapezoid(excess, t, axis=1)
    details = {
        "state": name,
        "peak_excess_8gy1": float(peak[0]),
        "peak_excess_24gy3": float(peak[1]),
        "auc_excess_8gy1_per_day": float(auc[0]),
        "auc_excess_24gy3_per_day": float(auc[1]),
        "auc_ratio": float(auc[1] / auc[0]) if auc[0] > 0 else None,
        "untreated_level": float(sig[0, 0]),
    }
    if not peak[0] > 0:
        return Measured(value=None, details=details, note="8 Gy x 1 raises no priming signal")
    return Measured(value=float(peak[1] / peak[0]), details=details)


def _nadir(ctx: CardContext, regimen: str) -> Measured:
    spec = ctx.spec
    _needs_rt(spec)
    if not spec.roles.get("lymphocytes"):
        raise NotApplicableError(f"model {spec.name!r} has no lymphocyte output (role lymphocytes)")
    t = np.concatenate([[-1.0], np.arange(0.0, 366.0)])  # day -1: the untreated count before the first fraction
    ds = ctx.simulate_typical([Arm(name=regimen, plan=_rt_alone(regimen))], t, start_day=-1.0)
    lym = read_outputs(ds).lymphocytes
    assert lym is not None  # the role is declared
    alc = lym[0, 0]
    k = int(np.argmin(alc))
    return Measured(
        value=float(alc[k] / alc[0]),
        details={
            "before_rt_1e9_per_l": float(alc[0]),
            "nadir_1e9_per_l": float(alc[k]),
            "nadir_day": float(t[k]),
            "blood_dose_per_fraction_gy": _rt_alone(regimen).radiation[0].resolved_blood_dose_per_fraction_gy,
        },
    )


def _local_control(ctx: CardContext, regimen: str) -> Measured:
    _needs_rt(ctx.spec)
    patients, lesions = place_rt_targets(ctx.patients(), "lung_primary")
    run = ctx.run(_rt_alone(regimen, lesions), patients, AssessmentSpec(), start_day=0.0, name=regimen)
    ds = run.simulation
    visits = np.asarray(run.scored.endpoints.visit_day.values, dtype=float)
    k = np.searchsorted(ds.time.values, visits)
    if not np.allclose(ds.time.values[np.minimum(k, ds.time.size - 1)], visits):
        raise AbscopalError("local control: a scan day is not on the simulated output grid")  # a grid change
    d = read_outputs(ds).lesion_diameter_mm[0][:, lesions[0], :][:, k]  # patient, scan
    rules = run.scored.assessment.rules
    nadir = np.minimum.accumulate(d, axis=1)
    prior = np.concatenate([d[:, :1], nadir[:, :-1]], axis=1)  # smallest diameter before each scan, baseline included
    progressed = (d >= prior * (1.0 + rules.pd_fraction)) & (d - prior >= rules.pd_absolute_mm)
    controlled = ~progressed[:, 1:].any(axis=1)
    regrown = (d[:, -1] >= d[:, 0]).mean()
    return Measured(
        value=float(controlled.mean()),
        details={
            "patients": int(d.shape[0]),
            "scans_day": visits.tolist(),
            "rule": f"RECIST 1.1 on the irradiated lesion alone: >= {rules.pd_fraction:g} and >= "
            f"{rules.pd_absolute_mm:g} mm above its nadir at a scan",
            "share_regrown_to_baseline_at_2y": float(regrown),
        },
    )


# ---- parameters and their sources ----------------------------------------------------------------------------------
_NOT_BIOLOGICAL = re.compile(r"^(pk_|ro_|body_weight)")
"""Drug pharmacokinetics and dosing: properties of the drug and its label, not of the disease."""
_PRECLINICAL = re.compile(
    r"\bmice\b|\bmouse\b|\bmurine\b|\bCT26\b|\bMC38\b|Kosinsky\s*(et al\.?\s*)?2018|Vanpouille-Box\s*2017",
    re.IGNORECASE,
)
"""Sources of animal (or animal cell line) data: Kosinsky 2018 fitted CT26 and MC38 tumours in mice; Vanpouille-Box
2017 measured the TREX1 threshold in mouse carcinoma models."""
_PRIMARY = re.compile(
    r"[A-Z][A-Za-z\-]+(\s+et al\.?)?\s+(19|20)\d\d|PMID|PMC\d|doi|label|patients|cohort|trial|study|in vitro"
)
"""A primary source: an author-year citation, a PubMed / DOI reference, a drug label, a patient cohort."""


def _source_category(source: str) -> str:
    """``assumption``, ``unsourced``, ``preclinical``, ``review`` (only the seed review or a project issue is cited)
    or ``human``, from a parameter's source text."""
    text = source.strip()
    if not text:
        return "unsourced"
    if "assumption" in text.lower():
        return "assumption"
    if _PRECLINICAL.search(text):
        return "preclinical"
    if not _PRIMARY.search(re.sub(r"seed review|issue \d+", "", text, flags=re.IGNORECASE)):
        return "review"
    return "human"


SOURCED_CATEGORIES = ("human", "fit")
"""Source categories of :func:`parameter_sources` that count as sourced (``parameters.sourced_fraction``): human data
or a value the fit identified. Every other category (``assumption``, ``preclinical``, ``review``, ``unsourced``,
``unidentified_fit``) is not sourced."""


def parameter_sources(spec: ModelSpec, fitted: Iterable[str] = (), fixed_by_fit: Iterable[str] = ()) -> dict[str, Any]:
    """The source category of every biological parameter of ``spec``: the rule behind
    ``parameters.sourced_fraction`` (the metric's definition), also used by :mod:`abscopal.studies.sensitivity`.

    Parameters
    ----------
    spec
        The model.
    fitted, fixed_by_fit
        Names the fit estimated (its free values) and names it fixed at values it could not identify
        (``provenance["base_parameters"]``).

    Returns
    -------
    dict
        ``categories`` (``{stem: category}``; per-lesion copies ``name_<i>`` count once under their stem, named by
        the first copy's category), ``counts`` (``{category: n}``), ``excluded`` (``{name: reason}``: per-patient
        inputs and drug pharmacokinetics or dosing, which are not biological parameters of the disease) and
        ``members`` (``{stem: [parameter names]}``, the copies of each stem in model order).
    """
    fitted, unidentified = frozenset(fitted), frozenset(fixed_by_fit)
    per_patient: set[str] = set()
    if spec.n_lesions:
        try:
            per_patient |= set(_size_parameters(spec))
        except NotApplicableError:
            pass
        per_patient |= {"pdl1_tps"} & set(spec.parameter_names)
        per_patient |= {n for n in spec.parameter_names if _PER_PATIENT.match(n)}
    by_stem: dict[str, str] = {}
    categories: dict[str, str] = {}
    excluded: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for p in spec.parameters:
        stem = re.sub(r"_\d+$", "", p.name) if spec.n_lesions and re.search(r"_\d+$", p.name) else p.name
        if p.name in per_patient:
            excluded[p.name] = "set per virtual patient"
            continue
        if _NOT_BIOLOGICAL.search(p.name):
            excluded[p.name] = "drug pharmacokinetics or dosing"
            continue
        members.setdefault(stem, []).append(p.name)
        if stem in by_stem:  # per-lesion copies count once
            continue
        by_stem[stem] = p.name
        if p.name in fitted:
            categories[stem] = "fit"
        elif p.name in unidentified:
            categories[stem] = "unidentified_fit"
        else:
            categories[stem] = _source_category(p.source or "")
    counts = {c: sum(v == c for v in categories.values()) for c in sorted(set(categories.values()))}
    return {"categories": categories, "counts": counts, "excluded": excluded, "members": members}


def _parameter_sources(ctx: CardContext) -> dict[str, Any]:
    return ctx.cached("parameter_sources", lambda: parameter_sources(ctx.spec, ctx.fitted, ctx.fixed_by_fit))


def _parameter_count(ctx: CardContext) -> Measured:
    src = _parameter_sources(ctx)
    return Measured(value=float(len(src["categories"])), details={"counts": src["counts"], "excluded": src["excluded"]})


def _sourced_fraction(ctx: CardContext) -> Measured:
    src = _parameter_sources(ctx)
    cats = src["categories"]
    if not cats:
        raise NotApplicableError(f"model {ctx.spec.name!r} has no biological parameters")
    sourced = [k for k, c in cats.items() if c in SOURCED_CATEGORIES]
    return Measured(
        value=len(sourced) / len(cats),
        details={"counts": src["counts"], "sourced": sorted(sourced), "categories": cats},
    )


# ---- registration -------------------------------------------------------------------------------------------------
_TYPICAL = "the typical patient (model defaults overridden by the fit's typical values)"
register(
    Metric(
        name="rest.max_rel_derivative_t0",
        units="1/day",
        definition=f"untreated {_TYPICAL} at t = 0: max over non-tumour states of |dy/dt| / max(|y|, abs_tol of the "
        "state); tumour states (those behind the lesion size, tumour burden and new-lesion hazard roles) excluded",
        want=Want(at_most=1e-6),
        compute=_rest_derivative,
    )
)
register(
    Metric(
        name="rest.max_doubling_time_rel_error",
        units="1",
        definition="untreated typical patient with one lesion: |simulated volume doubling time / "
        "tumour_doubling_time_day - 1|, doubling time from the volume ratio over one nominal doubling time; worst "
        "over PD-L1 TPS 0, 0.5, 1 and lesion diameters 10, 30, 100 mm",
        want=Want(at_most=0.10),
        compute=_doubling_time,
    )
)
register(
    Metric(
        name="rest.pdl1_rel_drift_7d",
        units="1",
        definition=f"untreated {_TYPICAL}: max over PD-L1 states of |P(7 d) - P(0)| / max(|P(0)|, abs_tol)",
        want=Want(at_most=0.05),
        compute=_pdl1_drift,
    )
)
register(
    Metric(
        name="time_zero.baseline_size_rel_error_prior_rt",
        units="1",
        definition=f"{PRIOR_RT_REGIMEN} to the largest lesion from day {PRIOR_RT_START_DAY:g} as a prior course "
        "(history before enrolment), pembrolizumab from day 0: max over patients and present lesions the history "
        "does not sterilise of |simulated diameter at day 0 - drawn baseline diameter| / drawn diameter (the drawn "
        "baseline is the enrolment scan; sterilised lesions are counted in the details)",
        want=Want(at_most=1e-6),
        compute=_time_zero,
    )
)
register(
    Metric(
        name="abscopal.out_of_field_gain",
        units="1",
        definition="PEMBRO-RT design and patients: week-12 ORR (RECIST 1.1, non-irradiated lesions) with SBRT "
        "24 Gy / 3 from day -7 to the lung primary + pembrolizumab, minus pembrolizumab alone (reported: "
        "0.36 - 0.18)",
        want=None,
        compute=_gain,
    )
)
register(
    Metric(
        name="abscopal.gain_retained_without_debulking",
        units="1",
        definition="1 - (excision gain / SBRT gain): the share of the out-of-field gain that an 'excision' (the "
        "same course with every radiation-specific immune effect off, the cell kill kept: "
        + ", ".join(EXCISION_MECHANISMS_OFF)
        + " off, macrophage_rt_shift = 0) does not reproduce",
        want=Want(at_least=0.5),
        compute=_retained,
    )
)
register(
    Metric(
        name="abscopal.dc_signal_ratio_24gy3_vs_8gy1",
        units="1",
        definition=f"RT alone to lesion 0 of {_TYPICAL}: peak rise of the dendritic-cell (priming) signal over its "
        "untreated course within 60 days, 24 Gy / 3 divided by 8 Gy / 1",
        want=Want(away_from=1.0, by=0.1),
        compute=_dc_ratio,
    )
)
_NADIR_WANTS: dict[str, Want | None] = {
    "sbrt_24gy_3fx": Want(at_least=0.7),
    "sbrt_50gy_4fx": Want(at_least=0.7),
    "conv_45gy_15fx": None,
    "conv_60gy_30fx": Want(at_least=0.2, at_most=0.4),
}
for _reg in NADIR_REGIMENS:
    register(
        Metric(
            name=f"lymphocytes.nadir_ratio.{_reg}",
            units="1",
            definition=f"RT alone ({_reg}, the plan's default blood dose) to lesion 0 of the typical patient: "
            "lowest lymphocyte count (role lymphocytes) within a year / the count before the first fraction",
            want=_NADIR_WANTS[_reg],
            compute=partial(_nadir, regimen=_reg),
        )
    )
_LC_WANTS = {"sbrt_50gy_4fx": Want(at_least=0.85), "conv_30gy_10fx": Want(at_most=0.7)}
for _reg in LOCAL_CONTROL_REGIMENS:
    register(
        Metric(
            name=f"local_control_2y.{_reg}",
            units="1",
            definition=f"RT alone ({_reg}) to the lung primary of the virtual patients: share whose irradiated "
            "lesion has not progressed by RECIST 1.1 (>= 20% and >= 5 mm above its nadir) at any scan within 2 years",
            want=_LC_WANTS[_reg],
            compute=partial(_local_control, regimen=_reg),
        )
    )
register(
    Metric(
        name="os_hr_share_from_irradiated_lesion",
        units="1",
        definition="PEMBRO-RT arms: 1 - log HR_held / log HR, HR the Cox OS hazard ratio of SBRT + pembrolizumab vs "
        "pembrolizumab, HR_held the same with the irradiated lesion's volume in the death hazard's tumour burden "
        "replaced by its no-RT course (new lesions and everything else unchanged)",
        want=None,
        compute=_os_share,
    )
)
register(
    Metric(
        name="parameters.n",
        units="parameters",
        definition="biological parameters: the model's parameters without mechanism switches, drug PK / dosing "
        "(pk_*, ro_*, body_weight_kg) and per-patient inputs (lesion sizes, PD-L1 TPS); per-lesion copies count once",
        want=None,
        compute=_parameter_count,
    )
)
register(
    Metric(
        name="parameters.sourced_fraction",
        units="1",
        definition="share of the biological parameters whose value comes from human data or an identified fit "
        "(the fit's free values); not sourced: an assumption (the word in the source), animal data, only the "
        "seed review or a project issue, a value the fit could not identify, no source",
        want=Want(at_least=0.5),
        compute=_sourced_fraction,
    )
)


# ---- the card -----------------------------------------------------------------------------------------------------
def resolve_model(
    model: str | ModelSpec | CompiledModel | None, fit: str | Path | None, *, version: int | None = None
) -> tuple[CompiledModel, Fit | None, Path | None]:
    """The compiled model and fit of a card: ``fit`` is ``"default"`` (the shipped fit), ``"none"`` / None (model
    defaults) or a path; ``model`` a library name (``nsclc`` takes the fit's lesion count, else 3, and ``version``,
    else the fit's version, else 1), a spec, or None for the fit's model (``nsclc`` with 3 lesions without a fit).
    Raises :class:`AbscopalError` naming ``fit``, ``model`` or ``version`` for a missing file, an unknown model or
    version, or a fit made for another model."""
    from .model.library import MODELS, get_model, version_options

    path = resolve_fit_path(fit)
    cal = None if path is None else Fit.load(path)
    prov = {} if cal is None else cal.provenance
    if model is None or isinstance(model, str):
        name = model or prov.get("model_name_library") or "nsclc"
        if name not in MODELS:
            raise ParameterError("model: " + unknown_name_message("model", str(name), MODELS))
        options: dict[str, Any] = {"n_lesions": int(prov.get("n_lesions") or 3)} if name == "nsclc" else {}
        fit_version = prov.get("model_version") if prov.get("model_name_library") == name else None
        try:
            options |= version_options(name, version if version is not None else fit_version)
        except ModelError as exc:
            raise ParameterError(f"version: {exc}") from None
        spec = get_model(name, **options)
    else:
        if version is not None:
            raise ParameterError("version: give a version with a library model name, not with a model spec")
        spec = model if isinstance(model, ModelSpec) else model.spec
    if cal is not None:
        cal.check_model(spec, path)
    compiled = model if isinstance(model, CompiledModel) else compile_model(spec)
    return compiled, cal, path


def model_card(
    model: str | ModelSpec | CompiledModel | None = None,
    fit: str | Path | None = "default",
    *,
    seed: int = 0,
    n_patients: int = DEFAULT_PATIENTS,
    metrics: Iterable[str] | None = None,
    mechanisms_off: Iterable[str] = (),
    progress: Callable[[str], None] | None = None,
    version: int | None = None,
) -> ModelCard:
    """Measure the model card (module docstring).

    Parameters
    ----------
    model, fit, version
        See :func:`resolve_model`; default the shipped fit and its model (``version``: of the ``nsclc`` model,
        e.g. 2 for model v2).
    seed, n_patients
        Seed and size of the virtual population (PEMBRO-RT mix) of the population metrics.
    metrics
        Names of the metrics to measure (default all of :data:`METRICS`, in registry order); a name ending in
        ``.`` or ``*`` selects every metric with that prefix.
    mechanisms_off
        Mechanisms switched off in every simulation (to check what a metric depends on).
    progress
        Called with one line per metric (e.g. ``logging.info``).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"seed must be an integer >= 0, got {seed!r}")
    if isinstance(n_patients, bool) or not isinstance(n_patients, int) or not 1 <= n_patients <= 100_000:
        raise ParameterError(f"n_patients must be an integer from 1 to 100000, got {n_patients!r}")
    names = _select(metrics)
    t0 = time.perf_counter()
    compiled, cal, path = resolve_model(model, fit, version=version)
    off = tuple(mechanisms_off)
    for m in off:
        if m not in compiled.spec.mechanism_names:
            raise ParameterError(
                "mechanisms_off: " + unknown_name_message("mechanism", m, compiled.spec.mechanism_names)
            )
    ctx = CardContext(
        compiled,
        {} if cal is None else cal.all_values(),
        seed=seed,
        n_patients=n_patients,
        mechanisms_off=off,
        fitted=() if cal is None else cal.values,
        fixed_by_fit=() if cal is None else (cal.provenance.get("base_parameters") or {}),
    )
    results = []
    for name in names:
        results.append(_measure(METRICS[name], ctx))
        if progress is not None:
            r = results[-1]
            progress(f"{name}: {r.status} ({'-' if r.value is None else _fmt(r.value)}; {r.elapsed_s:.1f} s)")
    provenance = {
        "package": "abscopal",
        "version": __version__,
        "model": compiled.spec.name,
        "model_hash": compiled.spec.content_hash(),
        "fit": None if path is None else str(path),
        "fit_hash": fit_file_hash(path),
        "fit_model": None if cal is None else cal.provenance.get("model_name"),
        "seed": seed,
        "n_patients": n_patients,
        "mix": MIX,
        "mechanisms_off": list(off),
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }
    return ModelCard(results=tuple(results), provenance=provenance)


def _select(metrics: Iterable[str] | None) -> list[str]:
    if metrics is None:
        return list(METRICS)
    if isinstance(metrics, str):
        metrics = [metrics]
    chosen: list[str] = []
    for m in metrics:
        prefix = m[:-1] if m.endswith("*") else (m if m.endswith(".") else None)
        hits = [n for n in METRICS if n.startswith(prefix)] if prefix else ([m] if m in METRICS else [])
        if not hits:
            raise ParameterError("metric: " + unknown_name_message("metric", m, METRICS))
        chosen += [h for h in hits if h not in chosen]
    return [n for n in METRICS if n in chosen]


def _measure(metric: Metric, ctx: CardContext) -> MetricResult:
    t0 = time.perf_counter()
    try:
        got = metric.compute(ctx)
    except NotApplicableError as exc:
        return replace(_empty(metric), reason=str(exc), elapsed_s=time.perf_counter() - t0)
    value = None if got.value is None or math.isnan(got.value) else float(got.value)
    return MetricResult(
        name=metric.name,
        units=metric.units,
        definition=metric.definition,
        want=metric.want,
        value=value,
        passed=None if metric.want is None else metric.want.check(value),
        applicable=True,
        reason=got.note,
        details=dict(got.details),
        elapsed_s=time.perf_counter() - t0,
    )


def _empty(metric: Metric) -> MetricResult:
    return MetricResult(
        name=metric.name,
        units=metric.units,
        definition=metric.definition,
        want=metric.want,
        value=None,
        passed=None,
        applicable=False,
        reason="",
        details={},
        elapsed_s=0.0,
    )
