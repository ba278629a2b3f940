"""The Adam family: Adam (46), AdamW with every flag of Figure 1, and Adam-atan2 (Section 4.1.2)."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from adaptim.functional import fused
from adaptim.functional.adam import adam_direction_foreach, adam_direction_single, bias_corrections
from adaptim.functional.common import WeightDecay
from adaptim.optim.base import AdaptimOptimizer
from adaptim.validation import check_betas, check_range

__all__ = ["Adam", "AdamW", "AdamAtan2"]


class _AdamBase(AdaptimOptimizer):
    """Shared state and dispatch of the Adam family; subclasses say how weight decay enters."""

    squares_gradients = True
    statistics_elementwise = True
    fused_rule = "adam"

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_betas(group["betas"])
        if "eps" in group:
            check_range("eps", group["eps"], 0.0)
        check_range("weight_decay", group["weight_decay"], 0.0)

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": self.new_step(), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        if group.get("amsgrad", False):
            state["max_exp_avg_sq"] = torch.zeros_like(p)
        return state

    def _needs_exact_squares(self, group: dict[str, Any]) -> bool:
        # mbar / sqrt(vbar) with nothing added (eps = 0), or atan2(mbar, b sqrt(vbar)), which has no eps
        return group.get("eps", 0.0) == 0 or self._atan2(group) is not None

    def _l2_coefficient(self, group: dict[str, Any]) -> float:
        """The L2 coefficient added to the gradient (0 for the decoupled kinds; their lambda_t is
        :meth:`_decay_factor`, refused by the base class when >= 1)."""
        return 0.0

    def group_weight_decay_kind(self, group: dict[str, Any]) -> WeightDecay:
        flag = group.get("decoupled_weight_decay")  # torch's flag: True multiplies, False adds the L2 term
        if flag is None:
            return self.weight_decay_kind
        return WeightDecay.DECOUPLED if flag else WeightDecay.L2

    def _update_group(self, group, params, grads, states) -> None:
        beta1, beta2 = group["betas"]
        fn = adam_direction_foreach if self.use_foreach(group) else adam_direction_single
        amsgrad = group.get("amsgrad", False)
        directions = fn(
            params,
            grads,
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if amsgrad else None,
            self.step_counts(states),
            beta1=beta1,
            beta2=beta2,
            eps=group.get("eps", 0.0),
            l2=self._l2_coefficient(group),
            amsgrad=amsgrad,
            nesterov=group.get("nesterov", False),
            eps_inside_sqrt=group.get("eps_inside_sqrt", False),
            atan2=self._atan2(group),
        )
        self._final_step(group, params, directions, group["lr"], self._decay_factor(group))

    def _atan2(self, group: dict[str, Any]) -> tuple[float, float] | None:
        return None

    def _fused_rule_args(self, group, states):
        beta1, beta2 = group["betas"]
        amsgrad, nesterov, atan2 = group.get("amsgrad", False), group.get("nesterov", False), self._atan2(group)
        a, b = atan2 if atan2 is not None else (1.0, 1.0)
        fixed = dict(
            l2=self._l2_coefficient(group),
            w1=1 - beta1,
            b2=beta2,
            w2=1 - beta2,
            eps=0.0 if atan2 is not None else group.get("eps", 0.0),
            a=a,
            b=b,
            keep=1 - self._decay_factor(group),
            neg_lr=-group["lr"],
        )

        def row(t):  # t: the step, a float (eager) or a tensor (inside torch.compile)
            cm, cg, bc2 = bias_corrections(t, beta1, beta2, nesterov)
            return [{**fixed, "cm": cm, "cg": cg, "bc2": bc2}[k] for k in fused.ADAM_COEFFS]

        slots = [
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if amsgrad else None,
        ]
        flags = dict(
            amsgrad=amsgrad,
            atan2=atan2 is not None,
            exact_squares=self._needs_exact_squares(group),
            nesterov=nesterov,
            eps_inside_sqrt=group.get("eps_inside_sqrt", False) and atan2 is None,
            **self._fused_common_flags(group, 1 - beta1),
        )
        return flags, slots, row


_ADAM_ARGS = """
    Args:
        params: tensors or param groups; any shape, real or complex (optimized as ``view_as_real``);
            float16/bfloat16 parameters keep float32 moments and are updated through a float32 copy.
        lr: eta_max >= 0 (parameter units). Under a ``torch.optim.lr_scheduler`` the group's current lr is
            eta_t = s_t eta_max; s_t = lr / peak lr (:meth:`adaptim.AdaptimOptimizer.schedule_multiplier`).
            A one-element CPU tensor is read as its float.
        betas: (b1, b2), each in [0, 1).
        eps: smoothing >= 0, added to sqrt(vbar) (Section 4.1.1) or, with ``eps_inside_sqrt``, to vbar.
        amsgrad: keep the running max of the *bias-corrected* vbar and divide by it (Figure 1 (b)-(c)). This
            deliberately differs from ``torch.optim``, which takes the max before bias correction (Section 4.2).
        nesterov: Dozat's first moment (Section 4.3): b1/(1-b1^(t+1)) m_t + (1-b1)/(1-b1^t) g_t.
        eps_inside_sqrt: divide by sqrt(vbar + eps) (Figure 1 (e)) instead of sqrt(vbar) + eps.
        maximize, foreach: as in :class:`adaptim.SGD`; both foreach paths are bitwise equal.
        capturable, differentiable: torch.optim's, accepted off (their defaults); on they are refused with
            what to write instead (no CUDA-graph capture, no autograd through the step).
        fused: the fused path (:mod:`adaptim.functional.fused`: the whole step in one compiled pass over p, g and
            the state). ``None`` (default): taken when ``foreach`` is not set and torch.compile can build it here
            (a C++ compiler on CPU, Triton on CUDA), else foreach; ``True``: required (``RuntimeError`` where it
            cannot run); ``False``: never. The first step compiles it (see README). Equal to the literal path to
            rounding (a few ulps per step).
