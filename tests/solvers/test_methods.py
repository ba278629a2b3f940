"""adaptim.solvers' methods against hand-computed small cases."""

from __future__ import annotations

import math

import pytest
import torch

from adaptim.solvers import SolverError, gradient, gradient_descent, hessian, nesterov_agd, newton

D = torch.float64


def quad(a):
    a = torch.as_tensor(a, dtype=D)
    return lambda w: 0.5 * (a * w * w).sum()


def test_gd_on_a_diagonal_quadratic_has_the_closed_form_iterates():
    # J = 1/2 sum a_i w_i^2, step 1/L with L = max a: w_{t+1,i} = (1 - a_i / L)^t w_{1,i}
    a = torch.tensor([4.0, 1.0, 0.25], dtype=D)
    w0 = torch.tensor([1.0, -2.0, 3.0], dtype=D)
    h = gradient_descent(quad(a), w0, L=4.0, steps=5)
    t = torch.arange(6, dtype=D)[:, None]
    assert h.iterates.shape == (6, 3) and h.iterates.dtype == D
    torch.testing.assert_close(h.iterates, (1 - a / 4) ** t * w0, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(h.values, 0.5 * (a * h.iterates**2).sum(1), rtol=1e-15, atol=0)
    assert h.method == "gradient_descent" and h.steps == 5 and h.points is None


def test_gd_first_step_by_hand_with_a_user_gradient():
    # J = (w - 3)^2 in 1-D, L = 2: one step lands on 3 exactly
    f = lambda w: ((w - 3) ** 2).sum()
    h = gradient_descent(f, torch.tensor([0.0]), 2.0, 2, grad=lambda w: 2 * (w - 3))
    assert h.iterates[:, 0].tolist() == [0.0, 3.0, 3.0]
    assert h.values.tolist() == [9.0, 0.0, 0.0]


def test_nesterov_by_hand_in_one_dimension():
    # J = w^2 / 2 (L = 2, step 1/2): w2 = y1 - y1/2; y2 = w2 + (1/4)(w2 - w1); w3 = y2/2; y3 = w3 + (2/5)(w3 - w2)
    f = lambda w: 0.5 * (w * w).sum()
    h = nesterov_agd(f, torch.tensor([8.0], dtype=D), 2.0, 2)
    w1, y1 = 8.0, 8.0
    w2 = y1 / 2
    y2 = w2 + 0.25 * (w2 - w1)
    w3 = y2 / 2
    y3 = w3 + 0.4 * (w3 - w2)
    assert h.iterates[:, 0].tolist() == [w1, w2, w3]
    assert h.points[:, 0].tolist() == [y1, y2, y3]
    assert h.values.tolist() == [0.5 * w1**2, 0.5 * w2**2, 0.5 * w3**2]


def test_newton_solves_a_quadratic_in_one_step():
    a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=D)
    b = torch.tensor([1.0, -1.0], dtype=D)
    f = lambda w: 0.5 * w @ a @ w - b @ w
    h = newton(f, torch.tensor([5.0, 7.0], dtype=D), 1)
    torch.testing.assert_close(h.iterates[1], torch.linalg.solve(a, b), rtol=1e-14, atol=1e-14)


def test_damped_newton_halves_the_distance_on_a_quadratic():
    h = newton(quad([2.0, 5.0]), torch.tensor([4.0, -8.0], dtype=D), 3, lr=0.5)
    torch.testing.assert_close(h.iterates[3], torch.tensor([0.5, -1.0], dtype=D))


def test_newton_on_w4_contracts_by_two_thirds_with_user_derivatives():
    f = lambda w: (w**4).sum() / 4
    h = newton(f, torch.tensor([3.0], dtype=D), 4, grad=lambda w: w**3, hessian=lambda w: 3 * w**2)
    torch.testing.assert_close(h.iterates[:, 0], 3.0 * (2 / 3) ** torch.arange(5, dtype=D))


def test_autograd_gradient_and_hessian():
    f = lambda w: w[0] ** 2 * w[1] + torch.exp(w[1])
    w = torch.tensor([1.0, 0.0], dtype=D)
    torch.testing.assert_close(gradient(f, w), torch.tensor([0.0, 2.0], dtype=D))
    torch.testing.assert_close(hessian(f, w), torch.tensor([[0.0, 2.0], [2.0, 1.0]], dtype=D))


