"""``create_optimizer``: an optimizer by name (or class) for a model, with the usual parameter groups.

:data:`NAMED_OPTIMIZERS` is the one table of optimizer names: each maps to an adaptim class and the keyword
arguments the name stands for (``"sgd_nesterov"`` is ``SGD(momentum=0.9, nesterov=True)``). ``adaptim list``
prints it, ``adaptim bench`` runs it (:mod:`adaptim.bench.registry` adds only the tuned learning rates), and
:func:`create_optimizer` builds from it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from adaptim.optim.adafactor import Adafactor
from adaptim.optim.adagrad import AdaGrad, AdaGradNorm, FullMatrixAdaGrad
from adaptim.optim.adam import Adam, AdamAtan2, AdamW
from adaptim.optim.adam_nmf import AdamNMF
from adaptim.optim.low_precision import check_low_precision
from adaptim.optim.muon import Muon, muon_param_groups
from adaptim.optim.rmsprop import RMSProp
from adaptim.optim.sgd import SGD
from adaptim.optim.shampoo import IdealizedShampoo, Shampoo
from adaptim.optim.steepest import Steepest

__all__ = ["NamedOptimizer", "NAMED_OPTIMIZERS", "create_optimizer", "list_optimizers"]


@dataclass(frozen=True)
class NamedOptimizer:
    """One entry of :data:`NAMED_OPTIMIZERS`.

    Attributes:
        name: the name :func:`create_optimizer`, ``adaptim list`` and ``adaptim bench`` use.
        cls: the optimizer class.
        kwargs: the keyword arguments the name stands for (read-only; an explicit argument overrides them).
        description: one line for ``adaptim list`` and the docs.
    """

    name: str
    cls: type[torch.optim.Optimizer]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kwargs", MappingProxyType(dict(self.kwargs)))


def _table(*entries: NamedOptimizer) -> dict[str, NamedOptimizer]:
    return {e.name: e for e in entries}


#: every optimizer name, in the order ``adaptim list`` prints and ``adaptim bench`` runs them
NAMED_OPTIMIZERS: dict[str, NamedOptimizer] = _table(
    NamedOptimizer("sgd", SGD, {}, "SGD (21), no momentum"),
    NamedOptimizer(
        "sgd_nesterov", SGD, dict(momentum=0.9, nesterov=True), "SGD with Nesterov momentum 0.9 (Section 2.3.1)"
    ),
    NamedOptimizer("adagrad", AdaGrad, {}, "diagonal AdaGrad (44)"),
    NamedOptimizer("adagrad_norm", AdaGradNorm, {}, "AdaGrad-Norm, one scalar step per group (33)"),
    NamedOptimizer(
        "full_matrix_adagrad",
        FullMatrixAdaGrad,
        {},
        "full-matrix AdaGrad (Section 3.2.1), parameters of at most 1024 entries",
    ),
    NamedOptimizer("rmsprop", RMSProp, {}, "RMSProp with momentum (45), betas (0.9, 0.999)"),
    NamedOptimizer("adam", Adam, {}, "Adam (46)"),
    NamedOptimizer("adamw", AdamW, dict(weight_decay=0.01), "AdamW (Figure 1), weight decay 0.01"),
    NamedOptimizer("adam_atan2", AdamAtan2, dict(weight_decay=0.01), "Adam-atan2 (Section 4.1.2), weight decay 0.01"),
    # an explicit lr selects the 4.7.1 form with that lr (relative_step=False), see create_optimizer
    NamedOptimizer(
        "adafactor",
        Adafactor,
        {},
        "Adafactor as in 4.7.1: factored (52), no first moment, update RMS clipped to 1, step x RMS(W), "
        "beta2_t = 1 - t^-0.8; the relative step min(1e-2, 1/sqrt(t)), or the lr when one is given",
    ),
    # the box of L.2; with beta1 > 0 the ratio m_t / sqrt(A_t B_t) blows up where the current gradient is small
    NamedOptimizer("adam_nmf", AdamNMF, dict(rank=1, beta1=0.0), "AdamNMF (Appendix L.2), rank 1, beta1 = 0"),
    # roots every 10 steps: every step would make a charlm run of the bench about 60% (9 s) longer
    NamedOptimizer(
        "shampoo",
        Shampoo,
        dict(beta2=0.999, momentum=0.9, grafting="adam", precondition_frequency=10, start_preconditioning_step=10),
        "Shampoo (53) with the EMA of 5.1 (beta2 0.999), Adam grafting, heavy-ball momentum 0.9, "
        "roots every 10 steps from step 10",
    ),
    NamedOptimizer(
        "idealized_shampoo",
        IdealizedShampoo,
        dict(beta2=0.999),
        "IdealizedShampooIteration (6.2.1), beta2 0.999, roots every step",
    ),
    # "match_rms_adamw" scales Muon's update to AdamW's RMS (about 0.2 lr; Liu et al., 2025), so both sides share lr
    NamedOptimizer(
        "muon",
        Muon,
        dict(adjust_lr="match_rms_adamw"),
        "Muon (Section 7) on the hidden matrices, update RMS matched to AdamW; AdamW (same lr) on "
        "embeddings, head and vectors",
    ),
    # every tensor, vectors as (n, 1) columns (a normalized-gradient step); no AdamW side, unlike Muon
    NamedOptimizer(
        "steepest_spectral",
        Steepest,
        dict(norm="spectral", rule="trust_region", momentum=0.9),
        "steepest descent under the spectral norm (67), (69): -lr U V^T of the momentum EMA",
    ),
)


def list_optimizers() -> list[str]:
    """The names :func:`create_optimizer` accepts, in the order of :data:`NAMED_OPTIMIZERS`."""
    return list(NAMED_OPTIMIZERS)


# ------------------------------------------------------------------------------------------------ decay groups
_NORM_TYPES = tuple(
    t
    for t in (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, getattr(nn, "RMSNorm", None))
    if t is not None
)
_NORM_NAME = re.compile(r"Norm(\d+d)?$")  # user-defined norms: RMSNorm, ScaleNorm, ...


def _norm_param_ids(model: nn.Module) -> set[int]:
    ids: set[int] = set()
    for m in model.modules():
        if isinstance(m, _NORM_TYPES) or _NORM_NAME.search(type(m).__name__):
            ids.update(id(p) for p in m.parameters(recurse=False))
    return ids


def _split_decay(params: list[torch.Tensor], norm_ids: set[int]) -> tuple[list, list]:
    decay = [p for p in params if p.ndim > 1 and id(p) not in norm_ids]
    kept = {id(p) for p in decay}
    return decay, [p for p in params if id(p) not in kept]


# ---------------------------------------------------------------------------------------------------- factory
def _signature_default(fn: Any, name: str) -> Any:
    param = inspect.signature(fn).parameters.get(name)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def _accepts(cls: type, name: str) -> bool:
    params = inspect.signature(cls).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _resolve(name_or_class: str | type) -> tuple[type, dict[str, Any]]:
    if isinstance(name_or_class, str):
        entry = NAMED_OPTIMIZERS.get(name_or_class.strip().lower())
        if entry is None:
            raise ValueError(
                f"unknown optimizer name {name_or_class!r}; valid names: "
                f"{', '.join(NAMED_OPTIMIZERS)} (or pass an optimizer class)"
            )
        return entry.cls, dict(entry.kwargs)
    if isinstance(name_or_class, type) and issubclass(name_or_class, torch.optim.Optimizer):
        return name_or_class, {}
    raise TypeError(
        f"name_or_class must be an optimizer name ({', '.join(NAMED_OPTIMIZERS)}) or a "
        f"torch.optim.Optimizer subclass such as adaptim.AdamW, got {name_or_class!r}"
    )


def _with_low_precision(cls: type, mode: str) -> Any:
    """``cls``, building with ``low_precision = mode`` in every group (unless the group sets it) and defaults."""
    check_low_precision(mode)

    def build(params: Any, **options: Any) -> torch.optim.Optimizer:
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        if not params:
            return cls(params, **options)  # torch's refusal of an empty parameter list
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        opt = cls([{"low_precision": mode, **g} for g in params], **options)
        opt.defaults["low_precision"] = mode
        return opt

    return build


def create_optimizer(
    name_or_class: str | type[torch.optim.Optimizer],
    model_or_params: nn.Module | Iterable,
    lr: float | None = None,
    weight_decay: float | None = None,
    filter_bias_and_bn: bool = True,
    low_precision: str | None = None,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """Build an optimizer by name or class, for a model (with the usual parameter groups) or for given params.

    In the manner of timm's ``create_optimizer_v2``. From a model, the trainable parameters are grouped:

    * **No weight decay on biases and norms** (when the weight decay in force is > 0 and ``filter_bias_and_bn``):
      parameters with at most one dimension and the parameters of normalization layers get ``weight_decay=0``
      (``nn.BatchNorm*``, ``nn.InstanceNorm*``, ``nn.LayerNorm``, ``nn.GroupNorm``, ``nn.RMSNorm`` and any module
      class whose name ends in ``Norm``); the others get ``weight_decay``. With no weight decay in force the
      parameters stay in one group, so the optimizer is exactly ``cls(trainable_params, ...)``.
    * **Muon** (:class:`adaptim.Muon` and subclasses): the split of :func:`adaptim.muon_param_groups` (hidden
      matrices to Muon, embeddings, the output head and vectors to its AdamW side), the no-decay rule applied on
      the AdamW side. The AdamW side takes ``adamw_lr`` when given; else, with ``adjust_lr="match_rms_adamw"``
      (which scales Muon's step to AdamW's RMS) the same lr as Muon, otherwise ``muon_param_groups``' 3e-4.
      Its betas and eps are Muon's ``betas`` and ``eps``. So ``create_optimizer(adaptim.Muon, model)`` is
      ``Muon(muon_param_groups(model))``.
    * Frozen parameters (``requires_grad=False``) are left out.

    Parameters given as an iterable (tensors or param-group dicts) are passed to the class as they are.

    Examples::

        opt = adaptim.create_optimizer("adamw", model, lr=3e-4, weight_decay=0.05)  # biases, norms: no decay
        opt = adaptim.create_optimizer(adaptim.Shampoo, model)                     # the class's defaults
        opt = adaptim.create_optimizer("muon", model, lr=0.02)                     # Muon + AdamW, one lr
        opt = adaptim.create_optimizer("sgd_nesterov", model.parameters(), lr=0.1)

    Args:
        name_or_class: a name of :data:`NAMED_OPTIMIZERS` (as ``adaptim list`` prints it; case-insensitive),
            which stands for a class and preset keyword arguments, or a ``torch.optim.Optimizer`` subclass
            (used with its own defaults).
        model_or_params: an ``nn.Module``, or an iterable of tensors or param-group dicts.
        lr: the learning rate; ``None`` keeps the class's default. For :class:`adaptim.Adafactor` a given lr
            also sets ``relative_step=False`` (unless ``relative_step`` is passed), as timm does: the lr is then
            the step size rho_t itself (with ``relative_step=True`` it would be the cap of min(lr, 1/sqrt(t))).
        weight_decay: the decay coefficient; ``None`` keeps the name's preset or the class's default (AdamW's
            0.01). A nonzero value for a class without weight decay is refused.
        filter_bias_and_bn: exempt biases and normalization parameters from weight decay (models only).
        low_precision: how bfloat16/float16 parameters are written back after each step (the group entry of
            :mod:`adaptim.optim.low_precision`): ``"nearest"``, ``"stochastic"`` or ``"kahan"``, set on every
            param group (a group's own entry wins) and as the default of groups added later; ``None`` sets
            nothing (round to nearest).
        **kwargs: further keyword arguments of the class (they override the name's presets); ``adamw_lr``
            for Muon (above).

    Returns:
        The optimizer, an instance of the class.

    Raises:
        ValueError: an unknown name (the message lists the valid ones), a nonzero ``weight_decay`` for a class
            that has none, a ``low_precision`` other than the three above, or whatever the class raises for a
            hyperparameter out of its range.
        TypeError: ``name_or_class`` is neither a name nor an optimizer class, or a keyword argument the class
            does not take (the class's own error).
    """
    cls, options = _resolve(name_or_class)
    options.update(kwargs)
    build = cls if low_precision is None else _with_low_precision(cls, low_precision)
    if lr is not None:
        options["lr"] = lr
        if issubclass(cls, Adafactor):
            options.setdefault("relative_step", False)
    if weight_decay is not None:
        if _accepts(cls, "weight_decay"):
            options["weight_decay"] = weight_decay
        elif weight_decay != 0:
            raise ValueError(
                f"{cls.__name__} has no weight decay, got weight_decay={weight_decay!r}; pass weight_decay=None (or 0)"
            )
    adamw_lr = options.pop("adamw_lr", None) if issubclass(cls, Muon) else None
    if not isinstance(model_or_params, nn.Module):
        if adamw_lr is not None:
            raise ValueError(
                "adamw_lr sets the AdamW side of the Muon split of a model; with parameters given "
                "as groups, set the lr of the use_muon=False group instead"
            )
        return build(model_or_params, **options)

    model = model_or_params
    decay = options.get("weight_decay", _signature_default(cls, "weight_decay"))
    split = filter_bias_and_bn and isinstance(decay, (int, float)) and not isinstance(decay, bool) and decay > 0
    norm_ids = _norm_param_ids(model) if split else set()

    def groups(params: list[torch.Tensor], **extra: Any) -> list[dict[str, Any]]:
        if not split:
            return [{"params": params, **extra}] if params else []
        on, off = _split_decay(params, norm_ids)
        return [g for g in ({"params": on, **extra}, {"params": off, "weight_decay": 0.0, **extra}) if g["params"]]

    if issubclass(cls, Muon):
        muon, adamw = [], []
        for g in muon_param_groups(model):
            (muon if g["use_muon"] else adamw).extend(g["params"])
        if adamw_lr is None and options.get("adjust_lr", _signature_default(cls, "adjust_lr")) != "match_rms_adamw":
            adamw_lr = _signature_default(muon_param_groups, "adamw_lr")
        side = {"use_muon": False} if adamw_lr is None else {"use_muon": False, "lr": adamw_lr}
        param_groups = ([{"params": muon, "use_muon": True}] if muon else []) + groups(adamw, **side)
        return build(param_groups, **options)

    params = [p for p in model.parameters() if p.requires_grad]
    if not split:
        return build(params, **options)
    return build(groups(params), **options)
