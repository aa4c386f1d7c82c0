"""The scaling study: its grid, the ``[report]`` key, and `vistudy scaling` end to end (tiny)."""

from dataclasses import replace

import pandas as pd
import pytest

import study.report
import study.scaling
from study.cli import build_parser, main
from study.config import StudyConfigError, parse_study
from study.runs import expand
from study.scaling import scaling_study

GIBBS = "conjugate/gibbs"
CONJUGATE = ("conjugate/cavi:mean_field", "conjugate/cavi:block", GIBBS)
EVERY_Q = {*CONJUGATE, "numpyro/advi:mean_field", "pymc/advi:mean_field"}


def _study(**report):
    return {
        "scenario": [{"models": ["random_intercept"], "n_groups": [5]}],
        "fit": [
            {"backend": "conjugate", "method": "cavi"},
            {"backend": "conjugate", "method": "gibbs"},
        ],
        "compare": [{"vb": "conjugate/cavi", "reference": GIBBS}],
        **({"report": report} if report else {}),
    }


def test_report_timing_key_defaults_to_the_compared_references():
    assert not parse_study(_study()).timing
    config = parse_study(_study(timing=True))
    assert config.timing and config.timing_references == (GIBBS,)
    chosen = parse_study(_study(timing=True, references=["conjugate/cavi"]))
    assert chosen.timing_references == ("conjugate/cavi:mean_field",)


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ({"timing": "yes"}, "report.timing: expected bool"),
        ({"timings": True}, r"report.timings: unknown key"),
        ({"timing": True, "references": ["numpyro/nuts"]}, "not one of the study's fits"),
        ({"timing": True, "references": ["gibbs"]}, "report.references: label"),
    ],
)
def test_report_key_errors_name_the_key(report, message):
    with pytest.raises(StudyConfigError, match=message):
        parse_study(_study(**report), source="s.toml")


def test_the_scaling_grid_runs_each_method_as_far_as_it_can():
    config = scaling_study()
    assert config.timing and config.timing_references == (GIBBS,)
    assert {reference for _, reference in config.compare} == {GIBBS}
    runs = expand(config)
    labels_at = {q: {r.label for r in runs if r.n_groups == q} for q in (10, 100, 1000, 10_000)}
    every = {fit.label for fit in config.fits}
    assert labels_at[10] == labels_at[100] == every
    assert labels_at[1000] == EVERY_Q | {"numpyro/nuts", "pymc/nuts"}
    assert labels_at[10_000] == EVERY_Q
    assert {r.n_per_group for r in runs} == {20} and {r.model for r in runs} == {"random_intercept"}
    assert len({r.data_tag for r in runs if r.n_groups == 1000}) == 1  # every method, same data
    assert {r.gate_retries for r in runs} == {0}  # a timed fit is never fitted a second time
    reduced = expand(scaling_study(max_groups=1000))
    assert max(r.n_groups for r in reduced) == 1000
    assert {(r.key, r.content_hash) for r in reduced} <= {(r.key, r.content_hash) for r in runs}
    with pytest.raises(ValueError, match="smallest Q is 10"):
        scaling_study(max_groups=5)


def _conjugate_only(config):
    """The study with only its NumPy fits (no compilation: the test stays fast)."""
    scenarios = tuple(
        replace(s, fits=tuple(label for label in s.fits if label in CONJUGATE))
        for s in config.scenarios
        if set(s.fits) & set(CONJUGATE)
    )
    return replace(
        config,
        scenarios=scenarios,
        fits=tuple(f for f in config.fits if f.label in CONJUGATE),
        compare=tuple(pair for pair in config.compare if pair[0] in CONJUGATE),
        main=tuple(rows for rows in config.main if rows.vb in CONJUGATE),
    )


def test_vistudy_scaling_tiny_writes_the_time_section(tmp_path, monkeypatch):
    asked = []

    def tiny_conjugate(**options):
        asked.append(options)
        return _conjugate_only(scaling_study(**options))

    monkeypatch.setattr(study.scaling, "scaling_study", tiny_conjugate)
    monkeypatch.setattr(study.report, "SHRINKAGE_MAX_GROUPS", 5)  # as 10^3 is for 10^4 groups
    assert build_parser().parse_args(["scaling"]).jobs == 1  # fits one at a time by default
    out = tmp_path / "scaling"
    assert main(["scaling", "--tiny", "--max-groups", "10", "--out", str(out)]) == 0
    assert asked == [{"max_groups": 10, "tiny": True}]
    timing = pd.read_csv(out / "tables" / "timing.csv")
    assert len(timing) == len(list((out / "runs").glob("*.nc"))) == 3 * 2
    assert set(timing.n_groups) == {5, 10} and (timing.total_s > 0).all()
    accuracy = pd.read_csv(out / "tables" / "time_to_accuracy.csv")
    assert set(accuracy.vb) == set(CONJUGATE) - {GIBBS} and set(accuracy.reference) == {GIBBS}
    report = (out / "report.md").read_text()
    time_section = report.split("\n## Time\n")[1].split("\n## ")[0]
    assert "| conjugate/cavi:block | random_intercept | " in time_section
    assert "![time against the number of groups](figures/time_vs_groups.png)" in time_section
    assert "### Time to accuracy" in time_section
    assert "random_intercept Q = 5: conjugate/gibbs (" in time_section
    assert "![time to accuracy](figures/time_to_accuracy.png)" in time_section
    for name in ("time_vs_groups", "time_to_accuracy"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5_000
    pictures = [*(out / "figures").glob("overlay_*"), *(out / "figures").glob("shrinkage_*")]
    figures = {path.name.split("-")[0] for path in pictures}
    assert figures == {"overlay_scale_q10_r20", "shrinkage_scale_q5_r20"}
