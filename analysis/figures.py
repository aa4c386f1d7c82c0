"""The study's figures. Each function returns a `matplotlib.figure.Figure` (no pyplot state).

A reference that failed the MCMC gate is drawn with hollow markers (ratio figures) or a dagger
(heatmap), and said so in the legend or title.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from analysis.io import LABELS, fit_info
from analysis.predictive import log_predictive_density, posterior_predictive
from analysis.ratios import posterior_of

RATIO_PARAMETERS = ("beta_0", "beta_1", "tau_e", "tau_u", "sigma2_u")


def plot_ratio_vs_groups(
    tidy: pd.DataFrame,
    parameters: Sequence[str] = RATIO_PARAMETERS,
    vb: str = "reference/cavi",
    reference: str = "reference/gibbs",
) -> Figure:
    """SD ratio against the number of groups, one panel per model, CI bars (VI1 Fig. 2).

    Parameters
    ----------
    tidy : pandas.DataFrame
        Output of `analysis.tables.ratio_table`.
    parameters : sequence of str
        Parameters drawn (those a model lacks are skipped).
    vb, reference : str
        The ``backend/method`` pair drawn.
    """
    from analysis.tables import _pair_rows

    rows = _pair_rows(tidy, vb, reference)
    rows = rows[(rows.n_groups > 0) & rows.parameter.isin(parameters)]
    models = [m for m in LABELS if m in set(rows.model)]
    fig = Figure(figsize=(4.2 * max(len(models), 1), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(models), 1), sharey=True))
    for ax, model in zip(axes, models, strict=False):
        _ratio_panel(ax, rows[rows.model == model], parameters)
        ax.set_title(f"{LABELS[model]} ({model})")
    if not models:
        axes[0].text(0.5, 0.5, "no hierarchical fits", ha="center", transform=axes[0].transAxes)
    axes[0].set_ylabel(f"SD ratio {vb} / {reference}")
    legend = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    if handles:
        fig.legend(
            handles, labels, loc="outside right upper", title="parameter (hollow: gate failed)"
        )
    return fig


def _ratio_panel(ax: Any, rows: pd.DataFrame, parameters: Sequence[str]) -> None:
    for index, parameter in enumerate(parameters):
        if parameter not in set(rows.parameter):
            continue
        points = (
            rows[rows.parameter == parameter]
            .groupby("n_groups")
            .agg(
                ratio=("ratio", "mean"),
                lo=("lo", "min"),
                hi=("hi", "max"),
                ok=("gate", lambda g: (g == "ok").all()),
            )
        )
        color = f"C{index}"
        x = points.index.to_numpy(dtype=float) * (1 + 0.03 * index)
        yerr = [points.ratio - points.lo, points.hi - points.ratio]
        ax.errorbar(
            x,
            points.ratio,
            yerr=yerr,
            color=color,
            marker="o",
            capsize=3,
            label=parameter,
            mfc="none",
        )
        ax.scatter(x[points.ok.to_numpy()], points.ratio[points.ok], color=color, zorder=3)
    ax.axhline(1.0, color="grey", lw=1, ls="--")
    ax.set_xscale("log")
    groups = sorted(set(rows.n_groups))
    ax.set_xticks(groups, [str(q) for q in groups])
    ax.minorticks_off()
    ax.set_xlabel("number of groups Q")
    ax.grid(alpha=0.3)


def plot_ratio_heatmap(wide: pd.DataFrame, title: str = "SD ratio VB / MCMC") -> Figure:
    """Heatmap of a wide table, diverging colours centred at 1, values in the cells (VI1 Fig. 3)."""
    values = wide.drop(columns=["reference_gate"], errors="ignore").astype(float)
    fig = Figure(
        figsize=(1.1 * values.shape[1] + 2.5, 0.45 * values.shape[0] + 1.5), layout="constrained"
    )
    ax = fig.subplots()
    finite = values.to_numpy()[np.isfinite(values.to_numpy())]
    vmax = max(1.5, float(finite.max()) if finite.size else 1.5)
    norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=vmax)
    image = ax.imshow(
        np.ma.masked_invalid(values.to_numpy()), cmap="RdBu", norm=norm, aspect="auto"
    )
    failed = wide.get("reference_gate", pd.Series("ok", index=wide.index))
    for i, row in enumerate(values.index):
        for j, column in enumerate(values.columns):
            value = values.at[row, column]
            text = "NA" if np.isnan(value) else f"{value:.2f}"
            dark = not np.isnan(value) and abs(norm(value) - 0.5) > 0.3
            ax.text(
                j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black"
            )
    ax.set_xticks(range(values.shape[1]), values.columns, rotation=30, ha="right")
    labels = [f"{r} †" if failed.get(r, "ok") not in ("ok", "no fit") else r for r in values.index]
    ax.set_yticks(range(values.shape[0]), labels)
    ax.set_xlabel("parameter")
    ax.set_ylabel("model, number of groups")
    ax.set_title(
        title + ("\n† reference failed the MCMC gate" if any("†" in s for s in labels) else "")
    )
    fig.colorbar(image, ax=ax, label="ratio (1 = same spread)")
    return fig


def plot_overlay(
    vb: Any,
    reference: Any,
    var_names: Sequence[str] = ("tau_u", "sigma_u", "beta"),
    labels: tuple[str, str] = ("VB", "MCMC"),
) -> Figure:
    """Posterior densities of VB and MCMC overlaid, one panel per scalar (ArviZ `plot_dist`)."""
    import arviz as az

    panels = _scalar_panels(posterior_of(vb), posterior_of(reference), var_names)
    ncols = min(3, max(len(panels), 1))
    nrows = int(np.ceil(max(len(panels), 1) / ncols))
    fig = Figure(figsize=(4 * ncols, 3 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax, (title, vb_draws, ref_draws) in zip(axes, panels, strict=False):
        with warnings.catch_warnings():
            # ArviZ 0.23 still calls a matplotlib helper deprecated in matplotlib 3.11
            warnings.filterwarnings("ignore", message="Passing a dict or None as alias_mapping")
            az.plot_dist(ref_draws, ax=ax, color="C0", label=labels[1])
            az.plot_dist(vb_draws, ax=ax, color="C1", label=labels[0])
        ax.set_title(title)
        ax.set_xlabel("value")
        ax.set_ylabel("density")
        ax.legend()
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    return fig


def _scalar_panels(vb: Any, ref: Any, var_names: Sequence[str]) -> list[tuple[str, Any, Any]]:
    panels = []
    for name in var_names:
        if name not in vb or name not in ref:
            continue
        extra = [d for d in vb[name].dims if d not in ("chain", "draw")]
        if not extra:
            panels.append((name, vb[name].values.ravel(), ref[name].values.ravel()))
            continue
        for label in vb[name][extra[0]].values[:4]:
            selection = {extra[0]: label}
            panels.append(
                (
                    f"{name}[{label}]",
                    vb[name].sel(selection).values.ravel(),
                    ref[name].sel(selection).values.ravel(),
                )
            )
    if not panels:
        raise ValueError(f"var_names: none of {list(var_names)} is in both posteriors")
    return panels


def plot_elbo(fits: Mapping[str, Any] | Any, skip: int = 0) -> Figure:
    """ELBO per step (or CAVI iteration) of one or several VB fits (their ``vi_trace`` group)."""
    if not isinstance(fits, Mapping):
        fits = {fit_info(fits).label: fits}
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for label, fit in fits.items():
        if "vi_trace" not in fit.groups():
            raise ValueError(f"fits[{label!r}]: no vi_trace group (not a VB fit)")
        elbo = fit["vi_trace"]["elbo"].values[skip:]
        steps = np.arange(skip, skip + elbo.size)
        ax.plot(steps, elbo, lw=0.8, alpha=0.5, label=f"{label} (per step)")
        if elbo.size > 50:
            window = max(elbo.size // 50, 2)
            smooth = np.convolve(elbo, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1 :], smooth, lw=1.8, label=f"{label} (moving mean)")
    ax.set_xlabel("step")
    ax.set_ylabel("ELBO")
    ax.set_title("ELBO trace")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_shrinkage(
    vb: Any,
    reference: Any,
    truth: Sequence[float] | None = None,
    interval: float = 0.9,
    labels: tuple[str, str] = ("VB", "MCMC"),
) -> Figure:
    """Posterior means and intervals of the random effects ``u_j``, VB vs MCMC (and the truth).

    ``truth`` defaults to the ``u`` in the reference's ``truth`` attr when there is one.
    """
    vb_u, ref_u = posterior_of(vb)["u"], posterior_of(reference)["u"]
    if truth is None and "truth" in posterior_of(reference).attrs:
        truth = json.loads(posterior_of(reference).attrs["truth"]).get("u")
    order = np.argsort(ref_u.mean(("chain", "draw")).values)
    x = np.arange(order.size)
    fig = Figure(figsize=(max(6, 0.12 * order.size + 4), 4), layout="constrained")
    ax = fig.subplots()
    tail = (1 - interval) / 2
    for offset, (name, draws, color) in enumerate(
        ((labels[1], ref_u, "C0"), (labels[0], vb_u, "C1"))
    ):
        flat = draws.stack(sample=("chain", "draw")).values[order]
        mean = flat.mean(axis=1)
        lo, hi = np.quantile(flat, [tail, 1 - tail], axis=1)
        ax.errorbar(
            x + 0.25 * offset,
            mean,
            yerr=[mean - lo, hi - mean],
            fmt="o",
            ms=3,
            color=color,
            lw=1,
            label=f"{name} mean, {interval:.0%} interval",
        )
    if truth is not None:
        ax.scatter(
            x + 0.125, np.asarray(truth)[order], marker="x", color="k", label="truth", zorder=3
        )
    ax.axhline(0.0, color="grey", lw=1, ls="--")
    ax.set_xlabel("group (sorted by MCMC posterior mean)")
    ax.set_ylabel("random intercept u_j")
    ax.set_title("Shrinkage of the random intercepts")
    ax.legend(fontsize=8)
    return fig


def plot_predictive(
    vb: Any,
    reference: Any,
    X: np.ndarray,
    y: np.ndarray,
    group: Any = None,
    labels: tuple[str, str] = ("VB", "MCMC"),
) -> Figure:
    """Held-out log predictive density (left) and a posterior predictive check (right).

    The check compares the SD of the outcome across rows in replicated data sets (VB and MCMC)
    with the observed one: under-dispersed variance components show up as too narrow spreads.
    """
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    scores = [log_predictive_density(fit, X, y, group) for fit in (vb, reference)]
    left.bar(
        labels, [s[0] for s in scores], yerr=[s[1] for s in scores], color=["C1", "C0"], capsize=5
    )
    left.set_xlabel("fit")
    left.set_ylabel("held-out log predictive density")
    left.set_title(f"{len(y)} held-out rows (±1 SE)")
    for fit, name, color in ((reference, labels[1], "C0"), (vb, labels[0], "C1")):
        replicated = posterior_predictive(fit, X, group)
        right.hist(
            replicated.std(axis=1), bins=30, alpha=0.5, color=color, label=name, density=True
        )
    right.axvline(np.std(y), color="k", label="observed")
    right.set_xlabel("SD of replicated outcomes")
    right.set_ylabel("density")
    right.set_title("Posterior predictive check")
    right.legend()
    return fig


def save(fig: Figure, path: Any, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` (PNG by extension)."""
    fig.savefig(path, dpi=dpi)
