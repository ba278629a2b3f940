"""run_online and OnlineRun against hand-computed small runs (Section 1's protocol)."""

import math

import pytest
import torch

import adaptim
from adaptim.online import (
    Box,
    L2Ball,
    LinearLosses,
    QuadraticLosses,
    RandomSign,
    box,
    l2_ball,
    run_online,
)

GS = [[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]]


def sgd(lr, **kw):
    return lambda p: adaptim.SGD(p, lr=lr, foreach=True, **kw)


def test_sgd_three_linear_rounds_unprojected():
    # w_1 = 0, w_2 = -0.5 g_1 = (-0.5, 0), w_3 = w_2 - 0.5 g_2 = (-0.5, -1); losses <g_t, w_t> = 0, 0, -0.5
    run = run_online(sgd(0.5), LinearLosses(GS, radius=1.0))
    torch.testing.assert_close(run.iterates, torch.tensor([[0.0, 0.0], [-0.5, 0.0], [-0.5, -1.0]], dtype=torch.float64))
    torch.testing.assert_close(run.losses, torch.tensor([0.0, 0.0, -0.5], dtype=torch.float64))
    torch.testing.assert_close(run.final, torch.tensor([0.0, -1.5], dtype=torch.float64))  # w_3 - 0.5 g_3
    torch.testing.assert_close(run.grads, torch.tensor(GS, dtype=torch.float64))
    # G = (0, 3): u* = (0, -1) on the unit ball, sum_t <g_t, u*> = -3, regret = -0.5 + 3
    torch.testing.assert_close(run.comparator, torch.tensor([0.0, -1.0], dtype=torch.float64))
    assert run.comparator_loss == pytest.approx(-3.0)
    assert run.regret() == pytest.approx(2.5)
    assert run.regret(torch.tensor([0.0, 0.0])) == pytest.approx(-0.5)
    # against u* per round: l_t(u*) = 0, -2, -1
    torch.testing.assert_close(run.regret_curve(), torch.tensor([0.0, 2.0, 2.5], dtype=torch.float64))
    # distances to u*: 1, sqrt(1.25), 0.5
    assert pytest.approx(math.sqrt(1.25)) == run.D
    assert pytest.approx(1.0) == run.D1
    assert run.D_inf == pytest.approx(1.0)
    assert pytest.approx(2.0) == run.L
    assert run.sum_sq_grad == pytest.approx(7.0)
    torch.testing.assert_close(run.O_T, torch.tensor([[2.0, -1.0], [-1.0, 5.0]], dtype=torch.float64))
    torch.testing.assert_close(run.diag_O_T, torch.tensor([2.0, 5.0], dtype=torch.float64))
    assert run.T == 3 and run.dim == 2
    torch.testing.assert_close(run.lrs, torch.full((3,), 0.5, dtype=torch.float64))


def test_sgd_three_linear_rounds_projected():
    # w_3 = (-0.5, -1) projected onto the unit ball = (-1, -2)/sqrt(5): loss 1/sqrt5 - 2/sqrt5
    adv = LinearLosses(GS, radius=1.0)
    run = run_online(sgd(0.5), adv, projection=adv.domain)
    s5 = math.sqrt(5)
    torch.testing.assert_close(run.iterates[2], torch.tensor([-1 / s5, -2 / s5], dtype=torch.float64))
    assert run.regret() == pytest.approx(3 - 1 / s5)
    assert run.cumulative_loss == pytest.approx(-1 / s5)


