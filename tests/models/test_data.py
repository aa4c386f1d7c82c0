"""Simulators, real-data loaders and the validation of RegressionData and ModelSpec."""

import numpy as np
import pytest

from models import MODELS, RegressionData, get_model, load_dataset, simulate


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_same_seed_same_data(model_name):
    a, truth_a = simulate(model_name, n_groups=5, n_per_group=7, seed=42)
    b, truth_b = simulate(model_name, n_groups=5, n_per_group=7, seed=42)
    c, _ = simulate(model_name, n_groups=5, n_per_group=7, seed=43)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)
    np.testing.assert_array_equal(truth_a.get("u", []), truth_b.get("u", []))


def _ols(X, y):
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    sigma2 = resid @ resid / (len(y) - X.shape[1])
    return beta, np.sqrt(np.diag(sigma2 * np.linalg.inv(X.T @ X)))


def test_linear_truth_recovered_by_ols():
    data, truth = simulate("linear", n_obs=20_000, truth={"beta": [2.0, -1.0, 0.3]}, seed=5)
    beta, se = _ols(data.X, data.y)
    assert np.all(np.abs(beta - truth["beta"]) < 5 * se)
    resid = data.y - data.X @ beta
    tau_hat = 1.0 / resid.var()
    # var(1/s^2) ~ 2 tau^2 / n for Gaussian noise
    assert abs(tau_hat - truth["tau_e"]) < 5 * np.sqrt(2 / data.n_obs) * truth["tau_e"]


def test_random_intercept_truth_recovered():
    data, truth = simulate("random_intercept", n_groups=400, n_per_group=50, seed=8)
    dummies = np.eye(data.n_groups)[data.group]
    beta_u, *_ = np.linalg.lstsq(np.column_stack([data.X[:, 1:], dummies]), data.y, rcond=None)
    slopes, intercepts = beta_u[:2], beta_u[2:]
    assert np.all(np.abs(slopes - truth["beta"][1:]) < 5 / np.sqrt(data.n_obs))
    # group intercepts = beta_0 + u_j, estimated with noise variance 1/(tau_e n_j)
    noise = 1.0 / (truth["tau_e"] * 50)
    assert abs(intercepts.mean() - truth["beta"][0] - truth["u"].mean()) < 5 * np.sqrt(noise / 400)
    var_u = intercepts.var() - noise
    assert abs(var_u - truth["sigma2_u"]) < 5 * truth["sigma2_u"] * np.sqrt(2 / 400)


def test_logistic_truth_recovered_in_expectation():
    data, truth = simulate(
        "logistic_random_intercept", n_groups=200, n_per_group=200, truth={"tau_u": 1e6}, seed=9
    )
    eta = data.X @ truth["beta"] + truth["u"][data.group]
    p = 1.0 / (1.0 + np.exp(-eta))
    assert set(np.unique(data.y)) == {0.0, 1.0}
    assert abs(data.y.mean() - p.mean()) < 5 * np.sqrt(np.sum(p * (1 - p))) / data.n_obs


def test_unbalanced_groups():
    data, truth = simulate("random_intercept", group_sizes=[3, 1, 7], seed=0)
    np.testing.assert_array_equal(data.group_sizes(), [3, 1, 7])
    assert truth["u"].shape == (3,)


@pytest.mark.parametrize(
    ("name", "n_rows", "n_groups", "coefs"),
    [
        ("boston", 506, 0, ("intercept", "rm", "lstat")),
        ("exam", 4059, 65, ("intercept", "standLRT", "male")),
        ("contraception", 1934, 60, ("intercept", "age", "urban")),
    ],
)
def test_loaders(name, n_rows, n_groups, coefs):
    data = load_dataset(name)
    assert data.X.shape == (n_rows, len(coefs))
    assert data.coef_names == coefs
    assert data.n_groups == n_groups
    assert np.all(np.isfinite(data.X)) and np.all(np.isfinite(data.y))
    np.testing.assert_array_equal(data.X[:, 0], 1.0)
    for j in range(1, data.n_coef):
        column = data.X[:, j]
        is_indicator = set(np.unique(column)) <= {0.0, 1.0}
        assert is_indicator or (abs(column.mean()) < 1e-12 and abs(column.std() - 1) < 1e-12)
    if n_groups:
        assert np.all(data.group_sizes() > 0)
    assert data.name == name


