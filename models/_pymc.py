"""PyMC helpers shared by the model builders (imported only when PyMC is used)."""

from __future__ import annotations

from typing import Any

import numpy as np

from models.spec import RegressionData


def data_containers(data: RegressionData) -> tuple[Any, Any, Any]:
    """Register ``X``, ``group`` and ``y_obs`` as ``pm.Data`` in the model on the context stack.

    Containers let a compiled model be refitted to new data of any size with ``pm.set_data``
    (no recompilation). ``group`` is ``None`` for data without groups.
    """
    import pymc as pm

    X = pm.Data("X", data.X, dims=("obs", "coef"))
    y_obs = pm.Data("y_obs", data.y, dims="obs")
    group = None
    if data.group is not None:
        group = pm.Data("group", data.group.astype(np.int64), dims="obs")
    return X, group, y_obs
