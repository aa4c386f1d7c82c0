"""The built-in study that reproduces the VI1 report's SD-ratio table (``vistudy reproduce``)."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from importlib import resources

from study.config import FitSpec, StudyConfig, parse_study

# --quick drops scenarios, never settings: with NUTS chains of 500 + 500 most of its references
# failed the MCMC gate (bulk ESS of beta_0 107-354 < 400), which is no first look at all.
QUICK_GROUPS = (5, 20)
QUICK_REPLICATES = 3
# Tiny settings for tests of the machinery: numbers from them mean nothing.
_TINY_ADVI = {
    "max_steps": 300,
    "min_steps": 100,
    "window": 50,
    "num_draws": 200,
    "average_steps": 100,
}
_TINY_NUTS = {"num_chains": 2, "num_warmup": 100, "num_draws": 100}
TINY_SETTINGS = {
    ("numpyro", "advi"): _TINY_ADVI,
    ("pymc", "advi"): _TINY_ADVI,
    ("numpyro", "nuts"): _TINY_NUTS,
    ("pymc", "nuts"): _TINY_NUTS,
    ("conjugate", "cavi"): {"num_draws": 200},
    ("conjugate", "gibbs"): {"num_chains": 2, "num_burnin": 100, "num_draws": 200},
    ("conjugate", "exact"): {"num_draws": 200},
}


def reproduction_study(*, quick: bool = False, tiny: bool = False) -> StudyConfig:
    """The VI1 reproduction study, read from the packaged ``studies/reproduce.toml``.

    Parameters
    ----------
    quick : bool
        Only Q = 5 and 20 (the simulated scenarios) and Boston, and 3 replicated data sets per
        cell instead of 5: the same fits and settings, fewer runs.
    tiny : bool
        Q = 5 only, one data set per cell and tiny sampler/optimiser settings: exercises every
        step and output of the reproduction in about a minute (for tests); its numbers mean
        nothing.

    Returns
    -------
    StudyConfig
    """
    config = packaged_study("reproduce")
    if quick or tiny:
        groups = (5,) if tiny else QUICK_GROUPS
        seeds = config.seeds[: 1 if tiny else QUICK_REPLICATES]
        scenarios = tuple(
            replace(s, n_groups=tuple(q for q in s.n_groups if q in groups)) if s.n_groups else s
            for s in config.scenarios
        )
        fits = tuple(replace(f, seeds=tuple(s for s in f.seeds if s in seeds)) for f in config.fits)
        config = replace(
            config, scenarios=scenarios, fits=fits, seeds=seeds, name=f"{config.name}-quick"
        )
    if tiny:
        config = replace(config, fits=tiny_fits(config.fits))
    return config


def packaged_study(name: str) -> StudyConfig:
    """The built-in study ``study/studies/<name>.toml`` (packaged with `study`), parsed."""
    text = resources.files("study").joinpath(f"studies/{name}.toml").read_text()
    return parse_study(tomllib.loads(text), source=f"study/studies/{name}.toml")


def tiny_fits(fits: tuple[FitSpec, ...]) -> tuple[FitSpec, ...]:
    """``fits`` with the sizes of `TINY_SETTINGS` (draws, steps) over their own settings, whose
    other entries (centring, mass matrix, ...) stay, and no second fit of a sampler that fails
    the MCMC gate: with tiny chains most do (tests of the machinery)."""
    return tuple(
        replace(
            fit,
            settings={**fit.settings, **TINY_SETTINGS.get((fit.backend, fit.method), {})},
            gate_retries=0,
        )
        for fit in fits
    )
