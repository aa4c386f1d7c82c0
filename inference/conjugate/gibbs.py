"""Conditionally conjugate Gibbs samplers for the Gaussian models, all chains in one array.

Every chain has its own generator (``np.random.default_rng(seed).spawn(num_chains)``) and the
Gaussian samplers take all their randomness from it in blocks of sweeps drawn ahead (standard
normals and standard Gamma variates: every Gamma shape below is fixed, only the rates change), so
a sweep is a few array operations on ``(chain, ...)`` arrays.

Linear model (M1), ``Lambda_n = X'X + lambda0 I = V diag(d) V'`` and ``m_n`` as in
`inference.conjugate.exact`:

    beta  | tau_e ~ N(m_n, (tau_e Lambda_n)^-1)         (beta = m_n + V z / sqrt(tau_e d))
    tau_e | beta  ~ Gamma(a_e + (n + p)/2, b_e + (||y - X beta||^2 + lambda0 ||beta - m0||^2)/2)

Random intercepts (M0; M2 is sampled centred: it is the same joint distribution of the public
parameters), with the group sums ``S_X``, ``s_y``, ``n_j``. ``(beta, u)`` is one block, drawn
given the precisions as ``beta | tau's`` (``u`` integrated out: the Schur complement of the
diagonal ``u`` block) then ``u | beta, tau's``, which removes the slow intercept/``u`` mixing of
one-at-a-time blocks:

    P_j = tau_e n_j + tau_u,   w_j = tau_e^2 / P_j
    beta  | tau's       ~ N(P^-1 h, P^-1),   P = tau_e X'X + I / s0^2 - S_X' diag(w) S_X,
                                             h = tau_e X'y + m0 / s0^2 - S_X' (w * s_y)
    u_j   | beta, tau's ~ N(tau_e (s_y[j] - S_X[j] beta) / P_j, 1 / P_j)
    tau_e | beta, u     ~ Gamma(a_e + n/2, b_e + ||y - X beta - u[group]||^2 / 2)
    tau_u | u           ~ Gamma(a_u + Q/2, b_u + ||u||^2 / 2)
    sigma_u | z, beta, tau_e   (the interweaving move below)

Interweaving (Yu & Meng 2011, "To center or not to center: that is not the question", JCGS
20(3)). With few rows per group and a vague prior the centred update of tau_u | u mixes slowly
(u and tau_u pin each other down: bulk ESS of tau_u 260 of 8000 draws at Q = 100 with 3 rows per
group). After it, every sweep also moves ``sigma_u = tau_u^-1/2`` with ``z = u / sigma_u`` held
fixed — the non-centred parameterisation, in which ``z ~ N(0, 1)`` does not involve sigma_u and
the likelihood of ``eta = X beta + sigma_u z[group]`` is Gaussian in sigma_u. On ``l = log
sigma_u`` the conditional is, with the Gamma(a_u, b_u) prior of tau_u and its Jacobian,

    log p(l | z, beta, tau_e, y) = -A e^(2l) + B e^l - 2 a_u l - b_u e^(-2l) + const,
    A = tau_e / 2 sum_j n_j z_j^2,     B = tau_e sum_j z_j (s_y[j] - S_X[j] beta),

(`interweave_scale`; the Pólya-Gamma sampler of M3 uses the same form with omega's group sums in
place of ``tau_e n_j``), sampled by `INTERWEAVE_STEPS` random-walk Metropolis steps (all O(1)
given A and B), after which ``u = sigma_u z`` and ``tau_u = sigma_u^-2``.

Starts are over-dispersed: precisions ``exp(N(0, 1)) / Var(y)``, intercepts ``N(0, 4 Var(y))``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.conjugate.stats import LOG_2PI, GaussianStats, gamma_expected_log_density
from models.linear import LinearPriors
from models.random_intercept import RandomInterceptPriors
from models.spec import RegressionData

logger = logging.getLogger(__name__)

State = dict[str, np.ndarray]
Noise = Callable[[int], dict[str, np.ndarray]]
BLOCK = 256
INTERWEAVE_STEPS = 5
INTERWEAVE_SCALE = 1.0  # random-walk step on log sigma_u (0.5 and 1.5 mixed no better)
BLOCK_NUMBERS = 1_000_000  # cap on the random numbers drawn ahead per block (8 MB)
LOG_SCALE_LIMIT = 300.0  # |log sigma_u| beyond which the interweaving move's target is -inf


@dataclass(frozen=True)
class GibbsResult:
    """Kept draws ``(chain, draw, ...)`` and the log joint density ``lp`` of each draw."""

    draws: dict[str, np.ndarray]
    lp: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def chain_generators(seed: int, num_chains: int) -> list[np.random.Generator]:
    """One independent generator per chain, spawned from ``np.random.default_rng(seed)``."""
    return np.random.default_rng(seed).spawn(num_chains)


def stacked_noise(rngs: list[np.random.Generator], draw: Callable[..., dict]) -> Noise:
    """Noise of a block of sweeps: ``draw(rng, block)`` per chain, stacked ``(block, chain)``."""

    def noise(block: int) -> dict[str, np.ndarray]:
        per_chain = [draw(rng, block) for rng in rngs]
        return {k: np.stack([c[k] for c in per_chain], axis=1) for k in per_chain[0]}

    return noise


def run_chains(
    state: State,
    step: Callable[[State, dict[str, np.ndarray]], State],
    noise: Noise,
    settings: Any,
    kept: tuple[str, ...],
    progressbar: bool = False,
    block: int = BLOCK,
) -> dict[str, np.ndarray]:
    """Run ``num_burnin + num_draws * thin`` sweeps of ``step`` and keep every ``thin``-th.

    Parameters
    ----------
    state : dict
        Start of every chain, arrays with a leading ``chain`` axis.
    step : callable
        ``step(state, noise_t) -> state``: one sweep of all chains given this sweep's noise.
    noise : callable
        ``noise(block)``: noise of ``block`` sweeps, arrays with leading ``(block, chain)`` axes.
    settings : GibbsSettings
    kept : tuple of str
        Names in ``state`` to store.
    progressbar : bool
        Show a tqdm bar (updated once per block).
    block : int
        Sweeps whose noise is drawn at once (see `block_size`).

    Returns
    -------
    dict
        Kept draws, ``(chain, draw, ...)``.
    """
    burnin, thin, num_draws = settings.num_burnin, settings.thin, settings.num_draws
    total = burnin + num_draws * thin
    out: dict[str, np.ndarray] = {}
    bar = _progress(total, progressbar)
    done = 0
    while done < total:
        size = min(block, total - done)
        eps = noise(size)
        for b in range(size):
            state = step(state, {k: v[b] for k, v in eps.items()})
            done += 1
            after = done - burnin
            if after > 0 and after % thin == 0:
                _store(out, state, kept, after // thin - 1, num_draws)
        if bar is not None:
            bar.update(size)
    if bar is not None:
        bar.close()
    logger.debug("Gibbs: %d sweeps per chain, %d kept", total, num_draws)
    return out


def block_size(num_chains: int, width: int) -> int:
    """Sweeps per noise block: `BLOCK`, fewer when ``num_chains * width`` numbers per sweep would
    exceed `BLOCK_NUMBERS` per block (many groups)."""
    return int(np.clip(BLOCK_NUMBERS // max(num_chains * width, 1), 1, BLOCK))


def _store(out: dict, state: State, kept: tuple[str, ...], index: int, num_draws: int) -> None:
    """Write ``state[k]`` as draw ``index`` of every chain (allocating ``out`` on first use)."""
    for k in kept:
        if k not in out:
            value = state[k]
            out[k] = np.empty((value.shape[0], num_draws) + value.shape[1:])
        out[k][:, index] = state[k]


def _progress(total: int, progressbar: bool) -> Any:
    if not progressbar:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="Gibbs", unit="sweep")


def gaussian_from_canonical(prec: np.ndarray, shift: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Draws ``N(prec^-1 shift, prec^-1)`` for a batch: ``prec`` (c, p, p), ``shift``, ``z`` (c, p).

    With ``prec = L L'``: ``x = L'^-1 (L^-1 shift + z)``.
    """
    chol = np.linalg.cholesky(prec)
    half = np.linalg.solve(chol, shift[:, :, None])
    return np.linalg.solve(np.swapaxes(chol, 1, 2), half + z[:, :, None])[..., 0]


