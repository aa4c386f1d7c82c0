"""`vistudy reproduce` (tiny settings) writes every promised file."""

import pandas as pd

from analysis.tables import VI1_ROWS, WIDE_COLUMNS
from study.cli import main


def test_reproduce_writes_every_promised_file(tmp_path):
    out = tmp_path / "results"
    assert main(["reproduce", "--tiny", "--jobs", "1", "--out", str(out)]) == 0
    runs = sorted(p.name for p in (out / "runs").glob("*.nc"))
    assert len(runs) == 3 * 6 - 1 + 7  # M0, M2 (no CAVI), M3 at Q=5 x fits, M1 x 7 fits
    tables = out / "tables"
    assert (tables / "ratios_tidy.csv").stat().st_size > 0
    for pair in (
        "reference-cavi_vs_reference-gibbs",
        "numpyro-advi_vs_numpyro-nuts",
        "pymc-advi_vs_pymc-nuts",
    ):
        wide = pd.read_csv(tables / f"ratios_wide_{pair}.csv", index_col="Model")
        assert set(wide.columns) >= set(WIDE_COLUMNS) and set(wide.index) <= set(VI1_ROWS)
        assert (tables / f"ratios_wide_{pair}.md").read_text().startswith("SD ratio")
        figures = out / "figures"
        assert (figures / f"ratio_vs_groups_{pair}.png").stat().st_size > 5_000
        assert (figures / f"heatmap_{pair}.png").stat().st_size > 5_000
    overlays = list((out / "figures").glob("overlay_sim_q5-*.png"))
    assert len(overlays) == 3 + 3 + 2  # per model: numpyro, pymc pairs; CAVI/Gibbs for M0, M3
    report = (out / "report.md").read_text()
    assert "| M0_Q5 |" in report and "(0.81)" in report  # ours next to the published value
    assert "figures/heatmap_reference-cavi_vs_reference-gibbs.png" in report
    assert "20 rows per group" in report
    # running again does no work and still exits 0
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.nc")}
    assert main(["reproduce", "--tiny", "--jobs", "1", "--out", str(out), "--no-report"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.nc")} == before
