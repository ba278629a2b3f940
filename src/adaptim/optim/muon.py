"""Muon (Section 7, Appendix Q.3.1) with an AdamW side for the parameters it should not take, and the usual split."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from adaptim.functional.adam import adam_direction_foreach, adam_direction_single
from adaptim.functional.common import WeightDecay
from adaptim.functional.muon import ADJUST_LR, muon_directions, muon_momentum_
from adaptim.linalg.newton_schulz import check_ns_bounded, resolve_ns_coefficients, resolve_ns_dtype
from adaptim.linalg.views import matrix_view_shape
from adaptim.optim.base import NOT_GIVEN, AdaptimOptimizer
from adaptim.validation import check_betas, check_bool, check_choice, check_int, check_range

__all__ = ["Muon", "muon_param_groups"]


class Muon(AdaptimOptimizer):
    """Muon: momentum, then the update orthogonalized (Section 7's spectral-norm steepest direction U V^T).

    The update of a Muon group (``use_muon=True``, the default) -- EMA momentum, Nesterov, Newton-Schulz (147) or
    the exact U V^T, the ``adjust_lr`` ratio a(m, n) and decoupled decay -- is documented once, with the notes'
    equation numbers, in :mod:`adaptim.functional.muon`; its three stages are
    :func:`~adaptim.functional.muon_momentum_`, :func:`~adaptim.functional.muon_directions` and the last stage
    :meth:`_final_step` (the seam a sphere or Stiefel variant replaces). Tensors with more than two dimensions
    (convolution weights (out, in, kh, kw)) are orthogonalized as their (out, in*kh*kw) flattening; a(m, n) uses
    that flattened shape. Matrices of one (flattened) shape in a group are orthogonalized together by one batched
    Newton-Schulz call (the default ``foreach=None``), each step written as three fused matrix multiply-adds
    (A = X X^T, B = b A + c A A, X <- a X + B X with ``torch.baddbmm``), on the smaller Gram side.

    Precision of Newton-Schulz (``ns_dtype``): float32 is the default and the reference. ``ns_dtype="bfloat16"``
    runs the matrix products in bfloat16 (as ``torch.optim.Muon`` does), after a float32 normalization. Measured
    with "jordan" and 5 steps on random matrices of shapes 64x64 to 2304x576 (Gaussian, and with singular values
    spread over 1..1e-3; ``python tests/optim/test_muon_fast.py`` prints the table): the bfloat16 result differs
    from the float32 one by 1.0-1.4% relative in the Frobenius norm on Gaussian matrices and by 3-7% with the
    spread spectrum (``torch.optim.Muon``'s bfloat16 result: the same 1.1%); the orthogonality error
    ||O^T O - I||_F / sqrt(min(m, n)) of the two differs by 0.004 at most (it is 0.28-0.59, from the
    "jordan" polynomial itself, whose singular values land in about [0.68, 1.21], and from singular values too
    small for 5 steps). bfloat16 is faster only where the hardware multiplies bfloat16 matrices (GPUs, CPUs with
    AMX or AVX-512 BF16); on a CPU without them it is much slower (measured on 2 AVX2 cores, 576x576 products:
    0.55 ns per flop in bfloat16, 0.015 in float32), and float32 is the faster choice there.

    Relation to ``torch.optim.Muon``: the same EMA momentum, Nesterov form and weight decay (1 - eta_t lambda) W
    with the unadjusted lr, and the same fused iteration on the transposed tall matrix; Newton-Schulz runs in
    float32/float64 by default (torch: always bfloat16; ``ns_dtype="bfloat16"`` matches it), is normalized
    without an epsilon (torch divides by max(||X||_F, eps) in bfloat16), batches matrices of one shape and also
    takes other coefficient sets and step counts; ``adjust_lr=None`` means no adjustment (torch's
    ``adjust_lr_fn=None`` means "original").

    Parameters that are not hidden matrices (embeddings, the output head, biases, norm gains) belong in a group
    with ``use_muon=False``; such a group is updated by AdamW (Figure 1, ``torch.optim.AdamW``'s rule, decay
    eta_t * weight_decay) with the group's own ``lr``, ``betas``, ``eps`` and ``weight_decay`` (defaults: the
    constructor's). :func:`muon_param_groups` builds the usual split.

    Args:
        params: tensors or param groups. Tensors in a Muon group need at least 2 dimensions; float16/bfloat16 are
            updated through a float32 copy with float32 momentum. Complex parameters are refused.
        lr: eta (Muon groups: size of the orthogonalized step, in parameter units, before ``adjust_lr``), >= 0.
        momentum: mu in [0, 1).
        nesterov: use the Nesterov form N_t = (1 - mu) G_t + mu M_t.
        ns_coefficients: "jordan" (3.4445, -4.7750, 2.0315), "cubic", "quintic" or a tuple (c_1, ..., c_P) whose
            iterated map stays bounded (:func:`adaptim.linalg.check_ns_bounded`).
        ns_steps: Newton-Schulz iterations, an int >= 1.
        orthogonalize: "newton_schulz" or "svd" (exact U V^T, slower; for reference and small models).
        ns_dtype: precision of Newton-Schulz: ``None`` (the default: float32, float64 for float64 parameters),
            "float32", "float64" or "bfloat16", or the torch dtype (``torch.bfloat16``); ignored by "svd".
        weight_decay: lambda >= 0 (decoupled: W <- (1 - eta_t lambda) W).
        adjust_lr: "original" (sqrt(max(1, m/n)), Jordan et al.), "match_rms_adamw" (0.2 sqrt(max(m, n)), Liu et
            al., 2025) or ``None`` (no adjustment).
        betas: (beta1, beta2) of the AdamW rule in ``use_muon=False`` groups, each in [0, 1).
        eps: AdamW's epsilon (added to sqrt(vbar)) in ``use_muon=False`` groups, >= 0. Not ``torch.optim.Muon``'s
            ``eps``, which guards its Newton-Schulz normalization: adaptim's normalization needs no epsilon.
        adjust_lr_fn: ``torch.optim.Muon``'s name for ``adjust_lr``, with its meaning: ``None`` or "original" is
            "original", "match_rms_adamw" is "match_rms_adamw" (sets ``adjust_lr``).
        process_group: a ``torch.distributed`` process group to share the work over (each parameter's update
            computed by one owner rank, one all-gather per step: :mod:`adaptim.distributed.owner`); ``None``
            (default): every rank computes everything, as without torch.distributed.
        communication_dtype: the dtype of that all-gather (``None``: each parameter's own; a narrower one
            sends the rounded changes).
        maximize: ascend instead of descend.
        foreach: batched path (``None``: yes; fused Newton-Schulz steps) or the literal per-parameter loop (the
            reference); they agree to rounding (float32: about 1e-6 relative in the direction).

    Raises:
        ValueError: a hyperparameter out of range (``ns_dtype`` not one of the values above); a tensor with fewer
            than 2 dimensions in a Muon group (the message says to put it in a ``use_muon=False`` group).
        TypeError: complex or sparse parameters.
        RuntimeError: at ``step``, a NaN or infinite gradient (checked before anything changes; with
            ``check_finite = False`` Newton-Schulz still refuses a non-finite momentum), or lr * weight_decay >= 1
            (nothing is changed then).
    """

    weight_decay_kind = WeightDecay.DECOUPLED

    supports_complex = False
    torch_names = ("adjust_lr_fn",)

    def __init__(
        self,
        params,
        lr: float = 0.02,
        *,  # keyword-only: torch.optim.Muon's third positional argument is weight_decay, not momentum
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: str | tuple = "jordan",
        ns_steps: int = 5,
        orthogonalize: str = "newton_schulz",
        ns_dtype: str | torch.dtype | None = None,
        weight_decay: float = 0.0,
        adjust_lr: str | None = "original",
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        maximize: bool = False,
        foreach: bool | None = None,
        adjust_lr_fn: str | None = NOT_GIVEN,
        process_group: Any = None,
        communication_dtype: torch.dtype | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            ns_coefficients=ns_coefficients,
            ns_steps=ns_steps,
            orthogonalize=orthogonalize,
            ns_dtype=ns_dtype,
            weight_decay=weight_decay,
            adjust_lr=adjust_lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            eps=eps,
            use_muon=True,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(
            params,
            self._with_torch_names(defaults, dict(adjust_lr_fn=adjust_lr_fn)),
            process_group=process_group,
            communication_dtype=communication_dtype,
        )

    def _from_torch(self, entries, given, explicit, fallback) -> None:
        if "adjust_lr_fn" in given:
            fn = given.pop("adjust_lr_fn")
            if fn not in (None, "original", "match_rms_adamw"):
                raise ValueError(
                    f"adjust_lr_fn must be None, 'original' or 'match_rms_adamw' (torch.optim.Muon's "
                    f"values), got {fn!r}"
                )
            # torch's None is "original"; adaptim's adjust_lr=None (no adjustment) has no adjust_lr_fn spelling
            self._set_alias(entries, explicit, f"adjust_lr_fn={fn!r}", "adjust_lr", fn or "original")
        super()._from_torch(entries, given, explicit, fallback)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_range("weight_decay", group["weight_decay"], 0.0)
        check_bool("use_muon", group["use_muon"])
        # validated in every group (a Muon group may later be joined by an AdamW one using the defaults)
        check_betas(group["betas"])
        check_range("eps", group["eps"], 0.0)
        if not group["use_muon"]:
            return
        check_range("momentum", group["momentum"], 0.0, 1.0, high_open=True)
        try:
            coeffs = resolve_ns_coefficients(group["ns_coefficients"])
        except ValueError as err:  # name the argument as the user spelled it
            raise ValueError(f"ns_coefficients: {err}") from None
        check_int("ns_steps", group["ns_steps"], 1)
        check_choice("orthogonalize", group["orthogonalize"], ("newton_schulz", "svd"))
        resolve_ns_dtype(group["ns_dtype"])  # ValueError naming ns_dtype
        if group["orthogonalize"] == "newton_schulz":
            check_ns_bounded(tuple(coeffs), group["ns_steps"])
        check_choice("adjust_lr", group["adjust_lr"], ADJUST_LR)
        for p in group["params"]:
            if p.dim() < 2:
                raise ValueError(
                    f"Muon orthogonalizes matrices, got a parameter of shape {tuple(p.shape)} in a Muon group; "
                    "put vectors and scalars (biases, norm gains) in a parameter group with use_muon=False, "
                    "which is updated by AdamW (adaptim.muon_param_groups(model) builds the split)"
                )

    def _work_cost(self, p: torch.Tensor, group: dict[str, Any]) -> float:
        if not group["use_muon"]:
            return float(p.numel())  # the AdamW side is elementwise
        m, n = matrix_view_shape(p.shape)
        return float(m * n * min(m, n))  # Newton-Schulz (or SVD) on the m x n view

    def _decay_factor(self, group: dict[str, Any]) -> float:
        return group["lr"] * group["weight_decay"]  # both sides: (1 - lr wd) W, as torch.optim.Muon and AdamW

    statistics_elementwise = True  # the AdamW side's v

    def _needs_exact_squares(self, group: dict[str, Any]) -> bool:
        return not group["use_muon"] and group["eps"] == 0  # the AdamW side's mbar / sqrt(vbar)

    def _squares_gradients(self, group: dict[str, Any]) -> bool:
        return not group["use_muon"]  # the AdamW side keeps g^2; Newton-Schulz is scale-free

    def _runs_on_shards(self, group: dict[str, Any]) -> bool:
        """On DTensor (FSDP2) parameters every group steps the local shards (:mod:`adaptim.distributed.dtensor`):
        the AdamW side and the momentum are elementwise (no collective); the update is gathered whole for
        Newton-Schulz (one all-gather per sharded matrix) and each rank keeps its chunk of the direction."""
        euclidean = type(self)._final_step is AdaptimOptimizer._final_step  # a retraction needs whole matrices
        return euclidean and group.get("manifold") is None

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        if group["use_muon"]:
            return {"momentum_buffer": torch.zeros_like(p)}
        return {"step": self.new_step(), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}

    def _update_group(self, group, params, grads, states) -> None:
        lr = group["lr"]
        if not group["use_muon"]:
            beta1, beta2 = group["betas"]
            fn = adam_direction_foreach if self.use_foreach(group) else adam_direction_single
            directions = fn(
                params,
                grads,
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                None,
                self.step_counts(states),
                beta1=beta1,
                beta2=beta2,
                eps=group["eps"],
            )
            self._final_step(group, params, directions, lr, self._decay_factor(group))  # AdamW's lambda_t
            return
        batched = self.use_foreach(group)
        updates = muon_momentum_(
            grads,
            [s["momentum_buffer"] for s in states],
            momentum=group["momentum"],
            nesterov=group["nesterov"],
            foreach=batched,
        )
        from adaptim.distributed.dtensor import owner_compute, sharded_like  # (a layer above optim)

        def orthogonalize(whole: list[torch.Tensor]) -> list[torch.Tensor]:
            return muon_directions(
                whole,
                adjust_lr=group["adjust_lr"],
                ns_coefficients=group["ns_coefficients"],
                ns_steps=group["ns_steps"],
                orthogonalize=group["orthogonalize"],
                batched=batched,
                ns_dtype=group["ns_dtype"],
            )

        like = sharded_like(self)  # DTensor parameters: these are local shards; each matrix is orthogonalized whole
        if like is None:
            directions = orthogonalize(updates)
        else:  # once, by its owner rank; Newton-Schulz costs ~ m n min(m, n)
            directions = owner_compute(
                updates, like, orthogonalize, lambda s: math.prod(s) * min(s[0], math.prod(s[1:]))
            )
        self._final_step(group, params, directions, lr, self._decay_factor(group))


def _named_modules(model: nn.Module, spec) -> list[nn.Module]:
    """Modules named by ``spec``: a module, a qualified name, or an iterable of them."""
    if spec is None:
        return []
    items = [spec] if isinstance(spec, (nn.Module, str)) else list(spec)
    names = dict(model.named_modules())
    out = []
    for item in items:
        if isinstance(item, nn.Module):
            out.append(item)
        elif isinstance(item, str) and item in names:
            out.append(names[item])
        else:
            raise ValueError(f"head must be a module of the model, its qualified name, or a list of them; got {item!r}")
    return out


def muon_param_groups(
    model: nn.Module,
    head: nn.Module | str | Iterable | None = None,
    adamw_lr: float = 3e-4,
    adamw_betas: tuple[float, float] = (0.9, 0.95),
    adamw_eps: float = 1e-8,
    adamw_weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Split a model's parameters into a Muon group and an AdamW group (``use_muon=False``), the usual way.

    Muon takes the hidden matrices: every trainable parameter with at least 2 dimensions, except those of
    embeddings (``nn.Embedding``, ``nn.EmbeddingBag``) and of the output head. AdamW takes the rest: embeddings, the
    head, biases, norm gains and other vectors and scalars. The head is ``head`` when given (a module, its qualified
    name in ``model.named_modules()``, or a list of them), else the last ``nn.Linear`` with a trainable weight
    registered in the model. A
    parameter shared by several modules (tied embeddings) is listed once; frozen parameters are left out.

    Args:
        model: the network.
        head: the output module(s) whose parameters go to AdamW (default: the last trainable ``nn.Linear``).
        adamw_lr, adamw_betas, adamw_eps, adamw_weight_decay: the AdamW group's ``lr``, ``betas``, ``eps`` and
            ``weight_decay`` (defaults as in Jordan et al.'s auxiliary Adam: lr 3e-4, betas (0.9, 0.95)).

    Returns:
        A list of param-group dicts for :class:`Muon`: ``{"params": [...], "use_muon": True}`` and
        ``{"params": [...], "use_muon": False, "lr": ..., ...}``; an empty group is omitted.

    Raises:
        ValueError: ``head`` names no module of the model.
    """
    heads = _named_modules(model, head)
    if head is None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m.weight.requires_grad]
        heads = linears[-1:]
    excluded: set[int] = set()
    for m in heads + [m for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]:
        excluded.update(id(p) for p in m.parameters())
    muon, adamw = [], []
    for p in model.parameters():  # deduplicated by torch
        if not p.requires_grad:
            continue
        (muon if p.dim() >= 2 and id(p) not in excluded else adamw).append(p)
    groups = []
    if muon:
        groups.append({"params": muon, "use_muon": True})
    if adamw:
        groups.append(
            {
                "params": adamw,
                "use_muon": False,
                "lr": adamw_lr,
                "betas": tuple(adamw_betas),
                "eps": adamw_eps,
                "weight_decay": adamw_weight_decay,
            }
        )
    return groups