"""


class Adam(_AdamBase):
    __doc__ = (
        """Adam (46) (Kingma and Ba, 2014) with bias correction and the flags of Figure 1; the update is
    written out in :mod:`adaptim.functional.adam`.

    ``weight_decay`` is the L2 term added to the gradient before the moments (``torch.optim.Adam``'s meaning);
    with ``decoupled_weight_decay=True`` it is AdamW's decay instead, lambda_t = lr_t weight_decay (exactly
    ``torch.optim.Adam(decoupled_weight_decay=True)``, i.e. :class:`AdamW`'s default). With default flags this is
    ``torch.optim.Adam``.
"""
        + _ADAM_ARGS
        + """        weight_decay: L2 coefficient >= 0 (decoupled: lambda_max >= 0).
        decoupled_weight_decay: w <- (1 - lr_t weight_decay) w instead of the L2 term (torch's name and meaning).

    Raises:
        ValueError: a hyperparameter outside its range.
"""
    )

    weight_decay_kind = WeightDecay.L2
    torch_names = ("capturable", "differentiable")

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        nesterov: bool = False,
        eps_inside_sqrt: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
        *,
        decoupled_weight_decay: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        betas = tuple(betas) if isinstance(betas, list) else betas  # anything else: check_betas says why
        super().__init__(
            params,
            self._with_torch_names(
                dict(
                    lr=lr,
                    betas=betas,
                    eps=eps,
                    weight_decay=weight_decay,
                    amsgrad=amsgrad,
                    nesterov=nesterov,
                    eps_inside_sqrt=eps_inside_sqrt,
                    maximize=maximize,
                    foreach=foreach,
                    decoupled_weight_decay=decoupled_weight_decay,
                    fused=fused,
                ),
                dict(capturable=capturable, differentiable=differentiable),
            ),
        )

    def _l2_coefficient(self, group):
        return 0.0 if group.get("decoupled_weight_decay", False) else group["weight_decay"]

    def _decay_factor(self, group):  # torch's decoupled_weight_decay=True: AdamW's lambda_t = lr * weight_decay
        return group["lr"] * group["weight_decay"] if group.get("decoupled_weight_decay", False) else 0.0


def _from_old_adamw(group: dict[str, Any]) -> dict[str, Any]:
    if "independent_weight_decay" in group or "decoupled_weight_decay" not in group:
        return group
    return {**group, "decoupled_weight_decay": True, "independent_weight_decay": bool(group["decoupled_weight_decay"])}


class AdamW(_AdamBase):
    __doc__ = (
        """AdamW: the whole of Figure 1 (Loshchilov and Hutter, 2017), written out in
    :mod:`adaptim.functional.adam`.

    w_{t+1} = (1 - lambda_t) w_t - eta_t d_t with eta_t = s_t lr and
    lambda_t = eta_t weight_decay (default, as ``torch.optim.AdamW``) or, with ``independent_weight_decay=True``,
    lambda_t = s_t weight_decay (Figure 1 (d) as printed: the decay is independent of lr; Wortsman et al., 2024).
    s_t = lr / peak lr in [0, 1] is the schedule multiplier set by any ``torch.optim.lr_scheduler``, the peak
    being the scheduler's ``initial_lr``, ``OneCycleLR``'s ``max_lr`` or a stated ``group["peak_lr"]``
    (:meth:`adaptim.AdaptimOptimizer.schedule_multiplier`; with ``independent_weight_decay`` a step with lr above
    the peak raises ``RuntimeError``). With default flags this is ``torch.optim.AdamW``.
    ``decoupled_weight_decay`` has torch's meaning: True (the default, and what ``torch.optim.AdamW`` always uses)
    is the lr-coupled decay above; False turns AdamW into :class:`Adam` with the L2 term ``weight_decay * w``
    added to the gradient.
"""
        + _ADAM_ARGS
        + """        weight_decay: lambda_max >= 0; with ``independent_weight_decay`` below 1 (Figure 1).
        decoupled_weight_decay: multiplicative decay (True, default) or L2 added to the gradient (False).
        independent_weight_decay: lambda_t = s_t weight_decay instead of lr_t weight_decay (needs
            ``decoupled_weight_decay=True``). weight_decay = 0.1 then removes 10 % of every weight per step at
            s_t = 1, so it is typically 1e-4 .. 1e-5 (Wortsman et al., 2024).

    Raises:
        ValueError: a hyperparameter outside its range; ``independent_weight_decay`` without
            ``decoupled_weight_decay``.
        RuntimeError: a step whose lambda_t is >= 1, or (``independent_weight_decay``) whose lr exceeds the peak.
"""
    )

    weight_decay_kind = WeightDecay.DECOUPLED
    torch_names = ("capturable", "differentiable")

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        nesterov: bool = False,
        eps_inside_sqrt: bool = False,
        decoupled_weight_decay: bool = True,
        maximize: bool = False,
        foreach: bool | None = None,
        *,
        independent_weight_decay: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        betas = tuple(betas) if isinstance(betas, list) else betas  # anything else: check_betas says why
        super().__init__(
            params,
            self._with_torch_names(
                dict(
                    lr=lr,
                    betas=betas,
                    eps=eps,
                    weight_decay=weight_decay,
                    amsgrad=amsgrad,
                    nesterov=nesterov,
                    eps_inside_sqrt=eps_inside_sqrt,
                    decoupled_weight_decay=decoupled_weight_decay,
                    maximize=maximize,
                    foreach=foreach,
                    independent_weight_decay=independent_weight_decay,
                    fused=fused,
                ),
                dict(capturable=capturable, differentiable=differentiable),
            ),
        )

    def _validate_group(self, group):
        super()._validate_group(group)
        if group.get("independent_weight_decay", False):
            if not group["decoupled_weight_decay"]:
                raise ValueError(
                    "independent_weight_decay=True is a multiplicative decay (lambda_t = s_t "
                    "weight_decay); it needs decoupled_weight_decay=True, not the L2 term of "
                    "decoupled_weight_decay=False"
                )
            check_range("weight_decay", group["weight_decay"], 0.0, 1.0, high_open=True)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As :meth:`adaptim.AdaptimOptimizer.load_state_dict`, reading checkpoints saved before
        ``independent_weight_decay`` existed (their groups lack the key) with the meaning they were saved with:
        their ``decoupled_weight_decay=True`` was Figure 1's lambda_t = s_t weight_decay (now
        ``independent_weight_decay=True``) and their ``False`` was AdamW's lambda_t = lr weight_decay (now the
        default ``decoupled_weight_decay=True``), so an old checkpoint resumes its exact trajectory."""
        groups = state_dict.get("param_groups", [])
        if any("independent_weight_decay" not in g and "decoupled_weight_decay" in g for g in groups):
            state_dict = {**state_dict, "param_groups": [_from_old_adamw(g) for g in groups]}
        super().load_state_dict(state_dict)

    def _check_group_step(self, group):
        super()._check_group_step(group)
        if group.get("independent_weight_decay", False) and group["weight_decay"] != 0:
            self._warn_if_s_t_is_blind(group)

    def _warn_if_s_t_is_blind(self, group) -> None:
        """lambda_t = s_t weight_decay follows the lr only through a recorded peak: an lr changed with none recorded
        (ReduceLROnPlateau, a manual cut) leaves s_t = 1. Say so once per group instead of decaying silently."""
        if any(k in group for k in ("peak_lr", "max_lr", "initial_lr")):
            return
        first = self.__dict__.setdefault("_first_lr", {})
        lr = float(group["lr"])
        if first.setdefault(id(group), lr) != lr and not self.__dict__.setdefault("_warned_s_t", set()) & {id(group)}:
            self._warned_s_t.add(id(group))
            warnings.warn(
                f"AdamW(independent_weight_decay=True): this group's lr changed ({first[id(group)]:.4g} -> {lr:.4g}) "
                "with no peak recorded (no lr_scheduler.LRScheduler, e.g. ReduceLROnPlateau or a manual change), so "
                "s_t stays 1 and the decay stays weight_decay per step; set group['peak_lr'] = <largest lr> for "
                "lambda_t = (lr / peak_lr) weight_decay",
                stacklevel=3,
            )

    def _l2_coefficient(self, group):
        return 0.0 if group["decoupled_weight_decay"] else group["weight_decay"]  # torch's name: False is L2

    def _decay_factor(self, group):
        if not group["decoupled_weight_decay"]:
            return 0.0
        if group.get("independent_weight_decay", False):
            return self.schedule_multiplier(group) * group["weight_decay"]
        return group["lr"] * group["weight_decay"]


class AdamAtan2(_AdamBase):
    """Adam-atan2 (Section 4.1.2, Everett et al., 2024): the direction a * atan2(mbar_t, b * sqrt(vbar_t)), no eps
    (the update is written out in :mod:`adaptim.functional.adam`).

    Weight decay is AdamW's default, coupled: lambda_t = eta_t weight_decay. atan2(0, 0) = 0, so a zero gradient
    moves nothing; each coordinate's step is at most eta_t a pi/2.

    Args:
        params: as :class:`Adam`.
        lr: eta_max >= 0.   betas: (b1, b2), each in [0, 1).
        weight_decay: >= 0, multiplied by the current lr.
        a, b: the footnote's knobs, both > 0 (a = b keeps atan2(x, b y) a ~ x/y for small x/y).
        maximize, foreach: as in :class:`adaptim.SGD`.
        fused: the fused path (:mod:`adaptim.functional.fused`: the whole step in one compiled pass over p, g and
            the state). ``None`` (default): taken when ``foreach`` is not set and torch.compile can build it here
            (a C++ compiler on CPU, Triton on CUDA), else foreach; ``True``: required (``RuntimeError`` where it
            cannot run); ``False``: never. The first step compiles it (see README). Equal to the literal path to
            rounding (a few ulps per step).

    Raises:
        ValueError: a hyperparameter outside its range.
    """

    weight_decay_kind = WeightDecay.DECOUPLED

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        a: float = 1.0,
        b: float = 1.0,
        maximize: bool = False,
        foreach: bool | None = None,
        *,
        fused: bool | None = None,
    ) -> None:
        betas = tuple(betas) if isinstance(betas, list) else betas
        super().__init__(
            params,
            dict(
                lr=lr, betas=betas, weight_decay=weight_decay, a=a, b=b, maximize=maximize, foreach=foreach, fused=fused
            ),
        )

    def _validate_group(self, group):
        super()._validate_group(group)
        check_range("a", group["a"], 0.0, low_open=True)
        check_range("b", group["b"], 0.0, low_open=True)

    def _decay_factor(self, group):
        return group["lr"] * group["weight_decay"]

    def _atan2(self, group):
        return group["a"], group["b"]
