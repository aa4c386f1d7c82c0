"""PyMC engines: ADVI of every family (`pm.KLqp` of an approximation) and NUTS (nutpie or PyMC's).

The PyMC model of a problem (model, priors, settings, shape of the data) is built once, with its
data in ``pm.Data`` containers, and kept in a module-level cache; a later fit to new data of the
same shape swaps the data in with ``pm.set_data``. For ADVI the shape is the number of groups
alone, padded as in NumPyro (``AdviSettings.pad_shapes``, `inference.ppl.padding`): the step
function takes any number of rows, so, e.g., mean-field ADVI at Q = 20, 50 and 100 groups of 20
rows is one program (`_mask_padded_groups`).

ADVI
    The family is the approximation (`_approximation`): `pm.ADVI` (``mean_field``: Gaussian with
    diagonal covariance in the unconstrained space, ``sd = softplus(rho)``), or a
    `pm.Approximation` of a full-rank group (``L`` with a softplus diagonal) over every latent
    (``full_rank``, what `pm.FullRankADVI` fits) or over the effects (``spec.effects``) with a
    mean-field group over the rest (``block``).
    q starts at the model's initial point (the prior means, as NumPyro's ``init_to_mean``) with
    every ``sd = init_scale`` (``start_sigma``; the full-rank ``L = init_scale I``),
    ``num_particles`` samples per step (``obj_n_mc``) and
    `pm.adam` whose step size is a shared variable set before every step to the schedule of
    `inference.vi`; the steps run in windows under the same convergence rule as NumPyro. The
    compiled step function is cached with the model: before each fit every shared variable it
    updates (``mu``, ``rho``, Adam's moments and step counter) is reset to its initial value and its
    random generators are re-seeded from ``seed``, so a second fit compiles nothing, even with
    another step size, window, number of steps or draws (`RUN_TIME_ADVI_SETTINGS`). (``pm.fit``
    would compile a new step function on every call; the loop it runs is the one below.)
    Block and full-rank q with several draws per step: the draws are evaluated in one
    vectorised graph (`_vectorised_approximation`) instead of PyMC's ``scan`` over draws, which
    runs op by op from Python (block ADVI at Q = 100, 4 draws: 0.47 instead of 0.68 ms per step,
    compile 5.0 instead of 7.7 s; `benchmarks/advi_compile.py`), and the full-rank group builds
    ``L`` with ops that run in C (`_full_rank_group`; block ADVI of M0 at Q = 100: 0.26-0.31
    instead of 0.43 ms per step; full rank of M3 at Q = 50: 2.7 instead of 7.1 s a fit, the same
    numbers to 1e-12).
NUTS
    ``NutsSettings.sampler`` picks the sampler, both in this process, chains one after another.
    ``"nutpie"`` (default): nutpie's Rust NUTS on the model's log density compiled by PyTensor's
    numba backend *once per model*, for any data shape (`inference.ppl.nutpie_sampler`; the
    compiled density is cached with the model, which is resized with ``set_dim``/``set_data``),
    with a diagonal or low-rank (``low_rank_mass``) mass matrix and optionally per-group
    centring (``centring``, `inference.ppl.centring`). Measured on the reproduction's 16 PyMC
    NUTS fits (2 shared cores): 55 s compiling and 116 s sampling, against 45 s and 246 s for
    ``pm.sample`` in the same conditions, and with the low-rank mass matrix the centred models'
    references pass the MCMC gate where ``pm.sample`` failed at Q >= 50 (`benchmarks/
    nuts_samplers.py`). ``"pymc"``: ``pm.sample`` (``dense_mass`` -> ``jitter+adapt_full``),
    which builds and compiles its sampler's functions inside every call (a fraction of a second
    with the model cached and PyTensor's C cache warm); ``compile_time_s`` is its wall time minus
    its own ``sampling_time`` (plus the model build on the first fit).

Both run within `inference.ppl.c_compile.c_compilation`: the C modules PyTensor compiles for
them are compiled by gcc with their common headers precompiled and without debug information
(the same machine code; block ADVI of M0 at Q = 20 + 100 from an empty compile directory: 34 s
compiling instead of 58 s).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import arviz as az
import numpy as np

from inference.contract import build_inference_data
from inference.ppl.c_compile import c_compilation
from inference.ppl.padding import Padding, padding_of, spec_dims, trim_dense, trim_draws
from inference.ppl.programs import ProgramCache, RecentDraws, data_fingerprint, problem_key
from inference.settings import AdviSettings, NutsSettings
from inference.vi import (
    LOOP_SETTINGS,
    DenseFactor,
    fit_advi,
    gaussian_variational,
    learning_rate_at,
)
from models.spec import ModelSpec, RegressionData

BACKEND = "pymc"
_PROGRAMS = ProgramCache()
_DRAWS = RecentDraws()
VECTORISED_PARTICLES = True
"""Evaluate a grouped q's particles in one vectorised graph (`_vectorised_approximation`);
``False``: PyMC's own ``scan`` (for `benchmarks/advi_compile.py`)."""
RUN_TIME_ADVI_SETTINGS = (*LOOP_SETTINGS, "learning_rate", "lr_decay_steps", "window", "num_draws")
"""What a compiled ADVI program does not hold: besides the loop's own settings, the step size is
a shared variable set before every step, the windows are a Python loop over the step function and
the sampler of q takes any number of draws. A fit that changes only these reuses the program."""
PADDED_GROUP = "padded_group"
"""The ``pm.Data`` of a padded ADVI model: 1 on each padded group, 0 on the data's own."""
_STAT_NAMES = ("diverging", "tree_depth", "n_steps", "energy", "acceptance_rate", "step_size", "lp")


