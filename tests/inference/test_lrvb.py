"""LRVB: exact for a Gaussian target; three Hessian paths that agree; the closed-form objective is
CAVI's own ELBO; on M0 and M3 at Q = 50 the corrected SDs meet the MCMC ones; the ``+lrvb``
entries keep the contract.

Statistical assertions carry the Monte-Carlo error of the reference: the SE of a posterior SD
from draws is ``sd sqrt((kurtosis - 1) / (4 ESS_sd))``; LRVB's SDs are closed form (SE 0).
"""

from __future__ import annotations

import json
import math

import arviz as az
import jax.numpy as jnp
import numpy as np
import pytest

from inference import FAMILIES, REGISTRY, fit, lookup, parse_label
from inference import lr_solver as solver
from inference.log_density import expected_log_joint, model_terms
from inference.lrvb import (
    analytic_moments,
    constrained_draws,
    linear_response,
    lrvb_dataset,
    start_of,
)
from models import MODELS, simulate

N_SE = 3.0
EXACT = 1e-6


def jax_terms(spec, data) -> dict:
    return {k: jnp.asarray(v) for k, v in model_terms(spec, data).items()}


def sd_and_se(draws: np.ndarray) -> tuple[float, float]:
    """SD of ``(chain, draw)`` draws and its Monte-Carlo standard error."""
    sd = float(draws.std())
    kurtosis = float(np.mean((draws - draws.mean()) ** 4) / sd**4)
    return sd, sd * math.sqrt((kurtosis - 1.0) / (4.0 * float(az.ess(draws, method="sd"))))


# --- exact for a Gaussian target -------------------------------------------------------------


def fixed_precisions(model: str, priors, taus: dict[str, float]):
    """The model's expected log joint with its precisions fixed: a Gaussian target."""

    def expected(moments, terms):
        fixed = {f"{k}_mean": v for k, v in taus.items()} | {
            f"{k}_log": math.log(v) for k, v in taus.items()
        }
        return expected_log_joint(
            model, moments | fixed, terms, priors, space="constrained", xp=jnp
        )

    return expected


def exact_gaussian_posterior(model: str, data, priors, taus) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``(beta, u) | tau, y``."""
    if model == "linear":
        precision = taus["tau_e"] * (data.X.T @ data.X + priors.beta_precision * np.eye(3))
        shift = taus["tau_e"] * (data.X.T @ data.y + priors.beta_precision * priors.beta_mean)
    else:
        D = np.column_stack([data.X, np.eye(data.n_groups)[data.group]])
        prior = np.r_[
            np.full(data.n_coef, priors.beta_sd**-2), np.full(data.n_groups, taus["tau_u"])
        ]
        precision = taus["tau_e"] * D.T @ D + np.diag(prior)
        shift = taus["tau_e"] * D.T @ data.y
        shift[: data.n_coef] += priors.beta_mean / priors.beta_sd**2
    cov = np.linalg.inv(precision)
    return cov @ shift, cov


@pytest.mark.parametrize(
    ("model", "beta_cov", "conditional"),
    [
        ("linear", "diag", False),
        ("random_intercept", "dense", True),
    ],
)
def test_lrvb_is_the_exact_covariance_of_a_gaussian_target(model, beta_cov, conditional):
    """Linear regression with tau_e fixed, and M0 given both precisions: ``Sigma_LR`` equals
    the exact posterior covariance (to 1e-6; measured ~1e-15), from a poor start."""
    spec = MODELS[model]
    data, _ = simulate(model, n_groups=7, n_per_group=6, seed=5)
    priors = spec.priors()
    taus = {"tau_e": 2.0} if model == "linear" else {"tau_e": 2.0, "tau_u": 0.7}
    q = data.n_groups if model != "linear" else 0
    problem = solver.Problem(
        f"{model}|tau",
        data.n_coef,
        q,
        "u" if q else None,
        (),
        beta_cov=beta_cov,
        conditional=conditional,
        expected=fixed_precisions(model, priors, taus),
    )
    slope = np.zeros((q, data.n_coef)) if conditional else None
    start = solver.pack(
        problem, np.zeros(3), np.eye(3), np.zeros((0, 2)), np.zeros(q), np.ones(q), slope
    )
    lr = solver.solve(problem, start, jax_terms(spec, data))
    mean, cov = exact_gaussian_posterior(model, data, priors, taus)
    np.testing.assert_allclose(lr.covariance(), cov, rtol=0, atol=EXACT * np.abs(cov).max())
    np.testing.assert_allclose(lr.loc, mean, rtol=0, atol=EXACT)
    assert lr.grad_norm < 1e-8


# --- the objective is CAVI's, and three Hessian paths agree ------------------------------------


@pytest.fixture(scope="module")
def cavi_fits():
    """CAVI of each family on small data of each model it fits."""
    out = {}
    for model in ("linear", "random_intercept", "logistic_random_intercept"):
        data, _ = simulate(model, n_groups=6, n_per_group=8, seed=6)
        for family in ("mean_field", "block"):
            out[model, family] = (
                data,
                fit(model, data, backend="conjugate", method="cavi", family=family, seed=1),
            )
    return out


@pytest.mark.parametrize("model", ["linear", "random_intercept", "logistic_random_intercept"])
@pytest.mark.parametrize("family", ["mean_field", "block"])
def test_objective_at_the_cavi_optimum_is_its_elbo(cavi_fits, model, family):
    """Minus the closed-form objective at CAVI's q is CAVI's ELBO (the Pólya-Gamma one for M3:
    the Jaakkola-Jordan bound at its optimal ``q(omega)``), so LRVB corrects CAVI's own fit."""
    data, idata = cavi_fits[model, family]
    spec = MODELS[model]
    problem, eta = start_of(idata.variational, spec, data, spec.priors())
    value = solver.negative_elbo(problem, eta, model_terms(spec, data), xp=np)
    np.testing.assert_allclose(-value, idata.posterior.attrs["cavi_elbo"], rtol=1e-10)


