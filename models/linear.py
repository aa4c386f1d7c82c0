"""M1: Bayesian linear regression with the conjugate Normal–Gamma prior.

    tau_e            ~ Gamma(a_e, b_e)                      (shape, rate)
    beta | tau_e     ~ Normal(beta_mean, (tau_e * beta_precision)^(-1/2))   per coefficient
    y_i | beta, tau_e ~ Normal(x_i' beta, tau_e^(-1/2))

The prior of ``beta`` is scaled by the noise precision, so the posterior is Normal–Gamma in
closed form (see ``inference.conjugate.engines``): this is the model whose exact answer is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.spec import ModelSpec, RegressionData, coords_of


@dataclass(frozen=True)
class LinearPriors:
    """Hyper-parameters of the conjugate Normal–Gamma prior.

    Parameters
    ----------
    beta_mean : float
        Prior mean ``m0`` of every coefficient.
    beta_precision : float
        ``lambda0`` in ``beta | tau_e ~ N(m0, (tau_e * lambda0 * I)^-1)``: with the default 0.01
        and ``tau_e`` near 1 the prior SD of a coefficient is about 10.
    a_e, b_e : float
        Shape and rate of the Gamma prior of the noise precision ``tau_e``.
    """

    beta_mean: float = 0.0
    beta_precision: float = 0.01
    a_e: float = 1.0
    b_e: float = 1.0


def numpyro_model(
    X, group=None, n_groups: int = 0, y=None, *, priors: LinearPriors = LinearPriors()
):
    """NumPyro model of M1; ``group`` and ``n_groups`` keep the common signature, unused."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    tau_e = numpyro.sample("tau_e", dist.Gamma(priors.a_e, priors.b_e))
    with numpyro.plate("coef", X.shape[1]):
        beta_sd = 1.0 / jnp.sqrt(tau_e * priors.beta_precision)
        beta = numpyro.sample("beta", dist.Normal(priors.beta_mean, beta_sd))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0 / jnp.sqrt(tau_e)), obs=y)


def build_pymc(data: RegressionData, priors: LinearPriors = LinearPriors()) -> Any:
    """PyMC model of M1 with the data in ``pm.Data`` containers (``X``, ``y_obs``)."""
    import pymc as pm

    from models._pymc import data_containers

    with pm.Model(coords=coords_of(data)) as model:
        X, _, y_obs = data_containers(data)
        tau_e = pm.Gamma("tau_e", alpha=priors.a_e, beta=priors.b_e)
        beta_sd = 1.0 / pm.math.sqrt(tau_e * priors.beta_precision)
        beta = pm.Normal("beta", mu=priors.beta_mean, sigma=beta_sd, dims="coef")
        sigma_e = 1.0 / pm.math.sqrt(tau_e)
        pm.Normal("y", mu=pm.math.dot(X, beta), sigma=sigma_e, observed=y_obs, dims="obs")
    return model


SPEC = ModelSpec(
    name="linear",
    label="M1",
    description="Bayesian linear regression, conjugate Normal-Gamma prior (exact posterior known)",
    likelihood="gaussian",
    hierarchical=False,
    parameters={"beta": ("coef",), "tau_e": ()},
    derived={"sigma_e": (), "sigma2_e": ()},
    priors_type=LinearPriors,
    numpyro_path="models.linear:numpyro_model",
    pymc_path="models.linear:build_pymc",
)
