"""A self-contained report of a :class:`~abscopal.calibrate.fit.Calibration` (HTML or Markdown).

:func:`fit_report` writes: the provenance (package version, model and its hash, method, seeds, virtual patients
per arm, every trial with its content hash and file, elapsed time), the parameter table (value, standard error,
bounds, 68% / 95% profile-likelihood intervals, posterior quantiles), the fit statistics and correlations, the
predicted versus observed value of every target, figures (forest plot of every target, weighted residuals,
chi-square profiles, posterior pairs), the identifiability findings and the sources (citations) of the targets.

HTML is one file with the PNG figures embedded as base64; Markdown writes the PNGs next to the ``.md`` file
(``<stem>-forest.png`` etc.). Every file is written atomically (:func:`abscopal.io.write_atomic`) and none is
overwritten unless ``force``. Figures are :class:`matplotlib.figure.Figure` objects rendered by Agg; pyplot and
matplotlib's global state are not used. The ``abscopal fit-report`` command is :mod:`abscopal.cli.fit`.

This module computes the content (tables as lists of rows, sentences, PNG bytes); the jinja2 templates
``fit_report.html.j2`` and ``fit_report.md.j2`` of :mod:`abscopal.templates` lay it out. HTML escapes every text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..endpoints.outcomes import outcome
from ..errors import AbscopalError
from ..fitted.format import Fit as Calibration  # any fit: report needs its data only, not calibrate.fit
from ..io import OutputExistsError, write_atomic
from ..plot import figure_png, new_figure
from ..provenance import format_environment
from ..templates import render
from .uncertainty import identifiability_report, profile_thresholds

if TYPE_CHECKING:
    from ..trials import TrialTargets

__all__ = ["FIGURES", "fit_report", "report_paths"]

FIGURES = ("forest", "residuals", "profiles", "posterior")
"""Figure names (Markdown: ``<stem>-<name>.png`` next to the report)."""
_FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown"}
_OUTCOME_LABEL = {"proportion": "objective response rate", "median": "median (months)", "hr": "hazard ratio"}


# ---- paths ----------------------------------------------------------------------------------------------------------
def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in ("html", "markdown"):
            raise AbscopalError(f"format={fmt!r}: choose 'html' or 'markdown'")
        return fmt
    if path.suffix.lower() not in _FORMATS:
        raise AbscopalError(
            f"report path {str(path)!r}: unknown suffix {path.suffix!r}; use .html (one file) or "
            f".md (Markdown with PNG files next to it), or pass format="
        )
    return _FORMATS[path.suffix.lower()]


def report_paths(path: str | Path, *, format: str | None = None, force: bool = False) -> list[Path]:
    """Every file :func:`fit_report` may write for ``path`` (Markdown: the ``.md`` and its possible PNGs).

    Raises :class:`~abscopal.io.OutputExistsError` naming the first that exists unless ``force``, and
    :class:`~abscopal.errors.AbscopalError` for an unknown suffix/format; used to fail before any work.
    """
    path = Path(path)
    fmt = _format_of(path, format)
    paths = [path] + ([path.with_name(f"{path.stem}-{f}.png") for f in FIGURES] if fmt == "markdown" else [])
    if not force:
        for p in paths:
            if p.exists():
                raise OutputExistsError(f"{str(p)!r} exists; choose another report path or pass force=True (--force)")
    if path.is_dir():
        raise AbscopalError(f"report path {str(path)!r} is a directory; give a file name ending in .html or .md")
    return paths


# ---- figures --------------------------------------------------------------------------------------------------------
def _kind(name: str) -> str:
    """``proportion``, ``median`` or ``hr``: the registry's kind of outcome ``name``."""
    return outcome(name).kind


def _axis_label(kind: str, rows: Iterable[Mapping[str, Any]]) -> str:
    names = {p["outcome"] for p in rows}
    if kind == "proportion" and names != {"orr"}:
        return "proportion"
    return _OUTCOME_LABEL[kind]


def _label(p: Mapping[str, Any]) -> str:
    return f"{p['trial']} | {p['arm']} | {p['outcome']}"


