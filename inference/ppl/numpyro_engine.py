"""NumPyro engines: ADVI of every family (SVI with an autoguide) and NUTS, compiled once.

A *problem* is (model, priors, settings, shape of the data). Its programs are compiled ahead of
time (``jax.jit(...).lower(...).compile()``) on the first fit and kept in a module-level cache, so a
second fit to new data of the same shape reuses them: its ``compile_time_s`` is 0 and its
``run_time_s`` is the run alone. Compiling is most of the cost of a NumPyro fit on 2 cores
(block ADVI: 4-10 s per shape, then 0.1-1.5 s of running), so four more things cut it:

- JAX's persistent compilation cache in the user cache directory (`inference.ppl.jax_cache`),
  set when this module is imported: a later process loads the executables after tracing
  (block ADVI at Q = 20 in a fresh process: 2.5-3.3 s instead of 10-15 s on a loaded machine).
- Programs that are the same in every process: `_elbo` adds up the ELBO in trace order, where
  NumPyro's `Trace_ELBO` iterates over a ``set`` of site names in string-hash order, so each
  process traced a different program and missed the persistent cache every time.
- ADVI on padded data (``AdviSettings.pad_shapes``, `inference.ppl.padding`): groups and rows
  rounded up to a few sizes, the padding masked out of the posterior exactly, so one program
  serves many data sets (the reproduction's 47 NumPyro ADVI programs become 26).
- XLA's older emitter for programs compiled for at most 1,024 rows (`inference.ppl.xla_compile`):
  0.5-1.2 s less compiling per fit for 5-17 % more time per step, a net gain for fits that run
  under about 5 s, as most of the grid's and the tests' do (0.1-8 s). Programs whose whole run
  is brief (those a fit calls once, and the window and NUTS of small fits, `is_brief`) are
  compiled without LLVM's optimisation as well.

ADVI
    The family is the guide (`_guide`): `AutoNormal` (``mean_field``: a Gaussian with diagonal
    covariance in the unconstrained space; scales parameterised through softplus like PyMC's
    ``rho``), `AutoMultivariateNormal` (``full_rank``) or, for ``block``, an `AutoGuideList`
    of an `AutoMultivariateNormal` over the effects (``spec.effects``) and an `AutoNormal` over
    the rest. Locations start at the prior means like PyMC's initial point, scales at
    ``init_scale``. The ELBO with ``num_particles`` samples (`_elbo`), Adam with the decaying
    step size and the windowed convergence rule of `inference.vi`. Each window of steps is one
    compiled ``lax.scan``, the same program before and during Polyak-Ruppert averaging (one XLA
    compilation instead of two); the rule is checked on the host between windows. A whole
    optimisation on the device (``lax.while_loop`` with the rule) was not built: all it could
    save is the host loop, measured at about 10 ms per fit (``benchmarks/advi_compile.py
    host-loop``: the same steps in one call instead of one call per window, identical losses).
NUTS
    NumPyro's NUTS kernel (diagonal or, with ``dense_mass``, dense mass matrix and step size
    adapted during warm-up, the ``MCMC`` defaults) driven by our own compiled program:
    ``MCMC.run`` re-compiles its sampling loop on every call even with ``jit_model_args=True``
    (measured: about 3-4 s each time), ours does not. ``centring`` samples the centred form of
    the model with chosen groups non-centred (`inference.ppl.centring`, `LocScaleReparam`), and
    ``intercept_centring`` each centred group through its own intercept ``beta_0 + u_j``
    (`centring.shear_to_intercept`).
    Chains run one after another (``lax.map``) inside that one program: on a 2-core CPU this
    compiled 2-3x faster than vectorised chains (``jax.vmap``, 10-24 s vs 4-9 s) and ran about
    as fast (vectorised NUTS waits, at every iteration, for the chain with the longest
    trajectory); set `CHAIN_METHOD` to ``"vectorized"`` to switch. Never parallel: one process.
    There is no progress bar: the whole run is one compiled call. NUTS data are not padded:
    padded effects would enter the dense mass matrix's estimate and NUTS's running time.
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

from inference.contract import build_inference_data
from inference.ppl import centring, jax_cache
from inference.ppl.padding import (
    Padding,
    padded_arrays,
    padded_model,
    padding_of,
    spec_dims,
    trim_dense,
    trim_draws,
)
from inference.ppl.programs import ProgramCache, RecentDraws, data_fingerprint, problem_key
from inference.ppl.xla_compile import compile_program, is_brief
from inference.settings import AdviSettings, NutsSettings
from inference.vi import (
    LOOP_SETTINGS,
    DenseFactor,
    fit_advi,
    gaussian_variational,
    learning_rate_at,
)
from models.spec import ModelSpec, RegressionData

BACKEND = "numpyro"
CHAIN_METHOD = "sequential"
"""How NUTS chains run inside the compiled program: ``"sequential"`` or ``"vectorized"``."""
_PROGRAMS = ProgramCache()
_DRAWS = RecentDraws()
jax_cache.enable()


@dataclass(frozen=True)
class _SviProgram:
    init: Callable[..., Any]
    window: Callable[..., Any]
    raw_params: Callable[..., Any]
    draw: Callable[..., Any]
    dense_sites: tuple[tuple[str, int], ...]
    transforms: dict[str, str]
    padded_shape: tuple[int, int]


def _bound_model(spec: ModelSpec, priors: Any, n_groups: int) -> Callable[..., None]:
    """The model with the static ``n_groups`` and ``priors`` bound: ``model(X, group, y=None)``."""
    model_fn = spec.numpyro_model()

    def model(X, group, y=None):
        model_fn(X, group, n_groups, y, priors=priors)

    return model


def _jit_named(function: Callable[..., Any], tag: str) -> Any:
    """``jax.jit`` of ``function`` under its name and the problem's ``tag``.

    JAX's persistent cache finds a program by its name and code. Some programs are the same code
    for several problems: ADVI's ``raw_params`` and ``draw`` do not read the rows, so Q = 5 (128
    padded rows) and Q = 10 (1,024) share them. With the problem in the name, a problem's build
    compiles its own executables instead of loading the other's from JAX's cache, which
    `jax_cache.stored_program` could not store (in issue 13's grid: the three models' Q = 5
    programs).
    """

    def named(*args: Any) -> Any:
        return function(*args)

    named.__name__ = named.__qualname__ = f"{function.__name__}_{tag}" if tag else function.__name__
    return jax.jit(named)


def _program(key: tuple, build: Callable[[str], Any]) -> tuple[Any, float]:
    """The compiled program of problem ``key`` and the seconds it took: this process's, else
    vistudy's store's (`jax_cache.stored_program`), else ``build(tag)``'s, with the problem's
    ``tag`` (`jax_cache.problem_tag`) in the names of its functions (`_jit_named`)."""
    return _PROGRAMS.get(
        key, lambda: jax_cache.stored_program(key, lambda: build(jax_cache.problem_tag(key)))
    )


def _arrays(data: RegressionData) -> tuple[jax.Array, jax.Array | None, jax.Array]:
    group = None if data.group is None else jnp.asarray(data.group, dtype=jnp.int64)
    return jnp.asarray(data.X, dtype=jnp.float64), group, jnp.asarray(data.y, dtype=jnp.float64)


def clear_cache() -> None:
    """Forget every compiled program (the next fit of each problem compiles again) and every
    sampler's kept draws."""
    _PROGRAMS.clear()
    _DRAWS.clear()


