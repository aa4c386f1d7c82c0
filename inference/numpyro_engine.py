"""NumPyro engines: mean-field ADVI (SVI with `AutoNormal`) and NUTS, compiled once per problem.

A *problem* is (model, priors, settings, shape of the data). Its programs are compiled ahead of
time (``jax.jit(...).lower(...).compile()``) on the first fit and kept in a module-level cache, so a
second fit to new data of the same shape reuses them: its ``compile_time_s`` is 0 and its
``run_time_s`` is the run alone.

ADVI
    `AutoNormal` (mean-field Gaussian in the unconstrained space; locations start at the prior
    means like PyMC's initial point, scales at ``init_scale``, scales parameterised through
    softplus like PyMC's ``rho``), `Trace_ELBO` with ``num_particles`` samples, Adam with the
    decaying step size and the windowed convergence rule of `inference._vi`. Each window of
    steps is one compiled ``lax.scan``; the rule is checked on the host between windows.
NUTS
    NumPyro's NUTS kernel (diagonal mass matrix and step size adapted during warm-up, the
    ``MCMC`` defaults) driven by our own compiled program: ``MCMC.run`` re-compiles its sampling
    loop on every call even with ``jit_model_args=True`` (measured: about 3-4 s each time), ours
    does not. Chains run one after another (``lax.map``) inside that one program: on a 2-core
    CPU this compiled 2-3x faster than vectorised chains (``jax.vmap``, 10-24 s vs 4-9 s) and ran
    about as fast (vectorised NUTS waits, at every iteration, for the chain with the longest
    trajectory); set `CHAIN_METHOD` to ``"vectorized"`` to switch. Never parallel: one process.
    There is no progress bar: the whole run is one compiled call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, random

from inference._vi import learning_rate_at, optimise
from inference.contract import build_inference_data
from inference.settings import AdviSettings, NutsSettings
from models.spec import ModelSpec, RegressionData

BACKEND = "numpyro"
CHAIN_METHOD = "sequential"
"""How NUTS chains run inside the compiled program: ``"sequential"`` or ``"vectorized"``."""
_PROGRAMS: dict[tuple, Any] = {}


@dataclass(frozen=True)
class _SviProgram:
    init: Callable[..., Any]
    run_window: Callable[..., Any]
    draw: Callable[..., Any]


def _bound_model(spec: ModelSpec, priors: Any, n_groups: int) -> Callable[..., None]:
    """The model with the static ``n_groups`` and ``priors`` bound: ``model(X, group, y=None)``."""
    model_fn = spec.numpyro_model()

    def model(X, group, y=None):
        model_fn(X, group, n_groups, y, priors=priors)

    return model


def _arrays(data: RegressionData) -> tuple[jax.Array, jax.Array | None, jax.Array]:
    group = None if data.group is None else jnp.asarray(data.group, dtype=jnp.int64)
    return jnp.asarray(data.X, dtype=jnp.float64), group, jnp.asarray(data.y, dtype=jnp.float64)


def _problem_key(method: str, spec: ModelSpec, data: RegressionData, priors, settings) -> tuple:
    return (method, spec.name, priors, settings, data.X.shape, data.n_groups, CHAIN_METHOD)


def _cached(key: tuple, build: Callable[[], Any]) -> tuple[Any, float]:
    """The cached program of ``key``, building (and timing) it on a miss."""
    if key in _PROGRAMS:
        return _PROGRAMS[key], 0.0
    start = time.perf_counter()
    _PROGRAMS[key] = build()
    return _PROGRAMS[key], time.perf_counter() - start


def clear_cache() -> None:
    """Forget every compiled program (the next fit of each problem compiles again)."""
    _PROGRAMS.clear()


def _build_svi(
    spec: ModelSpec, data: RegressionData, priors: Any, settings: AdviSettings
) -> _SviProgram:
    """Compile the three ADVI programs: initial state, one window of steps, draws from q.

    Each program gets its own guide object: an `AutoNormal` sets itself up (traces the model) the
    first time it is called, and doing that inside the program being compiled keeps its arrays in
    that program (eager set-up costs seconds of op-by-op compilation on a cold start).
    """
    from numpyro.infer import SVI, Predictive, Trace_ELBO, init_to_mean
    from numpyro.infer.autoguide import AutoNormal
    from numpyro.optim import Adam

    model = _bound_model(spec, priors, data.n_groups)

    def schedule(step):
        return learning_rate_at(step, settings.learning_rate, settings.lr_decay_steps)

    def new_svi() -> tuple[Any, Any]:
        guide = AutoNormal(model, init_loc_fn=init_to_mean, init_scale=settings.init_scale)
        loss = Trace_ELBO(num_particles=settings.num_particles)
        return SVI(model, guide, Adam(schedule), loss), guide

    svi_init, svi_run, (svi_draw, guide_draw) = new_svi()[0], new_svi()[0], new_svi()

    def run_window(state, X, group, y):
        def step(state, _):
            return svi_run.update(state, X, group, y)

        return lax.scan(step, state, None, length=settings.window)

    def draw(key, state, X, group, y):
        predictive = Predictive(
            model,
            guide=guide_draw,
            params=svi_draw.get_params(state),
            num_samples=settings.num_draws,
            return_sites=list(spec.parameters),
        )
        return predictive(key, X, group, y)

    arrays = _arrays(data)
    key = random.PRNGKey(0)
    init = jax.jit(svi_init.init).lower(key, *arrays).compile()
    # `SVI.init` records the (static) transforms of the guide's parameters; share them.
    svi_run.constrain_fn = svi_draw.constrain_fn = svi_init.constrain_fn
    state = jax.eval_shape(svi_init.init, key, *arrays)
    return _SviProgram(
        init=init,
        run_window=jax.jit(run_window).lower(state, *arrays).compile(),
        draw=jax.jit(draw).lower(key, state, *arrays).compile(),
    )


def advi(
    spec: ModelSpec,
    data: RegressionData,
    *,
    priors: Any,
    settings: AdviSettings,
    seed: int,
    progressbar: bool = False,
) -> az.InferenceData:
    """Mean-field ADVI with NumPyro (SVI, `AutoNormal`); see the module docstring.

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
    program, compile_time = _cached(key, lambda: _build_svi(spec, data, priors, settings))
    X, group, y = _arrays(data)
    start = time.perf_counter()
    key_optimise, key_draw = random.split(random.PRNGKey(seed))
    state = program.init(key_optimise, X, group, y)

    def run_window() -> np.ndarray:
        nonlocal state
        state, losses = program.run_window(state, X, group, y)
        return np.asarray(losses)

    losses, converged = optimise(
        run_window,
        tol=settings.tol,
        min_steps=settings.min_steps,
        max_steps=settings.max_steps,
        window=settings.window,
        progressbar=progressbar,
        description=f"numpyro ADVI {spec.name}",
    )
    draws = program.draw(key_draw, state, X, group, y)
    draws = {name: np.asarray(value)[np.newaxis] for name, value in draws.items()}
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


