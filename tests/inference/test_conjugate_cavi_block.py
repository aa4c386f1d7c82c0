"""``conjugate/cavi:block``: q(beta, u) jointly Gaussian through the Schur complement.

Checked against a dense implementation written here (the (p + Q)-dimensional precision formed
and inverted, small Q): the conditional Gaussian at fixed precisions, every sweep's ELBO, the final
means and covariances; then a monotone ELBO, the mean-field comparison, a Gibbs run, the truth of
simulated logistic data, the draws and the ``variational`` group.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import xarray as xr
from conjugate_helpers import (
    N_SE,
    assert_monotone,
    assert_within_mc_error,
    mean_and_se,
    sd_and_se,
)
from scipy import special
from scipy import stats as scipy_stats

from inference import fit
from inference.conjugate.cavi_block import (
    cavi_block_logistic,
    cavi_block_random_intercept,
    conditional_logistic,
    conditional_random_intercept,
)
from inference.conjugate.stats import GaussianStats
from inference.contract import analytic_moments
from inference.settings import CaviSettings
from models import MODELS, simulate

EXACT = 1e-8  # dense inverse vs Schur complement: both are backward-stable solves of small systems
GAUSSIAN = "random_intercept"
LOGISTIC = "logistic_random_intercept"


@functools.cache
def small_case(model: str):
    """Unbalanced small data (Q = 6): the dense (p + Q) matrices stay tiny."""
    sizes = [2, 5, 9, 14, 20, 30]
    return simulate(model, group_sizes=sizes, seed=21)


# --- the dense reference ---------------------------------------------------------------------


def _design(data) -> np.ndarray:
    """``C = [X, Z]`` with ``Z`` the n x Q group indicator matrix."""
    return np.hstack([data.X, np.eye(data.n_groups)[data.group]])


def dense_conditional(data, priors, weights, shift, tau_u):
    """Mean and covariance of ``N(P^-1 h, P^-1)``, ``P = C' diag(weights) C + blockdiag(I/s0^2,
    tau_u I)``, ``h = C' shift + [m0/s0^2, 0]``, by a dense inverse."""
    p, q = data.n_coef, data.n_groups
    C = _design(data)
    prior = np.concatenate([np.full(p, priors.beta_sd**-2), np.full(q, tau_u)])
    prec = (C.T * weights) @ C + np.diag(prior)
    cov = np.linalg.inv(prec)
    prior_shift = np.concatenate([np.full(p, priors.beta_mean * priors.beta_sd**-2), np.zeros(q)])
    return cov @ (C.T @ shift + prior_shift), cov


def _gamma_terms(prior_shape, prior_rate, shape, rate) -> float:
    """``E_q[log Gamma(tau | prior)] + H[Gamma(shape, rate)]``, by scipy."""
    mean, mean_log = shape / rate, special.digamma(shape) - math.log(rate)
    log_prior = (
        prior_shape * math.log(prior_rate)
        - special.gammaln(prior_shape)
        + (prior_shape - 1) * mean_log
        - prior_rate * mean
    )
    return log_prior + scipy_stats.gamma(shape, scale=1.0 / rate).entropy()


def _effects_terms(mean, cov, priors, p, shape_u, rate_u) -> float:
    """``E_q[log p(beta) + log p(u | tau_u)] + H[q(beta, u)]``, dense."""
    q = mean.size - p
    beta_prior = scipy_stats.norm(priors.beta_mean, priors.beta_sd)
    log_prior_beta = np.sum(
        beta_prior.logpdf(mean[:p]) - 0.5 * np.diag(cov)[:p] / priors.beta_sd**2
    )
    mean_log_tau = special.digamma(shape_u) - math.log(rate_u)
    u_ss = mean[p:] @ mean[p:] + np.trace(cov[p:, p:])
    log_prior_u = 0.5 * q * (mean_log_tau - math.log(2 * math.pi)) - 0.5 * shape_u / rate_u * u_ss
    entropy = scipy_stats.multivariate_normal(mean, cov).entropy()
    return (
        log_prior_beta
        + log_prior_u
        + entropy
        + _gamma_terms(priors.a_u, priors.b_u, shape_u, rate_u)
    )


