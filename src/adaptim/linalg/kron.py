"""Kronecker-product tools of Appendix G: row-major vec, the Kronecker product, rearrange, nearest Kronecker product.

Conventions (the notes', 1-based there, 0-based here):

* ``vec`` is *row-major* vectorization: vec(M)[i*n + j] = M[i, j] for M of shape (m, n), so
  vec([[a, b], [c, d]]) = (a, b, c, d). With it, vec(A B C) = (A ⊗ Cᵀ) vec(B)   (99).
* ``kron(A, B)`` for A (m, d), B (n, l) is (98): (A ⊗ B)[i1*n + j1, i2*l + j2] = A[i1, i2] B[j1, j2]
  (the same layout as ``torch.kron`` for matrices).
* ``rearrange`` is (102): for H of shape (m n, d l),
  rearrange(H)[i1*d + i2, j1*l + j2] = H[i1*n + j1, i2*l + j2], a (m d, n l) matrix, so that
  rearrange(A ⊗ B) = vec(A) vec(B)ᵀ   (101). Read as a 4-index array, it swaps the two middle axes
  (i1, j1, i2, j2) -> (i1, i2, j1, j2), which is why it is an involution (103).

Every function is batched over leading dimensions. Source: Van Loan and Pitsianis (1993), "Approximation with
Kronecker products"; the notes' Appendix G.
"""

from __future__ import annotations

import torch

__all__ = ["vec", "unvec", "kron", "rearrange", "nearest_kronecker_product"]


def _check_matrix(name: str, X: torch.Tensor) -> None:
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
    if X.dim() < 2:
        raise ValueError(f"{name} must have shape (..., rows, cols), got shape {tuple(X.shape)}")


def _check_shape(name: str, shape) -> tuple[int, int]:
    try:
        rows, cols = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of positive ints (rows, cols), got {shape!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"{name} must be a pair of positive ints (rows, cols), got {shape!r}")
    return rows, cols


def vec(M: torch.Tensor) -> torch.Tensor:
    """Row-major vectorization of Appendix G: vec(M)[..., i*n + j] = M[..., i, j].

    Args:
        M: (..., m, n) tensor of any dtype.

    Returns:
        (..., m*n) tensor (a view when ``M`` is contiguous).

    Raises:
        TypeError: if ``M`` is not a tensor.  ValueError: if ``M`` has fewer than 2 dimensions.
    """
    _check_matrix("M", M)
    return M.reshape(*M.shape[:-2], M.shape[-2] * M.shape[-1])


