"""Every figure function runs on synthetic input and writes a non-empty PNG; failed gates show."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from analysis import (
    log_predictive_density,
    plot_elbo,
    plot_overlay,
    plot_predictive,
    plot_ratio_heatmap,
    plot_ratio_vs_groups,
    plot_shrinkage,
    predictive_comparison,
    ratio_table,
    wide_table,
)
from analysis.figures import save


@pytest.fixture
def study_tidy(fit_factory):
    rng = np.random.default_rng(1)
    fits = []
    for q in (5, 20, 100):
        for model in ("random_intercept", "logistic_random_intercept"):
            fits.append(
                fit_factory(
                    model=model,
                    method="cavi",
                    backend="conjugate",
                    n_groups=q,
                    sd=0.6,
                    chains=1,
                    draws=400,
                    rng=rng,
                )
            )
            fits.append(
                fit_factory(
                    model=model,
                    method="gibbs",
                    backend="conjugate",
                    n_groups=q,
                    draws=300,
                    rng=rng,
                    diverging=int(q == 5),
                )
            )
    return ratio_table(fits)


def _png(fig, path):
    save(fig, path)
    assert path.stat().st_size > 5_000
    first = fig.axes[0]
    assert first.get_xlabel() and first.get_ylabel()


def _suptitle(fig):
    return fig.get_suptitle()


def test_ratio_figures(study_tidy, tmp_path):
    fig = plot_ratio_vs_groups(study_tidy)
    _png(fig, tmp_path / "ratio.png")
    assert [ax.get_title() for ax in fig.axes] == [
        "M0 (random_intercept)",
        "M3 (logistic_random_intercept)",
    ]
    assert "gate failed" in fig.legends[0].get_title().get_text()
    heatmap = plot_ratio_heatmap(wide_table(study_tidy))
    _png(heatmap, tmp_path / "heatmap.png")
    labels = [t.get_text() for t in heatmap.axes[0].get_yticklabels()]
    assert "M0_Q5 †" in labels and "M0_Q20" in labels  # Q=5 references had a divergence
    cells = {t.get_text() for t in heatmap.axes[0].texts}
    assert "NA" in cells and any(c.startswith("0.") for c in cells)


def test_overlay_shrinkage_elbo(fit_factory, tmp_path):
    vb = fit_factory(method="advi", chains=1, draws=2000, sd=0.5)
    ref = fit_factory(seed=3)
    ref.posterior.attrs["truth"] = json.dumps({"u": [0.1, -0.2, 0.3, 0.0, 0.5]})
    overlay = plot_overlay(vb, ref)
    _png(overlay, tmp_path / "overlay.png")
    assert [t.get_text() for t in overlay.axes[0].get_legend().get_texts()] == ["MCMC", "VB"]
    shrinkage = plot_shrinkage(vb, ref)
    _png(shrinkage, tmp_path / "shrinkage.png")
    assert "truth" in [t.get_text() for t in shrinkage.legends[0].get_texts()]
    loss = 100 * np.exp(-np.arange(500) / 100) + np.random.default_rng(0).normal(size=500)
    vb.add_groups(vi_trace=xr.Dataset({"loss": ("step", loss), "elbo": ("step", -loss)}))
    _png(plot_elbo({"numpyro/advi": vb}), tmp_path / "elbo.png")
    _png(plot_elbo(vb), tmp_path / "elbo_single.png")  # one fit, not a mapping of fits
    with pytest.raises(ValueError, match="no vi_trace group"):
        plot_elbo({"nuts": ref})
    with pytest.raises(ValueError, match="need random intercepts 'u'"):
        plot_shrinkage(fit_factory(model="linear"), fit_factory(model="linear"))


def test_figures_flag_a_reference_that_failed_the_gate(fit_factory):
    vb = fit_factory(method="advi", chains=1, draws=500, sd=0.5)
    bad = fit_factory(seed=3, diverging=2)
    for fig in (plot_overlay(vb, bad), plot_shrinkage(vb, bad)):
        assert "failed the MCMC gate: 2 divergences" in _suptitle(fig)
    legend = plot_overlay(vb, bad).axes[0].get_legend().get_texts()
    assert "MCMC †" in [t.get_text() for t in legend]
    assert "failed" not in _suptitle(plot_overlay(vb, fit_factory(seed=4)))


@pytest.mark.parametrize("model", ["linear", "random_intercept", "logistic_random_intercept"])
def test_predictive(fit_factory, tmp_path, model):
    rng = np.random.default_rng(4)
    vb = fit_factory(model=model, method="advi", chains=1, draws=500, sd=0.1)
    ref = fit_factory(model=model, sd=0.2)
    X = np.column_stack([np.ones(40), rng.normal(size=(40, 2))])
    group = None if model == "linear" else rng.integers(0, 5, size=40)
    y = rng.integers(0, 2, size=40).astype(float) if "logistic" in model else rng.normal(size=40)
    held_out = SimpleNamespace(X=X, y=y, group=group)  # a RegressionData-like object
    fig = plot_predictive(vb, ref, held_out)
    _png(fig, tmp_path / "predictive.png")
    assert len(fig.axes) == (2 if group is None else 3)
    table = predictive_comparison(vb, ref, X, y, group)
    assert list(table.fit) == ["VB", "MCMC"] and table.lpd_diff[1] == 0.0
    assert table[["p_mean", "p_sd"]].apply(lambda c: c.between(0, 1)).all().all()


def test_log_predictive_density_matches_the_likelihood(fit_factory):
    """A posterior concentrated on one point gives the plain log likelihood at that point."""
    import arviz as az

    rng = np.random.default_rng(5)
    X = np.column_stack([np.ones(20), rng.normal(size=20)])
    group = rng.integers(0, 3, size=20)
    beta, u, tau = np.array([0.5, -1.0]), np.array([0.2, 0.0, -0.4]), 4.0
    eta = X @ beta + u[group]
    posterior = {
        "beta": np.broadcast_to(beta, (1, 50, 2)),
        "u": np.broadcast_to(u, (1, 50, 3)),
        "tau_e": np.full((1, 50), tau),
    }
    gaussian = az.from_dict(posterior=posterior)
    y = eta + rng.normal(size=20) / 2
    lpd, _ = log_predictive_density(gaussian, X, y, group)
    np.testing.assert_allclose(lpd, stats.norm.logpdf(y, eta, tau**-0.5).sum())
    logistic = az.from_dict(posterior={k: v for k, v in posterior.items() if k != "tau_e"})
    logistic.posterior.attrs["likelihood"] = "bernoulli"  # stamped by the contract
    y01 = (rng.uniform(size=20) < 0.5).astype(float)
    lpd, _ = log_predictive_density(logistic, X, y01, group)
    np.testing.assert_allclose(lpd, stats.bernoulli.logpmf(y01, 1 / (1 + np.exp(-eta))).sum())
    with pytest.raises(ValueError, match=r"group: indices must lie in 0 \.\. 2"):
        log_predictive_density(gaussian, X, y, group + 1)
    with pytest.raises(ValueError, match="X: 3 columns for 2 coefficients"):
        log_predictive_density(gaussian, np.ones((20, 3)), y, group)
    with pytest.raises(ValueError, match="group: required"):
        log_predictive_density(gaussian, X, y)
