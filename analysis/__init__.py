"""VB/MCMC comparison from InferenceData alone: ratios, MCMC gate, tables and figures.

Imports xarray, pandas, scipy, matplotlib and ArviZ only (never numpyro, pymc or jax), so it
analyses any fit that follows the contract, including fits made outside vistudy.
"""

from analysis.figures import (
    plot_elbo,
    plot_overlay,
    plot_predictive,
    plot_published_vs_ours,
    plot_ratio_heatmap,
    plot_ratio_vs_groups,
    plot_shrinkage,
)
from analysis.gate import (
    GateResult,
    GateThresholds,
    mcmc_gate,
    reference_diagnostics,
    stamp_diagnostics,
)
from analysis.io import FitInfo, fit_info, load_fits, pair_fits
from analysis.predictive import (
    log_predictive_density,
    pointwise_log_likelihood,
    posterior_predictive,
    predictive_comparison,
)
from analysis.published import (
    compare_with_published,
    comparison_markdown,
    published_comparison,
    published_table,
    replicate_summary,
    side_by_side_markdown,
)
from analysis.ratios import (
    ratio_interval,
    sd_ratio,
    sd_with_se,
    summarise_vectors,
    variance_ratio,
)
from analysis.tables import (
    pair_rows,
    ratio_table,
    spread_table,
    to_markdown,
    wide_table,
    write_tables,
)
from analysis.timing import (
    accuracy_table,
    plot_time_to_accuracy,
    plot_time_vs_groups,
    time_to_accuracy,
    timing_summary,
    timing_table,
)
from analysis.verdicts import (
    VerdictThresholds,
    add_verdicts,
    psis_khat,
    summarise_verdicts,
    verdict,
)
from analysis.vsbc import plot_vsbc, vsbc_probabilities, vsbc_test

__all__ = [
    "FitInfo",
    "GateResult",
    "GateThresholds",
    "VerdictThresholds",
    "accuracy_table",
    "add_verdicts",
    "compare_with_published",
    "comparison_markdown",
    "fit_info",
    "load_fits",
    "log_predictive_density",
    "mcmc_gate",
    "stamp_diagnostics",
    "pair_fits",
    "pair_rows",
    "plot_elbo",
    "plot_overlay",
    "plot_predictive",
    "plot_published_vs_ours",
    "plot_ratio_heatmap",
    "plot_ratio_vs_groups",
    "plot_shrinkage",
    "plot_time_to_accuracy",
    "plot_time_vs_groups",
    "plot_vsbc",
    "pointwise_log_likelihood",
    "posterior_predictive",
    "predictive_comparison",
    "psis_khat",
    "published_comparison",
    "published_table",
    "ratio_interval",
    "ratio_table",
    "reference_diagnostics",
    "replicate_summary",
    "sd_ratio",
    "sd_with_se",
    "side_by_side_markdown",
    "summarise_vectors",
    "summarise_verdicts",
    "time_to_accuracy",
    "timing_summary",
    "timing_table",
    "spread_table",
    "to_markdown",
    "variance_ratio",
    "vsbc_probabilities",
    "vsbc_test",
    "verdict",
    "wide_table",
    "write_tables",
]
