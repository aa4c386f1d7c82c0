"""PyMC's NUTS three ways, on the reproduction's design: ``pm.sample``, nutpie on our shape-free
numba log density (`inference.ppl.nutpie_sampler`, the default), and nutpie's own
``compile_pymc_model`` (numba backend).

For each model, Q = 5 and 100 groups of N = 300 rows with the reproduction's vague priors are fitted
in a row in one process (so the second fit of a model shows what is reused), 4 x (1000 + 1000)
draws; printed: compile and sampling seconds, the smallest bulk/tail ESS, R-hat, divergences and
the gate. Run twice with ``--cold`` to see an empty PyTensor/numba cache and then a filled one.

    python benchmarks/nuts_samplers.py [--models M ...] [--groups 5 100] [--cold]
"""

from __future__ import annotations

import argparse
import os
import time

from scratch import scratch_dir  # benchmarks/ is first on sys.path

SAMPLERS = ("pymc", "nutpie", "nutpie-compile_pymc_model")
PRIORS = {
    "random_intercept": {"a_e": 0.01, "b_e": 0.01, "a_u": 0.01, "b_u": 0.01},
    "random_intercept_nc": {"a_e": 0.01, "b_e": 0.01, "a_u": 0.01, "b_u": 0.01},
    "logistic_random_intercept": {"a_u": 0.01, "b_u": 0.01},
}


def _data(model: str, n_groups: int):
    from models import simulate

    truth = {"tau_u": 4.0, "tau_e": 1.0}
    return simulate(model, n_groups=n_groups, n_obs=300, truth=truth, seed=1)[0]


def _nutpie_own(model: str, data, low_rank: bool) -> tuple[float, float, object]:
    """nutpie.compile_pymc_model (numba) + nutpie.sample: (compile s, sample s, posterior)."""
    import nutpie

    from models import MODELS

    spec = MODELS[model]
    pymc_model = spec.pymc_builder()(data, spec.priors(PRIORS[model]))
    started = time.perf_counter()
    compiled = nutpie.compile_pymc_model(pymc_model, backend="numba")
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    trace = nutpie.sample(
        compiled,
        draws=1000,
        tune=1000,
        chains=4,
        cores=1,
        seed=1,
        progress_bar=False,
        low_rank_modified_mass_matrix=low_rank,
        target_accept=0.9,
    )
    return compile_s, time.perf_counter() - started, trace


def _row(model: str, n_groups: int, sampler: str) -> dict[str, object]:
    import arviz as az

    from analysis.gate import mcmc_gate
    from inference import fit

    data = _data(model, n_groups)
    low_rank = sampler != "pymc"
    if sampler == "nutpie-compile_pymc_model":
        compile_s, run_s, trace = _nutpie_own(model, data, low_rank)
        summary = az.summary(trace, var_names=["beta", "tau_u"])
        gate = "-"
        divergences = int(trace.sample_stats.diverging.sum())
    else:
        settings = {"sampler": sampler, "low_rank_mass": low_rank}
        idata = fit(
            model,
            data,
            backend="pymc",
            method="nuts",
            settings=settings,
            priors=PRIORS[model],
            seed=1,
        )
        compile_s = idata.posterior.attrs["compile_time_s"]
        run_s = idata.posterior.attrs["run_time_s"]
        summary = az.summary(idata, var_names=["beta", "tau_u"])
        gate = mcmc_gate(idata).label
        divergences = int(idata.sample_stats.diverging.sum())
    return {
        "model": model,
        "Q": n_groups,
        "sampler": sampler,
        "compile_s": round(compile_s, 2),
        "sample_s": round(run_s, 2),
        "ess_min": int(summary[["ess_bulk", "ess_tail"]].min().min()),
        "rhat_max": round(float(summary.r_hat.max()), 3),
        "divergences": divergences,
        "gate": gate[:40],
    }


def main() -> None:
    """Parse arguments and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(PRIORS))
    parser.add_argument("--groups", nargs="+", type=int, default=[5, 100])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--cold", action="store_true", help="an empty PyTensor compile dir")
    args = parser.parse_args()
    if args.cold:
        cache = scratch_dir("vistudy-pytensor-")
        os.environ["PYTENSOR_FLAGS"] = f"base_compiledir={cache}"
    import pandas as pd

    print(f"load average {os.getloadavg()[0]:.1f}; 4 x (1000 + 1000) draws, low-rank for nutpie")
    rows = [
        _row(model, n_groups, sampler)
        for sampler in args.samplers
        for model in args.models
        for n_groups in args.groups
    ]
    pd.set_option("display.width", 200)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    totals = table.groupby("sampler")[["compile_s", "sample_s"]].sum()
    print("\ntotals per sampler:")
    print(totals.round(1).to_string())


if __name__ == "__main__":
    main()
