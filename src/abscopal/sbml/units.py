"""abscopal unit strings as SBML unit definitions (and back, by name).

A unit string is a product of factors joined by ``*`` and ``/`` with parentheses, e.g. ``"1/(day*cell)"``,
``"ug/mL"``, ``"mm3"``, ``"1e9/L"``. A factor is a number (a multiplier such as ``1e9``) or a known unit
(:data:`BASE_UNITS`) with an optional integer power written as a suffix (``mm3``) or with ``^`` (``mm^3``).
``"1"`` is dimensionless. A string with an unknown unit cannot be expressed: :func:`unit_definition` returns
None for it and the export leaves the quantity without units (the list is :func:`unexpressed_units`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["BASE_UNITS", "SbmlUnit", "unit_definition", "unit_id"]


@dataclass(frozen=True)
class SbmlUnit:
    """One ``<unit>`` of an SBML unit definition: ``(multiplier * 10^scale * kind)^exponent``."""

    kind: str
    exponent: int = 1
    scale: int = 0
    multiplier: float = 1.0


# name -> (SBML kind, scale, multiplier) of one power of the unit
BASE_UNITS: dict[str, tuple[str, int, float]] = {
    "s": ("second", 0, 1.0),
    "second": ("second", 0, 1.0),
    "min": ("second", 0, 60.0),
    "h": ("second", 0, 3600.0),
    "hour": ("second", 0, 3600.0),
    "day": ("second", 0, 86400.0),
    "d": ("second", 0, 86400.0),
    "week": ("second", 0, 604800.0),
    "m": ("metre", 0, 1.0),
    "cm": ("metre", -2, 1.0),
    "mm": ("metre", -3, 1.0),
    "um": ("metre", -6, 1.0),
    "µm": ("metre", -6, 1.0),
    "L": ("litre", 0, 1.0),
    "l": ("litre", 0, 1.0),
    "dL": ("litre", -1, 1.0),
    "mL": ("litre", -3, 1.0),
    "uL": ("litre", -6, 1.0),
    "µL": ("litre", -6, 1.0),
    "nL": ("litre", -9, 1.0),
    "g": ("gram", 0, 1.0),
    "kg": ("gram", 3, 1.0),
    "mg": ("gram", -3, 1.0),
    "ug": ("gram", -6, 1.0),
    "µg": ("gram", -6, 1.0),
    "ng": ("gram", -9, 1.0),
    "mol": ("mole", 0, 1.0),
    "mmol": ("mole", -3, 1.0),
    "umol": ("mole", -6, 1.0),
    "µmol": ("mole", -6, 1.0),
    "nmol": ("mole", -9, 1.0),
    "pmol": ("mole", -12, 1.0),
    "Gy": ("gray", 0, 1.0),
    "cGy": ("gray", -2, 1.0),
    "cell": ("item", 0, 1.0),
    "cells": ("item", 0, 1.0),
    "DSB": ("item", 0, 1.0),
    "item": ("item", 0, 1.0),
    "%": ("dimensionless", 0, 0.01),
}
"""Unit names the export understands: name -> (SBML unit kind, scale, multiplier). Molar units follow."""
_MOLAR = {"M": 0, "mM": -3, "uM": -6, "µM": -6, "nM": -9, "pM": -12}
"""Molar concentrations: mole (scale) per litre."""

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-zµ%]+)(?P<pow>\d+)?|(?P<op>[*/()^-]))"
)


class _UnparsableError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise _UnparsableError(text)
        pos = m.end()
        if m.group("num"):
            out.append(("num", m.group("num")))
        elif m.group("name"):
            out.append(("name", m.group("name")))
            if m.group("pow"):
                out += [("op", "^"), ("num", m.group("pow"))]
        else:
            out.append(("op", m.group("op")))
    return out


def _parse(text: str) -> tuple[dict[str, float], float]:
    """``({SBML kind: exponent}, multiplier)`` of a unit string (raises :class:`_UnparsableError`)."""
    toks = _tokens(text)
    i = 0

    def peek() -> tuple[str, str] | None:
        return toks[i] if i < len(toks) else None

    def take() -> tuple[str, str]:
        nonlocal i
        if i >= len(toks):
            raise _UnparsableError(text)
        i += 1
        return toks[i - 1]

    def power() -> int:
        sign = 1
        if peek() == ("op", "-"):
            take()
            sign = -1
        kind, val = take()
        if kind != "num" or not val.isdigit():
            raise _UnparsableError(text)
        return sign * int(val)

    def factor() -> tuple[dict[str, float], float]:
        kind, val = take()
        if (kind, val) == ("op", "("):
            dims, mult = product()
            if take() != ("op", ")"):
                raise _UnparsableError(text)
        elif kind == "num":
            dims, mult = {}, float(val)
        elif kind == "name" and val in BASE_UNITS:
            k, scale, m = BASE_UNITS[val]
            dims, mult = ({k: 1.0} if k != "dimensionless" else {}), m * 10.0**scale
        elif kind == "name" and val in _MOLAR:
            dims, mult = {"mole": 1.0, "litre": -1.0}, 10.0 ** _MOLAR[val]
        else:
            raise _UnparsableError(text)
        if peek() == ("op", "^"):
            take()
            e = power()
            dims, mult = {k: v * e for k, v in dims.items()}, mult**e
        return dims, mult

    def product() -> tuple[dict[str, float], float]:
        dims, mult = factor()
        while peek() in (("op", "*"), ("op", "/")):
            _, op = take()
            d2, m2 = factor()
            sign = 1.0 if op == "*" else -1.0
            for k, v in d2.items():
                dims[k] = dims.get(k, 0.0) + sign * v
            mult = mult * m2**sign
        return dims, mult

    dims, mult = product()
    if i != len(toks) or not (math.isfinite(mult) and mult > 0):
        raise _UnparsableError(text)
    return {k: v for k, v in dims.items() if v != 0}, mult


def unit_definition(text: str) -> list[SbmlUnit] | None:
    """The SBML units of the abscopal unit string ``text`` (``[]`` for dimensionless), or None if unknown.

    The whole factor (prefixes, ``1e9``, days...) goes on the first unit: as ``scale`` if it is a power of ten,
    else as ``multiplier``.
    """
    if not isinstance(text, str):
        return None
    try:
        dims, mult = _parse(text)
    except _UnparsableError:
        return None
    units = [SbmlUnit(kind=k, exponent=int(v)) for k, v in sorted(dims.items()) if float(v).is_integer()]
    if len(units) != len(dims):
        return None
    if not units:
        units = [SbmlUnit(kind="dimensionless")]
    if mult != 1.0:
        first = units[0]
        # (m * kind)^e = mult * kind^e  ->  m = mult^(1/e)
        m = mult ** (1.0 / first.exponent)
        lg = math.log10(m)
        if abs(lg - round(lg)) < 1e-9:  # a power of ten: a scale (mm, ug, 1e9)
            units[0] = SbmlUnit(kind=first.kind, exponent=first.exponent, scale=round(lg))
        else:  # minutes, days, percent: a multiplier
            units[0] = SbmlUnit(kind=first.kind, exponent=first.exponent, multiplier=m)
    return units


_BASE_KINDS = {
    "ampere",
    "avogadro",
    "becquerel",
    "candela",
    "celsius",
    "coulomb",
    "dimensionless",
    "farad",
    "gram",
    "gray",
    "henry",
    "hertz",
    "item",
    "joule",
    "katal",
    "kelvin",
    "kilogram",
    "litre",
    "lumen",
    "lux",
    "metre",
    "mole",
    "newton",
    "ohm",
    "pascal",
    "radian",
    "second",
    "siemens",
    "sievert",
    "steradian",
    "tesla",
    "volt",
    "watt",
    "weber",
}


def unit_id(text: str, taken: Iterable[str] = ()) -> str:
    """A valid, readable SBML UnitSId for the unit string ``text`` (``"1/day"`` -> ``"per_day"``), not in
    ``taken`` and not an SBML base unit kind."""
    s = text.replace("µ", "u").replace("%", "percent").strip()
    s = re.sub(r"^1\s*/", "per_", s)
    s = s.replace("/", "_per_").replace("*", "_").replace("^", "").replace("-", "m").replace(".", "p")
    s = re.sub(r"[^A-Za-z0-9_]", "", s)
    s = re.sub(r"_+", "_", s).strip("_") or "unit"
    if s[0].isdigit() or s in _BASE_KINDS:
        s = "u_" + s
    base, k, used = s, 1, set(taken)
    while s in used:
        k += 1
        s = f"{base}_{k}"
    return s
