"""Tables, figures and ``report.md`` of a results folder (built with `analysis` only)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import analysis
from analysis.figures import save
from analysis.io import fit_info
from analysis.tables import DEFAULT_PAIRS, label_slug
from study.config import StudyConfig
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
) -> list[Path]:
    """Ratio-vs-Q and heatmap per pair, overlays and shrinkage of the largest-Q scenarios."""
    out = Path(out)
    folder = out / FIGURES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    fits = analysis.load_fits(out) if fits is None else fits
    tidy = analysis.ratio_table(fits, _pairs(config)) if tidy is None else tidy
    paths = []
    for pair in _pairs(config):
        if analysis.pair_rows(tidy, *pair).empty:
            continue
        paths.append(
            _saved(
                analysis.plot_ratio_vs_groups(tidy, vb=pair[0], reference=pair[1]),
                folder / f"ratio_vs_groups_{_slug(pair)}.png",
            )
        )
        wide = analysis.wide_table(tidy, *pair)
        paths.append(
            _saved(
                analysis.plot_ratio_heatmap(wide, f"SD ratio {pair[0]} / {pair[1]}"),
                folder / f"heatmap_{_slug(pair)}.png",
            )
        )
    paths += _largest_q_figures(fits, _pairs(config), folder)
    return paths


def _largest_q_figures(fits: list, pairs: Sequence[tuple[str, str]], folder: Path) -> list[Path]:
    largest = max((fit_info(f).n_groups for f in fits), default=0)
    paths = []
    for pair in pairs:
        for info, vb, reference in analysis.pair_fits(fits, *pair):
            if info.n_groups != largest or largest == 0:
                continue
            stem = f"{info.dataset}-{info.model}-{_slug(pair)}"
            labels = (pair[0], pair[1])
            paths.append(
                _saved(
                    analysis.plot_overlay(vb, reference, labels=labels),
                    folder / f"overlay_{stem}.png",
                )
            )
            paths.append(
                _saved(
                    analysis.plot_shrinkage(vb, reference, labels=labels),
                    folder / f"shrinkage_{stem}.png",
                )
            )
    return paths


def _saved(fig, path: Path) -> Path:
    save(fig, path)
    return path


def write_report(out: Path, config: StudyConfig) -> Path:
    """Write tables, figures and ``report.md`` linking them, with the published values."""
    out = Path(out)
    fits = analysis.load_fits(out)
    tidy = analysis.ratio_table(fits, _pairs(config))
    tables = write_tables(out, config, tidy)
    figures = write_figures(out, config, fits, tidy)
    lines = [f"# {config.name}", "", config.description, "", "## Data-generating settings", ""]
    lines += _settings_lines(config)
    main = MAIN_PAIR if MAIN_PAIR in _pairs(config) else _pairs(config)[0]
    if not tidy.empty:
        wide = analysis.wide_table(tidy, *main)
        lines += [
            "",
            f"## SD ratios {main[0]} / {main[1]}: ours (published VI1)",
            "",
            analysis.side_by_side_markdown(wide),
            "",
            "Published values are VB/Gibbs SD ratios of the VI1 report (Figure 4); "
            "its σ² columns are NA.",
            "",
        ]
        for pair in _pairs(config):
            if not analysis.pair_rows(tidy, *pair).empty:
                lines += [
                    f"### {pair[0]} / {pair[1]}",
                    "",
                    analysis.to_markdown(analysis.wide_table(tidy, *pair)),
                    "",
                ]
    lines += ["## Files", ""] + [
        f"- [{p.relative_to(out)}]({p.relative_to(out)})" for p in tables + figures
    ]
    failures = read_failures(out)
    if failures:
        lines += ["", "## Failed runs", ""] + [f"- `{f['key']}`: {f['error']}" for f in failures]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    logger.info("report written to %s", path)
    return path


def _settings_lines(config: StudyConfig) -> list[str]:
    from models.data import DEFAULT_TRUTH

    lines = [f"- seeds: {list(config.seeds)}"]
    for scenario in config.scenarios:
        if scenario.dataset:
            lines.append(f"- {', '.join(scenario.models)}: real data set `{scenario.dataset}`")
            continue
        truths = {m: {**DEFAULT_TRUTH[m], **scenario.truth} for m in scenario.models}
        lines.append(
            f"- {', '.join(scenario.models)}: simulated, Q = {list(scenario.n_groups)}, "
            f"{scenario.n_per_group} rows per group, standard-normal covariates; truth "
            + "; ".join(f"{m}: {t}" for m, t in truths.items())
        )
    lines.append(
        "- fits: "
        + ", ".join(
            f"{fit.label}{' (' + ', '.join(fit.models) + ')' if fit.models else ''}"
            f"{' ' + str(dict(fit.settings)) if fit.settings else ''}"
            for fit in config.fits
        )
    )
    return lines
