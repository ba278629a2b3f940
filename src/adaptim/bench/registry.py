"""Named optimizer configurations of the bench, the hyperparameters each takes, and the tuned values per task.

An entry is an :class:`OptimizerSpec`: a name, a ``build(model, lr, **kwargs)`` factory, the learning rate per
task used where no tuned entry exists, and the hyperparameters of the protocol it takes
(:meth:`OptimizerSpec.build_with`). The built-in entries are the names of
:data:`adaptim.optim.factory.NAMED_OPTIMIZERS` (the one table of names, classes and configurations), built by
:func:`adaptim.create_optimizer` (:func:`from_name`), so that each takes the model's parameter groups from it
(Muon's split; no weight decay on biases and norms where an entry decays); this module adds the hyperparameters.
Another entry may wrap a class with fixed keyword arguments (:func:`from_class`) or pass any callable taking
``(model, lr)``. Add an entry with :func:`register`.

Every run takes ``hparams = {"lr", "beta2", "weight_decay", "warmup_fraction"}`` (:mod:`adaptim.bench.protocol`).
``beta2`` is the method's own second-moment decay (Adam-likes' and RMSProp's ``betas[1]``, Shampoo's ``beta2``
with its Adam grafting's ``grafting_beta2``, Adafactor's constant ``beta2`` in place of its 1 - t^-0.8 schedule,
Muon's AdamW side ``betas[1]``); ``None`` for a method without one (SGD, AdaGrad, AdamNMF, steepest descent).
``weight_decay`` is tuned only where the method decays decoupled from the gradient (AdamW, Adam-atan2,
Adafactor, AdamNMF, Shampoo, Muon: each shrinks W by lr_t x weight_decay per step); ``None`` elsewhere (the
names ``sgd``, ``adam``, ``rmsprop``, ... stand for the methods without decay).

Tuned hyperparameters come from ``tuned.json`` in this package (written by :func:`adaptim.bench.protocol.write_tuned`
from ``adaptim bench --sweep``); a (task, optimizer) without an entry runs at the learning rate of ``lrs``
(the former lr-only sweep) with the method's default beta2 and weight decay, and is reported "untuned".
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import torch
from torch import nn

import adaptim
from adaptim.optim.factory import NAMED_OPTIMIZERS

__all__ = [
    "OptimizerSpec",
    "OPTIMIZERS",
    "register",
    "from_class",
    "from_name",
    "sweep_grid",
    "ladder",
    "ladder_index",
    "HPARAM_KEYS",
    "load_tuned",
]

Factory = Callable[..., torch.optim.Optimizer]

#: the hyperparameters every run takes, in this order
HPARAM_KEYS = ("lr", "beta2", "weight_decay", "warmup_fraction")


@dataclass(frozen=True)
class OptimizerSpec:
    """One named optimizer configuration.

    Attributes:
        name: the name used on the command line.
        build: ``build(model, lr, **kwargs) -> torch.optim.Optimizer`` (``kwargs`` from :attr:`hparam_kwargs`;
            an entry without hyperparameters beyond the lr may take ``(model, lr)`` only); it may raise
            ``ValueError`` to refuse a model (the run is then reported as refused with the message as its reason).
        lrs: learning rate per task name where no tuned entry exists (the former lr-only sweep's choice).
        sweep_center: the center of the learning-rate range of the search (:mod:`adaptim.bench.protocol`) on a
            task missing from ``lrs``, and the rate used there untuned.
        description: one line for ``adaptim list`` and the docs.
        hparam_kwargs: ``hparam_kwargs(beta2, weight_decay) -> dict`` of keyword arguments of ``build``; ``None``:
            the entry takes neither (a custom factory), and both are ``None`` in its runs.
        beta2_default: the method's own second-moment decay when untuned (``None``: it has none, or a schedule).
        weight_decay_default: the decoupled decay when untuned (``None``: the entry does not decay decoupled).
        tunes_beta2, tunes_weight_decay: whether the search varies each (else it is ``None`` in every run).
    """

    name: str
    build: Factory
    lrs: dict[str, float] = field(default_factory=dict)
    sweep_center: float = 1e-3
    description: str = ""
    hparam_kwargs: Callable[[float | None, float | None], dict[str, Any]] | None = None
    beta2_default: float | None = None
    weight_decay_default: float | None = None
    tunes_beta2: bool = False
    tunes_weight_decay: bool = False

    def lr_for(self, task: str) -> float:
        """The untuned learning rate on ``task``: ``lrs[task]``, or ``sweep_center`` if it has none."""
        return self.lrs.get(task, self.sweep_center)

    def default_hparams(self, task: str, warmup_fraction: float) -> dict[str, Any]:
        """The untuned ``hparams`` on ``task``: :meth:`lr_for`, the method's defaults, the task's warm-up."""
        return {
            "lr": self.lr_for(task),
            "beta2": self.beta2_default if self.tunes_beta2 else None,
            "weight_decay": self.weight_decay_default if self.tunes_weight_decay else None,
            "warmup_fraction": warmup_fraction,
        }

    def build_with(self, model: nn.Module, hparams: dict[str, Any]) -> torch.optim.Optimizer:
        """Build the optimizer of ``model`` with ``hparams`` (its ``lr``, ``beta2`` and ``weight_decay``; the
        warm-up belongs to the schedule). A ``beta2`` or ``weight_decay`` of ``None`` keeps the method's own.

        Raises:
            ValueError: ``hparams`` sets ``beta2`` or ``weight_decay`` for an entry that has none (or does not
                take it), or the optimizer refuses the model or a value.
        """
        beta2, decay = hparams.get("beta2"), hparams.get("weight_decay")
        for key, value, takes in (("beta2", beta2, self.tunes_beta2), ("weight_decay", decay, self.tunes_weight_decay)):
            if value is not None and not takes:
                raise ValueError(f"optimizer {self.name!r} takes no {key}, got {key}={value!r}")
        if self.hparam_kwargs is None:
            return self.build(model, hparams["lr"])
        return self.build(model, hparams["lr"], **self.hparam_kwargs(beta2, decay))


def from_class(cls: type[torch.optim.Optimizer], **kwargs) -> Factory:
    """A factory building ``cls(model.parameters(), lr=lr, **kwargs)``."""

    def build(model: nn.Module, lr: float) -> torch.optim.Optimizer:
        return cls(model.parameters(), lr=lr, **kwargs)

    build.__qualname__ = f"from_class({cls.__name__})"
    return build


def from_name(name: str, **kwargs) -> Factory:
    """A factory building ``adaptim.create_optimizer(name, model, lr=lr, **kwargs, **more)`` (``name`` as ``adaptim
    list`` prints it: its class and configuration come from :data:`adaptim.optim.factory.NAMED_OPTIMIZERS`); ``more``
    are the call's own keyword arguments (the hyperparameters of a run)."""

    def build(model: nn.Module, lr: float, **more: Any) -> torch.optim.Optimizer:
        return adaptim.create_optimizer(name, model, lr=lr, **{**kwargs, **more})

    build.__qualname__ = f"from_name({name!r})"
    return build


def ladder(i: int) -> float:
    """The i-th rate of the sweep's ladder ..., 0.1, 0.3, 1, 3, 10, ...: 10**(i // 2) times 1 (i even) or 3 (odd)."""
    return float(f"{(1 if i % 2 == 0 else 3) * 10.0 ** (i // 2):.1g}")


def ladder_index(rate: float) -> int:
    """The index of the ladder rate nearest to ``rate`` (> 0) on a log scale."""
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate!r}")
    i = 2 * math.floor(math.log10(rate))
    return min(range(i - 1, i + 3), key=lambda j: abs(math.log10(ladder(j) / rate)))


