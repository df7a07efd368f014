"""Fitting a :class:`~abscopal.calibrate.objective.CalibrationProblem` and storing the result.

:func:`calibrate` runs ``lmfit.minimize(problem.residuals, params)`` and returns a :class:`Calibration`: the
fitted typical values, standard errors and correlations, the fit statistics (chi-square, reduced chi-square, AIC,
BIC), the reported (plain, step-valued) prediction of every target next to its observed value, and the
provenance needed to rebuild the problem (package version, model name and hash, each trial's target hash and
file, seed, virtual patients per arm, base parameters, outcomes, HR surrogate).

:meth:`Calibration.save` writes JSON atomically and refuses to overwrite unless ``force``;
:meth:`Calibration.load` restores it, and :meth:`Calibration.predict` on the rebuilt problem
(:meth:`Calibration.problem`) reproduces the stored predictions (the objective is deterministic given the seed:
bit for bit on the machine that made the fit, to rounding, well within 1e-9 relative, on another machine).
Non-finite floats are stored as the strings ``"inf"``, ``"-inf"``, ``"nan"`` so the file is strict JSON.

A calibration file may come from someone else, so reading one never runs code: every field is plain JSON, read
with :func:`json.loads` and type-checked. The fitted parameters are plain records (name, value, vary, min, max,
stderr, correl); :meth:`Calibration.parameters` builds ``lmfit.Parameters`` from them with ``Parameters.add`` and
never calls ``Parameters.loads`` (whose decoder unpickles "Callable" entries with dill). Files of the older format
``abscopal-calibration-v1`` (whose ``params_json`` is lmfit's ``Parameters.dumps()`` text) still load: only the
plain fields of each parameter are read; lmfit's ``unique_symbols`` and ``user_data`` are ignored, never decoded.

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
:mod:`abscopal.calibrate.uncertainty` into the optional fields :attr:`Calibration.profiles`,
:attr:`Calibration.posterior` and :attr:`Calibration.identifiability`; :mod:`abscopal.calibrate.report` renders
a calibration as an HTML or Markdown report.

Command line (registered by :func:`add_fit_command`)::

    abscopal fit fits/targets/*.toml --out fits/NAME.json [--patients N] [--seed S] [--force] [--free NAME ...]
        [--method {least_squares,differential_evolution}] [--multistart K] [--start-seed S]
        [--profile [NAME ...]] [--posterior [--walkers N] [--steps N] [--burn N] [--thin N]]
        [--report REPORT.html|REPORT.md]
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
from ..io import JsonArtefact
from ..provenance import environment
from .objective import DEFAULT_FREE, CalibrationProblem, default_parameters
from .targets import TrialTargets

__all__ = ["FORMAT", "METHODS", "Calibration", "add_fit_command", "calibrate"]

FORMAT = "abscopal-calibration-v2"
"""Value of the ``format`` key of a calibration file (written; ``abscopal-calibration-v1`` files are read too)."""
_OLD_FORMATS = ("abscopal-calibration-v1",)
METHODS = ("least_squares", "differential_evolution")
"""Methods of :func:`calibrate` (and of ``abscopal fit --method``)."""
_DEFAULT_KWARGS: Mapping[str, Mapping[str, Any]] = {
    "least_squares": {"diff_step": 1e-3, "xtol": 1e-6, "ftol": 1e-6},
    # scipy's default popsize 15 costs 15 x (free parameters) simulations per generation; 10 halves little accuracy
    # for 1-4 free parameters; polishing is done by our own least-squares step (stderr), not by L-BFGS-B.
    "differential_evolution": {"popsize": 10, "tol": 0.01, "polish": False},
}


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


def _enc_tree(x: Any) -> Any:
    """Plain JSON-ready copy of nested dicts/lists: numpy scalars to Python, non-finite floats to strings."""
    if isinstance(x, Mapping):
        return {str(k): _enc_tree(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_enc_tree(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if hasattr(x, "tolist"):  # numpy array or scalar
        return _enc_tree(x.tolist())
    if isinstance(x, int):
        return int(x)
    return _enc(x)


_NONFINITE = {"inf", "-inf", "nan"}


def _dec_tree(x: Any) -> Any:
    """Inverse of :func:`_enc_tree` (the strings ``"inf"``, ``"-inf"``, ``"nan"`` become floats)."""
    if isinstance(x, Mapping):
        return {k: _dec_tree(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_dec_tree(v) for v in x]
    if isinstance(x, str) and x in _NONFINITE:
        return float(x)
    return x


# ---- fitted parameters as plain records -----------------------------------------------------------------------------
_RECORD_KEYS = ("name", "value", "vary", "min", "max", "stderr", "expr", "correl")
_LMFIT_FIELDS = ("name", "value", "vary", "expr", "min", "max", "brute_step", "stderr", "correl")  # __getstate__


def _number(x: Any, what: str, *, optional: bool = False) -> float | None:
    """A float from a JSON number or ``"inf"``/``"-inf"``/``"nan"`` (``optional``: None allowed)."""
    if x is None and optional:
        return None
    if isinstance(x, bool) or not (isinstance(x, int | float) or (isinstance(x, str) and x in _NONFINITE)):
        raise ValueError(f"{what} must be a number{' or null' if optional else ''}, got {x!r}")
    return float(x)


def _record(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check one plain parameter record (types only, nothing evaluated) and return its canonical form."""
    name = raw.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{where}: name must be a Python identifier, got {name!r}")
    where = f"{where} ({name})"
    vary = raw.get("vary", True)
    if not isinstance(vary, bool):
        raise ValueError(f"{where}: vary must be true or false, got {vary!r}")
    expr = raw.get("expr")
    if expr is not None and not isinstance(expr, str):
        raise ValueError(f"{where}: expr must be null or a string, got {expr!r}")
    correl = raw.get("correl")
    if correl is not None:
        if not isinstance(correl, Mapping) or not all(isinstance(k, str) for k in correl):
            raise ValueError(f"{where}: correl must be null or a table of numbers, got {correl!r}")
        correl = {k: _number(v, f"{where}: correl[{k!r}]") for k, v in correl.items()}
    lo = _number(raw.get("min", "-inf"), f"{where}: min", optional=True)
    hi = _number(raw.get("max", "inf"), f"{where}: max", optional=True)
    return {
        "name": name,
        "value": _number(raw.get("value"), f"{where}: value"),
        "vary": vary,
        "min": -math.inf if lo is None else lo,
        "max": math.inf if hi is None else hi,
        "stderr": _number(raw.get("stderr"), f"{where}: stderr", optional=True),
        "expr": expr,
        "correl": correl,
    }


