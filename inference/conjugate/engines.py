"""Backend ``conjugate``: closed-form and conditionally conjugate algorithms, in NumPy.

- `exact`: the Normal–Gamma posterior of the linear model (`inference.conjugate.exact`).
- `cavi`: coordinate-ascent VB with closed-form updates, family ``mean_field``
  (`inference.conjugate.cavi` for the Gaussian models, Ormerod & Wand 2010;
  `inference.conjugate.cavi_pg` for the logistic model with Pólya-Gamma augmentation, Durante &
  Rigon 2019) or ``block`` (q(beta, u) jointly Gaussian, `inference.conjugate.cavi_block`).
- `gibbs`: conditionally conjugate Gibbs samplers (`inference.conjugate.gibbs`;
  `inference.conjugate.gibbs_pg` with Pólya-Gamma draws for the logistic model).

Each engine satisfies `inference.engine.Engine` and returns the contract `InferenceData` of
`inference.contract`. Exact and CAVI store their analytic moments in
``posterior.attrs["analytic_moments"]`` and their draws as one chain; CAVI stores its ELBO per
sweep in ``vi_trace`` and its factors' parameters in ``variational``; Gibbs stores ``lp`` (log
joint density of the data and the parameters, constrained space) and ``diverging`` (all False)
in ``sample_stats``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import arviz as az
import numpy as np
import xarray as xr

from inference.conjugate.cavi import cavi_linear, cavi_random_intercept
from inference.conjugate.cavi_block import cavi_block_logistic, cavi_block_random_intercept
from inference.conjugate.cavi_pg import cavi_logistic
from inference.conjugate.exact import normal_gamma_posterior
from inference.conjugate.gibbs import gibbs_linear, gibbs_random_intercept
from inference.conjugate.gibbs_pg import gibbs_logistic
from inference.conjugate.stats import GaussianStats
from inference.contract import build_inference_data
from models.spec import ModelSpec, RegressionData

BACKEND = "conjugate"

# (model, family) -> CAVI algorithm. The linear model has one Gaussian block, beta, in both.
CAVI_FITS: dict[tuple[str, str], Callable[..., Any]] = {
    ("linear", "mean_field"): cavi_linear,
    ("linear", "block"): cavi_linear,
    ("random_intercept", "mean_field"): cavi_random_intercept,
    ("random_intercept", "block"): cavi_block_random_intercept,
    ("logistic_random_intercept", "mean_field"): cavi_logistic,
    ("logistic_random_intercept", "block"): cavi_block_logistic,
}
GIBBS_SAMPLERS: dict[str, Callable[..., Any]] = {
    "linear": gibbs_linear,
    "random_intercept": gibbs_random_intercept,
    "random_intercept_nc": gibbs_random_intercept,
    "logistic_random_intercept": gibbs_logistic,
}
SUPPORTED: dict[str, tuple[str, ...]] = {
    "exact": ("linear",),
    "cavi": tuple(dict.fromkeys(model for model, _ in CAVI_FITS)),
    "gibbs": tuple(GIBBS_SAMPLERS),
}


def check_supported(method: str, spec: ModelSpec) -> None:
    """Raise ``ValueError`` naming the model and the supported ones if ``method`` can't fit it."""
    if spec.name not in SUPPORTED[method]:
        raise ValueError(
            f"model: conjugate/{method} cannot fit model {spec.name!r}; "
            f"it fits {list(SUPPORTED[method])}"
        )


def factors_dataset(
    factors: dict[str, tuple[tuple[str, ...], np.ndarray]], family: str
) -> xr.Dataset:
    """The ``variational`` group of a CAVI fit: its factors' parameters, constrained space."""
    return xr.Dataset(
        {name: (dims, np.asarray(value, dtype=float)) for name, (dims, value) in factors.items()},
        attrs={"family": family, "space": "constrained", "layout": "cavi"},
    )


def exact(
    spec: ModelSpec,
    data: RegressionData,
    *,
    priors: Any,
    settings: Any,
    seed: int,
    family: str | None = None,
    progressbar: bool = False,
) -> az.InferenceData:
    """Exact Normal–Gamma posterior of the linear model: analytic moments and iid draws.

    Parameters
    ----------
    spec : ModelSpec
        Must be ``linear``.
    data : RegressionData
    priors : LinearPriors
    settings : ExactSettings
        ``num_draws`` independent draws, stored as one chain.
    seed : int
        Seed of ``np.random.default_rng`` for the draws.
    progressbar : bool
        Unused (nothing iterates).

    Returns
    -------
    arviz.InferenceData
        With ``posterior.attrs["analytic_moments"]`` (``beta``, ``tau_e``, ``sigma2_e``,
        ``sigma_e``; ``beta``'s SD from its Student-t marginal).

    Raises
    ------
    ValueError
        If ``spec`` is not the linear model.

    See Also
    --------
    inference.conjugate.exact.normal_gamma_posterior : the update formulas.
    """
    check_supported("exact", spec)
    started = time.perf_counter()
    posterior = normal_gamma_posterior(GaussianStats.of(data), priors)
    draws = posterior.draw(np.random.default_rng(seed), settings.num_draws)
    run_time = time.perf_counter() - started
    return build_inference_data(
        spec,
        data,
        draws,
        backend=BACKEND,
        method="exact",
        seed=seed,
        settings=settings,
        run_time_s=run_time,
        analytic_moments=posterior.moments(),
    )


