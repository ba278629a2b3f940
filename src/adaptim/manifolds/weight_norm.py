"""Weight normalization (Section 8.1.4; Salimans and Kingma, 2016) seen from the weight w = s v / ||v||.

The model side is PyTorch's own ``torch.nn.utils.parametrizations.weight_norm`` (``original0`` is the scale s,
``original1`` the direction v; with ``dim=0`` on a (D, d) weight each row has its own s and v). adaptim adds the
analysis of the notes: the gradients (74) of v and s in terms of the gradient g_w of w, and the matrix of (75)
by which one SGD step on (v, s) preconditions the step of w to first order. Lemma 8.1 (a frozen scale s = r turns
SGD on v into the classical update (72) with lr alpha_t = eta r^2 / ||v_t||^2) is checked in the tests.
"""

from __future__ import annotations

import torch

from adaptim.manifolds.sphere import safe_norm
from adaptim.validation import check_tensor

__all__ = ["weight_norm_gradients", "weight_norm_preconditioner"]


def _scale_shape(s: torch.Tensor | float, v: torch.Tensor) -> torch.Tensor:
    s = torch.as_tensor(s, dtype=v.dtype, device=v.device)
    rows = v.shape[0] if v.dim() == 2 else 1
    if s.numel() != rows:
        raise ValueError(
            f"s must have one entry per vector of v ({rows} for v of shape {tuple(v.shape)}), got shape "
            f"{tuple(s.shape)}"
        )
    return s.reshape(-1, 1) if v.dim() == 2 else s.reshape(())


def weight_norm_gradients(
    v: torch.Tensor, s: torch.Tensor | float, g_w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients (74) of the direction v and the scale s of w = s v / ||v||_2, from the gradient g_w of w:

        g_v = (s / ||v||) (I - vbar vbar^T) g_w = (s / ||v||) g_w_perp,     g_s = vbar^T g_w,   vbar = v / ||v||.

    Args:
        v: the direction, shape (d,), or (D, d) for one vector per row (``weight_norm(..., dim=0)`` on a (D, d)
            weight); float32/float64, no zero vector.
        s: the scale: a number or 0-dim tensor for a vector v, D entries (shape (D,) or (D, 1)) for a matrix.
        g_w: dL/dw, v's shape.

    Returns:
        ``(g_v, g_s)``: g_v of v's shape, g_s of s's shape (a 0-dim tensor for a number).

    Raises:
        ValueError: v not 1- or 2-dimensional, g_w of another shape, s of the wrong size, a zero vector in v.
    """
    check_tensor("v", v, ndim=(1, 2), floating=True)
    check_tensor("g_w", g_w, shape=tuple(v.shape))
    s_in = torch.as_tensor(s, dtype=v.dtype, device=v.device)
    s_b = _scale_shape(s, v)
    n = safe_norm(v, dim=-1, keepdim=True)
    if bool((n == 0).any()):
        raise ValueError("v has a zero vector: w = s v / ||v|| is undefined there")
    vbar = v / n
    g_s = (vbar * g_w).sum(dim=-1, keepdim=True)
    g_perp = g_w - g_s * vbar
    g_v = s_b / n * g_perp
    return g_v, g_s.reshape(s_in.shape)


def weight_norm_preconditioner(v: torch.Tensor, s: torch.Tensor | float) -> torch.Tensor:
    """The d x d matrix P of (75): Delta w ~ -eta P g_w for one SGD step of lr eta on (v, s),

        P = (s^2 / ||v||^2) (I - vbar vbar^T) + vbar vbar^T:

    tangential factor s^2 / ||v||^2, radial factor 1 (the identity when s = ||v||).

    Args:
        v: the direction, shape (d,), float32/float64, nonzero.   s: the scale, a number or 0-dim tensor.

    Returns:
        P, shape (d, d), v's dtype (symmetric positive definite).

    Raises:
        ValueError: v not a vector, a zero v, s not a single number.
    """
    check_tensor("v", v, ndim=1, floating=True)
    s = _scale_shape(s, v)
    n = safe_norm(v)
    if n == 0:
        raise ValueError("v is the zero vector: w = s v / ||v|| is undefined")
    vbar = v / n
    radial = torch.outer(vbar, vbar)
    eye = torch.eye(v.shape[0], dtype=v.dtype, device=v.device)
    return (s / n) ** 2 * (eye - radial) + radial
