"""Which fits the report sets beside the published VI1 table."""

import doctest

import pandas as pd

import study.report
from study.report import published_like


def test_only_boston_and_simulated_grouped_data_meet_the_published_table():
    rows = pd.DataFrame(
        {
            "model": ["linear", "linear", "linear", "random_intercept", "logistic_random_intercept"]
            + ["random_intercept"] * 3,
            "dataset": [
                "boston",  # M1 of the VI1 table
                "sim_n40",  # M1 on simulated data: not what the table reports
                "gcse_3425402b",  # your own table
                "sim_q10_r20",
                "sim_q100_n300",
                "vague_q5_r20",  # a named simulated scenario
                "gcse_3425402b",  # your own table with 10 groups is not M0_Q10
                "exam",  # a real data set
            ],
        }
    )
    kept = published_like(rows).dataset.tolist()
    assert kept == ["boston", "sim_q10_r20", "sim_q100_n300", "vague_q5_r20"]


def test_the_report_docstring_examples_run():
    assert doctest.testmod(study.report, optionflags=doctest.ELLIPSIS).failed == 0


def test_the_family_table_goes_design_by_design_in_the_vi1_order():
    scenarios = [  # (label, design, n_groups), in the tidy table's order
        ("M1", "boston", 0),
        ("M3_Q100", "sim_n300", 100),
        ("M0_Q100", "sim_n300", 100),
        ("M0_Q100", "sim_r20", 100),
        ("M0_Q10", "sim_n300", 10),
        ("M0_Q5", "sim_r20", 5),
        ("M0_Q5", "sim_n300", 5),
    ]
    rows = pd.DataFrame(
        [
            {"label": label, "design": design, "n_groups": q, "parameter": "tau_u"}
            | {"vb_family": family, "ratio": 0.5, "khat": 0.7}
            for label, design, q in scenarios
            for family in ("mean_field", "block")
        ]
    )
    table = study.report._family_table(rows, ["mean_field", "block"])
    order = [line.split(" | ")[0].removeprefix("| ") for line in table.splitlines()[2:]]
    assert order == [
        "M0_Q5 sim_n300",
        "M0_Q10 sim_n300",
        "M0_Q100 sim_n300",
        "M3_Q100 sim_n300",
        "M0_Q5 sim_r20",
        "M0_Q100 sim_r20",
        "M1",
    ]
