"""SD and variance ratios: exact with analytic moments, CIs that cover at their level."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from analysis import sd_ratio, sd_with_se, summarise_vectors, variance_ratio


def test_analytic_moments_give_exact_ratios(fit_factory):
    vb = fit_factory(
        model="linear",
        method="cavi",
        backend="conjugate",
        sd=0.5,
        analytic=True,
        chains=1,
        draws=50,
    )
    ref = fit_factory(
        model="linear",
        method="exact",
        backend="conjugate",
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


def _ar1(rng, phi, chains, draws, sd, innovations="normal"):
    """AR(1) chains with unit marginal variance (times ``sd``); gamma innovations are skewed."""
    if innovations == "gamma":
        noise = (rng.gamma(4.0, size=(chains, draws)) - 4.0) / 2.0
    else:
        noise = rng.normal(size=(chains, draws))
    # x_0 = e_0, x_t = phi x_(t-1) + sqrt(1 - phi^2) e_t
    rest = signal.lfilter(
        [np.sqrt(1 - phi**2)], [1.0, -phi], noise[:, 1:], axis=1, zi=phi * noise[:, :1]
    )[0]
    return sd * np.concatenate([noise[:, :1], rest], axis=1)


@pytest.mark.parametrize(
    ("phi", "innovations"), [(0.0, "normal"), (0.8, "normal"), (0.0, "gamma"), (0.5, "gamma")]
)
def test_ninety_percent_intervals_cover_85_to_95_percent(phi, innovations):
    """Over 400 replicates: independent VB draws against autocorrelated, skewed 'MCMC' chains."""
    from analysis.ratios import ratio_interval

    rng = np.random.default_rng(2024)
    true_ratio = 0.6
    covered = 0
    n_rep = 400
    for _ in range(n_rep):
        vb = _ar1(rng, 0.0, 1, 1000, true_ratio, innovations)
        ref = _ar1(rng, phi, 4, 500, 1.0, innovations)
        _, lo, hi = ratio_interval(*sd_with_se(vb), *sd_with_se(ref), ci=0.9)
        covered += lo < true_ratio < hi
    assert 0.85 <= covered / n_rep <= 0.95


def test_coverage_through_sd_ratio_over_300_elements(fit_factory):
    """The public path: 300 random intercepts, each a replicate of the same true ratio 0.6."""
    vb = fit_factory(method="advi", chains=1, draws=1000, sd=0.6, n_groups=300, seed=11)
    ref = fit_factory(method="nuts", chains=4, draws=500, sd=1.0, n_groups=300, seed=12)
    table = sd_ratio(vb, ref, var_names=["u"])
    covered = ((table.lo < 0.6) & (0.6 < table.hi)).mean()
    assert len(table) == 300 and 0.85 <= covered <= 0.95
    variances = variance_ratio(vb, ref, var_names=["u"])
    assert 0.85 <= ((variances.lo < 0.36) & (0.36 < variances.hi)).mean() <= 0.95


def test_heavy_tails_are_accounted_for():
    rng = np.random.default_rng(5)
    draws = rng.standard_t(5, size=(4, 4000))
    _, se_t = sd_with_se(draws)
    _, se_normal = sd_with_se(rng.normal(scale=draws.std(), size=(4, 4000)))
    assert se_t > 1.3 * se_normal


def test_bad_input(fit_factory):
    from analysis import load_fits, ratio_table

    vb = fit_factory(model="linear", method="advi", chains=1)
    ref = fit_factory(model="random_intercept")
    with pytest.raises(ValueError, match="fits of different models .'linear', 'random_intercept'"):
        sd_ratio(vb, ref)
    linear_ref = fit_factory(model="linear")
    with pytest.raises(ValueError, match="var_names: 'tau_u' is not in the vb posterior"):
        sd_ratio(vb, linear_ref, var_names=["tau_u"])
    with pytest.raises(ValueError, match="ci: expected a level"):
        sd_ratio(vb, linear_ref, ci=90)
    with pytest.raises(ValueError, match="draws: expected shape"):
        sd_with_se(np.zeros(10))
    with pytest.raises(ValueError, match="fit: expected InferenceData"):
        sd_ratio([1, 2], ref)
    other_groups = fit_factory(model="random_intercept", n_groups=6)
    with pytest.raises(ValueError, match=r"u: elements differ"):
        sd_ratio(fit_factory(method="advi", chains=1), other_groups, ["u"])
    # the non-centred model has the same posterior as the centred one: comparable
    non_centred = fit_factory(model="random_intercept_nc", method="advi", chains=1)
    assert len(sd_ratio(non_centred, ref, ["tau_u"])) == 1
    assert len(load_fits(ref)) == 1
    with pytest.raises(ValueError, match="fit: expected InferenceData with a posterior"):
        ratio_table([1.0])
    with pytest.raises(ValueError, match="is not a folder"):
        load_fits("/nonexistent/results")


def test_analysis_imports_no_backend():
    code = (
        "import analysis, sys; "
        "bad = [m for m in ('jax', 'numpyro', 'pymc', 'pytensor') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_one_analytic_side_keeps_the_other_sides_error(fit_factory):
    vb = fit_factory(model="linear", method="advi", chains=1, draws=4000, sd=0.5, seed=1)
    exact = fit_factory(model="linear", backend="conjugate", method="exact", sd=1.0, seed=2)
    exact.posterior.attrs["analytic_moments"] = json.dumps({"tau_e": {"mean": 10.0, "sd": 1.0}})
    row = sd_ratio(vb, exact, ["tau_e"]).iloc[0]
    assert row.se_ref == 0.0 and row.se_vb > 0 and not row.analytic
    assert row.lo < 0.5 < row.hi and row.hi - row.lo < 0.05


def test_degenerate_sides_give_nan_not_zero_or_inf(fit_factory):
    vb = fit_factory(method="advi", chains=1, draws=500, sd=0.5)
    stuck = fit_factory()
    stuck.posterior["tau_u"][:] = 3.0
    row = sd_ratio(vb, stuck, ["tau_u"]).iloc[0]
    assert row.sd_ref == 0.0 and np.isnan([row.ratio, row.lo, row.hi]).all()
    no_moment = fit_factory(model="linear", backend="conjugate", method="exact")
    no_moment.posterior.attrs["analytic_moments"] = json.dumps(
        {"sigma2_e": {"mean": float("inf"), "sd": float("inf")}}
    )
    linear_vb = fit_factory(model="linear", method="advi", chains=1, draws=500)
    assert np.isnan(sd_ratio(linear_vb, no_moment, ["sigma2_e"]).ratio[0])


def test_analytic_moments_must_match_the_elements(fit_factory):
    vb = fit_factory(model="linear", method="cavi", backend="conjugate", chains=1)
    vb.posterior.attrs["analytic_moments"] = json.dumps({"beta": {"mean": [0, 0], "sd": [1, 1]}})
    with pytest.raises(ValueError, match=r"analytic_moments\['beta'\]: 2 SDs for 3 elements"):
        sd_ratio(vb, fit_factory(model="linear"), ["beta"])


def test_summarise_vectors_gives_median_and_range_per_pair(fit_factory):
    from analysis import ratio_table

    rng = np.random.default_rng(3)
    fits = [
        fit_factory(method=m, backend="numpyro", n_groups=q, sd=s, chains=c, draws=400, rng=rng)
        for q in (5, 20)
        for m, s, c in (("advi", 0.5, 1), ("nuts", 1.0, 4))
    ]
    summary = summarise_vectors(ratio_table(fits, [("numpyro/advi", "numpyro/nuts")]))
    assert list(summary.n_groups) == [5, 20] and list(summary.n) == [5, 20]
    assert (summary["min"] <= summary["median"]).all() and (
        summary["median"] <= summary["max"]
    ).all()
    assert (summary.lo <= summary["min"]).all() and (summary["max"] <= summary.hi).all()
