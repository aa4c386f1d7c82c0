"""What both ADVI engines share: the loop (`fit_advi`), the learning-rate schedule, the
convergence rule and the layout of the kept variational parameters (`gaussian_variational`).

Keeping them here, backend-free, is what makes NumPyro's and PyMC's ADVI run the same optimisation:
Adam with the step size

    lr(t) = learning_rate / (1 + t / lr_decay_steps),   t = 0, 1, 2, ...

(inverse-time decay, so the iterate settles at the optimum instead of jittering around it), and
the stopping rule

    steps are taken in windows of ``window``; after window k (k >= 2) with mean loss L_k,
    stop when ``|L_k - L_{k-1}| < tol * max(|L_k|, 1)`` and at least ``min_steps`` steps were taken;
    never take more than `max_windows` windows (``max_steps`` rounded down to whole windows).

then ``average_steps`` more steps (whole windows) whose iterates are averaged (Polyak–Ruppert):
the fitted q is the average, which removes most of the last iterate's jitter around the optimum.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import xarray as xr

_log = logging.getLogger(__name__)

LOOP_SETTINGS = ("max_steps", "min_steps", "tol", "average_steps")
"""The `AdviSettings` only `fit_advi`'s loop reads: how many windows it runs and averages. No
compiled program holds them, so the engines leave them out of their programs' keys
(`inference.ppl.programs.problem_key`)."""


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


class AdviRun(Protocol):
    """One ADVI optimisation of a compiled program, started at its initial state and seed."""

    def run_window(self) -> np.ndarray:
        """Take one window of steps; return their losses (negative ELBO estimates)."""

    def average_windows(self, windows: int) -> np.ndarray:
        """Take ``windows`` more windows and set q to the average of the iterates (Polyak–
        Ruppert, in the optimiser's parameterisation); return their losses."""

    def draws(self, num_draws: int) -> dict[str, np.ndarray]:
        """Draws from the fitted q of every public parameter, leading ``(1, draw)`` axes."""

    def variational(self) -> xr.Dataset:
        """The fitted q's parameters (see `gaussian_variational`)."""


def fit_advi(
    start: Callable[[], AdviRun],
    spec: Any,
    data: Any,
    *,
    backend: str,
    family: str,
    settings: Any,
    seed: int,
    compile_time_s: float,
    progressbar: bool,
) -> Any:
    """The ADVI loop both PPL adapters share: start, optimise under the rule, draw, keep q.

    Parameters
    ----------
    start : callable
        Returns an `AdviRun` at its initial state (q and optimiser reset, ``seed`` applied).
    spec, data
        The model and data (for the contract).
    backend, family : str
        Recorded in the result.
    settings : AdviSettings
        The convergence rule, step cap and number of draws.
    seed : int
        Recorded in the result (``start`` has already used it).
    compile_time_s : float
        Time spent compiling the program of this problem (0 when it was cached).
    progressbar : bool
        A bar over windows of steps.

    Returns
    -------
    arviz.InferenceData
        The contract, with ``vi_trace`` (loss per step) and ``variational`` (q's parameters).
    """
    from inference.contract import build_inference_data

    started = time.perf_counter()
    run = start()
    losses, converged = optimise(
        run.run_window,
        tol=settings.tol,
        min_steps=settings.min_steps,
        max_steps=settings.max_steps,
        window=settings.window,
        progressbar=progressbar,
        description=f"{backend} ADVI:{family} {spec.name}",
    )
    averaged = settings.average_steps // settings.window
    if averaged:
        losses = np.concatenate([losses, run.average_windows(averaged)])
    draws = run.draws(settings.num_draws)
    variational = run.variational()
    run_time = time.perf_counter() - started
    return build_inference_data(
        spec,
        data,
        draws,
        backend=backend,
        method="advi",
        family=family,
        seed=seed,
        settings=settings,
        compile_time_s=compile_time_s,
        run_time_s=run_time,
        vi_loss=losses,
        variational=variational,
        analytic_moments=gaussian_q_moments(variational, spec),
        extra_attrs={
            "vi_steps": int(losses.size),
            "vi_converged": int(converged),
            "vi_averaged_steps": int(averaged * settings.window),
        },
    )


@dataclass(frozen=True)
class DenseFactor:
    """A Gaussian factor with a dense covariance over several unconstrained sites.

    Attributes
    ----------
    sites : tuple of (str, int)
        The sites it covers, in order, with their sizes (flattened).
    loc : ndarray, shape (k,)
        Mean.
    scale_tril : ndarray, shape (k, k)
        Lower Cholesky factor of the covariance.
    """

    sites: tuple[tuple[str, int], ...]
    loc: np.ndarray
    scale_tril: np.ndarray

    def labels(self) -> list[str]:
        """``site[i]`` for each element (``site`` alone for a scalar site)."""
        out = []
        for name, size in self.sites:
            out += [name] if size == 1 else [f"{name}[{i}]" for i in range(size)]
        return out


def gaussian_variational(
    *,
    family: str,
    diagonal: Mapping[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]],
    dense: Mapping[str, DenseFactor],
    transforms: Mapping[str, str],
) -> xr.Dataset:
    """The ``variational`` group of a Gaussian q in the unconstrained space.

    Parameters
    ----------
    family : str
        The variational family.
    diagonal : mapping
        ``site -> (dims, loc, scale)`` of each mean-field factor; stored as ``<site>_loc`` and
        ``<site>_scale`` with the site's dims.
    dense : mapping
        ``name -> DenseFactor``; stored as ``<name>_loc`` (dim ``<name>_latent``) and
        ``<name>_scale_tril`` (dims ``<name>_latent``, ``<name>_latent_col``), the coordinate
        naming each element ``site[i]``.
    transforms : mapping
        ``site -> "identity" | "log"``: how each site's unconstrained value maps to the
        constrained one (``log``: the site is ``exp`` of it).

    Returns
    -------
    xarray.Dataset
        With attrs ``family``, ``space = "unconstrained"``, ``transforms`` and ``layout``
        (JSON: ``{"diagonal": [sites], "dense": {name: [[site, size], ...]}}``).
    """
    variables: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    for site, (dims, loc, scale) in diagonal.items():
        variables[f"{site}_loc"] = (dims, np.asarray(loc, dtype=float))
        variables[f"{site}_scale"] = (dims, np.asarray(scale, dtype=float))
    for name, factor in dense.items():
        row, col = f"{name}_latent", f"{name}_latent_col"
        variables[f"{name}_loc"] = ((row,), np.asarray(factor.loc, dtype=float))
        variables[f"{name}_scale_tril"] = ((row, col), np.asarray(factor.scale_tril, dtype=float))
        coords[row] = factor.labels()
        coords[col] = factor.labels()
    layout = {
        "diagonal": list(diagonal),
        "dense": {name: [list(site) for site in f.sites] for name, f in dense.items()},
    }
    return xr.Dataset(
        variables,
        coords=coords,
        attrs={
            "family": family,
            "space": "unconstrained",
            "transforms": json.dumps(dict(transforms)),
            "layout": json.dumps(layout),
        },
    )


