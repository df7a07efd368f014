# ruff: noqa: F821
"""Numba integrator template, appended verbatim to every generated kernel module.

This file is *source text*, not a module to call: :mod:`abscopal.model.compile` reads it and
appends it after the generated model functions ``extend``, ``rhs``, ``jump``, ``initial`` and the
constants ``N_STATES``, ``N_EXT``, so the whole kernel is one importable module that numba can cache on disk
(``cache=True``) and that worker processes import instead of unpickling closures.

Method: explicit Runge-Kutta 5(4) of Dormand & Prince (1980, J Comput Appl Math 6:19-26), the
coefficients of Hairer, Norsett & Wanner, *Solving Ordinary Differential Equations I* (2nd ed.,
Table II.5.2), with FSAL, the standard step-size controller (safety 0.9, factor in [0.2, 10]),
Hairer's initial-step heuristic (Section II.4), and the free 4th-order dense output used by
scipy's ``RK45`` (Shampine 1986) to fill output times. Each patient is integrated on its own,
so the error is controlled per patient (never an RMS over the population). Integration is
split at event times and each event's jump map is applied exactly at its time.

Status codes: 0 ok, 1 too many steps (stiff?), 2 step size underflow, 3 non-finite state.
"""

import math

import numba as nb
import numpy as np

_C2 = 1.0 / 5.0
_C3 = 3.0 / 10.0
_C4 = 4.0 / 5.0
_C5 = 8.0 / 9.0
_A21 = 1.0 / 5.0
_A31 = 3.0 / 40.0
_A32 = 9.0 / 40.0
_A41 = 44.0 / 45.0
_A42 = -56.0 / 15.0
_A43 = 32.0 / 9.0
_A51 = 19372.0 / 6561.0
_A52 = -25360.0 / 2187.0
_A53 = 64448.0 / 6561.0
_A54 = -212.0 / 729.0
_A61 = 9017.0 / 3168.0
_A62 = -355.0 / 33.0
_A63 = 46732.0 / 5247.0
_A64 = 49.0 / 176.0
_A65 = -5103.0 / 18656.0
_B1 = 35.0 / 384.0
_B3 = 500.0 / 1113.0
_B4 = 125.0 / 192.0
_B5 = -2187.0 / 6784.0
_B6 = 11.0 / 84.0
# error estimate coefficients b - b_hat (scipy.integrate._ivp.rk.RK45.E)
_E1 = -71.0 / 57600.0
_E3 = 71.0 / 16695.0
_E4 = -71.0 / 1920.0
_E5 = 17253.0 / 339200.0
_E6 = -22.0 / 525.0
_E7 = 1.0 / 40.0
# dense-output matrix of scipy RK45.P (rows k1..k7, columns x, x^2, x^3, x^4)
_P = np.array(
    [
        [1.0, -8048581381.0 / 2820520608.0, 8663915743.0 / 2820520608.0, -12715105075.0 / 11282082432.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 131558114200.0 / 32700410799.0, -68118460800.0 / 10900136933.0, 87487479700.0 / 32700410799.0],
        [0.0, -1754552775.0 / 470086768.0, 14199869525.0 / 1410260304.0, -10690763975.0 / 1880347072.0],
        [0.0, 127303824393.0 / 49829197408.0, -318862633887.0 / 49829197408.0, 701980252875.0 / 199316789632.0],
        [0.0, -282668133.0 / 205662961.0, 2019193451.0 / 616988883.0, -1453857185.0 / 822651844.0],
        [0.0, 40617522.0 / 29380423.0, -110615467.0 / 29380423.0, 69997945.0 / 29380423.0],
    ]
)


@nb.njit(cache=True)
def _extended(p0):
    p = np.empty(N_EXT)
    extend(p0, p)
    return p


@nb.njit(cache=True)
def _clip(y, nonneg):
    clipped = False
    for i in range(y.shape[0]):
        if nonneg[i] and y[i] < 0.0:
            y[i] = 0.0
            clipped = True
    return clipped


@nb.njit(cache=True)
def _rms(v, y, ynew, rtol, atol):
    acc = 0.0
    for i in range(v.shape[0]):
        sc = atol[i] + rtol * max(abs(y[i]), abs(ynew[i]))
        r = v[i] / sc
        acc += r * r
    return math.sqrt(acc / v.shape[0])


