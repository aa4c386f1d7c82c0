"""Closed-form coordinate-ascent mean-field VB for the Gaussian models (Ormerod & Wand 2010,
"Explaining variational approximations", The American Statistician 64(2), Algorithms 1–2).

Linear model (M1), ``q(beta) q(tau_e)`` with the conjugate prior
``beta | tau_e ~ N(m0, (tau_e lambda0 I)^-1)``; with ``Lambda_n = X'X + lambda0 I``:

    q(beta)  = N(mu, Sigma):       Sigma = (E[tau_e] Lambda_n)^-1,
                                   mu    = Lambda_n^-1 (X'y + lambda0 m0)   (the exact mean),
    q(tau_e) = Gamma(A, B):        A = a_e + (n + p) / 2,
                                   B = b_e + (||y - X mu||^2 + lambda0 ||mu - m0||^2
                                              + tr(Lambda_n Sigma)) / 2.

Random intercepts (M0), ``q(beta) q(u) q(tau_e) q(tau_u)`` with ``q(u) = prod_j N(mu_j, s2_j)``
(``beta ~ N(m0, s0^2 I)``; ``S_X``, ``s_y``, ``n_j`` the group sums of `GaussianStats`):

    q(beta):  Sigma = (E[tau_e] X'X + I / s0^2)^-1,
              mu    = Sigma (E[tau_e] (X'y - S_X' mu_u) + m0 / s0^2)
    q(u_j):   s2_j  = 1 / (E[tau_e] n_j + E[tau_u]),
              mu_j  = s2_j E[tau_e] (s_y[j] - S_X[j] mu)
    q(tau_e): A_e = a_e + n / 2,  B_e = b_e + E||y - X beta - u[group]||^2 / 2
              with E||r||^2 = ||y - X mu - mu_u[group]||^2 + tr(X'X Sigma) + sum_j n_j s2_j
    q(tau_u): A_u = a_u + Q / 2,  B_u = b_u + sum_j (mu_j^2 + s2_j) / 2

The ELBO ``E_q[log p(y, theta)] - E_q[log q(theta)]`` is computed exactly after every sweep (the
``_elbo_*`` functions spell out each term). Each sweep costs O(Q p + p^3): the data enter only
through their sufficient statistics.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from inference.conjugate.stats import (
    LOG_2PI,
    GaussianStats,
    gamma_entropy,
    gamma_expected_log_density,
    gamma_mean_log,
    precision_moments,
    vector_moments,
)
from models.linear import LinearPriors
from models.random_intercept import RandomInterceptPriors
from models.spec import RegressionData

logger = logging.getLogger(__name__)
State = TypeVar("State")


@dataclass(frozen=True)
class CaviResult:
    """A converged (or capped) CAVI fit.

    Attributes
    ----------
    moments : dict
        Analytic means and SDs under q of every public parameter (``{name: {"mean", "sd"}}``).
    draws : dict
        Draws from the product of the q factors, leading ``(chain=1, draw)`` axes.
    elbo : ndarray
        ELBO after each sweep.
    converged : bool
        Whether the tolerance was met before ``max_iter`` sweeps.
    info : dict
        Extra attrs (number of sweeps, tolerance, final ELBO).
    factors : dict
        The fitted factors' parameters, ``name -> (dims, array)`` (``beta_mean``, ``beta_cov``,
        ``u_mean``, ``u_var``, ``tau_e_shape``, ``tau_e_rate``, ...): the ``variational`` group.
    """

    moments: dict[str, dict[str, Any]]
    draws: dict[str, np.ndarray]
    elbo: np.ndarray
    converged: bool
    info: dict[str, Any] = field(default_factory=dict)
    factors: dict[str, tuple[tuple[str, ...], np.ndarray]] = field(default_factory=dict)


def coordinate_ascent(
    state: State,
    sweep: Callable[[State], State],
    elbo: Callable[[State], float],
    *,
    tol: float,
    max_iter: int,
    progressbar: bool = False,
) -> tuple[State, np.ndarray, bool]:
    """Sweep until the ELBO's relative change is below ``tol``.

    The rule: stop after sweep ``k >= 2`` when ``ELBO_k - ELBO_{k-1} < tol * |ELBO_k|`` (this also
    stops on a round-off-sized decrease at the optimum); never run more than ``max_iter`` sweeps.

    Returns
    -------
    state, elbo_trace, converged
    """
    trace: list[float] = []
    bar = _progress(max_iter, progressbar)
    converged = False
    for _ in range(max_iter):
        state = sweep(state)
        trace.append(elbo(state))
        if bar is not None:
            bar.update(1)
        if len(trace) > 1 and trace[-1] - trace[-2] < tol * abs(trace[-1]):
            converged = True
            break
    if bar is not None:
        bar.close()
    if not converged:
        logger.warning("CAVI did not converge in %d sweeps (tol=%g)", max_iter, tol)
    return state, np.asarray(trace), converged


def _progress(total: int, progressbar: bool) -> Any:
    if not progressbar:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="CAVI", unit="sweep")


def gaussian_entropy(cov_logdet: float, dim: int) -> float:
    """Entropy of a ``dim``-variate normal with ``log|Sigma| = cov_logdet``."""
    return 0.5 * dim * (1.0 + LOG_2PI) + 0.5 * cov_logdet


# --- linear model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearState:
    """Factors ``q(beta) = N(mean, cov)``, ``q(tau_e) = Gamma(shape, rate)``."""

    mean: np.ndarray
    cov: np.ndarray
    shape: float
    rate: float


def _sweep_linear(
    state: LinearState, stats: GaussianStats, priors: LinearPriors, precision: np.ndarray
) -> LinearState:
    """One pass of the M1 updates of the module docstring (q(beta), then q(tau_e))."""
    cov = np.linalg.inv(state.shape / state.rate * precision)
    p = state.mean.size
    centred = state.mean - priors.beta_mean
    expected_ss = (
        stats.residual_ss(state.mean)
        + priors.beta_precision * centred @ centred
        + np.sum(precision * cov)
    )
    rate = priors.b_e + 0.5 * expected_ss
    return LinearState(state.mean, cov, priors.a_e + 0.5 * (stats.n_obs + p), float(rate))


def _elbo_linear(state: LinearState, stats: GaussianStats, priors: LinearPriors) -> float:
    """ELBO of M1: ``E log p(y|.) + E log p(beta|tau) + E log p(tau) + H[q(beta)] + H[q(tau)]``."""
    p, n = state.mean.size, stats.n_obs
    mean_tau, mean_log_tau = gamma_mean_log(state.shape, state.rate)
    residual = stats.residual_ss(state.mean) + np.sum(stats.XtX * state.cov)
    centred = state.mean - priors.beta_mean
    prior_ss = centred @ centred + np.trace(state.cov)
    log_lik = 0.5 * n * (mean_log_tau - LOG_2PI) - 0.5 * mean_tau * residual
    log_prior_beta = (
        0.5 * p * (mean_log_tau + math.log(priors.beta_precision) - LOG_2PI)
        - 0.5 * mean_tau * priors.beta_precision * prior_ss
    )
    log_prior_tau = gamma_expected_log_density(priors.a_e, priors.b_e, mean_tau, mean_log_tau)
    entropy = gaussian_entropy(np.linalg.slogdet(state.cov)[1], p) + gamma_entropy(
        state.shape, state.rate
    )
    return float(log_lik + log_prior_beta + log_prior_tau + entropy)


def cavi_linear(
    data: RegressionData,
    priors: LinearPriors,
    settings: Any,
    rng: np.random.Generator,
    progressbar: bool = False,
) -> CaviResult:
    """Mean-field ``q(beta) q(tau_e)`` for M1 (module docstring); q(beta)'s mean is exact."""
    stats = GaussianStats.of(data)
    p = data.n_coef
    precision = stats.XtX + priors.beta_precision * np.eye(p)
    mean = np.linalg.solve(precision, stats.Xty + priors.beta_precision * priors.beta_mean)
    start = LinearState(mean, np.eye(p), 1.0, float(np.var(data.y)) or 1.0)
    state, trace, converged = coordinate_ascent(
        start,
        lambda s: _sweep_linear(s, stats, priors, precision),
        lambda s: _elbo_linear(s, stats, priors),
        tol=settings.tol,
        max_iter=settings.max_iter,
        progressbar=progressbar,
    )
    moments = {"beta": vector_moments(state.mean, np.sqrt(np.diag(state.cov)))}
    moments |= precision_moments(state.shape, state.rate, "e")
    draws = {
        "beta": rng.multivariate_normal(state.mean, state.cov, size=settings.num_draws)[None],
        "tau_e": rng.gamma(state.shape, 1.0 / state.rate, size=settings.num_draws)[None],
    }
    factors = {
        "beta_mean": (("coef",), state.mean),
        "beta_cov": (("coef", "coef_col"), state.cov),
        **gamma_factor("tau_e", state.shape, state.rate),
    }
    return CaviResult(moments, draws, trace, converged, convergence_info(trace, settings), factors)


