"""`vistudy reproduce` (tiny settings) writes every promised file."""

import re

import pandas as pd
import pytest

from analysis.tables import VI1_ROWS, WIDE_COLUMNS
from study.cli import main
from study.reproduce import reproduction_study
from study.runs import expand

PAIRS = (
    "conjugate-cavi.block_vs_conjugate-gibbs",
    "numpyro-advi.mean_field_vs_numpyro-nuts",
    "numpyro-advi.block_vs_numpyro-nuts",
    "pymc-advi.mean_field_vs_pymc-nuts",
    "pymc-advi.block_vs_pymc-nuts",
)


def test_the_reproduction_runs_every_pair_of_the_issue():
    """The card's pairs, the published pair (M2 rows from block ADVI), block ADVI, replicates."""
    config = reproduction_study()
    labels = {fit.label for fit in config.fits}
    assert {
        "numpyro/advi:mean_field",
        "numpyro/advi:block",
        "pymc/advi:mean_field",
        "pymc/advi:block",
        "numpyro/nuts",
        "pymc/nuts",
        "conjugate/cavi:block",
        "conjugate/gibbs",
    } <= labels
    main_models = {model for rows in config.main for model in rows.models}
    assert main_models >= {"random_intercept", "random_intercept_nc", "logistic_random_intercept"}
    runs = expand(config)
    designs = {run.data_tag.split("_", 2)[-1] for run in runs if run.n_groups}
    assert designs == {"n300", "r20"}
    m2_block = [r for r in runs if r.label == "numpyro/advi:block" and r.model.endswith("_nc")]
    assert {r.seed for r in m2_block} == set(config.seeds)


@pytest.mark.slow
def test_reproduce_writes_every_promised_file(tmp_path):
    out = tmp_path / "results"
    assert main(["reproduce", "--tiny", "--jobs", "1", "--out", str(out)]) == 0
    runs = sorted(p.name for p in (out / "runs").glob("*.nc"))
    assert len(runs) == len(expand(reproduction_study(tiny=True)))
    tables = out / "tables"
    assert (tables / "ratios_tidy.csv").stat().st_size > 0
    figures = out / "figures"
    for pair in PAIRS:
        wide = pd.read_csv(tables / f"ratios_wide_{pair}.csv", index_col="Model")
        assert set(wide.columns) >= set(WIDE_COLUMNS)
        assert {row.split(" [")[0] for row in wide.index} <= set(VI1_ROWS)
        assert (tables / f"ratios_wide_{pair}.md").read_text().startswith("SD ratio")
        assert list(figures.glob(f"ratio_vs_groups_{pair}*.png"))
        assert list(figures.glob(f"heatmap_{pair}*.png"))
    report = (out / "report.md").read_text()
    for design in ("sim_n300", "sim_r20"):
        assert f"## Published vs ours, design `{design}`" in report
        assert f"![published vs ours](figures/published_vs_ours_{design}.png)" in report
        assert (figures / f"published_vs_ours_{design}.png").stat().st_size > 5_000
    assert "| M0_Q5 | " in report and "(0.81)" in report  # ours next to the published value
    assert "| M2_Q5 | " in report.split("design `sim_n300`")[1].split("## ")[0]
    assert "300 rows in all" in report and "20 rows per group" in report
    assert "## MCMC gate" in report
    # every ratio of every pair with its uncertainty: "| M0_Q5 † | **0.123** [0.101–0.145] | ..."
    every_pair = report.split("## Every pair")[1].split("## MCMC gate")[0]
    m0_q5 = [line for line in every_pair.splitlines() if line.startswith("| M0_Q5")]
    assert m0_q5 and all(re.search(r"\d\.\d{3}\*{0,2} \[\d\.\d{3}–\d\.\d{3}\]", r) for r in m0_q5)
    # running again does no work and still exits 0
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.nc")}
    assert main(["reproduce", "--tiny", "--jobs", "1", "--out", str(out), "--no-report"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.nc")} == before


def test_tiny_sizes_override_the_packaged_settings_and_keep_the_rest():
    """The packaged NumPyro NUTS of the Gaussian models samples them centred on the intercept
    at target acceptance 0.95 with the default draws: --tiny shrinks the draws and keeps the
    rest."""

    def gaussian_fits(config):
        return {f.label: f for f in config.fits if "random_intercept" in f.models}

    full, tiny = gaussian_fits(reproduction_study()), gaussian_fits(reproduction_study(tiny=True))
    packaged = {"centring": "centred", "intercept_centring": True, "target_accept": 0.95}
    assert full["numpyro/nuts"].settings == packaged
    assert tiny["numpyro/nuts"].settings["num_draws"] == 100
    assert {key: tiny["numpyro/nuts"].settings[key] for key in packaged} == packaged
