"""Throwaway folders of the benchmarks (empty compile caches, a fresh ``HOME``), removed when
the benchmark exits: a cold run's caches are tens of MB each (PyTensor's C modules and the
precompiled header, XLA's executables) and would otherwise pile up in the temporary directory.
Folders a benchmark prints for inspection (results, the census's records) are not made here."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_dir(prefix: str) -> Path:
    """A new folder in the system's temporary directory, removed with its contents at exit.

    Parameters
    ----------
    prefix : str
        The start of the folder's name (e.g. ``"vistudy-pytensor-"``).

    Returns
    -------
    Path
        The folder.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
