"""Predictive comparison of VB and MCMC from posterior draws (numpy/scipy only).

The likelihood is that of the fitted model: Gaussian ``y ~ N(Xβ + u_g, 1/τ_e)`` or
Bernoulli-logit ``y ~ Bernoulli(logit⁻¹(Xβ + u_g))`` (the logistic model).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from analysis.io import LIKELIHOODS
from analysis.ratios import posterior_of


def _stacked(fit: Any, max_draws: int | None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    posterior = posterior_of(fit)
    draws = {
        name: posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).values
        for name in ("beta", "u", "tau_e")
        if name in posterior
    }
    n = next(iter(draws.values())).shape[0]
    if max_draws is not None and n > max_draws:
        keep = rng.choice(n, size=max_draws, replace=False)
        draws = {k: v[keep] for k, v in draws.items()}
    return draws


def _linear_predictor(draws: dict[str, np.ndarray], X: np.ndarray, group: Any) -> np.ndarray:
    eta = draws["beta"] @ np.asarray(X, dtype=float).T
    if "u" in draws and group is not None:
        eta = eta + draws["u"][:, np.asarray(group)]
    return eta


def pointwise_log_likelihood(
    fit: Any,
    X: np.ndarray,
    y: np.ndarray,
    group: Any = None,
    *,
    max_draws: int | None = 2000,
    seed: int = 0,
) -> np.ndarray:
    """``log p(y_i | θ_s)`` for every (draw s, row i) of new data ``(X, y, group)``."""
    draws = _stacked(fit, max_draws, np.random.default_rng(seed))
    eta = _linear_predictor(draws, X, group)
    y = np.asarray(y, dtype=float)
    if LIKELIHOODS.get(posterior_of(fit).attrs.get("model", ""), "gaussian") == "bernoulli":
        return y * -np.logaddexp(0.0, -eta) + (1 - y) * -np.logaddexp(0.0, eta)
    tau = draws["tau_e"][:, None]
    return 0.5 * (np.log(tau) - np.log(2 * np.pi) - tau * (y - eta) ** 2)


def log_predictive_density(
    fit: Any, X: np.ndarray, y: np.ndarray, group: Any = None, *, max_draws: int | None = 2000
) -> tuple[float, float]:
    """Held-out log predictive density ``Σ_i log mean_s p(y_i | θ_s)`` and its standard error.

    Returns
    -------
    lpd, se : float
        The sum over held-out rows, and ``sqrt(n) · sd`` of the pointwise terms.
    """
    loglik = pointwise_log_likelihood(fit, X, y, group, max_draws=max_draws)
    pointwise = special.logsumexp(loglik, axis=0) - np.log(loglik.shape[0])
    return float(pointwise.sum()), float(np.sqrt(pointwise.size) * pointwise.std())


def posterior_predictive(
    fit: Any, X: np.ndarray, group: Any = None, *, n_draws: int = 500, seed: int = 0
) -> np.ndarray:
    """Replicated outcomes, shape (n_draws, n_rows), drawn from the fit's posterior."""
    rng = np.random.default_rng(seed)
    draws = _stacked(fit, n_draws, rng)
    eta = _linear_predictor(draws, X, group)
    if LIKELIHOODS.get(posterior_of(fit).attrs.get("model", ""), "gaussian") == "bernoulli":
        return (rng.uniform(size=eta.shape) < special.expit(eta)).astype(float)
    return eta + rng.standard_normal(eta.shape) / np.sqrt(draws["tau_e"][:, None])
