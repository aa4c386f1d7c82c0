"""M0: Gaussian random-intercept model, centred parameterisation.

beta_k            ~ Normal(beta_mean, beta_sd)          per coefficient
tau_e             ~ Gamma(a_e, b_e)                     (shape, rate)
tau_u             ~ Gamma(a_u, b_u)
u_j | tau_u       ~ Normal(0, tau_u^(-1/2))             per group j
y_ij | beta, u, tau_e ~ Normal(x_ij' beta + u_j, tau_e^(-1/2))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.spec import ModelSpec, RegressionData, coords_of


@dataclass(frozen=True)
class RandomInterceptPriors:
    """Hyper-parameters of the Gaussian random-intercept models (M0 and M2).

    Parameters
    ----------
    beta_mean, beta_sd : float
        Independent Normal prior of every coefficient.
    a_e, b_e : float
        Shape and rate of the Gamma prior of the noise precision ``tau_e``.
    a_u, b_u : float
        Shape and rate of the Gamma prior of the random-intercept precision ``tau_u``. The default
        Gamma(1, 1) is proper and keeps ``tau_u`` away from the improper-posterior corner that
        near-flat Gamma(eps, eps) priors give with few groups.
    """

    beta_mean: float = 0.0
    beta_sd: float = 10.0
    a_e: float = 1.0
    b_e: float = 1.0
    a_u: float = 1.0
    b_u: float = 1.0


def numpyro_model(
    X, group, n_groups: int, y=None, *, priors: RandomInterceptPriors = RandomInterceptPriors()
):
    """NumPyro model of M0 (centred random intercepts)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    tau_e = numpyro.sample("tau_e", dist.Gamma(priors.a_e, priors.b_e))
    tau_u = numpyro.sample("tau_u", dist.Gamma(priors.a_u, priors.b_u))
    with numpyro.plate("coef", X.shape[1]):
        beta = numpyro.sample("beta", dist.Normal(priors.beta_mean, priors.beta_sd))
    with numpyro.plate("group", n_groups):
        u = numpyro.sample("u", dist.Normal(0.0, 1.0 / jnp.sqrt(tau_u)))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta + u[group], 1.0 / jnp.sqrt(tau_e)), obs=y)


def build_pymc(
    data: RegressionData, priors: RandomInterceptPriors = RandomInterceptPriors()
) -> Any:
    """PyMC model of M0 (centred random intercepts)."""
    import pymc as pm

    from models._pymc import data_containers

    with pm.Model(coords=coords_of(data)) as model:
        X, group, y_obs = data_containers(data)
        tau_e = pm.Gamma("tau_e", alpha=priors.a_e, beta=priors.b_e)
        tau_u = pm.Gamma("tau_u", alpha=priors.a_u, beta=priors.b_u)
        beta = pm.Normal("beta", mu=priors.beta_mean, sigma=priors.beta_sd, dims="coef")
        u = pm.Normal("u", mu=0.0, sigma=1.0 / pm.math.sqrt(tau_u), dims="group")
        mu = pm.math.dot(X, beta) + u[group]
        pm.Normal("y", mu=mu, sigma=1.0 / pm.math.sqrt(tau_e), observed=y_obs, dims="obs")
    return model


SPEC = ModelSpec(
    name="random_intercept",
    label="M0",
    description="Gaussian random intercepts, centred",
    likelihood="gaussian",
    hierarchical=True,
    parameters={"beta": ("coef",), "u": ("group",), "tau_e": (), "tau_u": ()},
    derived={"sigma_e": (), "sigma_u": (), "sigma2_e": (), "sigma2_u": ()},
    priors_type=RandomInterceptPriors,
    numpyro_path="models.random_intercept:numpyro_model",
    pymc_path="models.random_intercept:build_pymc",
    effects=("beta", "u"),
)
