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

vistudy's own store, ``<cache_root>/programs`` (`stored_program`), keeps NumPyro's compiled
programs themselves, found by their problem key, so that a later process skips tracing and
lowering as well.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import logging
import os
import pickle
import platform
import weakref
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inference.files import replace_atomically

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


# vistudy's own store of NumPyro's compiled programs -------------------------------------------

PROGRAMS_DIR = "programs"
"""Under `cache_root`: NumPyro's compiled programs, one file per problem (`stored_program`)."""
MAX_STORE_BYTES = 1 << 30
"""The store keeps at most this many bytes (1 GiB; about 0.5 MB per program), the least recently
used programs removed first (`prune`)."""
_FORMAT = ("vistudy-program", 1)
_SOURCE_PACKAGES = ("inference", "models")
"""Packages whose code traces NumPyro's programs: a change to any of their files is a new key."""
_TRACING_CONFIG = (
    "jax_enable_x64",
    "jax_default_prng_impl",
    "jax_threefry_partitionable",
    "jax_numpy_dtype_promotion",
    "jax_numpy_rank_promotion",
    "jax_default_matmul_precision",
)


def stored_program(key: tuple, build: Callable[[], Any]) -> Any:
    """The compiled program of problem ``key`` from vistudy's store, else ``build()``'s, stored.

    JAX's persistent cache saves XLA's compilation but not tracing and lowering, which a later
    process repeats for every program to find its cache entry: 0.5-0.9 s per NumPyro program
    on 2 cores (M0, Q = 5-100). This store keeps the compiled executables themselves
    (``jax.experimental.serialize_executable``), with the rest of the program (an ADVI
    program's layout), in ``<cache_root>/programs``, and loads one in 0.03-0.3 s. A file is
    found by ``key`` (`inference.ppl.programs.problem_key`: everything the program depends on)
    and what else shapes the traced program: the code of `_SOURCE_PACKAGES`, the versions of
    JAX, jaxlib, NumPyro and NumPy, JAX's tracing options (`_TRACING_CONFIG`), ``XLA_FLAGS``
    and the device. Nothing is stored when the cache is off (``VISTUDY_CACHE_DIR=""``), for a
    key that is not plain data, for a program JAX cannot serialize, for one with custom calls
    (LAPACK's, in the dense families' ADVI: a process that has not lowered one has no target
    for them and crashes), or for one holding an executable JAX loaded from its persistent
    cache (`jax_cache_hits`: after an edit of the code such programs build as fast as before,
    from JAX's cache, and are stored once XLA compiles them again); a file that fails to load
    is replaced.

    Parameters
    ----------
    key : tuple
        The problem's key: strings, numbers, booleans, ``None``, tuples and dataclasses of them.
    build : callable
        Builds the program: a ``jax.stages.Compiled`` or a dataclass holding some.

    Returns
    -------
    object
        The program.
    """
    path = _program_path(key)
    if path is None:
        return build()
    if path.exists():
        try:
            program = _unpack(pickle.loads(zlib.decompress(path.read_bytes())))
            _touch(path)
            return program
        except Exception as error:  # truncated, or from a jaxlib that reads it differently
            logger.warning("stored program %s unreadable (%s): compiled again", path.name, error)
            path.unlink(missing_ok=True)
    program = build()
    _store(path, program)
    return program


def problem_tag(key: tuple) -> str:
    """A short digest of problem ``key`` for the names of its compiled functions ("" for a key
    that is not plain data)."""
    try:
        return hashlib.sha256(_stable_text(key).encode()).hexdigest()[:10]
    except TypeError:
        return ""


_JAX_CACHE_HIT = "/jax/compilation_cache/cache_hits"
_jax_cache_hits = 0
_counting = False
_LOADED: weakref.WeakSet = weakref.WeakSet()
"""Executables JAX loaded from its persistent cache (`mark_loaded`)."""


def jax_cache_hits() -> int:
    """Executables this process has loaded from JAX's persistent cache so far.

    Counted from the first call on (``jax.monitoring``). `inference.ppl.xla_compile` compares
    the count before and after compiling each program and marks those JAX loaded
    (`mark_loaded`): such an executable runs, but serialized again it lacks its kernels (jaxlib
    0.10: "Function slice_bitcast_fusion.1 not found" when the copy runs, in any process), so
    `stored_program` does not store a program holding one.
    """
    global _counting
    if not _counting:
        import jax

        def listener(event: str, **kwargs: Any) -> None:
            global _jax_cache_hits
            if event == _JAX_CACHE_HIT:
                _jax_cache_hits += 1

        jax.monitoring.register_event_listener(listener)
        _counting = True
    return _jax_cache_hits


def mark_loaded(compiled: Any) -> None:
    """Note that JAX loaded ``compiled`` from its persistent cache (see `jax_cache_hits`)."""
    _LOADED.add(compiled)