def _records(params_json: Any) -> list[dict[str, Any]]:
    """The plain parameter records of ``params_json``: a list of records (this format), its JSON text, or the
    ``Parameters.dumps()`` text of an ``abscopal-calibration-v1`` file, of which only each parameter's plain
    fields are read (lmfit's ``unique_symbols`` and ``user_data`` may hold pickles: they are never decoded).
    Raises ValueError / TypeError on anything else."""
    data = json.loads(params_json) if isinstance(params_json, str) else params_json
    if isinstance(data, Mapping) and "params" in data:  # lmfit Parameters.dumps(): {"unique_symbols", "params"}
        rows = data["params"]
        if not isinstance(rows, list):
            raise ValueError(f"params_json: 'params' must be a list, got {type(rows).__name__}")
        data = []
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) < len(_LMFIT_FIELDS):
                raise ValueError(
                    f"params_json: params[{i}] must be lmfit's list of {len(_LMFIT_FIELDS)}+ fields, "
                    f"got {str(row)[:80]!r}"
                )
            data.append(dict(zip(_LMFIT_FIELDS, row, strict=False)))
    if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
        raise ValueError(f"params_json must be a list of parameter records, got {str(data)[:80]!r}")
    out = []
    for i, raw in enumerate(data):
        extra = set(raw) - set(_RECORD_KEYS) - {"brute_step"}
        if extra:
            raise ValueError(f"params_json[{i}]: unknown field(s) {sorted(extra)}; allowed: {list(_RECORD_KEYS)}")
        out.append(_record(raw, f"params_json[{i}]"))
    names = [r["name"] for r in out]
    if len(set(names)) != len(names):
        raise ValueError(f"params_json: duplicate parameter names {sorted({n for n in names if names.count(n) > 1})}")
    return out


