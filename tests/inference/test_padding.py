"""Padded data leave the posterior of the real parameters as it was (inference.ppl.padding)."""

import numpy as np
import pytest

from inference import fit
from models import MODELS, simulate

HIERARCHICAL = ["random_intercept", "random_intercept_nc", "logistic_random_intercept"]


@pytest.mark.parametrize("model", HIERARCHICAL)
def test_padded_joint_density_is_the_real_one_times_n01_of_the_padded_effects(model):
    """log p_padded(theta, theta_pad) = log p(theta) + sum log N(theta_pad; 0, 1), to rounding."""
    import jax.numpy as jnp
    from jax.scipy.stats import norm
    from numpyro.infer.util import log_density

    from inference.ppl.padding import padded_arrays, padded_model, padding_of

    spec = MODELS[model]
    data, _ = simulate(model, n_groups=7, n_obs=90, seed=3)
    padding = padding_of(data)
    assert padding.shape == (128, 16)
    rng = np.random.default_rng(0)
    group_site = "z" if "z" in spec.internal else "u"
    real = {"beta": rng.normal(size=3), group_site: rng.normal(size=7), "tau_u": 1.7}
    if spec.likelihood == "gaussian":
        real["tau_e"] = 0.8
    pad = rng.normal(size=9)
    padded_params = {**real, group_site: np.concatenate([real[group_site], pad])}

    real_args = (jnp.asarray(data.X), jnp.asarray(data.group), jnp.asarray(data.y))
    real_model = spec.numpyro_model()
    unpadded, _ = log_density(
        lambda X, group, y: real_model(X, group, 7, y, priors=spec.priors()),
        real_args,
        {},
        real,
    )
    model_fn = padded_model(spec.numpyro_model(), padding.padded_groups, spec.priors())
    padded, _ = log_density(model_fn, padded_arrays(data, padding), {}, padded_params)
    expected = float(unpadded) + float(norm.logpdf(pad).sum())
    np.testing.assert_allclose(float(padded), expected, rtol=1e-12, atol=1e-9)


def test_dense_factor_is_cut_to_the_real_marginal():
    from inference.ppl.padding import Padding, trim_dense

    rng = np.random.default_rng(1)
    sites = (("beta", 2), ("u", 5))
    A = rng.normal(size=(7, 7))
    scale_tril = np.linalg.cholesky(A @ A.T + 7 * np.eye(7))
    loc = rng.normal(size=7)
    kept, trimmed_loc, trimmed_tril = trim_dense(
        sites, loc, scale_tril, {"u"}, Padding(n_obs=10, n_groups=3, padded_obs=16, padded_groups=5)
    )
    keep = [0, 1, 2, 3, 4]
    assert kept == (("beta", 2), ("u", 3))
    np.testing.assert_array_equal(trimmed_loc, loc[keep])
    covariance = scale_tril @ scale_tril.T
    np.testing.assert_allclose(trimmed_tril @ trimmed_tril.T, covariance[np.ix_(keep, keep)])


@pytest.mark.parametrize("family", ["mean_field", "block"])
def test_padded_and_unpadded_advi_agree(family):
    """Q = 10 groups padded to 16: the same optimum (the draws differ by the random stream)."""
    data, _ = simulate("random_intercept", n_groups=10, n_obs=300, seed=4)
    fits = {
        pad: fit(
            "random_intercept",
            data,
            backend="numpyro",
            method="advi",
            family=family,
            settings={"pad_shapes": pad},
            seed=2,
        )
        for pad in (True, False)
    }
    padded, unpadded = (fits[pad] for pad in (True, False))
    assert padded.posterior.u.shape == unpadded.posterior.u.shape
    assert dict(padded.variational.sizes) == dict(unpadded.variational.sizes)
    for name in ("beta", "u", "tau_u", "tau_e"):
        sd_padded = padded.posterior[name].std(("chain", "draw")).values
        sd_unpadded = unpadded.posterior[name].std(("chain", "draw")).values
        np.testing.assert_allclose(sd_padded, sd_unpadded, rtol=0.05, err_msg=name)


def test_data_that_fill_a_padded_shape_exactly_do_not_share_its_padded_program():
    """128 rows in 16 groups need no padding (no masks): a later fit of 100 rows in 5 groups,
    padded to the same shape, used to get that program and fail on its masks."""
    tiny = {"max_steps": 200, "min_steps": 100, "window": 50, "num_draws": 20, "average_steps": 50}
    exact, _ = simulate("random_intercept", n_groups=16, n_obs=128, seed=1)
    padded, _ = simulate("random_intercept", n_groups=5, n_obs=100, seed=1)
    for data in (exact, padded, exact):
        idata = fit(
            "random_intercept", data, backend="numpyro", method="advi", settings=tiny, seed=1
        )
        assert idata.posterior.u.shape == (1, 20, data.n_groups)


