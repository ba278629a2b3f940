"""The optimizers on the shared layer: every change to the parameters goes through the last stage
``AdaptimOptimizer._final_step`` (the seam a retraction or a mirror step replaces), with the weight-decay factor
the base class checked (``_decay_factor``); ``foreach=False`` is a loop without foreach kernels; and the closure
hook puts SGD's look-ahead parameters back whatever the closure does.
"""

from __future__ import annotations

import functools

import pytest
import torch
from _assertions import assert_same, assert_same_state

import adaptim
from adaptim.functional.common import WeightDecay, apply_update_


def _problem(case, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [case.shape(s) for s in [(3, 2), (4,), (2, 2)]]
    params = [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_(True) for s in shapes]
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(3)]
    case.place(params)  # (the simplex cases)
    return params, grads


def _unfused(opt):
    """``opt`` with its own last stage set on the instance, as the tests below set theirs: an optimizer whose last
    stage is replaced never takes the fused path (which has the last stage inside its kernel), so the reference
    must take the same path to compare bitwise."""
    opt._final_step = functools.partial(type(opt)._final_step, opt)
    return opt


def test_a_step_writes_the_parameters_only_through_final_step(request, optimizer_case):
    """With the last stage replaced by one that moves nothing, no parameter moves, while the state advances as in
    a normal run (the directions are computed)."""
    params, grads = _problem(optimizer_case)
    opt = optimizer_case.make(params)
    kept = [p.detach().clone() for p in params]  # after construction (which may put them on a manifold)
    calls = []
    opt._final_step = lambda group, ps, ds, lr, decay=0.0: calls.append(len(ps))
    ref_params, _ = _problem(optimizer_case)
    ref = _unfused(optimizer_case.make(ref_params))
    optimizer_case.step(opt, params, grads[0])
    optimizer_case.step(ref, ref_params, grads[0])
    assert calls == [len(params)]  # once per group, with every parameter that has a gradient
    for p, k in zip(params, kept):
        assert_same(p.detach(), k)
    for p, q in zip(params, ref_params):  # the first step's state does not depend on the parameters' new values
        assert_same_state(opt.state[p], ref.state[q])


def test_final_step_gets_the_checked_decay_and_is_apply_update(request, optimizer_case):
    """The last stage receives lambda_t = ``_decay_factor(group)`` (the number the base class refused when >= 1)
    when the decay is multiplicative (``WeightDecay.DECOUPLED``), and 0 otherwise (L2 decay is in the gradient,
    direction decay in the direction); applying ``apply_update_`` to what it receives reproduces the optimizer's own run
    bitwise (for a class with its own last stage, a mirror step: that stage applied to what it receives)."""
    params, grads = _problem(optimizer_case)
    opt = optimizer_case.make(params)
    ref_params, _ = _problem(optimizer_case)
    ref = _unfused(optimizer_case.make(ref_params))
    decays = []

    def final_step(group, ps, ds, lr, decay=0.0):
        decoupled = opt.group_weight_decay_kind(group) is WeightDecay.DECOUPLED
        decays.append((decay, opt._decay_factor(group) if decoupled else 0.0))
        if own is not None:
            own(opt, group, ps, ds, lr, decay)
            return
        for w, d in zip(ps, ds):
            apply_update_(w, d, lr, decay)

    own = type(opt)._final_step if type(opt)._final_step is not adaptim.AdaptimOptimizer._final_step else None
    opt._final_step = final_step
    scheds = [
        torch.optim.lr_scheduler.LambdaLR(o, lambda k: 1 / (1 + k))
        for o in (opt, ref)
        if o.param_groups[0]["lr"] is not None
    ]
    for g in grads:
        optimizer_case.step(opt, params, g)
        optimizer_case.step(ref, ref_params, g)
        for s in scheds:
            s.step()
    assert len(decays) == len(grads)
    assert all(got == want for got, want in decays)
    if type(opt)._final_step is not adaptim.AdaptimOptimizer._final_step:
        return  # a manifold's last stage is its retraction, not apply_update_ (its own tests check it)
    for p, q in zip(params, ref_params):
        assert_same(p.detach(), q.detach())
        assert_same_state(opt.state[p], ref.state[q])


ELEMENTWISE = [
    (adaptim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    (adaptim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, lookahead=True, weight_decay=0.1)),
    (adaptim.AdaGrad, dict(lr=0.1, weight_decay=0.1)),
    (adaptim.AdaGradNorm, dict(lr=0.5)),
    (adaptim.RMSProp, dict(lr=0.01, weight_decay=0.1)),
    (adaptim.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True, nesterov=True)),
    (adaptim.AdamW, dict(lr=0.01, weight_decay=0.1, eps_inside_sqrt=True)),
    (adaptim.AdamAtan2, dict(lr=0.01, weight_decay=0.1, a=2.0)),
]


@pytest.mark.parametrize("cls,kw", ELEMENTWISE, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(ELEMENTWISE)])
def test_foreach_false_uses_no_foreach_kernel(monkeypatch, cls, kw):
    """``foreach=False`` is the literal per-tensor loop all the way to the last stage (a fallback where foreach
    kernels are missing); its result is the foreach path's, bitwise."""
    out = []
    for foreach in (True, False):
        with monkeypatch.context() as m:
            if not foreach:
                for name in dir(torch):
                    if name.startswith("_foreach_"):
                        m.setattr(torch, name, lambda *a, _n=name, **k: pytest.fail(f"{_n} called"))
            params = [
                torch.full((3,), 0.5, requires_grad=True),
                torch.ones(2, 2, dtype=torch.float64, requires_grad=True),
            ]
            opt = cls(params, **kw, foreach=foreach)
            for t in range(3):

                def closure(params=params, t=t):
                    for p in params:
                        p.grad = torch.sin(p.detach() * (t + 1))

                opt.step(closure)
        out.append(params)
    for p, q in zip(*out):
        assert_same(p.detach(), q.detach())


def test_lookahead_parameters_return_to_w_t_when_the_closure_raises():
    p = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = adaptim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, lookahead=True)
    p.grad = torch.tensor([1.0, 1.0])
    opt.step(lambda: None)  # a first step: v_1 != 0, so the next closure runs at x_2 != w_2
    w = p.detach().clone()
    state = {k: v.clone() for k, v in opt.state[p].items()}
    seen = []

    def closure():
        seen.append(p.detach().clone())
        raise ValueError("loss failed")

    with pytest.raises(ValueError, match="loss failed"):
        opt.step(closure)
    assert not torch.equal(seen[0], w)  # the closure ran at the look-ahead point x_t
    assert_same(p.detach(), w)  # and the parameters are back at w_t
    assert_same_state(opt.state[p], state)
