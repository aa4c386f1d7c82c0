"""Read fits (in memory or a folder of NetCDF files) and pair VB fits with their references."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LABELS = {
    "random_intercept": "M0",
    "linear": "M1",
    "random_intercept_nc": "M2",
    "logistic_random_intercept": "M3",
}
LIKELIHOODS = {"logistic_random_intercept": "bernoulli"}


@dataclass(frozen=True)
class FitInfo:
    """What a fit is, read from its ``posterior.attrs``."""

    model: str
    backend: str
    method: str
    dataset: str
    n_groups: int
    seed: int

    @property
    def pair_key(self) -> tuple[str, str, int, int]:
        """Fits of the same (dataset, model, n_groups, seed) are compared with each other."""
        return (self.dataset, self.model, self.n_groups, self.seed)

    @property
    def label(self) -> str:
        """``backend/method``."""
        return f"{self.backend}/{self.method}"

    @property
    def vi1_label(self) -> str:
        """The row name of the VI1 table: ``M0_Q5`` ... or ``M1``."""
        base = LABELS.get(self.model, self.model)
        return f"{base}_Q{self.n_groups}" if self.n_groups else base


def fit_info(fit: Any) -> FitInfo:
    """Read `FitInfo` from a fit's attrs; raises ``ValueError`` naming a missing attr."""
    if not hasattr(fit, "posterior"):
        raise ValueError(f"fit: expected InferenceData with a posterior, got {type(fit).__name__}")
    attrs = fit.posterior.attrs
    try:
        return FitInfo(
            model=str(attrs["model"]),
            backend=str(attrs["backend"]),
            method=str(attrs["method"]),
            dataset=str(attrs.get("dataset", "")),
            n_groups=int(attrs.get("n_groups", 0)),
            seed=int(attrs.get("seed", 0)),
        )
    except KeyError as missing:
        raise ValueError(
            f"posterior.attrs: missing {missing.args[0]!r} (not a vistudy fit)"
        ) from None


def load_fits(source: str | Path | Iterable[Any]) -> list[Any]:
    """Fits from a results folder (its ``runs/*.nc``, or ``*.nc`` in it) or an iterable.

    Files that are not finished ``.nc`` files (temporary files of an interrupted write) are
    never read. A single InferenceData gives a list of one.

    Parameters
    ----------
    source : folder, InferenceData or iterable of InferenceData

    Returns
    -------
    list of InferenceData

    Examples
    --------
    >>> import tempfile, arviz as az, numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = az.from_dict(posterior={"tau_e": np.ones((1, 5))}).to_netcdf(f"{folder}/a.nc")
    ...     [sorted(fit.groups()) for fit in load_fits(folder)]
    [['posterior']]
    """
    if hasattr(source, "posterior"):
        return [source]
    if not isinstance(source, str | Path):
        return list(source)
    import arviz as az

    folder = Path(source)
    if not folder.is_dir():
        raise ValueError(f"source: {folder} is not a folder")
    runs = folder / "runs" if (folder / "runs").is_dir() else folder
    paths = sorted(runs.glob("*.nc"))
    if not paths:
        logger.warning("no *.nc files in %s", runs)
    return [az.from_netcdf(path) for path in paths]


def pair_fits(fits: Sequence[Any], vb: str, reference: str) -> list[tuple[FitInfo, Any, Any]]:
    """Pairs (info of the VB fit, VB fit, reference fit) of the same data, model and seed.

    Parameters
    ----------
    fits : sequence of InferenceData
    vb, reference : str
        ``backend/method`` labels, e.g. ``"numpyro/advi"`` and ``"numpyro/nuts"``.

    Returns
    -------
    list of (FitInfo, InferenceData, InferenceData)
        Sorted by (dataset, model, n_groups, seed). When two fits share a label and key, the
        later one is used and the duplicate is logged.

    Examples
    --------
    >>> import arviz as az, numpy as np
    >>> def fit(backend, method):
    ...     idata = az.from_dict(posterior={"tau_e": np.ones((1, 10))})
    ...     idata.posterior.attrs.update(model="linear", backend=backend, method=method, seed=1)
    ...     return idata
    >>> pairs = pair_fits([fit("numpyro", "advi"), fit("numpyro", "nuts")],
    ...                   "numpyro/advi", "numpyro/nuts")
    >>> [info.pair_key for info, _, _ in pairs]
    [('', 'linear', 0, 1)]
    """
    by_key: dict[tuple[str, tuple], Any] = {}
    for fit in fits:
        info = fit_info(fit)
        if (info.label, info.pair_key) in by_key:
            logger.warning("two %s fits of %s; using the later one", info.label, info.pair_key)
        by_key[(info.label, info.pair_key)] = (info, fit)
    pairs = []
    for (label, key), (info, fit) in sorted(by_key.items(), key=lambda item: item[0][1]):
        if label == vb and (reference, key) in by_key:
            pairs.append((info, fit, by_key[(reference, key)][1]))
    return pairs
