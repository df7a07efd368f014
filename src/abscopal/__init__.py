"""abscopal: mechanistic ODE modelling of radiotherapy + immune-checkpoint blockade in stage IV NSCLC.

The public API is re-exported here explicitly; see the README for a quick start. Trial scoring
(:func:`score`, :class:`TrialAssessment`) and the submodules :mod:`abscopal.endpoints` and
:mod:`abscopal.plot` are imported on first use, so ``import abscopal`` loads neither scipy.stats nor
matplotlib.
"""

import importlib
from typing import Any

from ._version import __version__ as __version__
from .cite import cite as cite
from .errors import AbscopalError as AbscopalError
from .errors import AbscopalWarning as AbscopalWarning
from .errors import ModelError as ModelError
from .errors import ParameterError as ParameterError
from .errors import ScheduleError as ScheduleError
from .errors import SolverError as SolverError
from .model import CompiledModel as CompiledModel
from .model import ModelSpec as ModelSpec
from .model import compile_model as compile_model
from .model.library import default_variability as default_variability
from .model.library import get_model as get_model
from .model.library import kosinsky2018 as kosinsky2018
from .model.library import nsclc_model as nsclc_model
from .parameters import ParameterSet as ParameterSet
from .population import LogitNormal as LogitNormal
from .population import LogNormal as LogNormal
from .population import VirtualPopulation as VirtualPopulation
from .scenario import load_scenario as load_scenario
from .simulate import Arm as Arm
from .simulate import simulate as simulate
from .solver import SolverOptions as SolverOptions
from .solver import solve as solve
from .treatment import DrugRegimen as DrugRegimen
from .treatment import RadiationCourse as RadiationCourse
from .treatment import TreatmentPlan as TreatmentPlan
from .treatment import drug_regimen as drug_regimen
from .treatment import radiation_regimen as radiation_regimen

__all__ = [
    "AbscopalError",
    "AbscopalWarning",
    "Arm",
    "CompiledModel",
    "DrugRegimen",
    "LogNormal",
    "LogitNormal",
    "ModelError",
    "ModelSpec",
    "ParameterError",
    "ParameterSet",
    "RadiationCourse",
    "ScheduleError",
    "SolverError",
    "SolverOptions",
    "TreatmentPlan",
    "TrialAssessment",
    "VirtualPopulation",
    "__version__",
    "cite",
    "compile_model",
    "default_variability",
    "drug_regimen",
    "get_model",
    "kosinsky2018",
    "load_scenario",
    "nsclc_model",
    "radiation_regimen",
    "score",
    "simulate",
    "solve",
]

_LAZY = {"score": "abscopal.endpoints", "TrialAssessment": "abscopal.endpoints"}
"""Names imported on first use: name -> the module that defines it."""
_LAZY_MODULES = frozenset({"endpoints", "plot"})
"""Submodules imported on first attribute access (``ab.plot`` needs matplotlib)."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _LAZY_MODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _LAZY_MODULES)
