"""Calibration: the objective (:class:`CalibrationProblem`), fitting (:func:`calibrate`), uncertainty, fit
reports, validation on any trial and leave-one-trial-out cross-validation.

Builds on :mod:`abscopal.trials` (the trial targets it fits) and :mod:`abscopal.fitted` (what a fit is, its file,
its parameter draws and how its values are applied); nothing outside the command line imports this package.
"""

from .crossval import CrossValidation, cross_validate
from .fit import Calibration, calibrate
from .objective import CalibrationProblem, arm_seed, default_parameters
from .report import fit_report
from .uncertainty import Posterior, identifiability_report, posterior, profile_likelihood, with_uncertainty
from .validate import ValidationResult, validate

__all__ = [
    "Calibration",
    "CalibrationProblem",
    "CrossValidation",
    "Posterior",
    "ValidationResult",
    "arm_seed",
    "calibrate",
    "cross_validate",
    "default_parameters",
    "fit_report",
    "identifiability_report",
    "posterior",
    "profile_likelihood",
    "validate",
    "with_uncertainty",
]
