"""Nonnegative matrix factorization under the I-divergence (Appendix L; Section 4.7).

For a nonnegative C (m x n) and a rank r, find nonnegative A (m x r) and B (r x n) with C ~ AB by minimizing

    IDiv(C, AB) = sum_ij  C_ij log(C_ij / (AB)_ij) - C_ij + (AB)_ij                          (119)-(120)

* :func:`idiv` evaluates (119) with the conventions 0 log 0 = 0 and 0/0 = 0.
* :func:`nmf_step` is one round of EM for the Poisson model of Appendix L.1: the E-step ratio R = C / AB and
  the multiplicative updates (123)-(124).
* :func:`nmf` runs :func:`nmf_step` from a seeded uniform initialization (or given factors).
* :func:`rank1_nmf` is the closed-form rank-1 minimizer of Section 4.7 / Appendix L ("Rank one").

Everything is batched over leading dimensions (C of shape (..., m, n), A (..., m, r), B (..., r, n)) and works
in the input's floating dtype (float32 or float64).

**Reading of (124).** The matrix form printed in the notes has two typos and one ambiguity:
``A R^T`` in B's numerator does not conform and is ``A^T R`` (as in the index form (123)); and the box of L.2
normalizes B by ``A_{t-1}^T 1_m``. Normalizing by the *updated* ``A'^T 1_m`` instead is what makes the step
"one round of EM": with the posterior of (121) held fixed, A' and then B' solve the M-step exactly (it splits
into one rank-1 Poisson fit per component k, which one A-then-B sweep solves), so EM's guarantee
IDiv(C, A'B') <= IDiv(C, AB) holds. With the old ``A^T 1_m`` the step is not monotone and, for r = 1, the
total mass of AB oscillates (sum A'B' = (sum C)^2 / sum AB) instead of converging; tests/linalg/test_nmf.py
shows both. A side effect of the EM form: each step keeps B's row sums B 1_n unchanged.
"""

from __future__ import annotations

import torch

__all__ = ["idiv", "nmf_step", "nmf", "rank1_nmf"]


