"""What can run: one registry of (backend, method, family) -> engine, settings class, models.

`fit`, the study files, the runner and ``vistudy list`` all read `REGISTRY`; nothing else keeps
its own table. A label names an entry as ``backend/method`` (samplers, exact posteriors) or
``backend/method:family`` (variational methods), e.g. ``numpyro/nuts``, ``pymc/advi:block``,
``conjugate/cavi:mean_field``. A variational label without a family means the default family,
``mean_field``.

A *correction* of a fitted VB family is an entry of its own whose family reads
``<family>+<correction>`` (`CORRECTIONS`): ``numpyro/advi:mean_field+lrvb`` runs NumPyro's
mean-field ADVI and returns its linear-response variant (`inference.lrvb`). Such entries have role
``vb``, the base method's settings and a label like any other, so study files, run keys, tables
and figures take them as they are; `FAMILIES` lists the real families only.

Adding a family, a backend or a model touches this file and the engine that implements it; see
``ARCHITECTURE.md`` for the list of files each change touches.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from inference.engine import Engine
from inference.settings import (
    AdviSettings,
    CaviSettings,
    DenseAdviSettings,
    ExactSettings,
    GibbsSettings,
    NutsSettings,
)

Role = Literal["vb", "mcmc", "exact"]

FAMILIES: dict[str, str] = {
    "mean_field": (
        "fully factorised Gaussian over the unconstrained latent variables (ADVI: AutoNormal, "
        "pm.fit('advi')); CAVI: q(beta) q(u) q(tau_e) q(tau_u), Ormerod & Wand's product "
        "density over every block; vglmer's 'strong' factorisation"
    ),
    "block": (
        "q(beta, u) jointly Gaussian (the fixed and random effects in one block, or the "
        "unconstrained sites that carry them, z in the non-centred model), mean-field over "
        "the rest: Ormerod & Wand's usual q(beta, u) q(tau_e) q(tau_u); vglmer's 'weak' "
        "factorisation; the VB of the VI1 report's table"
    ),
    "full_rank": (
        "one Gaussian with a dense covariance over every unconstrained latent variable "
        "(AutoMultivariateNormal, pm.fit('fullrank_advi')); no product assumption at all"
    ),
}
"""Variational families, with the name each has in the literature."""
DEFAULT_FAMILY = "mean_field"
CORRECTIONS: dict[str, str] = {
    "lrvb": (
        "linear-response covariances of the fitted q (Giordano, Broderick & Jordan 2018): the "
        "inverse Hessian of the KL objective at its optimum; draws from N(E_q theta, Sigma_LR)"
    ),
}
"""Corrections of a fitted family, offered as families ``<family>+<correction>``."""
BACKENDS: tuple[str, ...] = ("numpyro", "pymc", "conjugate")
METHODS: tuple[str, ...] = ("advi", "nuts", "exact", "cavi", "gibbs")
ALL_MODELS = None


@dataclass(frozen=True)
class EngineEntry:
    """One runnable (backend, method, family).

    Attributes
    ----------
    backend, method : str
        ``numpyro``/``pymc`` (adapters to the PPLs, `inference.ppl`) or ``conjugate``
        (closed-form and conditionally conjugate algorithms in NumPy, `inference.conjugate`).
    family : str or None
        The variational family (a key of `FAMILIES`); ``None`` for samplers and exact posteriors.
    engine : str
        ``"module:function"`` of the engine (imported lazily); it satisfies `Engine`.
    settings : type
        Frozen dataclass of the entry's settings (`inference.settings`).
    models : tuple of str or None
        Models the entry fits; ``None`` for every model.
    role : {"vb", "mcmc", "exact"}
        What kind of answer it gives: an approximation, draws from the posterior, or the
        posterior itself.
    """

    backend: str
    method: str
    family: str | None
    engine: str
    settings: type
    models: tuple[str, ...] | None
    role: Role

    @property
    def key(self) -> tuple[str, str, str | None]:
        """``(backend, method, family)``."""
        return (self.backend, self.method, self.family)

    @property
    def label(self) -> str:
        """``backend/method`` or ``backend/method:family``."""
        return make_label(self.backend, self.method, self.family)

    def fits(self, model: str) -> bool:
        """Whether this entry can fit ``model``."""
        return self.models is ALL_MODELS or model in self.models

    def load(self) -> Engine:
        """Import and return the engine function."""
        module_name, _, attr = self.engine.partition(":")
        return getattr(importlib.import_module(module_name), attr)


_GAUSSIAN_CAVI = ("linear", "random_intercept", "logistic_random_intercept")


def base_family(family: str) -> str:
    """The fitted family of a corrected one (``mean_field+lrvb`` -> ``mean_field``)."""
    return family.partition("+")[0]


def advi_settings(family: str) -> type:
    """ADVI settings of a family: a dense block needs more draws per gradient step."""
    return AdviSettings if base_family(family) == "mean_field" else DenseAdviSettings


def _ppl_entries(backend: str) -> Iterator[EngineEntry]:
    module = f"inference.ppl.{backend}_engine"
    for family in FAMILIES:
        settings = advi_settings(family)
        yield EngineEntry(backend, "advi", family, f"{module}:advi", settings, ALL_MODELS, "vb")
    yield EngineEntry(backend, "nuts", None, f"{module}:nuts", NutsSettings, ALL_MODELS, "mcmc")


def _conjugate_entries() -> Iterator[EngineEntry]:
    module = "inference.conjugate.engines"
    yield EngineEntry(
        "conjugate", "exact", None, f"{module}:exact", ExactSettings, ("linear",), "exact"
    )
    for family in ("mean_field", "block"):
        yield EngineEntry(
            "conjugate", "cavi", family, f"{module}:cavi", CaviSettings, _GAUSSIAN_CAVI, "vb"
        )
    yield EngineEntry(
        "conjugate", "gibbs", None, f"{module}:gibbs", GibbsSettings, ALL_MODELS, "mcmc"
    )


def _lrvb_entries() -> Iterator[EngineEntry]:
    bases = (
        ("numpyro", "advi", ALL_MODELS),
        ("pymc", "advi", ALL_MODELS),
        ("conjugate", "cavi", _GAUSSIAN_CAVI),
    )
    for backend, method, models in bases:
        for family in ("mean_field", "block"):
            settings = CaviSettings if method == "cavi" else advi_settings(family)
            engine = f"inference.lrvb:{backend}_{method}"
            yield EngineEntry(backend, method, f"{family}+lrvb", engine, settings, models, "vb")


REGISTRY: dict[tuple[str, str, str | None], EngineEntry] = {
    entry.key: entry
    for entry in (
        *_ppl_entries("numpyro"),
        *_ppl_entries("pymc"),
        *_conjugate_entries(),
        *_lrvb_entries(),
    )
}


def make_label(backend: str, method: str, family: str | None = None) -> str:
    """``backend/method`` or, with a family, ``backend/method:family``."""
    return f"{backend}/{method}" + (f":{family}" if family else "")


def is_variational(backend: str, method: str) -> bool:
    """Whether (backend, method) has variational families."""
    return any(e.family is not None for e in REGISTRY.values() if e.key[:2] == (backend, method))


def lookup(backend: str, method: str, family: str | None = None) -> EngineEntry:
    """The entry of (backend, method, family); a variational method defaults to ``mean_field``.

    Raises
    ------
    ValueError
        Naming the field (``backend``, ``method`` or ``family``) and its valid values.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: unknown backend {backend!r}; valid: {list(BACKENDS)}")
    if method not in METHODS:
        raise ValueError(f"method: unknown method {method!r}; valid: {list(METHODS)}")
    methods = sorted({m for b, m, _ in REGISTRY if b == backend})
    if method not in methods:
        raise ValueError(f"method: backend {backend!r} has no method {method!r}; valid: {methods}")
    families = [f for b, m, f in REGISTRY if (b, m) == (backend, method)]
    if families == [None]:
        if family is not None:
            raise ValueError(
                f"family: {backend}/{method} is not variational and takes no family, got {family!r}"
            )
        return REGISTRY[(backend, method, None)]
    family = DEFAULT_FAMILY if family is None else family
    if family not in families:
        raise ValueError(f"family: {backend}/{method} has no family {family!r}; valid: {families}")
    return REGISTRY[(backend, method, family)]


def parse_label(label: str) -> EngineEntry:
    """The entry named by ``backend/method`` or ``backend/method:family``.

    Examples
    --------
    >>> parse_label("numpyro/advi").label
    'numpyro/advi:mean_field'
    >>> parse_label("conjugate/gibbs").role
    'mcmc'
    """
    text = str(label)
    pair, _, family = text.partition(":")
    parts = pair.split("/")
    if len(parts) != 2 or not all(parts) or (":" in text and not family):
        raise ValueError(
            f"label: expected 'backend/method' or 'backend/method:family' "
            f"(e.g. 'numpyro/advi:block'), got {label!r}"
        )
    return lookup(parts[0], parts[1], family or None)


def entries_for(model: str) -> list[EngineEntry]:
    """Every entry that can fit ``model``, in registry order."""
    return [entry for entry in REGISTRY.values() if entry.fits(model)]


def resolve_settings(entry: EngineEntry, settings: Any = None) -> Any:
    """The entry's settings dataclass: defaults updated with ``settings`` (validated).

    See `inference.settings.resolve` for the accepted forms and the errors.
    """
    from inference.settings import resolve

    return resolve(entry.settings, entry.label, settings)
