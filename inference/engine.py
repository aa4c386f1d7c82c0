"""The protocol every engine satisfies: settings in, InferenceData out, no state between calls.

An engine may cache compiled programs keyed by everything that determines them (a pure
speed-up: a cached and a fresh program give identical results); it keeps no other state.
"""

from __future__ import annotations

from typing import Any, Protocol

import arviz as az

from models.spec import ModelSpec, RegressionData


class Engine(Protocol):
    """``engine(spec, data, *, priors, settings, seed, family, progressbar) -> InferenceData``.

    Parameters
    ----------
    spec : ModelSpec
        The model, already looked up.
    data : RegressionData
        Data already checked against ``spec`` (`ModelSpec.check_data`).
    priors : dataclass
        The model's prior hyper-parameters, resolved.
    settings : dataclass
        The entry's settings (`inference.registry.EngineEntry.settings`), resolved.
    seed : int
        Seed of every random choice; the same seed gives identical results.
    family : str or None
        The variational family of a VB entry, ``None`` for samplers and exact posteriors.
    progressbar : bool
        Whether to show a progress bar.

    Returns
    -------
    arviz.InferenceData
        The contract of `inference.contract.build_inference_data`.
    """

    def __call__(
        self,
        spec: ModelSpec,
        data: RegressionData,
        *,
        priors: Any,
        settings: Any,
        seed: int,
        family: str | None,
        progressbar: bool,
    ) -> az.InferenceData: ...
