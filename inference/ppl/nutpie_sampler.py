"""nutpie's NUTS on a PyMC model, its log density compiled once per model for any data shape.

`pymc_engine.nuts` runs this when ``NutsSettings.sampler == "nutpie"`` (the default).

Why not ``nutpie.compile_pymc_model``
    Its numba backend bakes the number of unconstrained dimensions and the data layout into two
    numba ``cfunc`` wrappers that numba cannot cache on disk ("uses dynamic globals"), so every
    model *and data shape* compiles again in every process: measured here (2 cores, shared) 15 s
    for the first fit with an empty cache and 7-20 s for each later fit, model or shape, even
    with PyTensor's numba cache warm -- slower over the 16 PyMC NUTS fits of the reproduction
    than PyMC's own sampler. Its jax backend compiles in seconds but calls JAX from Python for
    every gradient (14-21 s per M0 fit on another machine).
What this module does instead
    It compiles the log density and its gradient with PyTensor's NUMBA mode as a function of the
    *unraveled* value variables (one array per free variable) and of the model's data containers,
    so the compiled function has no shape in it: numba types arrays by rank and dtype only. The
    same function serves every number of groups and rows of a model (the PyMC model is resized
    with ``set_dim``/``set_data``), PyTensor caches it on disk (its numba cache under
    ``base_compiledir``), and nutpie calls it through ``nutpie.compiled_pyfunc.from_pyfunc``
    with a small Python wrapper that splits nutpie's flat vector into views. Measured on M0:
    the first fit with an empty cache 4 s of graph building + 17 s of numba compilation, a
    later fit of another shape in the same process 0.1-1.3 s, in a new process with the cache
    warm 2.7 s; sampling takes 1.3-1.5x as long as nutpie's own ``cfunc`` (the Python call per
    gradient) and draws are identical to it for the same seed.
Initial points
    PyMC's initial-point function (the prior's support point, jittered by U(-1, 1) in the
    unconstrained space for every free variable, as ``pm.sample``'s ``jitter+adapt_diag`` and
    nutpie's own compile do), seeded by nutpie per chain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

STAT_NAMES = {
    "diverging": "diverging",
    "depth": "tree_depth",
    "n_steps": "n_steps",
    "energy": "energy",
    "mean_tree_accept": "acceptance_rate",
    "step_size": "step_size",
    "logp": "lp",
}
"""nutpie's sample statistics and their names in the contract."""


@dataclass(frozen=True)
class LogDensity:
    """A PyMC model's log density, gradient and outputs, compiled once for any data shape.

    Attributes
    ----------
    model : pymc.Model
        The model whose data containers and dims the functions read (resize it to refit).
    value_names : tuple of str
        Free (unconstrained) value variables, in the order nutpie's flat vector holds them.
    output_names : tuple of str
        Constrained variables and deterministics stored per draw.
    logp_dlogp, expand : pytensor.compile.function.types.Function
        NUMBA-mode functions of the value variables: ``(logp, flat gradient)``, and the outputs.
    initial_point : callable
        ``seed -> {value name: array}``, PyMC's jittered support point.
    centred : pytensor shared variable or None
        With per-group centring (`reparameterise`): 1 where group ``j``'s effect is sampled
        centred, 0 where non-centred; set it before sampling.
    intercept : pytensor shared variable or None
        With per-group centring: the weights of ``beta`` in the intercept the centred groups
        carry (`reparameterise`): `centring.intercept_column` of the data with
        ``intercept_centring``, zeros without; set it before sampling.
    """

    model: Any
    value_names: tuple[str, ...]
    output_names: tuple[str, ...]
    logp_dlogp: Any
    expand: Any
    initial_point: Callable[[int], dict[str, np.ndarray]]
    centred: Any = None
    intercept: Any = None