@nb.njit(cache=True)
def _initial_step(t, y, f0, p, span, rtol, atol, f1, y1):
    n = y.shape[0]
    d0 = 0.0
    d1 = 0.0
    for i in range(n):
        sc = atol[i] + abs(y[i]) * rtol
        d0 += (y[i] / sc) ** 2
        d1 += (f0[i] / sc) ** 2
    d0 = math.sqrt(d0 / n)
    d1 = math.sqrt(d1 / n)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    h0 = min(h0, span)
    for i in range(n):
        y1[i] = y[i] + h0 * f0[i]
    rhs(t + h0, y1, p, f1)
    d2 = 0.0
    for i in range(n):
        sc = atol[i] + abs(y[i]) * rtol
        d2 += ((f1[i] - f0[i]) / sc) ** 2
    d2 = math.sqrt(d2 / n) / h0
    dm = max(d1, d2)
    if dm <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / dm) ** 0.2
    return min(100.0 * h0, h1, span)


@nb.njit(cache=True)
def _solve_one(p, t0, t_out, ev_t, ev_k, ev_a, rtol, atol, nonneg, max_steps, out, counts):
    """Integrate one patient; fill ``out`` (n_out, N_STATES). Return (status, time).

    ``counts`` receives (accepted steps, rejected steps, right-hand-side evaluations).
    """
    n = N_STATES
    p = _extended(p)
    y = np.empty(n)
    initial(p, y)
    ynew = np.empty(n)
    ytmp = np.empty(n)
    err = np.empty(n)
    k0 = np.empty(n)
    k1 = np.empty(n)
    k2 = np.empty(n)
    k3 = np.empty(n)
    k4 = np.empty(n)
    k5 = np.empty(n)
    k6 = np.empty(n)
    Q = np.empty((n, 4))
    n_out = t_out.shape[0]
    t_end = t_out[n_out - 1]
    ne = ev_t.shape[0]
    j = 0
    e = 0
    t = t0
    steps = 0
    rejected = 0
    h_prev = 0.0
    while True:
        # events due now, in the given order, applied exactly
        while e < ne and ev_t[e] <= t:
            jump(ev_k[e], t, y, p, ev_a[e])
            _clip(y, nonneg)
            e += 1
        for i in range(n):
            if not math.isfinite(y[i]):
                return 3, t
        while j < n_out and t_out[j] <= t:
            out[j, :] = y
            j += 1
        if j >= n_out:
            counts[0] = steps - rejected
            counts[1] = rejected
            counts[2] = 7 * steps + 2 * (e + 1)
            return 0, t
        tb = t_end
        if e < ne and ev_t[e] < tb:
            tb = ev_t[e]
        # ---- integrate the smooth segment [t, tb] ----
        rhs(t, y, p, k0)
        if h_prev > 0.0:
            # after a jump, restart from the last accepted step: the controller shrinks it at once
            # if the jump made the problem harder (saves the ramp-up from a tiny initial step)
            h = min(h_prev, tb - t)
        else:
            h = _initial_step(t, y, k0, p, tb - t, rtol, atol, k1, ytmp)
        while t < tb:
            last = False
            if t + h >= tb or tb - (t + h) < 1e-12 * max(1.0, abs(tb)):
                h = tb - t
                last = True
            for i in range(n):
                ytmp[i] = y[i] + h * _A21 * k0[i]
            rhs(t + _C2 * h, ytmp, p, k1)
            for i in range(n):
                ytmp[i] = y[i] + h * (_A31 * k0[i] + _A32 * k1[i])
            rhs(t + _C3 * h, ytmp, p, k2)
            for i in range(n):
                ytmp[i] = y[i] + h * (_A41 * k0[i] + _A42 * k1[i] + _A43 * k2[i])
            rhs(t + _C4 * h, ytmp, p, k3)
            for i in range(n):
                ytmp[i] = y[i] + h * (_A51 * k0[i] + _A52 * k1[i] + _A53 * k2[i] + _A54 * k3[i])
            rhs(t + _C5 * h, ytmp, p, k4)
            for i in range(n):
                ytmp[i] = y[i] + h * (_A61 * k0[i] + _A62 * k1[i] + _A63 * k2[i] + _A64 * k3[i] + _A65 * k4[i])
            rhs(t + h, ytmp, p, k5)
            for i in range(n):
                ynew[i] = y[i] + h * (_B1 * k0[i] + _B3 * k2[i] + _B4 * k3[i] + _B5 * k4[i] + _B6 * k5[i])
            rhs(t + h, ynew, p, k6)
            for i in range(n):
                err[i] = h * (_E1 * k0[i] + _E3 * k2[i] + _E4 * k3[i] + _E5 * k4[i] + _E6 * k5[i] + _E7 * k6[i])
            en = _rms(err, y, ynew, rtol, atol)
            steps += 1
            if steps > max_steps:
                return 1, t
            if not math.isfinite(en):
                en = 1e10
            if en <= 1.0:
                t_new = tb if last else t + h
                # dense output for the output times strictly inside (t, t_new): the quartic
                # interpolant's coefficients are formed once per step, then evaluated by Horner
                if j < n_out and t_out[j] < t_new:
                    for c in range(4):
                        p0, p2, p3, p4, p5, p6 = _P[0, c], _P[2, c], _P[3, c], _P[4, c], _P[5, c], _P[6, c]
                        for i in range(n):  # row 1 of P is zero
                            Q[i, c] = h * (k0[i] * p0 + k2[i] * p2 + k3[i] * p3 + k4[i] * p4 + k5[i] * p5 + k6[i] * p6)
                while j < n_out and t_out[j] < t_new:
                    x = (t_out[j] - t) / h
                    for i in range(n):
                        v = y[i] + x * (Q[i, 0] + x * (Q[i, 1] + x * (Q[i, 2] + x * Q[i, 3])))
                        if nonneg[i] and v < 0.0:
                            v = 0.0
                        out[j, i] = v
                    j += 1
                for i in range(n):
                    y[i] = ynew[i]
                    k0[i] = k6[i]
                t = t_new
                for i in range(n):
                    if not math.isfinite(y[i]):
                        return 3, t
                if _clip(y, nonneg):
                    rhs(t, y, p, k0)
                if not last or h >= h_prev:
                    h_prev = h
                fac = 10.0 if en == 0.0 else min(10.0, max(0.2, 0.9 * en**-0.2))
                h = h * fac
            else:
                rejected += 1
                h = h * max(0.2, 0.9 * en**-0.2)
                if h < 1e-13 * max(1.0, abs(t)):
                    return 2, t


