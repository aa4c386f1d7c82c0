"""Backend-free description of a model and of the data it is fitted to.

`RegressionData` is what every model, simulator, loader and inference engine exchanges;
`ModelSpec` says what a model is (its public parameters, priors, likelihood) and where its
NumPyro and PyMC implementations live.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import numpy as np

Likelihood = Literal["gaussian", "bernoulli"]


def _as_finite_array(name: str, value: Any, ndim: int) -> np.ndarray:
    """Return ``value`` as a float array of ``ndim`` dims, raising on NaN/inf or a wrong shape."""
    array = np.asarray(value, dtype=float)
    if array.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name}: expected finite values, found {bad} NaN or inf")
    return array


@dataclass(frozen=True, eq=False)
class RegressionData:
    """Design matrix, outcome and group index of one data set, validated on construction.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Design matrix; its first column is usually the intercept (all ones).
    y : ndarray, shape (n,)
        Outcome.
    group : ndarray of int, shape (n,), optional
        Group index of each row, already encoded as ``0 .. n_groups - 1`` with every group present.
        ``None`` for data without groups (the linear model).
    coef_names : sequence of str, optional
        One name per column of ``X``; defaults to ``intercept, x1, x2, ...``.
    group_labels : sequence of str, optional
        One label per group (the original group names); defaults to ``"0", "1", ...``.
    name : str
        Short name of the data set, used in run keys (``sim``, ``boston``, ``exam``, ...).
    n_groups : int, optional
        Number of groups. By default ``max(group) + 1`` and every group must have a row; when
        given (a held-out subset of a larger data set), groups may be absent but every index must
        lie in ``0 .. n_groups - 1``. Set to 0 for data without groups.

    Raises
    ------
    ValueError
        Naming the field: NaN or inf in ``X``/``y``, mismatched lengths, group indices that are
        not ``0 .. Q-1`` with every group present, duplicated or mis-sized names and labels.

    See Also
    --------
    RegressionData.from_labels : encode raw group labels (strings, non-contiguous ids).

    Examples
    --------
    >>> import numpy as np
    >>> data = RegressionData(X=np.ones((4, 1)), y=np.arange(4.0), group=np.array([0, 0, 1, 1]))
    >>> data.n_groups, data.coef_names
    (2, ('intercept',))
    """

    X: np.ndarray
    y: np.ndarray
    group: np.ndarray | None = None
    coef_names: tuple[str, ...] = ()
    group_labels: tuple[str, ...] = ()
    name: str = "data"
    n_groups: int | None = None

    def __post_init__(self) -> None:
        X = _as_finite_array("X", self.X, ndim=2)
        y = _as_finite_array("y", self.y, ndim=1)
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"y: expected {X.shape[0]} rows (as in X), got {y.shape[0]}")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X: expected at least one row and one column, got shape {X.shape}")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        coef_names = tuple(self.coef_names) or default_coef_names(X.shape[1])
        _check_names("coef_names", coef_names, X.shape[1])
        object.__setattr__(self, "coef_names", coef_names)
        self._set_group()

    def _set_group(self) -> None:
        if self.group is None:
            if self.group_labels:
                raise ValueError("group_labels: given without a group index")
            object.__setattr__(self, "n_groups", 0)
            return
        group = _as_group_index(self.group, self.y.shape[0])
        n_groups = self.n_groups
        if n_groups is None:
            n_groups = int(group.max()) + 1
            if group.min() < 0 or np.unique(group).size != n_groups:
                raise ValueError(
                    "group: expected indices 0..Q-1 with every group present, got "
                    f"{np.unique(group).size} distinct values in [{group.min()}, {group.max()}]; "
                    "encode raw labels with RegressionData.from_labels"
                )
        elif group.min() < 0 or group.max() >= n_groups:
            raise ValueError(
                f"group: expected indices in 0..{n_groups - 1}, got [{group.min()}, {group.max()}]"
            )
        labels = tuple(str(label) for label in self.group_labels) or tuple(
            map(str, range(n_groups))
        )
        _check_names("group_labels", labels, n_groups)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "group_labels", labels)
        object.__setattr__(self, "n_groups", int(n_groups))

    @classmethod
    def from_labels(
        cls,
        X: Any,
        y: Any,
        labels: Sequence[Any],
        *,
        coef_names: Sequence[str] = (),
        name: str = "data",
    ) -> RegressionData:
        """Build data from raw group labels, encoding them as ``0 .. Q-1`` in sorted order.

        Parameters
        ----------
        X, y
            Design matrix and outcome, as in the class.
        labels : sequence
            One label per row (strings or ids, not necessarily contiguous); missing values raise.
        coef_names : sequence of str, optional
            Column names of ``X``.
        name : str
            Name of the data set.

        Returns
        -------
        RegressionData
        """
        raw = np.asarray(labels, dtype=object)
        if raw.ndim != 1:
            raise ValueError(f"group: expected 1-D labels, got shape {raw.shape}")
        if any(label is None or (isinstance(label, float) and np.isnan(label)) for label in raw):
            raise ValueError("group: expected a label on every row, found missing values")
        uniques, codes = np.unique(raw.astype(str), return_inverse=True)
        order = sorted(range(len(uniques)), key=lambda i: _natural_key(uniques[i]))
        recode = np.empty(len(uniques), dtype=np.int64)
        recode[order] = np.arange(len(uniques))
        return cls(
            X=X,
            y=y,
            group=recode[codes],
            coef_names=tuple(coef_names),
            group_labels=tuple(uniques[order]),
            name=name,
        )

    @property
    def n_obs(self) -> int:
        """Number of rows."""
        return int(self.y.shape[0])

    @property
    def n_coef(self) -> int:
        """Number of columns of ``X``."""
        return int(self.X.shape[1])

    def group_sizes(self) -> np.ndarray:
        """Number of rows in each group (empty for data without groups)."""
        if self.group is None:
            return np.zeros(0, dtype=np.int64)
        return np.bincount(self.group, minlength=self.n_groups)

    def subset(self, rows: np.ndarray) -> RegressionData:
        """Rows ``rows`` of this data set, keeping the group coding (for held-out splits)."""
        if self.group is None:
            return replace(self, X=self.X[rows], y=self.y[rows])
        return replace(self, X=self.X[rows], y=self.y[rows], group=self.group[rows])


def _as_group_index(group: Any, n_obs: int) -> np.ndarray:
    """``group`` as an int64 vector of length ``n_obs``, raising on anything else."""
    group = np.asarray(group)
    if group.ndim != 1 or group.shape[0] != n_obs:
        raise ValueError(f"group: expected shape ({n_obs},), got {group.shape}")
    if not np.issubdtype(group.dtype, np.integer):
        try:
            as_float = group.astype(float)
        except (TypeError, ValueError):
            raise ValueError(
                "group: expected integer indices 0..Q-1, got labels (use from_labels)"
            ) from None
        if not np.all(np.isfinite(as_float)) or np.any(as_float != np.round(as_float)):
            raise ValueError("group: expected integer indices 0..Q-1 (use from_labels)")
    return group.astype(np.int64)


def _natural_key(label: str) -> tuple:
    """Sort numeric labels numerically ("2" < "10") and the rest alphabetically."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _check_names(field_name: str, names: tuple[str, ...], expected: int) -> None:
    if len(names) != expected:
        raise ValueError(f"{field_name}: expected {expected} names, got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{field_name}: expected unique names, got {names}")


