"""Simulation outputs at solver speed: only the requested variables, stored once, patients solved in chunks.

:func:`abscopal.simulate` integrates its patients through :func:`solve_to_store`:

* the patients are integrated in chunks (:func:`chunk_patients`) into two small buffers that are reused from chunk
  to chunk (states and observables of one chunk, float64), so the solver writes to memory that is already mapped
  and in cache: no page faults on gigabytes of fresh output inside the parallel loop, which is what kept two
  threads at about 1.2x one on large runs;
* the observables are evaluated (compiled, all patients of a chunk in parallel) only when one of them is requested;
* each chunk's requested columns are copied once into the store ``(patient, time, column)`` in the requested
  ``dtype`` (float64, or float32 for half the memory); nothing else is kept;
* the dataset's variables are views of the store (:meth:`OutputLayout.views`): a variable is ``store[..., k]``,
  a per-lesion group ``store[..., k:k + n_lesions]`` with its lesion and time axes swapped; no further copies.

The store keeps the solver's layout (a patient's values at one time are adjacent), so the copy out of the chunk
buffer reads and writes whole rows; a view of one variable strides over the others (``ds[name].values`` is not
C-contiguous; ``np.ascontiguousarray`` makes a compact copy when one is needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from .errors import ParameterError
from .model.compile import CompiledModel
from .solver import EventSchedule, SolverOptions, solve

__all__ = ["CHUNK_BYTES", "OUTPUT_DTYPES", "OutputLayout", "StoredSolution", "chunk_patients", "solve_to_store"]

OUTPUT_DTYPES = ("float64", "float32")
"""Storage types of :func:`abscopal.simulate` outputs (``dtype=``); the integration is always float64."""
CHUNK_BYTES = 16 * 1024**2
"""Target size of the per-chunk solver buffers (states + observables of the patients of one chunk)."""

Group = tuple[str, int, "int | None", str, str]
"""One member of an output group: (``"state"`` or ``"obs"``, index, lesion, units, long name)."""


@dataclass(frozen=True)
class OutputLayout:
    """Which states and observables are stored, in which column of the store.

    Attributes
    ----------
    groups
        Kept output groups: name -> members (lesion order for per-lesion groups), as :func:`abscopal.simulate`
        describes them.
    columns
        ``(kind, index)`` of each store column, group after group (``kind``: 0 state, 1 observable).
    start
        First store column of each group.
    """

    groups: Mapping[str, Sequence[Group]]
    columns: tuple[tuple[int, int], ...]
    start: Mapping[str, int]

    @classmethod
    def of(cls, groups: Mapping[str, Sequence[Group]], keep: Sequence[str]) -> OutputLayout:
        """The layout of the groups named in ``keep`` (in the order of ``groups``), lesions in index order."""
        kept: dict[str, list[Group]] = {}
        columns: list[tuple[int, int]] = []
        start: dict[str, int] = {}
        for name, members in groups.items():
            if name not in keep:
                continue
            order = sorted(members, key=lambda m: m[2] or 0) if members[0][2] is not None else list(members[:1])
            kept[name] = order
            start[name] = len(columns)
            columns += [(0 if m[0] == "state" else 1, m[1]) for m in order]
        return cls(kept, tuple(columns), start)

    @property
    def needs_observables(self) -> bool:
        """Whether any stored column is an observable."""
        return any(kind == 1 for kind, _ in self.columns)

    def runs(self, kind: int) -> list[tuple[int, int, int]]:
        """Copies from a chunk buffer of ``kind`` as ``(first store column, first source index, length)``: runs of
        consecutive columns that are consecutive in the source too (one strided copy each)."""
        out: list[tuple[int, int, int]] = []
        for col, (k, i) in enumerate(self.columns):
            if k != kind:
                continue
            if out and out[-1][0] + out[-1][2] == col and out[-1][1] + out[-1][2] == i:
                out[-1] = (out[-1][0], out[-1][1], out[-1][2] + 1)
            else:
                out.append((col, i, 1))
        return out

    def views(self, store: np.ndarray, n_arms: int) -> dict[str, np.ndarray]:
        """Each group's values as views of ``store`` ``(patient, time, column)``: ``(arm, patient, time)``, or
        ``(arm, patient, lesion, time)`` for a per-lesion group."""
        n_total, n_times, _ = store.shape
        n = n_total // n_arms if n_arms else 0
        out: dict[str, np.ndarray] = {}
        for name, members in self.groups.items():
            k = self.start[name]
            if members[0][2] is None:
                out[name] = store[:, :, k].reshape(n_arms, n, n_times)
            else:
                block = store[:, :, k : k + len(members)]
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
    ns, no = len(model.spec.states), len(model.spec.observables) if layout.needs_observables else 0
    store = np.empty((n, n_times, len(layout.columns)), dtype=dtype)
    size = chunk_patients(n, n_times, ns + no, n_threads)
    y_buf = np.empty((size, n_times, ns))
    o_buf = np.empty((size, n_times, no))
    runs = [(kind, layout.runs(kind)) for kind in (0, 1)]
    fallback: list[int] = []
    pool = ThreadPoolExecutor(n_threads) if n_threads > 1 else None
    try:
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
            _copy_out(store[a:b], sol.y, sol.obs, runs, pool, n_threads)
    finally:
        if pool is not None:
            pool.shutdown()
    return StoredSolution(store, len(fallback), tuple(fallback))


def _copy_out(
    store: np.ndarray,
    y: np.ndarray,
    obs: np.ndarray,
    runs: Sequence[tuple[int, Sequence[tuple[int, int, int]]]],
    pool: ThreadPoolExecutor | None,
    n_threads: int,
) -> None:
    """Copy a chunk's kept columns into its rows of the store, split over ``n_threads`` threads by patient (numpy
    releases the GIL while it copies; the first write to fresh store memory is what costs, and it then runs in
    parallel like the solver)."""

    def part(lo: int, hi: int) -> None:
        for kind, copies in runs:
            src = y if kind == 0 else obs
            for col, first, length in copies:
                store[lo:hi, :, col : col + length] = src[lo:hi, :, first : first + length]

    m = store.shape[0]
    if pool is None or m < 2 * n_threads:
        part(0, m)
        return
    edges = np.linspace(0, m, n_threads + 1).astype(int)
    for f in [pool.submit(part, lo, hi) for lo, hi in pairwise(edges.tolist())]:
        f.result()
