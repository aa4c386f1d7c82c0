"""The VI1 report's published SD-ratio table (its Figure 4), shipped as package data."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from analysis.tables import WIDE_COLUMNS


def published_table() -> pd.DataFrame:
    """The published VB/Gibbs SD ratios, indexed like `analysis.tables.wide_table`.

    Returns
    -------
    pandas.DataFrame
        Rows ``M0_Q5 … M3_Q100, M1``; columns ``Q`` and `WIDE_COLUMNS` (NA where the report
        gives none).

    Examples
    --------
    >>> published_table().loc["M3_Q10", ["beta_0", "tau_e", "tau_u"]].tolist()
    [1.26, nan, 0.002]
    """
    with resources.files("analysis").joinpath("data/vi1_published_sd_ratios.csv").open() as f:
        table = pd.read_csv(f, index_col="Model")
    return table[["Q", *WIDE_COLUMNS]]


def compare_with_published(ours: pd.DataFrame) -> pd.DataFrame:
    """Long table of every cell of the VI1 layout, published value next to ours.

    Parameters
    ----------
    ours : pandas.DataFrame
        A wide table (`analysis.tables.wide_table`).

    Returns
    -------
    pandas.DataFrame
        Columns ``row``, ``parameter``, ``published``, ``ours``, ``difference`` and
        ``reference_gate`` (the MCMC gate of our reference, ``no fit`` where we have none).

    Examples
    --------
    >>> ours = pd.DataFrame({"tau_u": [0.5]}, index=pd.Index(["M0_Q5"], name="Model"))
    >>> long = compare_with_published(ours)
    >>> long[(long.row == "M0_Q5") & (long.parameter == "tau_u")].values.tolist()
    [['M0_Q5', 'tau_u', 0.812, 0.5, -0.312, 'ok']]
    """
    published = published_table()[list(WIDE_COLUMNS)]
    gates = _gates(ours, published.index)
    ours = ours.reindex(index=published.index, columns=list(WIDE_COLUMNS))
    long = pd.DataFrame(
        {
            "published": published.stack(future_stack=True),
            "ours": ours.astype(float).stack(future_stack=True),
        }
    )
    long["difference"] = (long.ours - long.published).round(12)
    long.index.names = ["row", "parameter"]
    long = long.reset_index()
    long["reference_gate"] = long.row.map(gates)
    return long


def _gates(ours: pd.DataFrame, rows: pd.Index) -> pd.Series:
    """The gate verdict per row: ours where given, ``ok`` for rows with values, else no fit."""
    if "reference_gate" in ours:
        gates = ours["reference_gate"]
    else:
        gates = pd.Series("ok", index=ours.index)
    return gates.reindex(rows).fillna("no fit")


def side_by_side_markdown(ours: pd.DataFrame, digits: int = 2, mark_below: float = 0.8) -> str:
    """Markdown with ``ours (published)`` in every cell of the VI1 layout.

    Our values below ``mark_below`` are bold, as in the VI1 report; the last column holds the
    MCMC gate of our reference (``† FAIL: …`` for a reference that failed it).

    Examples
    --------
    >>> ours = pd.DataFrame({"tau_u": [0.5], "reference_gate": ["FAIL: 3 divergences"]},
    ...                     index=pd.Index(["M0_Q5"], name="Model"))
    >>> row = side_by_side_markdown(ours).splitlines()[2]
    >>> row.split(" | ")[:2], row.split(" | ")[5], row.split(" | ")[-1]
    (['| M0_Q5', 'NA (0.72)'], '**0.50** (0.81)', '† FAIL: 3 divergences |')
    """
    published = published_table()
    gates = _gates(ours, published.index)
    header = ["Model", *WIDE_COLUMNS, "MCMC gate"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in published.index:
        cells = []
        for column in WIDE_COLUMNS:
            mine = ours[column].get(row) if column in ours and row in ours.index else None
            text = _fmt(mine, digits)
            if text != "NA" and float(mine) < mark_below:
                text = f"**{text}**"
            cells.append(f"{text} ({_fmt(published.at[row, column], digits)})")
        gate = gates[row] if gates[row] in ("ok", "no fit") else f"† {gates[row]}"
        lines.append(f"| {row} | " + " | ".join([*cells, gate]) + " |")
    return "\n".join(lines)


def replicate_summary(rows: pd.DataFrame, coverage: float = 0.9) -> pd.DataFrame:
    """Median SD ratio of each (row, parameter) cell over replicated data sets, and its spread.

    Parameters
    ----------
    rows : pandas.DataFrame
        Tidy rows (`analysis.tables.ratio_table`) of one design: columns ``label``,
        ``parameter``, ``seed``, ``ratio``, ``lo``, ``hi``, ``gate``.
    coverage : float
        The spread is the central ``coverage`` interval of the replicates' ratios (5–95 % by
        default); with a single replicate it is that fit's Monte-Carlo interval (``lo``, ``hi``).

    Returns
    -------
    pandas.DataFrame
        Index (``row``, ``parameter``); columns ``median``, ``spread_lo``, ``spread_hi``,
        ``replicates`` and ``gate`` (``ok`` when every reference of the cell passed the MCMC
        gate, else the first failure).

    Examples
    --------
    >>> rows = pd.DataFrame({"label": "M0_Q5", "parameter": "tau_u", "seed": [1, 2, 3],
    ...     "ratio": [0.7, 0.8, 0.9], "lo": 0.0, "hi": 2.0, "gate": "ok"})
    >>> replicate_summary(rows).round(2).values.tolist()
    [[0.8, 0.71, 0.89, 3, 'ok']]
    """
    tail = (1.0 - coverage) / 2.0
    cells = rows.groupby(["label", "parameter"], sort=False)

    def summarise(cell: pd.DataFrame) -> pd.Series:
        ratios = cell.ratio.dropna()
        single = ratios.size == 1
        failures = sorted(set(cell.gate) - {"ok"})
        return pd.Series(
            {
                "median": ratios.median(),
                "spread_lo": cell.lo.iloc[0] if single else ratios.quantile(tail),
                "spread_hi": cell.hi.iloc[0] if single else ratios.quantile(1.0 - tail),
                "replicates": int(ratios.size),
                "gate": failures[0] if failures else "ok",
            }
        )

    columns = ["median", "spread_lo", "spread_hi", "replicates", "gate"]
    if rows.empty:  # no fit of ours: no cell (``apply`` would return no columns at all)
        index = pd.MultiIndex.from_arrays([[], []], names=["row", "parameter"])
        return pd.DataFrame(columns=columns, index=index)
    summary = cells.apply(summarise, include_groups=False)
    summary.index.names = ["row", "parameter"]
    return summary[columns]


def published_comparison(rows: pd.DataFrame, coverage: float = 0.9) -> pd.DataFrame:
    """Every published cell next to ours (median and replicate spread), flagged when outside.

    Parameters
    ----------
    rows : pandas.DataFrame
        Tidy rows of one design, possibly from several VB/reference pairs (the reproduction's
        M2 rows come from another VB than its M0/M3 rows); see `replicate_summary`.
    coverage : float
        Central interval of the replicates that must contain the published value.

    Returns
    -------
    pandas.DataFrame
        Columns ``row``, ``parameter``, ``published``, ``median``, ``spread_lo``,
        ``spread_hi``, ``replicates``, ``gate``, ``difference`` (median − published) and
        ``outside`` (the published value lies outside our spread).
    """
    published = published_table()[list(WIDE_COLUMNS)].stack().rename("published")
    published.index.names = ["row", "parameter"]
    ours = replicate_summary(rows[rows.parameter.isin(WIDE_COLUMNS)], coverage)
    long = published.to_frame().join(ours, how="left").reset_index()
    long["difference"] = long["median"] - long.published
    long["outside"] = (long.published < long.spread_lo) | (long.published > long.spread_hi)
    long["gate"] = long.gate.fillna("no fit")
    return long


def comparison_markdown(long: pd.DataFrame, digits: int = 2) -> str:
    """Markdown of `published_comparison` in the VI1 layout: ``median [lo–hi] (published)``.

    A cell whose published value lies outside our replicate spread is marked ✗; a row whose
    reference failed the MCMC gate is marked †.
    """
    header = ["Model", *WIDE_COLUMNS, "MCMC gate"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, cells in long.groupby("row", sort=False):
        by_parameter = cells.set_index("parameter")
        texts = []
        for column in WIDE_COLUMNS:
            if column not in by_parameter.index:
                texts.append("NA")
                continue
            cell = by_parameter.loc[column]
            texts.append(_cell_text(cell, digits))
        gates = sorted(set(cells.gate) - {"ok"})
        gate = "ok" if not gates else (gates[0] if gates[0] == "no fit" else f"† {gates[0]}")
        lines.append(f"| {row} | " + " | ".join([*texts, gate]) + " |")
    return "\n".join(lines)


def _cell_text(cell: pd.Series, digits: int) -> str:
    published = f"({_fmt(cell.published, digits)})"
    if pd.isna(cell["median"]):
        return f"NA {published}"
    spread = f"[{_fmt(cell.spread_lo, digits)}–{_fmt(cell.spread_hi, digits)}]"
    mark = " ✗" if bool(cell.outside) and not pd.isna(cell.published) else ""
    return f"{_fmt(cell['median'], digits)} {spread} {published}{mark}"


def _fmt(value: object, digits: int) -> str:
    if value is None or pd.isna(value):
        return "NA"
    return f"{float(value):.{digits}f}"


__all__ = [
    "compare_with_published",
    "comparison_markdown",
    "published_comparison",
    "published_table",
    "replicate_summary",
    "side_by_side_markdown",
]
