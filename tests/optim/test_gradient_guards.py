"""Guards found by trying adaptim as a new user: each was a silent wrong answer or a misleading refusal.

* eps = 0 (and Adam-atan2, which has no eps) divide by sqrt(v) with nothing added: a nonzero float32 gradient
  below ~1e-19 squares to 0, and the step read 0/0 as 0 (Adam: -lr g instead of -lr) or atan2(m, 0) = pi/2
  (twice the step). Such a step is now refused with nothing changed.
* SGD's L2 term flips every weight when lr * weight_decay >= 1: refused, as the decoupled kinds are.
* The overflow check of elementwise statistics (Adam's v) bounded them by ||g||^2 and refused 1e18 entries whose
  squares fit; it now bounds them by the largest squared entry.
* torch's spellings: RMSProp(alpha=...) alone means torch's RMSprop (no first moment); AdaGrad's and Muon's
  arguments after lr are keyword-only (torch orders them differently); foreach must be a bool or None.
* AdamW(independent_weight_decay=True) says once when its lr changes with no peak recorded (s_t stays 1).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from _assertions import assert_same, assert_same_state

import adaptim

EXACT_SQUARES = [
    ("adam_eps0", adaptim.Adam, dict(lr=0.1, eps=0.0)),
    ("adamw_eps0", adaptim.AdamW, dict(lr=0.1, eps=0.0)),
    ("adam_atan2", adaptim.AdamAtan2, dict(lr=0.1)),
    ("rmsprop_eps0", adaptim.RMSProp, dict(lr=0.1, eps=0.0)),
    ("adagrad_eps0", adaptim.AdaGrad, dict(lr=0.1, eps=0.0)),
    ("muon_adamw_side_eps0", adaptim.Muon, dict(lr=0.1, eps=0.0)),
]


def _make(cls, kw, params):
    # the guards' refusals before anything changes: check_finite="eager" on every path (the fused path's default,
    # entries left unchanged in the kernel, is tested in tests/optim/test_fused.py)
    opt = cls([{"params": params, "use_muon": False}], **kw) if cls is adaptim.Muon else cls(params, **kw)
    opt.check_finite = "eager"
    return opt


@pytest.mark.parametrize("name,cls,kw", EXACT_SQUARES, ids=[c[0] for c in EXACT_SQUARES])
def test_underflowing_squares_refused_when_the_step_divides_by_them(name, cls, kw):
    w = torch.zeros(3, requires_grad=True)
    opt = _make(cls, kw, [w])
    w.grad = torch.tensor([1.0, -1.0, 0.5])
    opt.step()
    before_w, before_state = w.detach().clone(), {k: v.clone() for k, v in opt.state[w].items()}
    w.grad = torch.tensor([1e-30, -1e-30, 0.0])
    with pytest.raises(RuntimeError, match=r"as small as 1e-30 whose squares underflow.*not taken"):
        opt.step()
    assert_same(w.detach(), before_w)
    assert_same_state(opt.state[w], before_state)


@pytest.mark.parametrize("name,cls,kw", EXACT_SQUARES, ids=[c[0] for c in EXACT_SQUARES])
def test_tiny_gradients_are_exact_in_float64(name, cls, kw):
    """The same gradients in float64 square without underflow: the step is the scale-free one."""
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    ref = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt, opt_ref = _make(cls, kw, [w]), _make(cls, kw, [ref])
    w.grad = torch.tensor([1e-30, -1e-30, 5e-31], dtype=torch.float64)
    ref.grad = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    opt.step()
    opt_ref.step()
    torch.testing.assert_close(w.detach(), ref.detach(), rtol=1e-12, atol=0)


def test_tiny_gradients_with_eps_are_not_refused():
    """With eps > 0 the step m / (sqrt(v) + eps) is right to rounding whether or not g^2 underflows."""
    w = torch.zeros(2, requires_grad=True)
    opt = adaptim.Adam([w], lr=0.1)
    w.grad = torch.tensor([1e-30, 0.0])
    opt.step()
    assert torch.isfinite(w).all() and abs(float(w.detach()[0])) < 1e-20


def test_half_precision_gradients_square_in_float32():
    """A float16 gradient of 1e-5 squares to 0 in float16 but not in the float32 statistics: no refusal."""
    w = torch.zeros(2, dtype=torch.float16, requires_grad=True)
    opt = adaptim.Adam([w], lr=0.1, eps=0.0)
    w.grad = torch.tensor([1e-5, -1e-5], dtype=torch.float16)
    opt.step()
    assert_same(w.detach(), torch.tensor([-0.1, 0.1], dtype=torch.float16))


def test_sgd_l2_flip_refused():
    w = torch.full((4, 3), 5.0, requires_grad=True)
    opt = adaptim.SGD([w], lr=1.0, weight_decay=2.0)
    w.grad = torch.full((4, 3), 1e-3)
    with pytest.raises(RuntimeError, match=r"weight decay factor lambda_t = 2 .*not taken"):
        opt.step()
    assert_same(w.detach(), torch.full((4, 3), 5.0))
    opt.param_groups[0]["weight_decay"] = 0.5  # lr * wd = 0.5: a legal, if strong, decay
    opt.step()
    assert torch.all(w > 0)


def test_elementwise_statistics_bounded_by_the_largest_entry():
    """1e18 squares to 1e36 < 3.4e38: Adam's v stays finite though ||g||^2 over 1000 entries (1e39) would not."""
    w = torch.zeros(1000, requires_grad=True)
    w64 = torch.zeros(1000, dtype=torch.float64, requires_grad=True)
    opt, ref = adaptim.Adam([w], lr=0.1), adaptim.Adam([w64], lr=0.1)
    opt.check_finite = "eager"
    w.grad = torch.full((1000,), 1e18)
    w64.grad = torch.full((1000,), 1e18, dtype=torch.float64)
    opt.step()
    ref.step()
    assert torch.isfinite(opt.state[w]["exp_avg_sq"]).all()
    torch.testing.assert_close(w.detach(), w64.detach().float())
    w.grad = torch.full((1000,), 3e19)  # 9e38 overflows float32: refused
    with pytest.raises(RuntimeError, match="overflow torch.float32"):
        opt.step()


