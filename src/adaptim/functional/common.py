"""The shared layer under every update rule: moments, weight decay, buckets, and the last stage of a step.

Every method of the notes is the same loop (Sections 1.3.1, 2.3.2)::

    gradient -> momentum / EMA -> precondition or orthogonalize -> transform -> step (lr, weight decay) -> retract

The math of each method lives in its own module of :mod:`adaptim.functional`; what every method does around the
math is written here once, and each rule calls it:

* **Moments.** :func:`ema_` (m <- b m + (1 - b) x, one idiom: ``lerp``), :func:`ema_sq_` (v <- b v + (1 - b) x^2),
  :func:`bias_correction` (1 - b^t, Figure 1 (b)) and :func:`safe_denominator_` (eps = 0: 0/0 := 0).
* **Weight decay, three kinds** (:class:`WeightDecay`): ``L2`` adds wd * w to the gradient before any statistic
  (``torch.optim.Adam(weight_decay)``, :func:`add_l2`); ``DECOUPLED`` multiplies the weights by 1 - lambda_t
  (Figure 1 (d), :func:`decay_`, applied by :func:`apply_update_`); ``DIRECTION`` adds wd * w to a search direction
  after preconditioning (distributed Shampoo's decoupled decay, :func:`add_l2` on the direction). The refusal of
  lambda_t >= 1, which would zero or flip every weight, is in the optimizer base class, once for all.
* **Buckets.** :func:`bucket_indices` groups tensors by (shape, dtype, device) (or any key), :func:`stack` stacks a
  bucket into one batch, :func:`unstack_` writes a batch back.
* **The last stage.** :func:`apply_update_` is w <- (1 - lambda) w - eta d. A rule computes the direction d and an
  optimizer hands it to its ``_final_step``, which calls this function; a method that ends differently (a
  retraction onto a sphere or the Stiefel manifold, a multiplicative or mirror step) replaces only that stage.

Each helper takes one tensor or a list of tensors (then it uses ``torch._foreach_*`` kernels); both forms do the
same arithmetic op for op, so single-tensor loops and foreach paths stay bitwise equal.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence

import torch

__all__ = [
    "WeightDecay",
    "ema_",
    "ema_sq_",
    "bias_correction",
    "safe_denominator_",
    "add_l2",
    "decay_",
    "apply_update_",
    "StepFn",
    "bucket_indices",
    "stack",
    "unstack_",
]

Tensors = torch.Tensor | Sequence[torch.Tensor]


def _many(x) -> bool:
    return isinstance(x, (list, tuple))


# ------------------------------------------------------------------------------------------------ moments
def ema_(avg: Tensors, x: Tensors, beta: float) -> None:
    """avg <- beta avg + (1 - beta) x in place (an exponential moving average; ``lerp`` rounds once).

    Args:
        avg: the running average(s), updated in place; float32/float64.
        x: the new value(s), same shapes (or broadcastable); read only.
        beta: the decay in [0, 1] (a Python float, or a tensor broadcasting against ``avg`` for a batch whose
            members decay at different rates).
    """
    if _many(avg):
        if avg:
            torch._foreach_lerp_(avg, x, 1 - beta)
    else:
        avg.lerp_(x, 1 - beta)


def ema_sq_(avg: Tensors, x: Tensors, beta: float) -> None:
    """avg <- beta avg + (1 - beta) x * x in place: the second-moment EMA of (45)-(46) (no x^2 temporary)."""
    if _many(avg):
        if avg:
            torch._foreach_mul_(avg, beta)
            torch._foreach_addcmul_(avg, x, x, value=1 - beta)
    else:
        avg.mul_(beta).addcmul_(x, x, value=1 - beta)


def bias_correction(beta: float, step: int) -> float:
    """1 - beta^t, the bias correction of an EMA started at 0 after ``step`` >= 1 updates (Figure 1 (b))."""
    return 1 - beta**step


def safe_denominator_(den: Tensors, eps: float) -> None:
    """With ``eps == 0``, replace zero entries of the denominator(s) ``den`` by 1, in place.

    A coordinate whose second moment is exactly 0 has had only zero gradients, so its numerator is 0 too: 0/0 is
    taken as 0 (the coordinate stays put, as ``atan2(0, 0) = 0``) instead of NaN. With ``eps > 0`` nothing to do.
    """
    if eps != 0:
        return
    for d in den if _many(den) else [den]:
        d.masked_fill_(d == 0, 1.0)


# ------------------------------------------------------------------------------------------- weight decay
class WeightDecay(str, enum.Enum):
    """The three ways weight decay enters an update (see the module doc)."""

    L2 = "l2"  #: wd * w added to the gradient before any statistic
    DECOUPLED = "decoupled"  #: w <- (1 - lambda_t) w, applied by the last stage
    DIRECTION = "direction"  #: wd * w added to the search direction after preconditioning


def add_l2(xs: Tensors, params: Tensors, coeff: float) -> Tensors:
    """x + coeff * w as new tensor(s) (``xs`` itself when ``coeff == 0``); ``xs`` is never written.

    Used for the L2 kind (x = the gradient) and the direction kind (x = the preconditioned direction).
    """
    if coeff == 0:
        return xs
    if _many(xs):
        return torch._foreach_add(xs, params, alpha=coeff) if xs else xs
    return xs.add(params, alpha=coeff)


def decay_(params: Tensors, factor: float) -> None:
    """w <- (1 - factor) w in place: decoupled (multiplicative) weight decay with lambda_t = ``factor``."""
    if factor == 0:
        return
    if _many(params):
        if params:
            torch._foreach_mul_(params, 1 - factor)
    else:
        params.mul_(1 - factor)


# --------------------------------------------------------------------------------------------- last stage
#: the signature of a last stage: ``step(params, directions, lr, decay)`` updates ``params`` in place
StepFn = Callable[[list[torch.Tensor], list[torch.Tensor], float, float], None]


def apply_update_(params: Tensors, directions: Tensors, lr: float, decay: float = 0.0) -> None:
    """The Euclidean last stage of every rule: w <- (1 - decay) w - lr * d, in place.

    Args:
        params: w_t, updated in place (float32/float64; any shape).
        directions: d_t, the same shapes; read only.
        lr: eta_t, the step size in parameter units per unit of d (schedule included).
        decay: lambda_t in [0, 1) of Figure 1 (d); the optimizer base class refuses lambda_t >= 1 before the step.
    """
    decay_(params, decay)
    if _many(params):
        if params:
            torch._foreach_add_(params, directions, alpha=-lr)
    else:
        params.add_(directions, alpha=-lr)


# ------------------------------------------------------------------------------------------------ buckets
def _default_key(t: torch.Tensor) -> Hashable:
    return (tuple(t.shape), t.dtype, t.device)


def bucket_indices(
    tensors: Sequence[torch.Tensor], key: Callable[[int, torch.Tensor], Hashable] | None = None
) -> dict[Hashable, list[int]]:
    """Indices of ``tensors`` grouped into buckets, in first-seen order.

    Args:
        tensors: the tensors to group.
        key: ``key(i, t)`` gives tensor ``i``'s bucket; by default (shape, dtype, device), the buckets that one
            ``torch.stack`` can batch. Pass a key to add, e.g., the matrix view's shape or the kind of state.
    """
    buckets: dict[Hashable, list[int]] = defaultdict(list)
    for i, t in enumerate(tensors):
        buckets[_default_key(t) if key is None else key(i, t)].append(i)
    return dict(buckets)


def stack(
    tensors: Sequence[torch.Tensor], idx: Sequence[int], view: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """``torch.stack`` of ``tensors[i]`` for i in ``idx`` (each passed through ``view`` first, e.g. a matrix view):
    a new (len(idx), ...) tensor; write changes back with :func:`unstack_`."""
    return torch.stack([tensors[i] if view is None else view(tensors[i]) for i in idx])


def unstack_(targets: Sequence[torch.Tensor], idx: Sequence[int], stacked: torch.Tensor) -> None:
    """Copy slice k of ``stacked`` into ``targets[idx[k]]`` (reshaped to the target's shape), in place."""
    dst = [targets[i] for i in idx]
    torch._foreach_copy_(dst, [s.reshape_as(d) for s, d in zip(stacked.unbind(0), dst)])