def gamma_factor(name: str, shape: float, rate: float) -> dict[str, tuple[tuple, np.ndarray]]:
    """``<name>_shape`` and ``<name>_rate`` of a Gamma factor, as `CaviResult.factors` entries."""
    return {f"{name}_shape": ((), np.asarray(shape)), f"{name}_rate": ((), np.asarray(rate))}


def convergence_info(trace: np.ndarray, settings: Any) -> dict[str, Any]:
    return {"n_iter": int(trace.size), "tol": float(settings.tol), "elbo": float(trace[-1])}


# --- random intercepts -----------------------------------------------------------------------


@dataclass(frozen=True)
class RandomInterceptState:
    """Factors ``q(beta)=N(beta_mean, beta_cov)``, ``q(u_j)=N(u_mean_j, u_var_j)``, Gammas."""

    beta_mean: np.ndarray
    beta_cov: np.ndarray
    u_mean: np.ndarray
    u_var: np.ndarray
    shape_e: float
    rate_e: float
    shape_u: float
    rate_u: float


def _sweep_random_intercept(
    s: RandomInterceptState, stats: GaussianStats, priors: RandomInterceptPriors
) -> RandomInterceptState:
    """One pass of the M0 updates of the module docstring: beta, u, tau_e, tau_u."""
    p = s.beta_mean.size
    tau_e, tau_u = s.shape_e / s.rate_e, s.shape_u / s.rate_u
    prior_prec = 1.0 / priors.beta_sd**2
    beta_cov = np.linalg.inv(tau_e * stats.XtX + prior_prec * np.eye(p))
    rhs = tau_e * (stats.Xty - stats.group_X.T @ s.u_mean) + prior_prec * priors.beta_mean
    beta_mean = beta_cov @ rhs
    u_var = 1.0 / (tau_e * stats.group_size + tau_u)
    u_mean = u_var * tau_e * (stats.group_y - stats.group_X @ beta_mean)
    rate_e = priors.b_e + 0.5 * _expected_residual_ss(stats, beta_mean, beta_cov, u_mean, u_var)
    rate_u = priors.b_u + 0.5 * float(np.sum(u_mean**2 + u_var))
    return replace(
        s,
        beta_mean=beta_mean,
        beta_cov=beta_cov,
        u_mean=u_mean,
        u_var=u_var,
        rate_e=float(rate_e),
        rate_u=rate_u,
    )


