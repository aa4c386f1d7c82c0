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


@pytest.mark.parametrize("n_rows", [10, xla_compile.FAST_COMPILE_MAX_ROWS + 1])
def test_small_programs_get_the_older_emitter_and_compute_the_same(n_rows, monkeypatch):
    monkeypatch.setattr(xla_compile, "_unknown_options", False)
    lowered, args = _program(n_rows)
    recording = _Recording(lowered)
    value, grad = xla_compile.compile_program(recording, n_rows)(*args)
    small = n_rows <= xla_compile.FAST_COMPILE_MAX_ROWS
    assert recording.options == [xla_compile.FAST_COMPILE_OPTIONS if small else None]
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