def coords_of(data: RegressionData) -> dict[str, list]:
    """Coordinates of a fit to ``data``: ``coef``, ``obs`` and, with groups, ``group``."""
    coords: dict[str, list] = {"coef": list(data.coef_names), "obs": list(range(data.n_obs))}
    if data.group is not None:
        coords["group"] = list(data.group_labels)
    return coords


def default_coef_names(n_coef: int) -> tuple[str, ...]:
    """``("intercept", "x1", ..., "x{p-1}")``."""
    return ("intercept",) + tuple(f"x{j}" for j in range(1, n_coef))


@dataclass(frozen=True)
class ModelSpec:
    """What a model is, independent of the library that fits it.

    Parameters
    ----------
    name : str
        Registry name (``linear``, ``random_intercept``, ...).
    label : str
        Label in the VI1 report (``M0`` .. ``M3``).
    description : str
        One line.
    likelihood : {"gaussian", "bernoulli"}
    hierarchical : bool
        Whether the model has random intercepts ``u`` (needs at least two groups).
    parameters : mapping of str to tuple of str
        Public sampled parameters and their dims (``{"beta": ("coef",), "tau_e": ()}``).
    derived : mapping of str to tuple of str
        Derived public quantities (``sigma_e``, ``sigma2_e``, ...) and their dims.
    priors_type : type
        Frozen dataclass of prior hyper-parameters with documented defaults.
    numpyro_path, pymc_path : str
        ``"module:function"`` import paths of the NumPyro model function and PyMC builder.
    internal : tuple of str
        Sampled sites that are not public (e.g. the non-centred ``z``); dropped from results.
    effects : tuple of str
        The sampled sites that carry the fixed and random effects (``beta`` and ``u``, or
        ``beta`` and ``z`` in the non-centred model): the joint Gaussian block of the ``block``
        variational family.
    same_posterior_as : str, optional
        Name of a model with the same posterior over the public parameters (a
        reparameterisation of it); ratios may compare the two.
    """

    name: str
    label: str
    description: str
    likelihood: Likelihood
    hierarchical: bool
    parameters: Mapping[str, tuple[str, ...]]
    derived: Mapping[str, tuple[str, ...]]
    priors_type: type
    numpyro_path: str
    pymc_path: str
    internal: tuple[str, ...] = ()
    effects: tuple[str, ...] = ("beta",)
    same_posterior_as: str | None = None

    @property
    def posterior_name(self) -> str:
        """The model whose posterior this is (itself, or the one it reparameterises)."""
        return self.same_posterior_as or self.name

    @property
    def public_names(self) -> tuple[str, ...]:
        """Every public variable of a posterior, sampled then derived."""
        return tuple(self.parameters) + tuple(self.derived)

    def dims(self) -> dict[str, tuple[str, ...]]:
        """Dims of every public variable (without ``chain``/``draw``)."""
        return {**self.parameters, **self.derived}

    def priors(self, priors: Any = None, **overrides: Any) -> Any:
        """Prior hyper-parameters: defaults, a given instance, a mapping, and/or overrides.

        Raises
        ------
        ValueError
            If a name is not a hyper-parameter of this model (the valid ones are listed).
        """
        if isinstance(priors, self.priors_type):
            base = priors
        elif priors is None or isinstance(priors, Mapping):
            base = self.priors_type()
            overrides = {**dict(priors or {}), **overrides}
        else:
            raise ValueError(f"priors: expected {self.priors_type.__name__} or a mapping")
        valid = {f.name for f in fields(self.priors_type)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ValueError(
                f"priors: unknown hyper-parameter(s) {unknown} for model {self.name!r}; "
                f"valid: {sorted(valid)}"
            )
        return replace(base, **overrides)

    def check_data(self, data: RegressionData) -> RegressionData:
        """Raise ``ValueError`` if ``data`` cannot be fitted by this model; return it otherwise."""
        if not isinstance(data, RegressionData):
            raise ValueError(f"data: expected RegressionData, got {type(data).__name__}")
        if self.hierarchical:
            if data.group is None:
                raise ValueError(f"group: model {self.name!r} needs a group index")
            if data.n_groups < 2:
                raise ValueError(
                    f"group: model {self.name!r} needs at least 2 groups, got {data.n_groups}"
                )
        if self.likelihood == "bernoulli" and not np.all(np.isin(data.y, (0.0, 1.0))):
            values = np.unique(data.y[~np.isin(data.y, (0.0, 1.0))])[:5]
            raise ValueError(f"y: model {self.name!r} expects a 0/1 outcome, found {values}")
        return data

    def numpyro_model(self) -> Callable[..., None]:
        """The NumPyro model function (imported lazily)."""
        return _load(self.numpyro_path)

    def pymc_builder(self) -> Callable[..., Any]:
        """The PyMC model builder (imported lazily)."""
        return _load(self.pymc_path)


def _load(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)
