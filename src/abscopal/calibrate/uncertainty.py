"""Uncertainty and identifiability of a :class:`~abscopal.fitted.format.Fit`.

* :func:`profile_likelihood`: chi-square profiles and profile-likelihood intervals of fitted parameters.
* :func:`posterior`: posterior samples with emcee through lmfit's ``Minimizer.emcee`` (flat prior inside the
  bounds), as an immutable :class:`Posterior`.
* :func:`identifiability_report`: plain-English findings (open profiles, large relative standard errors, nearly
  interchangeable parameters, singular covariance, short chains).
* :func:`with_uncertainty`: a new fit (same class) with :attr:`~abscopal.fitted.format.Fit.profiles`,
  :attr:`~abscopal.fitted.format.Fit.posterior` and
  :attr:`~abscopal.fitted.format.Fit.identifiability` filled in.

Because the residuals are divided by the targets' standard errors, chi-square is ``-2 log L`` up to a constant
(Gaussian likelihood on the residual scale). By Wilks' theorem the profile-likelihood interval of one parameter
at level ``1 - a`` is where chi-square rises by less than the ``1 - a`` quantile of chi-square with one degree of
freedom above its minimum: 1.0 (68.27%) and 3.841 (95%) (Venzon & Moolgavkar 1988, Appl Stat 37:87; Raue et al.
2009, Bioinformatics 25:1923, doi:10.1093/bioinformatics/btp358). A parameter whose profile stays below the 95%
threshold up to a bound on one side is *practically non-identifiable* from that side (Raue et al. 2009).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import numpy as np

from ..errors import AbscopalError, unknown_name_message
from ..fitted.format import Fit
from .fit import LEAST_SQUARES_OPTIONS

__all__ = [
    "DELTA_CHISQR_68",
    "DELTA_CHISQR_95",
    "MAX_POSTERIOR_ROWS",
    "Posterior",
    "identifiability_report",
    "posterior",
    "profile_likelihood",
    "profile_thresholds",
    "with_uncertainty",
]

DELTA_CHISQR_68 = 1.0
"""Chi-square rise of the 68.27% profile interval: the 0.6827 quantile of chi-square(1) (Wilks' theorem)."""
DELTA_CHISQR_95 = 3.841458820694124
"""Chi-square rise of the 95% profile interval: ``scipy.stats.chi2.ppf(0.95, 1)`` (Wilks' theorem)."""
MAX_POSTERIOR_ROWS = 2000
"""At most this many (thinned) posterior rows are kept in a Calibration (file size)."""
REL_STDERR_LIMIT = 0.5
"""Relative standard error above which a parameter is reported as weakly determined (a convention of this
package, not a literature value: the 95% Wald interval then includes zero)."""
CORRELATION_LIMIT = 0.9
"""|correlation| above which two parameters are reported as nearly interchangeable (a common rule of thumb in
pharmacometrics, e.g. the NONMEM user guides; a convention, not a test)."""
ACCEPTANCE_RANGE = (0.2, 0.5)
"""Acceptance fractions of the affine-invariant ensemble sampler considered healthy (Foreman-Mackey et al. 2013,
PASP 125:306, section 4, doi:10.1086/670067)."""
_BAD_RESIDUAL = 1e50  # residual used where a simulation fails inside the bounds (log-probability about -1e100)


class ResidualProblem(Protocol):
    """What profiles and the posterior need of a problem: weighted residuals at lmfit Parameters
    (:class:`~abscopal.calibrate.objective.CalibrationProblem` has them)."""

    def residuals(self, params: Any) -> np.ndarray: ...


# ---- profile likelihood ---------------------------------------------------------------------------------------------
def _chisqr(problem: ResidualProblem, params: Any) -> float:
    r = np.asarray(problem.residuals(params), dtype=float)
    return float(np.dot(r, r)) if np.all(np.isfinite(r)) else math.nan


def _profile_point(
    problem: ResidualProblem, params: Any, name: str, x: float, warm: Mapping[str, float], opts: Mapping[str, Any]
) -> tuple[float, dict[str, float], int]:
    """Chi-square minimised over the other free parameters with ``name`` fixed at ``x``."""
    import lmfit

    q = params.copy()
    q[name].set(value=x, vary=False)
    for k, v in warm.items():
        if k != name and q[k].vary:
            q[k].set(value=min(max(v, q[k].min), q[k].max))
    try:  # a simulation that fails (e.g. at a bound) ends this side of the profile
        if not any(p.vary for p in q.values()):
            return _chisqr(problem, q), {}, 1
        fit = lmfit.minimize(problem.residuals, q, method="least_squares", **opts)
    except (AbscopalError, ValueError, ArithmeticError):
        return math.nan, {}, 1
    others = {k: float(p.value) for k, p in fit.params.items() if p.vary}
    return float(fit.chisqr), others, int(fit.nfev)


def _crossing(xs: Sequence[float], d: Sequence[float], level: float) -> tuple[float, bool]:
    """First value along ``xs`` (outward from the optimum) where ``d`` reaches ``level``, interpolated linearly;
    ``(farthest finite value, False)`` if it is never reached."""
    last = xs[0]
    for i in range(1, len(xs)):
        if not math.isfinite(d[i]):
            break
        if d[i] >= level:
            d0 = d[i - 1] if math.isfinite(d[i - 1]) else 0.0
            f = 1.0 if d[i] == d0 else (level - d0) / (d[i] - d0)
            return float(xs[i - 1] + min(max(f, 0.0), 1.0) * (xs[i] - xs[i - 1])), True
        last = xs[i]
    return float(last), False


@dataclass(frozen=True, kw_only=True)
class _SideGrid:
    """The grid of one side of one parameter's profile (:func:`profile_likelihood`)."""

    name: str
    sign: int
    x0: float
    bound: float
    lower: float
    upper: float
    h: float
    half: float
    n_side: int
    max_extend: int
    n_refine: int
    level_95: float = DELTA_CHISQR_95


Point = tuple[float, float, dict[str, float]]  # (value, chi-square, the other free values at the re-fit)


def _profile_side(
    problem: ResidualProblem, params: Any, g: _SideGrid, chi0: float, warm: dict[str, float], opts: Mapping[str, Any]
) -> tuple[list[Point], int]:
    """The points of one side, outward from the optimum (which is the first), and the evaluations they cost.

    Each re-fit starts from the neighbouring point nearer the optimum, so the points of a side are computed in
    order; the sides are independent of each other (the tasks of the parallel run)."""
    name, sign, x0, h, half = g.name, g.sign, g.x0, g.h, g.half
    nfev = 0
    pts: list[Point] = [(x0, chi0, warm)]
    steps = [h * k for k in range(1, g.n_side + 1)]
    extra = [half + h * (2 ** (j + 1) - 1) for j in range(g.max_extend)]
    for k, dist in enumerate([*steps, *extra, math.inf]):
        if k >= len(steps) and pts[-1][1] - chi0 >= g.level_95:
            break  # the 95% rise is reached: no extension needed
        x = x0 + sign * dist
        at_bound = (x <= g.lower) if sign < 0 else (x >= g.upper)
        if at_bound:
            x = g.bound
        if not math.isfinite(x) or x == pts[-1][0]:
            break
        chi, others, n = _profile_point(problem, params, name, x, pts[-1][2], opts)
        nfev += n
        pts.append((x, chi, others or pts[-1][2]))
        if at_bound or not math.isfinite(chi):
            break
    # a wide last step (an extension or the jump to the bound) that crosses the 95% rise: bisect it
    for _ in range(g.n_refine):
        if (
            len(pts) < 2
            or not (pts[-2][1] - chi0 < g.level_95 <= pts[-1][1] - chi0)
            or abs(pts[-1][0] - pts[-2][0]) <= 1.01 * h
        ):
            break
        a, b = pts[-2][0], pts[-1][0]
        x = math.sqrt(a * b) if a > 0 and b > 0 and max(a, b) > 4.0 * min(a, b) else 0.5 * (a + b)
        chi, others, n = _profile_point(problem, params, name, x, pts[-2][2], opts)
        nfev += n
        if not math.isfinite(chi):
            break
        pts.insert(-1, (x, chi, others or pts[-2][2]))
        if chi - chi0 >= g.level_95:
            pts.pop()  # the crossing is below x: drop the far point, keep bisecting [pts[-2], x]
    return pts, nfev


def _misfit_scale(provenance: Mapping[str, Any], given: float | None) -> float:
    """The misfit factor ``c`` of profiles and posteriors (:func:`profile_likelihood`), checked: ``given``, or the
    fit's (``provenance``) when its standard errors carry it, else 1."""
    if given is None:
        m = provenance.get("misfit")
        if not (isinstance(m, Mapping) and m.get("stderr_scaled")):
            return 1.0
        given, where = m.get("covariance_scale"), 'the calibration\'s provenance["misfit"]["covariance_scale"]'
    else:
        where = "misfit_scale"
    if isinstance(given, bool) or not isinstance(given, int | float) or not (math.isfinite(given) and given >= 1.0):
        raise AbscopalError(
            f"{where}={given!r}: the misfit factor must be a finite number >= 1 (1 = the plain likelihood-ratio "
            "thresholds)"
        )
    return float(given)


# ---- profiles on Dask: each worker process builds its own problem once ----------------------------------------------
@dataclass(frozen=True, kw_only=True)
class _SideTask:
    """One side of one profile, for a worker process: how to build the problem (never its compiled kernels: a
    compiled model pickles as a reference to its kernel file, loaded from the disk cache), the fit and the grid."""

    problem_key: str
    problem: Any  # the CalibrationProblem's constructor arguments (a dict), or a picklable problem
    calibration: Fit
    grid: _SideGrid
    chi0: float
    warm: dict[str, float]
    opts: dict[str, Any]
    threads: int | None


_WORKER_PROBLEMS: dict[str, Any] = {}  # per worker process: problem key -> the problem built from its recipe


def _problem_recipe(problem: ResidualProblem) -> tuple[str, Any]:
    """``(key, recipe)``: a CalibrationProblem's constructor arguments and a sha256 of what they determine (targets'
    content hashes, model hash, patients, seed, base values, outcomes, options); any other problem is sent as it is
    (it must pickle)."""
    import dataclasses
    import hashlib
    import json
    import pickle

    from .objective import CalibrationProblem

    if isinstance(problem, CalibrationProblem):
        recipe = {f.name: getattr(problem, f.name) for f in dataclasses.fields(problem) if f.init}
        spec = problem._spec
        text = json.dumps(
            {
                "targets": [t.content_hash() for t in problem.targets],
                "model": spec.content_hash(),
                "fields": {k: v for k, v in recipe.items() if k not in ("targets", "model")},
            },
            sort_keys=True,
            default=str,
        )
        return "recipe:" + hashlib.sha256(text.encode()).hexdigest(), recipe
    try:
        data = pickle.dumps(problem)
    except Exception as exc:
        raise AbscopalError(
            f"problem: a {type(problem).__name__} cannot be sent to worker processes ({type(exc).__name__}: {exc}); "
            "profile in process (workers=None, scheduler=None) or pass a CalibrationProblem"
        ) from None
    return "object:" + hashlib.sha256(data).hexdigest(), problem


def _worker_problem(key: str, recipe: Any) -> Any:
    if key not in _WORKER_PROBLEMS:
        from .objective import CalibrationProblem

        _WORKER_PROBLEMS.clear()  # one problem at a time per worker process
        _WORKER_PROBLEMS[key] = CalibrationProblem(**recipe) if key.startswith("recipe:") else recipe
    return _WORKER_PROBLEMS[key]


def _run_side_task(task: _SideTask) -> tuple[list[Point], int, float]:
    """A worker's side of a profile: the points, the evaluations and the wall time (s)."""
    import time

    if task.threads is not None:
        import numba

        numba.set_num_threads(min(task.threads, int(getattr(numba.config, "NUMBA_NUM_THREADS", task.threads))))
    t0 = time.perf_counter()
    problem = _worker_problem(task.problem_key, task.problem)
    pts, nfev = _profile_side(problem, task.calibration.parameters(), task.grid, task.chi0, task.warm, task.opts)
    return pts, nfev, time.perf_counter() - t0


def profile_likelihood(
    problem: ResidualProblem,
    calibration: Fit,
    names: Iterable[str] | None = None,
    *,
    n_points: int = 11,
    span: float = 3.0,
    rel_span: float = 0.5,
    max_extend: int = 3,
    n_refine: int = 6,
    workers: int | None = None,
    scheduler: str | None = None,
    misfit_scale: float | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """Chi-square profiles and profile-likelihood intervals of fitted parameters.

    For each parameter the value is fixed on a grid on both sides of the optimum and the other free parameters
    are re-fitted with least squares, warm-started from the neighbouring grid point (nearer the optimum). The
    grid has ``(n_points - 1) / 2`` steps per side of ``span x stderr`` in total (``rel_span x |value|`` without
    a standard error), clipped to the bounds. Where chi-square has not risen by 3.84 at the end of a side, the
    side is extended by up to ``max_extend`` steps of doubling length and finally by the bound itself (if
    finite), so that "open up to the bound" is a statement about the bound. When such a wide last step crosses the
    95% rise it is bisected up to ``n_refine`` times (the far point is dropped whenever the midpoint already
    crosses; the midpoint is geometric when both ends are positive and a factor > 4 apart, e.g. after a jump to a
    far bound). Intervals are interpolated linearly between grid points. With one free parameter the profile is
    the chi-square curve itself.

    When the fit's standard errors carry its misfit (``provenance["misfit"]``, ``stderr_scaled``: the covariance
    multiplied by ``c`` = the reduced chi-square with the reported errors), the thresholds are multiplied by the
    same ``c``: 95% is where chi-square rises by ``3.84 c``. This is the quasi-likelihood profile (the deviance
    divided by the dispersion; McCullagh & Nelder 1989, Generalized Linear Models, 2nd ed., sections 9.2-9.3), so
    that a profile interval and the scaled Wald interval agree on a quadratic profile and studies that draw from
    either see the same misfit.

    The sides of the profiles (two per parameter) are independent: with ``workers`` or ``scheduler`` they run in
    parallel on Dask (:mod:`abscopal.parallel`), each worker process building its own problem once from the
    problem's settings (targets, model, patients, seed, base values: the same common random numbers), with the
    machine's cores shared out among local workers. The points of a side stay in order (each re-fit starts from
    its neighbour), so the result is identical to the serial run, bit for bit (tested).

    This is a self-written grid profile rather than ``lmfit.conf_interval``: that needs standard errors (it
    raises ``MinimizerException`` without them, i.e. exactly for the poorly identified parameters one wants to
    see), only warns when a bound is reached, and returns no curve to plot; the grid profile returns the curve,
    reports open sides as data and costs about ``n_points`` small re-fits per parameter.

    Parameters
    ----------
    problem
        The calibrated :class:`~abscopal.calibrate.objective.CalibrationProblem` (anything with ``residuals``;
        with ``workers`` / ``scheduler`` another problem must pickle); checked against ``calibration.chisqr`` by one
        evaluation at the fitted values.
    calibration
        The fit (its ``params_json`` gives bounds and free parameters; ``stderr`` the grid scale).
    names
        Free parameters to profile (default: all).
    n_points
        Grid points including the optimum (odd, >= 3; default 11).
    span
        Half-width of the grid in standard errors (default 3, i.e. chi-square rises by about 9 at the ends for a
        quadratic profile).
    rel_span
        Half-width relative to ``|value|`` for a parameter without a standard error (default 0.5).
    max_extend
        Extra steps per side (doubling) before jumping to the bound (default 3).
    n_refine
        Bisections of a wide last step that crosses the 95% rise (default 6).
    workers, scheduler
        Run the sides on a local Dask cluster of ``workers`` processes, or on the Dask scheduler at ``scheduler``
        (``[tcp://]host:port``); default: in process.
    misfit_scale
        ``c`` above (>= 1); default: ``provenance["misfit"]["covariance_scale"]`` when its ``stderr_scaled`` is
        true, else 1 (the plain likelihood-ratio thresholds 1 and 3.84).
    **kwargs
        Options of the inner least-squares fits (defaults as in :func:`~abscopal.calibrate.fit.calibrate`).

    Returns
    -------
    dict
        ``{name: profile}`` in the format of :attr:`~abscopal.fitted.format.Fit.profiles`; each profile also has
        ``elapsed_s``, the time its two sides took (summed over where they ran), ``misfit_scale`` (``c``) and
        ``thresholds`` (``{"68": c, "95": 3.84 c}``, the rises its intervals are read at).

    Raises
    ------
    AbscopalError
        Before any simulation: a name that is not a free parameter, ``n_points`` < 3, non-positive spans, bad
        ``workers`` / ``scheduler`` (both given, fewer than 1 worker, not an address, a scheduler that does not
        answer). After one evaluation: ``problem`` does not reproduce the calibration's chi-square.
    """
    import time

    from ..parallel import check_parallel, task_runner, worker_threads

    params = calibration.parameters()
    free = [k for k, p in params.items() if p.vary]
    names = list(free if names is None else names)
    for given in names:
        if given not in free:
            raise AbscopalError(
                "names: "
                + unknown_name_message("free parameter", given, free)
                + "; only fitted (varying) parameters can be profiled"
            )
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 3:
        raise AbscopalError(f"n_points={n_points!r}: need an integer >= 3 (the optimum and a point on each side)")
    for arg, v in (("span", span), ("rel_span", rel_span)):
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise AbscopalError(f"{arg}={v!r}: give a positive finite number")
    for arg, v in (("max_extend", max_extend), ("n_refine", n_refine)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise AbscopalError(f"{arg}={v!r}: give an integer >= 0")
    check_parallel(workers, scheduler, workers_argument="workers", scheduler_argument="scheduler")
    scale = _misfit_scale(calibration.provenance, misfit_scale)
    levels = {"68": DELTA_CHISQR_68 * scale, "95": DELTA_CHISQR_95 * scale}
    parallel = workers is not None or scheduler is not None
    recipe = _problem_recipe(problem) if parallel else ("", None)
    opts = {"scale_covar": False} | dict(LEAST_SQUARES_OPTIONS) | kwargs
    n_side = (n_points - 1) // 2
    grids: list[_SideGrid] = []
    for name in names:
        p = params[name]
        x0, lo_b, hi_b = float(p.value), float(p.min), float(p.max)
        se = calibration.stderr.get(name)
        half = span * se if se is not None and se > 0 and math.isfinite(se) else rel_span * max(abs(x0), 1e-12)
        for sign, bound in ((-1, lo_b), (1, hi_b)):
            grids.append(
                _SideGrid(
                    name=name,
                    sign=sign,
                    x0=x0,
                    bound=bound,
                    lower=lo_b,
                    upper=hi_b,
                    h=half / n_side,
                    half=half,
                    n_side=n_side,
                    max_extend=max_extend,
                    n_refine=n_refine,
                    level_95=levels["95"],
                )
            )
    results: dict[tuple[str, int], tuple[list[Point], int, float]] = {}
    with task_runner(scheduler, workers, scheduler_argument="scheduler", workers_argument="workers") as run:
        chi0 = _chisqr(problem, params)  # connected first: a scheduler that does not answer fails before this
        if not math.isclose(chi0, calibration.chisqr, rel_tol=1e-6, abs_tol=1e-9):
            raise AbscopalError(
                f"problem: chi-square at the fitted values is {chi0:.6g}, not the calibration's "
                f"{calibration.chisqr:.6g}; pass the calibrated problem (Calibration.problem())"
            )

        def warm(g: _SideGrid) -> dict[str, float]:
            return {k: calibration.values[k] for k in free if k != g.name}

        if not parallel:
            for g in grids:
                t0 = time.perf_counter()
                pts, n = _profile_side(problem, params, g, chi0, warm(g), opts)
                results[(g.name, g.sign)] = (pts, n, time.perf_counter() - t0)
        else:
            tasks = [
                _SideTask(
                    problem_key=recipe[0],
                    problem=recipe[1],
                    calibration=calibration,
                    grid=g,
                    chi0=chi0,
                    warm=warm(g),
                    opts=opts,
                    threads=worker_threads(workers),
                )
                for g in grids
            ]
            keys = [f"abscopal-profile-{recipe[0][-12:]}-{g.name}-{'lower' if g.sign < 0 else 'upper'}" for g in grids]
            for task, result in run(_run_side_task, tasks, keys):
                results[(task.grid.name, task.grid.sign)] = result
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        sides = {sign: results[(name, sign)][0] for sign in (-1, 1)}
        p = params[name]
        pts = sides[-1][::-1] + sides[1][1:]
        xs = [x for x, _, _ in pts]
        chis = [c for _, c, _ in pts]
        finite = [c for c in chis if math.isfinite(c)]
        cmin = min([chi0, *finite])
        prof: dict[str, Any] = {
            "values": xs,
            "chisqr": chis,
            "others": {k: [o.get(k, math.nan) for _, _, o in pts] for k in free if k != name},
            "optimum": float(p.value),
            "chisqr_min": cmin,
            "stderr": calibration.stderr.get(name),
            "lower_bound": float(p.min),
            "upper_bound": float(p.max),
            "nfev": 1 + results[(name, -1)][1] + results[(name, 1)][1],
            "misfit_scale": scale,
            "thresholds": dict(levels),
        }
        for label, level in levels.items():
            ends, closed = [], []
            for sign in (-1, 1):
                sx = [x for x, _, _ in sides[sign]]
                sd = [c - cmin for _, c, _ in sides[sign]]
                e, c = _crossing(sx, sd, level)
                ends.append(e)
                closed.append(c)
            prof[f"interval_{label}"] = ends
            prof[f"closed_{label}"] = closed
        prof["closed"] = all(prof["closed_95"])
        prof["elapsed_s"] = round(results[(name, -1)][2] + results[(name, 1)][2], 3)
        out[name] = prof
    return out


# ---- posterior ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, kw_only=True)
class Posterior:
    """Posterior samples of the free parameters (flat prior inside the bounds).

    Attributes
    ----------
    names
        Free parameter names (columns of ``samples``).
    samples
        ``(n, len(names))`` read-only array of the burnt-in, thinned chain of all walkers.
    acceptance_fraction
        Mean acceptance fraction over walkers.
    autocorr_time
        Integrated autocorrelation time (steps) per parameter, or None where emcee finds the chain shorter than
        50 of them (its reliability criterion, so the estimate is not trusted).
    seed, n_walkers, n_steps, burn, thin
        The sampler settings.
    """

    names: tuple[str, ...]
    samples: np.ndarray
    acceptance_fraction: float
    autocorr_time: tuple[float, ...] | None
    seed: int
    n_walkers: int
    n_steps: int
    burn: int
    thin: int
    values: dict[str, float] = field(default_factory=dict)
    misfit_scale: float = 1.0

    def __post_init__(self) -> None:
        a = np.array(self.samples, dtype=float, copy=True)
        a.setflags(write=False)
        object.__setattr__(self, "samples", a)
        object.__setattr__(self, "names", tuple(self.names))

    def mean(self) -> dict[str, float]:
        """Posterior mean of each parameter."""
        return {n: float(m) for n, m in zip(self.names, self.samples.mean(axis=0), strict=True)}

    def quantiles(self, q: Sequence[float] = (0.025, 0.5, 0.975)) -> dict[str, list[float]]:
        """Quantiles ``q`` of each parameter."""
        qs = np.quantile(self.samples, q, axis=0)
        return {n: [float(v) for v in qs[:, i]] for i, n in enumerate(self.names)}

    def to_dict(self, max_rows: int = MAX_POSTERIOR_ROWS) -> dict[str, Any]:
        """The format of :attr:`~abscopal.fitted.format.Fit.posterior`: at most ``max_rows`` rows (evenly thinned
        further)."""
        stride = max(1, math.ceil(self.samples.shape[0] / max_rows))
        rows = self.samples[::stride][:max_rows]
        return {
            "names": list(self.names),
            "samples": rows.tolist(),
            "acceptance_fraction": float(self.acceptance_fraction),
            "autocorr_time": None if self.autocorr_time is None else [float(t) for t in self.autocorr_time],
            "seed": int(self.seed),
        }

    def options(self) -> dict[str, int | float]:
        """Sampler settings (stored as ``provenance["posterior_options"]`` by :func:`with_uncertainty`)."""
        return {
            "n_walkers": self.n_walkers,
            "n_steps": self.n_steps,
            "burn": self.burn,
            "thin": self.thin,
            "seed": self.seed,
            "n_samples": int(self.samples.shape[0]),
            "misfit_scale": float(self.misfit_scale),
        }


def posterior(
    problem: ResidualProblem,
    calibration_or_params: Fit | Any,
    *,
    n_walkers: int | None = None,
    n_steps: int = 200,
    burn: int | None = None,
    thin: int = 1,
    seed: int = 0,
    init_scale: float = 0.1,
    misfit_scale: float | None = None,
) -> Posterior:
    """Sample the posterior of the free parameters with emcee (``lmfit.Minimizer(...).emcee``).

    The log-likelihood is ``-chi-square / (2 c)`` of ``problem.residuals`` (``is_weighted=True``: the residuals are
    already divided by the targets' standard errors), the prior flat inside the parameter bounds (lmfit's). ``c`` is
    the fit's misfit factor when its standard errors carry it (as for the profiles: :func:`profile_likelihood`), so
    that the posterior is as wide as the scaled standard errors; 1 otherwise. The
    walkers start in a Gaussian ball around the fitted values (``init_scale x stderr``, or ``1e-3 x |value|``
    without one) drawn from ``numpy.random.default_rng(seed)`` and clipped into the bounds; the sampler's own
    random state is lmfit's ``seed``. A simulation failure inside the bounds counts as zero probability.

    Parameters
    ----------
    problem
        The :class:`~abscopal.calibrate.objective.CalibrationProblem` (anything with ``residuals``).
    calibration_or_params
        A :class:`~abscopal.fitted.format.Fit` (start at its values) or lmfit Parameters.
    n_walkers
        Walkers (default ``max(8, 2 x free + 2)``; emcee needs at least twice the number of free parameters).
    n_steps, burn, thin
        Steps per walker, steps discarded at the start (default ``n_steps // 4``), keep every ``thin``-th step.
        Cost: ``n_walkers x n_steps`` objective evaluations.
    seed
        Seed of the start ball and of the sampler.
    init_scale
        Size of the start ball in standard errors.
    misfit_scale
        ``c`` (>= 1); default: a Fit's ``provenance["misfit"]["covariance_scale"]`` when its ``stderr_scaled`` is
        true, else 1 (and 1 for lmfit Parameters).

    Returns
    -------
    Posterior

    Raises
    ------
    AbscopalError
        Before any simulation, for bad settings (naming the argument and value).
    """
    import emcee
    import lmfit

    params = (
        calibration_or_params.parameters() if isinstance(calibration_or_params, Fit) else calibration_or_params.copy()
    )
    stderr = (
        calibration_or_params.stderr
        if isinstance(calibration_or_params, Fit)
        else {k: p.stderr for k, p in params.items()}
    )
    free = [k for k, p in params.items() if p.vary]
    if not free:
        raise AbscopalError("calibration_or_params: no free parameter to sample")
    n_walkers = max(8, 2 * len(free) + 2) if n_walkers is None else n_walkers
    burn = n_steps // 4 if burn is None else burn
    for k, v, low in (
        ("n_walkers", n_walkers, 2 * len(free)),
        ("n_steps", n_steps, 1),
        ("thin", thin, 1),
        ("burn", burn, 0),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise AbscopalError(
                f"{k}={v!r}: need an integer >= {low}"
                + (" (emcee: at least twice the free parameters)" if k == "n_walkers" else "")
            )
    if burn >= n_steps:
        raise AbscopalError(f"burn={burn} discards all n_steps={n_steps}; use burn < n_steps")
    if not isinstance(seed, int | np.integer):
        raise AbscopalError(f"seed={seed!r}: give an integer seed")
    fit_provenance = calibration_or_params.provenance if isinstance(calibration_or_params, Fit) else {}
    misfit = _misfit_scale(fit_provenance, misfit_scale)
    root = math.sqrt(misfit)
    rng = np.random.default_rng(int(seed))
    pos = np.empty((n_walkers, len(free)))
    for j, k in enumerate(free):
        p, se = params[k], stderr.get(k)
        scale = init_scale * se if se is not None and math.isfinite(se) and se > 0 else 1e-3 * max(abs(p.value), 1e-12)
        lo = p.min if math.isfinite(p.min) else -math.inf
        hi = p.max if math.isfinite(p.max) else math.inf
        col = p.value + scale * rng.standard_normal(n_walkers)
        margin = 1e-9 * max(abs(p.value), 1e-12)
        pos[:, j] = np.clip(col, lo + margin, hi - margin)

    def residual(pars: Any) -> np.ndarray:
        try:
            r = np.asarray(problem.residuals(pars), dtype=float)
        except (AbscopalError, ArithmeticError):
            return np.full(1, _BAD_RESIDUAL)
        return r / root if np.all(np.isfinite(r)) else np.full(r.shape, _BAD_RESIDUAL)

    mini = lmfit.Minimizer(residual, params)
    mini.emcee(
        params=params,
        steps=n_steps,
        nwalkers=n_walkers,
        burn=burn,
        thin=thin,
        pos=pos,
        is_weighted=True,
        seed=int(seed),
        progress=False,
    )
    sampler = mini.sampler
    samples = sampler.get_chain(discard=burn, thin=thin, flat=True)
    try:
        tau = tuple(float(t) for t in sampler.get_autocorr_time(discard=burn, quiet=False))
    except emcee.autocorr.AutocorrError:
        tau = None
    values = {k: float(p.value) for k, p in params.items()}
    return Posterior(
        names=tuple(free),
        samples=samples,
        acceptance_fraction=float(np.mean(sampler.acceptance_fraction)),
        autocorr_time=tau,
        seed=int(seed),
        n_walkers=n_walkers,
        n_steps=n_steps,
        burn=burn,
        thin=thin,
        values=values,
        misfit_scale=misfit,
    )


def profile_thresholds(profile: Mapping[str, Any]) -> dict[str, float]:
    """``{"68": rise, "95": rise}`` at which a stored profile's intervals were read (1 and 3.84 for profiles
    made before the misfit scaling, which stored no ``thresholds``)."""
    stored = profile.get("thresholds")
    if isinstance(stored, Mapping) and {"68", "95"} <= set(stored):
        return {"68": float(stored["68"]), "95": float(stored["95"])}
    return {"68": DELTA_CHISQR_68, "95": DELTA_CHISQR_95}


# ---- identifiability ------------------------------------------------------------------------------------------------
def _g(x: float) -> str:
    return f"{x:.4g}"


def _profile_sentences(name: str, prof: Mapping[str, Any]) -> list[str]:
    out = []
    (lo, hi), (c_lo, c_hi) = prof["interval_95"], prof["closed_95"]
    bounds = (prof["lower_bound"], prof["upper_bound"])
    rise_95 = profile_thresholds(prof)["95"]
    thr = f"{rise_95:.3g}"

    def where(x: float, b: float, side: str) -> str:
        if x == b:
            return f"up to the {side} bound {_g(b)}"
        return f"up to {_g(x)}, where the profile ends (the {side} bound is {_g(b)})"

    if not c_lo and not c_hi:
        out.append(
            f"{name} is not identified by these targets: chi-square rises by less than {thr} over the "
            f"whole profile from {_g(lo)} to {_g(hi)}"
        )
    elif not c_hi:
        out.append(
            f"{name} is not identified from above by these targets: chi-square rises by less than {thr} "
            + where(hi, bounds[1], "upper")
        )
    elif not c_lo:
        out.append(
            f"{name} is not identified from below by these targets: chi-square rises by less than {thr} "
            + where(lo, bounds[0], "lower")
        )
    chis = [c for c in prof["chisqr"] if math.isfinite(c)]
    at_fit = prof["chisqr"][prof["values"].index(prof["optimum"])]
    if chis and (best := min(chis)) < prof["chisqr_min"] + 1e-12 and best < at_fit - 1e-3 * (1.0 + abs(best)):
        x = prof["values"][prof["chisqr"].index(best)]
        drop = at_fit - best
        out.append(
            f"The profile of {name} found a lower chi-square ({_g(best)}, {_g(drop)} below the fit's, "
            f"{drop / rise_95:.2g} of the 95% rise) at {name} = {_g(x)}: the fit is a local minimum; refit from "
            "there or with multistart"
        )
    if any(not math.isfinite(c) for c in prof["chisqr"]):
        out.append(f"The profile of {name} stopped where the simulation failed; its interval ends there")
    return out


def identifiability_report(calibration: Fit) -> list[str]:
    """Plain-English identifiability findings of a calibration (empty-handed fits give a positive sentence).

    Reported, in this order: fewer targets than free parameters; for each profiled parameter a 95% profile
    interval open on a side (Raue et al. 2009), a profile that found a lower chi-square than the fit, failed
    profile points; a singular or unavailable covariance (no standard errors); relative standard errors above
    :data:`REL_STDERR_LIMIT`; pairs with ``|correlation|`` above :data:`CORRELATION_LIMIT`; for a posterior an
    acceptance fraction outside :data:`ACCEPTANCE_RANGE` or a chain too short for an autocorrelation time.

    Parameters
    ----------
    calibration
        The fit (with :attr:`~abscopal.fitted.format.Fit.profiles` / ``posterior`` where computed).

    Returns
    -------
    list of str
        One sentence per finding; a single "no problem found" sentence if there is none.
    """
    free = list(calibration.provenance.get("free") or [k for k, v in calibration.stderr.items() if v is not None])
    out: list[str] = []
    n_targets = len(calibration.predictions)
    if n_targets < len(free):
        out.append(
            f"There are fewer targets ({n_targets}) than free parameters ({len(free)}): at least "
            f"{len(free) - n_targets} direction(s) of the parameters cannot be determined"
        )
    for name, prof in (calibration.profiles or {}).items():
        out += _profile_sentences(name, prof)
    missing = [k for k in free if calibration.stderr.get(k) is None]
    if missing:
        out.append(
            f"The covariance matrix is singular or unavailable, so {', '.join(missing)} "
            f"{'has' if len(missing) == 1 else 'have'} no standard error: some parameter or combination is "
            f"not determined locally by these targets (see the profiles)"
        )
    for k in free:
        se, v = calibration.stderr.get(k), calibration.values.get(k)
        if se is not None and v is not None and (v == 0 or se / abs(v) > REL_STDERR_LIMIT):
            rel = "an infinite" if v == 0 else f"a {se / abs(v):.0%}"
            out.append(
                f"{k} has {rel} relative standard error ({_g(v)} +/- {_g(se)}): the targets constrain it only weakly"
            )
    done = set()
    for a in free:
        for b, c in sorted(calibration.correlations.get(a, {}).items()):
            if b in done or b == a or abs(c) <= CORRELATION_LIMIT:
                continue
            kind = "product-like" if c < 0 else "ratio-like"
            out.append(
                f"{a} and {b} are nearly interchangeable (correlation {c:+.2f}): the targets fix their "
                f"{kind} combination, not each"
            )
        done.add(a)
    post = calibration.posterior
    if post is not None:
        acc = post["acceptance_fraction"]
        if not ACCEPTANCE_RANGE[0] <= acc <= ACCEPTANCE_RANGE[1]:
            out.append(
                f"The posterior sampler accepted {acc:.0%} of its proposals, outside the healthy "
                f"{ACCEPTANCE_RANGE[0]:.0%}-{ACCEPTANCE_RANGE[1]:.0%} (Foreman-Mackey et al. 2013); use "
                f"more walkers or steps"
            )
        if post.get("autocorr_time") is None:
            out.append(
                "The posterior chain is shorter than 50 autocorrelation times (emcee's criterion), so its "
                "autocorrelation time is not estimated; treat posterior intervals as rough and run longer"
            )
    if not out:
        out.append(
            f"No identifiability problem found for {', '.join(free)}"
            + (" (profiles closed inside the bounds," if calibration.profiles else " (")
            + f" relative standard errors <= {REL_STDERR_LIMIT:.0%}, |correlations| <= "
            f"{CORRELATION_LIMIT})"
        )
    return out


_FitT = TypeVar("_FitT", bound=Fit)


def with_uncertainty(
    calibration: _FitT,
    *,
    profiles: Mapping[str, Mapping[str, Any]] | None = None,
    posterior: Posterior | Mapping[str, Any] | None = None,
    timing: Mapping[str, Any] | None = None,
) -> _FitT:
    """A copy of ``calibration`` (same class) with ``profiles`` (merged into existing ones), ``posterior`` and a
    recomputed :attr:`~abscopal.fitted.format.Fit.identifiability`.

    Parameters
    ----------
    calibration
        The fit (unchanged; :func:`dataclasses.replace` makes the copy).
    profiles
        Output of :func:`profile_likelihood` (None: keep the existing ones).
    posterior
        A :class:`Posterior` (stored with :meth:`Posterior.to_dict`, settings in
        ``provenance["posterior_options"]``) or a dict in that format (None: keep the existing one).
    timing
        Added to ``provenance["timing"]`` (e.g. ``profiles_s``, the wall time of :func:`profile_likelihood`, and
        ``profile_workers`` / ``profile_scheduler``, where it ran).

    Returns
    -------
    Fit
        Of the class of ``calibration`` (a :class:`~abscopal.calibrate.fit.Calibration` stays one).
    """
    new_profiles = calibration.profiles
    if profiles is not None:
        new_profiles = {**(calibration.profiles or {}), **{k: dict(v) for k, v in profiles.items()}}
    prov = dict(calibration.provenance)
    if timing is not None:
        prov["timing"] = dict(prov.get("timing") or {}) | dict(timing)
    post = calibration.posterior
    if isinstance(posterior, Posterior):
        post = posterior.to_dict()
        prov["posterior_options"] = posterior.options()
    elif posterior is not None:
        missing = {"names", "samples", "acceptance_fraction", "autocorr_time", "seed"} - set(posterior)
        if missing:
            raise AbscopalError(f"posterior: the dict lacks {sorted(missing)}; pass a Posterior or Posterior.to_dict()")
        post = dict(posterior)
    new = replace(calibration, profiles=new_profiles, posterior=post, provenance=prov)
    return replace(new, identifiability=identifiability_report(new))