def _elbo(num_particles: int) -> Any:
    """`Trace_ELBO` whose terms are added up in trace order, so its program is the same in every
    process.

    NumPyro's `Trace_ELBO` subtracts the guide's log density from the model's site by site over a
    Python ``set`` of site names, whose order follows the process's string-hash seed: each
    process traced a differently ordered program, which missed JAX's persistent compilation
    cache every time (and summed in a different order). This is the same estimator,
    ``log p(x, z) - log q(z)`` with ``z ~ q`` and the particles vectorised, each side summed by
    `numpyro.infer.util.log_density` in the order of its trace.
    """
    from numpyro.handlers import replay, seed
    from numpyro.infer import Trace_ELBO
    from numpyro.infer.util import log_density

    class OrderedTraceELBO(Trace_ELBO):
        def loss_with_mutable_state(self, rng_key, param_map, model, guide, *args, **kwargs):
            def particle(key):
                model_seed, guide_seed = random.split(key)
                seeded_guide = seed(guide, guide_seed)
                log_q, guide_trace = log_density(seeded_guide, args, kwargs, param_map)
                seeded_model = replay(seed(model, model_seed), guide_trace)
                log_p, _ = log_density(seeded_model, args, kwargs, param_map)
                return log_p - log_q

            if self.num_particles == 1:
                elbo = particle(rng_key)
            else:
                keys = random.split(rng_key, self.num_particles)
                elbo = jnp.mean(self.vectorize_particles_fn(particle, keys))
            return {"loss": -elbo, "mutable_state": None}

    return OrderedTraceELBO(num_particles=num_particles)


