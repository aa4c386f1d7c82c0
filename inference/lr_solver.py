"""The linear-response covariance (LRVB) of a Gaussian-family q, at a true stationary point.

Giordano, Broderick & Jordan (2018), "Covariances, robustness, and variational Bayes", JMLR
19(51). Let q be parameterised by ``eta`` and ``KL(eta) = -E_q[log p(theta, y)] - H[q]``, with
``theta`` the unconstrained latent vector (``beta``, ``u`` or ``z``, ``zeta = log tau``). Tilt
the posterior, ``p_t(theta) ∝ p(theta | y) exp(t'theta)``: the exact posterior mean moves by
``d E_p[theta] / dt = Cov_p(theta)``, and the VB mean ``m(eta*(t)) = E_q[theta]`` by

    Sigma_LR = d m(eta*(t)) / dt |_0 = J H^-1 J',   H = d^2 KL / d eta d eta'  at eta*,
                                                     J = d E_q[theta] / d eta,

which is what this module computes. With Gaussian factors parameterised by ``(m, rho)`` (means
and log scales) ``J = [I 0]`` and ``Sigma_LR`` is the mean block of ``H^-1``: by the Schur
complement, ``(H_mm - H_mr H_rr^-1 H_rm)^-1``. The form ``(I - V H)^-1 V`` of Giordano et al.
is the same quantity in the mean parameterisation (``V`` the covariance of q's sufficient
statistics, ``H`` the Hessian of ``E_q log p`` in *all* of q's mean parameters, second moments
included); its first-moment part alone with the scales held fixed, ``(-H_mm)^-1``, is exact only
when ``H_mr = 0``. For a Gaussian target (``log p`` quadratic) ``H_mm`` is its precision and
``H_mr = 0``, so ``Sigma_LR`` is the exact posterior covariance. Precisions under CAVI have Gamma
factors, ``eta = (log A, log B)`` and ``E[zeta] = psi(A) - log B``: their rows of ``J`` are
``(A psi'(A), -1)``.

The objective is closed form (`inference.log_density.expected_log_joint`), with no Monte-Carlo
draws, so the stationary point is one of the KL itself. ADVI's logistic likelihood uses
Gauss-Hermite quadrature (the exact KL); Pólya-Gamma CAVI's is its Jaakkola-Jordan bound (the
objective CAVI maximised, with ``q(omega)`` profiled out: by the envelope theorem that leaves
``Sigma_LR`` unchanged). Adam's end point is not stationary, so the fitted q is first moved to
one by damped Newton steps on the same objective (`stationary_point`).

Parameterisation (`Problem`): ``beta ~ N(m_b, L L')`` (``L`` diagonal for mean-field ADVI, a
dense Cholesky factor with log diagonal otherwise), ``u_j | beta ~ N(m_j + B_j (beta - m_b),
exp(2 rho_j))`` independently (``B = 0`` for mean-field; the block families' q(beta, u) has this
arrow-shaped precision at its optimum for these models, and the u-u conditional correlations it
leaves out have zero cross-derivatives there, so they do not change ``Sigma_LR``), precisions
``log tau ~ N(m, exp(2 rho))`` (ADVI) or ``tau ~ Gamma(A, B)`` (CAVI). ``eta`` is the *global*
block (``m_b``, ``L``, precisions: G numbers) followed by one *local* block per group
(``m_j, rho_j, B_j``: b numbers). A group's local parameters meet only their own and the global
ones in the objective, so ``H`` is arrow-shaped: ``[[H_gg, H_lg'], [H_lg, blockdiag(H_jj)]]``.

- ``hessian="structured"`` (default): ``H`` from ``G + b`` Hessian-vector products (each global
  unit vector and, for each local slot, the sum of that slot's unit vectors over the groups: a
  colouring of the arrow pattern), then exact block elimination. With the Schur complement
  ``S = H_gg - sum_j H_jg' H_jj^-1 H_jg`` and ``W_j = e_0' H_jj^-1 H_jg``,

      Sigma_LR = diag(0_global, (H_jj^-1)_00) + F F',   F = [J_g; -W] chol(S)^-T,

  O(Q (b^3 + b G^2) + G^3) time and O(Q G) memory, so ``Sigma_LR`` and draws of every ``u_j``
  stay cheap at any Q. Newton's steps solve with the same elimination.
- ``hessian="dense"``: ``jax.hessian`` and a dense solve (small problems; the tests' check).
- `response_columns_cg`: columns of ``Sigma_LR`` by conjugate gradients on Hessian-vector
  products alone, assuming no structure.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import numpy as np
from scipy import linalg, special

from inference.conjugate.stats import LOG_2PI
from inference.log_density import expected_log_joint
from inference.ppl.programs import ProgramCache

_log = logging.getLogger(__name__)

NEWTON_MAX_STEPS = 50
NEWTON_DECREMENT_TOL = 1e-20
"""Newton stops when its decrement ``g' H^-1 g`` (twice the predicted gain of the objective) is
below ``NEWTON_DECREMENT_TOL * max(1, |KL|)``, or stops falling once below 1e6 times that
(round-off)."""
LOCAL_SITES = ("u", "z")
QUICK_COMPILE_MAX_DIM = 5_000
"""Problems with at most this many parameters are compiled with XLA's cheap passes only
(``xla_backend_optimization_level=0``, no expensive LLVM passes): at Q = 100 that compiled
1.5-2 times faster, and the program still runs in milliseconds."""
_QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


# --- the parameterisation of q -----------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """What the KL objective depends on besides the data: model, shape of q, priors.

    Attributes
    ----------
    model : str
        A model name (its expected log joint), or any name with ``expected`` given.
    n_coef, n_groups : int
        ``p`` and ``Q`` (0 without a per-group site).
    local : str or None
        The per-group site (``u``, ``z``), ``None`` without groups.
    taus : tuple of str
        The precision sites.
    beta_cov : {"diag", "dense"}
        Mean-field over the coefficients, or one dense factor.
    conditional : bool
        ``u_j | beta`` depends on ``beta`` (block families).
    tau_family : {"lognormal", "gamma"}
        Gaussian ``log tau`` (ADVI) or Gamma ``tau`` (CAVI).
    bernoulli : {"gauss_hermite", "jaakkola_jordan"}
        The logistic likelihood's expectation.
    priors : dataclass
        The model's prior hyper-parameters.
    expected : callable, optional
        ``expected(moments, terms) -> E_q log p`` (unconstrained space, JAX), replacing the
        model's (a test target).
    """

    model: str
    n_coef: int
    n_groups: int
    local: str | None
    taus: tuple[str, ...]
    beta_cov: str = "diag"
    conditional: bool = False
    tau_family: str = "lognormal"
    bernoulli: str = "gauss_hermite"
    priors: Any = None
    expected: Callable[..., Any] | None = None

    @property
    def n_beta_scale(self) -> int:
        p = self.n_coef
        return p if self.beta_cov == "diag" else p * (p + 1) // 2

    @property
    def n_global(self) -> int:
        """G: ``m_b``, the factor of ``Cov beta``, two numbers per precision."""
        return self.n_coef + self.n_beta_scale + 2 * len(self.taus)

    @property
    def local_width(self) -> int:
        """b: ``m_j``, ``rho_j`` and, conditional, ``B_j`` (0 without groups)."""
        return (2 + self.n_coef * self.conditional) if self.n_groups else 0

    @property
    def dim(self) -> int:
        return self.n_global + self.n_groups * self.local_width

    def sites(self) -> list[tuple[str, int]]:
        """Latent sites in storage order with their sizes."""
        local = [(self.local, self.n_groups)] if self.local else []
        return [("beta", self.n_coef), *local, *[(t, 1) for t in self.taus]]

    def labels(self) -> list[str]:
        """``site[i]`` (``site`` for a scalar) of each latent, storage order."""
        out = []
        for name, size in self.sites():
            out += [f"{name}[{i}]" for i in range(size)] if name in ("beta", self.local) else [name]
        return out

    def storage_order(self) -> np.ndarray:
        """Index into the internal order (``beta``, precisions, groups) of each stored latent."""
        p, t, q = self.n_coef, len(self.taus), self.n_groups
        return np.concatenate([np.arange(p), p + t + np.arange(q), p + np.arange(t)])


def _beta_factor(problem: Problem, raw: Any, xp: Any) -> Any:
    """``L`` from its parameters: ``diag(exp raw)`` or a lower triangle with log diagonal."""
    if problem.beta_cov == "diag":
        return xp.diag(xp.exp(raw))
    p = problem.n_coef
    rows, cols = np.tril_indices(p)
    if xp is np:
        M = np.zeros((p, p))
        M[rows, cols] = raw
    else:
        M = xp.zeros((p, p)).at[rows, cols].set(raw)
    return M - xp.diag(xp.diag(M)) + xp.diag(xp.exp(xp.diag(M)))


def _special(xp: Any) -> Any:
    """``scipy.special`` for NumPy, ``jax.scipy.special`` for JAX."""
    if xp is np:
        return special
    import jax.scipy.special

    return jax.scipy.special


def _beta_factor_params(problem: Problem, L: np.ndarray) -> np.ndarray:
    if problem.beta_cov == "diag":
        return np.log(np.diag(L))
    M = np.array(L, dtype=float)
    np.fill_diagonal(M, np.log(np.diag(L)))
    return M[np.tril_indices(problem.n_coef)]


def _split(problem: Problem, eta: Any) -> tuple[Any, Any, Any, Any]:
    """``(m_b, factor parameters, precisions (T, 2), locals (Q, b))`` of ``eta``."""
    p, nb, t = problem.n_coef, problem.n_beta_scale, len(problem.taus)
    taus = eta[p + nb : p + nb + 2 * t].reshape(t, 2)
    local = eta[problem.n_global :].reshape(problem.n_groups, problem.local_width)
    return eta[:p], eta[p : p + nb], taus, local


def pack(
    problem: Problem,
    beta_mean: np.ndarray,
    beta_factor: np.ndarray,
    taus: np.ndarray,
    local_mean: np.ndarray | None = None,
    local_sd: np.ndarray | None = None,
    local_slope: np.ndarray | None = None,
) -> np.ndarray:
    """``eta`` from q's parameters.

    Parameters
    ----------
    problem : Problem
    beta_mean, beta_factor : ndarray
        ``m_b`` (p) and the Cholesky factor ``L`` of ``Cov beta`` (p, p).
    taus : ndarray, shape (T, 2)
        Per precision ``(m, log sd)`` of ``log tau`` (lognormal) or ``(log A, log B)`` (Gamma).
    local_mean, local_sd : ndarray, shape (Q,), optional
        ``m_j`` and the SD of ``u_j | beta``.
    local_slope : ndarray, shape (Q, p), optional
        ``B`` (conditional problems).
    """
    parts = [beta_mean, _beta_factor_params(problem, beta_factor), np.ravel(taus)]
    if problem.n_groups:
        local = [local_mean[:, None], np.log(local_sd)[:, None]]
        if problem.conditional:
            local.append(local_slope)
        parts.append(np.concatenate(local, axis=1).ravel())
    return np.concatenate([np.asarray(part, dtype=float).ravel() for part in parts])


def q_moments(problem: Problem, eta: Any, xp: Any) -> tuple[dict, Any]:
    """The moments `expected_log_joint` reads, and the entropy of q (unconstrained space);
    ``xp`` is ``numpy`` or ``jax.numpy``."""
    p = problem.n_coef
    m_b, raw, taus, local = _split(problem, eta)
    L = _beta_factor(problem, raw, xp)
    moments = {"beta_mean": m_b, "beta_cov": L @ L.T}
    entropy = xp.sum(xp.log(xp.diag(L))) + 0.5 * p * (1.0 + LOG_2PI)
    if problem.n_groups:
        var = xp.exp(2.0 * local[:, 1])
        cross = xp.zeros((p, problem.n_groups))
        if problem.conditional:
            BL = local[:, 2:] @ L
            var = var + xp.sum(BL * BL, axis=1)
            cross = L @ BL.T
        moments |= {"local_mean": local[:, 0], "local_var": var, "beta_local_cov": cross}
        entropy = entropy + xp.sum(local[:, 1]) + 0.5 * problem.n_groups * (1.0 + LOG_2PI)
    for i, name in enumerate(problem.taus):
        tau, tau_entropy = _tau_moments(problem, taus[i], xp)
        moments |= {f"{name}_{key}": value for key, value in tau.items()}
        entropy = entropy + tau_entropy
    return moments, entropy


def _tau_moments(problem: Problem, params: Any, xp: Any) -> tuple[dict, Any]:
    """``E tau``, ``E log tau`` (``E tau^-1/2``, ``E tau^-1``) and the entropy of ``log tau``."""
    sp = _special(xp)
    if problem.tau_family == "lognormal":
        m, var = params[0], xp.exp(2.0 * params[1])
        moments = {
            "mean": xp.exp(m + 0.5 * var),
            "log": m,
            "inv_sqrt": xp.exp(-0.5 * m + var / 8.0),
            "inv": xp.exp(-m + 0.5 * var),
        }
        return moments, params[1] + 0.5 * (1.0 + LOG_2PI)
    shape, log_rate = xp.exp(params[0]), params[1]
    mean_log = sp.digamma(shape) - log_rate
    entropy = shape - log_rate + sp.gammaln(shape) + (1.0 - shape) * sp.digamma(shape)
    return {"mean": shape * xp.exp(-log_rate), "log": mean_log}, entropy - mean_log


def negative_elbo(problem: Problem, eta: Any, terms: Mapping[str, Any], xp: Any = None) -> Any:
    """``KL(q || p) - log p(y)``: minus the ELBO, unconstrained space, constants included.

    ``xp`` is ``jax.numpy`` (the default: what the compiled programs differentiate) or
    ``numpy`` (a plain evaluation, ``terms`` as NumPy arrays).
    """
    if xp is None:
        import jax.numpy as xp
    moments, entropy = q_moments(problem, eta, xp)
    if problem.expected is not None:
        return -(problem.expected(moments, terms) + entropy)
    expected = expected_log_joint(
        problem.model,
        moments,
        terms,
        problem.priors,
        space="unconstrained",
        bernoulli=problem.bernoulli,
        xp=xp,
    )
    return -(expected + entropy)


def latent_mean(problem: Problem, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``E_q theta`` of the global latents (``beta``, precisions' ``log tau``) and ``J_g``."""
    p, nb = problem.n_coef, problem.n_beta_scale
    m_b, _, taus, _ = _split(problem, np.asarray(eta))
    loc = [m_b]
    J = np.zeros((p + len(problem.taus), problem.n_global))
    J[np.arange(p), np.arange(p)] = 1.0
    for i in range(len(problem.taus)):
        column = p + nb + 2 * i
        if problem.tau_family == "lognormal":
            loc.append(taus[i, :1])
            J[p + i, column] = 1.0
        else:
            shape = math.exp(taus[i, 0])
            loc.append(np.array([special.digamma(shape) - taus[i, 1]]))
            J[p + i, column] = shape * special.polygamma(1, shape)
            J[p + i, column + 1] = -1.0
    return np.concatenate(loc), J


