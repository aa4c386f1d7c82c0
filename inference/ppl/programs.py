"""The caches both PPL adapters keep (pure speed-ups, never state): compiled programs, and the
draws of their last few samplers.

A *problem* is (method and family, model, priors, settings, shape of the data): everything that
determines the compiled program. A later fit of the same problem to new data reuses it; its
``compile_time_s`` is then 0.

A sampler's draws are a function of its program, the data and the seed alone, so a second fit
of all three gets the first one's draws (`RecentDraws`). It happens where two models share one
posterior and NUTS samples both in the same coordinates (``NutsSettings.centring``: M2 sampled
as its centred form is M0's program on M0's data), e.g. a study that samples M0 and M2 with the
same seeds: issue 13's grid has 10 such references of its 32.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import replace
from typing import Any

import numpy as np

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


def data_fingerprint(data: RegressionData) -> str:
    """A digest of everything in ``data`` a sampler reads: ``X``, ``y``, the group index and the
    number of groups (not the names of columns or groups)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (data.X, data.y, data.group):
        if array is None:
            digest.update(b"none")
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data)
    digest.update(str(data.n_groups).encode())
    return digest.hexdigest()


class RecentDraws:
    """The outputs of the last ``size`` sampler runs, by everything that determines them.

    Parameters
    ----------
    size : int
        Runs kept (the oldest is forgotten first); a few suffice, as a study's runner starts a
        run that shares its program on the worker that has just run it
        (`study.schedule.program_of`).
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._outputs: OrderedDict[tuple, Any] = OrderedDict()

    def get(self, key: tuple, sample: Callable[[], Any]) -> tuple[Any, bool]:
        """``(outputs, reused)``: a copy of the kept outputs of ``key``, else ``sample()``'s,
        a copy of them kept.

        ``key`` must hold everything the outputs depend on: the program's key, the settings it
        does not hold, `data_fingerprint` and the seed.
        """
        if key in self._outputs:
            self._outputs.move_to_end(key)
            logger.info("reused the draws of an earlier run of the same program, data and seed")
            return copy.deepcopy(self._outputs[key]), True
        outputs = sample()
        self._outputs[key] = copy.deepcopy(outputs)  # the caller's arrays may change
        while len(self._outputs) > self.size:
            self._outputs.popitem(last=False)
        return outputs, False

    def clear(self) -> None:
        """Forget every kept output."""
        self._outputs.clear()
