"""gcc for PyTensor's C modules with the common headers precompiled and no debug information.

PyTensor compiles every C module of a PyMC program with ``g++ -shared -g -O3 ...``, and every
module begins with the same headers (``Python.h``, NumPy's, ``<vector>``, ``<algorithm>``):
parsing them, and writing debug information, is most of gcc's half second per module. Within
`c_compilation` (around each PyMC fit, `inference.ppl.pymc_engine`) the modules are compiled
with ``-g0 -include <compiledir>/vistudy-pch-<hash>/pytensor_headers.h`` added to
``gcc__cxxflags``: gcc reads those headers from a precompiled header (``.gch``, about 35 MB,
built in about a second once per compile directory, set of flags and versions of Python, NumPy,
PyTensor and gcc, which gcc does not check) and writes no debug
information. The machine code is the same: the same ``-O3``, target and code-generation flags
(``-g`` does not change the code gcc generates).

- Only `CLinker`'s modules: PyTensor's helper modules (``cutils_ext``, ``lazylinker_ext``)
  are imported, and so compiled if need be, before the flags change.
- The header is built with the flags PyTensor gives an elementwise module (its `CLinker`'s
  compile arguments, PyMC's ``gcc__cxxflags`` among them). gcc checks a precompiled header
  against each compilation (target, code-generation options, macros) and silently parses the
  header text instead when they differ, so a module with other flags is compiled as before.
- The flags are part of PyTensor's module keys, so these modules never stand in for the ones
  PyTensor compiles outside `c_compilation` (and the other way round); the header's path is
  fixed per compile directory, flags and versions, so a warm cache finds its modules again.
- The user's ``gcc__cxxflags`` (and those PyMC adds when it is imported, which it is first)
  are kept, ours added after them, and restored on exit.
  Without a C++ compiler, or with `ENABLED` off, nothing changes. A header that cannot be built
  leaves ``-g0`` alone.

Measured 2026-11-27 (2 cores): the 65 modules of PyMC's mean-field and block ADVI on M0 and M3
recompiled one after another by gcc with PyTensor's own commands took 36.8-40.1 s; with ``-g0``
and the precompiled header 20.9 s (``-O1`` as well: 16.3 s; ``-O0`` without the header 28.5 s:
parsing, not optimising, is the cost). `benchmarks/advi_compile.py gcc-opt` has the engine's
numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

from inference.files import replace_atomically

logger = logging.getLogger(__name__)

ENABLED = True
"""Compile PyMC's C modules with the precompiled header and ``-g0``; ``False``: PyTensor's
defaults."""
HEADERS = (
    "<Python.h>",
    '"pytensor_mod_helper.h"',
    "<math.h>",
    "<numpy/arrayobject.h>",
    "<numpy/arrayscalars.h>",
    "<numpy/npy_math.h>",
    "<vector>",
    "<algorithm>",
)
"""What every PyTensor C module includes first, in its order (`DynamicModule.code`)."""
NO_DEBUG_INFO = "-g0"
_headers_by_flags: dict[tuple[str, str], Path | None] = {}
"""The precompiled header of each (compile directory, user flags) this process has built or
found (``None``: it could not be built)."""


@contextlib.contextmanager
def c_compilation() -> Iterator[None]:
    """PyTensor compiles C modules with `HEADERS` precompiled and ``-g0`` within this context.

    Yields
    ------
    None
    """
    import pymc  # noqa: F401  (importing PyMC adds its own gcc__cxxflags: before reading them)
    import pytensor

    if not ENABLED or not pytensor.config.cxx:
        yield
        return
    # PyTensor's own helper modules (not CLinker's): compiled, if they must be, as PyTensor does
    from pytensor.link.c import cutils, lazylinker_c  # noqa: F401

    user_flags = pytensor.config.gcc__cxxflags
    flags = f"{user_flags} {NO_DEBUG_INFO}".strip()
    header = _precompiled_header(flags)
    if header is not None:
        flags = f"{flags} -include {header}"
    with pytensor.config.change_flags(gcc__cxxflags=flags):
        yield


def _precompiled_header(flags: str) -> Path | None:
    """The header (next to its ``.gch``) for modules compiled with ``gcc__cxxflags=flags``,
    built on first use; ``None`` when gcc cannot build it."""
    import pytensor

    compiledir = str(pytensor.config.compiledir)
    key = (compiledir, flags)
    if key in _headers_by_flags:
        known = _headers_by_flags[key]
        if known is None or _gch_exists(known):
            return known
    try:
        command = _gcc_command(flags)
    except Exception as error:  # PyTensor's internals moved: compile as PyTensor does
        logger.info("no precompiled header for PyTensor's modules: %s", error)
        _headers_by_flags[key] = None
        return None
    digest = hashlib.sha256("\0".join([*command, *HEADERS, *_versions()]).encode())
    digest = digest.hexdigest()[:16]
    header = Path(compiledir) / f"vistudy-pch-{digest}" / "pytensor_headers.h"
    if " " in str(header):  # PyTensor splits gcc__cxxflags at spaces
        header = None
    elif not _gch_exists(header):
        header = _build(header, command)
    _headers_by_flags[key] = header
    return header


def _versions() -> tuple[str, ...]:
    """What the headers' text depends on beyond the command: gcc does not check a precompiled
    header against the headers it was built from, so a new Python, NumPy, PyTensor or gcc gets a
    header of its own."""
    import sys

    import numpy
    import pytensor
    from pytensor.link.c.cmodule import GCC_compiler

    return (sys.version, numpy.__version__, pytensor.__version__, GCC_compiler.version_str())


def _gch_exists(header: Path | None) -> bool:
    return header is not None and header.with_suffix(".h.gch").exists()


def _gcc_command(flags: str) -> list[str]:
    """gcc's arguments for an elementwise module under ``gcc__cxxflags=flags``, as
    `pytensor.link.c.cmodule.GCC_compiler.compile_str` passes them (but the files)."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.fg import FunctionGraph
    from pytensor.link.c.basic import CLinker
    from pytensor.link.c.cmodule import std_include_dirs

    x, y = pt.dvectors("x", "y")
    with pytensor.config.change_flags(gcc__cxxflags=flags):
        linker = CLinker().accept(FunctionGraph([x, y], [pt.exp(x) + y], clone=True))
        arguments = linker.compile_args()
    include_dirs = [*linker.header_dirs(), *std_include_dirs()]
    return [
        pytensor.config.cxx,
        "-g",
        *arguments,
        *(f"-I{directory}" for directory in include_dirs if directory),
        "-fvisibility=hidden",
    ]


def _build(header: Path, command: list[str]) -> Path | None:
    """Write `HEADERS` to ``header`` and precompile it with ``command`` (both files replaced
    atomically, so a process never reads half of one); ``None`` when gcc fails."""
    header.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"#include {name}\n" for name in HEADERS)
    replace_atomically(header, lambda temporary: temporary.write_text(text))
    precompile = [*command, "-x", "c++-header", str(header), "-o"]
    try:
        replace_atomically(
            header.with_suffix(".h.gch"),
            lambda temporary: subprocess.run(
                [*precompile, str(temporary)], capture_output=True, text=True, check=True
            ),
        )
    except subprocess.CalledProcessError as error:
        logger.info("no precompiled header for PyTensor's modules: %s", error.stderr[-2000:])
        return None
    logger.debug("precompiled %s", header)
    return header
