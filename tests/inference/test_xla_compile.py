"""XLA compiler options by data size: the older emitter for small programs, the same numbers."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inference.ppl import xla_compile


def _program(n_rows: int):
    def log_density(x, y):
        return jnp.sum(jax.nn.log_sigmoid(y * x) - 0.5 * jnp.log1p(jnp.exp(x) ** 2))

    x = jnp.linspace(-3.0, 3.0, n_rows)
    y = jnp.where(jnp.arange(n_rows) % 3 == 0, 1.0, -1.0)
    return jax.jit(jax.value_and_grad(log_density)).lower(x, y), (x, y)


class _Recording:
    """A lowered program that records the options it is compiled with."""

    def __init__(self, lowered):
        self.lowered, self.options = lowered, []

    def compile(self, compiler_options=None):
        self.options.append(compiler_options)
        return self.lowered.compile(compiler_options=compiler_options)


@pytest.mark.parametrize("brief", [False, True])
@pytest.mark.parametrize("n_rows", [10, xla_compile.FAST_COMPILE_MAX_ROWS + 1])
def test_small_programs_get_the_older_emitter_and_compute_the_same(n_rows, brief, monkeypatch):
    """Small programs: the older emitter, and without LLVM's optimisation when their whole run
    is brief; the numbers are XLA's defaults' to rounding."""
    monkeypatch.setattr(xla_compile, "_unknown_options", False)
    lowered, args = _program(n_rows)
    recording = _Recording(lowered)
    value, grad = xla_compile.compile_program(recording, n_rows, brief)(*args)
    expected_options = None
    if n_rows <= xla_compile.FAST_COMPILE_MAX_ROWS:
        brief_options = xla_compile.BRIEF_OPTIONS if brief else {}
        expected_options = {**xla_compile.FAST_COMPILE_OPTIONS, **brief_options}
    assert recording.options == [expected_options]
    expected_value, expected_grad = lowered.compile()(*args)
    np.testing.assert_allclose(value, expected_value, rtol=1e-13)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-13, atol=1e-15)


def test_options_this_jaxlib_does_not_know_fall_back_to_the_defaults(monkeypatch, caplog):
    monkeypatch.setattr(xla_compile, "_unknown_options", False)
    monkeypatch.setattr(xla_compile, "FAST_COMPILE_OPTIONS", {"xla_cpu_no_such_option": True})
    lowered, args = _program(10)
    with caplog.at_level(logging.INFO, logger=xla_compile.__name__):
        value, _ = xla_compile.compile_program(lowered, 10)(*args)
    np.testing.assert_allclose(value, lowered.compile()(*args)[0], rtol=1e-13)
    assert "xla_cpu_no_such_option" in caplog.text
    recording = _Recording(lowered)
    xla_compile.compile_program(recording, 10)  # asks once, then compiles with the defaults
    assert recording.options == [None]


def test_other_compile_errors_are_not_swallowed(monkeypatch):
    class Failing:
        def compile(self, compiler_options=None):
            raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: out of memory")

    monkeypatch.setattr(xla_compile, "_unknown_options", False)
    with pytest.raises(jax.errors.JaxRuntimeError, match="RESOURCE_EXHAUSTED"):
        xla_compile.compile_program(Failing(), 10)


@pytest.mark.parametrize("small_fit", [True, False])
def test_advi_optimises_its_window_unless_the_fit_is_small(small_fit, monkeypatch):
    """NumPyro ADVI's initial state, parameters and draws from q run once: compiled with
    `BRIEF_OPTIONS`. Its window runs thousands of times per fit: optimised unless the fit is
    small (at most ``BRIEF_WORK["advi"]`` padded rows times ``max_steps``)."""
    import re

    from inference import fit
    from inference.ppl import jax_cache, numpyro_engine
    from models import simulate

    monkeypatch.setenv(jax_cache.CACHE_ENV, "")  # build, do not load from the program store
    if not small_fit:
        monkeypatch.setitem(xla_compile.BRIEF_WORK, "advi", 100 * 30 - 1)
    compiled = {}

    def recording(lowered, n_rows, brief=False):
        name = re.search(r"module @jit_([a-z_]+?)(_[0-9a-f]{10})?\b", lowered.as_text())[1]
        compiled[name] = brief
        return xla_compile.compile_program(lowered, n_rows, brief)

    monkeypatch.setattr(numpyro_engine, "compile_program", recording)
    data, _ = simulate("linear", n_obs=30, seed=2)  # not padded: M1 has no groups
    settings = {"max_steps": 100, "min_steps": 50, "window": 50, "num_draws": 10}
    settings["init_scale"] = 0.123  # a problem no other test has compiled in this process
    fit("linear", data, backend="numpyro", method="advi", settings=settings, seed=0)
    assert compiled == {"init": True, "window": small_fit, "raw_params": True, "draw": True}


@pytest.mark.parametrize(("num_chains", "brief"), [(2, True), (3, False)])
def test_nuts_is_compiled_for_a_brief_run_when_the_fit_is_small(num_chains, brief, monkeypatch):
    """NumPyro's NUTS program is compiled with `BRIEF_OPTIONS` when the rows times all chains'
    iterations are at most ``BRIEF_WORK["nuts"]``."""
    from inference.ppl import numpyro_engine
    from models import get_model, simulate

    options = []

    def recording(lowered, n_rows, brief=False):
        options.append(brief)

    monkeypatch.setitem(xla_compile.BRIEF_WORK, "nuts", 30 * 2 * 40)
    monkeypatch.setattr(numpyro_engine, "compile_program", recording)
    spec = get_model("linear")
    data, _ = simulate("linear", n_obs=30, seed=2)
    settings = numpyro_engine.NutsSettings(num_chains=num_chains, num_warmup=20, num_draws=20)
    numpyro_engine._build_nuts(spec, data, spec.priors(), settings)
    assert options == [brief]
