"""Fitting a :class:`~abscopal.calibrate.objective.CalibrationProblem`: :func:`calibrate` and :class:`Calibration`.

:func:`calibrate` runs ``lmfit.minimize(problem.residuals, params)`` and returns a :class:`Calibration`: the
fitted typical values, standard errors and correlations, the fit statistics (chi-square, reduced chi-square, AIC,
BIC), the reported (plain, step-valued) prediction of every target next to its observed value, and the
provenance needed to rebuild the problem (package version, model name and hash, each trial's target hash and
file, seed, virtual patients per arm, base parameters, outcomes, HR surrogate).

A :class:`Calibration` is a :class:`~abscopal.fitted.format.Fit` (the fitted values and their file:
:meth:`~abscopal.fitted.format.Fit.save` writes JSON atomically and refuses to overwrite unless ``force``,
:meth:`~abscopal.fitted.format.Fit.load` restores it; format and safety in :mod:`abscopal.fitted.format`) that can
also rebuild its problem: :meth:`Calibration.predict` on the rebuilt problem (:meth:`Calibration.problem`)
reproduces the stored predictions (the objective is deterministic given the seed: bit for bit on the machine that
made the fit, to rounding, well within 1e-9 relative, on another machine).

Methods (``calibrate(..., method=..., multistart=...)``):

* ``least_squares`` (default): scipy's trust-region reflective least squares through lmfit, from the start
  values of ``params``. Standard errors and correlations come from the Jacobian at the optimum.
* ``multistart=K``: K least-squares fits from a Latin-hypercube sample of starts inside the bounds (log-uniform
  for a parameter whose bounds are both positive and span more than a factor 100), seeded by ``seed``; the fit
  with the smallest chi-square is kept and every start is recorded in ``provenance["multistart"]``.
* ``differential_evolution``: lmfit's global evolutionary minimiser (needs finite bounds on every varying
  parameter, checked before any simulation), seeded by ``seed``, then polished by one least-squares fit from its
  optimum so that standard errors are available.

Uncertainty (profile likelihood, posterior sampling, identifiability sentences) is added by
:mod:`abscopal.calibrate.uncertainty` into the optional fields :attr:`~abscopal.fitted.format.Fit.profiles`,
:attr:`~abscopal.fitted.format.Fit.posterior` and :attr:`~abscopal.fitted.format.Fit.identifiability`;
:mod:`abscopal.calibrate.report` renders a fit as an HTML or Markdown report. Both work on any
:class:`~abscopal.fitted.format.Fit` and do not import this module's :class:`Calibration`. The ``abscopal fit``
command is :mod:`abscopal.cli.fit`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..errors import AbscopalError
from ..fitted.format import Fit, params_json_of
from ..model.spec import ModelSpec
from ..provenance import environment
from ..trials import ComparisonTarget, TrialTargets
from .objective import CalibrationProblem, default_parameters

if TYPE_CHECKING:
    from ..model.compile import CompiledModel

__all__ = ["LEAST_SQUARES_OPTIONS", "METHODS", "Calibration", "calibrate", "misfit_statistics"]

METHODS = ("least_squares", "differential_evolution")
"""Methods of :func:`calibrate` (and of ``abscopal fit --method``)."""
_DEFAULT_KWARGS: Mapping[str, Mapping[str, Any]] = {
    "least_squares": {"diff_step": 1e-3, "xtol": 1e-6, "ftol": 1e-6},
    # scipy's default popsize 15 costs 15 x (free parameters) simulations per generation; 10 halves little accuracy
    # for 1-4 free parameters; polishing is done by our own least-squares step (stderr), not by L-BFGS-B.
    "differential_evolution": {"popsize": 10, "tol": 0.01, "polish": False},
}
LEAST_SQUARES_OPTIONS: Mapping[str, Any] = _DEFAULT_KWARGS["least_squares"]
"""Default options of every least-squares fit (also the re-fits of the profile likelihood)."""


def _target_file(stored: str) -> str:
    """A stored target path, or the file of the same name in the shipped ``fits/targets/`` when it is missing."""
    from ..fitted.shipped import default_fit_path

    if Path(stored).is_file():
        return stored
    shipped = default_fit_path().parent / "targets" / Path(stored).name
    return str(shipped) if shipped.is_file() else stored


def misfit_statistics(residuals: np.ndarray, weights: np.ndarray, n_free: int) -> dict[str, Any]:
    """Chi-square with the reported standard errors only, and the covariance scale it implies.

    Parameters
    ----------
    residuals
        The objective's residuals (plain residual x ``sqrt(weight)``).
    weights
        The confidence-tag weight of each residual (:attr:`CalibrationProblem.weights`).
    n_free
        Varying parameters (degrees of freedom ``len(residuals) - n_free``).

    Returns
    -------
    dict
        ``chisqr_weighted`` (what the fit minimised), ``chisqr_reported_se`` (the residuals divided back by
        ``sqrt(weight)``: each target's reported error alone), ``n_residuals``, ``n_free``, ``dof``,
        ``redchi_reported_se`` and ``covariance_scale = max(1, redchi_reported_se)`` (1 when ``dof <= 0``): the
        factor on the covariance (its square root on the standard errors) when the model misses its targets by
        more than their reported errors (the usual rescaling of a least-squares covariance by the reduced
        chi-square, applied only upwards: an error model that over-covers does not shrink the intervals).
    """
    r = np.asarray(residuals, dtype=float)
    w = np.asarray(weights, dtype=float)
    plain = r / np.sqrt(w)
    dof = int(r.size - n_free)
    chisqr_rep = float(np.sum(plain**2))
    redchi = chisqr_rep / dof if dof > 0 else math.nan
    return {
        "chisqr_weighted": float(np.sum(r**2)),
        "chisqr_reported_se": chisqr_rep,
        "n_residuals": int(r.size),
        "n_free": int(n_free),
        "dof": dof,
        "redchi_reported_se": redchi,
        "covariance_scale": max(1.0, redchi) if dof > 0 else 1.0,
    }


def _opt(x: Any) -> float | None:
    """A finite float, or None (stderr / correlation not available)."""
    return None if x is None or not math.isfinite(float(x)) else float(x)


@dataclass(frozen=True, kw_only=True)
class Calibration(Fit):
    """A :class:`~abscopal.fitted.format.Fit` made by :func:`calibrate`, which can rebuild its
    :class:`CalibrationProblem` (:meth:`problem`) and recompute its predictions (:meth:`predict`). Fields, file
    format and loading: :class:`~abscopal.fitted.format.Fit`; :meth:`~abscopal.fitted.format.Fit.load` on this
    class returns a Calibration."""

    def problem(
        self,
        targets: Mapping[str, TrialTargets] | Iterable[TrialTargets] | None = None,
        *,
        model: ModelSpec | CompiledModel | None = None,
    ) -> CalibrationProblem:
        """Rebuild the :class:`CalibrationProblem` with the stored settings.

        ``targets``: a :func:`~abscopal.trials.load_all` mapping or TrialTargets (default: reload the
        stored target files; a stored path that does not exist on this machine, e.g. the fit was made in another
        clone, is looked up by its file name in the shipped ``fits/targets/``); every stored trial must be present
        with the stored content hash, so a file found elsewhere is used only if its content is the same (raises
        :class:`~abscopal.errors.AbscopalError` naming the trial). ``model``: a ModelSpec or CompiledModel
        (default: the library model of the stored name and lesion count); its hash must match the stored one.
        """
        prov = self.provenance
        stored: Mapping[str, str] = prov["targets"]
        if targets is None:
            from ..trials import load_all

            paths = prov.get("target_paths", {})
            missing = [t for t in stored if not paths.get(t)]
            if missing:
                raise AbscopalError(f"no stored target file for trial(s) {missing}; pass the targets")
            targets = load_all([_target_file(paths[t]) for t in stored])
        given = dict(targets) if isinstance(targets, Mapping) else {t.id: t for t in targets}
        chosen = []
        for trial_id, h in stored.items():
            if trial_id not in given:
                raise AbscopalError(
                    f"trial {trial_id!r} of the calibration is missing from the targets given "
                    f"({sorted(given)}); pass its target file"
                )
            actual = given[trial_id].content_hash()
            if actual != h:
                raise AbscopalError(
                    f"trial {trial_id!r}: the targets changed since the calibration (content hash "
                    f"{actual[:12]}... != stored {h[:12]}...); refit or use the original file"
                )
            chosen.append(given[trial_id])
        if model is None:
            from ..model.library import model_from_provenance

            model = model_from_provenance(prov)
            if model is None:
                raise AbscopalError(f"model {prov['model_name']!r} is not a library model; pass model=")
        spec = model if isinstance(model, ModelSpec) else model.spec
        if spec.content_hash() != prov["model_hash"]:
            raise AbscopalError(
                f"model {spec.name!r} (hash {spec.content_hash()[:12]}...) is not the calibrated "
                f"model {prov['model_name']!r} (hash {prov['model_hash'][:12]}...); pass model="
            )
        return CalibrationProblem(
            targets=tuple(chosen),
            model=model,
            n_patients_per_arm=prov["n_patients_per_arm"],
            seed=prov["seed"],
            base_parameters=prov["base_parameters"],
            outcomes=tuple(prov["outcomes"]),
            smooth_hr=prov["smooth_hr"],
        )

    def predict(self, problem: CalibrationProblem | None = None) -> list[dict[str, Any]]:
        """Predictions at :attr:`values` in the format of :attr:`predictions` (``problem`` default:
        :meth:`problem` with the stored target files). Equal to :attr:`predictions` on the calibrated problem."""
        return _predictions(problem if problem is not None else self.problem(), self.values)


# ---- fitting --------------------------------------------------------------------------------------------------------
def _predictions(problem: CalibrationProblem, values: Mapping[str, float]) -> list[dict[str, Any]]:
    report, smooth, res = problem.evaluate(values)  # one simulation run for all three
    out = []
    for i, (trial, arm, name, target) in enumerate(problem._keys):
        observed = target.hr if isinstance(target, ComparisonTarget) else target.value  # hr_*: a comparison
        out.append(
            {
                "trial": trial,
                "arm": arm,
                "outcome": name,
                "observed": float(observed),
                "ci": [
                    None if target.ci_lower is None else float(target.ci_lower),
                    None if target.ci_upper is None else float(target.ci_upper),
                ],
                "predicted": float(report[(trial, arm, name)]),
                "smooth": float(smooth[(trial, arm, name)]),
                "residual": float(res[i]),
            }
        )
    return out


def _library_name(spec: ModelSpec) -> tuple[str | None, int | None]:
    """The library model name whose build with ``n_lesions`` (and, for ``nsclc``, a version) reproduces ``spec``,
    and that version (None, None otherwise; version None for a model without versions)."""
    from ..model.library import library_model

    found = library_model(spec)
    if found is None:
        return None, None
    return found[0], found[1].get("version")


def _check_method(params: Any, method: str, multistart: int | None) -> None:
    """Validate the method options against ``params`` (before any simulation)."""
    if method not in METHODS:
        raise AbscopalError(f"method={method!r} is not supported; choose one of {list(METHODS)}")
    varying = [(k, p) for k, p in params.items() if p.vary]
    if not varying:
        raise AbscopalError("params: no parameter varies; set vary=True on at least one (or use --free NAME)")
    constrained = {k: p.expr for k, p in params.items() if p.expr}
    if constrained:
        raise AbscopalError(
            f"params: constraint expressions {constrained} are not supported (a calibration file "
            "never evaluates expressions); fix those parameters or fit them freely"
        )
    if multistart is not None:
        if isinstance(multistart, bool) or not isinstance(multistart, int) or multistart < 1:
            raise AbscopalError(
                f"multistart={multistart!r}: give the number of least-squares starts, an integer "
                f">= 1 (or None for one fit from the start values)"
            )
        if method != "least_squares":
            raise AbscopalError(
                f"multistart={multistart} combines least-squares fits; it cannot be used with "
                f"method={method!r} (use method='least_squares')"
            )
    if method == "differential_evolution" or multistart is not None:
        what = "method='differential_evolution'" if multistart is None else f"multistart={multistart}"
        for k, p in varying:
            for side, b in (("lower", p.min), ("upper", p.max)):
                if not math.isfinite(b):
                    raise AbscopalError(
                        f"{what} draws values between the bounds, but parameter {k!r} has the "
                        f"infinite {side} bound {b}; give it a finite one, e.g. "
                        f"params[{k!r}].set({'min' if side == 'lower' else 'max'}=...)"
                    )


def _minimize(problem: CalibrationProblem, params: Any, method: str, opts: Mapping[str, Any]) -> Any:
    """One ``lmfit.minimize`` call; raises :class:`AbscopalError` on failure or non-finite residuals."""
    import lmfit

    try:
        fit = lmfit.minimize(problem.residuals, params, method=method, **opts)
    except AbscopalError:
        raise
    except (ValueError, ArithmeticError) as exc:
        raise AbscopalError(f"calibration with {method!r} failed: {type(exc).__name__}: {exc}") from exc
    if not fit.success or not all(math.isfinite(float(x)) for x in fit.residual):
        raise AbscopalError(
            f"calibration with {method!r} failed after {fit.nfev} evaluations: {fit.message} "
            f"(values {fit.params.valuesdict()}); try another start, method or free set"
        )
    return fit


def _starts(params: Any, k: int, seed: int) -> list[dict[str, float]]:
    """``k`` Latin-hypercube starts of the varying parameters within their (finite) bounds.

    A parameter whose bounds are both positive with ``upper / lower > 100`` is sampled log-uniformly (its scale is
    unknown over decades); the others uniformly. The sample is :class:`scipy.stats.qmc.LatinHypercube` seeded with
    ``seed`` (McKay, Beckman & Conover 1979, Technometrics 21:239).
    """
    import numpy as np
    from scipy.stats import qmc

    varying = [(n, p) for n, p in params.items() if p.vary]
    unit = qmc.LatinHypercube(d=len(varying), rng=np.random.default_rng(seed)).random(k)
    starts = []
    for row in unit:
        start = {}
        for u, (n, p) in zip(row, varying, strict=True):
            lo, hi = float(p.min), float(p.max)
            if lo > 0 and hi / lo > 100.0:
                start[n] = float(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
            else:
                start[n] = lo + float(u) * (hi - lo)
        starts.append(start)
    return starts


def _fit_timing(fit_s: float, n_patients_per_arm: int) -> dict[str, Any]:
    """``provenance["timing"]`` of a fit: its wall time, the virtual patients per arm and the compiled kernels'
    threads on how many cores (profiles add theirs: :func:`~abscopal.calibrate.uncertainty.with_uncertainty`)."""
    import os

    import numba

    return {
        "fit_s": round(fit_s, 3),
        "n_patients_per_arm": int(n_patients_per_arm),
        "threads": int(numba.get_num_threads()),
        "cpu_count": os.cpu_count(),
    }


def calibrate(
    problem: CalibrationProblem,
    params: Any = None,
    *,
    method: str = "least_squares",
    multistart: int | None = None,
    seed: int = 0,
    scale_stderr: bool = True,
    **kwargs: Any,
) -> Calibration:
    """Fit ``problem``: minimise the chi-square of ``problem.residuals`` over the varying ``params``.

    Parameters
    ----------
    problem
        The :class:`CalibrationProblem`.
    params
        lmfit Parameters (default :func:`default_parameters` of ``problem``): start values, bounds, vary flags.
    method
        ``"least_squares"`` (default; ``lmfit.minimize(problem.residuals, params, method="least_squares")``) or
        ``"differential_evolution"`` (global; every varying parameter needs finite bounds; followed by one
        least-squares polish from its optimum so that standard errors exist; expensive: about ``popsize x
        free parameters`` simulations per generation, ``popsize`` 10 by default).
    multistart
        None (one fit from the start values) or K: K least-squares fits from Latin-hypercube starts within the
        bounds (log-uniform over bounds that are positive and span more than a factor 100); the smallest
        chi-square wins; all starts are in ``provenance["multistart"]``. Needs finite bounds.
    seed
        Seed of the multistart sample and of differential evolution (recorded as ``provenance["fit_seed"]``).
    scale_stderr
        Multiply the standard errors by ``sqrt(max(1, reduced chi-square))``, the reduced chi-square computed with
        the reported standard errors only (no confidence-tag weights; :func:`misfit_statistics`), so that a fit that
        misses its targets by more than their errors carries wider intervals into studies (default True). The
        absolute standard errors, the factor and both chi-squares are in ``provenance["misfit"]``.
    **kwargs
        Passed to ``lmfit.minimize`` (for multistart: to every least-squares fit). For ``least_squares`` the
        defaults are ``diff_step=1e-3`` (relative finite-difference step; the smooth objective needs steps well
        above rounding) and ``xtol = ftol = 1e-6`` (scipy's 1e-8 made one synthetic fit crawl for 372
        evaluations instead of 18 near the truth; 1e-6 relative is far below any standard error).
        ``scale_covar`` defaults to False: the residuals are already divided by the targets' standard errors, so
        lmfit's covariance ``(J^T J)^-1`` is absolute; the misfit scaling is ``scale_stderr`` (on the reported-error
        chi-square, not lmfit's weighted one).

    Returns
    -------
    Calibration

    Raises
    ------
    AbscopalError
        Before any simulation: a problem with ``include_validate_only``, unknown method, bad ``multistart``, an
        infinite bound where values are drawn
        between bounds (naming the parameter). After: the minimiser fails or gives non-finite residuals (the
        message carries lmfit's); for multistart only if every start fails.
    """
    if problem.include_validate_only:
        raise AbscopalError(
            "problem: include_validate_only=True adds the validate-only targets (fit = false), whose patients other "
            "fitted targets already count; fit a CalibrationProblem built without it"
        )
    params = default_parameters(problem) if params is None else params.copy()
    _check_method(params, method, multistart)
    opts = {"scale_covar": False} | dict(_DEFAULT_KWARGS.get(method, {})) | kwargs
    ls_opts = {"scale_covar": False} | dict(_DEFAULT_KWARGS["least_squares"])  # polish after a global method
    extra: dict[str, Any] = {}
    t0 = time.perf_counter()
    if multistart is not None:
        runs: list[dict[str, Any]] = []
        best: tuple[int, Any] | None = None  # (start, lmfit result)
        nfev = 0
        for i, start in enumerate(_starts(params, multistart, seed)):
            trial = params.copy()
            for name, v in start.items():
                trial[name].set(value=v)
            try:
                fit = _minimize(problem, trial, method, opts)
            except AbscopalError as exc:
                runs.append(
                    {
                        "start": start,
                        "values": None,
                        "chisqr": None,
                        "nfev": None,
                        "success": False,
                        "message": str(exc),
                    }
                )
                continue
            nfev += int(fit.nfev)
            runs.append(
                {
                    "start": start,
                    "values": {k: float(v) for k, v in fit.params.valuesdict().items()},
                    "chisqr": float(fit.chisqr),
                    "nfev": int(fit.nfev),
                    "success": True,
                    "message": str(fit.message),
                }
            )
            if best is None or fit.chisqr < best[1].chisqr:
                best = (i, fit)
        if best is None:
            raise AbscopalError(
                f"calibration with multistart={multistart} failed: every start failed; first "
                f"error: {runs[0]['message']}"
            )
        fit = best[1]
        fit.nfev = nfev
        extra["multistart"] = runs
        extra["multistart_best"] = best[0]
    elif method == "differential_evolution":
        glob = _minimize(problem, params, method, opts | {"seed": int(seed)})
        fit = _minimize(problem, glob.params, "least_squares", ls_opts)
        extra["differential_evolution"] = {
            "values": {k: float(v) for k, v in glob.params.valuesdict().items()},
            "chisqr": float(glob.chisqr),
            "nfev": int(glob.nfev),
        }
        fit.nfev = int(fit.nfev) + int(glob.nfev)
    else:
        fit = _minimize(problem, params, method, opts)
    values = {k: float(v) for k, v in fit.params.valuesdict().items()}
    free = [k for k, p in fit.params.items() if p.vary]
    preds = _predictions(problem, values)  # one residual per key, in order: the misfit needs no second evaluation
    misfit = misfit_statistics(np.array([p["residual"] for p in preds]), problem.weights, len(free))
    factor = math.sqrt(misfit["covariance_scale"]) if scale_stderr else 1.0
    stderr_absolute = {k: (_opt(p.stderr) if p.vary else None) for k, p in fit.params.items()}
    stderr = {k: (None if se is None else se * factor) for k, se in stderr_absolute.items()}
    misfit |= {"stderr_scaled": bool(scale_stderr), "stderr_absolute": stderr_absolute}
    correl = {
        k: {o: float(c) for o, c in (p.correl or {}).items() if math.isfinite(c)}
        for k, p in fit.params.items()
        if p.vary and p.correl
    }
    spec = problem._spec
    library_name, model_version = _library_name(spec)
    elapsed = time.perf_counter() - t0
    provenance = {
        "version": __version__,
        "environment": environment(),
        "model_name": spec.name,
        "model_name_library": library_name,
        "model_version": model_version,
        "model_hash": spec.content_hash(),
        "n_lesions": spec.n_lesions,
        "targets": {t.id: t.content_hash() for t in problem.targets},
        "target_paths": {t.id: t.path for t in problem.targets},
        "target_sources": {
            t.id: {"title": t.title, "citation": t.citation, "doi": t.doi, "url": t.url} for t in problem.targets
        },
        "seed": int(problem.seed),
        "n_patients_per_arm": int(problem.n_patients_per_arm),
        "base_parameters": {k: float(v) for k, v in problem.base_parameters.items()},
        "outcomes": list(problem._outcomes),
        "smooth_hr": bool(problem.smooth_hr),
        "free": free,
        "misfit": misfit,
        "fit_options": {k: v for k, v in opts.items() if isinstance(v, str | int | float | bool | None)},
        "fit_seed": int(seed),
        **({"pneumonitis_exposure": problem.toxicity_exposure} if problem.toxicity_exposure else {}),
        **extra,
        "elapsed_s": round(elapsed, 3),
        "timing": _fit_timing(elapsed, problem.n_patients_per_arm),
    }
    return Calibration(
        values=values,
        stderr=stderr,
        correlations=correl,
        chisqr=float(fit.chisqr),
        redchi=float(fit.redchi),
        aic=float(fit.aic),
        bic=float(fit.bic),
        nfev=int(fit.nfev),
        method=method,
        predictions=preds,
        params_json=params_json_of(fit.params),
        provenance=provenance,
    )
