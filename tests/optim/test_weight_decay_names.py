"""Weight-decay names: ``decoupled_weight_decay`` means what it means in torch.optim, and Figure 1 (d)'s
lambda_t = s_t weight_decay has its own name, ``independent_weight_decay``, that no torch optimizer uses.

``decoupled_weight_decay=True`` used to select s_t weight_decay on adaptim.AdamW, so the README's
``AdamW(lr=1e-3, weight_decay=0.1, decoupled_weight_decay=True)`` removed 10 % of every weight per step, while
``torch.optim.Adam(decoupled_weight_decay=True)`` is AdamW's lr-coupled decay.
"""

from __future__ import annotations

import inspect

import pytest
import torch

import adaptim

F64 = torch.float64
STEPS = 40

SCHEDULES = {
    "none": None,
    "steplr": lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5),
    "warmup_cosine": lambda opt: adaptim.warmup_cosine(opt, warmup_steps=5, total_steps=STEPS, final_scale=0.1),
}


def _trajectory(make, schedule):
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen, dtype=F64).requires_grad_() for s in [(4, 3), (3,), ()]]
    opt = make(params)
    sched = SCHEDULES[schedule](opt) if SCHEDULES[schedule] else None
    for t in range(STEPS):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=F64) * (0.1 + t % 3)
        opt.step()
        if sched is not None:
            sched.step()
    return [p.detach() for p in params]


PAIRS = {
    # torch.optim.Adam(decoupled_weight_decay=True) is AdamW: lambda_t = lr_t weight_decay
    "adam_decoupled": (
        lambda p: adaptim.Adam(p, lr=0.01, weight_decay=0.5, decoupled_weight_decay=True),
        lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.5, decoupled_weight_decay=True),
    ),
    "adamw_default": (
        lambda p: adaptim.AdamW(p, lr=0.01, weight_decay=0.5),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.5),
    ),
    "adamw_decoupled_true": (
        lambda p: adaptim.AdamW(p, lr=0.01, weight_decay=0.5, decoupled_weight_decay=True),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.5),
    ),
    # AdamW(decoupled_weight_decay=False) is Adam with the L2 term
    "adamw_decoupled_false": (
        lambda p: adaptim.AdamW(p, lr=0.01, weight_decay=0.5, decoupled_weight_decay=False),
        lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.5),
    ),
}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("name", list(PAIRS))
def test_decoupled_weight_decay_has_torchs_meaning(name, schedule):
    ours, theirs = PAIRS[name]
    for a, b in zip(_trajectory(ours, schedule), _trajectory(theirs, schedule)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_adam_and_adamw_group_entries_mirror_torch():
    """torch.optim.AdamW's groups always hold decoupled_weight_decay=True, torch.optim.Adam's False by default."""
    p = [torch.zeros(2, requires_grad=True)]
    for ours, theirs in (
        (adaptim.Adam(p), torch.optim.Adam(p)),
        (adaptim.AdamW(p), torch.optim.AdamW(p)),
        (adaptim.Adam(p, decoupled_weight_decay=True), torch.optim.Adam(p, decoupled_weight_decay=True)),
    ):
        assert ours.param_groups[0]["decoupled_weight_decay"] is theirs.param_groups[0]["decoupled_weight_decay"]


def test_independent_weight_decay_is_lambda_t_equal_s_t_weight_decay():
    """Figure 1 (d): on zero gradients w <- (1 - s_t weight_decay) w, whatever the lr (here lr = 1e-3)."""
    w = torch.ones(3, dtype=F64, requires_grad=True)
    opt = adaptim.AdamW([w], lr=1e-3, weight_decay=0.01, independent_weight_decay=True)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    expected = 1.0
    for t in range(6):
        s_t = 0.5 ** (t // 2)
        w.grad = torch.zeros_like(w)
        opt.step()
        sched.step()
        expected *= 1 - s_t * 0.01
        torch.testing.assert_close(w.detach(), torch.full((3,), expected, dtype=F64), rtol=1e-15, atol=0)


def test_independent_weight_decay_validation():
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match=r"weight_decay must lie in \[0.0, 1.0\)"):
        adaptim.AdamW(p, weight_decay=1.0, independent_weight_decay=True)
    with pytest.raises(ValueError, match="independent_weight_decay=True .*needs decoupled_weight_decay=True"):
        adaptim.AdamW(p, independent_weight_decay=True, decoupled_weight_decay=False)
    with pytest.raises(ValueError, match="must be True or False"):
        adaptim.AdamW(p, independent_weight_decay=1)
    adaptim.AdamW(p, weight_decay=1.0)  # lr-coupled: lambda_t = 1e-3, fine


def test_no_torch_optimizer_uses_the_name_independent_weight_decay():
    for name in dir(torch.optim):
        cls = getattr(torch.optim, name)
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer):
            assert "independent_weight_decay" not in inspect.signature(cls.__init__).parameters, name
    assert "decoupled_weight_decay" in inspect.signature(torch.optim.Adam.__init__).parameters


@pytest.mark.parametrize("old_flag,new_kw", [(True, dict(independent_weight_decay=True)), (False, {})])
def test_checkpoint_saved_before_the_rename_resumes_its_trajectory(old_flag, new_kw):
    """Before the rename, AdamW(decoupled_weight_decay=True) meant lambda_t = s_t wd and False meant lr wd; a
    checkpoint of that time (its groups lack independent_weight_decay) resumes with the meaning it was saved with."""
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    grads = [torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in range(6)]
    ref_w = w0.clone().requires_grad_()
    ref = adaptim.AdamW([ref_w], lr=0.1, weight_decay=0.05, **new_kw)
    for g in grads[:3]:
        ref_w.grad = g.clone()
        ref.step()
    saved = ref.state_dict()
    for group in saved["param_groups"]:  # what the old code wrote
        group.pop("independent_weight_decay")
        group["decoupled_weight_decay"] = old_flag
    w = ref_w.detach().clone().requires_grad_()
    opt = adaptim.AdamW([w], lr=0.1, weight_decay=0.05)
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["independent_weight_decay"] is old_flag
    assert opt.param_groups[0]["decoupled_weight_decay"] is True
    for g in grads[3:]:
        ref_w.grad, w.grad = g.clone(), g.clone()
        ref.step()
        opt.step()
    assert torch.equal(w.detach(), ref_w.detach())
