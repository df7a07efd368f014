"""Models shipped with abscopal, looked up by name with :func:`get_model`.

* ``nsclc``: the default stage IV NSCLC RT + anti-PD-(L)1 model (:func:`.nsclc.nsclc_model`); option
  ``version``: 2 (the default, model v2: :mod:`.nsclc_v2`) or 1 (model v1, kept for comparison);
* ``kosinsky2018``: Kosinsky et al. 2018 re-expressed from BioModels BIOMD0000000863
  (:func:`.kosinsky2018.kosinsky2018`), the check that the spec language is general.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ...errors import AbscopalError, ModelError, unknown_name_message
from ..spec import ModelSpec
from .kosinsky2018 import kosinsky2018
from .nsclc import VERSIONS, default_variability, nsclc_model

__all__ = [
    "MODELS",
    "default_variability",
    "get_model",
    "kosinsky2018",
    "library_model",
    "model_from_provenance",
    "nsclc_model",
    "version_options",
]

MODELS: dict[str, Callable[..., ModelSpec]] = {"nsclc": nsclc_model, "kosinsky2018": kosinsky2018}


def get_model(name: str, **options: Any) -> ModelSpec:
    """Build the library model ``name`` with its keyword ``options`` (e.g. ``n_lesions=3``, ``version=2``)."""
    if not isinstance(name, str) or name not in MODELS:
        raise ModelError(unknown_name_message("model", str(name), MODELS))
    try:
        return MODELS[name](**options)
    except TypeError as exc:
        raise ModelError(f"model {name!r}: invalid options {options}: {exc}") from None


def version_options(name: str, version: Any) -> dict[str, int]:
    """The build option ``{"version": version}`` of library model ``name`` (``{}`` for None); :class:`ModelError`
    for a model without versions or a version it does not have (the message names the versions)."""
    if version is None:
        return {}
    if name != "nsclc":
        raise ModelError(f"only model 'nsclc' has versions, not {name!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version not in VERSIONS:
        raise ModelError(f"model 'nsclc' has versions {list(VERSIONS)} (2: model v2), not {version!r}")
    return {"version": version}


def library_model(spec: ModelSpec) -> tuple[str, dict[str, Any]] | None:
    """The library name and options whose build reproduces ``spec`` (same content hash), or None.

    Tried: every library model with ``spec``'s lesion count and, for ``nsclc``, every version (other growth laws
    and PK forms are not tried). The options hold ``n_lesions`` and, for ``nsclc``, ``version``."""
    for name in MODELS:
        for extra in ({"version": v} for v in VERSIONS) if name == "nsclc" else ({},):
            options = {"n_lesions": spec.n_lesions, **extra}
            try:
                if get_model(name, **options).content_hash() == spec.content_hash():
                    return name, options
            except AbscopalError:
                break
    return None


def model_from_provenance(provenance: Mapping[str, Any]) -> ModelSpec | None:
    """The library model a fit was made for, from its provenance (``model_name_library``, ``n_lesions`` and, for
    ``nsclc``, ``model_version``, 1 when absent: fits older than version 2); None if it is not a library model."""
    name = provenance.get("model_name_library")
    if not name:
        return None
    version = provenance.get("model_version", 1) if name == "nsclc" else provenance.get("model_version")
    return get_model(name, n_lesions=provenance["n_lesions"], **version_options(name, version))
