"""Time and time-to-accuracy of fits, read from their attrs (the scaling study's analysis).

Every fit records how long its engine took in ``posterior.attrs``: ``compile_time_s`` (building
and compiling programs: XLA, PyTensor's C, numba; 0 for the NumPy algorithms and for programs
found in a cache) and ``run_time_s`` (the optimisation or sampling and the draws). The sum is
the fit's wall time as this module reports it; it leaves out what every fit shares (simulating
the data, building the InferenceData, the PSIS k̂ that ``fit`` adds to VB fits, writing it).
A study's sampler fitted again with more draws after failing the MCMC gate
(`study.runs.fit_until_gate_passes`) also records ``gate_discarded_s``, the seconds of the fits
it replaced: they are part of what that reference cost, so its total includes them.

- `timing_table`: one row per fit; `timing_summary`: the median over seeds per method and Q.
- `accuracy_table`: the error of a fit's posterior SDs, ``|SD ratio − 1|`` of chosen scalars
  (``beta_0``, ``tau_u``) and the median over the elements of vectors (``u_j``), against the
  best reference available for its data set (the first of a preference list that passed the
  MCMC gate), next to the Monte-Carlo noise of the ratio.
- `plot_time_vs_groups` (log–log, run solid, total dashed) and `plot_time_to_accuracy`.

Like the rest of `analysis`, it reads InferenceData attrs and groups only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.gate import mcmc_gate
from analysis.io import fit_info, load_fits, same_label
from analysis.tables import design_of

TIMING_COLUMNS = [
    "label",
    "backend",
    "method",
    "family",
    "role",
    "model",
    "dataset",
    "design",
    "n_groups",
    "n_obs",
    "seed",
    "compile_s",
    "run_s",
    "discarded_s",
    "total_s",
    "khat",
    "gate",
]
ACCURACY_PARAMETERS = ("beta_0", "tau_u")
ACCURACY_VECTORS = ("u",)
ACCURACY_COLUMNS = [
    "vb",
    "model",
    "dataset",
    "design",
    "n_groups",
    "seed",
    "reference",
    "reference_gate",
    "parameter",
    "error",
    "noise",
]
_ROLES = {"advi": "vb", "cavi": "vb", "nuts": "mcmc", "gibbs": "mcmc", "exact": "exact"}
_ERROR_FLOOR = 1e-4


def timing_table(fits: str | Iterable[Any], *, gate: bool = True) -> pd.DataFrame:
    """Compile, run and total seconds of every fit, with what identifies it.

    Parameters
    ----------
    fits : folder or iterable of InferenceData
        Fits that follow the contract (``compile_time_s`` and ``run_time_s`` in their
        ``posterior.attrs``).
    gate : bool
        Run the MCMC gate on sampled fits (column ``gate``: ``ok`` or ``FAIL: ...``); empty for
        VB and exact fits, and for every fit when False.

    Returns
    -------
    pandas.DataFrame
        Columns `TIMING_COLUMNS`, one row per fit, sorted by label, model, Q and seed.
        ``total_s = compile_s + run_s + discarded_s``, the last the seconds of the fits a
        sampler's study run replaced (``gate_discarded_s``, 0 for every other fit); ``khat`` is
        the PSIS k̂ of a VB fit (NaN otherwise).

    Raises
    ------
    ValueError
        If a fit has no ``compile_time_s`` or ``run_time_s`` attr.

    Examples
    --------
    >>> import arviz as az
    >>> fit = az.from_dict(posterior={"tau_e": np.ones((1, 10))})
    >>> fit.posterior.attrs.update(model="linear", backend="conjugate", method="cavi",
    ...     family="mean_field", compile_time_s=0.0, run_time_s=0.25, n_obs=100)
    >>> timing_table([fit])[["label", "role", "compile_s", "total_s"]].values.tolist()
    [['conjugate/cavi:mean_field', 'vb', 0.0, 0.25]]
    """
    rows = [_timing_row(fit, gate) for fit in load_fits(fits)]
    if not rows:
        return pd.DataFrame(columns=TIMING_COLUMNS)
    table = pd.DataFrame(rows, columns=TIMING_COLUMNS)
    return table.sort_values(["label", "model", "n_groups", "seed"], ignore_index=True)


def _timing_row(fit: Any, gate: bool) -> dict[str, Any]:
    info = fit_info(fit)
    attrs = fit.posterior.attrs
    missing = [key for key in ("compile_time_s", "run_time_s") if key not in attrs]
    if missing:
        raise ValueError(f"fit {info.label} ({info.dataset}): no {missing[0]!r} in its attrs")
    role = str(attrs.get("role") or _ROLES.get(info.method, ""))
    compile_s, run_s = float(attrs["compile_time_s"]), float(attrs["run_time_s"])
    discarded_s = float(attrs.get("gate_discarded_s", 0.0))
    return {
        "label": info.label,
        "backend": info.backend,
        "method": info.method,
        "family": info.family,
        "role": role,
        "model": info.model,
        "dataset": info.dataset,
        "design": design_of(info.dataset),
        "n_groups": info.n_groups,
        "n_obs": int(attrs.get("n_obs", 0)),
        "seed": info.seed,
        "compile_s": compile_s,
        "run_s": run_s,
        "discarded_s": discarded_s,
        "total_s": compile_s + run_s + discarded_s,
        "khat": float(attrs.get("psis_khat", np.nan)),
        "gate": mcmc_gate(fit).label if gate and role == "mcmc" else "",
    }


def timing_summary(timing: pd.DataFrame) -> pd.DataFrame:
    """The median over seeds (replicated data sets) per method, model, design and Q.

    Parameters
    ----------
    timing : pandas.DataFrame
        Output of `timing_table`.

    Returns
    -------
    pandas.DataFrame
        Columns ``label``, ``role``, ``model``, ``design``, ``n_groups``, ``n_obs``, ``fits``
        (how many seeds), median ``compile_s``, ``run_s``, ``total_s``, the largest ``khat`` and
        ``gate`` (``ok`` when every sampled fit passed, else the first failure).

    Examples
    --------
    >>> timing = pd.DataFrame({"label": ["a/b"] * 2, "role": "vb", "model": "m", "design": "d",
    ...     "n_groups": 10, "n_obs": 200, "seed": [0, 1], "compile_s": [1.0, 3.0],
    ...     "run_s": [0.5, 0.7], "total_s": [1.5, 3.7], "khat": [0.2, 0.4], "gate": ""})
    >>> timing_summary(timing)[["compile_s", "run_s", "khat"]].values.tolist()
    [[2.0, 0.6, 0.4]]
    """
    keys = ["label", "role", "model", "design", "n_groups"]
    if "discarded_s" not in timing:  # a table written before retries were recorded
        timing = timing.assign(discarded_s=0.0)
    summary = timing.groupby(keys, sort=True, dropna=False).agg(
        n_obs=("n_obs", "max"),
        fits=("seed", "count"),
        compile_s=("compile_s", "median"),
        run_s=("run_s", "median"),
        discarded_s=("discarded_s", "median"),
        total_s=("total_s", "median"),
        khat=("khat", "max"),
        gate=("gate", _worst_gate),
    )
    return summary.reset_index()


def _worst_gate(gates: pd.Series) -> str:
    failed = sorted(g for g in gates if g not in ("", "ok"))
    return failed[0] if failed else ("ok" if (gates == "ok").any() else "")


def accuracy_table(
    tidy: pd.DataFrame,
    references: Sequence[str],
    parameters: Sequence[str] = ACCURACY_PARAMETERS,
    vectors: Sequence[str] = ACCURACY_VECTORS,
) -> pd.DataFrame:
    """How far each fit's posterior SDs are from the best available reference's.

    For every fit and data set the reference is the first of ``references`` that was compared
    with it and passed the MCMC gate (the first one compared when none passed). The error is
    ``|SD ratio − 1|`` for each scalar in ``parameters`` and the median of ``|SD ratio − 1|``
    over the elements of each variable in ``vectors``; ``noise`` is the relative half-width of
    the ratio's Monte-Carlo interval (for a vector, its median): an error that size can be
    Monte-Carlo error of the two fits alone.

    Parameters
    ----------
    tidy : pandas.DataFrame
        Output of `analysis.tables.ratio_table`, with pairs ``(fit, reference)`` for the fits.
    references : sequence of str
        Reference labels, best first (e.g. ``["conjugate/exact", "conjugate/gibbs"]``).
    parameters, vectors : sequence of str
        Scalar parameters (``beta_0``, ``tau_u``, ...) and vector variables (``u``).

    Returns
    -------
    pandas.DataFrame
        Columns `ACCURACY_COLUMNS`, one row per (fit, data set, parameter); ``parameter`` is a
        scalar's name or a vector variable's (``u``: the median over its elements).

    Examples
    --------
    >>> tidy = pd.DataFrame({"vb": "conjugate/cavi:mean_field", "reference": "conjugate/gibbs",
    ...     "model": "random_intercept", "dataset": "sim_q2_r20", "n_groups": 2, "seed": 0,
    ...     "gate": "ok", "parameter": ["beta_0", "u_0", "u_1"], "variable": ["beta", "u", "u"],
    ...     "ratio": [0.5, 0.9, 0.8], "lo": [0.45, 0.8, 0.7], "hi": [0.55, 1.0, 0.9]})
    >>> table = accuracy_table(tidy, ["conjugate/gibbs"], ["beta_0"])
    >>> table[["parameter", "error"]].round(3).values.tolist()
    [['beta_0', 0.5], ['u', 0.15]]
    """
    keys = ["vb", "model", "dataset", "n_groups", "seed"]
    chosen = _best_reference(tidy, references, keys)
    if chosen.empty:
        return pd.DataFrame(columns=ACCURACY_COLUMNS)
    chosen = chosen.assign(
        error=(chosen.ratio - 1.0).abs(), noise=np.log(chosen.hi / chosen.lo) / 2.0
    )
    scalars = chosen[chosen.parameter.isin(parameters)]
    elements = chosen[chosen.variable.isin(vectors)].assign(parameter=lambda t: t.variable)
    elements = elements.groupby([*keys, "reference", "gate", "parameter"], as_index=False)[
        ["error", "noise"]
    ].median()
    table = pd.concat([scalars, elements], ignore_index=True)
    table = table.rename(columns={"gate": "reference_gate"})
    table["design"] = table.dataset.map(design_of)
    order = {name: i for i, name in enumerate([*parameters, *vectors])}
    table = table.assign(_order=table.parameter.map(order)).sort_values([*keys, "_order"])
    return table[ACCURACY_COLUMNS].reset_index(drop=True)


def _best_reference(tidy: pd.DataFrame, references: Sequence[str], keys: list[str]) -> pd.DataFrame:
    """Rows of ``tidy`` against each fit's preferred reference (see `accuracy_table`)."""
    if tidy.empty or not references:
        return tidy.iloc[:0]
    rank = tidy.reference.map(lambda label: _rank(label, references))
    rows = tidy.assign(_rank=rank, _failed=tidy.gate != "ok").dropna(subset=["_rank"])
    ordered = rows.sort_values(["_failed", "_rank"], kind="stable")
    choice = ordered.drop_duplicates(keys)[[*keys, "reference"]]
    return rows.merge(choice, on=[*keys, "reference"]).drop(columns=["_rank", "_failed"])


