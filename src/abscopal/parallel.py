"""Independent tasks in process or on Dask: one check of ``workers`` / ``scheduler`` and one way to run them.

Studies (:func:`abscopal.studies.run_study`: one task per grid cell) and profile likelihoods
(:func:`abscopal.calibrate.uncertainty.profile_likelihood`: one task per side of a parameter's profile) run their
tasks through :func:`task_runner`: in process when neither ``workers`` nor ``scheduler`` is given, else on a local
Dask cluster of ``workers`` processes with one thread each (``LocalCluster(processes=True,
threads_per_worker=1)``, no dashboard) or on the running Dask scheduler at ``scheduler``. A task is a pure
function of its (picklable) argument, so the results do not depend on where it ran.

Bad settings raise :class:`~abscopal.errors.AbscopalError` naming the argument, the value and the fix, before any
work: :func:`check_parallel` (both given, ``workers`` < 1, an address that is not ``[tcp://]host:port``) and
:func:`task_runner`, which connects when it is entered (a scheduler that does not answer within
:data:`CONNECT_TIMEOUT_S` seconds).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from .errors import AbscopalError

__all__ = ["CONNECT_TIMEOUT_S", "check_parallel", "check_scheduler", "check_workers", "task_runner", "worker_threads"]

CONNECT_TIMEOUT_S = 10
"""Seconds to wait for a Dask scheduler to answer."""
_SCHEDULER = re.compile(r"^(?:(?:tcp|tls|ws|wss|ucx)://)?(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$")

T = TypeVar("T")
R = TypeVar("R")
Runner = Callable[[Callable[[T], R], Sequence[T], Sequence[str]], Iterator[tuple[T, R]]]


def check_scheduler(address: str, argument: str = "--scheduler") -> str:
    """Check that ``address`` looks like a Dask scheduler address (``[tcp://]host:port``); return it.

    Raises :class:`AbscopalError` naming ``argument`` and the value before any work (the connection itself is tried
    by :func:`task_runner`).
    """
    m = _SCHEDULER.match(address) if isinstance(address, str) else None
    if m is None or not 1 <= int(m.group(1)) <= 65535:
        raise AbscopalError(
            f"{argument} {address!r} is not a Dask scheduler address; give [tcp://]host:port, e.g. tcp://127.0.0.1:8786"
        )
    return address


def check_workers(workers: object, argument: str = "--workers") -> int:
    """Check that ``workers`` is a number of worker processes >= 1; return it."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise AbscopalError(f"{argument} {workers!r}: give a number of worker processes >= 1 (e.g. {argument} 2)")
    return workers


def check_parallel(
    workers: int | None,
    scheduler: str | None,
    *,
    workers_argument: str = "--workers",
    scheduler_argument: str = "--scheduler",
) -> None:
    """Every check of ``workers`` and ``scheduler`` that needs no connection (module docstring)."""
    if workers is not None and scheduler is not None:
        raise AbscopalError(
            f"give {scheduler_argument} ADDRESS or {workers_argument} N, not both ({scheduler_argument} "
            f"{scheduler!r}, {workers_argument} {workers!r})"
        )
    if workers is not None:
        check_workers(workers, workers_argument)
    if scheduler is not None:
        check_scheduler(scheduler, scheduler_argument)


def worker_threads(workers: int | None) -> int | None:
    """Compiled-kernel threads for each of ``workers`` local worker processes: the machine's cores shared out
    (at least 1), so that the workers do not oversubscribe the cores; ``None`` (their own default) otherwise."""
    return None if workers is None else max(1, (os.cpu_count() or 1) // int(workers))


@contextmanager
def task_runner(
    scheduler: str | None,
    workers: int | None,
    *,
    timeout_s: float | None = None,
    scheduler_argument: str = "--scheduler",
    workers_argument: str = "--workers",
) -> Iterator[Runner[Any, Any]]:
    """Connect (module docstring) and yield ``run(fn, tasks, keys)``, an iterator of ``(task, fn(task))`` in the
    order the tasks finish (in process: in order). ``keys`` name the tasks on Dask (unique). The cluster or client
    is closed when the block ends. ``timeout_s``: how long to wait for the scheduler (default
    :data:`CONNECT_TIMEOUT_S`).

    Raises
    ------
    AbscopalError
        Settings as :func:`check_parallel`; a scheduler that does not answer (naming the address and the fix).
    """
    check_parallel(workers, scheduler, workers_argument=workers_argument, scheduler_argument=scheduler_argument)
    if scheduler is None and workers is None:

        def in_process(fn: Callable[[T], R], tasks: Sequence[T], keys: Sequence[str]) -> Iterator[tuple[T, R]]:
            for t in tasks:
                yield t, fn(t)

        yield in_process
        return
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - dask is a declared dependency
        raise AbscopalError(
            f"{scheduler_argument} / {workers_argument} need dask.distributed: pip install 'dask[distributed]'"
        ) from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=int(workers or 1), threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S if timeout_s is None else timeout_s)
        except (OSError, TimeoutError) as exc:
            raise AbscopalError(
                f"{scheduler_argument} {scheduler!r}: cannot connect to a Dask scheduler there ({exc}); "
                "start one (dask scheduler) or check the address"
            ) from None

    def on_dask(fn: Callable[[T], R], tasks: Sequence[T], keys: Sequence[str]) -> Iterator[tuple[T, R]]:
        by_key = dict(zip(keys, tasks, strict=True))
        futures = client.map(fn, list(tasks), key=list(keys), pure=False)
        for fut in as_completed(futures):
            yield by_key[fut.key], fut.result()

    try:
        yield on_dask
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
