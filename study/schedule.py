"""What the local pool needs to order runs: a rough cost of each run, which runs compile C, and
which runs share a compiled program.

`study.runner.next_run` starts the longest runs first, so that the last minutes of a batch are
not one long fit on one worker while the other waits (longest-processing-time-first); keeps a
second C-compiling PyMC run from starting while other work waits (PyTensor's compile lock); and
does not start a run whose program another worker is compiling (the same data shape of the same
fit, e.g. the next seed): run later, it finds the program in its worker's memory or in the
compilation caches on disk instead of compiling it a second time.
"""

from __future__ import annotations

from study.runs import Run

# Seconds of one fit, ``fixed + per_group * n_groups``, from the reproduction on 2 shared cores
# (benchmarks/reproduce.py, compile included: most fits compile their own data shape).
_COST_S: dict[tuple[str, str], tuple[float, float]] = {
    ("numpyro", "nuts"): (5.0, 0.20),
    ("numpyro", "advi"): (3.0, 0.01),
    ("pymc", "nuts"): (3.0, 0.08),
    ("pymc", "advi"): (4.0, 0.10),
    ("conjugate", "gibbs"): (0.5, 0.01),
}
_DEFAULT_COST_S = (0.5, 0.0)
# A dense block (Cholesky factor, 4 draws per step) costs about twice a mean-field fit.
_FAMILY_FACTOR = {"block": 2.0, "full_rank": 2.0}
# NUTS on the logistic model takes longer trajectories and costlier gradients.
_MODEL_FACTOR = {"logistic_random_intercept": 1.5}


def estimated_seconds(run: Run) -> float:
    """A rough cost of ``run`` in seconds, good enough to order runs (not to plan a budget)."""
    from inference.registry import base_family

    fixed, per_group = _COST_S.get((run.backend, run.method), _DEFAULT_COST_S)
    family = base_family(run.family or "")
    factor = _FAMILY_FACTOR.get(family, 1.0) * _MODEL_FACTOR.get(run.model, 1.0)
    groups = run.n_groups or 20  # real data sets: about the size of a small simulated one
    return factor * (fixed + per_group * groups)


def compiles_c(run: Run) -> bool:
    """Whether ``run`` compiles PyTensor C code (and so may wait on PyTensor's compile lock).

    PyMC's ADVI and ``pm.sample`` do; PyMC's NUTS through nutpie compiles with numba, outside
    that lock.
    """
    if run.backend != "pymc":
        return False
    if run.method != "nuts":
        return True
    from inference.settings import NutsSettings

    return dict(run.settings).get("sampler", NutsSettings.sampler) == "pymc"


def program_of(run: Run) -> tuple:
    """What a run's compiled program depends on, as far as the runner can tell without the
    engines: the fit, the model and the shape the program is compiled for (not the seed).

    ADVI with ``pad_shapes`` (the default) is compiled for the padded shape of grouped data
    (`inference.ppl.padding.padded_shape`), PyMC's for its padded groups and any number of rows;
    PyMC's NUTS through nutpie for any shape. NUTS samples a model's centred form unless its
    ``centring`` is ``"model"`` (`inference.ppl.centring.sampled_spec`: M0's program for M2), so
    M2's run goes on the worker that has just sampled M0's, which keeps its draws for the same
    data and seed (`inference.ppl.programs.RecentDraws`).
    """
    from inference.ppl.centring import sampled_spec
    from inference.ppl.padding import padded_shape
    from inference.registry import base_family
    from inference.settings import AdviSettings, NutsSettings
    from models import MODELS

    rows: int | None = run.n_obs or run.n_per_group * run.n_groups
    groups: int | None = run.n_groups
    pads = dict(run.settings).get("pad_shapes", AdviSettings.pad_shapes)
    if run.method == "advi" and groups and pads:
        dense = base_family(run.family or "mean_field") != "mean_field"
        rows, groups = padded_shape(rows, groups, dense)
    if run.backend == "pymc" and run.method == "advi":
        rows = None  # the step function reads any number of rows from pm.Data
    elif run.backend == "pymc" and not compiles_c(run):
        rows = groups = None  # nutpie's density has no shape
    model = run.model
    if run.method == "nuts" and model in MODELS:
        centring = dict(run.settings).get("centring", NutsSettings.centring)
        model = sampled_spec(MODELS[model], centring).name
    return (run.backend, run.method, run.family, model, run.dataset, groups, rows)
