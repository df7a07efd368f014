"""Compiled Levenberg-Marquardt of :func:`abscopal.endpoints.survival_link.fit_stein`, patient by patient.

:func:`lm_batch` runs, for every patient, exactly the arithmetic that the earlier array formulation of
``fit_stein`` (all patients at once in numpy; kept as the reference in ``tests/unit/test_stein_kernel.py``) ran on
that patient's row, in the same order, so the two agree bit for bit (the shipped fit was made with it):

* residuals, Jacobian and objective as the array formulation writes them (the same products in the same order);
  the sum of squared residuals over the visits is numpy's pairwise summation of a contiguous row
  (:func:`_pairwise`, numpy's ``pairwise_sum``: eight accumulators up to 128 values, halves above); the normal
  matrix and gradient sum over the visits one after the other from zero, as ``np.einsum`` does;
* the 2x2 damped system is solved by LU with partial pivoting, ``l = a10 * (1 / a00)`` (LAPACK ``dgetf2`` scales
  by the reciprocal pivot), then forward and back substitution, as ``np.linalg.solve`` (LAPACK ``dgesv``) does;
* the stopping rule is global: the array loop stops at the first iteration after which *every* patient has made a
  step that changes nothing (or has no step left). Each patient here records its estimates and that condition
  after every iteration; :func:`~abscopal.endpoints.survival_link.fit_stein` takes the estimates of the first
  iteration where the condition holds for all.

numba evaluates ``exp`` with the C library, as numpy does on CPUs without AVX-512 (numpy's AVX-512 ``exp`` can
differ in the last place); ``tests/unit/test_stein_kernel.py`` compares the two bit for bit.
The kernels are compiled on first use and cached by numba next to this file (the package's own ``__pycache__``,
like Python's ``.pyc``), or, where that is not writable, in numba's user cache folder, which is read only if it is
private (the guard of :mod:`abscopal.model.compile`).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numba as nb
import numpy as np

from ..model.compile import _guard_numba_caches

__all__ = ["lm_batch"]


@nb.njit(cache=True, nogil=True)
def _pairwise_block(a: np.ndarray, lo: int, n: int) -> float:  # pragma: no cover - compiled
    """numpy's pairwise sum of ``a[lo:lo + n]`` for ``n <= 128``: eight accumulators (sequential below 8)."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@nb.njit(cache=True, nogil=True)
def _pairwise(a: np.ndarray, lo: int, n: int) -> float:  # pragma: no cover - compiled
    """numpy's pairwise sum of ``a[lo:lo + n]`` (``pairwise_sum`` of numpy's ``loops_utils``): blocks of up to 128
    values, larger ranges split in two halves (rounded down to a multiple of 8) whose sums are added. Written with
    an explicit stack: numba's on-disk cache does not load recursive functions safely."""
    if n <= 128:
        return _pairwise_block(a, lo, n)
    task_lo = np.empty(128, np.int64)
    task_n = np.empty(128, np.int64)
    task_split = np.zeros(128, np.bool_)
    values = np.empty(128)
    nt = 1
    nv = 0
    task_lo[0] = lo
    task_n[0] = n
    while nt:
        nt -= 1
        tlo, tn, split = task_lo[nt], task_n[nt], task_split[nt]
        if split:  # both halves are summed: left + right
            right = values[nv - 1]
            left = values[nv - 2]
            nv -= 2
            values[nv] = left + right
            nv += 1
        elif tn <= 128:
            values[nv] = _pairwise_block(a, tlo, tn)
            nv += 1
        else:
            n2 = tn // 2
            n2 -= n2 % 8
            task_lo[nt], task_n[nt], task_split[nt] = tlo, tn, True
            task_lo[nt + 1], task_n[nt + 1], task_split[nt + 1] = tlo + n2, tn - n2, False
            task_lo[nt + 2], task_n[nt + 2], task_split[nt + 2] = tlo, n2, False
            nt += 3
    return values[0]


@nb.njit(cache=True, nogil=True)
def _data_part(y, y0, w, mask, eg, es, r, sq) -> float:  # pragma: no cover - compiled
    """Residuals ``r`` from ``exp(KG t)`` and ``exp(-KS t)``; returns numpy's ``(r**2).sum(axis=1)`` of the row."""
    for v in range(y.size):
        f = y0 * ((es[v] + eg[v]) - 1.0)
        r[v] = (y[v] - f) * w[v] if mask[v] else 0.0
        sq[v] = r[v] * r[v]
    return 0.0 + _pairwise(sq, 0, y.size)


@nb.njit(cache=True, nogil=True)
def _exps(th0, th1, tm, eg, es) -> None:  # pragma: no cover - compiled
    """``exp(KG t)`` and ``exp(-KS t)`` at log rates ``th0, th1`` (``tm``: the scan days, 0 where unused)."""
    kg = math.exp(th0)
    ks = math.exp(th1)
    for v in range(tm.size):
        eg[v] = math.exp(kg * tm[v])
        es[v] = math.exp(-ks * tm[v])


@nb.njit(cache=True, nogil=True)
def _prior_part(th0, th1, mu, inv_omega) -> float:  # pragma: no cover - compiled
    p0 = (th0 - mu[0]) * inv_omega[0]
    p1 = (th1 - mu[1]) * inv_omega[1]
    return (0.0 + p0 * p0) + p1 * p1


@nb.njit(cache=True, nogil=True)
def _clip(x: float, lo: float, hi: float) -> float:  # pragma: no cover - compiled
    if x != x:
        return x
    return min(max(x, lo), hi)


