"""The NumPyro and PyMC versions of each model are the same model.

At random points of the unconstrained space both log densities (Jacobians of the log transform
of each precision included on both sides) must differ by one constant: we compare differences
between points, so normalising constants need not match.
"""

import numpy as np
import pytest

from models import MODELS, simulate

N_POINTS = 6


def _numpyro_potential(spec, data):
    import jax
    from numpyro.infer.util import potential_energy

    model = spec.numpyro_model()
    args = (data.X, data.group, data.n_groups)
    kwargs = {"y": data.y, "priors": spec.priors()}

    def log_density(point):
        return -potential_energy(model, args, kwargs, point)

    return jax.jit(log_density)


def _pymc_logp(spec, data):
    model = spec.pymc_builder()(data, spec.priors())
    return model, model.compile_logp(jacobian=True)


def _random_points(spec, data, rng):
    sizes = {"coef": data.n_coef, "group": data.n_groups}
    sampled = dict(spec.parameters)
    if spec.internal:
        sampled = {k: v for k, v in sampled.items() if k != "u"} | {"z": ("group",)}
    for _ in range(N_POINTS):
        yield {
            name: rng.normal(scale=0.7, size=tuple(sizes[d] for d in dims))
            for name, dims in sampled.items()
        }


def _pymc_point(model, point):
    values = {}
    for value_var in model.value_vars:
        name = value_var.name
        base = name.removesuffix("_log__")
        values[name] = point[base]
    return values


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_numpyro_and_pymc_log_densities_agree(model_name):
    spec = MODELS[model_name]
    data, _ = simulate(model_name, n_groups=4, n_per_group=6, seed=3)
    rng = np.random.default_rng(11)
    numpyro_logp = _numpyro_potential(spec, data)
    model, pymc_logp = _pymc_logp(spec, data)
    points = list(_random_points(spec, data, rng))
    ours = np.array([float(numpyro_logp(p)) for p in points])
    theirs = np.array([float(pymc_logp(_pymc_point(model, p))) for p in points])
    assert np.all(np.isfinite(ours)) and np.all(np.isfinite(theirs))
    np.testing.assert_allclose(ours - ours[0], theirs - theirs[0], rtol=1e-9, atol=1e-8)
    assert np.ptp(ours) > 1.0, "points too close together to test anything"


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_same_public_sites_and_dims(model_name):
    spec = MODELS[model_name]
    data, _ = simulate(model_name, n_groups=3, n_per_group=4, seed=0)
    model = spec.pymc_builder()(data, spec.priors())
    free = {rv.name for rv in model.free_RVs} | {d.name for d in model.deterministics}
    assert set(spec.parameters) <= free
    assert free - set(spec.parameters) <= set(spec.internal)
    for name, dims in spec.parameters.items():
        assert tuple(model.named_vars_to_dims.get(name, ())) == dims

    import numpyro.handlers as handlers

    numpyro_model = spec.numpyro_model()
    with handlers.seed(rng_seed=0):
        trace = handlers.trace(numpyro_model).get_trace(
            data.X, data.group, data.n_groups, y=data.y, priors=spec.priors()
        )
    sites = {n for n, s in trace.items() if s["type"] in ("sample", "deterministic")}
    sites -= {"y"}
    assert sites == set(spec.parameters) | set(spec.internal)
    sizes = {"coef": data.n_coef, "group": data.n_groups}
    for name, dims in spec.parameters.items():
        assert trace[name]["value"].shape == tuple(sizes[d] for d in dims)


def test_log_density_is_float64():
    import jax.numpy as jnp

    assert jnp.zeros(1).dtype == jnp.float64
