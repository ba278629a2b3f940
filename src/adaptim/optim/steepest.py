"""Steepest descent under a norm: the closed forms (69) of the trust-region (67) and majorization (68) steps."""

from __future__ import annotations

import math
from typing import Any

import torch

from adaptim.functional.common import ema_
from adaptim.functional.steepest import steepest_directions
from adaptim.linalg.views import matrix_view_shape
from adaptim.optim.base import AdaptimOptimizer
from adaptim.validation import check_choice, check_range

__all__ = ["Steepest"]

_NORMS = ("spectral", "frobenius", "inf")
_RULES = ("trust_region", "majorization")


class Steepest(AdaptimOptimizer):
    """Steepest descent under the spectral, Frobenius or elementwise-inf norm (Section 7, (67)-(69)).

    The trust-region (67) and majorization (68) steps and their closed forms (69) for each norm are documented
    once in :mod:`adaptim.functional.steepest`; the direction is :func:`~adaptim.functional.steepest_directions`
    and the step the common last stage :meth:`_final_step`. U V^T is computed exactly by SVD. With
    ``momentum = mu > 0`` the EMA M_t = mu M_{t-1} + (1 - mu) G_t (M_0 = 0) replaces G. A zero G gives a zero step.

    Shapes: a matrix is used as is; a tensor with more than 2 dimensions as its (shape[0], rest) flattening; a
    vector as an (n, 1) column (so "spectral" gives g / ||g||_2); a scalar as 1 x 1
    (:func:`adaptim.linalg.as_matrix`). Matrices of one shape in a group are processed by one batched call.

    On DTensor (FSDP2) parameters the EMA runs on each rank's shards, and each tensor's direction is computed once,
    whole, by one owner rank (:func:`adaptim.distributed.dtensor.owner_compute`: two all-to-alls per group and step;
    each SVD on one rank); the result equals one process's step on the same gradients.

    Args:
        params: tensors or param groups; real (complex is refused), float16/bfloat16 through a float32 copy.
        lr: eta >= 0, the trust-region radius (parameter units) or the majorization step size; default 0.02,
            Muon's (the spectral trust-region step is Muon's orthogonalized step).
        norm: "spectral", "frobenius" or "inf".
        rule: "trust_region" or "majorization".
        momentum: mu in [0, 1).
        maximize: ascend instead of descend.
        foreach: batched path (``None``: yes) or the literal per-parameter loop; they agree to rounding.
        process_group: a ``torch.distributed`` process group to share the work over (each parameter's update
            computed by one owner rank, one all-gather per step: :mod:`adaptim.distributed.owner`); ``None``
            (default): every rank computes everything, as without torch.distributed.
        communication_dtype: the dtype of that all-gather (``None``: each parameter's own; a narrower one
            sends the rounded changes).

    Raises:
        ValueError: a hyperparameter out of range or an unknown ``norm`` / ``rule``.
        TypeError: complex or sparse parameters.
        RuntimeError: a NaN or infinite gradient.
    """

    supports_complex = False

    def __init__(
        self,
        params,
        lr: float = 0.02,
        norm: str = "spectral",
        rule: str = "trust_region",
        momentum: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
        process_group: Any = None,
        communication_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            params,
            dict(lr=lr, norm=norm, rule=rule, momentum=momentum, maximize=maximize, foreach=foreach),
            process_group=process_group,
            communication_dtype=communication_dtype,
        )

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_choice("norm", group["norm"], _NORMS)
        check_choice("rule", group["rule"], _RULES)
        check_range("momentum", group["momentum"], 0.0, 1.0, high_open=True)

    def _work_cost(self, p: torch.Tensor, group: dict[str, Any]) -> float:
        return self._shape_cost(tuple(p.shape), group["norm"])

    @staticmethod
    def _shape_cost(shape: tuple[int, ...], norm: str) -> float:
        """The work of one direction on a tensor of ``shape``: its numel, or m n min(m, n) for the SVD."""
        if norm != "spectral":
            return float(math.prod(shape))
        m, n = matrix_view_shape(shape) if len(shape) >= 2 else (max(math.prod(shape), 1), 1)
        return float(m * n * min(m, n))  # the SVD of the m x n view

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        if group["momentum"] == 0:
            return {}
        return {"momentum_buffer": torch.zeros_like(p)}

    def _runs_on_shards(self, group: dict[str, Any]) -> bool:
        """On DTensor (FSDP2) parameters a group steps the local shards (:mod:`adaptim.distributed.dtensor`): the
        momentum EMA is elementwise (no collective); each tensor's direction is computed whole, once, by its owner
        rank (:func:`~adaptim.distributed.dtensor.owner_compute`), and each rank applies its chunk of it."""
        euclidean = type(self)._final_step is AdaptimOptimizer._final_step  # a retraction needs whole matrices
        return euclidean and group.get("manifold") is None

    def _update_group(self, group, params, grads, states) -> None:
        bufs = [s["momentum_buffer"] for s in states] if group["momentum"] != 0 else None
        batched = self.use_foreach(group)
        from adaptim.distributed.dtensor import owner_compute, sharded_like  # (a layer above optim)

        like = sharded_like(self)  # DTensor parameters: these are local shards
        if like is None:
            directions = steepest_directions(
                grads, bufs, norm=group["norm"], rule=group["rule"], momentum=group["momentum"], batched=batched
            )
        else:  # the EMA on the shards (elementwise), then each whole direction once, by its owner rank
            ms = grads
            if bufs is not None:
                for b, g in [(bufs, grads)] if batched else zip(bufs, grads):
                    ema_(b, g, group["momentum"])
                ms = bufs

            def direction(whole: list[torch.Tensor]) -> list[torch.Tensor]:
                return steepest_directions(whole, None, norm=group["norm"], rule=group["rule"], batched=batched)

            directions = owner_compute(ms, like, direction, lambda shape: self._shape_cost(shape, group["norm"]))
        self._final_step(group, params, directions, group["lr"])
