"""The compiled Stein fit (:mod:`abscopal.endpoints._stein_kernel`) against its array formulation, bit for bit.

``reference_fit_stein`` is the numpy formulation that ``fit_stein`` used before the compiled kernel (all patients at
once; the shipped fit was made with it), kept here verbatim as the reference. Bit-identity is the requirement: the
Levenberg-Marquardt loop runs a fixed number of iterations for patients that never meet its stopping rule, and a
change in the last place of one intermediate value moved a calibration residual by 1.5e-7 relative (measured).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from abscopal.endpoints.survival_link import _GRID, _LOG_RATE_BOUNDS, SteinPrior, fit_stein, stein_sld


def _objective_parts(theta, t, y, y0, w, mask):
    kg, ks = np.exp(theta[:, :1]), np.exp(theta[:, 1:])
    t = np.where(mask, t, 0.0)
    eg, es = np.exp(kg * t), np.exp(-ks * t)
    f = y0[:, None] * (es + eg - 1.0)
    r = np.where(mask, (y - f) * w, 0.0)
    jac = np.stack([-y0[:, None] * kg * t * eg, y0[:, None] * ks * t * es], axis=-1) * np.where(mask, w, 0.0)[..., None]
    return r, jac


def reference_fit_stein(t_day, sld_mm, sld0_mm, prior, *, max_iter=200):
    """The array formulation (returns log KG, log KS per patient and the iterations run)."""
    t = np.asarray(t_day, dtype=float)[None, :]
    y = np.atleast_2d(np.asarray(sld_mm, dtype=float))
    y0 = np.asarray(sld0_mm, dtype=float).reshape(-1)
    evaluable = np.isfinite(y0) & (y0 > 0)
    mask = np.isfinite(y) & (t > 0) & evaluable[:, None]
    y0 = np.where(evaluable, y0, 1.0)
    err = prior or SteinPrior()
    w = 1.0 / np.sqrt(err.additive_sd_mm**2 + (err.proportional_sd * np.where(mask, y, 0.0)) ** 2)
    if prior is not None:
        mu = np.array(prior.log_rates_per_day)
        inv_omega = np.array([1.0 / prior.omega_log_kg, 1.0 / prior.omega_log_ks])
    else:
        mu, inv_omega = np.zeros(2), np.zeros(2)

    def objective(theta):
        r, _ = _objective_parts(theta, t, y, y0, w, mask)
        return (r**2).sum(axis=1) + (((theta - mu) * inv_omega) ** 2).sum(axis=1)

    n = y0.size
    starts = [np.array([a, b]) for a in _GRID for b in _GRID] + ([mu] if prior is not None else [])
    theta = np.tile(starts[0], (n, 1))
    best = objective(theta)
    for s in starts[1:]:
        cand = np.tile(s, (n, 1))
        val = objective(cand)
        better = val < best
        theta[better], best = cand[better], np.where(better, val, best)
    lam = np.full(n, 1e-3)
    eye = np.eye(2)
    it = 0
    for it in range(max_iter):  # noqa: B007 - the count is returned
        r, jac = _objective_parts(theta, t, y, y0, w, mask)
        prior_r = (theta - mu) * inv_omega
        a = np.einsum("pvi,pvj->pij", jac, jac) + eye * inv_omega**2
        g = np.einsum("pvi,pv->pi", jac, r) + prior_r * inv_omega
        damp = a + lam[:, None, None] * (a * eye + 1e-12 * eye)
        step = -np.linalg.solve(damp, g[..., None])[..., 0]
        cand = np.clip(theta + step, *_LOG_RATE_BOUNDS)
        val = objective(cand)
        ok = val <= best
        moved = ok & np.any(np.abs(cand - theta) > 1e-12, axis=1)
        theta[ok], best[ok] = cand[ok], val[ok]
        lam = np.where(ok, lam / 3.0, lam * 4.0)
        if np.all((ok & ~moved) | (lam > 1e8)):
            break
    theta[~evaluable] = np.array(err.log_rates_per_day)
    return theta, it + 1


VISITS = np.array([0.0, 42.0, 84.0, 126.0, 168.0, 210.0, 252.0, 294.0, 336.0, 378.0, 420.0, 504.0, 588.0, 672.0])


def _patients(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy Stein curves over a wide range of rates, with missing scans, flat and vanishing SLDs, non-evaluable
    patients (no baseline) and scans after a cutoff (NaN)."""
    rng = np.random.default_rng(seed)
    sld0 = rng.lognormal(math.log(60.0), 0.7, n)
    kg = np.exp(rng.uniform(math.log(1e-5), math.log(0.02), n))
    ks = np.exp(rng.uniform(math.log(1e-5), math.log(0.05), n))
    y = stein_sld(VISITS[None], sld0[:, None], kg[:, None], ks[:, None])
    y = np.maximum(y * rng.lognormal(0.0, 0.1, y.shape) + rng.normal(0.0, 2.0, y.shape), 0.0)
    y[:, 0] = sld0
    y[rng.random(y.shape) < 0.1] = np.nan  # missed scans
    y[rng.random(n) < 0.2, 9:] = np.nan  # a cutoff
    y[: n // 20, 1:] = y[: n // 20, :1]  # flat
    y[n // 20 : n // 10, 3:] = 0.0  # complete response
    sld0 = y[:, 0].copy()
    sld0[rng.random(n) < 0.05] = 0.0  # no target lesion: not evaluable
    sld0[rng.random(n) < 0.02] = np.nan
    return y, sld0


@pytest.mark.parametrize(
    ("seed", "prior", "max_iter"),
    [(0, SteinPrior(), 200), (1, SteinPrior(omega_log_kg=0.3, additive_sd_mm=5.0), 200), (2, None, 60), (3, None, 0)],
)
def test_compiled_stein_fit_is_bit_identical_to_the_array_formulation(seed, prior, max_iter):
    y, sld0 = _patients(400, seed)
    fit = fit_stein(VISITS, y, sld0, prior, max_iter=max_iter)
    theta, _ = reference_fit_stein(VISITS, y, sld0, prior, max_iter=max_iter)
    np.testing.assert_array_equal(fit.kg_per_day, np.exp(theta[:, 0]))
    np.testing.assert_array_equal(fit.ks_per_day, np.exp(theta[:, 1]))


def test_compiled_stein_fit_stops_where_the_array_formulation_stops():
    """Exact curves without noise: every patient converges, and the global stop comes before max_iter."""
    rng = np.random.default_rng(5)
    sld0 = rng.uniform(20.0, 120.0, 50)
    y = stein_sld(VISITS[None], sld0[:, None], rng.uniform(1e-3, 5e-3, (50, 1)), rng.uniform(5e-3, 2e-2, (50, 1)))
    theta, iterations = reference_fit_stein(VISITS, y, sld0, None)
    assert iterations < 200  # the stopping rule was reached, not max_iter
    fit = fit_stein(VISITS, y, sld0, None)
    np.testing.assert_array_equal(fit.kg_per_day, np.exp(theta[:, 0]))
    np.testing.assert_array_equal(fit.ks_per_day, np.exp(theta[:, 1]))


def test_one_ulp_changes_the_fit_so_the_comparison_can_fail():
    """The bit-identity test is not vacuous: a last-place change of the data changes the estimates."""
    y, sld0 = _patients(200, 7)
    fit = fit_stein(VISITS, y, sld0, SteinPrior())
    nudged = fit_stein(VISITS, np.nextafter(y, np.inf), sld0, SteinPrior())
    assert not np.array_equal(fit.kg_per_day, nudged.kg_per_day)


def test_empty_and_single_patient():
    empty = fit_stein(VISITS, np.zeros((0, VISITS.size)), np.zeros(0), SteinPrior())
    assert empty.kg_per_day.shape == (0,)
    y, sld0 = _patients(1, 11)
    theta, _ = reference_fit_stein(VISITS, y, sld0, SteinPrior())
    np.testing.assert_array_equal(fit_stein(VISITS, y, sld0, SteinPrior()).kg_per_day, np.exp(theta[:, 0]))


@pytest.mark.parametrize("n", [1, 5, 7, 8, 9, 16, 23, 127, 128, 129, 200, 257, 1000, 4099])
def test_pairwise_sum_is_numpys(n):
    """The objective's sum over the visits is numpy's pairwise summation of a row, for any number of visits."""
    from abscopal.endpoints._stein_kernel import _pairwise

    rows = np.random.default_rng(n).lognormal(0.0, 3.0, (50, n))
    np.testing.assert_array_equal([0.0 + _pairwise(row, 0, n) for row in rows], rows.sum(axis=1))
