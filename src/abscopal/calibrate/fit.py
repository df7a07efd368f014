"""Fitting a :class:`~abscopal.calibrate.objective.CalibrationProblem` and storing the result.

:func:`calibrate` runs ``lmfit.minimize(problem.residuals, params)`` and returns a :class:`Calibration`: the
fitted typical values, standard errors and correlations, the fit statistics (chi-square, reduced chi-square, AIC,
BIC), the reported (plain, step-valued) prediction of every target next to its observed value, and the
provenance needed to rebuild the problem (package version, model name and hash, each trial's target hash and
file, seed, virtual patients per arm, base parameters, outcomes, HR surrogate).

:meth:`Calibration.save` writes JSON atomically and refuses to overwrite unless ``force``;
:meth:`Calibration.load` restores it, and :meth:`Calibration.predict` on the rebuilt problem
(:meth:`Calibration.problem`) reproduces the stored predictions exactly (the objective is deterministic given the
seed). Non-finite floats are stored as the strings ``"inf"``, ``"-inf"``, ``"nan"`` so the file is strict JSON.

Command line (registered by :func:`add_fit_command`)::

    abscopal fit fits/targets/*.toml --out fits/NAME.json [--patients N] [--seed S] [--force] [--free NAME ...]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import AbscopalError
from ..io import write_atomic
from .objective import DEFAULT_FREE, CalibrationProblem, default_parameters
from .targets import TrialTargets

__all__ = ["FORMAT", "Calibration", "add_fit_command", "calibrate"]

FORMAT = "abscopal-calibration-v1"
"""Value of the ``format`` key of a calibration file."""
_DEFAULT_KWARGS: Mapping[str, Mapping[str, Any]] = {"least_squares": {"diff_step": 1e-3, "xtol": 1e-6, "ftol": 1e-6}}


# ---- JSON helpers ---------------------------------------------------------------------------------------------------
def _enc(x: float | None) -> float | str | None:
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _dec(x: Any) -> float | None:
    return None if x is None else float(x)  # float("inf") / float("nan") parse the strings back


def _opt(x: Any) -> float | None:
    """A finite float, or None (stderr / correlation not available)."""
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _key_str(key: tuple[str, str, str]) -> str:
    return "/".join(key)


# ---- the calibration ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Calibration:
    """A fitted calibration (see the module docstring).

    Attributes
    ----------
    values
        Fitted (and fixed) typical values of the lmfit parameters, ``{name: value}``.
    stderr
        Standard error of each parameter (None where the covariance is unavailable, or for fixed parameters).
    correlations
        ``{name: {other: correlation}}`` between varying parameters (empty without a covariance).
    chisqr, redchi, aic, bic, nfev, method
        lmfit's fit statistics, the number of objective evaluations and the minimiser.
    predictions
        One dict per residual: ``trial``, ``arm``, ``outcome``, ``observed``, ``ci`` (``[lower, upper]``, None
        entries where not reported), ``predicted`` (plain reported value of
        :meth:`CalibrationProblem.predict_report`: ORR, KM median in months, Cox HR), ``smooth`` (the smooth
        prediction the residual compares) and ``residual`` (weighted residual at ``values``).
    params_json
        lmfit ``Parameters.dumps()`` of the fitted parameters (bounds, vary flags, stderr).
    provenance
        ``version``, ``model_name``, ``model_hash``, ``n_lesions``, ``targets`` (``{trial: hash}``),
        ``target_paths``, ``seed``, ``n_patients_per_arm``, ``base_parameters``, ``outcomes``, ``smooth_hr``,
        ``free``, ``fit_options``, ``elapsed_s``.
    """

    values: dict[str, float]
    stderr: dict[str, float | None]
    correlations: dict[str, dict[str, float]]
    chisqr: float
    redchi: float
    aic: float
    bic: float
    nfev: int
    method: str
    predictions: list[dict[str, Any]]
    params_json: str
    provenance: dict[str, Any] = field(default_factory=dict)

    # ---- persistence ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain, strict-JSON-ready content (non-finite floats as strings)."""
        d = asdict(self)
        for k in ("chisqr", "redchi", "aic", "bic"):
            d[k] = _enc(d[k])
        d["values"] = {k: _enc(v) for k, v in self.values.items()}
        d["stderr"] = {k: _enc(v) for k, v in self.stderr.items()}
        d["predictions"] = [{**p, "observed": _enc(p["observed"]), "ci": [_enc(c) for c in p["ci"]],
                             "predicted": _enc(p["predicted"]), "smooth": _enc(p["smooth"]),
                             "residual": _enc(p["residual"])} for p in self.predictions]
        return {"format": FORMAT, **d}

    def to_json(self) -> str:
        """The calibration as (strict) JSON text."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write :meth:`to_json` to ``path`` atomically; raises :class:`~abscopal.io.OutputExistsError` if ``path``
        exists and ``force`` is false."""
        text = self.to_json()
        return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        if d.get("format") != FORMAT:
            raise AbscopalError(f"not a calibration file: format is {d.get('format')!r}, expected {FORMAT!r}")
        preds = [{**p, "observed": _dec(p["observed"]), "ci": [_dec(c) for c in p["ci"]],
                  "predicted": _dec(p["predicted"]), "smooth": _dec(p["smooth"]), "residual": _dec(p["residual"])}
                 for p in d["predictions"]]
        return cls(values={k: float(v) for k, v in d["values"].items()},
                   stderr={k: _dec(v) for k, v in d["stderr"].items()},
                   correlations={k: {o: float(c) for o, c in v.items()} for k, v in d["correlations"].items()},
                   chisqr=float(d["chisqr"]), redchi=float(d["redchi"]), aic=float(d["aic"]), bic=float(d["bic"]),
                   nfev=int(d["nfev"]), method=str(d["method"]), predictions=preds, params_json=d["params_json"],
                   provenance=dict(d["provenance"]))

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise AbscopalError(f"calibration file {str(path)!r} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise AbscopalError(f"{path}: not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise AbscopalError(f"{path}: not a valid calibration file ({type(exc).__name__}: {exc})") from None

    # ---- reuse --------------------------------------------------------------------------------------------------
    def parameters(self) -> Any:
        """The fitted lmfit ``Parameters`` (from :attr:`params_json`)."""
        import lmfit

        return lmfit.Parameters().loads(self.params_json)

    def problem(self, targets: Mapping[str, TrialTargets] | Iterable[TrialTargets] | None = None, *,
                model: Any = None) -> CalibrationProblem:
        """Rebuild the :class:`CalibrationProblem` with the stored settings.

        ``targets``: a :func:`~abscopal.calibrate.targets.load_all` mapping or TrialTargets (default: reload the
        stored target files); every stored trial must be present with the stored content hash (raises
        :class:`~abscopal.errors.AbscopalError` naming the trial). ``model``: a ModelSpec or CompiledModel
        (default: the library model of the stored name and lesion count); its hash must match the stored one.
        """
        prov = self.provenance
        stored: Mapping[str, str] = prov["targets"]
        if targets is None:
            from .targets import load_all

            paths = prov.get("target_paths", {})
            missing = [t for t in stored if not paths.get(t)]
            if missing:
                raise AbscopalError(f"no stored target file for trial(s) {missing}; pass the targets")
            targets = load_all([paths[t] for t in stored])
        given = dict(targets) if isinstance(targets, Mapping) else {t.id: t for t in targets}
        chosen = []
        for trial_id, h in stored.items():
            if trial_id not in given:
                raise AbscopalError(f"trial {trial_id!r} of the calibration is missing from the targets given "
                                    f"({sorted(given)}); pass its target file")
            actual = given[trial_id].content_hash()
            if actual != h:
                raise AbscopalError(f"trial {trial_id!r}: the targets changed since the calibration (content hash "
                                    f"{actual[:12]}... != stored {h[:12]}...); refit or use the original file")
            chosen.append(given[trial_id])
        if model is None:
            from ..model.library import get_model

            model = get_model(prov["model_name_library"], n_lesions=prov["n_lesions"]) \
                if prov.get("model_name_library") else None
            if model is None:
                raise AbscopalError(f"model {prov['model_name']!r} is not a library model; pass model=")
        spec = getattr(model, "spec", model)
        if spec.content_hash() != prov["model_hash"]:
            raise AbscopalError(f"model {spec.name!r} (hash {spec.content_hash()[:12]}...) is not the calibrated "
                                f"model {prov['model_name']!r} (hash {prov['model_hash'][:12]}...); pass model=")
        return CalibrationProblem(targets=tuple(chosen), model=model, n_patients_per_arm=prov["n_patients_per_arm"],
                                  seed=prov["seed"], base_parameters=prov["base_parameters"],
                                  outcomes=tuple(prov["outcomes"]), smooth_hr=prov["smooth_hr"])

    def predict(self, problem: CalibrationProblem | None = None) -> list[dict[str, Any]]:
        """Predictions at :attr:`values` in the format of :attr:`predictions` (``problem`` default:
        :meth:`problem` with the stored target files). Equal to :attr:`predictions` on the calibrated problem."""
        return _predictions(problem if problem is not None else self.problem(), self.values)

    def summary_table(self) -> str:
        """Plain-text report: parameters, statistics, predicted vs observed."""
        lines = [f"calibration ({self.method}, {self.nfev} evaluations; abscopal {self.provenance.get('version')}, "
                 f"model {self.provenance.get('model_name')}, {self.provenance.get('n_patients_per_arm')} patients "
                 f"per arm, seed {self.provenance.get('seed')})",
                 f"chi-square {self.chisqr:.4g}  reduced {self.redchi:.4g}  AIC {self.aic:.4g}  BIC {self.bic:.4g}",
                 "", f"{'parameter':<28}{'value':>12}{'stderr':>12}{'rel':>8}"]
        for name, v in self.values.items():
            se = self.stderr.get(name)
            rel = f"{se / abs(v):8.1%}" if se is not None and v != 0 else f"{'-':>8}"
            lines.append(f"{name:<28}{v:>12.5g}{(f'{se:.3g}' if se is not None else '-'):>12}{rel}")
        pairs = [(a, b, c) for a, row in self.correlations.items() for b, c in row.items() if a < b]
        if pairs:
            lines += ["", "correlations: " + ", ".join(f"{a}~{b} {c:+.2f}" for a, b, c in pairs)]
        lines += ["", f"{'trial':<18}{'arm':<26}{'outcome':<18}{'observed':>10}{'95% CI':>18}{'predicted':>11}"
                      f"{'residual':>10}"]
        for p in self.predictions:
            lo, hi = p["ci"]
            ci = f"{lo:.3g}-{hi:.3g}" if lo is not None and hi is not None else "-"
            lines.append(f"{p['trial']:<18}{p['arm']:<26}{p['outcome']:<18}{p['observed']:>10.3g}{ci:>18}"
                         f"{p['predicted']:>11.3g}{p['residual']:>10.3g}")
        return "\n".join(lines)


# ---- fitting --------------------------------------------------------------------------------------------------------
def _predictions(problem: CalibrationProblem, values: Mapping[str, float]) -> list[dict[str, Any]]:
    report, smooth, res = problem.evaluate(values)  # one simulation run for all three
    out = []
    for i, (trial, arm, name, target) in enumerate(problem._keys):
        observed = target.hr if name.startswith("hr_") else target.value
        out.append({"trial": trial, "arm": arm, "outcome": name, "observed": float(observed),
                    "ci": [None if target.ci_lower is None else float(target.ci_lower),
                           None if target.ci_upper is None else float(target.ci_upper)],
                    "predicted": float(report[(trial, arm, name)]), "smooth": float(smooth[(trial, arm, name)]),
                    "residual": float(res[i])})
    return out


def _library_name(spec: Any) -> str | None:
    """The library model name whose default build with ``n_lesions`` reproduces ``spec`` (None otherwise)."""
    from ..model.library import MODELS, get_model

    for name in MODELS:
        try:
            if get_model(name, n_lesions=spec.n_lesions).content_hash() == spec.content_hash():
                return name
        except AbscopalError:
            continue
    return None


def calibrate(problem: CalibrationProblem, params: Any = None, *, method: str = "least_squares",
              **kwargs: Any) -> Calibration:
    """Fit ``problem`` with ``lmfit.minimize(problem.residuals, params, method=method, **kwargs)``.

    ``params``: lmfit Parameters (default :func:`default_parameters` of ``problem``). For ``least_squares`` the
    defaults are ``diff_step=1e-3`` (relative finite-difference step; the smooth objective needs steps well above
    rounding) and ``xtol = ftol = 1e-6`` (scipy's 1e-8 made one synthetic fit crawl for 372 evaluations instead
    of 18 near the truth; 1e-6 relative is far below any standard error). ``scale_covar`` defaults to False: the
    residuals are already divided by the targets' standard errors, so the covariance ``(J^T J)^-1`` is absolute
    and is not rescaled by the reduced chi-square. Raises :class:`~abscopal.errors.AbscopalError` if the
    minimiser fails or gives non-finite residuals (the message carries lmfit's).
    """
    import lmfit

    params = default_parameters(problem) if params is None else params.copy()
    opts = {"scale_covar": False} | dict(_DEFAULT_KWARGS.get(method, {})) | kwargs
    t0 = time.perf_counter()
    try:
        fit = lmfit.minimize(problem.residuals, params, method=method, **opts)
    except AbscopalError:
        raise
    except (ValueError, ArithmeticError) as exc:
        raise AbscopalError(f"calibration with {method!r} failed: {type(exc).__name__}: {exc}") from exc
    if not fit.success or not all(math.isfinite(float(x)) for x in fit.residual):
        raise AbscopalError(f"calibration with {method!r} failed after {fit.nfev} evaluations: {fit.message} "
                            f"(values {fit.params.valuesdict()}); try another start, method or free set")
    values = {k: float(v) for k, v in fit.params.valuesdict().items()}
    stderr = {k: (_opt(p.stderr) if p.vary else None) for k, p in fit.params.items()}
    correl = {k: {o: float(c) for o, c in (p.correl or {}).items() if math.isfinite(c)}
              for k, p in fit.params.items() if p.vary and p.correl}
    preds = _predictions(problem, values)
    spec = problem._spec
    provenance = {
        "version": __version__,
        "model_name": spec.name,
        "model_name_library": _library_name(spec),
        "model_hash": spec.content_hash(),
        "n_lesions": spec.n_lesions,
        "targets": {t.id: t.content_hash() for t in problem.targets},
        "target_paths": {t.id: t.path for t in problem.targets},
        "seed": int(problem.seed),
        "n_patients_per_arm": int(problem.n_patients_per_arm),
        "base_parameters": {k: float(v) for k, v in problem.base_parameters.items()},
        "outcomes": list(problem.outcomes),
        "smooth_hr": bool(problem.smooth_hr),
        "free": [k for k, p in fit.params.items() if p.vary],
        "fit_options": {k: v for k, v in opts.items() if isinstance(v, str | int | float | bool | None)},
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    return Calibration(values=values, stderr=stderr, correlations=correl, chisqr=float(fit.chisqr),
                       redchi=float(fit.redchi), aic=float(fit.aic), bic=float(fit.bic), nfev=int(fit.nfev),
                       method=method, predictions=preds, params_json=fit.params.dumps(), provenance=provenance)


# ---- command line ---------------------------------------------------------------------------------------------------
def _target_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.glob("*.toml")) if p.is_dir() else [p]
    return files


def _cmd_fit(args: argparse.Namespace) -> int:
    from .targets import load_all

    out = Path(args.out)
    if out.exists() and not args.force:  # fail before any work
        raise AbscopalError(f"{str(out)!r} exists; choose another --out or pass --force")
    targets = load_all(_target_files(args.targets))
    problem = CalibrationProblem(targets=tuple(targets.values()), n_patients_per_arm=args.patients, seed=args.seed)
    params = default_parameters(problem, names=tuple(args.free))
    t0 = time.perf_counter()
    cal = calibrate(problem, params, method=args.method)
    cal.save(out, force=args.force)
    print(cal.summary_table())
    print(f"\nfitted {len(args.free)} parameter(s) to {len(problem.keys)} target(s) in "
          f"{time.perf_counter() - t0:.1f} s -> {out}")
    return 0


def add_fit_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``fit TARGETS... --out OUT.json [--patients N] [--seed S] [--force] [--free NAME ...] [--method M]`` to
    the ``subparsers`` of the ``abscopal`` parser (handler in ``func``); returns the subparser."""
    f = subparsers.add_parser("fit", help="calibrate typical parameter values to trial targets (JSON result)")
    f.add_argument("targets", nargs="+", help="target TOML files or directories (format: docs/targets.md)")
    f.add_argument("--out", required=True, help="output calibration JSON file")
    f.add_argument("--patients", type=int, default=200, help="virtual patients per arm (default 200)")
    f.add_argument("--seed", type=int, default=0, help="master seed of the virtual patients (default 0)")
    f.add_argument("--free", nargs="+", default=list(DEFAULT_FREE), metavar="NAME",
                   help=f"typical values to fit (default: {' '.join(DEFAULT_FREE)})")
    f.add_argument("--method", default="least_squares", help="lmfit minimiser (default least_squares)")
    f.add_argument("--force", action="store_true", help="overwrite --out")
    f.set_defaults(func=_cmd_fit)
    return f
