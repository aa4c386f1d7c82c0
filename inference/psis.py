"""Pareto k̂ of a VB fit: can its q serve as an importance-sampling proposal for the posterior?

Draw ``theta_s ~ q`` (S = `PSIS_DRAWS`) from the fit's kept ``variational`` group, weigh each by
``log w_s = log p(theta_s, y) - log q(theta_s)`` and fit a generalised Pareto distribution to the
largest weights (Pareto-smoothed importance sampling, ``arviz.psislw``). Its shape k̂ estimates
how heavy the tail of ``w = p / q`` is, so how far q's mass is from the posterior's:

- ``k̂ < 0.5``: the weights have finite variance; q is close to the posterior, and importance
  sampling corrects what is left (Yao, Vehtari, Simpson & Gelman 2018, "Yes, but did it
  work?: evaluating variational inference", ICML, Sec. 3: below 0.5 the VB answer is trusted).
- ``0.5 <= k̂ < 0.7``: the variance is infinite but PSIS estimates still converge at a
  practical rate; q is usable with the correction (Vehtari, Simpson, Gelman, Yao & Gabry 2024,
  "Pareto smoothed importance sampling", JMLR 25(72), Sec. 3.2.4). With S draws the threshold is
  ``min(1 - 1 / log10(S), 0.7)`` (0.70 at S = 2000).
- ``k̂ >= 0.7``: the estimates are unreliable; q misses a region that matters, typically by being
  too narrow (the under-dispersion of mean-field VB) or by missing a dependence.

The spaces match: an ADVI (or LRVB) q is a Gaussian over the unconstrained latents (``log tau``),
so ``log p`` is the unconstrained log joint, Jacobian included; a CAVI q has Gamma factors over
``tau`` itself, so ``log p`` is the constrained log joint. Weights are invariant to the choice,
but both sides must make the same one (`inference.log_density.log_joint`). The draws use their
own random stream (``numpy.random.default_rng([seed, PSIS_STREAM])``), independent of the fit's.
``fit`` stamps ``psis_khat`` and ``psis_draws`` on every group of each VB fit (`stamp_psis`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import arviz as az
import numpy as np
import xarray as xr
from scipy import special

from inference.log_density import latent_sites, log_joint
from models.spec import ModelSpec, RegressionData

_log = logging.getLogger(__name__)

PSIS_DRAWS = 2_000
PSIS_STREAM = 0x9515
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

Sampler = Callable[[np.random.Generator, int], tuple[dict[str, np.ndarray], np.ndarray]]


@dataclass(frozen=True)
class Proposal:
    """A fitted q as a sampler: ``sample(rng, n) -> ({site: draws}, log q)`` in ``space``."""

    space: str
    sample: Sampler


def proposal(variational: xr.Dataset, spec: ModelSpec) -> Proposal:
    """The q kept in a fit's ``variational`` group (ADVI, LRVB or CAVI layout).

    Raises
    ------
    ValueError
        For a layout this module does not read (an LRVB fit too large to keep ``lrvb_cov``).
    """
    layout = variational.attrs.get("layout")
    if layout == "cavi":
        return Proposal("constrained", partial_sampler(_cavi_sample, variational, spec))
    if layout == "lrvb":
        if "lrvb_cov" not in variational:
            raise ValueError("variational: no dense lrvb_cov kept (too many latents) to weigh")
        sites = [tuple(site) for site in json.loads(variational.attrs["sites"])]
        block = (sites, variational["lrvb_loc"].values, variational["lrvb_cov"].values)
        return Proposal("unconstrained", partial_sampler(_gaussian_sample, [], [block]))
    layout = json.loads(layout)
    diagonal = [
        (site, variational[f"{site}_loc"].values, variational[f"{site}_scale"].values)
        for site in layout["diagonal"]
    ]
    dense = [
        (
            [tuple(site) for site in sites],
            variational[f"{name}_loc"].values,
            _covariance(variational[f"{name}_scale_tril"].values),
        )
        for name, sites in layout["dense"].items()
    ]
    return Proposal("unconstrained", partial_sampler(_gaussian_sample, diagonal, dense))


def partial_sampler(function: Callable[..., Any], *args: Any) -> Sampler:
    """``function(rng, n, *args)`` as a `Sampler`."""
    return lambda rng, n: function(rng, n, *args)


def _covariance(scale_tril: np.ndarray) -> np.ndarray:
    return scale_tril @ scale_tril.T


def _gaussian_sample(rng: np.random.Generator, n: int, diagonal: list, dense: list) -> tuple:
    """Independent Gaussians: diagonal ``(site, loc, scale)``, dense ``(sites, loc, cov)``."""
    values: dict[str, np.ndarray] = {}
    log_q = np.zeros(n)
    for site, loc, scale in diagonal:
        draws, log_density = _normal(rng, n, loc, scale)
        values[site] = draws if np.ndim(loc) else draws[:, 0]
        log_q += log_density
    for sites, loc, cov in dense:
        draws, log_density = _multivariate_normal(rng, n, loc, cov)
        log_q += log_density
        start = 0
        for site, size in sites:
            block = draws[:, start : start + size]
            values[site] = block if site in ("beta", "u", "z") else block[:, 0]
            start += size
    return values, log_q


def _normal(rng: np.random.Generator, n: int, loc: Any, scale: Any) -> tuple:
    """``(n, k)`` draws of independent normals and their log density (one pass over the draws)."""
    loc, scale = np.atleast_1d(loc), np.atleast_1d(scale)
    z = rng.standard_normal((n, loc.size))
    log_density = -0.5 * np.einsum("ij,ij->i", z, z) - (
        np.sum(np.log(scale)) + loc.size * _HALF_LOG_2PI
    )
    z *= scale
    z += loc
    return z, log_density


def _multivariate_normal(rng: np.random.Generator, n: int, loc: np.ndarray, cov: np.ndarray):
    chol = np.linalg.cholesky(cov)
    z = rng.standard_normal((n, loc.size))
    log_density = -0.5 * np.einsum("ij,ij->i", z, z) - (
        np.sum(np.log(np.diag(chol))) + loc.size * _HALF_LOG_2PI
    )
    return loc + z @ chol.T, log_density


def _cavi_sample(rng: np.random.Generator, n: int, var: xr.Dataset, spec: ModelSpec) -> tuple:
    """CAVI's factors: ``beta``, ``u`` (given ``beta`` in the block family), Gamma precisions."""
    beta, log_q = _multivariate_normal(rng, n, var["beta_mean"].values, var["beta_cov"].values)
    values = {"beta": beta}
    if "u_mean" in var:
        mean, sd = var["u_mean"].values, np.sqrt(var["u_var"].values)
        if "beta_u_cov" in var:
            slope = np.linalg.solve(var["beta_cov"].values, var["beta_u_cov"].values)
            mean = mean + (beta - var["beta_mean"].values) @ slope
            sd = 1.0 / np.sqrt(var["u_prec"].values)
        values["u"], log_density = _normal(rng, n, np.zeros(sd.size), sd)
        values["u"] += mean
        log_q += log_density
    for site in latent_sites(spec)[1:]:
        if site.startswith("tau_"):
            shape, rate = float(var[f"{site}_shape"]), float(var[f"{site}_rate"])
            tau = rng.gamma(shape, 1.0 / rate, size=n)
            values[site] = tau
            log_q += (
                shape * math.log(rate) - special.gammaln(shape) + (shape - 1.0) * np.log(tau)
            ) - rate * tau
    return values, log_q


