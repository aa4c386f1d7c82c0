"""SD and variance ratios: exact with analytic moments, CIs that cover at their level."""

import subprocess
import sys

import numpy as np
import pytest

from analysis import sd_ratio, sd_with_se, summarise_vectors, variance_ratio


def test_analytic_moments_give_exact_ratios(fit_factory):
    vb = fit_factory(
        model="linear",
        method="cavi",
        backend="reference",
        sd=0.5,
        analytic=True,
        chains=1,
        draws=50,
    )
    ref = fit_factory(
        model="linear",
        method="exact",
        backend="reference",
        sd=2.0,
        analytic=True,
        chains=1,
        draws=50,
    )
    table = sd_ratio(vb, ref, var_names=["beta", "tau_e"])
    assert list(table.parameter) == ["beta_0", "beta_1", "beta_2", "tau_e"]
    np.testing.assert_allclose(table.ratio, 0.25, rtol=1e-12)
    np.testing.assert_allclose(table.lo, table.hi)
    assert table.analytic.all()
    np.testing.assert_allclose(variance_ratio(vb, ref, ["tau_e"]).ratio, 0.0625)


def test_draws_ratio_within_its_interval(fit_factory):
    vb = fit_factory(method="advi", chains=1, draws=4000, sd=0.5, seed=1)
    ref = fit_factory(method="nuts", sd=1.0, seed=2)
    table = sd_ratio(vb, ref, var_names=["beta", "u", "tau_u"])
    assert ((table.lo < 0.5) & (0.5 < table.hi)).mean() >= 0.8
    assert set(table.scale) == {"location", "precision"}
    summary = summarise_vectors(table)
    assert summary.loc[0, "n"] == 5 and summary.loc[0, "min"] <= summary.loc[0, "median"]


def _ar1(rng, phi, chains, draws, sd):
    noise = rng.normal(size=(chains, draws)) * np.sqrt(1 - phi**2)
    x = np.empty((chains, draws))
    x[:, 0] = rng.normal(size=chains)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return sd * x


@pytest.mark.parametrize("phi", [0.0, 0.8])
def test_ninety_percent_intervals_cover_85_to_95_percent(phi):
    """Over 400 replicates (independent VB draws, autocorrelated 'MCMC' chains)."""
    from analysis.ratios import ratio_interval

    rng = np.random.default_rng(2024)
    true_ratio = 0.6
    covered = 0
    n_rep = 400
    for _ in range(n_rep):
        vb = rng.normal(scale=true_ratio, size=(1, 1000))
        ref = _ar1(rng, phi, 4, 500, 1.0)
        _, lo, hi = ratio_interval(*sd_with_se(vb), *sd_with_se(ref), ci=0.9)
        covered += lo < true_ratio < hi
    assert 0.85 <= covered / n_rep <= 0.95


def test_heavy_tails_are_accounted_for():
    rng = np.random.default_rng(5)
    draws = rng.standard_t(5, size=(4, 4000))
    _, se_t = sd_with_se(draws)
    _, se_normal = sd_with_se(rng.normal(scale=draws.std(), size=(4, 4000)))
    assert se_t > 1.3 * se_normal


def test_bad_input(fit_factory):
    vb = fit_factory(model="linear", method="advi", chains=1)
    ref = fit_factory(model="random_intercept")
    with pytest.raises(ValueError, match="var_names: 'tau_u' is not in the vb posterior"):
        sd_ratio(vb, ref, var_names=["tau_u"])
    with pytest.raises(ValueError, match="ci: expected a level"):
        sd_ratio(vb, ref, ci=90)
    with pytest.raises(ValueError, match="draws: expected shape"):
        sd_with_se(np.zeros(10))
    with pytest.raises(ValueError, match="fit: expected InferenceData"):
        sd_ratio([1, 2], ref)


def test_analysis_imports_no_backend():
    code = (
        "import analysis, sys; "
        "bad = [m for m in ('jax', 'numpyro', 'pymc', 'pytensor') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
