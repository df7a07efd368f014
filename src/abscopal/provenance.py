"""The software environment recorded in every artefact's provenance.

Results depend, in the last decimal places, on the interpreter, the numerical libraries and the machine
(a different CPU, libm or numpy/numba build may round differently). :func:`environment` names them, so a saved
simulation, fit, validation, cross-validation or study says what produced it. Versions are read from the
installed distributions' metadata (:mod:`importlib.metadata`); nothing is imported to find them.
"""

from __future__ import annotations

import functools
import platform
from importlib import metadata

from ._version import __version__

__all__ = ["ENVIRONMENT_PACKAGES", "environment", "format_environment"]

#: Distributions whose versions :func:`environment` records (besides Python and abscopal itself).
ENVIRONMENT_PACKAGES = ("numpy", "scipy", "numba", "llvmlite", "sympy", "lmfit", "xarray", "h5netcdf", "dask")


@functools.cache
def _environment() -> tuple[tuple[str, str | None], ...]:
    items: list[tuple[str, str | None]] = [
        ("python", platform.python_version()),
        ("python_implementation", platform.python_implementation()),
        ("abscopal", __version__),
    ]
    for name in ENVIRONMENT_PACKAGES:
        try:
            version: str | None = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = None  # not installed (optional, e.g. dask); recorded as null rather than guessed
        items.append((name, version))
    items += [("platform", platform.platform()), ("machine", platform.machine())]
    return tuple(items)


def environment() -> dict[str, str | None]:
    """Versions of Python, abscopal and its numerical dependencies, and the platform.

    Returns
    -------
    dict
        ``python``, ``python_implementation``, ``abscopal``, one key per name in :data:`ENVIRONMENT_PACKAGES`
        (``None`` if that distribution is not installed), ``platform`` and ``machine``; all values are strings, so
        the dict is JSON-serialisable. A new dict on each call (safe to modify).

    Examples
    --------
    >>> env = environment()
    >>> sorted(k for k in ("python", "numpy", "numba", "platform") if env[k])
    ['numba', 'numpy', 'platform', 'python']
    """
    return dict(_environment())


def format_environment(env: object) -> str:
    """One line for reports: ``"Python 3.11.7; numpy 2.4.6, ...; Linux-..."``, or ``"-"`` if not recorded.

    Parameters
    ----------
    env
        The ``environment`` entry of a provenance (:func:`environment`); anything else (``None`` in artefacts
        written before versions were recorded, or a malformed file) gives ``"-"``.
    """
    if not isinstance(env, dict) or not env:
        return "-"
    packages = ", ".join(f"{k} {env[k]}" for k in ENVIRONMENT_PACKAGES if env.get(k))
    parts = [f"Python {env.get('python', '?')}", packages, str(env.get("platform") or "")]
    return "; ".join(p for p in parts if p)