def test_structured_dense_and_cg_paths_agree(cavi_fits):
    """Block CAVI of M0 (dense beta, ``u | beta``, Gamma precisions; CAVI's q is stationary up to
    its tolerance, Newton moves it by < 1e-4): the arrow Hessian from coloured HVPs is
    ``jax.hessian``'s, and the structured, dense and conjugate-gradient linear responses agree
    (relative 1e-8)."""
    data, idata = cavi_fits["random_intercept", "block"]
    spec = MODELS["random_intercept"]
    terms = jax_terms(spec, data)
    problem, eta = start_of(idata.variational, spec, data, spec.priors())
    point = solver.stationary_point(problem, eta, terms)
    assert point.steps <= 2
    np.testing.assert_allclose(point.eta, eta, atol=1e-4)
    dense_h = solver.dense_hessian(problem, point.eta, terms)
    np.testing.assert_allclose(point.hessian.dense(), dense_h, rtol=1e-9, atol=1e-9)
    structured = solver.solve(problem, point.eta, terms).covariance()
    dense = solver.solve(problem, point.eta, terms, hessian="dense").covariance()
    columns = [0, 3, structured.shape[0] - 1]
    cg, _ = solver.response_columns_cg(problem, point.eta, terms, columns, tol=1e-12)
    scale = np.abs(structured).max()
    np.testing.assert_allclose(dense, structured, rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(cg, structured[:, columns], rtol=0, atol=1e-8 * scale)


# --- against MCMC at Q = 50 ------------------------------------------------------------------


@pytest.fixture(scope="module")
def m0_q50():
    """M0, Q = 50 groups of 20 rows: NUTS (dense mass matrix), short mean-field ADVI (the
    correction re-optimises it) and mean-field CAVI."""
    data, _ = simulate("random_intercept", n_groups=50, n_per_group=20, seed=3)
    nuts = fit(
        "random_intercept",
        data,
        backend="numpyro",
        method="nuts",
        settings={"dense_mass": True, "num_chains": 2, "num_warmup": 300},
        seed=1,
    )
    advi_settings = {"max_steps": 1_000, "min_steps": 1_000, "window": 250, "num_draws": 200}
    advi = fit(
        "random_intercept", data, backend="numpyro", method="advi", settings=advi_settings, seed=1
    )
    cavi = fit("random_intercept", data, backend="conjugate", method="cavi", seed=1)
    return data, nuts, {"advi": advi, "cavi": cavi}


def lrvb_sds(lr) -> dict[str, float]:
    moments = analytic_moments(lr)
    return {"beta_0": moments["beta"]["sd"][0], "tau_u": moments["tau_u"]["sd"]}


@pytest.mark.parametrize("base", ["advi", "cavi"])
def test_lrvb_repairs_the_mean_field_sds_of_m0_at_q50(m0_q50, base):
    """LRVB/NUTS SD ratios of beta_0 and tau_u in [0.9, 1.1] (measured: 0.97 and 1.05 from
    both bases) where mean-field gives ~0.27 and ~0.95."""
    data, nuts, fits = m0_q50
    spec = MODELS["random_intercept"]
    lr = linear_response(fits[base], spec, data, spec.priors())
    assert lr.grad_norm < 1e-6
    reference = {
        "beta_0": sd_and_se(nuts.posterior.beta.values[:, :, 0]),
        "tau_u": sd_and_se(nuts.posterior.tau_u.values),
    }
    for name, sd in lrvb_sds(lr).items():
        ref, se = reference[name]
        slack = N_SE * se / ref
        assert 0.9 - slack <= sd / ref <= 1.1 + slack, (name, sd / ref)
    mean_field = float(fits["cavi"].posterior.beta.values[..., 0].std())
    assert mean_field / reference["beta_0"][0] < 0.4


def test_lrvb_moves_the_beta_sds_of_m3_at_q50_towards_mcmc():
    """M3, Q = 50 groups of 20 rows, Pólya-Gamma CAVI against Gibbs: every beta SD ratio of
    LRVB is closer to 1 than mean-field's (measured: ~0.9 against ~0.5)."""
    spec = MODELS["logistic_random_intercept"]
    data, _ = simulate(spec.name, n_groups=50, n_per_group=20, seed=3)
    settings = {"num_burnin": 500, "num_draws": 1_000}
    gibbs = fit(spec.name, data, backend="conjugate", method="gibbs", settings=settings, seed=1)
    cavi = fit(spec.name, data, backend="conjugate", method="cavi", seed=1)
    lr = linear_response(cavi, spec, data, spec.priors())
    mean_field = json.loads(cavi.posterior.attrs["analytic_moments"])["beta"]["sd"]
    corrected = analytic_moments(lr)["beta"]["sd"]
    for k in range(data.n_coef):
        ref, se = sd_and_se(gibbs.posterior.beta.values[:, :, k])
        slack = N_SE * se / ref
        assert abs(corrected[k] / ref - 1.0) + slack < abs(mean_field[k] / ref - 1.0), k


# --- the +lrvb entries ------------------------------------------------------------------------


def test_registry_offers_lrvb_variants_of_mean_field_and_block() -> None:
    assert "mean_field+lrvb" not in FAMILIES
    for (backend, method, family), entry in REGISTRY.items():
        if family and family.endswith("+lrvb"):
            base = lookup(backend, method, family.removesuffix("+lrvb"))
            assert entry.role == "vb" and entry.settings is base.settings
            assert entry.models == base.models
    entry = parse_label("numpyro/advi:mean_field+lrvb")
    assert entry.label == "numpyro/advi:mean_field+lrvb"
    labels = {e.label for e in REGISTRY.values()}
    assert {"pymc/advi:block+lrvb", "conjugate/cavi:block+lrvb"} <= labels


def test_corrected_fit_keeps_the_contract(m0_q50, tmp_path) -> None:
    data, _, fits = m0_q50
    base = fits["cavi"]
    settings = {"num_draws": 4_000}
    idata = fit(
        "random_intercept",
        data,
        backend="conjugate",
        method="cavi",
        family="mean_field+lrvb",
        settings=settings,
        seed=1,
    )
    attrs = idata.posterior.attrs
    assert attrs["label"] == "conjugate/cavi:mean_field+lrvb" and attrs["role"] == "vb"
    assert attrs["lrvb_base_label"] == "conjugate/cavi:mean_field"
    assert attrs["lrvb_grad_norm"] < 1e-6 and attrs["lrvb_seconds"] > 0
    assert np.isfinite(attrs["psis_khat"])
    assert set(idata.posterior.data_vars) == set(MODELS["random_intercept"].public_names)
    np.testing.assert_array_equal(idata.vi_trace.loss.values, base.vi_trace.loss.values)
    var = idata.variational
    cov = var["lrvb_cov"].values
    np.testing.assert_allclose(cov, cov.T)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), var["lrvb_sd"].values)
    assert list(var["lrvb_latent"].values[:4]) == ["beta[0]", "beta[1]", "beta[2]", "u[0]"]
    moments = json.loads(attrs["analytic_moments"])
    for name in ("beta", "tau_u", "sigma_e"):
        draws = idata.posterior[name].values
        sd = np.asarray(moments[name]["sd"])
        assert np.all(np.abs(draws.std(axis=(0, 1)) / sd - 1.0) < 0.1), name
    path = tmp_path / "lrvb.nc"
    idata.to_netcdf(path)
    stored = az.from_netcdf(path)
    np.testing.assert_array_equal(stored.variational["lrvb_cov"].values, cov)
    assert stored.posterior.attrs["family"] == "mean_field+lrvb"


