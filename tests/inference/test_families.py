"""The variational family as a parameter: every family keeps the contract and its q, and the
families give the answers theory says they give (block ADVI = block CAVI, full rank = exact)."""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pytest

import analysis
from inference import FAMILIES, REGISTRY, analytic_moments, fit
from models import MODELS, boston, simulate

FAMILY_FITS = [
    (model, backend, family)
    for model in sorted(MODELS)
    for backend in ("numpyro", "pymc")
    for family in ("block", "full_rank")
    if family == "block" or model in ("random_intercept_nc", "linear")
]


@pytest.fixture(scope="module")
def family_fit(tiny_data, tiny_settings):
    cache: dict[tuple[str, str, str], az.InferenceData] = {}

    def get(model: str, backend: str, family: str) -> az.InferenceData:
        key = (model, backend, family)
        if key not in cache:
            cache[key] = fit(
                model,
                tiny_data[model],
                backend=backend,
                method="advi",
                family=family,
                settings=tiny_settings["advi"],
                seed=0,
            )
        return cache[key]

    return get


@pytest.mark.parametrize(("model", "backend", "family"), FAMILY_FITS, ids=str)
def test_every_family_keeps_the_contract_and_its_q(family_fit, model, backend, family, tmp_path):
    spec = MODELS[model]
    idata = family_fit(model, backend, family)
    attrs = idata.posterior.attrs
    assert (attrs["family"], attrs["label"], attrs["role"]) == (
        family,
        f"{backend}/advi:{family}",
        "vb",
    )
    assert set(idata.posterior.data_vars) == set(spec.public_names)
    q = idata.variational
    layout = json.loads(q.attrs["layout"])
    dense_sites = [site for site, _ in layout["dense"]["block"]]
    if family == "block":
        assert dense_sites == [s for s in dense_sites if s in spec.effects]
        assert set(dense_sites) == set(spec.effects)
        assert set(layout["diagonal"]) == {s for s in json.loads(q.attrs["transforms"])} - set(
            spec.effects
        )
    else:
        assert layout["diagonal"] == [] and set(spec.effects) <= set(dense_sites)
    tril = q.block_scale_tril.values
    assert np.allclose(tril, np.tril(tril)) and np.all(np.diag(tril) > 0)
    assert q.block_loc.size == tril.shape[0] == sum(size for _, size in layout["dense"]["block"])
    path = tmp_path / "fit.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    np.testing.assert_array_equal(back.variational.block_scale_tril.values, tril)
    assert back.variational.attrs["layout"] == q.attrs["layout"]


@pytest.mark.parametrize(("model", "backend", "family"), FAMILY_FITS, ids=str)
def test_analytic_moments_of_q_match_its_draws(family_fit, model, backend, family):
    """Moments from the kept q agree with the 200 draws to within 5 Monte-Carlo errors."""
    idata = family_fit(model, backend, family)
    for name, moments in analytic_moments(idata).items():
        draws = idata.posterior[name].values.reshape(200, -1)
        mean, sd = np.atleast_1d(moments["mean"]), np.atleast_1d(moments["sd"])
        assert np.all(np.abs(draws.mean(0) - mean) < 5 * sd / np.sqrt(200) + 1e-12), name
        # SD of a sample SD: about sd * sqrt((kurtosis - 1) / (4 n)); log-normals have heavy
        # tails, so allow 8 standard errors of a normal's.
        assert np.all(np.abs(draws.std(0) - sd) < 8 * sd / np.sqrt(2 * 200) + 1e-12), name


def test_registry_offers_every_family_for_advi_and_two_for_cavi():
    families = {
        (b, m): sorted(f for bb, mm, f in REGISTRY if (bb, mm) == (b, m) and f in FAMILIES)
        for b, m, _ in REGISTRY
    }
    assert families[("numpyro", "advi")] == ["block", "full_rank", "mean_field"]
    assert families[("pymc", "advi")] == ["block", "full_rank", "mean_field"]
    assert families[("conjugate", "cavi")] == ["block", "mean_field"]
    corrections = {f for b, m, f in REGISTRY if f and f not in FAMILIES}
    assert corrections == {"mean_field+lrvb", "block+lrvb"}


