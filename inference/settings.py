"""Settings of every engine, as frozen dataclasses (`inference.registry` says which is whose).

`resolve` turns ``None``, a mapping of overrides or a settings instance into the dataclass,
rejecting unknown names with the list of valid ones. The resolved settings are stored in the
result's attrs and make up a study run's content hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class AdviSettings:
    """ADVI of any family, the same problem in both PPLs.

    Parameters
    ----------
    learning_rate : float
        Adam step size at the start of optimisation; it decays as
        ``learning_rate / (1 + t / lr_decay_steps)`` at step ``t`` so that the iterate settles at
        the mean-field optimum instead of jittering around it.
    lr_decay_steps : int
        Steps over which the learning rate halves (inverse-time decay, see ``learning_rate``).
    max_steps : int
        Hard cap on optimisation steps (rounded down to whole windows, at least one window).
    min_steps : int
        Steps always taken before the convergence rule is checked.
    num_particles : int
        Monte-Carlo samples per step in the ELBO gradient estimate.
    init_scale : float
        Initial standard deviation of every factor of q in the unconstrained space (the means
        start at the prior means, PyMC's default initial point).
    tol : float
        Convergence rule: stop when the relative change between the mean loss of the last two
        windows of ``window`` steps, ``|L_k - L_{k-1}| / max(|L_k|, 1)``, falls below ``tol``.
    window : int
        Width of the smoothing windows of the convergence rule.
    num_draws : int
        Draws from the fitted q stored in ``posterior`` (one chain).
    average_steps : int
        Steps taken after the convergence rule stopped (or the cap was hit), in whole windows,
        over which the variational parameters are averaged (Polyak–Ruppert averaging, in the
        optimiser's unconstrained parameterisation); q is the average. Adam's last iterate
        jitters by about the step size around the optimum, which moved posterior SDs by up to
        ±5 % (full-rank ADVI on Boston: β SD ratios 0.95–1.22 against the exact posterior
        with the last iterate); the average removes most of that. 0 turns it off.
    pad_shapes : bool
        Fit on data padded to a few fixed numbers of groups (16, 128, 1024; dense families up
        to 16) and, in NumPyro, rows (128, 1024, 2048, 4096, 8192), the padded rows weightless
        and the padded groups' effects independent N(0, 1), so that one compiled program serves
        many data sets (`inference.ppl.padding`; the posterior of the real parameters is
        unchanged). XLA compiles each data shape once, 3-10 s on 2 cores, while the fit itself
        runs in 0.1-1.5 s; PyMC's step function takes any number of rows but has one parameter
        of q per group (1-2 s to build with PyTensor's C cache warm, 2-20 s cold).
    """

    learning_rate: float = 0.01
    lr_decay_steps: int = 5_000
    max_steps: int = 50_000
    min_steps: int = 5_000
    num_particles: int = 1
    init_scale: float = 0.1
    tol: float = 1e-4
    window: int = 500
    num_draws: int = 4_000
    average_steps: int = 2_000
    pad_shapes: bool = True


@dataclass(frozen=True)
class DenseAdviSettings(AdviSettings):
    """ADVI of a family with a dense covariance block (``block``, ``full_rank``).

    The same fields as `AdviSettings`; only the default ``num_particles`` differs (4): the
    gradient of the Cholesky factor's ~p²/2 entries from one draw is so noisy that the fitted SDs
    of beta and u stopped 3–6 % short of block CAVI's optimum at Q = 50 (53 × 53 block); with 4
    draws per step they land within 3 % in the same number of steps.
    """

    num_particles: int = 4


@dataclass(frozen=True)
class NutsSettings:
    """The No-U-Turn sampler of each PPL.

    Parameters
    ----------
    num_chains, num_warmup, num_draws : int
        Chains, warm-up (tuning) iterations per chain, kept draws per chain.
    target_accept : float
        Target acceptance probability of step-size adaptation.
    max_tree_depth : int
        Maximum tree depth.
    dense_mass : bool
        Adapt a dense mass matrix during warm-up instead of the PPLs' default diagonal one
        (NumPyro ``dense_mass=True``; PyMC ``init="jitter+adapt_full"``). Worth it when the
        posterior has strong linear correlations, e.g. the intercept against the random
        intercepts of a centred Gaussian model (bulk ESS of beta_0 at Q = 50: 172 -> 6851 with
        NumPyro, 339 -> 4480 with PyMC). PyMC calls its full adaptation experimental: here it
        diverged with ~100 random intercepts (R-hat 1.4-3.8 at Q = 100). nutpie has no dense
        mass matrix: with ``sampler="nutpie"`` use ``low_rank_mass``.
    sampler : {"nutpie", "pymc"}
        How the ``pymc`` backend runs NUTS (NumPyro always runs its own kernel and accepts only
        the default): ``"nutpie"``, nutpie's Rust sampler on the model's log density compiled
        once per model with numba (`inference.ppl.nutpie_sampler`), or ``"pymc"``, ``pm.sample``.
        nutpie is the default: on the reproduction's 16 PyMC NUTS fits it took 21 s of sampling
        against PyMC's 115 s (quiet 2-core machine), and it compiles once per model instead of
        once per fit.
    low_rank_mass : bool
        nutpie only: adapt a diagonal mass matrix plus a low-rank correction from the draws and
        gradients (``low_rank_modified_mass_matrix``), which follows the intercept's ridge
        against the random intercepts that a diagonal one cannot (centred M0 at Q = 100: bulk
        ESS of beta_0 201 -> 8443, R-hat 1.03 -> 1.00).
    centring : {"model", "centred", "non_centred", "auto"}
        How NUTS moves through the group effects (`inference.ppl.centring`; NumPyro and
        nutpie): as the model writes them, or through the centred form of the same posterior
        with every group centred, none, or (``"auto"``) those with at least 20 rows. The
        posterior and the stored parameters are the same; only mixing changes (centred where a
        group's data pin its effect down, non-centred where the prior's funnel dominates).
    intercept_centring : bool
        With groups sampled centred (``centring`` other than ``"model"``; NumPyro, and nutpie in
        PyMC): move each centred group through its own intercept ``beta_0 + u_j`` instead of
        ``u_j`` (hierarchical centring, `inference.ppl.centring`), which removes the ridge of
        beta_0 against the random intercepts that a diagonal mass matrix cannot follow (centred
        M0, Q = 100 groups of 20 rows, NumPyro: bulk ESS of beta_0 467 -> 19,683, 22.7 -> 15.0
        leapfrog steps per draw). nutpie's ``low_rank_mass`` follows the same ridge but costs
        more per warm-up draw: on M0 with 20 rows per group the shear with a diagonal mass
        matrix sampled in two thirds of the time. Off by default: on the logistic model with
        5-10 groups and a vague prior it diverged on 4 of 12 data sets where the plain centred
        form did not.
    """

    num_chains: int = 4
    num_warmup: int = 1_000
    num_draws: int = 1_000
    target_accept: float = 0.9
    max_tree_depth: int = 10
    dense_mass: bool = False
    sampler: str = "nutpie"
    low_rank_mass: bool = False
    centring: str = "model"
    intercept_centring: bool = False


@dataclass(frozen=True)
class ExactSettings:
    """Exact conjugate posterior of the linear model.

    Parameters
    ----------
    num_draws : int
        Independent draws from the exact posterior stored in ``posterior`` (one chain).
    """

    num_draws: int = 4_000


@dataclass(frozen=True)
class CaviSettings:
    """Closed-form coordinate-ascent mean-field VB.

    Parameters
    ----------
    max_iter : int
        Cap on sweeps over the factors.
    tol : float
        Stop after sweep ``k >= 2`` when ``ELBO_k - ELBO_{k-1} < tol * |ELBO_k|`` (the ELBO never
        decreases, so this is its relative gain; a round-off-sized decrease also stops).
    num_draws : int
        Draws from the fitted q stored in ``posterior`` (one chain).
    """

    max_iter: int = 1_000
    tol: float = 1e-10
    num_draws: int = 4_000


@dataclass(frozen=True)
class GibbsSettings:
    """Conditionally conjugate Gibbs sampler.

    Parameters
    ----------
    num_chains : int
        Independent chains (over-dispersed starts).
    num_burnin : int
        Sweeps discarded at the start of each chain.
    num_draws : int
        Kept draws per chain (after thinning).
    thin : int
        Keep every ``thin``-th sweep.
    """

    num_chains: int = 4
    num_burnin: int = 1_000
    num_draws: int = 2_000
    thin: int = 1


def resolve(cls: type, label: str, settings: Any = None) -> Any:
    """Defaults of the settings class ``cls`` updated with ``settings``, validated.

    Parameters
    ----------
    cls : type
        A settings dataclass of this module.
    label : str
        The ``backend/method[:family]`` the settings are for (named in errors).
    settings : None, mapping or instance of ``cls``
        Overrides by name, or a ready instance.

    Raises
    ------
    ValueError
        On an unknown setting name (the valid ones are listed), a wrong settings class, or a
        value of the wrong type or range.
    """
    if isinstance(settings, cls):
        return _validated(settings)
    if settings is not None and not isinstance(settings, Mapping):
        raise ValueError(
            f"settings: expected a mapping or {cls.__name__} for {label}, "
            f"got {type(settings).__name__}"
        )
    overrides = dict(settings or {})
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"settings: unknown setting(s) {unknown} for {label}; valid: {valid}")
    return _validated(replace(cls(), **overrides))


_MAY_BE_ZERO = frozenset({"average_steps"})
_CHOICES = {
    "sampler": ("nutpie", "pymc"),
    "centring": ("model", "centred", "non_centred", "auto"),
}


def _validated(settings: Any) -> Any:
    for field in fields(settings):
        value = getattr(settings, field.name)
        default = getattr(type(settings)(), field.name)
        if isinstance(default, int) and not isinstance(value, bool):
            least = 0 if field.name in _MAY_BE_ZERO else 1
            if not isinstance(value, int) or value < least:
                kind = "non-negative" if least == 0 else "positive"
                raise ValueError(f"settings.{field.name}: expected a {kind} integer, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(
                    f"settings.{field.name}: expected a positive number, got {value!r}"
                )
    for name, choices in _CHOICES.items():
        value = getattr(settings, name, choices[0])
        if value not in choices:
            raise ValueError(f"settings.{name}: expected one of {list(choices)}, got {value!r}")
    if getattr(settings, "target_accept", 0.5) >= 1:
        raise ValueError(
            f"settings.target_accept: expected a value in (0, 1), got {settings.target_accept}"
        )
    if getattr(settings, "intercept_centring", False) and settings.centring == "model":
        raise ValueError(
            "settings.intercept_centring: needs groups sampled centred; set settings.centring "
            "to 'centred' or 'auto'"
        )
    return settings
