"""Pólya-Gamma Gibbs sampler of the logistic random-intercept model (M3), after Polson, Scott &
Windle (2013), "Bayesian inference for logistic models using Pólya-Gamma latent variables",
JASA 108(504), with random intercepts (all chains in one array, as in `inference.conjugate.gibbs`).

With ``eta_i = x_i'beta + u_{g(i)}``, ``kappa_i = y_i - 1/2`` and ``Omega = diag(omega)``:

    omega_i | beta, u   ~ PG(1, eta_i)                         (``polyagamma.random_polyagamma``)

then ``(beta, u) | omega, tau_u`` as one Gaussian block (``beta`` with ``u`` integrated out, then
``u | beta``), with the group sums ``B[j] = sum_{i in j} omega_i x_i`` and ``k_j = sum_{i in j}
kappa_i``:

    P_j = sum_{i in j} omega_i + tau_u
    beta    | omega, tau_u    ~ N(P^-1 h, P^-1),   P = X' Omega X + I / s0^2 - B' diag(1/P_j) B,
                                                   h = X'kappa + m0 / s0^2 - B' (k / P)
    u_j     | omega, beta, tau_u ~ N((k_j - B[j] beta) / P_j, 1 / P_j)
    tau_u   | u               ~ Gamma(a_u + Q/2, b_u + ||u||^2 / 2)
    sigma_u | z, omega, beta  (interweaving: `inference.conjugate.gibbs.interweave_scale` with
                               the group sums of omega as weights and ``k_j - B[j] beta``)

Starts are over-dispersed: ``beta, u ~ N(0, 1)``, ``tau_u ~ exp(N(0, 1))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from polyagamma import random_polyagamma

from inference.conjugate.gibbs import (
    GibbsResult,
    State,
    block_size,
    chain_generators,
    gaussian_from_canonical,
    interweave_noise,
    interweave_scale,
    normal_log_prior,
    random_intercept_log_prior,
    run_chains,
    stacked_noise,
)
from inference.conjugate.stats import gamma_expected_log_density
from models.logistic_random_intercept import LogisticPriors
from models.spec import RegressionData

CHUNK_NUMBERS = 2**16
"""`log_joint_logistic` evaluates draws in chunks of at most this many ``eta`` values (512 kB, so
the work stays in cache)."""


def gibbs_logistic(
    data: RegressionData,
    priors: LogisticPriors,
    settings: Any,
    seed: int,
    progressbar: bool = False,
) -> GibbsResult:
    """PG Gibbs sampler of M3 (module docstring), ``settings.num_chains`` chains at once."""
    X, g = data.X, data.group
    p, q, n = data.n_coef, data.n_groups, data.n_obs
    kappa = data.y - 0.5
    Xt_kappa = X.T @ kappa
    kappa_g = np.bincount(g, weights=kappa, minlength=q)
    prior_prec = np.eye(p) / priors.beta_sd**2
    prior_shift = priors.beta_mean / priors.beta_sd**2
    shape_u = priors.a_u + 0.5 * q
    rngs = chain_generators(seed, settings.num_chains)
    chains = len(rngs)
    # Row i of chain c falls in bin c * Q + g(i): one bincount gives every chain's group sums.
    bins = (np.arange(chains)[:, None] * q + g).ravel()
    # ... and bin (c * Q + g(i)) * p + k the sums of omega_i x_ik, every coefficient at once.
    coef_bins = (bins[:, None] * p + np.arange(p)).ravel()
    omega = np.empty((chains, n))

    def group_sums(values: np.ndarray) -> np.ndarray:
        return np.bincount(bins, weights=values.ravel(), minlength=chains * q).reshape(chains, q)

    def step(state: State, eps: dict[str, np.ndarray]) -> State:
        eta = state["beta"] @ X.T + state["u"][:, g]
        for c, rng in enumerate(rngs):
            random_polyagamma(
                1.0, eta[c], random_state=rng, out=omega[c], method="devroye", disable_checks=True
            )
        # (beta, u) | omega, tau_u as one block: beta with u integrated out, then u | beta.
        weighted = omega[:, :, None] * X
        cross = np.bincount(coef_bins, weights=weighted.ravel(), minlength=chains * q * p)
        cross = cross.reshape(chains, q, p)
        prec_u = group_sums(omega) + state["tau_u"][:, None]
        scaled = np.swapaxes(cross / prec_u[:, :, None], 1, 2)
        prec = np.swapaxes(weighted, 1, 2) @ X + prior_prec - scaled @ cross
        shift = Xt_kappa + prior_shift - (scaled @ kappa_g[:, None])[..., 0]
        beta = gaussian_from_canonical(prec, shift, eps["z_beta"])
        residual = kappa_g - (cross @ beta[:, :, None])[..., 0]
        u = residual / prec_u + eps["z_u"] / np.sqrt(prec_u)
        tau_u = eps["g_u"] / (priors.b_u + 0.5 * np.sum(u * u, axis=1))
        weights = prec_u - state["tau_u"][:, None]  # the group sums of omega
        u, tau_u = interweave_scale(u, tau_u, weights, residual, priors, eps)
        return {"beta": beta, "u": u, "tau_u": tau_u}

    def draw(rng: np.random.Generator, block: int) -> dict[str, np.ndarray]:
        return {
            "z_beta": rng.standard_normal((block, p)),
            "z_u": rng.standard_normal((block, q)),
            "g_u": rng.standard_gamma(shape_u, block),
            **interweave_noise(rng, block),
        }

    start = {
        "beta": np.stack([r.standard_normal(p) for r in rngs]),
        "u": np.stack([r.standard_normal(q) for r in rngs]),
        "tau_u": np.array([np.exp(r.standard_normal()) for r in rngs]),
    }
    kept = ("beta", "u", "tau_u")
    block = block_size(chains, p + q + 1)
    draws = run_chains(start, step, stacked_noise(rngs, draw), settings, kept, progressbar, block)
    return GibbsResult(draws, log_joint_logistic(draws, data, priors))


def log_joint_logistic(
    draws: dict[str, np.ndarray], data: RegressionData, priors: LogisticPriors
) -> np.ndarray:
    """``log p(y, beta, u, tau_u)`` of M3 at each draw (constrained space; any leading axes).

    ``sum_i y_i eta_i`` through ``X'y`` and the group sums of ``y``; ``sum_i log(1 + exp(eta_i))``
    in chunks of draws, in place (the cost: one ``eta`` per draw and row).
    """
    beta, u, tau_u = draws["beta"], draws["u"], draws["tau_u"]
    leading = tau_u.shape
    flat_beta = beta.reshape(-1, beta.shape[-1])
    flat_u = u.reshape(-1, u.shape[-1])
    group_y = np.bincount(data.group, weights=data.y, minlength=data.n_groups)
    log_lik = flat_beta @ (data.X.T @ data.y) + flat_u @ group_y
    chunk = max(1, CHUNK_NUMBERS // max(data.n_obs, 1))
    for start in range(0, flat_beta.shape[0], chunk):
        part = slice(start, start + chunk)
        eta = flat_beta[part] @ data.X.T
        eta += np.take(flat_u[part], data.group, axis=1)
        log_lik[part] -= softplus_inplace(eta).sum(axis=1)
    return (
        log_lik.reshape(leading)
        + normal_log_prior(beta, priors.beta_mean, priors.beta_sd)
        + random_intercept_log_prior(u, tau_u)
        + gamma_expected_log_density(priors.a_u, priors.b_u, tau_u, np.log(tau_u))
    )


def softplus_inplace(eta: np.ndarray) -> np.ndarray:
    """``log(1 + exp(eta))`` in place, as ``max(eta, 0) + log1p(exp(-|eta|))``: stable, and
    about 8 times faster than ``np.logaddexp(0, eta)`` (vectorised ``exp`` and ``log1p``)."""
    tail = np.abs(eta)
    np.negative(tail, out=tail)
    np.exp(tail, out=tail)
    np.log1p(tail, out=tail)
    np.maximum(eta, 0.0, out=eta)
    eta += tail
    return eta
