"""NMF under the I-divergence (Appendix L, (119)-(124)) and the rank-1 closed form of Section 4.7.

References here are literal: index loops over i, j, k on Python floats, and the EM M-step computed from the
explicit posterior tensor Z of (121). They never call adaptim.linalg.nmf.
"""

from __future__ import annotations

import math

import pytest
import torch

from adaptim.linalg.nmf import idiv, nmf, nmf_step, rank1_nmf

F64 = torch.float64


def rand_nonneg(gen, m, n, zeros=0.0):
    C = torch.rand(m, n, generator=gen, dtype=F64) ** 3 * 10
    if zeros:
        C[torch.rand(m, n, generator=gen) < zeros] = 0.0
    return C


def idiv_literal(X, Y) -> float:
    """(119) summed entry by entry, with 0 log 0 = 0 (and 0 log(0/0) = 0)."""
    total = 0.0
    for x, y in zip(X.reshape(-1).tolist(), Y.reshape(-1).tolist()):
        if x == 0:
            total += y
        elif y == 0:
            return math.inf
        else:
            total += x * math.log(x / y) - x + y
    return total


def em_round_literal(C, A, B):
    """One EM round of Appendix L.1 from scratch: the posterior means Z_ijk = C_ij A_ik B_kj / sum_l A_il B_lj of
    (121), then the exact M-step, which splits into a rank-1 Poisson fit per component k:
    Ahat_k Bhat_k^T = (Z_k 1)(1^T Z_k) / (1^T Z_k 1), split as Ahat_ik = sum_j Z_ijk / sum_j B_kj (the A-update of
    (123) holding B) and Bhat_kj = sum_i Z_ijk / sum_i Ahat_ik (the B-update holding the new A)."""
    m, n = C.shape
    r = A.shape[1]
    Z = [[[0.0] * r for _ in range(n)] for _ in range(m)]
    for i in range(m):
        for j in range(n):
            s = sum(float(A[i, l]) * float(B[l, j]) for l in range(r))
            for k in range(r):
                Z[i][j][k] = float(C[i, j]) * float(A[i, k]) * float(B[k, j]) / s
    A2 = torch.zeros(m, r, dtype=F64)
    B2 = torch.zeros(r, n, dtype=F64)
    for k in range(r):
        bsum = sum(float(B[k, j]) for j in range(n))
        for i in range(m):
            A2[i, k] = sum(Z[i][j][k] for j in range(n)) / bsum
        asum = sum(float(A2[i, k]) for i in range(m))
        for j in range(n):
            B2[k, j] = sum(Z[i][j][k] for i in range(m)) / asum
    return A2, B2


# ------------------------------------------------------------------------------------------------------ idiv
def test_idiv_matches_literal_sum_with_conventions():
    gen = torch.Generator().manual_seed(0)
    X = rand_nonneg(gen, 4, 5, zeros=0.3)
    Y = rand_nonneg(gen, 4, 5) + 0.1
    assert float(idiv(X, Y)) == pytest.approx(idiv_literal(X, Y), rel=1e-12)
    assert float(idiv(X, X)) == 0.0
    assert float(idiv(torch.zeros(2, 2, dtype=F64), Y[:2, :2])) == pytest.approx(float(Y[:2, :2].sum()))
    Y0 = Y.clone()
    Y0[X > 0] = 0.0
    assert float(idiv(X, Y0)) == math.inf


def test_idiv_is_nonnegative_and_batched():
    gen = torch.Generator().manual_seed(1)
    X = torch.stack([rand_nonneg(gen, 3, 4) for _ in range(6)])
    Y = torch.stack([rand_nonneg(gen, 3, 4) + 1e-3 for _ in range(6)])
    per = idiv(X, Y, dim=(-2, -1))
    assert per.shape == (6,) and bool((per > 0).all())
    for b in range(6):
        assert float(per[b]) == pytest.approx(idiv_literal(X[b], Y[b]), rel=1e-12)


def test_idiv_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        idiv(torch.ones(2, 3), torch.ones(3, 2))
    with pytest.raises(ValueError, match="nonnegative"):
        idiv(-torch.ones(2), torch.ones(2))
    with pytest.raises(TypeError, match="floating"):
        idiv(torch.ones(2, dtype=torch.int64), torch.ones(2, dtype=torch.int64))


