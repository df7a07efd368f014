"""Reading input files that may come from someone else: UTF-8 TOML, checks of their values shared by the scenario,
study and target formats, and errors that name the file, table and key."""

from __future__ import annotations

import tomllib
from dataclasses import MISSING
from pathlib import Path
from typing import Any

from .errors import AbscopalError, ScheduleError

__all__ = ["check_text", "construct", "control_character", "names", "read_toml", "required_fields", "with_context"]


def read_toml(path: Path, kind: str, error: type[AbscopalError]) -> dict[str, Any]:
    """Parse the TOML file ``path``, raising ``error`` (naming ``kind`` and the file) if it is missing, not a regular
    file, not UTF-8 or not TOML."""
    if not path.is_file():
        raise error(f"{kind} {str(path)!r} does not exist or is not a regular file; check the path")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{kind} {str(path)!r} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r}"
            "); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise error(f"{kind} {str(path)!r} cannot be read: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{kind} {str(path)!r} is not valid TOML: {exc}") from None


def with_context(exc: AbscopalError, context: str) -> AbscopalError:
    """The same error with ``context`` (a file name, or a table and key) in front of its message, unless the message
    names it already."""
    msg = str(exc)
    if context in msg:
        return exc
    try:
        return type(exc)(f"{context}: {msg}")
    except TypeError:  # an error class with another constructor: keep it as it is
        return exc


def control_character(text: str) -> str | None:
    """The first control character of ``text`` other than newline and tab (NUL, escape codes), or None."""
    return next((c for c in text if ord(c) < 32 and c not in "\n\t"), None)


def check_text(where: str, value: Any) -> str:
    """``value`` if it is a string without control characters (see :func:`control_character`), else ScheduleError."""
    if not isinstance(value, str):
        raise ScheduleError(f"{where} must be a string, got {value!r}; quote it")
    bad = control_character(value)
    if bad is not None:
        raise ScheduleError(f"{where} contains the control character {bad!r}; remove it")
    return value


def names(where: str, value: Any) -> tuple[str, ...]:
    """A list of names (a single string is refused: it would be split into characters)."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ScheduleError(
            f"{where} must be a list of names, got {value!r}; write e.g. [{value!r}]"
            if isinstance(value, str)
            else f"{where} must be a list of names, got {value!r}"
        )
    for v in value:
        if not isinstance(v, str):
            raise ScheduleError(f"{where} must hold names (strings), got {v!r} in {value!r}")
    return tuple(value)


def required_fields(cls: Any) -> list[str]:
    """Names of the dataclass fields of ``cls`` without a default."""
    return [
        n
        for n, f in cls.__dataclass_fields__.items()
        if f.init and f.default is MISSING and f.default_factory is MISSING
    ]


def construct(where: str, build: Any, spec: dict[str, Any], required: Any = ()) -> Any:
    """Call ``build(**spec)``, turning a missing or unexpected keyword into a ScheduleError naming ``where``."""
    missing = [k for k in required if k not in spec]
    if missing:
        raise ScheduleError(f"{where}: missing required key(s) {missing}; give them or a named 'regimen'")
    try:
        return build(**spec)
    except TypeError as exc:
        raise ScheduleError(f"{where}: {exc}; check the keys of this table") from None
    except AbscopalError as exc:
        raise with_context(exc, where) from None