def _expected_residual_ss(
    stats: GaussianStats,
    beta_mean: np.ndarray,
    beta_cov: np.ndarray,
    u_mean: np.ndarray,
    u_var: np.ndarray,
) -> float:
    """``E_q ||y - X beta - u[group]||^2`` (beta and u independent under q)."""
    return float(
        stats.residual_ss(beta_mean, u_mean)
        + np.sum(stats.XtX * beta_cov)
        + stats.group_size @ u_var
    )


def _elbo_random_intercept(
    s: RandomInterceptState, stats: GaussianStats, priors: RandomInterceptPriors
) -> float:
    """ELBO of M0: expected log joint (likelihood, priors of beta, u, tau_e, tau_u) + entropies."""
    p, q = s.beta_mean.size, s.u_mean.size
    tau_e, log_tau_e = gamma_mean_log(s.shape_e, s.rate_e)
    tau_u, log_tau_u = gamma_mean_log(s.shape_u, s.rate_u)
    residual = _expected_residual_ss(stats, s.beta_mean, s.beta_cov, s.u_mean, s.u_var)
    log_lik = 0.5 * stats.n_obs * (log_tau_e - LOG_2PI) - 0.5 * tau_e * residual
    centred = s.beta_mean - priors.beta_mean
    log_prior_beta = (
        -0.5 * p * (LOG_2PI + 2.0 * math.log(priors.beta_sd))
        - 0.5 * (centred @ centred + np.trace(s.beta_cov)) / priors.beta_sd**2
    )
    u_ss = float(np.sum(s.u_mean**2 + s.u_var))
    log_prior_u = 0.5 * q * (log_tau_u - LOG_2PI) - 0.5 * tau_u * u_ss
    log_prior_taus = gamma_expected_log_density(
        priors.a_e, priors.b_e, tau_e, log_tau_e
    ) + gamma_expected_log_density(priors.a_u, priors.b_u, tau_u, log_tau_u)
    entropy = (
        gaussian_entropy(np.linalg.slogdet(s.beta_cov)[1], p)
        + 0.5 * float(np.sum(1.0 + LOG_2PI + np.log(s.u_var)))
        + gamma_entropy(s.shape_e, s.rate_e)
        + gamma_entropy(s.shape_u, s.rate_u)
    )
    return float(log_lik + log_prior_beta + log_prior_u + log_prior_taus + entropy)