@dataclass(frozen=True)
class _AdviProgram:
    model: Any
    approx: Any
    step: Callable[[], Any]
    learning_rate: Any
    initial_values: dict[Any, np.ndarray]
    rngs: list[Any]


def clear_cache() -> None:
    """Forget every built model and compiled step function, and every sampler's kept draws."""
    _PROGRAMS.clear()
    _DRAWS.clear()


def _set_data(model: Any, data: RegressionData) -> None:
    """Put ``data`` into the model's ``pm.Data`` containers (and flag the groups beyond
    ``data.n_groups`` in a padded model's `PADDED_GROUP`)."""
    import pymc as pm

    values = {"X": data.X, "y_obs": data.y}
    if data.group is not None:
        values["group"] = data.group.astype(np.int64)
    if PADDED_GROUP in model.named_vars:
        padded = np.arange(len(model.coords["group"])) >= data.n_groups
        values[PADDED_GROUP] = padded.astype(np.float64)
    pm.set_data(values, model=model, coords={"obs": range(data.n_obs)})


def _softplus_inverse(value: float) -> float:
    return float(np.log(np.expm1(value)))


def _approximation(model: Any, spec: ModelSpec, family: str, init_scale: float) -> Any:
    """The `pm.KLqp` inference of ``family``, every scale of q starting at ``init_scale``.

    ``mean_field``: `pm.ADVI`; ``full_rank``: `pm.KLqp` of a `pm.Approximation` with one
    full-rank group (`_full_rank_group`) over every latent, the q of `pm.FullRankADVI`;
    ``block``: the same with the full-rank group over the effects (``spec.effects``) and a
    mean-field group over the rest. Means start at the model's initial point (prior means).
    """
    import pymc as pm

    start_sigma = {var.name: init_scale for var in model.value_vars}
    if family == "mean_field":
        return pm.ADVI(model=model, random_seed=0, start_sigma=start_sigma)
    if family not in ("block", "full_rank"):
        raise ValueError(f"family: pymc/advi has no family {family!r}")
    dense = [model[name] for name in spec.effects] if family == "block" else model.free_RVs
    rest = [rv for rv in model.free_RVs if rv not in dense]
    groups = [_full_rank_group()(dense, model=model, random_seed=0)]
    if rest:
        groups.append(
            pm.Group(rest, vfam="mean_field", model=model, random_seed=0, start_sigma=start_sigma)
        )
    approx_class = _vectorised_approximation() if VECTORISED_PARTICLES else pm.Approximation
    approx = approx_class(groups, model=model)
    # `Objective.step_function` seeds itself from `approx.rng`, which only single-group
    # approximations have (PyMC 5.28); a grouped one needs it set by hand.
    approx.rng = np.random.RandomState(0)
    inference = pm.KLqp(approx)
    for group in inference.approx.groups:
        if "L_tril" in group.params_dict:
            _set_initial_scale(group, init_scale)
    return inference