def _site_marginals(variational: xr.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean and SD of every unconstrained site's elements under a Gaussian q."""
    layout = json.loads(variational.attrs["layout"])
    marginals = {
        site: (variational[f"{site}_loc"].values, variational[f"{site}_scale"].values)
        for site in layout["diagonal"]
    }
    for name, sites in layout["dense"].items():
        loc = variational[f"{name}_loc"].values
        tril = variational[f"{name}_scale_tril"].values
        sd = np.sqrt(np.sum(tril * tril, axis=1))
        start = 0
        for site, size in sites:
            marginals[site] = (loc[start : start + size], sd[start : start + size])
            start += size
    return marginals


def _same_dense_block(variational: xr.Dataset, first: str, second: str) -> bool:
    layout = json.loads(variational.attrs["layout"])
    return any({first, second} <= {site for site, _ in sites} for sites in layout["dense"].values())


def lognormal_moments(
    mean: np.ndarray, sd: np.ndarray, power: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of ``exp(power * zeta)`` for ``zeta ~ N(mean, sd^2)``."""
    m, s2 = power * mean, (power * sd) ** 2
    first = np.exp(m + s2 / 2)
    return first, first * np.sqrt(np.expm1(s2))


def gaussian_q_moments(variational: xr.Dataset, spec: Any) -> dict[str, dict[str, Any]]:
    """Exact means and SDs under a Gaussian q (unconstrained space) of the public parameters.

    Sites with the identity transform keep their Gaussian marginal; a precision ``tau =
    exp(zeta)`` is log-normal, and so are ``sigma = exp(-zeta/2)`` and ``sigma2 = exp(-zeta)``.
    The non-centred ``u = z exp(-zeta_u / 2)`` has ``E[u] = E[z] E[exp(-zeta_u/2)]`` and
    ``E[u^2] = E[z^2] E[exp(-zeta_u)]`` when z and zeta_u are independent under q (mean-field and
    block families); under a full-rank q it is left out (its SD then comes from the draws).
    Moments from q itself carry no Monte-Carlo error, so a ratio's interval is the reference's.

    Returns
    -------
    dict
        ``{name: {"mean": ..., "sd": ...}}`` as `inference.contract.analytic_moments` stores them.
    """
    marginals = _site_marginals(variational)
    transforms = json.loads(variational.attrs["transforms"])
    moments: dict[str, dict[str, Any]] = {}

    def store(name: str, mean: np.ndarray, sd: np.ndarray) -> None:
        scalar = not spec.dims().get(name)
        mean, sd = np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
        moments[name] = {
            "mean": float(mean.reshape(-1)[0]) if scalar else mean.tolist(),
            "sd": float(sd.reshape(-1)[0]) if scalar else sd.tolist(),
        }

    for site, (mean, sd) in marginals.items():
        if transforms.get(site) == "log":
            suffix = site.removeprefix("tau_")
            store(site, *lognormal_moments(mean, sd, 1.0))
            store(f"sigma_{suffix}", *lognormal_moments(mean, sd, -0.5))
            store(f"sigma2_{suffix}", *lognormal_moments(mean, sd, -1.0))
        elif site in spec.parameters:
            store(site, mean, sd)
    if (
        "z" in marginals
        and "tau_u" in marginals
        and not _same_dense_block(variational, "z", "tau_u")
    ):
        (z_mean, z_sd), (t_mean, t_sd) = marginals["z"], marginals["tau_u"]
        half, _ = lognormal_moments(t_mean, t_sd, -0.5)
        inverse, _ = lognormal_moments(t_mean, t_sd, -1.0)
        mean = z_mean * half
        store("u", mean, np.sqrt(np.maximum((z_mean**2 + z_sd**2) * inverse - mean**2, 0.0)))
    return {name: value for name, value in moments.items() if name in spec.public_names}
