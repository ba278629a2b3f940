"""The regret bounds (18)-(20), (22)-(24), (155) and online-to-batch on a 3-round run computed by hand.

The run: SGD with lr 0.5 on l_t(w) = <g_t, w>, g = (1, 0), (0, 2), (-1, 1), unprojected, u* = (0, -1) (unit ball).
Iterates w = 0, (-0.5, 0), (-0.5, -1); regret 2.5; D_1 = 1, D = sqrt(1.25), L = 2, sum ||g||² = 7, T = 3.
"""

import math

import pytest
import torch

import adaptim
from adaptim.online import (
    LinearLosses,
    OnlineToBatch,
    QuadraticLosses,
    excess_risk,
    heavy_ball_bound,
    heavy_ball_optimal_bound,
    heavy_ball_optimal_lr,
    mirror_descent_bound,
    online_to_batch,
    run_online,
    sample_stream,
    sgd_anytime_bound,
    sgd_bound,
    sgd_optimal_bound,
    sgd_optimal_lr,
)

GS = [[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]]


@pytest.fixture(scope="module")
def run():
    return run_online(lambda p: adaptim.SGD(p, lr=0.5, foreach=True), LinearLosses(GS, radius=1.0))


def test_sgd_bounds_by_hand(run):
    assert run.regret() == pytest.approx(2.5)
    # (22): D_1²/(2 eta) + (eta/2) sum ||g||² = 1 + 1.75; with L = 2: 1 + (0.5/2) 4 * 3
    assert sgd_bound(run) == pytest.approx(2.75)
    assert sgd_bound(run, 0.5) == pytest.approx(2.75)
    assert sgd_bound(run, 0.5, L=2.0) == pytest.approx(4.0)
    assert run.regret() <= sgd_bound(run)
    # (23): eta* = D_1/(L sqrt T) = 1/(2 sqrt 3), bound D_1 L sqrt T = 2 sqrt 3
    assert sgd_optimal_lr(run) == pytest.approx(1 / (2 * math.sqrt(3)))
    assert sgd_optimal_bound(run) == pytest.approx(2 * math.sqrt(3))
    assert sgd_bound(run, sgd_optimal_lr(run), L=run.L) == pytest.approx(sgd_optimal_bound(run))
    # (24) first form with eta = 1, 1/2, 1/4: D²/(2 eta_T) + ½ sum eta_t ||g_t||² = 2.5 + ½(1 + 2 + 0.5)
    assert sgd_bound(run, [1.0, 0.5, 0.25]) == pytest.approx(4.25)
    # (24) last form: ((D² + 2 L²)/2) sqrt T = (1.25 + 8)/2 sqrt 3; with eta = 2: (1.25/4 + 8) sqrt 3
    assert sgd_anytime_bound(run) == pytest.approx(9.25 / 2 * math.sqrt(3))
    assert sgd_anytime_bound(run, 2.0) == pytest.approx((1.25 / 4 + 8) * math.sqrt(3))
    # against another comparator u = 0: D_1 = 0
    assert sgd_bound(run, u=torch.zeros(2)) == pytest.approx(1.75)


def test_mirror_descent_bounds_by_hand(run):
    assert mirror_descent_bound(run) == pytest.approx(2.75)  # (20) with A = I: same as (22)
    assert mirror_descent_bound(run, 0.5, equation=19) == pytest.approx(1.25 + 1.75)
    assert mirror_descent_bound(run, 0.5, equation=18) == pytest.approx(1.25 * 2 + 1.75)  # tr(I_2) = 2
    # A = diag(2, 1): D_{A,1}² = 1, ||g||²_{A^-1} = 1/2, 4, 3/2: (20) = 1/(2 * 0.5) + 0.25 * 6
    assert mirror_descent_bound(run, 0.5, torch.tensor([2.0, 1.0])) == pytest.approx(2.5)
    assert mirror_descent_bound(run, 0.5, torch.diag(torch.tensor([2.0, 1.0]))) == pytest.approx(2.5)
    # (19) with A = diag(2, 1): max ||w_t - u||_A² = max(1, 1.5, 0.5) = 1.5
    assert mirror_descent_bound(run, 0.5, torch.tensor([2.0, 1.0]), equation=19) == pytest.approx(1.5 + 1.5)
    # per-step diagonals A_t = (1,1), (2,1), (2,2): (18) = D² tr(A_3)/(2 eta) + ½ eta (1 + 4 + 1) = 5 + 1.5
    At = torch.tensor([[1.0, 1.0], [2.0, 1.0], [2.0, 2.0]])
    assert mirror_descent_bound(run, 0.5, At) == pytest.approx(6.5)
    with pytest.raises(ValueError, match=r"\(15\)"):
        mirror_descent_bound(run, 0.5, At.flip(0))
    with pytest.raises(ValueError, match=r"\(14\)"):
        mirror_descent_bound(run, [0.25, 0.5, 1.0], equation=19)
    with pytest.raises(ValueError, match="fixed preconditioner"):
        mirror_descent_bound(run, 0.5, At, equation=19)
    with pytest.raises(ValueError, match="constant learning rate"):
        mirror_descent_bound(run, [1.0, 0.5, 0.25], equation=20)
    with pytest.raises(ValueError, match="equation"):
        mirror_descent_bound(run, 0.5, equation=21)
    with pytest.raises(ValueError, match="A must be"):
        mirror_descent_bound(run, 0.5, torch.ones(3))


