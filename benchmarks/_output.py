"""Shared output of the benchmark scripts: one JSON line (``--json``) or an aligned table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def print_result(result: Mapping[str, Any], *, as_json: bool) -> None:
    """Print ``result`` as one JSON line or as ``name  value`` rows (floats to 4 significant digits)."""
    if as_json:
        print(json.dumps(dict(result)))
        return
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