def dense_cavi_gaussian(data, priors, sweeps: int):
    """Block CAVI of M0 with dense matrices, the same start as the engine."""
    n, p, q = data.n_obs, data.n_coef, data.n_groups
    C, y = _design(data), data.y
    shape_e, shape_u = priors.a_e + n / 2, priors.a_u + q / 2
    rate_e, rate_u = shape_e * np.var(y), shape_u * np.var(y)
    trace = []
    for _ in range(sweeps):
        tau_e = shape_e / rate_e
        mean, cov = dense_conditional(data, priors, np.full(n, tau_e), tau_e * y, shape_u / rate_u)
        resid = y - C @ mean
        expected_ss = resid @ resid + np.sum((C.T @ C) * cov)
        rate_e = priors.b_e + expected_ss / 2
        rate_u = priors.b_u + (mean[p:] @ mean[p:] + np.trace(cov[p:, p:])) / 2
        mean_log_tau_e = special.digamma(shape_e) - math.log(rate_e)
        log_lik = (
            n / 2 * (mean_log_tau_e - math.log(2 * math.pi)) - shape_e / rate_e * expected_ss / 2
        )
        trace.append(
            log_lik
            + _effects_terms(mean, cov, priors, p, shape_u, rate_u)
            + _gamma_terms(priors.a_e, priors.b_e, shape_e, rate_e)
        )
    return mean, cov, np.array(trace), {"tau_e_rate": rate_e, "tau_u_rate": rate_u}


def dense_cavi_logistic(data, priors, sweeps: int):
    """Block PG-CAVI of M3 with dense matrices, the same start as the engine."""
    p, q = data.n_coef, data.n_groups
    C, kappa = _design(data), data.y - 0.5
    shape_u = priors.a_u + q / 2
    rate_u = shape_u * priors.b_u / priors.a_u
    c = np.zeros(data.n_obs)
    trace = []
    for _ in range(sweeps):
        omega = np.where(c > 0, np.tanh(c / 2) / (2 * np.where(c > 0, c, 1)), 0.25)
        mean, cov = dense_conditional(data, priors, omega, kappa, shape_u / rate_u)
        rate_u = priors.b_u + (mean[p:] @ mean[p:] + np.trace(cov[p:, p:])) / 2
        eta_mean = C @ mean
        eta_second = eta_mean**2 + np.einsum("ik,kl,il->i", C, cov, C)
        c = np.sqrt(eta_second)
        omega = np.tanh(c / 2) / (2 * c)
        log_lik = np.sum(
            special.log_expit(c) - c / 2 + kappa * eta_mean - omega * (eta_second - c**2) / 2
        )
        trace.append(log_lik + _effects_terms(mean, cov, priors, p, shape_u, rate_u))
    return mean, cov, np.array(trace), {"tau_u_rate": rate_u, "omega_c": c}


def rebuild_joint(factors) -> tuple[np.ndarray, np.ndarray]:
    """The full ``q(beta, u)`` from the kept factors (module docstring of ``cavi_block``)."""
    beta_cov, cross = np.asarray(factors["beta_cov"]), np.asarray(factors["beta_u_cov"])
    u_cov = np.diag(1.0 / np.asarray(factors["u_prec"])) + cross.T @ np.linalg.solve(
        beta_cov, cross
    )
    mean = np.concatenate([factors["beta_mean"], factors["u_mean"]])
    return mean, np.block([[beta_cov, cross], [cross.T, u_cov]])


def _factor_values(result) -> dict[str, np.ndarray]:
    return {name: value for name, (_, value) in result.factors.items()}


# --- exactness -------------------------------------------------------------------------------