# --- compiled programs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Programs:
    """The compiled functions of one problem and data shape.

    ``evaluate(eta, terms)`` returns ``(value, grad, products)``, ``products`` being ``H`` times
    the `colouring` directions: one program, compiled ahead of time (the Newton loop needs the
    three together). ``hvp(eta, terms, v)`` is jitted on first use (`response_columns_cg`).
    """

    evaluate: Callable[..., Any]
    hvp: Callable[..., Any]


def colouring(problem: Problem) -> np.ndarray:
    """Directions ``(G + b, dim)``: each global unit vector, then per local slot its sum over
    the groups. ``H`` times them gives every non-zero of the arrow-shaped Hessian."""
    G, q, b = problem.n_global, problem.n_groups, problem.local_width
    directions = np.zeros((G + b, problem.dim))
    directions[np.arange(G), np.arange(G)] = 1.0
    for slot in range(b):
        directions[G + slot, G + slot + b * np.arange(q)] = 1.0
    return directions


_PROGRAMS = ProgramCache()


def programs(problem: Problem, terms: Mapping[str, Any]) -> tuple[Programs, float]:
    """The compiled programs of ``problem`` for data of this shape, and the seconds spent
    compiling them now (0 when cached)."""
    key = (problem, tuple((k, np.shape(v)) for k, v in sorted(terms.items())))
    return _PROGRAMS.get(key, lambda: _compile(problem, terms))


