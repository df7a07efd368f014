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

Stiff patients: the linearly implicit Rosenbrock method Rodas4 of Hairer & Wanner (*Solving Ordinary
Differential Equations II*, 2nd ed. 1996, Section IV.7; coefficients of their code RODAS, METH=1: 6 stages,
order 4, stiffly accurate, L-stable), with the analytic Jacobian and time derivative generated from the sympy
rates, its embedded order-3 error estimate, the Gustafsson predictive step-size controller of RODAS, its
order-3 dense output and the same exact jumps at events. Each step factors ``I/(gamma h) - J`` once (dense LU
with partial pivoting, hand-written below) and reuses it for all six stages.

Status codes: 0 ok, 1 too many steps (stiff?), 2 step size underflow, 3 non-finite state, 4 stiffness
detected (explicit method with the stiffness test only; the batch then switches to Rodas4).
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
def _solve_one(p, t0, t_out, ev_t, ev_k, ev_a, rtol, atol, nonneg, max_steps, out, counts, stiff_check):
    """Integrate one patient; fill ``out`` (n_out, N_STATES). Return (status, time).

    ``counts`` receives (accepted steps, rejected steps, right-hand-side evaluations). With ``stiff_check``,
    Hairer's stiffness test of DOPRI5 (Hairer & Wanner 1996, Section IV.2) runs on every accepted step and
    returns status 4 once h times the local Lipschitz estimate exceeded 3.25 fifteen times without six
    non-stiff steps in between; it reads the stages only, so the solution is the same with or without it.
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
    n_stiff = 0
    n_nonstiff = 0
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
                if stiff_check:
                    # h * |f(ynew) - f(y6)| / |ynew - y6| from the last two stages (Hairer's DOPRI5 test)
                    st_num = 0.0
                    st_den = 0.0
                    for i in range(n):
                        st_num += (k6[i] - k5[i]) ** 2
                        st_den += (ynew[i] - ytmp[i]) ** 2
                    if st_den > 0.0 and h * math.sqrt(st_num / st_den) > 3.25:
                        n_nonstiff = 0
                        n_stiff += 1
                        if n_stiff == 15:
                            return 4, t
                    else:
                        n_nonstiff += 1
                        if n_nonstiff == 6:
                            n_stiff = 0
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
            P[i], t0, t_out, ev_t[a:b], ev_k[a:b], ev_a[a:b], rtol, atol, nonneg, max_steps, Y[i], counts[i], False
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
            P[i], t0, t_out, ev_t[a:b], ev_k[a:b], ev_a[a:b], rtol, atol, nonneg, max_steps, Y[i], counts[i], False
        )
        status[i] = st
        fail_time[i] = tf


# ---- Rodas4: Hairer & Wanner (1996), Solving ODEs II, 2nd ed., Section IV.7; code RODAS (ROCOE, METH=1) ----
# Stage i solves (I/(gamma h) - J) k_i = f(t + c_i h, y + sum_j a_ij k_j) + sum_j (c_ij / h) k_j + h d_i df/dt;
# y1 = y + a_51 k1 + ... + a_54 k4 + k5 + k6 (stiffly accurate); the embedded solution lacks k6, so k6 is the
# error estimate; dense output y(t + s h) = (1 - s) y0 + s (y1 + (1 - s) (sum_j d2j k_j + s sum_j d3j k_j)).
_R_GAMMA = 0.25
_R_C2 = 0.386
_R_C3 = 0.21
_R_C4 = 0.63
_R_D1 = 0.25
_R_D2 = -0.1043
_R_D3 = 0.1035
_R_D4 = -0.03620000000000023
_R_A21 = 1.544
_R_A31 = 0.9466785280815826
_R_A32 = 0.2557011698983284
_R_A41 = 3.314825187068521
_R_A42 = 2.896124015972201
_R_A43 = 0.9986419139977817
_R_A51 = 1.221224509226641
_R_A52 = 6.019134481288629
_R_A53 = 12.53708332932087
_R_A54 = -0.687886036105895
_R_C21 = -5.6688
_R_C31 = -2.430093356833875
_R_C32 = -0.2063599157091915
_R_C41 = -0.1073529058151375
_R_C42 = -9.594562251023355
_R_C43 = -20.47028614809616
_R_C51 = 7.496443313967647
_R_C52 = -10.24680431464352
_R_C53 = -33.99990352819905
_R_C54 = 11.7089089320616
_R_C61 = 8.083246795921522
_R_C62 = -7.981132988064893
_R_C63 = -31.52159432874371
_R_C64 = 16.31930543123136
_R_C65 = -6.058818238834054
_R_D21 = 10.12623508344586
_R_D22 = -7.487995877610167
_R_D23 = -34.80091861555747
_R_D24 = -7.992771707568823
_R_D25 = 1.025137723295662
_R_D31 = -0.6762803392801253
_R_D32 = 6.087714651680015
_R_D33 = 16.43084320892478
_R_D34 = 24.76722511418386
_R_D35 = -6.594389125716872
_R_SAFE = 0.9
_R_FAC_MIN = 1.0 / 6.0  # h_new / h <= 6
_R_FAC_MAX = 5.0  # h_new / h >= 1/5


@nb.njit(cache=True)
def _lu_factor(A, piv):
    """LU factorisation with partial pivoting, in place: P A = L U with unit lower L below the diagonal.

    Whole rows are swapped (LAPACK ``getrf`` convention); ``piv[k]`` is the row swapped with row k at step k.
    Returns False if a pivot column is zero (or not finite): the matrix is singular.
    """
    n = A.shape[0]
    for k in range(n):
        m = k
        amax = abs(A[k, k])
        for i in range(k + 1, n):
            v = abs(A[i, k])
            if v > amax:
                amax = v
                m = i
        piv[k] = m
        if not (amax > 0.0 and amax < math.inf):
            return False
        if m != k:
            for c in range(n):
                tmp = A[k, c]
                A[k, c] = A[m, c]
                A[m, c] = tmp
        inv = 1.0 / A[k, k]
        for i in range(k + 1, n):
            f = A[i, k] * inv
            A[i, k] = f
            if f != 0.0:
                for c in range(k + 1, n):
                    A[i, c] -= f * A[k, c]
    return True


@nb.njit(cache=True)
def _lu_solve(A, piv, b):
    """Solve ``A x = b`` in place in ``b`` from the factors of :func:`_lu_factor`."""
    n = A.shape[0]
    for k in range(n):
        m = piv[k]
        if m != k:
            tmp = b[k]
            b[k] = b[m]
            b[m] = tmp
    for i in range(1, n):
        acc = b[i]
        for c in range(i):
            acc -= A[i, c] * b[c]
        b[i] = acc
    for i in range(n - 1, -1, -1):
        acc = b[i]
        for c in range(i + 1, n):
            acc -= A[i, c] * b[c]
        b[i] = acc / A[i, i]


@nb.njit(cache=True)
def _solve_one_ros(p, t0, t_out, ev_t, ev_k, ev_a, rtol, atol, nonneg, max_steps, out, counts):
    """Integrate one patient with Rodas4; same arguments, outputs, events and status codes as :func:`_solve_one`.

    ``counts`` receives (accepted steps, rejected steps, right-hand-side evaluations); each step also evaluates
    the Jacobian (and, for a time-dependent model, the time derivative) once and factors one matrix.
    """
    n = N_STATES
    p = _extended(p)
    y = np.empty(n)
    initial(p, y)
    ynew = np.empty(n)
    ytmp = np.empty(n)
    f0 = np.empty(n)
    fy = np.empty(n)
    ft = np.zeros(n)
    k1 = np.empty(n)
    k2 = np.empty(n)
    k3 = np.empty(n)
    k4 = np.empty(n)
    k5 = np.empty(n)
    k6 = np.empty(n)
    q2 = np.empty(n)
    q3 = np.empty(n)
    J = np.empty((n, n))
    E = np.empty((n, n))
    piv = np.empty(n, np.int64)
    n_out = t_out.shape[0]
    t_end = t_out[n_out - 1]
    ne = ev_t.shape[0]
    j = 0
    e = 0
    t = t0
    steps = 0
    rejected = 0
    n_fev = 0
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
            counts[2] = n_fev
            return 0, t
        tb = t_end
        if e < ne and ev_t[e] < tb:
            tb = ev_t[e]
        # ---- integrate the smooth segment [t, tb] ----
        rhs(t, y, p, f0)
        jac(t, y, p, J)
        if TIME_DEPENDENT:
            dfdt(t, y, p, ft)
        n_fev += 1
        fresh = False  # f, J (and df/dt) are evaluated at (t, y)
        if h_prev > 0.0:
            h = min(h_prev, tb - t)
        else:
            h = _initial_step(t, y, f0, p, tb - t, rtol, atol, k1, ytmp)
            n_fev += 1
        reject = False
        h_acc = 0.0  # Gustafsson's predictive controller: last accepted step and its error
        err_acc = 1e-2
        while t < tb:
            last = False
            if t + h >= tb or tb - (t + h) < 1e-12 * max(1.0, abs(tb)):
                h = tb - t
                last = True
            if fresh:
                rhs(t, y, p, f0)
                jac(t, y, p, J)
                if TIME_DEPENDENT:
                    dfdt(t, y, p, ft)
                n_fev += 1
                fresh = False
            steps += 1
            if steps > max_steps:
                return 1, t
            fac = 1.0 / (_R_GAMMA * h)
            for r in range(n):
                for c in range(n):
                    E[r, c] = -J[r, c]
                E[r, r] += fac
            if not _lu_factor(E, piv):
                rejected += 1
                reject = True
                h *= 0.5
                if h < 1e-13 * max(1.0, abs(t)):
                    return 2, t
                continue
            hc21 = _R_C21 / h
            hc31 = _R_C31 / h
            hc32 = _R_C32 / h
            hc41 = _R_C41 / h
            hc42 = _R_C42 / h
            hc43 = _R_C43 / h
            hc51 = _R_C51 / h
            hc52 = _R_C52 / h
            hc53 = _R_C53 / h
            hc54 = _R_C54 / h
            hc61 = _R_C61 / h
            hc62 = _R_C62 / h
            hc63 = _R_C63 / h
            hc64 = _R_C64 / h
            hc65 = _R_C65 / h
            hd1 = h * _R_D1
            hd2 = h * _R_D2
            hd3 = h * _R_D3
            hd4 = h * _R_D4
            for i in range(n):
                k1[i] = f0[i] + hd1 * ft[i]
            _lu_solve(E, piv, k1)
            for i in range(n):
                ytmp[i] = y[i] + _R_A21 * k1[i]
            rhs(t + _R_C2 * h, ytmp, p, fy)
            for i in range(n):
                k2[i] = fy[i] + hc21 * k1[i] + hd2 * ft[i]
            _lu_solve(E, piv, k2)
            for i in range(n):
                ytmp[i] = y[i] + _R_A31 * k1[i] + _R_A32 * k2[i]
            rhs(t + _R_C3 * h, ytmp, p, fy)
            for i in range(n):
                k3[i] = fy[i] + hc31 * k1[i] + hc32 * k2[i] + hd3 * ft[i]
            _lu_solve(E, piv, k3)
            for i in range(n):
                ytmp[i] = y[i] + _R_A41 * k1[i] + _R_A42 * k2[i] + _R_A43 * k3[i]
            rhs(t + _R_C4 * h, ytmp, p, fy)
            for i in range(n):
                k4[i] = fy[i] + hc41 * k1[i] + hc42 * k2[i] + hc43 * k3[i] + hd4 * ft[i]
            _lu_solve(E, piv, k4)
            for i in range(n):
                ytmp[i] = y[i] + _R_A51 * k1[i] + _R_A52 * k2[i] + _R_A53 * k3[i] + _R_A54 * k4[i]
            rhs(t + h, ytmp, p, fy)
            for i in range(n):
                k5[i] = fy[i] + hc51 * k1[i] + hc52 * k2[i] + hc53 * k3[i] + hc54 * k4[i]
            _lu_solve(E, piv, k5)
            for i in range(n):
                ynew[i] = ytmp[i] + k5[i]  # the embedded (order 3) solution
            rhs(t + h, ynew, p, fy)
            for i in range(n):
                k6[i] = fy[i] + hc61 * k1[i] + hc62 * k2[i] + hc63 * k3[i] + hc64 * k4[i] + hc65 * k5[i]
            _lu_solve(E, piv, k6)
            for i in range(n):
                ynew[i] += k6[i]
            n_fev += 5
            en = _rms(k6, y, ynew, rtol, atol)
            if not math.isfinite(en):
                en = 1e10
            fac = max(_R_FAC_MIN, min(_R_FAC_MAX, en**0.25 / _R_SAFE))
            if en <= 1.0:
                if h_acc > 0.0:
                    fac_g = max(_R_FAC_MIN, min(_R_FAC_MAX, (h_acc / h) * (en * en / err_acc) ** 0.25 / _R_SAFE))
                    fac = max(fac, fac_g)
                h_acc = h
                err_acc = max(1e-2, en)
                h_new = h / fac
                if reject:
                    h_new = min(h_new, h)
                reject = False
                t_new = tb if last else t + h
                if j < n_out and t_out[j] < t_new:
                    for i in range(n):
                        q2[i] = _R_D21 * k1[i] + _R_D22 * k2[i] + _R_D23 * k3[i] + _R_D24 * k4[i] + _R_D25 * k5[i]
                        q3[i] = _R_D31 * k1[i] + _R_D32 * k2[i] + _R_D33 * k3[i] + _R_D34 * k4[i] + _R_D35 * k5[i]
                while j < n_out and t_out[j] < t_new:
                    x = (t_out[j] - t) / h
                    for i in range(n):
                        v = (1.0 - x) * y[i] + x * (ynew[i] + (1.0 - x) * (q2[i] + x * q3[i]))
                        if nonneg[i] and v < 0.0:
                            v = 0.0
                        out[j, i] = v
                    j += 1
                for i in range(n):
                    y[i] = ynew[i]
                t = t_new
                for i in range(n):
                    if not math.isfinite(y[i]):
                        return 3, t
                _clip(y, nonneg)
                fresh = True
                if not last or h >= h_prev:
                    h_prev = h
                h = h_new
            else:
                rejected += 1
                reject = True
                h = h / fac
                if h < 1e-13 * max(1.0, abs(t)):
                    return 2, t


@nb.njit(cache=True)
def _ros_range(
    idx, lo, hi, P, t0, t_out, ev_ptr, ev_t, ev_k, ev_a, rtol, atol, nonneg, max_steps, Y, status, fail_time, counts
):
    for k in range(lo, hi):
        i = idx[k]
        a = ev_ptr[i]
        b = ev_ptr[i + 1]
        st, tf = _solve_one_ros(
            P[i], t0, t_out, ev_t[a:b], ev_k[a:b], ev_a[a:b], rtol, atol, nonneg, max_steps, Y[i], counts[i]
        )
        status[i] = st
        fail_time[i] = tf


@nb.njit(parallel=True, cache=True)
def solve_batch_ros(
    idx, P, t0, t_out, ev_ptr, ev_t, ev_k, ev_a, rtol, atol, nonneg, max_steps, Y, status, fail_time, counts
):
    """Integrate the rows ``idx`` of ``P`` with Rodas4, in parallel (one patient per row)."""
    for k in nb.prange(idx.shape[0]):
        _ros_range(
            idx,
            k,
            k + 1,
            P,
            t0,
            t_out,
            ev_ptr,
            ev_t,
            ev_k,
            ev_a,
            rtol,
            atol,
            nonneg,
            max_steps,
            Y,
            status,
            fail_time,
            counts,
        )


@nb.njit(cache=True)
def solve_batch_ros_serial(
    idx, P, t0, t_out, ev_ptr, ev_t, ev_k, ev_a, rtol, atol, nonneg, max_steps, Y, status, fail_time, counts
):
    """Same as :func:`solve_batch_ros` on one thread."""
    _ros_range(
        idx,
        0,
        idx.shape[0],
        P,
        t0,
        t_out,
        ev_ptr,
        ev_t,
        ev_k,
        ev_a,
        rtol,
        atol,
        nonneg,
        max_steps,
        Y,
        status,
        fail_time,
        counts,
    )


@nb.njit(cache=True)
def _auto_one(
    i,
    P,
    t0,
    t_out,
    ev_ptr,
    ev_t,
    ev_k,
    ev_a,
    rtol,
    atol,
    nonneg,
    max_steps,
    max_steps_ros,
    Y,
    status,
    fail_time,
    counts,
    switched,
):
    a = ev_ptr[i]
    b = ev_ptr[i + 1]
    st, tf = _solve_one(
        P[i], t0, t_out, ev_t[a:b], ev_k[a:b], ev_a[a:b], rtol, atol, nonneg, max_steps, Y[i], counts[i], True
    )
    if st != 0:
        switched[i] = True
        st, tf = _solve_one_ros(
            P[i], t0, t_out, ev_t[a:b], ev_k[a:b], ev_a[a:b], rtol, atol, nonneg, max_steps_ros, Y[i], counts[i]
        )
    status[i] = st
    fail_time[i] = tf


@nb.njit(parallel=True, cache=True)
def solve_batch_auto(
    P,
    t0,
    t_out,
    ev_ptr,
    ev_t,
    ev_k,
    ev_a,
    rtol,
    atol,
    nonneg,
    max_steps,
    max_steps_ros,
    Y,
    status,
    fail_time,
    counts,
    switched,
):
    """Dormand-Prince with the stiffness test; a patient found stiff (or failing) is integrated with Rodas4."""
    for i in nb.prange(P.shape[0]):
        _auto_one(
            i,
            P,
            t0,
            t_out,
            ev_ptr,
            ev_t,
            ev_k,
            ev_a,
            rtol,
            atol,
            nonneg,
            max_steps,
            max_steps_ros,
            Y,
            status,
            fail_time,
            counts,
            switched,
        )


@nb.njit(cache=True)
def solve_batch_auto_serial(
    P,
    t0,
    t_out,
    ev_ptr,
    ev_t,
    ev_k,
    ev_a,
    rtol,
    atol,
    nonneg,
    max_steps,
    max_steps_ros,
    Y,
    status,
    fail_time,
    counts,
    switched,
):
    """Same as :func:`solve_batch_auto` on one thread."""
    for i in range(P.shape[0]):
        _auto_one(
            i,
            P,
            t0,
            t_out,
            ev_ptr,
            ev_t,
            ev_k,
            ev_a,
            rtol,
            atol,
            nonneg,
            max_steps,
            max_steps_ros,
            Y,
            status,
            fail_time,
            counts,
            switched,
        )


@nb.njit(parallel=True, cache=True)
def observe_batch(t_out, P, Y, O):
    """Evaluate the observables for every patient and output time."""
    for i in nb.prange(Y.shape[0]):
        p = _extended(P[i])
        for j in range(Y.shape[1]):
            observe(t_out[j], Y[i, j], p, O[i, j])
