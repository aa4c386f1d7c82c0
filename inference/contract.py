"""Build the one `InferenceData` layout that every fit returns (``ARCHITECTURE.md``, "The
contract").

Engines hand over raw draws keyed by site name with leading ``(chain, draw)`` axes; this module
keeps the public parameters, adds the derived ``sigma_*``/``sigma2_*``, attaches coordinates,
data, sample statistics, the VI loss trace, the fitted variational parameters and provenance
attrs, and stamps the model facts that `analysis` needs (likelihood, VI1 label, which model's
posterior this is), so that `analysis` never keeps its own copy of them.
"""

from __future__ import annotations

import json
import platform
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from importlib import metadata
from typing import Any

import arviz as az
import numpy as np
import xarray as xr

from models.spec import ModelSpec, RegressionData, coords_of

VI_TRACE_GROUP = "vi_trace"
VARIATIONAL_GROUP = "variational"
_VERSIONED = ("vistudy", "numpy", "arviz", "xarray", "jax", "numpyro", "pymc", "pytensor")


def derived_quantities(posterior: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``sigma_* = tau_*^-1/2`` and ``sigma2_* = 1/tau_*`` for each precision present."""
    derived = {}
    for suffix in ("e", "u"):
        tau = posterior.get(f"tau_{suffix}")
        if tau is not None:
            tau = np.asarray(tau, dtype=float)
            derived[f"sigma_{suffix}"] = 1.0 / np.sqrt(tau)
            derived[f"sigma2_{suffix}"] = 1.0 / tau
    return derived


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a result depends on (absent ones skipped)."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def settings_dict(settings: Any) -> dict[str, Any]:
    """A settings dataclass (or mapping) as a plain JSON-ready dict."""
    if settings is None:
        return {}
    if is_dataclass(settings):
        return asdict(settings)
    return dict(settings)


def build_inference_data(
    spec: ModelSpec,
    data: RegressionData,
    draws: Mapping[str, np.ndarray],
    *,
    backend: str,
    method: str,
    seed: int,
    family: str | None = None,
    settings: Any = None,
    compile_time_s: float = 0.0,
    run_time_s: float = 0.0,
    sample_stats: Mapping[str, np.ndarray] | None = None,
    vi_loss: np.ndarray | None = None,
    analytic_moments: Mapping[str, Mapping[str, Any]] | None = None,
    variational: xr.Dataset | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
) -> az.InferenceData:
    """Assemble the contract `InferenceData` of one fit.

    Parameters
    ----------
    spec : ModelSpec
        The fitted model.
    data : RegressionData
        The data it was fitted to.
    draws : mapping of str to ndarray
        Draws in the constrained space with leading ``(chain, draw)`` axes, keyed by site name;
        sites that are not public parameters of ``spec`` are dropped, derived ones are added.
    backend, method : str
        Recorded in attrs.
    seed : int
        The fit's seed.
    family : str, optional
        The variational family of a VB fit (``mean_field``, ``block``, ``full_rank``); recorded
        in attrs (empty for samplers and exact posteriors) and in the ``label``
        ``backend/method:family``.
    settings : dataclass or mapping, optional
        The resolved settings, stored as JSON in ``attrs["settings"]``.
    compile_time_s, run_time_s : float
        Wall times of compilation and of the run itself.
    sample_stats : mapping, optional
        Sampler statistics with leading ``(chain, draw)`` axes (``diverging``, ``tree_depth``, ...).
    vi_loss : ndarray, optional
        Negative ELBO per step (or iteration); stored in the ``vi_trace`` group as ``loss`` and
        ``elbo`` along dim ``step``.
    analytic_moments : mapping, optional
        ``{name: {"mean": ..., "sd": ...}}`` of closed-form methods, stored as JSON in attrs.
    variational : xarray.Dataset, optional
        The fitted q's parameters (locations and scales, block means and Cholesky factors,
        CAVI's factor parameters), stored as the ``variational`` group so that corrections and
        diagnostics need no refit. Its attrs say how to read it (``layout``, ``space``).
    extra_attrs : mapping, optional
        More attrs for ``posterior`` (``dataset``, ``truth``, ...); non-scalar values become JSON.

    Returns
    -------
    arviz.InferenceData
        Groups ``posterior``, ``observed_data``, ``constant_data`` and, when given,
        ``sample_stats``, ``vi_trace`` and ``variational``.

    Raises
    ------
    ValueError
        If a public parameter of ``spec`` is missing from ``draws`` or has the wrong shape.
    """
    posterior = _public_draws(spec, data, draws)
    coords = coords_of(data)
    groups: dict[str, xr.Dataset] = {
        "posterior": _dataset(posterior, spec.dims(), coords, ("chain", "draw")),
        "observed_data": xr.Dataset({"y": (("obs",), data.y)}, coords={"obs": coords["obs"]}),
        "constant_data": _constant_data(data, coords),
    }
    if sample_stats:
        groups["sample_stats"] = _dataset(dict(sample_stats), {}, {}, ("chain", "draw"))
    if vi_loss is not None:
        loss = np.asarray(vi_loss, dtype=float)
        groups[VI_TRACE_GROUP] = xr.Dataset(
            {"loss": (("step",), loss), "elbo": (("step",), -loss)},
            coords={"step": np.arange(loss.size)},
        )
    if variational is not None:
        groups[VARIATIONAL_GROUP] = variational.assign_coords(
            {k: v for k, v in coords.items() if k in variational.dims}
        )
    attrs = _attrs(spec, data, backend, method, seed, settings, compile_time_s, run_time_s)
    attrs.update(_family_attrs(backend, method, family))
    if analytic_moments:
        attrs["analytic_moments"] = json.dumps(_jsonable(analytic_moments))
    for key, value in (extra_attrs or {}).items():
        attrs[key] = value if isinstance(value, str | int | float) else json.dumps(_jsonable(value))
    for name, dataset in groups.items():
        own = dict(dataset.attrs) if name == VARIATIONAL_GROUP else {}
        dataset.attrs.update({**attrs, **own})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*group is not defined in the InferenceData")
        return az.InferenceData(**groups)


def _public_draws(
    spec: ModelSpec, data: RegressionData, draws: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    sizes = {"coef": data.n_coef, "group": data.n_groups}
    public: dict[str, np.ndarray] = {}
    for name, dims in spec.parameters.items():
        if name not in draws:
            raise ValueError(f"draws: missing public parameter {name!r} of model {spec.name!r}")
        value = np.asarray(draws[name], dtype=float)
        expected = tuple(sizes[dim] for dim in dims)
        if value.ndim != 2 + len(dims) or value.shape[2:] != expected:
            raise ValueError(
                f"draws.{name}: expected shape (chain, draw, *{expected}), got {value.shape}"
            )
        public[name] = value
    public.update(derived_quantities(public))
    return public


def _dataset(
    arrays: Mapping[str, np.ndarray],
    dims: Mapping[str, tuple[str, ...]],
    coords: Mapping[str, list],
    leading: tuple[str, ...],
) -> xr.Dataset:
    variables = {}
    for name, value in arrays.items():
        value = np.asarray(value)
        var_dims = dims.get(name) or tuple(f"{name}_dim_{i}" for i in range(value.ndim - 2))
        variables[name] = (leading + tuple(var_dims), value)
    first = np.asarray(next(iter(arrays.values())))
    used = {d for _, (var_dims, _) in variables.items() for d in var_dims}
    all_coords = {
        "chain": np.arange(first.shape[0]),
        "draw": np.arange(first.shape[1]),
        **{k: v for k, v in coords.items() if k in used},
    }
    return xr.Dataset(variables, coords=all_coords)


def _constant_data(data: RegressionData, coords: Mapping[str, list]) -> xr.Dataset:
    variables: dict[str, Any] = {"X": (("obs", "coef"), data.X)}
    if data.group is not None:
        variables["group"] = (("obs",), data.group)
    return xr.Dataset(variables, coords={"obs": coords["obs"], "coef": coords["coef"]})


def _attrs(
    spec: ModelSpec,
    data: RegressionData,
    backend: str,
    method: str,
    seed: int,
    settings: Any,
    compile_time_s: float,
    run_time_s: float,
) -> dict[str, Any]:
    return {
        "model": spec.name,
        "model_label": spec.label,
        "likelihood": spec.likelihood,
        "posterior_model": spec.posterior_name,
        "backend": backend,
        "method": method,
        "seed": int(seed),
        "dataset": data.name,
        "n_groups": int(data.n_groups),
        "n_obs": int(data.n_obs),
        "settings": json.dumps(_jsonable(settings_dict(settings))),
        "compile_time_s": float(compile_time_s),
        "run_time_s": float(run_time_s),
        "versions": json.dumps(package_versions()),
        "run_id": uuid.uuid4().hex,
        "inference_library": backend,
    }


def _family_attrs(backend: str, method: str, family: str | None) -> dict[str, str]:
    """``family``, ``label`` and ``role`` of a fit (role empty for an unregistered engine)."""
    from inference.registry import REGISTRY, make_label

    entry = REGISTRY.get((backend, method, family))
    return {
        "family": family or "",
        "label": make_label(backend, method, family),
        "role": entry.role if entry is not None else "",
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def analytic_moments(idata: az.InferenceData) -> dict[str, dict[str, Any]]:
    """The closed-form moments stored by exact/CAVI fits (empty for sampling methods)."""
    raw = idata.posterior.attrs.get("analytic_moments")
    return json.loads(raw) if raw else {}