def _vectorised_approximation() -> type:
    """`pm.Approximation` that evaluates the model at several draws of q in one vectorised graph.

    PyMC's `Approximation.symbolic_sample_over_posterior` loops over the ``num_particles``
    draws of each step with a ``pytensor.scan``, whose inner function runs op by op from Python
    (block ADVI at Q = 100 with 4 particles: 0.65 ms per step, against 0.1 ms for a single
    draw without the scan). `pytensor.graph.replace.vectorize_graph` turns the same graph into
    one over a leading draw axis instead: the same ELBO estimate from the same draws.
    """
    import pymc as pm
    from pytensor.graph.replace import vectorize_graph

    class VectorisedApproximation(pm.Approximation):
        def symbolic_sample_over_posterior(self, node, more_replacements=None):
            node = self.to_flat_input(node)
            randoms = dict(zip(self.inputs, self.symbolic_randoms, strict=True))
            return vectorize_graph(node, replace=randoms)

    return VectorisedApproximation


def _full_rank_group() -> type:
    """`FullRankGroup` whose ``L`` is built from ``L_tril`` by ops that PyTensor runs in C.

    PyMC scatters ``L_tril`` into ``L`` and takes and sets its diagonal by advanced indexing
    with two index arrays, which PyTensor runs in Python (``perform``, ``np.add.at`` in the
    gradient): 8 such ops a step. Here ``L`` is one gather by a flat index from ``L_tril``,
    the softplus of its diagonal entries and a zero, and ``log det L`` sums the log of that
    diagonal: the same q and the same ELBO, in ops with C code.
    """
    import pytensor.tensor as pt
    from pymc.distributions.dist_math import rho2sigma
    from pymc.variational.approximations import FullRankGroup
    from pymc.variational.opvi import node_property

    class CFullRankGroup(FullRankGroup):
        @node_property
        def L_diagonal(self):
            """The diagonal of ``L``: softplus of the diagonal entries of ``L_tril``."""
            rows, cols = self.tril_indices
            return rho2sigma(self.params_dict["L_tril"][np.flatnonzero(rows == cols)])

        @node_property
        def L(self):
            n = self.ddim
            rows, cols = self.tril_indices
            # L_tril's entries, then the diagonal's, then a zero: L gathers from them.
            source = np.full(n * n, rows.size + n)
            source[rows * n + cols] = np.arange(rows.size)
            source[np.arange(n) * (n + 1)] = rows.size + np.arange(n)
            packed = self.params_dict["L_tril"]
            values = pt.concatenate([packed, self.L_diagonal, pt.zeros((1,))])
            return values[source].reshape((n, n))

        @node_property
        def symbolic_logq_not_scaled(self):
            z0 = self.symbolic_initial
            quadratic = -0.5 * z0**2 - np.log(2 * np.pi) / 2
            return quadratic.sum(range(1, z0.ndim)) - pt.sum(pt.log(self.L_diagonal))

    return CFullRankGroup


def _set_initial_scale(group: Any, init_scale: float) -> None:
    """Start a full-rank group at ``L = init_scale * I`` (PyMC starts at ``softplus(1) I``)."""
    L_tril = group.params_dict["L_tril"]
    rows, cols = group.tril_indices
    values = np.zeros(rows.size)
    values[rows == cols] = _softplus_inverse(init_scale)
    L_tril.set_value(values.astype(L_tril.dtype))


def _group_padding(data: RegressionData, settings: AdviSettings, family: str) -> Padding:
    """The groups padded as NumPyro pads them (`padding_of`), the rows not: a compiled step
    function takes any number of rows (``pm.Data``), but q has one parameter per group."""
    padding = padding_of(data, enabled=settings.pad_shapes, dense=family != "mean_field")
    return replace(padding, padded_obs=data.n_obs)


def _masks_groups(data: RegressionData, settings: AdviSettings) -> bool:
    """Whether the program of ``data`` has the padded-group flags (`_mask_padded_groups`): for
    grouped data with ``pad_shapes``, even when nothing is padded, so that one program serves
    every number of groups up to its padded size."""
    return settings.pad_shapes and data.group is not None


