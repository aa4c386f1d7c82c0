"""Synthetic fits that follow the InferenceData contract, built with az.from_dict."""

import json

import arviz as az
import numpy as np
import pytest

COEFS = ["intercept", "x1", "x2"]
LABELS = {
    "random_intercept": "M0",
    "linear": "M1",
    "random_intercept_nc": "M2",
    "logistic_random_intercept": "M3",
}
MODEL_PARAMS = {
    "linear": ("beta", "tau_e"),
    "random_intercept": ("beta", "u", "tau_e", "tau_u"),
    "random_intercept_nc": ("beta", "u", "tau_e", "tau_u"),
    "logistic_random_intercept": ("beta", "u", "tau_u"),
}


def make_fit(
    model="random_intercept",
    backend="numpyro",
    method="nuts",
    n_groups=5,
    seed=0,
    sd=1.0,
    chains=4,
    draws=1000,
    rng=None,
    analytic=False,
    diverging=0,
    dataset="sim",
    family=None,
):
    """A fit whose every parameter has posterior SD ``sd`` (precisions: positive draws)."""
    rng = rng or np.random.default_rng(seed)
    shape = (chains, draws)
    posterior, dims = {}, {}
    for name in MODEL_PARAMS[model]:
        if name == "beta":
            posterior[name] = rng.normal(0.0, sd, shape + (3,))
            dims[name] = ["coef"]
        elif name == "u":
            posterior[name] = rng.normal(0.0, sd, shape + (n_groups,))
            dims[name] = ["group"]
        else:
            posterior[name] = 10.0 + rng.normal(0.0, sd, shape)
    for suffix in ("e", "u"):
        if f"tau_{suffix}" in posterior:
            posterior[f"sigma_{suffix}"] = posterior[f"tau_{suffix}"] ** -0.5
            posterior[f"sigma2_{suffix}"] = 1.0 / posterior[f"tau_{suffix}"]
    coords = {"coef": COEFS, "group": [str(g) for g in range(n_groups)]}
    stats = {"diverging": np.zeros(shape, dtype=bool)}
    stats["diverging"].flat[:diverging] = True
    is_vb = method in ("advi", "cavi")
    idata = az.from_dict(
        posterior=posterior,
        coords=coords,
        dims=dims,
        sample_stats=None if is_vb else stats,
    )
    idata.posterior.attrs.update(
        model=model,
        model_label=LABELS[model],
        likelihood="bernoulli" if model.startswith("logistic") else "gaussian",
        posterior_model=model.removesuffix("_nc"),
        backend=backend,
        method=method,
        family=family or {"advi": "mean_field", "cavi": "block"}.get(method, ""),
        seed=seed,
        dataset=dataset,
        n_groups=n_groups if model != "linear" else 0,
    )
    if analytic:
        moments = {"beta": {"mean": [0.0] * 3, "sd": [sd] * 3}}
        if "tau_e" in posterior:
            moments["tau_e"] = {"mean": 10.0, "sd": sd}
        idata.posterior.attrs["analytic_moments"] = json.dumps(moments)
    return idata


@pytest.fixture
def fit_factory():
    return make_fit
