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

Programs whose whole run is brief are also compiled without LLVM's optimisation of the
generated code (`BRIEF_OPTIONS`, ``brief``): the programs a fit calls once (ADVI's initial state
and its draws from q), and the loops of small fits (ADVI's window, NUTS; `is_brief`). Measured
2026-11-27 (2 cores, fresh processes, M0 with 20 rows per group at Q = 50, 4,000 draws; 1,000
groups of one row, 1,000 draws): the draw program compiled in 0.26 s instead of 0.42
(mean-field) and in 0.29 s instead of 0.54 (block), and ran 0.02-0.09 s longer; the initial
state compiled in 0.05-0.13 s instead of 0.07-0.20. A loop without LLVM's optimisation runs
about twice as long per step (`benchmarks/xla_compile.py --options`), so only small fits get it:
measured 2026-11-28 (2 cores, fresh processes, no persistent cache, twice each):

- ADVI on 4 groups of 6 rows (128 padded rows), 1,200 steps: M0 mean-field compiled in 2.04-2.07
  s instead of 2.39-2.54 and ran 0.30 s instead of 0.28-0.32; block 3.14-3.19 s instead of
  4.00-4.03, running 0.13 s instead of 0.07; M3 mean-field 1.53-1.63 s instead of 1.79-1.86,
  running 0.05 s instead of 0.03. At Q = 50 (1,024 rows) and 7,000 steps the loop lost: 0.3-0.7
  s less compiling, 0.7-1.2 s more running.
- NUTS, 2 chains of 200 + 200 on 24 rows (M0, M3, M1): 0.3-0.4 s less compiling, 0.01-0.02 s
  more running; 4 chains of 500 + 1,000 on M0 at Q = 20 (400 rows): 0.5 s less compiling, 1.0 s
  more running.

Without LLVM's optimisation the numbers differ in the last bits, so a brief program and a full
one are different programs and their keys decide which is built: NUTS's key holds everything
`is_brief` reads, ADVI's holds the choice itself (its step cap is a run-time setting).

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
BRIEF_OPTIONS = {"xla_backend_optimization_level": 0}
"""Added to `FAST_COMPILE_OPTIONS` for a program whose whole run is brief (`compile_options`)."""
BRIEF_WORK = {"advi": 1 << 20, "nuts": 1 << 18}
"""Rows times iterations up to which a loop's whole run is brief (`is_brief`): about a quarter of
where, measured, the running it adds outweighs the compiling it saves."""
_unknown_options = False
"""Set once this jaxlib rejected an option (`FAST_COMPILE_OPTIONS`, `BRIEF_OPTIONS`): compile
with the defaults from then on."""


def is_brief(loop: str, n_rows: int, iterations: int) -> bool:
    """Whether a loop of at most ``iterations`` iterations on ``n_rows`` rows runs briefly enough
    to be compiled with `BRIEF_OPTIONS`.

    Parameters
    ----------
    loop : {"advi", "nuts"}
        ADVI's window (``iterations``: the step cap) or NUTS (all chains' iterations).
    n_rows : int
        Rows of data the loop is compiled for (after padding).
    iterations : int
        The most iterations a fit runs.

    Returns
    -------
    bool
        ``n_rows * iterations <= BRIEF_WORK[loop]``.
    """
    return n_rows * iterations <= BRIEF_WORK[loop]


def compile_options(n_rows: int, brief: bool = False) -> dict[str, Any] | None:
    """The XLA compiler options for a program compiled for ``n_rows`` rows (``None``: defaults).

    Parameters
    ----------
    n_rows : int
        Rows of data the program is compiled for (after padding).
    brief : bool
        The program's whole run is brief: it is called once per fit (an initial state, draws
        from q), or it is the loop of a small fit (`is_brief`).

    Returns
    -------
    dict or None
        `FAST_COMPILE_OPTIONS` on the CPU backend for at most `FAST_COMPILE_MAX_ROWS` rows, with
        `BRIEF_OPTIONS` for a ``brief`` program.
    """
    if _unknown_options or n_rows > FAST_COMPILE_MAX_ROWS or jax.default_backend() != "cpu":
        return None
    return {**FAST_COMPILE_OPTIONS, **(BRIEF_OPTIONS if brief else {})}


def compile_program(lowered: Any, n_rows: int, brief: bool = False) -> Any:
    """Compile a lowered JAX program (``jax.jit(f).lower(...)``) with `compile_options`.

    Parameters
    ----------
    lowered : jax.stages.Lowered
        The program.
    n_rows : int
        Rows of data it is compiled for.
    brief : bool
        The program's whole run is brief (`BRIEF_OPTIONS`).

    Returns
    -------
    jax.stages.Compiled
        The executable; marked (`jax_cache.mark_loaded`) where JAX loaded it from its
        persistent cache.
    """
    hits = jax_cache.jax_cache_hits()
    compiled = _compile(lowered, compile_options(n_rows, brief))
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
