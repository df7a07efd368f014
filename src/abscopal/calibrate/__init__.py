"""Calibration: trial targets (``fits/targets/*.toml``, format in ``docs/targets.md``), the objective, fitting
(:func:`calibrate`), parameter draws, validation on any trial and leave-one-trial-out cross-validation."""

from .crossval import CrossValidation, cross_validate
from .draws import ParameterDraws, parameter_draws
from .fit import Calibration, calibrate
from .objective import CalibrationProblem, arm_seed, default_parameters
from .report import fit_report
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
from .uncertainty import Posterior, identifiability_report, posterior, profile_likelihood, with_uncertainty
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
    "Posterior",
    "RadiationSpec",
    "TargetError",
    "TrialTargets",
    "ValidationResult",
    "arm_seed",
    "calibrate",
    "cross_validate",
    "default_parameters",
    "fit_report",
    "identifiability_report",
    "load_all",
    "load_targets",
    "parameter_draws",
    "parse_targets",
    "posterior",
    "profile_likelihood",
    "validate",
    "with_uncertainty",
]
