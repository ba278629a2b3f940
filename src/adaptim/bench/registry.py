"""Named optimizer configurations of the bench, and the learning rate each uses on each task.

An entry is an :class:`OptimizerSpec`: a name, a ``build(model, lr)`` factory and the tuned learning rate per
task. Most entries wrap an adaptim class with fixed keyword arguments (:func:`from_class`); an entry that needs
the model itself (for example parameter groups split by shape, as Muon does) passes any callable taking
``(model, lr)``. Add an entry with :func:`register`.

The learning rates below were chosen by ``adaptim bench --sweep`` (a log-spaced grid around ``sweep_center``
at the default steps, best final validation loss; training objective for logreg). The grid and the sweep's
results are recorded in docs/bench.md; re-run the sweep when a task or an entry changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

import adaptim

__all__ = ["OptimizerSpec", "OPTIMIZERS", "register", "from_class", "sweep_grid", "ladder", "ladder_index"]

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


# Learning rates: chosen by `adaptim bench --sweep`, see docs/bench.md ("Learning-rate sweep").
register(OptimizerSpec(
    "sgd", from_class(adaptim.SGD), sweep_center=0.1,
    lrs={"digits": 1.0, "charlm": 0.3, "logreg": 30.0},
    description="SGD (21), no momentum"))
register(OptimizerSpec(
    "sgd_nesterov", from_class(adaptim.SGD, momentum=0.9, nesterov=True), sweep_center=0.03,
    lrs={"digits": 0.3, "charlm": 0.1, "logreg": 10.0},
    description="SGD with Nesterov momentum 0.9 (Section 2.3.1)"))
register(OptimizerSpec(
    "adagrad", from_class(adaptim.AdaGrad), sweep_center=0.03,
    lrs={"digits": 0.1, "charlm": 0.01, "logreg": 10.0},
    description="diagonal AdaGrad (44)"))
register(OptimizerSpec(
    "adagrad_norm", from_class(adaptim.AdaGradNorm), sweep_center=1.0,
    lrs={"digits": 10.0, "charlm": 3.0, "logreg": 30.0},
    description="AdaGrad-Norm, one scalar step per group (33)"))
register(OptimizerSpec(
    "full_matrix_adagrad", from_class(adaptim.FullMatrixAdaGrad), sweep_center=1.0,
    lrs={"logreg": 10.0},  # refuses the digits and charlm models (layers of more than 1024 entries)
    description="full-matrix AdaGrad (Section 3.2.1), parameters of at most 1024 entries"))
register(OptimizerSpec(
    "rmsprop", from_class(adaptim.RMSProp), sweep_center=1e-3,
    lrs={"digits": 3e-3, "charlm": 3e-4, "logreg": 1.0},
    description="RMSProp with momentum (45), betas (0.9, 0.999)"))
register(OptimizerSpec(
    "adam", from_class(adaptim.Adam), sweep_center=3e-3,
    lrs={"digits": 0.01, "charlm": 1e-3, "logreg": 3.0},
    description="Adam (46)"))
register(OptimizerSpec(
    "adamw", from_class(adaptim.AdamW, weight_decay=0.01), sweep_center=3e-3,
    lrs={"digits": 0.1, "charlm": 1e-3, "logreg": 3.0},
    description="AdamW (Figure 1), weight decay 0.01"))
register(OptimizerSpec(
    "adam_atan2", from_class(adaptim.AdamAtan2, weight_decay=0.01), sweep_center=3e-3,
    lrs={"digits": 0.01, "charlm": 3e-3, "logreg": 3.0},
    description="Adam-atan2 (Section 4.1.2), weight decay 0.01"))

# Matrix-aware methods (Sections 4.7, 5, 6.2, 7, Appendix L.2); docs/bench.md ("Optimizers") explains each choice.
register(OptimizerSpec(
    # the 4.7.1 form with an explicit lr, so the bench's schedule scales it (the relative step would ignore it)
    "adafactor", from_class(adaptim.Adafactor, relative_step=False), sweep_center=0.03,
    lrs={"digits": 0.1, "charlm": 0.1, "logreg": 1.0},
    description="Adafactor as in 4.7.1: factored (52), no first moment, update RMS clipped to 1, step x RMS(W), "
                "beta2_t = 1 - t^-0.8; explicit lr"))
register(OptimizerSpec(
    # the box of L.2; with beta1 > 0 the ratio m_t / sqrt(A_t B_t) blows up where the current gradient is small
    "adam_nmf", from_class(adaptim.AdamNMF, rank=1, beta1=0.0), sweep_center=1e-3,
    lrs={"digits": 0.01, "charlm": 3e-3, "logreg": 0.03},
    description="AdamNMF (Appendix L.2), rank 1, beta1 = 0"))
register(OptimizerSpec(
    # roots every 10 steps: every step would make a charlm run about 60% (9 s) longer
    "shampoo", from_class(adaptim.Shampoo, beta2=0.999, momentum=0.9, grafting="adam", precondition_frequency=10,
                          start_preconditioning_step=10), sweep_center=3e-4,
    lrs={"digits": 1e-3, "charlm": 3e-4, "logreg": 0.3},
    description="Shampoo (53) with the EMA of 5.1 (beta2 0.999), Adam grafting, heavy-ball momentum 0.9, "
                "roots every 10 steps from step 10"))
register(OptimizerSpec(
    "idealized_shampoo", from_class(adaptim.IdealizedShampoo, beta2=0.999), sweep_center=0.01,
    lrs={"digits": 0.01, "charlm": 3e-3, "logreg": 1.0},
    description="IdealizedShampooIteration (6.2.1), beta2 0.999, roots every step"))


def _muon(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    # "match_rms_adamw" scales Muon's update to AdamW's RMS (about 0.2 lr; Liu et al., 2025), so both sides share lr
    groups = adaptim.muon_param_groups(model, adamw_lr=lr)
    return adaptim.Muon(groups, lr=lr, adjust_lr="match_rms_adamw")


register(OptimizerSpec(
    "muon", _muon, sweep_center=0.01,
    lrs={"digits": 0.01, "charlm": 0.03, "logreg": 0.3},
    description="Muon (Section 7) on the hidden matrices, update RMS matched to AdamW; AdamW (same lr) on "
                "embeddings, head and vectors"))
register(OptimizerSpec(
    # every tensor, vectors as (n, 1) columns (a normalized-gradient step); no AdamW side, unlike Muon
    "steepest_spectral", from_class(adaptim.Steepest, norm="spectral", rule="trust_region", momentum=0.9),
    sweep_center=0.03,
    lrs={"digits": 0.03, "charlm": 0.1, "logreg": 0.1},
    description="steepest descent under the spectral norm (67), (69): -lr U V^T of the momentum EMA"))
