"""JAX's persistent compilation cache, in the user cache directory.

NumPyro's programs (ADVI windows, draws, NUTS) are compiled by XLA on their first fit in every
process: 3-10 s per program and data shape on 2 cores. With the persistent cache a later
process (a worker of the next study, the next test run) loads the executable from disk after
tracing and lowering, which are a fraction of a second. `enable` is called when
`inference.ppl.numpyro_engine` is imported, before it compiles anything, so every process that
fits with NumPyro -- spawned workers included -- uses it.

The cache lives in ``$VISTUDY_CACHE_DIR/jax``, by default ``$XDG_CACHE_HOME/vistudy/jax`` or
``~/.cache/vistudy/jax``. ``VISTUDY_CACHE_DIR=""`` turns it off; a cache directory set by the
user through JAX itself (``JAX_COMPILATION_CACHE_DIR``) is left as it is. Only programs that
took at least `MIN_COMPILE_S` to compile are stored: every program, since loading one is faster
than compiling it even when compiling takes a tenth of a second (NUTS's initial step, the draws
from q).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

CACHE_ENV = "VISTUDY_CACHE_DIR"
MIN_COMPILE_S = 0.0
"""Programs that compiled faster than this are not worth a file. 0: store every one. Measured
2026-11-26 (2 cores; M0 and M3, ADVI and NUTS at Q = 10 and 50, 8 fits, warm cache, 3 pairs of
runs): 4.25-4.57 s compiling and 9.4-9.9 s in all with 0, against 4.78-5.48 s and 10.2-11.2 s
with 0.2 s; the cache holds 41 files (3.1 MB) instead of 12 (2.9 MB)."""

logger = logging.getLogger(__name__)


def cache_root() -> Path | None:
    """vistudy's cache directory (``None`` when ``VISTUDY_CACHE_DIR`` is set to ``""``)."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return Path(value).expanduser() if value else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vistudy"


def enable() -> Path | None:
    """Point JAX's persistent compilation cache at ``<cache_root>/jax``; return the folder used.

    Returns
    -------
    Path or None
        The cache folder, or ``None`` when the cache is off.
    """
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    root = cache_root()
    if root is None:
        return None
    path = root / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a read-only home: compile without the cache
        logger.warning("JAX compilation cache off: cannot create %s (%s)", path, error)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
