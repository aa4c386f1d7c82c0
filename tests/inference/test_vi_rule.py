"""The learning-rate schedule and the windowed convergence rule shared by both ADVI engines."""

import numpy as np
import pytest

from inference.vi import ConvergenceRule, learning_rate_at, max_windows, optimise


def test_learning_rate_halves_after_decay_steps():
    assert learning_rate_at(0, 0.01, 5_000) == 0.01
    assert learning_rate_at(5_000, 0.01, 5_000) == pytest.approx(0.005)
    assert learning_rate_at(np.array([0, 15_000]), 0.01, 5_000) == pytest.approx([0.01, 0.0025])


def test_rule_waits_for_min_steps_then_stops_on_a_flat_loss():
    rule = ConvergenceRule(tol=1e-3, min_steps=300, window=100)
    flat = np.full(100, 1_000.0)
    assert [rule.update(flat) for _ in range(4)] == [False, False, True, True]


def test_rule_keeps_going_while_the_loss_falls():
    rule = ConvergenceRule(tol=1e-3, min_steps=100, window=100)
    assert not any(rule.update(np.full(100, 1_000.0 - 10.0 * k)) for k in range(10))


def test_rule_rejects_a_diverged_loss():
    rule = ConvergenceRule(tol=1e-3, min_steps=100, window=100)
    with pytest.raises(FloatingPointError, match="ADVI diverged"):
        rule.update(np.array([1.0, np.nan]))


def test_optimise_stops_at_the_cap_and_reports_it():
    falling = iter(np.arange(1_000.0, 0.0, -1.0).reshape(-1, 50))
    losses, converged = optimise(
        lambda: next(falling), tol=1e-9, min_steps=1, max_steps=230, window=50
    )
    assert max_windows(230, 50) == 4
    assert losses.size == 200 and not converged


def test_optimise_stops_when_converged():
    losses, converged = optimise(
        lambda: np.full(50, 7.0), tol=1e-6, min_steps=100, max_steps=10_000, window=50
    )
    assert losses.size == 100 and converged
