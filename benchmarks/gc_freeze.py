"""Garbage collection in a study worker, with and without `study.runs.settle_after_runs`.

A worker keeps every program it compiles (for the next run of the same shape) and the modules
it imported. Python's full (generation 2) collections walk all of them again and again; the
lever collects each run's garbage when the run ends and freezes what survives
(``gc.collect(); gc.freeze()``), so later collections see only the objects of the run at hand.

Each arm is one fresh process that executes the same runs of the quick reproduction in the
same order, one after another as a worker would, into a scratch folder; it prints its wall
time, the time Python spent in collections of each generation (``gc.callbacks``), and how long
the process took to exit after its last run. Caches (PyTensor, JAX) are warmed by a first,
untimed process, so the arms differ only in the lever.

    python benchmarks/gc_freeze.py [--backend pymc|numpyro|all] [--max-groups 20] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

_ARM = """
import gc, json, sys, time
from study.reproduce import reproduction_study
from study.runs import execute, expand, settle_after_runs
backend, max_groups, settle, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
runs = [
    r for r in expand(reproduction_study(quick=True))
    if (backend == "all" or r.backend == backend) and r.n_groups <= max_groups
]
spent, started = {0: 0.0, 1: 0.0, 2: 0.0}, {}
def clock(phase, info):
    if phase == "start":
        started[info["generation"]] = time.perf_counter()
    else:
        spent[info["generation"]] += time.perf_counter() - started[info["generation"]]
gc.callbacks.append(clock)
if settle:
    settle_after_runs()
begin = time.perf_counter()
records = [execute(run, out) for run in runs]
failed = [r["key"] for r in records if r["status"] != "done"]
print(json.dumps({"runs": len(runs), "failed": failed, "wall_s": time.perf_counter() - begin,
                  **{f"gc{g}_s": s for g, s in spent.items()}, "ended": time.time()}))
"""


def _arm(backend: str, max_groups: int, settle: bool) -> dict[str, float]:
    out = tempfile.mkdtemp(prefix="vistudy-gc-")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    argv = [sys.executable, "-c", _ARM, backend, str(max_groups), str(int(settle)), out]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    ended = time.time()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["failed"]:
        raise RuntimeError(f"runs failed: {result['failed']}")
    result["exit_s"] = ended - result.pop("ended")
    return result


def main() -> None:
    """Parse arguments, warm the caches, run the two arms alternately and print medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="all", choices=("pymc", "numpyro", "all"))
    parser.add_argument("--max-groups", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    _arm(args.backend, args.max_groups, settle=False)  # warm PyTensor's and JAX's caches
    results: dict[str, list[dict[str, float]]] = {"as before": [], "settled": []}
    for _ in range(args.repeats):
        for label, settle in (("as before", False), ("settled", True)):
            results[label].append(_arm(args.backend, args.max_groups, settle))
    runs = results["settled"][0]["runs"]
    print(
        f"{runs} runs of the quick reproduction ({args.backend}, Q <= {args.max_groups}) in one "
        f"process, median of {args.repeats} (load {os.getloadavg()[0]:.1f}):"
    )
    keys = ("wall_s", "gc0_s", "gc1_s", "gc2_s", "exit_s")
    medians = {
        label: {k: statistics.median(r[k] for r in rs) for k in keys}
        for label, rs in results.items()
    }
    for label, values in medians.items():
        print(f"  {label:10s} " + "  ".join(f"{k} {v:7.2f}" for k, v in values.items()))
    before, after = medians["as before"], medians["settled"]
    print(f"  ratio settled / as before: wall {after['wall_s'] / before['wall_s']:.2f}")


if __name__ == "__main__":
    main()