def sweep_grid(center: float, half_width: int = 3) -> list[float]:
    """The ``2 half_width + 1`` ladder rates around ``center`` (1-3-10 steps, about half a decade apart).

    For example ``sweep_grid(3e-3)`` is [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1].
    """
    c = ladder_index(center)
    return [ladder(i) for i in range(c - half_width, c + half_width + 1)]


#: all registered configurations, in the order the bench runs and reports them
OPTIMIZERS: dict[str, OptimizerSpec] = {}


def register(spec: OptimizerSpec) -> OptimizerSpec:
    """Add ``spec`` to :data:`OPTIMIZERS` (a new name goes last).

    Raises:
        ValueError: the name is already registered, or is empty or contains a comma.
    """
    if not spec.name or "," in spec.name:
        raise ValueError(f"optimizer name must be non-empty without commas, got {spec.name!r}")
    if spec.name in OPTIMIZERS:
        raise ValueError(f"optimizer {spec.name!r} is already registered")
    OPTIMIZERS[spec.name] = spec
    return spec


# Learning rates: chosen by `adaptim bench --sweep`, see docs/bench.md ("Learning-rate sweep"). One entry per name
# of NAMED_OPTIMIZERS, whose table holds each name's class and configuration: (sweep center, rate per task).
_TUNED: dict[str, tuple[float, dict[str, float]]] = {
    "sgd": (0.1, {"digits": 1.0, "charlm": 0.3, "logreg": 30.0}),
    "sgd_nesterov": (0.03, {"digits": 0.3, "charlm": 0.1, "logreg": 10.0}),
    "adagrad": (0.03, {"digits": 0.1, "charlm": 0.01, "logreg": 10.0}),
    "adagrad_norm": (1.0, {"digits": 10.0, "charlm": 3.0, "logreg": 30.0}),
    # refuses the digits and charlm models (layers of more than 1024 entries)
    "full_matrix_adagrad": (1.0, {"logreg": 10.0}),
    "rmsprop": (1e-3, {"digits": 3e-3, "charlm": 3e-4, "logreg": 1.0}),
    "adam": (3e-3, {"digits": 0.01, "charlm": 1e-3, "logreg": 3.0}),
    "adamw": (3e-3, {"digits": 0.1, "charlm": 1e-3, "logreg": 3.0}),
    "adam_atan2": (3e-3, {"digits": 0.01, "charlm": 3e-3, "logreg": 3.0}),
    # Matrix-aware methods (Sections 4.7, 5, 6.2, 7, Appendix L.2); docs/bench.md ("Optimizers") explains each.
    "adafactor": (0.03, {"digits": 0.1, "charlm": 0.1, "logreg": 1.0}),
    "adam_nmf": (1e-3, {"digits": 0.01, "charlm": 3e-3, "logreg": 0.03}),
    "shampoo": (3e-4, {"digits": 1e-3, "charlm": 3e-4, "logreg": 0.3}),
    "idealized_shampoo": (0.01, {"digits": 0.01, "charlm": 3e-3, "logreg": 1.0}),
    "muon": (0.01, {"digits": 0.01, "charlm": 0.03, "logreg": 0.3}),
    "steepest_spectral": (0.03, {"digits": 0.03, "charlm": 0.1, "logreg": 0.1}),
}

