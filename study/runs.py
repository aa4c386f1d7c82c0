"""Expand a study into runs, and execute one run (fit, check, write atomically).

A run is a named (data, model, backend, method, family, seed) tuple with a readable key
``data-model-backend-method-seed`` whose method part carries the family of a variational fit
(e.g. ``sim_q20_r20-random_intercept-numpyro-advi.block-0``), and a content hash of everything
that determines its result (data recipe, priors, resolved settings, seed). A finished run lives
in ``<out>/runs/<key>.nc`` with the hash in its attrs.

A sampler's run whose R-hat or ESS fails the MCMC gate (`analysis.mcmc_gate`), with no
divergence, is fitted again with twice the draws per chain, at most ``gate_retries`` times
(`fit_until_gate_passes`): "more draws where needed". Its attrs record ``gate_attempts``, and
its ``settings`` attr the draws of the fit kept. Divergences are a geometry problem that more
draws do not mend: such a fit is kept as it is, and fails the gate in the report.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from inference.files import replace_atomically
from models.tabular import TableSpec
from study.config import FitSpec, Scenario, StudyConfig

logger = logging.getLogger(__name__)

RUNS_DIR = "runs"
THREAD_LIMITS = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "NUMBA_NUM_THREADS": "1",
}
"""The environment of a study worker: one BLAS, OpenMP, XLA and Numba thread (`limit_threads`)."""


@dataclass(frozen=True)
class Run:
    """Everything that determines one fit's result."""

    model: str
    backend: str
    method: str
    seed: int
    dataset: str | None = None
    n_groups: int = 0
    n_per_group: int = 0
    n_obs: int | None = None
    truth: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    priors: Mapping[str, Any] = field(default_factory=dict)
    study: str = ""
    family: str | None = None
    name: str = "sim"
    table: TableSpec | None = None
    table_hash: str = ""
    gate_retries: int = 0

    @property
    def data_tag(self) -> str:
        """``exam`` for real data; ``sim_q20_r20`` (20 rows per group), ``sim_q20_n500`` (500
        rows over 20 groups) or ``sim_n200`` (no groups) for simulated data; ``gcsemv_3425402b``
        (name and content hash, `models.tabular.data_digest`) for your own table."""
        if self.table_hash:
            return f"{self.name}_{self.table_hash}"
        if self.dataset:
            return self.dataset
        if not self.n_groups:
            return f"{self.name}_n{self.n_obs or 'default'}"
        design = f"n{self.n_obs}" if self.n_obs else f"r{self.n_per_group}"
        return f"{self.name}_q{self.n_groups}_{design}"

    @property
    def method_tag(self) -> str:
        """``advi.block`` for a variational fit, ``nuts`` otherwise."""
        return f"{self.method}.{self.family}" if self.family else self.method

    @property
    def label(self) -> str:
        """``backend/method[:family]``."""
        from inference import make_label

        return make_label(self.backend, self.method, self.family)

    @property
    def key(self) -> str:
        """``data-model-backend-method-seed``."""
        return f"{self.data_tag}-{self.model}-{self.backend}-{self.method_tag}-{self.seed}"

    @property
    def content_hash(self) -> str:
        """Hash of the run's full recipe, with settings and priors resolved to their defaults."""
        from inference import resolve_settings
        from models import MODELS

        recipe = {k: v for k, v in asdict(replace(self, table=None)).items() if k != "study"}
        # Absent when unused (other data; methods without a gate): those hashes stay as they were.
        for key in ("table", "table_hash", "gate_retries"):
            if not recipe[key]:
                del recipe[key]
        settings = resolve_settings(self.backend, self.method, self.settings, family=self.family)
        recipe["settings"] = asdict(settings)
        recipe["priors"] = asdict(MODELS[self.model].priors(dict(self.priors)))
        encoded = json.dumps(recipe, sort_keys=True, default=list).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]

    def path(self, out: Path) -> Path:
        """Where the finished run is stored."""
        return Path(out) / RUNS_DIR / f"{self.key}.nc"


def expand(config: StudyConfig) -> list[Run]:
    """All runs of a study, in a stable order; fits that cannot fit a model are left out."""
    from inference import supports

    runs = []
    for scenario in config.scenarios:
        for model in scenario.models:
            for fit in config.fits:
                if fit.models and model not in fit.models:
                    continue
                if scenario.fits and fit.label not in scenario.fits:
                    continue
                if not supports(fit.backend, fit.method, model, fit.family):
                    continue
                runs.extend(_scenario_runs(config, scenario, model, fit))
    return runs


