"""Wall time of ``vistudy reproduce``: cold, warm (new results folder) and re-run (same folder).

- *cold*: with ``--cold``, empty compile caches -- a fresh PyTensor compile directory (C modules
  and PyTensor's numba cache) and a fresh JAX persistent cache (``VISTUDY_CACHE_DIR``), both in a
  temporary folder removed at exit, set before anything is imported so spawned workers inherit
  them; without ``--cold`` the user's caches, as they are.
- *warm*: the same caches, a new results folder (every run fitted again, nothing compiled from
  scratch).
- *re-run*: the cold folder again (every run cached; the report alone).

With ``--study FILE`` the same three batches run ``vistudy run FILE`` instead: e.g.
``benchmarks/issue13_grid.toml``, the 92-fit grid that issue 13's targets were measured on.

Prints the three wall times, the compile and run seconds summed per (backend, method, family)
for the cold and the warm batch, the slowest runs, and how many NUTS references pass the MCMC
gate. The machine's load is printed too: compare numbers from the same minute only.

    python benchmarks/reproduce.py [--quick] [--jobs 2] [--out DIR] [--cold] [--study FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from scratch import scratch_dir  # benchmarks/ is first on sys.path


def _isolate_caches(root: Path) -> None:
    """Empty compile caches under ``root`` for this process and the workers it spawns."""
    pytensor = root / "pytensor"
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [flags, f"base_compiledir={pytensor}"]))
    os.environ["VISTUDY_CACHE_DIR"] = str(root / "vistudy")


def _timed(argv: list[str]) -> tuple[float, int]:
    from study.cli import main

    started = time.perf_counter()
    try:
        code = main(argv)
    except Exception as error:  # e.g. the report of a half-edited checkout: keep the timings
        print(f"vistudy {' '.join(argv)} raised {type(error).__name__}: {error}")
        code = -1
    return time.perf_counter() - started, code


def _run_times(out: Path):
    import pandas as pd
    import xarray as xr

    rows = []
    for path in sorted((out / "runs").glob("*.nc")):
        with xr.open_dataset(path, group="posterior") as posterior:
            attrs = posterior.attrs
            rows.append(
                {
                    "key": path.stem,
                    "backend": attrs["backend"],
                    "method": attrs["method"],
                    "family": attrs.get("family") or "",
                    "compile_s": float(attrs["compile_time_s"]),
                    "run_s": float(attrs["run_time_s"]),
                    "settings": json.loads(attrs["settings"]),
                }
            )
    return pd.DataFrame(rows)


def _totals(times):
    totals = times.groupby(["backend", "method", "family"])[["compile_s", "run_s"]].sum()
    totals["runs"] = times.groupby(["backend", "method", "family"]).size()
    totals["share_%"] = (
        100 * (totals.compile_s + totals.run_s) / (times.compile_s.sum() + times.run_s.sum())
    )
    return totals.round(1).sort_values("share_%", ascending=False)


def gate_count(out: Path) -> tuple[int, int, list[str]]:
    """NUTS references of a results folder that pass the MCMC gate: (passed, total, failures)."""
    import arviz as az

    from analysis.gate import mcmc_gate

    passed, failures = 0, []
    paths = sorted((out / "runs").glob("*-nuts-*.nc"))
    for path in paths:
        gate = mcmc_gate(az.from_netcdf(path))
        passed += gate.passed
        if not gate.passed:
            failures.append(f"{path.stem}: {gate.label}")
    return passed, len(paths), failures


def _print_batch(label: str, out: Path) -> None:
    times = _run_times(out)
    print(f"\n{label}: per (backend, method, family), summed over runs ({len(times)} runs):")
    print(_totals(times).to_string())
    print(f"fitted: compile {times.compile_s.sum():.1f} s, run {times.run_s.sum():.1f} s")
    times["total_s"] = times.compile_s + times.run_s
    print(f"\n{label}: slowest runs")
    print(times.nlargest(12, "total_s")[["key", "compile_s", "run_s"]].round(2).to_string())


def main_benchmark() -> None:
    """Parse arguments, run the reproduction cold, warm and again, and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, help="results folder of the cold batch")
    parser.add_argument("--cold", action="store_true", help="start from empty compile caches")
    parser.add_argument("--study", type=Path, help="a study file to run instead of reproduce")
    args = parser.parse_args()
    if args.study and args.quick:
        parser.error("--quick is an option of reproduce, not of a study file")
    out = args.out or Path(tempfile.mkdtemp(prefix="vistudy-bench-"))
    if args.cold:
        _isolate_caches(scratch_dir("vistudy-caches-"))
    warm_out = out.with_name(out.name + "-warm")
    options = ["--jobs", str(args.jobs)] + (["--quick"] if args.quick else [])
    command = ["run", str(args.study.resolve())] if args.study else ["reproduce"]
    load = os.getloadavg()[0]
    cold, code = _timed([*command, "--out", str(out), *options])
    warm, warm_code = _timed([*command, "--out", str(warm_out), *options])
    again, _ = _timed([*command, "--out", str(out), *options])
    passed, total, failures = gate_count(out)
    print(f"\nresults folders: {out} (cold{'' if args.cold else ', user caches'}), {warm_out}")
    print(f"load average before: {load:.1f} on {os.cpu_count()} CPUs")
    label = " ".join(command) + (" --quick" if args.quick else "")
    print(f"{label} --jobs {args.jobs}: exit {code} (cold), {warm_code} (warm)")
    print(f"cold: {cold:7.1f} s   warm (new folder): {warm:7.1f} s   re-run: {again:5.1f} s")
    print(f"NUTS references through the MCMC gate: {passed}/{total}")
    for failure in failures:
        print(f"  {failure}")
    _print_batch("cold", out)
    _print_batch("warm", warm_out)


if __name__ == "__main__":
    main_benchmark()
