"""LRVB of fitted VB runs, and the ``+lrvb`` engines (``numpyro/advi:mean_field+lrvb``, ...).

A mean-field or block fit (ADVI of either PPL, or CAVI) keeps its q in the ``variational``
group; `linear_response` reads it, moves it to a true stationary point of its KL objective and
returns ``N(E_q theta, Sigma_LR)`` over the unconstrained latents (`inference.lr_solver` has the
mathematics: Giordano, Broderick & Jordan 2018, "Covariances, robustness, and variational
Bayes", JMLR 19(51)). Which objective: the family's own. An ADVI q is Gaussian over ``log tau``
and its KL is the exact one (Gauss-Hermite for the logistic likelihood); a CAVI q has Gamma
factors over ``tau`` and, for the logistic model, the Pólya-Gamma (Jaakkola-Jordan) bound it
maximised. A block ADVI fit's dense factor over ``(beta, u)`` is read as ``q(beta) q(u | beta)``
(`inference.lr_solver`: its u-u conditional correlations do not enter ``Sigma_LR``).

The engines of the registry's ``<family>+lrvb`` entries run the base fit of ``<family>`` through
its own engine, correct it and return the contract of a VB fit whose draws come from
``N(E_q theta, Sigma_LR)`` mapped to the constrained space: ``tau = exp(zeta)``, and for the
non-centred model ``u = z exp(-zeta_u / 2)``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import arviz as az
import numpy as np
import xarray as xr

from inference.log_density import latent_sites, model_terms
from inference.lr_solver import LOCAL_SITES, LinearResponse, Problem, pack, solve
from inference.vi import lognormal_moments
from models.spec import ModelSpec, RegressionData

DENSE_COVARIANCE_MAX = 1_000
"""Latent dimension up to which ``lrvb_cov`` is stored dense; beyond it the group keeps
``lrvb_diag`` and ``lrvb_factor``, ``Sigma_LR = diag(lrvb_diag) + lrvb_factor lrvb_factor'``."""


# --- from a fitted q ---------------------------------------------------------------------------


def problem_of(
    spec: ModelSpec,
    data: RegressionData,
    priors: Any,
    *,
    dense: bool,
    conditional: bool,
    cavi: bool,
) -> Problem:
    """The `Problem` of a fitted q of ``spec`` (ADVI: lognormal precisions, exact logistic KL;
    CAVI: Gamma precisions, the Jaakkola-Jordan bound)."""
    sites = latent_sites(spec)
    local = sites[1] if len(sites) > 1 and sites[1] in LOCAL_SITES else None
    return Problem(
        model=spec.name,
        n_coef=data.n_coef,
        n_groups=data.n_groups if local else 0,
        local=local,
        taus=tuple(name for name in sites if name.startswith("tau_")),
        beta_cov="dense" if dense else "diag",
        conditional=bool(conditional and local),
        tau_family="gamma" if cavi else "lognormal",
        bernoulli="jaakkola_jordan" if cavi else "gauss_hermite",
        priors=priors,
    )


def start_of(
    variational: xr.Dataset, spec: ModelSpec, data: RegressionData, priors: Any
) -> tuple[Problem, np.ndarray]:
    """The `Problem` and ``eta`` of a fit's ``variational`` group (ADVI or CAVI).

    Raises
    ------
    ValueError
        For a family other than ``mean_field`` or ``block``.
    """
    family = variational.attrs.get("family")
    if family not in ("mean_field", "block"):
        raise ValueError(f"family: LRVB corrects mean_field and block fits, got {family!r}")
    if variational.attrs.get("space") == "constrained":
        return _cavi_start(variational, spec, data, priors)
    return _advi_start(variational, spec, data, priors)


def _advi_start(var: xr.Dataset, spec: ModelSpec, data: RegressionData, priors: Any) -> tuple:
    dense = json.loads(var.attrs["layout"])["dense"].get("block")
    problem = problem_of(spec, data, priors, dense=bool(dense), conditional=bool(dense), cavi=False)
    taus = [[float(var[f"{t}_loc"]), math.log(float(var[f"{t}_scale"]))] for t in problem.taus]
    if dense:
        parts = _dense_block(var, dense, problem.local)
    else:
        parts = {
            "beta_mean": var["beta_loc"].values,
            "beta_factor": np.diag(var["beta_scale"].values),
        }
        if problem.local:
            parts |= {
                "local_mean": var[f"{problem.local}_loc"].values,
                "local_sd": var[f"{problem.local}_scale"].values,
            }
    return problem, pack(problem, taus=np.array(taus), **parts)


