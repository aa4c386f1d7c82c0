"""Time and time to accuracy from fits' attrs (`analysis.timing`), on synthetic fits."""

import doctest

import numpy as np
import pandas as pd
import pytest

from analysis import ratio_table
from analysis import timing as timing_module
from analysis.timing import (
    ACCURACY_COLUMNS,
    TIMING_COLUMNS,
    accuracy_table,
    log_log_slope,
    plot_time_to_accuracy,
    plot_time_vs_groups,
    time_to_accuracy,
    timing_markdown,
    timing_summary,
    timing_table,
)

GIBBS = "conjugate/gibbs"
Z90 = 1.6448536269514722


def _timed(fit, compile_s, run_s, khat=None):
    attrs = fit.posterior.attrs
    q = attrs["n_groups"]
    attrs.update(
        compile_time_s=compile_s,
        run_time_s=run_s,
        n_obs=20 * q,
        dataset=f"scale_q{q}_r20",
        role={"advi": "vb", "cavi": "vb"}.get(attrs["method"], "mcmc"),
    )
    if khat is not None:
        attrs["psis_khat"] = khat
    return fit


@pytest.fixture
def study_fits(fit_factory):
    """At Q = 10 and 100: mean-field CAVI (SD 0.5 of the truth's), NUTS (SD 1) and Gibbs (SD 1),
    run time growing like Q for CAVI and like Q^1.5 for NUTS."""
    fits = []
    for q in (10, 100):
        rng = np.random.default_rng(q)
        for backend, method, sd, compile_s, run_s in (
            ("conjugate", "cavi", 0.5, 0.0, 0.001 * q),
            ("numpyro", "nuts", 1.0, 4.0, 0.01 * q**1.5),
            ("conjugate", "gibbs", 1.0, 0.0, 0.002 * q),
        ):
            fit = fit_factory(
                backend=backend,
                method=method,
                n_groups=q,
                sd=sd,
                seed=1,
                rng=rng,
                family="mean_field" if method == "cavi" else None,
                chains=1 if method == "cavi" else 4,
                draws=4000 if method == "cavi" else 2000,
            )
            fits.append(_timed(fit, compile_s, run_s, khat=0.9 if method == "cavi" else None))
    return fits


def test_timing_table_reads_compile_and_run_time_of_every_fit(study_fits):
    table = timing_table(study_fits)
    assert list(table.columns) == TIMING_COLUMNS and len(table) == 6
    nuts = table[table.label == "numpyro/nuts"].set_index("n_groups")
    assert nuts.loc[100, "compile_s"] == 4.0
    assert nuts.loc[100, "total_s"] == pytest.approx(4.0 + 0.01 * 100**1.5)
    assert set(table[table.role == "mcmc"].gate) == {"ok"}
    cavi = table[table.label == "conjugate/cavi:mean_field"]
    assert set(cavi.gate) == {""} and set(cavi.khat) == {0.9}
    assert set(cavi.n_obs) == {200, 2000} and set(cavi.design) == {"scale_r20"}
    assert set(timing_table(study_fits, gate=False).gate) == {""}


def test_a_reference_fitted_again_costs_the_fits_it_replaced_too(study_fits):
    gibbs = next(f for f in study_fits if f.posterior.attrs["method"] == "gibbs")
    gibbs.posterior.attrs["gate_discarded_s"] = 0.5
    table = timing_table(study_fits).set_index(["label", "n_groups"])
    assert table.loc[(GIBBS, gibbs.posterior.attrs["n_groups"]), "discarded_s"] == 0.5
    assert table.loc[(GIBBS, gibbs.posterior.attrs["n_groups"]), "total_s"] == pytest.approx(
        0.5 + gibbs.posterior.attrs["run_time_s"]
    )
    assert (table.drop(index=(GIBBS, gibbs.posterior.attrs["n_groups"])).discarded_s == 0).all()
    assert " + 0.500 discarded" in timing_markdown(timing_summary(timing_table(study_fits)))


def test_timing_table_names_a_missing_time(study_fits):
    del study_fits[0].posterior.attrs["run_time_s"]
    with pytest.raises(ValueError, match="run_time_s"):
        timing_table(study_fits)


def test_timing_summary_takes_the_median_over_seeds_and_the_worst_gate(study_fits, fit_factory):
    failed = _timed(fit_factory(n_groups=10, seed=2, diverging=3), 6.0, 3.0)
    summary = timing_summary(timing_table([*study_fits, failed]))
    row = summary[(summary.label == "numpyro/nuts") & (summary.n_groups == 10)].iloc[0]
    assert row.fits == 2 and row.compile_s == 5.0
    assert row.run_s == pytest.approx((0.01 * 10**1.5 + 3.0) / 2)
    assert row.gate == "FAIL: 3 divergences"