def test_float32_start_is_computed_in_float64():
    h = gradient_descent(quad([1.0]), torch.tensor([1.0], dtype=torch.float32), 1.0, 1)
    assert h.iterates.dtype == D and h.values.dtype == D


def test_history_errors_and_distances():
    h = gradient_descent(quad([1.0, 1.0]), torch.tensor([3.0, 4.0], dtype=D), 2.0, 1)
    torch.testing.assert_close(h.distances(torch.zeros(2)), torch.tensor([5.0, 2.5], dtype=D))
    torch.testing.assert_close(h.errors(1.0), h.values - 1.0)


def test_zero_steps_returns_the_start():
    h = newton(quad([1.0]), torch.tensor([2.0], dtype=D), 0)
    assert h.iterates.shape == (1, 1) and h.values.tolist() == [2.0]


@pytest.mark.parametrize("method", [gradient_descent, nesterov_agd])
def test_bad_input_is_refused(method):
    f, w0 = quad([1.0]), torch.tensor([1.0], dtype=D)
    with pytest.raises(TypeError, match="f must be a callable"):
        method(3.0, w0, 1.0, 1)
    for L in (0.0, -1.0, math.inf, True):
        with pytest.raises(ValueError, match="L"):
            method(f, w0, L, 1)
    with pytest.raises(ValueError, match="steps"):
        method(f, w0, 1.0, -1)
    with pytest.raises(TypeError, match="w0"):
        method(f, [1.0], 1.0, 1)
    with pytest.raises(ValueError, match="1-D floating-point"):
        method(f, torch.ones(2, 2, dtype=D), 1.0, 1)
    with pytest.raises(ValueError, match="1-D floating-point"):
        method(f, torch.tensor([1, 2]), 1.0, 1)
    with pytest.raises(ValueError, match="scalar"):
        method(lambda w: w * 2, torch.ones(2, dtype=D), 1.0, 1)


def test_newton_bad_input_is_refused():
    f, w0 = quad([1.0]), torch.tensor([1.0], dtype=D)
    with pytest.raises(ValueError, match="lr"):
        newton(f, w0, 1, lr=0.0)
    with pytest.raises(ValueError, match="lr"):
        newton(f, w0, 1, lr=1.5)
    with pytest.raises(TypeError, match="hessian"):
        newton(f, w0, 1, hessian="H")
    with pytest.raises(ValueError, match="shape"):
        newton(f, w0, 1, hessian=lambda w: torch.ones(3))


def test_newton_singular_hessian_names_the_step():
    # J = (w1 + w2)^2: the Hessian [[2, 2], [2, 2]] is singular at every point
    f = lambda w: (w.sum()) ** 2
    with pytest.raises(SolverError, match="step 1: the Hessian at w_1 is singular") as e:
        newton(f, torch.tensor([1.0, 2.0], dtype=D), 3)
    assert isinstance(e.value, RuntimeError) and e.value.step == 1 and e.value.history.steps == 0


def test_newton_singular_at_a_later_step():
    # a user Hessian that vanishes from step 2 on
    calls = []

    def hess(w):
        calls.append(1)
        return torch.eye(1, dtype=D) * (1.0 if len(calls) == 1 else 0.0)

    with pytest.raises(SolverError, match="step 2") as e:
        newton(quad([1.0]), torch.tensor([1.0], dtype=D), 5, hessian=hess)
    assert e.value.step == 2 and e.value.history.iterates.shape == (2, 1)


def test_divergence_is_reported_with_the_step():
    # e^w - w from -100: w_2 = -101 + e^100 > 1e43; at w_2 the gradient overflows
    f = lambda w: (torch.exp(w) - w).sum()
    with pytest.raises(SolverError, match="step 2") as e:
        newton(f, torch.tensor([-100.0], dtype=D), 3)
    w2 = e.value.history.iterates[1, 0].item()
    assert w2 == pytest.approx(math.exp(100) - 101, rel=1e-12) and w2 > 1e43
    assert e.value.history.values[1].item() == math.inf
