"""Data padded to a few fixed sizes, so that one compiled ADVI program fits many data sets.

XLA compiles a program for one shape of its inputs; NumPyro's ADVI programs take 3-10 s to
compile per shape on 2 cores (block ADVI: an ELBO over 4 particles through a Cholesky factor)
and then run in 0.1-1.5 s, so a study of many numbers of groups and rows spends most of its time
compiling. Padding the groups to ``16, 128, 1024`` and the rows to ``128, 1024, 2048, 4096,
8192`` (`GROUP_SIZES`, `ROW_SIZES`; larger data keep their shape, where running costs more
than compiling) maps, e.g., the reproduction's Q = 5 ... 100 groups with N = 300 rows to two
shapes for mean-field ADVI (dense families pad groups only up to 16, `padding_of`).

Padding leaves the posterior of the real parameters exactly as it was:

- a padded row has zero weight: the observed site under the ``obs`` plate is masked
  (``Distribution.mask``), so its log-likelihood term is 0 whatever its values;
- no row points to a padded group, and every latent site under the ``group`` plate (``u``, or
  ``z`` of the non-centred model) has its prior masked on the padded groups and replaced there by
  an independent N(0, 1) (a ``factor`` site): the padded effects are N(0, 1) a priori and a
  posteriori, independent of everything else, and tau_u's prior terms come from the real groups
  only.

So the joint density is the unpadded one times a product of N(0, 1) densities of the padded
effects (`tests/inference/test_padding.py` checks this to rounding error), and the variational
optimum over the real parameters is the unpadded one (the padded factors' optimum is their
N(0, 1) prior). Draws and the fitted q are cut back to the real groups (`trim_draws`,
`trim_dense`), the dense factor through its covariance, so the order of its sites does not
matter. The ELBO in ``vi_trace`` is the padded model's: at the optimum the padded factors add
nothing to it in expectation (their q is their prior), but their draws add noise to each
step's estimate, which the convergence rule waits out (PyMC's mean-field M3 at Q = 5 padded to
16 groups: 24,500 steps instead of 19,000).

PyMC (`inference.ppl.pymc_engine`) pads the groups alone, to the same sizes: its compiled step
function reads the rows from ``pm.Data`` and takes any number of them, but q has one parameter
per group. Its padded model adds a ``pm.Potential`` per group-level site that turns the prior of
the padded effects into N(0, 1) (the same joint density as here).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.ppl.centring import GROUP_PLATE, plate_names

GROUP_SIZES = (16, 128, 1024)
"""Numbers of groups that data are padded to (more groups than the last: not padded)."""
DENSE_GROUP_SIZES = (16,)
"""The same for a family with a dense block over the effects (``block``, ``full_rank``)."""
ROW_SIZES = (128, 1024, 2048, 4096, 8192)
"""Numbers of rows that data are padded to (more rows than the last: not padded)."""
OBS_PLATE = "obs"


def _bucket(size: int, sizes: tuple[int, ...]) -> int:
    return next((bucket for bucket in sizes if size <= bucket), size)


@dataclass(frozen=True)
class Padding:
    """Real and padded numbers of rows and groups of one data set.

    Attributes
    ----------
    n_obs, n_groups : int
        The data's rows and groups.
    padded_obs, padded_groups : int
        The sizes the compiled program sees.
    """

    n_obs: int
    n_groups: int
    padded_obs: int
    padded_groups: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(padded_obs, padded_groups)``: what a compiled program depends on."""
        return (self.padded_obs, self.padded_groups)

    @property
    def pads(self) -> bool:
        """Whether anything is padded."""
        return self.shape != (self.n_obs, self.n_groups)


def padding_of(data: Any, *, enabled: bool = True, dense: bool = False) -> Padding:
    """The padding of ``data``: rows and groups rounded up to `ROW_SIZES` and `GROUP_SIZES`.

    Parameters
    ----------
    data : RegressionData
        The data.
    enabled : bool
        ``False``: no padding. Data without groups (the linear model) are never padded.
    dense : bool
        The family has a dense block over the effects: groups are padded only up to
        `DENSE_GROUP_SIZES`. Padded effects in a dense block are not free: their
        cross-covariances with the real effects are fitted too, from noisy gradients (block
        ADVI at Q = 20 padded to 128 groups took 13,000 steps in 2.4 s instead of 8,500 steps
        in 0.3 s), which costs more than the compilations it saves.
    """
    if not enabled or data.group is None:
        return Padding(data.n_obs, data.n_groups, data.n_obs, data.n_groups)
    return Padding(data.n_obs, data.n_groups, *padded_shape(data.n_obs, data.n_groups, dense))


def padded_shape(n_obs: int, n_groups: int, dense: bool = False) -> tuple[int, int]:
    """``(rows, groups)`` that grouped data of ``n_obs`` rows and ``n_groups`` groups are padded
    to (`padding_of`; ``dense``: a family with a dense block over the effects)."""
    return (
        _bucket(n_obs, ROW_SIZES),
        _bucket(n_groups, DENSE_GROUP_SIZES if dense else GROUP_SIZES),
    )