def interweave_scale(
    u: np.ndarray,
    tau_u: np.ndarray,
    weights: np.ndarray,
    residual_sums: np.ndarray,
    priors: Any,
    eps: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The non-centred move of sigma_u with ``z = u sqrt(tau_u)`` fixed (module docstring).

    Parameters
    ----------
    u : ndarray, shape (chain, Q)
        Random intercepts after the centred update.
    tau_u : ndarray, shape (chain,)
        Their precision after the centred update.
    weights : ndarray, shape (chain, Q) or (Q,)
        Likelihood precision of a group's intercept per unit of ``z_j^2`` (``tau_e n_j``, or the
        group sums of the Pólya-Gamma variables).
    residual_sums : ndarray, shape (chain, Q)
        ``B``'s group terms: ``tau_e (s_y[j] - S_X[j] beta)`` or ``k_j - sum omega_i x_i beta``.
    priors
        ``a_u``, ``b_u`` of tau_u's Gamma prior.
    eps : dict
        ``mh_z`` (chain, steps) standard normals and ``mh_log_u`` (chain, steps) logs of
        uniforms.

    Returns
    -------
    u, tau_u : ndarray
        After `INTERWEAVE_STEPS` Metropolis steps on ``log sigma_u``.
    """
    sigma = 1.0 / np.sqrt(tau_u)
    z = u / sigma[:, None]
    quadratic = 0.5 * np.sum(weights * z * z, axis=-1)
    linear = np.sum(residual_sums * z, axis=-1)
    ell = [
        _metropolis_log_scale(*chain, priors.a_u, priors.b_u)
        for chain in zip(
            np.log(sigma).tolist(),
            quadratic.tolist(),
            linear.tolist(),
            eps["mh_z"].tolist(),
            eps["mh_log_u"].tolist(),
            strict=True,
        )
    ]
    sigma = np.exp(ell)
    return sigma[:, None] * z, sigma**-2


def _metropolis_log_scale(
    ell: float,
    quadratic: float,
    linear: float,
    moves: list[float],
    log_uniforms: list[float],
    a_u: float,
    b_u: float,
) -> float:
    """`INTERWEAVE_STEPS` random-walk Metropolis steps on ``l = log sigma_u`` of one chain.

    In Python floats: the steps of a chain are sequential and its numbers few, and numpy's
    per-call overhead on arrays of one number per chain took 44 % of a Gibbs sweep of M0.
    Beyond ``|l| > LOG_SCALE_LIMIT`` the target is ``-inf`` (where numpy's ``e^(2l)`` or
    ``e^(-2l)`` overflows, the move is rejected either way).
    """

    def log_target(value: float) -> float:
        if abs(value) > LOG_SCALE_LIMIT:
            return -math.inf
        scale = math.exp(value)
        return (
            -quadratic * scale * scale + linear * scale - 2.0 * a_u * value - b_u / (scale * scale)
        )

    current = log_target(ell)
    for move, log_uniform in zip(moves, log_uniforms, strict=True):
        proposal = ell + INTERWEAVE_SCALE * move
        proposed = log_target(proposal)
        if log_uniform < proposed - current:
            ell, current = proposal, proposed
    return ell


def interweave_noise(rng: np.random.Generator, block: int) -> dict[str, np.ndarray]:
    """The random numbers of `interweave_scale` for ``block`` sweeps of one chain."""
    return {
        "mh_z": rng.standard_normal((block, INTERWEAVE_STEPS)),
        "mh_log_u": np.log(rng.uniform(size=(block, INTERWEAVE_STEPS))),  # once per block
    }


def overdispersed_precision(rng: np.random.Generator, data: RegressionData) -> float:
    """A start for a precision: ``exp(N(0, 1)) / Var(y)``."""
    return float(np.exp(rng.standard_normal()) / (np.var(data.y) or 1.0))


# --- linear model ----------------------------------------------------------------------------


def gibbs_linear(
    data: RegressionData,
    priors: LinearPriors,
    settings: Any,
    seed: int,
    progressbar: bool = False,
) -> GibbsResult:
    """Two-block Gibbs sampler of M1 (module docstring)."""
    stats = GaussianStats.of(data)
    p, lam0, m0 = data.n_coef, priors.beta_precision, priors.beta_mean
    precision = stats.XtX + lam0 * np.eye(p)
    mean = np.linalg.solve(precision, stats.Xty + lam0 * m0)
    d, V = np.linalg.eigh(precision)
    shape = priors.a_e + 0.5 * (stats.n_obs + p)
    rngs = chain_generators(seed, settings.num_chains)
    start = {"tau_e": np.array([overdispersed_precision(r, data) for r in rngs])}

    def step(state: State, eps: dict[str, np.ndarray]) -> State:
        tau = state["tau_e"]
        beta = mean + (eps["z"] / np.sqrt(tau[:, None] * d)) @ V.T
        centred = beta - m0
        ss = stats.residual_ss(beta) + lam0 * np.sum(centred * centred, axis=1)
        return {"beta": beta, "tau_e": eps["g"] / (priors.b_e + 0.5 * ss)}

    def draw(rng: np.random.Generator, block: int) -> dict[str, np.ndarray]:
        return {"z": rng.standard_normal((block, p)), "g": rng.standard_gamma(shape, block)}

    draws = run_chains(
        start, step, stacked_noise(rngs, draw), settings, ("beta", "tau_e"), progressbar
    )
    return GibbsResult(draws, log_joint_linear(draws, stats, priors))


def log_joint_linear(
    draws: dict[str, np.ndarray], stats: GaussianStats, priors: LinearPriors
) -> np.ndarray:
    """``log p(y, beta, tau_e)`` of M1 at each draw (constrained space, no Jacobian)."""
    beta, tau = draws["beta"], draws["tau_e"]
    p, lam0 = beta.shape[-1], priors.beta_precision
    centred = beta - priors.beta_mean
    log_tau = np.log(tau)
    log_lik = gaussian_log_likelihood(stats, beta, tau)
    log_prior_beta = 0.5 * p * (log_tau + math.log(lam0) - LOG_2PI) - 0.5 * tau * lam0 * np.sum(
        centred * centred, axis=-1
    )
    return (
        log_lik + log_prior_beta + gamma_expected_log_density(priors.a_e, priors.b_e, tau, log_tau)
    )


# --- random intercepts -----------------------------------------------------------------------


def gibbs_random_intercept(
    data: RegressionData,
    priors: RandomInterceptPriors,
    settings: Any,
    seed: int,
    progressbar: bool = False,
) -> GibbsResult:
    """Blocked Gibbs sampler of M0/M2, centred: (beta, u), tau_e, tau_u (module docstring)."""
    stats = GaussianStats.of(data)
    p, q = data.n_coef, data.n_groups
    prior_prec = 1.0 / priors.beta_sd**2 * np.eye(p)
    prior_shift = priors.beta_mean / priors.beta_sd**2
    shape_e = priors.a_e + 0.5 * stats.n_obs
    shape_u = priors.a_u + 0.5 * q
    S_X, s_y, n_j = stats.group_X, stats.group_y, stats.group_size
    outer = (S_X[:, :, None] * S_X[:, None, :]).reshape(q, p * p)
    rngs = chain_generators(seed, settings.num_chains)
    start = _random_intercept_start(rngs, data)

    def step(state: State, eps: dict[str, np.ndarray]) -> State:
        tau_e = state["tau_e"][:, None]
        prec_u = tau_e * n_j + state["tau_u"][:, None]
        # beta | tau's with u integrated out (Schur complement of the u block), then u | beta.
        weight = tau_e**2 / prec_u
        prec = tau_e[:, :, None] * stats.XtX + prior_prec - (weight @ outer).reshape(-1, p, p)
        shift = tau_e * stats.Xty + prior_shift - (weight * s_y) @ S_X
        beta = gaussian_from_canonical(prec, shift, eps["z_beta"])
        group_resid = s_y - beta @ S_X.T
        u = (tau_e * group_resid + eps["z_u"] * np.sqrt(prec_u)) / prec_u
        # ||y - X beta - u[group]||^2 from the sufficient statistics (reference_stats docstring).
        ss = (
            stats.yty
            + np.sum(beta * (beta @ stats.XtX - 2.0 * stats.Xty), axis=1)
            + np.sum(u * (n_j * u - 2.0 * group_resid), axis=1)
        )
        new_tau_e = eps["g_e"] / (priors.b_e + 0.5 * ss)
        tau_u = eps["g_u"] / (priors.b_u + 0.5 * np.sum(u * u, axis=1))
        u, tau_u = interweave_scale(
            u, tau_u, new_tau_e[:, None] * n_j, new_tau_e[:, None] * group_resid, priors, eps
        )
        return {"beta": beta, "u": u, "tau_e": new_tau_e, "tau_u": tau_u}

    def draw(rng: np.random.Generator, block: int) -> dict[str, np.ndarray]:
        return {
            "z_beta": rng.standard_normal((block, p)),
            "z_u": rng.standard_normal((block, q)),
            "g_e": rng.standard_gamma(shape_e, block),
            "g_u": rng.standard_gamma(shape_u, block),
            **interweave_noise(rng, block),
        }

    kept = ("beta", "u", "tau_e", "tau_u")
    block = block_size(len(rngs), p + q + 2)
    draws = run_chains(start, step, stacked_noise(rngs, draw), settings, kept, progressbar, block)
    return GibbsResult(draws, log_joint_random_intercept(draws, stats, priors))


def _random_intercept_start(rngs: list[np.random.Generator], data: RegressionData) -> State:
    """Over-dispersed starts of ``u``, ``tau_e``, ``tau_u`` (beta is drawn first)."""
    sd_y = float(np.std(data.y)) or 1.0
    return {
        "u": np.stack([2.0 * sd_y * r.standard_normal(data.n_groups) for r in rngs]),
        "tau_e": np.array([overdispersed_precision(r, data) for r in rngs]),
        "tau_u": np.array([overdispersed_precision(r, data) for r in rngs]),
    }


def log_joint_random_intercept(
    draws: dict[str, np.ndarray], stats: GaussianStats, priors: RandomInterceptPriors
) -> np.ndarray:
    """``log p(y, beta, u, tau_e, tau_u)`` of M0 at each draw (constrained space)."""
    beta, u, tau_e, tau_u = draws["beta"], draws["u"], draws["tau_e"], draws["tau_u"]
    return (
        gaussian_log_likelihood(stats, beta, tau_e, u)
        + normal_log_prior(beta, priors.beta_mean, priors.beta_sd)
        + random_intercept_log_prior(u, tau_u)
        + gamma_expected_log_density(priors.a_e, priors.b_e, tau_e, np.log(tau_e))
        + gamma_expected_log_density(priors.a_u, priors.b_u, tau_u, np.log(tau_u))
    )


def gaussian_log_likelihood(
    stats: GaussianStats, beta: np.ndarray, tau_e: np.ndarray, u: np.ndarray | None = None
) -> np.ndarray:
    """``log N(y | X beta + u[group], tau_e^-1 I)`` per draw, from the sufficient statistics."""
    return 0.5 * stats.n_obs * (np.log(tau_e) - LOG_2PI) - 0.5 * tau_e * stats.residual_ss(beta, u)


def random_intercept_log_prior(u: np.ndarray, tau_u: np.ndarray) -> np.ndarray:
    """``log N(u | 0, tau_u^-1 I)`` per draw (``u`` over its last axis)."""
    return 0.5 * u.shape[-1] * (np.log(tau_u) - LOG_2PI) - 0.5 * tau_u * np.sum(u * u, axis=-1)


def normal_log_prior(beta: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """``sum_k log N(beta_k | mean, sd^2)`` over the last axis."""
    p = beta.shape[-1]
    z = (beta - mean) / sd
    return -0.5 * p * (LOG_2PI + 2.0 * math.log(sd)) - 0.5 * np.sum(z * z, axis=-1)
