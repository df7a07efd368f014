"""Whether a study's conclusions are robust: the one verdict rule (:func:`verdict`), the identity that ties a
sensitivity analysis to its study (:func:`study_identity`) and the reader the study report uses
(:func:`read_robustness`).

A sensitivity analysis (:mod:`abscopal.studies.sensitivity`, ``abscopal sensitivity``) writes its manifest
``sensitivity.json`` (:data:`MANIFEST`, format :data:`FORMAT`). When it is written into the study's folder as
``OUT/sensitivity/`` (:data:`STUDY_SUBFOLDER`), the study report (``abscopal study ... --out OUT``, rerun with
``--force`` after the sensitivity run; the cells are reused) gains a section "How robust are these conclusions"
with one row per conclusion: the statement at the reference parameter values, the share of samples in which its
sign holds and the verdict. A manifest made for another study (other axes, population, assessment, model or fit) is
named in the report and not used. The manifest is read with :func:`json.loads` only; nothing in it runs code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT",
    "MANIFEST",
    "ROBUST_SHARE",
    "STUDY_SUBFOLDER",
    "VERDICTS",
    "read_robustness",
    "study_identity",
    "verdict",
]

ROBUST_SHARE = 0.90
"""A conclusion is *robust* when its sign at the reference parameter values holds in at least this share of the
sensitivity samples. A convention, not a derived number: nine parameter sets in ten, within the ranges the
analysis assumes, agree with the reference; a conclusion that flips in more than one sample in ten is not called
robust. The report gives every share, so a reader may apply another threshold."""

VERDICTS: Mapping[str, str] = {
    "robust": f"the sign holds in >= {ROBUST_SHARE:.0%} of the samples",
    "not robust": f"the sign holds in most samples (>= 50%) but fewer than {ROBUST_SHARE:.0%}",
    "reversed": "the opposite sign holds in most samples: the reference result is not typical of the ranges",
    "undetermined": "no sign at the reference (a zero or undefined contrast) or no finite sample",
}
"""The verdicts of :func:`verdict` and what each means."""

MANIFEST = "sensitivity.json"
"""The manifest of a sensitivity output folder (written last: a folder is complete when it exists)."""

FORMAT = "abscopal-sensitivity-v1"
"""Value of the ``format`` key of :data:`MANIFEST`."""

STUDY_SUBFOLDER = "sensitivity"
"""Where the study report looks for a sensitivity output: ``<study folder>/sensitivity/``."""

_IDENTITY_KEYS = ("fit", "mix", "seed", "salvage_delay_day", "t_end_day", "mechanisms_off", "assessment", "axes")
"""Entries of :meth:`~abscopal.studies.design.StudyDesign.describe` that define a study's conclusions (the size of
the population and the parameter draws do not: a sensitivity analysis runs fewer patients and no draws)."""


def verdict(share: float, n: int, threshold: float = ROBUST_SHARE) -> str:
    """The verdict (:data:`VERDICTS`) of a conclusion whose reference sign holds in ``share`` of ``n`` samples.

    ``share`` is NaN when the reference has no sign; ``n`` counts the samples with a finite contrast.
    """
    if n <= 0 or not math.isfinite(share):
        return "undetermined"
    if share >= threshold:
        return "robust"
    return "not robust" if share >= 0.5 else "reversed"


def study_identity(design: Mapping[str, Any], model_hash: str | None, fit_hash: str | None) -> dict[str, Any]:
    """What a study's conclusions depend on: ``design`` (:meth:`StudyDesign.describe
    <abscopal.studies.design.StudyDesign.describe>`) without the population size and draws, the model hash and the
    fit file hash. A sensitivity output applies to a study when their identities are equal."""
    return {
        "design": {k: design.get(k) for k in _IDENTITY_KEYS},
        "model_hash": model_hash,
        "fit_hash": fit_hash,
    }


def _plain(x: Any) -> Any:
    return json.loads(json.dumps(x, sort_keys=True, default=str))


def read_robustness(folder: Path, study_provenance: Mapping[str, Any]) -> dict[str, Any] | None:
    """The robustness section of a study report from the sensitivity output in ``folder``, or None if there is none.

    Returns ``{"file", "note", "method", "n_samples", "n_patients", "threshold", "conclusions", "timing"}``:
    ``conclusions`` rows ``[conclusion, reference, share, verdict]`` (strings); ``note`` explains a manifest that
    cannot be used (unreadable, another format, another study), and then ``conclusions`` is empty. Never raises for
    a bad file: the study report must not fail on it.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    out: dict[str, Any] = {
        "file": str(path),
        "note": None,
        "method": "?",
        "n_samples": "?",
        "n_patients": "?",
        "threshold": f"{ROBUST_SHARE:.0%}",
        "conclusions": [],
        "timing": [],
    }
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        out["note"] = f"{path} could not be read ({type(exc).__name__}); not used."
        return out
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        out["note"] = f"{path} is not a sensitivity output of format {FORMAT!r}; not used."
        return out
    mine = study_identity(
        study_provenance.get("design") or {}, study_provenance.get("model_hash"), study_provenance.get("fit_hash")
    )
    if _plain(data.get("identity")) != _plain(mine):
        out["note"] = (
            f"{path} was made for another study, model or fit (its axes, population, assessment, model hash or fit "
            "hash differ); rerun 'abscopal sensitivity' on this study to judge its conclusions."
        )
        return out
    try:
        out["method"] = str(data["method"])
        out["n_samples"] = int(data["n_samples"])
        out["n_patients"] = int(data["n_patients"])
        out["threshold"] = f"{float(data['threshold']):.0%}"
        out["conclusions"] = [
            [str(c["statement"]), str(c["reference_text"]), str(c["share_text"]), str(c["verdict"])]
            for c in data["conclusions"]
        ]
        out["timing"] = [[str(t["timing"]), f"{float(t['share']):.0%}"] for t in data["timing_shares"]]
    except (KeyError, TypeError, ValueError) as exc:
        out["note"] = f"{path} is malformed ({type(exc).__name__}: {exc}); not used."
        out["conclusions"], out["timing"] = [], []
    return out