def forest_figure(calibration: Calibration) -> Any:
    """Forest plot: one row per target, observed value with its 95% CI (black) and the model's reported
    prediction (red); one panel per outcome type, log scale for medians and hazard ratios."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in calibration.predictions:
        groups.setdefault(_kind(p["outcome"]), []).append(p)
    kinds = [k for k in ("proportion", "median", "hr") if k in groups]
    heights = [len(groups[k]) + 1.5 for k in kinds]
    fig = new_figure(8.0, 0.35 * sum(heights) + 1.0)
    axes = fig.subplots(len(kinds), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, kind in zip(axes, kinds, strict=True):
        rows = groups[kind]
        y = np.arange(len(rows))[::-1]
        for yi, p in zip(y, rows, strict=True):
            lo, hi = p["ci"]
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [yi, yi], color="black", lw=1.5)
            ax.plot(p["observed"], yi, "o", color="black", ms=5, label="observed (95% CI)" if yi == y[0] else None)
            pred = p["predicted"]
            if pred is not None and math.isfinite(pred) and (kind == "proportion" or pred > 0):
                ax.plot(pred, yi, "D", color="tab:red", ms=5, label="predicted" if yi == y[0] else None)
            else:
                ax.annotate(
                    "not reached",
                    (1.0, yi),
                    xycoords=("axes fraction", "data"),
                    ha="right",
                    va="center",
                    color="tab:red",
                    fontsize=8,
                )
        if kind != "proportion":
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        if kind == "hr":
            ax.axvline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_yticks(y, [_label(p) for p in rows], fontsize=8)
        ax.set_ylim(-0.8, len(rows) - 0.2)
        ax.set_xlabel(_axis_label(kind, rows))
        ax.grid(axis="x", alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    axes[0].set_title("Observed vs predicted, every target")
    return fig


def residual_figure(calibration: Calibration) -> Any:
    """Weighted residual of every target (bars), with the +/-1 and +/-2 standard-error bands."""
    rows = calibration.predictions
    fig = new_figure(8.0, 0.3 * len(rows) + 1.5)
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    r = np.array([p["residual"] if p["residual"] is not None else np.nan for p in rows], dtype=float)
    ax.barh(y, r, color=["tab:red" if abs(v) > 2 else "tab:blue" for v in np.nan_to_num(r)])
    for v, ls in ((1.0, "--"), (2.0, ":")):
        ax.axvline(v, color="grey", ls=ls, lw=0.8)
        ax.axvline(-v, color="grey", ls=ls, lw=0.8)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(y, [_label(p) for p in rows], fontsize=8)
    ax.set_xlabel("weighted residual (standard errors)")
    ax.set_title(f"Residuals (chi-square {calibration.chisqr:.3g})")
    return fig


def profile_figure(calibration: Calibration) -> Any:
    """One panel per profiled parameter: chi-square rise above the minimum against the parameter, the 68% and
    95% thresholds (1 and 3.84, times the misfit factor when the standard errors carry it) and the fitted value."""
    profs = calibration.profiles or {}
    n = len(profs)
    ncol = min(n, 3)
    nrow = math.ceil(n / ncol)
    fig = new_figure(3.6 * ncol, 3.0 * nrow)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, (name, prof) in zip(axes, profs.items(), strict=False):
        x = np.array(prof["values"], dtype=float)
        d = np.array(prof["chisqr"], dtype=float) - prof["chisqr_min"]
        ax.plot(x, d, "o-", ms=3)
        levels = profile_thresholds(prof)
        ax.axhline(levels["68"], color="tab:green", ls="--", lw=0.8, label=f"68% ({levels['68']:.3g})")
        ax.axhline(levels["95"], color="tab:orange", ls="--", lw=0.8, label=f"95% ({levels['95']:.3g})")
        ax.axvline(prof["optimum"], color="grey", lw=0.8)
        lo, hi = prof["interval_95"]
        ax.axvspan(lo, hi, color="tab:orange", alpha=0.1)
        for b in (prof["lower_bound"], prof["upper_bound"]):
            if math.isfinite(b) and x.size and x.min() <= b <= x.max():
                ax.axvline(b, color="black", lw=1.2)
        near = x[np.isfinite(d) & (d <= 4.0 * levels["95"])]
        if near.size >= 2:  # keep far points (e.g. a bound far away) from squashing the curve
            pad = 0.25 * (near.max() - near.min())
            ax.set_xlim(max(x.min(), near.min() - pad) - 0.02 * pad, min(x.max(), near.max() + pad) + 0.02 * pad)
        top = np.nanmax(d) if np.any(np.isfinite(d)) else 1.0
        ax.set_ylim(-0.05 * max(top, 5.0), max(top, 5.0) * 1.05)
        ax.set_xlabel(name)
        ax.set_ylabel("chi-square - minimum")
        ax.set_title(f"{name}: {'closed' if prof['closed'] else 'OPEN'} 95% interval", fontsize=9)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    return fig


def posterior_figure(calibration: Calibration, max_params: int = 6) -> Any:
    """Corner-style pairs plot of the posterior samples: histograms on the diagonal, scatter below it (first
    ``max_params`` parameters)."""
    post = calibration.posterior or {}
    names = list(post["names"])[:max_params]
    s = np.array(post["samples"], dtype=float)[:, : len(names)]
    d = len(names)
    fig = new_figure(2.2 * d + 1.0, 2.2 * d + 1.0)
    axes = fig.subplots(d, d, squeeze=False)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                ax.hist(s[:, i], bins=30, color="tab:blue", alpha=0.8)
                ax.axvline(calibration.values.get(names[i], np.nan), color="tab:red", lw=1)
                ax.set_yticks([])
            else:
                ax.plot(s[:, j], s[:, i], ".", ms=1.5, alpha=0.4, color="tab:blue")
                ax.plot(
                    calibration.values.get(names[j], np.nan),
                    calibration.values.get(names[i], np.nan),
                    "x",
                    color="tab:red",
                )
            if i == d - 1:
                ax.set_xlabel(names[j], fontsize=8)
            if j == 0 and i > 0:
                ax.set_ylabel(names[i], fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(f"Posterior ({s.shape[0]} samples; red: least-squares optimum)")
    return fig


# ---- content --------------------------------------------------------------------------------------------------------
def _g(x: Any, fmt: str = ".4g") -> str:
    if x is None:
        return "-"
    x = float(x)
    return format(x, fmt) if math.isfinite(x) else ("not reached" if x > 0 else str(x))


def _interval(prof: Mapping[str, Any] | None, level: str) -> str:
    if prof is None:
        return "-"
    (lo, hi), (c_lo, c_hi) = prof[f"interval_{level}"], prof[f"closed_{level}"]
    return f"{'' if c_lo else '<= '}{_g(lo)} to {_g(hi)}{'' if c_hi else ' (open)'}"


def _sources(calibration: Calibration, targets: Mapping[str, TrialTargets] | None) -> list[str]:
    prov = calibration.provenance
    stored = prov.get("target_sources") or {}
    out = []
    for trial in prov.get("targets", {}):
        t = targets.get(trial) if targets else None
        src = stored.get(trial) or (
            {"title": t.title, "citation": t.citation, "doi": t.doi, "url": t.url} if t is not None else None
        )
        if src is None:
            out.append(
                f"{trial}: citation unavailable (target file {prov.get('target_paths', {}).get(trial)!r} "
                f"not found; pass targets=)"
            )
            continue
        bits = [f"{trial}: {src.get('title') or ''}".rstrip(": "), src.get("citation") or "(no citation)"]
        if src.get("doi"):
            bits.append(f"doi:{src['doi']}")
        if src.get("url"):
            bits.append(src["url"])
        out.append(". ".join(b for b in bits if b))
        if t is not None:
            for arm in t.arms:
                for o in arm.outcomes:
                    if o.source:
                        out.append(f"{trial} | {arm.name} | {o.name}: {o.source}")
            for c in t.comparisons:
                if c.source:
                    out.append(f"{trial} | {c.arm} vs {c.reference} | hr_{c.endpoint}: {c.source}")
    return out


def _load_targets(calibration: Calibration) -> dict[str, TrialTargets]:
    """The stored target files that still exist with the stored hash (for outcome-level sources)."""
    from ..trials import TargetError, load_targets

    out = {}
    for trial, path in (calibration.provenance.get("target_paths") or {}).items():
        if path and Path(path).is_file():
            try:
                t = load_targets(path)
            except TargetError:
                continue
            if t.content_hash() == calibration.provenance["targets"].get(trial):
                out[trial] = t
    return out


_CAPTIONS = {
    "forest": "Forest plot: observed (black, 95% CI) and predicted (red) value of every target",
    "residuals": "Weighted residuals (dashed: +/-1, dotted: +/-2 standard errors)",
    "profiles": "Chi-square profiles; dashed: 68% (1.00) and 95% (3.84) thresholds; shaded: 95% interval; grey: "
    "fitted value; black: a parameter bound",
    "posterior": "Posterior samples (emcee); red: least-squares optimum",
}
"""Caption of every figure of :data:`FIGURES`."""


def _profile_timing_rows(prov: Mapping[str, Any]) -> list[list[Any]]:
    """The report row of the profiles' wall time and where they ran (none without profile timing)."""
    timing = prov.get("timing") or {}
    if "profiles_s" not in timing:
        return []
    if timing.get("profile_scheduler"):
        where = f"the Dask scheduler {timing['profile_scheduler']}"
    elif timing.get("profile_workers"):
        where = f"{timing['profile_workers']} local worker processes"
    else:
        where = "one process"
    return [["elapsed (profiles)", f"{_g(timing['profiles_s'])} s ({where})"]]


