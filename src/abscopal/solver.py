"""Batched integration of compiled models: options, event packing and the stiff solver.

:func:`solve` integrates many parameter vectors (patients) at once, one patient per thread, each with its own
error control and exact jumps at event times, with a method of the kernel module:

* ``"dopri5"`` (default): the compiled Dormand-Prince 5(4). Patients on which it gives up (too many steps: the
  usual sign of stiffness) are re-integrated from the start with the compiled Rosenbrock method Rodas4 (Hairer &
  Wanner 1996; analytic sympy Jacobian), in parallel; they are reported as ``fallback_patients``.
* ``"auto"``: Dormand-Prince with Hairer's stiffness test; a patient found stiff (or failing) switches to Rodas4.
* ``"rosenbrock"``: Rodas4 for every patient (a model known to be stiff).
* ``"radau"``: scipy's ``Radau`` in Python for every patient (slow; the reference solver of the tests).

If a patient cannot be integrated, :class:`~abscopal.errors.SolverError` names the patient and time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp

from .errors import ParameterError, ScheduleError, SolverError, unknown_name_message
from .model.compile import CompiledModel
from .model.spec import ModelSpec

__all__ = ["FALLBACK_MIN_STEPS", "METHODS", "EventSchedule", "Solution", "SolverOptions", "solve"]

_STATUS = {1: "too many steps (stiff?)", 2: "step size underflow", 3: "non-finite state", 4: "stiff"}
METHODS = ("dopri5", "auto", "rosenbrock", "radau")
"""The values of :attr:`SolverOptions.method`."""
FALLBACK_MIN_STEPS = 200_000
"""Step budget of Rodas4 at least, when it takes over from the explicit method (whose budget may be small)."""


@dataclass(frozen=True, kw_only=True)
class SolverOptions:
    """Integrator settings; all explicit, none left to library defaults.

    Parameters
    ----------
    rtol
        Relative tolerance of the per-patient error norm.
    atol_scale
        Multiplies each state's own ``abs_tol`` to give its absolute tolerance.
    max_steps
        Step budget per patient of the method; for the explicit method of ``"dopri5"`` and ``"auto"``, the budget
        before Rodas4 takes over (which then gets at least :data:`FALLBACK_MIN_STEPS`).
    parallel
        Integrate patients on all cores (numba ``prange``).
    stiff_fallback
        With ``"dopri5"``: re-integrate the patients it gives up on with the compiled Rodas4 (else raise); the
        other methods ignore it.
    method
        ``"dopri5"`` (default: compiled Dormand-Prince 5(4), stiff fallback to Rodas4), ``"auto"``
        (Dormand-Prince with stiffness detection, switching to Rodas4), ``"rosenbrock"`` (compiled Rodas4 for
        every patient) or ``"radau"`` (scipy Radau for every patient; slow, for reference runs).
    """

    rtol: float = 1e-6
    atol_scale: float = 1.0
    max_steps: int = 200_000
    parallel: bool = True
    stiff_fallback: bool = True
    method: str = "dopri5"

    def __post_init__(self) -> None:
        for name in ("rtol", "atol_scale", "max_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
                raise ParameterError(f"solver {name} must be a number, got {v!r}; see SolverOptions for defaults")
        for name in ("parallel", "stiff_fallback"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ParameterError(f"solver {name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.method, str):
            raise ParameterError(f"solver method must be one of {list(METHODS)}, got {self.method!r}")
        if not (0 < self.rtol < 1):
            raise ParameterError(f"rtol must be in (0, 1), got {self.rtol!r}; 1e-6 is a good default")
        if not (self.atol_scale > 0 and math.isfinite(self.atol_scale)):
            raise ParameterError(f"atol_scale must be > 0, got {self.atol_scale!r}")
        if int(self.max_steps) != self.max_steps or self.max_steps < 10:
            raise ParameterError(f"max_steps must be an integer >= 10, got {self.max_steps!r}")
        if self.method not in METHODS:
            raise ParameterError(unknown_name_message("solver method", str(self.method), METHODS))

    def as_dict(self) -> dict[str, object]:
        """Plain dict for provenance."""
        return {
            "rtol": self.rtol,
            "atol_scale": self.atol_scale,
            "max_steps": int(self.max_steps),
            "parallel": self.parallel,
            "stiff_fallback": self.stiff_fallback,
            "method": self.method,
        }


@dataclass(frozen=True)
class EventSchedule:
    """Events of many patients in compressed-row form.

    ``times[ptr[i]:ptr[i+1]]`` are patient i's event times (sorted, stable), ``kinds`` the event
    indices into ``model.spec.events`` and ``args`` their argument rows (padded with zeros).
    """

    ptr: np.ndarray
    times: np.ndarray
    kinds: np.ndarray
    args: np.ndarray

    @classmethod
    def from_lists(
        cls, model: CompiledModel | ModelSpec, per_patient: Sequence[Sequence[tuple[float, str, Sequence[float]]]]
    ) -> EventSchedule:
        """Build from ``[[(time_day, event_name, args), ...] per patient]`` (events of ``model``, compiled or not)."""
        spec = model if isinstance(model, ModelSpec) else model.spec
        names = [e.name for e in spec.events]
        width = max([len(e.arguments) for e in spec.events] + [1])
        ptr = np.zeros(len(per_patient) + 1, np.int64)
        times: list[float] = []
        kinds: list[int] = []
        rows: list[np.ndarray] = []
        for i, events in enumerate(per_patient):
            order = sorted(range(len(events)), key=lambda k: events[k][0])
            for k in order:
                t, name, args = events[k]
                if name not in names:
                    raise ScheduleError(unknown_name_message("event", name, names))
                ev = spec.events[names.index(name)]
                if len(args) != len(ev.arguments):
                    raise ScheduleError(
                        f"event {name!r} takes {len(ev.arguments)} arguments {ev.argument_names}, got {len(args)}"
                    )
                row = np.zeros(width)
                row[: len(args)] = args
                if not (np.isfinite(t) and np.all(np.isfinite(row))):
                    raise ScheduleError(f"event {name!r} at time {t!r} has non-finite values {list(args)}")
                times.append(float(t))
                kinds.append(names.index(name))
                rows.append(row)
            ptr[i + 1] = len(times)
        args_arr = np.array(rows) if rows else np.zeros((0, width))
        return cls(ptr, np.array(times, float), np.array(kinds, np.int64), args_arr.reshape(-1, width))

    @classmethod
    def concatenate(cls, blocks: Sequence[tuple[EventSchedule, int]]) -> EventSchedule:
        """Stack schedules, each repeated for a number of patients.

        ``blocks`` is ``[(schedule of one patient, n_patients), ...]``; this is how all the
        patients of an arm, who share one plan, get their events without a Python loop.
        """
        ptrs, times, kinds, args = [np.zeros(1, np.int64)], [], [], []
        offset = 0
        width = max([b.args.shape[1] for b, _ in blocks] + [1])
        for sched, n in blocks:
            if sched.ptr.shape[0] != 2:
                raise ScheduleError("concatenate takes single-patient schedules")
            m = sched.times.shape[0]
            ptrs.append(offset + m * np.arange(1, n + 1, dtype=np.int64))
            offset += m * n
            times.append(np.tile(sched.times, n))
            kinds.append(np.tile(sched.kinds, n))
            a = np.zeros((m, width))
            a[:, : sched.args.shape[1]] = sched.args
            args.append(np.tile(a, (n, 1)))
        return cls(
            np.concatenate(ptrs),
            np.concatenate(times) if times else np.zeros(0),
            np.concatenate(kinds) if kinds else np.zeros(0, np.int64),
            np.concatenate(args) if args else np.zeros((0, width)),
        )

    @classmethod
    def empty(cls, model: CompiledModel, n_patients: int) -> EventSchedule:
        """No events for any patient."""
        return cls.from_lists(model, [[] for _ in range(n_patients)])


@dataclass(frozen=True)
class Solution:
    """Raw solver output: states ``y[patient, time, state]`` and observables ``obs``.

    ``counts[patient]`` holds (accepted steps, rejected steps, RHS evaluations) of the compiled method that
    finished the patient (zeros with ``"radau"``). ``fallback_patients`` are the patients Dormand-Prince gave up
    on under ``"dopri5"`` (re-integrated by Rodas4); ``stiff_patients`` all patients integrated by Rodas4.
    """

    t: np.ndarray
    y: np.ndarray
    obs: np.ndarray
    n_fallback: int = 0
    fallback_patients: tuple[int, ...] = field(default_factory=tuple)
    counts: np.ndarray | None = None
    stiff_patients: tuple[int, ...] = field(default_factory=tuple)


def _validate(model: CompiledModel, P: np.ndarray, t_out: np.ndarray, t0: float) -> None:
    if P.ndim != 2 or P.shape[1] != len(model.spec.all_parameters):
        raise ParameterError(
            f"parameter matrix must have shape (n_patients, {len(model.spec.all_parameters)}), got {P.shape}"
        )
    bad = ~np.isfinite(P)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        raise ParameterError(
            f"parameter {model.spec.parameter_names[k]!r} of patient {i} is {P[i, k]!r}; give a finite value"
        )
    if t_out.ndim != 1 or t_out.size == 0 or np.any(np.diff(t_out) <= 0) or not np.all(np.isfinite(t_out)):
        raise ScheduleError("output times must be a non-empty, finite, strictly increasing 1-d array")
    if t_out[0] < t0:
        raise ScheduleError(f"first output time {t_out[0]} lies before the start time {t0}")


def solve(
    model: CompiledModel,
    P: np.ndarray,
    t_out: np.ndarray,
    *,
    events: EventSchedule | None = None,
    t0: float | None = None,
    options: SolverOptions | None = None,
    labels: Sequence[str] | None = None,
    buffers: tuple[np.ndarray, np.ndarray] | None = None,
    observables: bool = True,
) -> Solution:
    """Integrate every row of ``P`` and return states and observables at ``t_out``.

    Parameters
    ----------
    model
        Compiled model.
    P
        Parameter matrix ``(n_patients, n_params)`` in ``model.spec.all_parameters`` order.
    t_out
        Output times (days), strictly increasing.
    events
        Per-patient events; none if omitted.
    t0
        Start time (default ``t_out[0]``); must not be after the first output time.
    options
        Solver settings.
    labels
        Per-patient labels used in error messages (e.g. ``"arm 'SBRT', patient 17"``).
    buffers
        Arrays to write the states and observables into (C-contiguous float64 of shapes ``(n_patients, n_times,
        n_states)`` and ``(n_patients, n_times, n_observables)``, or ``n_observables = 0`` without observables);
        returned as ``y`` and ``obs``. A caller solving patients in chunks reuses them (:mod:`abscopal.outputs`).
    observables
        Evaluate the observables (``False``: ``obs`` has no columns).

    Raises
    ------
    SolverError
        If a patient cannot be integrated (by Rodas4 either, where it takes over).
    """
    options = options or SolverOptions()
    P = np.ascontiguousarray(P, dtype=float)
    t_out = np.ascontiguousarray(t_out, dtype=float)
    t0 = float(t_out[0] if t0 is None else t0)
    _validate(model, P, t_out, t0)
    n = P.shape[0]
    events = events or EventSchedule.empty(model, n)
    if events.ptr.shape[0] != n + 1:
        raise ScheduleError(f"event schedule is for {events.ptr.shape[0] - 1} patients, parameters for {n}")
    spec = model.spec
    mod = model.module
    ns = len(spec.states)
    atol = np.array([s.abs_tol for s in spec.states]) * options.atol_scale
    nonneg = np.array([s.nonnegative for s in spec.states])
    n_obs = len(spec.observables) if observables else 0
    if buffers is None:
        Y, O = np.zeros((n, t_out.size, ns)), np.zeros((n, t_out.size, n_obs))
    else:
        Y, O = buffers
        for name, a, shape in (("states", Y, (n, t_out.size, ns)), ("observables", O, (n, t_out.size, n_obs))):
            if a.shape != shape or a.dtype != np.float64 or not a.flags.c_contiguous:
                raise ParameterError(f"buffers: the {name} buffer must be C-contiguous float64 of shape {shape}")
    status = np.zeros(n, np.int64)
    fail_time = np.zeros(n)
    counts = np.zeros((n, 3), np.int64)
    common = (P, t0, t_out, events.ptr, events.times, events.kinds, events.args, float(options.rtol), atol, nonneg)
    budget = int(options.max_steps)
    fallback = np.zeros(0, np.int64)
    stiff = np.zeros(0, np.int64)
    if options.method == "dopri5" and n:
        fn = mod.solve_batch if options.parallel else mod.solve_batch_serial
        fn(*common, budget, Y, status, fail_time, counts)
        fallback = np.flatnonzero(status)
        if fallback.size and not options.stiff_fallback:
            i = int(fallback[0])
            raise SolverError(_where(labels, i, fail_time[i]) + f": {_STATUS.get(int(status[i]), 'failed')}")
        if fallback.size:
            stiff = fallback
            status[stiff] = 0
            fn = mod.solve_batch_ros if options.parallel and stiff.size > 1 else mod.solve_batch_ros_serial
            fn(stiff, *common, max(budget, FALLBACK_MIN_STEPS), Y, status, fail_time, counts)
    elif options.method == "rosenbrock" and n:
        stiff = np.arange(n, dtype=np.int64)
        fn = mod.solve_batch_ros if options.parallel else mod.solve_batch_ros_serial
        fn(stiff, *common, budget, Y, status, fail_time, counts)
    elif options.method == "auto" and n:
        switched = np.zeros(n, np.bool_)
        fn = mod.solve_batch_auto if options.parallel else mod.solve_batch_auto_serial
        fn(*common, budget, max(budget, FALLBACK_MIN_STEPS), Y, status, fail_time, counts, switched)
        stiff = np.flatnonzero(switched)
    elif options.method == "radau":
        for i in range(n):
            a, b = events.ptr[i], events.ptr[i + 1]
            Y[i] = _radau_one(
                model,
                P[i],
                t0,
                t_out,
                events.times[a:b],
                events.kinds[a:b],
                events.args[a:b],
                options,
                atol,
                nonneg,
                lambda t, i=i: _where(labels, i, t),
            )
    bad = np.flatnonzero(status)
    if bad.size:
        i = int(bad[0])
        raise SolverError(
            _where(labels, i, fail_time[i]) + f": {_STATUS.get(int(status[i]), 'failed')} (Rosenbrock method Rodas4)"
        )
    if n_obs and n:
        mod.observe_batch(t_out, P, Y, O)
    fb = tuple(int(i) for i in fallback)
    return Solution(
        t=t_out,
        y=Y,
        obs=O,
        n_fallback=len(fb),
        fallback_patients=fb,
        counts=counts,
        stiff_patients=tuple(int(i) for i in stiff),
    )


def _where(labels: Sequence[str] | None, i: int, t: float) -> str:
    who = labels[i] if labels is not None else f"patient {i}"
    return f"{who} at t = {t:.6g} day"


def _radau_one(model, p, t0, t_out, ev_t, ev_k, ev_a, options, atol, nonneg, where):
    """Reference path (``method="radau"``): scipy Radau with the compiled RHS and analytic Jacobian."""
    mod = model.module
    ns = len(model.spec.states)
    out = np.zeros((t_out.size, ns))
    y = model.initial(p)
    p = model.extended(p)

    def f(t: float, y: np.ndarray) -> np.ndarray:
        dy = np.empty(ns)
        mod.rhs(t, y, p, dy)
        return dy

    def jac(t: float, y: np.ndarray) -> np.ndarray:
        J = np.empty((ns, ns))
        mod.jac(t, y, p, J)
        return J

    t, e, j = t0, 0, 0
    t_end = t_out[-1]
    while True:
        while e < ev_t.size and ev_t[e] <= t:
            mod.jump(int(ev_k[e]), t, y, p, ev_a[e])
            y[nonneg & (y < 0)] = 0.0
            e += 1
        while j < t_out.size and t_out[j] <= t:
            out[j] = y
            j += 1
        if j >= t_out.size:
            return out
        tb = min(t_end, ev_t[e]) if e < ev_t.size else t_end
        inside = t_out[(t_out > t) & (t_out < tb)]
        sol = solve_ivp(
            f, (t, tb), y, method="Radau", jac=jac, rtol=options.rtol, atol=atol, t_eval=np.append(inside, tb)
        )
        if sol.status != 0 or not np.all(np.isfinite(sol.y)):
            raise SolverError(where(float(sol.t[-1]) if sol.t.size else t) + f": Radau failed: {sol.message}")
        vals = sol.y.T
        vals[:, nonneg] = np.maximum(vals[:, nonneg], 0.0)
        out[j : j + inside.size] = vals[:-1]
        j += inside.size
        y = vals[-1].copy()
        t = tb
