"""Tables, figures and ``report.md`` of a results folder (built with `analysis` only)."""

from __future__ import annotations

import logging
import multiprocessing
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

import analysis
from analysis.figures import save
from analysis.io import fit_info
from analysis.tables import (
    DEFAULT_PAIRS,
    SPREAD_LEGEND,
    VI1_ROWS,
    label_slug,
    plain_markdown,
)
from analysis.timing import accuracy_markdown, format_seconds, timing_markdown
from study.config import MainRows, StudyConfig
from study.runner import read_failures

logger = logging.getLogger(__name__)

TABLES_DIR, FIGURES_DIR = "tables", "figures"
MAIN_PAIR = ("conjugate/cavi:block", "conjugate/gibbs")


def _pairs(config: StudyConfig | None) -> Sequence[tuple[str, str]]:
    return config.compare if config is not None and config.compare else DEFAULT_PAIRS


def _slug(pair: tuple[str, str]) -> str:
    return f"{label_slug(pair[0])}_vs_{label_slug(pair[1])}"


def write_tables(
    out: Path, config: StudyConfig | None = None, tidy: pd.DataFrame | None = None
) -> list[Path]:
    """Tidy and wide ratio tables of every compared pair, CSV and Markdown, in ``out/tables``."""
    if tidy is None:
        tidy = analysis.ratio_table(Path(out), _pairs(config))
    return analysis.write_tables(tidy, Path(out) / TABLES_DIR, _pairs(config))


def write_figures(
    out: Path,
    config: StudyConfig | None = None,
    fits: list | None = None,
    tidy: pd.DataFrame | None = None,
    jobs: int = 1,
) -> list[Path]:
    """Ratio-vs-Q and heatmap per pair, overlays and shrinkage of the largest-Q scenarios,
    drawn by ``jobs`` processes (`draw_figures`)."""
    out = Path(out)
    folder = out / FIGURES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    fits = analysis.load_fits(out) if fits is None else fits
    tidy = analysis.ratio_table(fits, _pairs(config)) if tidy is None else tidy
    tasks: list[FigureTask] = []
    for pair in _pairs(config):
        rows = analysis.pair_rows(tidy, *pair)
        designs = _designs(rows)
        for design in designs or [None]:
            suffix = _design_suffix(design) if len(designs) > 1 else ""
            title = f"SD ratio {pair[0]} / {pair[1]}" + (f", {design}" if suffix else "")
            if designs:
                draw = partial(
                    analysis.plot_ratio_vs_groups,
                    tidy,
                    vb=pair[0],
                    reference=pair[1],
                    design=design,
                )
                tasks.append((draw, folder / f"ratio_vs_groups_{_slug(pair)}{suffix}.png"))
            draw = partial(_heatmap, tidy, pair, design, title)
            tasks.append((draw, folder / f"heatmap_{_slug(pair)}{suffix}.png"))
    tasks += _largest_q_figures(fits, _pairs(config), folder)
    return draw_figures(tasks, jobs)


FigureTask = tuple[Callable[[], Any], Path]
"""A figure to draw (a function returning it) and the file to save it in."""
_TASKS: list[FigureTask] = []


def draw_figures(tasks: Sequence[FigureTask], jobs: int = 1) -> list[Path]:
    """Draw and save every figure; with ``jobs > 1``, in that many forked processes.

    Drawing and writing PNGs is most of a report (the VI1 reproduction's 67 figures: 18 s in one
    process). Forked children share the loaded fits with this process, so nothing is pickled
    but the paths; where this process may not fork (`can_fork`), it draws them all itself.

    Returns
    -------
    list of Path
        The files written, in the order of ``tasks``.
    """
    if jobs <= 1 or len(tasks) < 2 or not can_fork():
        if jobs > 1:
            logger.info("figures drawn in this process: it cannot fork (threads or JAX in it)")
        return [_saved(draw(), path) for draw, path in tasks]
    global _TASKS
    _TASKS = list(tasks)
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(min(jobs, len(tasks)), initializer=_default_sigterm) as pool:
            return pool.map(_draw_task, range(len(tasks)), chunksize=1)
    finally:
        _TASKS = []


def can_fork() -> bool:
    """Whether this process may fork: the platform can, and no thread or JAX runs in it (a fork
    of a multithreaded process can deadlock; `vistudy` fits in spawned workers, so its main
    process has neither, unlike a notebook that has just fitted with NumPyro)."""
    return (
        "fork" in multiprocessing.get_all_start_methods()
        and "jax" not in sys.modules
        and threading.active_count() == 1
    )


