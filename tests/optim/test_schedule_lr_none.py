"""The schedule factories on Adafactor: its default lr is a number (1e-2, the cap of the relative step), so they
run on a default Adafactor; a group whose lr was set to None afterwards gets an error that names the fix."""

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
def test_a_group_lr_set_to_none_gets_an_error_that_names_the_fix(name):
    """It failed inside LambdaLR with torch's bare ``TypeError: NoneType * float``."""
    opt = adaptim.Adafactor([torch.zeros(3, 2, requires_grad=True)])
    opt.param_groups[0]["lr"] = None
    with pytest.raises(
        ValueError,
        match=rf"{name}: param group 0 has lr=None.*lr=None means lr=1e-2.*"
        r"set the group's lr to a number",
    ):
        FACTORIES[name](opt)


@pytest.mark.parametrize("relative_step", [True, False])
@pytest.mark.parametrize("name", list(FACTORIES))
def test_the_factories_run_on_adafactor(name, relative_step):
    p = torch.ones(3, 2, requires_grad=True)
    opt = adaptim.Adafactor([p], relative_step=relative_step)
    sched = FACTORIES[name](opt)
    p.grad = torch.ones(3, 2)
    opt.step()
    sched.step()
    assert 0 < opt.param_groups[0]["lr"] <= 1e-2 and opt.param_groups[0]["initial_lr"] == 1e-2
    assert bool((p < 1).all())
