"""How NUTS moves through the group effects: as the model writes them, centred, non-centred, or
chosen per group (``NutsSettings.centring``). The posterior is the same in every case.

Why
    A centred random effect ``u_j ~ N(0, sigma_u)`` and its non-centred form ``u_j = sigma_u
    z_j, z_j ~ N(0, 1)`` are one posterior in two coordinate systems, and NUTS mixes well in
    only one of them: centred when a group's data pin ``u_j`` down, non-centred when they do not
    (a funnel between ``u_j`` and ``sigma_u``). The reproduction has both in one study: with a
    fixed N = 300 rows, Q = 5 groups have 60 rows each and Q = 100 groups 3. Measured (4 x
    (1000 + 1000), vague Gamma(0.01, 0.01) priors): centred M3 failed the MCMC gate at Q >= 20
    in both PPLs (bulk ESS of tau_u 17-250, R-hat up to 1.19, even with 3,000 draws and target
    acceptance 0.95), non-centred M3 passed at Q = 20 and 100 but diverged at Q = 5; the
    non-centred M2 diverged at Q = 5 (44-53 divergences) where centred M0 passed.
What ``centring`` does
    ``"model"`` samples the model as written. Otherwise NUTS samples the *centred form* of the
    model (the model itself, or the centred model it shares its posterior with,
    ``spec.same_posterior_as``: M0 for M2) with group ``j`` centred or not: all groups
    (``"centred"``), none (``"non_centred"``), or those with at least `CENTRED_MIN_ROWS` rows
    (``"auto"``). A non-centred group's effect is sampled as ``z_j`` with ``u_j = mu + sigma z_j``
    (NumPyro's `LocScaleReparam`, elementwise; in PyMC the same substitution in the log density
    with its Jacobian, `inference.ppl.nutpie_sampler`). The stored draws are the model's public
    parameters either way.
The intercept (``intercept_centring``)
    A centred group's effect ``u_j`` and the intercept ``beta_0`` form a ridge when the groups' data
    pin down ``beta_0 + u_j`` better than either: a diagonal mass matrix cannot follow it.
    With ``NutsSettings.intercept_centring`` NUTS moves each centred group's own intercept
    ``v_j = beta_0 + u_j`` instead of ``u_j`` (hierarchical centring: Gelfand, Sahu & Carlin 1995,
    "Efficient parametrisations for normal linear mixed models", Biometrika 82(3); a shear with
    unit Jacobian: `shear_to_intercept` around NumPyro's potential, the same substitution in
    nutpie's log density, `inference.ppl.nutpie_sampler.reparameterise`). Measured on NumPyro's
    M0, 4 x (1000 + 2000): Q = 100
    groups of 20 rows, bulk ESS of beta_0 467 -> 19,683 (R-hat 1.012 -> 1.000) and 22.7 -> 15.0
    leapfrog steps per draw; N = 300 rows over Q = 5, 38 -> 8 steps. With it, M0 sampled centred
    passes the MCMC gate with 1,000 draws per chain at every Q of the reproduction, 3 rows per group
    included (four data sets each). It is off by default: on the logistic model at N = 300 rows over
    Q = 5 or 10 groups with a vague Gamma(0.01, 0.01) prior on tau_u it diverged (1-4 divergences)
    on 4 of 12 data sets where the plain centred form had none. nutpie (PyMC) follows the ridge
    with its low-rank mass matrix as well, but adapting it costs time at every warm-up draw: on
    M0 with 20 rows per group (Q = 5 ... 100, three data sets each, 4 x (500 + 1000)) the shear
    with nutpie's diagonal mass matrix passed the MCMC gate 15/15 in 23.8 s of sampling against
    35.1 s with the low-rank one, at Q = 1,000 in 32.7 s against 52.5 s (2026-11-27). On the
    reproduction's N = 300 rows over up to 100 groups (3 per group) the low-rank matrix passes
    more often (13/15 against 10/15 with the shear), so which one is a setting of the study.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from models.spec import ModelSpec, RegressionData

CHOICES = ("model", "centred", "non_centred", "auto")
CENTRED_MIN_ROWS = 20
"""``"auto"``: groups with at least this many rows are sampled centred, the others not."""
GROUP_PLATE = "group"


def plate_names(msg: dict) -> set[str]:
    """Names of the plates a NumPyro message's site sits in."""
    return {frame.name for frame in msg["cond_indep_stack"]}


def sampled_spec(spec: ModelSpec, centring: str) -> ModelSpec:
    """The model NUTS samples: ``spec`` for ``"model"``, else its centred form."""
    from models import MODELS

    if centring == "model" or not spec.internal or not spec.same_posterior_as:
        return spec
    return MODELS[spec.same_posterior_as]


def centred_groups(data: RegressionData, centring: str) -> np.ndarray | None:
    """Per group, whether its effect is sampled centred (``None``: the model as written)."""
    if centring == "model" or data.group is None:
        return None
    if centring == "auto":
        return data.group_sizes() >= CENTRED_MIN_ROWS
    return np.full(data.n_groups, centring == "centred")


def numpyro_centring(model: Callable[..., None]) -> Callable[..., None]:
    """``model(X, group, y, centred)``: ``model(X, group, y)`` with every latent Normal site under
    the ``group`` plate reparameterised elementwise, centred where ``centred`` is true."""
    from numpyro.handlers import reparam
    from numpyro.infer.reparam import LocScaleReparam

    def reparameterised(X, group, y=None, centred=None):
        if centred is None:
            model(X, group, y)
            return
        strength = centred.astype(X.dtype)

        def config(msg: dict) -> Any:
            latent = msg["type"] == "sample" and not msg["is_observed"]
            grouped = GROUP_PLATE in plate_names(msg)
            if latent and grouped and not msg["name"].endswith("_decentered"):
                return LocScaleReparam(centered=strength)
            return None

        reparam(model, config=config)(X, group, y)

    return reparameterised


def intercept_column(X: Any, xp: Any = None) -> Any:
    """1 at the first column of ``X`` that is all ones (the intercept), 0 elsewhere.

    An array of ``xp`` (default ``jax.numpy``, for NumPy and traced data alike; nutpie's density
    takes it with ``xp = numpy`` as data). Data without an intercept column give all zeros:
    the shear then changes nothing.
    """
    if xp is None:
        import jax.numpy as xp

    X = xp.asarray(X)
    ones = xp.all(X == 1.0, axis=0)
    return (ones & (xp.cumsum(ones) == 1)).astype(X.dtype)


def shear_to_intercept(params: dict, intercept: Any, centred: Any, sign: float) -> dict:
    """Move the centred groups' effects by ``sign`` times the intercept (NumPyro's NUTS).

    In the sampled coordinates a centred group carries ``v_j = beta_0 + u_j`` (its own intercept)
    instead of ``u_j`` (``sign = +1``: model to sampled, ``-1``: back); non-centred groups and
    every other site are left as they are. ``intercept`` is `intercept_column` of the data,
    computed once by the caller (this runs at every gradient). The map is a shear with unit
    Jacobian, so the posterior is the same (module docstring, "The intercept").
    """
    beta_0 = params["beta"] @ intercept
    moved = dict(params)
    for name, value in params.items():
        if name.endswith("_decentered"):
            moved[name] = value + sign * beta_0 * centred.astype(value.dtype)
    return moved
