"""Argument checks shared by :mod:`adaptim.online` and :mod:`adaptim.solvers`.

A "number" is a Python int or float, a numpy scalar (``np.float32(0.1)``, ``np.int64(3)``, a 0-d array) or a
one-entry torch tensor; bools (Python, numpy or torch) are not numbers. Every check raises ``ValueError`` with a
message that names the argument.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def number(x: Any, name: str, *, integer: bool = False) -> float | int:
    """``x`` as a Python float (an int when ``integer``); ValueError naming ``name`` for a bool, a non-number or
    (with ``integer``) a non-integer. Non-finite floats pass: the callers check the range they need."""
    kind = "an integer" if integer else "a number"
    if isinstance(x, torch.Tensor):
        if x.numel() != 1 or x.dtype == torch.bool or x.is_complex():
            raise ValueError(f"{name} must be {kind}, got a {x.dtype} tensor of shape {tuple(x.shape)}")
        x = x.item()
    elif isinstance(x, (np.generic, np.ndarray)):
        if x.size != 1 or x.dtype == np.bool_ or x.dtype.kind not in "iuf":
            raise ValueError(f"{name} must be {kind}, got {x!r}")
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"{name} must be {kind}, got {x!r} ({type(x).__name__})")
    if integer:
        if isinstance(x, float):
            raise ValueError(f"{name} must be {kind}, got {x!r}")
        return int(x)
    return float(x)


def positive(x: Any, name: str) -> float:
    """A finite number > 0."""
    v = number(x, name)
    if not (0 < v < math.inf):
        raise ValueError(f"{name} must be a finite number > 0, got {x!r}")
    return v


def finite(x: Any, name: str) -> float:
    """A finite number."""
    v = number(x, name)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    return v


def count(x: Any, name: str, low: int = 0) -> int:
    """An integer >= ``low``."""
    v = number(x, name, integer=True)
    if v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {x!r}")
    return int(v)


def finite_tensor(x: Any, name: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``x`` as a ``dtype`` tensor (detached); ValueError naming ``name`` if it is not numeric or not finite."""
    try:
        t = x.detach().to(dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{name} must be an array of numbers: {e}") from None
    t = t.to(dtype)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite (no NaN or inf entries)")
    return t


def spd(A: Any, name: str = "A", *, rtol: float = 1e-12) -> None:
    """ValueError naming ``name`` unless every trailing (d, d) matrix of the float64 tensor ``A`` is finite,
    symmetric (to ``rtol`` of its largest entry) and positive definite (smallest eigenvalue > 0)."""
    if not torch.isfinite(A).all():
        raise ValueError(f"{name} must be finite (no NaN or inf entries)")
    scale = float(A.abs().max()) if A.numel() else 0.0
    if float((A - A.mT).abs().max()) > rtol * scale:
        raise ValueError(f"{name} must be symmetric")
    low = float(torch.linalg.eigvalsh(A).min())
    if not low > 0:
        raise ValueError(f"{name} must be positive definite; its smallest eigenvalue is {low:.3g}")


def positive_entries(a: Any, name: str = "A") -> None:
    """ValueError naming ``name`` unless the float64 tensor ``a`` (diagonal preconditioners) is finite and > 0."""
    if not torch.isfinite(a).all():
        raise ValueError(f"{name} must be finite (no NaN or inf entries)")
    if not bool((a > 0).all()):
        raise ValueError(f"{name} (a diagonal preconditioner) must have every entry > 0, got min {float(a.min()):.3g}")