def test_gaussian_q_beta_u_at_fixed_precisions_is_the_exact_conditional() -> None:
    data, _ = small_case(GAUSSIAN)
    priors = MODELS[GAUSSIAN].priors()
    tau_e, tau_u = 1.7, 0.6
    joint = conditional_random_intercept(GaussianStats.of(data), priors, tau_e, tau_u)
    mean, cov = dense_conditional(data, priors, np.full(data.n_obs, tau_e), tau_e * data.y, tau_u)
    _assert_joint_equals(joint, mean, cov)


def test_logistic_q_beta_u_at_fixed_omega_and_tau_is_the_exact_conditional() -> None:
    data, _ = small_case(LOGISTIC)
    priors = MODELS[LOGISTIC].priors()
    omega = np.random.default_rng(0).uniform(0.05, 0.25, data.n_obs)
    joint = conditional_logistic(data, priors, omega, 2.5)
    mean, cov = dense_conditional(data, priors, omega, data.y - 0.5, 2.5)
    _assert_joint_equals(joint, mean, cov)


def _assert_joint_equals(joint, mean: np.ndarray, cov: np.ndarray) -> None:
    p = joint.beta_mean.size
    rebuilt_mean, rebuilt_cov = rebuild_joint(joint.parts())
    np.testing.assert_allclose(rebuilt_mean, mean, rtol=0, atol=EXACT)
    np.testing.assert_allclose(rebuilt_cov, cov, rtol=0, atol=EXACT)
    np.testing.assert_allclose(joint.u_var, np.diag(cov)[p:], rtol=0, atol=EXACT)
    np.testing.assert_allclose(joint.beta_u_cov, cov[:p, p:], rtol=0, atol=EXACT)
    assert joint.cov_logdet() == pytest.approx(np.linalg.slogdet(cov)[1], abs=EXACT)


@pytest.mark.parametrize(
    ("model", "engine", "dense"),
    [
        (GAUSSIAN, cavi_block_random_intercept, dense_cavi_gaussian),
        (LOGISTIC, cavi_block_logistic, dense_cavi_logistic),
    ],
)
def test_every_sweep_matches_the_dense_implementation(model, engine, dense) -> None:
    """Same start, same number of sweeps: ELBO per sweep, final means, covariances, factors."""
    data, _ = small_case(model)
    priors = MODELS[model].priors()
    result = engine(data, priors, CaviSettings(num_draws=10), np.random.default_rng(0))
    mean, cov, trace, others = dense(data, priors, result.elbo.size)
    np.testing.assert_allclose(result.elbo, trace, rtol=EXACT, atol=0)
    factors = _factor_values(result)
    rebuilt_mean, rebuilt_cov = rebuild_joint(factors)
    np.testing.assert_allclose(rebuilt_mean, mean, rtol=0, atol=EXACT)
    np.testing.assert_allclose(rebuilt_cov, cov, rtol=0, atol=EXACT)
    for name, value in others.items():
        np.testing.assert_allclose(factors[name], value, rtol=EXACT, err_msg=name)


# --- the ELBO --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [GAUSSIAN, LOGISTIC])
def test_elbo_is_monotone_and_converges_through_fit(model: str) -> None:
    data, _ = small_case(model)
    idata = fit(model, data, backend="conjugate", method="cavi", family="block")
    elbo = idata.vi_trace["elbo"].values
    assert_monotone(elbo)
    assert idata.posterior.attrs["cavi_converged"] == 1
    assert idata.posterior.attrs["family"] == "block"


@pytest.mark.parametrize("model", [GAUSSIAN, LOGISTIC])
def test_elbo_is_monotone_on_a_slow_unbalanced_problem(model: str) -> None:
    """Groups of 1 to 200 rows, tight intercepts, tolerance near round-off: every sweep gains."""
    data, _ = simulate(model, group_sizes=[1, 2, 3, 50, 80, 200], truth={"tau_u": 20.0}, seed=3)
    settings = {"tol": 1e-15, "max_iter": 300}
    idata = fit(model, data, backend="conjugate", method="cavi", family="block", settings=settings)
    elbo = idata.vi_trace["elbo"].values
    assert elbo.size > 5
    assert_monotone(elbo)