def _guide(model: Callable[..., None], spec: ModelSpec, family: str, init_scale: float) -> Any:
    """The autoguide of ``family``: `AutoNormal`, `AutoMultivariateNormal`, or both in a list.

    ``block``: one `AutoMultivariateNormal` over the sites that carry the fixed and random
    effects (``spec.effects``) and `AutoNormal` over the rest. Locations start at the prior
    means (``init_to_mean``), every scale at ``init_scale``.
    """
    from numpyro.handlers import block
    from numpyro.infer import init_to_mean
    from numpyro.infer.autoguide import AutoGuideList, AutoMultivariateNormal, AutoNormal

    options = {"init_loc_fn": init_to_mean, "init_scale": init_scale}
    if family == "mean_field":
        return AutoNormal(model, **options)
    if family == "full_rank":
        return AutoMultivariateNormal(model, **options)
    if family == "block":
        effects = set(spec.effects)

        def other_sites(site: dict) -> bool:  # plates stay visible to both parts
            return site["type"] in ("sample", "deterministic") and site.get("name") not in effects

        def effect_sites(site: dict) -> bool:
            return site["type"] == "deterministic" or site.get("name") in effects

        guide = AutoGuideList(model, init_loc_fn=init_to_mean)
        guide.append(AutoMultivariateNormal(block(model, hide_fn=other_sites), **options))
        guide.append(AutoNormal(block(model, hide_fn=effect_sites), **options))
        return guide
    raise ValueError(f"family: numpyro/advi has no family {family!r}")


def _dense_part(guide: Any) -> Any:
    """The `AutoMultivariateNormal` of a guide (itself, or the first part of a list), or None."""
    from numpyro.infer.autoguide import AutoGuideList, AutoMultivariateNormal

    if isinstance(guide, AutoGuideList):
        guide = guide._guides[0]
    return guide if isinstance(guide, AutoMultivariateNormal) else None


def _layout(guide: Any) -> tuple[tuple[tuple[str, int], ...], dict[str, str]]:
    """Sites (and sizes) of the dense factor, in its order, and each latent site's transform.

    Read from a guide that has been set up (its prototype trace, in or out of a trace).
    """
    from numpyro.distributions import biject_to
    from numpyro.distributions.transforms import ExpTransform
    from numpyro.infer.autoguide import AutoGuideList

    parts = guide._guides if isinstance(guide, AutoGuideList) else [guide]
    transforms = {}
    for part in parts:
        for name, site in part.prototype_trace.items():
            if site["type"] == "sample" and not site["is_observed"]:
                exp = isinstance(biject_to(site["fn"].support), ExpTransform)
                transforms[name] = "log" if exp else "identity"
    dense = _dense_part(guide)
    if dense is None:
        return (), transforms
    sites = tuple((name, int(np.size(v))) for name, v in dense._init_locs.items())
    return sites, transforms