def test_accuracy_is_the_sd_error_against_the_reference(study_fits):
    tidy = ratio_table(study_fits, [("conjugate/cavi", GIBBS), ("numpyro/nuts", GIBBS)])
    accuracy = accuracy_table(tidy, [GIBBS])
    assert list(accuracy.columns) == ACCURACY_COLUMNS
    assert set(accuracy.parameter) == {"beta_0", "tau_u", "u"}
    assert set(accuracy.reference) == {GIBBS} and set(accuracy.reference_gate) == {"ok"}
    rows = tidy[tidy.parameter.isin(["beta_0", "tau_u"])]
    se_log = np.log(rows.hi / rows.lo) / (2 * Z90)
    expected = np.where(rows.vb == "numpyro/nuts", 1.0, 0.5)
    assert (np.abs(np.log(rows.ratio / expected)) < 5 * se_log).all()
    cavi = accuracy[accuracy.vb == "conjugate/cavi:mean_field"]
    se_ratio = cavi.noise / Z90 * 0.5  # noise: the 90 % half-width of log(ratio)
    assert (np.abs(cavi.error - 0.5) < 5 * se_ratio).all()
    nuts = accuracy[accuracy.vb == "numpyro/nuts"]
    assert (nuts.error < 5 * nuts.noise / Z90).all()  # NUTS and Gibbs agree up to MC noise
    u = accuracy[(accuracy.parameter == "u") & (accuracy.vb == "conjugate/cavi:mean_field")]
    assert len(u) == 2  # one median over the u_j per fit


def test_accuracy_prefers_the_first_reference_that_passed_the_gate():
    def rows(reference, gate, ratio):
        return {
            "vb": "a/b:mean_field",
            "reference": reference,
            "gate": gate,
            "model": "m",
            "dataset": "d_q10_r20",
            "n_groups": 10,
            "seed": 1,
            "parameter": "beta_0",
            "variable": "beta",
            "ratio": ratio,
            "lo": ratio * 0.9,
            "hi": ratio / 0.9,
        }

    tidy = pd.DataFrame([rows("x/nuts", "FAIL: R-hat", 0.7), rows(GIBBS, "ok", 0.6)])
    chosen = accuracy_table(tidy, ["x/nuts", GIBBS])
    assert chosen.reference.tolist() == [GIBBS] and chosen.error.tolist() == [pytest.approx(0.4)]
    tidy.loc[0, "gate"] = "ok"
    assert accuracy_table(tidy, ["x/nuts", GIBBS]).reference.tolist() == ["x/nuts"]
    tidy.gate = "FAIL: R-hat"  # none passed: the first one compared, marked by its gate
    failed = accuracy_table(tidy, ["x/nuts", GIBBS])
    assert failed.reference.tolist() == ["x/nuts"] and failed.reference_gate.iloc[0] != "ok"
    assert accuracy_table(tidy, ["other/ref"]).empty
    assert accuracy_table(tidy.iloc[:0], [GIBBS]).empty


def test_figures_are_log_log_with_one_line_per_method(study_fits):
    timing = timing_table(study_fits)
    fig = plot_time_vs_groups(timing)
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert len(ax.get_lines()) == 2 * 3  # run (solid) and total (dashed) per method
    labels = ax.get_legend_handles_labels()[1]
    assert "conjugate/cavi:mean_field (1.00)" in labels
    styles = {line.get_linestyle() for line in ax.get_lines()}
    assert styles == {"-", "--"}
    tidy = ratio_table(study_fits, [("conjugate/cavi", GIBBS), ("numpyro/nuts", GIBBS)])
    merged = time_to_accuracy(timing, accuracy_table(tidy, [GIBBS]))
    assert len(merged) == 2 * 2 * 3 and merged.total_s.notna().all()
    fig = plot_time_to_accuracy(merged)
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["beta_0", "tau_u", "u (median)"]
    assert fig.axes[0].get_xscale() == fig.axes[0].get_yscale() == "log"


def test_log_log_slope_of_a_power_law():
    q = np.array([10, 100, 1000, 10_000])
    assert log_log_slope(q, 3e-4 * q**1.3) == pytest.approx(1.3)
    assert np.isnan(log_log_slope([10], [1.0]))


def test_docstring_examples():
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    assert doctest.testmod(timing_module, optionflags=flags).failed == 0
