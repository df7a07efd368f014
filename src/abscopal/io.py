"""Safe writing of results: atomic, never silently overwriting, never over an input, a device or a folder.

Every command calls :func:`check_outputs` on all its output paths before any work (simulation, fitting), so a
refused or unwritable output fails in a second, not after an hour; :func:`write_atomic` repeats the file-type
check at write time.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import xarray as xr

from .errors import AbscopalError

__all__ = [
    "JsonArtefact",
    "OutputExistsError",
    "OutputPathError",
    "check_output_dir",
    "check_outputs",
    "figure_formats",
    "write_atomic",
    "write_netcdf",
]


class OutputExistsError(AbscopalError, FileExistsError):
    """The output file exists and overwriting was not requested."""


class OutputPathError(AbscopalError, ValueError):
    """An output path can never be written (a device, a folder, an input, a duplicate, not writable)."""


def _refuse_non_regular(path: Path, what: str = "output") -> None:
    """Raise :class:`OutputPathError` if ``path`` exists (or is a link) and is not a regular file."""
    if not os.path.lexists(path):
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise OutputPathError(
            f"{what} {str(path)!r} is a broken symbolic link; remove it or choose another path"
        ) from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise OutputPathError(
            f"{what} {str(path)!r} is {kind}; abscopal only replaces regular files, even with "
            "--force; choose a file path"
        )


def figure_formats() -> frozenset[str]:
    """File extensions (without the dot) that matplotlib can write, e.g. ``png``, ``svg``, ``pdf``."""
    from matplotlib.figure import Figure

    return frozenset(Figure().canvas.get_supported_filetypes())


def _existing_ancestor(path: Path) -> Path:
    p = path
    while not os.path.lexists(p):
        if p.parent == p:
            break
        p = p.parent
    return p


def _check_writable_dir(folder: Path, what: str, path: Path) -> None:
    """The folder that will hold ``path`` exists or can be created, and a file can really be created in it."""
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise OutputPathError(f"{what} {str(path)!r}: {str(base)!r} is not a folder; choose another path")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"{what} {str(path)!r}: folder {str(base)!r} is not writable; choose another path or fix its permissions"
        )
    try:  # os.access is not the whole truth (read-only mounts, ACLs, root): create and remove a real file
        fd, probe = tempfile.mkstemp(dir=base, prefix=".abscopal-probe-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputPathError(
            f"{what} {str(path)!r}: cannot create a file in {str(base)!r} ({exc.strerror}); choose another path"
        ) from None


def _same(a: Path, b: Path) -> bool:
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_outputs(
    outputs: Mapping[str, str | Path | None],
    *,
    inputs: Iterable[str | Path | None] = (),
    force: bool = False,
    figures: Iterable[str] = (),
) -> dict[str, Path]:
    """Check every output path of a command before any work; return the paths given (``None`` ones dropped).

    Parameters
    ----------
    outputs
        Option name (e.g. ``"--out"``) to the path it names; ``None`` values are skipped.
    inputs
        The command's input files: no output may be one of them (compared as resolved paths and with
        :func:`os.path.samefile`, so links and hard links count), even with ``force``.
    force
        Allow replacing existing regular files.
    figures
        Option names among ``outputs`` that are figures: their extension must be one matplotlib writes
        (:func:`figure_formats`); no extension means PNG.

    Raises
    ------
    OutputExistsError
        An output exists and ``force`` is false.
    OutputPathError
        An output exists and is not a regular file (device, folder, FIFO, link to one; also with ``force``), is
        one of the inputs, is named twice, has an unsupported figure extension, or its folder is not writable.
    """
    given = {k: Path(v) for k, v in outputs.items() if v is not None}
    ins = [Path(p) for p in inputs if p is not None]
    figs = set(figures)
    seen: dict[Path, str] = {}
    for opt, path in given.items():
        if str(path) == "" or path.name in ("", ".", ".."):
            raise OutputPathError(f"{opt} {str(path)!r} names no file; give a file path")
        _refuse_non_regular(path, opt)
        for i in ins:
            if _same(path, i):
                raise OutputPathError(
                    f"{opt} {str(path)!r} is an input of this command ({str(i)!r}); abscopal "
                    "never writes over its inputs, even with --force: choose another path"
                )
        key = path.resolve()
        for other_path, other in seen.items():
            if other_path == key or _same(path, other_path):
                raise OutputPathError(
                    f"{opt} {str(path)!r} and {other} name the same file; give each output its own path"
                )
        seen[key] = f"{opt} {str(path)!r}"
        if opt in figs:
            fmt = path.suffix[1:].lower() or "png"
            formats = figure_formats()
            if fmt not in formats:
                raise OutputPathError(
                    f"{opt} {str(path)!r}: unknown figure format {fmt!r}; use one of {', '.join(sorted(formats))}"
                )
        if os.path.lexists(path) and not force:
            raise OutputExistsError(f"{opt} {str(path)!r} exists; choose another path or pass --force")
        _check_writable_dir(path.parent, opt, path)
    return given


def check_output_dir(path: str | Path, *, option: str = "--out") -> Path:
    """Check that ``path`` is a folder that exists or can be created and is writable (no file is written in it).

    Raises :class:`OutputPathError` if ``path`` exists and is not a folder, or cannot be written.
    """
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise OutputPathError(f"{option} {str(path)!r} exists and is not a folder; choose a new or empty folder")
    _check_writable_dir(path, option, path)
    return path


def write_atomic(path: str | Path, writer: Callable[[Path], object], *, force: bool = False) -> Path:
    """Call ``writer(tmp_path)`` (its return value is ignored) and move the result to ``path`` atomically.

    A crash leaves either the old file or none, never a partial one. Raises
    :class:`OutputExistsError` if ``path`` exists and ``force`` is false, and :class:`OutputPathError` if it
    exists and is not a regular file (a device, folder or FIFO is never replaced, even with ``force``).
    """
    path = Path(path)
    _refuse_non_regular(path)
    if os.path.lexists(path) and not force:
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

        def write(tmp: Path) -> None:
            tmp.write_text(text, encoding="utf-8")

        return write_atomic(path, write, force=force)
