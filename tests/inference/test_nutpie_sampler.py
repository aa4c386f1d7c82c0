"""The log density nutpie samples (inference.ppl.nutpie_sampler): exact, shape-free, reparameterised
with its Jacobian."""

import numpy as np

from inference.ppl import nutpie_sampler
from inference.ppl.centring import intercept_column
from inference.ppl.pymc_engine import _resize
from inference.settings import NutsSettings
from models import MODELS, simulate

SPEC = MODELS["random_intercept"]


def _point(density, rng):
    layout = nutpie_sampler._layout(density)
    return layout.split(rng.normal(size=layout.n_dim))


def _model_logp(model, values, names):
    return float(model.compile_logp()(dict(zip(names, values, strict=True))))


def test_one_compiled_density_serves_every_shape():
    """Compiled at Q = 6, resized to Q = 9: the log density of a model built at Q = 9."""
    small, _ = simulate("random_intercept", n_groups=6, n_obs=60, seed=1)
    large, _ = simulate("random_intercept", n_groups=9, n_obs=81, seed=2)
    density = nutpie_sampler.compile_log_density(
        SPEC.pymc_builder()(small, SPEC.priors()), tuple(SPEC.parameters)
    )
    _resize(density, large, NutsSettings())
    values = _point(density, np.random.default_rng(0))
    value, grad = nutpie_sampler._bound(density.logp_dlogp)(*values)
    fresh = SPEC.pymc_builder()(large, SPEC.priors())
    expected = _model_logp(fresh, values, density.value_names)
    np.testing.assert_allclose(float(value), expected, rtol=1e-12)
    assert grad.shape == (sum(v.size for v in values),)


def test_per_group_centring_adds_the_log_jacobian_of_the_non_centred_groups():
    """log p(z) = log p_model(u) + sum over non-centred groups of log sigma_u, u = sigma_u z;
    a centred group's z is its u, or with the intercept weights set (``intercept_centring``) its
    own intercept beta_0 + u_j (a shear: no Jacobian). One compiled density serves both."""
    data, _ = simulate("random_intercept", n_groups=6, n_obs=60, seed=3)
    model = SPEC.pymc_builder()(data, SPEC.priors())
    density = nutpie_sampler.compile_log_density(
        model, tuple(SPEC.parameters), per_group_centring=True
    )
    centred = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    density.centred.set_value(centred)
    values = _point(density, np.random.default_rng(1))
    named = dict(zip(density.value_names, values, strict=True))
    sigma_u = np.exp(-0.5 * named["tau_u_log__"])
    intercept = intercept_column(data.X, xp=np)
    np.testing.assert_array_equal(intercept, [1.0, 0.0, 0.0])
    for weights, beta_0 in ((np.zeros(3), 0.0), (intercept, named["beta"][0])):
        density.intercept.set_value(weights)
        value, _ = nutpie_sampler._bound(density.logp_dlogp)(*values)
        u = np.where(centred == 1.0, named["u"] - beta_0, sigma_u * named["u"])
        at_u = [u if name == "u" else v for name, v in named.items()]
        expected = _model_logp(model, at_u, density.value_names) + 3 * np.log(sigma_u)
        np.testing.assert_allclose(float(value), expected, rtol=1e-12)


def _n_nodes(function) -> int:
    return len(function.maker.fgraph.apply_nodes)


def test_density_without_parameter_checks_equals_the_checked_one():
    """Every model: nutpie's density leaves PyMC's parameter checks out (``sigma > 0``,
    ``0 <= p <= 1``: the unconstrained space holds only valid values), so its graph is smaller
    where the model has checks, and its value is the checked one to rounding."""
    rng = np.random.default_rng(4)
    for name in ("linear", "random_intercept", "random_intercept_nc", "logistic_random_intercept"):
        spec = MODELS[name]
        data, _ = simulate(name, n_groups=7, n_obs=70, seed=5)
        densities = [
            nutpie_sampler.compile_log_density(
                spec.pymc_builder()(data, spec.priors()),
                tuple(spec.parameters),
                parameter_checks=checks,
            )
            for checks in (False, True)
        ]
        unchecked, checked = (density.logp_dlogp for density in densities)
        assert _n_nodes(unchecked) <= _n_nodes(checked), name
        if name == "logistic_random_intercept":  # its 0 <= p <= 1 over the rows must be gone
            assert _n_nodes(unchecked) < _n_nodes(checked), name
        for _ in range(3):
            values = _point(densities[0], rng)
            value, grad = nutpie_sampler._bound(unchecked)(*values)
            expected, expected_grad = nutpie_sampler._bound(checked)(*values)
            np.testing.assert_allclose(float(value), float(expected), rtol=1e-12, err_msg=name)
            np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12, err_msg=name)
