"""The study's figures. Each function returns a `matplotlib.figure.Figure` (no pyplot state).

A reference that failed the MCMC gate is drawn with hollow markers (ratio figures) or a dagger
(heatmap, overlays, shrinkage, predictive comparison), and said so in the legend or title.
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

from analysis.gate import GateThresholds, mcmc_gate
from analysis.io import fit_info
from analysis.predictive import held_out_arrays, posterior_predictive, predictive_comparison
from analysis.ratios import posterior_of

RATIO_PARAMETERS = ("beta_0", "beta_1", "tau_e", "tau_u", "sigma2_u")


def plot_ratio_vs_groups(
    tidy: pd.DataFrame,
    parameters: Sequence[str] = RATIO_PARAMETERS,
    vb: str = "conjugate/cavi:block",
    reference: str = "conjugate/gibbs",
    design: str | None = None,
) -> Figure:
    """SD ratio against the number of groups, one panel per model, CI bars (VI1 Fig. 2).

    Points are the median ratio over seeds (replicated data sets); bars span the 5–95 % range
    of the replicates, or the Monte-Carlo interval of a single fit; hollow markers mean that a
    reference of that point failed the MCMC gate.

    Parameters
    ----------
    tidy : pandas.DataFrame
        Output of `analysis.tables.ratio_table`.
    parameters : sequence of str
        Parameters drawn (those a model lacks are skipped).
    vb, reference : str
        The ``backend/method[:family]`` pair drawn.
    design : str, optional
        Only this design (`analysis.tables.design_of`); by default every simulated design,
        which should then be one.
    """
    from analysis.tables import design_of, pair_rows

    rows = pair_rows(tidy, vb, reference)
    rows = rows[(rows.n_groups > 0) & rows.parameter.isin(parameters)]
    if design is not None:
        rows = rows[rows.dataset.map(design_of) == design]
    names = rows.drop_duplicates("model").set_index("model")["model_label"]
    models = sorted(names.index, key=lambda m: (names[m], m))
    fig = Figure(figsize=(4.2 * max(len(models), 1), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(models), 1), sharey=True))
    for ax, model in zip(axes, models, strict=False):
        _ratio_panel(ax, rows[rows.model == model], parameters)
        ax.set_title(f"{names[model]} ({model})")
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
            .apply(_replicate_point, include_groups=False)
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
        ok = points.ok.to_numpy(dtype=bool)
        ax.scatter(x[ok], points.ratio.to_numpy()[ok], color=color, zorder=3)
    ax.axhline(1.0, color="grey", lw=1, ls="--")
    ax.set_xscale("log")
    groups = sorted(set(rows.n_groups))
    ax.set_xticks(groups, [str(q) for q in groups])
    ax.set_xlim(min(groups) / 1.4, max(groups) * 1.4)
    ax.minorticks_off()
    ax.set_xlabel("number of groups Q")
    ax.grid(alpha=0.3)


def _replicate_point(cell: pd.DataFrame) -> pd.Series:
    """Median ratio of one point, its bar (replicate 5–95 % range, or one fit's interval)."""
    single = len(cell) == 1
    return pd.Series(
        {
            "ratio": cell.ratio.median(),
            "lo": cell.lo.iloc[0] if single else cell.ratio.quantile(0.05),
            "hi": cell.hi.iloc[0] if single else cell.ratio.quantile(0.95),
            "ok": bool((cell.gate == "ok").all()),
        }
    )


def plot_ratio_heatmap(wide: pd.DataFrame, title: str = "SD ratio VB / MCMC") -> Figure:
    """Heatmap of a wide table, diverging colours centred at 1, values in the cells (VI1 Fig. 3).

    Rows whose reference failed the MCMC gate are marked † (and the title says so).

    Examples
    --------
    >>> wide = pd.DataFrame({"tau_u": [0.4, np.nan], "reference_gate": ["ok", "FAIL: ESS 90"]},
    ...                     index=["M0_Q5", "M1"])
    >>> [t.get_text() for t in plot_ratio_heatmap(wide).axes[0].get_yticklabels()]
    ['M0_Q5', 'M1 †']
    """
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


def plot_published_vs_ours(comparison: pd.DataFrame, title: str = "") -> Figure:
    """Our SD ratio (median over replicates, bar: their spread) against the published one.

    One point per cell of the VI1 table (`analysis.published.published_comparison`), colour
    per parameter, marker per model; cells whose published value lies outside our spread are
    drawn hollow. Points on the diagonal reproduce the report.

    Examples
    --------
    >>> long = pd.DataFrame({"row": ["M0_Q5"], "parameter": ["tau_u"], "published": [0.81],
    ...     "median": [0.8], "spread_lo": [0.7], "spread_hi": [0.9], "outside": [False]})
    >>> plot_published_vs_ours(long).axes[0].get_xlabel()
    'published SD ratio (VI1 report)'
    """
    cells = comparison.dropna(subset=["published", "median"])
    fig = Figure(figsize=(6.2, 5.2), layout="constrained")
    ax = fig.subplots()
    markers = {"M0": "o", "M1": "D", "M2": "s", "M3": "^"}
    for index, (parameter, rows) in enumerate(cells.groupby("parameter", sort=False)):
        color = f"C{index}"
        for _, cell in rows.iterrows():
            model = str(cell.row).split("_")[0]
            marker = markers.get(model, "o")
            ax.errorbar(
                cell.published,
                cell["median"],
                yerr=[[cell["median"] - cell.spread_lo], [cell.spread_hi - cell["median"]]],
                color=color,
                alpha=0.6,
                lw=1,
            )
            ax.scatter(
                cell.published,
                cell["median"],
                marker=marker,
                facecolor="none" if cell.outside else color,
                edgecolor=color,
                zorder=3,
            )
        ax.scatter([], [], color=color, label=parameter)
    for model, marker in markers.items():
        if cells.row.astype(str).str.startswith(model).any():
            ax.scatter([], [], marker=marker, color="grey", label=model)
    top = max(1.3, float(np.nanmax(cells[["published", "spread_hi"]].to_numpy())) * 1.05)
    ax.plot([0, top], [0, top], color="grey", ls="--", lw=1)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("published SD ratio (VI1 report)")
    ax.set_ylabel("our SD ratio (median, bar: replicate spread)")
    ax.set_title(title or "published vs ours; hollow: published outside our spread")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return fig


def plot_overlay(
    vb: Any,
    reference: Any,
    var_names: Sequence[str] = ("tau_u", "sigma_u", "beta"),
    labels: tuple[str, str] = ("VB", "MCMC"),
    thresholds: GateThresholds = GateThresholds(),
) -> Figure:
    """Posterior densities of VB and MCMC overlaid, one panel per scalar (ArviZ `plot_dist`).

    Parameters
    ----------
    vb, reference : InferenceData
        The two fits.
    var_names : sequence of str
        Variables drawn; vectors show their first four elements.
    labels : (str, str)
        Legend names of the VB fit and the reference.
    thresholds : GateThresholds
        The MCMC gate; a failing reference is marked † in the legend and the title says why.

    Examples
    --------
    >>> import arviz as az
    >>> rng = np.random.default_rng(0)
    >>> vb = az.from_dict(posterior={"tau_u": rng.gamma(20, 0.05, (1, 2000))})
    >>> ref = az.from_dict(posterior={"tau_u": rng.gamma(5, 0.2, (4, 500))})
    >>> fig = plot_overlay(vb, ref)
    >>> fig.axes[0].get_title()
    'tau_u'
    """
    import arviz as az

    labels = (labels[0], _flag_reference(reference, labels[1], thresholds))
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
    _title(fig, f"Posterior densities: {labels[0]} vs {labels[1]}", reference, thresholds)
    return fig


def _flag_reference(reference: Any, label: str, thresholds: GateThresholds) -> str:
    return label if mcmc_gate(reference, thresholds=thresholds).passed else f"{label} †"


def _title(fig: Figure, text: str, reference: Any, thresholds: GateThresholds) -> None:
    gate = mcmc_gate(reference, thresholds=thresholds)
    if not gate.passed:
        text += "\n† reference failed the MCMC gate: " + "; ".join(gate.reasons)
    fig.suptitle(text, color="black" if gate.passed else "firebrick")


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
    """ELBO per step (or CAVI iteration) of one or several VB fits (their ``vi_trace`` group).

    Parameters
    ----------
    fits : InferenceData or mapping of label to InferenceData
        VB fits with a ``vi_trace`` group (``elbo`` along ``step``).
    skip : int
        Leave out the first ``skip`` steps (the steep start hides the end otherwise).

    Examples
    --------
    >>> import arviz as az, xarray as xr
    >>> fit = az.from_dict(posterior={"tau_e": np.ones((1, 10))})
    >>> fit.add_groups(vi_trace=xr.Dataset({"elbo": ("step", -np.exp(-np.arange(100.0)))}))
    >>> plot_elbo({"numpyro/advi": fit}).axes[0].get_ylabel()
    'ELBO'
    """
    if hasattr(fits, "posterior") or not isinstance(fits, Mapping):
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
    thresholds: GateThresholds = GateThresholds(),
) -> Figure:
    """Posterior means and intervals of the random effects ``u_j``, VB vs MCMC (and the truth).

    Parameters
    ----------
    vb, reference : InferenceData
        Two fits of a model with random intercepts ``u``.
    truth : sequence of float, optional
        True ``u``; defaults to the ``u`` in the reference's ``truth`` attr when there is one.
    interval : float
        Probability of the central intervals drawn.
    labels : (str, str)
        Legend names of the VB fit and the reference.
    thresholds : GateThresholds
        The MCMC gate; a failing reference is marked † in the legend and the title says why.
    """
    if "u" not in posterior_of(vb) or "u" not in posterior_of(reference):
        raise ValueError("vb, reference: both posteriors need random intercepts 'u'")
    labels = (labels[0], _flag_reference(reference, labels[1], thresholds))
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
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="outside lower center", ncols=3)
    ax.grid(alpha=0.3)
    _title(fig, "Shrinkage of the random intercepts", reference, thresholds)
    return fig


