"""RMSProp with momentum, notes (45)."""

from __future__ import annotations

from typing import Any

import torch

from adaptim.functional import fused
from adaptim.functional.common import WeightDecay
from adaptim.functional.rmsprop import rmsprop_direction_foreach, rmsprop_direction_single
from adaptim.optim.base import AdaptimOptimizer
from adaptim.validation import check_betas, check_range

__all__ = ["RMSProp"]


class RMSProp(AdaptimOptimizer):
    """RMSProp with momentum (45) (Tieleman et al., 2012; Graves, 2013): EMA moments, no bias correction; the
    update is written out in :mod:`adaptim.functional.rmsprop`.

    With ``betas[0] == 0`` no first moment is stored and the update equals
    ``torch.optim.RMSprop(alpha=betas[1], momentum=0)``.

    Args:
        params: tensors or param groups; any shape, real or complex (as ``view_as_real``); float16/bfloat16
            parameters keep float32 moments.
        lr: eta >= 0.   betas: (b1, b2), each in [0, 1).   eps: >= 0, outside the root.
        weight_decay: L2 coefficient added to the gradient, >= 0.
        maximize, foreach: as in :class:`adaptim.SGD`.
        alpha: ``torch.optim.RMSprop``'s name for b2 (sets ``betas[1]``; b1 keeps its value, 0.9 by default).
        momentum: ``torch.optim.RMSprop``'s; 0 means no first moment (``betas[0] = 0``, torch's rule exactly).
            Nonzero is refused: torch's momentum is heavy ball on the normalized step, not (45)'s EMA of g.
        centered, capturable, differentiable: ``torch.optim.RMSprop``'s, accepted off (its default); on they are
            refused with what to write instead.
        fused: the fused path (:mod:`adaptim.functional.fused`: the whole step in one compiled pass over p, g and
            the state). ``None`` (default): taken when ``foreach`` is not set and torch.compile can build it here
            (a C++ compiler on CPU, Triton on CUDA), else foreach; ``True``: required (``RuntimeError`` where it
            cannot run); ``False``: never. The first step compiles it (see README). Equal to the literal path to
            rounding (a few ulps per step).

    Raises:
        ValueError: a hyperparameter outside its range, b2 given both as ``alpha`` and in ``betas`` (or b1 as
            ``momentum`` and in ``betas``) with different values, a torch.optim argument with no counterpart here.
    """

    weight_decay_kind = WeightDecay.L2

    squares_gradients = True
    statistics_elementwise = True
    torch_names = ("alpha", "momentum", "centered", "capturable", "differentiable")
    fused_rule = "rmsprop"

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
        *,
        alpha: float | None = None,
        momentum: float | None = None,
        centered: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
        )
        super().__init__(
            params,
            self._with_torch_names(
                defaults,
                dict(
                    alpha=alpha,
                    momentum=momentum,
                    centered=centered,
                    capturable=capturable,
                    differentiable=differentiable,
                ),
            ),
        )

    def _from_torch(self, entries, given, explicit, fallback) -> None:
        alpha, momentum = given.pop("alpha", None), given.pop("momentum", None)
        centered = given.pop("centered", False)
        if centered:
            raise ValueError(
                f"centered={centered!r}: adaptim.RMSProp has no centered variant ((45) divides by "
                "sqrt(v_t), not by sqrt(v_t - m_t^2)); drop centered=True, or use "
                "torch.optim.RMSprop(centered=True)"
            )
        if momentum is not None and momentum != 0:
            raise ValueError(
                f"momentum={momentum!r}: torch.optim.RMSprop's momentum is heavy ball on the normalized "
                "step (buf = momentum buf + g / (sqrt(v) + eps)); adaptim.RMSProp's first moment is "
                "(45)'s EMA of g in the numerator, betas[0]: write betas=(b1, alpha) for (45), or use "
                "torch.optim.RMSprop for torch's rule"
            )
        if alpha is not None or momentum is not None:
            betas = entries.get("betas", fallback["betas"])
            b1, b2 = (betas[0], betas[1]) if isinstance(betas, (tuple, list)) and len(betas) == 2 else (None, None)
            # torch's RMSprop has no first moment unless momentum is set: alpha alone means betas = (0, alpha),
            # unless betas were given too (then they must agree)
            keep_b1 = momentum is None and "betas" in explicit
            new = (b1 if keep_b1 else 0.0, alpha if alpha is not None else b2)
            spelled = ", ".join(f"{k}={v!r}" for k, v in (("alpha", alpha), ("momentum", momentum)) if v is not None)
            self._set_alias(entries, explicit, spelled, "betas", new)
        super()._from_torch(entries, given, explicit, fallback)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_betas(group["betas"])
        check_range("eps", group["eps"], 0.0)
        check_range("weight_decay", group["weight_decay"], 0.0)

    def _needs_exact_squares(self, group: dict[str, Any]) -> bool:
        return group["eps"] == 0  # m / sqrt(v) with nothing added

    def _l2_coefficient(self, group: dict[str, Any]) -> float:
        return group["weight_decay"]

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"exp_avg_sq": torch.zeros_like(p)}
        if group["betas"][0] != 0:
            state["exp_avg"] = torch.zeros_like(p)
        return state

    def _update_group(self, group, params, grads, states) -> None:
        beta1, beta2 = group["betas"]
        fn = rmsprop_direction_foreach if self.use_foreach(group) else rmsprop_direction_single
        directions = fn(
            params,
            grads,
            [s["exp_avg"] for s in states] if beta1 != 0 else None,
            [s["exp_avg_sq"] for s in states],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
        )
        self._final_step(group, params, directions, group["lr"], self._decay_factor(group))

    def _fused_rule_args(self, group, states):
        beta1, beta2 = group["betas"]
        fixed = dict(
            l2=group["weight_decay"],
            w1=1 - beta1,
            b2=beta2,
            w2=1 - beta2,
            eps=group["eps"],
            keep=1 - self._decay_factor(group),
            neg_lr=-group["lr"],
        )
        slots = [[s["exp_avg_sq"] for s in states], [s["exp_avg"] for s in states] if beta1 != 0 else None]
        flags = dict(
            first_moment=beta1 != 0,
            exact_squares=self._needs_exact_squares(group),
            **self._fused_common_flags(group, 1 - beta1),
        )
        return flags, slots, lambda t: [fixed[k] for k in fused.RMSPROP_COEFFS]
