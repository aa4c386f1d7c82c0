"""The compiled-program cache: one build per key, each build logged (and counted by the census)."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

from inference.ppl.programs import ProgramCache

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