def test_heavy_ball_bounds_by_hand(run):
    # D_1²(1 - mu)/(2 eta) + eta T L² (1 + mu)/(2 (1 - mu)²) at eta = mu = 0.5: 0.5 + 0.5 * 3 * 4 * 1.5 / 0.5
    assert heavy_ball_bound(run, 0.5, 0.5) == pytest.approx(18.5)
    # (155): D_1 L sqrt T sqrt((1 + mu)/(1 - mu)) = 2 sqrt 3 sqrt 3 = 6
    assert heavy_ball_optimal_bound(run, 0.5) == pytest.approx(6.0)
    # eta = (D_1/L) sqrt((1 - mu)³/((1 + mu) T)) = 0.5 sqrt(0.125/4.5) = 1/12
    assert heavy_ball_optimal_lr(run, 0.5) == pytest.approx(1 / 12)
    assert heavy_ball_bound(run, 1 / 12, 0.5) == pytest.approx(6.0)
    # mu = 0: (155) is (23)
    assert heavy_ball_optimal_bound(run, 0.0) == pytest.approx(sgd_optimal_bound(run))
    assert heavy_ball_bound(run, 0.5, 0.0) == pytest.approx(sgd_bound(run, 0.5, L=run.L))


def test_heavy_ball_regret_below_its_bound():
    gen = torch.Generator().manual_seed(0)
    adv = LinearLosses(torch.randn(50, 3, generator=gen, dtype=torch.float64) + 0.3, radius=1.0)
    mu = 0.9
    probe = run_online(lambda p: adaptim.SGD(p, lr=0.1, foreach=True), adv)
    eta = heavy_ball_optimal_lr(probe, mu)  # D_1 and L do not depend on the learner here
    run = run_online(lambda p: adaptim.SGD(p, lr=eta, momentum=mu, foreach=True), adv)
    assert run.regret() <= heavy_ball_optimal_bound(run, mu)


def test_bound_bad_input(run):
    with pytest.raises(ValueError, match="lr"):
        sgd_bound(run, -0.1)
    with pytest.raises(ValueError, match="lr"):
        sgd_bound(run, [0.1, 0.2])
    with pytest.raises(ValueError, match="learning rate"):
        sgd_bound(run, [0.1, 0.0, 0.1])
    with pytest.raises(ValueError, match="nonincreasing"):
        sgd_bound(run, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="momentum"):
        heavy_ball_bound(run, 0.1, 1.0)
    with pytest.raises(ValueError, match="L = 1"):
        sgd_bound(run, 0.1, L=1.0)
    with pytest.raises(ValueError, match="u must have"):
        sgd_bound(run, 0.1, u=torch.zeros(5))
    with pytest.raises(TypeError, match="OnlineRun"):
        sgd_bound("run", 0.1)
    zero = run_online(lambda p: adaptim.SGD(p, lr=0.5, foreach=True), LinearLosses(GS, radius=1.0), w0=[0.0, -1.0])
    with pytest.raises(ValueError, match="D_1 > 0"):
        sgd_optimal_lr(zero)


def test_online_to_batch_by_hand(run):
    out = online_to_batch(run)
    assert isinstance(out, OnlineToBatch) and isinstance(out, tuple)
    w_bar, mean_loss, T = out
    torch.testing.assert_close(w_bar, torch.tensor([-1 / 3, -1 / 3], dtype=torch.float64))
    assert mean_loss == pytest.approx(-0.5 / 3) and T == 3
    with pytest.raises(TypeError, match="OnlineRun"):
        online_to_batch(None)


def test_excess_risk_and_sample_stream():
    # J(w) = mean ½(w - z)² over z = 0, 2: J* = J(1) = 0.5, J(3) = (4.5 + 0.5)/2
    pop = QuadraticLosses([[0.0], [2.0]])
    assert excess_risk(pop, torch.tensor([3.0])) == pytest.approx(2.0)
    assert excess_risk(pop, torch.tensor([1.0])) == pytest.approx(0.0, abs=1e-15)
    X = torch.arange(10.0).reshape(5, 2)
    y = torch.arange(5.0)
    Xs, ys = sample_stream(X, y, 200, seed=1)
    assert Xs.shape == (200, 2) and ys.shape == (200,) and Xs.dtype == torch.float64
    torch.testing.assert_close(Xs[:, 0], 2 * ys)  # rows stay paired
    assert set(ys.tolist()) == set(range(5))
    assert torch.equal(sample_stream(X, y, 200, seed=1)[0], Xs)
    with pytest.raises(ValueError, match="T"):
        sample_stream(X, y, 0)
    with pytest.raises(ValueError, match="X must be"):
        sample_stream(X, y[:3], 4)
