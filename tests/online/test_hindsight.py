"""Best fixed points in hindsight: closed forms and solvers against hand values and scipy.optimize."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from adaptim.online import (
    AbsoluteLosses,
    HingeLosses,
    LinearLosses,
    LogisticLosses,
    QuadraticLosses,
    RandomSign,
    ReddiCounterexample,
    best_fixed,
    breast_cancer_stream,
)
from adaptim.online.hindsight import linear_best_fixed


def _ball_slsqp(f, d, R, x0=None):
    cons = [{"type": "ineq", "fun": lambda w: R**2 - w @ w, "jac": lambda w: -2 * w}]
    res = minimize(
        f, np.zeros(d) if x0 is None else x0, method="SLSQP", constraints=cons, options={"ftol": 1e-15, "maxiter": 2000}
    )
    w = res.x if np.linalg.norm(res.x) <= R else res.x * (R / np.linalg.norm(res.x))
    return w, f(w)


def test_linear_ball_closed_form_against_scipy():
    rng = np.random.default_rng(0)
    gs = rng.normal(size=(7, 3))
    adv = LinearLosses(gs, radius=2.0)
    u, v = adv.best_fixed()
    G = gs.sum(0)
    np.testing.assert_allclose(u.numpy(), -2.0 * G / np.linalg.norm(G), rtol=1e-14)
    assert v == pytest.approx(-2.0 * np.linalg.norm(G), rel=1e-14)
    _, v_sc = _ball_slsqp(lambda w: G @ w, 3, 2.0, x0=np.full(3, 0.1))
    assert v <= v_sc + 1e-9 and v_sc - v < 1e-7
    assert adv.cumulative_loss(u) == pytest.approx(v, rel=1e-14)
    assert best_fixed(adv)[1] == v


def test_linear_degenerate_and_unbounded():
    u, v = LinearLosses([[1.0, 0.0], [-1.0, 0.0]], radius=1.0).best_fixed()
    assert v == 0.0 and torch.equal(u, torch.zeros(2, dtype=torch.float64))
    u, v = LinearLosses([[1.0, 0.0], [-1.0, 0.0]]).best_fixed()  # R^d with G = 0
    assert v == 0.0
    with pytest.raises(ValueError, match="radius"):
        LinearLosses([[1.0, 0.0]]).best_fixed()
    with pytest.raises(ValueError, match="domain"):
        linear_best_fixed(np.ones(2), "sphere")


def test_random_sign_and_reddi():
    adv = RandomSign(9, seed=1, copies=4)
    u, v = adv.best_fixed()
    S = adv.signs.sum(0)  # T odd: S != 0
    torch.testing.assert_close(u, torch.sign(S))
    assert v == pytest.approx(-float(S.abs().sum()))
    # f_t(x) = 3x, -x, -x, 3x, -x, -x: sum of coefficients 2 > 0, u* = -1, value -2
    r = ReddiCounterexample(3.0, 6)
    torch.testing.assert_close(r.gs.reshape(-1), torch.tensor([3.0, -1, -1, 3, -1, -1], dtype=torch.float64))
    u, v = r.best_fixed()
    assert u.item() == -1.0 and v == pytest.approx(-2.0)
    assert r.domain.contains(u)


def test_quadratic_mean_and_projected_mean():
    Z = np.array([[1.0, 0.0], [3.0, 2.0], [2.0, 4.0]])
    u, v = QuadraticLosses(Z).best_fixed()
    np.testing.assert_allclose(u.numpy(), [2.0, 2.0])
    assert v == pytest.approx(0.5 * (1 + 4 + 1 + 0 + 0 + 4))
    u, v = QuadraticLosses(Z, radius=1.0).best_fixed()
    np.testing.assert_allclose(u.numpy(), [1 / math.sqrt(2)] * 2, rtol=1e-14)
    f = lambda w: 0.5 * ((Z - w) ** 2).sum()
    _, v_sc = _ball_slsqp(f, 2, 1.0)
    assert v == pytest.approx(v_sc, abs=1e-9)


def test_absolute_losses_median_and_grid():
    # 1-D, x_t = 1: the minimizer of sum |u - y_t| is the median
    u, v = AbsoluteLosses([[1.0]] * 3, [1.0, 2.0, 10.0]).best_fixed()
    assert u.item() == pytest.approx(2.0, abs=1e-9) and v == pytest.approx(9.0, abs=1e-9)
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(12, 2)), rng.normal(size=12)
    adv = AbsoluteLosses(X, y)
    u, v = adv.best_fixed()
    grid = np.stack(np.meshgrid(np.linspace(-3, 3, 601), np.linspace(-3, 3, 601)), -1).reshape(-1, 2)
    vals = np.abs(grid @ X.T - y).sum(1)
    assert v <= vals.min() + 1e-9 and vals.min() - v < 0.05
    # the box |u_i| <= 0.1 binds
    ub, vb = AbsoluteLosses(X, y, bound=0.1).best_fixed()
    assert float(ub.abs().max()) <= 0.1 + 1e-9 and vb >= v - 1e-9


def test_hinge_losses_hand_and_grid():
    # max(0, 1 - u) + max(0, 1 + u) >= 2, attained on [-1, 1]
    u, v = HingeLosses([[1.0], [1.0]], [1.0, -1.0]).best_fixed()
    assert v == pytest.approx(2.0, abs=1e-9) and abs(u.item()) <= 1 + 1e-9
    rng = np.random.default_rng(2)
    X = rng.normal(size=(15, 2))
    y = np.where(rng.random(15) < 0.5, -1.0, 1.0)
    u, v = HingeLosses(X, y).best_fixed()
    grid = np.stack(np.meshgrid(np.linspace(-4, 4, 801), np.linspace(-4, 4, 801)), -1).reshape(-1, 2)
    vals = np.maximum(0, 1 - y * (grid @ X.T)).sum(1)
    assert v <= vals.min() + 1e-9 and vals.min() - v < 0.05
    with pytest.raises(ValueError, match="y must hold labels"):
        HingeLosses(X, np.arange(15.0))


def test_logistic_unconstrained_against_bfgs():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    y = np.where(rng.random(40) < 1 / (1 + np.exp(-X @ [1.0, -0.5, 0.2])), 1.0, -1.0)  # noisy: not separable
    u, v = LogisticLosses(X, y).best_fixed()
    f = lambda w: np.logaddexp(0, -y * (X @ w)).sum()
    g = lambda w: -(X.T @ (y / (1 + np.exp(y * (X @ w)))))
    res = minimize(f, np.zeros(3), jac=g, method="BFGS", options={"gtol": 1e-12})
    assert v <= res.fun + 1e-10 and res.fun - v < 1e-9
    np.testing.assert_allclose(u.numpy(), res.x, atol=1e-5)


@pytest.mark.parametrize("R", [0.3, 2.0])
def test_logistic_on_ball_against_slsqp(R):
    X, y = breast_cancer_stream()
    X, y = X[:80].numpy(), y[:80].numpy()
    u, v = LogisticLosses(X, y, radius=R).best_fixed()
    assert np.linalg.norm(u.numpy()) <= R * (1 + 1e-12)
    f = lambda w: np.logaddexp(0, -y * (X @ w)).sum()
    _, v_sc = _ball_slsqp(f, X.shape[1], R)
    assert v <= v_sc + 1e-9 and v_sc - v < 1e-6


def test_logistic_separable_needs_radius():
    X, y = [[1.0], [-1.0]], [1.0, -1.0]
    with pytest.raises(ValueError, match="separable"):
        LogisticLosses(X, y).best_fixed()
    u, v = LogisticLosses(X, y, radius=2.0).best_fixed()
    assert u.item() == pytest.approx(2.0) and v == pytest.approx(2 * math.log1p(math.exp(-2.0)), rel=1e-12)


def test_breast_cancer_stream():
    X, y = breast_cancer_stream()
    assert X.shape == (569, 30) and y.shape == (569,) and X.dtype == torch.float64
    assert set(y.tolist()) == {-1.0, 1.0} and int((y == 1).sum()) == 357
    torch.testing.assert_close(X.mean(0), torch.zeros(30, dtype=torch.float64), atol=1e-12, rtol=0)
    X2, y2 = breast_cancer_stream()
    assert torch.equal(X, X2) and torch.equal(y, y2)
    X3, _ = breast_cancer_stream(seed=1)
    assert not torch.equal(X, X3)
    Xr, yr = breast_cancer_stream(standardize=False, seed=0)
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()  # the same table as scikit-learn's loader, permuted
    perm = np.random.default_rng(0).permutation(569)
    np.testing.assert_array_equal(Xr.numpy(), data.data[perm])
    np.testing.assert_array_equal(yr.numpy(), np.where(data.target[perm] == 1, 1.0, -1.0))


def test_adversary_bad_input():
    with pytest.raises(ValueError, match="gs"):
        LinearLosses(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="gs"):
        LinearLosses(np.zeros(3))
    with pytest.raises(ValueError, match="radius"):
        LinearLosses(np.ones((2, 2)), radius=-1.0)
    with pytest.raises(ValueError, match="finite"):
        QuadraticLosses([[math.nan]])
    with pytest.raises(ValueError, match="T"):
        RandomSign(0)
    with pytest.raises(ValueError, match="copies"):
        RandomSign(5, copies=0)
    with pytest.raises(ValueError, match="T"):
        ReddiCounterexample(3.0, 0)
    with pytest.raises(ValueError, match="one label per row"):
        LogisticLosses(np.ones((3, 2)), [1.0, -1.0])
    with pytest.raises(TypeError, match="X"):
        AbsoluteLosses([["a"]], [1.0])
    adv = LinearLosses(np.ones((2, 2)), radius=1.0)
    with pytest.raises(ValueError, match="round t"):
        adv.loss(2, torch.zeros(2))
    with pytest.raises(ValueError, match="w must have 2"):
        adv.loss(0, torch.zeros(3))
