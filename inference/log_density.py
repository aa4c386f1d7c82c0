"""Log joint densities of the four models, pointwise (NumPy) and expected under a Gaussian q.

Pointwise: `log_joint` is ``log p(y, theta)`` with every normalising constant included, exactly
NumPyro's ``numpyro.infer.util.log_density`` of the model (``space="constrained"``, the latent
sites ``beta``, ``u`` or ``z``, ``tau_e``, ``tau_u``), or minus its ``potential_energy``
(``space="unconstrained"``: each precision given as ``zeta = log tau``, the Jacobian
``sum zeta`` of ``tau = exp(zeta)`` added). The non-centred model (M2) is a density over
``(beta, z, tau_e, tau_u)`` with ``u = z / sqrt(tau_u)``. Draws may carry any leading axes; the
Gaussian models go through their sufficient statistics (`GaussianStats`, O(p^2 + Q p) a draw),
the logistic one through ``eta = X beta + u[group]`` in chunks of draws (O(n p) a draw).

Expected: `expected_log_joint` is ``E_q[log p(y, theta)]`` in closed form when q makes
``(beta, u)`` (or ``(beta, z)``) jointly Gaussian and independent of the precisions, whatever q
is for each precision (it enters through ``E[tau]``, ``E[log tau]`` and, for M2, ``E[tau^-1/2]``,
``E[tau^-1]``). With ``b = E beta``, ``S = Cov beta``, ``mu = E u``, ``v = Var u`` (elementwise),
``C = Cov(beta, u)`` (p x Q) and ``S_X``, ``s_y``, ``n_j`` the group sums,

    E||y - X beta - c u[group]||^2 = y'y - 2 b'X'y + tr(X'X (S + b b')) - 2 E[c] mu's_y
        + 2 E[c] sum_jk S_X[j, k] (C[k, j] + b_k mu_j) + E[c^2] sum_j n_j (v_j + mu_j^2)

(``c = 1`` for M0; ``c = tau_u^-1/2`` for M2, independent of ``(beta, z)``). The logistic
likelihood needs ``E log(1 + exp(eta_i))`` with ``eta_i ~ N(m_i, s_i^2)``,
``s_i^2 = x_i'S x_i + 2 x_i'C[:, g(i)] + v_g(i)``: Gauss-Hermite quadrature with
`GAUSS_HERMITE_NODES` nodes (``bernoulli="gauss_hermite"``: the exact expectation up to ~1e-12),
or the Jaakkola-Jordan bound ``log sigmoid(c_i) - c_i / 2 + (y_i - 1/2) m_i`` with
``c_i = sqrt(m_i^2 + s_i^2)`` (``bernoulli="jaakkola_jordan"``: Pólya-Gamma CAVI's ELBO with its
``q(omega)`` at its optimum, Durante & Rigon 2019, eq. 10). The functions take the array module
(``xp = numpy`` or ``jax.numpy``), so `inference.lrvb` differentiates the same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from inference.conjugate.gibbs import (
    gaussian_log_likelihood,
    log_joint_linear,
    log_joint_random_intercept,
    normal_log_prior,
)
from inference.conjugate.gibbs_pg import log_joint_logistic
from inference.conjugate.stats import LOG_2PI, GaussianStats, gamma_expected_log_density
from models import get_model
from models.spec import ModelSpec, RegressionData

Space = str  # "constrained" | "unconstrained"
GAUSS_HERMITE_NODES = 48


def latent_sites(spec: ModelSpec) -> tuple[str, ...]:
    """The model's latent sample sites in order: ``beta``, ``u`` or ``z``, precisions."""
    local = "z" if "z" in spec.internal else ("u" if "u" in spec.parameters else None)
    taus = tuple(name for name in ("tau_e", "tau_u") if name in spec.parameters)
    return ("beta",) + ((local,) if local else ()) + taus


def precisions(spec: ModelSpec) -> tuple[str, ...]:
    """The precision sites (``tau_e``, ``tau_u``): log-transformed in the unconstrained space."""
    return tuple(name for name in latent_sites(spec) if name.startswith("tau_"))