@nb.njit(cache=True, nogil=True, parallel=True)
def lm_batch(
    t, y, y0, w, mask, mu, inv_omega, grid, with_mu, lo, hi, max_iter, theta_hist, done_hist, start_theta
):  # pragma: no cover - compiled
    """Grid start and ``max_iter`` Levenberg-Marquardt iterations of every patient (module docstring).

    ``t`` ``(visit,)``; ``y``, ``w``, ``mask`` ``(patient, visit)``; ``y0`` ``(patient,)``. The starts are the
    grid ``(grid[a], grid[b])`` for ``a``, ``b`` in order, then ``mu`` if ``with_mu``. Writes the grid's best start
    to ``start_theta`` ``(patient, 2)``, the estimates after each iteration to ``theta_hist``
    ``(patient, max_iter, 2)`` and the stopping condition to ``done_hist`` ``(patient, max_iter)``.
    Returns each patient's first iteration whose damped system had a zero pivot (``np.linalg.solve`` raises
    there), ``max_iter`` if none.
    """
    n, nv = y.shape
    ng = grid.size
    singular = np.full(n, max_iter, np.int64)
    for p in nb.prange(n):
        r = np.empty(nv)
        eg = np.empty(nv)
        es = np.empty(nv)
        sq = np.empty(nv)
        rc = np.empty(nv)
        egc = np.empty(nv)
        esc = np.empty(nv)
        tm = np.empty(nv)
        eg_grid = np.empty((ng, nv))
        es_grid = np.empty((ng, nv))
        for v in range(nv):
            tm[v] = t[v] if mask[p, v] else 0.0
        # start: the best point of the grid (the first of equal ones): every grid value's exponentials once
        for k in range(ng):
            _exps(grid[k], grid[k], tm, eg_grid[k], es_grid[k])
        th0, th1 = grid[0], grid[0]
        best = _data_part(y[p], y0[p], w[p], mask[p], eg_grid[0], es_grid[0], r, sq)
        best += _prior_part(th0, th1, mu, inv_omega)
        for k in range(1, ng * ng + (1 if with_mu else 0)):
            if k < ng * ng:
                ka, kb = k // ng, k % ng
                c0, c1 = grid[ka], grid[kb]
                val = _data_part(y[p], y0[p], w[p], mask[p], eg_grid[ka], es_grid[kb], rc, sq)
            else:
                c0, c1 = mu[0], mu[1]
                _exps(c0, c1, tm, egc, esc)
                val = _data_part(y[p], y0[p], w[p], mask[p], egc, esc, rc, sq)
            val += _prior_part(c0, c1, mu, inv_omega)
            if val < best:
                th0, th1, best = c0, c1, val
        start_theta[p, 0] = th0
        start_theta[p, 1] = th1
        _exps(th0, th1, tm, eg, es)  # the residuals at the start
        _data_part(y[p], y0[p], w[p], mask[p], eg, es, r, sq)
        lam = 1e-3
        io0, io1 = inv_omega[0], inv_omega[1]
        for it in range(max_iter):
            kg = math.exp(th0)
            ks = math.exp(th1)
            s00 = 0.0
            s01 = 0.0
            s10 = 0.0
            s11 = 0.0
            g0 = 0.0
            g1 = 0.0
            for v in range(nv):
                wm = w[p, v] if mask[p, v] else 0.0
                j0 = (((-y0[p]) * kg) * tm[v]) * eg[v] * wm
                j1 = ((y0[p] * ks) * tm[v]) * es[v] * wm
                s00 += j0 * j0
                s01 += j0 * j1
                s10 += j1 * j0
                s11 += j1 * j1
                g0 += j0 * r[v]
                g1 += j1 * r[v]
            a00 = s00 + io0 * io0
            a01 = s01 + 0.0
            a10 = s10 + 0.0
            a11 = s11 + io1 * io1
            g0 = g0 + ((th0 - mu[0]) * io0) * io0
            g1 = g1 + ((th1 - mu[1]) * io1) * io1
            d00 = a00 + lam * (a00 + 1e-12)
            d01 = a01 + lam * ((a01 * 0.0) + 0.0)
            d10 = a10 + lam * ((a10 * 0.0) + 0.0)
            d11 = a11 + lam * (a11 + 1e-12)
            # LU with partial pivoting (LAPACK dgesv of numpy's solve)
            b0, b1 = g0, g1
            if abs(d10) > abs(d00):
                d00, d01, d10, d11 = d10, d11, d00, d01
                b0, b1 = b1, b0
            if d00 == 0.0:
                singular[p] = min(singular[p], it)
                x0 = math.nan
                x1 = math.nan
            else:
                el = d10 * (1.0 / d00)
                u11 = d11 - el * d01
                if u11 == 0.0:
                    singular[p] = min(singular[p], it)
                    x0 = math.nan
                    x1 = math.nan
                else:
                    x1 = (b1 - el * b0) / u11
                    x0 = (b0 - d01 * x1) / d00
            c0 = _clip(th0 + (-x0), lo, hi)
            c1 = _clip(th1 + (-x1), lo, hi)
            _exps(c0, c1, tm, egc, esc)
            val = _data_part(y[p], y0[p], w[p], mask[p], egc, esc, rc, sq) + _prior_part(c0, c1, mu, inv_omega)
            ok = val <= best
            moved = ok and (abs(c0 - th0) > 1e-12 or abs(c1 - th1) > 1e-12)
            if ok:
                th0, th1, best = c0, c1, val
                for v in range(nv):  # the residuals at the new estimates, computed above
                    r[v] = rc[v]
                    eg[v] = egc[v]
                    es[v] = esc[v]
                lam = lam / 3.0
            else:
                lam = lam * 4.0
            theta_hist[p, it, 0] = th0
            theta_hist[p, it, 1] = th1
            done_hist[p, it] = (ok and not moved) or lam > 1e8
    return singular


_guard_numba_caches(sys.modules[__name__], Path(__file__), __name__)
