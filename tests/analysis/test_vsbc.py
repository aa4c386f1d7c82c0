"""VSBC: p = Pr_q(theta < theta*) over replicated data sets, the KS symmetry test, its verdict.

A known answer: with theta* drawn from N(0, 1) and q = N(shift, sd^2) standing for the posterior
of a data-free problem (posterior = prior), p is uniform exactly when sd = 1 and shift = 0.
"""

import json

import arviz as az
import numpy as np
import pytest

from analysis import plot_vsbc, vsbc_probabilities, vsbc_test

R = 200


def _fits(sd: float, shift: float, seed: int = 0, label: tuple[str, str] = ("numpyro", "advi")):
    rng = np.random.default_rng(seed)
    fits = []
    for replicate in range(R):
        truth = rng.normal()
        idata = az.from_dict(posterior={"tau_u": rng.normal(shift, sd, (1, 1000))})
        idata.posterior.attrs.update(
            model="random_intercept",
            backend=label[0],
            method=label[1],
            family="mean_field",
            seed=replicate,
            dataset="sim_q20_n300",
            n_groups=20,
            truth=json.dumps({"tau_u": truth}),
        )
        fits.append(idata)
    return fits


@pytest.mark.parametrize(
    ("sd", "shift", "verdict"),
    [
        (1.0, 0.0, "calibrated"),
        (0.4, 0.0, "too narrow"),
        (2.5, 0.0, "too wide"),
        (1.0, 0.8, "shifted high"),
        (1.0, -0.8, "shifted low"),
    ],
)
def test_vsbc_flags_each_kind_of_miscalibration(sd, shift, verdict):
    probabilities = vsbc_probabilities(_fits(sd, shift), ["numpyro/advi"], ["tau_u"])
    assert len(probabilities) == R and probabilities.p.between(0, 1).all()
    test = vsbc_test(probabilities)
    assert test.verdict.tolist() == [verdict]
    worst = min(test.p_value[0], test.uniform_p_value[0])
    assert worst > 0.05 if verdict == "calibrated" else worst < 1e-3
    if verdict.startswith("shifted"):
        assert test.p_value[0] < 1e-3  # an asymmetry: the symmetry test alone sees it


def test_vsbc_reads_only_the_fits_asked_for_and_draws_a_figure():
    fits = _fits(0.4, 0.0) + _fits(1.0, 0.0, seed=1, label=("conjugate", "cavi"))
    probabilities = vsbc_probabilities(fits, ["numpyro/advi:mean_field"], ["tau_u", "beta"])
    assert set(probabilities.vb) == {"numpyro/advi:mean_field"}
    both = vsbc_probabilities(fits, ["numpyro/advi", "conjugate/cavi"], ["tau_u"])
    assert dict(vsbc_test(both).set_index("vb").verdict) == {
        "numpyro/advi:mean_field": "too narrow",
        "conjugate/cavi:mean_field": "calibrated",
    }
    fig = plot_vsbc(both)
    assert len(fig.axes) == 2 and "too narrow" in fig.axes[0].get_title()