def _scenario_runs(
    config: StudyConfig, scenario: Scenario, model: str, fit: FitSpec
) -> Iterator[Run]:
    from inference import lookup

    sizes = scenario.n_groups if not (scenario.dataset or scenario.table) else (0,)
    table = scenario.table
    sampler = lookup(fit.backend, fit.method, fit.family).role == "mcmc"
    for n_groups in sizes:
        for seed in fit.seeds or config.seeds:
            if scenario.seeds and seed not in scenario.seeds:
                continue
            yield Run(
                model=model,
                backend=fit.backend,
                method=fit.method,
                family=fit.family,
                seed=seed,
                dataset=scenario.dataset,
                name=scenario.name,
                n_groups=n_groups,
                n_per_group=scenario.n_per_group if n_groups and not scenario.n_obs else 0,
                n_obs=scenario.n_obs,
                truth=dict(scenario.truth),
                settings=dict(fit.settings),
                priors=dict(config.priors.get(model, {})),
                study=config.name,
                table=table.spec if table else None,
                table_hash=table.digest if table else "",
                gate_retries=fit.gate_retries if sampler else 0,
            )


def limit_threads() -> None:
    """One BLAS/XLA thread per process, set before JAX or numpy threads start (worker init).

    Also silences PyTensor's one notice that it found no system BLAS (pip installs have none;
    it falls back to numpy's), which would otherwise be repeated by every worker.
    """
    for name, value in THREAD_LIMITS.items():
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation")


def load_run_data(run: Run) -> tuple[Any, dict[str, Any] | None]:
    """The data of a run (simulated with the run's seed, a real data set, or your own table,
    checked against the content hash it had when the study was loaded) and its truth."""
    from models import load_dataset, simulate

    if run.table is not None:
        table = run.table.prepare()
        if table.digest != run.table_hash:
            raise ValueError(
                f"data: {run.name} changed since the study was loaded (content hash "
                f"{table.digest}, expected {run.table_hash}); load the study again"
            )
        return table.data, None
    if run.dataset:
        return load_dataset(run.dataset), None
    return simulate(
        run.model,
        n_groups=run.n_groups or 2,
        n_per_group=run.n_per_group or 20,
        n_obs=run.n_obs,
        truth=dict(run.truth),
        seed=run.seed,
    )


_settle_after_runs = False


def settle_after_runs() -> None:
    """From now on, collect each run's garbage in this process when the run ends, and freeze
    what survives out of later garbage collections.

    For processes that exist to run a study (`study.runner.LocalPool` workers, the ``vistudy``
    command), not for a user's session: cycles among frozen objects that die later are never
    collected. What survives a run is its compiled programs (cached for the next run) and the
    modules it imported; unfrozen, every full collection walks them all again. Over the quick
    reproduction's 108 runs in one process (`benchmarks/gc_freeze.py`, 2026-11-26) full
    collections took 6.6 s of 89 s, settled 2.0 s of 85 s (the settling included); the exit,
    which the study waits for, took 5.6 s, settled 1.0 s.
    """
    global _settle_after_runs
    _settle_after_runs = True


def settle_heap() -> None:
    """Collect this process's garbage, then freeze every survivor out of later collections."""
    gc.collect()
    gc.freeze()


def execute(run: Run, out: str | Path) -> dict[str, Any]:
    """Fit one run and write it atomically; never raises, returns a status record.

    Returns
    -------
    dict
        ``key``, ``status`` (``done`` or ``failed``), ``seconds``, and for failures ``error``
        and ``traceback``.
    """
    limit_threads()
    started = time.perf_counter()
    record = _fit_and_write(run, Path(out))
    if _settle_after_runs:  # the run's fit is out of scope by now: collected, not frozen
        settle_heap()
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def _fit_and_write(run: Run, out: Path) -> dict[str, Any]:
    record: dict[str, Any] = {"key": run.key, "hash": run.content_hash, "status": "done"}
    try:
        idata = _fit(run)
        _check_finite(idata)
        if run.gate_retries:
            idata = fit_until_gate_passes(run, idata)
        if "sample_stats" in idata.groups():  # a sampler: its report reads ESS and R-hat
            from analysis import stamp_diagnostics

            stamp_diagnostics(idata)
        write_atomically(idata, run.path(out))
    except Exception as error:  # a failed fit is recorded, never allowed to stop the batch
        record.update(
            status="failed",
            error=f"{type(error).__name__}: {error}",
            traceback=traceback.format_exc(),
        )
        logger.warning("run %s failed: %s", run.key, record["error"])
    return record