def _dense_block(var: xr.Dataset, sites: list, local: str | None) -> dict[str, np.ndarray]:
    """``q(beta) q(u | beta)`` of ADVI's dense factor over ``beta`` (and ``u`` or ``z``)."""
    positions, start = {}, 0
    for name, size in sites:
        positions[name] = np.arange(start, start + size)
        start += size
    loc, tril = var["block_loc"].values, var["block_scale_tril"].values
    rows_b = tril[positions["beta"]]
    cov_bb = rows_b @ rows_b.T
    parts = {"beta_mean": loc[positions["beta"]], "beta_factor": np.linalg.cholesky(cov_bb)}
    if local is None:
        return parts
    rows_u = tril[positions[local]]
    cov_ub = rows_u @ rows_b.T
    slope = np.linalg.solve(cov_bb, cov_ub.T).T
    cond_var = np.sum(rows_u**2, axis=1) - np.sum(slope * cov_ub, axis=1)
    return parts | {
        "local_mean": loc[positions[local]],
        "local_sd": np.sqrt(cond_var),
        "local_slope": slope,
    }


def _cavi_start(var: xr.Dataset, spec: ModelSpec, data: RegressionData, priors: Any) -> tuple:
    """CAVI's factors; in the block family ``u | beta`` has slope ``beta_u_cov' beta_cov^-1``
    and variance ``1 / u_prec`` (`inference.conjugate.cavi_block`)."""
    block = "beta_u_cov" in var
    problem = problem_of(spec, data, priors, dense=True, conditional=block, cavi=True)
    taus = [[math.log(float(var[f"{t}_{k}"])) for k in ("shape", "rate")] for t in problem.taus]
    cov_bb = var["beta_cov"].values
    parts = {"beta_mean": var["beta_mean"].values, "beta_factor": np.linalg.cholesky(cov_bb)}
    if problem.local and block:
        parts |= {
            "local_mean": var["u_mean"].values,
            "local_sd": 1.0 / np.sqrt(var["u_prec"].values),
            "local_slope": np.linalg.solve(cov_bb, var["beta_u_cov"].values).T,
        }
    elif problem.local:
        parts |= {"local_mean": var["u_mean"].values, "local_sd": np.sqrt(var["u_var"].values)}
    return problem, pack(problem, taus=np.array(taus), **parts)


def linear_response(
    idata: az.InferenceData,
    spec: ModelSpec,
    data: RegressionData,
    priors: Any,
    *,
    hessian: str = "structured",
) -> LinearResponse:
    """LRVB of a fitted mean-field or block q (ADVI of either PPL, or CAVI).

    Parameters
    ----------
    idata : arviz.InferenceData
        A VB fit with its ``variational`` group.
    spec : ModelSpec
    data : RegressionData
        The data it was fitted to.
    priors : dataclass
        Its prior hyper-parameters.
    hessian : {"structured", "dense"}
        See `solve`.

    Returns
    -------
    LinearResponse
        ``N(loc, Sigma_LR)`` over the unconstrained latents.
    """
    import jax.numpy as jnp

    problem, eta = start_of(idata.variational, spec, data, priors)
    terms = {k: jnp.asarray(v) for k, v in model_terms(spec, data).items()}
    return solve(problem, eta, terms, hessian=hessian)


# --- the +lrvb engines -------------------------------------------------------------------------

_BASE_ATTRS = ("vi_steps", "vi_converged", "cavi_iterations", "cavi_converged", "cavi_elbo")


def numpyro_advi(spec: ModelSpec, data: RegressionData, **options: Any) -> az.InferenceData:
    """``numpyro/advi:<family>+lrvb``: NumPyro's ADVI of the base family, corrected."""
    return corrected_fit("numpyro", "advi", spec, data, **options)


def pymc_advi(spec: ModelSpec, data: RegressionData, **options: Any) -> az.InferenceData:
    """``pymc/advi:<family>+lrvb``: PyMC's ADVI of the base family, corrected."""
    return corrected_fit("pymc", "advi", spec, data, **options)


def conjugate_cavi(spec: ModelSpec, data: RegressionData, **options: Any) -> az.InferenceData:
    """``conjugate/cavi:<family>+lrvb``: CAVI of the base family, corrected."""
    return corrected_fit("conjugate", "cavi", spec, data, **options)


