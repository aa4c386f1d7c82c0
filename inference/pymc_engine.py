"""PyMC engines: mean-field ADVI (`pm.ADVI`) and NUTS (PyMC's own sampler).

The PyMC model of a problem (model, priors, settings, shape of the data) is built once, with its
data in ``pm.Data`` containers, and kept in a module-level cache; a later fit to new data of the
same shape swaps the data in with ``pm.set_data``.

ADVI
    `pm.ADVI` (mean-field Gaussian in the unconstrained space, ``sd = softplus(rho)``) started at
    the model's initial point (the prior means, as NumPyro's ``init_to_mean``) with every
    ``sd = init_scale`` (``start_sigma``), ``num_particles`` samples per step (``obj_n_mc``) and
    `pm.adam` whose step size is a shared variable set before every step to the schedule of
    `inference._vi`; the steps run in windows under the same convergence rule as NumPyro. The
    compiled step function is cached with the model: before each fit every shared variable it
    updates (``mu``, ``rho``, Adam's moments and step counter) is reset to its initial value and its
    random generators are re-seeded from ``seed``, so a second fit compiles nothing. (``pm.fit``
    would compile a new step function on every call; the loop it runs is the one below.)
NUTS
    ``pm.sample`` with ``cores=1`` (chains one after another in this process; never a process
    pool). PyMC builds and compiles the sampler's log-density and gradient inside every
    ``pm.sample`` call; with the model cached and PyTensor's on-disk cache of compiled C modules
    that costs a fraction of a second after the first fit, but it is not zero. ``compile_time_s``
    is the wall time of ``pm.sample`` minus its own ``sampling_time`` (plus the model build on
    the first fit); ``run_time_s`` is ``sampling_time``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import arviz as az
import numpy as np

from inference._vi import learning_rate_at, optimise
from inference.contract import build_inference_data
from inference.settings import AdviSettings, NutsSettings
from models.spec import ModelSpec, RegressionData

BACKEND = "pymc"
_PROGRAMS: dict[tuple, Any] = {}
_STAT_NAMES = ("diverging", "tree_depth", "n_steps", "energy", "acceptance_rate", "step_size", "lp")


@dataclass(frozen=True)
class _AdviProgram:
    model: Any
    approx: Any
    step: Callable[[], Any]
    learning_rate: Any
    initial_values: dict[Any, np.ndarray]
    rngs: list[Any]


def _problem_key(method: str, spec: ModelSpec, data: RegressionData, priors, settings) -> tuple:
    return (method, spec.name, priors, settings, data.X.shape, data.n_groups)


def _cached(key: tuple, build: Callable[[], Any]) -> tuple[Any, float]:
    """The cached program of ``key``, building (and timing) it on a miss."""
    if key in _PROGRAMS:
        return _PROGRAMS[key], 0.0
    start = time.perf_counter()
    _PROGRAMS[key] = build()
    return _PROGRAMS[key], time.perf_counter() - start


def clear_cache() -> None:
    """Forget every built model and compiled step function."""
    _PROGRAMS.clear()


def _set_data(model: Any, data: RegressionData) -> None:
    """Put ``data`` into the model's ``pm.Data`` containers."""
    import pymc as pm

    values = {"X": data.X, "y_obs": data.y}
    if data.group is not None:
        values["group"] = data.group.astype(np.int64)
    pm.set_data(values, model=model, coords={"obs": range(data.n_obs)})


def _build_advi(
    spec: ModelSpec, data: RegressionData, priors: Any, settings: AdviSettings
) -> _AdviProgram:
    import pymc as pm
    import pytensor
    from pytensor.tensor.random.type import RandomType

    model = spec.pymc_builder()(data, priors)
    start_sigma = {var.name: settings.init_scale for var in model.value_vars}
    inference = pm.ADVI(model=model, random_seed=0, start_sigma=start_sigma)
    learning_rate = pytensor.shared(np.float64(settings.learning_rate), name="learning_rate")
    step = inference.objective.step_function(
        obj_n_mc=settings.num_particles,
        obj_optimizer=pm.adam(learning_rate=learning_rate),
        score=True,
    )
    inference.approx.sample(1, random_seed=0)  # compiles the sampler of q once, here
    data_vars = set(model.data_vars) | set(model.dim_lengths.values())
    shared = [var for var in step.get_shared() if var not in data_vars]
    rngs = [var for var in shared if isinstance(var.type, RandomType)]
    initial_values = {var: var.get_value(borrow=False) for var in shared if var not in rngs}
    return _AdviProgram(model, inference.approx, step, learning_rate, initial_values, rngs)


def _reset(program: _AdviProgram, seed: int) -> None:
    """Put q and the optimiser back at their initial state and re-seed the ELBO samples."""
    from pymc.pytensorf import reseed_rngs

    for var, value in program.initial_values.items():
        var.set_value(value.copy())
    reseed_rngs(program.rngs, seed)


