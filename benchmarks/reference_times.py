"""Wall times of the reference engines against the issue's targets.

- CAVI on ``random_intercept`` with 10^4 groups and 10^6 rows (target: the whole ``fit`` call in
  at most 2 s). ``fit`` = the engine (the optimisation, the default 4,000 draws of 10^4
  intercepts, the InferenceData) + the PSIS k-hat that ``fit`` adds to every VB fit (2,000 draws
  from q and the log joint at each, `inference.psis`); each part is timed on its own too.
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

from inference import fit, lookup
from inference.conjugate.cavi import cavi_random_intercept
from inference.conjugate.cavi_block import cavi_block_random_intercept
from inference.psis import psis_khat
from inference.settings import CaviSettings
from models import MODELS, simulate

CAVI_TARGET_S = 2.0


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
    """Print the times of one CAVI family on ``data``: the whole ``fit`` against the target, and
    its parts (optimisation alone, the engine with its draws, PSIS k-hat)."""
    spec = MODELS["random_intercept"]
    priors = spec.priors()
    holder: dict = {}

    def optimise() -> None:
        holder["result"] = optimiser(
            data, priors, CaviSettings(num_draws=1), np.random.default_rng(0)
        )

    def engine() -> None:
        holder["idata"] = lookup("conjugate", "cavi", family).load()(
            spec, data, priors=priors, settings=CaviSettings(), seed=0, family=family
        )

    def khat() -> None:
        holder["khat"] = psis_khat(holder["idata"].variational, spec, data, priors, seed=0)[0]

    def whole_fit() -> None:
        fit(
            "random_intercept",
            data,
            backend="conjugate",
            method="cavi",
            family=family,
            progressbar=False,
        )

    times = {
        name: _best_of(repeats, part)
        for name, part in (
            ("optimise", optimise),
            ("engine", engine),
            ("khat", khat),
            ("fit", whole_fit),
        )
    }
    result = holder["result"]
    verdict = "met" if times["fit"] <= CAVI_TARGET_S else "MISSED"
    print(
        f"CAVI ({family}) random_intercept, Q=10^4, n=10^6: {result.info['n_iter']} sweeps, "
        f"converged={result.converged}, k-hat {holder['khat']:.2f}"
    )
    print(
        f"  whole fit(): {times['fit']:.3f} s  (target <= {CAVI_TARGET_S:g} s: {verdict})\n"
        f"    engine (optimisation, 4,000 draws, InferenceData): {times['engine']:.3f} s\n"
        f"      of which the optimisation (statistics + sweeps + moments): "
        f"{times['optimise']:.3f} s\n"
        f"    PSIS k-hat (2,000 draws from q, log joint): {times['khat']:.3f} s"
    )


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
