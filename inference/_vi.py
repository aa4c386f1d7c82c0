"""What both ADVI engines share: the learning-rate schedule and the convergence rule.

Keeping them here, backend-free, is what makes NumPyro's and PyMC's ADVI run the same optimisation:
Adam with the step size

    lr(t) = learning_rate / (1 + t / lr_decay_steps),   t = 0, 1, 2, ...

(inverse-time decay, so the iterate settles at the optimum instead of jittering around it), and
the stopping rule

    steps are taken in windows of ``window``; after window k (k >= 2) with mean loss L_k,
    stop when ``|L_k - L_{k-1}| < tol * max(|L_k|, 1)`` and at least ``min_steps`` steps were taken;
    never take more than `max_windows` windows (``max_steps`` rounded down to whole windows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

_log = logging.getLogger(__name__)


def learning_rate_at(step: int | np.ndarray, learning_rate: float, decay_steps: int):
    """Adam step size at step ``step`` (0-based): ``learning_rate / (1 + step / decay_steps)``."""
    return learning_rate / (1.0 + step / decay_steps)


def max_windows(max_steps: int, window: int) -> int:
    """Number of windows allowed by the step cap (at least one)."""
    return max(1, max_steps // window)


@dataclass
class ConvergenceRule:
    """The windowed relative-change rule of the module docstring, fed one window at a time.

    Parameters
    ----------
    tol : float
        Relative tolerance on the change of the window mean loss.
    min_steps : int
        Steps always taken before the rule may stop.
    window : int
        Steps per window.
    """

    tol: float
    min_steps: int
    window: int
    means: list[float] = field(default_factory=list)

    def update(self, losses: np.ndarray) -> bool:
        """Record one window of losses; return whether optimisation has converged.

        Raises
        ------
        FloatingPointError
            If a loss is NaN or infinite (the optimisation diverged).
        """
        losses = np.asarray(losses, dtype=float)
        if not np.all(np.isfinite(losses)):
            raise FloatingPointError(
                f"ADVI diverged: non-finite loss after {len(self.means) * self.window} steps; "
                "lower settings.learning_rate or settings.init_scale"
            )
        self.means.append(float(losses.mean()))
        if len(self.means) < 2 or len(self.means) * self.window < self.min_steps:
            return False
        current, previous = self.means[-1], self.means[-2]
        return abs(current - previous) < self.tol * max(abs(current), 1.0)

    @property
    def steps(self) -> int:
        """Steps taken so far."""
        return len(self.means) * self.window


def optimise(
    run_window: Callable[[], np.ndarray],
    *,
    tol: float,
    min_steps: int,
    max_steps: int,
    window: int,
    progressbar: bool = False,
    description: str = "ADVI",
) -> tuple[np.ndarray, bool]:
    """Call ``run_window`` (one window of optimisation steps) until the rule says stop.

    Parameters
    ----------
    run_window : callable
        Takes ``window`` optimisation steps and returns their losses (negative ELBO).
    tol, min_steps, max_steps, window
        The convergence rule and cap of the module docstring.
    progressbar : bool
        Show a tqdm bar over windows.
    description : str
        Label of the bar and of the log line.

    Returns
    -------
    losses : ndarray
        The loss of every step taken.
    converged : bool
        ``False`` when the step cap stopped the optimisation.
    """
    from tqdm.auto import tqdm

    rule = ConvergenceRule(tol=tol, min_steps=min_steps, window=window)
    losses: list[np.ndarray] = []
    converged = False
    windows = range(max_windows(max_steps, window))
    for _ in tqdm(windows, desc=description, disable=not progressbar, unit="window"):
        losses.append(np.asarray(run_window(), dtype=float))
        if rule.update(losses[-1]):
            converged = True
            break
    _log.info(
        "%s %s after %d steps (mean loss of the last window %.6g)",
        description,
        "converged" if converged else "hit the step cap",
        rule.steps,
        rule.means[-1],
    )
    return np.concatenate(losses), converged
