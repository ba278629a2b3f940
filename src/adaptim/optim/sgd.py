"""SGD with Polyak and Nesterov momentum: notes (21), (25)-(26), (28)-(31) and Section 2.3.1."""

from __future__ import annotations

from typing import Any, Callable

import torch

from adaptim.functional import sgd_foreach, sgd_single
from adaptim.optim.base import AdaptimOptimizer, check_range

__all__ = ["SGD"]


class SGD(AdaptimOptimizer):
    """Stochastic gradient descent, optionally with Polyak or Nesterov momentum.

    * ``momentum == 0``: w_{t+1} = w_t - eta_t g_t (21).
    * ``momentum = mu > 0``: Polyak heavy ball (25)-(26), v_t = g_t + mu v_{t-1} with v_0 = 0,
      w_{t+1} = w_t - eta_t v_t.
    * ``nesterov=True``: the double-momentum form of Section 2.3.1, w_{t+1} = w_t - eta_t (g_t + mu v_t): the same
      trajectory as ``torch.optim.SGD(nesterov=True)`` (exact for constant eta and mu).
    * ``lookahead=True`` (needs ``nesterov=True`` and a closure): the literal (28)-(31). The closure is evaluated at
      x_t = w_t - eta_t mu v_{t-1}, then v_t = g'_t + mu v_{t-1} and w_{t+1} = w_t - eta_t v_t. Between steps the
      parameters hold w_t. Exact under any learning-rate schedule (eta_t is the group's current lr). The loss
      returned by ``step`` is the one at x_t.

    ``weight_decay`` adds ``weight_decay * w`` to the gradient (L2, as ``torch.optim.SGD``; with lookahead, at x_t).
    ``maximize`` negates the gradient first (decay still pulls toward 0).

    Args:
        params: iterable of tensors or param-group dicts. Any shape; float16/bfloat16/float32/float64 or complex
            (optimized as ``torch.view_as_real``); float16/bfloat16 parameters keep float32 velocities.
        lr: learning rate eta (> = 0), in parameter units per gradient unit.
        momentum: mu in [0, 1).
        nesterov: Nesterov momentum; requires ``momentum > 0``.
        weight_decay: L2 coefficient, >= 0.
        maximize: ascend instead of descend.
        lookahead: evaluate the gradient at the look-ahead point (28); requires ``nesterov=True``.
        foreach: use the ``torch._foreach_*`` path (``None``: yes). Both paths give bitwise equal results.
        dampening, differentiable, fused: ``torch.optim.SGD``'s, accepted at its defaults (0, False, None), where
            it computes what this class does; anything else is refused (there is no dampening, no autograd through
            the step, no fused kernel), with what to write instead.

    Raises:
        ValueError: a hyperparameter outside its range, ``nesterov`` without momentum, ``lookahead`` without
            ``nesterov``, a torch.optim argument with no counterpart here.
        RuntimeError: ``step()`` without a closure when ``lookahead=True``.
    """

    torch_names = ("dampening", "differentiable", "fused")

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, maximize: bool = False, lookahead: bool = False,
                 foreach: bool | None = None, *,
                 dampening: float = 0.0, differentiable: bool = False, fused: bool | None = None) -> None:
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                        maximize=maximize, lookahead=lookahead, foreach=foreach)
        super().__init__(params, self._with_torch_names(
            defaults, dict(dampening=dampening, differentiable=differentiable, fused=fused)))

    def _from_torch(self, entries, given, explicit, fallback) -> None:
        dampening = given.pop("dampening", 0)
        if dampening:
            raise ValueError(f"dampening={dampening!r}: adaptim.SGD has no dampening (the heavy ball (25)-(26) adds "
                             "g_t undamped); drop dampening, and scale lr by (1 - dampening) for nearly the same "
                             "steps (torch does not damp the first gradient)")
        super()._from_torch(entries, given, explicit, fallback)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_range("momentum", group["momentum"], 0.0, 1.0, high_open=True)
        check_range("weight_decay", group["weight_decay"], 0.0)
        if group["nesterov"] and group["momentum"] == 0:
            raise ValueError("nesterov=True requires momentum in (0, 1), got momentum=0")
        if group["lookahead"] and not group["nesterov"]:
            raise ValueError("lookahead=True evaluates the closure at the Nesterov point (28): it requires "
                             "nesterov=True")

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        if group["momentum"] == 0:
            return {}
        return {"momentum_buffer": torch.zeros_like(p)}

    def _update_group(self, group, params, grads, states) -> None:
        fn = sgd_foreach if self.use_foreach(group) else sgd_single
        bufs = [s["momentum_buffer"] for s in states] if group["momentum"] != 0 else None
        fn(params, grads, bufs, lr=group["lr"], momentum=group["momentum"],
           nesterov=group["nesterov"] and not group["lookahead"], weight_decay=group["weight_decay"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step. With ``lookahead=True`` the closure (required) is evaluated at x_t of (28)."""
        if not any(g["lookahead"] for g in self.param_groups):
            return super().step(closure)
        if closure is None:
            raise RuntimeError("SGD(lookahead=True) needs a closure: step(closure) evaluates the gradient at "
                               "the look-ahead point x_t = w_t - lr * momentum * v_{t-1}")
        # (28): move every look-ahead parameter to x_t, keeping an exact copy of w_t.
        saved = []
        for group in self.param_groups:
            if not group["lookahead"]:
                continue
            for p in group["params"]:
                buf = self.state[p].get("momentum_buffer") if p in self.state else None
                if buf is None:  # v_{t-1} = 0 (no step yet): x_t = w_t; the state is made by _gather
                    continue
                pr = self._real(p)
                saved.append((p, pr.clone()))
                pr.sub_((buf * (group["lr"] * group["momentum"])).to(pr.dtype))
        with torch.enable_grad():
            loss = closure()  # (29): g'_t at x_t
        for p, w in saved:  # back to w_t; (30)-(31) are the heavy-ball update with g'_t
            self._real(p).copy_(w)
        self._check_finite_grads()  # every group's gradients, before anything changes
        for group in self.param_groups:
            params, work, grads, states = self._gather(group)
            if not params:
                continue
            if group["lookahead"] and group["weight_decay"] != 0:
                # the L2 term belongs to the gradient at x_t = w_t - lr mu v_{t-1}
                grads = [g.add(w - s["momentum_buffer"] * (group["lr"] * group["momentum"]),
                               alpha=group["weight_decay"]) for g, w, s in zip(grads, work, states)]
                fn = sgd_foreach if self.use_foreach(group) else sgd_single
                fn(work, grads, [s["momentum_buffer"] for s in states], lr=group["lr"],
                   momentum=group["momentum"], nesterov=False, weight_decay=0.0)
            else:
                self._update_group(group, work, grads, states)
            self._write_back(params, work)
        return loss
