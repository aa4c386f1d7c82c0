"""Where the test suite's time goes: ``pytest -n 2`` cold (empty caches, as on CI), then warm.

Each arm runs the README's test command in a subprocess whose ``HOME`` is a fresh temporary
folder (so PyTensor's compile directory, JAX's persistent cache and IPython's profile start
empty, as on a fresh CI machine); the warm arm reuses the cold arm's ``HOME``. This file is
also a pytest plugin (``-p suite_times``) that records when each test started and ended on
each pytest-xdist worker. For each arm it prints the wall time, each worker's busy seconds and
last end (a worker that ends early waited for the other), the seconds per test file and the
slowest tests (setup, call and teardown together). Cold minus warm is what first-time
compilation (gcc for PyTensor, numba, XLA) costs the suite.

    python benchmarks/suite_times.py [--workers 2] [--no-warm] [pytest arguments ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from scratch import scratch_dir  # benchmarks/ is first on sys.path

ROOT = Path(__file__).resolve().parents[1]
TIMELINE_ENV = "VISTUDY_SUITE_TIMELINE"
"""The folder the plugin writes one ``<worker>.jsonl`` per process into."""

_started: dict[str, float] = {}


def pytest_runtest_logstart(nodeid: str, location: tuple) -> None:
    """Plugin hook: remember when ``nodeid`` started (its setup)."""
    _started[nodeid] = time.time()


def pytest_runtest_logfinish(nodeid: str, location: tuple) -> None:
    """Plugin hook: append ``nodeid``'s start and end (after its teardown) to the timeline."""
    folder = os.environ.get(TIMELINE_ENV)
    if not folder:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    record = {"id": nodeid, "start": _started.pop(nodeid, None), "end": time.time()}
    with open(Path(folder) / f"{worker}.jsonl", "a") as timeline:
        timeline.write(json.dumps(record) + "\n")


def cold_environment(home: Path, *first_on_path: Path, **variables: str) -> dict[str, str]:
    """This process's environment with ``HOME`` as the home folder and no cache settings of the
    user's (``XDG_CACHE_HOME``, ``VISTUDY_CACHE_DIR``, ``PYTENSOR_FLAGS``, ``IPYTHONDIR``), so
    every compile cache starts in ``home``; ``first_on_path`` go before ``PYTHONPATH``."""
    env = {**os.environ, "HOME": str(home)}
    for variable in ("XDG_CACHE_HOME", "VISTUDY_CACHE_DIR", "PYTENSOR_FLAGS", "IPYTHONDIR"):
        env.pop(variable, None)
    paths = [*map(str, first_on_path), os.environ.get("PYTHONPATH")]
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, paths)), **variables}


def _run_arm(home: Path, workers: int, pytest_args: list[str]) -> tuple[float, int, Path]:
    timeline = scratch_dir("vistudy-suite-timeline-")
    env = cold_environment(home, Path(__file__).parent, **{TIMELINE_ENV: str(timeline)})
    command = [sys.executable, "-m", "pytest", "-n", str(workers), "-q", "-p", "suite_times"]
    started = time.perf_counter()
    result = subprocess.run(
        [*command, *pytest_args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    print(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr)
    return wall, result.returncode, timeline


def _report(label: str, wall: float, code: int, timeline: Path) -> None:
    records = {
        path.stem: [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted(timeline.glob("gw*.jsonl"))
    } or {"main": [json.loads(line) for line in (timeline / "main.jsonl").read_text().splitlines()]}
    start = min(r["start"] for rows in records.values() for r in rows if r["start"])
    print(f"\n{label}: pytest wall {wall:.1f} s (exit {code})")
    per_file: Counter[str] = Counter()
    tests = []
    for worker, rows in records.items():
        busy = sum(r["end"] - r["start"] for r in rows if r["start"])
        end = max(r["end"] for r in rows) - start
        print(f"  {worker}: {len(rows)} tests, busy {busy:.1f} s, last end at {end:.1f} s")
        for r in rows:
            if r["start"]:
                per_file[r["id"].split("::")[0]] += r["end"] - r["start"]
                tests.append((r["end"] - r["start"], worker, r["id"]))
    print(f"{label}: seconds per test file (all workers)")
    for path, seconds in per_file.most_common(12):
        print(f"  {seconds:7.1f}  {path}")
    print(f"{label}: slowest tests")
    for seconds, worker, nodeid in sorted(tests, reverse=True)[:12]:
        print(f"  {seconds:7.1f}  {worker}  {nodeid}")


def main_benchmark() -> None:
    """Parse arguments, run the suite cold and warm, print the timelines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-warm", action="store_true", help="the cold arm only")
    args, pytest_args = parser.parse_known_args()
    home = scratch_dir("vistudy-suite-home-")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; HOME {home}")
    for arm in ("cold",) if args.no_warm else ("cold", "warm"):
        wall, code, timeline = _run_arm(home, args.workers, pytest_args)
        _report(arm, wall, code, timeline)


if __name__ == "__main__":
    main_benchmark()
