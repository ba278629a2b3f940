"""The schedule factories on an optimizer without a numeric lr (Adafactor's default relative step)."""

from __future__ import annotations

import pytest
import torch

import adaptim

FACTORIES = {
    "warmup_cosine": lambda opt: adaptim.warmup_cosine(opt, warmup_steps=2, total_steps=10),
    "warmup_linear": lambda opt: adaptim.warmup_linear(opt, warmup_steps=2, total_steps=10),
    "inverse_sqrt": lambda opt: adaptim.inverse_sqrt(opt),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_relative_step_adafactor_gets_an_error_that_names_the_fix(name):
    """It failed inside LambdaLR with torch's bare ``TypeError: NoneType * float``."""
    opt = adaptim.Adafactor([torch.zeros(3, 2, requires_grad=True)])
    with pytest.raises(ValueError, match=rf"{name}: param group 0 has lr=None.*relative step.*"
                                         r"lr=\.\.\. with relative_step=False"):
        FACTORIES[name](opt)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_the_named_fix_works(name):
    p = torch.ones(3, 2, requires_grad=True)
    opt = adaptim.Adafactor([p], lr=1e-2, relative_step=False)
    sched = FACTORIES[name](opt)
    p.grad = torch.ones(3, 2)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] > 0 and bool((p < 1).all())
