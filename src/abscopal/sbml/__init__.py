"""SBML export and import (needs python-libsbml: ``pip install abscopal[sbml]``; docs/interop.md, "SBML").

* :func:`to_sbml` / :func:`export_sbml`: a model spec, with a treatment plan's fractions and doses as timed events,
  as SBML Level 3 Version 2 (:mod:`.write`).
* :func:`from_sbml` / :func:`read_sbml`: an SBML file of the supported subset as a model spec, plus the schedule of
  its timed events (:mod:`.read`).

libSBML is imported inside the functions, so ``import abscopal`` (and this package) works without it.
"""

from .read import MAX_SBML_BYTES as MAX_SBML_BYTES
from .read import SbmlModel as SbmlModel
from .read import from_sbml as from_sbml
from .read import read_sbml as read_sbml
from .write import SBML_LEVEL as SBML_LEVEL
from .write import SBML_VERSION as SBML_VERSION
from .write import SbmlExport as SbmlExport
from .write import export_sbml as export_sbml
from .write import require_libsbml as require_libsbml
from .write import to_sbml as to_sbml

__all__ = [
    "MAX_SBML_BYTES",
    "SBML_LEVEL",
    "SBML_VERSION",
    "SbmlExport",
    "SbmlModel",
    "export_sbml",
    "from_sbml",
    "read_sbml",
    "require_libsbml",
    "to_sbml",
]
