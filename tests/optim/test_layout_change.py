"""A hyperparameter that decides the layout of the optimizer state, changed on a group after its parameters got
state, is refused at the next step with a ValueError naming the mismatch, and nothing changes; changes that keep
the layout (an lr under a scheduler, eps, a momentum between nonzero values) step as usual."""

from __future__ import annotations

import pytest
import torch
from _assertions import assert_same, assert_same_state

import adaptim

#: (id, class, constructor kwargs, the group entry changed after the first step, its new value)
LAYOUT_CHANGES = [
    ("adam_amsgrad_on", adaptim.Adam, dict(lr=0.01), "amsgrad", True),
    ("sgd_momentum_to_0", adaptim.SGD, dict(lr=0.1, momentum=0.9), "momentum", 0.0),
    ("rmsprop_beta1_from_0", adaptim.RMSProp, dict(lr=0.01, betas=(0.0, 0.99)), "betas", (0.9, 0.99)),
    ("shampoo_grafting_off", adaptim.Shampoo, dict(lr=0.1), "grafting", None),
    ("shampoo_blocks", adaptim.Shampoo, dict(lr=0.1), "max_preconditioner_dim", 2),
    ("adafactor_unfactored", adaptim.Adafactor, dict(lr=0.01, relative_step=False), "factored", False),
    ("adafactor_beta1_on", adaptim.Adafactor, dict(lr=0.01, relative_step=False), "beta1", 0.9),
    ("adam_nmf_rank", adaptim.AdamNMF, dict(lr=0.01), "rank", 2),
]

KEPT_LAYOUT = [  # a stateless SGD/Steepest has no state yet: momentum switched on starts its buffer at v_0 = 0
    ("sgd_momentum_from_0", adaptim.SGD, dict(lr=0.1), "momentum", 0.9),
    ("steepest_momentum_from_0", adaptim.Steepest, dict(lr=0.1), "momentum", 0.5),
    ("adam_eps", adaptim.Adam, dict(lr=0.01), "eps", 1e-6),
    ("sgd_momentum_between_nonzero", adaptim.SGD, dict(lr=0.1, momentum=0.9), "momentum", 0.5),
    ("shampoo_frequency", adaptim.Shampoo, dict(lr=0.1), "precondition_frequency", 5),
    ("adafactor_clip", adaptim.Adafactor, dict(lr=0.01, relative_step=False), "clip_threshold", 2.0),
]


def _run(cls, kw):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(4, 6, generator=gen).requires_grad_(True)
    opt = cls([w], **kw)
    w.grad = torch.randn(4, 6, generator=gen)
    opt.step()
    w.grad = torch.randn(4, 6, generator=gen)
    return w, opt


@pytest.mark.parametrize("name,cls,kw,key,value", LAYOUT_CHANGES, ids=[c[0] for c in LAYOUT_CHANGES])
def test_layout_change_after_the_first_step_is_refused(name, cls, kw, key, value):
    w, opt = _run(cls, kw)
    before_w = w.detach().clone()
    before_state = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in opt.state[w].items()}
    opt.param_groups[0][key] = value
    with pytest.raises(ValueError, match=r"param group 0 .*another layout.*set it back"):
        opt.step()
    assert_same(w.detach(), before_w)
    assert_same_state(opt.state[w], before_state)
    fresh = cls([torch.zeros(4, 6, requires_grad=True)], **{**kw, key: value})  # the setting itself is valid
    assert fresh.param_groups[0][key] == value


@pytest.mark.parametrize("name,cls,kw,key,value", KEPT_LAYOUT, ids=[c[0] for c in KEPT_LAYOUT])
def test_change_that_keeps_the_layout_steps(name, cls, kw, key, value):
    w, opt = _run(cls, kw)
    twin_w, twin = _run(cls, {**kw, key: value})
    opt.param_groups[0][key] = value
    opt.step()
    twin.step()
    assert torch.isfinite(w).all()
    assert set(opt.state[w]) == set(twin.state[twin_w])
