"""Helpers shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import AbscopalError

if TYPE_CHECKING:
    import argparse

    import xarray as xr

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    """The ``add_subparsers()`` of the ``abscopal`` parser, where each command module adds its commands."""

__all__ = ["open_result"]

_NETCDF_MAGIC = (b"\x89HDF\r\n\x1a\n",)  # netCDF-4 is HDF5; abscopal writes netCDF-4 only


def open_result(path: str | Path, option: str) -> xr.Dataset:
    """Load a netCDF result written by abscopal; :class:`AbscopalError` naming ``option`` and the file if it is
    missing, not a file, or not netCDF-4."""
    import xarray as xr

    p = Path(path)
    if not p.exists():
        raise AbscopalError(f"{option} {str(p)!r} does not exist; pass a netCDF file written by abscopal")
    if not p.is_file():
        raise AbscopalError(f"{option} {str(p)!r} is not a file; pass a netCDF file written by abscopal")
    with open(p, "rb") as fh:  # OSError (permission denied) is reported by main()
        head = fh.read(8)
    if head not in _NETCDF_MAGIC:
        raise AbscopalError(
            f"{option} {str(p)!r} is not a netCDF-4 file; pass a .nc file written by abscopal "
            "simulate, endpoints or study"
        )
    try:
        with xr.open_dataset(p, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, ValueError, KeyError) as exc:
        raise AbscopalError(
            f"{option} {str(p)!r} cannot be read as netCDF ({exc}); pass a file written by abscopal"
        ) from None
