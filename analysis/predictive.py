"""Predictive comparison of VB and MCMC from posterior draws (numpy/scipy only).

The likelihood is that of the fitted model: Gaussian ``y ~ N(Xβ + u_g, 1/τ_e)`` or
Bernoulli-logit ``y ~ Bernoulli(logit⁻¹(Xβ + u_g))`` (the logistic model, told apart by
``posterior.attrs["model"]``). Held-out data are arrays ``X, y, group`` or any object with those
attributes (a `models.RegressionData`); group indices refer to the fitted groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from analysis.ratios import posterior_of


def held_out_arrays(
    X: Any, y: Any = None, group: Any = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(X, y, group)`` as arrays, from arrays or from an object with those attributes.

    Examples
    --------
    >>> X, y, group = held_out_arrays(np.ones((3, 2)), [0.0, 1.0, 2.0], [0, 1, 1])
    >>> X.shape, y.tolist(), group.tolist()
    ((3, 2), [0.0, 1.0, 2.0], [0, 1, 1])
    """
    if hasattr(X, "X"):
        X, y, group = X.X, X.y if y is None else y, getattr(X, "group", None)
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X: expected a 2-d design matrix, got shape {X.shape}")
    n = X.shape[0]
    if y is not None:
        y = np.asarray(y, dtype=float)
        if y.shape != (n,):
            raise ValueError(f"y: expected shape ({n},) to match X, got {y.shape}")
    if group is not None:
        group = np.asarray(group)
        if group.shape != (n,) or not np.issubdtype(group.dtype, np.integer):
            raise ValueError(f"group: expected {n} integer group indices, got {group.shape}")
    return X, y, group


def _stacked(fit: Any, max_draws: int | None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    posterior = posterior_of(fit)
    if "beta" not in posterior:
        raise ValueError("fit: its posterior has no 'beta' (needed for predictions)")
    draws = {
        name: posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).values
        for name in ("beta", "u", "tau_e")
        if name in posterior
    }
    n = draws["beta"].shape[0]
    if max_draws is not None and n > max_draws:
        keep = rng.choice(n, size=max_draws, replace=False)
        draws = {k: v[keep] for k, v in draws.items()}
    return draws


def _linear_predictor(draws: dict[str, np.ndarray], X: np.ndarray, group: Any) -> np.ndarray:
    if X.shape[1] != draws["beta"].shape[1]:
        raise ValueError(f"X: {X.shape[1]} columns for {draws['beta'].shape[1]} coefficients")
    eta = draws["beta"] @ X.T
    if "u" in draws:
        if group is None:
            raise ValueError("group: required for a model with random intercepts u")
        n_groups = draws["u"].shape[1]
        if group.size and (group.min() < 0 or group.max() >= n_groups):
            raise ValueError(f"group: indices must lie in 0 .. {n_groups - 1} (the fitted groups)")
        eta = eta + draws["u"][:, group]
    return eta


def _is_bernoulli(fit: Any) -> bool:
    return posterior_of(fit).attrs.get("likelihood", "gaussian") == "bernoulli"


def pointwise_log_likelihood(
    fit: Any,
    X: Any,
    y: Any = None,
    group: Any = None,
    *,
    max_draws: int | None = 2000,
    seed: int = 0,
) -> np.ndarray:
    """``log p(y_i | θ_s)`` for every (draw s, row i) of new data ``(X, y, group)``.

    Parameters
    ----------
    fit : InferenceData or xarray.Dataset
        A fit following the contract.
    X, y, group : array-like, or ``X`` an object with attributes ``X, y, group``
        Held-out design matrix, outcomes and group indices.
    max_draws : int, optional
        Use at most this many posterior draws (a random subset).
    seed : int
        Seed of that subset.

    Returns
    -------
    ndarray, shape (draws, rows)
    """
    X, y, group = held_out_arrays(X, y, group)
    if y is None:
        raise ValueError("y: held-out outcomes are required")
    draws = _stacked(fit, max_draws, np.random.default_rng(seed))
    eta = _linear_predictor(draws, X, group)
    if _is_bernoulli(fit):
        return y * -np.logaddexp(0.0, -eta) + (1 - y) * -np.logaddexp(0.0, eta)
    if "tau_e" not in draws:
        raise ValueError("fit: a Gaussian model needs 'tau_e' in its posterior")
    tau = draws["tau_e"][:, None]
    return 0.5 * (np.log(tau) - np.log(2 * np.pi) - tau * (y - eta) ** 2)


def _pointwise_lpd(fit: Any, X: Any, y: Any, group: Any, max_draws: int | None) -> np.ndarray:
    loglik = pointwise_log_likelihood(fit, X, y, group, max_draws=max_draws)
    return special.logsumexp(loglik, axis=0) - np.log(loglik.shape[0])


