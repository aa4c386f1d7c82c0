"""Read fits (in memory or a folder of NetCDF files) and pair VB fits with their references."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_FAMILY = "mean_field"
OLD_BACKENDS = {"reference": "conjugate"}


class OldLayoutError(ValueError):
    """A fit or results folder written by an earlier vistudy layout."""


@dataclass(frozen=True)
class FitInfo:
    """What a fit is, read from its ``posterior.attrs`` (stamped there by the contract)."""

    model: str
    backend: str
    method: str
    dataset: str
    n_groups: int
    seed: int
    family: str = ""
    model_label: str = ""
    likelihood: str = "gaussian"
    posterior_model: str = ""

    @property
    def pair_key(self) -> tuple[str, str, int, int]:
        """Fits of the same (dataset, model, n_groups, seed) are compared with each other."""
        return (self.dataset, self.model, self.n_groups, self.seed)

    @property
    def posterior_key(self) -> tuple[str, str, int, int]:
        """``pair_key`` with the model whose posterior this fit targets (M2's is M0's)."""
        return (self.dataset, self.posterior_model or self.model, self.n_groups, self.seed)

    @property
    def label(self) -> str:
        """``backend/method`` or, for a variational fit, ``backend/method:family``."""
        return f"{self.backend}/{self.method}" + (f":{self.family}" if self.family else "")

    @property
    def vi1_label(self) -> str:
        """The row name of the VI1 table: ``M0_Q5`` ... or ``M1``."""
        base = self.model_label or self.model
        return f"{base}_Q{self.n_groups}" if self.n_groups else base


def same_label(query: str, label: str) -> bool:
    """Whether ``query`` names ``label``: equal, or a variational label without its family
    (``numpyro/advi``) naming the default family (``numpyro/advi:mean_field``).

    Examples
    --------
    >>> same_label("numpyro/advi", "numpyro/advi:mean_field"), same_label("a/b", "a/b:block")
    (True, False)
    """
    return query == label or (":" not in query and label == f"{query}:{DEFAULT_FAMILY}")


def fit_info(fit: Any) -> FitInfo:
    """Read `FitInfo` from a fit's attrs; raises ``ValueError`` naming a missing attr."""
    if not hasattr(fit, "posterior"):
        raise ValueError(f"fit: expected InferenceData with a posterior, got {type(fit).__name__}")
    attrs = fit.posterior.attrs
    try:
        info = FitInfo(
            model=str(attrs["model"]),
            backend=str(attrs["backend"]),
            method=str(attrs["method"]),
            dataset=str(attrs.get("dataset", "")),
            n_groups=int(attrs.get("n_groups", 0)),
            seed=int(attrs.get("seed", 0)),
            family=str(attrs.get("family", "")),
            model_label=str(attrs.get("model_label", "")),
            likelihood=str(attrs.get("likelihood", "gaussian")),
            posterior_model=str(attrs.get("posterior_model", "")),
        )
    except KeyError as missing:
        raise ValueError(
            f"posterior.attrs: missing {missing.args[0]!r} (not a vistudy fit)"
        ) from None
    if info.backend in OLD_BACKENDS and "family" not in attrs:
        raise OldLayoutError(
            f"fit {attrs.get('run_key', info.label)!r} was written by an earlier vistudy "
            f"(backend {info.backend!r}, now {OLD_BACKENDS[info.backend]!r}, and no variational "
            "family); run the study into a new results folder, or delete its runs/ folder"
        )
    return info


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
    from analysis.netcdf import read_fit

    folder = Path(source)
    if not folder.is_dir():
        raise ValueError(f"source: {folder} is not a folder")
    runs = folder / "runs" if (folder / "runs").is_dir() else folder
    paths = sorted(runs.glob("*.nc"))
    if not paths:
        logger.warning("no *.nc files in %s", runs)
    return [read_fit(path) for path in paths]


def pair_fits(fits: Sequence[Any], vb: str, reference: str) -> list[tuple[FitInfo, Any, Any]]:
    """Pairs (info of the VB fit, VB fit, reference fit) of the same data, model and seed.

    A VB fit without a reference of its own model is paired with a reference of another model
    with the same posterior on the same data (``posterior_model``, stamped by the contract: the
    non-centred M2's is the centred M0's), so a study need not sample one posterior twice.

    Parameters
    ----------
    fits : sequence of InferenceData
    vb, reference : str
        ``backend/method[:family]`` labels, e.g. ``"numpyro/advi:block"`` and
        ``"numpyro/nuts"`` (``numpyro/advi`` names the ``mean_field`` family).

    Returns
    -------
    list of (FitInfo, InferenceData, InferenceData)
        Sorted by (dataset, model, n_groups, seed). When two fits share a label and key, the
        later one is used and the duplicate is logged.

    Examples
    --------
    >>> import arviz as az, numpy as np
    >>> def fit(backend, method, model="linear"):
    ...     idata = az.from_dict(posterior={"tau_e": np.ones((1, 10))})
    ...     idata.posterior.attrs.update(model=model, backend=backend, method=method, seed=1,
    ...                                  posterior_model="linear")
    ...     return idata
    >>> pairs = pair_fits([fit("numpyro", "advi"), fit("numpyro", "nuts")],
    ...                   "numpyro/advi", "numpyro/nuts")
    >>> [info.pair_key for info, _, _ in pairs]
    [('', 'linear', 0, 1)]
    >>> shared = pair_fits([fit("numpyro", "advi", "linear_nc"), fit("numpyro", "nuts")],
    ...                    "numpyro/advi", "numpyro/nuts")
    >>> [(info.model, ref.posterior.attrs["model"]) for info, _, ref in shared]
    [('linear_nc', 'linear')]
    """
    by_key: dict[tuple[str, tuple], Any] = {}
    for fit in fits:
        info = fit_info(fit)
        if (info.label, info.pair_key) in by_key:
            logger.warning("two %s fits of %s; using the later one", info.label, info.pair_key)
        by_key[(info.label, info.pair_key)] = (info, fit)
    references = {
        key: fit for (label, key), (_, fit) in by_key.items() if same_label(reference, label)
    }
    by_posterior: dict[tuple, Any] = {}
    for (label, _), (info, fit) in by_key.items():
        owner = info.model == (info.posterior_model or info.model)  # M0 rather than M2
        if same_label(reference, label) and (owner or info.posterior_key not in by_posterior):
            by_posterior[info.posterior_key] = fit
    pairs = []
    for (label, key), (info, fit) in sorted(by_key.items(), key=lambda item: item[0][1]):
        if not same_label(vb, label):
            continue
        match = references.get(key)
        if match is None and _same_problem(fit, by_posterior.get(info.posterior_key)):
            match = by_posterior[info.posterior_key]
        if match is not None:
            pairs.append((info, fit, match))
    return pairs


def _same_problem(fit: Any, other: Any) -> bool:
    """Whether ``other`` (a fit of another model with the same posterior) had the same priors
    and observations as ``fit``: the same posterior, not only the same model family."""
    if other is None or fit.posterior.attrs.get("priors") != other.posterior.attrs.get("priors"):
        return False
    if not (hasattr(fit, "observed_data") and hasattr(other, "observed_data")):
        return True
    import numpy as np

    mine, theirs = fit.observed_data, other.observed_data
    return set(mine.data_vars) == set(theirs.data_vars) and all(
        np.array_equal(mine[name].values, theirs[name].values) for name in mine.data_vars
    )
