"""Session-wide fixtures: tiny data sets and one cache of tiny fits.

`tiny_fit(model, backend, method)` fits each combination once per test session (with
`TINY_SETTINGS`, on `tiny_data`) and hands the same `InferenceData` to every test that asks;
tests must not modify it.
"""

from __future__ import annotations

from collections.abc import Callable

import arviz as az
import pytest

from inference import fit
from models import MODELS, RegressionData, simulate

TINY_SETTINGS: dict[str, dict[str, int]] = {
    "advi": {
        "max_steps": 1_000,
        "min_steps": 200,
        "window": 100,
        "num_draws": 200,
        "average_steps": 200,
    },
    "nuts": {"num_chains": 2, "num_warmup": 200, "num_draws": 200},
    "exact": {"num_draws": 200},
    "cavi": {"num_draws": 200},
    "gibbs": {"num_chains": 2, "num_burnin": 100, "num_draws": 200},
}
TINY_N_GROUPS = 4
TINY_N_PER_GROUP = 6


# Cold-cache seconds of the longest tests (CI on 2 cores, `--durations`). `pytest -n 2` runs
# with `--dist worksteal` (pyproject): each worker starts on one half of the collected list and
# steals from the other's tail when idle. These tests are dealt to the two halves, longest first
# onto the lighter one, and put at the front of their half, so the two workers start on them at
# once instead of one worker ending the session on a 100-second test.
LONG_TESTS: dict[str, float] = {
    "study/test_reproduce.py::test_reproduce_writes_every_promised_file": 109,
    "test_notebooks.py::test_notebook_runs_top_to_bottom_in_quick_mode[02_": 40,
    "test_notebooks.py::test_notebook_runs_top_to_bottom_in_quick_mode[01_": 35,
    "test_notebooks.py::test_notebook_runs_top_to_bottom_in_quick_mode[03_": 29,
    "test_notebooks.py::test_notebook_runs_top_to_bottom_in_quick_mode[04_": 21,
    "study/test_signals.py::test_sigterm_stops_the_workers_and_the_rerun_resumes": 20,
    "test_notebooks.py::test_notebook_runs_top_to_bottom_in_quick_mode[05_": 18,
    "study/test_signals.py::test_local_pool_and_dask_give_bit_identical_draws": 14,
    "study/test_runner.py::test_a_run_that_kills_its_worker_fails_alone": 9,
    "study/test_runner.py::test_process_pool_and_dask_give_the_same_numbers": 9,
}


def _expected_seconds(item: pytest.Item) -> float:
    return next((s for name, s in LONG_TESTS.items() if name in item.nodeid), 0.0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Deal the long tests to the fronts of the two halves of the list (see `LONG_TESTS`)."""
    long = sorted((i for i in items if _expected_seconds(i)), key=_expected_seconds, reverse=True)
    if not long:
        return
    rest = [i for i in items if not _expected_seconds(i)]
    halves: tuple[list, list] = ([], [])
    loads = [0.0, 0.0]
    for item in long:
        lighter = loads.index(min(loads))
        halves[lighter].append(item)
        loads[lighter] += _expected_seconds(item)
    middle = len(items) // 2 - len(halves[0])
    items[:] = halves[0] + rest[:middle] + halves[1] + rest[middle:]


@pytest.fixture(scope="session")
def tiny_settings() -> dict[str, dict[str, int]]:
    """`TINY_SETTINGS`: settings overrides per method for fast fits."""
    return TINY_SETTINGS


@pytest.fixture(scope="session")
def tiny_data() -> dict[str, RegressionData]:
    """One small simulated data set per model (4 groups of 6 rows; 24 rows for ``linear``)."""
    return {
        name: simulate(name, n_groups=TINY_N_GROUPS, n_per_group=TINY_N_PER_GROUP, seed=7)[0]
        for name in MODELS
    }


@pytest.fixture(scope="session")
def tiny_fit(tiny_data) -> Callable[[str, str, str], az.InferenceData]:
    """``tiny_fit(model, backend, method)``: a tiny fit, computed once per session (seed 0)."""
    cache: dict[tuple[str, str, str], az.InferenceData] = {}

    def get(model: str, backend: str, method: str) -> az.InferenceData:
        key = (model, backend, method)
        if key not in cache:
            cache[key] = fit(
                model,
                tiny_data[model],
                backend=backend,
                method=method,
                settings=TINY_SETTINGS[method],
                seed=0,
            )
        return cache[key]

    return get
