"""Run a study: skip finished runs, execute the rest through an Executor, record failures.

Runs go through any `concurrent.futures.Executor`: in-process for one job, a local process pool
(workers started by a fork server on Linux, spawned elsewhere; one BLAS/XLA thread each) for
several, or a Dask ``distributed`` client.
PyTensor's compile directory is shared by the workers; PyTensor guards it with a file lock,
so concurrent compiles wait for each other instead of corrupting the cache.
"""

from __future__ import annotations

import csv
import fcntl
import logging
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.files import replace_atomically
from study.config import StudyConfig
from study.runs import (
    RUNS_DIR,
    THREAD_LIMITS,
    Run,
    execute,
    expand,
    limit_threads,
    settle_after_runs,
    stored_hash,
)

logger = logging.getLogger(__name__)

FAILURES_FILE = "failures.csv"
LOCK_FILE = ".lock"
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
    with results_lock(out), stop_on_signals():
        (out / "runs").mkdir(parents=True, exist_ok=True)
        remove_temporary_files(out)
        todo, finished = pending_runs(expand(config), out)
        result = StudyResult(out=out, skipped=[run.key for run in finished])
        logger.info("%s: %d runs to do, %d already finished", config.name, len(todo), len(finished))
        if progressbar is None:
            progressbar = sys.stderr.isatty()
        try:
            with _executor(executor, jobs) as pool:
                records = _submit_all(pool, todo, out)
                for record in _progress(records, len(todo), progressbar):
                    if record["status"] == "done":
                        result.done.append(record["key"])
                    else:
                        result.failed.append(record)
                    logger.info(
                        "%s %s in %.1f s", record["status"], record["key"], record["seconds"]
                    )
        except (KeyboardInterrupt, StudyStopped):
            remove_temporary_files(out)
            logger.warning(
                "%s stopped: %d runs done now, %d left; run it again to resume",
                config.name,
                len(result.done),
                len(todo) - len(result.done) - len(result.failed),
            )
            raise
        finally:
            update_failures(out, result)
    return result


class StudyLockedError(RuntimeError):
    """Another process is running a study into the same results folder."""