def clear_cache() -> None:
    """Forget every compiled program."""
    _PROGRAMS.clear()


def _compile(problem: Problem, terms: Mapping[str, Any]) -> Programs:
    import jax
    import jax.numpy as jnp

    value_and_grad = jax.value_and_grad(partial(negative_elbo, problem))

    def hvp(eta, terms, vector):
        return jax.jvp(lambda x: value_and_grad(x, terms)[1], (eta,), (vector,))[1]

    directions = jnp.asarray(colouring(problem))

    def evaluate(eta, terms):
        def along(vector):
            return jax.jvp(lambda x: value_and_grad(x, terms), (eta,), (vector,))

        (value, grad), (_, products) = jax.vmap(along)(directions)
        return value[0], grad[0], products

    eta = jnp.zeros(problem.dim)
    arrays = {k: jnp.asarray(v) for k, v in terms.items()}
    options = _QUICK_COMPILE if problem.dim <= QUICK_COMPILE_MAX_DIM else None
    lowered = jax.jit(evaluate).lower(eta, arrays)
    return Programs(lowered.compile(compiler_options=options), jax.jit(hvp))


# --- the arrow-shaped Hessian ------------------------------------------------------------------


@dataclass(frozen=True)
class ArrowHessian:
    """``H = [[gg, lg'], [lg, blockdiag(ll)]]``: global (G) then Q local blocks of width b."""

    gg: np.ndarray
    lg: np.ndarray
    ll: np.ndarray

    @classmethod
    def from_products(cls, problem: Problem, products: np.ndarray) -> ArrowHessian:
        """From ``H`` times the `colouring` directions (rows of ``products``)."""
        G, q, b = problem.n_global, problem.n_groups, problem.local_width
        gg = products[:G, :G]
        lg = products[:G, G:].T.reshape(q, b, G)
        ll = products[G:, G:].reshape(b, q, b).transpose(1, 2, 0)
        return cls(0.5 * (gg + gg.T), lg, 0.5 * (ll + np.swapaxes(ll, 1, 2)))

    def dense(self) -> np.ndarray:
        """The full matrix (small problems, tests)."""
        G, (q, b, _) = self.gg.shape[0], self.ll.shape
        H = np.zeros((G + q * b, G + q * b))
        H[:G, :G] = self.gg
        H[G:, :G] = self.lg.reshape(q * b, G)
        H[:G, G:] = H[G:, :G].T
        H[G:, G:] = linalg.block_diag(*self.ll) if q else np.zeros((0, 0))
        return H

    def factor(self, damping: float = 0.0) -> ArrowFactor:
        """Block elimination of the local blocks; raises `LinAlgError` unless H + damping I > 0."""
        G, b = self.gg.shape[0], self.ll.shape[1]
        ll = self.ll + damping * np.eye(b)
        np.linalg.cholesky(ll)
        ll_inv = np.linalg.inv(ll)
        solved = ll_inv @ self.lg
        schur = self.gg + damping * np.eye(G) - np.einsum("jsg,jsh->gh", self.lg, solved)
        return ArrowFactor(ll_inv, self.lg, solved, np.linalg.cholesky(0.5 * (schur + schur.T)))


