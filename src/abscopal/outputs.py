"""Simulation outputs at solver speed: only the requested variables, stored once, patients solved in chunks.

:func:`abscopal.simulate` integrates its patients through :func:`solve_to_store`:

* the patients are integrated in chunks (:func:`chunk_patients`) into two small buffers that are reused from chunk
  to chunk (states and observables of one chunk, float64), so the solver writes to memory that is already mapped
  and in cache: no page faults on gigabytes of fresh output inside the parallel loop, which is what kept two
  threads at about 1.2x one on large runs;
* the observables are evaluated (compiled, all patients of a chunk in parallel) only when one of them is requested;
* each chunk's requested values are copied once into the store ``(patient, time, column)`` in the requested
  ``dtype`` (float64, or float32 for half the memory): the kept states, then the kept observables, each in the
  kernel's order (whole runs of adjacent values, or one ``np.take`` for a scattered selection); nothing else is
  kept;
* the dataset's variables are views of the store (:meth:`OutputLayout.views`): a variable is ``store[..., k]``,
  a per-lesion group a strided slice of columns with its lesion and time axes swapped; no further copies.

Patients are split over the solver's threads by numba's ``prange`` in equal contiguous blocks (static schedule);
chunks of a few dozen to a few hundred patients keep those blocks balanced even when the arms of one simulation
cost very differently (each chunk lies in one arm, or two), and a chunk holds a multiple of the thread count.

The store keeps the solver's layout (a patient's values at one time are adjacent), so the copy out of the chunk
buffer reads and writes whole rows; a view of one variable strides over the others (``ds[name].values`` is not
C-contiguous; ``np.ascontiguousarray`` makes a compact copy when one is needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError
from .model.compile import CompiledModel
from .solver import EventSchedule, SolverOptions, solve

__all__ = [
    "CHUNK_BYTES",
    "OUTPUT_DTYPES",
    "OutputLayout",
    "StoredSolution",
    "check_dtype",
    "chunk_patients",
    "solve_to_store",
]

OUTPUT_DTYPES = ("float64", "float32")
"""Storage types of :func:`abscopal.simulate` outputs (``dtype=``); the integration is always float64."""
CHUNK_BYTES = 16 * 1024**2
"""Target size of the per-chunk solver buffers (states + observables of the patients of one chunk)."""

Group = tuple[str, int, "int | None", str, str]
"""One member of an output group: (``"state"`` or ``"obs"``, index, lesion, units, long name)."""


@dataclass(frozen=True)
class OutputLayout:
    """Which states and observables are stored, and in which column of the store.

    The store's columns are the kept states in the kernel's order, then the kept observables in the kernel's order,
    so the copy out of a chunk buffer moves whole runs of adjacent values. A per-lesion group whose columns are
    evenly spaced (the lesion blocks of a model repeat the same states) is a strided view; any other is copied.

    Attributes
    ----------
    groups
        Kept output groups: name -> members (lesions in index order), as :func:`abscopal.simulate` describes them.
    states, observables
        Kernel indices of the kept states and observables, ascending.
    """

    groups: Mapping[str, Sequence[Group]]
    states: tuple[int, ...]
    observables: tuple[int, ...]

    @classmethod
    def of(cls, groups: Mapping[str, Sequence[Group]], keep: Sequence[str]) -> OutputLayout:
        """The layout of the groups named in ``keep`` (in the order of ``groups``)."""
        kept: dict[str, list[Group]] = {}
        for name, members in groups.items():
            if name in keep:
                kept[name] = sorted(members, key=lambda m: m[2] or 0) if members[0][2] is not None else [members[0]]
        states = sorted({m[1] for ms in kept.values() for m in ms if m[0] == "state"})
        observables = sorted({m[1] for ms in kept.values() for m in ms if m[0] == "obs"})
        return cls(kept, tuple(states), tuple(observables))

    @property
    def n_columns(self) -> int:
        """Columns of the store."""
        return len(self.states) + len(self.observables)

    def column(self, member: Group) -> int:
        """Store column of a group member."""
        if member[0] == "state":
            return self.states.index(member[1])
        return len(self.states) + self.observables.index(member[1])

    def views(self, store: np.ndarray, n_arms: int) -> dict[str, np.ndarray]:
        """Each group's values from ``store`` ``(patient, time, column)``: ``(arm, patient, time)``, or ``(arm,
        patient, lesion, time)`` for a per-lesion group; views, except a group whose columns are not evenly
        spaced (copied)."""
        n_total, n_times, _ = store.shape
        n = n_total // n_arms if n_arms else 0
        out: dict[str, np.ndarray] = {}
        for name, members in self.groups.items():
            cols = [self.column(m) for m in members]
            if members[0][2] is None:
                out[name] = store[:, :, cols[0]].reshape(n_arms, n, n_times)
                continue
            steps = set(np.diff(cols).tolist())
            if len(steps) <= 1 and min(steps, default=1) > 0:
                step = steps.pop() if steps else 1
                block = store[:, :, cols[0] : cols[-1] + 1 : step]
            else:
                block = store[:, :, cols]
            out[name] = block.reshape(n_arms, n, n_times, len(members)).transpose(0, 1, 3, 2)
        return out


@dataclass(frozen=True)
class StoredSolution:
    """What :func:`solve_to_store` returns: the store ``(patient, time, column)`` and the stiff fallbacks."""

    store: np.ndarray
    n_fallback: int
    fallback_patients: tuple[int, ...]


def chunk_patients(n_patients: int, n_times: int, n_values: int, n_threads: int) -> int:
    """Patients per chunk: buffers of about :data:`CHUNK_BYTES`, at least 8 patients per thread, a multiple of the
    thread count (each thread of the parallel loop gets the same number of patients)."""
    per_patient = max(8 * n_times * n_values, 1)
    size = max(CHUNK_BYTES // per_patient, 8 * n_threads)
    size = -(-size // n_threads) * n_threads
    return int(max(1, min(n_patients, size)))


def check_dtype(dtype: object) -> np.dtype:
    """The storage type named by ``dtype`` (:data:`OUTPUT_DTYPES`), else a ParameterError."""
    name = np.dtype(dtype).name if isinstance(dtype, type | np.dtype) else dtype
    if not isinstance(name, str) or name not in OUTPUT_DTYPES:
        raise ParameterError(
            f"dtype must be one of {list(OUTPUT_DTYPES)} (how outputs are stored; the solver always integrates in "
            f"float64), got {dtype!r}"
        )
    return np.dtype(name)


def _sub_schedule(events: EventSchedule, a: int, b: int) -> EventSchedule:
    lo, hi = int(events.ptr[a]), int(events.ptr[b])
    return EventSchedule(events.ptr[a : b + 1] - lo, events.times[lo:hi], events.kinds[lo:hi], events.args[lo:hi])


def solve_to_store(
    model: CompiledModel,
    P: np.ndarray,
    t_out: np.ndarray,
    *,
    events: EventSchedule,
    t0: float,
    options: SolverOptions,
    labels: Sequence[str],
    layout: OutputLayout,
    dtype: np.dtype,
    n_threads: int = 1,
) -> StoredSolution:
    """Integrate every row of ``P`` (:func:`abscopal.solver.solve`, chunk by chunk) into a store of the ``layout``'s
    columns in ``dtype`` (module docstring). ``n_threads`` sizes the chunks (the solver's thread count)."""
    n, n_times = P.shape[0], t_out.size
    ns, no = len(model.spec.states), len(model.spec.observables) if layout.observables else 0
    store = np.empty((n, n_times, layout.n_columns), dtype=dtype)
    size = chunk_patients(n, n_times, ns + no, n_threads)
    y_buf = np.empty((size, n_times, ns))
    o_buf = np.empty((size, n_times, no))
    pieces = [(0, layout.states), (len(layout.states), layout.observables)]
    fallback: list[int] = []
    for a in range(0, n, size):
        b = min(a + size, n)
        sol = solve(
            model,
            P[a:b],
            t_out,
            events=_sub_schedule(events, a, b),
            t0=t0,
            options=options,
            labels=labels[a:b],
            buffers=(y_buf[: b - a], o_buf[: b - a]),
            observables=no > 0,
        )
        fallback += [a + i for i in sol.fallback_patients]
        _copy_out(store[a:b], (sol.y, sol.obs), pieces)
    return StoredSolution(store, len(fallback), tuple(fallback))


def _copy_out(
    store: np.ndarray, sources: tuple[np.ndarray, np.ndarray], pieces: Sequence[tuple[int, tuple[int, ...]]]
) -> None:
    """Copy a chunk's kept states and observables into its rows of the store. ``pieces``: per source, its first store
    column and the kept indices. One thread: numpy copies at memory speed, and helper threads only
    competed with the solver's threads, which spin for a while after each parallel region (measured: 10x slower)."""
    for src, (col, kept) in zip(sources, pieces, strict=True):
        if not kept:
            continue
        if kept[-1] - kept[0] + 1 == len(kept):  # a run of adjacent values: a strided copy, no gather
            values = src[:, :, kept[0] : kept[-1] + 1]
        else:
            values = np.take(src, kept, axis=2)
        store[:, :, col : col + len(kept)] = values
