"""Model specification language, code generation and the model library."""

from .compile import CompiledModel as CompiledModel
from .compile import compile_model as compile_model
from .compile import default_cache_dir as default_cache_dir
from .compile import generate_source as generate_source
from .spec import OBSERVABLE_ROLES as OBSERVABLE_ROLES
from .spec import TIME as TIME
from .spec import Event as Event
from .spec import EventArgument as EventArgument
from .spec import Mechanism as Mechanism
from .spec import ModelSpec as ModelSpec
from .spec import Observable as Observable
from .spec import Parameter as Parameter
from .spec import State as State
from .spec import sym as sym

__all__ = [
    "OBSERVABLE_ROLES",
    "TIME",
    "CompiledModel",
    "Event",
    "EventArgument",
    "Mechanism",
    "ModelSpec",
    "Observable",
    "Parameter",
    "State",
    "compile_model",
    "default_cache_dir",
    "generate_source",
    "sym",
]
