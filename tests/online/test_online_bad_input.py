"""Input handling of adaptim.online: preconditioners, numbers of other types, non-finite arrays, shapes, closures."""

import math

import numpy as np
import pytest
import torch

import adaptim
from adaptim.online import (
    LinearLosses,
    LogisticLosses,
    QuadraticLosses,
    RandomSign,
    ReddiCounterexample,
    adagrad_diagonal_bound,
    adagrad_norm_bound,
    box,
    excess_risk,
    heavy_ball_bound,
    l2_ball,
    mirror_descent_bound,
    run_online,
    sample_stream,
    sgd_anytime_bound,
    sgd_bound,
    shampoo_bound,
)
from adaptim.online.hindsight import linear_best_fixed, logistic_best_fixed, quadratic_best_fixed

NAN = float("nan")


@pytest.fixture(scope="module")
def run():
    g = torch.Generator().manual_seed(0)
    adv = LinearLosses(torch.randn(6, 3, generator=g, dtype=torch.float64), radius=1.0)
    return run_online(lambda p: adaptim.SGD(p, lr=0.1), adv, projection=adv.domain)


# 1. mirror_descent_bound's A must be finite, symmetric positive definite, of a known shape
@pytest.mark.parametrize(
    "A, match",
    [
        (-torch.eye(3), "A must be positive definite"),
        (torch.zeros(3), "A .*every entry > 0"),
        (torch.zeros(3, 3), "A must be positive definite"),
        (torch.full((3, 3), NAN), "A must be finite"),
        (torch.tensor([1.0, NAN, 1.0]), "A must be finite"),
        (torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), "A must be symmetric"),
        (torch.eye(2), "A must be None, \\(d,\\)"),
        ("abc", "A must be an array of numbers"),
        (torch.eye(3, dtype=torch.bool), "A must hold numbers"),
    ],
)
def test_mirror_descent_bound_rejects_bad_A(run, A, match):
    with pytest.raises(ValueError, match=match):
        mirror_descent_bound(run, 0.1, A=A)


def test_mirror_descent_bound_rejects_per_step_A_not_spd(run):
    As = torch.eye(3, dtype=torch.float64).repeat(run.T, 1, 1)
    As[-1, 0, 0] = -1.0
    with pytest.raises(ValueError, match="A must be positive definite"):
        mirror_descent_bound(run, 0.1, A=As, equation=18)
    with pytest.raises(ValueError, match="A .*every entry > 0"):
        mirror_descent_bound(run, 0.1, A=-torch.ones(run.T, 3), equation=18)


def test_mirror_descent_bound_spd_A_still_works(run):
    A = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 3.0]], dtype=torch.float64)
    assert mirror_descent_bound(run, 0.1, A=A) > 0
    assert mirror_descent_bound(run, 0.1, A=np.array([1.0, 2.0, 3.0]), equation=np.int64(19)) > 0


# 3. numbers of other types: numpy scalars and one-entry tensors; bools and non-finite values rejected
def test_bounds_accept_numpy_and_tensor_scalars(run):
    ref = sgd_bound(run, 0.1)
    for lr in (np.float32(0.1), np.float64(0.1), torch.tensor(0.1, dtype=torch.float64), np.array(0.1)):
        assert sgd_bound(run, lr) == pytest.approx(ref, rel=1e-6)
    L = run.L * 2
    assert sgd_bound(run, 0.1, L=torch.tensor(L)) == pytest.approx(sgd_bound(run, 0.1, L=L))
    ref_hb = heavy_ball_bound(run, 0.1, 0.5)
    assert heavy_ball_bound(run, np.float32(0.1), torch.tensor(0.5)) == pytest.approx(ref_hb, rel=1e-6)
    assert sgd_anytime_bound(run, np.float64(1.0)) == pytest.approx(sgd_anytime_bound(run, 1.0))
    assert adagrad_norm_bound(run, torch.tensor(0.5), eps=np.float32(0.0)) == pytest.approx(
        adagrad_norm_bound(run, 0.5)
    )
    assert adagrad_diagonal_bound(run, np.float64(0.5)) == pytest.approx(adagrad_diagonal_bound(run, 0.5))


@pytest.mark.parametrize("lr", [True, np.bool_(True), torch.tensor(True), NAN, math.inf, -0.1, 0, "0.1", torch.ones(2)])
def test_bounds_reject_bad_lr_naming_it(run, lr):
    with pytest.raises(ValueError, match="lr"):
        sgd_bound(run, lr)


