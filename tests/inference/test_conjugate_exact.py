"""``conjugate/exact``: the Normal–Gamma posterior against numerical integration and its draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conjugate_helpers import assert_within_mc_error, case
from scipy import stats
from scipy.special import gammaln

from inference import REGISTRY, fit
from inference.conjugate.engines import SUPPORTED, cavi, exact, gibbs
from inference.contract import analytic_moments
from models import MODELS, RegressionData
from models.linear import LinearPriors

PRIORS = LinearPriors(beta_mean=0.5, beta_precision=0.3, a_e=2.0, b_e=1.5)


def _one_coefficient_data() -> RegressionData:
    rng = np.random.default_rng(5)
    y = 0.8 + rng.standard_normal(12) / 1.3
    return RegressionData(X=np.ones((12, 1)), y=y, name="tiny")


def _grid_moments(data: RegressionData, priors: LinearPriors) -> dict[str, tuple[float, float]]:
    """Posterior means and SDs of (beta, tau_e, sigma2_e, sigma_e) by quadrature on a 2-D grid.

    The joint density is written from scipy's densities, independently of the engine.
    """
    y, n = data.y, data.y.size
    beta = np.linspace(y.mean() - 3.0, y.mean() + 3.0, 1201)
    tau = np.linspace(1e-4, 8.0, 1600)
    B, T = np.meshgrid(beta, tau, indexing="ij")
    ss = np.sum(y**2) - 2.0 * B * y.sum() + n * B**2
    log_density = (
        0.5 * n * np.log(T)
        - 0.5 * T * ss
        + stats.norm.logpdf(B, priors.beta_mean, 1.0 / np.sqrt(T * priors.beta_precision))
        + stats.gamma.logpdf(T, priors.a_e, scale=1.0 / priors.b_e)
    )
    weight = np.exp(log_density - log_density.max())
    total = np.trapezoid(np.trapezoid(weight, tau, axis=1), beta)

    def moments(values: np.ndarray) -> tuple[float, float]:
        first = np.trapezoid(np.trapezoid(weight * values, tau, axis=1), beta) / total
        second = np.trapezoid(np.trapezoid(weight * values**2, tau, axis=1), beta) / total
        return float(first), float(math.sqrt(second - first**2))

    return {
        "beta": moments(B),
        "tau_e": moments(T),
        "sigma2_e": moments(1.0 / T),
        "sigma_e": moments(1.0 / np.sqrt(T)),
    }


def test_exact_matches_numerical_integration_on_one_coefficient() -> None:
    data = _one_coefficient_data()
    idata = fit("linear", data, backend="conjugate", method="exact", priors=PRIORS, seed=1)
    analytic = analytic_moments(idata)
    for name, (mean, sd) in _grid_moments(data, PRIORS).items():
        got_mean = np.ravel(analytic[name]["mean"])[0]
        got_sd = np.ravel(analytic[name]["sd"])[0]
        assert got_mean == pytest.approx(mean, rel=1e-4), name
        assert got_sd == pytest.approx(sd, rel=1e-4), name


def test_exact_beta_sd_is_the_student_t_marginal_sd() -> None:
    """beta's marginal is Student-t(2 a_n, m_n, b_n / a_n Lambda_n^-1): check its SD by scipy."""
    data, _ = case("linear")
    idata = fit("linear", data, backend="conjugate", method="exact", priors=PRIORS)
    analytic = analytic_moments(idata)
    X, y = data.X, data.y
    precision = X.T @ X + PRIORS.beta_precision * np.eye(X.shape[1])
    mean = np.linalg.solve(precision, X.T @ y + PRIORS.beta_precision * PRIORS.beta_mean)
    a_n = PRIORS.a_e + y.size / 2
    b_n = PRIORS.b_e + 0.5 * (
        y @ y + PRIORS.beta_precision * X.shape[1] * PRIORS.beta_mean**2 - mean @ precision @ mean
    )
    scale = np.sqrt(b_n / a_n * np.diag(np.linalg.inv(precision)))
    t_sd = stats.t(df=2 * a_n, loc=mean, scale=scale).std()
    np.testing.assert_allclose(analytic["beta"]["sd"], t_sd, rtol=1e-10)
    np.testing.assert_allclose(analytic["beta"]["mean"], mean, rtol=1e-10)
    sigma_mean = math.exp(0.5 * math.log(b_n) + gammaln(a_n - 0.5) - gammaln(a_n))
    assert analytic["sigma_e"]["mean"] == pytest.approx(sigma_mean, rel=1e-12)
    assert analytic["sigma2_e"]["mean"] == pytest.approx(stats.invgamma(a_n, scale=b_n).mean())
    assert analytic["sigma2_e"]["sd"] == pytest.approx(stats.invgamma(a_n, scale=b_n).std())


def test_exact_draws_match_analytic_moments() -> None:
    data, _ = case("linear")
    idata = fit("linear", data, backend="conjugate", method="exact", seed=4)
    analytic = analytic_moments(idata)
    posterior = idata.posterior
    num_draws = posterior.sizes["draw"]
    assert posterior.sizes["chain"] == 1
    for name in ("beta", "tau_e", "sigma2_e", "sigma_e"):
        draws = posterior[name].values.reshape(num_draws, -1)
        se = draws.std(axis=0) / math.sqrt(num_draws)  # independent draws: ESS = num_draws
        assert_within_mc_error(draws.mean(axis=0), se, np.ravel(analytic[name]["mean"]), 0.0, name)


def test_exact_contract_and_seed() -> None:
    data, _ = case("linear")
    first = fit("linear", data, backend="conjugate", method="exact", seed=7)
    again = fit("linear", data, backend="conjugate", method="exact", seed=7)
    other = fit("linear", data, backend="conjugate", method="exact", seed=8)
    assert sorted(first.posterior.data_vars) == ["beta", "sigma2_e", "sigma_e", "tau_e"]
    assert first.posterior["beta"].dims == ("chain", "draw", "coef")
    assert first.posterior.attrs["backend"] == "conjugate"
    assert first.posterior.attrs["method"] == "exact"
    assert set(analytic_moments(first)) == {"beta", "tau_e", "sigma2_e", "sigma_e"}
    np.testing.assert_array_equal(first.posterior["beta"], again.posterior["beta"])
    assert not np.array_equal(first.posterior["beta"], other.posterior["beta"])


def test_supported_models_match_the_registry() -> None:
    for method, models in SUPPORTED.items():
        entries = [e for e in REGISTRY.values() if e.key[:2] == ("conjugate", method)]
        assert entries and all(set(models) == set(e.models or MODELS) for e in entries)


@pytest.mark.parametrize(
    ("engine", "model"),
    [
        (exact, "random_intercept"),
        (exact, "logistic_random_intercept"),
        (cavi, "random_intercept_nc"),
    ],
)
def test_unsupported_model_raises_naming_model_and_supported(engine, model: str) -> None:
    spec = MODELS[model]
    data, _ = case("random_intercept")
    with pytest.raises(ValueError, match=rf"{model}.*it fits \['linear'") as error:
        engine(spec, data, priors=spec.priors(), settings=None, seed=0, progressbar=False)
    assert model in str(error.value)


def test_gibbs_rejects_unknown_spec() -> None:
    from dataclasses import replace

    spec = replace(MODELS["linear"], name="probit")
    data, _ = case("linear")
    with pytest.raises(ValueError, match="probit"):
        gibbs(spec, data, priors=spec.priors(), settings=None, seed=0, progressbar=False)
