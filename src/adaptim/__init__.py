"""adaptim: adaptive learning methods in PyTorch, faithful to the lecture notes *Adaptive Learning Methods*.

Every optimizer is a ``torch.optim.Optimizer``; see ``docs/equations.md`` for where each equation lives.
"""

from adaptim.optim import (
    SGD,
    Adafactor,
    AdaGrad,
    AdaGradNorm,
    Adam,
    AdamAtan2,
    AdamNMF,
    AdamW,
    AdaptimOptimizer,
    FullMatrixAdaGrad,
    IdealizedShampoo,
    Muon,
    RMSProp,
    Shampoo,
    Steepest,
    inverse_sqrt,
    muon_param_groups,
    warmup_cosine,
    warmup_linear,
)
from adaptim.optim.factory import create_optimizer, list_optimizers

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "AdaGrad",
    "AdaGradNorm",
    "FullMatrixAdaGrad",
    "RMSProp",
    "Adam",
    "AdamW",
    "AdamAtan2",
    "Adafactor",
    "AdamNMF",
    "Shampoo",
    "IdealizedShampoo",
    "Muon",
    "muon_param_groups",
    "Steepest",
    "AdaptimOptimizer",
    "warmup_cosine",
    "warmup_linear",
    "inverse_sqrt",
    "__version__",
]
__all__ += ["create_optimizer", "list_optimizers"]

from adaptim.optim.sphere import SphereSGD  # noqa: E402

__all__ += ["SphereSGD"]
from adaptim.optim.mirror import ExponentiatedGradient, MirrorDescent  # noqa: E402

__all__ += ["MirrorDescent", "ExponentiatedGradient"]
from adaptim.optim import StiefelSGD  # noqa: E402

__all__ += ["StiefelSGD"]
