"""A sampler's run that fails the MCMC gate on R-hat or ESS is fitted again with twice the draws."""

import textwrap

import arviz as az
import numpy as np
import pytest

import study.runs
from analysis import mcmc_gate
from study.config import StudyConfigError, load_study
from study.runs import Run, execute, expand, fit_until_gate_passes

# The reproduction's one reference that failed the gate with Gibbs' default 2,000 draws per chain
# (M3, Q = 100 groups of 3 rows, vague priors, seed 5: R-hat of tau_u 1.012; 1.0065 with 4,000).
HARD_GIBBS = Run(
    model="logistic_random_intercept",
    backend="conjugate",
    method="gibbs",
    seed=5,
    n_groups=100,
    n_obs=300,
    truth={"tau_u": 4.0, "tau_e": 1.0},
    priors={"a_u": 0.01, "b_u": 0.01},
)


def _executed(run: Run, tmp_path) -> az.InferenceData:
    record = execute(run, tmp_path)
    assert record["status"] == "done", record.get("error")
    return az.from_netcdf(run.path(tmp_path))


def test_a_reference_that_fails_on_rhat_passes_with_twice_the_draws(tmp_path):
    once = _executed(HARD_GIBBS, tmp_path / "once")
    assert "R-hat" in mcmc_gate(once).label
    assert "gate_attempts" not in once.posterior.attrs  # gate_retries = 0: no second look

    retried = _executed(Run(**{**HARD_GIBBS.__dict__, "gate_retries": 1}), tmp_path / "again")
    assert mcmc_gate(retried).passed
    assert retried.posterior.attrs["gate_attempts"] == 2
    first_fit_s = once.posterior.attrs["compile_time_s"] + once.posterior.attrs["run_time_s"]
    assert 0 < retried.posterior.attrs["gate_discarded_s"] < 10 * first_fit_s + 1
    assert retried.posterior.sizes["draw"] == 2 * once.posterior.sizes["draw"] == 4_000
    assert '"num_draws": 4000' in retried.posterior.attrs["settings"]


def test_retries_stop_at_gate_retries_and_keep_the_last_fit(tmp_path):
    # 2 chains of 25 draws: ESS of at most 50 < 400, and still short after doubling twice.
    settings = {"num_chains": 2, "num_burnin": 20, "num_draws": 25}
    run = Run(
        model="random_intercept",
        backend="conjugate",
        method="gibbs",
        seed=0,
        n_groups=3,
        n_per_group=5,
        settings=settings,
        gate_retries=2,
    )
    idata = _executed(run, tmp_path)
    assert not mcmc_gate(idata).passed
    assert idata.posterior.attrs["gate_attempts"] == 3
    assert idata.posterior.sizes["draw"] == 100


def test_a_fit_with_divergences_is_not_fitted_again(monkeypatch):
    rng = np.random.default_rng(0)
    diverging = np.zeros((4, 1000), dtype=bool)
    diverging[0, 10] = True
    idata = az.from_dict(
        posterior={"tau_u": rng.normal(size=(4, 1000))},
        sample_stats={"diverging": diverging},
    )

    def refit(*args, **kwargs):
        raise AssertionError("more draws do not mend divergences")

    monkeypatch.setattr(study.runs, "_fit", refit)
    run = Run(model="random_intercept", backend="numpyro", method="nuts", seed=0, gate_retries=3)
    kept = fit_until_gate_passes(run, idata)
    assert kept is idata
    assert kept.posterior.attrs["gate_attempts"] == 1


STUDY = """
name = "gate"
seeds = [0]

[[scenario]]
models = ["random_intercept"]
n_groups = [3]

[[fit]]
backend = "conjugate"
method = "gibbs"
{gibbs}

[[fit]]
backend = "conjugate"
method = "cavi"
{cavi}

[[compare]]
vb = "conjugate/cavi"
reference = "conjugate/gibbs"
"""


def _study(tmp_path, gibbs: str = "", cavi: str = ""):
    path = tmp_path / "gate.toml"
    path.write_text(textwrap.dedent(STUDY.format(gibbs=gibbs, cavi=cavi)))
    return load_study(path)


def test_samplers_retry_once_by_default_and_other_methods_never(tmp_path):
    runs = {run.method: run for run in expand(_study(tmp_path))}
    assert runs["gibbs"].gate_retries == 1
    assert runs["cavi"].gate_retries == 0
    never = {run.method: run for run in expand(_study(tmp_path, gibbs="gate_retries = 0"))}
    assert never["gibbs"].gate_retries == 0
    # A retry changes a sampler's result, so it is part of the run's content hash.
    assert never["gibbs"].content_hash != runs["gibbs"].content_hash
    assert never["cavi"].content_hash == runs["cavi"].content_hash


@pytest.mark.parametrize(
    ("gibbs", "cavi", "message"),
    [
        ("", "gate_retries = 1", "fit[1].gate_retries: only samplers meet the MCMC gate"),
        ("gate_retries = -1", "", "fit[0].gate_retries: expected an integer >= 0, got -1"),
        ('gate_retries = "2"', "", "fit[0].gate_retries: expected int, got str"),
    ],
)
def test_bad_gate_retries_name_the_fit_and_what_was_expected(tmp_path, gibbs, cavi, message):
    with pytest.raises(StudyConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _study(tmp_path, gibbs=gibbs, cavi=cavi)


def test_the_report_lists_the_references_fitted_again(tmp_path):
    """At Q = 3, a cell the published VI1 table lacks: the report says so instead of failing on
    an empty published-vs-ours figure (as it once did), and names the retried reference."""
    from study.report import _NOTHING_PUBLISHED, write_report
    from study.runner import run_study

    tiny = "settings = { num_chains = 2, num_burnin = 20, num_draws = 25 }"
    config = _study(tmp_path, gibbs=tiny)
    out = tmp_path / "out"
    run_study(config, out, jobs=1)
    report = write_report(out, config).read_text()
    assert _NOTHING_PUBLISHED in report
    assert not list((out / "figures").glob("published_vs_ours_*.png"))
    assert "### conjugate/cavi:mean_field / conjugate/gibbs" in report
    assert "Fitted again with twice the draws after R-hat or ESS failed the gate" in report
    retried = "- `sim_q3_r20-random_intercept-conjugate-gibbs-0`: 2 fits, the last with 50 draws"
    assert retried in report
