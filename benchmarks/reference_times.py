"""Wall times of the reference engines against the issue's targets.

- CAVI on ``random_intercept`` with 10^4 groups and 10^6 rows (target: at most 2 s), both the
  whole ``fit`` call (with the default 4,000 draws of 10^4 intercepts) and the optimisation alone.
  Both families: ``mean_field`` and ``block`` (q(beta, u) jointly Gaussian, its draws of ``u``
  are ``u | beta``).
- Gibbs sweeps per second at Q = 100 groups, n = 1,000 rows (target: at least 5,000), for the
  Gaussian (``random_intercept``) and the Pólya-Gamma logistic sampler, with one chain and with the
  default four chains run together (then "chain-sweeps/s" = chains x sweeps/s).

    python benchmarks/reference_times.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from inference import fit
from inference.conjugate.cavi import cavi_random_intercept
from inference.conjugate.cavi_block import cavi_block_random_intercept
from inference.settings import CaviSettings
from models import MODELS, simulate


def _best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


# CAVI family -> its optimiser on random_intercept.
CAVI_FAMILIES = {"mean_field": cavi_random_intercept, "block": cavi_block_random_intercept}


def cavi_times(repeats: int) -> None:
    """Print CAVI times on 10^4 groups x 100 rows, mean-field and block."""
    data, _ = simulate("random_intercept", n_groups=10_000, n_per_group=100, seed=0)
    for family, optimiser in CAVI_FAMILIES.items():
        cavi_family_times(repeats, data, family, optimiser)


def cavi_family_times(repeats: int, data, family: str, optimiser) -> None:
    """Print the times of one CAVI family on ``data``."""
    priors = MODELS["random_intercept"].priors()
    settings = CaviSettings(num_draws=1)
    holder: dict = {}

    def optimise() -> None:
        holder["result"] = optimiser(data, priors, settings, np.random.default_rng(0))

    def whole_fit() -> None:
        holder["idata"] = fit(
            "random_intercept",
            data,
            backend="conjugate",
            method="cavi",
            family=family,
            progressbar=False,
        )

    optimise_s = _best_of(repeats, optimise)
    fit_s = _best_of(repeats, whole_fit)
    result = holder["result"]
    print(
        f"CAVI ({family}) random_intercept, Q=10^4, n=10^6: {result.info['n_iter']} sweeps, "
        f"converged={result.converged}"
    )
    print(f"  optimisation (statistics + sweeps + moments): {optimise_s:.3f} s  (target <= 2 s)")
    print(f"  whole fit() with 4,000 draws and InferenceData: {fit_s:.3f} s  (target <= 2 s)")


def gibbs_rates(repeats: int) -> None:
    """Print Gibbs sweeps per second at Q = 100, n = 1,000."""
    for model in ("random_intercept", "logistic_random_intercept"):
        data, _ = simulate(model, n_groups=100, n_per_group=10, seed=0)
        for chains in (1, 4):
            settings = {"num_chains": chains, "num_burnin": 1_000, "num_draws": 9_000}
            seconds = _best_of(
                repeats,
                lambda data=data, model=model, settings=settings: fit(
                    model,
                    data,
                    backend="conjugate",
                    method="gibbs",
                    settings=settings,
                    progressbar=False,
                ),
            )
            rate = 10_000 / seconds
            print(
                f"Gibbs {model}, Q=100, n=1000, {chains} chain(s): {rate:,.0f} sweeps/s "
                f"({chains * rate:,.0f} chain-sweeps/s; fit() incl. lp and InferenceData)"
            )


def main() -> None:
    """Parse arguments and print both benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cavi_times(args.repeats)
    gibbs_rates(args.repeats)


if __name__ == "__main__":
    main()