def test_rmsprop_alpha_alone_is_torch_rmsprop():
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    ours, theirs = w0.clone().requires_grad_(), w0.clone().requires_grad_()
    a = adaptim.RMSProp([ours], lr=0.01, alpha=0.9)
    b = torch.optim.RMSprop([theirs], lr=0.01, alpha=0.9)
    for _ in range(50):
        g = torch.randn(5, 4, generator=gen, dtype=torch.float64)
        ours.grad, theirs.grad = g.clone(), g.clone()
        a.step()
        b.step()
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "make",
    [lambda p: adaptim.AdaGrad(p, 0.01, 0, 1e-4), lambda p: adaptim.Muon(p, 0.02, 0.1)],
    ids=["adagrad_torch_order", "muon_torch_order"],
)
def test_positional_arguments_in_torch_order_are_refused(make):
    with pytest.raises(TypeError, match="positional"):
        make([torch.zeros(3, 4, requires_grad=True)])


def test_foreach_must_be_a_bool_or_none():
    with pytest.raises(ValueError, match="foreach must be True or False"):
        adaptim.Adam([torch.zeros(2, requires_grad=True)], foreach="no")


def test_independent_decay_warns_once_when_the_lr_changes_without_a_peak():
    w = torch.ones(2, requires_grad=True)
    opt = adaptim.AdamW([w], lr=1e-3, weight_decay=1e-3, independent_weight_decay=True)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    w.grad = torch.zeros(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()  # the lr as built: nothing to say
    for loss in (1.0, 2.0):
        sched.step(loss)
    with pytest.warns(UserWarning, match=r"s_t stays 1 .*peak_lr"):
        opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()  # once per group
    opt.param_groups[0]["peak_lr"] = 1e-3
    assert adaptim.AdaptimOptimizer.schedule_multiplier(opt.param_groups[0]) == 0.5
