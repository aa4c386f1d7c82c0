"""XLA compilation of NumPyro's programs, with cheaper code generation for small data.

XLA's CPU backend generates each fused kernel with its *fusion emitters* (its default in the
JAX this project installs) or, with ``xla_cpu_use_fusion_emitters=False``, with its older
elemental emitter. The older one compiles a program faster, and the kernels it makes are slower
on large arrays. For the small data sets of the study and the tests compiling is most of a fit,
so `compile_program` turns the fusion emitters off for programs compiled for at most
`FAST_COMPILE_MAX_ROWS` rows.

Measured 2026-11-27 with `benchmarks/xla_compile.py` (2 cores; fresh processes without the
persistent cache; NUTS and mean-field ADVI on M0 and M3 with 20 rows per group; medians of 3,
this module against XLA's defaults; compile and run seconds summed over M0 and M3 and
including tracing and lowering):

- Q = 10 (200 rows): NUTS compiled in 6.6 s instead of 8.1, ADVI in 6.5 s instead of 7.6; a
  NUTS leapfrog step took 16.9 us instead of 14.4, an ADVI step 72 us instead of 66: 0.2 s
  more running in all;
- Q = 50 (1,000 rows): NUTS 6.7 s instead of 8.2, ADVI 6.5 s instead of 8.9; 46 against 43 us
  per leapfrog step, 98 against 94 us per ADVI step: again 0.2 s more running;
- Q = 100 (2,000 rows): 3.7 s less compiling, 1.4 s (12 %) more running; Q = 200 (4,000
  rows): 3.6 s less compiling, 6 s (23 %) more running;
- Q = 1,000 and 10,000: NUTS at Q = 1,000 ran 112 s instead of 79, ADVI at Q = 10,000 71 s
  instead of 49.

Issue 13's grid, cold: NumPyro's NUTS compiled in 56.9 s instead of 82.1 (summed over its 16
fits; two runs an hour apart).

Programs a fit calls once (ADVI's initial state and its draws from q, ``runs_once``) are also
compiled without LLVM's optimisation of the generated code (`RUN_ONCE_OPTIONS`): what it costs
in running is paid once per fit. Measured 2026-11-27 (2 cores, fresh processes, M0 with 20
rows per group at Q = 50, 4,000 draws; 1,000 groups of one row, 1,000 draws): the draw program
compiled in 0.26 s instead of 0.42 (mean-field) and in 0.29 s instead of 0.54 (block), and ran
0.02-0.09 s longer; the initial state compiled in 0.05-0.13 s instead of 0.07-0.20. The
programs a fit runs thousands of times (ADVI's window, NUTS) keep LLVM's optimisation, which
halves their running (`benchmarks/xla_compile.py --options`).

The option is a per-program compiler option (not ``XLA_FLAGS``): nothing to set before JAX
starts, and JAX's persistent cache keys each program with its options. A jaxlib that does not
know the option (older, or one that dropped it) compiles with its defaults.
"""

from __future__ import annotations

import logging
from typing import Any

import jax

from inference.ppl import jax_cache

logger = logging.getLogger(__name__)

FAST_COMPILE_MAX_ROWS = 1024
"""Programs compiled for at most this many rows of data use the older, faster-compiling emitter
(`compile_program`); 0 turns that off."""
FAST_COMPILE_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
RUN_ONCE_OPTIONS = {"xla_backend_optimization_level": 0}
"""Added to `FAST_COMPILE_OPTIONS` for a program called once per fit (`compile_options`)."""
_unknown_options = False
"""Set once this jaxlib rejected an option (`FAST_COMPILE_OPTIONS`, `RUN_ONCE_OPTIONS`): compile
with the defaults from then on."""


def compile_options(n_rows: int, runs_once: bool = False) -> dict[str, Any] | None:
    """The XLA compiler options for a program compiled for ``n_rows`` rows (``None``: defaults).

    Parameters
    ----------
    n_rows : int
        Rows of data the program is compiled for (after padding).
    runs_once : bool
        The program is called once per fit (an initial state, draws from q).

    Returns
    -------
    dict or None
        `FAST_COMPILE_OPTIONS` on the CPU backend for at most `FAST_COMPILE_MAX_ROWS` rows, with
        `RUN_ONCE_OPTIONS` for a program that ``runs_once``.
    """
    if _unknown_options or n_rows > FAST_COMPILE_MAX_ROWS or jax.default_backend() != "cpu":
        return None
    return {**FAST_COMPILE_OPTIONS, **(RUN_ONCE_OPTIONS if runs_once else {})}


def compile_program(lowered: Any, n_rows: int, runs_once: bool = False) -> Any:
    """Compile a lowered JAX program (``jax.jit(f).lower(...)``) with `compile_options`.

    Parameters
    ----------
    lowered : jax.stages.Lowered
        The program.
    n_rows : int
        Rows of data it is compiled for.
    runs_once : bool
        The program is called once per fit (`RUN_ONCE_OPTIONS`).

    Returns
    -------
    jax.stages.Compiled
        The executable; marked (`jax_cache.mark_loaded`) where JAX loaded it from its
        persistent cache.
    """
    hits = jax_cache.jax_cache_hits()
    compiled = _compile(lowered, compile_options(n_rows, runs_once))
    if jax_cache.jax_cache_hits() != hits:
        jax_cache.mark_loaded(compiled)
    return compiled


def _compile(lowered: Any, options: dict[str, Any] | None) -> Any:
    global _unknown_options
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