def log_joint(
    model: str | ModelSpec,
    values: Mapping[str, np.ndarray],
    data: RegressionData,
    priors: Any,
    *,
    space: Space = "constrained",
) -> np.ndarray:
    """``log p(y, theta)`` at each draw of the latent sites, constants included.

    Parameters
    ----------
    model : str or ModelSpec
        One of the four models.
    values : mapping of str to ndarray
        Each site of `latent_sites` with the same leading (draw) axes; with
        ``space="unconstrained"`` the precisions are given as ``log tau``.
    data : RegressionData
    priors : dataclass
        The model's prior hyper-parameters.
    space : {"constrained", "unconstrained"}
        ``unconstrained`` adds the Jacobian ``sum log tau``: the density of the log precisions.

    Returns
    -------
    ndarray
        One value per draw (the leading axes of ``values``).
    """
    spec = get_model(model)
    sites = latent_sites(spec)
    shape = np.shape(values["beta"])[:-1]
    flat = {name: _flatten(values[name], shape, name) for name in sites}
    jacobian = np.zeros(int(np.prod(shape, dtype=int)))
    if space == "unconstrained":
        for name in precisions(spec):
            jacobian = jacobian + flat[name]
            flat[name] = np.exp(flat[name])
    elif space != "constrained":
        raise ValueError(f"space: expected 'constrained' or 'unconstrained', got {space!r}")
    return (_POINTWISE[spec.name](flat, data, priors) + jacobian).reshape(shape)


