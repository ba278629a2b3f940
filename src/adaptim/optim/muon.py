"""Muon (Section 7, Appendix Q.3.1) with an AdamW side for the parameters it should not take, and the usual split."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional, Union

import torch
from torch import nn

from adaptim.functional import adam_foreach, adam_single
from adaptim.functional.muon import ADJUST_LR, muon_batched, muon_single
from adaptim.linalg.newton_schulz import resolve_ns_coefficients
from adaptim.optim.base import NOT_GIVEN, AdaptimOptimizer, check_betas, check_range

__all__ = ["Muon", "muon_param_groups"]


def _check_ns_bounded(coeffs: tuple[float, ...], steps: int) -> None:
    """Refuse coefficients whose scalar map (147), iterated ``steps`` times, leaves [-2, 2] on [0, 1].

    Newton-Schulz acts on each normalized singular value x in [0, 1] by phi(x) = sum_i c_i x^(2i-1); a map that
    blows up there would give inf or huge parameters without any error.
    """
    x = torch.linspace(0.0, 1.0, 2001, dtype=torch.float64)
    for _ in range(steps):
        x = sum(c * x ** (2 * i + 1) for i, c in enumerate(coeffs))
        if not bool(torch.isfinite(x).all()) or float(x.abs().max()) > 2.0:
            raise ValueError(f"ns_coefficients {tuple(coeffs)} with ns_steps={steps} do not keep singular values "
                             "bounded: iterated on [0, 1] the polynomial leaves [-2, 2]; use 'jordan', 'cubic', "
                             "'quintic' or coefficients from adaptim.linalg.newton_schulz_coefficients")


class Muon(AdaptimOptimizer):
    """Muon: momentum, then the update orthogonalized (Section 7's spectral-norm steepest direction U V^T).

    For each matrix W of a Muon group (``use_muon=True``, the default), with gradient G_t::

        M_t = mu M_{t-1} + (1 - mu) G_t,                      M_0 = 0        (EMA, as torch.optim.Muon)
        N_t = (1 - mu) G_t + mu M_t  (nesterov)   or   M_t
        W  <- (1 - eta_t lambda) W - eta_t a(m, n) NS(N_t)

    where NS is Newton-Schulz (147) on N_t / ||N_t||_F (or the exact U V^T with ``orthogonalize="svd"``) and
    a(m, n) the ``adjust_lr`` ratio. Momentum convention: the EMA differs from Jordan et al.'s sum
    M_t = mu M_{t-1} + G_t by the constant factor 1 - mu, which the orthogonalization removes, so both give the same
    steps. A zero gradient leaves M at 0 (the EMA of zeros), so the step after an all-zero first gradient is a fresh
    optimizer's first step. Weight decay is decoupled and uses the unadjusted lr, exactly as ``torch.optim.Muon``:
    W <- (1 - eta_t lambda) W. Tensors with more than two dimensions (convolution weights (out, in, kh, kw)) are
    orthogonalized as their (out, in*kh*kw) flattening and reshaped back; a(m, n) uses that flattened shape.

    Matrices of one (flattened) shape in a group are orthogonalized together by one batched Newton-Schulz call.

    Parameters that are not hidden matrices (embeddings, the output head, biases, norm gains) belong in a group
    with ``use_muon=False``; such a group is updated by AdamW (Figure 1, ``torch.optim.AdamW``'s rule, decay
    eta_t * weight_decay) with the group's own ``lr``, ``betas``, ``eps`` and ``weight_decay`` (defaults: the
    constructor's). :func:`muon_param_groups` builds the usual split.

    Args:
        params: tensors or param groups. Tensors in a Muon group need at least 2 dimensions; float16/bfloat16 are
            updated through a float32 copy with float32 momentum. Complex parameters are refused.
        lr: eta (Muon groups: size of the orthogonalized step, in parameter units, before ``adjust_lr``), >= 0.
        momentum: mu in [0, 1).
        nesterov: use the Nesterov form N_t above.
        ns_coefficients: "jordan" (3.4445, -4.7750, 2.0315), "cubic", "quintic" or a tuple (c_1, ..., c_P).
        ns_steps: Newton-Schulz iterations, an int >= 1.
        orthogonalize: "newton_schulz" or "svd" (exact U V^T, slower; for reference and small models).
        weight_decay: lambda >= 0 (decoupled, see above).
        adjust_lr: "original" (sqrt(max(1, m/n)), Jordan et al.), "match_rms_adamw" (0.2 sqrt(max(m, n)), Liu et
            al., 2025) or ``None`` (no adjustment). Note: ``torch.optim.Muon``'s ``adjust_lr_fn=None`` means
            "original"; here ``None`` means no adjustment.
        betas: (beta1, beta2) of the AdamW rule in ``use_muon=False`` groups, each in [0, 1).
        eps: AdamW's epsilon (added to sqrt(vbar)) in ``use_muon=False`` groups, >= 0. Not ``torch.optim.Muon``'s
            ``eps``, which guards its Newton-Schulz normalization: adaptim's normalization needs no epsilon.
        adjust_lr_fn: ``torch.optim.Muon``'s name for ``adjust_lr``, with its meaning: ``None`` or "original" is
            "original", "match_rms_adamw" is "match_rms_adamw" (sets ``adjust_lr``).
        maximize: ascend instead of descend.
        foreach: batched path (``None``: yes) or the literal per-parameter loop; they agree to rounding (batched
            and single matrix products may round differently).

    Raises:
        ValueError: a hyperparameter out of range; a tensor with fewer than 2 dimensions in a Muon group (the message
            says to put it in a ``use_muon=False`` group).
        TypeError: complex or sparse parameters.
        RuntimeError: a NaN or infinite gradient (checked before anything changes; with ``check_finite = False``
            Newton-Schulz still refuses a non-finite momentum).
    """

    supports_complex = False
    torch_names = ("adjust_lr_fn",)

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: Union[str, tuple] = "jordan", ns_steps: int = 5,
                 orthogonalize: str = "newton_schulz", weight_decay: float = 0.0,
                 adjust_lr: Optional[str] = "original", betas: tuple[float, float] = (0.9, 0.95),
                 eps: float = 1e-8, maximize: bool = False, foreach: Optional[bool] = None, *,
                 adjust_lr_fn: Optional[str] = NOT_GIVEN) -> None:
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_coefficients=ns_coefficients,
                        ns_steps=ns_steps, orthogonalize=orthogonalize, weight_decay=weight_decay,
                        adjust_lr=adjust_lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        use_muon=True, maximize=maximize,
                        foreach=foreach)
        super().__init__(params, self._with_torch_names(defaults, dict(adjust_lr_fn=adjust_lr_fn)))

    def _from_torch(self, entries, given, explicit, fallback) -> None:
        if "adjust_lr_fn" in given:
            fn = given.pop("adjust_lr_fn")
            if fn not in (None, "original", "match_rms_adamw"):
                raise ValueError(f"adjust_lr_fn must be None, 'original' or 'match_rms_adamw' (torch.optim.Muon's "
                                 f"values), got {fn!r}")
            # torch's None is "original"; adaptim's adjust_lr=None (no adjustment) has no adjust_lr_fn spelling
            self._set_alias(entries, explicit, f"adjust_lr_fn={fn!r}", "adjust_lr", fn or "original")
        super()._from_torch(entries, given, explicit, fallback)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_range("weight_decay", group["weight_decay"], 0.0)
        if not isinstance(group["use_muon"], bool):
            raise ValueError(f"use_muon must be True or False, got {group['use_muon']!r}")
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
        steps = group["ns_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"ns_steps must be an int >= 1, got {steps!r}")
        if group["orthogonalize"] == "newton_schulz":
            _check_ns_bounded(coeffs, steps)
        if group["orthogonalize"] not in ("newton_schulz", "svd"):
            raise ValueError(f"orthogonalize must be 'newton_schulz' or 'svd', got {group['orthogonalize']!r}")
        if group["adjust_lr"] not in ADJUST_LR:
            raise ValueError(f"adjust_lr must be one of {ADJUST_LR}, got {group['adjust_lr']!r}")
        for p in group["params"]:
            if p.dim() < 2:
                raise ValueError(
                    f"Muon orthogonalizes matrices, got a parameter of shape {tuple(p.shape)} in a Muon group; "
                    "put vectors and scalars (biases, norm gains) in a parameter group with use_muon=False, "
                    "which is updated by AdamW (adaptim.muon_param_groups(model) builds the split)")

    def _squares_gradients(self, group: dict[str, Any]) -> bool:
        return not group["use_muon"]  # the AdamW side keeps g^2; Newton-Schulz is scale-free

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        if group["use_muon"]:
            return {"momentum_buffer": torch.zeros_like(p)}
        return {"step": self.new_step(), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}

    def _update_group(self, group, params, grads, states) -> None:
        lr = group["lr"]
        if not group["use_muon"]:
            beta1, beta2 = group["betas"]
            fn = adam_foreach if self.use_foreach(group) else adam_single
            fn(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], None,
               self.step_counts(states), lr=lr, beta1=beta1, beta2=beta2, eps=group["eps"],
               decay=lr * group["weight_decay"])
            return
        fn = muon_batched if self.use_foreach(group) else muon_single
        fn(params, grads, [s["momentum_buffer"] for s in states], lr=lr, momentum=group["momentum"],
           nesterov=group["nesterov"], weight_decay=group["weight_decay"], adjust_lr=group["adjust_lr"],
           ns_coefficients=group["ns_coefficients"], ns_steps=group["ns_steps"],
           orthogonalize=group["orthogonalize"])


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
            raise ValueError(f"head must be a module of the model, its qualified name, or a list of them; "
                             f"got {item!r}")
    return out


def muon_param_groups(model: nn.Module, head: Union[nn.Module, str, Iterable, None] = None,
                      adamw_lr: float = 3e-4, adamw_betas: tuple[float, float] = (0.9, 0.95),
                      adamw_eps: float = 1e-8, adamw_weight_decay: float = 0.0) -> list[dict[str, Any]]:
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
        groups.append({"params": adamw, "use_muon": False, "lr": adamw_lr, "betas": tuple(adamw_betas),
                       "eps": adamw_eps, "weight_decay": adamw_weight_decay})
    return groups
