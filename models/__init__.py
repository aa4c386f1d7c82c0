"""The study's models, written once in NumPyro and once in PyMC, with data types and data sets.

JAX is switched to float64 here, once, before any model is traced: if JAX is already imported
its config is updated, otherwise ``JAX_ENABLE_X64`` is set so JAX starts in float64.
"""

from __future__ import annotations

import os
import sys

from models import linear, logistic_random_intercept, random_intercept, random_intercept_nc
from models.data import DATASETS, boston, contraception, exam, load_dataset, simulate
from models.spec import ModelSpec, RegressionData, coords_of


def _enable_x64() -> None:
    if "jax" in sys.modules:
        sys.modules["jax"].config.update("jax_enable_x64", True)
    else:
        os.environ["JAX_ENABLE_X64"] = "1"


_enable_x64()

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        linear.SPEC,
        random_intercept.SPEC,
        random_intercept_nc.SPEC,
        logistic_random_intercept.SPEC,
    )
}


def get_model(name: str | ModelSpec) -> ModelSpec:
    """The `ModelSpec` registered as ``name`` (a spec is returned as is).

    Raises
    ------
    ValueError
        If ``name`` is not a registered model; the message lists the valid names.
    """
    if isinstance(name, ModelSpec):
        return name
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"model: unknown model {name!r}; valid: {sorted(MODELS)}") from None


__all__ = [
    "DATASETS",
    "MODELS",
    "ModelSpec",
    "RegressionData",
    "boston",
    "contraception",
    "coords_of",
    "exam",
    "get_model",
    "load_dataset",
    "simulate",
]
