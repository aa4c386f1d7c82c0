"""Every (model, backend, method) of the two PPL engines returns the contract of ARCHITECTURE.md."""

import json

import arviz as az
import numpy as np
import pytest

from analysis.netcdf import write_fit
from inference import fit
from models import MODELS

COMBINATIONS = [
    (model, backend, method)
    for model in sorted(MODELS)
    for backend in ("numpyro", "pymc")
    for method in ("advi", "nuts")
]
IDS = ["-".join(combination) for combination in COMBINATIONS]
ATTRS = (
    "model",
    "backend",
    "method",
    "seed",
    "settings",
    "priors",
    "compile_time_s",
    "run_time_s",
    "versions",
    "run_id",
)
STATS = ("diverging", "tree_depth", "n_steps", "energy", "acceptance_rate", "step_size", "lp")


@pytest.fixture(scope="module", params=COMBINATIONS, ids=IDS)
def combination(request, tiny_fit, tiny_data):
    """One tiny fit per combination. Module scope makes pytest run the tests of one combination
    one after another, so ``pytest -n 2`` hands a combination's tests to one worker, which fits it
    once, instead of every worker fitting every combination."""
    model, backend, method = request.param
    return model, backend, method, tiny_fit(model, backend, method), tiny_data[model]


def test_posterior_has_public_names_dims_and_coords(combination):
    model, _, method, idata, data = combination
    spec = MODELS[model]
    posterior = idata.posterior
    assert set(posterior.data_vars) == set(spec.public_names)
    n_chains = 1 if method == "advi" else 2
    for name, dims in spec.dims().items():
        assert posterior[name].dims == ("chain", "draw", *dims)
        assert posterior[name].shape[:2] == (n_chains, 200)
        assert posterior[name].dtype == np.float64
        assert np.all(np.isfinite(posterior[name].values))
    assert list(posterior.coef.values) == list(data.coef_names)
    if spec.hierarchical:
        assert list(posterior.group.values) == list(data.group_labels)
    for internal in spec.internal:
        assert internal not in posterior


def test_derived_quantities_follow_the_precisions(combination):
    _, _, _, idata, _ = combination
    posterior = idata.posterior
    for suffix in ("e", "u"):
        if f"tau_{suffix}" in posterior:
            tau = posterior[f"tau_{suffix}"].values
            np.testing.assert_allclose(posterior[f"sigma_{suffix}"].values, tau**-0.5)
            np.testing.assert_allclose(posterior[f"sigma2_{suffix}"].values, 1.0 / tau)


def test_attrs_and_groups(combination):
    model, backend, method, idata, data = combination
    attrs = idata.posterior.attrs
    for key in ATTRS:
        assert key in attrs, key
    assert (attrs["model"], attrs["backend"], attrs["method"]) == (model, backend, method)
    assert attrs["compile_time_s"] >= 0 and attrs["run_time_s"] > 0
    assert json.loads(attrs["settings"])["num_draws"] == 200
    np.testing.assert_array_equal(idata.observed_data.y.values, data.y)
    np.testing.assert_array_equal(idata.constant_data.X.values, data.X)
    if method == "advi":
        assert "sample_stats" not in idata.groups()
        loss = idata.vi_trace.loss.values
        assert loss.size == attrs["vi_steps"] and 400 <= loss.size <= 1_200
        assert attrs["vi_averaged_steps"] == 200
        assert np.all(np.isfinite(loss))
        assert loss[-100:].mean() < loss[:100].mean()
    else:
        assert "vi_trace" not in idata.groups()
        for name in STATS:
            assert idata.sample_stats[name].dims == ("chain", "draw"), name
        assert idata.sample_stats.diverging.dtype == bool
        assert np.all(idata.sample_stats.tree_depth.values >= 1)


def test_netcdf_round_trip_keeps_everything(combination, tmp_path, netcdf_layout):
    _, _, _, idata, _ = combination
    path = tmp_path / "fit.nc"
    idata.to_netcdf(str(path))
    # the study's writer writes what ArviZ writes (uncompressed, as the study writes)
    write_fit(idata, tmp_path / "ours.nc")
    idata.to_netcdf(str(tmp_path / "theirs.nc"), compress=False)
    assert netcdf_layout(tmp_path / "ours.nc") == netcdf_layout(tmp_path / "theirs.nc")
    back = az.from_netcdf(str(path))
    assert set(back.groups()) == set(idata.groups())
    for group in idata.groups():
        original, loaded = idata[group], back[group]
        assert loaded.attrs == original.attrs
        assert set(loaded.data_vars) == set(original.data_vars)
        for name in original.data_vars:
            np.testing.assert_array_equal(loaded[name].values, original[name].values)
            assert loaded[name].dims == original[name].dims
        for name in original.coords:
            np.testing.assert_array_equal(loaded[name].values, original[name].values)


def test_same_seed_gives_identical_draws_without_recompiling(combination, tiny_settings):
    model, backend, method, idata, data = combination
    settings = tiny_settings[method]
    again = fit(model, data, backend=backend, method=method, settings=settings, seed=0)
    for name in idata.posterior.data_vars:
        np.testing.assert_array_equal(again.posterior[name].values, idata.posterior[name].values)
    if backend == "numpyro" or method == "advi":
        assert again.posterior.attrs["compile_time_s"] == 0.0
    assert again.posterior.attrs["run_id"] != idata.posterior.attrs["run_id"]


@pytest.mark.parametrize("backend", ["numpyro", "pymc"])
@pytest.mark.parametrize("method", ["advi", "nuts"])
def test_another_seed_gives_other_draws(backend, method, tiny_fit, tiny_data, tiny_settings):
    idata = tiny_fit("random_intercept", backend, method)
    other = fit(
        "random_intercept",
        tiny_data["random_intercept"],
        backend=backend,
        method=method,
        settings=tiny_settings[method],
        seed=1,
    )
    assert not np.array_equal(other.posterior.beta.values, idata.posterior.beta.values)
