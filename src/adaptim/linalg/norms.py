"""Matrix norms, their duals, and the steepest-descent directions of (67)-(69).

Appendix K (RMS), Appendix M.1-M.2.1 (norms and the dual norm (125)), Section 7 (67)-(69) and Appendix R.2 (152).
Every function takes (..., m, n) real matrices and is batched over the leading dimensions; a norm returns a
(...)-shaped tensor. The five norms and their duals (125) under <A, B> = tr(A^T B):

    =============  ====================================  ==============
    name           ||X||                                 dual ||X||_*
    =============  ====================================  ==============
    "frobenius"    sqrt(sum_ij X_ij^2)                   "frobenius"
    "spectral"     largest singular value ||X||_2         "nuclear"
    "nuclear"      sum of singular values ||X||_nuc       "spectral"
    "inf"          max_ij |X_ij|  (||X||_{inf,elt})       "l1"
    "l1"           sum_ij |X_ij|  (||X||_{1,elt})         "inf"
    =============  ====================================  ==============

The steepest direction D(G) under a norm is a maximizer of <G, D> over ||D|| <= 1: then <G, D> = ||G||_* and,
by (152), D is a subgradient of the dual norm at G. The updates of (69) are Delta_TR = -eta D(G) and
Delta_MM = -eta ||G||_* D(G).
"""

from __future__ import annotations

import math

import torch

from adaptim.linalg.newton_schulz import orthogonalize

__all__ = [
    "NORMS",
    "DUAL_NORM",
    "rms",
    "frobenius_norm",
    "spectral_norm",
    "nuclear_norm",
    "elementwise_inf_norm",
    "elementwise_l1_norm",
    "matrix_norm",
    "dual_norm",
    "steepest_direction",
    "norm_subgradient",
]

#: each norm's dual under the trace inner product (Section 7's proof of (69), Appendix M.2.1)
DUAL_NORM: dict[str, str] = {
    "frobenius": "frobenius",
    "spectral": "nuclear",
    "nuclear": "spectral",
    "inf": "l1",
    "l1": "inf",
}
NORMS: tuple[str, ...] = tuple(DUAL_NORM)


def _check(X: torch.Tensor, name: str) -> None:
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(X).__name__}")
    if X.dim() < 2:
        raise ValueError(
            f"{name} expects (..., m, n) matrices, got shape {tuple(X.shape)}; view a vector as an (n, 1) column"
        )
    if not X.is_floating_point():
        raise TypeError(f"{name} expects a real floating-point tensor, got dtype {X.dtype}")


def _check_norm(norm: str) -> None:
    if norm not in DUAL_NORM:
        raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")


