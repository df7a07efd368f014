"""Scenario studies of RT timing x fractionation x site x drug (``abscopal study STUDY.toml --out DIR``).

:func:`study` is the one-call entry point; :func:`load_study` / :func:`parse_study` read designs,
:func:`run_study` runs them (in process or on Dask) and :func:`summary_table` reduces the result to one row per
cell (:func:`format_summary`: as plain text). See :mod:`abscopal.studies.design` for the file format and
:mod:`abscopal.studies.run` for what a cell computes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xarray as xr

from .design import AXES, Cell, StudyDesign, default_mean_lung_dose_gy, load_study, parse_study
from .run import SUMMARY_METRICS, assemble, prepare_study, run_cell, run_study, summary_table
from .table import format_summary

__all__ = [
    "AXES",
    "SUMMARY_METRICS",
    "Cell",
    "StudyDesign",
    "assemble",
    "default_mean_lung_dose_gy",
    "format_summary",
    "load_study",
    "parse_study",
    "prepare_study",
    "run_cell",
    "run_study",
    "study",
    "summary_table",
]


def study(
    design: StudyDesign | str | Path,
    out: str | Path | None = None,
    *,
    n_patients: int | None = None,
    seed: int | None = None,
    n_draws: int | None = None,
    **kwargs: Any,
) -> xr.Dataset:
    """Run a study given as a :class:`StudyDesign` or a TOML path; returns the study dataset.

    ``n_patients``, ``seed``, ``n_draws`` override the file (TOML paths only); ``kwargs`` go to
    :func:`run_study` (``scheduler``, ``workers``, ``progress``, ``force``, ``report``). With ``out`` the
    outputs are written there (``endpoints.nc``, ``summary.csv``, figures, ``report.html``, ``study.json``).
    """
    overrides: dict[str, Any] = {
        k: v for k, v in (("n_patients", n_patients), ("seed", seed), ("n_draws", n_draws)) if v is not None
    }
    if not isinstance(design, StudyDesign):
        design = load_study(design, **overrides)
    elif overrides:
        from dataclasses import replace

        design = replace(design, **overrides)
    return run_study(design, out, **kwargs)
