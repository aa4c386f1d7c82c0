"""Exact Normal–Gamma posterior of the conjugate linear model (M1).

Prior ``beta | tau_e ~ N(m0 1, (tau_e lambda0 I)^-1)``, ``tau_e ~ Gamma(a, b)``; the posterior is
Normal–Gamma (e.g. Murphy 2007, "Conjugate Bayesian analysis of the Gaussian distribution"):

    Lambda_n = X'X + lambda0 I
    m_n      = Lambda_n^-1 (X'y + lambda0 m0 1)
    a_n      = a + n / 2
    b_n      = b + (y'y + lambda0 m0'm0 - m_n' Lambda_n m_n) / 2

    beta | tau_e, y ~ N(m_n, (tau_e Lambda_n)^-1),   tau_e | y ~ Gamma(a_n, b_n),

so ``beta | y`` is multivariate Student-t with ``2 a_n`` degrees of freedom, location ``m_n`` and
scale ``(b_n / a_n) Lambda_n^-1``: ``sd(beta_k) = sqrt(b_n / (a_n - 1) [Lambda_n^-1]_kk)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.conjugate.stats import GaussianStats, precision_moments, vector_moments
from models.linear import LinearPriors


@dataclass(frozen=True)
class NormalGamma:
    """Parameters ``(m_n, Lambda_n, a_n, b_n)`` of a Normal–Gamma posterior (module docstring)."""

    mean: np.ndarray
    precision: np.ndarray
    shape: float
    rate: float

    def moments(self) -> dict[str, dict[str, Any]]:
        """Analytic posterior means and SDs of ``beta``, ``tau_e``, ``sigma2_e``, ``sigma_e``."""
        scale_diag = np.diag(np.linalg.inv(self.precision))
        if self.shape > 1.0:
            beta_sd = np.sqrt(self.rate / (self.shape - 1.0) * scale_diag)
        else:  # Student-t with at most 2 degrees of freedom: no finite variance.
            beta_sd = np.full(scale_diag.shape, np.inf)
        return {"beta": vector_moments(self.mean, beta_sd)} | precision_moments(
            self.shape, self.rate, "e"
        )

    def draw(self, rng: np.random.Generator, num_draws: int) -> dict[str, np.ndarray]:
        """Independent draws ``tau_e ~ Gamma(a_n, b_n)``, ``beta | tau_e ~ N(m_n, (tau_e Λ_n)^-1)``.

        Returns arrays with leading ``(chain=1, draw)`` axes.
        """
        tau = rng.gamma(self.shape, 1.0 / self.rate, size=num_draws)
        chol = np.linalg.cholesky(self.precision)
        z = rng.standard_normal((num_draws, self.mean.size))
        # beta = m_n + L^-T z / sqrt(tau), with Lambda_n = L L'.
        offsets = np.linalg.solve(chol.T, z.T).T / np.sqrt(tau)[:, None]
        return {"beta": (self.mean + offsets)[None], "tau_e": tau[None]}


def normal_gamma_posterior(stats: GaussianStats, priors: LinearPriors) -> NormalGamma:
    """The exact posterior of M1 from the sufficient statistics (module docstring formulas)."""
    p = stats.Xty.size
    lam0, m0 = priors.beta_precision, np.full(p, priors.beta_mean)
    precision = stats.XtX + lam0 * np.eye(p)
    mean = np.linalg.solve(precision, stats.Xty + lam0 * m0)
    shape = priors.a_e + 0.5 * stats.n_obs
    rate = priors.b_e + 0.5 * (stats.yty + lam0 * m0 @ m0 - mean @ precision @ mean)
    return NormalGamma(mean=mean, precision=precision, shape=float(shape), rate=float(rate))
