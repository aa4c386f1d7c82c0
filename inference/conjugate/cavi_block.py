"""Block CAVI: q(beta, u) jointly Gaussian, q(tau_e) q(tau_u) (and PG factors for M3).

To be written (issue: the variational family as a study axis).
"""

from __future__ import annotations

from typing import Any


def cavi_block_random_intercept(data: Any, priors: Any, settings: Any, rng: Any, progressbar=False):
    raise NotImplementedError("block CAVI of the Gaussian random-intercept model")


def cavi_block_logistic(data: Any, priors: Any, settings: Any, rng: Any, progressbar=False):
    raise NotImplementedError("block PG-CAVI of the logistic random-intercept model")
