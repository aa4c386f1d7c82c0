"""Which simulation design reproduces the VI1 table? A rerunnable calibration.

The VI1 report does not state its design. This script searches it with the cheap pair the
report itself uses, block CAVI (``conjugate/cavi:block``) against Gibbs (``conjugate/gibbs``),
on M0 at Q = 5, 10, 20, 50, 100, over

- the design: ``n_per_group`` rows in every group, or a fixed total of ``n_obs`` rows split over
  the Q groups (few rows per group at large Q);
- the truth: sigma_u and sigma_e (beta fixed at the default ``(1, 0.5, -0.5)``);
- the variance priors: Gamma(1, 1) (the package default) or the vague Gamma(0.01, 0.01) of
  BUGS-era studies, on both precisions;

with ``--replicates`` data sets per cell. For every candidate it prints the median SD ratio of
each published M0/M2 cell (beta_0, beta_1, beta_2, tau_e, tau_u; M2's published values are within
0.02 of M0's except tau_u at Q = 100, and the CAVI optimum of M2 is M0's) and the discrepancy
``mean |ours - published|`` over all cells and per column, ranked. Results go to
``OUT/calibration_cells.csv`` (every cell, every replicate) and ``OUT/calibration_ranking.csv``.

    python benchmarks/calibrate_design.py [--grid fine] [--replicates 5] [--jobs 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

GROUPS = (5, 10, 20, 50, 100)
COLUMNS = ("beta_0", "beta_1", "beta_2", "tau_e", "tau_u")
PRIORS = {"gamma_1_1": 1.0, "gamma_0.01_0.01": 0.01}
GIBBS = {"num_chains": 2, "num_burnin": 500, "num_draws": 2_000}


@dataclass(frozen=True)
class Candidate:
    """One design: rows (per group or total), truth, priors."""

    design: str  # "per_group" or "total"
    rows: int
    sigma_u: float
    sigma_e: float
    prior: str

    @property
    def name(self) -> str:
        rows = f"{self.rows}/group" if self.design == "per_group" else f"N={self.rows}"
        return f"{rows}, sigma_u={self.sigma_u}, sigma_e={self.sigma_e}, {self.prior}"


def candidates(grid: str) -> list[Candidate]:
    """The search grid: ``coarse`` (the first search), ``fine`` (around its best: total N near
    500 rows, sigma_u / sigma_e near 0.5; only their ratio and the priors' scale matter) or
    ``quick``."""
    designs = [("per_group", 5), ("per_group", 20), ("total", 200), ("total", 500)]
    sigmas_u, sigmas_e = (0.5, 1.0), (1.0,)
    if grid == "coarse":
        designs += [("per_group", 10), ("total", 1000)]
        sigmas_u, sigmas_e = (0.5, 1.0, 2.0), (0.5, 1.0)
    elif grid == "fine":
        designs = [("per_group", n) for n in (5, 10, 20)]
        designs += [("total", n) for n in (200, 300, 400, 500, 750)]
        sigmas_u = (0.35, 0.5, 0.7, 1.0)
    return [
        Candidate(design, rows, su, se, prior)
        for (design, rows), su, se, prior in itertools.product(designs, sigmas_u, sigmas_e, PRIORS)
    ]


def cell(candidate: Candidate, n_groups: int, seed: int) -> list[dict]:
    """SD ratios block CAVI / Gibbs of one replicate of one (candidate, Q) cell."""
    from analysis import sd_ratio
    from inference import fit
    from models import simulate

    rows = {"n_per_group": candidate.rows}
    if candidate.design == "total":
        rows = {"n_obs": max(candidate.rows, n_groups)}
    truth = {"tau_u": candidate.sigma_u**-2, "tau_e": candidate.sigma_e**-2}
    data, _ = simulate("random_intercept", n_groups=n_groups, truth=truth, seed=seed, **rows)
    level = PRIORS[candidate.prior]
    priors = {"a_e": level, "b_e": level, "a_u": level, "b_u": level}
    options = {"priors": priors, "seed": seed, "progressbar": False}
    vb = fit(
        "random_intercept", data, backend="conjugate", method="cavi", family="block", **options
    )
    gibbs = fit(
        "random_intercept", data, backend="conjugate", method="gibbs", settings=GIBBS, **options
    )
    table = sd_ratio(vb, gibbs, var_names=["beta", "tau_e", "tau_u"])
    return [
        {**asdict(candidate), "candidate": candidate.name, "n_groups": n_groups, "seed": seed}
        | {"parameter": row.parameter, "ratio": row.ratio}
        for row in table.itertuples()
    ]


def published_m0() -> pd.DataFrame:
    """Published M0 cells, long: ``n_groups, parameter, published``."""
    from analysis import published_table

    table = published_table()
    rows = table.loc[[f"M0_Q{q}" for q in GROUPS], list(COLUMNS)]
    rows.index = list(GROUPS)
    long = rows.stack().rename("published").reset_index()
    return long.rename(columns={"level_0": "n_groups", "level_1": "parameter"})


def ranking(cells: pd.DataFrame) -> pd.DataFrame:
    """Discrepancy of each candidate's median ratios from the published M0 cells."""
    medians = (
        cells.groupby(["candidate", "n_groups", "parameter"], as_index=False)["ratio"]
        .median()
        .merge(published_m0(), on=["n_groups", "parameter"])
    )
    medians["abs_diff"] = (medians.ratio - medians.published).abs()
    per_column = medians.pivot_table(
        index="candidate", columns="parameter", values="abs_diff", aggfunc="mean"
    )
    per_column["all"] = medians.groupby("candidate")["abs_diff"].mean()
    per_column["max"] = medians.groupby("candidate")["abs_diff"].max()
    return per_column.sort_values("all")


def main() -> None:
    """Run the grid in parallel and print the ranking."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/calibration"))
    parser.add_argument("--grid", choices=("quick", "coarse", "fine"), default="fine")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tasks = [
        (c, q, seed)
        for c in candidates(args.grid)
        for q in GROUPS
        for seed in range(1, args.replicates + 1)
    ]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(cell, *zip(*tasks, strict=True), chunksize=4))
    cells = pd.DataFrame([row for rows in results for row in rows])
    args.out.mkdir(parents=True, exist_ok=True)
    cells.to_csv(args.out / "calibration_cells.csv", index=False)
    ranked = ranking(cells)
    ranked.to_csv(args.out / "calibration_ranking.csv")
    pd.set_option("display.width", 200)
    print(f"{len(tasks)} cells in {time.perf_counter() - started:.0f} s; results in {args.out}")
    print("mean |median ratio - published| over the published M0 cells (lower is better):")
    print(ranked.round(3).head(15).to_string())
    best = ranked.index[0]
    wide = cells[cells.candidate == best].pivot_table(
        index="n_groups", columns="parameter", values="ratio", aggfunc="median"
    )
    print(f"\nbest: {best}\n{wide[list(COLUMNS)].round(3).to_string()}")
    print(np.round(published_m0().pivot(index="n_groups", columns="parameter").values, 3))


if __name__ == "__main__":
    main()
