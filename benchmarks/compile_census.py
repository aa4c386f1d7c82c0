"""What first-time compilation costs a command, cold: every process's JAX, XLA, gcc and builds.

Runs a command (by default the README's test command, ``pytest -n 2``) with a fresh ``HOME`` (so
PyTensor's compile directory, JAX's persistent cache and IPython's profile start empty, as on a
fresh CI machine) and collects, from *every* Python process it starts (pytest-xdist workers,
notebook kernels, the study's spawned workers):

- JAX: seconds tracing, lowering to MLIR and compiling with XLA (persistent-cache hits
  included: the time to load the executable), from the DEBUG records of ``jax._src.dispatch``;
- gcc: each compilation of a PyTensor C module (a ``cxx`` wrapper that times ``g++``);
- PyTensor's compile lock: seconds a process waited for it (PyTensor compiles C modules under
  one lock per compile directory, so a process waits while another runs gcc);
- programs: each build of `inference.ppl.programs.ProgramCache` (a NumPyro program, a PyMC
  model and its compiled functions, a nutpie density, an LRVB solver): seconds, key and the test
  it ran in. The same key built in several processes is a *duplicate build*. And how many
  programs a key without the priors, or without the settings, would leave (`MERGED_KEYS`).
  Measured 2026-11-26 on the suite, cold (530 passed in 586 s, 144 builds, 679 CPU-s, 126
  distinct keys): without the priors 125 keys, at most 30.0 s of builds saved (26.5 s of it
  duplicates in another process); without the settings 94 keys, at most 123 s; without both 82,
  at most 181 s. The priors alone are not worth passing as arguments; the settings that enter a
  program (window, draws, learning rate) differ from test file to test file.

A ``sitecustomize`` on ``PYTHONPATH`` attaches the log handlers and times the lock in each
process. The numbers are CPU work in several processes at once: compare their sums with the
wall time times the number of cores.

    python benchmarks/compile_census.py [--warm] [-- command ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from suite_times import cold_environment  # benchmarks/ is first on sys.path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_COMMAND = [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider"]
CENSUS_ENV = "VISTUDY_CENSUS"
"""The folder each process writes its ``<pid>.jsonl`` records into."""

SITECUSTOMIZE = '''
"""Written by benchmarks/compile_census.py: log compile events of this process as JSON lines."""
import json, logging, os, re, time

_folder = os.environ.get("{env}")


def _write(kind, seconds, detail=""):
    record = {{"pid": os.getpid(), "t": time.time(), "kind": kind, "s": seconds, "detail": detail,
              "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]}}
    with open(os.path.join(_folder, f"{{os.getpid()}}.jsonl"), "a") as out:
        out.write(json.dumps(record) + "\\n")


class _Census(logging.Handler):
    _jax = re.compile(r"Finished (tracing|jaxpr to MLIR module conversion|XLA compilation) "
                      r"(?:of )?(\\S+).* in ([0-9.]+) sec")

    def emit(self, record):
        message = record.getMessage()
        if record.name == "inference.ppl.programs" and message.startswith("built "):
            seconds, key = message[6:].split(" s: ", 1)
            _write("build", float(seconds), key)
        elif match := self._jax.match(message):
            kind = {{"tracing": "trace", "XLA compilation": "xla"}}.get(match[1], "lower")
            _write(kind, float(match[3]), match[2])
        elif "Persistent compilation cache hit" in message:
            _write("cache_hit", 0.0, message.split("'")[1])


if _folder:
    for _name in ("jax._src.dispatch", "jax._src.compiler", "inference.ppl.programs"):
        _logger = logging.getLogger(_name)
        _logger.setLevel(logging.DEBUG)
        _logger.propagate = False
        _logger.addHandler(_Census())
    try:
        import filelock

        _acquire = filelock.BaseFileLock.acquire

        def _timed_acquire(self, *args, **kwargs):
            start = time.perf_counter()
            result = _acquire(self, *args, **kwargs)
            if "compiledir" in str(self.lock_file):
                _write("lock_wait", time.perf_counter() - start)
            return result

        filelock.BaseFileLock.acquire = _timed_acquire
    except ImportError:
        pass
'''

GXX = """#!/bin/sh
start=$(date +%s.%N)
{gxx} "$@"
code=$?
case "$*" in *-shared*) echo "$start $(date +%s.%N)" >> "{log}";; esac
exit $code
"""


def _prepare(work: Path) -> dict[str, str]:
    """The environment of a census run: fresh HOME, the sitecustomize, the timed g++."""
    (work / "site").mkdir()
    (work / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE.format(env=CENSUS_ENV))
    (work / "records").mkdir()
    (work / "home").mkdir(exist_ok=True)
    gxx = work / "bin" / "g++"  # PyTensor picks its flags by the compiler's name
    gxx.parent.mkdir()
    gxx.write_text(GXX.format(gxx=shutil.which("g++"), log=work / "gcc.log"))
    gxx.chmod(0o755)
    variables = {CENSUS_ENV: str(work / "records"), "PYTENSOR_FLAGS": f"cxx={gxx}"}
    return cold_environment(work / "home", work / "site", ROOT, **variables)


def _records(work: Path) -> list[dict]:
    """Every process's records, in the order they were written (a duplicate build is a later
    one)."""
    records = [
        json.loads(line)
        for path in sorted((work / "records").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    return sorted(records, key=lambda record: record["t"])


def _gcc(work: Path) -> tuple[int, float]:
    log = work / "gcc.log"
    lines = log.read_text().splitlines() if log.exists() else []
    spans = [tuple(map(float, line.split())) for line in lines]
    return len(spans), sum(end - start for start, end in spans)


def _program_kind(key: str) -> str:
    """``numpyro advi:block``, ``pymc nuts:nutpie``, ... from a build's key."""
    if key.startswith("(Problem("):
        return "lrvb solver"
    kind = re.match(r"\(?'?([^',]+)", key)[1]
    backend = "numpyro" if "'sequential'" in key else "pymc"
    return f"{backend} {kind}"