class StudyStopped(Exception):
    """The study was stopped by a signal (SIGTERM); ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


_HELD_LOCKS: dict[Path, list[int]] = {}


@contextmanager
def results_lock(out: str | Path) -> Iterator[None]:
    """Hold ``out/.lock`` (``fcntl.flock``) while a study runs into ``out``; re-entrant.

    The kernel releases the lock when its process ends, however it ends, so a lock file left by
    a killed run never blocks the next one.

    Raises
    ------
    StudyLockedError
        At once, if another process holds the lock; the message gives its process id.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = (out / LOCK_FILE).resolve()
    if path in _HELD_LOCKS:
        _HELD_LOCKS[path][1] += 1
        try:
            yield
        finally:
            _HELD_LOCKS[path][1] -= 1
        return
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        raise StudyLockedError(
            f"{out}: another vistudy (process {holder}) is running into this results folder; "
            "wait for it to finish or choose another --out"
        ) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    _HELD_LOCKS[path] = [descriptor, 1]
    try:
        yield
    finally:
        del _HELD_LOCKS[path]
        os.ftruncate(descriptor, 0)
        os.close(descriptor)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While a study (or a whole ``vistudy`` command) runs, SIGTERM raises `StudyStopped` in the
    main thread (SIGINT already raises KeyboardInterrupt), so that workers are stopped and
    nothing is left half-written. A SIGTERM handler installed by someone else is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise StudyStopped(signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def remove_temporary_files(out: Path) -> list[Path]:
    """Delete the temporary files of interrupted writes (``.<name>.<pid>.tmp``) in ``out`` and
    ``out/runs``; only safe while the results lock is held."""
    stale = [*Path(out).glob(".*.tmp"), *(Path(out) / RUNS_DIR).glob(".*.tmp")]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        logger.info("removed %d temporary file(s) of interrupted writes", len(stale))
    return stale


def _submit_all(
    pool: Executor | None,
    runs: list[Run],
    out: Path,
    task: Callable[[Run, str], dict[str, Any]] = execute,
) -> Iterator[dict[str, Any]]:
    """Execute ``runs`` (in process, or through ``pool``) and yield their records as they end.

    A `LocalPool` gets runs one at a time as workers free up, chosen by `next_run`; when one of
    its workers dies (killed, out of memory, a crash in compiled code) the pool is replaced and
    the runs that were in flight are retried one at a time, so that only the run that kills its
    worker is recorded as failed. Any other executor gets every run at once.
    """
    if pool is None:
        for run in runs:
            yield task(run, str(out))
        return
    capacity = pool.jobs if isinstance(pool, LocalPool) else None
    pending, running, suspects = list(runs), {}, []
    try:
        yield from _schedule(pool, task, out, capacity, pending, running, suspects)
    finally:  # stopped: runs not started yet never start
        for future in running:
            future.cancel()


def _schedule(
    pool: Executor,
    task: Callable[[Run, str], dict[str, Any]],
    out: Path,
    capacity: int | None,
    pending: list[Run],
    running: dict[Future, Run],
    suspects: list[Run],
) -> Iterator[dict[str, Any]]:
    ended: list[Run] = []
    while pending or running or suspects:
        for run in _to_start(pending, list(running.values()), suspects, capacity, ended):
            try:
                running[pool.submit(task, run, str(out))] = run
            except Exception as error:  # the executor refused the run
                yield _lost(run, error)
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        ended = [running[future] for future in finished]
        broken = capacity is not None and any(_broke(future) for future in finished)
        for future in finished:
            if not (broken and _broke(future)):
                yield _record(future, running.pop(future))
        if broken:
            yield from _after_break(pool, running, suspects)


def _to_start(
    pending: list[Run],
    running: list[Run],
    suspects: list[Run],
    capacity: int | None,
    ended: list[Run],
) -> list[Run]:
    """Runs to submit now: a suspect alone on an idle pool, else pending runs up to capacity.

    With a capacity (a `LocalPool`, one run per worker) the workers that are free are those
    whose runs have just ``ended``, so those runs' programs are in their memory.
    """
    if suspects:
        return [suspects.pop(0)] if not running else []
    chosen: list[Run] = []
    after = ended if capacity is not None else []
    while pending and (capacity is None or len(running) + len(chosen) < capacity):
        run = next_run(pending, running + chosen, after)
        pending.remove(run)
        chosen.append(run)
    return chosen


def _broke(future: Future) -> bool:
    return isinstance(future.exception(), BrokenProcessPool)


def _after_break(
    pool: LocalPool, running: dict[Future, Run], suspects: list[Run]
) -> Iterator[dict[str, Any]]:
    """A worker died: blame the run if it ran alone, else retry every run it took down alone."""
    in_flight = list(running.values())
    running.clear()
    pool.restart()
    if len(in_flight) == 1:
        yield _lost(in_flight[0], RuntimeError("its worker process died (killed or crashed)"))
        return
    logger.warning("a worker died; retrying the %d runs in flight one at a time", len(in_flight))
    suspects.extend(in_flight)


def next_run(pending: list[Run], running: list[Run], after: Sequence[Run] = ()) -> Run:
    """The run to start next: one whose program the free worker holds, else the longest pending
    one, but not a second C-compiling PyMC run nor a run whose program another worker is
    compiling, while other work waits.

    ``after`` are the runs that have just ended, on the worker(s) now free: a pending run of
    the same program (`study.schedule.program_of`: the next seed, or a number of groups padded
    to the same shape) goes first, as it compiles nothing there; started on the other worker it
    would build the program a second time (issue 13's grid: 5 such builds, 19 s of 140 s of
    compiling cold). Closed-form runs compile nothing and keep their longest-first place.

    Longest first (`study.schedule.estimated_seconds`): a batch then ends on short runs on both
    workers instead of one long fit on one of them. PyTensor compiles C code under one lock per
    compile directory, so two workers running PyMC fits that compile C on a cold cache mostly
    wait for each other (measured: two PyMC ADVI fits started side by side took 25 s each, one
    compiling and one waiting); meanwhile the other worker is kept on JAX, nutpie or reference
    runs (`study.schedule.compiles_c`). A run sharing its program with a running one
    (`study.schedule.program_of`, e.g. the next seed of the same data shape) waits too: later it
    reuses that program instead of compiling it on the other worker at the same time. Once only
    such runs are left they run side by side.
    """
    from study.schedule import compiles_c, estimated_seconds, program_of

    ordered = sorted(pending, key=estimated_seconds, reverse=True)
    lock_busy = any(compiles_c(run) for run in running)
    programs = {program_of(run) for run in running}
    held = {program_of(run) for run in after if run.backend != "conjugate"}

    def waits_for_lock(run: Run) -> bool:
        return lock_busy and compiles_c(run)

    for acceptable in (
        lambda run: program_of(run) in held,
        lambda run: not waits_for_lock(run) and program_of(run) not in programs,
        lambda run: not waits_for_lock(run),
    ):
        chosen = next((run for run in ordered if acceptable(run)), None)
        if chosen is not None:
            return chosen
    return ordered[0]


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


WORKER_PRELOAD = ("study.runs", "study.runner")
"""What the fork server imports once for all the workers it starts: the study's own modules and
what they import (NumPy, pandas, xarray, ArviZ, SciPy, Matplotlib), but not JAX, which must not
run in a process that forks, nor PyMC or NumPyro, which a study may not need."""


def worker_context() -> multiprocessing.context.BaseContext:
    """How `LocalPool` starts its workers: a fork server on Linux, spawning elsewhere.

    A spawned worker starts Python and imports the study's modules (about 2.3 s of CPU on
    2 cores) before its first run. Workers forked by a fork server find them imported
    (`WORKER_PRELOAD`): the fork server imports them once, when this process starts its first
    pool, and serves every later pool of this process. The fork server is started with the
    workers' thread limits (`study.runs.limit_threads`) in its environment, so NumPy's BLAS
    starts with one thread; JAX is never imported in it, so no process forks after JAX.
    Measured 2026-11-27 with `benchmarks/worker_start.py` (2 cores, pools of 2 workers that
    import the study's modules): spawned, 2.6-2.9 s and 5.2-5.7 CPU-s per pool; forked, 2.2 s
    and 2.2 CPU-s for the first pool and 0.03 s for each later one. macOS and Windows keep
    spawning (macOS' system libraries are not safe to use after a fork).
    """
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WORKER_PRELOAD))
    from multiprocessing import forkserver

    with _thread_limits():
        forkserver.ensure_running()
    return context


