"""The calibration file: a fit's values, uncertainty and provenance as plain JSON (:class:`Fit`).

A :class:`Fit` holds what a calibration found (typical values, standard errors, correlations, fit statistics, the
prediction of every target, the fitted lmfit parameters as plain records, profiles, posterior samples,
identifiability findings) and the provenance needed to rebuild it. :meth:`Fit.save` writes JSON atomically and
refuses to overwrite unless ``force``; :meth:`Fit.load` restores it. Non-finite floats are stored as the strings
``"inf"``, ``"-inf"``, ``"nan"`` so the file is strict JSON. :meth:`Fit.check_model` refuses to apply a fit to a
model other than the one it was made for (content hash). :class:`~abscopal.calibrate.fit.Calibration`, what
:func:`~abscopal.calibrate.fit.calibrate` returns, is a Fit that can also rebuild its calibration problem.

A calibration file may come from someone else, so reading one never runs code: every field is plain JSON, read
with :func:`json.loads` and type-checked. The fitted parameters are plain records (name, value, vary, min, max,
stderr, correl); :meth:`Fit.parameters` builds ``lmfit.Parameters`` from them with ``Parameters.add`` and never
calls ``Parameters.loads`` (whose decoder unpickles "Callable" entries with dill). Files of the older format
``abscopal-calibration-v1`` (whose ``params_json`` is lmfit's ``Parameters.dumps()`` text) still load: only the
plain fields of each parameter are read; lmfit's ``unique_symbols`` and ``user_data`` are ignored, never decoded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ..errors import AbscopalError
from ..io import JsonArtefact
from ..model.spec import ModelSpec

if TYPE_CHECKING:
    from ..model.compile import CompiledModel

__all__ = ["FORMAT", "Fit", "encode_float", "encode_tree", "params_json_of"]

FORMAT = "abscopal-calibration-v2"
"""Value of the ``format`` key of a calibration file (written; ``abscopal-calibration-v1`` files are read too)."""
_OLD_FORMATS = ("abscopal-calibration-v1",)


# ---- JSON helpers ---------------------------------------------------------------------------------------------------
def encode_float(x: float | None) -> float | str | None:
    """``x`` as strict JSON: a float, or ``"inf"``, ``"-inf"``, ``"nan"`` (None stays None)."""
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


def encode_tree(x: Any) -> Any:
    """Plain JSON-ready copy of nested dicts/lists: numpy scalars to Python, non-finite floats to strings."""
    if isinstance(x, Mapping):
        return {str(k): encode_tree(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [encode_tree(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if hasattr(x, "tolist"):  # numpy array or scalar
        return encode_tree(x.tolist())
    if isinstance(x, int):
        return int(x)
    return encode_float(x)


_NONFINITE = {"inf", "-inf", "nan"}


def _decode_tree(x: Any) -> Any:
    """Inverse of :func:`encode_tree` (the strings ``"inf"``, ``"-inf"``, ``"nan"`` become floats)."""
    if isinstance(x, Mapping):
        return {k: _decode_tree(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_decode_tree(v) for v in x]
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
    return json.dumps(encode_tree(records), allow_nan=False)


def params_json_of(params: Any) -> str:
    """The :attr:`Fit.params_json` text of lmfit ``Parameters`` (plain records, strict JSON)."""
    return _records_json(_records_of(params))


# ---- the fit --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Fit(JsonArtefact):
    """A fitted calibration as stored in its file (see the module docstring).

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
        :meth:`~abscopal.calibrate.objective.CalibrationProblem.predict_report`: ORR, KM median in months, Cox
        HR), ``smooth`` (the smooth prediction the residual compares) and ``residual`` (weighted residual at
        ``values``).
    params_json
        The fitted parameters as JSON text of plain records, one per parameter: ``name``, ``value``, ``vary``,
        ``min``, ``max``, ``stderr``, ``expr`` (plain text, never evaluated: :meth:`parameters` refuses it) and
        ``correl``. Stored in the file as that list (plain JSON). Given lmfit's ``Parameters.dumps()`` text (or a
        v1 file), only those plain fields are read, nothing is decoded; the text is normalised to the records.
    provenance
        ``version``, ``model_name``, ``model_hash``, ``n_lesions``, ``targets`` (``{trial: hash}``),
        ``target_paths``, ``seed``, ``n_patients_per_arm``, ``base_parameters``, ``outcomes``, ``smooth_hr``,
        ``free``, ``fit_options``, ``elapsed_s`` (the fit's wall time), ``timing`` (``fit_s``, ``n_patients_per_arm``,
        ``threads``, ``cpu_count``; with profiles ``profiles_s``, ``profile_workers``, ``profile_scheduler``),
        ``target_sources`` (``{trial: {title, citation, doi, url}}``), ``fit_seed``, with fitted pneumonitis
        cohorts ``pneumonitis_exposure`` (each cohort's mean lung dose, whether it was assumed, fractions and
        RT-drug gap: :attr:`~abscopal.calibrate.objective.CalibrationProblem.toxicity_exposure`) and, after a
        multistart fit,
        ``multistart`` (every start: ``start``, ``values``, ``chisqr``, ``nfev``, ``success``, ``message``).
    profiles
        ``{name: profile}`` from :func:`~abscopal.calibrate.uncertainty.profile_likelihood`, or None: ``values``
        (grid, ascending), ``chisqr`` (re-minimised chi-square at each), ``others`` (re-fitted values of the other
        free parameters), ``optimum``, ``chisqr_min``, ``stderr``, ``lower_bound``, ``upper_bound``,
        ``interval_68`` / ``interval_95`` (``[lower, upper]`` where the chi-square rises by 1 / 3.84 above its
        minimum, times ``misfit_scale`` when the standard errors carry the misfit; the rises are in
        ``thresholds``; or the farthest value explored when it does not rise that far), ``closed_68`` /
        ``closed_95`` (``[lower, upper]`` flags: the rise was reached inside the bounds on that side), ``closed``
        (both 95% sides), ``nfev`` and ``elapsed_s`` (the time of its two sides, where they ran).
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
            d[k] = encode_float(d[k])
        d["values"] = {k: encode_float(v) for k, v in self.values.items()}
        d["stderr"] = {k: encode_float(v) for k, v in self.stderr.items()}
        d["predictions"] = [
            {
                **p,
                "observed": encode_float(p["observed"]),
                "ci": [encode_float(c) for c in p["ci"]],
                "predicted": encode_float(p["predicted"]),
                "smooth": encode_float(p["smooth"]),
                "residual": encode_float(p["residual"]),
            }
            for p in self.predictions
        ]
        d["profiles"] = None if self.profiles is None else encode_tree(self.profiles)
        d["posterior"] = None if self.posterior is None else encode_tree(self.posterior)
        d["provenance"] = encode_tree(self.provenance)
        d["params_json"] = json.loads(self.params_json)  # plain records, not a string
        return {"format": FORMAT, **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict` (also reads ``abscopal-calibration-v1`` content: see the module docstring)."""
        if not isinstance(d, Mapping):
            raise AbscopalError(f"not a calibration file: expected a JSON object, got a {type(d).__name__}")
        if d.get("format") not in (FORMAT, *_OLD_FORMATS):
            raise AbscopalError(f"not a calibration file: format is {d.get('format')!r}, expected {FORMAT!r}")
        kind: type  # the JSON type each checked key must have
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
            provenance=_decode_tree(dict(d["provenance"])),
            profiles=None if d.get("profiles") is None else _decode_tree(d["profiles"]),
            posterior=None if d.get("posterior") is None else _decode_tree(d["posterior"]),
            identifiability=[str(x) for x in d.get("identifiability") or []],
        )

    @classmethod
    def load(cls, path: str | Path) -> Self:
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

    def check_model(self, model: ModelSpec | CompiledModel, source: str | Path | None = None) -> None:
        """Raise :class:`AbscopalError` unless this calibration was made for ``model`` (a ModelSpec or
        CompiledModel): same content hash (so the same structure, lesion count and defaults), as stored in
        ``provenance["model_hash"]``. ``source`` (the fit file) is named in the message. Every place that applies a
        fit (scenario files, studies, validation) calls this before any work."""
        spec = model if isinstance(model, ModelSpec) else model.spec
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

    def _misfit_lines(self) -> list[str]:
        m = self.provenance.get("misfit")
        if not isinstance(m, Mapping):
            return []
        scaled = "scaled by" if m.get("stderr_scaled") else "not scaled; factor would be"
        return [
            f"with the reported standard errors only (no tag weights): chi-square {m['chisqr_reported_se']:.4g}, "
            f"reduced {m['redchi_reported_se']:.4g} on {m['dof']} degrees of freedom; standard errors {scaled} "
            f"sqrt({m['covariance_scale']:.4g}) = {math.sqrt(m['covariance_scale']):.3g}"
        ]

    def summary_table(self) -> str:
        """Plain-text report: parameters, statistics, predicted vs observed."""
        lines = [
            f"calibration ({self.method}, {self.nfev} evaluations; abscopal {self.provenance.get('version')}, "
            f"model {self.provenance.get('model_name')}, {self.provenance.get('n_patients_per_arm')} patients "
            f"per arm, seed {self.provenance.get('seed')})",
            f"chi-square {self.chisqr:.4g}  reduced {self.redchi:.4g}  AIC {self.aic:.4g}  BIC {self.bic:.4g}",
            *self._misfit_lines(),
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
