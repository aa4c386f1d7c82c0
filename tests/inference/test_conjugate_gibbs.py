"""``conjugate/gibbs``: against the exact posterior, against NUTS, the truth, seeds and the
sample statistics."""

from __future__ import annotations

import numpy as np
import pytest
from conjugate_helpers import (
    assert_within_mc_error,
    case,
    mean_and_se,
    nuts_posterior,
    reference_fit,
    sd_and_se,
)

from inference import fit
from inference.contract import analytic_moments
from models import MODELS

GIBBS_MODELS = ("linear", "random_intercept", "random_intercept_nc", "logistic_random_intercept")


def test_gibbs_matches_exact_on_linear() -> None:
    gibbs = reference_fit("linear", "gibbs").posterior
    exact = analytic_moments(reference_fit("linear", "exact"))
    for name in ("beta", "tau_e", "sigma2_e", "sigma_e"):
        mean, mean_se = mean_and_se(gibbs, name)
        assert_within_mc_error(mean, mean_se, exact[name]["mean"], 0.0, f"{name} mean")
        sd, sd_se = sd_and_se(gibbs, name)
        assert_within_mc_error(sd, sd_se, exact[name]["sd"], 0.0, f"{name} sd")


@pytest.mark.parametrize("model", ["random_intercept", "logistic_random_intercept"])
def test_gibbs_agrees_with_nuts(model: str) -> None:
    gibbs = reference_fit(model, "gibbs").posterior
    nuts = nuts_posterior(model)
    for name in MODELS[model].parameters:
        for moment in (mean_and_se, sd_and_se):
            a, se_a = moment(gibbs, name)
            b, se_b = moment(nuts, name)
            assert_within_mc_error(a, se_a, b, se_b, f"{model}.{name} {moment.__name__}")


def test_pg_gibbs_recovers_truth() -> None:
    data, truth = case("logistic_random_intercept")
    posterior = reference_fit("logistic_random_intercept", "gibbs").posterior
    for name in ("beta", "tau_u"):
        mean = posterior[name].mean(("chain", "draw")).values
        sd = posterior[name].std(("chain", "draw")).values
        assert np.all(np.abs(mean - truth[name]) < 3 * sd), name
    u_mean = posterior["u"].mean(("chain", "draw")).values
    assert np.corrcoef(u_mean, truth["u"])[0, 1] > 0.5


@pytest.mark.parametrize("model", GIBBS_MODELS)
def test_chains_mix_and_sample_stats(model: str) -> None:
    import arviz as az

    idata = reference_fit(model, "gibbs")
    assert (idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]) == (4, 2000)
    assert float(az.rhat(idata.posterior).to_array().max()) < 1.01
    stats = idata.sample_stats
    assert stats["lp"].shape == (4, 2000)
    assert stats["diverging"].dtype == bool and not stats["diverging"].any()
    assert idata.posterior.attrs["method"] == "gibbs"
    assert "z" not in idata.posterior


@pytest.mark.parametrize("model", GIBBS_MODELS)
def test_lp_is_numpyros_log_joint(model: str) -> None:
    """``lp`` equals the NumPyro model's log joint density (constrained space) at the draws."""
    import jax
    from numpyro.infer.util import log_density

    data, _ = case(model)
    # M2's public parameters have M0's joint density; its NumPyro model samples z instead of u.
    spec = MODELS["random_intercept" if model == "random_intercept_nc" else model]
    idata = reference_fit(model, "gibbs")
    post = idata.posterior.isel(chain=1, draw=slice(0, 50))
    point = {k: post[k].values for k in spec.parameters}

    def log_joint(values):
        args = (data.X, data.group, data.n_groups, data.y)
        return log_density(spec.numpyro_model(), args, {"priors": spec.priors()}, values)[0]

    expected = np.asarray(jax.vmap(log_joint)(point))
    np.testing.assert_allclose(idata.sample_stats["lp"].values[1, :50], expected, rtol=1e-9)


def test_same_seed_same_draws_and_noncentred_is_sampled_centred() -> None:
    data, _ = case("random_intercept")
    settings = {"num_chains": 2, "num_burnin": 50, "num_draws": 100}

    def run(model: str, seed: int):
        return fit(model, data, backend="conjugate", method="gibbs", settings=settings, seed=seed)

    first, again, other = (
        run("random_intercept", 5),
        run("random_intercept", 5),
        run("random_intercept", 6),
    )
    noncentred = run("random_intercept_nc", 5)
    for name in ("beta", "u", "tau_e", "tau_u"):
        np.testing.assert_array_equal(first.posterior[name], again.posterior[name])
        np.testing.assert_array_equal(first.posterior[name], noncentred.posterior[name])
        assert not np.array_equal(first.posterior[name], other.posterior[name])
    assert not np.array_equal(first.posterior["beta"][0], first.posterior["beta"][1])


