"""Adafactor (Section 4.7, (52), and the five changes of Section 4.7.1; Shazeer and Stern, 2018)."""

from __future__ import annotations

import functools
from typing import Any

import torch

from adaptim.functional.adafactor import adafactor_batched, adafactor_single, adafactor_step_size
from adaptim.functional.common import WeightDecay, apply_update_
from adaptim.optim.base import AdaptimOptimizer
from adaptim.validation import check_range

__all__ = ["Adafactor"]

#: the default lr: the paper's cap of the relative step, min(1e-2, 1/sqrt(t)); what lr=None means
_DEFAULT_LR = 1e-2


class Adafactor(AdaptimOptimizer):
    """Adafactor: Adam with the rank-1 second moment (52) and the changes of Section 4.7.1, each switchable.

    The update, with the notes' equation numbers, is documented once in :mod:`adaptim.functional.adafactor`.
    Each change of 4.7.1 is one argument: (1) ``factored`` (row and column sums (52); a tensor of more than two
    dimensions is factored over its last two, vectors and scalars always keep the full v_t); (2) ``beta1=None``
    (no first moment); (3) ``clip_threshold`` (RMS clipping, case C10); (4) ``scale_parameter`` (the step
    multiplied by max(eps[1], RMS(W_t))); (5) ``beta2=None`` (beta_t = 1 - t^decay_rate instead of bias
    correction).

    Differences from other implementations: a float beta1 puts Adam's bias-corrected EMA of G in the numerator
    (the notes' M_t / sqrt(A_t B_t)), clipped together with the update; Hugging Face and fairseq average the
    clipped update, uncorrected. Weight decay is multiplied by rho_t but not by RMS(W_t) (torch.optim.Adafactor
    multiplies it by lr, the cap of rho_t).

    Step size rho_t (torch.optim.Adafactor's reading of ``lr``): with ``relative_step=True`` the relative step
    min(lr, 1/sqrt(t)), with ``warmup_init`` min(lr, 1e-6 t, 1/sqrt(t)), so the group's current ``lr`` is the
    largest relative step; at the default ``lr=1e-2`` this is exactly the paper's relative step min(1e-2, 1/sqrt(t))
    (min(1e-6 t, 1/sqrt(t)) with warm-up; Shazeer and Stern, 2018), the eta of 4.7.1's update. With
    ``relative_step=False`` rho_t is the group's current ``lr`` itself. Either way every
    ``torch.optim.lr_scheduler`` works on the lr: rho_t = min(s_t lr, 1/sqrt(t)), or s_t lr. ``lr=None`` (older
    code and checkpoints) means 1e-2, and the group then stores 1e-2 (from construction, loading, or the next step
    when set on a group). No step otherwise writes the group's ``lr`` or any other group entry: everything per
    parameter (rho_t, RMS(W_t), t) is computed locally (case C09).

    State per parameter, besides the float32 ``step``: factored m x n: ``exp_avg_sq_row`` (m) and
    ``exp_avg_sq_col`` (n), i.e. exactly m + n floats; unfactored: ``exp_avg_sq`` (the parameter's shape);
    with a float beta1 also ``exp_avg``. Statistics are float32 (float64 for float64 parameters); bfloat16 and
    float16 parameters are updated through a float32 copy. The default path is
    :func:`adaptim.functional.adafactor.adafactor_batched` (float32 arithmetic, the per-tensor scalars folded into
    the step size, small tensors of one shape stacked); ``foreach=False`` is the literal float64 loop.

    Args:
        params: tensors or param groups (real; complex parameters are refused).
        lr: a float >= 0 (or a one-element tensor): the cap of the relative step (``relative_step=True``;
            torch.optim.Adafactor's reading), or rho_t itself (``relative_step=False``). ``None`` means 1e-2.
        beta1: None, or the first-moment coefficient in [0, 1).
        beta2: None (schedule of change 5), or the EMA coefficient in [0, 1) with bias correction.
        decay_rate: the exponent of beta_t = 1 - t^decay_rate, in (-inf, 0] (the paper's -c = -0.8).
        eps: (eps1, eps2): eps1 > 0 is added to G^2 (the paper's 1e-30; it keeps 1/sqrt(Vhat) finite),
            eps2 >= 0 floors RMS(W_t) in change 4 (the paper's 1e-3).
        clip_threshold: d > 0, or None for no clipping.
        relative_step: use the relative step size min(lr, 1/sqrt(t)) instead of ``lr`` itself.
        scale_parameter: change 4.
        warmup_init: relative step min(lr, 1e-6 t, 1/sqrt(t)); requires ``relative_step=True``.
        factored: change 1.
        weight_decay: >= 0, decoupled: W is multiplied by (1 - rho_t weight_decay) (not by RMS(W_t)).
        maximize: ascend instead of descend (weight decay still pulls toward 0).
        foreach: the fast path (``None``: yes) or the literal per-parameter loop; they agree to a few float32
            roundings (tests/optim/test_factored_fast.py).
        beta2_decay, d: ``torch.optim.Adafactor``'s names for ``decay_rate`` and ``clip_threshold`` (same
            meaning). Its ``eps=(None, ...)`` (machine epsilon, clamping the second moment) is refused with what
            to write instead: eps1 is added to G^2 here, as in the paper.
        process_group: a ``torch.distributed`` process group to share the work over (each parameter's update
            computed by one owner rank, one all-gather per step: :mod:`adaptim.distributed.owner`); ``None``
            (default): every rank computes everything, as without torch.distributed.
        communication_dtype: the dtype of that all-gather (``None``: each parameter's own; a narrower one
            sends the rounded changes).

    Raises:
        ValueError: a hyperparameter outside its range, or ``warmup_init`` without ``relative_step``.
        TypeError: complex or sparse parameters.
        RuntimeError: at ``step``, a NaN or infinite gradient, or a decay factor rho_t * weight_decay >= 1 (the
            largest over the group's parameters); nothing is changed then.
    """

    weight_decay_kind = WeightDecay.DECOUPLED

    supports_complex = False
    squares_gradients = True
    torch_names = ("beta2_decay", "d")

    def __init__(
        self,
        params,
        lr: float | None = 1e-2,
        beta1: float | None = None,
        beta2: float | None = None,
        decay_rate: float = -0.8,
        eps: tuple[float, float] = (1e-30, 1e-3),
        clip_threshold: float | None = 1.0,
        relative_step: bool = True,
        scale_parameter: bool = True,
        warmup_init: bool = False,
        factored: bool = True,
        weight_decay: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
        *,
        beta2_decay: float | None = None,
        d: float | None = None,
        process_group: Any = None,
        communication_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            params,
            self._with_torch_names(
                dict(
                    lr=_DEFAULT_LR if lr is None else lr,
                    beta1=beta1,
                    beta2=beta2,
                    decay_rate=decay_rate,
                    eps=tuple(eps) if isinstance(eps, (tuple, list)) else eps,
                    clip_threshold=clip_threshold,
                    relative_step=relative_step,
                    scale_parameter=scale_parameter,
                    warmup_init=warmup_init,
                    factored=factored,
                    weight_decay=weight_decay,
                    maximize=maximize,
                    foreach=foreach,
                ),
                dict(beta2_decay=beta2_decay, d=d),
            ),
            process_group=process_group,
            communication_dtype=communication_dtype,
        )

    def _from_torch(self, entries, given, explicit, fallback) -> None:
        for torch_name, name in (("beta2_decay", "decay_rate"), ("d", "clip_threshold")):
            value = given.pop(torch_name, None)
            if value is not None:
                self._set_alias(entries, explicit, f"{torch_name}={value!r}", name, value)
        super()._from_torch(entries, given, explicit, fallback)

    def _validate_group(self, group: dict[str, Any]) -> None:
        if group["lr"] is None:  # older code and checkpoints: lr=None was the relative step capped at 1e-2
            group["lr"] = _DEFAULT_LR
        check_range("lr", group["lr"], 0.0)
        if group["warmup_init"] and not group["relative_step"]:
            raise ValueError("warmup_init=True requires relative_step=True")
        for name in ("beta1", "beta2"):
            if group[name] is not None:
                check_range(name, group[name], 0.0, 1.0, high_open=True)
        check_range("decay_rate", group["decay_rate"], None, 0.0)
        eps = group["eps"]
        if not isinstance(eps, tuple) or len(eps) != 2:
            raise ValueError(f"eps must be a pair (eps1, eps2), got {eps!r}")
        if eps[0] is None:
            raise ValueError(
                "eps[0]=None is torch.optim.Adafactor's machine epsilon, which clamps the second moment; "
                "here eps[0] is added to G^2 as in the paper: pass a number, e.g. eps=(1e-30, 1e-3)"
            )
        check_range("eps[0]", eps[0], 0.0, low_open=True)
        check_range("eps[1]", eps[1], 0.0)
        if group["clip_threshold"] is not None:
            check_range("clip_threshold", group["clip_threshold"], 0.0, low_open=True)
        check_range("weight_decay", group["weight_decay"], 0.0)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """:meth:`adaptim.AdaptimOptimizer.load_state_dict`; a group saved with ``lr=None`` (older versions: the
        relative step capped at 1e-2) loads as ``lr=1e-2``, which steps identically."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            if group.get("lr", _DEFAULT_LR) is None:
                group["lr"] = _DEFAULT_LR

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.new_step()}
        if group["factored"] and p.dim() >= 2:
            state["exp_avg_sq_row"] = torch.zeros(p.shape[:-1], dtype=p.dtype, device=p.device)
            state["exp_avg_sq_col"] = torch.zeros(p.shape[:-2] + p.shape[-1:], dtype=p.dtype, device=p.device)
        else:
            state["exp_avg_sq"] = torch.zeros_like(p)
        if group["beta1"] is not None:
            state["exp_avg"] = torch.zeros_like(p)
        return state

    def _decay_factor(self, group: dict[str, Any]) -> float:
        """max rho_t * weight_decay over the parameters the coming step moves (rho_t depends on each one's t)."""
        if group["weight_decay"] == 0:
            return 0.0
        steps = [
            int(self.state[p]["step"]) + 1 if "step" in self.state.get(p, {}) else 1
            for p in group["params"]
            if p.grad is not None and p.numel() > 0
        ]
        rho = max(
            (adafactor_step_size(t, group["lr"], group["relative_step"], group["warmup_init"]) for t in steps),
            default=0.0,
        )
        return rho * group["weight_decay"]

    def _update_group(self, group, params, grads, states) -> None:
        eps1, eps2 = group["eps"]
        steps = self.step_counts(states)
        rule = adafactor_batched if self.use_foreach(group) else adafactor_single
        rule(
            params,
            grads,
            [s.get("exp_avg") for s in states],
            [s.get("exp_avg_sq_row") for s in states],
            [s.get("exp_avg_sq_col") for s in states],
            [s.get("exp_avg_sq") for s in states],
            steps,
            lr=group["lr"],
            beta1=group["beta1"],
            beta2=group["beta2"],
            decay_rate=group["decay_rate"],
            eps1=eps1,
            eps2=eps2,
            clip_threshold=group["clip_threshold"],
            relative_step=group["relative_step"],
            scale_parameter=group["scale_parameter"],
            warmup_init=group["warmup_init"],
            weight_decay=group["weight_decay"],
            step=self._last_stage(group),
        )

    def _last_stage(self, group: dict[str, Any]):
        # the Euclidean last stage is apply_update_ itself, which lets the fast path put each parameter's scalar
        # into its step size; an overridden _final_step receives the directions as documented
        if type(self)._final_step is AdaptimOptimizer._final_step and "_final_step" not in self.__dict__:
            return apply_update_
        return functools.partial(self._final_step, group)
