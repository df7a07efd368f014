"""Draws of typical parameter values that carry a calibration's uncertainty into predictions and studies.

:func:`parameter_draws` turns a :class:`~abscopal.fitted.format.Fit` into an ``(n_draws, n_params)``
array of parameter values (:class:`ParameterDraws`), from one of two sources:

``"posterior"``
    Rows of the stored posterior samples (``calibration.posterior = {"names": [...], "samples": [[...], ...]}``,
    e.g. from emcee), resampled with replacement with ``seed``. Parameters not in the posterior keep their fitted
    value.
``"covariance"``
    The asymptotic normal approximation of the least-squares fit (standard errors and correlations of the varying
    parameters; fixed parameters stay constant). **Choice**: a parameter whose fitted value is positive and whose
    lower bound is >= 0 (rates, initial values, variabilities ``omega__*``) is drawn *log-normally*,
    ``x = x_hat exp(z)`` with ``SD(z) = stderr / x_hat`` (delta method, first order) and the fitted correlations
    between the ``z``; the median is the fitted value and draws never change sign. Every other parameter (e.g.
    covariate log-effects ``effect__*``, which may be negative) is drawn normally on its own scale. Draws outside
    the bounds of :meth:`~abscopal.fitted.format.Fit.parameters` are rejected and redrawn (truncation); after
    :data:`MAX_ATTEMPTS_PER_DRAW` attempts per requested draw the function raises (the covariance then puts most
    of its mass outside the bounds, which a truncated normal would misrepresent anyway). A correlation missing
    from ``calibration.correlations`` (a single varying parameter, or a pair lmfit did not report) counts as 0.
``"auto"`` (default)
    ``"posterior"`` if the calibration stores one, else ``"covariance"``.

Draw 0 is an ordinary random draw; the fitted values are :attr:`ParameterDraws.point`. Drawing is cheap
(no simulation) and depends only on the calibration and ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AbscopalError, ParameterError

if TYPE_CHECKING:
    from .format import Fit

__all__ = ["MAX_ATTEMPTS_PER_DRAW", "SOURCES", "ParameterDraws", "on_log_scale", "parameter_draws"]

SOURCES = ("auto", "covariance", "posterior")
"""Accepted values of ``source``."""
MAX_ATTEMPTS_PER_DRAW = 100
"""Rejection sampling gives up after this many candidate draws per requested draw (see the module docstring)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class ParameterDraws:
    """Random draws of the typical values of a calibration (immutable; the array is read-only).

    Attributes
    ----------
    names
        Parameter names, in the order of the columns (every entry of ``calibration.values``, fixed ones included,
        then any posterior-only names).
    array
        ``(n_draws, n_params)`` float array, row ``i`` = draw ``i``.
    source
        ``"covariance"`` or ``"posterior"`` (the source actually used).
    seed
        The seed of the draws.
    point
        The fitted values ``{name: value}`` (the calibration's ``values``), not one of the draws.
    log_scale
        Names drawn log-normally (covariance source only; empty for the posterior).
    """

    names: tuple[str, ...]
    array: np.ndarray
    source: str
    seed: int
    point: Mapping[str, float] = field(default_factory=dict)
    log_scale: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        arr = np.array(self.array, dtype=float)  # a private copy
        if arr.ndim != 2 or arr.shape[1] != len(self.names):
            raise ParameterError(
                f"array: shape {arr.shape} does not match {len(self.names)} names "
                f"(expected (n_draws, {len(self.names)}))"
            )
        arr.setflags(write=False)
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "point", dict(self.point))
        object.__setattr__(self, "log_scale", tuple(self.log_scale))

    def __len__(self) -> int:
        return int(self.array.shape[0])

    @property
    def n_draws(self) -> int:
        """Number of draws (rows)."""
        return len(self)

    def column(self, name: str) -> np.ndarray:
        """The draws of parameter ``name`` (read-only view)."""
        if name not in self.names:
            from ..errors import unknown_name_message

            raise ParameterError("name: " + unknown_name_message("parameter", name, self.names))
        return self.array[:, self.names.index(name)]

    def as_dicts(self) -> list[dict[str, float]]:
        """One ``{name: value}`` mapping per draw (the input of ``CalibrationProblem.evaluate``)."""
        return [dict(zip(self.names, map(float, row), strict=True)) for row in self.array]

    def to_dict(self) -> dict[str, Any]:
        """Plain content (JSON-ready; the draws are finite by construction)."""
        return {
            "names": list(self.names),
            "source": self.source,
            "seed": int(self.seed),
            "point": {k: float(v) for k, v in self.point.items()},
            "log_scale": list(self.log_scale),
            "draws": self.array.tolist(),
        }


