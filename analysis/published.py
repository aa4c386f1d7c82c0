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


def _fmt(value: object, digits: int) -> str:
    if value is None or pd.isna(value):
        return "NA"
    return f"{float(value):.{digits}f}"


__all__ = ["compare_with_published", "published_table", "side_by_side_markdown"]
