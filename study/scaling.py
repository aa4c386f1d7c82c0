"""The built-in scaling study (``vistudy scaling``): time and accuracy of every method against Q.

The study itself is ``study/studies/scaling.toml`` (packaged with `study`): M0 with 20 rows per
group at Q = 10 ... 10,000, each method at the numbers of groups it can fit in minutes, every
one compared with Gibbs, and a report with a Time section (`analysis.timing`).
"""

from __future__ import annotations

from dataclasses import replace

from study.config import Scenario, StudyConfig
from study.reproduce import packaged_study, tiny_fits

TINY_GROUPS = (5, 10)
"""The numbers of groups of ``--tiny`` (every scenario, every fit): for tests of the machinery."""


def scaling_study(*, max_groups: int | None = None, tiny: bool = False) -> StudyConfig:
    """The scaling study, read from the packaged ``studies/scaling.toml``.

    Parameters
    ----------
    max_groups : int, optional
        Leave out the numbers of groups above this (e.g. 1,000: the study without its
        10,000-group fits); runs keep their keys and hashes, so a later full run into the same
        folder only adds the rest.
    tiny : bool
        Q = 5 and 10 for every fit and tiny sampler/optimiser settings: every step and output of
        the study in well under a minute (for tests); its numbers mean nothing.

    Returns
    -------
    StudyConfig

    Raises
    ------
    ValueError
        If ``max_groups`` leaves no number of groups.
    """
    config = packaged_study("scaling")
    if tiny:
        scenarios = tuple(replace(s, n_groups=TINY_GROUPS) for s in config.scenarios)
        fits = tiny_fits(config.fits)
        config = replace(config, scenarios=scenarios, fits=fits, name=f"{config.name}-tiny")
    if max_groups is not None:
        config = _up_to(config, max_groups)
    return config


def _up_to(config: StudyConfig, max_groups: int) -> StudyConfig:
    """``config`` without the numbers of groups above ``max_groups`` (empty scenarios dropped)."""
    scenarios = [_scenario_up_to(s, max_groups) for s in config.scenarios]
    kept = tuple(s for s in scenarios if s.n_groups)
    if not kept:
        smallest = min(q for s in config.scenarios for q in s.n_groups)
        raise ValueError(f"--max-groups {max_groups}: the study's smallest Q is {smallest}")
    description = f"{config.description} (Q up to {max_groups:,})"
    return replace(config, scenarios=kept, description=description)


def _scenario_up_to(scenario: Scenario, max_groups: int) -> Scenario:
    return replace(scenario, n_groups=tuple(q for q in scenario.n_groups if q <= max_groups))