def _mask_padded_groups(model: Any) -> None:
    """Give each padded group's effects an independent N(0, 1) prior instead of the model's.

    A ``pm.Potential`` per group-level free variable adds ``log N(v; 0, 1) - log p(v | ...)``
    on the groups flagged in `PADDED_GROUP` (set per fit, no row points to them), as NumPyro's
    `inference.ppl.padding.padded_model` does: the joint density is the unpadded one times
    N(0, 1) densities of the padded effects, so the variational optimum over the real
    parameters is the unpadded one.
    """
    import pymc as pm
    import pytensor.tensor as pt

    n_groups = len(model.coords["group"])
    with model:
        padded = pm.Data(PADDED_GROUP, np.zeros(n_groups), dims="group")
        for rv in list(model.free_RVs):
            if "group" not in model.named_vars_to_dims.get(rv.name, ()):
                continue
            (prior,) = model.logp(vars=[rv], sum=False)
            standard = pm.logp(pm.Normal.dist(0.0, 1.0), model.rvs_to_values[rv])
            pm.Potential(f"_{rv.name}_padding", pt.sum(pt.switch(padded, standard - prior, 0.0)))


def _build_advi(
    spec: ModelSpec,
    data: RegressionData,
    priors: Any,
    settings: AdviSettings,
    family: str,
    padding: Padding,
) -> _AdviProgram:
    import pymc as pm
    import pytensor
    from pytensor.tensor.random.type import RandomType

    if padding.pads:
        data = replace(data, n_groups=padding.padded_groups, group_labels=())
    model = spec.pymc_builder()(data, priors)
    if _masks_groups(data, settings):
        _mask_padded_groups(model)
    inference = _approximation(model, spec, family, settings.init_scale)
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


class _AdviRun:
    """One ADVI optimisation with a cached `_AdviProgram` (an `inference.vi.AdviRun`)."""

    def __init__(
        self,
        program: _AdviProgram,
        spec: ModelSpec,
        data: RegressionData,
        settings: AdviSettings,
        seed: int,
        padding: Padding,
    ):
        self.program, self.spec, self.settings, self.seed = program, spec, settings, seed
        self.padding = padding
        _set_data(program.model, data)
        _reset(program, seed)
        self.step_index = 0

    def _step(self) -> float:
        settings = self.settings
        rate = learning_rate_at(self.step_index, settings.learning_rate, settings.lr_decay_steps)
        self.program.learning_rate.set_value(np.float64(rate))
        self.step_index += 1
        return float(self.program.step())

    def run_window(self) -> np.ndarray:
        return np.array([self._step() for _ in range(self.settings.window)])

    def average_windows(self, windows: int) -> np.ndarray:
        shared = self.program.approx.params
        totals = [np.zeros_like(var.get_value()) for var in shared]
        losses = []
        for _ in range(windows * self.settings.window):
            losses.append(self._step())
            for total, var in zip(totals, shared, strict=True):
                total += var.get_value(borrow=True)
        for total, var in zip(totals, shared, strict=True):
            var.set_value(total / len(losses))
        return np.asarray(losses)

    def draws(self, num_draws: int) -> dict[str, np.ndarray]:
        sample = self.program.approx.sample(num_draws, random_seed=self.seed)
        draws = {name: sample.posterior[name].values for name in self.spec.parameters}
        return trim_draws(draws, spec_dims(self.spec), self.padding)

    def variational(self) -> Any:
        return _variational(self.program, self.spec, self.padding)


