"""NUTS references with shorter warm-up: sampling time and the MCMC gate, per setting.

The reproduction's NUTS settings (`study/studies/reproduce.toml`) are fitted with
each warm-up length and target acceptance given, on both designs:

- ``n300``: the reproduction's calibrated design, N = 300 rows split over Q groups, the vague
  Gamma(0.01, 0.01) priors, tau_u = 4;
- ``r20``: issue 13's grid, 20 rows per group, the default priors and truth.

Every (backend, model, design) runs in one process (compiled programs reused across Q, seeds and
settings); the processes run ``--jobs`` at a time. Printed per fit: sampling seconds, leapfrog
steps per draw, the smallest bulk/tail ESS, the largest R-hat, divergences, the gate; then per
setting: summed sampling time and fits through the gate.

Measured 2026-11-26 (2 cores, seeds 1-3, Q = 5 ... 100: 15 fits per row; passed, sampling s):

| design | PPL, model | 1,000 warm-up | 500 warm-up | 500, accept 0.85 |
|---|---|---|---|---|
| r20 | NumPyro M0 | 15, 22.3 | 15, 17.6 | |
| r20 | NumPyro M3 (0.95) | 15, 31.9 | 15, 24.9 | 14, 23.4 |
| r20 | PyMC M0 | 15, 36.6 | 15, 25.0 | |
| r20 | PyMC M3 (0.95) | 15, 88.2 | 15, 65.3 | 15, 45.9 |
| n300 | NumPyro M0 | 12, 19.0 | 12, 13.7 | |
| n300 | NumPyro M3 (0.95) | 13, 21.1 | 11, 17.4 | 13, 15.7 |
| n300 | PyMC M0 | 13, 34.9 | 13, 23.1 | |
| n300 | PyMC M3 (0.95) | 15, 59.9 | 15, 42.4 | 9, 33.0 |

So `benchmarks/issue13_grid.toml` (the r20 design) samples with 500 warm-up draws and PyMC's M3
at 0.85, and the reproduction keeps 1,000 and 0.95. nutpie with a diagonal mass matrix instead
of the low-rank one (``--settings '{"low_rank_mass": false}'``, r20, 500 warm-up): M0 5/15
(bulk ESS 288-595), M3 at 0.95 15/15 in 55.0 s, slower than low-rank at 0.85.

Measured 2026-11-27 (the machine slower than the day before), PyMC, 500 warm-up draws: the
groups through their own intercepts with the diagonal mass matrix (``--settings
'{"low_rank_mass": false, "intercept_centring": true}'``) against the low-rank one, back to
back: r20 M0 15/15 in 23.8 s against 15/15 in 35.1 s; r20 M3 at 0.85 15/15 in 63.8 s against
15/15 in 90.0 s (at 0.95 15/15 in 96.5 s); n300 M0 10/15 in 21.7 s against 13/15 in 31.1 s
(with 1,000 warm-up draws 10/15 in 29.5 s against 13/15 in 44.3 s). With ``centring = "auto"``
(groups under 20 rows non-centred) and the shear, n300 with 1,000 warm-up draws: M0 13/15 in
35.9 s but with divergences (2 and 10) at Q = 5 and 10, M3 at 0.95 11/15 in 58.3 s (low-rank:
15/15 in 59.9 s the day before). So the grid takes the shear and the reproduction keeps the
low-rank mass matrix.

Measured 2026-11-27, later, with XLA's older emitter for small programs
(`inference.ppl.xla_compile`), NumPyro's M0 on n300 with 1,000 warm-up draws at target
acceptance 0.8 / 0.9 (the default) / 0.95: 12/15 (1 divergence) in 18.6 s, 12/15 (2
divergences, Q = 10 on seed 1, as in the reproduction) in 23.5 s, 14/15 (no divergence; ESS
217-469 at Q = 100 on seeds 2 and 3 at every setting) in 27.6 s. So the reproduction samples
NumPyro's M0 at 0.95.

    python benchmarks/nuts_warmup.py [--backends numpyro pymc] [--models M ...]
        [--groups 5 10 20 50 100] [--seeds 1 2 3] [--warmups 1000 500]
        [--target-accepts 0.95] [--designs n300 r20] [--settings '{"low_rank_mass": false}']
        [--jobs 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from study.config import Scenario


def _reproduction() -> tuple[dict[tuple[str, str], dict], dict[str, dict], Scenario]:
    """The reproduction's NUTS settings per (backend, model), its priors per model and its
    ``n300`` scenario (N rows split over the groups), read from the packaged study
    (`study/studies/reproduce.toml`)."""
    from study.reproduce import reproduction_study

    config = reproduction_study()
    settings = {
        (fit.backend, model): dict(fit.settings)
        for fit in config.fits
        if fit.method == "nuts"
        for model in fit.models
    }
    n300 = next(scenario for scenario in config.scenarios if scenario.n_obs and scenario.n_groups)
    return settings, config.priors, n300


def _data(model: str, design: str, n_groups: int, seed: int, n300: Scenario):
    from models import simulate

    if design == "n300":
        truth = dict(n300.truth)
        return simulate(model, n_groups=n_groups, n_obs=n300.n_obs, truth=truth, seed=seed)[0]
    return simulate(model, n_groups=n_groups, n_per_group=20, seed=seed)[0]


def _fits(task: tuple) -> list[dict[str, object]]:
    """Every fit of one (backend, model, design), in one process."""
    from analysis.gate import mcmc_gate
    from inference import fit

    backend, model, design, groups, seeds, warmups, accepts, overrides = task
    packaged, priors, n300 = _reproduction()
    rows = []
    for n_groups, seed, warmup, accept in itertools.product(groups, seeds, warmups, accepts):
        settings = {**packaged[(backend, model)], **overrides, "num_warmup": warmup}
        if accept:
            settings["target_accept"] = accept
        idata = fit(
            model,
            _data(model, design, n_groups, seed, n300),
            backend=backend,
            method="nuts",
            settings=settings,
            priors=priors.get(model) if design == "n300" else None,
            seed=1,
        )
        gate = mcmc_gate(idata)
        rows.append(
            {
                "backend": backend,
                "model": model,
                "design": design,
                "Q": n_groups,
                "seed": seed,
                "warmup": warmup,
                "accept": json.loads(idata.posterior.attrs["settings"])["target_accept"],
                "run_s": round(float(idata.posterior.attrs["run_time_s"]), 2),
                "steps": round(float(idata.sample_stats.n_steps.mean()), 1),
                "ess": int(min(gate.ess_bulk_min, gate.ess_tail_min)),
                "rhat": round(gate.rhat_max, 3),
                "div": gate.divergences,
                "ok": gate.passed,
            }
        )
    return rows


def main() -> None:
    """Parse arguments, run the fits and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["numpyro", "pymc"])
    parser.add_argument(
        "--models", nargs="+", default=["random_intercept", "logistic_random_intercept"]
    )
    parser.add_argument("--groups", nargs="+", type=int, default=[5, 10, 20, 50, 100])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--warmups", nargs="+", type=int, default=[1000, 500])
    parser.add_argument(
        "--target-accepts",
        nargs="+",
        type=float,
        default=[0.0],
        help="target acceptance (0: the reproduction's setting)",
    )
    parser.add_argument("--designs", nargs="+", default=["n300", "r20"])
    parser.add_argument(
        "--settings", type=json.loads, default={}, help="JSON settings over the reproduction's"
    )
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    import pandas as pd

    tasks = [
        (
            backend,
            model,
            design,
            args.groups,
            args.seeds,
            args.warmups,
            args.target_accepts,
            args.settings,
        )
        for backend in args.backends
        for model in args.models
        for design in args.designs
    ]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; 4 chains x 1,000 draws")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
        table = pd.DataFrame([row for rows in pool.map(_fits, tasks) for row in rows])
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 1000)
    print(table.to_string(index=False))
    keys = ["backend", "model", "design", "warmup", "accept"]
    summary = table.groupby(keys).agg(
        run_s=("run_s", "sum"),
        steps=("steps", "mean"),
        ess_min=("ess", "min"),
        rhat_max=("rhat", "max"),
        divergences=("div", "sum"),
        passed=("ok", "sum"),
        fits=("ok", "size"),
    )
    print("\nper setting:")
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
