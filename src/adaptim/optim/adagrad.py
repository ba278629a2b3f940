"""AdaGrad: diagonal (44), the scalar step (33) and full-matrix (Section 3.2.1)."""

from __future__ import annotations

from typing import Any

import torch

from adaptim.functional import fused
from adaptim.functional.adagrad import (
    adagrad_direction_foreach,
    adagrad_direction_single,
    adagrad_norm_step_size,
    full_matrix_adagrad_direction,
)
from adaptim.functional.common import WeightDecay
from adaptim.optim.base import AdaptimOptimizer
from adaptim.validation import check_int, check_range

__all__ = ["AdaGrad", "AdaGradNorm", "FullMatrixAdaGrad"]


class AdaGrad(AdaptimOptimizer):
    """Diagonal AdaGrad (44) (Duchi et al., 2011); the update is written out in :mod:`adaptim.functional.adagrad`.

    eps sits outside the root, as in ``torch.optim.Adagrad`` (which this matches with ``lr_decay=0``).

    Args:
        params: tensors or param groups; any shape, real or complex (as ``view_as_real``); float16/bfloat16
            parameters keep a float32 accumulator.
        lr: eta (>= 0), parameter units per unit of normalized gradient.
        eps: added to the root, >= 0.
        initial_accumulator_value: starting value of every sum, >= 0.
        weight_decay: L2 coefficient added to the gradient, >= 0.
        maximize, foreach: as in :class:`adaptim.SGD`.
        lr_decay, differentiable: ``torch.optim.Adagrad``'s, accepted at their defaults (0, False); anything else
            is refused with what to write instead (``lr_decay``: the schedule
            ``LambdaLR(opt, lambda k: 1 / (1 + k * lr_decay))``, which gives torch's steps).
        fused: the fused path (:mod:`adaptim.functional.fused`: the whole step in one compiled pass over p, g and
            the state). ``None`` (default): taken when ``foreach`` is not set and torch.compile can build it here
            (a C++ compiler on CPU, Triton on CUDA), else foreach; ``True``: required (``RuntimeError`` where it
            cannot run); ``False``: never. The first step compiles it (see README). Equal to the literal path to
            rounding (a few ulps per step).

    Raises:
        ValueError: a hyperparameter outside its range, a torch.optim argument with no counterpart here.
    """

    weight_decay_kind = WeightDecay.L2

    squares_gradients = True
    statistics_elementwise = True
    torch_names = ("lr_decay", "differentiable")
    fused_rule = "adagrad"

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        *,  # keyword-only: torch.optim.Adagrad's positional order is lr, lr_decay, weight_decay, ...
        eps: float = 1e-10,
        initial_accumulator_value: float = 0.0,
        weight_decay: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
        lr_decay: float = 0.0,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            eps=eps,
            initial_accumulator_value=initial_accumulator_value,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(
            params,
            self._with_torch_names(
                {**defaults, "fused": fused}, dict(lr_decay=lr_decay, differentiable=differentiable)
            ),
        )

    def _from_torch(self, entries, given, explicit, fallback) -> None:
        lr_decay = given.pop("lr_decay", 0)
        if lr_decay:
            raise ValueError(
                f"lr_decay={lr_decay!r}: adaptim.AdaGrad keeps no step count for torch's "
                "lr / (1 + (t - 1) lr_decay); drop lr_decay and schedule it instead: "
                f"torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / (1 + k * {lr_decay!r})) gives "
                "the same steps"
            )
        super()._from_torch(entries, given, explicit, fallback)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_range("eps", group["eps"], 0.0)
        check_range("initial_accumulator_value", group["initial_accumulator_value"], 0.0)
        check_range("weight_decay", group["weight_decay"], 0.0)

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"sum": torch.full_like(p, group["initial_accumulator_value"])}

    def _needs_exact_squares(self, group: dict[str, Any]) -> bool:
        return group["eps"] == 0  # g / sqrt(sum g^2) with nothing added

    def _l2_coefficient(self, group: dict[str, Any]) -> float:
        return group["weight_decay"]

    def _accumulated(self, group: dict[str, Any], state: dict[str, Any]) -> list[torch.Tensor]:
        return [state["sum"]]

    def _fused_rule_args(self, group, states):
        fixed = dict(
            l2=group["weight_decay"], eps=group["eps"], keep=1 - self._decay_factor(group), neg_lr=-group["lr"]
        )
        flags = dict(exact_squares=self._needs_exact_squares(group), **self._fused_common_flags(group))
        return flags, [[s["sum"] for s in states]], lambda t: [fixed[k] for k in fused.ADAGRAD_COEFFS]

    def _update_group(self, group, params, grads, states) -> None:
        fn = adagrad_direction_foreach if self.use_foreach(group) else adagrad_direction_single
        directions = fn(params, grads, [s["sum"] for s in states], eps=group["eps"], weight_decay=group["weight_decay"])
        self._final_step(group, params, directions, group["lr"], self._decay_factor(group))


