"""Time zero: hold the patients' drawn lesion sizes at the trial's time zero when their plan has a history.

A trial's day 0 is enrolment: the patients' drawn lesion sizes are their baseline scan, taken then. Radiation a
patient received before enrolment (a course with ``prior=True``, e.g. palliative RT months before the first
checkpoint-inhibitor dose) is *history*: it is simulated, from the first prior fraction on, but it must not move
the baseline. :func:`hold_sizes_at_time_zero` chooses each patient's lesion sizes at the start of the history so
that the simulated sizes *at time zero* equal the drawn ones: a batched shooting on the history segment only.

The unknowns are the start volumes ``x_j`` (the per-patient parameters ``baseline_volume_mm3_<j>``, which
:class:`~abscopal.patients.VirtualPatients` sets from the drawn diameters), the targets the drawn volumes
``v_j``, and the map ``x -> y(x)`` the simulated lesion volumes (the model's ``lesion_volume`` role) at time zero.
Per patient the root of ``log y(x) - log v`` is found in log space by Broyden's method (quasi-Newton: the
Jacobian ``d log y / d log x`` starts as the identity, so the first step is the multiplicative correction
``x <- x v / y``, and is updated by a rank-one secant update after each evaluation; the lesions of a patient are
coupled through the immune system, which sees the whole burden, so each patient has its own small matrix). Steps
are limited to a factor ``e^5`` and to the parameter's bounds. All patients of an arm are integrated together;
each iteration integrates only the patients not yet converged, and a patient stops when every lesion's volume is
within :data:`HISTORY_RTOL` (relative) at the same evaluation, or when its sizes stop changing (a step below
:data:`HISTORY_STALL_LOG` in log size: the solver's resolution), so its final start sizes are exactly the ones
last evaluated.

Rule for a lesion that the history *sterilises*: if even the largest start size the model allows (the upper
bound of ``baseline_volume_mm3_<j>``) leaves less than the drawn size at time zero (the prior course kills more
than the largest allowed lesion can make up), the lesion starts at that bound; its size at time zero is what the
history leaves (smaller than drawn), and it is counted (:attr:`HistoryFit.sterilised`; ``history_sterilised``
in the dataset, ``n_sterilised`` per arm in the provenance's ``time_zero``). This keeps the start size a
continuous function of the parameters (the calibration objective stays piecewise smooth). Likewise a lesion that
would have to start below ``1e-9`` mm3 (the history makes it grow from almost nothing) starts there and keeps its
error. Absent lesions (drawn volume 0) stay at 0.

Exactness: the shooting integrates exactly what the full simulation integrates up to time zero: the same start,
the same events, and the same integration segment around time zero (its integration runs to the first event at
or after time zero, as the full run's segment does), so the full run reproduces the last shooting evaluation at
time zero to the last bit and the size error at time zero is the shooting's own.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ScheduleError
from .model.compile import CompiledModel
from .model.spec import ModelSpec
from .solver import EventSchedule, SolverOptions, solve

__all__ = [
    "HISTORY_MAX_ITERATIONS",
    "HISTORY_RTOL",
    "HISTORY_STALL_LOG",
    "HistoryFit",
    "hold_sizes_at_time_zero",
    "size_parameters",
]

HISTORY_RTOL = 1e-10
"""Relative tolerance of the simulated lesion volume at time zero (the diameter's is a third of it)."""
HISTORY_STALL_LOG = 1e-13
"""A patient whose log start sizes move less than this in a step has stopped changing (the solver's resolution)."""
HISTORY_MAX_ITERATIONS = 60
"""Iterations (batched integrations of the history) at most; the lesions left then are reported, not raised."""
_MAX_STEP_LOG = 5.0  # at most a factor e^5 per step
_MIN_START_MM3 = 1e-9  # smallest start volume tried (a lesion the history makes grow from almost nothing)

Event = tuple[float, str, Sequence[float]]


@dataclass(frozen=True, kw_only=True, eq=False)
class HistoryFit:
    """What :func:`hold_sizes_at_time_zero` found for one arm; arrays are ``(patient, lesion)``.

    Attributes
    ----------
    start_volume_mm3
        The chosen volumes at the start of the history (0 for absent lesions).
    target_volume_mm3
        The drawn volumes that should hold at time zero.
    time_zero_volume_mm3
        The simulated volumes at time zero (the last shooting evaluation; the full run reproduces them).
    sterilised
        Lesions the history sterilises (module docstring: they start at the parameter's upper bound).
    iterations
        Batched integrations of the history.
    patient_solves
        Patient integrations of the history summed over the iterations.
    elapsed_s
        Wall time of the shooting.
    """

    start_volume_mm3: np.ndarray
    target_volume_mm3: np.ndarray
    time_zero_volume_mm3: np.ndarray
    sterilised: np.ndarray
    iterations: int
    patient_solves: int
    elapsed_s: float

    @property
    def rel_error(self) -> np.ndarray:
        """``|y / v - 1|`` per present lesion (NaN for absent lesions)."""
        present = self.target_volume_mm3 > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(present, np.abs(self.time_zero_volume_mm3 / self.target_volume_mm3 - 1.0), np.nan)

    def max_rel_error(self, *, include_sterilised: bool = False) -> float:
        """Largest relative volume error at time zero over present (by default: not sterilised) lesions."""
        keep = (self.target_volume_mm3 > 0) & (include_sterilised | ~self.sterilised)
        return float(self.rel_error[keep].max()) if keep.any() else 0.0

    def summary(self) -> dict[str, float | int]:
        """Plain numbers for provenance."""
        return {
            "iterations": int(self.iterations),
            "patient_solves": int(self.patient_solves),
            "n_lesions_held": int(((self.target_volume_mm3 > 0) & ~self.sterilised).sum()),
            "n_sterilised": int(self.sterilised.sum()),
            "max_rel_volume_error": self.max_rel_error(),
            "elapsed_s": round(float(self.elapsed_s), 3),
        }


def size_parameters(spec: ModelSpec) -> tuple[list[int], list[int], list[int] | None]:
    """Columns of the lesions' size parameters, indices of their ``lesion_volume`` outputs, and the columns of their
    start-size factors (``start_volume_factor_<j>``, or ``None`` if the model has none), lesion order.

    With factors (model v2), ``baseline_volume_mm3_<j>`` is the size at time zero (it anchors the growth and
    stays the drawn size) and the start size is ``baseline_volume_mm3_<j> * start_volume_factor_<j>``; without
    (model v1), ``baseline_volume_mm3_<j>`` is itself the start size.

    Raises
    ------
    ScheduleError
        If the model lacks ``baseline_volume_mm3_<j>`` for a lesion, or a per-lesion ``lesion_volume`` role.
    """
    names = list(spec.parameter_names)
    n_les = spec.n_lesions
    missing = [f"baseline_volume_mm3_{j}" for j in range(n_les) if f"baseline_volume_mm3_{j}" not in names]
    role = spec.roles.get("lesion_volume")
    outputs = sorted(
        ((o.lesion, i) for i, o in enumerate(spec.observables) if role is not None and o.group == role),
        key=lambda x: x[0] or 0,
    )
    if not n_les or missing or len(outputs) != n_les:
        raise ScheduleError(
            f"model {spec.name!r} cannot hold lesion sizes at time zero: a plan with prior courses needs "
            "per-lesion start sizes (parameters baseline_volume_mm3_<j>) and a per-lesion 'lesion_volume' output "
            f"role ({'missing ' + ', '.join(missing) if missing else 'no per-lesion lesion_volume role'}); drop "
            "prior = true or use the nsclc model"
        )
    factors = [f"start_volume_factor_{j}" for j in range(n_les)]
    factor_cols = [names.index(f) for f in factors] if all(f in names for f in factors) else None
    return [names.index(f"baseline_volume_mm3_{j}") for j in range(n_les)], [i for _, i in outputs], factor_cols


def _volume(u: np.ndarray, present: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Start volumes of log sizes ``u`` (absent lesions 0; ``exp(log(bound))`` may round above the bound)."""
    return np.where(present, np.minimum(np.exp(u), upper), 0.0)


def history_segment(events: Sequence[Event], time_zero: float, t_end: float) -> tuple[list[Event], float]:
    """The events the history integration needs and where it ends.

    The full run integrates the segment around time zero up to its next event; the history integration does the
    same, so it stops at the first event at or after ``time_zero`` (all events at that time applied), or at
    ``t_end`` without one.
    """
    later = [e[0] for e in events if e[0] >= time_zero]
    end = min(later) if later else t_end
    return [e for e in events if e[0] <= end], float(end)


def hold_sizes_at_time_zero(
    model: CompiledModel,
    P: np.ndarray,
    events: Sequence[Sequence[Event]],
    *,
    start_day: float,
    time_zero_day: float,
    t_end_day: float,
    options: SolverOptions | None = None,
    labels: Sequence[str] | None = None,
) -> tuple[np.ndarray, HistoryFit]:
    """Start sizes that make the drawn sizes hold at time zero (module docstring).

    Parameters
    ----------
    model
        The compiled model.
    P
        Parameter matrix ``(n_patients, n_params)``; its ``baseline_volume_mm3_<j>`` columns are the drawn volumes.
    events
        Each patient's events (time, event name, arguments) of the full run.
    start_day, time_zero_day, t_end_day
        Start of the simulation (the history), the trial's time zero, and the last output time of the full run.
    options, labels
        Solver settings and per-patient labels (as :func:`abscopal.solver.solve`).

    Returns
    -------
    (numpy.ndarray, HistoryFit)
        ``P`` with the start sizes in its size columns, and what the shooting found.
    """
    t_start = time.perf_counter()
    options = options or SolverOptions()
    cols, outs, factor_cols = size_parameters(model.spec)
    upper = np.array([model.spec.all_parameters[c].upper for c in cols])
    n, L = P.shape[0], len(cols)
    target = P[:, cols].astype(float).copy()
    present = target > 0
    if factor_cols is not None:  # the start size is target x factor: its bound is the factor's times the target
        f_upper = np.array([model.spec.all_parameters[c].upper for c in factor_cols])
        upper = np.minimum(upper[None, :], np.where(present, target, 1.0) * f_upper[None, :])
    upper = np.broadcast_to(upper, (n, L))

    def put(Pk: np.ndarray, volume: np.ndarray, rows: np.ndarray | slice) -> None:
        if factor_cols is None:
            Pk[:, cols] = volume
        else:
            Pk[:, factor_cols] = np.where(present[rows], volume / np.where(present[rows], target[rows], 1.0), 1.0)

    if not (start_day < time_zero_day):
        raise ScheduleError(
            f"the history must start before time zero, got start {start_day:g}, time zero {time_zero_day:g}"
        )
    g = np.log(np.where(present, target, 1.0))
    u_max = np.log(upper)
    u_min = np.full((n, L), math.log(_MIN_START_MM3))
    if np.any(present & (g > u_max)):
        i, j = np.argwhere(present & (g > u_max))[0]
        raise ScheduleError(
            f"patient {i}: drawn volume of lesion {j} ({target[i, j]:g} mm3) is above the bound {upper[i, j]:g}"
        )
    u = g.copy()  # log start sizes to evaluate next
    u_eval = g.copy()  # log start sizes of the last evaluation (what ``y`` belongs to)
    y = target.copy()  # simulated volume at time zero of the last evaluation
    f_eval = np.full((n, L), np.nan)
    B = np.broadcast_to(np.eye(L), (n, L, L)).copy()  # Broyden's approximation of d log y / d log x per patient
    pinned = np.zeros((n, L), dtype=bool)  # held at a bound: sterilised (upper) or growing from nothing (lower)
    # one schedule per distinct event list (an arm's patients usually share one): packed once, stacked per iteration
    kinds: dict[int, int] = {}
    schedules: list[EventSchedule] = []
    ends: list[float] = []
    for ev in events:
        if id(ev) not in kinds:
            segment, end = history_segment(ev, time_zero_day, t_end_day)
            kinds[id(ev)] = len(schedules)
            schedules.append(EventSchedule.from_lists(model, [segment]))
            ends.append(end)
    kind = np.array([kinds[id(ev)] for ev in events], dtype=np.int64)
    tol = math.log1p(HISTORY_RTOL)
    iterations = solves = 0
    active = np.flatnonzero(present.any(axis=1))
    while active.size and iterations < HISTORY_MAX_ITERATIONS:
        iterations += 1
        solves += active.size
        a = active
        Pk = np.array(P[a], dtype=float)
        put(Pk, _volume(u[a], present[a], upper[a]), a)
        t_out = np.unique(np.array([start_day, time_zero_day, max(ends[k] for k in kind[a])]))
        runs = np.flatnonzero(np.diff(kind[a], prepend=-1, append=-1))  # blocks of consecutive patients, one kind
        sched = EventSchedule.concatenate([(schedules[kind[a[b]]], int(e - b)) for b, e in itertools.pairwise(runs)])
        sol = solve(
            model,
            Pk,
            t_out,
            events=sched,
            t0=start_day,
            options=options,
            labels=None if labels is None else [labels[int(i)] for i in a],
        )
        y[a] = sol.obs[:, int(np.searchsorted(t_out, time_zero_day)), :][:, outs]
        pres, ua = present[a], u[a]
        f = np.log(np.maximum(y[a], 1e-300))
        r = np.where(pres, f - g[a], 0.0)
        # Broyden's update from the previous evaluation ("good" rank-one update)
        if iterations > 1:
            du = np.where(pres, ua - u_eval[a], 0.0)
            df = np.where(pres, f - f_eval[a], 0.0)
            norm = np.einsum("ij,ij->i", du, du)
            ok = norm > 1e-30
            Ba = B[a]
            corr = (df - np.einsum("ijk,ik->ij", Ba, du)) / np.where(ok, norm, 1.0)[:, None]
            Ba = Ba + np.where(ok[:, None, None], corr[:, :, None] * du[:, None, :], 0.0)
            B[a] = Ba
        u_eval[a], f_eval[a] = ua, f
        # bounds: a lesion at its upper bound still short of its size is sterilised; one at the lower bound still
        # too large cannot start smaller; both stay pinned while that holds
        at_top = pres & (ua >= u_max[a] - 1e-12) & (r < -tol)
        at_floor = pres & (ua <= u_min[a] + 1e-12) & (r > tol)
        pin = at_top | at_floor
        free = pres & ~pin
        converged = (np.abs(np.where(free, r, 0.0)) <= tol).all(axis=1)
        # the Newton step on the free lesions (pinned and absent lesions: identity rows, no residual)
        Ba = np.where((free[:, :, None] & free[:, None, :]), B[a], np.eye(L)[None])
        ra = np.where(free, r, 0.0)
        try:
            step = -np.linalg.solve(Ba, ra[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = -ra
        bad = ~np.isfinite(step).all(axis=1)
        step[bad] = -ra[bad]
        big = np.abs(step).max(axis=1, initial=0.0)
        step *= np.minimum(1.0, _MAX_STEP_LOG / np.maximum(big, 1e-300))[:, None]
        nxt = np.clip(ua + step, u_min[a], u_max[a])
        stalled = np.abs(np.where(free, nxt - ua, 0.0)).max(axis=1, initial=0.0) <= HISTORY_STALL_LOG
        finished = converged | stalled
        u[a] = np.where(finished[:, None], ua, np.where(free, nxt, ua))
        pinned[a] = pin
        # a patient leaves when its sizes are converged (or stopped changing) at an evaluation, so the final start
        # sizes are those of that evaluation (the lesions are coupled: each moves when another one does)
        active = a[~finished]
    sterilised = pinned & (u_eval >= u_max - 1e-12)
    start = _volume(u_eval, present, upper)
    P_out = np.array(P, dtype=float)
    put(P_out, start, slice(None))
    fit = HistoryFit(
        start_volume_mm3=start,
        target_volume_mm3=np.where(present, target, 0.0),
        time_zero_volume_mm3=np.where(present, y, 0.0),
        sterilised=sterilised,
        iterations=iterations,
        patient_solves=solves,
        elapsed_s=time.perf_counter() - t_start,
    )
    return P_out, fit