# --------------------------------------------------------------------------------------------------- nmf_step
@pytest.mark.parametrize("m,n,r", [(3, 4, 1), (4, 3, 2), (2, 5, 3)])
def test_nmf_step_is_one_exact_em_round(m, n, r):
    gen = torch.Generator().manual_seed(m * 100 + n * 10 + r)
    C = rand_nonneg(gen, m, n, zeros=0.2)
    A = torch.rand(m, r, generator=gen, dtype=F64) + 0.1
    B = torch.rand(r, n, generator=gen, dtype=F64) + 0.1
    A2, B2 = nmf_step(C, A, B)
    A_ref, B_ref = em_round_literal(C, A, B)
    torch.testing.assert_close(A2, A_ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(B2, B_ref, rtol=1e-12, atol=1e-14)


def test_nmf_step_never_increases_idiv():
    gen = torch.Generator().manual_seed(2)
    for _ in range(150):
        m, n = torch.randint(1, 8, (2,), generator=gen).tolist()
        r = int(torch.randint(1, 5, (1,), generator=gen))
        C = rand_nonneg(gen, m, n, zeros=0.2)
        A = torch.rand(m, r, generator=gen, dtype=F64) * 10 ** float(torch.empty(()).uniform_(-4, 2, generator=gen))
        B = torch.rand(r, n, generator=gen, dtype=F64) + 1e-3
        prev = float(idiv(C, A @ B))
        for _ in range(15):
            A, B = nmf_step(C, A, B)
            cur = float(idiv(C, A @ B))
            assert cur <= prev + 1e-11 * (1.0 + float(C.sum()))
            assert bool((A >= 0).all()) and bool((B >= 0).all())
            prev = cur


def test_nmf_step_keeps_row_sums_of_b():
    gen = torch.Generator().manual_seed(3)
    C = rand_nonneg(gen, 5, 6)
    A, B = torch.rand(5, 3, generator=gen, dtype=F64), torch.rand(3, 6, generator=gen, dtype=F64)
    _, B2 = nmf_step(C, A, B)
    torch.testing.assert_close(B2.sum(dim=1), B.sum(dim=1), rtol=1e-12, atol=0)


def test_box_normalization_by_old_a_is_not_monotone():
    """Why nmf_step normalizes B by the updated A: with the box's A_{t-1}^T 1 (simultaneous update), rank 1,
    the mass of AB becomes (sum C)^2 / (sum AB) and oscillates; IDiv goes up at every other step."""
    gen = torch.Generator().manual_seed(4)
    C = rand_nonneg(gen, 4, 5)
    A = torch.rand(4, 1, generator=gen, dtype=F64) * 1e-3
    B = torch.rand(1, 5, generator=gen, dtype=F64) * 1e-3
    values, masses = [], []
    for _ in range(4):
        R = C / (A @ B)
        A, B = A * (R @ B.T) / B.sum(dim=1)[None, :], B * (A.T @ R) / A.sum(dim=0)[:, None]
        values.append(float(idiv(C, A @ B)))
        masses.append(float((A @ B).sum()))
    assert values[1] > values[0] or values[2] > values[1]
    assert masses[1] == pytest.approx(float(C.sum()) ** 2 / masses[0], rel=1e-9)
    # nmf_step from the same start reaches the rank-1 optimum at once and stays there.
    A0 = torch.rand(4, 1, generator=gen, dtype=F64) * 1e-3
    B0 = torch.rand(1, 5, generator=gen, dtype=F64) * 1e-3
    A1, B1 = nmf_step(C, A0, B0)
    assert float((A1 @ B1).sum()) == pytest.approx(float(C.sum()), rel=1e-12)


def test_nmf_step_with_zero_rows_columns_and_zero_matrix_stays_finite():
    C = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 2.0], [3.0, 0.0, 0.5]], dtype=F64)
    A, B = torch.full((3, 2), 0.5, dtype=F64), torch.full((2, 3), 0.5, dtype=F64)
    for _ in range(5):
        A, B = nmf_step(C, A, B)
    assert bool((A @ B).isfinite().all())
    assert float((A @ B)[0].abs().max()) == 0.0 and float((A @ B)[:, 1].abs().max()) == 0.0
    Z = torch.zeros(2, 3, dtype=F64)
    A, B = nmf_step(Z, torch.ones(2, 1, dtype=F64), torch.ones(1, 3, dtype=F64))
    assert bool(A.isfinite().all()) and bool(B.isfinite().all()) and float((A @ B).abs().max()) == 0.0