def _context(calibration: Calibration, targets: Mapping[str, TrialTargets] | None) -> dict[str, Any]:
    """Everything the templates ``fit_report.html.j2`` and ``fit_report.md.j2`` show except the figures: plain
    strings, numbers and lists (tables are lists of rows)."""
    prov = calibration.provenance
    params = calibration.parameters()
    free = list(prov.get("free") or [k for k, p in params.items() if p.vary])
    profs = calibration.profiles or {}
    post = calibration.posterior
    pq = {}
    if post is not None:
        s = np.array(post["samples"], dtype=float)
        if s.size:
            q = np.quantile(s, [0.025, 0.5, 0.975], axis=0)
            pq = {n: q[:, i] for i, n in enumerate(post["names"])}
    param_rows = []
    for name in free:
        v, se, p = calibration.values[name], calibration.stderr.get(name), params[name]
        rel = f"{se / abs(v):.1%}" if se is not None and v != 0 else "-"
        row = [
            name,
            _g(v),
            _g(se),
            rel,
            f"[{_g(p.min)}, {_g(p.max)}]",
            _interval(profs.get(name), "68"),
            _interval(profs.get(name), "95"),
        ]
        if post is not None:
            q = pq.get(name)
            row.append("-" if q is None else f"{_g(q[1])} ({_g(q[0])} to {_g(q[2])})")
        param_rows.append(row)
    posterior_note = None
    if post is not None:
        tau = post.get("autocorr_time")
        posterior_note = (
            f"Posterior: {len(post['samples'])} stored samples, acceptance fraction "
            f"{post['acceptance_fraction']:.2f}, autocorrelation time "
            f"{', '.join(_g(t, '.3g') for t in tau) if tau else 'not estimable (chain too short)'}, "
            f"seed {post.get('seed')}; options {prov.get('posterior_options', '-')}."
        )
    best = prov.get("multistart_best")
    return {
        "title": f"Calibration report: {prov.get('model_name', '?')}",
        "provenance": [
            ["abscopal version", prov.get("version")],
            ["environment", format_environment(prov.get("environment"))],
            ["model", f"{prov.get('model_name')} ({prov.get('n_lesions')} lesions)"],
            ["model hash", prov.get("model_hash")],
            [
                "method",
                calibration.method + (f", multistart {len(prov['multistart'])}" if prov.get("multistart") else ""),
            ],
            ["fit seed (starts / global method / posterior)", prov.get("fit_seed", "-")],
            ["virtual patients per arm", prov.get("n_patients_per_arm")],
            ["virtual-patient seed", prov.get("seed")],
            ["outcomes fitted", ", ".join(prov.get("outcomes", []))],
            ["free parameters", ", ".join(free)],
            [
                "base parameters",
                ", ".join(f"{k}={_g(v)}" for k, v in (prov.get("base_parameters") or {}).items()) or "-",
            ],
            ["objective evaluations", calibration.nfev],
            ["elapsed (fit)", f"{_g(prov.get('elapsed_s'))} s"],
            *_profile_timing_rows(prov),
        ],
        "targets": [[t, h, (prov.get("target_paths") or {}).get(t) or "-"] for t, h in prov.get("targets", {}).items()],
        "parameters": {
            "header": ["parameter", "value", "stderr", "rel. stderr", "bounds", "68% profile", "95% profile"]
            + (["posterior median (95%)"] if post is not None else []),
            "rows": param_rows,
        },
        "statistics": [
            ["chi-square", _g(calibration.chisqr)],
            ["reduced chi-square", _g(calibration.redchi)],
            ["AIC", _g(calibration.aic)],
            ["BIC", _g(calibration.bic)],
            ["targets", len(calibration.predictions)],
            ["free parameters", len(free)],
        ],
        "correlations": [
            [a, c, f"{r:+.3f}"] for a, row in calibration.correlations.items() for c, r in row.items() if a < c
        ],
        "posterior": posterior_note,
        "multistart": [
            [
                f"{i}{' (best)' if i == best else ''}",
                ", ".join(f"{k}={_g(v)}" for k, v in r["start"].items()),
                _g(r["chisqr"]),
                r["nfev"] or "-",
                "ok" if r["success"] else r["message"],
            ]
            for i, r in enumerate(prov.get("multistart") or [])
        ],
        "predictions": [
            [
                p["trial"],
                p["arm"],
                p["outcome"],
                _g(p["observed"]),
                "-" if None in p["ci"] else f"{_g(p['ci'][0])} to {_g(p['ci'][1])}",
                _g(p["predicted"]),
                _g(p["residual"], ".3f"),
            ]
            for p in calibration.predictions
        ],
        "identifiability": [str(x) for x in (list(calibration.identifiability) or identifiability_report(calibration))],
        "sources": _sources(calibration, targets),
    }


