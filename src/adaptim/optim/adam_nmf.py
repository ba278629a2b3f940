"""AdamNMF (Appendix L.2): a rank-r generalization of Adafactor's factored second moment, fit by EM (124)."""

from __future__ import annotations

from typing import Any

import torch

from adaptim.functional.adam_nmf import adam_nmf_directions
from adaptim.functional.common import WeightDecay
from adaptim.optim.base import AdaptimOptimizer
from adaptim.validation import check_int, check_range

__all__ = ["AdamNMF"]


class AdamNMF(AdaptimOptimizer):
    """AdamNMF of Appendix L.2: per matrix, G_t^2 ~ A_t B_t by one warm-started EM round (124) per step.

    The update, with the notes' equation numbers and the floor f_t added to G_t^2 (not in the box), is
    documented once in :mod:`adaptim.functional.adam_nmf`. A tensor of more than two dimensions is factored over
    its last two (one factor pair per leading index); vectors and scalars use the elementwise rule and keep no
    factors. ``beta1 = 0`` is the box (N_t = G_t); ``beta1 > 0`` uses Adam's bias-corrected EMA.

    A_0, B_0 ~ Unif(0, init_range] (L.2 step 1), drawn from a ``torch.Generator`` seeded with
    :attr:`init_seed` (default 0) separately for each parameter, so they depend only on the parameter's
    shape: runs are reproducible, and parameters of one shape start from the same factors (their first EM round
    separates them). The EM round normalizes B by the updated A (see :mod:`adaptim.linalg.nmf`: with the box's
    A_{t-1} the step would not be monotone in the I-divergence).

    As in the box there is no EMA of the second moment: A_t B_t tracks the current G_t^2 (exactly, at r = 1,
    after every step; at larger r the warm start carries the EM iterate over from step to step). With
    beta1 > 0 the ratio N_t / sqrt(A_t B_t) is therefore large where the current gradient is small; eps bounds
    it by |N_t| / eps.

    State per parameter besides the float32 ``step``: ``nmf_a`` (..., m, r) and ``nmf_b`` (..., r, n) for
    matrices, r (m + n) floats; with beta1 > 0 also ``exp_avg`` (the parameter's shape). Statistics are float32
    (float64 for float64 parameters); bfloat16/float16 parameters are updated through a float32 copy. Within a
    group, matrices of one shape are updated as one batch.

    Args:
        params: tensors or param groups (real; complex parameters are refused).
        lr: eta >= 0; a ``torch.optim.lr_scheduler`` scales it.
        rank: r >= 1 (an integer; r > min(m, n) is allowed but stores more than m n floats).
        init_range: the epsilon > 0 of L.2 step 1 (factor initialization range).
        eps: >= 0, added to sqrt(A_t B_t).
        beta1: first-moment coefficient in [0, 1); 0 keeps no first moment.
        weight_decay: >= 0, decoupled: W is multiplied by (1 - lr weight_decay) (as torch.optim.AdamW).
        maximize: ascend instead of descend (weight decay still pulls toward 0).
        foreach: batched path (``None``: yes) or the literal per-parameter loop; they agree to rounding.
        process_group: a ``torch.distributed`` process group to share the work over (each parameter's update
            computed by one owner rank, one all-gather per step: :mod:`adaptim.distributed.owner`); ``None``
            (default): every rank computes everything, as without torch.distributed.
        communication_dtype: the dtype of that all-gather (``None``: each parameter's own; a narrower one
            sends the rounded changes).

    Raises:
        ValueError: a hyperparameter outside its range.   TypeError: complex or sparse parameters.
        RuntimeError: at ``step``, a NaN or infinite gradient, or lr * weight_decay >= 1; nothing is changed then.
    """

    weight_decay_kind = WeightDecay.DECOUPLED

    supports_complex = False
    squares_gradients = True
    #: seed of the generator that draws A_0, B_0 (one fresh generator per parameter)
    init_seed: int = 0

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        rank: int = 1,
        init_range: float = 1e-3,
        eps: float = 1e-8,
        beta1: float = 0.0,
        weight_decay: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
        process_group: Any = None,
        communication_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                rank=rank,
                init_range=init_range,
                eps=eps,
                beta1=beta1,
                weight_decay=weight_decay,
                maximize=maximize,
                foreach=foreach,
            ),
            process_group=process_group,
            communication_dtype=communication_dtype,
        )

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_int("rank", group["rank"], 1)
        check_range("init_range", group["init_range"], 0.0, low_open=True)
        check_range("eps", group["eps"], 0.0)
        check_range("beta1", group["beta1"], 0.0, 1.0, high_open=True)
        check_range("weight_decay", group["weight_decay"], 0.0)

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.new_step()}
        if p.dim() >= 2:
            *lead, m, n = p.shape
            r, eps = group["rank"], group["init_range"]
            gen = torch.Generator().manual_seed(self.init_seed)
            # Unif(0, eps]: 1 - U with U in [0, 1) is never 0, and a zero factor entry could never grow.
            a = (1 - torch.rand((*lead, m, r), generator=gen, dtype=p.dtype)) * eps
            b = (1 - torch.rand((*lead, r, n), generator=gen, dtype=p.dtype)) * eps
            state["nmf_a"] = a.to(p.device)
            state["nmf_b"] = b.to(p.device)
        if group["beta1"] > 0:
            state["exp_avg"] = torch.zeros_like(p)
        return state

    def _work_cost(self, p: torch.Tensor, group: dict[str, Any]) -> float:
        if p.dim() < 2:
            return float(p.numel())  # the elementwise rule
        return float(p.numel() * group["rank"])  # the EM round (124): m n r per matrix

    def _decay_factor(self, group: dict[str, Any]) -> float:
        return group["lr"] * group["weight_decay"]

    def _update_group(self, group, params, grads, states) -> None:
        directions = adam_nmf_directions(
            grads,
            [s.get("nmf_a") for s in states],
            [s.get("nmf_b") for s in states],
            [s.get("exp_avg") for s in states],
            self.step_counts(states),
            beta1=group["beta1"],
            eps=group["eps"],
            batched=self.use_foreach(group),
        )
        self._final_step(group, params, directions, group["lr"], self._decay_factor(group))