_STAT_FIELDS = ("diverging", "num_steps", "energy", "accept_prob", "potential_energy")


def _build_nuts(
    spec: ModelSpec, data: RegressionData, priors: Any, settings: NutsSettings
) -> Callable[..., Any]:
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    model = _bound_model(spec, priors, data.n_groups)

    def one_chain(key, X, group, y):
        args = (X, group, y)
        key_init, key_kernel = random.split(key)
        info = initialize_model(key_init, model, model_args=args, dynamic_args=True)
        init_kernel, sample_kernel = hmc(potential_fn_gen=info.potential_fn, algo="NUTS")
        state = init_kernel(
            info.param_info,
            num_warmup=settings.num_warmup,
            target_accept_prob=settings.target_accept,
            max_tree_depth=settings.max_tree_depth,
            dense_mass=settings.dense_mass,
            model_args=args,
            rng_key=key_kernel,
        )

        def warmup(state, _):
            return sample_kernel(state, model_args=args), None

        def keep(state, _):
            state = sample_kernel(state, model_args=args)
            stats = {name: getattr(state, name) for name in _STAT_FIELDS}
            stats["step_size"] = state.adapt_state.step_size
            return state, (state.z, stats)

        state, _ = lax.scan(warmup, state, None, length=settings.num_warmup)
        _, (z, stats) = lax.scan(keep, state, None, length=settings.num_draws)
        return jax.vmap(info.postprocess_fn(*args))(z), stats

    def run(keys, X, group, y):
        if CHAIN_METHOD == "sequential":
            return lax.map(lambda key: one_chain(key, X, group, y), keys)
        return jax.vmap(one_chain, in_axes=(0, None, None, None))(keys, X, group, y)

    keys = random.split(random.PRNGKey(0), settings.num_chains)
    return jax.jit(run).lower(keys, *_arrays(data)).compile()


def _sample_stats(stats: dict[str, Any]) -> dict[str, np.ndarray]:
    n_steps = np.asarray(stats["num_steps"]).astype(np.int64)
    return {
        "diverging": np.asarray(stats["diverging"]).astype(bool),
        "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(np.int64) + 1,
        "n_steps": n_steps,
        "energy": np.asarray(stats["energy"]),
        "acceptance_rate": np.asarray(stats["accept_prob"]),
        "step_size": np.asarray(stats["step_size"]),
        "lp": -np.asarray(stats["potential_energy"]),
    }


def nuts(
    spec: ModelSpec,
    data: RegressionData,
    *,
    priors: Any,
    settings: NutsSettings,
    seed: int,
    progressbar: bool = False,
) -> az.InferenceData:
    """NUTS with NumPyro's kernel, all chains in one compiled program; see the module docstring.

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
        Seed of the chains (initial points, momenta, slice variables).
    progressbar : bool
        Ignored: the run is one compiled call.

    Returns
    -------
    arviz.InferenceData
        The contract: ``posterior`` ``(chain, draw, ...)`` and ``sample_stats`` (``diverging``,
        ``tree_depth``, ``n_steps``, ``energy``, ``acceptance_rate``, ``step_size``, ``lp``).
    """
    key = _problem_key("nuts", spec, data, priors, settings)
    program, compile_time = _cached(key, lambda: _build_nuts(spec, data, priors, settings))
    start = time.perf_counter()
    keys = random.split(random.PRNGKey(seed), settings.num_chains)
    draws, stats = jax.block_until_ready(program(keys, *_arrays(data)))
    run_time = time.perf_counter() - start
    return build_inference_data(
        spec,
        data,
        {name: np.asarray(value) for name, value in draws.items()},
        backend=BACKEND,
        method="nuts",
        seed=seed,
        settings=settings,
        compile_time_s=compile_time,
        run_time_s=run_time,
        sample_stats=_sample_stats(stats),
    )
