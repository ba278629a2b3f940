"""Matrix views of tensors: how a method that works on matrices reads a parameter of any order.

A matrix (m, n) is used as it is; a tensor of order k > 2 (a convolution weight (out, in, kh, kw)) as its
(shape[0], product of the rest) flattening; a vector (n,) as an (n, 1) column; a scalar as (1, 1). Muon,
Steepest and IdealizedShampoo use this view (Sections 6.2.1 and 7); Adafactor and AdamNMF instead factor over
the last two dimensions, one matrix per leading index.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["matrix_view_shape", "as_matrix"]


def matrix_view_shape(shape: Sequence[int]) -> tuple[int, int]:
    """The (m, n) a tensor of ``shape`` is viewed as: (d,) -> (d, 1), () -> (1, 1), (m, n, ...) -> (m, n * ...)."""
    if len(shape) == 0:
        return (1, 1)
    if len(shape) == 1:
        return (shape[0], 1)
    return (shape[0], math.prod(shape[1:]))


def as_matrix(t: torch.Tensor) -> torch.Tensor:
    """``t`` viewed as the matrix of :func:`matrix_view_shape` (same dtype and device; a view where possible)."""
    return t if t.dim() == 2 else t.reshape(matrix_view_shape(t.shape))
