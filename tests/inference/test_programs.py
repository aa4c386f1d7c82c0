"""The compiled-program cache: one build per key, each build logged (and counted by the census)."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference import fit
from inference.ppl.programs import ProgramCache, RecentDraws, data_fingerprint
from models import simulate

ROOT = Path(__file__).resolve().parents[2]


def _census_module(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as when run as a script
    path = ROOT / "benchmarks" / "compile_census.py"
    spec = importlib.util.spec_from_file_location("compile_census", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_program_is_built_once_per_key_and_again_after_clear(caplog):
    cache, builds = ProgramCache(), []

    def build():
        builds.append(1)
        return len(builds)

    with caplog.at_level(logging.DEBUG, logger="inference.ppl.programs"):
        first, first_seconds = cache.get(("advi:block", "m"), build)
        again, again_seconds = cache.get(("advi:block", "m"), build)
    assert (first, again, len(builds)) == (1, 1, 1)
    assert first_seconds > 0 and again_seconds == 0.0
    assert [r.getMessage().split(" s: ")[1] for r in caplog.records] == ["('advi:block', 'm')"]
    cache.clear()
    assert cache.get(("advi:block", "m"), build)[0] == 2


def test_recent_draws_are_kept_by_key_copied_and_forgotten_oldest_first():
    memo, calls = RecentDraws(size=2), []

    def sample(value):
        def run():
            calls.append(value)
            return {"x": np.full(3, float(value))}

        return run

    first, reused = memo.get(("a",), sample(1))
    assert not reused
    first["x"][:] = -1.0  # the caller's arrays are its own
    again, reused = memo.get(("a",), sample(2))
    assert reused and calls == [1]
    np.testing.assert_array_equal(again["x"], [1.0, 1.0, 1.0])
    again["x"][:] = -2.0
    assert memo.get(("a",), sample(3))[0]["x"][0] == 1.0
    memo.get(("b",), sample(4))
    memo.get(("c",), sample(5))  # ("a",) is the oldest of three: forgotten
    assert memo.get(("a",), sample(6))[1] is False and calls == [1, 4, 5, 6]
    memo.clear()
    assert memo.get(("c",), sample(7))[1] is False


def test_a_data_fingerprint_changes_with_anything_a_sampler_reads():
    data, _ = simulate("random_intercept", n_groups=5, n_obs=60, seed=2)
    same, _ = simulate("random_intercept", n_groups=5, n_obs=60, seed=2)
    assert data_fingerprint(data) == data_fingerprint(same)
    y = data.y.copy()
    y[7] += 1e-12
    group = data.group.copy()
    group[[0, -1]] = group[[-1, 0]]
    X = data.X.copy()
    X[3, 1] = -X[3, 1]
    changed = [
        type(data)(X=data.X, y=y, group=data.group),
        type(data)(X=data.X, y=data.y, group=group),
        type(data)(X=X, y=data.y, group=data.group),
        type(data)(X=data.X, y=data.y, group=data.group, n_groups=6),
    ]
    prints = {data_fingerprint(other) for other in changed}
    assert len(prints) == len(changed) and data_fingerprint(data) not in prints


LOOP = {"max_steps": 300, "min_steps": 150, "tol": 1e-2, "average_steps": 100}


@pytest.mark.parametrize(
    ("backend", "run_time"),
    [
        ("numpyro", LOOP),
        (
            "pymc",
            {**LOOP, "learning_rate": 0.02, "lr_decay_steps": 100, "window": 25, "num_draws": 30},
        ),
    ],
)
def test_an_advi_fit_that_changes_only_run_time_settings_reuses_the_program(
    backend, run_time, monkeypatch
):
    """Settings no compiled program holds (the loop's; in PyMC also the step size, the windows
    and the draws) are left out of its key: the second fit compiles nothing and gives the draws
    and losses of a program built for its settings alone. A setting the program holds (the
    initial scale of q) still builds a new one."""
    engine = importlib.import_module(f"inference.ppl.{backend}_engine")
    first = {"max_steps": 200, "min_steps": 100, "window": 50, "num_draws": 20, "average_steps": 50}
    second = {**first, **run_time}
    data, _ = simulate("random_intercept", n_groups=5, n_obs=60, seed=2)

    def fit_with(settings):
        return fit("random_intercept", data, backend=backend, method="advi", settings=settings)

    monkeypatch.setattr(engine, "_PROGRAMS", ProgramCache())
    assert fit_with(first).posterior.attrs["compile_time_s"] > 0
    reused = fit_with(second)
    assert reused.posterior.attrs["compile_time_s"] == 0.0
    assert fit_with({**second, "init_scale": 0.2}).posterior.attrs["compile_time_s"] > 0

    monkeypatch.setattr(engine, "_PROGRAMS", ProgramCache())
    alone = fit_with(second)
    assert alone.posterior.attrs["compile_time_s"] > 0
    assert alone.posterior.sizes["draw"] == second["num_draws"]
    for group in ("posterior", "vi_trace", "variational"):
        for name, values in alone[group].data_vars.items():
            np.testing.assert_array_equal(reused[group][name].values, values.values, err_msg=name)


def test_the_census_reads_what_jax_and_the_cache_log_in_another_process(tmp_path, monkeypatch):
    """The census's `sitecustomize` parses the installed JAX's DEBUG timings and our builds: a
    JAX whose wording changed would make the census count nothing, silently."""
    census = _census_module(monkeypatch)
    env = census._prepare(tmp_path)
    code = (
        "import jax; jax.jit(lambda x: x * 2.0)(1.0); "
        "from inference.ppl.programs import ProgramCache; ProgramCache().get(('k',), lambda: 1)"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True)
    kinds = {record["kind"] for record in census._records(tmp_path)}
    assert {"trace", "lower", "xla", "build"} <= kinds
