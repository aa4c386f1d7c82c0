"""Wall time of ``vistudy reproduce``, cold (empty results folder) and warm (everything cached).

Prints the two wall times, then per run the compile and run times recorded in its attrs, and
the totals per (backend, method), so one sees what dominates.

    python benchmarks/reproduce.py [--quick] [--jobs 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import xarray as xr

from study.cli import main


def _timed(argv: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    code = main(argv)
    return time.perf_counter() - started, code


def _run_times(out: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((out / "runs").glob("*.nc")):
        with xr.open_dataset(path, group="posterior") as posterior:
            attrs = posterior.attrs
            rows.append(
                {
                    "key": path.stem,
                    "backend": attrs["backend"],
                    "method": attrs["method"],
                    "compile_s": float(attrs["compile_time_s"]),
                    "run_s": float(attrs["run_time_s"]),
                    "settings": json.loads(attrs["settings"]),
                }
            )
    return pd.DataFrame(rows)


def main_benchmark() -> None:
    """Parse arguments, run the reproduction twice and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="vistudy-bench-"))
    argv = ["reproduce", "--out", str(out), "--jobs", str(args.jobs)] + (
        ["--quick"] if args.quick else []
    )
    cold, code = _timed(argv)
    warm, _ = _timed(argv)
    times = _run_times(out)
    pd.set_option("display.width", 160)
    print(f"results folder: {out}")
    print(f"reproduce{' --quick' if args.quick else ''} --jobs {args.jobs}: exit {code}")
    print(f"cold: {cold:8.1f} s    warm (all cached): {warm:6.1f} s    runs: {len(times)}")
    totals = times.groupby(["backend", "method"])[["compile_s", "run_s"]].sum()
    totals["share_%"] = (
        100 * (totals.compile_s + totals.run_s) / (times.compile_s.sum() + times.run_s.sum())
    )
    print("\nper (backend, method), summed over runs:")
    print(totals.round(1).sort_values("share_%", ascending=False).to_string())
    print("\nslowest runs:")
    times["total_s"] = times.compile_s + times.run_s
    print(times.nlargest(15, "total_s")[["key", "compile_s", "run_s"]].round(2).to_string())


if __name__ == "__main__":
    main_benchmark()