def test_non_centred_draws_and_the_factored_layout(m0_q50, monkeypatch) -> None:
    """``u = z exp(-zeta_u / 2)`` for M2's latents; a large problem keeps ``diag + F F'``."""
    data, _, fits = m0_q50
    idata = fits["cavi"]
    spec = MODELS["random_intercept"]
    lr = linear_response(idata, spec, data, spec.priors())
    renamed = type(lr)(
        labels=[label.replace("u[", "z[") for label in lr.labels],
        sites=[("z" if name == "u" else name, size) for name, size in lr.sites],
        loc=lr.loc,
        diag=lr.diag,
        factor=lr.factor,
        grad_norm=lr.grad_norm,
        newton_steps=lr.newton_steps,
    )
    centred = constrained_draws(lr, np.random.default_rng(0), 10)
    non_centred = constrained_draws(renamed, np.random.default_rng(0), 10)
    expected = centred["u"] / np.sqrt(centred["tau_u"])[..., None]
    np.testing.assert_allclose(non_centred["u"], expected)
    monkeypatch.setattr("inference.lrvb.DENSE_COVARIANCE_MAX", 50)
    group = lrvb_dataset(lr, "mean_field+lrvb")
    assert "lrvb_cov" not in group
    factor, diag = group["lrvb_factor"].values, group["lrvb_diag"].values
    np.testing.assert_allclose(np.diag(diag) + factor @ factor.T, lr.covariance())
