"""Virtual populations: inter-patient variability with stored standard-normal draws.

Each patient's draws come from its own stream ``SeedSequence(seed).spawn``-style
(``SeedSequence(seed, spawn_key=(k,))``), so patient k is the same whatever the population
size, and the draws ``z`` are stored so the same patients can be re-simulated under other
typical values (common random numbers). A parameter's patient value is

* log-normal: ``typical * exp(omega * z)``;
* logit-normal: ``expit(logit(typical) + omega * z)`` (for fractions in (0, 1)).

An optional correlation matrix correlates the ``z`` (through its Cholesky factor).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.special import expit, logit

from ._frozen import FrozenMap
from .errors import ParameterError, unknown_name_message

__all__ = ["LogNormal", "LogitNormal", "Variability", "VirtualPopulation"]


class ModelParameters(Protocol):
    """What a population needs of a model: its parameter names, in the order of the parameter vector (a
    :class:`~abscopal.model.spec.ModelSpec` is one; the model library builds on this module, not the reverse)."""

    @property
    def parameter_names(self) -> Sequence[str]: ...


@dataclass(frozen=True, kw_only=True)
class LogNormal:
    """Log-normal variability; ``omega`` is the SD of the log (about the CV for small omega)."""

    omega: float

    def __post_init__(self) -> None:
        if not (self.omega >= 0 and math.isfinite(self.omega)):
            raise ParameterError(f"omega must be a finite number >= 0, got {self.omega!r}")

    def apply(self, typical: float | np.ndarray, z: np.ndarray) -> np.ndarray:
        """Patient values for standard-normal draws ``z``."""
        return np.asarray(typical, dtype=float) * np.exp(self.omega * z)


@dataclass(frozen=True, kw_only=True)
class LogitNormal:
    """Logit-normal variability for parameters in (0, 1); ``omega`` is the SD on the logit scale."""

    omega: float

    def __post_init__(self) -> None:
        if not (self.omega >= 0 and math.isfinite(self.omega)):
            raise ParameterError(f"omega must be a finite number >= 0, got {self.omega!r}")

    def apply(self, typical: float | np.ndarray, z: np.ndarray) -> np.ndarray:
        """Patient values for standard-normal draws ``z``."""
        typ = np.asarray(typical, dtype=float)
        if not np.all((typ > 0.0) & (typ < 1.0)):
            raise ParameterError(f"logit-normal variability needs typical values in (0, 1), got {typical!r}")
        return expit(logit(typ) + self.omega * z)


Variability = LogNormal | LogitNormal


@dataclass(frozen=True, kw_only=True)
class VirtualPopulation:
    """A reproducible set of virtual patients.

    Parameters
    ----------
    n_patients
        Number of patients.
    variability
        ``{parameter name: LogNormal(...) | LogitNormal(...)}``; other parameters are fixed.
    seed
        Seed of the population (an int; per-patient streams are derived from it).
    correlation
        Optional correlation matrix of the draws, in the order of ``variability``.
    per_patient
        ``{parameter name: array of n_patients values}`` set per patient after variability
        (e.g. baseline lesion volumes or covariate-derived values drawn by
        :mod:`abscopal.patients`). Row k must describe patient k.
    optional_per_patient
        Like ``per_patient``, for draws a model may not use (e.g. the local-control quantiles
        ``control_quantile_<j>`` of model v2): applied where the model has the parameter, ignored elsewhere.
    multipliers
        ``{parameter name: array of n_patients factors}`` applied to the typical value before
        variability (covariate effects, e.g. ``exp(beta * pretreated)``); kept apart from the
        typical values so the same patients can be re-simulated under new typical values.
    draws
        Explicit standard-normal draws ``(n_patients, len(variability))`` instead of the seeded
        ones (e.g. after plausibility rejection in :mod:`abscopal.patients`).
    """

    n_patients: int
    variability: Mapping[str, Variability] = field(default_factory=dict)
    seed: int = 0
    correlation: np.ndarray | None = None
    per_patient: Mapping[str, np.ndarray] = field(default_factory=dict)
    multipliers: Mapping[str, np.ndarray] = field(default_factory=dict)
    optional_per_patient: Mapping[str, np.ndarray] = field(default_factory=dict)
    draws: np.ndarray | None = field(default=None, repr=False, compare=False)
    z: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = self.n_patients
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ParameterError(f"n_patients must be an integer >= 1, got {self.n_patients!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ParameterError(f"seed must be a non-negative integer, got {self.seed!r}")
        object.__setattr__(self, "variability", FrozenMap(dict(self.variability)))
        k = len(self.variability)
        if self.draws is not None:
            z = np.array(self.draws, dtype=float)
            if z.shape != (int(self.n_patients), k) or not np.all(np.isfinite(z)):
                raise ParameterError(f"draws must be a finite ({int(self.n_patients)}, {k}) array, got {z.shape}")
        else:
            z = np.empty((int(self.n_patients), k))
            for i in range(int(self.n_patients)):
                rng = np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=(i,)))
                z[i] = rng.standard_normal(k)
        if self.correlation is not None and self.draws is None:
            c = np.asarray(self.correlation, float)
            if c.shape != (k, k) or not np.allclose(c, c.T) or not np.allclose(np.diag(c), 1.0):
                raise ParameterError(
                    f"correlation must be a symmetric ({k}, {k}) matrix with unit diagonal, got shape {c.shape}"
                )
            try:
                chol = np.linalg.cholesky(c)
            except np.linalg.LinAlgError:
                raise ParameterError("correlation matrix is not positive definite; fix its entries") from None
            z = z @ chol.T
        z.setflags(write=False)
        object.__setattr__(self, "z", z)
        mult = {}
        for name, values in self.multipliers.items():
            arr = np.array(values, dtype=float)
            if arr.shape != (int(self.n_patients),) or not np.all(np.isfinite(arr) & (arr > 0)):
                raise ParameterError(
                    f"multipliers[{name!r}] must be {int(self.n_patients)} positive finite values, "
                    f"got shape {arr.shape}"
                )
            arr.setflags(write=False)
            mult[name] = arr
        object.__setattr__(self, "multipliers", FrozenMap(mult))
        for attr in ("per_patient", "optional_per_patient"):
            fixed = {}
            for name, values in getattr(self, attr).items():
                arr = np.array(values, dtype=float)
                if arr.shape != (int(self.n_patients),) or not np.all(np.isfinite(arr)):
                    raise ParameterError(
                        f"{attr}[{name!r}] must be {int(self.n_patients)} finite values, got shape {arr.shape}"
                    )
                arr.setflags(write=False)
                fixed[name] = arr
            overlap = set(fixed) & (set(self.variability) | set(mult))
            if overlap:
                raise ParameterError(
                    f"parameters {sorted(overlap)} are set per patient and also varied or multiplied; keep one"
                )
            object.__setattr__(self, attr, FrozenMap(fixed))

    @property
    def varying(self) -> tuple[str, ...]:
        """Names of the parameters that vary between patients."""
        return tuple(self.variability)

    def check(self, spec: ModelParameters) -> None:
        """Raise if a varying parameter is not in the model."""
        for where, names in (
            ("variability", self.variability),
            ("per_patient", self.per_patient),
            ("multipliers", self.multipliers),
        ):
            for name in names:
                if name not in spec.parameter_names:
                    raise ParameterError(f"{where}: " + unknown_name_message("parameter", name, spec.parameter_names))

    def parameter_matrix(self, spec: ModelParameters, typical: Mapping[str, float]) -> np.ndarray:
        """Per-patient parameter matrix ``(n_patients, n_params)`` around ``typical`` values."""
        self.check(spec)
        names = spec.parameter_names
        P = np.tile(np.array([typical[n] for n in names], float), (int(self.n_patients), 1))
        for name, factor in self.multipliers.items():
            P[:, names.index(name)] *= factor
        for col, (name, var) in enumerate(self.variability.items()):
            k = names.index(name)
            P[:, k] = var.apply(P[:, k], self.z[:, col])  # typical (x covariate multiplier) per patient
        for name, values in self.per_patient.items():
            P[:, names.index(name)] = values
        for name, values in self.optional_per_patient.items():
            if name in names and name not in self.per_patient:
                P[:, names.index(name)] = values
        return P

    def subset(self, n_patients: int) -> VirtualPopulation:
        """The first ``n_patients`` patients (identical draws and per-patient values)."""
        return VirtualPopulation(
            n_patients=n_patients,
            variability=self.variability,
            seed=self.seed,
            correlation=None,
            draws=self.z[:n_patients],
            per_patient={k: v[:n_patients] for k, v in self.per_patient.items()},
            multipliers={k: v[:n_patients] for k, v in self.multipliers.items()},
            optional_per_patient={k: v[:n_patients] for k, v in self.optional_per_patient.items()},
        )

    def describe(self) -> dict[str, object]:
        """Plain description for provenance."""
        return {
            "n_patients": int(self.n_patients),
            "seed": int(self.seed),
            "variability": {k: [type(v).__name__, v.omega] for k, v in self.variability.items()},
            "correlated": self.correlation is not None,
            "per_patient": sorted(self.per_patient),
            "multipliers": sorted(self.multipliers),
            "optional_per_patient": sorted(self.optional_per_patient),
            "explicit_draws": self.draws is not None,
        }
