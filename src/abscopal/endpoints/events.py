"""Events drawn against cumulative hazards: per-patient Exp(1) draws and first crossings.

A patient's event (a new lesion, death) happens when the cumulative hazard reaches the patient's Exp(1)
draw. The draws come from per-patient random streams, so patient ``k`` gets the same draws whatever the
number of patients (common random numbers).
"""

from __future__ import annotations

import numpy as np

__all__ = ["event_draws", "first_crossing"]


def event_draws(seed: int, n: int, k: int) -> np.ndarray:
    """Exp(1) draws per patient from per-patient streams (patient k independent of n), shape ``(n, k)``."""
    return np.array(
        [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i, 7919))).exponential(size=k) for i in range(n)]
    )


def first_crossing(times: np.ndarray, cumulative: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """First time each row of ``cumulative`` reaches its threshold (linear interpolation), inf if never."""
    out = np.full(cumulative.shape[0], np.inf)
    for i in range(cumulative.shape[0]):
        k = int(np.searchsorted(cumulative[i], threshold[i]))
        if k == 0:
            out[i] = times[0] if cumulative[i, 0] >= threshold[i] else np.inf
        elif k < times.size:
            c0, c1 = cumulative[i, k - 1], cumulative[i, k]
            out[i] = times[k - 1] + (threshold[i] - c0) / (c1 - c0) * (times[k] - times[k - 1]) if c1 > c0 else times[k]
    return out
