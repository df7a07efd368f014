"""Calibration: trial targets (``fits/targets/*.toml``, format in ``docs/targets.md``) and the objective."""

from .fit import Calibration, calibrate
from .objective import CalibrationProblem, arm_seed, default_parameters
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
    "Calibration",
    "CalibrationProblem",
    "ComparisonTarget",
    "DrugSpec",
    "Outcome",
    "PopulationSpec",
    "RadiationSpec",
    "TargetError",
    "TrialTargets",
    "arm_seed",
    "calibrate",
    "default_parameters",
    "load_all",
    "load_targets",
    "parse_targets",
]
