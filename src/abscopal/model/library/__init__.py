"""Models shipped with abscopal, looked up by name with :func:`get_model`.

* ``nsclc``: the default stage IV NSCLC RT + anti-PD-(L)1 model (:func:`.nsclc.nsclc_model`);
* ``kosinsky2018``: Kosinsky et al. 2018 re-expressed from BioModels BIOMD0000000863
  (:func:`.kosinsky2018.kosinsky2018`), the check that the spec language is general.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import ModelError, unknown_name_message
from ..spec import ModelSpec
from .kosinsky2018 import kosinsky2018
from .nsclc import default_variability, nsclc_model

__all__ = ["MODELS", "default_variability", "get_model", "kosinsky2018", "nsclc_model"]

MODELS: dict[str, Callable[..., ModelSpec]] = {"nsclc": nsclc_model, "kosinsky2018": kosinsky2018}


def get_model(name: str, **options: Any) -> ModelSpec:
    """Build the library model ``name`` with its keyword ``options`` (e.g. ``n_lesions=3``)."""
    if not isinstance(name, str) or name not in MODELS:
        raise ModelError(unknown_name_message("model", str(name), MODELS))
    try:
        return MODELS[name](**options)
    except TypeError as exc:
        raise ModelError(f"model {name!r}: invalid options {options}: {exc}") from None