def _variational(program: _AdviProgram, spec: ModelSpec, padding: Padding) -> Any:
    """The ``variational`` group from the fitted groups of q (see `gaussian_variational`), cut
    back to the real groups. The scales are PyMC's ``rho2sigma`` (softplus) of ``rho``, in NumPy
    (as `_cholesky` does for the diagonal of a full-rank factor): no PyTensor function compiled
    for each site of each fit."""
    model = program.model
    site_of = {value.name: rv.name for rv, value in model.rvs_to_values.items()}
    dims = spec_dims(spec)
    group_sites = {site for site, site_dims in dims.items() if "group" in site_dims}
    real_groups = np.arange(padding.n_groups)
    diagonal, dense, transforms = {}, {}, {}
    for group in program.approx.groups:
        params = {name: var.get_value() for name, var in group.params_dict.items()}
        sites = []
        for value_name, (_, where, shape, _) in group.ordering.items():
            site = site_of[value_name]
            transforms[site] = "log" if value_name.endswith("_log__") else "identity"
            sites.append((site, int(np.prod(shape, dtype=int))))
            if "rho" in params:
                scale = np.logaddexp(0.0, params["rho"][where]).reshape(shape)
                loc = params["mu"][where].reshape(shape)
                if site in group_sites:
                    loc, scale = loc[..., real_groups], scale[..., real_groups]
                diagonal[site] = (dims.get(site, ()), loc, scale)
        if "L_tril" in params:
            sites, loc, scale_tril = trim_dense(
                tuple(sites), params["mu"], _cholesky(group, params), group_sites, padding
            )
            dense["block"] = DenseFactor(sites, loc, scale_tril)
    family = "full_rank" if dense and not diagonal else ("block" if dense else "mean_field")
    return gaussian_variational(
        family=family, diagonal=diagonal, dense=dense, transforms=transforms
    )


def _cholesky(group: Any, params: dict[str, np.ndarray]) -> np.ndarray:
    """The lower Cholesky factor of a full-rank group (its diagonal through softplus)."""
    n = params["mu"].size
    L = np.zeros((n, n))
    L[group.tril_indices] = params["L_tril"]
    L[np.diag_indices(n)] = np.logaddexp(0.0, np.diag(L))
    return L


@c_compilation()
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
    """ADVI with PyMC (`pm.KLqp` of the family's approximation); see the module docstring.

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
        `pm.ADVI`; a full-rank group over ``spec.effects`` with a mean-field group over the
        rest; one full-rank group over every latent (the q of `pm.FullRankADVI`).
    progressbar : bool
        Show a bar over windows of steps.

    Returns
    -------
    arviz.InferenceData
        The contract: ``posterior`` with ``num_draws`` draws from q (one chain), ``vi_trace``
        and ``variational`` (``<site>_loc``/``<site>_scale`` of the mean-field group,
        ``block_loc``/``block_scale_tril`` of the full-rank one, unconstrained space).
    """
    family = family or "mean_field"
    padding = _group_padding(data, settings, family)
    # Any number of rows (``None``); the groups padded to ``padding.padded_groups``.
    key = problem_key(
        f"advi:{family}",
        spec,
        data,
        priors,
        settings,
        shape=(None, padding.padded_groups),
        run_time=RUN_TIME_ADVI_SETTINGS,
    )
    program, compile_time = _PROGRAMS.get(
        key, lambda: _build_advi(spec, data, priors, settings, family, padding)
    )
    return fit_advi(
        lambda: _AdviRun(program, spec, data, settings, seed, padding),
        spec,
        data,
        backend=BACKEND,
        family=family,
        settings=settings,
        seed=seed,
        compile_time_s=compile_time,
        progressbar=progressbar,
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


@c_compilation()
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
    """NUTS with nutpie (default) or ``pm.sample``, in this process; see the module docstring.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    data : RegressionData
        Data checked against ``spec``.
    priors : dataclass
        The model's prior hyper-parameters.
    settings : NutsSettings
        Chains, warm-up, draws, target acceptance, maximum tree depth, the sampler (``nutpie``
        or ``pymc``) and its mass matrix (``dense_mass`` for PyMC, ``low_rank_mass`` for nutpie).
    seed : int
        Seed of nutpie, or ``random_seed`` of ``pm.sample``.
    progressbar : bool
        Show PyMC's progress bar (nutpie runs without one).

    Returns
    -------
    arviz.InferenceData
        The contract: ``posterior`` ``(chain, draw, ...)`` and ``sample_stats`` (``diverging``,
        ``tree_depth``, ``n_steps``, ``energy``, ``acceptance_rate``, ``step_size``, ``lp``).
    """
    if settings.sampler == "nutpie":
        return _nuts_nutpie(spec, data, priors=priors, settings=settings, seed=seed)
    if settings.low_rank_mass or settings.centring != "model" or settings.intercept_centring:
        raise ValueError(
            "settings.low_rank_mass, settings.centring, settings.intercept_centring: options of "
            "sampler='nutpie' only"
        )
    return _nuts_pymc(
        spec, data, priors=priors, settings=settings, seed=seed, progressbar=progressbar
    )


def _nuts_pymc(
    spec: ModelSpec,
    data: RegressionData,
    *,
    priors: Any,
    settings: NutsSettings,
    seed: int,
    progressbar: bool,
) -> az.InferenceData:
    """``pm.sample`` on the cached model of this problem."""
    import pymc as pm

    key = problem_key("nuts", spec, data, priors, settings)
    model, build_time = _PROGRAMS.get(key, lambda: spec.pymc_builder()(data, priors))
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
        extra_attrs={"draws_reused": 0},
    )


