"""What LRVB and the PSIS k̂ of every VB fit cost.

1. LRVB on top of a Q = 100 fit (20 rows per group) of M0, M2 and M3, for each base fit (NumPyro
   ADVI mean-field; with ``--block`` also NumPyro block ADVI; CAVI mean-field and block where CAVI
   fits the model): seconds of `inference.lrvb.linear_response` on the fitted q, cold (its
   program compiled in this process) and warm (a second data set of the same shape), Newton
   steps and the gradient norm at the end (target: at most 2 s added).
2. Scaling in Q (20 rows per group) from CAVI mean-field fits of M0 and M3: the structured path
   (cold and warm; "cold" is warm where section 1 compiled the same problem), conjugate
   gradients on Hessian-vector products for the columns of beta_0 and tau_u (products taken,
   seconds), and the dense ``jax.hessian`` path while the objective has at most
   ``--dense-max`` parameters.
3. PSIS k̂ (`inference.psis.stamp_psis`, what ``fit`` adds to every VB fit) at Q = 100.

Usage::

    python benchmarks/lrvb_times.py                      # Q = 100, 1000, 10000
    python benchmarks/lrvb_times.py --n-groups 100 1000  # a shorter scaling run
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import models  # noqa: F401  (float64 JAX before anything else imports it)
from inference import fit
from inference import lr_solver as solver
from inference.log_density import model_terms
from inference.lrvb import linear_response, start_of
from inference.psis import stamp_psis
from models import MODELS, simulate

ROWS = 20
CAVI_MODELS = ("random_intercept", "logistic_random_intercept")


def _timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def bases(model: str, block: bool) -> list[tuple[str, str, str]]:
    """(backend, method, family) of the base fits of ``model``."""
    out = [("numpyro", "advi", "mean_field")] + ([("numpyro", "advi", "block")] if block else [])
    if model in CAVI_MODELS:
        out += [("conjugate", "cavi", "mean_field"), ("conjugate", "cavi", "block")]
    return out


def lrvb_at_q100(block: bool) -> pd.DataFrame:
    """Section 1: LRVB seconds on Q = 100 fits, cold and warm."""
    rows = []
    for model in ("random_intercept", "random_intercept_nc", "logistic_random_intercept"):
        spec = MODELS[model]
        for backend, method, family in bases(model, block):
            row = {"model": spec.label, "base": f"{backend}/{method}:{family}"}
            for when, seed in (("cold", 1), ("warm", 2)):
                data, _ = simulate(model, n_groups=100, n_per_group=ROWS, seed=seed)
                base, fit_s = _timed(
                    fit, model, data, backend=backend, method=method, family=family, seed=seed
                )
                lr = linear_response(base, spec, data, spec.priors())
                row[f"{when}_s"] = lr.seconds
                row[f"fit_{when}_s"] = fit_s
                row.setdefault("compile_s", lr.compile_time_s)
            row["newton"] = lr.newton_steps
            row["grad_norm"] = lr.grad_norm
            rows.append(row)
    return pd.DataFrame(rows)


def scaling(n_groups: list[int], dense_max: int) -> pd.DataFrame:
    """Section 2: structured, CG and dense LRVB of CAVI mean-field fits as Q grows."""
    rows = []
    for model in CAVI_MODELS:
        spec = MODELS[model]
        for q in n_groups:
            rows.append(_scaling_row(spec, q, dense_max))
    return pd.DataFrame(rows)


def _scaling_row(spec, q: int, dense_max: int) -> dict:
    import jax.numpy as jnp

    row: dict = {"model": spec.label, "Q": q, "n": q * ROWS}
    for when, seed in (("cold", 1), ("warm", 2)):
        data, _ = simulate(spec.name, n_groups=q, n_per_group=ROWS, seed=seed)
        base = fit(spec.name, data, backend="conjugate", method="cavi", seed=seed)
        lr = linear_response(base, spec, data, spec.priors())
        row[f"structured_{when}_s"] = lr.seconds
    problem, _ = start_of(base.variational, spec, data, spec.priors())
    row["parameters"] = problem.dim
    terms = {k: jnp.asarray(v) for k, v in model_terms(spec, data).items()}
    eta = lr.info["eta"]
    columns = [lr.labels.index("beta[0]"), lr.labels.index("tau_u")]
    program, _ = solver.programs(problem, terms)
    program.hvp(jnp.asarray(eta), terms, jnp.zeros(problem.dim)).block_until_ready()
    (cg, products), row["cg_2_columns_s"] = _timed(
        solver.response_columns_cg, problem, eta, terms, columns
    )
    row["cg_products"] = int(products.sum())
    covariance_columns = np.diag(lr.diag)[:, columns] + lr.factor @ lr.factor[columns].T
    row["cg_vs_structured"] = float(np.abs(cg - covariance_columns).max())
    if problem.dim <= dense_max:
        dense, row["dense_cold_s"] = _timed(solver.solve, problem, eta, terms, hessian="dense")
        row["dense_vs_structured"] = float(np.abs(dense.covariance() - lr.covariance()).max())
    return row


def psis_at_q100() -> pd.DataFrame:
    """Section 3: seconds of ``stamp_psis`` on each VB fit at Q = 100."""
    rows = []
    for model in ("random_intercept", "random_intercept_nc", "logistic_random_intercept"):
        spec = MODELS[model]
        data, _ = simulate(model, n_groups=100, n_per_group=ROWS, seed=3)
        for backend, method, family in bases(model, block=False) + [
            ("conjugate", "cavi", "mean_field+lrvb")
        ]:
            if not (model in CAVI_MODELS or backend != "conjugate"):
                continue
            idata = fit(model, data, backend=backend, method=method, family=family, seed=3)
            khat, seconds = _timed(stamp_psis, idata, spec, data, spec.priors(), seed=3)
            label = f"{backend}/{method}:{family}"
            rows.append({"model": spec.label, "fit": label, "khat": khat, "seconds": seconds})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """Run the three sections and print their tables (seconds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-groups", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--dense-max", type=int, default=1_000)
    parser.add_argument("--block", action="store_true", help="also block ADVI (slow to fit)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["q100", "scaling", "psis"])
    args = parser.parse_args(argv)
    pd.set_option("display.width", 200)
    pd.set_option("display.precision", 3)
    if "q100" not in args.skip:
        print("LRVB added to a Q = 100 fit (target <= 2 s):")
        print(lrvb_at_q100(args.block).to_string(index=False))
    if "scaling" not in args.skip:
        print("\nLRVB as Q grows (CAVI mean-field bases):")
        print(scaling(args.n_groups, args.dense_max).to_string(index=False))
    if "psis" not in args.skip:
        print("\nPSIS k-hat added to each VB fit at Q = 100 (target well under 0.2 s):")
        print(psis_at_q100().to_string(index=False))


if __name__ == "__main__":
    main()