# ---- rendering ------------------------------------------------------------------------------------------------------
def _figures(calibration: Calibration) -> dict[str, bytes]:
    figs = {"forest": forest_figure(calibration), "residuals": residual_figure(calibration)}
    if calibration.profiles:
        figs["profiles"] = profile_figure(calibration)
    if calibration.posterior is not None and calibration.posterior.get("samples"):
        figs["posterior"] = posterior_figure(calibration)
    return {k: figure_png(f, dpi=100) for k, f in figs.items()}


def fit_report(
    calibration: Calibration,
    path: str | Path,
    *,
    format: str | None = None,
    targets: Mapping[str, TrialTargets] | Iterable[TrialTargets] | None = None,
    force: bool = False,
) -> list[Path]:
    """Write the report of ``calibration`` (see the module docstring).

    Parameters
    ----------
    calibration
        The fit (profiles, posterior and identifiability findings are shown where present; the findings are
        computed on the fly if the calibration has none).
    path
        The report file: ``.html`` (one self-contained file, figures as base64 PNG) or ``.md`` (figures as
        ``<stem>-<figure>.png`` next to it).
    format
        ``"html"`` or ``"markdown"`` (default: from the suffix of ``path``).
    targets
        TrialTargets (mapping by id or iterable) for the outcome-level sources (default: the stored target files
        where they still exist unchanged). Trial citations come from the calibration's provenance.
    force
        Overwrite existing files (otherwise :class:`~abscopal.io.OutputExistsError`, before any work).

    Returns
    -------
    list of Path
        The files written (the report first).
    """
    paths = report_paths(path, format=format, force=force)
    fmt = _format_of(Path(path), format)
    if targets is None:
        tmap = _load_targets(calibration)
    else:
        tmap = dict(targets) if isinstance(targets, Mapping) else {t.id: t for t in targets}
    context = _context(calibration, tmap)
    images = _figures(calibration)
    report = paths[0]
    if fmt == "html":
        figures = [{"name": k, "caption": _CAPTIONS[k], "png": images[k]} for k in FIGURES if k in images]
        text = render("fit_report.html.j2", figures=figures, **context)
        return [write_atomic(report, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force)]
    files = {k: report.with_name(f"{report.stem}-{k}.png") for k in FIGURES if k in images}
    written = []
    for k, f in files.items():
        data = images[k]
        written.append(write_atomic(f, partial(Path.write_bytes, data=data), force=force))
    figures = [{"name": k, "caption": _CAPTIONS[k], "file": f.name} for k, f in files.items()]
    text = render("fit_report.md.j2", figures=figures, **context)
    return [write_atomic(report, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force), *written]