def _default_sigterm() -> None:
    """A forked child ends on SIGTERM (the pool's way of closing) instead of running a handler
    it inherited, e.g. `vistudy`'s, which would raise `StudyStopped` in it."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _draw_task(index: int) -> Path:
    draw, path = _TASKS[index]
    return _saved(draw(), path)


def _heatmap(tidy: pd.DataFrame, pair: tuple[str, str], design: str | None, title: str):
    return analysis.plot_ratio_heatmap(analysis.wide_table(tidy, *pair, design=design), title)


SHRINKAGE_MAX_GROUPS = 1_000
"""Shrinkage figures draw one interval per group: beyond this many groups the figure (0.12 inch
per group) outgrows what a PNG can hold, so they are drawn at the largest Q up to this."""


def _largest_q_figures(
    fits: list, pairs: Sequence[tuple[str, str]], folder: Path
) -> list[FigureTask]:
    """Overlays at the largest Q, shrinkage at the largest Q up to `SHRINKAGE_MAX_GROUPS`, each
    of the first replicate (smallest seed) of a data set and model."""
    sizes = {fit_info(f).n_groups for f in fits}
    largest = max(sizes, default=0)
    shrinkage = max((q for q in sizes if q <= SHRINKAGE_MAX_GROUPS), default=0)
    tasks: list[FigureTask] = []
    for pair in pairs:
        drawn = set()
        for info, vb, reference in sorted(
            analysis.pair_fits(fits, *pair), key=lambda item: item[0].seed
        ):
            if info.n_groups == 0 or info.n_groups not in (largest, shrinkage):
                continue
            if (info.dataset, info.model) in drawn:  # one replicate (the first seed) is enough
                continue
            drawn.add((info.dataset, info.model))
            stem = f"{info.dataset}-{info.model}-{_slug(pair)}"
            labels = (pair[0], pair[1])
            if info.n_groups == largest:
                draw = partial(analysis.plot_overlay, vb, reference, labels=labels)
                tasks.append((draw, folder / f"overlay_{stem}.png"))
            if info.n_groups == shrinkage:
                draw = partial(analysis.plot_shrinkage, vb, reference, labels=labels)
                tasks.append((draw, folder / f"shrinkage_{stem}.png"))
    return tasks


def _saved(fig, path: Path) -> Path:
    save(fig, path)
    return path


def write_report(out: Path, config: StudyConfig, jobs: int = 1) -> Path:
    """Write tables, figures and ``report.md``: the main table next to the published one (per
    design, median and spread over replicates, key figures inline), then every pair. ``jobs``
    processes draw the figures (`draw_figures`)."""
    out = Path(out)
    fits = analysis.load_fits(out)
    tidy = analysis.ratio_table(fits, _pairs(config))
    tables = write_tables(out, config, tidy)
    figures = write_figures(out, config, fits, tidy, jobs=jobs)
    lines = [f"# {config.name}", "", config.description, "", "## Data-generating settings", ""]
    lines += _settings_lines(config)
    if config.timing:
        lines += _timing_lines(out, config, fits, tidy, tables, figures)
    if not tidy.empty:
        lines += _main_sections(out, config, tidy, figures)
        lines += _tell_and_fix_lines(tidy)
    lines += _vsbc_lines(out, config, fits, figures)
    if not tidy.empty:
        lines += _pair_sections(config, tidy)
        lines += _gate_lines(tidy, fits)
    lines += ["", "## Files", ""] + [
        f"- [{p.relative_to(out)}]({p.relative_to(out)})" for p in tables + figures
    ]
    failures = read_failures(out)
    if failures:
        lines += ["", "## Failed runs", ""] + [f"- `{f['key']}`: {f['error']}" for f in failures]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    logger.info("report written to %s", path)
    return path


def main_rows(config: StudyConfig, tidy: pd.DataFrame) -> pd.DataFrame:
    """Tidy rows of the report's main table: the ``main`` compare pairs, each for its models
    (the first compare pair when none is marked main)."""
    entries = config.main or (MainRows(*_pairs(config)[0]),)
    parts = []
    for entry in entries:
        rows = analysis.pair_rows(tidy, entry.vb, entry.reference)
        parts.append(rows[rows.model.isin(entry.models)] if entry.models else rows)
    return pd.concat(parts, ignore_index=True) if parts else tidy.iloc[:0]


def _designs(rows: pd.DataFrame) -> list[str]:
    """Simulated designs present, in order of first appearance."""
    simulated = rows[rows.n_groups > 0]
    return list(dict.fromkeys(simulated.design))


def _main_sections(
    out: Path, config: StudyConfig, tidy: pd.DataFrame, figures: list[Path]
) -> list[str]:
    rows = main_rows(config, tidy)
    entries = config.main or (MainRows(*_pairs(config)[0]),)
    pairs = "; ".join(
        f"{e.vb} / {e.reference}" + (f" ({', '.join(e.models)})" if e.models else "")
        for e in entries
    )
    lines = []
    real = rows[rows.n_groups == 0]
    for number, design in enumerate(_designs(rows) or [""]):
        chosen = pd.concat([rows[rows.design == design], real]) if design else rows
        comparable = published_like(chosen)
        comparison = _studied_rows(analysis.published_comparison(comparable), comparable)
        cells = comparison.dropna(subset=["published", "median"])
        heading = "Published vs ours" + (f", design `{design}`" if design else "")
        if number == 0 and len(_designs(rows)) > 1:
            heading += " (the reproduction's design)"
        if cells.empty:  # e.g. Q = 30, or your own data: the pairs' sections follow
            lines += ["", f"## {heading}", "", _NOTHING_PUBLISHED, ""]
            lines += _inline_main_figures(out, entries, design, figures)
            continue
        slug = design or "all"
        figure = out / FIGURES_DIR / f"published_vs_ours_{slug}.png"
        save(analysis.plot_published_vs_ours(comparison, f"design {slug}"), figure)
        figures.append(figure)
        lines += [
            "",
            f"## {heading}",
            "",
            f"Pairs: {pairs}. Each cell: our median SD ratio over the replicated data sets "
            f"[5–95 % range of the replicates, or the Monte-Carlo interval of a single fit] "
            f"(published VI1 value). ✗: the published value lies outside our range "
            f"({int(cells.outside.sum())} of {len(cells)} cells); mean |ours − published| = "
            f"{cells.difference.abs().mean():.3f}.",
            "",
            analysis.comparison_markdown(comparison),
            "",
            f"![published vs ours]({figure.relative_to(out)})",
            "",
        ]
        lines += _inline_main_figures(out, entries, design, figures)
    return lines


_NOTHING_PUBLISHED = (
    "None of these fits is of a cell of the published VI1 table (M0-M3 on simulated data at "
    "Q = 5, 10, 20, 50, 100; M1 on Boston): nothing to set beside it. The pairs' sections "
    "below give every SD ratio."
)
_SIMULATED_GROUPS = re.compile(r"_q\d+_[rn]\d+$")
"""The end of the data tag of grouped data the study simulated (`study.runs.Run.data_tag`)."""


def published_like(rows: pd.DataFrame) -> pd.DataFrame:
    """The tidy rows whose data are of the kind the VI1 table reports: M1 on Boston, and the
    grouped models on data the study simulated. Your own tables, other real data sets and
    simulated M1 data are left out, even where their label (``M0_Q10``) names a published row.

    Examples
    --------
    >>> rows = pd.DataFrame({
    ...     "model": ["linear", "linear"] + ["random_intercept"] * 3,
    ...     "dataset": ["boston", "sim_n40", "sim_q10_r20", "vague_q10_n300", "gcse_3425402b"],
    ... })
    >>> published_like(rows).dataset.tolist()
    ['boston', 'sim_q10_r20', 'vague_q10_n300']
    """
    dataset = rows.dataset.astype(str)
    boston = (rows.model == "linear") & (dataset == "boston")
    simulated = (rows.model != "linear") & dataset.str.contains(_SIMULATED_GROUPS)
    return rows[boston | simulated]


def _studied_rows(comparison: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Published rows of the numbers of groups this design studied (and real-data rows)."""
    studied = set(rows.label) | {
        label
        for label in comparison.row
        if "_Q" in label and int(label.rsplit("_Q", 1)[1]) in set(rows.n_groups)
    }
    return comparison[comparison.row.isin(studied)]