def _flatten(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    value = np.asarray(value, dtype=float)
    if value.shape[: len(shape)] != shape:
        raise ValueError(f"values.{name}: expected leading axes {shape}, got {value.shape}")
    return value.reshape((-1,) + value.shape[len(shape) :])


def _linear(values: dict, data: RegressionData, priors: Any) -> np.ndarray:
    return log_joint_linear(values, GaussianStats.of(data), priors)


def _random_intercept(values: dict, data: RegressionData, priors: Any) -> np.ndarray:
    return log_joint_random_intercept(values, GaussianStats.of(data), priors)


def _random_intercept_nc(values: dict, data: RegressionData, priors: Any) -> np.ndarray:
    """M2 over ``(beta, z, tau_e, tau_u)``: M0's likelihood at ``u = z / sqrt(tau_u)``."""
    beta, z, tau_e, tau_u = values["beta"], values["z"], values["tau_e"], values["tau_u"]
    u = z / np.sqrt(tau_u)[:, None]
    return (
        gaussian_log_likelihood(GaussianStats.of(data), beta, tau_e, u)
        + normal_log_prior(beta, priors.beta_mean, priors.beta_sd)
        + normal_log_prior(z, 0.0, 1.0)
        + gamma_expected_log_density(priors.a_e, priors.b_e, tau_e, np.log(tau_e))
        + gamma_expected_log_density(priors.a_u, priors.b_u, tau_u, np.log(tau_u))
    )


def _logistic(values: dict, data: RegressionData, priors: Any) -> np.ndarray:
    return log_joint_logistic(values, data, priors)


_POINTWISE: dict[str, Callable[[dict, RegressionData, Any], np.ndarray]] = {
    "linear": _linear,
    "random_intercept": _random_intercept,
    "random_intercept_nc": _random_intercept_nc,
    "logistic_random_intercept": _logistic,
}


# --- expected log joint under a Gaussian q of the effects ------------------------------------


def model_terms(spec: ModelSpec, data: RegressionData) -> dict[str, np.ndarray]:
    """The data as `expected_log_joint` reads it: sufficient statistics, or ``X, y, group``."""
    if spec.likelihood == "bernoulli":
        return {"X": data.X, "y": data.y, "group": data.group.astype(np.int64)}
    stats = GaussianStats.of(data)
    return {
        "XtX": stats.XtX,
        "Xty": stats.Xty,
        "yty": np.asarray(stats.yty),
        "n_obs": np.asarray(float(stats.n_obs)),
        "group_size": stats.group_size,
        "group_y": stats.group_y,
        "group_X": stats.group_X,
    }


def expected_log_joint(
    model: str | ModelSpec,
    moments: Mapping[str, Any],
    terms: Mapping[str, Any],
    priors: Any,
    *,
    space: Space = "unconstrained",
    bernoulli: str = "gauss_hermite",
    xp: Any = np,
) -> Any:
    """``E_q[log p(y, theta)]`` of the module docstring, constants included.

    Parameters
    ----------
    model : str or ModelSpec
        One of the four models.
    moments : mapping
        Of q: ``beta_mean`` (p), ``beta_cov`` (p, p); with groups ``local_mean``, ``local_var``
        (Q: the marginal variances of ``u``, or of ``z`` for M2) and ``beta_local_cov``
        (p, Q); per precision ``<tau>_mean`` (``E tau``) and ``<tau>_log`` (``E log tau``);
        for M2 also ``tau_u_inv_sqrt`` and ``tau_u_inv``.
    terms : mapping
        `model_terms` of the data (as ``xp`` arrays).
    priors : dataclass
        The model's prior hyper-parameters.
    space : {"unconstrained", "constrained"}
        ``unconstrained`` adds ``sum E[log tau]`` (the Jacobian of ``tau = exp(zeta)``).
    bernoulli : {"gauss_hermite", "jaakkola_jordan"}
        The logistic likelihood's expectation (exact, or Pólya-Gamma CAVI's bound).
    xp : module
        ``numpy`` or ``jax.numpy``.

    Returns
    -------
    scalar
    """
    spec = get_model(model)
    value = _EXPECTED[spec.name](moments, terms, priors, xp, bernoulli)
    if space == "unconstrained":
        for name in precisions(spec):
            value = value + moments[f"{name}_log"]
    return value


def _expected_rss(m: Mapping, t: Mapping, xp: Any, c1: Any = 1.0, c2: Any = 1.0) -> Any:
    """``E||y - X beta - c u[group]||^2`` (module docstring); no ``u`` without groups."""
    b, S = m["beta_mean"], m["beta_cov"]
    rss = t["yty"] - 2.0 * b @ t["Xty"] + xp.sum(t["XtX"] * (S + xp.outer(b, b)))
    if "local_mean" not in m:
        return rss
    mu, var, C = m["local_mean"], m["local_var"], m["beta_local_cov"]
    cross = xp.sum(t["group_X"] * (C.T + xp.outer(mu, b)))
    return (
        rss
        - 2.0 * c1 * (mu @ t["group_y"])
        + 2.0 * c1 * cross
        + c2 * (t["group_size"] @ (var + mu * mu))
    )


def _normal_prior(mean: Any, var_sum: Any, size: int, prior_mean: float, sd: float, xp: Any):
    """``E sum_k log N(x_k | prior_mean, sd^2)`` given ``E x`` and ``sum_k Var x_k``."""
    centred = mean - prior_mean
    return (
        -0.5 * size * (LOG_2PI + 2.0 * math.log(sd)) - 0.5 * (centred @ centred + var_sum) / sd**2
    )


def _gamma_prior(m: Mapping, name: str, shape: float, rate: float) -> Any:
    return gamma_expected_log_density(shape, rate, m[f"{name}_mean"], m[f"{name}_log"])


def _gaussian_lik(m: Mapping, t: Mapping, rss: Any) -> Any:
    return 0.5 * t["n_obs"] * (m["tau_e_log"] - LOG_2PI) - 0.5 * m["tau_e_mean"] * rss


def _group_prior(m: Mapping, xp: Any) -> Any:
    """``E log N(u | 0, tau_u^-1 I)``."""
    q = m["local_mean"].shape[0]
    second = xp.sum(m["local_mean"] ** 2 + m["local_var"])
    return 0.5 * q * (m["tau_u_log"] - LOG_2PI) - 0.5 * m["tau_u_mean"] * second


def _expected_linear(m: Mapping, t: Mapping, pr: Any, xp: Any, _: str) -> Any:
    p = m["beta_mean"].shape[0]
    lam0 = pr.beta_precision
    centred = m["beta_mean"] - pr.beta_mean
    second = centred @ centred + xp.trace(m["beta_cov"])
    log_prior_beta = (
        0.5 * p * (m["tau_e_log"] + math.log(lam0) - LOG_2PI)
        - 0.5 * lam0 * m["tau_e_mean"] * second
    )
    return (
        _gaussian_lik(m, t, _expected_rss(m, t, xp))
        + log_prior_beta
        + _gamma_prior(m, "tau_e", pr.a_e, pr.b_e)
    )


def _expected_random_intercept(m: Mapping, t: Mapping, pr: Any, xp: Any, _: str) -> Any:
    p = m["beta_mean"].shape[0]
    return (
        _gaussian_lik(m, t, _expected_rss(m, t, xp))
        + _normal_prior(m["beta_mean"], xp.trace(m["beta_cov"]), p, pr.beta_mean, pr.beta_sd, xp)
        + _group_prior(m, xp)
        + _gamma_prior(m, "tau_e", pr.a_e, pr.b_e)
        + _gamma_prior(m, "tau_u", pr.a_u, pr.b_u)
    )


def _expected_random_intercept_nc(m: Mapping, t: Mapping, pr: Any, xp: Any, _: str) -> Any:
    p, q = m["beta_mean"].shape[0], m["local_mean"].shape[0]
    rss = _expected_rss(m, t, xp, m["tau_u_inv_sqrt"], m["tau_u_inv"])
    z_second = xp.sum(m["local_var"])
    return (
        _gaussian_lik(m, t, rss)
        + _normal_prior(m["beta_mean"], xp.trace(m["beta_cov"]), p, pr.beta_mean, pr.beta_sd, xp)
        + _normal_prior(m["local_mean"], z_second, q, 0.0, 1.0, xp)
        + _gamma_prior(m, "tau_e", pr.a_e, pr.b_e)
        + _gamma_prior(m, "tau_u", pr.a_u, pr.b_u)
    )


def _expected_logistic(m: Mapping, t: Mapping, pr: Any, xp: Any, bernoulli: str) -> Any:
    p = m["beta_mean"].shape[0]
    X, g = t["X"], t["group"]
    mean = X @ m["beta_mean"] + m["local_mean"][g]
    var = (
        xp.sum((X @ m["beta_cov"]) * X, axis=1)
        + 2.0 * xp.sum(X * m["beta_local_cov"].T[g], axis=1)
        + m["local_var"][g]
    )
    return (
        _bernoulli_expectation(t["y"], mean, var, xp, bernoulli)
        + _normal_prior(m["beta_mean"], xp.trace(m["beta_cov"]), p, pr.beta_mean, pr.beta_sd, xp)
        + _group_prior(m, xp)
        + _gamma_prior(m, "tau_u", pr.a_u, pr.b_u)
    )


def _bernoulli_expectation(y: Any, mean: Any, var: Any, xp: Any, bernoulli: str) -> Any:
    """``sum_i E log p(y_i | eta_i)``, ``eta_i ~ N(mean_i, var_i)`` (or its JJ bound)."""
    if bernoulli == "jaakkola_jordan":
        c = xp.sqrt(mean * mean + var)
        return xp.sum(-xp.logaddexp(0.0, -c) - 0.5 * c + (y - 0.5) * mean)
    if bernoulli != "gauss_hermite":
        raise ValueError(
            f"bernoulli: expected 'gauss_hermite' or 'jaakkola_jordan', got {bernoulli!r}"
        )
    nodes, weights = np.polynomial.hermite.hermgauss(GAUSS_HERMITE_NODES)
    eta = mean[:, None] + xp.sqrt(2.0 * var)[:, None] * nodes
    softplus = xp.logaddexp(0.0, eta) @ (weights / math.sqrt(math.pi))
    return xp.sum(y * mean - softplus)


_EXPECTED: dict[str, Callable[..., Any]] = {
    "linear": _expected_linear,
    "random_intercept": _expected_random_intercept,
    "random_intercept_nc": _expected_random_intercept_nc,
    "logistic_random_intercept": _expected_logistic,
}
