"""Tidy and wide (VI1-layout) ratio tables, exported to CSV and Markdown."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.gate import GateThresholds, mcmc_gate, reference_diagnostics
from analysis.io import fit_info, load_fits, pair_fits, same_label
from analysis.ratios import sd_ratio, summarise_vectors

WIDE_COLUMNS = ("beta_0", "beta_1", "beta_2", "tau_e", "tau_u", "sigma2_e", "sigma2_u")
VI1_ROWS = tuple(
    [f"M0_Q{q}" for q in (5, 10, 20, 50, 100)]
    + ["M1"]
    + [f"M{m}_Q{q}" for m in (2, 3) for q in (5, 10, 20, 50, 100)]
)
DEFAULT_PAIRS = (
    ("conjugate/cavi:block", "conjugate/gibbs"),
    ("numpyro/advi:mean_field", "numpyro/nuts"),
    ("pymc/advi:mean_field", "pymc/nuts"),
)
TIDY_COLUMNS = [
    "model",
    "model_label",
    "label",
    "dataset",
    "design",
    "n_groups",
    "seed",
    "parameter",
    "variable",
    "element",
    "scale",
    "vb",
    "reference",
    "vb_backend",
    "vb_method",
    "vb_family",
    "ref_backend",
    "ref_method",
    "ref_family",
    "sd_vb",
    "se_vb",
    "sd_ref",
    "se_ref",
    "analytic",
    "ratio",
    "lo",
    "hi",
    "var_ratio",
    "var_lo",
    "var_hi",
    "gate",
    "rhat",
    "ess_bulk",
    "ess_tail",
    "divergences",
    "khat",
]


def ratio_table(
    fits: str | Path | Iterable[Any],
    pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
    *,
    thresholds: GateThresholds = GateThresholds(),
    ci: float = 0.9,
) -> pd.DataFrame:
    """The tidy long table of SD ratios (and variance ratios) of every VB/reference pair.

    Parameters
    ----------
    fits : folder or iterable of InferenceData
        Fits to pair by (dataset, model, n_groups, seed).
    pairs : sequence of (vb, reference)
        ``backend/method[:family]`` labels to compare; pairs without fits are skipped.
    thresholds : GateThresholds
        The MCMC gate applied to each reference; its verdict is in column ``gate``.
    ci : float
        Level of the ratio intervals.

    Returns
    -------
    pandas.DataFrame
        Columns `TIDY_COLUMNS`: one row per (pair, data set, parameter element). ``gate`` is
        the verdict on the whole reference fit (``ok`` or ``FAIL: reasons``); ``vb`` and
        ``reference`` the full labels of the two fits (``numpyro/advi:block``); ``rhat``,
        ``ess_bulk`` and ``ess_tail`` are the reference's diagnostics of that very element,
        ``divergences`` those of the whole reference; ``khat`` the PSIS k̂ of the VB fit (NaN
        when it has none).

    Examples
    --------
    >>> import arviz as az
    >>> rng = np.random.default_rng(0)
    >>> def fit(method, sd, chains):
    ...     idata = az.from_dict(posterior={"tau_e": rng.normal(5, sd, (chains, 1000))})
    ...     idata.posterior.attrs.update(model="linear", model_label="M1", backend="numpyro",
    ...                                  method=method)
    ...     return idata
    >>> tidy = ratio_table([fit("advi", 0.5, 1), fit("nuts", 1.0, 4)],
    ...                    [("numpyro/advi", "numpyro/nuts")])
    >>> tidy[["label", "vb", "parameter", "scale", "gate"]].values.tolist()
    [['M1', 'numpyro/advi', 'tau_e', 'precision', 'ok']]
    """
    fits = load_fits(fits)
    frames = []
    for vb_label, ref_label in pairs:
        for info, vb, reference in pair_fits(fits, vb_label, ref_label):
            table = sd_ratio(vb, reference, ci=ci)
            gate = mcmc_gate(reference, thresholds=thresholds)
            diagnostics = reference_diagnostics(reference, list(table.variable.unique()))
            table = table.merge(diagnostics, on="parameter", how="left")
            ref = fit_info(reference)
            table = table.assign(
                model=info.model,
                model_label=info.model_label or info.model,
                label=info.vi1_label,
                dataset=info.dataset,
                design=design_of(info.dataset),
                n_groups=info.n_groups,
                seed=info.seed,
                vb=info.label,
                reference=ref.label,
                vb_backend=info.backend,
                vb_method=info.method,
                vb_family=info.family,
                ref_backend=ref.backend,
                ref_method=ref.method,
                ref_family=ref.family,
                var_ratio=table.ratio**2,
                var_lo=table.lo**2,
                var_hi=table.hi**2,
                gate=gate.label,
                divergences=gate.divergences,
                khat=float(vb.posterior.attrs.get("psis_khat", np.nan)),
            )
            frames.append(table[TIDY_COLUMNS])
    if not frames:
        return pd.DataFrame(columns=TIDY_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def wide_table(
    tidy: pd.DataFrame,
    vb: str = "conjugate/cavi:block",
    reference: str = "conjugate/gibbs",
    *,
    dataset: str | Sequence[str] | None = None,
    value: str = "ratio",
    design: str | None = None,
) -> pd.DataFrame:
    """The VI1 report's layout: rows ``M0_Q5 … M3_Q100, M1``, columns `WIDE_COLUMNS`.

    Cells hold one statistic of one VB/reference pair, the median over seeds (replicated data
    sets) when there are several (`spread_table` gives its uncertainty); NA where the model has
    no such parameter. ``beta_k`` is the k-th coefficient in
    coordinate order, ``tau_*`` are SD ratios on the precision scale and ``sigma2_*`` on the
    variance scale. Column ``reference_gate`` holds ``ok`` when every reference of the row
    passed the MCMC gate, else the first failure (``no fit`` for a VI1 row without fits).

    Parameters
    ----------
    tidy : pandas.DataFrame
        Output of `ratio_table`.
    vb, reference : str
        The ``backend/method[:family]`` pair shown.
    dataset : str or sequence of str, optional
        Keep only these data sets. Without it, a row name that several data sets share (the
        linear model on simulated data and on Boston, say) gets one row per data set, named
        ``M1 [boston]``, so that different data are never averaged together.
    value : str
        The tidy column shown: ``ratio`` (SD ratio, default), ``var_ratio``, ``lo``, ``hi`` ...
    design : str, optional
        Keep only simulated data of this design (`design_of`, e.g. ``sim_r20``) and real data.

    Returns
    -------
    pandas.DataFrame
        Index ``Model``: the VI1 rows that have fits, in the report's order (all of them when
        there are no fits at all), then any other rows; columns `WIDE_COLUMNS` and
        ``reference_gate``.

    Examples
    --------
    >>> tidy = pd.DataFrame({"label": ["M1", "M1"], "dataset": ["sim", "sim"],
    ...     "parameter": ["beta_0", "tau_e"], "ratio": [1.0, 0.5], "gate": ["ok", "ok"],
    ...     "vb": "conjugate/cavi:block", "reference": "conjugate/gibbs"})
    >>> wide_table(tidy).loc["M1", ["beta_0", "beta_1", "tau_e"]].tolist()
    [1.0, nan, 0.5]
    """
    if value not in tidy.columns:
        raise ValueError(f"value: {value!r} is not a column of the tidy table")
    chosen, rows = _wide_rows(tidy, vb, reference, dataset, design)
    wide = chosen.pivot_table(index="row", columns="parameter", values=value, aggfunc="median")
    wide = wide.reindex(index=rows, columns=list(WIDE_COLUMNS))
    gates = chosen.groupby("row")["gate"].agg(
        lambda g: "ok" if (g == "ok").all() else sorted(set(g) - {"ok"})[0]
    )
    wide["reference_gate"] = gates.reindex(wide.index).fillna("no fit")
    wide.index.name = "Model"
    wide.columns.name = None
    return wide


SPREAD_LEGEND = (
    "median over the replicated data sets [5–95 % range of the replicates, or the Monte-Carlo "
    "interval of a single fit]; bold below 0.8"
)
"""What a cell of `to_markdown` with `spread_table`'s intervals shows."""