@dataclass(frozen=True)
class ArrowFactor:
    """``H^-1`` through the Schur complement ``S = gg - sum_j lg_j' ll_j^-1 lg_j = C C'``."""

    ll_inv: np.ndarray
    lg: np.ndarray
    ll_inv_lg: np.ndarray
    schur_chol: np.ndarray

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``H^-1 rhs`` for a vector in the layout of ``eta``."""
        G, (q, b, _) = self.schur_chol.shape[0], self.ll_inv.shape
        r_g, r_l = rhs[:G], rhs[G:].reshape(q, b)
        y_l = np.einsum("jst,jt->js", self.ll_inv, r_l)
        x_g = linalg.cho_solve((self.schur_chol, True), r_g - np.einsum("jsg,js->g", self.lg, y_l))
        x_l = y_l - np.einsum("jsg,g->js", self.ll_inv_lg, x_g)
        return np.concatenate([x_g, x_l.ravel()])


# --- stationary point and the linear response ----------------------------------------------------


@dataclass(frozen=True)
class Stationary:
    """The Newton end point: ``eta``, ``KL`` (minus ELBO), gradient, Hessian, steps taken."""

    eta: np.ndarray
    value: float
    grad: np.ndarray
    hessian: ArrowHessian
    factor: ArrowFactor
    steps: int


def _evaluate(program: Programs, problem: Problem, eta: np.ndarray, terms: Mapping) -> tuple:
    """``(value, grad, H)`` at ``eta``."""
    value, grad, products = program.evaluate(eta, terms)
    hessian = ArrowHessian.from_products(problem, np.asarray(products))
    return float(value), np.asarray(grad), hessian


def _damped_factor(hessian: ArrowHessian) -> ArrowFactor:
    """The factor of ``H``, or of ``H + lambda I`` with the smallest ``lambda`` that works."""
    scale = float(np.mean(np.abs(np.diag(hessian.gg)))) or 1.0
    damping = 0.0
    for _ in range(20):
        try:
            return hessian.factor(damping)
        except np.linalg.LinAlgError:
            damping = max(10.0 * damping, 1e-8 * scale)
    raise np.linalg.LinAlgError("LRVB: the Hessian stays indefinite after damping")


def stationary_point(
    problem: Problem,
    eta: np.ndarray,
    terms: Mapping[str, Any],
    *,
    max_steps: int = NEWTON_MAX_STEPS,
    tol: float = NEWTON_DECREMENT_TOL,
) -> Stationary:
    """Damped Newton steps on the KL objective from ``eta`` until the decrement ``g' H^-1 g``
    is below ``tol * max(1, |KL|)`` (or stops falling at round-off level); while the step is not
    yet in the quadratic regime it is halved until the objective decreases.

    Raises
    ------
    FloatingPointError
        If the objective is not finite at the start, or no step decreases it.
    numpy.linalg.LinAlgError
        If the Hessian at the end point is not positive definite (no strict minimum).
    """
    program, _ = programs(problem, terms)
    eta = np.asarray(eta, dtype=float)
    state = _evaluate(program, problem, eta, terms)
    if not np.isfinite(state[0]):
        raise FloatingPointError("LRVB: the KL objective is not finite at the fitted q")
    previous = np.inf
    for step in range(max_steps + 1):
        value, grad, hessian = state
        direction = -_damped_factor(hessian).solve(grad)
        decrement = float(-grad @ direction)
        threshold = tol * max(1.0, abs(value))
        stalled = decrement < 1e6 * threshold and decrement >= previous
        if decrement < threshold or stalled or step == max_steps:
            break
        eta, state = _line_search(program, problem, eta, state, direction, decrement, terms)
        previous = decrement
    if not (decrement < threshold or stalled):
        _log.warning("LRVB: Newton stopped after %d steps (decrement %.3g)", step, decrement)
    try:
        factor = hessian.factor()
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(
            "LRVB: the Hessian of the KL objective is not positive definite at its stationary "
            "point (no strict minimum), so there is no linear response"
        ) from None
    return Stationary(eta, value, grad, hessian, factor, step)


def _line_search(
    program: Programs,
    problem: Problem,
    eta: np.ndarray,
    state: tuple,
    direction: np.ndarray,
    decrement: float,
    terms: Mapping,
) -> tuple[np.ndarray, tuple]:
    """The full step in the quadratic regime; otherwise halve it until the objective decreases
    (Armijo). Returns the new ``eta`` and ``(value, grad, H)`` there."""
    step = 1.0
    for _ in range(40):
        candidate = eta + step * direction
        new = _evaluate(program, problem, candidate, terms)
        if decrement < 1e-8 or new[0] <= state[0] - 1e-4 * step * decrement:
            return candidate, new
        step *= 0.5
    raise FloatingPointError("LRVB: the line search found no decrease of the KL objective")


@dataclass(frozen=True)
class LinearResponse:
    """``N(loc, Sigma_LR)`` over the unconstrained latents, ``Sigma_LR = diag(diag) + F F'``.

    Attributes
    ----------
    labels : list of str
        ``site[i]`` of each latent, in `Problem.sites` order.
    sites : list of (str, int)
        The latent sites and their sizes.
    loc, diag : ndarray, shape (d,)
    factor : ndarray, shape (d, G)
    grad_norm : float
        ``||grad KL||`` at the stationary point.
    newton_steps : int
    seconds : float
        Wall time (compilation included).
    compile_time_s : float
    """

    labels: list[str]
    sites: list[tuple[str, int]]
    loc: np.ndarray
    diag: np.ndarray
    factor: np.ndarray
    grad_norm: float
    newton_steps: int
    seconds: float = 0.0
    compile_time_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def covariance(self) -> np.ndarray:
        """The dense ``Sigma_LR`` (d x d)."""
        return np.diag(self.diag) + self.factor @ self.factor.T

    def sd(self) -> np.ndarray:
        """Marginal SDs, without forming ``Sigma_LR``."""
        return np.sqrt(self.diag + np.sum(self.factor**2, axis=1))

    def sample(self, rng: np.random.Generator, num_draws: int) -> np.ndarray:
        """``(num_draws, d)`` draws of ``N(loc, Sigma_LR)``, O(d G) each."""
        z_global = rng.standard_normal((num_draws, self.factor.shape[1]))
        z_local = rng.standard_normal((num_draws, self.loc.size))
        return self.loc + z_global @ self.factor.T + z_local * np.sqrt(self.diag)

    def split(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """``{site: values}`` of latent vectors (last axis), scalars without a site axis."""
        out, start = {}, 0
        for name, size in self.sites:
            block = flat[..., start : start + size]
            out[name] = block if name == "beta" or name in LOCAL_SITES else block[..., 0]
            start += size
        return out


def response(problem: Problem, point: Stationary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(loc, diag, F)`` of ``Sigma_LR`` at a stationary point, storage order."""
    factor = point.factor
    J_g = latent_mean(problem, point.eta)[1]
    if problem.n_groups:
        W, local_diag = factor.ll_inv_lg[:, 0, :], factor.ll_inv[:, 0, 0]
    else:
        W, local_diag = np.zeros((0, problem.n_global)), np.zeros(0)
    A = np.concatenate([J_g, -W])
    F = linalg.solve_triangular(factor.schur_chol, A.T, lower=True).T
    diag = np.concatenate([np.zeros(J_g.shape[0]), local_diag])
    order = problem.storage_order()
    return latent_loc(problem, point.eta), diag[order], F[order]


