"""Files written so that a reader never sees half of one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def replace_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """``write`` a temporary file ``.<name>.<pid>.tmp`` next to ``path``, then rename it into
    place: readers (other processes included) see the old file or the new one, never half of
    one. The temporary file is removed if writing fails (a stopped study removes any left
    behind, `study.runner.remove_temporary_files`).

    Parameters
    ----------
    path : Path
        The file to write or replace.
    write : callable
        Writes the new content to the path it is given.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
