"""The cell cache: each finished cell as ``OUT/cells/<key>.npz``, written atomically, read without pickle.

A cell file stores its own key and a sha256 of its content; a truncated, corrupt or copied-over cell raises
:class:`_BadCellError` (the caller recomputes it with a warning).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    pass

__all__: list[str] = []


# ---- the cell cache ------------------------------------------------------------------------------------------
def _cell_digest(meta_bytes: bytes, arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 of a cell's header and arrays (names, dtypes, shapes, bytes), in name order."""
    h = hashlib.sha256(meta_bytes)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _save_cell(ds: xr.Dataset, path: Path) -> None:
    """Write a cell result as ``.npz`` (arrays) with a JSON header (dims, attrs), its key and a sha256, atomically.

    An internal cache format: an order of magnitude faster than netCDF for these small datasets (0.4 s per
    h5netcdf file was most of a small study's time), and loaded back losslessly by :func:`_load_cell`, which checks
    the stored key and digest.
    """
    from ..io import write_atomic

    meta = {"attrs": dict(ds.attrs), "vars": {}, "coords": {}}
    arrays: dict[str, np.ndarray] = {}
    for kind, items in (("vars", ds.data_vars.items()), ("coords", ds.coords.items())):
        for name, var in items:
            meta[kind][name] = {"dims": list(var.dims), "attrs": dict(var.attrs)}
            arrays[f"{kind}/{name}"] = var.values
    meta_bytes = json.dumps(meta, default=str).encode()
    arrays["__meta__"] = np.frombuffer(meta_bytes, dtype=np.uint8)
    arrays["__key__"] = np.frombuffer(str(ds.attrs["key"]).encode(), dtype=np.uint8)
    arrays["__sha256__"] = np.frombuffer(
        _cell_digest(meta_bytes, {k: v for k, v in arrays.items() if k not in ("__meta__", "__sha256__")}).encode(),
        dtype=np.uint8,
    )

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # mypy matches **arrays against allow_pickle too

    write_atomic(path, write, force=True)


class _BadCellError(Exception):
    """A cached cell file that must not be used (the message says why)."""


def _load_cell(path: Path, key: str | None = None) -> xr.Dataset:
    """Load a cell written by :func:`_save_cell`; raise :class:`_BadCellError` unless its stored key is ``key`` (if
    given) and its digest matches its content. Never unpickles (``allow_pickle=False``)."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:  # our handle: closed on any error
            arrays = {name: z[name] for name in z.files}
    except Exception as exc:
        raise _BadCellError(f"unreadable ({type(exc).__name__}: {exc})") from None
    if "__key__" not in arrays or "__sha256__" not in arrays or "__meta__" not in arrays:
        raise _BadCellError("no stored key or digest (written by an older abscopal)")
    try:
        stored_key = bytes(arrays.pop("__key__")).decode()
        digest = bytes(arrays.pop("__sha256__")).decode()
        meta_bytes = bytes(arrays["__meta__"])
        if (
            _cell_digest(
                meta_bytes,
                {k: v for k, v in arrays.items() if k != "__meta__"}
                | {"__key__": np.frombuffer(stored_key.encode(), dtype=np.uint8)},
            )
            != digest
        ):
            raise _BadCellError("content does not match its stored sha256 (corrupt or edited)")
        if key is not None and stored_key != key:
            raise _BadCellError(f"holds cell {stored_key!r}, not {key!r} (a cell file copied over another)")
        meta = json.loads(meta_bytes.decode())
        coords = {n: (m["dims"], arrays[f"coords/{n}"], m["attrs"]) for n, m in meta["coords"].items()}
        data = {n: (m["dims"], arrays[f"vars/{n}"], m["attrs"]) for n, m in meta["vars"].items()}
        return xr.Dataset(data, coords=coords, attrs=meta["attrs"])
    except _BadCellError:
        raise
    except Exception as exc:
        raise _BadCellError(f"inconsistent content ({type(exc).__name__}: {exc})") from None