def cavi(
    spec: ModelSpec,
    data: RegressionData,
    *,
    priors: Any,
    settings: Any,
    seed: int,
    family: str | None = "mean_field",
    progressbar: bool = False,
) -> az.InferenceData:
    """Coordinate-ascent VB with closed-form updates, mean-field or block.

    Parameters
    ----------
    spec : ModelSpec
        ``linear``, ``random_intercept`` or ``logistic_random_intercept``.
    data : RegressionData
    priors
        The model's priors dataclass.
    settings : CaviSettings
        ``max_iter``, ``tol`` (stop when the ELBO gains less than ``tol * |ELBO|`` in a sweep)
        and ``num_draws`` (draws from the product of the q factors, one chain).
    seed : int
        Seed of the draws (the fit itself is deterministic).
    family : {"mean_field", "block"}
        ``q(beta) q(u) q(tau_e) q(tau_u)`` or ``q(beta, u) q(tau_e) q(tau_u)``.
    progressbar : bool
        Show a tqdm bar over sweeps.

    Returns
    -------
    arviz.InferenceData
        ``vi_trace`` holds the ELBO per sweep (``elbo``; ``loss = -elbo``); posterior attrs hold
        ``analytic_moments`` of every public parameter, ``cavi_iterations``, ``cavi_converged``;
        ``variational`` holds the factors' parameters.

    Raises
    ------
    ValueError
        If ``spec`` is not a supported model.

    See Also
    --------
    inference.conjugate.cavi, inference.conjugate.cavi_pg : the update formulas and the ELBO.
    """
    check_supported("cavi", spec)
    family = family or "mean_field"
    started = time.perf_counter()
    result = CAVI_FITS[(spec.name, family)](
        data, priors, settings, np.random.default_rng(seed), progressbar=progressbar
    )
    run_time = time.perf_counter() - started
    return build_inference_data(
        spec,
        data,
        result.draws,
        backend=BACKEND,
        method="cavi",
        family=family,
        seed=seed,
        settings=settings,
        run_time_s=run_time,
        vi_loss=-result.elbo,
        analytic_moments=result.moments,
        variational=factors_dataset(result.factors, family),
        extra_attrs={
            "cavi_iterations": result.info["n_iter"],
            "cavi_converged": int(result.converged),
            "cavi_elbo": result.info["elbo"],
        },
    )


def gibbs(
    spec: ModelSpec,
    data: RegressionData,
    *,
    priors: Any,
    settings: Any,
    seed: int,
    family: str | None = None,
    progressbar: bool = False,
) -> az.InferenceData:
    """Conditionally conjugate Gibbs sampler, several chains with over-dispersed starts.

    Parameters
    ----------
    spec : ModelSpec
        ``linear``, ``random_intercept``, ``random_intercept_nc`` (sampled centred: the same
        posterior of the public parameters) or ``logistic_random_intercept`` (Pólya-Gamma).
    data : RegressionData
    priors
        The model's priors dataclass.
    settings : GibbsSettings
        ``num_chains``, ``num_burnin``, ``num_draws``, ``thin``.
    seed : int
        Chain ``c`` uses ``np.random.default_rng(seed).spawn(num_chains)[c]``; the same seed gives
        identical draws.
    progressbar : bool
        Show a tqdm bar over sweeps.

    Returns
    -------
    arviz.InferenceData
        ``sample_stats`` has ``lp`` and ``diverging`` (all False).

    Raises
    ------
    ValueError
        If ``spec`` is not a supported model.

    See Also
    --------
    inference.conjugate.gibbs, inference.conjugate.gibbs_pg : the full conditionals.
    """
    check_supported("gibbs", spec)
    started = time.perf_counter()
    result = GIBBS_SAMPLERS[spec.name](data, priors, settings, seed, progressbar=progressbar)
    run_time = time.perf_counter() - started
    sample_stats = {"lp": result.lp, "diverging": np.zeros(result.lp.shape, dtype=bool)}
    return build_inference_data(
        spec,
        data,
        result.draws,
        backend=BACKEND,
        method="gibbs",
        seed=seed,
        settings=settings,
        run_time_s=run_time,
        sample_stats=sample_stats,
        extra_attrs={"sweeps_per_second": _sweeps_per_second(settings, run_time)},
    )


def _sweeps_per_second(settings: Any, run_time: float) -> float:
    sweeps = settings.num_burnin + settings.num_draws * settings.thin
    return float(sweeps / run_time) if run_time > 0 else float("inf")
