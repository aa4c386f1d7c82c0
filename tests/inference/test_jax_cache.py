"""vistudy's store of NumPyro's compiled programs (`inference.ppl.jax_cache.stored_program`):
a program loaded from it gives the draws of the program it stored, under a key that changes with
everything that shapes the program, and a file that cannot be read is compiled again."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from inference import fit
from inference.ppl import jax_cache, numpyro_engine
from inference.ppl.programs import ProgramCache, RecentDraws
from models import simulate

ADVI = {"max_steps": 200, "min_steps": 100, "window": 50, "num_draws": 20, "average_steps": 50}
NUTS = {"num_chains": 2, "num_warmup": 200, "num_draws": 200}


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty store and an empty JAX cache (so XLA compiles), and no compiled program or kept
    draws in this process."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    monkeypatch.setenv(jax_cache.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(numpyro_engine, "_PROGRAMS", ProgramCache())
    monkeypatch.setattr(numpyro_engine, "_DRAWS", RecentDraws())
    users = jax.config.jax_compilation_cache_dir
    _empty_jax_cache(tmp_path / "jax")
    yield tmp_path / jax_cache.PROGRAMS_DIR
    jax.config.update("jax_compilation_cache_dir", users)
    compilation_cache.reset_cache()


def _empty_jax_cache(folder):
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_compilation_cache_dir", str(folder))
    compilation_cache.reset_cache()


def _fit(method):
    """A fit of the linear model: the store does not depend on the model, and M1's programs
    compile in about half the time of M0's (mean-field ADVI 1.8 s instead of 3.6 s)."""
    data, _ = simulate("linear", n_obs=60, seed=2)
    settings = ADVI if method == "advi" else NUTS
    return fit("linear", data, backend="numpyro", method=method, settings=settings)


def _forget_programs(monkeypatch):
    """A new process as far as NumPyro's programs go: nothing in memory, nothing to build."""

    def no_build(*args, **kwargs):
        raise AssertionError("built a program the store holds")

    monkeypatch.setattr(numpyro_engine, "_PROGRAMS", ProgramCache())
    monkeypatch.setattr(numpyro_engine, "_DRAWS", RecentDraws())
    monkeypatch.setattr(numpyro_engine, "_build_svi", no_build)
    monkeypatch.setattr(numpyro_engine, "_build_nuts", no_build)


@pytest.mark.parametrize("method", ["advi", "nuts"])
def test_a_stored_program_is_loaded_and_gives_the_draws_of_the_one_compiled(
    store, monkeypatch, method
):
    compiled = _fit(method)
    assert len(list(store.glob("*.bin"))) == 1
    _forget_programs(monkeypatch)
    loaded = _fit(method)
    groups = ("posterior", "sample_stats") if method == "nuts" else ("posterior", "vi_trace")
    for group in (*groups, "variational") if method == "advi" else groups:
        for name, values in compiled[group].data_vars.items():
            np.testing.assert_array_equal(loaded[group][name].values, values.values, err_msg=name)


def test_an_unreadable_stored_program_is_compiled_again_and_replaced(store, monkeypatch, caplog):
    first = _fit("advi")
    (path,) = store.glob("*.bin")
    path.write_bytes(path.read_bytes()[:1000])  # cut short, as by a full disk
    monkeypatch.setattr(numpyro_engine, "_PROGRAMS", ProgramCache())
    _empty_jax_cache(store.parent / "jax-again")  # XLA compiles again, so it is stored again
    with caplog.at_level(logging.WARNING, logger="inference.ppl.jax_cache"):
        again = _fit("advi")
    assert "unreadable" in caplog.text
    np.testing.assert_array_equal(again.posterior.beta.values, first.posterior.beta.values)
    _forget_programs(monkeypatch)  # the file written again loads
    np.testing.assert_array_equal(_fit("advi").posterior.beta.values, first.posterior.beta.values)


def test_a_program_loaded_from_jaxs_cache_is_not_stored(store, monkeypatch):
    """XLA serializes such an executable without its kernels: stored, it would fail to run."""
    monkeypatch.setenv(jax_cache.CACHE_ENV, "")  # JAX's cache only
    first = _fit("advi")
    monkeypatch.setenv(jax_cache.CACHE_ENV, str(store.parent))
    monkeypatch.setattr(numpyro_engine, "_PROGRAMS", ProgramCache())
    again = _fit("advi")
    assert not list(store.glob("*.bin"))
    np.testing.assert_array_equal(again.posterior.beta.values, first.posterior.beta.values)