def test_w0_and_scheduler():
    run = run_online(sgd(1.0), LinearLosses(GS, radius=1.0), w0=[1.0, 1.0], scheduler=adaptim.inverse_sqrt)
    torch.testing.assert_close(run.lrs, torch.tensor([1.0, 1 / math.sqrt(2), 1 / math.sqrt(3)], dtype=torch.float64))
    torch.testing.assert_close(run.iterates[1], torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(run.iterates[2], torch.tensor([0.0, 1 - 2 / math.sqrt(2)], dtype=torch.float64))


def test_quadratic_autograd_gradients_and_record_iterates_off():
    # l_t(w) = ½||w - z_t||², g_t = w_t - z_t; SGD with lr 1 jumps to z_t
    Z = [[1.0], [3.0], [-2.0]]
    run = run_online(sgd(1.0), QuadraticLosses(Z), record_iterates=False)
    torch.testing.assert_close(run.grads, torch.tensor([[-1.0], [-2.0], [5.0]], dtype=torch.float64))
    torch.testing.assert_close(run.losses, torch.tensor([0.5, 2.0, 12.5], dtype=torch.float64))
    assert run.iterates is None
    # u* = mean = 2/3, sum ½(u - z)² = ½(1/9 + 49/9 + 64/9)
    assert run.regret() == pytest.approx(15.0 - 0.5 * 114 / 9)
    with pytest.raises(ValueError, match="record_iterates"):
        _ = run.D


def test_torch_optimizer_and_matrix_quantities():
    G = torch.zeros(2, 2, 3, dtype=torch.float64)
    G[:, 0, 0] = 1.0
    G[:, 1, 1] = 1.0
    run = run_online(lambda p: torch.optim.SGD(p, lr=0.1), LinearLosses(G, radius=1.0))
    assert run.shape == (2, 3)
    torch.testing.assert_close(run.L_T, 2 * torch.eye(2, dtype=torch.float64))
    torch.testing.assert_close(run.R_T, torch.diag(torch.tensor([2.0, 2.0, 0.0], dtype=torch.float64)))
    vec = run_online(sgd(0.1), LinearLosses(GS, radius=1.0))
    with pytest.raises(ValueError, match="matrix"):
        _ = vec.L_T


def test_random_sign_zero_learner_regret_is_abs_sum():
    adv = RandomSign(50, seed=3, copies=7)
    run = run_online(lambda p: torch.optim.SGD(p, lr=0.0), adv, projection=adv.domain)
    torch.testing.assert_close(adv.per_copy_regret(run), adv.signs.sum(0).abs())
    assert run.regret() == pytest.approx(float(adv.signs.sum(0).abs().sum()))


def test_projections():
    torch.testing.assert_close(l2_ball(1.0)(torch.tensor([3.0, 4.0])), torch.tensor([0.6, 0.8]))
    inside = torch.tensor([0.1, -0.2])
    torch.testing.assert_close(l2_ball(1.0)(inside), inside)
    torch.testing.assert_close(
        l2_ball(1.0, center=torch.tensor([1.0, 0.0]))(torch.tensor([4.0, 4.0])), torch.tensor([1.6, 0.8])
    )
    torch.testing.assert_close(box(-1.0, 2.0)(torch.tensor([-3.0, 0.5, 5.0])), torch.tensor([-1.0, 0.5, 2.0]))
    torch.testing.assert_close(
        box(torch.tensor([0.0, -1.0]), 1.0)(torch.tensor([-0.5, -0.5])), torch.tensor([0.0, -0.5])
    )
    assert isinstance(l2_ball(2.0), L2Ball) and isinstance(box(0.0, 1.0), Box)
    assert l2_ball(1.0).contains(torch.tensor([0.6, 0.8])) and not box(0.0, 1.0).contains(torch.tensor([1.5]))
    for bad in (0.0, -1.0, math.inf, "1"):
        with pytest.raises(ValueError, match="radius"):
            l2_ball(bad)
    with pytest.raises(ValueError, match="lo <= hi"):
        box(1.0, 0.0)


class _Rounds:
    def __init__(self, T):
        self.rounds, self.shape = T, (1,)

    def loss(self, t, w):
        return w.sum()


def test_bad_input():
    adv = LinearLosses(GS, radius=1.0)
    with pytest.raises(TypeError, match="make_optimizer"):
        run_online(adaptim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1), adv)
    with pytest.raises(TypeError, match="make_optimizer"):
        run_online(lambda p: "not an optimizer", adv)
    with pytest.raises(ValueError, match="w0"):
        run_online(sgd(0.1), adv, w0=torch.zeros(3))
    with pytest.raises(ValueError, match="w0"):
        run_online(sgd(0.1), adv, w0=[math.nan, 0.0])
    with pytest.raises(TypeError, match="projection"):
        run_online(sgd(0.1), adv, projection=1.0)
    with pytest.raises(TypeError, match="scheduler"):
        run_online(sgd(0.1), adv, scheduler="inverse_sqrt")
    with pytest.raises(ValueError, match="rounds"):
        run_online(sgd(0.1), _Rounds(0))
    with pytest.raises(TypeError, match="adversary"):
        run_online(sgd(0.1), object())
    with pytest.raises(ValueError, match="shape"):
        run_online(sgd(0.1), adv, projection=lambda w: w[:1])
    run = run_online(sgd(0.1), adv)
    with pytest.raises(ValueError, match="u must have 2"):
        run.regret(torch.zeros(3))
