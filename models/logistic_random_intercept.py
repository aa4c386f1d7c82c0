"""M3: logistic (Bernoulli-logit) random-intercept model, centred.

beta_k        ~ Normal(beta_mean, beta_sd)
tau_u         ~ Gamma(a_u, b_u)                        (shape, rate)
u_j | tau_u   ~ Normal(0, tau_u^(-1/2))
y_ij          ~ Bernoulli(logit^-1(x_ij' beta + u_j)),   y in {0, 1}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.spec import ModelSpec, RegressionData, coords_of


@dataclass(frozen=True)
class LogisticPriors:
    """Hyper-parameters of the logistic random-intercept model.

    Parameters
    ----------
    beta_mean, beta_sd : float
        Independent Normal prior of every coefficient (on the logit scale).
    a_u, b_u : float
        Shape and rate of the Gamma prior of the random-intercept precision ``tau_u``.
    """

    beta_mean: float = 0.0
    beta_sd: float = 10.0
    a_u: float = 1.0
    b_u: float = 1.0


def numpyro_model(X, group, n_groups: int, y=None, *, priors: LogisticPriors = LogisticPriors()):
    """NumPyro model of M3."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    tau_u = numpyro.sample("tau_u", dist.Gamma(priors.a_u, priors.b_u))
    with numpyro.plate("coef", X.shape[1]):
        beta = numpyro.sample("beta", dist.Normal(priors.beta_mean, priors.beta_sd))
    with numpyro.plate("group", n_groups):
        u = numpyro.sample("u", dist.Normal(0.0, 1.0 / jnp.sqrt(tau_u)))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ beta + u[group]), obs=y)


def build_pymc(data: RegressionData, priors: LogisticPriors = LogisticPriors()) -> Any:
    """PyMC model of M3."""
    import pymc as pm

    from models._pymc import data_containers

    with pm.Model(coords=coords_of(data)) as model:
        X, group, y_obs = data_containers(data)
        tau_u = pm.Gamma("tau_u", alpha=priors.a_u, beta=priors.b_u)
        beta = pm.Normal("beta", mu=priors.beta_mean, sigma=priors.beta_sd, dims="coef")
        u = pm.Normal("u", mu=0.0, sigma=1.0 / pm.math.sqrt(tau_u), dims="group")
        pm.Bernoulli("y", logit_p=pm.math.dot(X, beta) + u[group], observed=y_obs, dims="obs")
    return model


SPEC = ModelSpec(
    name="logistic_random_intercept",
    label="M3",
    description="Bernoulli-logit random intercepts, centred",
    likelihood="bernoulli",
    hierarchical=True,
    parameters={"beta": ("coef",), "u": ("group",), "tau_u": ()},
    derived={"sigma_u": (), "sigma2_u": ()},
    priors_type=LogisticPriors,
    numpyro_path="models.logistic_random_intercept:numpyro_model",
    pymc_path="models.logistic_random_intercept:build_pymc",
    effects=("beta", "u"),
)