def rms(x: torch.Tensor, dim=None) -> torch.Tensor:
    """RMS(x) = ||x||_2 / sqrt(d) of Appendix K: the root mean square of the entries.

    Args:
        x: real tensor of any shape with at least one entry.
        dim: dimensions to reduce (``None``: all entries, a 0-dim result).

    Returns:
        Tensor of x's floating dtype; RMS of a scalar is its absolute value. Lower precisions are accumulated in
        float64: the squares of float32 entries beyond about 1e19 overflow (and below 1e-23 underflow).

    Raises:
        TypeError: non-floating ``x``.  ValueError: an empty reduction.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"rms expects a real floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    dims = tuple(range(x.dim())) if dim is None else ((dim,) if isinstance(dim, int) else tuple(dim))
    d = math.prod(x.shape[i] for i in dims) if x.dim() else 1
    if d == 0:
        raise ValueError("rms of an empty tensor is undefined")
    if x.dim() == 0:
        return x.abs()
    if x.dtype == torch.float64:
        return torch.linalg.vector_norm(x, dim=dims) / math.sqrt(d)
    return (torch.linalg.vector_norm(x, dim=dims, dtype=torch.float64) / math.sqrt(d)).to(x.dtype)


def frobenius_norm(X: torch.Tensor) -> torch.Tensor:
    """||X||_F = sqrt(sum_ij X_ij^2), per matrix of the batch (self-dual).

    Computed as max|X_ij| * ||X / max|X_ij|||_F: the squares of float32 entries beyond about 1e19 overflow and
    those below about 1e-23 underflow, which made G / ||G||_F zero and ||G||_F D(G) NaN in :class:`Steepest`.
    """
    _check(X, "frobenius_norm")
    if X.numel() == 0:
        return torch.linalg.matrix_norm(X, ord="fro")
    amax = X.abs().amax(dim=(-2, -1))
    scale = torch.where((amax > 0) & torch.isfinite(amax), amax, torch.ones_like(amax))
    return torch.linalg.matrix_norm(X / scale[..., None, None], ord="fro") * scale  # inf stays inf, NaN NaN


def spectral_norm(X: torch.Tensor) -> torch.Tensor:
    """||X||_2, the largest singular value, per matrix (dual of the nuclear norm)."""
    _check(X, "spectral_norm")
    return torch.linalg.matrix_norm(X, ord=2)


def nuclear_norm(X: torch.Tensor) -> torch.Tensor:
    """||X||_nuc, the sum of singular values, per matrix (dual of the spectral norm)."""
    _check(X, "nuclear_norm")
    return torch.linalg.matrix_norm(X, ord="nuc")


def elementwise_inf_norm(X: torch.Tensor) -> torch.Tensor:
    """||X||_{inf,elt} = max_ij |X_ij| (footnote 12: also the operator norm 1 -> inf), per matrix."""
    _check(X, "elementwise_inf_norm")
    return X.abs().amax(dim=(-2, -1))


def elementwise_l1_norm(X: torch.Tensor) -> torch.Tensor:
    """||X||_{1,elt} = sum_ij |X_ij|, per matrix (dual of the elementwise inf norm)."""
    _check(X, "elementwise_l1_norm")
    return X.abs().sum(dim=(-2, -1))


_NORM_FN = {
    "frobenius": frobenius_norm,
    "spectral": spectral_norm,
    "nuclear": nuclear_norm,
    "inf": elementwise_inf_norm,
    "l1": elementwise_l1_norm,
}


def matrix_norm(X: torch.Tensor, norm: str) -> torch.Tensor:
    """||X|| for ``norm`` in :data:`NORMS`, per matrix of the batch; shape X.shape[:-2].

    Raises:
        ValueError: unknown ``norm`` or fewer than 2 dimensions.  TypeError: non-floating ``X``.
    """
    _check_norm(norm)
    return _NORM_FN[norm](X)


def dual_norm(X: torch.Tensor, norm: str) -> torch.Tensor:
    """||X||_* = sup_{||W|| <= 1} <W, X> (125) of ``norm``: the norm named by ``DUAL_NORM[norm]``."""
    _check_norm(norm)
    return _NORM_FN[DUAL_NORM[norm]](X)


def _safe_div(X: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """X / n per matrix, 0 where n == 0 (no epsilon)."""
    n = n[..., None, None]
    return torch.where(n > 0, X / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(X))


def steepest_direction(G: torch.Tensor, norm: str) -> torch.Tensor:
    """A unit direction D with ||D|| = 1 maximizing <G, D>, so that <G, D> = ||G||_* ((67)-(69), Section 7).

    Descent steps along -D: (69)'s Delta_TR = -eta D and Delta_MM = -eta ||G||_* D. Closed forms:

    * "frobenius": G / ||G||_F;
    * "inf": sign(G) (entries with G_ij = 0 get 0, which keeps the maximum);
    * "spectral": U V^T of the thin SVD G = U S V^T, over the singular values above the rank tolerance;
    * "nuclear": u_1 v_1^T, the top singular pair (dual spectral norm ||G||_2 = <G, u_1 v_1^T>);
    * "l1": sign(G_ij) e_i e_j^T at the first entry of largest |G_ij|.

    Args:
        G: (..., m, n) real matrices (float32/float64; float16/bfloat16 are computed in float32 and cast back).
        norm: one of :data:`NORMS`.

    Returns:
        Tensor of G's shape and dtype; zero where G is the zero matrix (every D is optimal there).

    Raises:
        ValueError: unknown ``norm`` or fewer than 2 dimensions.  TypeError: non-floating ``G``.
        RuntimeError: non-finite ``G`` for "spectral" and "nuclear" (their SVD needs finite input).
    """
    _check(G, "steepest_direction")
    _check_norm(norm)
    X = G.to(torch.float64 if G.dtype == torch.float64 else torch.float32)
    if norm == "frobenius":
        D = _safe_div(X, frobenius_norm(X))
    elif norm == "inf":
        D = torch.sign(X)
    elif norm == "spectral":
        D = orthogonalize(X, method="svd")
    elif norm == "nuclear":
        if not bool(torch.isfinite(X).all()):
            raise RuntimeError("steepest_direction: input has non-finite entries (NaN or infinity)")
        U, S, Vh = torch.linalg.svd(X, full_matrices=False)
        D = (U[..., :, :1] @ Vh[..., :1, :]) * (S[..., :1] > 0)[..., None].to(X.dtype)
    else:  # "l1"
        flat = X.flatten(-2)
        idx = flat.abs().argmax(dim=-1, keepdim=True)
        D = torch.zeros_like(flat).scatter_(-1, idx, torch.sign(flat.gather(-1, idx))).view_as(X)
    return D.to(G.dtype)


def norm_subgradient(X: torch.Tensor, norm: str) -> torch.Tensor:
    """A subgradient Z of ||.|| at X: ||Z||_* <= 1 and <Z, X> = ||X|| (152), e.g. U V^T for the nuclear norm.

    It is the steepest direction of X under the dual norm, ``steepest_direction(X, DUAL_NORM[norm])``; at X = 0 it
    returns 0 (a valid subgradient of every norm).
    """
    _check_norm(norm)
    return steepest_direction(X, DUAL_NORM[norm])
