"""Statistical checks of the engines, with tolerances from Monte-Carlo standard errors.

Assertions take the Inference Gym form ``|a - b| < 5 sqrt(se_a^2 + se_b^2)``: ``se`` of a mean is
``sd / sqrt(ESS_mean)``, ``se`` of an SD is ``sd * sqrt((kurtosis - 1) / (4 ESS_sd))``; closed-form
quantities have ``se = 0``.
"""

import arviz as az
import numpy as np
import pytest

from inference import fit
from models import simulate
from models.linear import LinearPriors

N_SE = 5.0
NUTS = {"num_chains": 4, "num_warmup": 500, "num_draws": 1_000}


def moments(draws: np.ndarray) -> dict[str, float]:
    """Mean and SD of ``(chain, draw)`` draws with their Monte-Carlo standard errors."""
    draws = np.asarray(draws, dtype=float)
    mean, sd = draws.mean(), draws.std()
    kurtosis = np.mean((draws - mean) ** 4) / sd**4
    ess_mean = float(az.ess(draws, method="mean"))
    ess_sd = float(az.ess(draws, method="sd"))
    return {
        "mean": mean,
        "sd": sd,
        "se_mean": sd / np.sqrt(ess_mean),
        "se_sd": sd * np.sqrt((kurtosis - 1.0) / (4.0 * ess_sd)),
    }


def scalar_draws(posterior, names) -> dict[str, np.ndarray]:
    """``{label: (chain, draw) array}`` for each scalar or each coefficient of ``names``."""
    out = {}
    for name in names:
        values = posterior[name].values
        if values.ndim == 2:
            out[name] = values
        else:
            for j in range(values.shape[2]):
                out[f"{name}[{j}]"] = values[:, :, j]
    return out


def assert_agree(first, second, names) -> None:
    a, b = scalar_draws(first, names), scalar_draws(second, names)
    for label in a:
        ma, mb = moments(a[label]), moments(b[label])
        for stat in ("mean", "sd"):
            tolerance = N_SE * np.hypot(ma[f"se_{stat}"], mb[f"se_{stat}"])
            assert abs(ma[stat] - mb[stat]) < tolerance, (label, stat, ma, mb)


def exact_linear_posterior(data, priors: LinearPriors) -> dict[str, dict[str, np.ndarray]]:
    """Normal-Gamma posterior moments of beta (Student-t marginals) and tau_e (Gamma)."""
    X, y, lam0, m0 = data.X, data.y, priors.beta_precision, priors.beta_mean
    m0 = np.full(X.shape[1], m0)
    precision = X.T @ X + lam0 * np.eye(X.shape[1])
    mn = np.linalg.solve(precision, X.T @ y + lam0 * m0)
    an = priors.a_e + y.size / 2
    bn = priors.b_e + 0.5 * (y @ y + lam0 * m0 @ m0 - mn @ precision @ mn)
    scale2 = bn / an * np.diag(np.linalg.inv(precision))
    dof = 2 * an
    return {
        "beta": {"mean": mn, "sd": np.sqrt(scale2 * dof / (dof - 2))},
        "tau_e": {"mean": an / bn, "sd": np.sqrt(an) / bn},
    }


@pytest.mark.parametrize(
    ("backend", "sampler_settings"),
    [
        ("numpyro", {}),
        ("numpyro", {"dense_mass": True}),
        ("pymc", {}),
        ("pymc", {"low_rank_mass": True}),
        ("pymc", {"sampler": "pymc"}),
        ("pymc", {"sampler": "pymc", "dense_mass": True}),
    ],
)
def test_linear_nuts_matches_the_exact_conjugate_posterior(backend, sampler_settings):
    data, _ = simulate("linear", n_obs=100, seed=21)
    settings = {**NUTS, **sampler_settings}
    posterior = fit(
        "linear", data, backend=backend, method="nuts", settings=settings, seed=5
    ).posterior
    exact = exact_linear_posterior(data, LinearPriors())
    for j in range(data.n_coef):
        got = moments(posterior.beta.values[:, :, j])
        for stat in ("mean", "sd"):
            assert abs(got[stat] - exact["beta"][stat][j]) < N_SE * got[f"se_{stat}"], (j, stat)
    got = moments(posterior.tau_e.values)
    for stat in ("mean", "sd"):
        assert abs(got[stat] - exact["tau_e"][stat]) < N_SE * got[f"se_{stat}"], stat


