"""M2: the Gaussian random-intercept model of M0, non-centred.

    z_j ~ Normal(0, 1),   u_j = z_j / sqrt(tau_u)

Same joint distribution of the public parameters as M0 (same priors, see
`models.random_intercept.RandomInterceptPriors`), but mean-field VI factorises over ``z``
instead of ``u``, so its answer differs. ``z`` is internal and dropped from results.
"""

from __future__ import annotations

from typing import Any

from models.random_intercept import RandomInterceptPriors
from models.spec import ModelSpec, RegressionData, coords_of


def numpyro_model(
    X, group, n_groups: int, y=None, *, priors: RandomInterceptPriors = RandomInterceptPriors()
):
    """NumPyro model of M2 (non-centred random intercepts)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    tau_e = numpyro.sample("tau_e", dist.Gamma(priors.a_e, priors.b_e))
    tau_u = numpyro.sample("tau_u", dist.Gamma(priors.a_u, priors.b_u))
    with numpyro.plate("coef", X.shape[1]):
        beta = numpyro.sample("beta", dist.Normal(priors.beta_mean, priors.beta_sd))
    with numpyro.plate("group", n_groups):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    u = numpyro.deterministic("u", z / jnp.sqrt(tau_u))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta + u[group], 1.0 / jnp.sqrt(tau_e)), obs=y)


def build_pymc(
    data: RegressionData, priors: RandomInterceptPriors = RandomInterceptPriors()
) -> Any:
    """PyMC model of M2 (non-centred random intercepts)."""
    import pymc as pm

    from models._pymc import data_containers

    with pm.Model(coords=coords_of(data)) as model:
        X, group, y_obs = data_containers(data)
        tau_e = pm.Gamma("tau_e", alpha=priors.a_e, beta=priors.b_e)
        tau_u = pm.Gamma("tau_u", alpha=priors.a_u, beta=priors.b_u)
        beta = pm.Normal("beta", mu=priors.beta_mean, sigma=priors.beta_sd, dims="coef")
        z = pm.Normal("z", mu=0.0, sigma=1.0, dims="group")
        u = pm.Deterministic("u", z / pm.math.sqrt(tau_u), dims="group")
        mu = pm.math.dot(X, beta) + u[group]
        pm.Normal("y", mu=mu, sigma=1.0 / pm.math.sqrt(tau_e), observed=y_obs, dims="obs")
    return model


SPEC = ModelSpec(
    name="random_intercept_nc",
    label="M2",
    description="Gaussian random intercepts, non-centred (u = z / sqrt(tau_u))",
    likelihood="gaussian",
    hierarchical=True,
    parameters={"beta": ("coef",), "u": ("group",), "tau_e": (), "tau_u": ()},
    derived={"sigma_e": (), "sigma_u": (), "sigma2_e": (), "sigma2_u": ()},
    priors_type=RandomInterceptPriors,
    numpyro_path="models.random_intercept_nc:numpyro_model",
    pymc_path="models.random_intercept_nc:build_pymc",
    effects=("beta", "z"),
    same_posterior_as="random_intercept",
    internal=("z",),
)
