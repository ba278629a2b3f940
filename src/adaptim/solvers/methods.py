"""Appendix A's deterministic methods: gradient descent (Lemma S.5), Nesterov's accelerated method (A.1) and
Newton's method (Theorem A.1), on a differentiable J : R^d -> R given as a torch callable."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from adaptim.online import _checks

__all__ = ["SolverError", "SolverHistory", "gradient", "gradient_descent", "hessian", "nesterov_agd", "newton"]

Objective = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SolverHistory:
    """The iterates of a deterministic method and the objective at each.

    Attributes:
        method: ``"gradient_descent"``, ``"nesterov_agd"`` or ``"newton"``.
        iterates: float64 tensor of shape (steps + 1, d); row k is the notes' w_{k+1} (row 0 is w_1 = w0).
        values: float64 tensor of shape (steps + 1,); values[k] = J(iterates[k]) (``inf`` where J overflowed).
        points: for ``nesterov_agd``, the look-ahead points y_1, ..., y_{steps+1} of A.1 (shape (steps + 1, d),
            y_1 = w_1), where the gradients are taken; ``None`` for the other methods.
    """

    method: str
    iterates: torch.Tensor
    values: torch.Tensor
    points: torch.Tensor | None = None

    @property
    def steps(self) -> int:
        """The number of steps taken (rows of ``iterates`` minus one)."""
        return self.iterates.shape[0] - 1

    def errors(self, j_star: float) -> torch.Tensor:
        """J(w_k) - J^*, float64 of shape (steps + 1,).

        Raises:
            ValueError: ``j_star`` not a finite number (Python, numpy or one-entry torch; not a bool).
        """
        return self.values - _checks.finite(j_star, "j_star")

    def distances(self, w_star: torch.Tensor) -> torch.Tensor:
        """||w_k - w^*||_2, float64 of shape (steps + 1,).

        Raises:
            ValueError: ``w_star`` not numeric, not finite, or without d entries.
        """
        w_star = _checks.finite_tensor(w_star, "w_star")
        d = self.iterates.shape[1]
        if w_star.numel() != d:
            raise ValueError(f"w_star must have d = {d} entries, got shape {tuple(w_star.shape)}")
        return torch.linalg.vector_norm(self.iterates - w_star.reshape(d), dim=1)


class SolverError(RuntimeError):
    """A method could not take a step (a singular or non-finite Hessian, a non-finite gradient).

    Attributes:
        step: the step (1-based: step t computes w_{t+1} from w_t) that failed.
        history: the :class:`SolverHistory` up to and including w_t, the last iterate reached.
    """

    def __init__(self, message: str, step: int, history: SolverHistory):
        super().__init__(message)
        self.step = step
        self.history = history


def _check_common(f, w0, steps: int) -> torch.Tensor:
    if not callable(f):
        raise TypeError(f"f must be a callable taking a 1-D float64 tensor to a scalar tensor, got {type(f).__name__}")
    _checks.count(steps, "steps", low=0)
    if not isinstance(w0, torch.Tensor):
        raise TypeError(f"w0 must be a 1-D floating-point torch.Tensor, got {type(w0).__name__}")
    if w0.dim() != 1 or not w0.dtype.is_floating_point or w0.numel() == 0:
        raise ValueError(f"w0 must be a non-empty 1-D floating-point tensor, got shape {tuple(w0.shape)} {w0.dtype}")
    if not torch.isfinite(w0).all():
        raise ValueError("w0 must be finite")
    return w0.detach().to(torch.float64).clone()


def _check_L(L) -> float:
    return _checks.positive(L, "L (the smoothness constant)")


def _start_value(f: Objective, w: torch.Tensor) -> float:
    """J(w0), which must be finite: a method cannot start where J is undefined."""
    v = _value(f, w)
    if not math.isfinite(v):
        raise ValueError(f"f is not finite at the start point w0 (f(w0) = {v}); choose a w0 where J is defined")
    return v


def _check_optional(name: str, fn) -> None:
    if fn is not None and not callable(fn):
        raise TypeError(f"{name} must be a callable or None, got {type(fn).__name__}")


def _value(f: Objective, w: torch.Tensor) -> float:
    with torch.no_grad():
        v = f(w)
    v = torch.as_tensor(v)
    if v.numel() != 1:
        raise ValueError(f"f must return a scalar, got a tensor of shape {tuple(v.shape)}")
    return float(v)


def _gradient(f: Objective, w: torch.Tensor, grad: Objective | None) -> torch.Tensor:
    if grad is not None:
        with torch.no_grad():
            g = torch.as_tensor(grad(w), dtype=torch.float64).reshape(-1)
        if g.shape != w.shape:
            raise ValueError(f"grad must return a tensor of shape {tuple(w.shape)}, got {tuple(g.shape)}")
        return g
    x = w.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = f(x)
        if not isinstance(y, torch.Tensor) or y.numel() != 1:
            raise ValueError("f must return a scalar torch tensor (autograd computes the gradient)")
        (g,) = torch.autograd.grad(y.reshape(()), x, allow_unused=True)
    return torch.zeros_like(w) if g is None else g.detach().to(torch.float64)


def _hessian(f: Objective, w: torch.Tensor, hessian: Callable | None) -> torch.Tensor:
    d = w.numel()
    if hessian is not None:
        with torch.no_grad():
            h = torch.as_tensor(hessian(w), dtype=torch.float64)
        h = h.reshape(d, d) if h.numel() == d * d else h
        if h.shape != (d, d):
            raise ValueError(f"hessian must return a tensor of shape {(d, d)}, got {tuple(h.shape)}")
        return h
    fn = lambda x: f(x).reshape(())
    with torch.enable_grad():
        try:  # vmap over the d backward passes; some callables cannot be vmapped (data-dependent Python)
            h = torch.autograd.functional.hessian(fn, w.detach().clone(), vectorize=True)
        except RuntimeError:
            h = torch.autograd.functional.hessian(fn, w.detach().clone())
    return h.detach().to(torch.float64).reshape(d, d)


def gradient(f: Objective, w: torch.Tensor) -> torch.Tensor:
    """grad J(w) by autograd: float64 of shape (d,) for ``w`` of shape (d,) (``f`` as :func:`gradient_descent`).

    Raises:
        TypeError, ValueError: as :func:`gradient_descent` (``f`` not callable or not scalar, ``w`` not 1-D).
    """
    return _gradient(f, _check_common(f, w, 0), None)


def hessian(f: Objective, w: torch.Tensor) -> torch.Tensor:
    """grad^2 J(w) by autograd: float64 of shape (d, d) for ``w`` of shape (d,) (the matrix of (115), (132)).

    Raises:
        TypeError, ValueError: as :func:`gradient`.
    """
    w = _check_common(f, w, 0)
    _gradient(f, w, None)  # validates that f is scalar-valued
    return _hessian(f, w, None)


def _history(method, iterates, values, points=None) -> SolverHistory:
    return SolverHistory(
        method,
        torch.stack(iterates),
        torch.tensor(values, dtype=torch.float64),
        None if points is None else torch.stack(points),
    )


def _finite_gradient(g: torch.Tensor, t: int, w: torch.Tensor, method: str, its, vals, pts=None) -> None:
    if t == 1 and not torch.isfinite(g).all():  # w_1 (= y_1) is w0: the input is at fault, not the iterates
        raise ValueError(f"{method}: the gradient of f is not finite at the start point w0")
    if not torch.isfinite(g).all():
        raise SolverError(
            f"{method}: step {t}: the gradient at w_{t} is not finite (the iterates diverged; "
            f"|w_{t}|_inf = {float(w.abs().max()):.3g})",
            t,
            _history(method, its, vals, pts),
        )


def gradient_descent(
    f: Objective, w0: torch.Tensor, L: float, steps: int, *, grad: Objective | None = None
) -> SolverHistory:
    """Gradient descent with step 1/L (Lemma S.5): w_{t+1} = w_t - (1/L) grad J(w_t), for t = 1..steps.

    For convex, L-smooth J this gives J(w_{T+1}) - J^* <= L ||w_1 - w^*||^2 / (2T) (158), and each step
    decreases J by at least ||grad J(w_t)||^2 / (2L) (159).

    Args:
        f: J, a callable taking a float64 tensor of shape (d,) to a scalar tensor (differentiable by autograd
            unless ``grad`` is given).
        w0: the start w_1, a 1-D floating-point tensor of shape (d,) (computation is in float64).
        L: the smoothness constant (> 0); the step is 1/L.
        steps: the number of steps T (>= 0).
        grad: optional callable w -> grad J(w) of shape (d,), used instead of autograd.

    Returns:
        A :class:`SolverHistory` with ``iterates`` of shape (steps + 1, d) (w_1..w_{T+1}) and ``values``.

    Raises:
        TypeError: ``f`` (or ``grad``) not callable, ``w0`` not a tensor.
        ValueError: ``L`` not a finite number > 0, ``steps`` not an integer >= 0 (numbers may be Python, numpy
            or one-entry torch scalars, not bools), ``w0`` not 1-D floating point or not finite, ``f`` not
            scalar-valued, ``f`` or its gradient not finite at ``w0``.
        SolverError (a RuntimeError): a gradient that is not finite at a later iterate; the message names the
            step.
    """
    w = _check_common(f, w0, steps)
    eta = 1.0 / _check_L(L)
    _check_optional("grad", grad)
    its, vals = [w], [_start_value(f, w)]
    for t in range(1, steps + 1):
        g = _gradient(f, w, grad)
        _finite_gradient(g, t, w, "gradient_descent", its, vals)
        w = w - eta * g
        its.append(w)
        vals.append(_value(f, w))
    return _history("gradient_descent", its, vals)


def nesterov_agd(
    f: Objective, w0: torch.Tensor, L: float, steps: int, *, grad: Objective | None = None
) -> SolverHistory:
    """Nesterov's accelerated gradient method exactly as in A.1, with y_1 = w_1 and for t = 1..steps:

        w_{t+1} = y_t - (1/L) grad J(y_t),    y_{t+1} = w_{t+1} + t/(t+3) (w_{t+1} - w_t).

    For convex, L-smooth J the notes state J(w_T) - J^* <= 2 L ||w_1 - w^*||^2 / (T + 1)^2.

    Args:
        f, w0, L, steps, grad: as :func:`gradient_descent` (the gradient is taken at the look-ahead points y_t).

    Returns:
        A :class:`SolverHistory` with ``iterates`` w_1..w_{T+1} (shape (steps + 1, d)), their ``values``, and
        ``points`` y_1..y_{T+1} (shape (steps + 1, d)).

    Raises:
        As :func:`gradient_descent`.
    """
    w = _check_common(f, w0, steps)
    eta = 1.0 / _check_L(L)
    _check_optional("grad", grad)
    y = w
    its, vals, pts = [w], [_start_value(f, w)], [y]
    for t in range(1, steps + 1):
        g = _gradient(f, y, grad)
        _finite_gradient(g, t, y, "nesterov_agd", its, vals, pts)
        w_next = y - eta * g
        y = w_next + (t / (t + 3)) * (w_next - w)
        w = w_next
        its.append(w)
        vals.append(_value(f, w))
        pts.append(y)
    return _history("nesterov_agd", its, vals, pts)


def newton(
    f: Objective,
    w0: torch.Tensor,
    steps: int,
    *,
    lr: float = 1.0,
    grad: Objective | None = None,
    hessian: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> SolverHistory:
    """Newton's method (Theorem A.1): w_{t+1} = w_t - lr (grad^2 J(w_t))^{-1} grad J(w_t), for t = 1..steps.

    ``lr = 1`` is the pure Newton step of Theorem A.1 (Lemma S.6: ||w_{t+1} - w^*|| <= (L/2m) ||w_t - w^*||^2
    inside the Newton ball); ``lr < 1`` is the damped step A.2.1 names as a globalization.

    Args:
        f, w0, steps: as :func:`gradient_descent`.
        lr: the step size in (0, 1] (default 1: pure Newton).
        grad: optional callable w -> grad J(w) of shape (d,), used instead of autograd.
        hessian: optional callable w -> grad^2 J(w) of shape (d, d) (or any shape with d*d entries), used
            instead of autograd.

    Returns:
        A :class:`SolverHistory` with ``iterates`` of shape (steps + 1, d) and ``values`` (``inf`` where J
        overflows, as e^w - w beyond w ~ 709).

    Raises:
        TypeError, ValueError: as :func:`gradient_descent`; ``lr`` outside (0, 1].
        SolverError (a RuntimeError): at step t the Hessian is singular (reciprocal condition number below
            d * machine epsilon) or not finite, or the gradient is not finite; the message names the step, and
            ``.history`` holds the iterates up to w_t.
    """
    w = _check_common(f, w0, steps)
    lr_v = _checks.number(lr, "lr")
    if not (0 < lr_v <= 1):
        raise ValueError(f"lr must lie in (0, 1], got {lr!r}")
    lr = lr_v
    _check_optional("grad", grad)
    _check_optional("hessian", hessian)
    d = w.numel()
    its, vals = [w], [_start_value(f, w)]
    for t in range(1, steps + 1):
        g = _gradient(f, w, grad)
        _finite_gradient(g, t, w, "newton", its, vals)
        h = _hessian(f, w, hessian)
        if not torch.isfinite(h).all():
            raise SolverError(f"newton: step {t}: the Hessian at w_{t} is not finite", t, _history("newton", its, vals))
        s = torch.linalg.svdvals(h)
        if s[0] == 0 or s[-1] / s[0] < d * torch.finfo(torch.float64).eps:
            raise SolverError(
                f"newton: step {t}: the Hessian at w_{t} is singular (singular values {s.min():.3g} .. "
                f"{s.max():.3g}); Newton's step (grad^2 J)^-1 grad J is undefined",
                t,
                _history("newton", its, vals),
            )
        w = w - lr * torch.linalg.solve(h, g)
        its.append(w)
        vals.append(_value(f, w))
    return _history("newton", its, vals)
