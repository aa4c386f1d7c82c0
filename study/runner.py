"""Run a study: skip finished runs, execute the rest through an Executor, record failures.

Runs go through any `concurrent.futures.Executor`: in-process for one job, a local process pool
(spawned workers, one BLAS/XLA thread each) for several, or a Dask ``distributed`` client.
PyTensor's compile directory is shared by the workers; PyTensor guards it with a file lock,
so concurrent compiles wait for each other instead of corrupting the cache.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from study.config import StudyConfig
from study.runs import Run, execute, expand, limit_threads, stored_hash

logger = logging.getLogger(__name__)

FAILURES_FILE = "failures.csv"
_FAILURE_FIELDS = ("key", "hash", "error", "seconds", "traceback")


@dataclass
class StudyResult:
    """What a batch did: keys done now, skipped (already finished) and failed."""

    out: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no run failed."""
        return not self.failed


def pending_runs(runs: list[Run], out: Path) -> tuple[list[Run], list[Run]]:
    """Split runs into (to do, already finished with the same content hash)."""
    todo, finished = [], []
    for run in runs:
        (finished if stored_hash(run.path(out)) == run.content_hash else todo).append(run)
    return todo, finished


def run_study(
    config: StudyConfig,
    out: str | Path,
    *,
    jobs: int = 1,
    executor: Executor | None = None,
    progressbar: bool | None = None,
) -> StudyResult:
    """Execute every unfinished run of ``config`` and record failures in ``failures.csv``.

    Parameters
    ----------
    config : StudyConfig
        The study.
    out : str or Path
        Results folder; runs are written to ``out/runs/<key>.nc``.
    jobs : int
        Local worker processes when no ``executor`` is given (1: run in this process).
    executor : concurrent.futures.Executor, optional
        Where to run (e.g. ``distributed.Client(...).get_executor()``).
    progressbar : bool, optional
        A progress bar over runs; by default only on a terminal (otherwise a log line per run).

    Returns
    -------
    StudyResult
    """
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    todo, finished = pending_runs(expand(config), out)
    result = StudyResult(out=out, skipped=[run.key for run in finished])
    logger.info("%s: %d runs to do, %d already finished", config.name, len(todo), len(finished))
    if progressbar is None:
        progressbar = sys.stderr.isatty()
    capacity = jobs if executor is None else None
    with _executor(executor, jobs) as pool:
        records = _submit_all(pool, todo, out, capacity)
        for record in _progress(records, len(todo), progressbar):
            if record["status"] == "done":
                result.done.append(record["key"])
            else:
                result.failed.append(record)
            logger.info("%s %s in %.1f s", record["status"], record["key"], record["seconds"])
    update_failures(out, result)
    return result


def _submit_all(
    pool: Executor | None, runs: list[Run], out: Path, capacity: int | None
) -> Iterator[dict[str, Any]]:
    """Execute ``runs`` (in process, or through ``pool``) and yield their records as they end.

    With a known ``capacity`` (a local pool of that many workers) runs are handed out one at a
    time as workers free up, choosing with `next_run`; an external executor gets them all at once.
    """
    if pool is None:
        for run in runs:
            yield execute(run, out)
        return
    pending, running = list(runs), {}
    while pending or running:
        while pending and (capacity is None or len(running) < capacity):
            run = next_run(pending, list(running.values()))
            pending.remove(run)
            try:
                running[pool.submit(execute, run, str(out))] = run
            except Exception as error:  # the pool broke: a worker died
                yield _lost(run, error)
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            yield _record(future, running.pop(future))


def next_run(pending: list[Run], running: list[Run]) -> Run:
    """The run to start next: the first pending one, but not a second PyMC run while others wait.

    PyTensor compiles C code under one lock per compile directory, so two workers running PyMC
    fits on a cold cache mostly wait for each other (measured: two PyMC ADVI fits started side
    by side took 25 s each, one compiling and one waiting); meanwhile the other worker is kept on
    JAX or reference runs. Once only PyMC runs are left they run side by side.
    """
    if any(run.backend == "pymc" for run in running):
        return next((run for run in pending if run.backend != "pymc"), pending[0])
    return pending[0]


def _record(future: Future, run: Run) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as error:  # the worker itself died (killed, out of memory, lost)
        return _lost(run, error)


def _lost(run: Run, error: Exception) -> dict[str, Any]:
    return {
        "key": run.key,
        "hash": run.content_hash,
        "status": "failed",
        "error": f"worker lost: {type(error).__name__}: {error}",
        "seconds": 0.0,
        "traceback": "",
    }


@contextmanager
def _executor(executor: Executor | None, jobs: int) -> Iterator[Executor | None]:
    if executor is not None:
        yield executor
        return
    if jobs <= 1:
        yield None
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=limit_threads
    ) as pool:
        yield pool


def _progress(records: Iterator[dict[str, Any]], total: int, enabled: bool):
    if not enabled:
        return records
    from tqdm.auto import tqdm

    return tqdm(records, total=total, desc="runs", unit="run")


def update_failures(out: Path, result: StudyResult) -> None:
    """Rewrite ``failures.csv``: earlier failures not redone now, plus this batch's failures."""
    path = out / FAILURES_FILE
    succeeded = set(result.done) | set(result.skipped)
    kept = [row for row in read_failures(out) if row["key"] not in succeeded]
    kept = [row for row in kept if row["key"] not in {f["key"] for f in result.failed}]
    rows = kept + [
        {name: record.get(name, "") for name in _FAILURE_FIELDS} for record in result.failed
    ]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_FAILURE_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def read_failures(out: Path) -> list[dict[str, str]]:
    """Rows of ``failures.csv`` (empty if there is none)."""
    path = Path(out) / FAILURES_FILE
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def dask_executor(scheduler: str | None = None, n_workers: int | None = None) -> Callable:
    """A context manager yielding a Dask executor: a remote scheduler or a local cluster."""

    @contextmanager
    def manager() -> Iterator[Executor]:
        from distributed import Client, LocalCluster

        if scheduler:
            with Client(scheduler) as client:
                yield client.get_executor()
            return
        with (
            LocalCluster(
                n_workers=n_workers or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client.get_executor()

    return manager
