"""Newton-Schulz orthogonalization: the odd-polynomial iteration (147) of Appendix Q.3.1, and UV^T by SVD.

For X = U S V^T (thin SVD), ``orthogonalize(X)`` returns the "Muon direction" U V^T of (69) and Orth(X) of (77).
Newton-Schulz approximates it with matrix products only: X_0 = X / ||X||_F puts every singular value in (0, 1],
and each step

    X_{k+1} = c_1 X_k + c_2 (X_k X_k^T) X_k + ... + c_P (X_k X_k^T)^{P-1} X_k = U phi(S_k) V^T      (147)

applies the odd polynomial phi(x) = sum_i c_i x^{2i-1} to every singular value, pushing it toward 1 (146).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from fractions import Fraction

import torch

__all__ = [
    "NS_COEFFICIENTS",
    "NS_DTYPES",
    "newton_schulz",
    "newton_schulz_coefficients",
    "orthogonalize",
    "resolve_ns_coefficients",
    "resolve_ns_dtype",
    "check_ns_bounded",
]

#: named coefficient sets (c_1, ..., c_P) of Appendix Q.3.1
NS_COEFFICIENTS: dict[str, tuple[float, ...]] = {
    # Jordan et al. (2024): steep at 0, flattens every singular value in [3e-3, 1] to about [0.68, 1.21] in 5 steps
    "jordan": (3.4445, -4.7750, 2.0315),
    # phi(1) = 1, phi'(1) = 0: quadratic local convergence (P = 2)
    "cubic": (1.5, -0.5),
    # phi(1) = 1, phi'(1) = phi''(1) = 0: cubic local convergence (P = 3)
    "quintic": (1.875, -1.25, 0.375),
}

Coefficients = str | Sequence[float]

#: the precisions Newton-Schulz may run in, by name (``dtype`` of :func:`newton_schulz`, Muon's ``ns_dtype``)
NS_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def resolve_ns_dtype(ns_dtype: str | torch.dtype | None) -> torch.dtype | None:
    """The torch dtype named by ``ns_dtype``: None, a name of :data:`NS_DTYPES` or one of its torch dtypes.

    Raises:
        ValueError: any other value (float16 included), naming ``ns_dtype`` and the accepted values.
    """
    if ns_dtype is None:
        return None
    if isinstance(ns_dtype, str) and ns_dtype in NS_DTYPES:
        return NS_DTYPES[ns_dtype]
    if isinstance(ns_dtype, torch.dtype) and ns_dtype in NS_DTYPES.values():
        return ns_dtype
    raise ValueError(
        f"ns_dtype must be None, one of {sorted(NS_DTYPES)} or the torch dtype of one of them, got {ns_dtype!r}"
    )


def newton_schulz_coefficients(P: int) -> tuple[float, ...]:
    """Solve the linear system of Appendix Q.3.1 for the coefficients of phi(x) = sum_{i=1}^P c_i x^{2i-1}.

    The P equations are phi(1) = sum_i c_i = 1 and phi^(k)(1) = sum_i c_i (2i-1)!/(2i-1-k)! = 0 for
    k = 1, ..., P-1, so the local convergence of x -> phi(x) to 1 has order P (Q.3). The system is solved exactly in
    rational arithmetic. P = 2 gives (3/2, -1/2) and P = 3 gives (15/8, -5/4, 3/8), as in the notes.

    Args:
        P: number of terms, an int >= 2.

    Returns:
        (c_1, ..., c_P) as Python floats.

    Raises:
        ValueError: if ``P`` is not an int >= 2.
    """
    if isinstance(P, bool) or not isinstance(P, int) or P < 2:
        raise ValueError(f"P must be an int >= 2, got {P!r}")

    def falling(n: int, k: int) -> int:  # n (n-1) ... (n-k+1): the k-th derivative of x^n at x = 1
        out = 1
        for j in range(k):
            out *= n - j
        return out

    # rows: derivative order k = 0..P-1; columns: c_1..c_P (exponent 2i-1); right side e_0
    rows = [[Fraction(falling(2 * i - 1, k)) for i in range(1, P + 1)] + [Fraction(int(k == 0))] for k in range(P)]
    for col in range(P):  # Gauss-Jordan elimination with exact fractions
        pivot = next(r for r in range(col, P) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        rows[col] = [v / rows[col][col] for v in rows[col]]
        for r in range(P):
            if r != col and rows[r][col] != 0:
                f = rows[r][col]
                rows[r] = [a - f * b for a, b in zip(rows[r], rows[col])]
    return tuple(float(rows[i][P]) for i in range(P))


def resolve_ns_coefficients(coefficients: Coefficients) -> tuple[float, ...]:
    """Return the coefficient tuple (c_1, ..., c_P) named by ``coefficients`` or given explicitly.

    Raises:
        ValueError: an unknown name, or a sequence that is not at least one finite real number.
    """
    if isinstance(coefficients, str):
        if coefficients not in NS_COEFFICIENTS:
            raise ValueError(
                f"coefficients must be one of {sorted(NS_COEFFICIENTS)} or a tuple of floats "
                f"(c_1, ..., c_P), got {coefficients!r}"
            )
        return NS_COEFFICIENTS[coefficients]
    try:
        items = list(coefficients)
        coeffs = tuple(float(c) for c in items)
    except (TypeError, ValueError):
        raise ValueError(f"coefficients must be a name or a sequence of real numbers, got {coefficients!r}") from None
    if not coeffs or any(isinstance(c, bool) for c in items) or not all(math.isfinite(c) for c in coeffs):
        raise ValueError(f"coefficients must be a non-empty sequence of finite real numbers, got {coefficients!r}")
    return coeffs


def check_ns_bounded(coefficients: Coefficients, steps: int) -> None:
    """Refuse coefficients whose scalar map (147), iterated ``steps`` times, leaves [-2, 2] on [0, 1].

    Newton-Schulz acts on each normalized singular value x in [0, 1] by phi(x) = sum_i c_i x^(2i-1); a map that
    blows up there would give inf or huge outputs without any error. The map is evaluated on a grid of 2001
    points of [0, 1] in float64.

    Args:
        coefficients: a name of :data:`NS_COEFFICIENTS` or a sequence (c_1, ..., c_P).
        steps: the number of iterations, an int >= 0.

    Raises:
        ValueError: bad ``coefficients`` (as :func:`resolve_ns_coefficients`), or iterates leaving [-2, 2]; the
            message names ``ns_coefficients`` and ``ns_steps``, as Muon spells them.
    """
    coeffs = resolve_ns_coefficients(coefficients)
    _check_ns_bounded_cached(tuple(coeffs), steps)


@functools.lru_cache(maxsize=64)  # optimizers re-validate a changed group (lr under a scheduler): keep that cheap
def _check_ns_bounded_cached(coeffs: tuple[float, ...], steps: int) -> None:
    x = torch.linspace(0.0, 1.0, 2001, dtype=torch.float64)
    for _ in range(steps):
        x = sum(c * x ** (2 * i + 1) for i, c in enumerate(coeffs))
        if not bool(torch.isfinite(x).all()) or float(x.abs().max()) > 2.0:
            raise ValueError(
                f"ns_coefficients {tuple(coeffs)} with ns_steps={steps} do not keep singular values "
                "bounded: iterated on [0, 1] the polynomial leaves [-2, 2]; use 'jordan', 'cubic', "
                "'quintic' or coefficients from adaptim.linalg.newton_schulz_coefficients"
            )


def _check_matrix(X: torch.Tensor, name: str) -> None:
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(X).__name__}")
    if X.dim() < 2:
        raise ValueError(f"{name} expects (..., m, n) matrices, got shape {tuple(X.shape)}")
    if not X.is_floating_point():
        raise TypeError(f"{name} expects a real floating-point tensor, got dtype {X.dtype}")


def _unit_frobenius(X: torch.Tensor) -> torch.Tensor:
    """X / ||X||_F per matrix, zero where X is zero, exact in scale: divide by max |x_ij| first.

    Squares of float32 entries below about 1e-19 underflow (the Frobenius norm of a 1e-20-scaled matrix would
    be 0), so the norm is taken of X / max|X|, whose entries lie in [-1, 1]. No epsilon is added: an additive
    guard (such as a norm clamped at 1e-7) breaks the invariance X -> cX for small c.

    Raises:
        RuntimeError: if X holds NaN or infinity (one reduction per matrix is checked, not every entry).
    """
    amax = X.abs().amax(dim=(-2, -1), keepdim=True)
    if not bool(torch.isfinite(amax).all()):
        raise RuntimeError("newton_schulz: input has non-finite entries (NaN or infinity)")
    nonzero = amax > 0
    Y = X / torch.where(nonzero, amax, torch.ones_like(amax))
    norm = torch.linalg.matrix_norm(Y, keepdim=True)  # in [1, sqrt(mn)] where nonzero
    return Y / torch.where(nonzero, norm, torch.ones_like(norm))  # zero matrices stay exactly zero


def newton_schulz(
    X: torch.Tensor,
    coefficients: Coefficients = "jordan",
    steps: int = 5,
    *,
    dtype: str | torch.dtype | None = None,
    fused: bool = False,
) -> torch.Tensor:
    """Approximate U V^T of X = U S V^T by ``steps`` iterations of (147) on X / ||X||_F (Appendix Q.3.1).

    Each step computes A = X_k X_k^T, B = c_2 A + c_3 A^2 + ... + c_P A^{P-1} (Horner) and
    X_{k+1} = c_1 X_k + B X_k. A tall matrix (m > n) is transposed first so that the Gram matrix A is the smaller
    (min(m, n) square) one, and transposed back. The result is U phi^steps(S / ||S||_2) V^T: singular vectors
    are exact, singular values approximate 1 (with "jordan" they land in about [0.68, 1.21], not at 1).

    The literal path (``fused=False``, the reference) writes each step as above, with separate scalings and
    additions. The fused path writes it with matrix multiply-adds (``torch.baddbmm`` with ``beta``/``alpha``):
    for P = 3 one step is A = X X^T, B = c_2 A + c_3 A A, X <- c_1 X + B X, three GEMM calls and no elementwise
    pass (P - 1 + 1 calls in general). It is the same polynomial; only the rounding differs (float32: the two
    agree to about 1e-6 relative in the Frobenius norm).

    Args:
        X: (..., m, n) real matrices, batched over leading dimensions. By default float32 and float64 are computed
            in their own precision; float16/bfloat16 are computed in float32. The result is cast back.
        coefficients: "jordan" (3.4445, -4.7750, 2.0315) (Jordan et al., 2024), "cubic" (3/2, -1/2), "quintic"
            (15/8, -5/4, 3/8), or an explicit sequence (c_1, ..., c_P) with P >= 1.
        steps: number of iterations K, an int >= 0 (0 returns X / ||X||_F).
        dtype: the precision of the iteration: None (the default above), or "float32", "float64", "bfloat16"
            (or the torch dtype). The normalization X / ||X||_F is always taken in float32 or wider and then cast;
            with "bfloat16" the matrix products run in bfloat16 (fast where the hardware multiplies bfloat16,
            such as GPUs; much slower than float32 on CPUs without bfloat16 matrix units).
        fused: use the fused multiply-add form of each step instead of the literal one.

    Returns:
        Tensor of X's shape and dtype. A zero matrix gives exactly zero. The result is invariant to X -> cX for
        any c > 0 up to rounding (no epsilon guard), also for tiny scales such as c = 1e-12 in float32.

    Raises:
        TypeError: ``X`` not a real floating-point tensor.
        ValueError: ``X`` with fewer than 2 dimensions, bad ``coefficients``, ``steps`` or ``dtype``.
        RuntimeError: ``X`` holds NaN or infinity.
    """
    _check_matrix(X, "newton_schulz")
    coeffs = resolve_ns_coefficients(coefficients)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    work_dtype = resolve_ns_dtype(dtype)
    if work_dtype is None:
        work_dtype = torch.float64 if X.dtype == torch.float64 else torch.float32
    # the normalization needs float32's exponent range and precision at least (a bfloat16 norm is off by ~0.4%)
    Y = X.to(torch.promote_types(work_dtype, torch.float32))
    tall = Y.shape[-2] > Y.shape[-1]
    if tall:
        Y = Y.mT
    Y = _unit_frobenius(Y).to(work_dtype)
    Y = _ns_fused(Y, coeffs, steps) if fused else _ns_literal(Y, coeffs, steps)
    if tall:
        Y = Y.mT
    return Y.to(X.dtype).contiguous()


def _ns_literal(Y: torch.Tensor, coeffs: tuple[float, ...], steps: int) -> torch.Tensor:
    c1, rest = coeffs[0], coeffs[1:]
    for _ in range(steps):
        if not rest:
            Y = c1 * Y
            continue
        A = Y @ Y.mT
        B = rest[-1] * A
        for c in reversed(rest[:-1]):
            B = c * A + B @ A
        Y = c1 * Y + B @ Y
    return Y


def _ns_fused(Y: torch.Tensor, coeffs: tuple[float, ...], steps: int) -> torch.Tensor:
    c1, rest = coeffs[0], coeffs[1:]
    if not rest:
        return _ns_literal(Y, coeffs, steps)
    shape = Y.shape
    Y = Y.reshape(-1, shape[-2], shape[-1])  # baddbmm takes one batch dimension
    for _ in range(steps):
        A = torch.bmm(Y, Y.mT)
        if len(rest) == 1:
            B = A
            alpha = rest[0]
        else:  # Horner with the innermost two terms in one call: c_{P-1} A + c_P A A
            B = torch.baddbmm(A, A, A, beta=rest[-2], alpha=rest[-1])
            for c in reversed(rest[:-2]):
                B = torch.baddbmm(A, B, A, beta=c)
            alpha = 1.0
        Y = torch.baddbmm(Y, B, Y, beta=c1, alpha=alpha)
    return Y.reshape(shape)


def _svd_polar(X: torch.Tensor) -> torch.Tensor:
    """U_r V_r^T over the singular values above the rank tolerance (zero matrix -> zero)."""
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    # the tolerance of torch.linalg.matrix_rank: singular values below it are treated as exact zeros, whose
    # singular vectors are arbitrary and would otherwise enter U V^T
    tol = S.amax(dim=-1, keepdim=True) * max(X.shape[-2], X.shape[-1]) * torch.finfo(X.dtype).eps
    keep = (tol < S).to(X.dtype)
    return (U * keep.unsqueeze(-2)) @ Vh


def orthogonalize(
    X: torch.Tensor, method: str = "newton_schulz", coefficients: Coefficients = "jordan", steps: int = 5
) -> torch.Tensor:
    """Orth(X) = U V^T of (69) and (77), for X = U S V^T, exactly by SVD or approximately by Newton-Schulz.

    Args:
        X: (..., m, n) real matrices (batched). float16/bfloat16 are computed in float32.
        method: "svd" for the exact U_r V_r^T, where only singular values above the rank tolerance
            max(S) * max(m, n) * eps(dtype) count (so zero maps to zero and the result is a steepest direction of
            (69) with spectral norm 1); or "newton_schulz" for :func:`newton_schulz` with ``coefficients`` and
            ``steps``.
        coefficients, steps: passed to :func:`newton_schulz` (ignored by "svd").

    Returns:
        Tensor of X's shape and dtype.

    Raises:
        TypeError, ValueError: as :func:`newton_schulz`; ``ValueError`` for an unknown ``method``.
        RuntimeError: non-finite input.
    """
    _check_matrix(X, "orthogonalize")
    if method == "newton_schulz":
        return newton_schulz(X, coefficients, steps)
    if method != "svd":
        raise ValueError(f"method must be 'newton_schulz' or 'svd', got {method!r}")
    work_dtype = torch.float64 if X.dtype == torch.float64 else torch.float32
    Y = X.to(work_dtype)
    if not bool(torch.isfinite(Y).all()):
        raise RuntimeError("orthogonalize: input has non-finite entries (NaN or infinity)")
    return _svd_polar(Y).to(X.dtype)
