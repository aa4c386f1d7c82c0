"""The MCMC gate: a reference posterior is used only if its diagnostics pass.

R-hat (rank-normalised, split), bulk and tail ESS of every reported variable, and the number of
divergent transitions. Exact and closed-form references pass by construction; a reference with
a single chain cannot have its R-hat checked and fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.ratios import DEFAULT_VAR_NAMES, posterior_of

EXACT_METHODS = ("exact",)


@dataclass(frozen=True)
class GateThresholds:
    """Limits a reference must meet.

    Parameters
    ----------
    rhat_max : float
        Largest acceptable R-hat.
    ess_min : float
        Smallest acceptable bulk and tail ESS.
    max_divergences : int
        Largest acceptable number of divergent transitions.
    """

    rhat_max: float = 1.01
    ess_min: float = 400.0
    max_divergences: int = 0


@dataclass(frozen=True)
class GateResult:
    """Diagnostics of one reference and whether it passed."""

    passed: bool
    rhat_max: float = float("nan")
    ess_bulk_min: float = float("nan")
    ess_tail_min: float = float("nan")
    divergences: int = 0
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        """``ok`` or ``FAIL: reason; reason``, the text shown in tables and figures."""
        return "ok" if self.passed else "FAIL: " + "; ".join(self.reasons)


def mcmc_gate(
    reference: Any,
    var_names: Sequence[str] | None = None,
    thresholds: GateThresholds = GateThresholds(),
) -> GateResult:
    """Check a reference fit's R-hat, bulk/tail ESS and divergences against ``thresholds``.

    Parameters
    ----------
    reference : InferenceData
        A reference fit (NUTS, Gibbs, or an exact posterior).
    var_names : sequence of str, optional
        Variables to check (default: all public parameters present).
    thresholds : GateThresholds
        Limits; configurable.

    Returns
    -------
    GateResult
        ``passed`` and the worst R-hat, the smallest ESS, the number of divergences and the
        reasons of a failure.

    Examples
    --------
    >>> import arviz as az
    >>> rng = np.random.default_rng(0)
    >>> good = az.from_dict(posterior={"tau_u": rng.normal(size=(4, 1000))})
    >>> mcmc_gate(good).passed
    True
    """
    posterior = posterior_of(reference)
    if posterior.attrs.get("method") in EXACT_METHODS:
        return GateResult(passed=True, reasons=())
    names = [n for n in (var_names or DEFAULT_VAR_NAMES) if n in posterior.data_vars]
    if not names:
        raise ValueError("reference: none of the requested variables is in its posterior")
    import arviz as az

    subset = posterior[names]
    n_chains = posterior.sizes["chain"]
    rhat = _worst(az.rhat(subset), max) if n_chains > 1 else float("nan")
    ess_bulk = _worst(az.ess(subset, method="bulk"), min)
    ess_tail = _worst(az.ess(subset, method="tail"), min)
    divergences = _divergences(reference)
    reasons = []
    if n_chains < 2:
        reasons.append("single chain (R-hat unavailable)")
    elif not rhat <= thresholds.rhat_max:
        reasons.append(f"R-hat {rhat:.3f} > {thresholds.rhat_max}")
    if not min(ess_bulk, ess_tail) >= thresholds.ess_min:
        reasons.append(f"ESS {min(ess_bulk, ess_tail):.0f} < {thresholds.ess_min:.0f}")
    if divergences > thresholds.max_divergences:
        reasons.append(f"{divergences} divergences")
    return GateResult(
        passed=not reasons,
        rhat_max=rhat,
        ess_bulk_min=ess_bulk,
        ess_tail_min=ess_tail,
        divergences=divergences,
        reasons=tuple(reasons),
    )


def _worst(values: Any, pick: Any) -> float:
    flat = np.concatenate([np.ravel(values[name].values) for name in values.data_vars])
    flat = np.where(np.isnan(flat), np.inf if pick is max else -np.inf, flat)
    return float(pick(flat))


def _divergences(reference: Any) -> int:
    stats = getattr(reference, "sample_stats", None)
    if stats is None or "diverging" not in stats:
        return 0
    return int(np.asarray(stats["diverging"].values, dtype=bool).sum())
