"""Fitted values, below calibration: what a fit is, where its file lives and how its values are applied.

* :mod:`~abscopal.fitted.format`: the calibration file (plain JSON) and :class:`Fit`, the fitted values with
  their uncertainty and provenance; model-hash checks.
* :mod:`~abscopal.fitted.shipped`: the shipped fit ``fits/default.json`` and how a run names a fit.
* :mod:`~abscopal.fitted.values`: fitted names (typical values, ``omega__``, ``effect__``, ``survival__``) split
  into their destinations and applied to a model and virtual patients.
* :mod:`~abscopal.fitted.draws`: parameter draws that carry a fit's uncertainty into predictions and studies.

Scenario files and studies use a fit through this package only; fitting one is :mod:`abscopal.calibrate`, which
builds on it (never the other way round; ``tests/unit/test_import_graph.py`` checks).
"""

from .draws import ParameterDraws, parameter_draws
from .format import FORMAT, Fit
from .shipped import default_fit_path, fit_file_hash, load_fit, resolve_fit_path
from .values import SplitValues, population_for, split_values

__all__ = [
    "FORMAT",
    "Fit",
    "ParameterDraws",
    "SplitValues",
    "default_fit_path",
    "fit_file_hash",
    "load_fit",
    "parameter_draws",
    "population_for",
    "resolve_fit_path",
    "split_values",
]
