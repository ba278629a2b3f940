"""SGD with Polyak and Nesterov momentum: notes (21), (25)-(26), (28)-(31) and Section 2.3.1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from adaptim.functional import fused
from adaptim.functional.common import WeightDecay, add_l2
from adaptim.functional.sgd import lookahead_point, sgd_direction_foreach, sgd_direction_single
from adaptim.optim.base import AdaptimOptimizer
from adaptim.validation import check_range

__all__ = ["SGD"]


class SGD(AdaptimOptimizer):
    """Stochastic gradient descent (21), optionally with Polyak (25)-(26) or Nesterov momentum (Section 2.3.1).

    The update (and the literal look-ahead (28)-(31)) is written out in :mod:`adaptim.functional.sgd`.

    * ``nesterov=True`` is the double-momentum form of Section 2.3.1, w_{t+1} = w_t - eta_t (g_t + mu v_t): the
      same trajectory as ``torch.optim.SGD(nesterov=True)`` (exact for constant eta and mu).
    * ``lookahead=True`` (needs ``nesterov=True`` and a closure; not in ``torch.optim``) is the literal (28)-(31):
      the closure is evaluated at x_t = w_t - eta_t mu v_{t-1}; between steps the parameters hold w_t. Exact under
      any learning-rate schedule (eta_t is the group's current lr). The loss returned by ``step`` is the one at
      x_t; a closure that raises leaves the parameters at w_t.

    ``weight_decay`` adds ``weight_decay * w`` to the gradient (L2, as ``torch.optim.SGD``; with lookahead, at x_t).
    ``maximize`` negates the gradient first (decay still pulls toward 0).

    Args:
        params: iterable of tensors or param-group dicts. Any shape; float16/bfloat16/float32/float64 or complex
            (optimized as ``torch.view_as_real``); float16/bfloat16 parameters keep float32 velocities.
        lr: learning rate eta (> = 0), in parameter units per gradient unit; default 1e-3, ``torch.optim.SGD``'s
            (which trains slowly: tune it, e.g. 0.1 for a small network).
        momentum: mu in [0, 1).
        nesterov: Nesterov momentum; requires ``momentum > 0``.
        weight_decay: L2 coefficient, >= 0.
        maximize: ascend instead of descend.
        lookahead: evaluate the gradient at the look-ahead point (28); requires ``nesterov=True``.
        foreach: use the ``torch._foreach_*`` path (``None``: yes). Both paths give bitwise equal results.
        fused: the fused path (:mod:`adaptim.functional.fused`: the whole step in one compiled pass over p, g and
            the state). ``None`` (default): taken when ``foreach`` is not set and torch.compile can build it here
            (a C++ compiler on CPU, Triton on CUDA), else foreach; ``True``: required (``RuntimeError`` where it
            cannot run); ``False``: never. The first step compiles it (see README). Equal to the literal path to
            rounding (a few ulps per step).

    Raises:
        ValueError: a hyperparameter outside its range, ``nesterov`` without momentum, ``lookahead`` without
            ``nesterov``, a torch.optim argument with no counterpart here.
        RuntimeError: ``step()`` without a closure when ``lookahead=True``.
    """

    weight_decay_kind = WeightDecay.L2
    torch_names = ("dampening", "differentiable")
    fused_rule = "sgd"

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        maximize: bool = False,
        lookahead: bool = False,
        foreach: bool | None = None,
        *,
        dampening: float = 0.0,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            maximize=maximize,
            lookahead=lookahead,
            foreach=foreach,
            fused=fused,
        )
        super().__init__(
            params,
            self._with_torch_names(defaults, dict(dampening=dampening, differentiable=differentiable)),
        )

    def _from_torch(self, entries, given, explicit, fallback) -> None:
        dampening = given.pop("dampening", 0)
        if dampening:
            raise ValueError(
                f"dampening={dampening!r}: adaptim.SGD has no dampening (the heavy ball (25)-(26) adds "
                "g_t undamped); drop dampening, and scale lr by (1 - dampening) for nearly the same "
                "steps (torch does not damp the first gradient)"
            )
        super()._from_torch(entries, given, explicit, fallback)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_range("momentum", group["momentum"], 0.0, 1.0, high_open=True)
        check_range("weight_decay", group["weight_decay"], 0.0)
        if group["nesterov"] and group["momentum"] == 0:
            raise ValueError("nesterov=True requires momentum in (0, 1), got momentum=0")
        if group["lookahead"] and not group["nesterov"]:
            raise ValueError(
                "lookahead=True evaluates the closure at the Nesterov point (28): it requires nesterov=True"
            )

    def _shrink_factor(self, group: dict[str, Any]) -> float:
        # the L2 term of a plain gradient step: w <- (1 - lr wd) w - lr g, which flips w when lr wd >= 1
        return group["lr"] * group["weight_decay"]

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        if group["momentum"] == 0:
            return {}
        return {"momentum_buffer": torch.zeros_like(p)}

    def _update_group(self, group, params, grads, states) -> None:
        foreach = self.use_foreach(group)
        momentum, bufs = group["momentum"], None
        nesterov, weight_decay = group["nesterov"], group["weight_decay"]
        if momentum != 0:
            bufs = [s["momentum_buffer"] for s in states]
        if group["lookahead"]:  # (29)-(31): the closure saw x_t; the L2 term belongs there too, then heavy ball
            if weight_decay != 0:
                points = lookahead_point(params, bufs, lr=group["lr"], momentum=momentum, foreach=foreach)
                grads = (
                    add_l2(grads, points, weight_decay)
                    if foreach
                    else [add_l2(g, x, weight_decay) for g, x in zip(grads, points)]
                )
            nesterov, weight_decay = False, 0.0
        fn = sgd_direction_foreach if foreach else sgd_direction_single
        directions = fn(params, grads, bufs, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
        self._final_step(group, params, directions, group["lr"], self._decay_factor(group))

    def _fused_obstacle(self, group: dict[str, Any], devices: bool = True) -> str | None:
        if group["lookahead"]:
            return "lookahead=True evaluates the gradient at x_t (28); its step is not fused"
        return super()._fused_obstacle(group, devices)

    def _fused_rule_args(self, group, states):
        momentum = group["momentum"] != 0
        fixed = dict(
            l2=group["weight_decay"], mu=group["momentum"], keep=1 - self._decay_factor(group), neg_lr=-group["lr"]
        )
        slots = [[s["momentum_buffer"] for s in states] if momentum else None]
        common = {**self._fused_common_flags(group), "l2": group["weight_decay"] != 0}  # SGD's L2 is in its rule
        flags = dict(momentum=momentum, nesterov=group["nesterov"], **common)
        return flags, slots, lambda t: [fixed[k] for k in fused.SGD_COEFFS]

    def _evaluate_closure(self, closure: Callable[[], Any] | None) -> Any:
        """With ``lookahead=True`` groups, evaluate the closure (required) at x_t of (28), then put w_t back."""
        groups = [g for g in self.param_groups if g["lookahead"]]
        if not groups:
            return super()._evaluate_closure(closure)
        if closure is None:
            raise RuntimeError(
                "SGD(lookahead=True) needs a closure: step(closure) evaluates the gradient at "
                "the look-ahead point x_t = w_t - lr * momentum * v_{t-1}"
            )
        saved = []  # (real view of p, exact copy of w_t)
        for group in groups:
            moved, work, bufs = [], [], []
            for p in group["params"]:
                buf = self.state[p].get("momentum_buffer") if p in self.state else None
                if buf is None:  # v_{t-1} = 0 (no step yet): x_t = w_t; the state is made by _gather
                    continue
                pr = self._real(p)
                moved.append(pr)
                work.append(pr if pr.dtype == buf.dtype else pr.to(buf.dtype))
                bufs.append(buf)
            points = lookahead_point(
                work, bufs, lr=group["lr"], momentum=group["momentum"], foreach=self.use_foreach(group)
            )
            for pr, x in zip(moved, points):
                saved.append((pr, pr.clone()))
                pr.copy_(x)
        try:
            return super()._evaluate_closure(closure)  # (29): g'_t at x_t
        finally:
            for pr, w in saved:  # back to w_t, also when the closure raises
                pr.copy_(w)