def on_log_scale(value: Any, lower: Any) -> np.ndarray:
    """True where a fitted parameter's uncertainty is log-normal: value > 0 and lower bound >= 0 (rates, initial
    values, variabilities; module docstring), elementwise. Also the scale of a fitted parameter's range in
    :mod:`abscopal.studies.sensitivity`."""
    return (np.asarray(value, dtype=float) > 0) & (np.asarray(lower, dtype=float) >= 0)


def _posterior(calibration: Fit) -> Mapping[str, Any] | None:
    post = getattr(calibration, "posterior", None)
    if not post:
        return None
    return post


def _varying(calibration: Fit) -> tuple[list[str], Any]:
    """Names of the varying parameters (lmfit ``vary``) and the lmfit Parameters."""
    params = calibration.parameters()
    free = [k for k, p in params.items() if p.vary and k in calibration.values]
    return free, params


def _has_covariance(calibration: Fit) -> bool:
    free, _ = _varying(calibration)
    return bool(free) and all(_finite_positive(calibration.stderr.get(k)) for k in free)


def _finite_positive(x: Any) -> bool:
    return x is not None and math.isfinite(float(x)) and float(x) > 0.0


def _check(n_draws: Any, seed: Any, source: Any) -> None:
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 1:
        raise ParameterError(f"n_draws: {n_draws!r} is not a positive integer; pass e.g. n_draws=100")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ParameterError(f"seed: {seed!r} is not a non-negative integer; pass an explicit seed, e.g. seed=0")
    if source not in SOURCES:
        raise ParameterError(f"source: {source!r} is not one of {list(SOURCES)}")


def parameter_draws(calibration: Fit, n_draws: int, *, seed: int, source: str = "auto") -> ParameterDraws:
    """Draw typical parameter values from a calibration's uncertainty (module docstring).

    Parameters
    ----------
    calibration
        A :class:`~abscopal.fitted.format.Fit` (``values``, ``stderr``, ``correlations``,
        ``parameters()`` and optionally ``posterior``).
    n_draws
        Number of draws (>= 1).
    seed
        Seed of ``numpy.random.default_rng``; the same seed gives the same draws.
    source
        ``"auto"`` (posterior if stored, else covariance), ``"covariance"`` or ``"posterior"``.

    Returns
    -------
    ParameterDraws
        The draws, every entry of ``calibration.values`` a column.

    Raises
    ------
    ParameterError
        Invalid ``n_draws``, ``seed`` or ``source``.
    AbscopalError
        The requested source is not available (no posterior stored; no finite standard error of a varying
        parameter), the posterior is malformed, or truncation to the bounds rejects too many draws.
    """
    _check(n_draws, seed, source)
    post = _posterior(calibration)
    if source == "auto":
        if post is not None:
            source = "posterior"
        elif _has_covariance(calibration):
            source = "covariance"
        else:
            free, _ = _varying(calibration)
            raise AbscopalError(
                "calibration: neither a posterior nor a covariance is stored (standard errors "
                f"{ {k: calibration.stderr.get(k) for k in free} }); refit (a singular Jacobian leaves no "
                "covariance: fix a parameter or add targets) or run the posterior sampler, or skip the "
                "parameter draws"
            )
    rng = np.random.default_rng(int(seed))
    point = {k: float(v) for k, v in calibration.values.items()}
    if source == "posterior":
        return _from_posterior(calibration, post, n_draws, int(seed), rng, point)
    return _from_covariance(calibration, n_draws, int(seed), rng, point)