def fit_until_gate_passes(run: Run, idata: Any) -> Any:
    """``idata``, or a fit of ``run`` with twice, four times ... its draws per chain where
    R-hat or ESS fail the MCMC gate without a divergence (at most ``run.gate_retries`` more
    fits); the fit kept carries ``gate_attempts``, the number of fits made, and
    ``gate_discarded_s``, the compile and run seconds of the fits it replaced (its own
    ``compile_time_s`` and ``run_time_s`` are those of its fit alone).

    Parameters
    ----------
    run : Run
        A sampler's run.
    idata : InferenceData
        Its first fit.

    Returns
    -------
    InferenceData
        The first fit that passed, or the last one.
    """
    from analysis import mcmc_gate

    attempts, gate, discarded_s = 1, mcmc_gate(idata), 0.0
    while not gate.passed and gate.divergences == 0 and attempts <= run.gate_retries:
        draws = 2 * idata.posterior.sizes["draw"]
        logger.info("%s: %s; fitting again with %d draws per chain", run.key, gate.label, draws)
        attrs = idata.posterior.attrs
        discarded_s += float(attrs.get("compile_time_s", 0.0)) + float(attrs["run_time_s"])
        idata = _fit(run, num_draws=draws)
        _check_finite(idata)
        attempts, gate = attempts + 1, mcmc_gate(idata)
    for group in idata.groups():
        idata[group].attrs.update(gate_attempts=attempts, gate_discarded_s=discarded_s)
    return idata


def _fit(run: Run, num_draws: int | None = None) -> Any:
    from inference import fit

    data, truth = load_run_data(run)
    settings = dict(run.settings) | ({"num_draws": num_draws} if num_draws else {})
    idata = fit(
        run.model,
        data,
        backend=run.backend,
        method=run.method,
        family=run.family,
        settings=settings,
        seed=run.seed,
        priors=dict(run.priors),
        progressbar=False,
    )
    attrs = {
        "run_key": run.key,
        "run_hash": run.content_hash,
        "study": run.study,
        "dataset": run.data_tag,
        "n_per_group": run.n_per_group,
        "design": "total" if run.n_obs and run.n_groups else "per_group",
    }
    if truth is not None:
        attrs["truth"] = json.dumps(truth, default=_to_list)
    for group in idata.groups():
        idata[group].attrs.update(attrs)
    return idata


def _to_list(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _check_finite(idata: Any) -> None:
    import numpy as np

    for name, values in idata.posterior.data_vars.items():
        if not np.all(np.isfinite(values.values)):
            raise FloatingPointError(f"posterior.{name}: non-finite draws")


def write_atomically(idata: Any, path: Path) -> None:
    """Write NetCDF to a temporary file in the same folder, then rename it into place.

    Uncompressed: ArviZ's default zlib in chunks of a few hundred draws shrank a Gibbs run by
    4 % (random doubles hardly compress) and made writing it 2.6x slower (0.19 s against 0.07 s)
    and reading it 1.6x slower (0.09 s against 0.056 s), once per run of a reproduction.
    Written by `analysis.netcdf.write_fit`, the file ArviZ writes without xarray and h5netcdf:
    the reproduction's 305 run files in 6.8 s instead of 39.1 s (2026-11-26), most of the
    0.2 s each closed-form run spent in its worker besides fitting.
    """
    from analysis.netcdf import write_fit

    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, lambda temporary: write_fit(idata, temporary))


def stored_hash(path: Path) -> str | None:
    """The content hash recorded in a finished run file, or ``None`` if absent or unreadable.

    Read with h5py, the attribute alone (the file is HDF5, written by h5netcdf): 0.1 ms per file
    against 25 ms through xarray, which decodes the whole group -- 9 s before every re-run of a
    355-run study.
    """
    import h5py

    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as file:
            value = file["posterior"].attrs.get("run_hash")
    except (OSError, ValueError, KeyError):
        logger.warning("unreadable run file %s will be redone", path)
        return None
    return value.decode() if isinstance(value, bytes) else value
