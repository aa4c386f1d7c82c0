"""The cache of compiled programs both PPL adapters keep (a pure speed-up, never state).

A *problem* is (method and family, model, priors, settings, shape of the data): everything that
determines the compiled program. A later fit of the same problem to new data reuses it; its
``compile_time_s`` is then 0.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import replace
from typing import Any

from models.spec import ModelSpec, RegressionData

logger = logging.getLogger(__name__)


def problem_key(
    method: str,
    spec: ModelSpec,
    data: RegressionData,
    priors: Any,
    settings: Any,
    *extra: Hashable,
    shape: tuple[int | None, int] | None = None,
    run_time: Iterable[str] = (),
) -> tuple:
    """The key of a problem: everything a compiled program depends on.

    ``shape`` is the ``(rows, groups)`` the program is compiled for when that is not the data's
    own (data padded to a fixed size, `inference.ppl.padding`); ``rows`` is ``None`` for a
    program that takes any number of rows (PyMC's ADVI step function). ``run_time`` names the
    fields of ``settings`` the program does not hold: the loop that runs it reads them (how many
    steps, the convergence rule) or passes them in (PyMC's step size). They are ``None`` in the
    key, so a fit that changes only those reuses the program.
    """
    rows, groups = shape or (data.n_obs, data.n_groups)
    built_in = replace(settings, **dict.fromkeys(run_time)) if run_time else settings
    return (method, spec.name, priors, built_in, (rows, data.n_coef), groups, *extra)


class ProgramCache:
    """Programs by problem key, built (and timed) on a miss."""

    def __init__(self) -> None:
        self._programs: dict[tuple, Any] = {}

    def get(self, key: tuple, build: Callable[[], Any]) -> tuple[Any, float]:
        """The program of ``key`` and the seconds spent building it (0 when cached).

        Each build is logged at DEBUG level (``built <seconds> s: <key>``), which
        `benchmarks/compile_census.py` collects from every process.
        """
        if key in self._programs:
            return self._programs[key], 0.0
        start = time.perf_counter()
        self._programs[key] = build()
        seconds = time.perf_counter() - start
        logger.debug("built %.3f s: %r", seconds, key)
        return self._programs[key], seconds

    def clear(self) -> None:
        """Forget every program (the next fit of each problem builds it again)."""
        self._programs.clear()
