"""``inference.log_density``: the NumPy log joints equal NumPyro's (constants included, both
spaces), and the closed-form expected log joint equals the Monte-Carlo mean of the pointwise one."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density, potential_energy

from inference.log_density import expected_log_joint, latent_sites, log_joint, model_terms
from models import MODELS, simulate

N_SE = 5.0


def random_point(spec, data, rng: np.random.Generator, draws: int) -> dict[str, np.ndarray]:
    """Constrained values of every latent site: normal effects, Gamma precisions."""
    sizes = {"beta": data.n_coef, "u": data.n_groups, "z": data.n_groups}
    return {
        site: rng.gamma(2.0, 1.0, size=draws)
        if site.startswith("tau_")
        else rng.normal(size=(draws, sizes[site]))
        for site in latent_sites(spec)
    }


def numpyro_model(spec, data, priors):
    model_fn = spec.numpyro_model()

    def model(X, group, y=None):
        model_fn(X, group, data.n_groups, y, priors=priors)

    group = None if data.group is None else jnp.asarray(data.group)
    return model, (jnp.asarray(data.X), group, jnp.asarray(data.y))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_log_joint_equals_numpyro_in_both_spaces(name: str) -> None:
    """Constants included: ``log_density`` (constrained), ``-potential_energy`` (unconstrained,
    precisions as ``log tau``, Jacobian added); relative error below 1e-9 at random points."""
    spec = MODELS[name]
    data, _ = simulate(name, n_groups=4, n_per_group=5, seed=1)
    priors = spec.priors()
    model, args = numpyro_model(spec, data, priors)
    values = random_point(spec, data, np.random.default_rng(0), 4)
    unconstrained = {k: np.log(v) if k.startswith("tau_") else v for k, v in values.items()}
    ours = log_joint(name, values, data, priors)
    ours_unconstrained = log_joint(name, unconstrained, data, priors, space="unconstrained")
    for i in range(4):
        point = {k: v[i] for k, v in values.items()}
        expected = float(log_density(model, args, {}, point)[0])
        np.testing.assert_allclose(ours[i], expected, rtol=1e-9)
        point = {k: v[i] for k, v in unconstrained.items()}
        expected = -float(potential_energy(model, args, {}, point))
        np.testing.assert_allclose(ours_unconstrained[i], expected, rtol=1e-9)


def test_log_joint_keeps_leading_axes() -> None:
    spec = MODELS["logistic_random_intercept"]
    data, _ = simulate(spec.name, n_groups=3, n_per_group=4, seed=2)
    values = random_point(spec, data, np.random.default_rng(1), 6)
    chains = {k: v.reshape((2, 3) + v.shape[1:]) for k, v in values.items()}
    flat = log_joint(spec, values, data, spec.priors())
    np.testing.assert_allclose(log_joint(spec, chains, data, spec.priors()), flat.reshape(2, 3))


def gaussian_q(spec, data, rng: np.random.Generator) -> tuple[dict, dict]:
    """A random Gaussian q over the unconstrained latents (effects jointly Gaussian, log
    precisions independent) as closed-form moments and as a sampler's parameters."""
    p, q = data.n_coef, data.n_groups
    sites = latent_sites(spec)
    k = p + (q if len(sites) > 1 and sites[1] in ("u", "z") else 0)
    A = rng.normal(size=(k, k)) * 0.15
    cov = A @ A.T + 0.05 * np.eye(k)
    mean = rng.normal(size=k) * 0.5
    taus = {site: (rng.normal() * 0.3, 0.2 + 0.2 * rng.random()) for site in sites[1:]}
    taus = {site: value for site, value in taus.items() if site.startswith("tau_")}
    moments = {"beta_mean": mean[:p], "beta_cov": cov[:p, :p]}
    if k > p:
        moments |= {
            "local_mean": mean[p:],
            "local_var": np.diag(cov)[p:],
            "beta_local_cov": cov[:p, p:],
        }
    for site, (m, s) in taus.items():
        moments |= {f"{site}_mean": np.exp(m + s * s / 2), f"{site}_log": m}
        moments |= {
            f"{site}_inv_sqrt": np.exp(-m / 2 + s * s / 8),
            f"{site}_inv": np.exp(-m + s * s / 2),
        }
    return moments, {"mean": mean, "cov": cov, "taus": taus, "k": k}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_expected_log_joint_is_the_mean_of_the_log_joint(name: str) -> None:
    """``E_q log p`` (unconstrained, Jacobian included) against the mean over 40,000 draws of
    q, within 5 Monte-Carlo standard errors."""
    spec = MODELS[name]
    data, _ = simulate(name, n_groups=6, n_per_group=5, seed=3)
    priors = spec.priors()
    rng = np.random.default_rng(4)
    moments, q = gaussian_q(spec, data, rng)
    draws = 40_000
    effects = rng.multivariate_normal(q["mean"], q["cov"], size=draws)
    sites = latent_sites(spec)
    values = {"beta": effects[:, : data.n_coef]}
    if q["k"] > data.n_coef:
        values[sites[1]] = effects[:, data.n_coef :]
    for site, (m, s) in q["taus"].items():
        values[site] = m + s * rng.standard_normal(draws)
    pointwise = log_joint(name, values, data, priors, space="unconstrained")
    closed = expected_log_joint(name, moments, model_terms(spec, data), priors)
    se = pointwise.std() / np.sqrt(draws)
    assert abs(closed - pointwise.mean()) < N_SE * se, (closed, pointwise.mean(), se)


def test_jaakkola_jordan_bound_is_below_the_exact_expectation() -> None:
    spec = MODELS["logistic_random_intercept"]
    data, _ = simulate(spec.name, n_groups=6, n_per_group=5, seed=3)
    moments, _ = gaussian_q(spec, data, np.random.default_rng(5))
    terms = model_terms(spec, data)
    exact = expected_log_joint(spec, moments, terms, spec.priors())
    bound = expected_log_joint(spec, moments, terms, spec.priors(), bernoulli="jaakkola_jordan")
    assert bound < exact