def _inline_main_figures(
    out: Path, entries: Sequence[MainRows], design: str, figures: list[Path]
) -> list[str]:
    """Ratio-vs-Q and heatmap of the first main pair for ``design`` (written by write_figures)."""
    pair = (entries[0].vb, entries[0].reference)
    lines = []
    for kind in ("ratio_vs_groups", "heatmap"):
        for suffix in (_design_suffix(design), ""):
            path = out / FIGURES_DIR / f"{kind}_{_slug(pair)}{suffix}.png"
            if path in figures:
                lines += [f"![{kind} {pair[0]} / {pair[1]}]({path.relative_to(out)})", ""]
                break
    return lines


def _design_suffix(design: str | None) -> str:
    return f"_{design}" if design else ""


TELL_PARAMETERS = ("beta_0", "beta_1", "tau_e", "tau_u")
KHAT_TEXT = (
    "k̂ is the Pareto shape of the importance weights p(θ, y) / q(θ) on draws from q (PSIS; "
    "Yao et al. 2018): below 0.5 q is close enough to the posterior for the VB answer to be "
    "trusted, from 0.5 to 0.7 importance sampling can still repair it, above 0.7 q misses a "
    "region that matters (typically it is too narrow) and its numbers are unreliable."
)


FAMILY_CELLS = (
    "Each cell: the median SD ratio over the replicated data sets (each ratio's interval is in "
    "the section 'Every pair'); k̂: the largest over them."
)


