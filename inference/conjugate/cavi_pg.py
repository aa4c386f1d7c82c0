"""Pólya-Gamma CAVI for the logistic random-intercept model (M3), after Durante & Rigon (2019),
"Conditionally conjugate mean-field variational Bayes for logistic models", Statistical Science
34(3), Algorithm 2, extended with random intercepts and their precision.

With ``eta_i = x_i'beta + u_{g(i)}``, ``kappa_i = y_i - 1/2`` and Pólya-Gamma augmentation
``p(y_i, omega_i | eta_i) = 1/2 exp(kappa_i eta_i - omega_i eta_i^2 / 2) PG(omega_i | 1, 0)``, the
mean field ``q(beta) q(u) q(tau_u) prod_i q(omega_i)`` has closed-form factors:

    q(omega_i) = PG(1, c_i),   c_i = sqrt(E[eta_i^2]),   E[omega_i] = tanh(c_i / 2) / (2 c_i)
    q(beta)    = N(mu, Sigma): Sigma = (X' diag(E omega) X + I / s0^2)^-1,
                               mu    = Sigma (X'(kappa - E omega * mu_u[group]) + m0 / s0^2)
    q(u_j)     = N(mu_j, s2_j): s2_j = 1 / (sum_{i in j} E omega_i + E[tau_u]),
                               mu_j  = s2_j sum_{i in j} (kappa_i - E omega_i x_i'mu)
    q(tau_u)   = Gamma(a_u + Q/2, b_u + sum_j (mu_j^2 + s2_j) / 2)

The ELBO's likelihood part is, per observation (Durante & Rigon 2019, eq. 10),

    E_q[log p(y_i, omega_i | eta_i) - log q(omega_i)]
        = log sigmoid(c_i) - c_i / 2 + kappa_i E[eta_i] - E[omega_i] (E[eta_i^2] - c_i^2) / 2,

which at the optimal ``c_i`` is the Jaakkola–Jordan bound on ``log p(y_i | eta_i)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.conjugate.cavi import (
    CaviResult,
    convergence_info,
    coordinate_ascent,
    gaussian_entropy,
    random_intercept_draws,
    random_intercept_factors,
    random_intercept_moments,
)
from inference.conjugate.stats import (
    LOG_2PI,
    gamma_entropy,
    gamma_expected_log_density,
    gamma_mean_log,
)
from models.logistic_random_intercept import LogisticPriors
from models.spec import RegressionData


@dataclass(frozen=True)
class LogisticState:
    """Factors of PG-CAVI: Gaussians for beta and u, Gamma for tau_u, ``PG(1, c_i)``."""

    beta_mean: np.ndarray
    beta_cov: np.ndarray
    u_mean: np.ndarray
    u_var: np.ndarray
    shape_u: float
    rate_u: float
    c: np.ndarray


def pg_mean(c: np.ndarray) -> np.ndarray:
    """``E[omega]`` of ``PG(1, c)``: ``tanh(c/2) / (2c)``, with the limit ``1/4 - c^2/48`` at 0."""
    c = np.abs(c)
    small = c < 1e-4
    safe = np.where(small, 1.0, c)
    return np.where(small, 0.25 - c * c / 48.0, np.tanh(0.5 * safe) / (2.0 * safe))


def _linear_predictor_moments(s: LogisticState, data: RegressionData) -> tuple[np.ndarray, ...]:
    """``E[eta_i]`` and ``E[eta_i^2]`` under q."""
    mean = data.X @ s.beta_mean + s.u_mean[data.group]
    var = np.einsum("ik,kl,il->i", data.X, s.beta_cov, data.X) + s.u_var[data.group]
    return mean, mean * mean + var


def _sweep_logistic(
    s: LogisticState, data: RegressionData, priors: LogisticPriors
) -> LogisticState:
    """One pass of the updates of the module docstring: beta, u, tau_u, then omega."""
    X, g, q = data.X, data.group, data.n_groups
    kappa = data.y - 0.5
    omega = pg_mean(s.c)
    prior_prec = 1.0 / priors.beta_sd**2
    beta_cov = np.linalg.inv((X.T * omega) @ X + prior_prec * np.eye(X.shape[1]))
    rhs = X.T @ (kappa - omega * s.u_mean[g]) + prior_prec * priors.beta_mean
    beta_mean = beta_cov @ rhs
    u_var = 1.0 / (np.bincount(g, weights=omega, minlength=q) + s.shape_u / s.rate_u)
    u_sum = np.bincount(g, weights=kappa - omega * (X @ beta_mean), minlength=q)
    u_mean = u_var * u_sum
    rate_u = priors.b_u + 0.5 * float(np.sum(u_mean**2 + u_var))
    state = LogisticState(beta_mean, beta_cov, u_mean, u_var, s.shape_u, rate_u, s.c)
    _, second = _linear_predictor_moments(state, data)
    return LogisticState(beta_mean, beta_cov, u_mean, u_var, s.shape_u, rate_u, np.sqrt(second))


def _elbo_logistic(s: LogisticState, data: RegressionData, priors: LogisticPriors) -> float:
    """ELBO of M3 with the PG terms of the module docstring, plus priors and entropies."""
    p, q = s.beta_mean.size, s.u_mean.size
    eta_mean, eta_second = _linear_predictor_moments(s, data)
    omega = pg_mean(s.c)
    log_lik = np.sum(
        -np.logaddexp(0.0, -s.c)
        - 0.5 * s.c
        + (data.y - 0.5) * eta_mean
        - 0.5 * omega * (eta_second - s.c**2)
    )
    tau_u, log_tau_u = gamma_mean_log(s.shape_u, s.rate_u)
    centred = s.beta_mean - priors.beta_mean
    log_prior_beta = (
        -0.5 * p * (LOG_2PI + 2.0 * math.log(priors.beta_sd))
        - 0.5 * (centred @ centred + np.trace(s.beta_cov)) / priors.beta_sd**2
    )
    log_prior_u = 0.5 * q * (log_tau_u - LOG_2PI) - 0.5 * tau_u * float(
        np.sum(s.u_mean**2 + s.u_var)
    )
    log_prior_tau = gamma_expected_log_density(priors.a_u, priors.b_u, tau_u, log_tau_u)
    entropy = (
        gaussian_entropy(np.linalg.slogdet(s.beta_cov)[1], p)
        + 0.5 * float(np.sum(1.0 + LOG_2PI + np.log(s.u_var)))
        + gamma_entropy(s.shape_u, s.rate_u)
    )
    return float(log_lik + log_prior_beta + log_prior_u + log_prior_tau + entropy)


def cavi_logistic(
    data: RegressionData,
    priors: LogisticPriors,
    settings: Any,
    rng: np.random.Generator,
    progressbar: bool = False,
) -> CaviResult:
    """PG mean-field ``q(beta) q(u) q(tau_u) q(omega)`` for M3 (module docstring updates).

    Starts from ``c = 0`` (``E[omega] = 1/4``), ``mu_u = 0`` and ``E[tau_u]`` at its prior mean.
    """
    p, q = data.n_coef, data.n_groups
    shape_u = priors.a_u + 0.5 * q
    start = LogisticState(
        beta_mean=np.zeros(p),
        beta_cov=np.eye(p),
        u_mean=np.zeros(q),
        u_var=np.ones(q),
        shape_u=shape_u,
        rate_u=shape_u * priors.b_u / priors.a_u,
        c=np.zeros(data.n_obs),
    )
    state, trace, converged = coordinate_ascent(
        start,
        lambda s: _sweep_logistic(s, data, priors),
        lambda s: _elbo_logistic(s, data, priors),
        tol=settings.tol,
        max_iter=settings.max_iter,
        progressbar=progressbar,
    )
    factors = random_intercept_factors(state) | {"omega_c": (("obs",), state.c)}
    return CaviResult(
        random_intercept_moments(state),
        random_intercept_draws(state, rng, settings.num_draws),
        trace,
        converged,
        convergence_info(trace, settings),
        factors,
    )
