"""The MCMC gate, and the tidy and VI1-layout tables."""

import numpy as np
import pandas as pd

from analysis import (
    GateThresholds,
    compare_with_published,
    mcmc_gate,
    published_table,
    ratio_table,
    wide_table,
    write_tables,
)
from analysis.tables import VI1_ROWS, WIDE_COLUMNS


def test_gate_passes_good_and_flags_bad_references(fit_factory):
    assert mcmc_gate(fit_factory()).passed
    stuck = fit_factory()
    stuck.posterior["tau_u"][0] = 3.0  # one chain stuck at a point
    result = mcmc_gate(stuck)
    assert not result.passed and any("R-hat" in r for r in result.reasons)
    short = fit_factory(draws=60)
    assert any("ESS" in r for r in mcmc_gate(short).reasons)
    divergent = fit_factory(diverging=3)
    assert mcmc_gate(divergent).reasons == ("3 divergences",)
    assert mcmc_gate(divergent, thresholds=GateThresholds(max_divergences=5)).passed
    single = fit_factory(chains=1, draws=4000)
    assert "single chain" in mcmc_gate(single).label
    exact = fit_factory(model="linear", backend="reference", method="exact", chains=1, draws=10)
    assert mcmc_gate(exact).passed


def _study_fits(fit_factory):
    fits = []
    rng = np.random.default_rng(0)
    for model in ("random_intercept", "random_intercept_nc", "logistic_random_intercept"):
        for q in (5, 10, 20, 50, 100):
            fits.append(
                fit_factory(
                    model=model,
                    backend="reference",
                    method="cavi",
                    n_groups=q,
                    sd=0.5,
                    chains=1,
                    draws=400,
                    rng=rng,
                )
            )
            fits.append(
                fit_factory(
                    model=model, backend="reference", method="gibbs", n_groups=q, draws=300, rng=rng
                )
            )
    fits.append(
        fit_factory(
            model="linear", backend="reference", method="cavi", sd=0.5, chains=1, draws=400, rng=rng
        )
    )
    fits.append(
        fit_factory(
            model="linear", backend="reference", method="gibbs", draws=300, rng=rng, diverging=1
        )
    )
    return fits


def test_tidy_and_wide_tables_follow_the_vi1_layout(fit_factory, tmp_path):
    tidy = ratio_table(_study_fits(fit_factory))
    assert {
        "model",
        "dataset",
        "n_groups",
        "parameter",
        "scale",
        "vb_backend",
        "vb_method",
        "ref_backend",
        "ref_method",
        "sd_vb",
        "sd_ref",
        "ratio",
        "lo",
        "hi",
        "gate",
    } <= set(tidy.columns)
    wide = wide_table(tidy)
    assert list(wide.index) == list(VI1_ROWS)
    assert list(wide.columns) == [*WIDE_COLUMNS, "reference_gate"]
    published = published_table()
    values = wide[list(WIDE_COLUMNS)]
    # NA pattern: M1 has no tau_u, M3 has no tau_e; ours also fills the variance columns
    for row in published.index:
        for column in ("beta_0", "tau_e", "tau_u"):
            assert pd.isna(values.at[row, column]) == pd.isna(published.at[row, column]), (
                row,
                column,
            )
    assert pd.isna(values.at["M1", "sigma2_u"]) and pd.isna(values.at["M3_Q5", "sigma2_e"])
    assert (
        wide.at["M1", "reference_gate"].startswith("FAIL")
        and wide.at["M0_Q5", "reference_gate"] != ""
    )
    paths = write_tables(tidy, tmp_path)
    names = {p.name for p in paths}
    assert "ratios_tidy.csv" in names
    markdown = (tmp_path / "ratios_wide_reference-cavi_vs_reference-gibbs.md").read_text()
    assert "| M0_Q5 |" in markdown and "**0." in markdown and "| M1 † |" in markdown
    reread = pd.read_csv(
        tmp_path / "ratios_wide_reference-cavi_vs_reference-gibbs.csv", index_col="Model"
    )
    assert list(reread.index) == list(VI1_ROWS)


def test_published_table_and_comparison(fit_factory):
    published = published_table()
    assert published.shape == (16, 8)
    assert published.at["M0_Q100", "tau_u"] == 0.138 and published.at["M3_Q10", "tau_u"] == 0.002
    wide = wide_table(ratio_table(_study_fits(fit_factory)))
    long = compare_with_published(wide)
    assert len(long) == 16 * len(WIDE_COLUMNS)
    row = long[(long.row == "M0_Q5") & (long.parameter == "tau_u")].iloc[0]
    assert row.published == 0.812 and np.isfinite(row.ours)


def test_folder_of_netcdf_files(fit_factory, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for i, fit in enumerate(_study_fits(fit_factory)[:4]):
        fit.to_netcdf(str(runs / f"fit{i}.nc"))
    (runs / ".half.nc.123.tmp").write_bytes(b"partial")
    tidy = ratio_table(tmp_path)
    assert set(tidy.n_groups) == {5, 10}