def corrected_fit(
    backend: str,
    method: str,
    spec: ModelSpec,
    data: RegressionData,
    *,
    priors: Any,
    settings: Any,
    seed: int,
    family: str | None,
    progressbar: bool = False,
) -> az.InferenceData:
    """Run the base VB fit of ``family`` (without its ``+lrvb``) and return its LRVB variant.

    Parameters
    ----------
    backend, method : str
        The base entry's (``numpyro``/``pymc`` ``advi``, ``conjugate`` ``cavi``).
    spec, data, priors, settings, seed, progressbar
        As for every engine (`inference.engine.Engine`); ``settings`` are the base method's.
    family : str
        ``mean_field+lrvb`` or ``block+lrvb``.

    Returns
    -------
    arviz.InferenceData
        The contract: ``settings.num_draws`` draws of ``N(E_q theta, Sigma_LR)`` in the
        constrained space, ``analytic_moments`` (Gaussian ``beta`` and ``u``, log-normal
        precisions and ``sigma``), the base fit's ``vi_trace``, a ``variational`` group with
        ``lrvb_loc``, ``lrvb_sd`` and ``lrvb_cov`` (or ``lrvb_diag``, ``lrvb_factor``), and attrs
        ``lrvb_seconds``, ``lrvb_compile_s``, ``lrvb_grad_norm``, ``lrvb_newton_steps``,
        ``lrvb_base_label``.
    """
    from inference.contract import build_inference_data
    from inference.registry import base_family, lookup

    base_entry = lookup(backend, method, base_family(family))
    base = base_entry.load()(
        spec,
        data,
        priors=priors,
        settings=settings,
        seed=seed,
        family=base_entry.family,
        progressbar=progressbar,
    )
    lr = linear_response(base, spec, data, priors)
    draws = constrained_draws(lr, np.random.default_rng(seed), settings.num_draws)
    attrs = base.posterior.attrs
    extra = {key: attrs[key] for key in _BASE_ATTRS if key in attrs}
    extra |= {
        "lrvb_seconds": lr.seconds,
        "lrvb_compile_s": lr.compile_time_s,
        "lrvb_grad_norm": lr.grad_norm,
        "lrvb_newton_steps": lr.newton_steps,
        "lrvb_base_label": base_entry.label,
    }
    return build_inference_data(
        spec,
        data,
        draws,
        backend=backend,
        method=method,
        family=family,
        seed=seed,
        settings=settings,
        compile_time_s=float(attrs["compile_time_s"]) + lr.compile_time_s,
        run_time_s=float(attrs["run_time_s"]) + lr.seconds - lr.compile_time_s,
        vi_loss=base.vi_trace["loss"].values,
        analytic_moments=analytic_moments(lr),
        variational=lrvb_dataset(lr, family),
        extra_attrs=extra,
    )


def constrained_draws(
    lr: LinearResponse, rng: np.random.Generator, num_draws: int
) -> dict[str, np.ndarray]:
    """Draws of ``N(loc, Sigma_LR)`` as public parameters, leading ``(chain=1, draw)`` axes:
    ``tau = exp(zeta)``, and ``u = z exp(-zeta_u / 2)`` for the non-centred model."""
    values = lr.split(lr.sample(rng, num_draws))
    draws = {name: np.exp(value) for name, value in values.items() if name.startswith("tau_")}
    draws["beta"] = values["beta"]
    if "u" in values:
        draws["u"] = values["u"]
    if "z" in values:
        draws["u"] = values["z"] * np.exp(-0.5 * values["tau_u"])[:, None]
    return {name: value[None] for name, value in draws.items()}


def analytic_moments(lr: LinearResponse) -> dict[str, dict[str, Any]]:
    """Means and SDs under ``N(loc, Sigma_LR)``: Gaussian ``beta`` and ``u`` (centred models),
    log-normal ``tau = exp(zeta)``, ``sigma2 = exp(-zeta)``, ``sigma = exp(-zeta / 2)``."""
    loc, sd = lr.split(lr.loc), lr.split(lr.sd())
    moments = {}
    for name in ("beta", "u"):
        if name in loc:
            moments[name] = {"mean": loc[name].tolist(), "sd": sd[name].tolist()}
    for name in loc:
        if name.startswith("tau_"):
            suffix = name.removeprefix("tau_")
            for target, power in (
                (name, 1.0),
                (f"sigma2_{suffix}", -1.0),
                (f"sigma_{suffix}", -0.5),
            ):
                mean, sd_target = lognormal_moments(float(loc[name]), float(sd[name]), power)
                moments[target] = {"mean": float(mean), "sd": float(sd_target)}
    return moments


def lrvb_dataset(lr: LinearResponse, family: str) -> xr.Dataset:
    """The ``variational`` group of an LRVB fit (unconstrained space, layout ``lrvb``)."""
    row, col = "lrvb_latent", "lrvb_latent_col"
    variables: dict[str, Any] = {"lrvb_loc": ((row,), lr.loc), "lrvb_sd": ((row,), lr.sd())}
    coords: dict[str, Any] = {row: lr.labels}
    if lr.loc.size <= DENSE_COVARIANCE_MAX:
        variables["lrvb_cov"] = ((row, col), lr.covariance())
        coords[col] = lr.labels
    else:
        variables["lrvb_diag"] = ((row,), lr.diag)
        variables["lrvb_factor"] = ((row, "lrvb_rank"), lr.factor)
    transforms = {name: "log" if name.startswith("tau_") else "identity" for name, _ in lr.sites}
    return xr.Dataset(
        variables,
        coords=coords,
        attrs={
            "family": family,
            "space": "unconstrained",
            "layout": "lrvb",
            "transforms": json.dumps(transforms),
            "sites": json.dumps([list(site) for site in lr.sites]),
        },
    )
