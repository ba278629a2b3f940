"""Powers of symmetric positive semi-definite matrices (roots and inverse roots).

Used by full-matrix AdaGrad (Section 3.2.1, A_t = O_t^{1/2}) and every matrix root of the notes.
"""

from __future__ import annotations

import torch

__all__ = ["psd_power"]


def psd_power(A: torch.Tensor, exponent: float, eps: float = 0.0, *, rtol: float = 0.0) -> torch.Tensor:
    """Return (A + eps I)^exponent for symmetric PSD ``A`` via a symmetric eigendecomposition.

    Eigenvalues are clamped at 0 (rounding can make them slightly negative) before the damping ``eps`` is
    added, so a singular ``A`` with ``eps > 0`` has a finite inverse root. With ``rtol > 0`` they are first
    raised to at least ``rtol`` times the matrix's largest eigenvalue: eigenvalues below the resolution of A's
    dtype (about n * unit roundoff * lambda_max) are rounding noise, and a negative exponent with a tiny ``eps``
    would otherwise amplify the noise directions (e.g. a float32 g g^T to the power -1/2 with eps = 1e-12).

    Args:
        A: (..., n, n) symmetric PSD matrices, float32 or float64 (batched over leading dimensions). Only the
            symmetric part is used.
        exponent: the power, e.g. 0.5, -0.5, -0.25.
        eps: damping added to every eigenvalue, >= 0.
        rtol: relative eigenvalue floor in [0, 1) (default 0: off), applied per matrix before ``eps``.

    Returns:
        (..., n, n) tensor of A's dtype.

    Raises:
        ValueError: if ``A`` is not a batch of square matrices, ``eps < 0``, or ``exponent < 0`` with
            ``eps == 0`` and ``A`` singular (the result would be infinite).
        RuntimeError: if ``A`` holds NaN or infinity.
    """
    if A.dim() < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"psd_power expects (..., n, n) square matrices, got shape {tuple(A.shape)}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if not 0 <= rtol < 1:
        raise ValueError(f"rtol must lie in [0, 1), got {rtol}")
    if not torch.isfinite(A).all():
        raise RuntimeError("psd_power: input matrix has non-finite entries")
    sym = A / 2 + A.transpose(-1, -2) / 2  # equal to (A + A^T) / 2, which overflows for entries beyond max / 2
    # eigh rescales a matrix whose norm lies outside about [1e-15, 1e15] (float32) itself, and then returned NaN
    # for entries from 1e31 down to 1e-28; a power-of-two scale to max |A_ij| in [1, 2) is exact and avoids that.
    # Entries below eps^2 of it then move no eigenvalue beyond eigh's own error (eps ||A||): flushing them keeps
    # subnormals, on which LAPACK fails to converge or returns NaN, out of eigh.
    amax = sym.abs().amax(dim=(-2, -1), keepdim=True)
    scale = torch.where(amax > 0, torch.exp2(torch.floor(torch.log2(amax))), torch.ones_like(amax))
    sym = sym / scale
    sym = torch.where(sym.abs() < torch.finfo(sym.dtype).eps ** 2, torch.zeros_like(sym), sym)
    evals, evecs = torch.linalg.eigh(sym)
    evals = (evals * scale.squeeze(-1)).clamp_min(0)
    if rtol > 0:  # eigh returns ascending eigenvalues: the last one is lambda_max
        evals = torch.maximum(evals, rtol * evals[..., -1:])
    evals = evals + eps
    if exponent < 0 and bool((evals == 0).any()):
        raise ValueError("psd_power: a negative exponent of a singular matrix needs eps > 0")
    return (evecs * evals.pow(exponent).unsqueeze(-2)) @ evecs.transpose(-1, -2)
