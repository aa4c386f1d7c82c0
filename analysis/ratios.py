"""VB/reference posterior-SD and variance ratios, each with a confidence interval.

Uncertainty. The SD of each side is estimated from its draws unless the fit carries analytic
moments (exact, CAVI), in which case it is exact (standard error 0). For draws, the standard
error of the variance estimate ``s²`` is ``sqrt(var((x - x̄)²) / ESS)`` where ESS is the
effective sample size of the centred squares ``(x - x̄)²`` (ArviZ's ``ess(method="mean")``):
this accounts for autocorrelation in MCMC chains and for non-normal tails, since
``var((x - x̄)²) = (kurtosis - 1) σ⁴``. The delta method gives
``se(s) = se(s²) / (2 s) = s · sqrt((kurtosis - 1) / (4 ESS))``. The CI of the ratio is built on
the log scale, ``log r ± z · sqrt((se_vb/s_vb)² + (se_ref/s_ref)²)``, which keeps it positive
and adds the Monte-Carlo error of both sides. We prefer this to a bootstrap over chains because
four chains are too few to bootstrap (and VB has one), and to batch means because it needs no
batch size; the coverage tests in ``tests/analysis`` check that 90 % intervals cover 85–95 %
for independent, autocorrelated and skewed draws.

The interval is about Monte-Carlo error only: it says how well the draws pin down the ratio of
*these two fits*, not how the ratio varies between data sets or VB optimiser seeds (compare
replicates for that). Variance ratios are the squares of SD ratios, limits included.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import ndtri

from analysis import convergence

SCALES = {
    "beta": "location",
    "u": "location",
    "tau_e": "precision",
    "tau_u": "precision",
    "sigma_e": "sd",
    "sigma_u": "sd",
    "sigma2_e": "variance",
    "sigma2_u": "variance",
}
DEFAULT_VAR_NAMES = tuple(SCALES)


def sd_with_se(draws: np.ndarray) -> tuple[float, float]:
    """Posterior SD of ``draws`` (chain, draw) and its Monte-Carlo standard error.

    Parameters
    ----------
    draws : ndarray, shape (chain, draw)
        Draws of one scalar quantity.

    Returns
    -------
    sd, se : float
        The SD over all draws, and its standard error from the ESS of the centred squares.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sd, se = sd_with_se(rng.normal(scale=2.0, size=(1, 10_000)))
    >>> bool(abs(sd - 2.0) < 5 * se)
    True
    """
    draws = np.asarray(draws, dtype=float)
    if draws.ndim != 2:
        raise ValueError(f"draws: expected shape (chain, draw), got {draws.shape}")
    sd, se = _sds_with_ses(draws[..., np.newaxis])
    return float(sd[0]), float(se[0])


def _sds_with_ses(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`sd_with_se` of every column of ``draws`` (chain, draw, element) in one pass (one ESS
    call for a vector of 100 random effects instead of 100)."""
    squares = (draws - draws.mean(axis=(0, 1))) ** 2
    sd = np.sqrt(squares.mean(axis=(0, 1)))
    ess = convergence.ess(squares, "mean")
    ess = np.where(np.isfinite(ess), np.clip(ess, 1.0, squares.shape[0] * squares.shape[1]), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(squares.var(axis=(0, 1)) / ess) / (2.0 * sd)
    zero = sd == 0.0
    return np.where(zero, 0.0, sd), np.where(zero, 0.0, se)


def ratio_interval(
    sd_vb: float, se_vb: float, sd_ref: float, se_ref: float, ci: float = 0.9
) -> tuple[float, float, float]:
    """The ratio ``sd_vb / sd_ref`` and its ``ci`` interval (log-scale delta method).

    A side whose SD is zero or not finite (a stuck chain, a moment that does not exist) gives
    NaN for the ratio and both limits rather than a misleading 0 or infinity.

    Examples
    --------
    >>> ratio_interval(0.5, 0.0, 1.0, 0.0)
    (0.5, 0.5, 0.5)
    >>> ratio_interval(0.5, 0.01, 0.0, 0.0)
    (nan, nan, nan)
    """
    values = np.array([sd_vb, se_vb, sd_ref, se_ref], dtype=float)
    if not np.isfinite(values).all() or sd_vb <= 0 or sd_ref <= 0:
        return float("nan"), float("nan"), float("nan")
    ratio = sd_vb / sd_ref
    se_log = np.hypot(se_vb / sd_vb, se_ref / sd_ref)
    z = ndtri(0.5 + ci / 2.0)  # the normal quantile; stats.norm.ppf is 100 times slower
    return float(ratio), float(ratio * np.exp(-z * se_log)), float(ratio * np.exp(z * se_log))


def posterior_of(fit: Any) -> xr.Dataset:
    """The posterior Dataset of an InferenceData (a Dataset is returned as is)."""
    if isinstance(fit, xr.Dataset):
        return fit
    if hasattr(fit, "posterior"):
        return fit.posterior
    raise ValueError(f"fit: expected InferenceData or xarray.Dataset, got {type(fit).__name__}")


def analytic_moments(fit: Any) -> dict[str, dict[str, Any]]:
    """Closed-form moments stored by exact and CAVI fits (empty for sampled fits)."""
    raw = posterior_of(fit).attrs.get("analytic_moments")
    return json.loads(raw) if raw else {}


def _elements(posterior: xr.Dataset, name: str) -> tuple[list[tuple[str, str, int]], np.ndarray]:
    """(parameter label, element label, position) of each element of one variable, and its
    draws (chain, draw, element); a scalar is one element at position -1."""
    values = posterior[name]
    extra = [d for d in values.dims if d not in ("chain", "draw")]
    if not extra:
        return [(name, "", -1)], values.values[..., np.newaxis]
    if len(extra) > 1:
        raise ValueError(f"{name}: expected at most one dimension beyond (chain, draw)")
    dim = extra[0]
    labels = [(f"{name}_{i}", str(c), i) for i, c in enumerate(values[dim].values)]
    return labels, values.transpose("chain", "draw", dim).values


def _side(fit: Any, name: str) -> list[tuple[str, str, int, float, float, bool]]:
    """(label, element, position, sd, se, analytic) of every element of ``name`` in ``fit``."""
    posterior = posterior_of(fit)
    moments = analytic_moments(fit).get(name)
    elements, draws = _elements(posterior, name)
    if moments is not None and "sd" in moments:
        sd = np.atleast_1d(np.asarray(moments["sd"], dtype=float))
        if sd.size != len(elements):
            raise ValueError(
                f"analytic_moments[{name!r}]: {sd.size} SDs for {len(elements)} elements"
            )
        pairs = zip(elements, sd, strict=True)
        return [(*element, float(s), 0.0, True) for element, s in pairs]
    sds, ses = _sds_with_ses(draws.astype(float))
    rows = zip(elements, sds, ses, strict=True)
    return [(*element, float(sd), float(se), False) for element, sd, se in rows]


def sd_ratio(
    vb: Any, reference: Any, var_names: Sequence[str] | None = None, *, ci: float = 0.9
) -> pd.DataFrame:
    """Posterior-SD ratios ``SD_VB / SD_ref`` per scalar and per element of vectors.

    Parameters
    ----------
    vb, reference : InferenceData or xarray.Dataset
        The approximation and the reference. Analytic moments in ``posterior.attrs`` (exact,
        CAVI) are used instead of draws.
    var_names : sequence of str, optional
        Variables to compare; default all of ``beta, u, tau_*, sigma_*, sigma2_*`` present in both.
    ci : float
        Level of the confidence interval.

    Returns
    -------
    pandas.DataFrame
        One row per parameter element: ``parameter`` (``beta_0``, ``tau_u``, ``u_3`` ...),
        ``variable``, ``element`` (coordinate label), ``position``, ``scale``, ``sd_vb``,
        ``se_vb``, ``sd_ref``, ``se_ref``, ``ratio``, ``lo``, ``hi``, ``analytic``.

    Raises
    ------
    ValueError
        If a requested variable is missing on either side, elements (coordinates) differ, or
        the fits are of different models (``random_intercept`` and its non-centred
        ``random_intercept_nc`` count as one: same posterior).

    See Also
    --------
    variance_ratio, summarise_vectors

    Examples
    --------
    >>> import arviz as az
    >>> rng = np.random.default_rng(1)
    >>> vb = az.from_dict(posterior={"tau_u": rng.normal(0, 0.5, (1, 4000))})
    >>> ref = az.from_dict(posterior={"tau_u": rng.normal(0, 1.0, (4, 1000))})
    >>> table = sd_ratio(vb, ref)
    >>> bool(table.lo[0] < 0.5 < table.hi[0])
    True
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci: expected a level in (0, 1), got {ci}")
    _check_same_posterior(vb, reference)
    names = _common_names(vb, reference, var_names)
    rows = []
    for name in names:
        vb_rows, ref_rows = _side(vb, name), _side(reference, name)
        vb_elements, ref_elements = [r[1] for r in vb_rows], [r[1] for r in ref_rows]
        if vb_elements != ref_elements:
            raise ValueError(
                f"{name}: elements differ between vb {vb_elements[:5]} and reference "
                f"{ref_elements[:5]} (different data?)"
            )
        for (label, element, position, sd_v, se_v, an_v), (_, _, _, sd_r, se_r, an_r) in zip(
            vb_rows, ref_rows, strict=True
        ):
            ratio, lo, hi = ratio_interval(sd_v, se_v, sd_r, se_r, ci)
            rows.append(
                {
                    "parameter": label,
                    "variable": name,
                    "element": element,
                    "position": position,
                    "scale": SCALES.get(name, "other"),
                    "sd_vb": sd_v,
                    "se_vb": se_v,
                    "sd_ref": sd_r,
                    "se_ref": se_r,
                    "ratio": ratio,
                    "lo": lo,
                    "hi": hi,
                    "analytic": an_v and an_r,
                }
            )
    return pd.DataFrame(rows)


def variance_ratio(
    vb: Any, reference: Any, var_names: Sequence[str] | None = None, *, ci: float = 0.9
) -> pd.DataFrame:
    """Posterior-variance ratios ``Var_VB / Var_ref``: the squares of `sd_ratio` and its CI.

    Parameters and returns as in `sd_ratio`; ``ratio``, ``lo`` and ``hi`` are squared (``sd_vb``
    and ``sd_ref`` stay SDs).

    Examples
    --------
    >>> import arviz as az, json
    >>> def fit(sd):
    ...     idata = az.from_dict(posterior={"tau_e": np.zeros((1, 10))})
    ...     idata.posterior.attrs["analytic_moments"] = json.dumps({"tau_e": {"sd": sd}})
    ...     return idata
    >>> variance_ratio(fit(0.5), fit(1.0)).ratio.tolist()
    [0.25]
    """
    table = sd_ratio(vb, reference, var_names, ci=ci)
    table[["ratio", "lo", "hi"]] = table[["ratio", "lo", "hi"]] ** 2
    return table


FIT_COLUMNS = (
    "model",
    "label",
    "dataset",
    "n_groups",
    "seed",
    "vb_backend",
    "vb_method",
    "vb_family",
    "vb",
    "ref_backend",
    "ref_method",
    "reference",
    "gate",
)


def summarise_vectors(table: pd.DataFrame, variables: Sequence[str] = ("u",)) -> pd.DataFrame:
    """Median and range of the ratios over the elements of vector variables (e.g. ``u``).

    Parameters
    ----------
    table : pandas.DataFrame
        Output of `sd_ratio` or `variance_ratio` (one pair of fits), or the tidy table of
        `analysis.tables.ratio_table` (many pairs: one summary per pair of fits).
    variables : sequence of str
        Vector variables to summarise.

    Returns
    -------
    pandas.DataFrame
        One row per (pair of fits, variable): the identifying columns of the fits present in
        ``table``, ``variable``, ``n``, ``median``, ``min``, ``max`` of the ratio, and the
        lowest ``lo`` and highest ``hi`` of the element intervals.

    Examples
    --------
    >>> table = pd.DataFrame({"variable": ["u"] * 3, "ratio": [0.5, 0.7, 0.6],
    ...                       "lo": [0.4, 0.6, 0.5], "hi": [0.6, 0.8, 0.7]})
    >>> summarise_vectors(table)[["variable", "n", "median", "min", "max"]]
      variable  n  median  min  max
    0        u  3     0.6  0.5  0.7
    """
    keys = [c for c in FIT_COLUMNS if c in table.columns] + ["variable"]
    chosen = table[table.variable.isin(variables)]
    summary = chosen.groupby(keys, dropna=False, sort=False).agg(
        n=("ratio", "count"),
        median=("ratio", "median"),
        min=("ratio", "min"),
        max=("ratio", "max"),
        lo=("lo", "min"),
        hi=("hi", "max"),
    )
    return summary.reset_index()


def _check_same_posterior(vb: Any, reference: Any) -> None:
    """Raise unless both fits target one posterior (the same model, or a reparameterisation of
    it: the contract stamps ``posterior_model``)."""
    attrs = [posterior_of(fit).attrs for fit in (vb, reference)]
    models = [a.get("model") for a in attrs]
    if None in models:
        return
    targets = {a.get("posterior_model") or a["model"] for a in attrs}
    if len(targets) > 1:
        raise ValueError(f"vb, reference: fits of different models ({models[0]!r}, {models[1]!r})")


def _common_names(vb: Any, reference: Any, var_names: Sequence[str] | None) -> list[str]:
    vb_vars, ref_vars = set(posterior_of(vb).data_vars), set(posterior_of(reference).data_vars)
    if var_names is None:
        return [n for n in DEFAULT_VAR_NAMES if n in vb_vars and n in ref_vars]
    for name in var_names:
        for side, present in (("vb", vb_vars), ("reference", ref_vars)):
            if name not in present:
                raise ValueError(f"var_names: {name!r} is not in the {side} posterior")
    return list(var_names)
