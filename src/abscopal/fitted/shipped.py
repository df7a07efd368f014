"""The shipped calibration (``fits/default.json``) and how a run names a fit.

``fit = "default"`` (the default of studies and scenario files) means the calibration shipped with the package:
``fits/default.json`` of the source tree (an editable or source install), or the copy bundled in the wheel as
``abscopal/_fits/default.json``. ``fit = "none"`` means the model's default parameter values (uncalibrated); any
other value is the path of a calibration JSON written by ``abscopal fit``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import AbscopalError
from .format import Fit

if TYPE_CHECKING:
    from ..model.compile import CompiledModel
    from ..model.spec import ModelSpec

__all__ = ["default_fit_path", "fit_file_hash", "load_fit", "resolve_fit_path"]


def default_fit_path() -> Path:
    """Path of the shipped default calibration (raises :class:`AbscopalError` if neither copy exists)."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "fits" / "default.json", here.parents[1] / "_fits" / "default.json"):
        if candidate.is_file():
            return candidate
    raise AbscopalError(
        "the shipped calibration fits/default.json is missing from this installation; name a "
        "calibration file (fit = 'path/to/fit.json') or use fit = 'none' for model defaults"
    )


def resolve_fit_path(fit: str | Path | None, *, relative_to: str | Path | None = None) -> Path | None:
    """``"default"`` -> :func:`default_fit_path`; ``None`` / ``"none"`` -> None; else the path (relative paths are
    taken relative to ``relative_to``, e.g. the study file's folder, if the file exists there). Raises
    :class:`AbscopalError` if the file does not exist."""
    if fit is None or str(fit) == "none":
        return None
    if str(fit) == "default":
        return default_fit_path()
    path = Path(fit)
    if not path.is_absolute() and relative_to is not None and (Path(relative_to) / path).is_file():
        path = Path(relative_to) / path
    if not path.is_file():
        raise AbscopalError(
            f"fit = {str(fit)!r}: no such calibration file; give the path of a file written by "
            "'abscopal fit', 'default' for the shipped fit or 'none' for model defaults"
        )
    return path


def load_fit(
    fit: str | Path | None, *, relative_to: str | Path | None = None, model: ModelSpec | CompiledModel | None = None
) -> Fit | None:
    """The :class:`~abscopal.fitted.format.Fit` a run names (None for ``"none"``). With ``model`` (a ModelSpec or
    CompiledModel), raises :class:`AbscopalError` naming the file unless the fit was made for that model
    (:meth:`Fit.check_model`)."""
    path = resolve_fit_path(fit, relative_to=relative_to)
    if path is None:
        return None
    cal = Fit.load(path)
    if model is not None:
        cal.check_model(model, path)
    return cal


def fit_file_hash(path: str | Path | None) -> str | None:
    """sha256 of a calibration file's bytes (None for no fit)."""
    return None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()