def padded_arrays(data: Any, padding: Padding) -> tuple[Any, ...]:
    """``(X, group, y, obs_mask, group_mask)`` as JAX arrays; masks are ``None`` when unpadded.

    Padded rows are zeros (group 0, y = 0: a valid value of every likelihood) with mask False.
    """
    import jax.numpy as jnp

    extra = padding.padded_obs - padding.n_obs
    X = np.pad(np.asarray(data.X, dtype=np.float64), ((0, extra), (0, 0)))
    y = np.pad(np.asarray(data.y, dtype=np.float64), (0, extra))
    group = None
    if data.group is not None:
        group = jnp.asarray(np.pad(np.asarray(data.group, dtype=np.int64), (0, extra)))
    masks = (None, None)
    if padding.pads:
        masks = (
            jnp.asarray(np.arange(padding.padded_obs) < padding.n_obs),
            jnp.asarray(np.arange(padding.padded_groups) < padding.n_groups),
        )
    return (jnp.asarray(X), group, jnp.asarray(y), *masks)


def padded_model(model_fn: Callable[..., None], n_groups: int, priors: Any) -> Callable[..., None]:
    """``model(X, group, y, obs_mask, group_mask)``: ``model_fn`` with ``n_groups`` groups, the
    padded rows masked out and the padded groups' effects N(0, 1) (module docstring)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model(X, group, y=None, obs_mask=None, group_mask=None):
        if obs_mask is None:
            model_fn(X, group, n_groups, y, priors=priors)
            return
        masking = _mask_padding_type()(obs_mask, group_mask)
        with masking:
            model_fn(X, group, n_groups, y, priors=priors)
        for name, value in masking.group_values.items():
            log_prob = dist.Normal(0.0, 1.0).log_prob(value)
            numpyro.factor(f"_{name}_padding", jnp.sum(jnp.where(group_mask, 0.0, log_prob)))

    return model


@functools.cache
def _mask_padding_type() -> type:
    """The NumPyro handler of `padded_model` (defined on first use: this module is also the
    PyMC engine's, which imports no NumPyro)."""
    from numpyro.primitives import Messenger

    class MaskPadding(Messenger):
        """Mask the padded rows of observed ``obs`` sites and the padded groups of latent
        ``group`` sites; keep the values of the latter (for their N(0, 1) factor)."""

        def __init__(self, obs_mask: Any, group_mask: Any) -> None:
            self.obs_mask, self.group_mask = obs_mask, group_mask
            self.group_values: dict[str, Any] = {}
            super().__init__()

        def process_message(self, msg: dict) -> None:
            if msg["type"] != "sample":
                return
            if msg["is_observed"] and OBS_PLATE in plate_names(msg):
                msg["fn"] = msg["fn"].mask(self.obs_mask)
            elif not msg["is_observed"] and GROUP_PLATE in plate_names(msg):
                msg["fn"] = msg["fn"].mask(self.group_mask)

        def postprocess_message(self, msg: dict) -> None:
            is_effect = msg["type"] == "sample" and not msg["is_observed"]
            if is_effect and GROUP_PLATE in plate_names(msg):
                self.group_values[msg["name"]] = msg["value"]

    return MaskPadding


def spec_dims(spec: Any) -> dict[str, tuple[str, ...]]:
    """Dims of every site of ``spec``: its parameters and its internal (group-level) sites."""
    return {**spec.parameters, **{name: (GROUP_PLATE,) for name in spec.internal}}


def trim_draws(
    draws: dict[str, np.ndarray], dims: dict[str, tuple[str, ...]], padding: Padding
) -> dict[str, np.ndarray]:
    """Draws (leading sample axes) cut back to the real groups on every ``group`` dim."""
    out = {}
    for name, values in draws.items():
        site_dims = dims.get(name, ())
        if GROUP_PLATE in site_dims:
            axis = values.ndim - len(site_dims) + site_dims.index(GROUP_PLATE)
            values = np.take(values, np.arange(padding.n_groups), axis=axis)
        out[name] = values
    return out


def trim_dense(
    sites: tuple[tuple[str, int], ...],
    loc: np.ndarray,
    scale_tril: np.ndarray,
    group_sites: set[str],
    padding: Padding,
) -> tuple[tuple[tuple[str, int], ...], np.ndarray, np.ndarray]:
    """A dense Gaussian factor over ``sites`` marginalised to the real groups.

    The marginal of a Gaussian keeps the rows of the mean and the rows and columns of the
    covariance; its Cholesky factor is recomputed from that covariance.
    """
    keep, kept_sites, start = [], [], 0
    for name, size in sites:
        real = padding.n_groups if name in group_sites else size
        keep.extend(range(start, start + real))
        kept_sites.append((name, real))
        start += size
    keep_index = np.asarray(keep)
    covariance = scale_tril @ scale_tril.T
    marginal = covariance[np.ix_(keep_index, keep_index)]
    return tuple(kept_sites), np.asarray(loc)[keep_index], np.linalg.cholesky(marginal)