def solve(
    problem: Problem, eta: np.ndarray, terms: Mapping[str, Any], *, hessian: str = "structured"
) -> LinearResponse:
    """Move ``eta`` to a stationary point of the KL objective and return ``N(loc, Sigma_LR)``.

    Parameters
    ----------
    problem : Problem
    eta : ndarray
        The fitted q (`pack`).
    terms : mapping
        `inference.log_density.model_terms` of the data.
    hessian : {"structured", "dense"}
        The arrow-shaped elimination, or ``jax.hessian`` and a dense inverse.

    Returns
    -------
    LinearResponse
    """
    started = time.perf_counter()
    _, compile_time = programs(problem, terms)
    point = stationary_point(problem, eta, terms)
    if hessian == "dense":
        loc, diag, F = _dense_response(problem, point, terms)
    elif hessian == "structured":
        loc, diag, F = response(problem, point)
    else:
        raise ValueError(f"hessian: expected 'structured' or 'dense', got {hessian!r}")
    return LinearResponse(
        labels=problem.labels(),
        sites=problem.sites(),
        loc=loc,
        diag=diag,
        factor=F,
        grad_norm=float(np.linalg.norm(point.grad)),
        newton_steps=point.steps,
        seconds=time.perf_counter() - started,
        compile_time_s=compile_time,
        info={"eta": point.eta, "kl": point.value},
    )