def _build_svi(
    spec: ModelSpec,
    data: RegressionData,
    priors: Any,
    settings: AdviSettings,
    family: str,
    padding: Padding,
    tag: str = "",
    brief: bool = False,
) -> _SviProgram:
    """Compile the ADVI programs: initial state, one window of steps, parameters, draws from q.

    The programs take ``(X, group, y, obs_mask, group_mask)`` padded to ``padding`` (see
    `inference.ppl.padding`), so they serve every data set with the same padded shape. The
    window is compiled for a ``brief`` run (`inference.ppl.xla_compile.is_brief`) or a long one.

    Each program gets its own guide object: an autoguide sets itself up (traces the model) the
    first time it is called, and doing that inside the program being compiled keeps its arrays in
    that program (eager set-up costs seconds of op-by-op compilation on a cold start). The draw
    program also returns the fitted parameters of q (constrained: scales, Cholesky factors).
    """
    from numpyro.infer import SVI, Predictive
    from numpyro.optim import Adam

    model = padded_model(spec.numpyro_model(), padding.padded_groups, priors)

    def schedule(step):
        return learning_rate_at(step, settings.learning_rate, settings.lr_decay_steps)

    def new_svi() -> tuple[Any, Any]:
        guide = _guide(model, spec, family, settings.init_scale)
        return SVI(model, guide, Adam(schedule), _elbo(settings.num_particles)), guide

    (svi_init, guide_init), svi_run, (svi_draw, guide_draw) = new_svi(), new_svi()[0], new_svi()

    def window(state, total, *arrays):
        """One window of steps, adding each iterate's unconstrained parameters to ``total``.

        The one program for every window: windows before the convergence rule stops ignore
        ``total`` (adding it up costs nothing next to a step), and one program instead of two
        halves the XLA compilation of the optimisation (block ADVI at Q = 20: 6-10 s each).
        """

        def step(carry, _):
            state, total = carry
            state, loss = svi_run.update(state, *arrays)
            raw = svi_run.optim.get_params(state.optim_state)
            return (state, jax.tree.map(jnp.add, total, raw)), loss

        return lax.scan(step, (state, total), None, length=settings.window)

    def draw(key, raw_params, *arrays):
        params = svi_draw.constrain_fn(raw_params)
        predictive = Predictive(
            model,
            guide=guide_draw,
            params=params,
            num_samples=settings.num_draws,
            return_sites=list(spec.parameters),
        )
        return predictive(key, *arrays), params

    arrays = padded_arrays(data, padding)
    rows = padding.padded_obs
    key = random.PRNGKey(0)
    init = compile_program(_jit_named(svi_init.init, tag).lower(key, *arrays), rows, brief=True)
    # `SVI.init` records the (static) transforms of the guide's parameters; share them.
    svi_run.constrain_fn = svi_draw.constrain_fn = svi_init.constrain_fn
    state = jax.eval_shape(svi_init.init, key, *arrays)

    def raw_params(state):
        return svi_init.optim.get_params(state.optim_state)

    raw = jax.eval_shape(raw_params, state)
    dense_sites, transforms = _layout(guide_init)
    return _SviProgram(
        init=init,
        window=compile_program(_jit_named(window, tag).lower(state, raw, *arrays), rows, brief),
        raw_params=compile_program(_jit_named(raw_params, tag).lower(state), rows, brief=True),
        draw=compile_program(_jit_named(draw, tag).lower(key, raw, *arrays), rows, brief=True),
        dense_sites=dense_sites,
        transforms=transforms,
        padded_shape=padding.shape,
    )


def _zeros(like: jax.Array) -> jax.Array:
    """Zeros shaped like ``like``, made in NumPy: ``jnp.zeros_like`` compiles a small XLA
    program for every shape in every process, as does arithmetic on JAX arrays outside a
    program (`_SviRun.average_windows` divides in NumPy)."""
    return jax.device_put(np.zeros(like.shape, like.dtype))


class _SviRun:
    """One ADVI optimisation with a compiled `_SviProgram` (an `inference.vi.AdviRun`)."""

    def __init__(
        self,
        program: _SviProgram,
        spec: ModelSpec,
        data: RegressionData,
        seed: int,
        padding: Padding,
    ):
        self.program, self.spec, self.padding = program, spec, padding
        self.arrays = padded_arrays(data, padding)
        self.key_optimise, self.key_draw = random.split(random.PRNGKey(seed))
        self.state = program.init(self.key_optimise, *self.arrays)
        self.zeros = jax.tree.map(_zeros, self._raw_params())
        self.params: dict[str, np.ndarray] = {}
        self.average: Any = None

    def run_window(self) -> np.ndarray:
        (self.state, _), losses = self.program.window(self.state, self.zeros, *self.arrays)
        return np.asarray(losses)

    def _raw_params(self) -> Any:
        return self.program.raw_params(self.state)

    def average_windows(self, windows: int) -> np.ndarray:
        total, losses = self.zeros, []
        for _ in range(windows):
            (self.state, total), window_losses = self.program.window(
                self.state, total, *self.arrays
            )
            losses.append(np.asarray(window_losses))
        steps = windows * len(losses[0])
        self.average = jax.tree.map(lambda t: np.asarray(t) / steps, total)
        return np.concatenate(losses)

    def draws(self, num_draws: int) -> dict[str, np.ndarray]:
        raw = self.average if self.average is not None else self._raw_params()
        draws, params = self.program.draw(self.key_draw, raw, *self.arrays)
        self.params = {name: np.asarray(value) for name, value in params.items()}
        draws = {name: np.asarray(value)[np.newaxis] for name, value in draws.items()}
        return trim_draws(draws, spec_dims(self.spec), self.padding)

    def variational(self) -> Any:
        return _variational(self.params, self.program, self.spec, self.padding)


