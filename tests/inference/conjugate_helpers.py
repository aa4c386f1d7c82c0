"""Shared cases and independent references for the tests of the ``reference`` backend.

The references are written here, not taken from the other engines: a small NumPyro NUTS run and a
long NumPyro ``AutoNormal`` SVI run, each cached per test process (``functools.lru_cache``) so a
case is fitted once even when several test modules use it.

Statistical assertions follow the Inference Gym form ``|a - b| < 5 sqrt(se_a^2 + se_b^2)`` with
``se = sd / sqrt(ESS)`` (``az.ess``); closed-form quantities have ``se = 0``.
"""

from __future__ import annotations

import functools
from typing import Any

import arviz as az
import numpy as np
import xarray as xr

from inference import fit
from models import MODELS, RegressionData, simulate

N_SE = 5.0

# (model, n_groups, n_per_group, seed) of the data sets shared by the CAVI and Gibbs tests.
CASES: dict[str, tuple[str, int, int, int]] = {
    "linear": ("linear", 1, 60, 11),
    "random_intercept": ("random_intercept", 10, 20, 12),
    "random_intercept_nc": ("random_intercept_nc", 10, 20, 12),
    "logistic_random_intercept": ("logistic_random_intercept", 20, 50, 13),
}


@functools.cache
def case(name: str) -> tuple[RegressionData, dict[str, Any]]:
    """Simulated data and truth of ``CASES[name]``."""
    model, n_groups, n_per_group, seed = CASES[name]
    if model == "linear":
        return simulate(model, n_obs=n_groups * n_per_group, seed=seed)
    return simulate(model, n_groups=n_groups, n_per_group=n_per_group, seed=seed)


@functools.cache
def reference_fit(name: str, method: str, **settings: Any) -> az.InferenceData:
    """``fit(..., backend="conjugate", method=method)`` on ``case(name)``, cached."""
    data, _ = case(name)
    return fit(name, data, backend="conjugate", method=method, settings=settings or None, seed=3)


@functools.cache
def nuts_posterior(name: str) -> xr.Dataset:
    """NUTS draws (4 chains x 1,000 after 500 warm-up) of ``case(name)``, as an xarray Dataset."""
    import jax
    from numpyro.infer import MCMC, NUTS

    data, _ = case(name)
    spec = MODELS[name]
    mcmc = MCMC(
        NUTS(spec.numpyro_model(), target_accept_prob=0.9),
        num_warmup=500,
        num_samples=1_000,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(
        jax.random.PRNGKey(0),
        data.X,
        data.group,
        data.n_groups,
        data.y,
        priors=spec.priors(),
    )
    samples = mcmc.get_samples(group_by_chain=True)
    return az.convert_to_dataset({k: np.asarray(v) for k, v in samples.items()})


def mean_and_se(posterior: xr.Dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean of ``name`` and its Monte-Carlo SE ``sd / sqrt(ESS_bulk)``."""
    draws = posterior[name]
    ess = az.ess(posterior[[name]])[name].values
    sd = draws.std(("chain", "draw")).values
    return draws.mean(("chain", "draw")).values, sd / np.sqrt(ess)


def sd_and_se(posterior: xr.Dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Posterior SD of ``name`` and its Monte-Carlo SE by the delta method.

    ``se(var) = sd(d) / sqrt(ESS(d))`` for the squared deviations ``d = (x - mean)^2``, and
    ``se(sd) = se(var) / (2 sd)``.
    """
    draws = posterior[name]
    squared = ((draws - draws.mean(("chain", "draw"))) ** 2).rename(name)
    sd = draws.std(("chain", "draw")).values
    ess = az.ess(squared.to_dataset())[name].values
    se_var = squared.std(("chain", "draw")).values / np.sqrt(ess)
    return sd, se_var / (2.0 * sd)


def assert_within_mc_error(
    a: np.ndarray, se_a: np.ndarray, b: np.ndarray, se_b: np.ndarray, what: str
) -> None:
    """``|a - b| < 5 sqrt(se_a^2 + se_b^2)`` elementwise, with a message naming ``what``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    bound = N_SE * np.sqrt(np.square(se_a) + np.square(se_b))
    gap = np.abs(a - b)
    assert np.all(gap < bound), f"{what}: |a - b| = {gap} exceeds 5 SE = {bound} (a={a}, b={b})"


def assert_monotone(elbo: np.ndarray) -> None:
    """The ELBO never decreases (up to a few ulps of round-off in its terms)."""
    elbo = np.asarray(elbo, float)
    slack = 16 * np.finfo(float).eps * np.abs(elbo[1:])
    steps = np.diff(elbo)
    assert np.all(steps >= -slack), f"ELBO decreased: min step {steps.min()} at {steps.argmin()}"
