"""The MCMC gate, and the tidy and VI1-layout tables."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis import (
    GateThresholds,
    compare_with_published,
    mcmc_gate,
    published_table,
    ratio_table,
    side_by_side_markdown,
    to_markdown,
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
    exact = fit_factory(model="linear", backend="conjugate", method="exact", chains=1, draws=10)
    assert mcmc_gate(exact).passed


def _study_fits(fit_factory):
    fits = []
    rng = np.random.default_rng(0)
    for model in ("random_intercept", "random_intercept_nc", "logistic_random_intercept"):
        for q in (5, 10, 20, 50, 100):
            fits.append(
                fit_factory(
                    model=model,
                    backend="conjugate",
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
                    model=model, backend="conjugate", method="gibbs", n_groups=q, draws=300, rng=rng
                )
            )
    fits.append(
        fit_factory(
            model="linear", backend="conjugate", method="cavi", sd=0.5, chains=1, draws=400, rng=rng
        )
    )
    fits.append(
        fit_factory(
            model="linear", backend="conjugate", method="gibbs", draws=300, rng=rng, diverging=1
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
    assert {"ratios_tidy.csv", "ratios_vectors.csv"} <= names
    vectors = pd.read_csv(tmp_path / "ratios_vectors.csv")
    assert set(vectors.label) == {r for r in VI1_ROWS if r != "M1"} and set(vectors.variable) == {
        "u"
    }
    markdown = (tmp_path / "ratios_wide_conjugate-cavi.block_vs_conjugate-gibbs.md").read_text()
    assert "| M0_Q5 |" in markdown and "**0." in markdown and "| M1 † |" in markdown
    reread = pd.read_csv(
        tmp_path / "ratios_wide_conjugate-cavi.block_vs_conjugate-gibbs.csv", index_col="Model"
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
    assert set(long[long.row == "M1"].reference_gate) == {"FAIL: 1 divergences"}
    markdown = side_by_side_markdown(wide).splitlines()
    assert markdown[0].endswith("| sigma2_u | MCMC gate |") and len(markdown) == 2 + 16
    m1 = next(line for line in markdown if line.startswith("| M1 |"))
    assert m1.endswith("| † FAIL: 1 divergences |") and "** (1.00)" in m1  # ours ≈ 0.5, bold


def test_folder_of_netcdf_files(fit_factory, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for i, fit in enumerate(_study_fits(fit_factory)[:4]):
        fit.to_netcdf(str(runs / f"fit{i}.nc"))
    (runs / ".half.nc.123.tmp").write_bytes(b"partial")
    tidy = ratio_table(tmp_path)
    assert set(tidy.n_groups) == {5, 10}


def test_reference_diagnostics_are_per_element_and_reach_the_tidy_table(fit_factory):
    from analysis import reference_diagnostics

    rng = np.random.default_rng(8)
    ref = fit_factory(n_groups=3, draws=500, rng=rng)
    ref.posterior["u"][0, :, 2] = 5.0  # one chain of u_2 stuck far away
    diagnostics = reference_diagnostics(ref, ["beta", "u", "tau_u"])
    assert list(diagnostics.parameter) == [
        *("beta_0", "beta_1", "beta_2"),
        *("u_0", "u_1", "u_2"),
        "tau_u",
    ]
    worst = diagnostics.set_index("parameter").rhat
    assert worst["u_2"] > 1.5 and (worst.drop("u_2") < 1.01).all()
    vb = fit_factory(method="advi", n_groups=3, chains=1, draws=500, rng=rng)
    tidy = ratio_table([vb, ref], [("numpyro/advi", "numpyro/nuts")])
    rows = tidy.set_index("parameter")
    assert rows.at["u_2", "rhat"] == worst["u_2"] and rows.at["u_0", "rhat"] < 1.01
    assert (tidy.gate == tidy.gate[0]).all() and tidy.gate[0].startswith("FAIL: R-hat")
    exact = fit_factory(model="linear", backend="conjugate", method="exact", chains=1)
    assert reference_diagnostics(exact)[["rhat", "ess_bulk"]].isna().all().all()


@pytest.mark.parametrize("failure", ["stuck chain", "low ESS", "divergences"])
def test_a_failing_reference_is_flagged_in_every_table(fit_factory, tmp_path, failure):
    rng = np.random.default_rng(9)
    vb = fit_factory(method="advi", chains=1, draws=500, sd=0.5, rng=rng)
    ref = fit_factory(
        rng=rng, draws=60 if failure == "low ESS" else 500, diverging=2 * (failure == "divergences")
    )
    if failure == "stuck chain":
        ref.posterior["tau_u"][1] = ref.posterior["tau_u"][1] * 0.01 + 3.0
    pair = ("numpyro/advi", "numpyro/nuts")
    tidy = ratio_table([vb, ref], [pair])
    reason = {"stuck chain": "R-hat", "low ESS": "ESS", "divergences": "2 divergences"}[failure]
    assert tidy.gate.str.startswith("FAIL").all() and tidy.gate.str.contains(reason).all()
    wide = wide_table(tidy, *pair)
    assert wide.at["M0_Q5", "reference_gate"].startswith("FAIL")
    assert "| M0_Q5 † |" in to_markdown(wide)
    write_tables(tidy, tmp_path, [pair])
    assert (
        "M0_Q5 †"
        in (tmp_path / "ratios_wide_numpyro-advi.mean_field_vs_numpyro-nuts.md").read_text()
    )
    assert "FAIL" in (tmp_path / "ratios_tidy.csv").read_text()


def test_wide_table_options_and_errors(fit_factory):
    rng = np.random.default_rng(10)
    fits = []
    for dataset in ("sim_n200", "boston"):
        for method, sd, chains in (("cavi", 0.5, 1), ("gibbs", 1.0, 4)):
            fits.append(
                fit_factory(
                    model="linear",
                    backend="conjugate",
                    method=method,
                    sd=sd,
                    chains=chains,
                    draws=400,
                    rng=rng,
                    dataset=dataset,
                )
            )
    tidy = ratio_table(fits)
    wide = wide_table(tidy)  # two data sets share the row name M1: never averaged together
    assert list(wide.index) == ["M1 [boston]", "M1 [sim_n200]"]
    assert list(wide_table(tidy, dataset="boston").index) == ["M1"]
    variances = wide_table(tidy, dataset="boston", value="var_ratio")
    ratios = wide_table(tidy, dataset="boston")
    np.testing.assert_allclose(variances.beta_0, ratios.beta_0**2)
    with pytest.raises(ValueError, match="value: 'nope' is not a column"):
        wide_table(tidy, value="nope")
    with pytest.raises(ValueError, match="vb: expected 'backend/method'"):
        wide_table(tidy, "cavi")
    empty = wide_table(ratio_table([], [("numpyro/advi", "numpyro/nuts")]))
    assert list(empty.index) == list(VI1_ROWS) and (empty.reference_gate == "no fit").all()


def test_reference_diagnostics_are_computed_once_per_set_of_draws(fit_factory, monkeypatch):
    import arviz as az

    from analysis import gate, reference_diagnostics

    calls = []
    compute = gate._compute_diagnostics
    monkeypatch.setattr(
        gate, "_compute_diagnostics", lambda post, name: calls.append(name) or compute(post, name)
    )
    ref = fit_factory(n_groups=4, draws=400, rng=np.random.default_rng(12))
    first = reference_diagnostics(ref, ["u", "tau_u"])
    assert reference_diagnostics(ref, ["u", "tau_u"]).equals(first)
    assert mcmc_gate(ref, ["u", "tau_u"]).passed == mcmc_gate(ref, ["u", "tau_u"]).passed
    assert sorted(calls) == ["tau_u", "u"]  # tables, figures and gate share one computation
    direct = az.ess(ref.posterior[["u"]], method="bulk")["u"].values
    np.testing.assert_array_equal(first.ess_bulk[:4], direct)
    ref.posterior["u"][0, :, 1] = 5.0  # changed draws are never served stale diagnostics
    changed = reference_diagnostics(ref, ["u", "tau_u"]).set_index("parameter").rhat
    assert changed["u_1"] > 1.5 and calls.count("u") == 2


def test_m2_is_compared_with_the_m0_reference_of_the_same_data(fit_factory):
    """One posterior is sampled once: M2's VB fit pairs with M0's reference of its data set,
    never with another data set's, and M2's own reference wins when it has one."""
    m2_vb = fit_factory("random_intercept_nc", method="advi", sd=0.5, seed=1)
    m0_ref = fit_factory("random_intercept", seed=1)
    other_data = fit_factory("random_intercept", seed=2)
    tidy = ratio_table([m2_vb, m0_ref, other_data], [("numpyro/advi", "numpyro/nuts")])
    assert set(tidy.label) == {"M2_Q5"} and set(tidy.seed) == {1}
    assert tidy.ratio.between(0.4, 0.6).all()
    m2_ref = fit_factory("random_intercept_nc", seed=1, sd=0.5)
    tidy = ratio_table([m2_vb, m0_ref, m2_ref], [("numpyro/advi", "numpyro/nuts")])
    assert tidy.ratio.between(0.9, 1.1).all()
    assert ratio_table([m2_vb, other_data], [("numpyro/advi", "numpyro/nuts")]).empty


def test_m2_is_never_compared_with_an_m0_reference_of_other_priors_or_data(fit_factory):
    m2_vb = fit_factory("random_intercept_nc", method="advi", seed=1)
    m0_ref = fit_factory("random_intercept", seed=1)
    for fit in (m2_vb, m0_ref):
        fit.add_groups(observed_data=xr.Dataset({"y": ("obs", np.arange(6.0))}))
        fit.posterior.attrs["priors"] = '{"a_u": 0.01}'
    assert len(ratio_table([m2_vb, m0_ref], [("numpyro/advi", "numpyro/nuts")]))
    m0_ref.posterior.attrs["priors"] = '{"a_u": 1.0}'
    assert ratio_table([m2_vb, m0_ref], [("numpyro/advi", "numpyro/nuts")]).empty
    m0_ref.posterior.attrs["priors"] = '{"a_u": 0.01}'
    m0_ref.observed_data["y"] = m0_ref.observed_data["y"] + 1.0
    assert ratio_table([m2_vb, m0_ref], [("numpyro/advi", "numpyro/nuts")]).empty


def test_stamped_diagnostics_are_read_back_for_the_same_draws_only(
    fit_factory, monkeypatch, tmp_path
):
    """A study stamps ESS/R-hat into its MCMC fits; its report reads them from the file."""
    import arviz as az

    from analysis import gate, reference_diagnostics, stamp_diagnostics

    ref = fit_factory(n_groups=4, draws=400, rng=np.random.default_rng(13))
    expected = reference_diagnostics(ref)
    stamp_diagnostics(ref)
    ref.to_netcdf(tmp_path / "ref.nc")
    gate._CACHE.clear()
    calls = []
    compute = gate._compute_diagnostics
    monkeypatch.setattr(
        gate, "_compute_diagnostics", lambda post, name: calls.append(name) or compute(post, name)
    )
    read = az.from_netcdf(tmp_path / "ref.nc")
    pd.testing.assert_frame_equal(reference_diagnostics(read), expected)
    assert calls == []
    read.posterior["u"][0, :, 1] = 5.0  # the stamp no longer describes these draws
    assert reference_diagnostics(read).set_index("parameter").rhat["u_1"] > 1.5
    assert calls == ["u"]