def jacobian(problem: Problem, eta: np.ndarray) -> np.ndarray:
    """``J = d E_q theta / d eta`` (d x dim), storage order of the latents."""
    _, J_g = latent_mean(problem, eta)
    q, b, G = problem.n_groups, problem.local_width, problem.n_global
    J = np.zeros((J_g.shape[0] + q, problem.dim))
    J[: J_g.shape[0], :G] = J_g
    J[J_g.shape[0] + np.arange(q), G + b * np.arange(q)] = 1.0
    return J[problem.storage_order()]


def dense_hessian(problem: Problem, eta: np.ndarray, terms: Mapping[str, Any]) -> np.ndarray:
    """``jax.hessian`` of the KL objective (dim x dim)."""
    return np.asarray(_hessian_program(problem)(eta, terms))


@lru_cache(maxsize=16)
def _hessian_program(problem: Problem) -> Callable[..., Any]:
    import jax

    return jax.jit(jax.hessian(partial(negative_elbo, problem)))


def _dense_response(problem: Problem, point: Stationary, terms: Mapping) -> tuple:
    J = jacobian(problem, point.eta)
    covariance = J @ np.linalg.solve(dense_hessian(problem, point.eta, terms), J.T)
    loc = latent_loc(problem, point.eta)
    return loc, np.zeros(loc.size), np.linalg.cholesky(0.5 * (covariance + covariance.T))


