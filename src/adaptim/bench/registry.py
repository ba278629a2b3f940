"""Named optimizer configurations of the bench, and the learning rate each uses on each task.

An entry is an :class:`OptimizerSpec`: a name, a ``build(model, lr)`` factory and the tuned learning rate per
task. The built-in entries are the names of :data:`adaptim.optim.factory.NAMED_OPTIMIZERS` (the one table of
names, classes and configurations), built by :func:`adaptim.create_optimizer` (:func:`from_name`), so that each
takes the model's parameter groups from it (Muon's split; no weight decay on biases and norms where an entry
decays); this module adds the tuned learning rates. Another entry may wrap a class with fixed keyword arguments
(:func:`from_class`) or pass any callable taking ``(model, lr)``. Add an entry with :func:`register`.

The learning rates below were chosen by ``adaptim bench --sweep`` (a log-spaced grid around ``sweep_center``
at the default steps, best final validation loss; training objective for logreg). The grid and the sweep's
results are recorded in docs/bench.md; re-run the sweep when a task or an entry changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

import adaptim
from adaptim.optim.factory import NAMED_OPTIMIZERS

__all__ = ["OptimizerSpec", "OPTIMIZERS", "register", "from_class", "from_name", "sweep_grid", "ladder", "ladder_index"]

Factory = Callable[[nn.Module, float], torch.optim.Optimizer]


@dataclass(frozen=True)
class OptimizerSpec:
    """One named optimizer configuration.

    Attributes:
        name: the name used on the command line.
        build: ``build(model, lr) -> torch.optim.Optimizer``; it may raise ``ValueError`` to refuse a model
            (the run is then reported as skipped with the message as its reason).
        lrs: tuned learning rate per task name.
        sweep_center: the middle of the learning-rate grid ``adaptim bench --sweep`` tries, and the rate used on
            a task missing from ``lrs``.
        description: one line for ``adaptim list`` and the docs.
    """

    name: str
    build: Factory
    lrs: dict[str, float] = field(default_factory=dict)
    sweep_center: float = 1e-3
    description: str = ""

    def lr_for(self, task: str) -> float:
        """The tuned learning rate on ``task``, or ``sweep_center`` if it has none."""
        return self.lrs.get(task, self.sweep_center)


def from_class(cls: type[torch.optim.Optimizer], **kwargs) -> Factory:
    """A factory building ``cls(model.parameters(), lr=lr, **kwargs)``."""

    def build(model: nn.Module, lr: float) -> torch.optim.Optimizer:
        return cls(model.parameters(), lr=lr, **kwargs)

    build.__qualname__ = f"from_class({cls.__name__})"
    return build


def from_name(name: str, **kwargs) -> Factory:
    """A factory building ``adaptim.create_optimizer(name, model, lr=lr, **kwargs)`` (``name`` as ``adaptim list``
    prints it: its class and configuration come from :data:`adaptim.optim.factory.NAMED_OPTIMIZERS`)."""

    def build(model: nn.Module, lr: float) -> torch.optim.Optimizer:
        return adaptim.create_optimizer(name, model, lr=lr, **kwargs)

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
for _name, _entry in NAMED_OPTIMIZERS.items():  # the table's order
    _center, _lrs = _TUNED[_name]
    register(OptimizerSpec(_name, from_name(_name), lrs=_lrs, sweep_center=_center, description=_entry.description))
