"""One entry point, `fit`, for every (model, backend, method, family); all return the same
InferenceData.

What can run is `inference.registry.REGISTRY`. Engines are imported lazily, so
``import inference`` loads neither JAX nor PyMC until a fit of that backend is asked for.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

import arviz as az

import models
from inference.contract import VARIATIONAL_GROUP, analytic_moments, build_inference_data
from inference.registry import (
    BACKENDS,
    CORRECTIONS,
    DEFAULT_FAMILY,
    FAMILIES,
    METHODS,
    REGISTRY,
    EngineEntry,
    lookup,
    make_label,
    parse_label,
)
from models.spec import ModelSpec, RegressionData


def supports(backend: str, method: str, model: str, family: str | None = None) -> bool:
    """Whether ``backend/method[:family]`` can fit ``model`` (all names assumed valid)."""
    return lookup(backend, method, family).fits(model)


def resolve_settings(
    backend: str, method: str, settings: Any = None, family: str | None = None
) -> Any:
    """The settings dataclass of ``backend/method[:family]``, defaults updated with ``settings``.

    Raises
    ------
    ValueError
        On an unknown entry, an unknown setting (the valid ones are listed) or a bad value.
    """
    from inference.registry import resolve_settings as resolve

    return resolve(lookup(backend, method, family), settings)


def fit(
    model: str | ModelSpec,
    data: RegressionData,
    *,
    backend: str,
    method: str,
    family: str | None = None,
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
    backend : {"numpyro", "pymc", "conjugate"}
        The PPL adapters (`inference.ppl`) or the closed-form and conditionally conjugate
        algorithms (`inference.conjugate`).
    method : {"advi", "nuts", "exact", "cavi", "gibbs"}
        ``advi`` and ``nuts`` run in ``numpyro`` and ``pymc``; ``exact``, ``cavi`` and ``gibbs``
        in ``conjugate``.
    family : {"mean_field", "block", "full_rank"}, optional
        The variational family of ``advi`` and ``cavi`` (default ``mean_field``, see
        `inference.registry.FAMILIES`; ``cavi`` has ``mean_field`` and ``block``), or a family
        with a correction, ``<family>+lrvb`` (`inference.lrvb`). Samplers and the exact
        posterior take none.
    settings : mapping or settings dataclass, optional
        Overrides of the entry's defaults (its class in `inference.registry.REGISTRY`).
    seed : int
        Seed of every random choice; the same seed gives identical draws.
    priors : mapping or priors dataclass, optional
        Overrides of the model's default hyper-parameters.
    progressbar : bool, optional
        Show progress bars; by default only when standard error is a terminal.

    Returns
    -------
    arviz.InferenceData
        The contract of ARCHITECTURE.md: ``posterior`` (public names, constrained space),
        ``observed_data``, ``constant_data``, ``sample_stats`` (samplers) or ``vi_trace`` and
        ``variational`` (VB: the loss per step and the fitted q's parameters), ``psis_khat``
        (VB: Pareto k̂ of q as an importance proposal, `inference.psis`), and provenance
        attrs (``model``, ``backend``, ``method``, ``family``, ``seed``, ``settings``,
        ``priors``, ``compile_time_s``, ``run_time_s``, ``versions``, ``run_id``).

    Raises
    ------
    ValueError
        On an unknown model, backend, method, family or setting, bad priors, or data the model
        cannot take; each message names the field and the valid values.

    Examples
    --------
    >>> from models import simulate
    >>> data, truth = simulate("linear", n_obs=100, seed=1)
    >>> idata = fit("linear", data, backend="conjugate", method="exact")
    >>> sorted(idata.posterior.data_vars)
    ['beta', 'sigma2_e', 'sigma_e', 'tau_e']
    """
    spec = models.get_model(model)
    entry = lookup(backend, method, family)
    if not entry.fits(spec.name):
        raise ValueError(
            f"model: {entry.label} cannot fit model {spec.name!r}; it fits {list(entry.models)}"
        )
    from inference.registry import resolve_settings as resolve

    resolved = resolve(entry, settings)
    prior_values = spec.priors(priors)
    spec.check_data(data)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    if progressbar is None:
        progressbar = sys.stderr.isatty()
    idata = entry.load()(
        spec,
        data,
        priors=prior_values,
        settings=resolved,
        seed=seed,
        family=entry.family,
        progressbar=progressbar,
    )
    _stamp_priors(idata, prior_values)
    if entry.role == "vb":
        from inference.psis import stamp_psis

        stamp_psis(idata, spec, data, prior_values, seed=seed)
    return idata


def _stamp_priors(idata: az.InferenceData, priors: Any) -> None:
    encoded = json.dumps(asdict(priors))
    for group in idata.groups():
        idata[group].attrs["priors"] = encoded


__all__ = [
    "BACKENDS",
    "CORRECTIONS",
    "DEFAULT_FAMILY",
    "FAMILIES",
    "METHODS",
    "REGISTRY",
    "VARIATIONAL_GROUP",
    "EngineEntry",
    "analytic_moments",
    "build_inference_data",
    "fit",
    "lookup",
    "make_label",
    "parse_label",
    "resolve_settings",
    "supports",
]