def test_programs_are_stored_when_other_code_of_their_build_came_from_jaxs_cache(store):
    """Two ADVI programs of M0, for 60 and 200 rows in 5 groups (padded to 128 and 1,024 rows),
    the second as in another process (JAX's in-memory caches cleared): the small eager
    computations of its build come from JAX's persistent cache, and so would its ``raw_params``
    and ``draw`` (the same code for both: they do not read the rows) but for the problem in
    their names; its own executables are compiled, so it is stored."""
    import jax

    for rows in (60, 200):
        data, _ = simulate("random_intercept", n_groups=5, n_obs=rows, seed=2)
        jax.clear_caches()
        hits = jax_cache.jax_cache_hits()
        fit("random_intercept", data, backend="numpyro", method="advi", settings=ADVI)
    assert jax_cache.jax_cache_hits() > hits
    assert len(list(store.glob("*.bin"))) == 2


def test_nothing_is_stored_with_the_cache_off(store, monkeypatch):
    monkeypatch.setenv(jax_cache.CACHE_ENV, "")
    assert jax_cache.stored_program(("k",), lambda: "built") == "built"
    assert not store.exists()


@dataclass(frozen=True)
class _Priors:
    a: float = 1.0
    b: tuple = (1, "x")


def test_the_key_changes_with_the_problem_the_code_and_the_options(store, monkeypatch):
    key = ("nuts", "random_intercept", _Priors(), (60, 2), 5, "sequential")
    path = jax_cache._program_path(key)
    assert path == jax_cache._program_path(tuple(key))  # the same text in every process
    assert jax_cache._stable_text(_Priors()).endswith("_Priors(a=1.0,b=(1,'x'))")
    assert jax_cache._program_path((*key[:2], _Priors(a=2.0), *key[3:])) != path
    assert jax_cache._program_path((*key[:-1], "vectorized")) != path
    for changed in (
        lambda: monkeypatch.setattr(jax_cache, "_source_digest", lambda: "edited"),
        lambda: monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true"),
        lambda: monkeypatch.setattr(jax_cache, "_TRACING_CONFIG", ("jax_enable_x64",)),
    ):
        jax_cache._environment.cache_clear()
        changed()
        jax_cache._environment.cache_clear()
        assert jax_cache._program_path(key) != path
        monkeypatch.undo()
        monkeypatch.setenv(jax_cache.CACHE_ENV, str(store.parent))
        jax_cache._environment.cache_clear()
        assert jax_cache._program_path(key) == path
    assert jax_cache._program_path((*key, np.zeros(3))) is None  # not plain data: not stored


def test_the_store_keeps_the_most_recently_used_programs_within_its_size(tmp_path):
    import os

    for age, name in enumerate(("new", "used", "old")):
        path = tmp_path / f"{name}.bin"
        path.write_bytes(b"x" * 100)
        os.utime(path, (1e9 - 1000 * age, 1e9 - 1000 * age))
    jax_cache._touch(tmp_path / "used.bin")  # loaded now: the most recent
    assert jax_cache.prune(tmp_path, max_bytes=300) == []
    assert [p.name for p in jax_cache.prune(tmp_path, max_bytes=200)] == ["old.bin"]
    assert [p.name for p in jax_cache.prune(tmp_path, max_bytes=150)] == ["new.bin"]
    assert [p.name for p in tmp_path.glob("*.bin")] == ["used.bin"]


_TWO_PROCESSES = """
import json, sys
from inference import fit
from inference.ppl import numpyro_engine
from models import simulate

advi, nuts = json.loads(sys.argv[1])
builds = []
for name in ("_build_svi", "_build_nuts"):
    def counted(*args, _build=getattr(numpyro_engine, name), **kwargs):
        builds.append(1)
        return _build(*args, **kwargs)
    setattr(numpyro_engine, name, counted)
data, _ = simulate("linear", n_obs=60, seed=2)
draws = {}
for method, family, settings in (
    ("advi", "mean_field", advi), ("advi", "block", advi), ("nuts", None, nuts)
):
    idata = fit("linear", data, backend="numpyro", method=method, family=family,
                settings=settings)
    draws[f"{method}:{family}"] = idata.posterior.beta.values.ravel().tolist()
print(json.dumps({"draws": draws, "builds": len(builds)}))
"""


def test_programs_stored_by_one_process_run_in_the_next(tmp_path):
    """What the store holds runs in a new process, with the draws of the process that compiled
    it: mean-field ADVI and NUTS load, block ADVI (LAPACK's custom calls, which a process that
    has not lowered one cannot run) is compiled again. Empty caches, two fresh processes."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env[jax_cache.CACHE_ENV] = str(tmp_path)
    runs = [
        subprocess.run(
            [sys.executable, "-c", _TWO_PROCESSES, json.dumps([ADVI, NUTS])],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        for _ in range(2)
    ]
    first, second = (json.loads(run.stdout.strip().splitlines()[-1]) for run in runs)
    assert (first["builds"], second["builds"]) == (3, 1)
    assert second["draws"] == first["draws"]
    assert len(list((tmp_path / jax_cache.PROGRAMS_DIR).glob("*.bin"))) == 2
