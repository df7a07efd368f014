"""Calibration inputs: trial targets (``fits/targets/*.toml``, format in ``docs/targets.md``)."""

from .targets import (
    CONFIDENCE_TAGS,
    OUTCOME_KINDS,
    TAG_WEIGHTS,
    ArmTarget,
    AssessmentSpec,
    ComparisonTarget,
    DrugSpec,
    Outcome,
    PopulationSpec,
    RadiationSpec,
    TargetError,
    TrialTargets,
    load_all,
    load_targets,
    parse_targets,
)

__all__ = [
    "CONFIDENCE_TAGS",
    "OUTCOME_KINDS",
    "TAG_WEIGHTS",
    "ArmTarget",
    "AssessmentSpec",
    "ComparisonTarget",
    "DrugSpec",
    "Outcome",
    "PopulationSpec",
    "RadiationSpec",
    "TargetError",
    "TrialTargets",
    "load_all",
    "load_targets",
    "parse_targets",
]