def latent_loc(problem: Problem, eta: np.ndarray) -> np.ndarray:
    """``E_q theta``, storage order."""
    local = _split(problem, np.asarray(eta))[3][:, 0] if problem.n_groups else np.zeros(0)
    return np.concatenate([latent_mean(problem, eta)[0], local])[problem.storage_order()]


def response_columns_cg(
    problem: Problem,
    eta: np.ndarray,
    terms: Mapping[str, Any],
    columns: Sequence[int],
    *,
    tol: float = 1e-10,
    maxiter: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Columns of ``Sigma_LR = J H^-1 J'`` by conjugate gradients on Hessian-vector products.

    Matrix-free: column ``k`` is ``J x`` with ``H x = J' e_k`` solved by conjugate gradients
    whose products ``H v`` are ``jax.jvp`` of ``jax.grad`` of the objective (one compiled
    program per problem and shape); nothing about the structure of ``H`` is used. The CG
    iterations run on the host: compiling ``jax.scipy.sparse.linalg.cg`` around the product
    took 2.4 times as long as the product alone, and at large Q the products dominate.
    ``eta`` must be a stationary point (`stationary_point`).

    Parameters
    ----------
    problem, eta, terms
        As in `solve`.
    columns : sequence of int
        Latent indices (storage order).
    tol : float
        Relative residual ``||H x - b|| / ||b||`` at which a solve stops.
    maxiter : int, optional
        Iterations per column (default ``dim``).

    Returns
    -------
    columns : ndarray, shape (d, k)
    iterations : ndarray of int, shape (k,)
        Hessian-vector products each column took.
    """
    import jax.numpy as jnp

    program, _ = programs(problem, terms)
    eta_j = jnp.asarray(eta)

    def product(vector: np.ndarray) -> np.ndarray:
        return np.asarray(program.hvp(eta_j, terms, jnp.asarray(vector)))

    out, iterations = [], []
    for k in columns:
        x, count = conjugate_gradients(
            product, jacobian_row(problem, eta, k), tol, maxiter or problem.dim
        )
        out.append(apply_jacobian(problem, eta, x))
        iterations.append(count)
    return np.stack(out, axis=1), np.array(iterations)


def jacobian_row(problem: Problem, eta: np.ndarray, latent: int) -> np.ndarray:
    """Row ``latent`` (storage order) of ``J``, without forming ``J``."""
    row = np.zeros(problem.dim)
    internal = int(problem.storage_order()[latent])
    _, J_g = latent_mean(problem, eta)
    if internal < J_g.shape[0]:
        row[: problem.n_global] = J_g[internal]
    else:
        row[problem.n_global + problem.local_width * (internal - J_g.shape[0])] = 1.0
    return row


def apply_jacobian(problem: Problem, eta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``J x`` (storage order), without forming ``J``."""
    _, J_g = latent_mean(problem, eta)
    local = x[problem.n_global :].reshape(problem.n_groups, problem.local_width)
    internal = np.concatenate(
        [J_g @ x[: problem.n_global], local[:, 0] if problem.n_groups else []]
    )
    return internal[problem.storage_order()]


def conjugate_gradients(
    product: Callable[[np.ndarray], np.ndarray], rhs: np.ndarray, tol: float, maxiter: int
) -> tuple[np.ndarray, int]:
    """Solve ``A x = rhs`` for symmetric positive definite ``A`` given ``product(v) = A v``.

    Returns the solution and the number of products taken.
    """
    x = np.zeros_like(rhs)
    residual = rhs.copy()
    direction = residual.copy()
    norm2 = residual @ residual
    target = tol**2 * norm2
    for iteration in range(1, maxiter + 1):
        image = product(direction)
        step = norm2 / (direction @ image)
        x += step * direction
        residual -= step * image
        new_norm2 = residual @ residual
        if new_norm2 <= target:
            return x, iteration
        direction = residual + (new_norm2 / norm2) * direction
        norm2 = new_norm2
    _log.warning("LRVB: conjugate gradients stopped after %d products", maxiter)
    return x, maxiter
