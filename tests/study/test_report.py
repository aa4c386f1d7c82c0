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