# --- PyMC: groups padded, rows as they come (the step function takes any number of rows) ------


@pytest.mark.parametrize("model", HIERARCHICAL)
def test_padded_pymc_density_is_the_real_one_times_n01_of_the_padded_effects(model):
    """The same identity for PyMC's padded model (`pymc_engine._mask_padded_groups`), in the
    unconstrained space ADVI works in (log-precisions)."""
    from dataclasses import replace

    from scipy.stats import norm

    from inference.ppl.pymc_engine import _mask_padded_groups, _set_data

    spec = MODELS[model]
    data, _ = simulate(model, n_groups=7, n_obs=90, seed=3)
    real_model = spec.pymc_builder()(data, spec.priors())
    padded_model = spec.pymc_builder()(replace(data, n_groups=16, group_labels=()), spec.priors())
    _mask_padded_groups(padded_model)
    _set_data(padded_model, data)

    rng = np.random.default_rng(0)
    group_site = "z" if "z" in spec.internal else "u"
    pad = rng.normal(size=9)
    padded_point = {
        name: rng.normal(size=np.shape(value))
        for name, value in padded_model.initial_point().items()
    }
    real_point = {**padded_point, group_site: padded_point[group_site][:7]}
    padded_point[group_site][7:] = pad

    def logp(pymc_model, point):
        return float(pymc_model.compile_logp(mode="FAST_COMPILE")(point))

    expected = logp(real_model, real_point) + float(norm.logpdf(pad).sum())
    np.testing.assert_allclose(logp(padded_model, padded_point), expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("family", ["mean_field", "block"])
def test_padded_pymc_advi_finds_the_unpadded_optimum(family):
    """Q = 10 groups padded to 16: q of the real parameters is the unpadded one, as close to it
    as two unpadded fits with other seeds (Adam's noise) are to each other."""
    data, _ = simulate("random_intercept", n_groups=10, n_obs=300, seed=4)

    def q(pad, seed):
        idata = fit(
            "random_intercept",
            data,
            backend="pymc",
            method="advi",
            family=family,
            settings={"pad_shapes": pad},
            seed=seed,
        )
        assert idata.posterior.u.shape[-1] == 10
        variational = idata.variational
        return np.concatenate([variational[name].values.ravel() for name in sorted(variational)])

    unpadded, restart, padded = q(False, 2), q(False, 3), q(True, 2)
    assert padded.shape == unpadded.shape
    spread = np.max(np.abs(restart - unpadded))
    assert 0 < spread < 0.05
    assert np.max(np.abs(padded - unpadded)) <= 2 * spread


def test_one_pymc_advi_program_serves_fewer_groups_and_any_rows(monkeypatch):
    """16 groups (128 rows), 5 groups (100 rows) and 5 groups (60 rows) share one program, and
    the last fit's draws are those of a program built for it alone."""
    from inference.ppl import pymc_engine
    from inference.ppl.programs import ProgramCache

    tiny = {"max_steps": 200, "min_steps": 100, "window": 50, "num_draws": 20, "average_steps": 50}
    full, _ = simulate("random_intercept", n_groups=16, n_obs=128, seed=1)
    fewer, _ = simulate("random_intercept", n_groups=5, n_obs=100, seed=1)
    shorter, _ = simulate("random_intercept", n_groups=5, n_obs=60, seed=2)

    def fit_pymc(data):
        return fit("random_intercept", data, backend="pymc", method="advi", settings=tiny, seed=1)

    monkeypatch.setattr(pymc_engine, "_PROGRAMS", ProgramCache())
    compile_times = []
    for data in (full, fewer, shorter):
        idata = fit_pymc(data)
        assert idata.posterior.u.shape == (1, 20, data.n_groups)
        assert idata.variational.u_loc.shape == (data.n_groups,)
        compile_times.append(idata.posterior.attrs["compile_time_s"])
    assert compile_times[0] > 0 and compile_times[1:] == [0.0, 0.0]

    monkeypatch.setattr(pymc_engine, "_PROGRAMS", ProgramCache())
    alone = fit_pymc(shorter)
    assert alone.posterior.attrs["compile_time_s"] > 0
    for name in ("beta", "u", "tau_e", "tau_u"):
        np.testing.assert_array_equal(alone.posterior[name].values, idata.posterior[name].values)
