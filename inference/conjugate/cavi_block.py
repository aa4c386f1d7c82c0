"""Block CAVI: ``q(beta, u)`` one joint Gaussian, times Gamma factors of the precisions (and
Pólya-Gamma factors for the logistic model).

Ormerod & Wand (2010), "Explaining variational approximations", The American Statistician 64(2):
their product restriction for the linear mixed model, ``q(beta, u) q(tau_e) q(tau_u)``, keeps the
fixed and random effects in one Gaussian factor. For the logistic model (M3) the factorisation is
``q(beta, u) q(tau_u) prod_i q(omega_i)`` with Pólya-Gamma augmentation (Durante & Rigon 2019,
"Conditionally conjugate mean-field variational Bayes for logistic models", Statistical Science
34(3); ``(beta, u)`` is their Gaussian coefficient block, ``tau_u`` its conjugate precision).

Both models give ``q(beta, u) = N(mu, Sigma)`` with an arrow-shaped precision (``Z`` the group
indicator matrix, ``W`` the observation weights)

    P = [[A, G'], [G, diag(d)]],   A = w X'W X + I / s0^2,   G = w Z'W X,   d = w Z'W 1 + E[tau_u]
    h = [w X'W y~ + m0 / s0^2,  w Z'W y~]

M0: ``w = E[tau_e]``, ``W = I``, ``y~ = y``, so ``A``, ``G = E[tau_e] S_X``, ``d_j = E[tau_e]
n_j + E[tau_u]`` and ``h`` come from the group sums of `GaussianStats`. M3: ``w = 1``, ``W =
diag(E omega)``, ``W y~ = kappa = y - 1/2``. ``P`` is never formed: with the Schur complement of
its diagonal ``u`` block, ``R = diag(1/d) G`` (Q x p),

    Sigma_bb = (A - G'R)^-1,                  mu_b = Sigma_bb (h_b - R'h_u),
    Sigma_bu = -Sigma_bb R',                  mu_u = (h_u - G mu_b) / d,
    Sigma_uu = diag(1/d) + R Sigma_bb R'      (only its diagonal is computed),
    log|Sigma| = -log|P| = log|Sigma_bb| - sum_j log d_j.

The other factors, with ``E||u||^2 = sum_j (mu_j^2 + Sigma_uu[j, j])``:

    q(tau_e) = Gamma(a_e + n/2, b_e + E||y - X beta - u[group]||^2 / 2),     (M0)
        E||r||^2 = ||y - X mu_b - mu_u[group]||^2 + tr(X'X Sigma_bb)
                   + 2 tr(S_X' Sigma_bu') + sum_j n_j Sigma_uu[j, j]
    q(tau_u) = Gamma(a_u + Q/2, b_u + E||u||^2 / 2)
    q(omega_i) = PG(1, c_i),  c_i = sqrt(E[eta_i^2]),                           (M3)
        Var(eta_i) = x_i'Sigma_bb x_i + 2 x_i'Sigma_bu[:, j] + Sigma_uu[j, j],  j = group(i)

Each update is the exact coordinate maximiser of the ELBO, so the ELBO (computed after every
sweep, term by term as in `inference.conjugate.cavi`) never decreases. With the precisions (and
``omega``) held fixed, ``q(beta, u)`` is the exact conditional ``p(beta, u | tau, omega, y)``.

Cost per sweep: O(Q p^2 + p^3) for M0 (the data enter through `GaussianStats`), plus O(n p^2)
for M3's weighted sums; no (p + Q)-dimensional matrix is formed.

The kept factors (``variational`` group) rebuild the full joint: ``beta_mean``, ``u_mean``,
``beta_cov = Sigma_bb``, ``beta_u_cov = Sigma_bu`` (p x Q), ``u_var = diag(Sigma_uu)`` and
``u_prec = d`` (the diagonal of the precision's ``u`` block), with

    Sigma_uu = diag(1 / u_prec) + beta_u_cov' beta_cov^-1 beta_u_cov,
    u | beta ~ N(u_mean + beta_u_cov' beta_cov^-1 (beta - beta_mean), diag(1 / u_prec)).

The draws use the second line: ``beta`` from its marginal, then ``u | beta`` (O(draws (Q p + p^2))).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

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
from inference.conjugate.cavi_pg import pg_mean
from inference.conjugate.stats import (
    LOG_2PI,
    GaussianStats,
    gamma_entropy,
    gamma_expected_log_density,
    gamma_mean_log,
)
from models.logistic_random_intercept import LogisticPriors
from models.random_intercept import RandomInterceptPriors
from models.spec import RegressionData

State = TypeVar("State", bound="JointGaussian")
CHUNK_NUMBERS = 2**17  # draws of u shifted at once: about 1 MiB of float64, stays in cache


@dataclass(frozen=True)
class JointGaussian:
    """``q(beta, u) = N(mu, Sigma)`` in arrow form (module docstring).

    Attributes
    ----------
    beta_mean, beta_cov : ndarray
        ``mu_b`` (p,) and the marginal ``Sigma_bb`` (p, p).
    u_mean, u_var : ndarray
        ``mu_u`` (Q,) and the marginal variances ``diag(Sigma_uu)`` (Q,).
    beta_u_cov : ndarray
        The cross-covariance ``Sigma_bu`` (p, Q).
    u_prec : ndarray
        ``d``, the diagonal of the joint precision's ``u`` block (Q,).
    """

    beta_mean: np.ndarray
    beta_cov: np.ndarray
    u_mean: np.ndarray
    u_var: np.ndarray
    beta_u_cov: np.ndarray
    u_prec: np.ndarray

    def cov_logdet(self) -> float:
        """``log|Sigma| = log|Sigma_bb| - sum_j log d_j``."""
        return float(np.linalg.slogdet(self.beta_cov)[1] - np.sum(np.log(self.u_prec)))

    def u_second_moment(self) -> float:
        """``E||u||^2 = sum_j (mu_j^2 + Sigma_uu[j, j])``."""
        return float(np.sum(self.u_mean**2 + self.u_var))

    def parts(self) -> dict[str, np.ndarray]:
        """The fields as a dict (to build a state that extends this class)."""
        return {f.name: getattr(self, f.name) for f in fields(JointGaussian)}


def joint_gaussian(
    beta_prec: np.ndarray,
    cross: np.ndarray,
    u_prec: np.ndarray,
    beta_shift: np.ndarray,
    u_shift: np.ndarray,
) -> JointGaussian:
    """The Gaussian with precision ``[[A, G'], [G, diag(d)]]`` and shift ``[h_b, h_u]``.

    Parameters
    ----------
    beta_prec : ndarray, shape (p, p)
        ``A``.
    cross : ndarray, shape (Q, p)
        ``G``, the ``u``-``beta`` block of the precision.
    u_prec : ndarray, shape (Q,)
        ``d``.
    beta_shift, u_shift : ndarray
        ``h_b`` (p,) and ``h_u`` (Q,); the mean solves ``P mu = h``.

    Returns
    -------
    JointGaussian
        Through the Schur complement of the ``u`` block (module docstring), in O(Q p^2 + p^3).
    """
    regression = cross / u_prec[:, None]
    schur = beta_prec - cross.T @ regression
    beta_cov = np.linalg.inv(schur)
    beta_cov = 0.5 * (beta_cov + beta_cov.T)
    beta_mean = beta_cov @ (beta_shift - regression.T @ u_shift)
    beta_u_cov = -beta_cov @ regression.T
    u_var = 1.0 / u_prec - np.sum(regression * beta_u_cov.T, axis=1)
    u_mean = (u_shift - cross @ beta_mean) / u_prec
    return JointGaussian(beta_mean, beta_cov, u_mean, u_var, beta_u_cov, u_prec)


def _blank_joint(p: int, q: int) -> dict[str, np.ndarray]:
    """Placeholder ``q(beta, u)`` of a start state (the first sweep replaces it)."""
    return JointGaussian(
        np.zeros(p), np.eye(p), np.zeros(q), np.ones(q), np.zeros((p, q)), np.ones(q)
    ).parts()


def _log_prior_effects(
    s: JointGaussian, beta_mean: float, beta_sd: float, tau_u: float, log_tau_u: float
) -> float:
    """``E_q[log N(beta | m0, s0^2 I) + log N(u | 0, I / tau_u)]``."""
    p, q = s.beta_mean.size, s.u_mean.size
    centred = s.beta_mean - beta_mean
    log_prior_beta = (
        -0.5 * p * (LOG_2PI + 2.0 * math.log(beta_sd))
        - 0.5 * (centred @ centred + np.trace(s.beta_cov)) / beta_sd**2
    )
    log_prior_u = 0.5 * q * (log_tau_u - LOG_2PI) - 0.5 * tau_u * s.u_second_moment()
    return float(log_prior_beta + log_prior_u)


def block_draws(s: Any, rng: np.random.Generator, num_draws: int) -> dict[str, np.ndarray]:
    """Draws of q: ``beta`` from its marginal, ``u | beta`` (diagonal), the Gamma factors.

    ``random_intercept_draws`` with ``u``'s conditional variance ``1 / u_prec`` gives ``beta``,
    ``u - E[u | beta]`` centred at ``mu_u`` and the precisions; ``u`` is then shifted by its
    regression on ``beta``, ``beta_u_cov' beta_cov^-1 (beta - beta_mean)``.
    """
    draws = random_intercept_draws(replace(s, u_var=1.0 / s.u_prec), rng, num_draws)
    regression = np.linalg.solve(s.beta_cov, s.beta_u_cov)
    centred = draws["beta"][0] - s.beta_mean
    rows = max(1, CHUNK_NUMBERS // s.u_mean.size)
    for start in range(0, num_draws, rows):
        chunk = slice(start, start + rows)
        draws["u"][0, chunk] += centred[chunk] @ regression
    return draws


def _run(
    start: State,
    sweep: Callable[[State], State],
    elbo: Callable[[State], float],
    settings: Any,
    rng: np.random.Generator,
    progressbar: bool,
) -> CaviResult:
    """`coordinate_ascent` from ``start``, then moments, draws and the factors that rebuild
    ``q(beta, u)`` (module docstring)."""
    s, trace, converged = coordinate_ascent(
        start, sweep, elbo, tol=settings.tol, max_iter=settings.max_iter, progressbar=progressbar
    )
    factors = random_intercept_factors(s) | {
        "beta_u_cov": (("coef", "group"), s.beta_u_cov),
        "u_prec": (("group",), s.u_prec),
    }
    if hasattr(s, "c"):
        factors["omega_c"] = (("obs",), s.c)
    return CaviResult(
        random_intercept_moments(s),
        block_draws(s, rng, settings.num_draws),
        trace,
        converged,
        convergence_info(trace, settings),
        factors,
    )


# --- Gaussian random intercepts (M0) ---------------------------------------------------------


@dataclass(frozen=True)
class GaussianBlockState(JointGaussian):
    """``q(beta, u)`` and ``q(tau_e) = Gamma(shape_e, rate_e)``, ``q(tau_u) = Gamma(shape_u,
    rate_u)``."""

    shape_e: float
    rate_e: float
    shape_u: float
    rate_u: float


def conditional_random_intercept(
    stats: GaussianStats, priors: RandomInterceptPriors, tau_e: float, tau_u: float
) -> JointGaussian:
    """``p(beta, u | tau_e, tau_u, y)`` of M0, the ``q(beta, u)`` update at ``E[tau]``.

    Parameters
    ----------
    stats : GaussianStats
    priors : RandomInterceptPriors
    tau_e, tau_u : float
        The precisions (CAVI passes their means under q).

    Returns
    -------
    JointGaussian
    """
    prior_prec = 1.0 / priors.beta_sd**2
    p = stats.XtX.shape[0]
    return joint_gaussian(
        tau_e * stats.XtX + prior_prec * np.eye(p),
        tau_e * stats.group_X,
        tau_e * stats.group_size + tau_u,
        tau_e * stats.Xty + prior_prec * priors.beta_mean,
        tau_e * stats.group_y,
    )


def _expected_residual_ss(s: JointGaussian, stats: GaussianStats) -> float:
    """``E_q ||y - X beta - u[group]||^2`` with the cross-covariance (module docstring)."""
    return float(
        stats.residual_ss(s.beta_mean, s.u_mean)
        + np.sum(stats.XtX * s.beta_cov)
        + 2.0 * np.sum(stats.group_X.T * s.beta_u_cov)
        + stats.group_size @ s.u_var
    )


def _sweep_random_intercept(
    s: GaussianBlockState, stats: GaussianStats, priors: RandomInterceptPriors
) -> GaussianBlockState:
    """One pass of the M0 updates: q(beta, u), then q(tau_e), then q(tau_u)."""
    joint = conditional_random_intercept(stats, priors, s.shape_e / s.rate_e, s.shape_u / s.rate_u)
    return GaussianBlockState(
        **joint.parts(),
        shape_e=s.shape_e,
        rate_e=priors.b_e + 0.5 * _expected_residual_ss(joint, stats),
        shape_u=s.shape_u,
        rate_u=priors.b_u + 0.5 * joint.u_second_moment(),
    )


def _elbo_random_intercept(
    s: GaussianBlockState, stats: GaussianStats, priors: RandomInterceptPriors
) -> float:
    """ELBO of M0: ``E log p(y|.)``, the priors of beta, u, tau_e, tau_u, and the entropies."""
    tau_e, log_tau_e = gamma_mean_log(s.shape_e, s.rate_e)
    tau_u, log_tau_u = gamma_mean_log(s.shape_u, s.rate_u)
    residual = _expected_residual_ss(s, stats)
    log_lik = 0.5 * stats.n_obs * (log_tau_e - LOG_2PI) - 0.5 * tau_e * residual
    log_prior_effects = _log_prior_effects(s, priors.beta_mean, priors.beta_sd, tau_u, log_tau_u)
    log_prior_taus = gamma_expected_log_density(
        priors.a_e, priors.b_e, tau_e, log_tau_e
    ) + gamma_expected_log_density(priors.a_u, priors.b_u, tau_u, log_tau_u)
    entropy = (
        gaussian_entropy(s.cov_logdet(), s.beta_mean.size + s.u_mean.size)
        + gamma_entropy(s.shape_e, s.rate_e)
        + gamma_entropy(s.shape_u, s.rate_u)
    )
    return float(log_lik + log_prior_effects + log_prior_taus + entropy)


def cavi_block_random_intercept(
    data: RegressionData,
    priors: RandomInterceptPriors,
    settings: Any,
    rng: np.random.Generator,
    progressbar: bool = False,
) -> CaviResult:
    """Block CAVI ``q(beta, u) q(tau_e) q(tau_u)`` for M0 (module docstring updates).

    Parameters
    ----------
    data : RegressionData
    priors : RandomInterceptPriors
    settings : CaviSettings
        ``max_iter``, ``tol`` (rule of `coordinate_ascent`), ``num_draws``.
    rng : numpy.random.Generator
        For the draws only (the fit is deterministic).
    progressbar : bool
        Show a tqdm bar over sweeps.

    Returns
    -------
    CaviResult
        Factors ``beta_mean``, ``beta_cov``, ``u_mean``, ``u_var``, ``beta_u_cov``, ``u_prec``
        and the Gamma factors of ``tau_e``, ``tau_u``.

    Notes
    -----
    Starts from ``E[tau_e] = E[tau_u] = 1 / Var(y)`` with the shapes at their fixed values
    ``a_e + n/2`` and ``a_u + Q/2``; the first sweep updates ``q(beta, u)`` from them.
    """
    stats = GaussianStats.of(data)
    p, q = data.n_coef, data.n_groups
    var_y = float(np.var(data.y)) or 1.0
    shape_e, shape_u = priors.a_e + 0.5 * stats.n_obs, priors.a_u + 0.5 * q
    start = GaussianBlockState(
        **_blank_joint(p, q),
        shape_e=shape_e,
        rate_e=shape_e * var_y,
        shape_u=shape_u,
        rate_u=shape_u * var_y,
    )
    return _run(
        start,
        lambda s: _sweep_random_intercept(s, stats, priors),
        lambda s: _elbo_random_intercept(s, stats, priors),
        settings,
        rng,
        progressbar,
    )


# --- logistic random intercepts, Pólya-Gamma (M3) --------------------------------------------


@dataclass(frozen=True)
class LogisticBlockState(JointGaussian):
    """``q(beta, u)``, ``q(tau_u) = Gamma(shape_u, rate_u)`` and ``q(omega_i) = PG(1, c_i)``."""

    shape_u: float
    rate_u: float
    c: np.ndarray


def group_sums(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """``sum_{i in j} values[i]`` per group ``j``, for ``values`` of shape (n,) or (n, k)."""
    if values.ndim == 1:
        return np.bincount(group, weights=values, minlength=n_groups)
    return np.column_stack([group_sums(group, column, n_groups) for column in values.T])


def conditional_logistic(
    data: RegressionData, priors: LogisticPriors, omega: np.ndarray, tau_u: float
) -> JointGaussian:
    """``p(beta, u | omega, tau_u, y)`` of the PG-augmented M3, the ``q(beta, u)`` update at
    ``E[omega]``, ``E[tau_u]``.

    Parameters
    ----------
    data : RegressionData
    priors : LogisticPriors
    omega : ndarray, shape (n,)
        The Pólya-Gamma variables (CAVI passes ``E[omega_i] = tanh(c_i/2) / (2 c_i)``).
    tau_u : float

    Returns
    -------
    JointGaussian
    """
    X, g, q = data.X, data.group, data.n_groups
    kappa = data.y - 0.5
    prior_prec = 1.0 / priors.beta_sd**2
    return joint_gaussian(
        (X.T * omega) @ X + prior_prec * np.eye(X.shape[1]),
        group_sums(g, X * omega[:, None], q),
        group_sums(g, omega, q) + tau_u,
        X.T @ kappa + prior_prec * priors.beta_mean,
        group_sums(g, kappa, q),
    )


def linear_predictor_moments(
    s: JointGaussian, data: RegressionData
) -> tuple[np.ndarray, np.ndarray]:
    """``E[eta_i]`` and ``E[eta_i^2]`` under the joint q, in O(n p^2) (module docstring)."""
    X, g = data.X, data.group
    mean = X @ s.beta_mean + s.u_mean[g]
    var = (
        np.sum((X @ s.beta_cov) * X, axis=1)
        + 2.0 * np.sum(X * s.beta_u_cov.T[g], axis=1)
        + s.u_var[g]
    )
    return mean, mean * mean + var


def _sweep_logistic(
    s: LogisticBlockState, data: RegressionData, priors: LogisticPriors
) -> LogisticBlockState:
    """One pass of the M3 updates: q(beta, u), then q(tau_u), then q(omega)."""
    joint = conditional_logistic(data, priors, pg_mean(s.c), s.shape_u / s.rate_u)
    _, second = linear_predictor_moments(joint, data)
    return LogisticBlockState(
        **joint.parts(),
        shape_u=s.shape_u,
        rate_u=priors.b_u + 0.5 * joint.u_second_moment(),
        c=np.sqrt(second),
    )


def _elbo_logistic(s: LogisticBlockState, data: RegressionData, priors: LogisticPriors) -> float:
    """ELBO of M3: the PG likelihood terms (`inference.conjugate.cavi_pg`), the priors of beta, u
    and tau_u, and the entropies of q(beta, u) and q(tau_u)."""
    eta_mean, eta_second = linear_predictor_moments(s, data)
    log_lik = np.sum(
        -np.logaddexp(0.0, -s.c)
        - 0.5 * s.c
        + (data.y - 0.5) * eta_mean
        - 0.5 * pg_mean(s.c) * (eta_second - s.c**2)
    )
    tau_u, log_tau_u = gamma_mean_log(s.shape_u, s.rate_u)
    log_prior_effects = _log_prior_effects(s, priors.beta_mean, priors.beta_sd, tau_u, log_tau_u)
    log_prior_tau = gamma_expected_log_density(priors.a_u, priors.b_u, tau_u, log_tau_u)
    entropy = gaussian_entropy(s.cov_logdet(), s.beta_mean.size + s.u_mean.size) + gamma_entropy(
        s.shape_u, s.rate_u
    )
    return float(log_lik + log_prior_effects + log_prior_tau + entropy)


def cavi_block_logistic(
    data: RegressionData,
    priors: LogisticPriors,
    settings: Any,
    rng: np.random.Generator,
    progressbar: bool = False,
) -> CaviResult:
    """Block PG-CAVI ``q(beta, u) q(tau_u) prod_i q(omega_i)`` for M3 (module docstring).

    Parameters and returns as `cavi_block_random_intercept` (``data`` with a binary ``y``,
    ``priors`` a `LogisticPriors`); the factors have no ``tau_e`` and add ``omega_c`` (dim
    ``obs``), the ``c_i`` of ``q(omega_i) = PG(1, c_i)``.

    Notes
    -----
    Starts from ``c = 0`` (``E[omega] = 1/4``) and ``E[tau_u]`` at its prior mean, as
    `inference.conjugate.cavi_pg.cavi_logistic`.
    """
    p, q = data.n_coef, data.n_groups
    shape_u = priors.a_u + 0.5 * q
    start = LogisticBlockState(
        **_blank_joint(p, q),
        shape_u=shape_u,
        rate_u=shape_u * priors.b_u / priors.a_u,
        c=np.zeros(data.n_obs),
    )
    return _run(
        start,
        lambda s: _sweep_logistic(s, data, priors),
        lambda s: _elbo_logistic(s, data, priors),
        settings,
        rng,
        progressbar,
    )