def _tell_and_fix_lines(tidy: pd.DataFrame) -> list[str]:
    """SD ratios of every family of one VB method side by side, with each fit's k̂."""
    header = ["", "## Can we tell, and can we fix it?", "", KHAT_TEXT, "", FAMILY_CELLS, ""]
    lines = list(header)
    chosen = tidy[tidy.parameter.isin(TELL_PARAMETERS) & (tidy.ref_method != "exact")]
    groups = chosen.groupby(["vb_backend", "vb_method", "reference"], sort=False)
    for (backend, method, reference), rows in groups:
        families = list(dict.fromkeys(rows.vb_family))
        if len(families) < 2:
            continue
        lines += [
            f"### {backend}/{method} families against {reference}",
            "",
            _family_table(rows, families),
            "",
        ]
    return lines if len(lines) > len(header) else []


def _family_table(rows: pd.DataFrame, families: list[str]) -> str:
    """Markdown: per scenario (design by design, in the VI1 table's order), the median ratio
    of each family per parameter, then k̂."""
    rows = rows.assign(row=rows.label + " " + rows.design.where(rows.n_groups > 0, ""))
    ratios = rows.pivot_table(
        index="row", columns=["parameter", "vb_family"], values="ratio", aggfunc="median"
    )
    khat = rows.pivot_table(index="row", columns="vb_family", values="khat", aggfunc="max")
    scenarios = rows.drop_duplicates("row")
    designs = list(dict.fromkeys(scenarios.design[scenarios.n_groups > 0]))
    vi1_order = {label: i for i, label in enumerate(VI1_ROWS)}
    ordered = sorted(
        scenarios.itertuples(),
        key=lambda r: (
            designs.index(r.design) if r.n_groups > 0 else len(designs),  # real data last
            vi1_order.get(r.label, len(vi1_order)),
            r.label,
        ),
    )
    header = ["Model"]
    header += [f"{p} {f}" for p in TELL_PARAMETERS for f in families if (p, f) in ratios]
    header += [f"k̂ {f}" for f in families]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in (scenario.row for scenario in ordered):
        cells = [
            _number(ratios.at[row, (p, f)])
            for p in TELL_PARAMETERS
            for f in families
            if (p, f) in ratios
        ]
        cells += [_number(khat.at[row, f]) if f in khat else "NA" for f in families]
        lines.append(f"| {row.strip()} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _number(value: float) -> str:
    return "NA" if pd.isna(value) else f"{value:.2f}"


def _vsbc_lines(out: Path, config: StudyConfig, fits: list, figures: list[Path]) -> list[str]:
    """VSBC of the study's ``[vsbc]`` fits over its replicated data sets."""
    if not config.vsbc:
        return []
    probabilities = analysis.vsbc_probabilities(fits, config.vsbc, config.vsbc_parameters)
    if probabilities.empty:
        return []
    tests = analysis.vsbc_test(probabilities)
    (out / TABLES_DIR).mkdir(parents=True, exist_ok=True)
    probabilities.to_csv(out / TABLES_DIR / "vsbc_probabilities.csv", index=False)
    tests.to_csv(out / TABLES_DIR / "vsbc_tests.csv", index=False)
    figure = out / FIGURES_DIR / "vsbc.png"
    save(analysis.plot_vsbc(probabilities), figure)
    figures.append(figure)
    columns = ["vb", "model", "n_groups", "parameter", "replicates", "p_value", "uniform_p_value"]
    table = tests[[*columns, "verdict"]].assign(
        p_value=tests.p_value.map(lambda v: f"{v:.3g}"),
        uniform_p_value=tests.uniform_p_value.map(lambda v: f"{v:.3g}"),
    )
    return [
        "",
        "### VSBC: is q calibrated over replicated data sets?",
        "",
        "p = Pr_q(θ < θ*) per data set (θ* the truth it was simulated with); `p_value`: the "
        "two-sample KS test of p against 1 − p (VSBC's symmetry test, Yao et al. 2018), "
        "`uniform_p_value`: the KS test of p against U(0, 1), which also sees a q too narrow "
        "but symmetric; verdict at level 0.05 with the direction: too narrow (p piles up at 0 "
        "and 1), too wide (at 1/2), shifted (tilted).",
        "",
        plain_markdown(table),
        "",
        f"![VSBC]({figure.relative_to(out)})",
        "",
    ]


TIME_TEXT = (
    "Seconds per fit as its engine measured them (`compile_time_s` and `run_time_s` in the "
    "fit's attrs; `analysis.timing`), the median over the seeds: **run + compile**. Compile is "
    "building and compiling programs (XLA, PyTensor's C, numba), 0 for the NumPy algorithms "
    "and for programs a cache already held (in this process or on disk); run is the "
    "optimisation or sampling with its draws. Not counted: simulating the data, building the "
    "InferenceData, the PSIS k̂ of VB fits, writing the file. Fits run one at a time "
    "(`--jobs 1`) give comparable numbers; † marks a sampled fit that failed the MCMC gate."
)
ACCURACY_TEXT = (
    "Error of each fit's posterior SDs against the reference: |SD ratio − 1| of the scalars "
    "and the median of |SD ratio − 1| over the random intercepts u_j, the median over the "
    "seeds, against the fit's total seconds. The dotted line in each panel is the median "
    "Monte-Carlo noise of the ratios (the relative half-width of their 90 % intervals): "
    "errors near it are noise of the two fits, not bias. † after a method or a reference, "
    "hollow points in the figure: it failed the MCMC gate there."
)


def _timing_lines(
    out: Path,
    config: StudyConfig,
    fits: list,
    tidy: pd.DataFrame,
    tables: list[Path],
    figures: list[Path],
) -> list[str]:
    """The Time section: compile and run time per method and Q, and time to accuracy."""
    timing = analysis.timing_table(fits)
    summary = analysis.timing_summary(timing)
    folder = out / TABLES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in (("timing", timing), ("timing_summary", summary)):
        table.to_csv(folder / f"{name}.csv", index=False)
        tables.append(folder / f"{name}.csv")
    figure = out / FIGURES_DIR / "time_vs_groups.png"
    save(analysis.plot_time_vs_groups(timing), figure)
    figures.append(figure)
    lines = ["", "## Time", "", TIME_TEXT, "", timing_markdown(summary), ""]
    lines += [f"![time against the number of groups]({figure.relative_to(out)})", ""]
    return lines + _accuracy_lines(out, config, timing, tidy, tables, figures)


def _accuracy_lines(
    out: Path,
    config: StudyConfig,
    timing: pd.DataFrame,
    tidy: pd.DataFrame,
    tables: list[Path],
    figures: list[Path],
) -> list[str]:
    """Time to accuracy against the study's references, best first."""
    accuracy = analysis.accuracy_table(tidy, config.timing_references)
    merged = analysis.time_to_accuracy(timing, accuracy)
    if merged.empty:
        return ["### Time to accuracy", "", "No fit was compared with a reference.", ""]
    path = out / TABLES_DIR / "time_to_accuracy.csv"
    merged.to_csv(path, index=False)
    tables.append(path)
    figure = out / FIGURES_DIR / "time_to_accuracy.png"
    save(analysis.plot_time_to_accuracy(merged), figure)
    figures.append(figure)
    return [
        "### Time to accuracy",
        "",
        ACCURACY_TEXT,
        "",
        _reference_line(merged, timing),
        "",
        accuracy_markdown(merged),
        "",
        f"![time to accuracy]({figure.relative_to(out)})",
        "",
    ]


def _reference_line(merged: pd.DataFrame, timing: pd.DataFrame) -> str:
    """Which reference each (model, Q) uses, its gate and its own seconds."""
    parts = []
    for (model, q), rows in merged.groupby(["model", "n_groups"], sort=True):
        for reference in dict.fromkeys(rows.reference):
            gate = rows[rows.reference == reference].reference_gate.iloc[0]
            own = timing[
                (timing.label == reference) & (timing.model == model) & (timing.n_groups == q)
            ].total_s.median()
            seconds = "" if pd.isna(own) else f"{format_seconds(own)} s, "
            parts.append(f"{model} Q = {q:,}: {reference} ({seconds}gate {gate})")
    return "References: " + "; ".join(parts) + "."


def _pair_sections(config: StudyConfig, tidy: pd.DataFrame) -> list[str]:
    lines = ["", "## Every pair", "", f"Each cell: the SD ratio, {SPREAD_LEGEND}.", ""]
    for pair in _pairs(config):
        rows = analysis.pair_rows(tidy, *pair)
        if rows.empty:
            continue
        for design in _designs(rows) or [None]:
            suffix = f", design `{design}`" if design else ""
            wide = analysis.wide_table(tidy, *pair, design=design)
            spread = analysis.spread_table(tidy, *pair, design=design)
            lines += [
                f"### {pair[0]} / {pair[1]}{suffix}",
                "",
                analysis.to_markdown(wide, spread=spread),
                "",
            ]
    return lines


def _gate_lines(tidy: pd.DataFrame, fits: list) -> list[str]:
    """How many MCMC references passed the gate, which failed, and which were fitted again
    with more draws (``gate_retries``, `study.runs.fit_until_gate_passes`)."""
    references = tidy[tidy.ref_method.isin(["nuts", "gibbs"])].drop_duplicates(
        ["reference", "dataset", "model", "seed"]
    )
    failed = references[references.gate != "ok"]
    lines = [
        "",
        "## MCMC gate",
        "",
        f"{len(references) - len(failed)} of {len(references)} MCMC references passed the gate "
        "(R-hat ≤ 1.01, bulk and tail ESS ≥ 400, no divergences).",
    ]
    for row in failed.itertuples():
        lines.append(f"- {row.reference} on {row.dataset} {row.model} seed {row.seed}: {row.gate}")
    retried = [f.posterior for f in fits if f.posterior.attrs.get("gate_attempts", 1) > 1]
    if retried:
        lines += ["", "Fitted again with twice the draws after R-hat or ESS failed the gate:", ""]
    for posterior in sorted(retried, key=lambda posterior: str(posterior.attrs.get("run_key"))):
        lines.append(
            f"- `{posterior.attrs.get('run_key')}`: {posterior.attrs['gate_attempts']} fits, the "
            f"last with {posterior.sizes['draw']} draws per chain"
        )
    return lines


def _settings_lines(config: StudyConfig) -> list[str]:
    from models.data import DEFAULT_TRUTH

    lines = [f"- seeds (replicated data sets): {list(config.seeds)}"]
    for scenario in config.scenarios:
        only = f"; fits: {', '.join(scenario.fits)}" if scenario.fits else ""
        if scenario.table is not None:
            table = scenario.table
            lines.append(
                f"- {', '.join(scenario.models)}: table `{table.data.name}` ({table.source}, "
                f"`{table.formula}`, {table.data.n_obs} rows; {'; '.join(table.notes)}){only}"
            )
            continue
        if scenario.dataset:
            lines.append(
                f"- {', '.join(scenario.models)}: real data set `{scenario.dataset}`{only}"
            )
            continue
        truths = {m: {**DEFAULT_TRUTH[m], **scenario.truth} for m in scenario.models}
        rows = (
            f"{scenario.n_obs} rows in all, split evenly over the groups"
            if scenario.n_obs
            else f"{scenario.n_per_group} rows per group"
        )
        lines.append(
            f"- `{scenario.name}` — {', '.join(scenario.models)}: simulated, Q = "
            f"{list(scenario.n_groups)}, {rows}, standard-normal covariates{only}; truth "
            + "; ".join(f"{m}: {t}" for m, t in truths.items())
        )
    if config.priors:
        lines.append(f"- priors: {dict(config.priors)}")
    lines.append(
        "- fits: "
        + ", ".join(
            f"{fit.label}{' (' + ', '.join(fit.models) + ')' if fit.models else ''}"
            f"{' ' + str(dict(fit.settings)) if fit.settings else ''}"
            f"{' seeds ' + str(list(fit.seeds)) if fit.seeds else ''}"
            for fit in config.fits
        )
    )
    return lines
