"""XLA compilation of NumPyro's programs, with cheaper code generation for small data.

XLA's CPU backend generates each fused kernel with its *fusion emitters* (the default since
JAX 0.5) or, with ``xla_cpu_use_fusion_emitters=False``, with its older elemental emitter. The
older one compiles a program faster, and the kernels it makes are slower on large arrays. For
the small data sets of the study and the tests compiling is most of a fit, so `compile_program`
turns the fusion emitters off for programs compiled for at most `FAST_COMPILE_MAX_ROWS` rows.

Measured 2026-11-27 (2 cores, fresh processes, no persistent cache, compile and run seconds of
NUTS and mean-field ADVI on M0 and M3, 20 rows per group; `benchmarks/xla_compile.py`):

- Q = 50 (1,000 rows): the four programs compiled (tracing included) in 11.5-11.9 s instead of
  15.7-17.4 s and ran in 6.1-6.7 s instead of 5.7-6.3 s;
- Q = 100 (2,000 rows): 11.8 and 12.2 s against 15.6 s compiling, running 1.25 s (11 %) slower;
- Q = 200 (4,000 rows): running 5 s slower, saving 1-2.5 s of compiling;
- Q = 1,000 and 10,000 (20,000 and 200,000 rows): NUTS ran in 112 s instead of 79 s and ADVI at
  Q = 10,000 in 71 s instead of 49 s.

The option is a per-program compiler option (not ``XLA_FLAGS``): nothing to set before JAX
starts, and JAX's persistent cache keys each program with its options. A jaxlib that does not
know the option (older, or one that dropped it) compiles with its defaults.
"""

from __future__ import annotations

import logging
from typing import Any

import jax

logger = logging.getLogger(__name__)

FAST_COMPILE_MAX_ROWS = 1024
"""Programs compiled for at most this many rows of data use the older, faster-compiling emitter
(`compile_program`); 0 turns that off."""
FAST_COMPILE_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
_unknown_options = False
"""Set once this jaxlib rejected `FAST_COMPILE_OPTIONS`: compile with the defaults from then on."""


def compile_options(n_rows: int) -> dict[str, Any] | None:
    """The XLA compiler options for a program compiled for ``n_rows`` rows (``None``: defaults).

    Parameters
    ----------
    n_rows : int
        Rows of data the program is compiled for (after padding).

    Returns
    -------
    dict or None
        `FAST_COMPILE_OPTIONS` on the CPU backend for at most `FAST_COMPILE_MAX_ROWS` rows.
    """
    if _unknown_options or n_rows > FAST_COMPILE_MAX_ROWS or jax.default_backend() != "cpu":
        return None
    return dict(FAST_COMPILE_OPTIONS)


def compile_program(lowered: Any, n_rows: int) -> Any:
    """Compile a lowered JAX program (``jax.jit(f).lower(...)``) with `compile_options`.

    Parameters
    ----------
    lowered : jax.stages.Lowered
        The program.
    n_rows : int
        Rows of data it is compiled for.

    Returns
    -------
    jax.stages.Compiled
        The executable.
    """
    global _unknown_options
    options = compile_options(n_rows)
    if options is None:
        return lowered.compile()
    try:
        return lowered.compile(compiler_options=options)
    except jax.errors.JaxRuntimeError as error:
        if "compile option" not in str(error):
            raise
        logger.info("XLA compiler options %s unknown to this jaxlib: defaults used", options)
        _unknown_options = True
        return lowered.compile()
