"""Bad names and settings fail early, with messages that list the valid choices."""

import pytest

from inference import fit, resolve_settings
from inference.settings import AdviSettings, DenseAdviSettings, NutsSettings


@pytest.fixture(scope="module")
def data(tiny_data):
    return tiny_data["random_intercept"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "no_such_model"}, r"unknown model 'no_such_model'; valid: \['linear'"),
        ({"backend": "stan"}, r"unknown backend 'stan'; valid: \['numpyro', 'pymc'"),
        ({"method": "laplace"}, r"unknown method 'laplace'; valid: \['advi', 'nuts'"),
        ({"method": "gibbs"}, r"'numpyro' has no method 'gibbs'; valid: \['advi', 'nuts'\]"),
        ({"settings": {"n_steps": 10}}, r"setting\(s\) \['n_steps'\].*valid: \['learning_rate'"),
        ({"settings": {"max_steps": 0}}, r"settings.max_steps: expected a positive integer"),
        ({"settings": {"learning_rate": -0.1}}, r"settings.learning_rate: expected a positive"),
        ({"settings": NutsSettings()}, r"expected a mapping or AdviSettings"),
        ({"priors": {"a_z": 1.0}}, r"unknown hyper-parameter\(s\) \['a_z'\]"),
        ({"seed": -1}, r"seed: expected a non-negative integer"),
        ({"family": "diagonal"}, r"family: numpyro/advi has no family 'diagonal'; valid: \['mean"),
        ({"method": "nuts", "family": "block"}, r"family: numpyro/nuts is not variational"),
        (
            {"backend": "conjugate", "method": "cavi", "family": "full_rank"},
            r"family: conjugate/cavi has no family 'full_rank'; "
            r"valid: \['mean_field', 'block', 'mean_field\+lrvb', 'block\+lrvb'\]",
        ),
    ],
)
def test_bad_arguments_raise_value_errors_naming_the_valid_choices(data, kwargs, message):
    arguments = {"model": "random_intercept", "backend": "numpyro", "method": "advi"} | kwargs
    model = arguments.pop("model")
    with pytest.raises(ValueError, match=message):
        fit(model, data, **arguments)


@pytest.mark.parametrize("backend", ["numpyro", "pymc"])
def test_nuts_settings_are_checked(data, backend):
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['max_steps'\].*'num_chains'"):
        fit("random_intercept", data, backend=backend, method="nuts", settings={"max_steps": 1})
    with pytest.raises(ValueError, match=r"target_accept: expected a value in \(0, 1\)"):
        fit("random_intercept", data, backend=backend, method="nuts", settings={"target_accept": 2})


@pytest.mark.parametrize(
    ("backend", "settings", "message"),
    [
        ("numpyro", {"intercept_centring": True}, r"intercept_centring: needs groups sampled"),
        ("pymc", {"intercept_centring": True}, r"intercept_centring: needs groups sampled"),
        (
            "pymc",
            {"intercept_centring": True, "centring": "centred", "sampler": "pymc"},
            r"settings.intercept_centring: options of sampler='nutpie' only",
        ),
    ],
)
def test_intercept_centring_needs_centred_groups_and_nutpie(data, backend, settings, message):
    with pytest.raises(ValueError, match=message):
        fit("random_intercept", data, backend=backend, method="nuts", settings=settings)


def test_linear_data_cannot_fit_a_hierarchical_model(tiny_data):
    with pytest.raises(ValueError, match="group: model 'random_intercept' needs a group index"):
        fit("random_intercept", tiny_data["linear"], backend="pymc", method="advi")


def test_settings_table_resolves_per_entry():
    assert resolve_settings("pymc", "advi", {"tol": 1e-3}) == AdviSettings(tol=1e-3)
    assert resolve_settings("pymc", "advi", family="block") == DenseAdviSettings()
    assert resolve_settings("numpyro", "nuts") == NutsSettings()
