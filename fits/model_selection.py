"""Model selection on the fit set: model v1, model v2 and v2 variants fitted to the same targets, same patients.

Run from the repository root::

    .venv/bin/python fits/model_selection.py [--patients 200] [--seed 0] [--no-crossval] [--models v2,v1,...]
        [--out docs/model_selection.json] [--table docs/model_selection.md] [--fits-dir DIR] [--force]

Every candidate is fitted by :func:`~abscopal.calibrate.fit.calibrate` to every target file in ``fits/targets/``
(the fitted arms only: ``fit = false`` arms are for validation) with the same seed and virtual patients per arm
(common random numbers), its own free values (:data:`~abscopal.calibrate.objective.DEFAULT_FREE` for v2 and its
variants, ``DEFAULT_FREE_V1`` for v1, whose death model is the burden hazard), then cross-validated leave one
trial out (:func:`~abscopal.calibrate.crossval.cross_validate`, every fold started from the full fit's optimum).

Information criteria use the chi-square with the reported standard errors only (``provenance["misfit"]``): the
residuals are already standardised, so ``-2 log L = chi-square + const`` and ``AIC = chi2 + 2k``,
``BIC = chi2 + k ln n`` (``k`` free values, ``n`` residuals). lmfit's own AIC (``n ln(chi2/n) + 2k``, which
estimates an unknown common error) is reported next to it for reference but not used to rank. Lower is better;
differences below 2 are not evidence (Burnham & Anderson 2002, Model Selection and Multimodel Inference, ch. 2).
When every candidate misses its targets by more than their errors (reduced chi-square ``c`` well above 1), the
likelihood is over-dispersed and the ranking uses the quasi-likelihood criterion ``QAIC = chi2 / c + 2k`` with
``c`` the smallest reduced chi-square among the candidates (Burnham & Anderson 2002, section 6.2: c from the
best-fitting model; the table shows both).

Candidates (:data:`CANDIDATES`):

* ``v2``: model v2 as shipped (``nsclc_model(3)``);
* ``v2_no_trex1``: v2 with the TREX1 decline of the priming signal at high dose per fraction switched off
  (``mechanisms_off`` ``trex1_decline``: priming then grows with dose per fraction without limit);
* ``v2_no_priming``: v2 without RT-driven antigen priming (``immunogenic_cell_death`` off: RT acts only through
  cell kill, sterilisation and lymphocyte depletion);
* ``v1``: model v1 (``nsclc_model(3, version=1)``), its own free values and death model.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Candidate:
    """A model to compare: library version, mechanisms switched off, free values."""

    name: str
    version: int
    mechanisms_off: tuple[str, ...] = ()
    description: str = ""
    free: tuple[str, ...] = field(default=())


def _candidates() -> dict[str, Candidate]:
    from abscopal.calibrate.objective import DEFAULT_FREE, DEFAULT_FREE_V1

    return {
        c.name: c
        for c in (
            Candidate("v2", 2, (), "model v2 as shipped", DEFAULT_FREE),
            Candidate("v2_no_trex1", 2, ("trex1_decline",), "v2 without the TREX1 decline", DEFAULT_FREE),
            Candidate("v2_no_priming", 2, ("immunogenic_cell_death",), "v2 without RT-driven priming", DEFAULT_FREE),
            Candidate("v1", 1, (), "model v1 (burden-hazard death model)", DEFAULT_FREE_V1),
        )
    }


CANDIDATES = ("v2", "v2_no_trex1", "v2_no_priming", "v1")


def _criteria(misfit: Mapping[str, Any]) -> dict[str, float]:
    chi2, k, n = misfit["chisqr_reported_se"], misfit["n_free"], misfit["n_residuals"]
    return {"aic": chi2 + 2 * k, "bic": chi2 + k * math.log(n)}


def run_candidate(
    cand: Candidate, targets: tuple[Any, ...], n: int, seed: int, crossval: bool, fits_dir: Path | None, force: bool
) -> dict[str, Any]:
    """Fit one candidate (and cross-validate it); return its row of the table."""
    from abscopal.calibrate import CalibrationProblem, calibrate, default_parameters
    from abscopal.calibrate.crossval import cross_validate
    from abscopal.model import compile_model
    from abscopal.model.library.nsclc import nsclc_model

    spec = nsclc_model(3, version=cand.version)
    model = compile_model(spec)
    base = spec.ablation(cand.mechanisms_off)
    problem = CalibrationProblem(targets=targets, model=model, n_patients_per_arm=n, seed=seed, base_parameters=base)
    t0 = time.perf_counter()
    cal = calibrate(problem, default_parameters(problem, cand.free))
    t_fit = time.perf_counter() - t0
    print(cal.summary_table(), f"\n{cand.name}: fit {t_fit:.0f} s", flush=True)
    if fits_dir is not None:
        cal.save(fits_dir / f"{cand.name}.json", force=force)
    m = cal.provenance["misfit"]
    n_in = sum(
        1
        for p in cal.predictions
        if p["ci"][0] is not None and p["ci"][1] is not None and p["ci"][0] <= p["predicted"] <= p["ci"][1]
    )
    plain = [p["residual"] / math.sqrt(w) for p, w in zip(cal.predictions, problem.weights, strict=True)]
    row: dict[str, Any] = {
        "candidate": cand.name,
        "description": cand.description,
        "model_name": spec.name,
        "model_hash": spec.content_hash(),
        "mechanisms_off": list(cand.mechanisms_off),
        "free": list(cand.free),
        "values": cal.values,
        "stderr": cal.stderr,
        "chisqr_weighted": m["chisqr_weighted"],
        "chisqr_reported_se": m["chisqr_reported_se"],
        "redchi_reported_se": m["redchi_reported_se"],
        "n_residuals": m["n_residuals"],
        "k": m["n_free"],
        **_criteria(m),
        "aic_lmfit": cal.aic,
        "share_abs_z_le_1_96": sum(1 for z in plain if abs(z) <= 1.96) / len(plain),
        "n_with_ci": sum(1 for p in cal.predictions if p["ci"][0] is not None and p["ci"][1] is not None),
        "n_predicted_in_ci": n_in,
        "fit_seconds": round(t_fit, 1),
    }
    if crossval:
        t0 = time.perf_counter()
        cv = cross_validate(
            targets,
            params=cal.parameters(),
            n_patients_per_arm=n,
            seed=seed,
            model=model,
            base_parameters=base,
            progress=lambda msg: print(f"  {cand.name} crossval: {msg}", flush=True),
        )
        s = cv.summary
        row |= {
            "loto_rms_z": s["rms_z"],
            "loto_n_targets": s["n_targets"],
            "loto_n_predicted_in_ci": s["n_predicted_in_ci"],
            "crossval_seconds": round(time.perf_counter() - t0, 1),
        }
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the candidates, best QAIC first, with delta AIC and delta QAIC (module docstring)."""
    best = min(r["aic"] for r in rows)
    c = max(1.0, min(r["redchi_reported_se"] for r in rows))
    qaic = {r["candidate"]: r["chisqr_reported_se"] / c + 2 * r["k"] for r in rows}
    best_q = min(qaic.values())
    head = (
        f"QAIC with c = {c:.2f} (the smallest reduced chi-square among the candidates).\n\n"
        "| model | k | n | chi2 (reported SE) | reduced | AIC | dAIC | QAIC | dQAIC | BIC | \\|z\\| <= 1.96 | "
        "predicted in CI | LOTO RMS z | LOTO in CI |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in sorted(rows, key=lambda r: qaic[r["candidate"]]):
        cv = (
            (f"{r['loto_rms_z']:.2f}", f"{r['loto_n_predicted_in_ci']}/{r['loto_n_targets']}")
            if "loto_rms_z" in r and r["loto_rms_z"] is not None
            else ("-", "-")
        )
        lines.append(
            f"| {r['candidate']} | {r['k']} | {r['n_residuals']} | {r['chisqr_reported_se']:.1f} | "
            f"{r['redchi_reported_se']:.2f} | {r['aic']:.1f} | {r['aic'] - best:.1f} | {qaic[r['candidate']]:.1f} | "
            f"{qaic[r['candidate']] - best_q:.1f} | {r['bic']:.1f} | "
            f"{r['share_abs_z_le_1_96']:.0%} | {r['n_predicted_in_ci']}/{r['n_with_ci']} | {cv[0]} | {cv[1]} |"
        )
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200, help="virtual patients per arm (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default=",".join(CANDIDATES), help=f"comma-separated subset of {CANDIDATES}")
    ap.add_argument("--no-crossval", action="store_true", help="skip leave-one-trial-out")
    ap.add_argument("--out", default=str(ROOT / "docs" / "model_selection.json"))
    ap.add_argument("--table", default=str(ROOT / "docs" / "model_selection.md"))
    ap.add_argument("--fits-dir", default=None, help="also save each candidate's fit here (<name>.json)")
    ap.add_argument("--force", action="store_true", help="replace existing outputs")
    ap.add_argument("--table-from", default=None, help="only rewrite --table from this JSON of an earlier run")
    args = ap.parse_args(argv)
    if args.table_from is not None:
        from abscopal.io import write_atomic

        md = table(json.loads(Path(args.table_from).read_text())["rows"])
        write_atomic(args.table, lambda p: p.write_text(md), force=args.force)
        print(md)
        return 0
    cands = _candidates()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in names if m not in cands]
    if bad or not names:
        sys.exit(f"--models: unknown {bad or names!r}; choose from {list(cands)}")
    if args.patients < 10:
        sys.exit(f"--patients: {args.patients} is too few; give at least 10 virtual patients per arm")
    for path in (args.out, args.table):
        if Path(path).exists() and not args.force:
            sys.exit(f"{path} exists; pass --force to replace it")
    fits_dir = Path(args.fits_dir) if args.fits_dir else None
    if fits_dir is not None:
        fits_dir.mkdir(parents=True, exist_ok=True)

    from abscopal._version import __version__
    from abscopal.io import write_atomic
    from abscopal.provenance import environment
    from abscopal.trials import load_all

    files = sorted(glob.glob(str(ROOT / "fits" / "targets" / "*.toml")))
    targets = tuple(load_all(files).values())
    t0 = time.perf_counter()
    rows = [
        run_candidate(cands[m], targets, args.patients, args.seed, not args.no_crossval, fits_dir, args.force)
        for m in names
    ]
    doc = {
        "format": "abscopal-model-selection-v1",
        "rows": rows,
        "provenance": {
            "version": __version__,
            "environment": environment(),
            "targets": {t.id: t.content_hash() for t in targets},
            "n_patients_per_arm": args.patients,
            "seed": args.seed,
            "recipe": "fits/model_selection.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "elapsed_s": round(time.perf_counter() - t0, 1),
        },
    }
    write_atomic(args.out, lambda p: p.write_text(json.dumps(doc, indent=1, default=float)), force=args.force)
    md = table(rows)
    write_atomic(args.table, lambda p: p.write_text(md), force=args.force)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