def unvec(v: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`vec`: the notes' view(v, m, n), unvec(v)[..., i, j] = v[..., i*n + j].

    Args:
        v: (..., m*n) tensor of any dtype.
        shape: (m, n), positive ints.

    Returns:
        (..., m, n) tensor (a view when ``v`` is contiguous).

    Raises:
        ValueError: if ``shape`` is not a pair of positive ints, ``v`` is 0-dimensional, or ``v.shape[-1] != m*n``.
    """
    m, n = _check_shape("shape", shape)
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"v must be a torch.Tensor, got {type(v).__name__}")
    if v.dim() < 1 or v.shape[-1] != m * n:
        raise ValueError(f"unvec: v must have shape (..., {m * n}) for shape {(m, n)}, got {tuple(v.shape)}")
    return v.reshape(*v.shape[:-1], m, n)


def kron(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Kronecker product (98), batched: (A ⊗ B)[..., i1*n + j1, i2*l + j2] = A[..., i1, i2] B[..., j1, j2].

    Unlike ``torch.kron`` (which would also take the product over the leading dimensions), leading
    dimensions are batch dimensions and broadcast against each other.

    Args:
        A: (..., m, d) tensor.  B: (..., n, l) tensor, same dtype and device as ``A``.

    Returns:
        (..., m*n, d*l) tensor, the broadcast of the batch shapes.

    Raises:
        ValueError: if either input has fewer than 2 dimensions or the batch shapes do not broadcast.
    """
    _check_matrix("A", A)
    _check_matrix("B", B)
    (m, d), (n, l) = A.shape[-2:], B.shape[-2:]
    try:
        batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    except RuntimeError:
        raise ValueError(f"kron: batch shapes of A {tuple(A.shape)} and B {tuple(B.shape)} do not broadcast") from None
    # (..., m, 1, d, 1) * (..., 1, n, 1, l) -> index order (i1, j1, i2, j2), then merge (i1, j1) and (i2, j2).
    C = A[..., :, None, :, None] * B[..., None, :, None, :]
    return C.reshape(*batch, m * n, d * l)


def rearrange(H: torch.Tensor, shape_a: tuple[int, int], shape_b: tuple[int, int]) -> torch.Tensor:
    """The rearrangement (102): rearrange(H)[..., i1*d + i2, j1*l + j2] = H[..., i1*n + j1, i2*l + j2].

    With shape_a = (m, d) and shape_b = (n, l), it maps an (m n, d l) matrix to an (m d, n l) matrix so
    that rearrange(A ⊗ B) = vec(A) vec(B)ᵀ (101) for A of shape (m, d) and B of shape (n, l). It is linear
    and only permutes entries, so Frobenius norms are kept (Lemma G.1).

    Involution (103): it swaps the middle two axes of the 4-index view (i1, j1, i2, j2), so applying the swap
    again recovers H. In this function's arguments the second application reads its (m d, n l) input with
    shape_a = (m, n) and shape_b = (d, l)::

        rearrange(rearrange(H, (m, d), (n, l)), (m, n), (d, l)) == H

    (with n == d the two calls coincide).

    Args:
        H: (..., m*n, d*l) tensor of any dtype.
        shape_a: (m, d), the shape of the left Kronecker factor.
        shape_b: (n, l), the shape of the right Kronecker factor.

    Returns:
        (..., m*d, n*l) tensor.

    Raises:
        ValueError: if the shapes are not pairs of positive ints or H's last two dimensions are not (m n, d l).
    """
    _check_matrix("H", H)
    m, d = _check_shape("shape_a", shape_a)
    n, l = _check_shape("shape_b", shape_b)
    if tuple(H.shape[-2:]) != (m * n, d * l):
        raise ValueError(
            f"rearrange: H must have shape (..., m*n, d*l) = (..., {m * n}, {d * l}) for shape_a "
            f"{(m, d)} and shape_b {(n, l)}, got {tuple(H.shape)}"
        )
    batch = H.shape[:-2]
    H4 = H.reshape(*batch, m, n, d, l)
    return H4.transpose(-3, -2).reshape(*batch, m * d, n * l)


def nearest_kronecker_product(
    C: torch.Tensor, shape_a: tuple[int, int], shape_b: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest Kronecker product in Frobenius norm (Corollary G.2): argmin_{A, B} ‖C − A ⊗ B‖_F.

    By Lemma G.1 the problem is the best rank-1 approximation of rearrange(C) (102), solved by its top
    singular triple (σ1, u1, v1): A⋆ = a·unvec(u1, (m, d)), B⋆ = b·unvec(v1, (n, l)) with a·b = σ1. This
    function takes the balanced split a = b = √σ1, so ‖A⋆‖_F = ‖B⋆‖_F = √σ1, and fixes the sign of the
    pair (u1, v1) (which A⋆ ⊗ B⋆ does not depend on) so that the entry of A⋆ largest in magnitude is
    positive (the first in row-major order on ties); for symmetric PSD C, whose nearest factors can be
    taken PSD (Van Loan and Pitsianis, 1993), this makes both factors PSD. C = 0 gives A⋆ = B⋆ = 0.

    Args:
        C: (..., m*n, d*l) tensor, float32 or float64.
        shape_a: (m, d).  shape_b: (n, l).

    Returns:
        (A⋆, B⋆): tensors of shapes (..., m, d) and (..., n, l) and C's dtype.

    Raises:
        TypeError: if C is not float32/float64.
        ValueError: if the shapes do not match (see :func:`rearrange`) or C holds NaN or infinity.
    """
    _check_matrix("C", C)
    if C.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"nearest_kronecker_product: C must be float32 or float64, got {C.dtype}")
    R = rearrange(C, shape_a, shape_b)
    if not bool(torch.isfinite(C).all()):
        raise ValueError("nearest_kronecker_product: C has non-finite entries")
    U, S, Vh = torch.linalg.svd(R, full_matrices=False)
    u1, s1, v1 = U[..., :, 0], S[..., 0], Vh[..., 0, :]
    # Fix the joint sign so the output is deterministic: largest-|.| entry of u1 positive.
    pivot = u1.gather(-1, u1.abs().argmax(dim=-1, keepdim=True))
    sign = torch.where(pivot < 0, -1.0, 1.0).to(C.dtype)
    scale = s1.sqrt().unsqueeze(-1) * sign
    return unvec(u1 * scale, shape_a), unvec(v1 * scale, shape_b)