def test_bounds_reject_bad_numbers_naming_them(run):
    with pytest.raises(ValueError, match="momentum"):
        heavy_ball_bound(run, 0.1, True)
    with pytest.raises(ValueError, match="momentum"):
        heavy_ball_bound(run, 0.1, np.float64(NAN))
    with pytest.raises(ValueError, match="L must be a finite number"):
        sgd_bound(run, 0.1, L=torch.tensor(math.inf))
    with pytest.raises(ValueError, match="L must be"):
        sgd_bound(run, 0.1, L=True)
    with pytest.raises(ValueError, match="eps"):
        adagrad_norm_bound(run, 0.5, eps="x")
    with pytest.raises(ValueError, match="eps"):
        adagrad_norm_bound(run, 0.5, eps=True)
    with pytest.raises(ValueError, match="lr"):
        adagrad_norm_bound(run, True)
    with pytest.raises(ValueError, match="equation"):
        mirror_descent_bound(run, 0.1, equation=True)


def test_shampoo_rank_must_be_an_integer():
    g = torch.Generator().manual_seed(1)
    run = run_online(lambda p: adaptim.SGD(p, lr=0.1), LinearLosses(torch.randn(4, 2, 2, generator=g), radius=1.0))
    assert shampoo_bound(run, 0.1, rank=np.int64(1)) == pytest.approx(shampoo_bound(run, 0.1, rank=1))
    with pytest.raises(ValueError, match="rank"):
        shampoo_bound(run, 0.1, rank=1.5)
    with pytest.raises(ValueError, match="rank"):
        shampoo_bound(run, 0.1, rank=0)


def test_adversaries_accept_numpy_integers_and_reject_bools():
    assert RandomSign(np.int64(5), seed=np.int64(1), copies=torch.tensor(2)).rounds == 5
    assert ReddiCounterexample(np.float64(3.0), np.int32(4)).C == 3.0
    assert LinearLosses(torch.ones(2, 2), radius=np.float32(2.0)).radius == 2.0
    with pytest.raises(ValueError, match="T must be an integer"):
        RandomSign(5.0)
    with pytest.raises(ValueError, match="copies"):
        RandomSign(5, copies=True)
    with pytest.raises(ValueError, match="C must be a finite number"):
        ReddiCounterexample(np.float64(NAN), 4)
    with pytest.raises(ValueError, match="radius"):
        LinearLosses(torch.ones(2, 2), radius=torch.tensor(math.inf))
    adv = LinearLosses(torch.ones(2, 2), radius=1.0)
    assert float(adv.loss(np.int64(1), torch.ones(2))) == 2.0
    with pytest.raises(ValueError, match="round t"):
        adv.loss(True, torch.ones(2))


def test_run_online_accepts_numpy_rounds():
    class Adv:
        rounds = np.int64(3)
        shape = (2,)

        def loss(self, t, w):
            return (w**2).sum()

    assert run_online(lambda p: adaptim.SGD(p, lr=0.1), Adv(), w0=torch.ones(2)).T == 3


# 4. non-finite inputs and wrong shapes
def test_nan_comparator_rejected(run):
    u = torch.full((3,), NAN)
    with pytest.raises(ValueError, match="u must be finite"):
        sgd_bound(run, 0.1, u=u)
    with pytest.raises(ValueError, match="u must be finite"):
        run.regret(u=u)
    with pytest.raises(ValueError, match="u must be finite"):
        run.regret_curve(u=u)
    with pytest.raises(ValueError, match="u must be finite"):
        run.distances(u=[0.0, math.inf, 0.0])
    with pytest.raises(ValueError, match="u must be finite"):
        adagrad_norm_bound(run, u=u)
    with pytest.raises(ValueError, match="u must be finite"):
        run.adversary.cumulative_loss(u)


def test_excess_risk_rejects_non_finite_w():
    adv = LogisticLosses(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]]), torch.tensor([1.0, -1.0, -1.0]), 2.0)
    with pytest.raises(ValueError, match="w must be finite"):
        excess_risk(adv, torch.tensor([NAN, 0.0]))
    assert excess_risk(adv, adv.best_fixed()[0]) == pytest.approx(0.0, abs=1e-9)