@pytest.mark.parametrize("model", ["linear", "logistic_random_intercept"])
def test_thinning_progressbar_and_netcdf(model: str, tmp_path) -> None:
    import arviz as az

    data, _ = case(model)
    settings = {"num_chains": 3, "num_burnin": 10, "num_draws": 7, "thin": 3}
    idata = fit(
        model, data, backend="conjugate", method="gibbs", settings=settings, progressbar=True
    )
    assert idata.posterior["beta"].shape == (3, 7, data.n_coef)
    assert idata.posterior.attrs["sweeps_per_second"] > 0
    idata.to_netcdf(tmp_path / "gibbs.nc")
    restored = az.from_netcdf(tmp_path / "gibbs.nc")
    np.testing.assert_array_equal(restored.sample_stats["lp"], idata.sample_stats["lp"])
    assert not restored.sample_stats["diverging"].values.any()


@pytest.mark.parametrize("model", ["random_intercept", "logistic_random_intercept"])
def test_interweaving_unlocks_tau_u_with_few_rows_per_group(model: str, monkeypatch) -> None:
    """3 rows per group, vague Gamma(0.01, 0.01) prior: the centred tau_u | u update alone
    mixes slowly; the non-centred move of sigma_u multiplies tau_u's bulk ESS (measured: M0
    260 -> 1350, M3 53 -> 700 of 8000 draws), and both target the same posterior."""
    import analysis
    import inference.conjugate.gibbs as gibbs_module
    from models import simulate

    data, _ = simulate(model, n_groups=100, n_obs=300, truth={"tau_u": 4.0}, seed=2)
    priors = {"a_u": 0.01, "b_u": 0.01} | (
        {"a_e": 0.01, "b_e": 0.01} if "tau_e" in MODELS[model].parameters else {}
    )
    settings = {"num_chains": 4, "num_burnin": 500, "num_draws": 1500}

    def run() -> tuple[float, float, float]:
        idata = fit(
            model, data, backend="conjugate", method="gibbs", settings=settings, priors=priors
        )
        ess = float(analysis.reference_diagnostics(idata, ["tau_u"]).ess_bulk.iloc[0])
        log_tau = np.log(idata.posterior.tau_u.values)
        return ess, float(log_tau.mean()), float(log_tau.std() / np.sqrt(ess))

    interwoven = run()
    monkeypatch.setattr(gibbs_module, "INTERWEAVE_STEPS", 0)
    centred = run()
    assert interwoven[0] > 2.5 * centred[0], (interwoven, centred)
    assert abs(interwoven[1] - centred[1]) < 5 * np.hypot(interwoven[2], centred[2])


def test_interweaving_metropolis_samples_the_log_scale_conditional() -> None:
    """The Metropolis steps on ``l = log sigma_u`` leave ``-A e^2l + B e^l - 2 a l - b e^-2l``
    invariant: a long chain of them gives the mean of ``sigma_u`` that quadrature gives (within
    4 Monte-Carlo SEs), and a proposal beyond `LOG_SCALE_LIMIT` is rejected, not an error."""
    from scipy import integrate

    from analysis.convergence import ess
    from inference.conjugate.gibbs import LOG_SCALE_LIMIT, _metropolis_log_scale

    quadratic, linear, a_u, b_u = 3.0, 2.0, 0.5, 0.2

    def density(ell: float) -> float:
        s = np.exp(ell)
        return np.exp(-quadratic * s * s + linear * s - 2 * a_u * ell - b_u / (s * s))

    norm = integrate.quad(density, -8, 4)[0]
    expected = integrate.quad(lambda ell: np.exp(ell) * density(ell), -8, 4)[0] / norm
    rng = np.random.default_rng(3)
    moves, log_u = rng.standard_normal((20_000, 5)), np.log(rng.uniform(size=(20_000, 5)))
    ell, sigma = 0.0, np.empty(20_000)
    for t in range(20_000):
        ell = _metropolis_log_scale(ell, quadratic, linear, moves[t], log_u[t], a_u, b_u)
        sigma[t] = np.exp(ell)
    se = sigma.std() / np.sqrt(ess(sigma[np.newaxis], method="mean"))
    assert abs(sigma.mean() - expected) < 4 * se, (sigma.mean(), expected, se)
    for edge, move in ((LOG_SCALE_LIMIT - 0.5, 500.0), (0.5 - LOG_SCALE_LIMIT, -500.0)):
        assert _metropolis_log_scale(edge, quadratic, linear, [move], [-1e-12], a_u, b_u) == edge
