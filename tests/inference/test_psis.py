"""PSIS k̂ of VB fits: small when q is the posterior, large for mean-field ADVI with few groups,
stamped by ``fit`` on every group of every VB fit (and only those), kept through NetCDF."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
from scipy import special

from inference import fit
from inference.psis import PSIS_DRAWS, psis_khat, stamp_psis
from inference.vi import DenseFactor, gaussian_variational
from models import MODELS, simulate


@pytest.fixture(scope="module")
def small_q_advi():
    """Mean-field ADVI (NumPyro) of M0 with Q = 5 groups of 20 rows."""
    data, _ = simulate("random_intercept", n_groups=5, n_per_group=20, seed=1)
    settings = {"max_steps": 3_000, "min_steps": 3_000, "window": 500, "num_draws": 200}
    idata = fit(
        "random_intercept", data, backend="numpyro", method="advi", settings=settings, seed=1
    )
    return data, idata


def exact_linear_q(data, priors):
    """The Normal-Gamma posterior of M1 as a Gaussian over ``(beta, log tau_e)`` with its exact
    moments (``Cov(beta, log tau_e) = 0``), in the full-rank ADVI layout."""
    X, y, lam0, m0 = data.X, data.y, priors.beta_precision, priors.beta_mean
    n, p = X.shape
    precision = X.T @ X + lam0 * np.eye(p)
    mean = np.linalg.solve(precision, X.T @ y + lam0 * m0)
    shape = priors.a_e + (n + p) / 2
    rate = priors.b_e + 0.5 * (y @ y + lam0 * m0**2 * p - mean @ precision @ mean)
    cov = np.zeros((p + 1, p + 1))
    cov[:p, :p] = rate / (shape - 1) * np.linalg.inv(precision)
    cov[p, p] = special.polygamma(1, shape)
    loc = np.r_[mean, special.digamma(shape) - np.log(rate)]
    factor = DenseFactor((("beta", p), ("tau_e", 1)), loc, np.linalg.cholesky(cov))
    return gaussian_variational(
        family="full_rank",
        diagonal={},
        dense={"block": factor},
        transforms={"beta": "identity", "tau_e": "log"},
    )


def test_khat_is_small_when_q_is_the_posterior() -> None:
    """M1 with n = 2,000: its posterior is Gaussian in (beta, log tau_e) up to a Student-t
    tail with ~2,000 degrees of freedom; q with its exact moments gives k̂ ≈ 0.3 < 0.5."""
    spec = MODELS["linear"]
    data, _ = simulate("linear", n_obs=2_000, seed=1)
    variational = exact_linear_q(data, spec.priors())
    khat, log_weights = psis_khat(variational, spec, data, spec.priors(), num_draws=20_000)
    assert khat < 0.5
    assert log_weights.std() < 0.1


def test_khat_is_large_for_mean_field_advi_with_few_groups(small_q_advi) -> None:
    """M0, Q = 5 groups of 20 rows: q misses the intercept's dependence on the random
    intercepts and the skew of tau_u; k̂ > 0.7 (with 20,000 draws: ~0.9)."""
    data, idata = small_q_advi
    spec = MODELS["random_intercept"]
    khat, _ = psis_khat(idata.variational, spec, data, spec.priors(), num_draws=20_000)
    assert khat > 0.7


def test_fit_stamps_khat_on_every_group_and_it_survives_netcdf(small_q_advi, tmp_path) -> None:
    data, idata = small_q_advi
    spec = MODELS["random_intercept"]
    expected, _ = psis_khat(idata.variational, spec, data, spec.priors(), seed=1)
    for group in idata.groups():
        assert idata[group].attrs["psis_khat"] == expected
        assert idata[group].attrs["psis_draws"] == PSIS_DRAWS
    path = tmp_path / "fit.nc"
    idata.to_netcdf(path)
    stored = az.from_netcdf(path)
    assert stored.posterior.attrs["psis_khat"] == expected
    assert stored.variational.attrs["psis_khat"] == expected


@pytest.mark.parametrize("family", ["mean_field", "block"])
def test_cavi_fits_get_khat_in_the_constrained_space(family: str) -> None:
    data, _ = simulate("random_intercept", n_groups=8, n_per_group=20, seed=2)
    idata = fit("random_intercept", data, backend="conjugate", method="cavi", family=family, seed=3)
    assert 0.0 < idata.posterior.attrs["psis_khat"] < 2.0
    assert idata.vi_trace.attrs["psis_khat"] == idata.posterior.attrs["psis_khat"]


def test_samplers_and_exact_posteriors_get_no_khat() -> None:
    data, _ = simulate("linear", n_obs=50, seed=2)
    idata = fit("linear", data, backend="conjugate", method="exact", settings={"num_draws": 50})
    assert "psis_khat" not in idata.posterior.attrs


def test_khat_is_reproducible_and_its_draws_are_their_own(small_q_advi) -> None:
    data, idata = small_q_advi
    spec = MODELS["random_intercept"]
    first = psis_khat(idata.variational, spec, data, spec.priors(), seed=4)
    again = psis_khat(idata.variational, spec, data, spec.priors(), seed=4)
    other = psis_khat(idata.variational, spec, data, spec.priors(), seed=5)
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_a_q_that_cannot_be_weighed_gets_nan_and_a_log_line(small_q_advi, caplog) -> None:
    data, idata = small_q_advi
    spec = MODELS["random_intercept"]
    broken = idata.copy()
    broken.variational.attrs["layout"] = "lrvb"
    broken.variational.attrs["sites"] = "[]"
    assert np.isnan(stamp_psis(broken, spec, data, spec.priors()))
    assert "not computed" in caplog.text
