"""The former home of trial scoring, kept so that ``from abscopal.endpoints.summary import ...`` still works.

New code imports from :mod:`abscopal.endpoints` (or calls :func:`abscopal.score`). ``endpoints`` is
:func:`~abscopal.endpoints.pipeline.score` under its old name; the assessment settings class is
:class:`~abscopal.endpoints.assessment.TrialAssessment` (formerly ``Assessment``).
"""

from __future__ import annotations

from .assessment import trial_scans
from .death import SurvivalModel
from .pipeline import score as endpoints
from .survival import DAYS_PER_MONTH
from .toxicity import PneumonitisModel

__all__ = ["DAYS_PER_MONTH", "PneumonitisModel", "SurvivalModel", "endpoints", "trial_scans"]