def plot_predictive(
    vb: Any,
    reference: Any,
    X: Any,
    y: Any = None,
    group: Any = None,
    labels: tuple[str, str] = ("VB", "MCMC"),
    thresholds: GateThresholds = GateThresholds(),
) -> Figure:
    """Held-out log predictive density, and posterior predictive checks, VB vs MCMC.

    Left: the held-out log predictive density of each fit (±1 SE). Middle: the SD of the
    outcome in replicated data sets against the observed one (under-dispersed variance
    components show up as too narrow spreads). Right, when ``group`` is given: observed group
    means against the 90 % intervals of the replicated group means (over-shrinkage shows up
    as intervals that miss the extreme groups).

    Parameters
    ----------
    vb, reference : InferenceData
        The two fits.
    X, y, group : array-like, or ``X`` an object with attributes ``X, y, group``
        Held-out data (or the observed data for an in-sample check).
    labels : (str, str)
        Names of the VB fit and the reference.
    thresholds : GateThresholds
        The MCMC gate; a failing reference is marked † and the title says why.
    """
    X, y, group = held_out_arrays(X, y, group)
    labels = (labels[0], _flag_reference(reference, labels[1], thresholds))
    table = predictive_comparison(vb, reference, X, y, group, labels=labels)
    fig = Figure(figsize=(14 if group is not None else 10, 4), layout="constrained")
    axes = fig.subplots(1, 3 if group is not None else 2)
    colors = {labels[0]: "C1", labels[1]: "C0"}
    for i, row in table.iterrows():
        axes[0].errorbar(
            i, row.lpd, yerr=row.lpd_se, fmt="o", capsize=6, color=colors[row.fit], ms=8
        )
    axes[0].set_xticks(range(len(table)), table.fit)
    axes[0].set_xlim(-0.5, len(table) - 0.5)
    axes[0].set_xlabel("fit")
    axes[0].set_ylabel("held-out log predictive density")
    axes[0].set_title(
        f"{len(y)} rows (±1 SE); {labels[0]} − {labels[1]}: "
        f"{table.lpd_diff[0]:.1f} ± {table.lpd_diff_se[0]:.1f}",
        fontsize=10,
    )
    axes[0].grid(alpha=0.3)
    replicated = {
        labels[0]: posterior_predictive(vb, X, group),
        labels[1]: posterior_predictive(reference, X, group),
    }
    for name in (labels[1], labels[0]):
        sds = replicated[name].std(axis=1)
        axes[1].hist(sds, bins=30, alpha=0.5, color=colors[name], label=name, density=True)
    axes[1].axvline(np.std(y), color="k", label="observed")
    axes[1].set_xlabel("SD of replicated outcomes")
    axes[1].set_ylabel("density")
    axes[1].set_title("Posterior predictive check: spread", fontsize=10)
    axes[1].legend(fontsize=8)
    if group is not None:
        _group_means_panel(axes[2], replicated, y, group, colors)
    _title(fig, f"Predictive comparison: {labels[0]} vs {labels[1]}", reference, thresholds)
    return fig


def _group_means_panel(
    ax: Any, replicated: dict[str, np.ndarray], y: np.ndarray, group: np.ndarray, colors: dict
) -> None:
    present = np.unique(group)
    observed = np.array([y[group == g].mean() for g in present])
    order = np.argsort(observed)
    x = np.arange(present.size)
    for offset, (name, draws) in enumerate(replicated.items()):
        means = np.stack([draws[:, group == g].mean(axis=1) for g in present[order]], axis=1)
        lo, mid, hi = np.quantile(means, [0.05, 0.5, 0.95], axis=0)
        ax.errorbar(
            x + 0.2 * (offset - 0.5),
            mid,
            yerr=[mid - lo, hi - mid],
            fmt="o",
            ms=3,
            lw=1,
            color=colors[name],
            label=f"{name} replicated (90 %)",
        )
    ax.scatter(x, observed[order], marker="x", color="k", label="observed", zorder=3)
    ax.set_xlabel("group (sorted by observed mean)")
    ax.set_ylabel("group mean of y")
    ax.set_title("Posterior predictive check: group means", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def save(fig: Figure, path: Any, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` (PNG by extension)."""
    fig.savefig(path, dpi=dpi)