def _report(records: list[dict], work: Path, wall: float) -> None:
    seconds, count = _tally((record["kind"], record["s"]) for record in records)
    processes = len({record["pid"] for record in records})
    print(f"\nwall {wall:.1f} s on {os.cpu_count()} CPUs; {processes} processes reported")
    gcc_modules, gcc_seconds = _gcc(work)
    for label, times, total in (
        ("JAX tracing", count["trace"], seconds["trace"]),
        ("JAX lowering to MLIR", count["lower"], seconds["lower"]),
        ("XLA compilation (cache hits included)", count["xla"], seconds["xla"]),
        ("persistent-cache hits", count["cache_hit"], None),
        ("gcc (PyTensor C modules)", gcc_modules, gcc_seconds),
        ("waiting for PyTensor compile lock", count["lock_wait"], seconds["lock_wait"]),
        ("program builds (all of the above in them)", count["build"], seconds["build"]),
    ):
        print(f"  {label:42s} {times:5d} x" + ("" if total is None else f"  {total:7.1f} s"))
    _report_builds([record for record in records if record["kind"] == "build"])
    _report_xla(records)


def _tally(items: Iterable[tuple[str, float]]) -> tuple[Counter[str], Counter[str]]:
    """Seconds and counts per name of ``(name, seconds)`` pairs."""
    seconds: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for name, value in items:
        seconds[name] += value
        count[name] += 1
    return seconds, count


def _report_xla(records: list[dict]) -> None:
    """XLA compilations by function name: the programs, and JAX's op-by-op ones."""
    # NumPyro's programs carry their problem's tag (`numpyro_engine._jit_named`): one name per kind
    seconds, count = _tally(
        (re.sub(r"_[0-9a-f]{10}\b", "", r["detail"]), r["s"]) for r in records if r["kind"] == "xla"
    )
    print("XLA compilations by function (the most costly 12):")
    for name, total in seconds.most_common(12):
        print(f"  {total:7.1f} s  {count[name]:4d} x  {name}")


def _report_builds(builds: list[dict]) -> None:
    per_kind, count = _tally((_program_kind(b["detail"]), b["s"]) for b in builds)
    per_file, _ = _tally((b["test"].split("::")[0] or "(no test)", b["s"]) for b in builds)
    first: dict[str, int] = {}
    duplicates, duplicate_s = 0, 0.0
    for build in builds:
        if first.setdefault(build["detail"], build["pid"]) != build["pid"]:
            duplicates, duplicate_s = duplicates + 1, duplicate_s + build["s"]
    print(
        f"builds by kind ({len(first)} distinct keys; {duplicates} duplicate builds in "
        f"another process, {duplicate_s:.1f} s):"
    )
    for kind, seconds in per_kind.most_common():
        print(f"  {seconds:7.1f} s  {count[kind]:4d} x  {kind}")
    print("builds by test file:")
    for path, seconds in per_file.most_common(12):
        print(f"  {seconds:7.1f} s  {path}")
    _report_merged_keys(builds)


MERGED_KEYS = {
    "priors": (r"\w*Priors\([^)]*\)",),
    "settings": (r"(?:Advi|Nuts)Settings\([^)]*\)",),
    "priors and settings": (r"\w*Priors\([^)]*\)", r"(?:Advi|Nuts)Settings\([^)]*\)"),
}
"""Parts of a program's key that an engine could take as run-time arguments instead of building
them in (priors as traced values or ``pm.Data``; learning rate, window and draws as arguments)."""


def _report_merged_keys(builds: list[dict]) -> None:
    """How many programs would be left if keys left out each part of `MERGED_KEYS`, and the build
    seconds that could save at most (every build of a merged key but its most costly one: the
    first build of a key also pays one-time costs, so the real saving is smaller)."""
    print("if a program's key left out ... (the build seconds that could save, at most):")
    for label, patterns in MERGED_KEYS.items():
        merged: dict[str, list[float]] = {}
        for build in builds:
            key = build["detail"]
            for pattern in patterns:
                key = re.sub(pattern, "*", key)
            merged.setdefault(key, []).append(build["s"])
        saving = sum(sum(times) - max(times) for times in merged.values())
        print(f"  {label:20s} {len(merged):4d} distinct keys  {saving:7.1f} s")


def main_benchmark() -> None:
    """Parse arguments, run the command cold (and warm with ``--warm``), print the census."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", action="store_true", help="then again with the same HOME")
    parser.add_argument("command", nargs="*", help="after --; default: pytest -n 2")
    args = parser.parse_args()
    command = args.command or [*DEFAULT_COMMAND, "tests"]
    work = Path(tempfile.mkdtemp(prefix="vistudy-census-"))
    env = _prepare(work)
    print(f"load average before: {os.getloadavg()[0]:.1f}; census folder {work}")
    for arm in ("cold", "warm") if args.warm else ("cold",):
        for old in (work / "records").glob("*.jsonl"):
            old.unlink()
        (work / "gcc.log").unlink(missing_ok=True)
        started = time.perf_counter()
        result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        tail = (result.stdout.strip() or result.stderr.strip()).splitlines()[-1:]
        print(f"\n{arm}: {' '.join(command[:6])} ... exit {result.returncode}: {tail}")
        _report(_records(work), work, wall)


if __name__ == "__main__":
    main_benchmark()
