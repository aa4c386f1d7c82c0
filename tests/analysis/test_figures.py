"""Every figure function runs on synthetic input and writes a non-empty PNG."""

import json

import numpy as np
import pytest
import xarray as xr

from analysis import (
    plot_elbo,
    plot_overlay,
    plot_predictive,
    plot_ratio_heatmap,
    plot_ratio_vs_groups,
    plot_shrinkage,
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
                    backend="reference",
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
                    backend="reference",
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
    assert fig.axes and all(ax.get_xlabel() or not ax.axison for ax in fig.axes[:1])


def test_ratio_figures(study_tidy, tmp_path):
    _png(plot_ratio_vs_groups(study_tidy), tmp_path / "ratio.png")
    _png(plot_ratio_heatmap(wide_table(study_tidy)), tmp_path / "heatmap.png")


def test_overlay_shrinkage_elbo(fit_factory, tmp_path):
    vb = fit_factory(method="advi", chains=1, draws=2000, sd=0.5)
    ref = fit_factory(seed=3)
    ref.posterior.attrs["truth"] = json.dumps({"u": [0.1, -0.2, 0.3, 0.0, 0.5]})
    _png(plot_overlay(vb, ref), tmp_path / "overlay.png")
    _png(plot_shrinkage(vb, ref), tmp_path / "shrinkage.png")
    loss = 100 * np.exp(-np.arange(500) / 100) + np.random.default_rng(0).normal(size=500)
    vb.add_groups(vi_trace=xr.Dataset({"loss": ("step", loss), "elbo": ("step", -loss)}))
    _png(plot_elbo({"numpyro/advi": vb}), tmp_path / "elbo.png")
    with pytest.raises(ValueError, match="no vi_trace group"):
        plot_elbo({"nuts": ref})


@pytest.mark.parametrize("model", ["random_intercept", "logistic_random_intercept"])
def test_predictive(fit_factory, tmp_path, model):
    rng = np.random.default_rng(4)
    vb = fit_factory(model=model, method="advi", chains=1, draws=500, sd=0.1)
    ref = fit_factory(model=model, sd=0.2)
    X = np.column_stack([np.ones(40), rng.normal(size=(40, 2))])
    group = rng.integers(0, 5, size=40)
    y = rng.integers(0, 2, size=40).astype(float) if "logistic" in model else rng.normal(size=40)
    _png(plot_predictive(vb, ref, X, y, group), tmp_path / "predictive.png")