def _program_path(key: tuple) -> Path | None:
    root = cache_root()
    if root is None:
        return None
    try:
        text = _stable_text(key)
    except TypeError as error:
        logger.debug("program not stored: %s", error)
        return None
    digest = hashlib.sha256(f"{_environment()}|{text}".encode()).hexdigest()[:40]
    return root / PROGRAMS_DIR / f"{digest}.bin"


def _stable_text(value: Any) -> str:
    """The same text for the same key in every process (``repr`` of plain data)."""
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ",".join(_stable_text(item) for item in value) + ")"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ",".join(
            f"{field.name}={_stable_text(getattr(value, field.name))}"
            for field in dataclasses.fields(value)
        )
        return f"{type(value).__module__}.{type(value).__qualname__}({fields})"
    raise TypeError(f"key part {value!r} ({type(value).__name__}) is not plain data")


@functools.cache
def _environment() -> str:
    """What shapes a traced and compiled program besides its key (see `stored_program`)."""
    import jax
    import jaxlib
    import numpy
    import numpyro

    device = jax.devices()[0]
    parts = [
        f"jax={jax.__version__}",
        f"jaxlib={jaxlib.__version__}",
        f"numpyro={numpyro.__version__}",
        f"numpy={numpy.__version__}",
        f"python={platform.python_version()}",
        f"machine={platform.machine()}",
        f"device={device.platform}:{device.device_kind}:{device.client.platform_version}",
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}",
        *(f"{name}={getattr(jax.config, name, None)}" for name in _TRACING_CONFIG),
        f"code={_source_digest()}",
    ]
    return "|".join(parts)


def _source_digest() -> str:
    digest = hashlib.sha256()
    for package in _SOURCE_PACKAGES:
        folder = Path(importlib.import_module(package).__file__).parent
        for path in sorted(folder.rglob("*.py")):
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class _Executable:
    """A serialized ``jax.stages.Compiled``."""

    payload: bytes
    in_tree: Any
    out_tree: Any


def _pack(program: Any) -> tuple:
    import jax
    from jax.experimental.serialize_executable import serialize

    def packed(value: Any) -> Any:
        if not isinstance(value, jax.stages.Compiled):
            return value
        if value in _LOADED:
            raise ValueError("an executable JAX loaded from its cache")
        if "custom_call_target" in value.as_text():
            # e.g. LAPACK's triangular solve in block ADVI's window: loaded in a process that
            # has not lowered one, the call finds no registered target and the process crashes
            raise ValueError("an executable with custom calls")
        return _Executable(*serialize(value))

    if isinstance(program, jax.stages.Compiled):
        return (*_FORMAT, packed(program))
    fields = {f.name: packed(getattr(program, f.name)) for f in dataclasses.fields(program)}
    return (*_FORMAT, type(program), fields)


def _unpack(stored: tuple) -> Any:
    from jax.experimental.serialize_executable import deserialize_and_load

    if tuple(stored[:2]) != _FORMAT:
        raise ValueError(f"not a {_FORMAT[0]} file of version {_FORMAT[1]}")

    def loaded(value: Any) -> Any:
        if isinstance(value, _Executable):
            return deserialize_and_load(value.payload, value.in_tree, value.out_tree)
        return value

    if len(stored) == 3:
        return loaded(stored[2])
    kind, fields = stored[2], stored[3]
    return kind(**{name: loaded(value) for name, value in fields.items()})


def _store(path: Path, program: Any) -> None:
    try:
        blob = zlib.compress(pickle.dumps(_pack(program), protocol=pickle.HIGHEST_PROTOCOL), 1)
    except Exception as error:  # e.g. a program with constants JAX cannot serialize yet
        logger.debug("program not stored: %s", error)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, lambda temporary: temporary.write_bytes(blob))
        prune(path.parent)
    except OSError as error:  # a read-only or full cache folder: keep going without it
        logger.warning("program not stored in %s: %s", path.parent, error)


def _touch(path: Path) -> None:
    """Mark ``path`` as used now (`prune` removes the least recently used files first)."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache: it is still read
        pass


def prune(folder: Path, max_bytes: int | None = None) -> list[Path]:
    """Remove the least recently used stored programs until ``folder`` holds at most
    ``max_bytes`` (`MAX_STORE_BYTES`); called after each program stored. Each version of the
    code stores its own programs, so without this the store would grow with every upgrade.

    Returns
    -------
    list of Path
        The files removed.
    """
    limit = MAX_STORE_BYTES if max_bytes is None else max_bytes
    files = []
    for path in folder.glob("*.bin"):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed by another process meanwhile
            continue
        files.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in files)
    removed = []
    for _, size, path in sorted(files):
        if total <= limit:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed.append(path)
    if removed:
        logger.info("removed %d least recently used program(s) from %s", len(removed), folder)
    return removed
