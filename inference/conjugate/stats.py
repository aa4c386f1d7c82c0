"""Pieces shared by the reference engines (exact, CAVI, Gibbs): sufficient statistics and the
closed-form moments of Gamma-distributed precisions.

Sufficient statistics of the Gaussian models make every CAVI sweep and Gibbs sweep cost
O(Q p + p^2) instead of O(n p): with ``r = y - X beta - u[group]``,

    ||r||^2 = y'y - 2 beta'X'y - 2 u's_y + beta'X'X beta + 2 beta'S_X'u + sum_j n_j u_j^2,

where ``s_y[j] = sum_{i in j} y_i`` and ``S_X[j] = sum_{i in j} x_i`` (rows of a Q x p matrix).

Moments of a precision ``tau ~ Gamma(a, b)`` (shape, rate) and of its derived scales:

    E[tau] = a / b,                       Var[tau] = a / b^2,
    E[log tau] = digamma(a) - log b,
    sigma2 = 1/tau ~ InvGamma(a, b):      E = b / (a - 1),  Var = b^2 / ((a - 1)^2 (a - 2)),
    sigma = tau^(-1/2):                   E = sqrt(b) Gamma(a - 1/2) / Gamma(a),
                                          Var = E[sigma2] - E[sigma]^2.

A moment that does not exist (``a <= 1`` for the mean of ``sigma2``, ``a <= 2`` for its variance)
is reported as ``inf``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import digamma, gammaln

from models.spec import RegressionData

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class GaussianStats:
    """Sufficient statistics of ``y`` given ``X`` and the group index.

    Attributes
    ----------
    XtX, Xty, yty
        ``X'X`` (p, p), ``X'y`` (p,), ``y'y``.
    n_obs : int
    group_size : ndarray, shape (Q,)
        ``n_j``; empty without groups.
    group_y : ndarray, shape (Q,)
        ``s_y[j] = sum_{i in j} y_i``.
    group_X : ndarray, shape (Q, p)
        ``S_X[j] = sum_{i in j} x_i``.
    """

    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    n_obs: int
    group_size: np.ndarray
    group_y: np.ndarray
    group_X: np.ndarray

    @classmethod
    def of(cls, data: RegressionData) -> GaussianStats:
        """Compute the statistics of ``data`` (one pass of ``np.bincount`` per column)."""
        X, y = data.X, data.y
        n_groups = data.n_groups or 0
        if data.group is None:
            sizes, group_y, group_X = np.zeros(0), np.zeros(0), np.zeros((0, X.shape[1]))
        else:
            g = data.group
            sizes = np.bincount(g, minlength=n_groups).astype(float)
            group_y = np.bincount(g, weights=y, minlength=n_groups)
            group_X = np.column_stack(
                [np.bincount(g, weights=X[:, k], minlength=n_groups) for k in range(X.shape[1])]
            )
        return cls(
            XtX=X.T @ X,
            Xty=X.T @ y,
            yty=float(y @ y),
            n_obs=int(y.size),
            group_size=sizes,
            group_y=group_y,
            group_X=group_X,
        )

    def residual_ss(self, beta: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
        """``||y - X beta - u[group]||^2`` for ``beta`` (..., p) and ``u`` (..., Q), batched."""
        ss = self.yty - 2.0 * beta @ self.Xty + np.einsum("...k,kl,...l->...", beta, self.XtX, beta)
        if u is not None:
            ss = ss - 2.0 * u @ self.group_y + 2.0 * np.sum((beta @ self.group_X.T) * u, axis=-1)
            ss = ss + (u * u) @ self.group_size
        return ss


def gamma_mean_log(shape: float, rate: float) -> tuple[float, float]:
    """``(E[tau], E[log tau])`` of ``tau ~ Gamma(shape, rate)``."""
    return shape / rate, float(digamma(shape)) - math.log(rate)


def gamma_entropy(shape: float, rate: float) -> float:
    """Entropy of ``Gamma(shape, rate)``: ``a - log b + log Gamma(a) + (1 - a) digamma(a)``."""
    return float(shape - math.log(rate) + gammaln(shape) + (1.0 - shape) * digamma(shape))


def gamma_expected_log_density(shape: float, rate: float, mean_tau: Any, mean_log_tau: Any) -> Any:
    """``E_q[log Gamma(tau | shape, rate)]`` given ``E_q[tau]`` and ``E_q[log tau]``.

    With ``mean_tau = tau`` and ``mean_log_tau = log(tau)`` (arrays allowed) it is the log density.
    """
    return shape * math.log(rate) - gammaln(shape) + (shape - 1.0) * mean_log_tau - rate * mean_tau


def precision_moments(shape: float, rate: float, suffix: str) -> dict[str, dict[str, float]]:
    """Closed-form mean and SD of ``tau``, ``sigma2 = 1/tau`` and ``sigma = tau^-1/2``.

    Parameters
    ----------
    shape, rate : float
        ``tau ~ Gamma(shape, rate)``.
    suffix : {"e", "u"}
        Names the entries ``tau_<suffix>``, ``sigma2_<suffix>``, ``sigma_<suffix>``.

    Returns
    -------
    dict
        ``{name: {"mean": float, "sd": float}}``; moments that do not exist are ``inf``.
    """
    a, b = float(shape), float(rate)
    mean_sigma2 = b / (a - 1.0) if a > 1.0 else math.inf
    sd_sigma2 = b / ((a - 1.0) * math.sqrt(a - 2.0)) if a > 2.0 else math.inf
    mean_sigma = math.exp(0.5 * math.log(b) + gammaln(a - 0.5) - gammaln(a))
    sd_sigma = math.sqrt(max(mean_sigma2 - mean_sigma**2, 0.0)) if a > 1.0 else math.inf
    return {
        f"tau_{suffix}": {"mean": a / b, "sd": math.sqrt(a) / b},
        f"sigma2_{suffix}": {"mean": mean_sigma2, "sd": sd_sigma2},
        f"sigma_{suffix}": {"mean": mean_sigma, "sd": sd_sigma},
    }


def vector_moments(mean: np.ndarray, sd: np.ndarray) -> dict[str, list[float]]:
    """``{"mean": [...], "sd": [...]}`` of a vector parameter, as plain lists."""
    return {"mean": np.asarray(mean, float).tolist(), "sd": np.asarray(sd, float).tolist()}
