"""RMSProp with momentum, notes (45)."""

from __future__ import annotations

from typing import Any

import torch

from adaptim.functional import rmsprop_foreach, rmsprop_single
from adaptim.optim.base import AdaptimOptimizer, check_betas, check_range

__all__ = ["RMSProp"]


class RMSProp(AdaptimOptimizer):
    """RMSProp with momentum (45) (Tieleman et al., 2012; Graves, 2013): EMA moments, no bias correction.

    m_t = b1 m_{t-1} + (1-b1) g_t, v_t = b2 v_{t-1} + (1-b2) g_t^2, w <- w - lr m_t / (sqrt(v_t) + eps).
    With ``betas[0] == 0`` no first moment is stored and the update equals
    ``torch.optim.RMSprop(alpha=betas[1], momentum=0)``.

    Args:
        params: tensors or param groups; any shape, real or complex (as ``view_as_real``); float16/bfloat16
            parameters keep float32 moments.
        lr: eta >= 0.   betas: (b1, b2), each in [0, 1).   eps: >= 0, outside the root.
        weight_decay: L2 coefficient added to the gradient, >= 0.
        maximize, foreach: as in :class:`adaptim.SGD`.

    Raises:
        ValueError: a hyperparameter outside its range.
    """

    squares_gradients = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, maximize: bool = False, foreach: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                                      weight_decay=weight_decay, maximize=maximize, foreach=foreach))

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_betas(group["betas"])
        check_range("eps", group["eps"], 0.0)
        check_range("weight_decay", group["weight_decay"], 0.0)

    def _l2_coefficient(self, group: dict[str, Any]) -> float:
        return group["weight_decay"]

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"exp_avg_sq": torch.zeros_like(p)}
        if group["betas"][0] != 0:
            state["exp_avg"] = torch.zeros_like(p)
        return state

    def _update_group(self, group, params, grads, states) -> None:
        beta1, beta2 = group["betas"]
        fn = rmsprop_foreach if self.use_foreach(group) else rmsprop_single
        fn(params, grads, [s["exp_avg"] for s in states] if beta1 != 0 else None,
           [s["exp_avg_sq"] for s in states], lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
           weight_decay=group["weight_decay"])
