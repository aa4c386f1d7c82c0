"""How long a local pool's workers take to start: spawned, or forked by the fork server.

`study.runner.LocalPool` starts its workers with `study.runner.worker_context`: on Linux a fork
server that imported the study's modules once (`WORKER_PRELOAD`) and serves every later pool of
the process; elsewhere each worker is spawned and imports them itself. Each arm is one fresh
process that opens ``--pools`` pools of ``--jobs`` workers one after another; each pool runs one
task per worker that imports what a run imports (the study's modules; ``--ppl`` adds PyMC
and NumPyro) and returns. It prints each pool's wall time and the CPU seconds of the whole
machine meanwhile (``/proc/stat``, Linux: the fork server and its children are not this
process's children, so ``getrusage`` would miss them).

    python benchmarks/worker_start.py [--jobs 2] [--pools 3] [--ppl] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_ARM = """
import json, os, sys, time
from study import runner

def busy():
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

def imports(ppl):
    import study.runs, study.runner  # noqa: F401
    if ppl:
        import numpyro, pymc  # noqa: F401
    return os.getpid()

if __name__ == "__main__":
    method, jobs, pools, ppl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    if method == "spawn":
        import multiprocessing
        runner.worker_context = lambda: multiprocessing.get_context("spawn")
    rows = []
    for _ in range(pools):
        cpu, wall = busy(), time.perf_counter()
        pool = runner.LocalPool(jobs)
        futures = [pool.submit(imports, ppl) for _ in range(jobs)]
        [future.result() for future in futures]
        pool.shutdown()
        rows.append((time.perf_counter() - wall, busy() - cpu))
    print(json.dumps(rows))
"""


def _arm(method: str, args: argparse.Namespace, script: Path) -> list[list[float]]:
    """One fresh process (a file, not ``-c``: the workers import its task from it)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(script), method, str(args.jobs), str(args.pools)]
    done = subprocess.run(
        [*command, "1" if args.ppl else "0"], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="workers per pool")
    parser.add_argument("--pools", type=int, default=3, help="pools opened one after another")
    parser.add_argument("--ppl", action="store_true", help="the task imports PyMC and NumPyro")
    parser.add_argument("--repeats", type=int, default=2, help="fresh processes per arm")
    args = parser.parse_args()
    methods = ("spawn", "forkserver") if sys.platform.startswith("linux") else ("spawn",)
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "worker_start_arm.py"
        script.write_text(_ARM)
        for repeat in range(args.repeats):
            for method in methods:
                rows = _arm(method, args, script)
                pools = "  ".join(f"{wall:.2f} s ({cpu:.1f} CPU-s)" for wall, cpu in rows)
                print(f"{method:10s} repeat {repeat}: pool after pool {pools}", flush=True)


if __name__ == "__main__":
    main()
