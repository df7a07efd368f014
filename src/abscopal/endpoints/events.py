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
    """First time each row of ``cumulative`` reaches its threshold (linear interpolation), inf if never.

    All rows at once: the scan position is numpy's ``searchsorted`` (side ``left``) binary search, run on every row
    in step, so a row that is not sorted (a cumulative hazard with round-off wiggles) gives what
    ``np.searchsorted`` gives it.
    """
    cumulative = np.asarray(cumulative, dtype=np.float64)
    threshold = np.asarray(threshold, dtype=np.float64).reshape(-1)
    n, m = cumulative.shape
    rows = np.arange(n)
    lo, hi = np.zeros(n, dtype=np.intp), np.full(n, m, dtype=np.intp)
    while True:
        todo = lo < hi
        if not todo.any():
            break
        mid = lo + ((hi - lo) >> 1)
        value = cumulative[rows, np.minimum(mid, m - 1)]
        # numpy's order for floats: NaN sorts last (a < b, or b is NaN and a is not)
        less = (value < threshold) | (np.isnan(threshold) & ~np.isnan(value))
        lo = np.where(todo & less, mid + 1, lo)
        hi = np.where(todo & ~less, mid, hi)
    k = lo
    out = np.full(n, np.inf)
    first = k == 0
    out[first] = np.where(cumulative[first, 0] >= threshold[first], times[0], np.inf)
    inner = (k > 0) & (k < times.size)
    i, kk = rows[inner], k[inner]
    c0, c1 = cumulative[i, kk - 1], cumulative[i, kk]
    t0, t1 = times[kk - 1], times[kk]
    with np.errstate(divide="ignore", invalid="ignore"):
        interpolated = t0 + (threshold[inner] - c0) / (c1 - c0) * (t1 - t0)
    out[inner] = np.where(c1 > c0, interpolated, t1)
    return out