# --- against mean field, Gibbs and the truth -------------------------------------------------


def test_mean_field_intercept_sd_is_the_block_sd_times_sqrt_one_minus_rho() -> None:
    """Intercept-only balanced design, n rows per group: block Var(beta_0) = (sigma_u^2 +
    sigma_e^2 / n) / Q while mean field gives sigma_e^2 / (Q n), so sd_mf / sd_block =
    sqrt(1 - rho_n) with rho_n = n tau_e / (n tau_e + tau_u). Exact up to the prior (1/s0^2 is
    under 0.1 % of the precision) and the two fits' E[tau_e] (asserted within 1 %, half of it in
    the SD): 1 % tolerance."""
    n_per_group = 10
    data, _ = simulate(GAUSSIAN, n_groups=20, n_per_group=n_per_group, truth={"beta": (1.0,)})
    block = analytic_moments(
        fit(GAUSSIAN, data, backend="conjugate", method="cavi", family="block")
    )
    mean_field = analytic_moments(fit(GAUSSIAN, data, backend="conjugate", method="cavi"))
    tau_e, tau_u = block["tau_e"]["mean"], block["tau_u"]["mean"]
    assert mean_field["tau_e"]["mean"] == pytest.approx(tau_e, rel=0.01)
    rho = n_per_group * tau_e / (n_per_group * tau_e + tau_u)
    ratio = mean_field["beta"]["sd"][0] / block["beta"]["sd"][0]
    assert ratio < 1.0
    assert ratio == pytest.approx(math.sqrt(1.0 - rho), rel=0.01)


@functools.cache
def _gibbs_case():
    data, _ = simulate(GAUSSIAN, n_groups=50, n_per_group=10, seed=7)
    block = fit(GAUSSIAN, data, backend="conjugate", method="cavi", family="block")
    gibbs = fit(GAUSSIAN, data, backend="conjugate", method="gibbs", seed=1)
    return block, gibbs


@pytest.mark.parametrize("name", ["beta", "u"])
def test_block_sds_and_means_of_beta_and_u_agree_with_gibbs(name: str) -> None:
    """Within 5 Monte-Carlo SEs of Gibbs plus the VB bias of q(tau) being independent of
    (beta, u): q(beta, u) is the conditional at E_q[tau_u], so it replaces E[sigma_u^2] =
    b / (A - 1) by 1 / E_q[tau_u] = b / A (A = a_u + Q/2 = 26), a relative variance gap of
    1 / (A - 1) = 4 %, 2 % in the SD; the spread of the shrinkage factor over tau adds well
    under 1 %. Allowance: 1 / (A - 1) of the SD (twice the Jensen gap). Means: 5 SEs plus 5 %
    of the SD (the conditional mean at E_q[tau] against its posterior average)."""
    block, gibbs = _gibbs_case()
    moments = analytic_moments(block)
    allowance = 1.0 / (float(block.variational["tau_u_shape"]) - 1.0)
    sd, se = sd_and_se(gibbs.posterior, name)
    _assert_close(np.array(moments[name]["sd"]), sd, N_SE * se + allowance * sd, f"sd of {name}")
    mean, se = mean_and_se(gibbs.posterior, name)
    bound = N_SE * se + 0.05 * sd
    _assert_close(np.array(moments[name]["mean"]), mean, bound, f"mean of {name}")


def _assert_close(vb: np.ndarray, reference: np.ndarray, bound: np.ndarray, what: str) -> None:
    gap = np.abs(vb - reference)
    assert np.all(gap < bound), f"{what}: |vb - gibbs| = {gap} exceeds {bound}"