def reparameterise(model: Any, value_vars: list[Any]) -> tuple[list[Any], dict, Any, Any, Any]:
    """Sample every Normal effect over the ``group`` dim centred or not, group by group.

    An effect ``u ~ N(mu, sigma)`` gets a new input ``z`` with ``u = z - beta @ intercept``
    where the shared ``centred`` is 1 and ``u = mu + sigma z`` where it is 0; the log density is
    the model's at that ``u`` plus the log-Jacobian ``sum log sigma`` over the non-centred
    groups, so in ``z`` it is the same posterior (`inference.ppl.centring`). The shared
    ``intercept`` holds zeros (a centred group's ``z`` is its ``u``) or, with
    ``intercept_centring``, 1 at the intercept's column of ``X`` (its ``z`` is its own intercept
    ``beta_0 + u_j``; a shear, so no Jacobian): one compiled density serves both.

    Returns
    -------
    inputs : list
        The value variables with each such effect's replaced by its ``z``.
    replacements : dict
        Value variable of each effect -> its expression in ``z``.
    log_jacobian : TensorVariable
    centred, intercept : shared variable
    """
    import pytensor
    import pytensor.tensor as pt

    centred = pytensor.shared(np.ones(1), name="centred_groups", shape=(None,))
    intercept = pytensor.shared(np.zeros(1), name="intercept_column", shape=(None,))
    shift = pt.dot(model.rvs_to_values[model["beta"]], intercept)
    inputs, replacements, log_jacobian = list(value_vars), {}, pt.constant(0.0)
    for i, rv in enumerate(model.free_RVs):
        dims = model.named_vars_to_dims.get(rv.name, ())
        if dims != ("group",) or rv.owner.op.name != "normal":
            continue
        mu, sigma = model.replace_rvs_by_values(rv.owner.op.dist_params(rv.owner))
        z = value_vars[i].type(name=f"{value_vars[i].name}_z")
        on = pt.eq(centred, 1.0)
        replacements[value_vars[i]] = pt.switch(on, z - shift, mu + sigma * z)
        log_sigma = pt.log(sigma) * pt.ones_like(z)
        log_jacobian = log_jacobian + pt.sum(pt.switch(on, 0.0, log_sigma))
        inputs[i] = z
    return inputs, replacements, log_jacobian, centred, intercept


def compile_log_density(
    model: Any,
    outputs: Sequence[str],
    *,
    per_group_centring: bool = False,
    parameter_checks: bool = False,
) -> LogDensity:
    """Compile ``model``'s log density and gradient and the ``outputs`` with PyTensor's NUMBA mode.

    Numba compiles on the first call (or loads PyTensor's disk cache); `warm_up` makes that call.

    Parameters
    ----------
    model : pymc.Model
        A model with its data in ``pm.Data`` containers and mutable dims.
    outputs : sequence of str
        Constrained free variables and deterministics to store (e.g. ``("beta", "tau_u")``).
    per_group_centring : bool
        Sample the group effects centred or non-centred group by group (`reparameterise`).
    parameter_checks : bool
        Keep PyMC's checks of the distributions' parameters (``sigma > 0``, ``0 <= p <= 1``)
        in the compiled density (the model's ``check_bounds``). Off by default: every point of
        the unconstrained space NUTS moves in gives valid parameters, so the checks can only
        pass, and on a logistic model they cost a pass over the rows (one more ``exp`` per
        row), 13% of the gradient's time at 2,000 rows.

    Returns
    -------
    LogDensity
    """
    import pytensor
    import pytensor.tensor as pt
    from pymc.initial_point import make_initial_point_fn
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.graph.replace import graph_replace

    model.check_bounds = parameter_checks  # read by `compile_pymc` in the model's context
    value_vars = [model.rvs_to_values[rv] for rv in model.free_RVs]
    logp = model.logp()
    constrained = {var.name: var for var in model.unobserved_value_vars}
    stored = [constrained[name] for name in outputs]
    inputs, centred, intercept = value_vars, None, None
    if per_group_centring:
        inputs, replacements, log_jacobian, centred, intercept = reparameterise(model, value_vars)
        logp = graph_replace(logp, replacements, strict=False) + log_jacobian
        stored = graph_replace(stored, replacements, strict=False)
    grad = pt.concatenate([g.ravel() for g in pytensor.grad(logp, inputs)])
    with model:
        logp_dlogp = compile_pymc(inputs, [logp, grad], mode="NUMBA")
        expand = compile_pymc(inputs, stored, mode="NUMBA", on_unused_input="ignore")
    initial_point = make_initial_point_fn(
        model=model, jitter_rvs=set(model.free_RVs), return_transformed=True
    )
    return LogDensity(
        model=model,
        value_names=tuple(var.name for var in value_vars),
        output_names=tuple(outputs),
        logp_dlogp=logp_dlogp,
        expand=expand,
        initial_point=initial_point,
        centred=centred,
        intercept=intercept,
    )