def _records_of(params: Any) -> list[dict[str, Any]]:
    """Plain records of lmfit ``Parameters`` (what a calibration stores)."""
    return [
        {
            "name": k,
            "value": float(p.value),
            "vary": bool(p.vary),
            "min": float(p.min),
            "max": float(p.max),
            "stderr": None if p.stderr is None else float(p.stderr),
            "expr": p.expr,
            "correl": None if not p.correl else {o: float(c) for o, c in p.correl.items()},
        }
        for k, p in params.items()
    ]


def _records_json(records: list[dict[str, Any]]) -> str:
    """Canonical strict-JSON text of plain records (non-finite floats as strings)."""
    return json.dumps(_enc_tree(records), allow_nan=False)


# ---- the calibration ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Calibration(JsonArtefact):
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
        The fitted parameters as JSON text of plain records, one per parameter: ``name``, ``value``, ``vary``,
        ``min``, ``max``, ``stderr``, ``expr`` (plain text, never evaluated: :meth:`parameters` refuses it) and
        ``correl``. Stored in the file as that list (plain JSON). Given lmfit's ``Parameters.dumps()`` text (or a
        v1 file), only those plain fields are read, nothing is decoded; the text is normalised to the records.
    provenance
        ``version``, ``model_name``, ``model_hash``, ``n_lesions``, ``targets`` (``{trial: hash}``),
        ``target_paths``, ``seed``, ``n_patients_per_arm``, ``base_parameters``, ``outcomes``, ``smooth_hr``,
        ``free``, ``fit_options``, ``elapsed_s``, ``target_sources`` (``{trial: {title, citation, doi, url}}``),
        ``fit_seed`` and, after a multistart fit, ``multistart`` (every start: ``start``, ``values``, ``chisqr``,
        ``nfev``, ``success``, ``message``).
    profiles
        ``{name: profile}`` from :func:`~abscopal.calibrate.uncertainty.profile_likelihood`, or None: ``values``
        (grid, ascending), ``chisqr`` (re-minimised chi-square at each), ``others`` (re-fitted values of the other
        free parameters), ``optimum``, ``chisqr_min``, ``stderr``, ``lower_bound``, ``upper_bound``,
        ``interval_68`` / ``interval_95`` (``[lower, upper]`` where the chi-square rises by 1 / 3.84 above its
        minimum, or the farthest value explored when it does not), ``closed_68`` / ``closed_95`` (``[lower,
        upper]`` flags: the rise was reached inside the bounds on that side), ``closed`` (both 95% sides) and
        ``nfev``.
    posterior
        None, or ``{"names": [...], "samples": [[...], ...]`` (at most 2000 rows, one column per name),
        ``"acceptance_fraction": float, "autocorr_time": [...] or None, "seed": int}`` from
        :func:`~abscopal.calibrate.uncertainty.posterior`.
    identifiability
        Plain-words findings of :func:`~abscopal.calibrate.uncertainty.identifiability_report` (empty if not run).
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
    profiles: dict[str, dict[str, Any]] | None = None
    posterior: dict[str, Any] | None = None
    identifiability: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            records = _records(self.params_json)
        except (TypeError, ValueError, RecursionError) as exc:
            raise AbscopalError(
                f"params_json: not plain parameter records ({exc}); refit, or rewrite the fit with "
                "this version of abscopal"
            ) from None
        object.__setattr__(self, "params_json", _records_json(records))

    # ---- persistence ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain, strict-JSON-ready content (non-finite floats as strings)."""
        d = asdict(self)
        for k in ("chisqr", "redchi", "aic", "bic"):
            d[k] = _enc(d[k])
        d["values"] = {k: _enc(v) for k, v in self.values.items()}
        d["stderr"] = {k: _enc(v) for k, v in self.stderr.items()}
        d["predictions"] = [
            {
                **p,
                "observed": _enc(p["observed"]),
                "ci": [_enc(c) for c in p["ci"]],
                "predicted": _enc(p["predicted"]),
                "smooth": _enc(p["smooth"]),
                "residual": _enc(p["residual"]),
            }
            for p in self.predictions
        ]
        d["profiles"] = None if self.profiles is None else _enc_tree(self.profiles)
        d["posterior"] = None if self.posterior is None else _enc_tree(self.posterior)
        d["provenance"] = _enc_tree(self.provenance)
        d["params_json"] = json.loads(self.params_json)  # plain records, not a string
        return {"format": FORMAT, **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict` (also reads ``abscopal-calibration-v1`` content: see the module docstring)."""
        if not isinstance(d, Mapping):
            raise AbscopalError(f"not a calibration file: expected a JSON object, got a {type(d).__name__}")
        if d.get("format") not in (FORMAT, *_OLD_FORMATS):
            raise AbscopalError(f"not a calibration file: format is {d.get('format')!r}, expected {FORMAT!r}")
        for key, kind in (
            ("values", Mapping),
            ("stderr", Mapping),
            ("correlations", Mapping),
            ("predictions", list),
            ("provenance", Mapping),
        ):
            if not isinstance(d.get(key), kind):
                raise TypeError(
                    f"{key!r} must be a JSON {'object' if kind is Mapping else 'array'}, got {str(d.get(key))[:80]!r}"
                )
        for key, kind in (("profiles", Mapping), ("posterior", Mapping), ("identifiability", list)):
            if d.get(key) is not None and not isinstance(d[key], kind):
                raise TypeError(
                    f"{key!r} must be a JSON {'object' if kind is Mapping else 'array'} or null, got "
                    f"{str(d[key])[:80]!r}"
                )
        prov = d["provenance"]
        for key, kind in (
            ("model_hash", str),
            ("model_name", str),
            ("n_lesions", int),
            ("base_parameters", Mapping),
            ("targets", Mapping),
        ):
            if (
                key in prov
                and prov[key] is not None
                and (not isinstance(prov[key], kind) or prov[key] is True or prov[key] is False)
            ):
                raise TypeError(
                    f"provenance.{key} must be a JSON {kind.__name__ if kind is not Mapping else 'object'}"
                    f", got {str(prov[key])[:80]!r}"
                )
        for k, v in (prov.get("base_parameters") or {}).items():
            _number(v, f"provenance.base_parameters[{k!r}]")
        preds = [
            {
                **p,
                "observed": _dec(p["observed"]),
                "ci": [_dec(c) for c in p["ci"]],
                "predicted": _dec(p["predicted"]),
                "smooth": _dec(p["smooth"]),
                "residual": _dec(p["residual"]),
            }
            for p in d["predictions"]
        ]
        return cls(
            values={k: float(v) for k, v in d["values"].items()},
            stderr={k: _dec(v) for k, v in d["stderr"].items()},
            correlations={k: {o: float(c) for o, c in v.items()} for k, v in d["correlations"].items()},
            chisqr=float(d["chisqr"]),
            redchi=float(d["redchi"]),
            aic=float(d["aic"]),
            bic=float(d["bic"]),
            nfev=int(d["nfev"]),
            method=str(d["method"]),
            predictions=preds,
            params_json=d["params_json"],
            provenance=_dec_tree(dict(d["provenance"])),
            profiles=None if d.get("profiles") is None else _dec_tree(d["profiles"]),
            posterior=None if d.get("posterior") is None else _dec_tree(d["posterior"]),
            identifiability=[str(x) for x in d.get("identifiability") or []],
        )

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise AbscopalError(f"calibration file {str(path)!r} does not exist")
        fix = "give a calibration file written by 'abscopal fit' (or fit = 'none' for model defaults)"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise AbscopalError(f"calibration file {str(path)!r} is not UTF-8 text ({exc}); {fix}") from None
        except (json.JSONDecodeError, RecursionError) as exc:
            raise AbscopalError(f"calibration file {str(path)!r} is not valid JSON ({exc}); {fix}") from None
        try:
            return cls.from_dict(data)
        except (
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            IndexError,
            RecursionError,
            OverflowError,
            AbscopalError,
        ) as exc:
            what = str(exc) if isinstance(exc, AbscopalError) else f"{type(exc).__name__}: {exc}"
            raise AbscopalError(f"calibration file {str(path)!r} is not a valid calibration ({what}); {fix}") from None

    # ---- reuse --------------------------------------------------------------------------------------------------
    def all_values(self) -> dict[str, float]:
        """Every value the calibrated predictions used: the problem's ``base_parameters`` (fixed values the fit
        started from, ``provenance["base_parameters"]``) overridden by :attr:`values`. Use this, not
        :attr:`values` alone, to simulate with the calibration."""
        base = {k: float(v) for k, v in (self.provenance.get("base_parameters") or {}).items()}
        return base | {k: float(v) for k, v in self.values.items()}

    def check_model(self, model: Any, source: str | Path | None = None) -> None:
        """Raise :class:`AbscopalError` unless this calibration was made for ``model`` (a ModelSpec or
        CompiledModel): same content hash (so the same structure, lesion count and defaults), as stored in
        ``provenance["model_hash"]``. ``source`` (the fit file) is named in the message. Every place that applies a
        fit (scenario files, studies, validation) calls this before any work."""
        spec = getattr(model, "spec", model)
        prov = self.provenance
        where = f"fit file {str(source)!r}" if source is not None else "the calibration"
        stored = prov.get("model_hash")
        if not isinstance(stored, str):
            raise AbscopalError(
                f"{where} does not name the model it was made for (no provenance.model_hash), so it "
                f"cannot be applied to model {spec.name!r}; refit with 'abscopal fit' or use "
                "fit = 'none'"
            )
        if stored != spec.content_hash():
            raise AbscopalError(
                f"{where} was made for model {prov.get('model_name')!r} with {prov.get('n_lesions')} lesion(s) (hash "
                f"{stored[:12]}...), not for the model at hand, {spec.name!r} with {spec.n_lesions} lesion(s) (hash "
                f"{spec.content_hash()[:12]}...); refit for this model ('abscopal fit'), use the model of the fit, "
                "or use fit = 'none' (model defaults)"
            )

    def parameters(self) -> Any:
        """The fitted lmfit ``Parameters``, built with ``Parameters.add`` from the plain records of
        :attr:`params_json` (values, vary flags, bounds, stderr, correlations). Raises :class:`AbscopalError` for a
        record with a constraint expression (``expr``): expressions read from a file are never evaluated."""
        import lmfit

        params = lmfit.Parameters()
        for r in _records(self.params_json):
            if r["expr"] is not None:
                raise AbscopalError(
                    f"parameter {r['name']!r} of the calibration has the constraint expression "
                    f"{r['expr']!r}; expressions in calibration files are not evaluated: refit "
                    "without constraint expressions"
                )
            try:
                params.add(r["name"], value=r["value"], vary=r["vary"], min=r["min"], max=r["max"])
            except (KeyError, NameError, ValueError) as exc:
                raise AbscopalError(
                    f"parameter {r['name']!r} of the calibration is not a valid lmfit parameter ({exc}); refit"
                ) from None
            params[r["name"]].stderr = r["stderr"]
            params[r["name"]].correl = r["correl"]
        return params

    def problem(
        self, targets: Mapping[str, TrialTargets] | Iterable[TrialTargets] | None = None, *, model: Any = None
    ) -> CalibrationProblem:
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
            from ..model.library import get_model

            model = (
                get_model(prov["model_name_library"], n_lesions=prov["n_lesions"])
                if prov.get("model_name_library")
                else None
            )
            if model is None:
                raise AbscopalError(f"model {prov['model_name']!r} is not a library model; pass model=")
        spec = getattr(model, "spec", model)
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

    def summary_table(self) -> str:
        """Plain-text report: parameters, statistics, predicted vs observed."""
        lines = [
            f"calibration ({self.method}, {self.nfev} evaluations; abscopal {self.provenance.get('version')}, "
            f"model {self.provenance.get('model_name')}, {self.provenance.get('n_patients_per_arm')} patients "
            f"per arm, seed {self.provenance.get('seed')})",
            f"chi-square {self.chisqr:.4g}  reduced {self.redchi:.4g}  AIC {self.aic:.4g}  BIC {self.bic:.4g}",
            "",
            f"{'parameter':<28}{'value':>12}{'stderr':>12}{'rel':>8}",
        ]
        for name, v in self.values.items():
            se = self.stderr.get(name)
            rel = f"{se / abs(v):8.1%}" if se is not None and v != 0 else f"{'-':>8}"
            lines.append(f"{name:<28}{v:>12.5g}{(f'{se:.3g}' if se is not None else '-'):>12}{rel}")
        pairs = [(a, b, c) for a, row in self.correlations.items() for b, c in row.items() if a < b]
        if pairs:
            lines += ["", "correlations: " + ", ".join(f"{a}~{b} {c:+.2f}" for a, b, c in pairs)]
        lines += [
            "",
            f"{'trial':<18}{'arm':<26}{'outcome':<18}{'observed':>10}{'95% CI':>18}{'predicted':>11}{'residual':>10}",
        ]
        for p in self.predictions:
            lo, hi = p["ci"]
            ci = f"{lo:.3g}-{hi:.3g}" if lo is not None and hi is not None else "-"
            lines.append(
                f"{p['trial']:<18}{p['arm']:<26}{p['outcome']:<18}{p['observed']:>10.3g}{ci:>18}"
                f"{p['predicted']:>11.3g}{p['residual']:>10.3g}"
            )
        return "\n".join(lines)


# ---- fitting --------------------------------------------------------------------------------------------------------
def _predictions(problem: CalibrationProblem, values: Mapping[str, float]) -> list[dict[str, Any]]:
    report, smooth, res = problem.evaluate(values)  # one simulation run for all three
    out = []
    for i, (trial, arm, name, target) in enumerate(problem._keys):
        observed = target.hr if name.startswith("hr_") else target.value
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


def calibrate(
    problem: CalibrationProblem,
    params: Any = None,
    *,
    method: str = "least_squares",
    multistart: int | None = None,
    seed: int = 0,
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
    **kwargs
        Passed to ``lmfit.minimize`` (for multistart: to every least-squares fit). For ``least_squares`` the
        defaults are ``diff_step=1e-3`` (relative finite-difference step; the smooth objective needs steps well
        above rounding) and ``xtol = ftol = 1e-6`` (scipy's 1e-8 made one synthetic fit crawl for 372
        evaluations instead of 18 near the truth; 1e-6 relative is far below any standard error).
        ``scale_covar`` defaults to False: the residuals are already divided by the targets' standard errors, so
        the covariance ``(J^T J)^-1`` is absolute and is not rescaled by the reduced chi-square.

    Returns
    -------
    Calibration

    Raises
    ------
    AbscopalError
        Before any simulation: unknown method, bad ``multistart``, an infinite bound where values are drawn
        between bounds (naming the parameter). After: the minimiser fails or gives non-finite residuals (the
        message carries lmfit's); for multistart only if every start fails.
    """
    params = default_parameters(problem) if params is None else params.copy()
    _check_method(params, method, multistart)
    opts = {"scale_covar": False} | dict(_DEFAULT_KWARGS.get(method, {})) | kwargs
    ls_opts = {"scale_covar": False} | dict(_DEFAULT_KWARGS["least_squares"])  # polish after a global method
    extra: dict[str, Any] = {}
    t0 = time.perf_counter()
    if multistart is not None:
        runs, best, nfev = [], None, 0
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
    stderr = {k: (_opt(p.stderr) if p.vary else None) for k, p in fit.params.items()}
    correl = {
        k: {o: float(c) for o, c in (p.correl or {}).items() if math.isfinite(c)}
        for k, p in fit.params.items()
        if p.vary and p.correl
    }
    preds = _predictions(problem, values)
    spec = problem._spec
    provenance = {
        "version": __version__,
        "environment": environment(),
        "model_name": spec.name,
        "model_name_library": _library_name(spec),
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
        "outcomes": list(problem.outcomes),
        "smooth_hr": bool(problem.smooth_hr),
        "free": [k for k, p in fit.params.items() if p.vary],
        "fit_options": {k: v for k, v in opts.items() if isinstance(v, str | int | float | bool | None)},
        "fit_seed": int(seed),
        **extra,
        "elapsed_s": round(time.perf_counter() - t0, 3),
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
        params_json=_records_json(_records_of(fit.params)),
        provenance=provenance,
    )


# ---- command line ---------------------------------------------------------------------------------------------------
def _target_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.glob("*.toml")) if p.is_dir() else [p]
    return files


def _check_fit_args(args: argparse.Namespace) -> None:
    """Every check of ``abscopal fit`` that needs no simulation (raises :class:`AbscopalError`)."""
    from ..io import check_outputs

    outputs: dict[str, Any] = {"--out": args.out}
    if args.report is not None:
        from .report import report_paths

        outputs |= {
            "--report" if i == 0 else f"--report (figure {p.name})": p
            for i, p in enumerate(report_paths(args.report, force=True))
        }
    missing = [t for t in args.targets if not Path(t).exists()]
    if missing:
        raise AbscopalError(f"targets: {missing} not found; pass existing target TOML files or directories")
    check_outputs(outputs, inputs=_target_files(args.targets), force=args.force)  # device, input, twice, writable
    if args.patients < 1:
        raise AbscopalError(f"--patients {args.patients}: give at least 1 virtual patient per arm")
    if args.multistart is not None and args.multistart < 1:
        raise AbscopalError(f"--multistart {args.multistart}: give the number of starts, at least 1")
    if args.profile is not None:
        unknown = [n for n in args.profile if n not in args.free]
        if unknown:
            raise AbscopalError(
                f"--profile {' '.join(unknown)}: only fitted parameters can be profiled; "
                f"the --free parameters are {' '.join(args.free)}"
            )
    sampling = {"--walkers": args.walkers, "--steps": args.steps, "--burn": args.burn, "--thin": args.thin}
    if not args.posterior:
        given = [k for k, v in sampling.items() if v is not None]
        if given:
            raise AbscopalError(f"{', '.join(given)} set the posterior sampling; add --posterior")
    for k, v in sampling.items():
        if v is not None and (v < 1 if k != "--burn" else v < 0):
            raise AbscopalError(f"{k} {v}: must be {'>= 0' if k == '--burn' else '>= 1'}")
    if args.posterior:
        steps = args.steps if args.steps is not None else 200
        burn = args.burn if args.burn is not None else steps // 4
        if burn >= steps:
            raise AbscopalError(f"--burn {burn} discards every one of --steps {steps}; use a smaller --burn")
        if args.walkers is not None and args.walkers < 2 * len(args.free):
            raise AbscopalError(
                f"--walkers {args.walkers}: emcee needs at least twice the number of free "
                f"parameters ({2 * len(args.free)})"
            )


def _cmd_fit(args: argparse.Namespace) -> int:
    from .targets import load_all

    _check_fit_args(args)  # fail before any work
    out = Path(args.out)
    t0 = time.perf_counter()
    targets = load_all(_target_files(args.targets))
    problem = CalibrationProblem(targets=tuple(targets.values()), n_patients_per_arm=args.patients, seed=args.seed)
    params = default_parameters(problem, names=tuple(args.free))
    cal = calibrate(problem, params, method=args.method, multistart=args.multistart, seed=args.start_seed)
    if args.profile is not None or args.posterior:
        from .uncertainty import posterior, profile_likelihood, with_uncertainty

        profiles = profile_likelihood(problem, cal, args.profile or None) if args.profile is not None else None
        post = None
        if args.posterior:
            steps = args.steps if args.steps is not None else 200
            post = posterior(
                problem,
                cal,
                n_walkers=args.walkers,
                n_steps=steps,
                burn=args.burn if args.burn is not None else steps // 4,
                thin=args.thin or 1,
                seed=args.start_seed,
            )
        cal = with_uncertainty(cal, profiles=profiles, posterior=post)
    cal.save(out, force=args.force)
    print(cal.summary_table())
    for sentence in cal.identifiability:
        print(f"- {sentence}")
    if args.report is not None:
        from .report import fit_report

        for path in fit_report(cal, args.report, force=args.force):
            print(f"report: {path}")
    print(
        f"\nfitted {len(args.free)} parameter(s) to {len(problem.keys)} target(s) in "
        f"{time.perf_counter() - t0:.1f} s -> {out}"
    )
    return 0


def add_fit_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``abscopal fit`` to the ``subparsers`` of the ``abscopal`` parser (handler in ``func``).

    ``fit TARGETS... --out OUT.json [--patients N] [--seed S] [--force] [--free NAME ...] [--method M]
    [--multistart K] [--start-seed S] [--profile [NAME ...]] [--posterior [--walkers N] [--steps N] [--burn N]
    [--thin N]] [--report PATH.html|PATH.md]``; every option is checked before any simulation. Returns the
    subparser.
    """
    f = subparsers.add_parser("fit", help="calibrate typical parameter values to trial targets (JSON result)")
    f.add_argument("targets", nargs="+", help="target TOML files or directories (format: docs/targets.md)")
    f.add_argument("--out", required=True, help="output calibration JSON file")
    f.add_argument("--patients", type=int, default=200, help="virtual patients per arm (default 200)")
    f.add_argument("--seed", type=int, default=0, help="master seed of the virtual patients (default 0)")
    f.add_argument(
        "--free",
        nargs="+",
        default=list(DEFAULT_FREE),
        metavar="NAME",
        help=f"typical values to fit (default: {' '.join(DEFAULT_FREE)})",
    )
    f.add_argument("--method", default="least_squares", choices=METHODS, help="minimiser (default least_squares)")
    f.add_argument(
        "--multistart",
        type=int,
        default=None,
        metavar="K",
        help="K least-squares fits from Latin-hypercube starts within the bounds; keep the best",
    )
    f.add_argument(
        "--start-seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the multistart sample, differential evolution and the posterior (default 0)",
    )
    f.add_argument(
        "--profile",
        nargs="*",
        default=None,
        metavar="NAME",
        help="profile-likelihood intervals of these free parameters (no NAME: all)",
    )
    f.add_argument("--posterior", action="store_true", help="sample the posterior with emcee (flat prior in bounds)")
    f.add_argument("--walkers", type=int, default=None, help="emcee walkers (default max(8, 2 x free + 2))")
    f.add_argument("--steps", type=int, default=None, help="emcee steps per walker (default 200)")
    f.add_argument("--burn", type=int, default=None, help="steps discarded per walker (default steps // 4)")
    f.add_argument("--thin", type=int, default=None, help="keep every N-th step (default 1)")
    f.add_argument(
        "--report",
        default=None,
        metavar="PATH",
        help="also write a report: PATH.html (one file) or PATH.md (PNG figures next to it)",
    )
    f.add_argument("--force", action="store_true", help="overwrite --out (and --report)")
    f.set_defaults(func=_cmd_fit)
    return f