@pytest.mark.parametrize(
    ("model", "n_groups", "n_per_group", "names"),
    [
        ("random_intercept", 20, 10, ("beta", "tau_e", "tau_u", "sigma_u")),
        ("logistic_random_intercept", 20, 20, ("beta", "tau_u", "sigma_u")),
    ],
)
def test_numpyro_and_pymc_nuts_agree(model, n_groups, n_per_group, names):
    data, _ = simulate(model, n_groups=n_groups, n_per_group=n_per_group, seed=22)
    fits = [
        fit(model, data, backend=backend, method="nuts", settings=NUTS, seed=6)
        for backend in ("numpyro", "pymc")
    ]
    for idata in fits:
        assert int(idata.sample_stats.diverging.sum()) == 0
    assert_agree(fits[0].posterior, fits[1].posterior, names)


@pytest.mark.parametrize(
    ("backend", "sampler", "mass"),
    [
        ("numpyro", {}, "dense_mass"),
        ("pymc", {"sampler": "pymc", "num_chains": 2}, "dense_mass"),
        ("pymc", {"sampler": "nutpie"}, "low_rank_mass"),
    ],
)
def test_dense_mass_matrix_unlocks_the_intercept_of_the_centred_model(backend, sampler, mass):
    """beta_0 moves against the sum of the u_j: a diagonal mass matrix cannot follow that ridge.

    Measured with these seeds: bulk ESS of beta_0 428 (NumPyro, 4 chains) and 389 (PyMC's own
    sampler, written in Python: 2 chains, 4 s instead of 12 s for 4) with the diagonal mass
    matrix, 4519 and 2661 with the dense one; nutpie diagonal / low-rank: see the assertion.
    """
    data, _ = simulate("random_intercept", n_groups=20, n_per_group=20, seed=24)
    ess = {}
    for adapted in (False, True):
        settings = {**NUTS, **sampler, mass: adapted}
        idata = fit(
            "random_intercept", data, backend=backend, method="nuts", settings=settings, seed=8
        )
        assert int(idata.sample_stats.diverging.sum()) == 0
        ess[adapted] = float(az.ess(idata.posterior.beta.values[:, :, 0]))
    assert ess[True] > 3 * ess[False], ess


@pytest.mark.parametrize(
    ("backend", "adapted"), [("numpyro", {"dense_mass": True}), ("pymc", {"low_rank_mass": True})]
)
def test_centred_groups_carry_their_intercept(backend, adapted):
    """With ``intercept_centring`` NUTS samples a centred group's own intercept beta_0 + u_j:
    the ridge the diagonal mass matrix could not follow is gone, and the posterior is the one of
    the model sampled as written with an adapted mass matrix (dense in NumPyro, low-rank in
    nutpie).

    Measured with these seeds, bulk ESS of beta_0 as written (diagonal mass), with the adapted
    mass matrix, centred on the intercept (diagonal mass): NumPyro 428, 4,697, 3,711; nutpie
    530, 4,299, 6,055 (sampling 2.4, 2.4 and 1.8 s).
    """
    data, _ = simulate("random_intercept", n_groups=20, n_per_group=20, seed=24)
    fits = {
        name: fit("random_intercept", data, backend=backend, method="nuts", settings=s, seed=8)
        for name, s in (
            ("diagonal", NUTS),
            ("adapted", {**NUTS, **adapted}),
            ("centred", {**NUTS, "centring": "centred", "intercept_centring": True}),
        )
    }
    ess = {name: float(az.ess(f.posterior.beta.values[:, :, 0])) for name, f in fits.items()}
    assert ess["centred"] > 5 * ess["diagonal"], ess
    assert int(fits["centred"].sample_stats.diverging.sum()) == 0
    names = ("beta", "u", "tau_e", "tau_u")
    assert_agree(fits["centred"].posterior, fits["adapted"].posterior, names)


