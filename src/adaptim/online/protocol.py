"""Section 1's online convex optimization protocol, played by any torch optimizer against an adversary.

At round t = 1..T the learner plays w_t, the adversary reveals the convex loss l_t, the learner suffers l_t(w_t)
and sees g_t = grad l_t(w_t); the optimizer then steps and the iterate is projected back onto V. The regret
against a fixed u is sum_t l_t(w_t) - l_t(u); :class:`OnlineRun` records the run and computes the regret and the
quantities the bounds (18)-(24), (32)-(43) and (155) need.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from adaptim.online import _checks

__all__ = ["OnlineRun", "run_online", "L2Ball", "Box", "l2_ball", "box"]


class L2Ball:
    """The l2 ball {w : ||w - center||_2 <= radius}; calling it projects a tensor onto it (out of place).

    Args:
        radius: > 0, finite (a Python, numpy or 0-dim torch number).
        center: finite array-like broadcastable to the iterate (stored as a float64 tensor), or ``None`` (the
            origin).

    Raises:
        ValueError: ``radius`` not a finite number > 0; ``center`` not numeric or not finite; at projection, a
            ``center`` that does not broadcast to the iterate's shape.
    """

    def __init__(self, radius: float, center: torch.Tensor | None = None) -> None:
        self.radius = _checks.positive(radius, "radius")
        self.center = None if center is None else _checks.finite_tensor(center, "center")

    def _c(self, w: torch.Tensor) -> torch.Tensor | float:
        if self.center is None:
            return 0.0
        if not _broadcasts(self.center.shape, w.shape):
            raise ValueError(
                f"center has shape {tuple(self.center.shape)}, which does not broadcast to the iterate's "
                f"shape {tuple(w.shape)}"
            )
        return self.center.to(w)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        c = self._c(w)
        diff = w - c
        n = torch.linalg.vector_norm(diff)
        return c + diff * (self.radius / n) if n > self.radius else w.clone()

    def contains(self, w: torch.Tensor, tol: float = 1e-9) -> bool:
        c = self._c(w)
        return bool(torch.linalg.vector_norm(w - c) <= self.radius * (1 + tol))

    def __repr__(self) -> str:
        return f"L2Ball(radius={self.radius:g})"


class Box:
    """The box {w : lo <= w <= hi} (entrywise); calling it clamps a tensor onto it (out of place).

    Args:
        lo, hi: numbers or array-likes broadcastable to the iterate (and to each other), lo <= hi entrywise;
            infinite entries are allowed (an unbounded side), NaN is not.

    Raises:
        ValueError: some ``lo > hi``, a NaN or non-numeric bound, ``lo`` and ``hi`` that do not broadcast
            together; at projection, a bound that does not broadcast to the iterate's shape.
    """

    def __init__(self, lo: float | torch.Tensor, hi: float | torch.Tensor) -> None:
        lo_t, hi_t = _bound(lo, "lo"), _bound(hi, "hi")
        try:
            torch.broadcast_shapes(lo_t.shape, hi_t.shape)
        except RuntimeError:
            raise ValueError(
                f"lo (shape {tuple(lo_t.shape)}) and hi (shape {tuple(hi_t.shape)}) do not broadcast together"
            ) from None
        if (lo_t > hi_t).any():
            raise ValueError(f"box needs lo <= hi entrywise, got lo={lo!r}, hi={hi!r}")
        self.lo, self.hi = lo_t, hi_t

    def _check(self, w: torch.Tensor) -> None:
        for name, b in (("lo", self.lo), ("hi", self.hi)):
            if not _broadcasts(b.shape, w.shape):
                raise ValueError(
                    f"{name} has shape {tuple(b.shape)}, which does not broadcast to the iterate's "
                    f"shape {tuple(w.shape)}"
                )

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        self._check(w)
        return torch.minimum(torch.maximum(w, self.lo.to(w)), self.hi.to(w))

    def contains(self, w: torch.Tensor, tol: float = 1e-9) -> bool:
        self._check(w)
        return bool(((w >= self.lo.to(w) - tol) & (w <= self.hi.to(w) + tol)).all())

    def __repr__(self) -> str:
        return f"Box(lo={self.lo.tolist()}, hi={self.hi.tolist()})"


def _broadcasts(shape: torch.Size, target: torch.Size) -> bool:
    """Whether a tensor of ``shape`` broadcasts to ``target`` without changing it."""
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


def _bound(x: Any, name: str) -> torch.Tensor:
    try:
        t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))
        t = t.to(torch.float64)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{name} must be a number or an array of numbers: {e}") from None
    if torch.isnan(t).any():
        raise ValueError(f"{name} must not contain NaN, got {x!r}")
    return t


def l2_ball(radius: float, center: torch.Tensor | None = None) -> L2Ball:
    """The Euclidean projection onto {||w - center||_2 <= radius} (a callable; see :class:`L2Ball`)."""
    return L2Ball(radius, center)


def box(lo: float | torch.Tensor, hi: float | torch.Tensor) -> Box:
    """The Euclidean projection onto the box [lo, hi] (a callable; see :class:`Box`)."""
    return Box(lo, hi)


@dataclass
class OnlineRun:
    """A finished run of the OCO protocol (Section 1).

    Fields (float64 tensors; rounds t = 1..T are rows 0..T-1):
        losses: (T,) l_t(w_t).
        grads: (T, d) g_t, the gradient (or the adversary's subgradient) at w_t.
        iterates: (T, d) the played w_1..w_T (``None`` if ``record_iterates=False``).
        final: (d,) w_{T+1}, the iterate after the last step.
        adversary: the loss sequence played.
        lrs: (T,) the learning rate of the optimizer's first param group at each step (eta_1..eta_T).
        shape: the parameter's shape (``(d,)``, or ``(m, n)`` for matrix problems).

    The regret and the bound quantities are taken against the adversary's best fixed point in hindsight
    u* (:attr:`comparator`, from ``adversary.best_fixed()``), cached on first use.
    """

    losses: torch.Tensor
    grads: torch.Tensor
    iterates: torch.Tensor | None
    final: torch.Tensor
    adversary: Any
    lrs: torch.Tensor
    shape: tuple[int, ...]
    _best: tuple[torch.Tensor, float] | None = field(default=None, repr=False)

    @property
    def T(self) -> int:
        """The number of rounds."""
        return int(self.losses.shape[0])

    @property
    def dim(self) -> int:
        """d, the number of coordinates of w."""
        return int(self.grads.shape[1])

    def _hindsight(self) -> tuple[torch.Tensor, float]:
        if self._best is None:
            u, v = self.adversary.best_fixed()
            self._best = (torch.as_tensor(u, dtype=torch.float64).reshape(-1), float(v))
        return self._best

    @property
    def comparator(self) -> torch.Tensor:
        """u* = argmin_{u in V} sum_t l_t(u) (d,), float64: the adversary's best fixed point in hindsight."""
        return self._hindsight()[0]

    @property
    def comparator_loss(self) -> float:
        """sum_t l_t(u*), the cumulative loss of the best fixed point."""
        return self._hindsight()[1]

    @property
    def cumulative_loss(self) -> float:
        """sum_t l_t(w_t), the learner's cumulative loss."""
        return float(self.losses.sum())

    def _u(self, u: torch.Tensor | None) -> torch.Tensor:
        if u is None:
            return self.comparator
        u = _checks.finite_tensor(u, "u")
        if u.numel() != self.dim:
            raise ValueError(f"u must have {self.dim} entries (shape {self.shape}), got shape {tuple(u.shape)}")
        return u.reshape(-1)

    def regret(self, u: torch.Tensor | None = None) -> float:
        """sum_t l_t(w_t) - l_t(u) (Section 1). ``u=None``: against u* = the best fixed point in hindsight.

        Raises:
            ValueError: ``u`` with the wrong number of entries, not numeric or not finite.
        """
        if u is None:
            return self.cumulative_loss - self.comparator_loss
        return self.cumulative_loss - float(self.adversary.cumulative_loss(self._u(u).reshape(self.shape)))

    def regret_curve(self, u: torch.Tensor | None = None) -> torch.Tensor:
        """(T,) float64: entry t-1 is sum_{s<=t} l_s(w_s) - l_s(u), the regret of the first t rounds against a
        fixed ``u`` (``None``: the whole run's u*, which is not each prefix's own best point).

        Raises:
            ValueError: ``u`` with the wrong number of entries, not numeric or not finite.
        """
        u = self._u(u).reshape(self.shape)
        with torch.no_grad():
            lu = torch.stack([self.adversary.loss(t, u).detach().to(torch.float64) for t in range(self.T)])
        return torch.cumsum(self.losses - lu, 0)

    def distances(self, u: torch.Tensor | None = None) -> torch.Tensor:
        """(T,) float64: ||w_t - u||_2 for t = 1..T (``u=None``: u*).

        Raises:
            ValueError: a run without iterates; ``u`` with the wrong number of entries, not numeric or not finite.
        """
        return torch.linalg.vector_norm(self._need_iterates() - self._u(u), dim=1)

    def _need_iterates(self) -> torch.Tensor:
        if self.iterates is None:
            raise ValueError("this run was made with record_iterates=False: D, D1 and D_inf need the iterates")
        return self.iterates

    @property
    def D(self) -> float:
        """D = max_t ||w_t - u*||_2 (Section 1.3.1)."""
        return float(torch.linalg.vector_norm(self._need_iterates() - self.comparator, dim=1).max())

    @property
    def D1(self) -> float:
        """D_1 = ||w_1 - u*||_2 (Section 1.3.1)."""
        return float(torch.linalg.vector_norm(self._need_iterates()[0] - self.comparator))

    @property
    def D_inf(self) -> float:
        """D_inf = max_t ||w_t - u*||_inf (the diagonal AdaGrad bound (38))."""
        return float((self._need_iterates() - self.comparator).abs().max())

    @property
    def L(self) -> float:
        """L = max_t ||g_t||_2, the smallest gradient bound valid on this run (Section 2.1)."""
        return float(torch.linalg.vector_norm(self.grads, dim=1).max())

    @property
    def sum_sq_grad(self) -> float:
        """sum_t ||g_t||_2^2."""
        return float((self.grads**2).sum())

    @property
    def O_T(self) -> torch.Tensor:
        """O_T = sum_t g_t g_t^T, (d, d) float64 (Section 3)."""
        return self.grads.T @ self.grads

    @property
    def diag_O_T(self) -> torch.Tensor:
        """diag(O_T) = sum_t g_t ** 2, (d,) float64."""
        return (self.grads**2).sum(0)

    def _matrix_grads(self) -> torch.Tensor:
        if len(self.shape) != 2:
            raise ValueError(f"L_T and R_T need a matrix-shaped problem (adversary.shape = (m, n)), got {self.shape}")
        return self.grads.reshape(self.T, *self.shape)

    @property
    def L_T(self) -> torch.Tensor:
        """L_T = sum_t G_t G_t^T, (m, m) float64, for a matrix-shaped problem (Section 5)."""
        G = self._matrix_grads()
        return torch.einsum("tij,tkj->ik", G, G)

    @property
    def R_T(self) -> torch.Tensor:
        """R_T = sum_t G_t^T G_t, (n, n) float64, for a matrix-shaped problem (Section 5)."""
        G = self._matrix_grads()
        return torch.einsum("tji,tjk->ik", G, G)


def run_online(
    make_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    adversary: Any,
    *,
    w0: torch.Tensor | None = None,
    projection: Callable[[torch.Tensor], torch.Tensor] | None = None,
    record_iterates: bool = True,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
) -> OnlineRun:
    """Play Section 1's protocol for ``adversary.rounds`` rounds and record the run.

    w is a float64 leaf tensor of shape ``adversary.shape`` (w_1 = ``w0``, default zeros). Round t: the learner
    plays w_t, suffers l_t(w_t) = ``adversary.loss(t-1, w)``, and gets g_t from autograd (or from
    ``adversary.subgradient(t-1, w)`` when the adversary has one); ``opt.step()`` is taken, the scheduler (if
    any) steps, and ``projection(w)`` replaces w in place under ``no_grad``.

    ``opt.step`` gets a closure (when its ``step`` takes one) that returns l_t at the current w and sets
    ``w.grad`` to its gradient there, so optimizers that re-evaluate the loss (``torch.optim.LBFGS``, line
    searches) work; while w is still w_t it returns the round's loss without recomputing it, so optimizers that
    call it once before their update are unaffected. The recorded loss and gradient of round t are those at the
    played w_t.

    Args:
        make_optimizer: ``params -> torch.optim.Optimizer`` (e.g. ``lambda p: adaptim.SGD(p, lr=0.1)``).
        adversary: an object with ``rounds``, ``shape`` and ``loss(t, w)`` (see :mod:`adaptim.online.adversaries`).
        w0: the first play w_1, any float tensor with ``adversary.dim`` entries (copied to float64).
        projection: ``w -> projected w`` (e.g. :func:`l2_ball`, :func:`box`, or ``adversary.domain``), or ``None``
            (V = R^d). w_1 is not projected: a w0 outside V is the caller's choice.
        record_iterates: keep the (T, d) played iterates (needed by D, D1, D_inf).
        scheduler: ``optimizer -> scheduler`` (e.g. ``adaptim.inverse_sqrt`` for eta_t = eta / sqrt(t), (24)),
            stepped after every ``opt.step()``.

    Returns:
        :class:`OnlineRun`.

    Raises:
        TypeError: ``make_optimizer``, ``projection`` or ``scheduler`` not callable, or ``make_optimizer`` not
            returning a ``torch.optim.Optimizer``; an adversary without ``rounds``/``shape``/``loss``.
        ValueError: ``w0`` with the wrong number of entries or non-finite; ``adversary.rounds < 1``; a loss that
            is not a finite scalar; a projection returning the wrong shape.
    """
    if not callable(make_optimizer):
        raise TypeError(f"make_optimizer must be callable (params -> optimizer), got {type(make_optimizer).__name__}")
    for name, f in (("projection", projection), ("scheduler", scheduler)):
        if f is not None and not callable(f):
            raise TypeError(f"{name} must be callable or None, got {type(f).__name__}")
    for attr in ("rounds", "shape", "loss"):
        if not hasattr(adversary, attr):
            raise TypeError(
                f"adversary must have rounds, shape and loss(t, w); {type(adversary).__name__} has no {attr}"
            )
    T = _checks.count(adversary.rounds, "adversary.rounds (T)", low=1)
    shape = tuple(int(s) for s in adversary.shape)
    d = math.prod(shape)
    if w0 is None:
        w = torch.zeros(shape, dtype=torch.float64)
    else:
        w0 = torch.as_tensor(w0)
        if w0.numel() != d:
            raise ValueError(f"w0 must have {d} entries (adversary.shape = {shape}), got shape {tuple(w0.shape)}")
        if not torch.isfinite(w0).all():
            raise ValueError("w0 must be finite")
        w = w0.detach().to(torch.float64).reshape(shape).clone()
    w.requires_grad_(True)
    opt = make_optimizer([w])
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"make_optimizer must return a torch.optim.Optimizer, got {type(opt).__name__}")
    sched = scheduler(opt) if scheduler is not None else None
    subgradient = getattr(adversary, "subgradient", None)
    takes_closure = _takes_closure(opt)

    losses = torch.empty(T, dtype=torch.float64)
    grads = torch.empty(T, d, dtype=torch.float64)
    lrs = torch.empty(T, dtype=torch.float64)
    iterates = torch.empty(T, d, dtype=torch.float64) if record_iterates else None

    def evaluate(t: int) -> torch.Tensor:
        """l_t(w) at the current w (detached), with w.grad set to its (sub)gradient there."""
        opt.zero_grad(set_to_none=True)
        if subgradient is not None:
            with torch.no_grad():
                loss = adversary.loss(t, w)
        else:
            with torch.enable_grad():
                loss = adversary.loss(t, w)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(f"adversary.loss({t}, w) must return a scalar tensor, got {loss!r}")
        if subgradient is not None:
            g = torch.as_tensor(subgradient(t, w.detach()), dtype=torch.float64).reshape(shape)
            w.grad = g.clone()
        else:
            loss.backward()
            if w.grad is None:  # a loss that does not depend on w
                w.grad = torch.zeros_like(w)
        return loss.detach()

    for t in range(T):
        played = w.detach().clone()
        if iterates is not None:
            iterates[t] = played.reshape(-1)
        loss = evaluate(t)
        if not torch.isfinite(loss).all():
            raise ValueError(f"round {t + 1}: the loss is not finite ({float(loss)})")
        losses[t] = float(loss.detach())
        grads[t] = w.grad.detach().reshape(-1)
        lr = opt.param_groups[0].get("lr", math.nan)
        lrs[t] = float(lr) if isinstance(lr, (int, float, torch.Tensor)) else math.nan
        if takes_closure:
            opt.step(_closure(evaluate, t, w, played, loss))
        else:
            opt.step()
        if sched is not None:
            sched.step()
        if projection is not None:
            with torch.no_grad():
                p = projection(w.detach())
                if p.shape != w.shape:
                    raise ValueError(f"projection returned shape {tuple(p.shape)} for an iterate of shape {shape}")
                w.copy_(p)
    return OnlineRun(
        losses=losses,
        grads=grads,
        iterates=iterates,
        final=w.detach().reshape(-1).clone(),
        adversary=adversary,
        lrs=lrs,
        shape=shape,
    )


def _takes_closure(opt: torch.optim.Optimizer) -> bool:
    """Whether ``opt.step`` accepts an argument (the closure of ``torch.optim.Optimizer.step``)."""
    try:
        params = inspect.signature(opt.step).parameters.values()
    except (TypeError, ValueError):  # no signature to read: call it as the base class documents
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)


def _closure(
    evaluate: Callable[[int], torch.Tensor], t: int, w: torch.Tensor, played: torch.Tensor, loss: torch.Tensor
) -> Callable[[], torch.Tensor]:
    """Round t's closure: at the played w_t, the loss already computed (w.grad left as it is); elsewhere, l_t and
    its gradient at the current w."""

    def closure() -> torch.Tensor:
        if torch.equal(w.detach(), played):
            if w.grad is None:  # the optimizer cleared it: recompute at w_t
                return evaluate(t)
            return loss
        return evaluate(t)

    return closure
