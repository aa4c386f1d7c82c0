"""Compile and run time of every (model, backend, method) at Q = 5 and Q = 100 groups.

For each problem the script fits simulated data twice: the first fit compiles (its
``compile_time_s`` and ``run_time_s`` attrs are reported), the second fit gets *new* data of the
same shape and must reuse what was compiled (its ``compile_time_s`` should be 0 for NumPyro and
for PyMC's ADVI; PyMC's NUTS rebuilds its sampler inside every ``pm.sample`` call).

PyTensor keeps compiled C modules on disk (``~/.pytensor``), so PyMC's first-fit compile times
depend on what earlier processes left there; NumPyro starts from nothing in every process.

Usage::

    python benchmarks/fit_times.py            # default settings of the study, Q = 5 and 100
    python benchmarks/fit_times.py --quick    # tiny settings, to check the script runs
"""

from __future__ import annotations

import argparse
import logging
import time

import pandas as pd

from inference import fit
from models import MODELS, simulate

QUICK = {
    "advi": {"max_steps": 2_000, "min_steps": 500, "window": 100, "num_draws": 500},
    "nuts": {"num_chains": 2, "num_warmup": 200, "num_draws": 200},
}


def time_problem(
    model: str, backend: str, method: str, n_groups: int, n_per_group: int, quick: bool
) -> dict[str, object]:
    """Fit ``model`` twice to new data of the same shape; return one row of the table."""
    settings = QUICK[method] if quick else None
    row: dict[str, object] = {"model": model, "backend": backend, "method": method, "Q": n_groups}
    for label, data_seed in (("first", 1), ("second", 2)):
        data, _ = simulate(model, n_groups=n_groups, n_per_group=n_per_group, seed=data_seed)
        start = time.perf_counter()
        idata = fit(model, data, backend=backend, method=method, settings=settings, seed=0)
        row[f"{label}_wall_s"] = time.perf_counter() - start
        row[f"{label}_compile_s"] = idata.posterior.attrs["compile_time_s"]
        row[f"{label}_run_s"] = idata.posterior.attrs["run_time_s"]
    if method == "advi":
        row["advi_steps"] = idata.posterior.attrs["vi_steps"]
    return row


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run the benchmark and print its table (seconds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings")
    parser.add_argument("--n-groups", type=int, nargs="+", default=[5, 100])
    parser.add_argument("--n-per-group", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=sorted(MODELS), choices=sorted(MODELS))
    parser.add_argument("--backends", nargs="+", default=["numpyro", "pymc"])
    parser.add_argument("--methods", nargs="+", default=["advi", "nuts"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = [
        time_problem(model, backend, method, n_groups, args.n_per_group, args.quick)
        for n_groups in args.n_groups
        for model in args.models
        for backend in args.backends
        for method in args.methods
    ]
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format="{:.2f}".format))
    return table


if __name__ == "__main__":
    main()