@pytest.fixture(scope="module")
def q50():
    """ADVI (both backends, default settings) and NUTS fits of random_intercept with Q = 50.

    Three rows per group: the random intercepts are weakly identified, which is where mean-field
    VI's neglect of the u-tau_u dependence shows most.
    """
    data, _ = simulate("random_intercept", n_groups=50, n_per_group=3, seed=23)
    fits = {
        backend: fit("random_intercept", data, backend=backend, method="advi", seed=7)
        for backend in ("numpyro", "pymc")
    }
    fits["nuts"] = fit("random_intercept", data, backend="numpyro", method="nuts", seed=7)
    return fits


def test_numpyro_and_pymc_advi_agree_on_posterior_sds(q50):
    first, second = q50["numpyro"].posterior, q50["pymc"].posterior
    for name in ("beta", "tau_u"):
        sd_first = first[name].std(("chain", "draw")).values
        sd_second = second[name].std(("chain", "draw")).values
        np.testing.assert_allclose(sd_first, sd_second, rtol=0.10, err_msg=name)


@pytest.mark.parametrize("backend", ["numpyro", "pymc"])
def test_advi_underestimates_the_sd_of_tau_u(q50, backend):
    advi = moments(q50[backend].posterior.tau_u.values)
    nuts = moments(q50["nuts"].posterior.tau_u.values)
    assert advi["sd"] + N_SE * np.hypot(advi["se_sd"], nuts["se_sd"]) < nuts["sd"]
    assert advi["sd"] / nuts["sd"] < 0.8


@pytest.mark.parametrize("backend", ["numpyro", "pymc"])
def test_per_group_centring_keeps_the_posterior(backend):
    """NUTS through the centred form of M2 with its small groups non-centred (``centring =
    "auto"``: 5 groups of 25 rows centred, 15 of 5 rows not) agrees with M2 sampled as written."""
    sizes = [25] * 5 + [5] * 15
    data, _ = simulate("random_intercept_nc", n_groups=20, n_obs=sum(sizes), seed=25)
    group = np.repeat(np.arange(20), sizes)
    data = type(data)(X=data.X, y=data.y, group=group)
    fits = [
        fit(
            "random_intercept_nc",
            data,
            backend=backend,
            method="nuts",
            settings={**NUTS, "target_accept": 0.95, **settings},
            seed=9,
        )
        for settings in ({}, {"centring": "auto"})
    ]
    for idata in fits:
        assert int(idata.sample_stats.diverging.sum()) == 0
    assert_agree(fits[0].posterior, fits[1].posterior, ("beta", "u", "tau_e", "tau_u"))
    assert_m0_reuses_the_draws_it_would_sample(backend, data, fits[1])


def assert_m0_reuses_the_draws_it_would_sample(backend, data, m2):
    """M2 sampled through its centred form is M0's program: M0's fit to the same data with the
    same seed and settings reuses M2's draws, and they are the draws M0 samples itself."""
    import importlib

    engine = importlib.import_module(f"inference.ppl.{backend}_engine")
    settings = {**NUTS, "target_accept": 0.95, "centring": "auto"}

    def m0():
        return fit(
            "random_intercept", data, backend=backend, method="nuts", settings=settings, seed=9
        )

    reused = m0()
    engine._DRAWS.clear()
    sampled = m0()
    assert (m2.posterior.attrs["draws_reused"], reused.posterior.attrs["draws_reused"]) == (0, 1)
    assert sampled.posterior.attrs["draws_reused"] == 0
    for group in ("posterior", "sample_stats"):
        for name, values in sampled[group].data_vars.items():
            np.testing.assert_array_equal(reused[group][name].values, values.values, err_msg=name)
            np.testing.assert_array_equal(m2[group][name].values, values.values, err_msg=name)