def _variational(
    params: dict[str, np.ndarray], program: _SviProgram, spec: ModelSpec, padding: Padding
) -> Any:
    """The ``variational`` group from the fitted guide parameters (see `gaussian_variational`),
    cut back to the real groups."""
    dims = spec_dims(spec)
    group = np.arange(padding.n_groups)
    diagonal = {}
    for site in program.transforms:
        if f"{site}_auto_loc" in params:
            loc, scale = params[f"{site}_auto_loc"], params[f"{site}_auto_scale"]
            if "group" in dims.get(site, ()):
                loc, scale = loc[..., group], scale[..., group]
            diagonal[site] = (dims.get(site, ()), loc, scale)
    dense = {}
    if program.dense_sites:
        group_sites = {site for site, site_dims in dims.items() if "group" in site_dims}
        sites, loc, scale_tril = trim_dense(
            program.dense_sites,
            params["auto_loc"],
            params["auto_scale_tril"],
            group_sites,
            padding,
        )
        dense["block"] = DenseFactor(sites, loc, scale_tril)
    family = "full_rank" if dense and not diagonal else ("block" if dense else "mean_field")
    return gaussian_variational(
        family=family, diagonal=diagonal, dense=dense, transforms=program.transforms
    )


def advi(
    spec: ModelSpec,
    data: RegressionData,
    *,
    priors: Any,
    settings: AdviSettings,
    seed: int,
    family: str | None = "mean_field",
    progressbar: bool = False,
) -> az.InferenceData:
    """ADVI with NumPyro (SVI with the autoguide of ``family``); see the module docstring.

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
    family : {"mean_field", "block", "full_rank"}
        `AutoNormal`; `AutoMultivariateNormal` over ``spec.effects`` with `AutoNormal` over
        the rest (an `AutoGuideList`); `AutoMultivariateNormal` over everything.
    progressbar : bool
        Show a bar over windows of steps.

    Returns
    -------
    arviz.InferenceData
        The contract: ``posterior`` with ``num_draws`` draws from q (one chain), ``vi_trace``
        and ``variational`` (``<site>_loc``/``<site>_scale`` of the mean-field factors,
        ``block_loc``/``block_scale_tril`` of the dense one, unconstrained space).
    """
    family = family or "mean_field"
    padding = padding_of(data, enabled=settings.pad_shapes, dense=family != "mean_field")
    # Data that fill their padded shape exactly have no masks: a program of its own. The step
    # cap is not in the key, but whether it makes the window brief is.
    brief = is_brief("advi", padding.padded_obs, settings.max_steps)
    extra = (CHAIN_METHOD, padding.pads, brief)
    key = problem_key(
        f"advi:{family}",
        spec,
        data,
        priors,
        settings,
        *extra,
        shape=padding.shape,
        run_time=LOOP_SETTINGS,
    )
    program, compile_time = _program(
        key, lambda tag: _build_svi(spec, data, priors, settings, family, padding, tag, brief)
    )
    return fit_advi(
        lambda: _SviRun(program, spec, data, seed, padding),
        spec,
        data,
        backend=BACKEND,
        family=family,
        settings=settings,
        seed=seed,
        compile_time_s=compile_time,
        progressbar=progressbar,
    )


_STAT_FIELDS = ("diverging", "num_steps", "energy", "accept_prob", "potential_energy")