@contextmanager
def _thread_limits() -> Iterator[None]:
    """This process's environment with the workers' thread limits where it sets none (for a
    child process started meanwhile: the fork server), then as it was."""
    added = [name for name in THREAD_LIMITS if name not in os.environ]
    os.environ.update({name: THREAD_LIMITS[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


class LocalPool:
    """``jobs`` worker processes (one BLAS/XLA thread each), replaced when one dies.

    Parameters
    ----------
    jobs : int
        Number of worker processes.
    """

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self._pool = self._new()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.jobs,
            mp_context=worker_context(),
            initializer=worker_init,
            initargs=(os.getpid(), dict(os.environ)),
        )

    def submit(self, fn: Callable, /, *args: Any) -> Future:
        """Schedule ``fn(*args)`` on a worker."""
        return self._pool.submit(fn, *args)

    def restart(self) -> None:
        """Replace a broken pool by a fresh one."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new()

    def shutdown(self) -> None:
        """Stop the workers once their runs have ended."""
        self._pool.shutdown(wait=True)

    def terminate(self, grace: float = 2.0) -> None:
        """Stop the workers now: SIGTERM, then SIGKILL for any still alive after ``grace`` s."""
        # ProcessPoolExecutor has no public way to reach its processes
        processes = list((self._pool._processes or {}).values())
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + grace
        for process in processes:
            process.join(max(deadline - time.monotonic(), 0.0))
            if process.is_alive():
                process.kill()
                process.join(1.0)
        self._pool.shutdown(wait=False, cancel_futures=True)
        logger.info("stopped %d worker process(es)", len(processes))


PARENT_POLL_S = 0.5


def worker_init(parent: int, environment: Mapping[str, str] | None = None) -> None:
    """Initialise a worker process: the parent's environment, one BLAS/XLA thread, Ctrl-C left
    to the parent (which stops the workers), the heap settled after every run
    (`study.runs.settle_after_runs`), and exit when the parent dies, even by SIGKILL.

    ``environment`` is the parent's when it started the pool: a worker forked by the fork server
    (`worker_context`) would otherwise have the fork server's, from when the first pool started.
    A forked worker's parent is the fork server, which outlives the parent as long as a worker
    lives (so the kernel's ``PR_SET_PDEATHSIG`` would never fire); a watchdog thread exits when
    ``parent`` itself has gone: at once through a pidfd where Linux has one, else by polling.
    """
    if environment is not None:
        os.environ.clear()
        os.environ.update(environment)
    limit_threads()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settle_after_runs()
    if not _alive(parent):  # gone before the watch began
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent,), name="parent-watchdog", daemon=True
    ).start()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_parent(parent: int) -> None:
    """Exit this process when ``parent`` exits."""
    try:
        handle = os.pidfd_open(parent)
    except (AttributeError, OSError):  # not Linux 5.3+: poll
        starter = os.getppid()  # the parent, or the fork server: changes when it goes
        while os.getppid() == starter and _alive(parent):
            time.sleep(PARENT_POLL_S)
    else:
        select.select([handle], [], [])  # readable once the process has exited
    os._exit(1)


@contextmanager
def _executor(executor: Executor | None, jobs: int) -> Iterator[Executor | LocalPool | None]:
    if executor is not None:
        yield executor
        return
    if jobs <= 1:
        yield None
        return
    pool = LocalPool(jobs)
    try:
        yield pool
    except BaseException:  # stopped (a signal, Ctrl-C) or failed: do not wait for the runs
        pool.terminate()
        raise
    pool.shutdown()


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

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=_FAILURE_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    replace_atomically(path, write)


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
                # Without a dashboard the scheduler still serves /health and /metrics, on port
                # 8787 by default: a second cluster on the machine would warn that it is taken.
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client.get_executor()

    return manager
