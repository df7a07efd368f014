"""Reading input files that may come from someone else: UTF-8 TOML, and errors that name the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .errors import AbscopalError

__all__ = ["in_file", "read_toml"]


def read_toml(path: Path, kind: str, error: type[AbscopalError]) -> dict[str, Any]:
    """Parse the TOML file ``path``, raising ``error`` (naming ``kind`` and the file) if it is missing, not a regular
    file, not UTF-8 or not TOML."""
    if not path.is_file():
        raise error(f"{kind} {str(path)!r} does not exist or is not a regular file; check the path")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{kind} {str(path)!r} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}"
                    "); save it as UTF-8") from None
    except OSError as exc:
        raise error(f"{kind} {str(path)!r} cannot be read: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{kind} {str(path)!r} is not valid TOML: {exc}") from None


def in_file(exc: AbscopalError, path: Path) -> AbscopalError:
    """The same error with the file name in front of its message (unless it already names the file)."""
    msg = str(exc)
    if str(path) in msg:
        return exc
    try:
        return type(exc)(f"{path}: {msg}")
    except TypeError:  # an error class with another constructor: keep it as it is
        return exc