# How each name takes beta2 (its own second-moment decay): "betas" = betas[1] (betas[0] kept), "beta2" = the
# keyword; absent: the method takes none (AdaGrad's sums, AdamNMF (no beta2 argument), SGD, steepest descent).
_BETA2 = {
    "rmsprop": "betas",
    "adam": "betas",
    "adamw": "betas",
    "adam_atan2": "betas",
    "adafactor": "beta2",
    "shampoo": "beta2",
    "idealized_shampoo": "beta2",
    "muon": "betas",  # the AdamW side's; Muon's own step keeps no second moment
}
# the names whose decay is decoupled (W <- W - lr_t wd W, or added to the preconditioned direction): tuned there
_DECOUPLED = ("adamw", "adam_atan2", "adafactor", "adam_nmf", "shampoo", "idealized_shampoo", "muon")


def _default(entry: Any, key: str) -> Any:
    if key in entry.kwargs:
        return entry.kwargs[key]
    param = inspect.signature(entry.cls).parameters.get(key)
    return None if param is None else param.default


def _hparam_kwargs(entry: Any) -> Callable[[float | None, float | None], dict[str, Any]]:
    kind = _BETA2.get(entry.name)
    beta1 = _default(entry, "betas")[0] if kind == "betas" else None

    def kwargs(beta2: float | None, weight_decay: float | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if beta2 is not None:
            if kind == "betas":
                out["betas"] = (beta1, beta2)
            else:
                out["beta2"] = beta2
                if entry.name == "shampoo":  # its Adam grafting's second moment decays at the same rate
                    out["grafting_beta2"] = beta2
        if weight_decay is not None:
            out["weight_decay"] = weight_decay
        return out

    return kwargs


def _beta2_default(entry: Any) -> float | None:
    kind = _BETA2.get(entry.name)
    if kind is None:
        return None
    value = _default(entry, kind)
    return value[1] if kind == "betas" else value  # Adafactor: None, its 1 - t^-0.8 schedule


for _name, _entry in NAMED_OPTIMIZERS.items():  # the table's order
    _center, _lrs = _TUNED[_name]
    register(
        OptimizerSpec(
            _name,
            from_name(_name),
            lrs=_lrs,
            sweep_center=_center,
            description=_entry.description,
            hparam_kwargs=_hparam_kwargs(_entry),
            beta2_default=_beta2_default(_entry),
            weight_decay_default=float(_default(_entry, "weight_decay") or 0.0) if _name in _DECOUPLED else None,
            tunes_beta2=_name in _BETA2,
            tunes_weight_decay=_name in _DECOUPLED,
        )
    )


@lru_cache(maxsize=1)
def _tuned_file() -> dict[str, dict[str, dict[str, Any]]]:
    text = resources.files("adaptim.bench").joinpath("tuned.json").read_text(encoding="utf-8")
    return json.loads(text)


def load_tuned() -> dict[str, dict[str, dict[str, Any]]]:
    """The committed tuned hyperparameters, ``{task: {optimizer: {"lr", "beta2", "weight_decay",
    "warmup_fraction", "trial", "val_loss"}}}`` (``tuned.json`` of this package; a copy)."""
    return json.loads(json.dumps(_tuned_file()))