def test_nmf_step_rejects_shapes():
    with pytest.raises(ValueError, match="conform"):
        nmf_step(torch.rand(3, 4), torch.rand(3, 2), torch.rand(3, 4))
    with pytest.raises(ValueError, match="at least 2"):
        nmf_step(torch.rand(4), torch.rand(4, 1), torch.rand(1, 4))


# ---------------------------------------------------------------------------------------------------- rank 1
def test_rank1_closed_form_is_the_notes_formula_and_a_minimizer():
    gen = torch.Generator().manual_seed(5)
    C = rand_nonneg(gen, 4, 6, zeros=0.2)
    a, b = rank1_nmf(C)
    assert a.shape == (4, 1) and b.shape == (1, 6)
    total = float(C.sum())
    for i in range(4):
        for j in range(6):
            want = sum(float(C[i, l]) for l in range(6)) * sum(float(C[l, j]) for l in range(4)) / total
            assert float((a @ b)[i, j]) == pytest.approx(want, rel=1e-12)
    best = float(idiv(C, a @ b))
    for _ in range(300):  # nearby rank-1 competitors (each factor perturbed, or the product rescaled)
        a2 = a * torch.exp(0.1 * torch.randn(4, 1, generator=gen, dtype=F64))
        b2 = b * torch.exp(0.1 * torch.randn(1, 6, generator=gen, dtype=F64))
        assert float(idiv(C, a2 @ b2)) >= best - 1e-12
        c = float(torch.empty(()).uniform_(0.5, 2.0, generator=gen))
        assert float(idiv(C, c * (a @ b))) >= best - 1e-12
    # from any positive start, one EM round lands on it (Section 4.7: rank-1 NMF is easy)
    A1, B1 = nmf_step(
        C, torch.rand(4, 1, generator=gen, dtype=F64) + 1e-3, torch.rand(1, 6, generator=gen, dtype=F64) + 1e-3
    )
    torch.testing.assert_close(A1 @ B1, a @ b, rtol=1e-12, atol=1e-14)


def test_rank1_of_zero_matrix_is_zero():
    a, b = rank1_nmf(torch.zeros(3, 2))
    assert float((a @ b).abs().max()) == 0.0 and bool(b.isfinite().all())


# ----------------------------------------------------------------------------------------------------- solver
def test_nmf_recovers_an_exact_nonnegative_factorization():
    gen = torch.Generator().manual_seed(6)
    A_true = torch.rand(6, 2, generator=gen, dtype=F64) + 0.1
    B_true = torch.rand(2, 7, generator=gen, dtype=F64) + 0.1
    C = A_true @ B_true
    A, B = nmf(C, rank=2, steps=2000)
    assert float(idiv(C, A @ B)) < 1e-8 * float(C.sum())
    A_again, B_again = nmf(C, rank=2, steps=2000)
    assert torch.equal(A, A_again) and torch.equal(B, B_again)  # seeded: deterministic


def test_nmf_batched_equals_each_matrix():
    gen = torch.Generator().manual_seed(7)
    C = torch.stack([rand_nonneg(gen, 3, 4) for _ in range(3)])
    A0 = torch.rand(3, 3, 2, generator=gen, dtype=F64) + 0.1
    B0 = torch.rand(3, 2, 4, generator=gen, dtype=F64) + 0.1
    A, B = nmf(C, rank=2, steps=10, A=A0, B=B0)
    for k in range(3):
        Ak, Bk = nmf(C[k], rank=2, steps=10, A=A0[k], B=B0[k])
        torch.testing.assert_close(A[k] @ B[k], Ak @ Bk, rtol=1e-12, atol=1e-14)


def test_nmf_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        nmf(torch.rand(3, 3), rank=0)
    with pytest.raises(ValueError, match="steps"):
        nmf(torch.rand(3, 3), rank=1, steps=-1)
    with pytest.raises(ValueError, match="nonnegative"):
        nmf(-torch.rand(3, 3), rank=1)