def _check_nonneg_float(name: str, x: torch.Tensor, min_dim: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions, got shape {tuple(x.shape)}")
    if bool((x < 0).any()) or not bool(x.isfinite().all()):
        raise ValueError(f"{name} must be finite and nonnegative")


def idiv(X: torch.Tensor, Y: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """The I-divergence (119) summed over ``dim``: sum X log(X/Y) - X + Y, with 0 log 0 = 0.

    Args:
        X, Y: nonnegative floating tensors of the same shape.
        dim: the dimensions to sum over; ``None`` (default) sums everything (the notes' multi-dimensional IDiv),
            ``(-2, -1)`` gives one value per matrix of a batch.

    Returns:
        A tensor of X's dtype: 0 when X == Y, positive otherwise, +inf where some X > 0 meets Y == 0.

    Raises:
        TypeError: non-float input.   ValueError: shapes differ, or a negative or non-finite entry.
    """
    _check_nonneg_float("X", X, 0)
    _check_nonneg_float("Y", Y, 0)
    if X.shape != Y.shape:
        raise ValueError(f"X and Y must have the same shape, got {tuple(X.shape)} and {tuple(Y.shape)}")
    # xlogy(x, y) = x log y with 0 at x = 0, so terms with X = 0 contribute exactly Y.
    terms = torch.xlogy(X, X) - torch.xlogy(X, Y) - X + Y
    return terms.sum() if dim is None else terms.sum(dim=dim)


def nmf_step(
    C: torch.Tensor, A: torch.Tensor, B: torch.Tensor, *, balance: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """One EM round (123)-(124) for C ~ AB under the I-divergence; returns new (A', B'), inputs untouched.

        R  = C / AB                                   (E-step: the posterior weights of (121), in ratio form)
        A' = A * (R B^T) / (B 1_n)^T                  (124)
        B' = B * (A^T R) / (A'^T 1_m)                 (124), normalized by the updated A' (see module doc)

    Never increases ``idiv(C, A @ B)``. Nonnegativity is preserved; zeros stay zeros (a multiplicative
    update cannot leave 0), so start from strictly positive factors.

    Args:
        C: (..., m, n) nonnegative target.   A: (..., m, r), B: (..., r, n) nonnegative factors; leading
            dimensions broadcast as in ``torch.matmul``. All of one floating dtype.
        balance: return A' D, D^{-1} B' instead (the same product and, the round being equivariant under this
            rescaling, the same later iterates), with D the positive diagonal that gives each component k
            equal sums A'^T 1_m = B' 1_n. B's row sums are then no longer kept: without it they are, so A' alone
            carries C's scale, and a warm-started factorization whose target grows from about 1e-30 to 1e36
            would overflow float32 in A' (AdamNMF balances for that reason).

    Returns:
        (A', B') of the shapes of A and B.

    Numerics: AB is floored at the dtype's smallest normal number before dividing, so 0/0 gives 0 (the notes'
    convention) rather than NaN; a component whose normalizer is 0 (an all-zero column of A' or row of B)
    keeps its old factor, which does not change the product. The round is computed on C and AB divided by
    their means (it is equivariant in both scales), so R cannot overflow when their scales differ widely.

    Raises:
        ValueError: shapes that do not conform.
    """
    if C.dim() < 2 or A.dim() < 2 or B.dim() < 2:
        raise ValueError("C, A and B must have at least 2 dimensions (..., m, n), (..., m, r), (..., r, n)")
    m, n = C.shape[-2:]
    if A.shape[-2] != m or B.shape[-1] != n or A.shape[-1] != B.shape[-2]:
        raise ValueError(
            f"shapes do not conform: C {tuple(C.shape)}, A {tuple(A.shape)}, B {tuple(B.shape)} "
            "(expected C (..., m, n), A (..., m, r), B (..., r, n))"
        )
    tiny = torch.finfo(C.dtype).tiny
    # The round is scale-equivariant: C -> kC gives A' -> kA' (B' unchanged), and A -> sA changes neither A' nor
    # B'. It runs on C / mean(C) and A / mean(AB), and A' is scaled back by mean(C), so R stays near 1 even when
    # C and AB differ in scale beyond the dtype's range (factors fit to an all-zero gradient, then a large one).
    mean_c = C.mean(dim=(-2, -1), keepdim=True)
    mean_c = torch.where(mean_c > 0, mean_c, torch.ones_like(mean_c))
    mean_ab = (A @ B).mean(dim=(-2, -1), keepdim=True)
    A_s = A / torch.where(mean_ab > 0, mean_ab, torch.ones_like(mean_ab))
    R = (C / mean_c) / (A_s @ B).clamp_min(tiny)
    b_rows = B.sum(dim=-1).unsqueeze(-2)  # (B 1_n)^T, shape (..., 1, r)
    A_new = torch.where(b_rows > 0, A_s * (R @ B.mT) / b_rows.clamp_min(tiny), A_s)
    a_cols = A_new.sum(dim=-2).unsqueeze(-1)  # A'^T 1_m, shape (..., r, 1)
    B_new = torch.where(a_cols > 0, B * (A_s.mT @ R) / a_cols.clamp_min(tiny), B)
    if not balance:
        return torch.where(b_rows > 0, A_new * mean_c, A), B_new
    # d_k^2 = (B' 1_n)_k / (A'^T 1_m)_k with A' = A_new mean(C); each side gets sqrt(mean(C)) of the scale,
    # formed from square roots so that no ratio or product leaves the dtype's range
    b_sums = B_new.sum(dim=-1).unsqueeze(-2)  # (..., 1, r)
    ok = (b_rows > 0) & (a_cols.mT > 0) & (b_sums > 0)
    root = mean_c.sqrt()
    a_scale = torch.where(ok, root * b_sums.sqrt() / a_cols.mT.sqrt().clamp_min(tiny), mean_c)
    b_scale = torch.where(ok, root * a_cols.mT.sqrt() / b_sums.sqrt().clamp_min(tiny), torch.ones_like(b_sums))
    return torch.where(b_rows > 0, A_new * a_scale, A), B_new * b_scale.mT


def nmf(
    C: torch.Tensor,
    rank: int,
    steps: int = 200,
    A: torch.Tensor | None = None,
    B: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-``rank`` NMF of C under the I-divergence by ``steps`` EM rounds of :func:`nmf_step`.

    Args:
        C: (..., m, n) nonnegative, finite, float32 or float64.
        rank: r >= 1.   steps: number of EM rounds >= 0.
        A, B: optional starting factors (..., m, r) and (..., r, n), strictly positive for best results.
            Missing ones are drawn uniformly from (0, s], s = sqrt(mean(C) / r) (so AB starts at C's scale),
            using ``generator`` (default: a fresh one seeded with 0, so the result is deterministic).

    Returns:
        (A, B): a stationary-point estimate; EM converges to a local minimum, monotonically in IDiv.

    Raises:
        TypeError, ValueError: non-float or negative C, rank < 1, steps < 0, factor shapes that do not conform.
    """
    _check_nonneg_float("C", C, 2)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be an integer >= 1, got {rank!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    *lead, m, n = C.shape
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    scale = float(C.mean()) / rank
    scale = scale**0.5 if scale > 0 else 1.0

    def uniform(shape):  # Unif(0, scale]: 1 - U with U in [0, 1) is never 0
        u = torch.rand(shape, generator=generator, dtype=C.dtype)
        return ((1 - u) * scale).to(C.device)

    A = uniform((*lead, m, rank)) if A is None else A.to(C.dtype)
    B = uniform((*lead, rank, n)) if B is None else B.to(C.dtype)
    for _ in range(steps):
        A, B = nmf_step(C, A, B)
    return A, B


def rank1_nmf(C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The closed-form rank-1 minimizer of IDiv(C, a b^T) (Section 4.7; Appendix L, "Rank one").

        a* = C 1_n,    b*^T = 1_m^T C / (1_m^T C 1_n),    a* b*^T = C 1_n 1_m^T C / (1_m^T C 1_n)

    (the normalization 1_m^T a* = 1_m^T C 1_n of the notes; any a* c, b* / c is equally optimal).

    Args:
        C: (..., m, n) nonnegative float tensor.

    Returns:
        (A, B) of shapes (..., m, 1) and (..., 1, n), so ``A @ B`` is the minimizer. An all-zero C gives
        A = 0, B = 0 (its optimum AB = 0).

    Raises:
        TypeError, ValueError: non-float, negative, non-finite, or fewer than 2 dimensions.
    """
    _check_nonneg_float("C", C, 2)
    a = C.sum(dim=-1, keepdim=True)  # C 1_n, (..., m, 1)
    total = a.sum(dim=-2, keepdim=True)  # 1^T C 1, (..., 1, 1)
    col = C.sum(dim=-2, keepdim=True)  # 1^T C, (..., 1, n)
    b = torch.where(total > 0, col / total.clamp_min(torch.finfo(C.dtype).tiny), torch.zeros_like(col))
    return a, b