def test_l2_ball_center_checked():
    with pytest.raises(ValueError, match="center must be finite"):
        l2_ball(1.0, center=torch.tensor([NAN, 0.0]))
    with pytest.raises(ValueError, match="center must be an array of numbers"):
        l2_ball(1.0, center="abc")
    ball = l2_ball(1.0, center=torch.zeros(3))
    with pytest.raises(ValueError, match="center has shape \\(3,\\)"):
        ball(torch.ones(2))
    with pytest.raises(ValueError, match="center has shape"):
        ball.contains(torch.ones(2))
    # a numpy center and a numpy radius still project
    p = l2_ball(np.float64(1.0), center=np.array([1.0, 0.0]))(torch.tensor([4.0, 0.0], dtype=torch.float64))
    assert torch.allclose(p, torch.tensor([2.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="radius"):
        l2_ball(True)


def test_box_bounds_checked():
    with pytest.raises(ValueError, match="lo must not contain NaN"):
        box(NAN, 1.0)
    with pytest.raises(ValueError, match="do not broadcast together"):
        box(torch.zeros(3), torch.ones(2))
    with pytest.raises(ValueError, match="hi must be a number"):
        box(0.0, "x")
    b = box(torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="lo has shape \\(3,\\)"):
        b(torch.ones(2))
    with pytest.raises(ValueError, match="lo has shape"):
        b.contains(torch.ones(2))
    assert torch.equal(box(-math.inf, 0.5)(torch.tensor([1.0, -5.0])), torch.tensor([0.5, -5.0]))


def test_sample_stream_checks():
    X, y = torch.ones(4, 2), torch.ones(4)
    assert sample_stream(X, y, np.int64(3), seed=np.int64(0))[0].shape == (3, 2)
    with pytest.raises(ValueError, match="X must be finite"):
        sample_stream(torch.full((4, 2), NAN), y, 3)
    with pytest.raises(ValueError, match="y must be finite"):
        sample_stream(X, torch.full((4,), math.inf), 3)
    with pytest.raises(ValueError, match="T must be an integer"):
        sample_stream(X, y, True)
    with pytest.raises(ValueError, match="seed"):
        sample_stream(X, y, 3, seed=0.5)


def test_hindsight_solvers_reject_non_finite_data():
    with pytest.raises(ValueError, match="c must be finite"):
        linear_best_fixed(np.array([NAN, 1.0]), l2_ball(1.0))
    with pytest.raises(ValueError, match="targets must be finite"):
        quadratic_best_fixed(np.array([[NAN, 1.0]]))
    with pytest.raises(ValueError, match="radius"):
        quadratic_best_fixed(np.array([[1.0, 1.0]]), radius=-1.0)
    with pytest.raises(ValueError, match="X must be finite"):
        logistic_best_fixed(np.array([[NAN, 1.0]]), np.array([1.0]), 1.0)


# 5. optimizers whose step needs a closure
def test_run_online_with_lbfgs():
    g = torch.Generator().manual_seed(2)
    Z = torch.randn(5, 3, generator=g, dtype=torch.float64)

    class Counting(QuadraticLosses):
        calls = 0

        def loss(self, t, w):
            Counting.calls += 1
            return super().loss(t, w)

    adv = Counting(Z)
    run = run_online(lambda p: torch.optim.LBFGS(p, lr=1.0, max_iter=20), adv)
    assert Counting.calls > adv.rounds  # LBFGS re-evaluated the loss through the closure
    # the first round's LBFGS minimizes 1/2 ||w - z_1||^2 (identity Hessian): w_2 = z_1
    assert torch.allclose(run.iterates[1], Z[0], atol=1e-6)
    for t in range(adv.rounds):
        w, w_next = run.iterates[t], run.iterates[t + 1] if t + 1 < adv.rounds else run.final
        # the recorded loss and gradient are those at the played w_t, not at LBFGS's later evaluations
        assert float(run.losses[t]) == pytest.approx(0.5 * float(((w - Z[t]) ** 2).sum()), rel=1e-12)
        assert torch.allclose(run.grads[t], w - Z[t], atol=1e-12)
        # and each step decreases the round's loss
        assert ((w_next - Z[t]) ** 2).sum() <= ((w - Z[t]) ** 2).sum() + 1e-12


def test_run_online_with_lbfgs_and_a_subgradient_adversary():
    gs = torch.tensor([[1.0, 0.0], [0.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    adv = LinearLosses(gs, radius=1.0)
    run = run_online(lambda p: torch.optim.LBFGS(p, lr=0.1, max_iter=3), adv, projection=adv.domain)
    assert torch.equal(run.grads, gs)
    assert torch.isfinite(run.iterates).all()


def test_closure_leaves_other_optimizers_unchanged():
    """SGD calls the closure once, at w_t: the run is identical to stepping SGD by hand."""
    g = torch.Generator().manual_seed(3)
    Z = torch.randn(6, 2, generator=g, dtype=torch.float64)
    run = run_online(lambda p: torch.optim.SGD(p, lr=0.3, momentum=0.5), QuadraticLosses(Z))
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.3, momentum=0.5)
    for t in range(6):
        assert torch.equal(run.iterates[t], w.detach())
        opt.zero_grad()
        (0.5 * ((w - Z[t]) ** 2).sum()).backward()
        opt.step()
    assert torch.equal(run.final, w.detach())


def test_optimizer_whose_step_takes_no_closure():
    class NoClosure(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": 0.5})

        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                for p in group["params"]:
                    p.sub_(group["lr"] * p.grad)

    run = run_online(NoClosure, QuadraticLosses(torch.ones(3, 2)))
    assert torch.allclose(run.final, torch.full((2,), 0.875, dtype=torch.float64))