def _log_density(spec: ModelSpec, data: RegressionData, priors: Any, settings: NutsSettings) -> Any:
    """The model NUTS samples (`centring.sampled_spec`) with its log density compiled for
    nutpie, numba's JIT done."""
    from inference.ppl import centring, nutpie_sampler

    sampled = centring.sampled_spec(spec, settings.centring)
    density = nutpie_sampler.compile_log_density(
        sampled.pymc_builder()(data, priors),
        tuple(spec.parameters),
        per_group_centring=_per_group_centring(data, settings),
    )
    _resize(density, data, settings)
    nutpie_sampler.warm_up(density)
    return density


def _per_group_centring(data: RegressionData, settings: NutsSettings) -> bool:
    return settings.centring != "model" and data.group is not None


def _resize(density: Any, data: RegressionData, settings: NutsSettings) -> None:
    """Put ``data`` into the density's model, resizing its ``group`` dim to the data's groups,
    and set which groups are sampled centred."""
    from inference.ppl import centring

    if data.group is not None:
        density.model.set_dim("group", data.n_groups, coord_values=list(data.group_labels))
    _set_data(density.model, data)
    if density.centred is not None:
        centred = centring.centred_groups(data, settings.centring)
        density.centred.set_value(centred.astype(np.float64))
        intercept = centring.intercept_column(data.X, xp=np)
        density.intercept.set_value(intercept * settings.intercept_centring)


def _nuts_nutpie(
    spec: ModelSpec, data: RegressionData, *, priors: Any, settings: NutsSettings, seed: int
) -> az.InferenceData:
    """nutpie's NUTS on the model's log density, compiled once per (model, priors, coefficients).

    The compiled density has no data shape in it (`inference.ppl.nutpie_sampler`), so its cache
    key leaves out the number of rows and groups and the settings: a second fit of the model, to
    any data with the same coefficients, compiles nothing.
    """
    from inference.ppl import centring, nutpie_sampler

    if settings.dense_mass:
        raise ValueError(
            "settings.dense_mass: nutpie has no dense mass matrix; use low_rank_mass = true"
        )
    grouped, reparameterised = data.group is not None, _per_group_centring(data, settings)
    sampled = centring.sampled_spec(spec, settings.centring).name
    key = ("nuts:nutpie", sampled, priors, data.n_coef, grouped, reparameterised)
    start = time.perf_counter()
    density, _ = _PROGRAMS.get(key, lambda: _log_density(spec, data, priors, settings))

    def sample() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
        _resize(density, data, settings)
        return nutpie_sampler.sample(
            density,
            num_chains=settings.num_chains,
            num_warmup=settings.num_warmup,
            num_draws=settings.num_draws,
            seed=seed,
            target_accept=settings.target_accept,
            max_tree_depth=settings.max_tree_depth,
            low_rank_mass=settings.low_rank_mass,
        )

    memo_key = (key, settings, data_fingerprint(data), seed)
    before_sampling = time.perf_counter()
    (draws, stats, run_time), reused = _DRAWS.get(memo_key, sample)
    if reused:
        run_time = time.perf_counter() - before_sampling
    return build_inference_data(
        spec,
        data,
        draws,
        backend=BACKEND,
        method="nuts",
        seed=seed,
        settings=settings,
        compile_time_s=time.perf_counter() - start - run_time,
        run_time_s=run_time,
        sample_stats=stats,
        extra_attrs={"draws_reused": int(reused)},
    )
