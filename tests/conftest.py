"""Session-wide fixtures: tiny data sets and one cache of tiny fits.

`tiny_fit(model, backend, method)` fits each combination once per test session (with
`TINY_SETTINGS`, on `tiny_data`) and hands the same `InferenceData` to every test that asks;
tests must not modify it.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

# The library (and ArviZ, PyMC, JAX with it) is imported inside the fixtures and hooks:
# pytest-xdist's controller loads this file before it starts the workers, and runs no test.
if TYPE_CHECKING:
    import arviz as az

    from models import RegressionData

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


@pytest.fixture(scope="session")
def tiny_settings() -> dict[str, dict[str, int]]:
    """`TINY_SETTINGS`: settings overrides per method for fast fits."""
    return TINY_SETTINGS


@pytest.fixture(scope="session")
def tiny_data() -> dict[str, RegressionData]:
    """One small simulated data set per model (4 groups of 6 rows; 24 rows for ``linear``)."""
    from models import MODELS, simulate

    return {
        name: simulate(name, n_groups=TINY_N_GROUPS, n_per_group=TINY_N_PER_GROUP, seed=7)[0]
        for name in MODELS
    }


@pytest.fixture(scope="session")
def tiny_fit(tiny_data) -> Callable[[str, str, str], az.InferenceData]:
    """``tiny_fit(model, backend, method)``: a tiny fit, computed once per session (seed 0)."""
    from inference import fit

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


def pytest_configure(config: pytest.Config) -> None:
    """On a pytest-xdist worker, import ArviZ while holding a lock the workers share.

    ArviZ 0.23.4, on its first import of the day, writes a stamp in the user cache folder
    through a temporary file of a fixed name (``daily_warning.tmp``, then renamed). Two
    processes that import it at once when there is no stamp of the day (a fresh CI machine)
    race on that file, and one of them fails with ``FileNotFoundError``
    (arviz-devs/arviz#2530, #2583): a worker's collection failed, and so the whole run, once in
    46 runs of ``pytest -n 2`` from an empty ``HOME`` (2026-11-28). Under the lock the second
    worker finds the stamp of the day and writes nothing. The lock is this file's (``flock``),
    shared by the workers of one checkout; the controller imports nothing and runs no test.
    ArviZ's costliest imports come first, outside the lock, so that a worker waits for ArviZ's
    own modules alone (collection took 0.65 s longer, not 1.5 s)."""
    if not hasattr(config, "workerinput"):
        return
    import matplotlib.pyplot  # noqa: F401
    import scipy.stats  # noqa: F401
    import xarray  # noqa: F401

    with open(__file__) as this_file:
        fcntl.flock(this_file, fcntl.LOCK_EX)  # released when the file is closed
        import arviz  # noqa: F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests marked ``slow`` first, in their collection order, then the rest.

    pytest-xdist hands tests out in collection order, where the notebooks came last: the
    longest tests (12-35 s each) ended the run on one worker while the other had finished. Long
    tasks first, short ones to fill the gaps, lets both workers end together."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item):
    """After each test and its fixtures' teardown, settle the heap as a study worker does after
    each run (`study.runs.settle_after_runs`): the session's cached fits and compiled programs
    are frozen out of later garbage collections, which otherwise walk them again and again
    (-9 % on the engine and family tests)."""
    from study.runs import settle_heap

    result = yield
    settle_heap()
    return result


@pytest.fixture(scope="session")
def netcdf_layout() -> Callable[[Any], dict]:
    """``netcdf_layout(path)``: every object of a NetCDF file as `_netcdf_layout` lists it, to
    compare a file `analysis.netcdf.write_fit` wrote with the one ArviZ writes."""
    return _netcdf_layout


def _netcdf_layout(path):
    """Every object of an HDF5 file in order: datasets' dtype, shape, fill value, data and
    attributes (netCDF-4's own in any order, dimension references by name, the rest in order)."""
    import h5py

    from analysis.netcdf import _NETCDF_ATTRS

    netcdf_attrs = _NETCDF_ATTRS | {"_NCProperties"}

    def attrs(item, file):
        pairs = []
        for key in item.attrs.keys():
            value = item.attrs[key]
            if key == "DIMENSION_LIST":
                value = [[file[ref].name for ref in refs] for refs in value]
            elif key == "REFERENCE_LIST":
                value = [(file[ref].name, int(axis)) for ref, axis in value]
            elif key == "_NCProperties":
                value = "version=2" in str(value)
            pairs.append((key, repr(np.asarray(value).dtype.str), repr(value)))
        ours = sorted(p for p in pairs if p[0] in netcdf_attrs)
        return ours, [p for p in pairs if p[0] not in netcdf_attrs]

    layout = {}
    with h5py.File(path, "r") as file:
        layout["/"] = (list(file), attrs(file, file))

        def visit(name, item):
            if isinstance(item, h5py.Group):
                layout[name] = (list(item), attrs(item, file))
            else:
                data = item[()]
                data = data.tolist() if item.dtype.kind == "O" else data.tobytes()
                fill = repr(item.fillvalue)
                layout[name] = (str(item.dtype), item.shape, item.chunks, fill, data)
                layout[name] += (h5py.check_string_dtype(item.dtype), attrs(item, file))

        file.visititems(visit)
    return layout
