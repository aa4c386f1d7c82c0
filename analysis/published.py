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
    """
    with resources.files("analysis").joinpath("data/vi1_published_sd_ratios.csv").open() as f:
        table = pd.read_csv(f, index_col="Model")
    return table[["Q", *WIDE_COLUMNS]]


def compare_with_published(ours: pd.DataFrame) -> pd.DataFrame:
    """Long table of every cell: ``row``, ``parameter``, ``published``, ``ours``, ``difference``.

    Parameters
    ----------
    ours : pandas.DataFrame
        A wide table (`analysis.tables.wide_table`).
    """
    published = published_table()[list(WIDE_COLUMNS)]
    ours = ours.reindex(index=published.index, columns=list(WIDE_COLUMNS))
    long = pd.DataFrame(
        {
            "published": published.stack(future_stack=True),
            "ours": ours.astype(float).stack(future_stack=True),
        }
    )
    long["difference"] = long.ours - long.published
    long.index.names = ["row", "parameter"]
    return long.reset_index()


def side_by_side_markdown(ours: pd.DataFrame, digits: int = 2) -> str:
    """Markdown with ``ours (published)`` in every cell of the VI1 layout."""
    published = published_table()
    rows = published.index
    lines = ["| Model | " + " | ".join(WIDE_COLUMNS) + " |", "|" + "---|" * (len(WIDE_COLUMNS) + 1)]
    for row in rows:
        cells = []
        for column in WIDE_COLUMNS:
            mine = ours[column].get(row) if column in ours and row in ours.index else None
            cells.append(f"{_fmt(mine, digits)} ({_fmt(published.at[row, column], digits)})")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: object, digits: int) -> str:
    if value is None or pd.isna(value):
        return "NA"
    return f"{float(value):.{digits}f}"


__all__ = ["compare_with_published", "published_table", "side_by_side_markdown"]
