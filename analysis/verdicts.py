"""Plain-words verdicts on VB: per parameter, is its posterior spread fine, too narrow or too wide?

The verdict reads the SD ratio VB / reference and its Monte-Carlo interval (`analysis.ratios`),
the MCMC gate of the reference (`analysis.gate`) and, where a VB fit carries one in its attrs,
the PSIS k̂ of its importance weights (Yao et al. 2018: above 0.7 the approximation is too far
from the posterior for its draws to be trusted):

- **unreliable** when the reference failed the MCMC gate (its SDs are not known well enough to
  divide by), when the VB fit's k̂ exceeds ``khat_max`` (0.7), or when there is no ratio;
- otherwise **too narrow** when the whole interval lies below ``low`` (0.9): VB's spread is more
  than 10 % too small beyond Monte-Carlo doubt;
- **too wide** when the whole interval lies above ``high`` (1.1);
- **fine** when the interval reaches into [``low``, ``high``].

A vector (the random intercepts ``u``, one ratio per group) is summarised by one verdict: fine
when at least ``vector_share`` (90 %) of its elements are fine, else the most common other one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

FINE, NARROW, WIDE, UNRELIABLE = "fine", "too narrow", "too wide", "unreliable"
VERDICTS = (FINE, NARROW, WIDE, UNRELIABLE)


@dataclass(frozen=True)
class VerdictThresholds:
    """Where the verdicts change.

    Parameters
    ----------
    low, high : float
        The SD ratios counted as fine: an interval reaching into ``[low, high]`` is fine.
    khat_max : float
        Largest acceptable PSIS k̂ of a VB fit.
    vector_share : float
        Share of a vector's elements that must be fine for the vector to be fine.
    """

    low: float = 0.9
    high: float = 1.1
    khat_max: float = 0.7
    vector_share: float = 0.9

    def describe(self) -> list[str]:
        """The rules in words, with these thresholds (for reports)."""
        return [
            f"**fine**: the 90 % interval of the SD ratio VB / reference reaches into "
            f"[{self.low:g}, {self.high:g}]",
            f"**too narrow**: the whole interval is below {self.low:g} (VB is over-confident)",
            f"**too wide**: the whole interval is above {self.high:g}",
            f"**unreliable**: the reference failed the MCMC gate, or the VB fit's PSIS k̂ is "
            f"above {self.khat_max:g}, or there is no ratio (a zero or non-finite SD)",
            f"a vector (`u`, one ratio per group) is fine when at least "
            f"{self.vector_share:.0%} of its elements are; else it gets its most common other "
            "verdict",
        ]


def verdict(
    ratio: float,
    lo: float,
    hi: float,
    *,
    gate_ok: bool = True,
    khat: float | None = None,
    thresholds: VerdictThresholds = VerdictThresholds(),
) -> str:
    """The verdict on one SD ratio with its interval.

    Parameters
    ----------
    ratio, lo, hi : float
        SD ratio VB / reference and its interval.
    gate_ok : bool
        Whether the reference passed the MCMC gate.
    khat : float, optional
        PSIS k̂ of the VB fit (``None``: not available).
    thresholds : VerdictThresholds

    Returns
    -------
    str
        ``fine``, ``too narrow``, ``too wide``, or ``unreliable (reason)``.

    Examples
    --------
    >>> verdict(0.95, 0.9, 1.0), verdict(0.6, 0.55, 0.66), verdict(1.3, 1.2, 1.4)
    ('fine', 'too narrow', 'too wide')
    >>> verdict(0.86, 0.82, 0.91)
    'fine'
    >>> verdict(1.0, 0.95, 1.05, gate_ok=False)
    'unreliable (reference failed the MCMC gate)'
    >>> verdict(1.0, 0.95, 1.05, khat=0.9)
    'unreliable (k̂ 0.90 > 0.7)'
    """
    if not gate_ok:
        return f"{UNRELIABLE} (reference failed the MCMC gate)"
    if khat is not None and khat > thresholds.khat_max:
        return f"{UNRELIABLE} (k̂ {khat:.2f} > {thresholds.khat_max:g})"
    if not all(math.isfinite(value) for value in (ratio, lo, hi)):
        return f"{UNRELIABLE} (no ratio)"
    if hi < thresholds.low:
        return NARROW
    if lo > thresholds.high:
        return WIDE
    return FINE


def psis_khat(fit: Any) -> float | None:
    """The PSIS k̂ a VB fit carries in its attrs (``psis_khat``, any group), or ``None``.

    Examples
    --------
    >>> import arviz as az, numpy as np
    >>> fit = az.from_dict(posterior={"tau_e": np.ones((1, 5))})
    >>> psis_khat(fit) is None
    True
    >>> fit.posterior.attrs["psis_khat"] = 0.42
    >>> psis_khat(fit)
    0.42
    """
    groups = [fit[name] for name in fit.groups()] if hasattr(fit, "groups") else [fit]
    for group in groups:
        value = group.attrs.get("psis_khat")
        if value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        return value if math.isfinite(value) else None
    return None


def add_verdicts(
    table: pd.DataFrame,
    khat: Mapping[str, float | None] | None = None,
    thresholds: VerdictThresholds = VerdictThresholds(),
) -> pd.DataFrame:
    """Add ``khat`` and ``verdict`` columns to a ratio table.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows with ``ratio``, ``lo``, ``hi`` and ``gate`` (``ok`` or ``FAIL: ...``), e.g. the
        tidy table of `analysis.ratio_table`; ``vb`` names the VB fit of each row.
    khat : mapping of VB label to k̂, optional
        PSIS k̂ of each VB fit (missing or ``None``: not available).
    thresholds : VerdictThresholds

    Returns
    -------
    pandas.DataFrame
        A copy with ``khat`` (NaN where not available) and ``verdict``.

    Examples
    --------
    >>> table = pd.DataFrame({"vb": ["a", "a"], "parameter": ["beta_0", "tau_u"],
    ...                       "ratio": [0.98, 0.5], "lo": [0.9, 0.45], "hi": [1.05, 0.55],
    ...                       "gate": ["ok", "ok"]})
    >>> add_verdicts(table, {"a": 0.3}).verdict.tolist()
    ['fine', 'too narrow']
    """
    khat = dict(khat or {})
    table = table.copy()
    labels = table["vb"] if "vb" in table else pd.Series([""] * len(table), index=table.index)
    table["khat"] = [float("nan") if khat.get(label) is None else khat[label] for label in labels]
    gates = table["gate"] if "gate" in table else pd.Series(["ok"] * len(table), index=table.index)
    table["verdict"] = [
        verdict(
            row.ratio,
            row.lo,
            row.hi,
            gate_ok=gate == "ok",
            khat=None if math.isnan(k) else k,
            thresholds=thresholds,
        )
        for row, gate, k in zip(table.itertuples(), gates, table["khat"], strict=True)
    ]
    return table


def vector_verdict(verdicts: Sequence[str], share: float = 0.9) -> str:
    """One verdict for the elements of a vector (see the module docstring).

    Examples
    --------
    >>> vector_verdict(["fine"] * 19 + ["too narrow"])
    'fine'
    >>> vector_verdict(["fine"] * 5 + ["too narrow"] * 3 + ["too wide"])
    'too narrow'
    """
    if not verdicts:
        return f"{UNRELIABLE} (no ratio)"
    unreliable = [v for v in verdicts if v.startswith(UNRELIABLE)]
    if unreliable:
        return Counter(unreliable).most_common(1)[0][0]
    if sum(v == FINE for v in verdicts) >= share * len(verdicts):
        return FINE
    return Counter(v for v in verdicts if v != FINE).most_common(1)[0][0]


def summarise_verdicts(
    table: pd.DataFrame,
    variables: Sequence[str] = ("u",),
    thresholds: VerdictThresholds = VerdictThresholds(),
) -> pd.DataFrame:
    """One row per (VB fit, vector variable): ratio range, verdict counts and one verdict.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of `add_verdicts` (columns ``vb``, ``variable``, ``ratio``, ``verdict``).
    variables : sequence of str
        Vector variables to summarise.
    thresholds : VerdictThresholds

    Returns
    -------
    pandas.DataFrame
        ``vb``, ``variable``, ``n``, ``median``, ``min``, ``max`` of the ratio, ``n_fine``,
        ``n_narrow``, ``n_wide``, ``n_unreliable`` and ``verdict``.

    Examples
    --------
    >>> table = pd.DataFrame({"vb": ["a"] * 3, "variable": ["u"] * 3,
    ...                       "ratio": [0.5, 0.6, 0.95], "verdict": ["too narrow"] * 2 + ["fine"]})
    >>> summarise_verdicts(table)[["n", "n_narrow", "verdict"]].values.tolist()
    [[3, 2, 'too narrow']]
    """
    rows = []
    chosen = table[table.variable.isin(variables)]
    for (label, variable), group in chosen.groupby(["vb", "variable"], sort=False):
        kinds = [v.split(" (")[0] for v in group.verdict]
        rows.append(
            {
                "vb": label,
                "variable": variable,
                "n": len(group),
                "median": group.ratio.median(),
                "min": group.ratio.min(),
                "max": group.ratio.max(),
                "n_fine": kinds.count(FINE),
                "n_narrow": kinds.count(NARROW),
                "n_wide": kinds.count(WIDE),
                "n_unreliable": kinds.count(UNRELIABLE),
                "verdict": vector_verdict(list(group.verdict), thresholds.vector_share),
            }
        )
    columns = ["vb", "variable", "n", "median", "min", "max", "n_fine", "n_narrow", "n_wide"]
    return pd.DataFrame(rows, columns=columns + ["n_unreliable", "verdict"])