def _from_posterior(
    calibration: Fit,
    post: Mapping[str, Any] | None,
    n_draws: int,
    seed: int,
    rng: np.random.Generator,
    point: dict[str, float],
) -> ParameterDraws:
    if post is None:
        raise AbscopalError(
            "source='posterior': the calibration stores no posterior; run the posterior sampler "
            "on it first, or use source='covariance'"
        )
    try:
        names = [str(n) for n in post["names"]]
        samples = np.asarray(post["samples"], dtype=float)
    except (KeyError, TypeError, ValueError) as exc:
        raise AbscopalError(
            f"calibration.posterior: malformed ({type(exc).__name__}: {exc}); expected "
            "{'names': [...], 'samples': [[...], ...]}"
        ) from None
    if samples.ndim != 2 or samples.shape[1] != len(names) or samples.shape[0] == 0:
        raise AbscopalError(
            f"calibration.posterior: samples of shape {samples.shape} do not match "
            f"{len(names)} names; expected (n_samples, {len(names)})"
        )
    if not np.all(np.isfinite(samples)):
        raise AbscopalError("calibration.posterior: the samples contain non-finite values; rerun the sampler")
    all_names = list(point) + [n for n in names if n not in point]
    rows = samples[rng.integers(0, samples.shape[0], size=n_draws)]
    arr = np.empty((n_draws, len(all_names)))
    for j, name in enumerate(all_names):
        arr[:, j] = rows[:, names.index(name)] if name in names else point[name]
    return ParameterDraws(names=tuple(all_names), array=arr, source="posterior", seed=seed, point=point)


def _from_covariance(
    calibration: Fit, n_draws: int, seed: int, rng: np.random.Generator, point: dict[str, float]
) -> ParameterDraws:
    free, params = _varying(calibration)
    if not free:
        raise AbscopalError("source='covariance': the calibration has no varying parameter; nothing to draw")
    missing = [k for k in free if not _finite_positive(calibration.stderr.get(k))]
    if missing:
        raise AbscopalError(
            f"source='covariance': no finite standard error for {missing} (stderr "
            f"{ {k: calibration.stderr.get(k) for k in missing} }); refit (fix a parameter or add "
            "targets so the Jacobian is not singular) or run the posterior sampler"
        )
    lo = np.array([params[k].min if params[k].min is not None else -np.inf for k in free], dtype=float)
    hi = np.array([params[k].max if params[k].max is not None else np.inf for k in free], dtype=float)
    centre = np.array([point[k] for k in free])
    se = np.array([calibration.stderr[k] for k in free], dtype=float)  # all finite and > 0 (missing is empty)
    log = on_log_scale(centre, lo)
    sd = np.where(log, se / np.where(log, centre, 1.0), se)
    corr = np.eye(len(free))
    for i, a in enumerate(free):
        for j, b in enumerate(free):
            if i != j:
                c = calibration.correlations.get(a, {}).get(b, calibration.correlations.get(b, {}).get(a, 0.0))
                corr[i, j] = float(c)
    cov = corr * np.outer(sd, sd)
    w, v = np.linalg.eigh(0.5 * (cov + cov.T))
    factor = v * np.sqrt(np.clip(w, 0.0, None))  # cov = factor @ factor.T (PSD-clipped)
    accepted: list[np.ndarray] = []
    n_ok, attempts, cap = 0, 0, MAX_ATTEMPTS_PER_DRAW * n_draws
    while n_ok < n_draws and attempts < cap:
        batch = min(max(2 * (n_draws - n_ok), 64), cap - attempts)
        z = rng.standard_normal((batch, len(free))) @ factor.T
        x = np.where(log, centre * np.exp(z), centre + z)
        ok = np.all((x >= lo) & (x <= hi) & np.isfinite(x), axis=1)
        accepted.append(x[ok])
        n_ok += int(ok.sum())
        attempts += batch
    if n_ok < n_draws:
        raise AbscopalError(
            f"source='covariance': only {n_ok} of {attempts} draws fell within the bounds of "
            f"{free} (lower {lo.tolist()}, upper {hi.tolist()}); the fit's covariance puts most "
            f"of its mass outside the bounds. Check the standard errors "
            f"{dict(zip(free, se.tolist(), strict=True))}, refit, or use the posterior"
        )
    x = np.concatenate(accepted)[:n_draws]
    names = list(point)
    arr = np.empty((n_draws, len(names)))
    for j, name in enumerate(names):
        arr[:, j] = x[:, free.index(name)] if name in free else point[name]
    return ParameterDraws(
        names=tuple(names),
        array=arr,
        source="covariance",
        seed=seed,
        point=point,
        log_scale=tuple(k for k, flag in zip(free, log, strict=True) if flag),
    )
