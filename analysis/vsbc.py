"""Variational simulation-based calibration (VSBC; Yao, Vehtari, Simpson & Gelman 2018, "Yes, but
did it work?: Evaluating variational inference", ICML, Section 3).

Over R data sets simulated with a known truth θ* (the study's replicated seeds), each VB fit gives
for every scalar parameter

    p_r = Pr_q(θ < θ*_r),

estimated by the share of its draws below the truth. For the exact posterior, with θ* drawn from
the prior, p is uniform; for any posterior whose errors are symmetric, p and 1 − p have the same
distribution. VSBC tests that symmetry with the two-sample Kolmogorov–Smirnov test of {p_r}
against {1 − p_r}. A q that is too narrow but symmetric about the right centre leaves p
symmetric (a symmetric U shape), which the symmetry test cannot see; so the KS test of p against
the uniform distribution (simulation-based calibration, Talts et al. 2018) is run too. A fit is
``calibrated`` when neither test rejects; otherwise the direction is read off the p's:

- **too narrow**: p piles up near 0 and 1 (its variance exceeds the uniform's 1/12) — q is
  under-dispersed, the truth often falls in its tails;
- **too wide**: p piles up near 1/2 (variance below 1/12);
- **shifted low / high**: the mean of p is above / below 1/2 — q sits below / above the truth.

The test needs only the fits' draws and the truth that study runs store in their attrs
(``truth``), so it runs on any replicated study, cached like every run. With a fixed truth (the
scenario's truth grid) instead of draws from the prior, uniformity is not expected even for the
exact posterior, but the symmetry of p still is, to the order of the posterior's skewness — so a
failed test says "asymmetric" first; the direction is the diagnosis.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from analysis.io import fit_info, load_fits, same_label

VSBC_PARAMETERS = ("beta", "tau_e", "tau_u")  # sigma_* = tau_*^-1/2: the same test mirrored
UNIFORM_VARIANCE = 1.0 / 12.0


def vsbc_probabilities(
    fits: str | Iterable[Any], labels: Sequence[str], parameters: Sequence[str] = VSBC_PARAMETERS
) -> pd.DataFrame:
    """``p = Pr_q(theta < theta*)`` of every scalar parameter of every fit with a truth.

    Parameters
    ----------
    fits : folder or iterable of InferenceData
        Fits of replicated simulated data sets (attrs ``truth``, as study runs store it).
    labels : sequence of str
        The VB fits to test (``backend/method[:family]``).
    parameters : sequence of str
        Variables to test (vectors by element: ``beta_0``, ``beta_1``, ...).

    Returns
    -------
    pandas.DataFrame
        Columns ``vb``, ``model``, ``dataset``, ``n_groups``, ``seed``, ``parameter``, ``p``.
    """
    rows = []
    for fit in load_fits(fits):
        info = fit_info(fit)
        if not any(same_label(label, info.label) for label in labels):
            continue
        truth = json.loads(fit.posterior.attrs.get("truth", "{}") or "{}")
        for name in parameters:
            if name not in truth or name not in fit.posterior:
                continue
            for parameter, draws, value in _elements(fit.posterior[name], truth[name], name):
                rows.append(
                    {
                        "vb": info.label,
                        "model": info.model,
                        "dataset": info.dataset,
                        "n_groups": info.n_groups,
                        "seed": info.seed,
                        "parameter": parameter,
                        "p": float(np.mean(draws < value)),
                    }
                )
    return pd.DataFrame(
        rows, columns=["vb", "model", "dataset", "n_groups", "seed", "parameter", "p"]
    )


def _elements(values: Any, truth: Any, name: str) -> list[tuple[str, np.ndarray, float]]:
    draws = values.values.reshape(-1, *values.shape[2:])
    truth = np.asarray(truth, dtype=float)
    if truth.ndim == 0:
        return [(name, draws, float(truth))]
    return [(f"{name}_{i}", draws[:, i], float(t)) for i, t in enumerate(truth)]


def vsbc_test(probabilities: pd.DataFrame, level: float = 0.05) -> pd.DataFrame:
    """KS tests of p against 1 − p and against U(0, 1) per (VB fit, design, parameter), verdict.

    Parameters
    ----------
    probabilities : pandas.DataFrame
        Output of `vsbc_probabilities`.
    level : float
        Significance level of the test (per parameter; no multiple-testing correction).

    Returns
    -------
    pandas.DataFrame
        One row per (``vb``, ``model``, ``n_groups``, ``parameter``): ``replicates``,
        ``ks_statistic`` and ``p_value`` of the symmetry test (p against 1 − p),
        ``uniform_p_value`` of the uniformity test, ``mean_p``, ``var_p`` and ``verdict``
        (``calibrated``, ``too narrow``, ``too wide``, ``shifted low``, ``shifted high``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = pd.DataFrame({"vb": "a/advi", "model": "m", "n_groups": 5, "parameter": "tau_u",
    ...                   "p": np.concatenate([rng.uniform(0, .05, 50), rng.uniform(.95, 1, 50)])})
    >>> vsbc_test(p).verdict.tolist()
    ['too narrow']
    """
    keys = ["vb", "model", "n_groups", "parameter"]
    rows = []
    for key, cell in probabilities.groupby(keys, sort=False):
        p = cell.p.to_numpy(dtype=float)
        symmetry = stats.ks_2samp(p, 1.0 - p, method="asymp")
        uniform = stats.kstest(p, "uniform")
        row = dict(zip(keys, key, strict=True))
        row.update(
            replicates=p.size,
            ks_statistic=float(symmetry.statistic),
            p_value=float(symmetry.pvalue),
            uniform_p_value=float(uniform.pvalue),
            mean_p=float(p.mean()),
            var_p=float(p.var()),
            verdict=_verdict(p, min(symmetry.pvalue, uniform.pvalue), level),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _verdict(p: np.ndarray, p_value: float, level: float) -> str:
    """``calibrated`` unless a test rejects; then the stronger of spread and shift."""
    if p_value >= level:
        return "calibrated"
    spread = (p.var() - UNIFORM_VARIANCE) / UNIFORM_VARIANCE
    shift = (p.mean() - 0.5) / np.sqrt(UNIFORM_VARIANCE)
    if abs(spread) >= abs(shift):
        return "too narrow" if spread > 0 else "too wide"
    return "shifted low" if shift > 0 else "shifted high"


def plot_vsbc(probabilities: pd.DataFrame, parameters: Sequence[str] | None = None) -> Figure:
    """Histograms of p per parameter (columns) and VB fit (rows), KS verdict in each title.

    A calibrated fit gives a flat histogram (p ~ uniform under draws from the prior) or at least a
    symmetric one; a U shape means too narrow, a bump at 1/2 too wide, a tilt a shift. A row is
    one (VB fit, model, number of groups): designs are never pooled.
    """
    probabilities = probabilities.assign(
        vb=probabilities.vb
        + np.where(
            probabilities.groupby("vb").n_groups.transform("nunique") > 1,
            " Q=" + probabilities.n_groups.astype(str),
            "",
        )
    )
    tests = vsbc_test(probabilities).set_index(["vb", "parameter"])
    fits = list(dict.fromkeys(probabilities.vb))
    parameters = list(parameters or dict.fromkeys(probabilities.parameter))
    fig = Figure(figsize=(2.6 * len(parameters), 2.2 * len(fits) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(fits), len(parameters), squeeze=False))
    for i, vb in enumerate(fits):
        for j, parameter in enumerate(parameters):
            ax = axes[i, j]
            values = probabilities[
                (probabilities.vb == vb) & (probabilities.parameter == parameter)
            ]
            ax.hist(values.p, bins=np.linspace(0, 1, 11), color=f"C{i}", alpha=0.8)
            ax.axhline(len(values) / 10, color="grey", ls="--", lw=1)
            verdict = tests.verdict.get((vb, parameter), "no fits")
            ax.set_title(f"{parameter}: {verdict}", fontsize=9)
            ax.set_xlim(0, 1)
            if j == 0:
                ax.set_ylabel(vb, fontsize=8)
            if i == len(fits) - 1:
                ax.set_xlabel("p = Pr_q(θ < θ*)")
    fig.suptitle("VSBC: p over replicated data sets (dashed: uniform)")
    return fig


__all__ = ["plot_vsbc", "vsbc_probabilities", "vsbc_test"]
