"""Calibration: trial targets (``fits/targets/*.toml``, format in ``docs/targets.md``), the objective, fitting
(:func:`calibrate`), parameter draws, validation on any trial and leave-one-trial-out cross-validation."""

from .crossval import CrossValidation, cross_validate
from .draws import ParameterDraws, parameter_draws
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
from .validate import ValidationResult, validate

__all__ = [
    "CONFIDENCE_TAGS",
    "OUTCOME_KINDS",
    "TAG_WEIGHTS",
    "ArmTarget",
    "AssessmentSpec",
    "Calibration",
    "CalibrationProblem",
    "ComparisonTarget",
    "CrossValidation",
    "DrugSpec",
    "Outcome",
    "ParameterDraws",
    "PopulationSpec",
    "RadiationSpec",
    "TargetError",
    "TrialTargets",
    "ValidationResult",
    "arm_seed",
    "calibrate",
    "cross_validate",
    "default_parameters",
    "load_all",
    "load_targets",
    "parameter_draws",
    "parse_targets",
    "validate",
]
