"""abscopal: mechanistic ODE modelling of radiotherapy + immune-checkpoint blockade in stage IV NSCLC.

The public API is re-exported here explicitly; see the README for a quick start.
"""

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
    "simulate",
    "solve",
]