def log_predictive_density(
    fit: Any, X: Any, y: Any = None, group: Any = None, *, max_draws: int | None = 2000
) -> tuple[float, float]:
    """Held-out log predictive density ``Σ_i log mean_s p(y_i | θ_s)`` and its standard error.

    Returns
    -------
    lpd, se : float
        The sum over held-out rows, and ``sqrt(n) · sd`` of the pointwise terms.

    Examples
    --------
    >>> import arviz as az
    >>> from scipy import stats
    >>> fit = az.from_dict(posterior={"beta": np.zeros((1, 10, 1)), "tau_e": np.ones((1, 10))})
    >>> lpd, se = log_predictive_density(fit, np.ones((2, 1)), [0.0, 1.0])
    >>> bool(np.isclose(lpd, stats.norm.logpdf([0.0, 1.0]).sum()))
    True
    """
    pointwise = _pointwise_lpd(fit, X, y, group, max_draws)
    return float(pointwise.sum()), float(np.sqrt(pointwise.size) * pointwise.std())


def posterior_predictive(
    fit: Any, X: Any, group: Any = None, *, n_draws: int = 500, seed: int = 0
) -> np.ndarray:
    """Replicated outcomes, shape (n_draws, n_rows), drawn from the fit's posterior."""
    X, _, group = held_out_arrays(X, None, group)
    rng = np.random.default_rng(seed)
    draws = _stacked(fit, n_draws, rng)
    eta = _linear_predictor(draws, X, group)
    if _is_bernoulli(fit):
        return (rng.uniform(size=eta.shape) < special.expit(eta)).astype(float)
    if "tau_e" not in draws:
        raise ValueError("fit: a Gaussian model needs 'tau_e' in its posterior")
    return eta + rng.standard_normal(eta.shape) / np.sqrt(draws["tau_e"][:, None])


def predictive_comparison(
    vb: Any,
    reference: Any,
    X: Any,
    y: Any = None,
    group: Any = None,
    *,
    labels: Sequence[str] = ("VB", "MCMC"),
    n_draws: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Held-out log predictive density and posterior predictive p-values, VB next to MCMC.

    Parameters
    ----------
    vb, reference : InferenceData
        The two fits.
    X, y, group : array-like, or ``X`` an object with attributes ``X, y, group``
        Held-out data (or the observed data, for a posterior predictive check in sample).
    labels : (str, str)
        Names of the two fits in the ``fit`` column.
    n_draws : int
        Posterior draws used for both the density and the replicated data sets.
    seed : int
        Seed of the draws' subset and of the replications.

    Returns
    -------
    pandas.DataFrame
        One row per fit: ``fit``, ``lpd``, ``lpd_se``, ``lpd_diff`` (this fit minus the
        reference, summed over rows) with its paired standard error ``lpd_diff_se``, and the
        posterior predictive p-values ``P(T(y_rep) ≥ T(y))`` of the mean and the SD of ``y``.

    Examples
    --------
    >>> import arviz as az
    >>> rng = np.random.default_rng(0)
    >>> def fit(sd):
    ...     return az.from_dict(posterior={"beta": rng.normal(0, sd, (1, 500, 1)),
    ...                                    "tau_e": np.ones((1, 500))})
    >>> table = predictive_comparison(fit(0.1), fit(0.2), np.ones((30, 1)), rng.normal(size=30))
    >>> table.columns.tolist()
    ['fit', 'lpd', 'lpd_se', 'lpd_diff', 'lpd_diff_se', 'p_mean', 'p_sd']
    """
    X, y, group = held_out_arrays(X, y, group)
    if y is None:
        raise ValueError("y: held-out outcomes are required")
    pointwise = [_pointwise_lpd(fit, X, y, group, n_draws) for fit in (vb, reference)]
    rows = []
    for name, fit, lpd in zip(labels, (vb, reference), pointwise, strict=True):
        replicated = posterior_predictive(fit, X, group, n_draws=n_draws, seed=seed)
        diff = lpd - pointwise[1]
        rows.append(
            {
                "fit": name,
                "lpd": lpd.sum(),
                "lpd_se": np.sqrt(lpd.size) * lpd.std(),
                "lpd_diff": diff.sum(),
                "lpd_diff_se": np.sqrt(diff.size) * diff.std(),
                "p_mean": np.mean(replicated.mean(axis=1) >= y.mean()),
                "p_sd": np.mean(replicated.std(axis=1) >= y.std()),
            }
        )
    return pd.DataFrame(rows)