class AdaGradNorm(AdaptimOptimizer):
    """AdaGrad-Norm, the scalar adaptive step (33) (written out in :mod:`adaptim.functional.adagrad`).

    ``lr`` plays D (a distance in parameter units). The norm is taken over all parameters of a group together,
    so each group keeps one running sum; it lives in the group (key ``"sum_sq"``, a float) and is saved with
    ``state_dict``. ``eps`` is added to the root.

    Args:
        params: tensors or param groups; any shape, real or complex.
        lr: D > = 0.
        eps: >= 0.
        maximize, foreach: as in :class:`adaptim.SGD`.
        process_group, communication_dtype: refused (``ValueError``): the running sum couples every parameter.

    Raises:
        ValueError: a hyperparameter outside its range; a ``process_group``.
    """

    squares_gradients = True
    owner_computes_refusal = (
        "AdaGrad-Norm couples every parameter of a group through one scalar (the running sum of squared "
        "gradient norms), so no rank can own a parameter's update alone; use process_group=None (or AdaGrad)"
    )

    def __init__(
        self,
        params,
        lr: float = 1.0,
        eps: float = 1e-10,
        maximize: bool = False,
        foreach: bool | None = None,
        process_group: Any = None,
        communication_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            params,
            dict(lr=lr, eps=eps, maximize=maximize, foreach=foreach),
            process_group=process_group,
            communication_dtype=communication_dtype,
        )

    def _statistics_dtype(self, g: torch.Tensor) -> torch.dtype:
        return torch.float64  # the running sum is a Python float

    def _square_bounds(self, group: dict[str, Any], params: list[torch.Tensor]) -> list[torch.Tensor]:
        # one sum for the whole group: the running total sum_sq + ||g_1||^2 + ... + ||g_k||^2
        sq = torch.stack([self._squared_norm(self._real(p.grad), torch.float64).cpu() for p in params])
        return list((torch.cumsum(sq, 0) + group["sum_sq"]).unbind(0))

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_range("eps", group["eps"], 0.0)
        group.setdefault("sum_sq", 0.0)

    def _update_group(self, group, params, grads, states) -> None:
        eta, group["sum_sq"] = adagrad_norm_step_size(grads, group["sum_sq"], lr=group["lr"], eps=group["eps"])
        if eta != 0:  # eta_t = 0 while every gradient so far is zero: nothing to move
            self._final_step(group, params, grads, eta, self._decay_factor(group))


class FullMatrixAdaGrad(AdaptimOptimizer):
    """Full-matrix AdaGrad (Section 3.2.1), written out in :mod:`adaptim.functional.adagrad`.

    Each parameter is flattened (row-major) to a vector of d entries (2d for complex, as its real view) with its
    own d x d statistic (stored with shape (*p.shape, *p.shape)), kept in float64; the inverse root (O_t + eps I)^{-1/2}
    comes from a symmetric
    eigendecomposition (:func:`adaptim.linalg.psd_power`), O(d^3) time and O(d^2) memory per step.

    Args:
        params: tensors or param groups, each with at most ``max_dim`` entries.
        lr: D (>= 0), a distance in parameter units (the regret bound (43) uses eta_t = D).
        eps: damping of the eigenvalues, > 0 (O_t is singular while t < d).
        max_dim: the largest d accepted, >= 1.
        process_group: a ``torch.distributed`` process group to share the work over (each parameter's update
            computed by one owner rank, one all-gather per step: :mod:`adaptim.distributed.owner`); ``None``
            (default): every rank computes everything, as without torch.distributed.
        communication_dtype: the dtype of that all-gather (``None``: each parameter's own; a narrower one
            sends the rounded changes).

    Raises:
        ValueError: a hyperparameter outside its range, or a parameter with more than ``max_dim`` entries
            (use the diagonal :class:`adaptim.AdaGrad` instead, or Shampoo's Kronecker-factored preconditioner).
    """

    squares_gradients = True

    def __init__(
        self,
        params,
        lr: float = 1.0,
        eps: float = 1e-10,
        max_dim: int = 1024,
        maximize: bool = False,
        process_group: Any = None,
        communication_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            params,
            dict(lr=lr, eps=eps, max_dim=max_dim, maximize=maximize),
            process_group=process_group,
            communication_dtype=communication_dtype,
        )

    def _statistics_dtype(self, g: torch.Tensor) -> torch.dtype:
        return torch.float64

    def _accumulated(self, group: dict[str, Any], state: dict[str, Any]) -> list[torch.Tensor]:
        return [state["outer_sum"]]

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        # O_t = sum g g^T has rank <= t < d early on: its inverse root needs damping.
        check_range("eps", group["eps"], 0.0, low_open=True)
        check_int("max_dim", group["max_dim"], 1)
        for p in group["params"]:
            d = p.numel() * (2 if p.is_complex() else 1)
            if d > group["max_dim"]:
                raise ValueError(
                    f"FullMatrixAdaGrad: a parameter of shape {tuple(p.shape)} has d = {d} entries, more than "
                    f"max_dim = {group['max_dim']} (its preconditioner would be {d} x {d}); use the diagonal "
                    "adaptim.AdaGrad, or raise max_dim if d^2 memory and d^3 time per step are affordable"
                )

    def _work_cost(self, p: torch.Tensor, group: dict[str, Any]) -> float:
        return float(p.numel()) ** 3  # the d x d eigendecomposition

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        # shaped (*p.shape, *p.shape), i.e. g (x) g, not (d, d): a checkpoint of a 2x3 parameter then cannot be
        # loaded onto a 3x2 one (both have d = 6)
        return {"outer_sum": torch.zeros((*p.shape, *p.shape), dtype=torch.float64, device=p.device)}

    def _update_group(self, group, params, grads, states) -> None:
        directions = full_matrix_adagrad_direction(grads, [s["outer_sum"] for s in states], eps=group["eps"])
        self._final_step(group, params, directions, group["lr"], self._decay_factor(group))