def test_contraception_is_binary_and_fits_logistic_model():
    data = load_dataset("contraception")
    assert MODELS["logistic_random_intercept"].check_data(data) is data
    assert "54" not in data.group_labels and "61" in data.group_labels


def _xy(n=6):
    return np.column_stack([np.ones(n), np.arange(n, dtype=float)]), np.arange(n, dtype=float)


@pytest.mark.parametrize("field", ["X", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_rejected(field, bad):
    X, y = _xy()
    (X if field == "X" else y)[-1] = bad
    with pytest.raises(ValueError, match=rf"^{field}: expected finite"):
        RegressionData(X=X, y=y)


def test_mismatched_lengths_and_shapes():
    X, y = _xy()
    with pytest.raises(ValueError, match="^y: expected 6 rows"):
        RegressionData(X=X, y=y[:-1])
    with pytest.raises(ValueError, match="^X: expected a 2-D array"):
        RegressionData(X=y, y=y)
    with pytest.raises(ValueError, match=r"^group: expected shape \(6,\)"):
        RegressionData(X=X, y=y, group=np.array([0, 1]))
    with pytest.raises(ValueError, match="^coef_names: expected 2 names"):
        RegressionData(X=X, y=y, coef_names=("a",))


@pytest.mark.parametrize(
    "group", [[0, 0, 2, 2, 3, 3], [1, 1, 2, 2, 3, 3], [-1, 0, 0, 1, 1, 1], [0, 0.5, 1, 1, 1, 1]]
)
def test_group_index_must_be_0_to_q_minus_1(group):
    X, y = _xy()
    with pytest.raises(ValueError, match="^group: expected"):
        RegressionData(X=X, y=y, group=np.array(group))


def test_labels_are_encoded():
    X, y = _xy()
    data = RegressionData.from_labels(X, y, ["b", "10", "b", "2", "10", "2"])
    np.testing.assert_array_equal(data.group, [2, 1, 2, 0, 1, 0])
    assert data.group_labels == ("2", "10", "b")
    with pytest.raises(ValueError, match="^group: expected a label on every row"):
        RegressionData.from_labels(X, y, ["a", None, "a", "b", "b", "b"])
    with pytest.raises(ValueError, match="^group: expected integer indices"):
        RegressionData(X=X, y=y, group=np.array(["a", "a", "b", "b", "c", "c"]))


def test_subset_keeps_group_coding():
    data, _ = simulate("random_intercept", n_groups=4, n_per_group=3, seed=0)
    held_out = data.subset(data.group == 2)
    assert held_out.n_groups == 4 and held_out.group_labels == data.group_labels
    with pytest.raises(ValueError, match=r"^group: expected indices in 0\.\.3"):
        RegressionData(X=data.X, y=data.y, group=data.group + 1, n_groups=4)


@pytest.mark.parametrize("model_name", ["random_intercept", "random_intercept_nc"])
def test_hierarchical_models_need_two_groups(model_name):
    X, y = _xy()
    spec = MODELS[model_name]
    with pytest.raises(ValueError, match="^group: model .* needs at least 2 groups, got 1"):
        spec.check_data(RegressionData(X=X, y=y, group=np.zeros(6, dtype=int)))
    with pytest.raises(ValueError, match="^group: model .* needs a group index"):
        spec.check_data(RegressionData(X=X, y=y))


def test_logistic_model_needs_binary_outcome():
    X, y = _xy()
    data = RegressionData(X=X, y=y, group=np.array([0, 0, 0, 1, 1, 1]))
    with pytest.raises(ValueError, match="^y: model 'logistic_random_intercept' expects a 0/1"):
        MODELS["logistic_random_intercept"].check_data(data)


def test_unknown_names():
    with pytest.raises(ValueError, match=r"^model: unknown model 'nope'; valid: \["):
        get_model("nope")
    with pytest.raises(ValueError, match=r"^dataset: unknown data set 'iris'"):
        load_dataset("iris")
    with pytest.raises(ValueError, match=r"^priors: unknown hyper-parameter\(s\) \['a_x'\]"):
        MODELS["linear"].priors(a_x=1.0)
    with pytest.raises(ValueError, match=r"^truth: unknown parameter\(s\) \['rho'\]"):
        simulate("linear", truth={"rho": 1.0})
    with pytest.raises(ValueError, match="^n_groups: expected at least 2 groups, got 1"):
        simulate("random_intercept", n_groups=1)
    with pytest.raises(ValueError, match="^truth.tau_u: expected a positive precision"):
        simulate("random_intercept", truth={"tau_u": -1.0})
