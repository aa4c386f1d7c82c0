"""Plain-words verdicts: thresholds, the gate, k̂, vectors."""

import doctest

import arviz as az
import numpy as np
import pandas as pd
import pytest

import analysis
from analysis import verdicts
from analysis.verdicts import VerdictThresholds, add_verdicts, psis_khat, vector_verdict, verdict


def test_docstring_examples():
    result = doctest.testmod(verdicts, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_analysis_never_imports_a_ppl():
    import subprocess
    import sys

    code = (
        "import sys, analysis.verdicts; print(sorted({'numpyro', 'pymc', 'jax'} & {*sys.modules}))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "ratio, lo, hi, expected",
    [
        (1.0, 0.95, 1.05, "fine"),
        (0.85, 0.80, 0.90, "fine"),  # the interval touches [0.9, 1.1]
        (0.85, 0.80, 0.899, "too narrow"),
        (0.30, 0.25, 0.35, "too narrow"),
        (1.15, 1.101, 1.2, "too wide"),
        (1.15, 1.05, 1.25, "fine"),
        (float("nan"), float("nan"), float("nan"), "unreliable (no ratio)"),
    ],
)
def test_verdict_thresholds(ratio, lo, hi, expected):
    assert verdict(ratio, lo, hi) == expected


def test_unreliable_beats_everything_and_says_why():
    assert verdict(0.3, 0.2, 0.4, gate_ok=False).startswith("unreliable (reference failed")
    assert verdict(1.0, 0.9, 1.1, khat=0.71) == "unreliable (k̂ 0.71 > 0.7)"
    assert verdict(1.0, 0.9, 1.1, khat=0.69) == "fine"
    strict = VerdictThresholds(low=0.95, high=1.05, khat_max=0.5)
    assert verdict(0.9, 0.88, 0.93, thresholds=strict) == "too narrow"
    assert verdict(1.0, 0.9, 1.1, khat=0.6, thresholds=strict).startswith("unreliable")


def test_add_verdicts_reads_gate_and_khat_per_fit():
    table = pd.DataFrame(
        {
            "vb": ["a", "a", "b", "c"],
            "parameter": ["beta_0", "tau_u", "beta_0", "beta_0"],
            "ratio": [1.0, 0.5, 1.0, 1.0],
            "lo": [0.95, 0.45, 0.95, 0.95],
            "hi": [1.05, 0.55, 1.05, 1.05],
            "gate": ["ok", "ok", "ok", "FAIL: ESS 50 < 400"],
        }
    )
    out = add_verdicts(table, {"a": 0.2, "b": 0.9})
    assert out.verdict.tolist()[:2] == ["fine", "too narrow"]
    assert out.verdict[2].startswith("unreliable (k̂ 0.90")
    assert out.verdict[3] == "unreliable (reference failed the MCMC gate)"
    assert np.isnan(out.khat[3]) and out.khat[0] == 0.2
    assert "verdict" not in table  # a copy


def test_vectors_get_one_verdict():
    assert vector_verdict(["fine"] * 9 + ["too wide"]) == "fine"
    assert vector_verdict(["fine"] * 8 + ["too wide"] * 2) == "too wide"
    assert vector_verdict(["fine", "unreliable (no ratio)"]) == "unreliable (no ratio)"
    table = add_verdicts(
        pd.DataFrame(
            {
                "vb": ["a"] * 4,
                "variable": ["u"] * 4,
                "ratio": [0.5, 0.6, 1.0, 0.55],
                "lo": [0.45, 0.55, 0.95, 0.5],
                "hi": [0.55, 0.65, 1.05, 0.6],
                "gate": ["ok"] * 4,
            }
        )
    )
    summary = analysis.summarise_verdicts(table)
    assert summary[["n", "n_fine", "n_narrow", "verdict"]].values.tolist() == [
        [4, 1, 3, "too narrow"]
    ]


def test_psis_khat_from_any_group_or_absent():
    fit = az.from_dict(posterior={"tau_e": np.ones((1, 5))})
    assert psis_khat(fit) is None
    fit.posterior.attrs["psis_khat"] = "0.55"
    assert psis_khat(fit) == 0.55
    fit.posterior.attrs["psis_khat"] = float("nan")
    assert psis_khat(fit) is None


def test_thresholds_are_described_with_their_values():
    text = " ".join(VerdictThresholds(low=0.8).describe())
    assert "[0.8, 1.1]" in text and "0.7" in text and "90%" in text
