"""The coordinates NumPyro's NUTS moves in (inference.ppl.centring): centred groups carry their
own intercept, exactly and reversibly."""

import jax.numpy as jnp
import numpy as np

from inference.ppl.centring import intercept_column, shear_to_intercept


def test_intercept_column_is_the_first_column_of_ones():
    X = np.array([[2.0, 1.0, 1.0], [3.0, 1.0, 1.0]])
    np.testing.assert_array_equal(intercept_column(X), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(intercept_column(jnp.asarray(X)), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(intercept_column(X[:, :1]), [0.0])


def test_only_the_centred_groups_move_by_the_intercept_and_back():
    X = np.column_stack([np.ones(4), np.arange(4.0)])
    centred = np.array([True, False, True])
    params = {
        "beta": np.array([0.7, -2.0]),
        "u_decentered": np.array([0.1, 0.2, 0.3]),
        "tau_u": np.array(0.5),
    }
    intercept = intercept_column(X)
    sampled = shear_to_intercept(params, intercept, centred, 1.0)
    np.testing.assert_allclose(sampled["u_decentered"], [0.8, 0.2, 1.0])
    for name in ("beta", "tau_u"):
        np.testing.assert_array_equal(sampled[name], params[name])
    back = shear_to_intercept(sampled, intercept, centred, -1.0)
    np.testing.assert_allclose(back["u_decentered"], params["u_decentered"], rtol=1e-15)
    no_intercept = shear_to_intercept(params, intercept_column(X * [2.0, 1.0]), centred, 1.0)
    np.testing.assert_array_equal(no_intercept["u_decentered"], params["u_decentered"])
