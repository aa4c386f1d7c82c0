"""Study files are validated on load; every error names the file and the key."""

import textwrap

import pytest

from study.config import StudyConfigError, load_study
from study.runs import expand

VALID = """
name = "t"
replicates = 2

[[scenario]]
models = ["random_intercept", "random_intercept_nc"]
n_groups = [5, 10]
n_per_group = 4

[[scenario]]
models = ["linear"]
dataset = "boston"

[[fit]]
backend = "numpyro"
method = "advi"
settings = { max_steps = 500 }

[[fit]]
backend = "conjugate"
method = "gibbs"

[[compare]]
vb = "numpyro/advi"
reference = "conjugate/gibbs"
"""


def _write(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_study_expands_to_named_runs(tmp_path):
    config = load_study(_write(tmp_path, VALID))
    runs = expand(config)
    assert len(runs) == (2 * 2 + 1) * 2 * 2  # (2 models x 2 Q + boston) x 2 fits x 2 seeds
    keys = {run.key for run in runs}
    assert len(keys) == len(runs)
    assert "sim_q5_r4-random_intercept-numpyro-advi.mean_field-0" in keys
    assert "boston-linear-conjugate-gibbs-1" in keys
    hashes = {run.content_hash for run in runs}
    assert len(hashes) == len(runs)


def test_hash_changes_with_settings_not_with_equivalent_defaults(tmp_path):
    base = expand(load_study(_write(tmp_path, VALID)))[0]
    from dataclasses import replace

    assert replace(base, settings={**base.settings, "max_steps": 501}).content_hash != (
        base.content_hash
    )
    explicit_default = replace(base, settings={**base.settings, "num_particles": 1})
    assert explicit_default.content_hash == base.content_hash


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("replicates = 2", "replicate = 2"), r"study\.toml: replicate: unknown key"),
        (("replicates = 2", "replicates = 0"), r"replicates: expected an integer >= 1"),
        (("replicates = 2", 'replicates = "2"'), r"replicates: expected int, got str"),
        (('"random_intercept_nc"]', '"random_intercept_xx"]'), r"scenario\[0\]\.models: unknown"),
        (("n_groups = [5, 10]", "n_groups = [1, 10]"), r"scenario\[0\]\.n_groups: expected"),
        (("n_per_group = 4", "n_per_group = 4\nsize = 3"), r"scenario\[0\]\.size: unknown key"),
        (('dataset = "boston"', 'dataset = "iris"'), r"scenario\[1\]\.dataset: unknown data set"),
        (('method = "advi"', 'method = "mcmc"'), r"fit\[0\]: method: unknown method 'mcmc'"),
        (('backend = "numpyro"', 'backend = "stan"'), r"fit\[0\]: backend: unknown backend"),
        (("max_steps = 500", "max_step = 500"), r"fit\[0\]: settings: unknown setting\(s\)"),
        (("max_steps = 500", "max_steps = -5"), r"fit\[0\]: settings\.max_steps: expected a pos"),
        (('vb = "numpyro/advi"', 'vb = "pymc/advi"'), r"compare\[0\]\.vb: 'pymc/advi' is not"),
    ],
)
def test_bad_study_files_name_the_key(tmp_path, edit, message):
    old, new = edit
    assert old in VALID
    with pytest.raises(StudyConfigError, match=message):
        load_study(_write(tmp_path, VALID.replace(old, new, 1)))


def test_missing_tables_and_files(tmp_path):
    with pytest.raises(StudyConfigError, match=r"fit: expected at least one \[\[fit\]\]"):
        load_study(_write(tmp_path, VALID.split("[[fit]]")[0]))
    with pytest.raises(StudyConfigError, match="no such study file"):
        load_study(tmp_path / "absent.toml")
    with pytest.raises(StudyConfigError, match="not valid TOML"):
        load_study(_write(tmp_path, "name = "))


def test_fit_restricted_to_unsupported_model(tmp_path):
    text = VALID.replace('method = "gibbs"', 'method = "exact"\nmodels = ["random_intercept"]')
    with pytest.raises(StudyConfigError, match=r"fit\[1\]\.models: conjugate/exact cannot fit"):
        load_study(_write(tmp_path, text))


def test_unsupported_pairs_are_left_out(tmp_path):
    text = VALID.replace('method = "gibbs"', 'method = "exact"').replace(
        'reference = "conjugate/gibbs"', 'reference = "conjugate/exact"'
    )
    runs = expand(load_study(_write(tmp_path, text)))
    exact = [run for run in runs if run.method == "exact"]
    assert {run.model for run in exact} == {"linear"}


def test_bundled_studies_load():
    from study.reproduce import reproduction_study

    assert len(expand(reproduction_study())) == 305
    assert load_study("studies/example.toml").name == "example"


def test_a_fit_may_repeat_with_other_settings_for_other_models(tmp_path):
    repeated = VALID.replace(
        "settings = { max_steps = 500 }\n",
        'settings = { max_steps = 500 }\nmodels = ["random_intercept"]\n\n'
        '[[fit]]\nbackend = "numpyro"\nmethod = "advi"\n'
        'models = ["random_intercept_nc", "linear"]\n',
    )
    runs = {run.key: run for run in expand(load_study(_write(tmp_path, repeated)))}
    assert runs["sim_q5_r4-random_intercept-numpyro-advi.mean_field-0"].settings == {
        "max_steps": 500
    }
    assert runs["sim_q5_r4-random_intercept_nc-numpyro-advi.mean_field-0"].settings == {}
    assert runs["boston-linear-numpyro-advi.mean_field-1"].settings == {}
    overlapping = repeated.replace('models = ["random_intercept_nc", "linear"]\n', "")
    with pytest.raises(StudyConfigError, match=r"fit\[1\]: numpyro/advi:mean_field already fits "
                       r"'random_intercept' in fit\[0\]"):  # fmt: skip
        load_study(_write(tmp_path, overlapping))