def _rank(label: str, references: Sequence[str]) -> float:
    for i, reference in enumerate(references):
        if same_label(reference, label):
            return float(i)
    return float("nan")


def time_to_accuracy(timing: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """`accuracy_table` rows with the fit's ``role``, ``compile_s``, ``run_s``, ``total_s``,
    ``khat`` and its own MCMC ``gate`` (from `timing_table`)."""
    keys = ["vb", "model", "dataset", "n_groups", "seed"]
    times = timing.rename(columns={"label": "vb"})[
        [*keys, "role", "compile_s", "run_s", "total_s", "khat", "gate"]
    ]
    return accuracy.merge(times, on=keys, how="inner")


def plot_time_vs_groups(timing: pd.DataFrame) -> Figure:
    """Wall time against the number of groups, log–log, one line per method and panel per model.

    Solid lines are the run time, dashed lines the total (compile + run) of the same method, the
    median over seeds; the legend gives each method's log–log slope of the total time (time
    grows like Q^slope).

    Parameters
    ----------
    timing : pandas.DataFrame
        Output of `timing_table` (or `timing_summary`).

    Examples
    --------
    >>> timing = pd.DataFrame({"label": "a/b", "role": "vb", "model": "m", "design": "d",
    ...     "n_groups": [10, 100], "n_obs": 0, "seed": 0, "compile_s": [1.0, 1.0],
    ...     "run_s": [0.1, 1.0], "total_s": [1.1, 2.0], "khat": np.nan, "gate": ""})
    >>> plot_time_vs_groups(timing).axes[0].get_xscale()
    'log'
    """
    summary = timing_summary(timing[timing.n_groups > 0])
    models = sorted(summary.model.unique()) or [""]
    colours = method_colours(summary.label)
    fig = Figure(figsize=(5.2 * len(models) + 2.6, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(models), sharey=True))
    for ax, model in zip(axes, models, strict=True):
        _time_panel(ax, summary[summary.model == model], colours)
        ax.set_title(model or "no fits with groups")
    axes[0].set_ylabel("seconds per fit")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        styles = [Line2D([], [], color="k", ls=ls) for ls in ("-", "--")]
        fig.legend(
            [*handles, *styles],
            [*labels, "run", "compile + run"],
            loc="outside right upper",
            fontsize=8,
            title="method (log-log slope of the total)",
        )
    return fig


def _time_panel(ax: Any, summary: pd.DataFrame, colours: dict[str, Any]) -> None:
    for label, rows in summary.groupby("label", sort=True):
        rows = rows.sort_values("n_groups")
        colour = colours[label]
        slope = log_log_slope(rows.n_groups, rows.total_s)
        text = f"{label} ({slope:.2f})" if np.isfinite(slope) else label
        marker = "s" if (rows.role == "mcmc").any() else "o"
        ax.plot(
            rows.n_groups,
            rows.run_s.clip(lower=_ERROR_FLOOR),
            color=colour,
            marker=marker,
            ms=4,
            label=text,
        )
        ax.plot(rows.n_groups, rows.total_s, color=colour, ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of groups Q")
    ax.grid(alpha=0.3, which="both")


def log_log_slope(x: Iterable[float], y: Iterable[float]) -> float:
    """Least-squares slope of ``log y`` on ``log x`` (NaN with fewer than two positive points).

    Examples
    --------
    >>> round(log_log_slope([10, 100, 1000], [0.1, 1.0, 10.0]), 6)
    1.0
    """
    x, y = np.asarray(list(x), dtype=float), np.asarray(list(y), dtype=float)
    keep = (x > 0) & (y > 0)
    if len(np.unique(x[keep])) < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def method_colours(labels: Iterable[str]) -> dict[str, Any]:
    """One colour per method label (sorted), the same in every figure of a report."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"]
    return {label: palette(i % 10) for i, label in enumerate(sorted(set(labels)))}


def plot_time_to_accuracy(merged: pd.DataFrame) -> Figure:
    """Error of the posterior SDs against wall time, one panel per parameter, log–log.

    Each method is a line through its numbers of groups (annotated ``Q``); x is the fit's total
    time (compile + run), y its ``|SD ratio − 1|`` against the reference (`accuracy_table`);
    the dotted line is the median Monte-Carlo noise of the ratios (errors below it are noise).
    Squares are samplers, circles VB; a point is hollow where the fit or its reference failed
    the MCMC gate. Colours are those of `plot_time_vs_groups` when every timed fit is either
    compared or a reference.

    Parameters
    ----------
    merged : pandas.DataFrame
        Output of `time_to_accuracy`.

    Examples
    --------
    >>> merged = pd.DataFrame({"vb": "a/b", "model": "m", "dataset": "d", "design": "d",
    ...     "n_groups": [10, 100], "seed": 0, "reference": "c/d", "reference_gate": "ok",
    ...     "parameter": "beta_0", "error": [0.5, 0.4], "noise": 0.02, "compile_s": 0.0,
    ...     "run_s": [0.1, 1.0], "total_s": [0.1, 1.0], "khat": np.nan, "role": "vb",
    ...     "gate": ""})
    >>> plot_time_to_accuracy(merged).axes[0].get_title()
    'beta_0'
    """
    parameters = list(dict.fromkeys(merged.parameter)) or [""]
    colours = method_colours([*merged.vb, *merged.reference])
    fig = Figure(figsize=(4.4 * len(parameters) + 2.6, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(parameters), sharey=True))
    for ax, parameter in zip(axes, parameters, strict=True):
        _accuracy_panel(ax, merged[merged.parameter == parameter], colours)
        ax.set_title(parameter if parameter not in ACCURACY_VECTORS else f"{parameter} (median)")
    axes[0].set_ylabel("|SD ratio − 1| against the reference")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="method")
    return fig


def _accuracy_panel(ax: Any, rows: pd.DataFrame, colours: dict[str, Any]) -> None:
    failed = (rows.reference_gate != "ok") | rows.gate.astype(str).str.startswith("FAIL")
    cells = (
        rows.assign(failed=failed)
        .groupby(["vb", "role", "n_groups"], as_index=False)
        .agg(total_s=("total_s", "median"), error=("error", "median"), failed=("failed", "any"))
    )
    for (label, role), line in cells.groupby(["vb", "role"], sort=True):
        line = line.sort_values("n_groups")
        error = line.error.clip(lower=_ERROR_FLOOR)
        colour = colours[label]
        ax.plot(line.total_s, error, color=colour, lw=1, label=label)
        ax.scatter(
            line.total_s,
            error,
            s=22,
            zorder=3,
            marker="s" if role == "mcmc" else "o",
            edgecolors=colour,
            facecolors=[("none" if f else colour) for f in line.failed],
        )
        for q, x, y in zip(line.n_groups, line.total_s, error, strict=True):
            ax.annotate(f"{q:g}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6)
    if not rows.empty:
        ax.axhline(rows.noise.median(), color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("seconds per fit (compile + run)")
    ax.grid(alpha=0.3, which="both")


def timing_markdown(summary: pd.DataFrame) -> str:
    """Markdown: one row per method (and model), one column per Q, cells ``run + compile``
    seconds (and ``+ N discarded`` for fits a sampler's study run replaced; ``†``: the sampled
    fit failed the MCMC gate).

    Examples
    --------
    >>> summary = pd.DataFrame({"label": "a/b", "model": "m", "n_groups": [10, 100],
    ...     "compile_s": [2.0, 2.5], "run_s": [0.1, 1.25]})
    >>> print(timing_markdown(summary))
    | method | model | Q = 10 | Q = 100 |
    |---|---|---|---|
    | a/b | m | 0.100 + 2.00 | 1.25 + 2.50 |
    """
    groups = sorted(summary.n_groups.unique())
    header = ["method", "model", *(f"Q = {q:,}" for q in groups)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (label, model), rows in summary.groupby(["label", "model"], sort=True):
        cells = rows.set_index("n_groups")
        text = [_seconds_pair(cells.loc[q]) if q in cells.index else "—" for q in groups]
        lines.append(f"| {label} | {model} | " + " | ".join(text) + " |")
    return "\n".join(lines)


def _seconds_pair(row: pd.Series) -> str:
    failed = str(row.get("gate", "")).startswith("FAIL")
    text = f"{format_seconds(row.run_s)} + {format_seconds(row.compile_s)}"
    discarded = row.get("discarded_s", 0.0)
    if discarded > 0:
        text += f" + {format_seconds(discarded)} discarded"
    return text + (" †" if failed else "")


def format_seconds(value: float) -> str:
    """Seconds to about three significant digits (``0.012``, ``1.25``, ``12.5``, ``125``)."""
    for limit, digits in ((1, 3), (10, 2), (100, 1)):
        if value < limit:
            return f"{value:.{digits}f}"
    return f"{value:.0f}"


def accuracy_markdown(merged: pd.DataFrame) -> str:
    """Markdown: per method and Q (median over seeds), total seconds, each parameter's error,
    k̂ and the reference; † after a method or a reference that failed the MCMC gate there.

    Examples
    --------
    >>> merged = pd.DataFrame({"vb": "a/b", "model": "m", "n_groups": 10, "seed": 0,
    ...     "reference": "c/d", "reference_gate": "ok", "parameter": ["beta_0", "u"],
    ...     "error": [0.5, 0.01], "total_s": 1.5, "khat": 0.3, "gate": ""})
    >>> print(accuracy_markdown(merged))
    | method | model | Q | seconds | beta_0 | u | k̂ | reference |
    |---|---|---|---|---|---|---|---|
    | a/b | m | 10 | 1.50 | 0.500 | 0.010 | 0.30 | c/d |
    """
    parameters = list(dict.fromkeys(merged.parameter))
    header = ["method", "model", "Q", "seconds", *parameters, "k̂", "reference"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (label, model, q), rows in merged.groupby(["vb", "model", "n_groups"], sort=True):
        errors = rows.groupby("parameter").error.median()
        cells = [f"{errors[p]:.3f}" if p in errors else "NA" for p in parameters]
        khat = rows.khat.max()
        method = label + _dagger(rows.gate.astype(str).str.startswith("FAIL"))
        reference = rows.reference.iloc[0] + _dagger(rows.reference_gate != "ok")
        lines.append(
            f"| {method} | {model} | {q:,} | {format_seconds(rows.total_s.median())} | "
            + " | ".join(cells)
            + f" | {'NA' if pd.isna(khat) else f'{khat:.2f}'} | {reference} |"
        )
    return "\n".join(lines)


def _dagger(failed: pd.Series) -> str:
    return " †" if failed.any() else ""