@pytest.fixture(scope="module")
def q50():
    """M0 at Q = 50 groups of 20 rows, its block CAVI fit."""
    data, _ = simulate("random_intercept", n_groups=50, n_per_group=20, seed=11)
    cavi = fit("random_intercept", data, backend="conjugate", method="cavi", family="block")
    return data, cavi


@pytest.mark.parametrize("backend", ["numpyro", "pymc"])
def test_block_advi_matches_block_cavi_at_50_groups(q50, backend):
    """Block ADVI and block CAVI optimise over nearly the same family (ADVI's q(tau) is
    log-normal, CAVI's Gamma): the SDs of beta and u agree within 5 %."""
    data, cavi = q50
    advi = fit("random_intercept", data, backend=backend, method="advi", family="block", seed=3)
    table = analysis.sd_ratio(advi, cavi, var_names=["beta", "u"])
    assert table.analytic.all()
    assert np.all(np.abs(table.ratio - 1) < 0.05), table.ratio.describe()


@pytest.mark.parametrize("backend", ["numpyro", "pymc"])
def test_full_rank_advi_recovers_the_exact_boston_posterior(backend):
    """rm and lstat are correlated: mean-field ADVI under-disperses them (~0.78), full rank
    does not (>= 0.95, and at most 1.05)."""
    data = boston()
    exact = fit("linear", data, backend="conjugate", method="exact")
    ratios = {}
    for family in ("mean_field", "full_rank"):
        vb = fit("linear", data, backend=backend, method="advi", family=family, seed=2)
        table = analysis.sd_ratio(vb, exact, var_names=["beta"]).set_index("parameter")
        ratios[family] = table.ratio
    assert np.all(ratios["full_rank"].between(0.95, 1.05)), ratios["full_rank"]
    assert np.all(ratios["mean_field"][["beta_1", "beta_2"]] < 0.85), ratios["mean_field"]


def test_pymc_full_rank_group_is_pymcs_q_built_in_c(tiny_data, tiny_settings):
    """`pymc_engine`'s full-rank group gives PyMC's ``L`` and ``log q`` at random parameters,
    and the block ADVI step it compiles has no advanced-indexing op that runs in Python."""
    from pymc.variational.approximations import FullRankGroup
    from pytensor.graph.replace import graph_replace

    from inference.ppl import pymc_engine

    data = tiny_data["random_intercept"]
    spec = MODELS["random_intercept"]
    model = spec.pymc_builder()(data, spec.priors())
    effects = [model[name] for name in spec.effects]
    groups = [
        group_class(effects, model=model, random_seed=0)
        for group_class in (FullRankGroup, pymc_engine._full_rank_group())
    ]
    rng = np.random.default_rng(5)
    tril, z = rng.normal(size=groups[0].num_tril_entries), rng.normal(size=(3, groups[0].ddim))
    L, log_q = [], []
    for group in groups:
        group.params_dict["L_tril"].set_value(tril)
        L.append(group.L.eval())
        log_q.append(graph_replace(group.symbolic_logq_not_scaled, {group.symbolic_initial: z}))
    np.testing.assert_allclose(L[1], L[0], rtol=1e-14)
    np.testing.assert_allclose(log_q[1].eval(), log_q[0].eval(), rtol=1e-13)
    assert np.all(np.diag(L[1]) > 0) and np.all(np.triu(L[1], 1) == 0)

    fit(
        "random_intercept",
        data,
        backend="pymc",
        method="advi",
        family="block",
        seed=0,
        settings=tiny_settings["advi"],
    )
    steps = [
        program.step
        for key, program in pymc_engine._PROGRAMS._programs.items()
        if key[:2] == ("advi:block", "random_intercept")
    ]
    python_indexing = {"AdvancedSubtensor", "AdvancedIncSubtensor", "AdvancedSetSubtensor"}
    ops = {type(node.op).__name__ for step in steps for node in step.maker.fgraph.apply_nodes}
    assert steps and not ops & python_indexing, ops & python_indexing