def cavi_random_intercept(
    data: RegressionData,
    priors: RandomInterceptPriors,
    settings: Any,
    rng: np.random.Generator,
    progressbar: bool = False,
) -> CaviResult:
    """Mean-field ``q(beta) q(u) q(tau_e) q(tau_u)`` for M0 (module docstring updates)."""
    stats = GaussianStats.of(data)
    p, q = data.n_coef, data.n_groups
    var_y = float(np.var(data.y)) or 1.0
    start = RandomInterceptState(
        beta_mean=np.zeros(p),
        beta_cov=np.eye(p),
        u_mean=np.zeros(q),
        u_var=np.ones(q),
        shape_e=priors.a_e + 0.5 * stats.n_obs,
        rate_e=(priors.a_e + 0.5 * stats.n_obs) * var_y,
        shape_u=priors.a_u + 0.5 * q,
        rate_u=(priors.a_u + 0.5 * q) * var_y,
    )
    state, trace, converged = coordinate_ascent(
        start,
        lambda s: _sweep_random_intercept(s, stats, priors),
        lambda s: _elbo_random_intercept(s, stats, priors),
        tol=settings.tol,
        max_iter=settings.max_iter,
        progressbar=progressbar,
    )
    return CaviResult(
        random_intercept_moments(state),
        random_intercept_draws(state, rng, settings.num_draws),
        trace,
        converged,
        convergence_info(trace, settings),
        random_intercept_factors(state),
    )


def random_intercept_factors(s: Any) -> dict[str, tuple[tuple, np.ndarray]]:
    """The mean-field factors' parameters of the random-intercept models (`CaviResult`)."""
    factors = {
        "beta_mean": (("coef",), s.beta_mean),
        "beta_cov": (("coef", "coef_col"), s.beta_cov),
        "u_mean": (("group",), s.u_mean),
        "u_var": (("group",), s.u_var),
    }
    if hasattr(s, "shape_e"):
        factors |= gamma_factor("tau_e", s.shape_e, s.rate_e)
    return factors | gamma_factor("tau_u", s.shape_u, s.rate_u)


def random_intercept_moments(s: Any) -> dict[str, dict[str, Any]]:
    """Analytic moments of q for the random-intercept models (``tau_e`` only when present)."""
    moments = {
        "beta": vector_moments(s.beta_mean, np.sqrt(np.diag(s.beta_cov))),
        "u": vector_moments(s.u_mean, np.sqrt(s.u_var)),
    }
    if hasattr(s, "shape_e"):
        moments |= precision_moments(s.shape_e, s.rate_e, "e")
    return moments | precision_moments(s.shape_u, s.rate_u, "u")


def random_intercept_draws(s: Any, rng: np.random.Generator, num_draws: int) -> dict:
    """Draws from the product of the q factors, with leading ``(chain=1, draw)`` axes."""
    chol = np.linalg.cholesky(s.beta_cov)
    beta = s.beta_mean + rng.standard_normal((num_draws, s.beta_mean.size)) @ chol.T
    u = np.empty((1, num_draws, s.u_mean.size))
    rng.standard_normal(out=u)
    u *= np.sqrt(s.u_var)
    u += s.u_mean
    draws = {"beta": beta[None], "u": u}
    if hasattr(s, "shape_e"):
        draws["tau_e"] = rng.gamma(s.shape_e, 1.0 / s.rate_e, size=num_draws)[None]
    draws["tau_u"] = rng.gamma(s.shape_u, 1.0 / s.rate_u, size=num_draws)[None]
    return draws
