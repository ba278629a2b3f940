"""Adam's effective per-coordinate step size, read from an optimizer's state (Sections 4.1.1 and 4.2).

Adam's step is w_{t+1} = (1 - lambda_t) w_t - eta_t mbar_t / den_t with den_t = sqrt(vbar_t) + eps (or
sqrt(vbar_t + eps)); eta_t / den_t is the per-coordinate step size that AMSGrad keeps nonincreasing (Section 4.2:
vbar_t is replaced by the running max of the *bias-corrected* second moment, Figure 1 (b)-(c)).
"""

from __future__ import annotations

import torch

from adaptim.functional.common import bias_correction
from adaptim.optim.adam import Adam, AdamAtan2, AdamW

__all__ = ["adam_effective_lr"]


def adam_effective_lr(optimizer: Adam | AdamW, param: torch.Tensor) -> torch.Tensor:
    """eta_t / (sqrt(vbar_t) + eps) of ``param``'s last step: Adam's step size per coordinate (Figure 1 (e)).

    vbar_t is the bias-corrected second moment v_t / (1 - b2^t) of (46) or, with ``amsgrad=True``, its running
    max (Section 4.2); with ``eps_inside_sqrt=True`` the denominator is sqrt(vbar_t + eps). eta_t is the group's
    *current* lr: call this after ``optimizer.step()`` and before ``scheduler.step()`` to get the lr that step
    used. Where the denominator is 0 (eps = 0 and only zero gradients so far) the step divides by 1, as the
    update does, and the value is eta_t. Nesterov changes mbar_t, not this step size.

    Args:
        optimizer: an :class:`adaptim.Adam` or :class:`adaptim.AdamW` that has stepped ``param``.
        param: one of its parameters.

    Returns:
        A new tensor of the state's shape and dtype (the parameter's shape; ``torch.view_as_real``'s for a complex
        parameter; float32 for a float16/bfloat16 one), in units of parameter per gradient unit.

    Raises:
        TypeError: ``optimizer`` is not an adaptim Adam or AdamW (Adam-atan2 has no denominator; ``torch.optim.Adam``
            keeps the max before bias correction).
        ValueError: ``param`` is not one of the optimizer's parameters, or has taken no step yet.
    """
    if not isinstance(optimizer, (Adam, AdamW)) or isinstance(optimizer, AdamAtan2):
        raise TypeError(f"adam_effective_lr needs an adaptim.Adam or adaptim.AdamW, got {type(optimizer).__name__}")
    group = next((g for g in optimizer.param_groups if any(p is param for p in g["params"])), None)
    if group is None:
        raise ValueError("param is not one of the optimizer's parameters")
    state = optimizer.state.get(param, {})
    if "step" not in state or float(state["step"]) < 1:
        raise ValueError("param has taken no step yet: there is no second moment to read")
    t = int(float(state["step"]))
    if group.get("amsgrad", False):
        vbar = state["max_exp_avg_sq"].clone()  # already the max of the bias-corrected vbar
    else:
        vbar = state["exp_avg_sq"] / bias_correction(group["betas"][1], t)
    eps = group.get("eps", 0.0)
    den = vbar.add_(eps).sqrt_() if group.get("eps_inside_sqrt", False) else vbar.sqrt_().add_(eps)
    den.masked_fill_(den == 0, 1.0)
    return den.reciprocal_().mul_(float(group["lr"]))
