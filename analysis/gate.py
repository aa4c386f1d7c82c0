"""The MCMC gate: a reference posterior is used only if its diagnostics pass.

R-hat (rank-normalised, split), bulk and tail ESS of every reported variable, and the number of
divergent transitions. Exact and closed-form references pass by construction; a reference with
a single chain cannot have its R-hat checked and fails.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis import convergence
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


def reference_diagnostics(reference: Any, var_names: Sequence[str] | None = None) -> pd.DataFrame:
    """R-hat, bulk ESS and tail ESS of every parameter element of a reference fit.

    Parameters
    ----------
    reference : InferenceData or xarray.Dataset
        A reference fit.
    var_names : sequence of str, optional
        Variables (default: all public parameters present).

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter`` (named as in `analysis.ratios.sd_ratio`: ``beta_0``, ``u_3``,
        ``tau_u`` ...), ``rhat``, ``ess_bulk``, ``ess_tail``. R-hat is NaN for a single chain;
        everything is NaN for exact posteriors, whose draws are independent by construction.

    Examples
    --------
    >>> import arviz as az
    >>> rng = np.random.default_rng(0)
    >>> fit = az.from_dict(posterior={"tau_u": rng.normal(size=(4, 500))})
    >>> reference_diagnostics(fit).columns.tolist()
    ['parameter', 'rhat', 'ess_bulk', 'ess_tail']
    """
    posterior = posterior_of(reference)
    names = [n for n in (var_names or DEFAULT_VAR_NAMES) if n in posterior.data_vars]
    if not names:
        raise ValueError("reference: none of the requested variables is in its posterior")
    return pd.concat([_variable_diagnostics(posterior, name) for name in names], ignore_index=True)


# Diagnostics of one variable's draws, computed once: a report asks for the same reference's
# gate in its tables, figure titles and overlays, and the rank-normalised ESS and R-hat of 100
# random effects take ~0.1 s (`analysis.convergence`; 0.35 s through ArviZ). Keyed by a digest of
# the draws, so a changed array is recomputed.
# `stamp_diagnostics` also keeps them in the fit itself (``posterior.attrs["diagnostics"]``),
# where a later process finds them under the same digest.
_CACHE: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
_CACHE_SIZE = 512
DIAGNOSTICS_ATTR = "diagnostics"


def stamp_diagnostics(fit: Any, var_names: Sequence[str] | None = None) -> None:
    """Keep `reference_diagnostics` in ``fit.posterior.attrs["diagnostics"]`` (JSON).

    Each variable's entry carries the digest of its draws: a reader uses it only for the very
    draws it was computed from and recomputes otherwise. A study stamps its MCMC fits when it
    writes them, so that its report (ESS and R-hat of every element of every reference) reads
    them instead of computing them again: 15 s of a 60 s report of the VI1 reproduction.

    Parameters
    ----------
    fit : InferenceData
        A sampler's fit; exact posteriors need nothing and are left alone.
    var_names : sequence of str, optional
        Variables (default: all public parameters present).
    """
    posterior = posterior_of(fit)
    if posterior.attrs.get("method") in EXACT_METHODS:
        return
    names = [n for n in (var_names or DEFAULT_VAR_NAMES) if n in posterior.data_vars]
    stored = {}
    for name in names:
        digest, table = _keyed_diagnostics(posterior, name)
        stored[name] = {"digest": digest, **{c: table[c].tolist() for c in table.columns}}
    posterior.attrs[DIAGNOSTICS_ATTR] = json.dumps(stored)


def _digest(posterior: Any, name: str) -> tuple:
    draws = np.ascontiguousarray(posterior[name].values)
    exact = posterior.attrs.get("method") in EXACT_METHODS
    digest = hashlib.blake2b(draws.tobytes(), digest_size=16).hexdigest()
    return (name, posterior[name].dims, draws.shape, draws.dtype.str, exact, digest)


def _variable_diagnostics(posterior: Any, name: str) -> pd.DataFrame:
    return _keyed_diagnostics(posterior, name)[1]


def _keyed_diagnostics(posterior: Any, name: str) -> tuple[str, pd.DataFrame]:
    """The digest of one variable's draws and their diagnostics: cached, stamped or computed."""
    key = _digest(posterior, name)
    if key in _CACHE:
        _CACHE.move_to_end(key)
    else:
        stored = _stored_diagnostics(posterior, name, key[-1])
        _CACHE[key] = stored if stored is not None else _compute_diagnostics(posterior, name)
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return key[-1], _CACHE[key].copy()


def _stored_diagnostics(posterior: Any, name: str, digest: str) -> pd.DataFrame | None:
    """The diagnostics `stamp_diagnostics` kept for exactly these draws, or None."""
    text = posterior.attrs.get(DIAGNOSTICS_ATTR)
    if not text:
        return None
    entry = json.loads(text).get(name)
    if not entry or entry.get("digest") != digest:
        return None
    columns = ("parameter", "rhat", "ess_bulk", "ess_tail")
    table = pd.DataFrame({column: entry[column] for column in columns})
    return table.astype({column: float for column in columns[1:]})


def _compute_diagnostics(posterior: Any, name: str) -> pd.DataFrame:
    values = posterior[name].transpose("chain", "draw", ...).values
    parameters = _labels(posterior[name])
    nan = np.full(len(parameters), np.nan)
    if posterior.attrs.get("method") in EXACT_METHODS:
        return pd.DataFrame(
            {"parameter": parameters, "rhat": nan, "ess_bulk": nan, "ess_tail": nan}
        )
    computed = {key: np.ravel(value) for key, value in convergence.diagnostics(values).items()}
    return pd.DataFrame({"parameter": parameters, **computed})


def _labels(values: Any) -> list[str]:
    extra = [d for d in values.dims if d not in ("chain", "draw")]
    if not extra:
        return [str(values.name)]
    return [f"{values.name}_{i}" for i in range(values.sizes[extra[0]])]


def mcmc_gate(
    reference: Any,
    var_names: Sequence[str] | None = None,
    thresholds: GateThresholds = GateThresholds(),
) -> GateResult:
    """Check a reference fit's R-hat, bulk/tail ESS and divergences against ``thresholds``.

    The worst value over every element of every checked variable decides (a NaN R-hat, e.g.
    of a chain stuck at one value, fails). Exact posteriors pass by construction; a reference
    with a single chain fails because its R-hat cannot be checked.

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

    See Also
    --------
    reference_diagnostics : the same diagnostics per parameter element.

    Examples
    --------
    >>> import arviz as az
    >>> rng = np.random.default_rng(0)
    >>> good = az.from_dict(posterior={"tau_u": rng.normal(size=(4, 1000))})
    >>> mcmc_gate(good).passed
    True
    >>> mcmc_gate(good, thresholds=GateThresholds(ess_min=10_000)).label.startswith("FAIL: ESS")
    True
    """
    posterior = posterior_of(reference)
    if posterior.attrs.get("method") in EXACT_METHODS:
        return GateResult(passed=True, reasons=())
    diagnostics = reference_diagnostics(reference, var_names)
    n_chains = posterior.sizes["chain"]
    rhat = float(diagnostics.rhat.fillna(np.inf).max()) if n_chains > 1 else float("nan")
    ess_bulk = float(diagnostics.ess_bulk.fillna(-np.inf).min())
    ess_tail = float(diagnostics.ess_tail.fillna(-np.inf).min())
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


def _divergences(reference: Any) -> int:
    stats = getattr(reference, "sample_stats", None)
    if stats is None or "diverging" not in stats:
        return 0
    return int(np.asarray(stats["diverging"].values, dtype=bool).sum())
