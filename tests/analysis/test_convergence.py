"""`analysis.convergence` gives ArviZ's R-hat and ESS, for every quantity at once."""

import warnings

import arviz as az
import numpy as np
import pytest

from analysis.convergence import ess, rhat


def _ar1(rng, chains, draws, quantities, phi, offsets=0.0):
    """AR(1) chains with autocorrelation ``phi`` (negative: antithetic) per quantity."""
    x = np.empty((chains, draws, quantities))
    x[:, 0] = rng.normal(size=(chains, quantities))
    noise = rng.normal(size=(chains, draws, quantities))
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x + offsets


def _cases():
    rng = np.random.default_rng(11)
    phis = np.array([-0.9, -0.5, 0.0, 0.3, 0.8, 0.95, 0.995])
    yield "ar1", _ar1(rng, 4, 1000, 7, phis)
    yield "odd draws, 2 chains", _ar1(rng, 2, 301, 7, phis)
    yield "short chains", _ar1(rng, 3, 7, 7, phis)
    yield "one chain", _ar1(rng, 1, 500, 7, phis)
    yield "stuck chain", _ar1(rng, 4, 400, 7, phis, offsets=np.array([0, 0, 0, 3.0])[:, None, None])
    ties = rng.poisson(1.0, size=(4, 200, 3)).astype(float)  # ranks with ties
    ties[..., 2] = 5.0  # a constant
    yield "ties and a constant", ties
    degenerate = np.round(_ar1(rng, 2, 4, 40, np.full(40, 0.5)) / 3)  # inf and NaN R-hats
    yield "2 x 4 draws, nearly constant", degenerate
    with_nan = _ar1(rng, 4, 100, 3, np.array([0.2, 0.5, 0.9]))
    with_nan[1, 7, 1] = np.nan
    yield "a NaN", with_nan


def _arviz(x, function, **kwargs):
    """ArviZ, one quantity at a time (as `az.rhat`/`az.ess` of a Dataset do)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # R-hat of a constant: 0 / 0
        return np.array([float(function(x[..., k], **kwargs)) for k in range(x.shape[-1])])


@pytest.mark.parametrize("name, draws", list(_cases()), ids=[name for name, _ in _cases()])
def test_rhat_and_ess_are_arviz_numbers(name, draws):
    expected = {
        "ess_bulk": _arviz(draws, az.ess, method="bulk"),
        "ess_tail": _arviz(draws, az.ess, method="tail"),
        "ess_mean": _arviz(draws, az.ess, method="mean"),
    }
    if draws.shape[0] > 1:
        expected["rhat"] = _arviz(draws, az.rhat)
    ours = {
        "ess_bulk": ess(draws, "bulk"),
        "ess_tail": ess(draws, "tail"),
        "ess_mean": ess(draws, "mean"),
        "rhat": rhat(draws),
    }
    for key, values in expected.items():
        np.testing.assert_allclose(ours[key], values, rtol=1e-10, atol=0, err_msg=key)
    if draws.shape[0] == 1:
        assert np.isnan(ours["rhat"]).all()


def test_quantity_axes_keep_their_shape_and_bad_input_is_named():
    rng = np.random.default_rng(3)
    draws = rng.normal(size=(2, 50, 3, 4))
    assert ess(draws).shape == (3, 4) and rhat(draws).shape == (3, 4)
    assert ess(draws[..., 0, 0]).shape == ()
    with pytest.raises(ValueError, match="method"):
        ess(draws, "median")
    with pytest.raises(ValueError, match=r"draws: expected shape \(chain, draw"):
        ess(np.zeros(10))