def test_pg_block_cavi_recovers_the_truth() -> None:
    """Q = 40 groups of 40 rows: beta and tau_u within 3 q-SDs of the truth (q's SDs are, if
    anything, below the posterior's, so this is the stricter check) and the fitted intercepts
    track the drawn ones."""
    data, truth = simulate(LOGISTIC, n_groups=40, n_per_group=40, seed=8)
    moments = analytic_moments(
        fit(LOGISTIC, data, backend="conjugate", method="cavi", family="block")
    )
    for name in ("beta", "tau_u"):
        gap = np.abs(np.array(moments[name]["mean"]) - truth[name])
        assert np.all(gap < 3 * np.array(moments[name]["sd"])), (name, moments[name], truth[name])
    assert np.corrcoef(moments["u"]["mean"], truth["u"])[0, 1] > 0.7


# --- draws and the variational group ---------------------------------------------------------


@pytest.mark.parametrize("model", ["linear", GAUSSIAN, LOGISTIC])
def test_draws_match_the_joint_q(model: str) -> None:
    """Draw means against the analytic means and the draws' beta/u cross-covariance against
    ``beta_u_cov`` (SE of a sample covariance: sqrt((s_kk s_jj + s_kj^2) / N))."""
    kwargs = {"n_obs": 60} if model == "linear" else {"group_sizes": [2, 5, 9, 14, 20, 30]}
    data, _ = simulate(model, seed=21, **kwargs)
    idata = fit(model, data, backend="conjugate", method="cavi", family="block", seed=4)
    moments = analytic_moments(idata)
    post = idata.posterior.isel(chain=0)
    num_draws = post.sizes["draw"]
    assert set(moments) == set(post.data_vars)
    for name, values in post.data_vars.items():
        draws = values.values.reshape(num_draws, -1)
        se = draws.std(axis=0) / math.sqrt(num_draws)
        assert_within_mc_error(draws.mean(axis=0), se, np.ravel(moments[name]["mean"]), 0, name)
    if model == "linear":
        mean_field = fit(model, data, backend="conjugate", method="cavi", seed=4)
        assert analytic_moments(mean_field) == moments
        xr.testing.assert_equal(idata.posterior.drop_attrs(), mean_field.posterior.drop_attrs())
        return
    beta, u = post["beta"].values, post["u"].values
    cross = (beta - beta.mean(0)).T @ (u - u.mean(0)) / num_draws
    factors = idata.variational
    var_beta, var_u = np.diag(factors["beta_cov"].values), factors["u_var"].values
    expected = factors["beta_u_cov"].values
    se = np.sqrt((np.outer(var_beta, var_u) + expected**2) / num_draws)
    assert_within_mc_error(cross, se, expected, 0.0, "cov(beta, u) of the draws")


@pytest.mark.parametrize(
    ("model", "dense"), [(GAUSSIAN, dense_cavi_gaussian), (LOGISTIC, dense_cavi_logistic)]
)
def test_variational_group_round_trips_and_rebuilds_the_dense_joint(model, dense, tmp_path):
    data, _ = small_case(model)
    idata = fit(model, data, backend="conjugate", method="cavi", family="block")
    path = tmp_path / "block.nc"
    idata.to_netcdf(path)
    with xr.open_dataset(path, group="variational") as stored:
        stored = stored.load()
    xr.testing.assert_identical(stored, idata.variational)
    assert stored.attrs["family"] == "block"
    assert stored["beta_u_cov"].dims == ("coef", "group")
    assert stored["u_prec"].dims == ("group",)
    mean, cov, _, _ = dense(data, MODELS[model].priors(), idata.posterior.attrs["cavi_iterations"])
    rebuilt_mean, rebuilt_cov = rebuild_joint({k: stored[k].values for k in stored.data_vars})
    np.testing.assert_allclose(rebuilt_mean, mean, rtol=0, atol=EXACT)
    np.testing.assert_allclose(rebuilt_cov, cov, rtol=0, atol=EXACT)
    np.testing.assert_allclose(np.diag(rebuilt_cov)[data.n_coef :], stored["u_var"], atol=EXACT)