def psis_khat(
    variational: xr.Dataset,
    spec: ModelSpec,
    data: RegressionData,
    priors: Any,
    *,
    seed: int = 0,
    num_draws: int = PSIS_DRAWS,
) -> tuple[float, np.ndarray]:
    """Pareto k̂ of the importance weights ``p(theta, y) / q(theta)``, ``theta ~ q``.

    Parameters
    ----------
    variational : xarray.Dataset
        A VB fit's ``variational`` group.
    spec : ModelSpec
    data : RegressionData
        The data it was fitted to.
    priors : dataclass
        Its prior hyper-parameters.
    seed : int
        The fit's seed (the draws use the stream ``[seed, PSIS_STREAM]``).
    num_draws : int
        S, draws from q.

    Returns
    -------
    khat : float
    log_weights : ndarray, shape (S,)
        Raw (unsmoothed, unnormalised) ``log p - log q``.
    """
    q = proposal(variational, spec)
    values, log_q = q.sample(np.random.default_rng([seed, PSIS_STREAM]), num_draws)
    log_weights = log_joint(spec, values, data, priors, space=q.space) - log_q
    finite = log_weights[np.isfinite(log_weights)]
    if finite.size < log_weights.size:
        _log.warning(
            "PSIS: %d of %d log weights not finite", log_weights.size - finite.size, num_draws
        )
    _, khat = az.psislw(np.where(np.isnan(log_weights), -np.inf, log_weights))
    return float(khat), log_weights


def stamp_psis(
    idata: az.InferenceData,
    spec: ModelSpec,
    data: RegressionData,
    priors: Any,
    *,
    seed: int = 0,
    num_draws: int = PSIS_DRAWS,
) -> float:
    """Compute k̂ of a VB fit and store ``psis_khat`` and ``psis_draws`` on every group.

    A fit whose q cannot be weighed (`proposal` raises) gets ``psis_khat = nan`` and a log line.

    Returns
    -------
    float
        k̂.
    """
    try:
        khat, _ = psis_khat(idata.variational, spec, data, priors, seed=seed, num_draws=num_draws)
    except ValueError as error:
        _log.warning(
            "PSIS k-hat not computed for %s: %s", idata.posterior.attrs.get("label"), error
        )
        khat = math.nan
    for group in idata.groups():
        idata[group].attrs["psis_khat"] = khat
        idata[group].attrs["psis_draws"] = int(num_draws)
    return khat
