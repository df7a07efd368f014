"""Safe writing of results: atomic, and never silently overwriting."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import xarray as xr

from .errors import AbscopalError

__all__ = ["JsonArtefact", "OutputExistsError", "write_atomic", "write_netcdf"]


class OutputExistsError(AbscopalError, FileExistsError):
    """The output file exists and overwriting was not requested."""


def write_atomic(path: str | Path, writer: Callable[[Path], None], *, force: bool = False) -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically.

    A crash leaves either the old file or none, never a partial one. Raises
    :class:`OutputExistsError` if ``path`` exists and ``force`` is false.
    """
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{str(path)!r} exists; choose another path or pass force=True (--force)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_netcdf(ds: xr.Dataset, path: str | Path, *, force: bool = False) -> Path:
    """Write ``ds`` as netCDF-4 (h5netcdf) atomically; see :func:`write_atomic`."""
    return write_atomic(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"), force=force)


class JsonArtefact:
    """Mixin for results saved as strict JSON: :meth:`to_json` from the class's ``to_dict()`` and an atomic
    :meth:`save` that refuses to overwrite unless ``force``."""

    def to_dict(self) -> dict:  # pragma: no cover - provided by the subclass
        raise NotImplementedError

    def to_json(self) -> str:
        """The result as strict JSON text (non-finite floats must already be encoded by ``to_dict``)."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write :meth:`to_json` to ``path`` atomically; raises :class:`OutputExistsError` if ``path`` exists and
        ``force`` is false."""
        text = self.to_json()
        return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force)