def _build_nuts(
    spec: ModelSpec, data: RegressionData, priors: Any, settings: NutsSettings, tag: str = ""
) -> Callable[..., Any]:
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    sampled = centring.sampled_spec(spec, settings.centring)
    model = centring.numpyro_centring(_bound_model(sampled, priors, data.n_groups))

    def one_chain(key, *args):
        key_init, key_kernel = random.split(key)
        info = initialize_model(key_init, model, model_args=args, dynamic_args=True)
        to_model, to_sampled = _coordinates(args, settings.intercept_centring)

        def potential_fn(*model_args):
            potential = info.potential_fn(*model_args)
            return lambda params: potential(to_model(params))

        init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn, algo="NUTS")
        state = init_kernel(
            to_sampled(info.param_info.z),
            num_warmup=settings.num_warmup,
            target_accept_prob=settings.target_accept,
            max_tree_depth=settings.max_tree_depth,
            dense_mass=settings.dense_mass,
            model_args=args,
            rng_key=key_kernel,
        )

        def iterate(state, _):
            state = sample_kernel(state, model_args=args)
            stats = {name: getattr(state, name) for name in _STAT_FIELDS}
            stats["step_size"] = state.adapt_state.step_size
            return state, (state.z, stats)

        # One scan over warm-up and draws (the kernel adapts while its counter is below
        # num_warmup): XLA compiles the NUTS kernel once, not once per phase.
        length = settings.num_warmup + settings.num_draws
        _, kept = lax.scan(iterate, state, None, length=length)
        z, stats = jax.tree.map(lambda values: values[settings.num_warmup :], kept)
        return jax.vmap(info.postprocess_fn(*args))(jax.vmap(to_model)(z)), stats

    def run(keys, *args):
        if CHAIN_METHOD == "sequential":
            return lax.map(lambda key: one_chain(key, *args), keys)
        return jax.vmap(one_chain, in_axes=(0,) + (None,) * len(args))(keys, *args)

    keys = random.split(random.PRNGKey(0), settings.num_chains)
    lowered = _jit_named(run, tag).lower(keys, *_nuts_arrays(data, settings))
    iterations = settings.num_chains * (settings.num_warmup + settings.num_draws)
    brief = is_brief("nuts", data.n_obs, iterations)
    return compile_program(lowered, data.n_obs, brief)


def _coordinates(args: tuple[Any, ...], intercept_centring: bool) -> tuple[Callable, Callable]:
    """``(to_model, to_sampled)``: maps between the model's unconstrained parameters and the ones
    NUTS moves in. With ``intercept_centring`` the centred groups carry their own intercept
    (`centring.shear_to_intercept`); otherwise (or for the model as written, ``centred`` is
    ``None``) the identity. ``args`` are `_nuts_arrays`: ``(X, group, y, centred)``."""
    X, centred = args[0], args[-1]
    if centred is None or not intercept_centring:
        return (lambda params: params), (lambda params: params)
    intercept = centring.intercept_column(X)  # once, not at every gradient
    return (
        lambda params: centring.shear_to_intercept(params, intercept, centred, -1.0),
        lambda params: centring.shear_to_intercept(params, intercept, centred, 1.0),
    )


def _nuts_arrays(data: RegressionData, settings: NutsSettings) -> tuple[Any, ...]:
    """``(X, group, y, centred)``: the data and which groups NUTS samples centred."""
    centred = centring.centred_groups(data, settings.centring)
    return (*_arrays(data), None if centred is None else jnp.asarray(centred))


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
    family: str | None = None,
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
    if settings.sampler != NutsSettings.sampler or settings.low_rank_mass:
        raise ValueError(
            "settings.sampler, settings.low_rank_mass: PyMC's NUTS options; NumPyro runs its own "
            "kernel (use dense_mass for correlated posteriors)"
        )
    sampled = centring.sampled_spec(spec, settings.centring)
    key = problem_key("nuts", sampled, data, priors, settings, CHAIN_METHOD)
    program, compile_time = _program(
        key, lambda tag: _build_nuts(spec, data, priors, settings, tag)
    )

    def sample() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        keys = random.split(random.PRNGKey(seed), settings.num_chains)
        draws, stats = jax.block_until_ready(program(keys, *_nuts_arrays(data, settings)))
        return {name: np.asarray(value) for name, value in draws.items()}, _sample_stats(stats)

    start = time.perf_counter()
    (draws, stats), reused = _DRAWS.get((key, data_fingerprint(data), seed), sample)
    return build_inference_data(
        spec,
        data,
        draws,
        backend=BACKEND,
        method="nuts",
        seed=seed,
        settings=settings,
        compile_time_s=compile_time,
        run_time_s=time.perf_counter() - start,
        sample_stats=stats,
        extra_attrs={"draws_reused": int(reused)},
    )