def advi(
    spec: ModelSpec,
    data: RegressionData,
    *,
    priors: Any,
    settings: AdviSettings,
    seed: int,
    progressbar: bool = False,
) -> az.InferenceData:
    """Mean-field ADVI with PyMC (`pm.ADVI`); see the module docstring.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    data : RegressionData
        Data checked against ``spec``.
    priors : dataclass
        The model's prior hyper-parameters.
    settings : AdviSettings
        Optimisation and convergence settings.
    seed : int
        Seed of the ELBO samples and of the draws from q.
    progressbar : bool
        Show a bar over windows of steps.

    Returns
    -------
    arviz.InferenceData
        The contract: ``posterior`` with ``num_draws`` draws from q (one chain) and ``vi_trace``.
    """
    key = _problem_key("advi", spec, data, priors, settings)
    program, compile_time = _cached(key, lambda: _build_advi(spec, data, priors, settings))
    start = time.perf_counter()
    _set_data(program.model, data)
    _reset(program, seed)
    step_index = 0

    def run_window() -> np.ndarray:
        nonlocal step_index
        losses = np.empty(settings.window)
        for i in range(settings.window):
            rate = learning_rate_at(step_index, settings.learning_rate, settings.lr_decay_steps)
            program.learning_rate.set_value(np.float64(rate))
            losses[i] = program.step()
            step_index += 1
        return losses

    losses, converged = optimise(
        run_window,
        tol=settings.tol,
        min_steps=settings.min_steps,
        max_steps=settings.max_steps,
        window=settings.window,
        progressbar=progressbar,
        description=f"pymc ADVI {spec.name}",
    )
    sample = program.approx.sample(settings.num_draws, random_seed=seed)
    draws = {name: sample.posterior[name].values for name in spec.parameters}
    run_time = time.perf_counter() - start
    return build_inference_data(
        spec,
        data,
        draws,
        backend=BACKEND,
        method="advi",
        seed=seed,
        settings=settings,
        compile_time_s=compile_time,
        run_time_s=run_time,
        vi_loss=losses,
        extra_attrs={"vi_steps": int(losses.size), "vi_converged": int(converged)},
    )


def _sample(pm: Any, model: Any, settings: NutsSettings, seed: int, progressbar: bool) -> Any:
    return pm.sample(
        draws=settings.num_draws,
        tune=settings.num_warmup,
        chains=settings.num_chains,
        cores=1,
        random_seed=seed,
        init="jitter+adapt_full" if settings.dense_mass else "jitter+adapt_diag",
        nuts={"target_accept": settings.target_accept, "max_treedepth": settings.max_tree_depth},
        progressbar=progressbar,
        compute_convergence_checks=False,
        return_inferencedata=True,
        model=model,
    )


def nuts(
    spec: ModelSpec,
    data: RegressionData,
    *,
    priors: Any,
    settings: NutsSettings,
    seed: int,
    progressbar: bool = False,
) -> az.InferenceData:
    """NUTS with ``pm.sample`` (PyMC's sampler, one process); see the module docstring.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    data : RegressionData
        Data checked against ``spec``.
    priors : dataclass
        The model's prior hyper-parameters.
    settings : NutsSettings
        Chains, warm-up, draws, target acceptance and maximum tree depth.
    seed : int
        ``random_seed`` of ``pm.sample``.
    progressbar : bool
        Show PyMC's progress bar.

    Returns
    -------
    arviz.InferenceData
        The contract: ``posterior`` ``(chain, draw, ...)`` and ``sample_stats`` (``diverging``,
        ``tree_depth``, ``n_steps``, ``energy``, ``acceptance_rate``, ``step_size``, ``lp``).
    """
    import pymc as pm

    key = _problem_key("nuts", spec, data, priors, settings)
    model, build_time = _cached(key, lambda: spec.pymc_builder()(data, priors))
    _set_data(model, data)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # dense_mass: PyMC calls its full adaptation experimental; `NutsSettings` says so too.
        warnings.filterwarnings("ignore", "QuadPotentialFullAdapt is an experimental feature")
        result = _sample(pm, model, settings, seed, progressbar)
    wall = time.perf_counter() - start
    run_time = float(result.posterior.attrs["sampling_time"])
    stats = result.sample_stats
    return build_inference_data(
        spec,
        data,
        {name: result.posterior[name].values for name in spec.parameters},
        backend=BACKEND,
        method="nuts",
        seed=seed,
        settings=settings,
        compile_time_s=build_time + wall - run_time,
        run_time_s=run_time,
        sample_stats={name: stats[name].values for name in _STAT_NAMES},
    )
