"""Learning-rate schedule factories: each returns a ``torch.optim.lr_scheduler.LambdaLR``.

The multiplier s_t of the notes (Figure 1) is what ``LambdaLR`` multiplies the initial lr by; call
``scheduler.step()`` after each ``optimizer.step()``. adaptim has no scheduler classes of its own.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["warmup_cosine", "warmup_linear", "inverse_sqrt"]


def _check(warmup_steps: int, total_steps: int, final_scale: float) -> None:
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    if not isinstance(total_steps, int) or total_steps <= warmup_steps:
        raise ValueError(f"total_steps must be an integer > warmup_steps ({warmup_steps}), got {total_steps!r}")
    if not (0.0 <= final_scale <= 1.0):
        raise ValueError(f"final_scale must lie in [0, 1], got {final_scale!r}")


def _check_lr(factory: str, optimizer: torch.optim.Optimizer) -> None:
    """Refuse an optimizer with a group whose lr is not a number: ``LambdaLR`` would fail with a bare
    ``TypeError: NoneType * float`` (e.g. an Adafactor group given ``lr=None`` after construction)."""
    for gi, group in enumerate(getattr(optimizer, "param_groups", [])):
        lr = group.get("lr")
        if isinstance(lr, bool) or not isinstance(lr, (int, float, torch.Tensor)):
            fix = (
                "Adafactor's lr=None means lr=1e-2, the largest relative step min(lr, 1/sqrt(t)): set the "
                "group's lr to a number, e.g. 1e-2, and the schedule scales that cap"
                if group.get("relative_step")
                else "give every param group a numeric lr"
            )
            raise ValueError(
                f"{factory}: param group {gi} has lr={lr!r}, and a LambdaLR schedule multiplies a numeric lr; {fix}"
            )


def _warmup(k: int, warmup_steps: int) -> float:
    return (k + 1) / warmup_steps  # step k (0-based) of the warm-up: 1/W, 2/W, ..., 1


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, final_scale: float = 0.0
) -> LambdaLR:
    """Linear warm-up over ``warmup_steps`` steps to s = 1, then cosine decay to ``final_scale`` at ``total_steps``.

    Steps are counted from 0 (the first ``optimizer.step()`` uses s_1 = 1/warmup_steps, or 1 without warm-up).

    Raises:
        ValueError: ``warmup_steps < 0``, ``total_steps <= warmup_steps`` or ``final_scale`` outside [0, 1]; a
            param group without a numeric lr.
    """
    _check(warmup_steps, total_steps, final_scale)
    _check_lr("warmup_cosine", optimizer)

    def s(k: int) -> float:
        if k < warmup_steps:
            return _warmup(k, warmup_steps)
        frac = min(1.0, (k - warmup_steps) / (total_steps - warmup_steps))
        return final_scale + (1 - final_scale) * 0.5 * (1 + math.cos(math.pi * frac))

    return LambdaLR(optimizer, s)


def warmup_linear(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, final_scale: float = 0.0
) -> LambdaLR:
    """Linear warm-up to s = 1, then linear decay to ``final_scale`` at ``total_steps`` (see :func:`warmup_cosine`).

    Raises:
        ValueError: as :func:`warmup_cosine`.
    """
    _check(warmup_steps, total_steps, final_scale)
    _check_lr("warmup_linear", optimizer)

    def s(k: int) -> float:
        if k < warmup_steps:
            return _warmup(k, warmup_steps)
        frac = min(1.0, (k - warmup_steps) / (total_steps - warmup_steps))
        return 1 - (1 - final_scale) * frac

    return LambdaLR(optimizer, s)


def inverse_sqrt(optimizer: torch.optim.Optimizer) -> LambdaLR:
    """eta_t = eta / sqrt(t) (Section 2.1, the step behind the regret bound (24)); t = 1, 2, ... .

    Raises:
        ValueError: a param group without a numeric lr (as :func:`warmup_cosine`).
    """
    _check_lr("inverse_sqrt", optimizer)
    return LambdaLR(optimizer, lambda k: 1.0 / math.sqrt(k + 1))