@nb.njit(parallel=True, cache=True)
def solve_batch(P, t0, t_out, ev_ptr, ev_t, ev_k, ev_a, rtol, atol, nonneg, max_steps, Y, status, fail_time, counts):
    """Integrate every row of ``P`` in parallel (one patient per row)."""
    for i in nb.prange(P.shape[0]):
        a = ev_ptr[i]
        b = ev_ptr[i + 1]
        st, tf = _solve_one(
            P[i], t0, t_out, ev_t[a:b], ev_k[a:b], ev_a[a:b], rtol, atol, nonneg, max_steps, Y[i], counts[i]
        )
        status[i] = st
        fail_time[i] = tf


@nb.njit(cache=True)
def solve_batch_serial(
    P, t0, t_out, ev_ptr, ev_t, ev_k, ev_a, rtol, atol, nonneg, max_steps, Y, status, fail_time, counts
):
    """Same as :func:`solve_batch` on one thread."""
    for i in range(P.shape[0]):
        a = ev_ptr[i]
        b = ev_ptr[i + 1]
        st, tf = _solve_one(
            P[i], t0, t_out, ev_t[a:b], ev_k[a:b], ev_a[a:b], rtol, atol, nonneg, max_steps, Y[i], counts[i]
        )
        status[i] = st
        fail_time[i] = tf


@nb.njit(parallel=True, cache=True)
def observe_batch(t_out, P, Y, O):
    """Evaluate the observables for every patient and output time."""
    for i in nb.prange(Y.shape[0]):
        p = _extended(P[i])
        for j in range(Y.shape[1]):
            observe(t_out[j], Y[i, j], p, O[i, j])
