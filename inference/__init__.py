"""One entry point, `fit`, for every (model, backend, method); all return the same InferenceData.

Engines are imported lazily, so ``import inference`` loads neither JAX nor PyMC until a fit of
that backend is asked for.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import asdict
from typing import Any

import arviz as az

import models
from inference.contract import analytic_moments, build_inference_data
from inference.settings import BACKENDS, METHODS, SETTINGS, check_pair, resolve_settings
from models.spec import ModelSpec, RegressionData

ENGINES: dict[tuple[str, str], str] = {
    ("numpyro", "advi"): "inference.numpyro_engine:advi",
    ("numpyro", "nuts"): "inference.numpyro_engine:nuts",
    ("pymc", "advi"): "inference.pymc_engine:advi",
    ("pymc", "nuts"): "inference.pymc_engine:nuts",
    ("reference", "exact"): "inference.reference:exact",
    ("reference", "cavi"): "inference.reference:cavi",
    ("reference", "gibbs"): "inference.reference:gibbs",
}

# Models each reference method can fit; the PPL methods fit every model.
REFERENCE_MODELS: dict[str, tuple[str, ...]] = {
    "exact": ("linear",),
    "cavi": ("linear", "random_intercept", "logistic_random_intercept"),
    "gibbs": ("linear", "random_intercept", "random_intercept_nc", "logistic_random_intercept"),
}


def supports(backend: str, method: str, model: str) -> bool:
    """Whether ``method`` of ``backend`` can fit ``model`` (all names assumed valid)."""
    if backend == "reference":
        return model in REFERENCE_MODELS.get(method, ())
    return True


def fit(
    model: str | ModelSpec,
    data: RegressionData,
    *,
    backend: str,
    method: str,
    settings: Any = None,
    seed: int = 0,
    priors: Any = None,
    progressbar: bool | None = None,
) -> az.InferenceData:
    """Fit ``model`` to ``data`` with ``method`` of ``backend``.

    Parameters
    ----------
    model : str or ModelSpec
        A name in `models.MODELS` (``linear``, ``random_intercept``, ``random_intercept_nc``,
        ``logistic_random_intercept``).
    data : RegressionData
        Checked against the model (groups, binary outcome) before anything runs.
    backend : {"numpyro", "pymc", "reference"}
    method : {"advi", "nuts", "exact", "cavi", "gibbs"}
        ``advi`` and ``nuts`` run in ``numpyro`` and ``pymc``; ``exact``, ``cavi`` and ``gibbs``
        in ``reference``.
    settings : mapping or settings dataclass, optional
        Overrides of the pair's defaults (`inference.settings.SETTINGS`).
    seed : int
        Seed of every random choice; the same seed gives identical draws.
    priors : mapping or priors dataclass, optional
        Overrides of the model's default hyper-parameters.
    progressbar : bool, optional
        Show progress bars; by default only when standard error is a terminal.

    Returns
    -------
    arviz.InferenceData
        The contract of DESIGN.md: ``posterior`` (public names, constrained space),
        ``observed_data``, ``constant_data``, ``sample_stats`` (samplers) or ``vi_trace``
        (VI), and provenance attrs (``model``, ``backend``, ``method``, ``seed``, ``settings``,
        ``priors``, ``compile_time_s``, ``run_time_s``, ``versions``, ``run_id``).

    Raises
    ------
    ValueError
        On an unknown model, backend, method or setting, bad priors, or data the model cannot
        take; each message names the field and the valid values.

    Examples
    --------
    >>> from models import simulate
    >>> data, truth = simulate("linear", n_obs=100, seed=1)
    >>> idata = fit("linear", data, backend="reference", method="exact")
    >>> sorted(idata.posterior.data_vars)
    ['beta', 'sigma2_e', 'sigma_e', 'tau_e']
    """
    spec = models.get_model(model)
    check_pair(backend, method)
    if not supports(backend, method, spec.name):
        valid = list(REFERENCE_MODELS[method])
        raise ValueError(
            f"model: {backend}/{method} cannot fit model {spec.name!r}; it fits {valid}"
        )
    resolved = resolve_settings(backend, method, settings)
    prior_values = spec.priors(priors)
    spec.check_data(data)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    if progressbar is None:
        progressbar = sys.stderr.isatty()
    engine = _load_engine(backend, method)
    idata = engine(
        spec, data, priors=prior_values, settings=resolved, seed=seed, progressbar=progressbar
    )
    _stamp_priors(idata, prior_values)
    return idata


def _load_engine(backend: str, method: str) -> Any:
    module_name, _, attr = ENGINES[(backend, method)].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _stamp_priors(idata: az.InferenceData, priors: Any) -> None:
    import json

    encoded = json.dumps(asdict(priors))
    for group in idata.groups():
        idata[group].attrs["priors"] = encoded


__all__ = [
    "BACKENDS",
    "ENGINES",
    "METHODS",
    "SETTINGS",
    "analytic_moments",
    "build_inference_data",
    "fit",
    "resolve_settings",
    "supports",
]
