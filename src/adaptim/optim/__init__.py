"""``torch.optim.Optimizer`` subclasses for every method of the notes (re-exported at the top level)."""

from adaptim.optim.adafactor import Adafactor
from adaptim.optim.adagrad import AdaGrad, AdaGradNorm, FullMatrixAdaGrad
from adaptim.optim.adam import Adam, AdamAtan2, AdamW
from adaptim.optim.adam_nmf import AdamNMF
from adaptim.optim.base import AdaptimOptimizer
from adaptim.optim.factory import NAMED_OPTIMIZERS, create_optimizer, list_optimizers
from adaptim.optim.muon import Muon, muon_param_groups
from adaptim.optim.rmsprop import RMSProp
from adaptim.optim.schedules import inverse_sqrt, warmup_cosine, warmup_linear
from adaptim.optim.sgd import SGD
from adaptim.optim.shampoo import IdealizedShampoo, Shampoo
from adaptim.optim.steepest import Steepest

__all__ = [
    "AdaptimOptimizer",
    "SGD",
    "AdaGrad",
    "AdaGradNorm",
    "FullMatrixAdaGrad",
    "RMSProp",
    "Adam",
    "AdamW",
    "AdamAtan2",
    "Muon",
    "muon_param_groups",
    "Steepest",
    "Shampoo",
    "IdealizedShampoo",
    "Adafactor",
    "AdamNMF",
    "warmup_cosine",
    "warmup_linear",
    "inverse_sqrt",
]
__all__ += ["create_optimizer", "list_optimizers", "NAMED_OPTIMIZERS"]

from adaptim.optim.sphere import SphereSGD  # noqa: E402

__all__ += ["SphereSGD"]
from adaptim.optim.mirror import ExponentiatedGradient, MirrorDescent  # noqa: E402

__all__ += ["MirrorDescent", "ExponentiatedGradient"]
from adaptim.optim.stiefel import StiefelSGD  # noqa: E402

__all__ += ["StiefelSGD"]

from adaptim.optim.effective_lr import adam_effective_lr  # noqa: E402

__all__ += ["adam_effective_lr"]