def _wide_rows(
    tidy: pd.DataFrame,
    vb: str,
    reference: str,
    dataset: str | Sequence[str] | None,
    design: str | None,
) -> tuple[pd.DataFrame, list[str]]:
    """The tidy rows a wide table shows, with their ``row`` name, and the rows' order."""
    chosen = pair_rows(tidy, vb, reference)
    if dataset is not None:
        wanted = [dataset] if isinstance(dataset, str) else list(dataset)
        chosen = chosen[chosen.dataset.isin(wanted)]
    if design is not None:
        chosen = chosen[(chosen.n_groups == 0) | (chosen.dataset.map(design_of) == design)]
    chosen = chosen[chosen.parameter.isin(WIDE_COLUMNS)].assign(row=_row_names(chosen))
    present = set(chosen.row)
    rows = [r for r in VI1_ROWS if r in present] if present else list(VI1_ROWS)
    return chosen, rows + sorted(present - set(VI1_ROWS))


def spread_table(
    tidy: pd.DataFrame,
    vb: str = "conjugate/cavi:block",
    reference: str = "conjugate/gibbs",
    *,
    dataset: str | Sequence[str] | None = None,
    design: str | None = None,
    coverage: float = 0.9,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The uncertainty of each SD ratio of `wide_table`: its lower and upper ends, two tables
    in the same layout.

    With replicated data sets (several seeds in a cell) the central ``coverage`` interval of
    their ratios, the spread a new data set would show; with a single fit its Monte-Carlo
    interval (the tidy ``lo`` and ``hi``), as `analysis.published.replicate_summary` does.

    Parameters
    ----------
    tidy : pandas.DataFrame
        Output of `ratio_table`.
    vb, reference, dataset, design
        As in `wide_table`.
    coverage : float
        Central share of the replicates' ratios covered (5-95 % by default).

    Returns
    -------
    lower, upper : pandas.DataFrame
        Index ``Model`` as in `wide_table`, columns `WIDE_COLUMNS`.

    Examples
    --------
    >>> tidy = pd.DataFrame({"label": "M0_Q5", "dataset": "sim", "parameter": "tau_u",
    ...     "seed": [1, 2, 3], "ratio": [0.7, 0.8, 0.9], "lo": 0.0, "hi": 2.0, "gate": "ok",
    ...     "vb": "conjugate/cavi:block", "reference": "conjugate/gibbs", "n_groups": 5})
    >>> lower, upper = spread_table(tidy)
    >>> [round(float(end.loc["M0_Q5", "tau_u"]), 2) for end in (lower, upper)]
    [0.71, 0.89]
    >>> lower, upper = spread_table(tidy[tidy.seed == 1])
    >>> [float(end.loc["M0_Q5", "tau_u"]) for end in (lower, upper)]
    [0.0, 2.0]
    """
    from analysis.published import replicate_summary  # it imports this module

    chosen, rows = _wide_rows(tidy, vb, reference, dataset, design)
    cells = chosen.dropna(subset=["ratio"]).assign(label=lambda rows: rows.row)
    summary = replicate_summary(cells, coverage)
    ends = []
    for end in ("spread_lo", "spread_hi"):
        wide = summary[end].astype(float).unstack("parameter")
        wide = wide.reindex(index=rows, columns=list(WIDE_COLUMNS))
        wide.index.name, wide.columns.name = "Model", None
        ends.append(wide)
    return ends[0], ends[1]


def design_of(dataset: str) -> str:
    """The design part of a data tag: ``sim_q20_r20`` -> ``sim_r20``; real data unchanged.

    Fits of one design at several numbers of groups share it.

    Examples
    --------
    >>> design_of("sim_q20_n500"), design_of("exam")
    ('sim_n500', 'exam')
    """
    return re.sub(r"_q\d+(?=_|$)", "", str(dataset))


def _row_names(rows: pd.DataFrame) -> pd.Series:
    """The VI1 label, plus ``[dataset]`` where several data sets share the label."""
    shared = rows.groupby("label")["dataset"].transform("nunique") > 1
    return rows.label.where(~shared, rows.label + " [" + rows.dataset.astype(str) + "]")


def pair_rows(tidy: pd.DataFrame, vb: str, reference: str) -> pd.DataFrame:
    """Rows of a tidy table that compare ``vb`` with ``reference``.

    Labels are ``backend/method[:family]``; a variational label without a family names the
    default ``mean_field`` (`analysis.io.same_label`).
    """
    _check_label(vb, "vb")
    _check_label(reference, "reference")
    if tidy.empty:
        return tidy
    vb_match = tidy.vb.map(lambda label: same_label(vb, label))
    ref_match = tidy.reference.map(lambda label: same_label(reference, label))
    return tidy[vb_match.astype(bool) & ref_match.astype(bool)]


def _check_label(label: str, what: str) -> None:
    pair, _, family = str(label).partition(":")
    parts = pair.split("/")
    if len(parts) != 2 or not all(parts) or (":" in str(label) and not family):
        raise ValueError(
            f"{what}: expected 'backend/method' or 'backend/method:family' "
            f"(e.g. 'numpyro/advi:block'), got {label!r}"
        )


def label_slug(label: str) -> str:
    """A label as a file-name part: ``numpyro/advi:block`` -> ``numpyro-advi.block``."""
    return str(label).replace("/", "-").replace(":", ".")


def plain_markdown(table: pd.DataFrame) -> str:
    """A plain Markdown table of a small DataFrame (no index, values as ``str`` gives them).

    Examples
    --------
    >>> print(plain_markdown(pd.DataFrame({"fit": ["a/b"], "k̂": [0.3]})))
    | fit | k̂ |
    |---|---|
    | a/b | 0.3 |
    """
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * table.shape[1]]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def to_markdown(
    wide: pd.DataFrame,
    mark_below: float = 0.8,
    digits: int = 3,
    spread: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> str:
    """Markdown of a wide table: values below ``mark_below`` in bold, failed gates with †, and
    with ``spread`` (`spread_table`'s lower and upper ends) each value's interval.

    Examples
    --------
    >>> table = pd.DataFrame({"tau_u": [0.5, 1.0]}, index=pd.Index(["M0_Q5", "M1"], name="Model"))
    >>> print(to_markdown(table))
    | Model | tau_u |
    |---|---|
    | M0_Q5 | **0.500** |
    | M1 | 1.000 |
    >>> print(to_markdown(table, spread=(table - 0.1, table + 0.1)).splitlines()[-1])
    | M1 | 1.000 [0.900–1.100] |
    """
    columns = [c for c in wide.columns if c != "reference_gate"]
    lines = [
        "| " + " | ".join([wide.index.name or "", *columns]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for label, row in wide.iterrows():
        failed = "reference_gate" in wide and row["reference_gate"] not in ("ok", "no fit")
        cells = [_cell(row[c], mark_below, digits) for c in columns]
        if spread is not None:
            cells = [
                _with_interval(cell, spread[0].at[label, c], spread[1].at[label, c], digits)
                for cell, c in zip(cells, columns, strict=True)
            ]
        lines.append("| " + " | ".join([f"{label}{' †' if failed else ''}", *cells]) + " |")
    if "reference_gate" in wide and (~wide.reference_gate.isin(["ok", "no fit"])).any():
        lines.append("")
        lines.append("† the reference of this row failed the MCMC gate (see the tidy table).")
    return "\n".join(lines)


def _cell(value: Any, mark_below: float, digits: int) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "NA"
    text = f"{value:.{digits}f}"
    return f"**{text}**" if value < mark_below else text


def _with_interval(cell: str, lower: Any, upper: Any, digits: int) -> str:
    if cell == "NA" or pd.isna(lower) or pd.isna(upper):
        return cell
    return f"{cell} [{lower:.{digits}f}–{upper:.{digits}f}]"


def write_tables(
    tidy: pd.DataFrame, out: str | Path, pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS
) -> list[Path]:
    """Write the tidy table and one wide table per pair, as CSV and Markdown, into ``out``.

    Files: ``ratios_tidy.csv``, ``ratios_vectors.csv`` (median and range of the ``u`` ratios
    per pair of fits, `analysis.ratios.summarise_vectors`), and per pair with fits
    ``ratios_wide_<vb>_vs_<reference>.csv`` (`wide_table`) / ``.md`` (`to_markdown`, each
    ratio with its `spread_table` interval).

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "ratios_tidy.csv", out / "ratios_vectors.csv"]
    tidy.to_csv(paths[0], index=False)
    summarise_vectors(tidy).to_csv(paths[1], index=False)
    for vb, reference in pairs:
        rows = pair_rows(tidy, vb, reference)
        if rows.empty:
            continue
        wide = wide_table(tidy, vb, reference)
        vb_label, ref_label = rows.vb.iloc[0], rows.reference.iloc[0]
        stem = f"ratios_wide_{label_slug(vb_label)}_vs_{label_slug(ref_label)}"
        wide.to_csv(out / f"{stem}.csv")
        spread = spread_table(tidy, vb, reference)
        (out / f"{stem}.md").write_text(
            f"SD ratio {vb_label} / {ref_label}: {SPREAD_LEGEND}\n\n"
            + to_markdown(wide, spread=spread)
            + "\n"
        )
        paths += [out / f"{stem}.csv", out / f"{stem}.md"]
    return paths