def _bound(function: Any) -> Callable[..., Any]:
    """The numba function behind a NUMBA-mode PyTensor function, its data bound as they are now.

    Calling ``vm.jit_fn`` directly skips PyTensor's per-call checks (about 10 µs, paid at every
    gradient); the shared variables (the data containers) follow the inputs, in ``get_shared``
    order.
    """
    jitted = function.vm.jit_fn
    shared = tuple(var.get_value(borrow=True) for var in function.get_shared())
    return lambda *values: jitted(*values, *shared)


@dataclass(frozen=True)
class _Layout:
    """Where each value variable sits in nutpie's flat vector."""

    slices: tuple[slice, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def n_dim(self) -> int:
        return self.slices[-1].stop if self.slices else 0

    def split(self, x: np.ndarray) -> list[np.ndarray]:
        return [
            x[where].reshape(shape) for where, shape in zip(self.slices, self.shapes, strict=True)
        ]


def _layout(density: LogDensity) -> _Layout:
    point = density.initial_point(0)
    shapes = tuple(np.shape(point[name]) for name in density.value_names)
    bounds = np.cumsum([0, *(int(np.prod(shape)) for shape in shapes)])
    slices = tuple(slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    return _Layout(slices=slices, shapes=shapes)


def warm_up(density: LogDensity) -> None:
    """Call both functions once at the initial point: numba compiles (or loads) them now."""
    layout = _layout(density)
    values = layout.split(np.zeros(layout.n_dim))
    _bound(density.logp_dlogp)(*values)
    _bound(density.expand)(*values)


def _pyfunc_model(density: LogDensity) -> Any:
    """nutpie's model of the density at the data and dims the PyMC model holds now."""
    from nutpie.compiled_pyfunc import from_pyfunc

    layout = _layout(density)
    logp_dlogp, expand = _bound(density.logp_dlogp), _bound(density.expand)
    names = density.output_names
    shapes = [np.shape(value) for value in expand(*layout.split(np.zeros(layout.n_dim)))]

    def make_logp() -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        def logp(x: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = logp_dlogp(*layout.split(x))
            return float(value), grad

        return logp

    def make_expand(*_seeds: Any) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        def expanded(x: np.ndarray) -> dict[str, np.ndarray]:
            values = expand(*layout.split(x))
            return {
                name: np.asarray(v, dtype=np.float64) for name, v in zip(names, values, strict=True)
            }

        return expanded

    def initial_point(seed: int) -> np.ndarray:
        point = density.initial_point(seed)
        return np.concatenate([np.ravel(point[name]) for name in density.value_names])

    return from_pyfunc(
        ndim=layout.n_dim,
        make_logp_fn=make_logp,
        make_expand_fn=make_expand,
        make_initial_point_fn=initial_point,
        expanded_dtypes=[np.dtype(np.float64)] * len(names),
        expanded_shapes=shapes,
        expanded_names=list(names),
    )


def sample(
    density: LogDensity,
    *,
    num_chains: int,
    num_warmup: int,
    num_draws: int,
    seed: int,
    target_accept: float,
    max_tree_depth: int,
    low_rank_mass: bool,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """Run nutpie's NUTS (chains one after another, in this process) on the density as it is now.

    Returns
    -------
    draws : dict
        ``(chain, draw, ...)`` arrays of the outputs.
    stats : dict
        The contract's sample statistics (see `STAT_NAMES`).
    seconds : float
        Wall time of sampling.
    """
    import time

    import nutpie

    model = _pyfunc_model(density)
    start = time.perf_counter()
    trace = nutpie.sample(
        model,
        draws=num_draws,
        tune=num_warmup,
        chains=num_chains,
        cores=1,
        seed=seed,
        save_warmup=False,
        progress_bar=False,
        low_rank_modified_mass_matrix=low_rank_mass,
        target_accept=target_accept,
        maxdepth=max_tree_depth,
    )
    seconds = time.perf_counter() - start
    draws = {name: trace.posterior[name].values for name in density.output_names}
    stats = {ours: trace.sample_stats[theirs].values for theirs, ours in STAT_NAMES.items()}
    stats["diverging"] = stats["diverging"].astype(bool)
    return draws, stats, seconds
