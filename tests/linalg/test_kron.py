"""Appendix G: row-major vec, the Kronecker product (98)-(100), rearrange (101)-(103), Lemma G.1,
Corollary G.2 (nearest Kronecker product) and the square-matrix facts (104)-(107).

References are literal: explicit index loops over the notes' formulas (0-based here), torch.kron, and
eigendecompositions computed independently.
"""

import itertools

import pytest
import torch

from adaptim.linalg.kron import kron, nearest_kronecker_product, rearrange, unvec, vec
from adaptim.linalg.psd import psd_power

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, dtype=DT):
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def random_psd(n, seed, rank=None, shift=0.0):
    G = randn(n, rank or n, seed=seed)
    return G @ G.T + shift * torch.eye(n, dtype=DT)


def vec_loop(M):
    m, n = M.shape
    out = torch.empty(m * n, dtype=M.dtype)
    for i in range(m):
        for j in range(n):
            out[i * n + j] = M[i, j]
    return out


def kron_loop(A, B):
    """(98): C[(i1-1)n + j1, (i2-1)l + j2] = A[i1, i2] B[j1, j2], 0-based."""
    (m, d), (n, l) = A.shape, B.shape
    C = torch.empty(m * n, d * l, dtype=A.dtype)
    for i1, j1, i2, j2 in itertools.product(range(m), range(n), range(d), range(l)):
        C[i1 * n + j1, i2 * l + j2] = A[i1, i2] * B[j1, j2]
    return C


def rearrange_loop(H, m, d, n, l):
    """(102): R[(i1-1)d + i2, (j1-1)l + j2] = H[(i1-1)n + j1, (i2-1)l + j2], 0-based."""
    R = torch.empty(m * d, n * l, dtype=H.dtype)
    for i1, j1, i2, j2 in itertools.product(range(m), range(n), range(d), range(l)):
        R[i1 * d + i2, j1 * l + j2] = H[i1 * n + j1, i2 * l + j2]
    return R


# ---- vec / unvec ----------------------------------------------------------------------------------------------


def test_vec_is_row_major_example_and_loop():
    a, b, c, d = 1.0, 2.0, 3.0, 4.0
    assert torch.equal(vec(torch.tensor([[a, b], [c, d]])), torch.tensor([a, b, c, d]))
    M = randn(3, 5, seed=1)
    assert torch.equal(vec(M), vec_loop(M))


def test_unvec_index_formula_and_round_trips():
    m, n = 4, 3
    v = randn(2, m * n, seed=2)
    M = unvec(v, (m, n))
    assert M.shape == (2, m, n)
    for b, i, j in itertools.product(range(2), range(m), range(n)):
        assert M[b, i, j] == v[b, i * n + j]
    assert torch.equal(vec(M), v)
    X = randn(2, 3, m, n, seed=3)
    assert torch.equal(unvec(vec(X), (m, n)), X)


def test_vec_unvec_errors():
    with pytest.raises(ValueError, match="rows, cols"):
        vec(torch.ones(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 6\)"):
        unvec(torch.ones(5), (2, 3))
    with pytest.raises(ValueError, match="shape"):
        unvec(torch.ones(6), (0, 6))


# ---- kron (98), (99), (100), transpose -------------------------------------------------------------------------


def test_kron_matches_index_loop_and_torch_kron():
    A, B = randn(2, 3, seed=4), randn(4, 5, seed=5)
    C = kron(A, B)
    assert C.shape == (8, 15)
    assert torch.equal(C, kron_loop(A, B))
    assert torch.equal(C, torch.kron(A, B))


def test_kron_batched_broadcasts_leading_dims():
    A, B = randn(3, 2, 2, 3, seed=6), randn(2, 4, 2, seed=7)  # batch (3, 2) and (2,)
    C = kron(A, B)
    assert C.shape == (3, 2, 8, 6)
    for i, j in itertools.product(range(3), range(2)):
        assert torch.equal(C[i, j], torch.kron(A[i, j], B[j]))
    with pytest.raises(ValueError, match="broadcast"):
        kron(randn(3, 2, 2), randn(4, 2, 2))
    with pytest.raises(ValueError, match="B must have shape"):
        kron(randn(2, 2), randn(3))


def test_eq99_vec_of_product():
    A, B, C = randn(3, 4, seed=8), randn(4, 5, seed=9), randn(5, 2, seed=10)
    torch.testing.assert_close(vec(A @ B @ C), kron(A, C.T) @ vec(B))
    u, v = randn(3, seed=11), randn(4, seed=12)
    torch.testing.assert_close(vec(torch.outer(u, v)), kron(u[:, None], v[:, None])[:, 0])


def test_eq100_mixed_product_and_transpose():
    A, B = randn(2, 3, seed=13), randn(4, 2, seed=14)
    C, D = randn(3, 5, seed=15), randn(2, 3, seed=16)
    torch.testing.assert_close(kron(A, B) @ kron(C, D), kron(A @ C, B @ D))
    assert torch.equal(kron(A, B).T, kron(A.T, B.T))


# ---- rearrange (101)-(103), Lemma G.1 ---------------------------------------------------------------------------


@pytest.mark.parametrize("m,d,n,l", [(2, 3, 4, 5), (3, 3, 2, 2), (1, 4, 3, 1)])
def test_rearrange_matches_eq102_loop_and_eq101(m, d, n, l):
    H = randn(m * n, d * l, seed=17)
    R = rearrange(H, (m, d), (n, l))
    assert R.shape == (m * d, n * l)
    assert torch.equal(R, rearrange_loop(H, m, d, n, l))
    A, B = randn(m, d, seed=18), randn(n, l, seed=19)
    torch.testing.assert_close(rearrange(kron(A, B), (m, d), (n, l)), torch.outer(vec(A), vec(B)))


@pytest.mark.parametrize("m,d,n,l", [(2, 3, 4, 5), (2, 3, 3, 2)])
def test_eq103_rearrange_is_an_involution(m, d, n, l):
    H = randn(3, m * n, d * l, seed=20)
    R = rearrange(H, (m, d), (n, l))
    assert torch.equal(rearrange(R, (m, n), (d, l)), H)  # the same middle-axis swap, read on the (md, nl) input
    if n == d:
        assert torch.equal(rearrange(R, (m, d), (n, l)), H)
    # Batched equals per item.
    for b in range(3):
        assert torch.equal(R[b], rearrange_loop(H[b], m, d, n, l))


def test_rearrange_errors():
    with pytest.raises(ValueError, match=r"\(\.\.\., 6, 20\)"):
        rearrange(randn(6, 21), (2, 4), (3, 5))
    with pytest.raises(ValueError, match="shape_b"):
        rearrange(randn(6, 20), (2, 4), (3,))


def test_lemma_g1_frobenius_distance_is_kept():
    m, d, n, l = 2, 3, 3, 2
    C, A, B = randn(m * n, d * l, seed=21), randn(m, d, seed=22), randn(n, l, seed=23)
    lhs = torch.linalg.norm(C - kron(A, B))
    rhs = torch.linalg.norm(rearrange(C, (m, d), (n, l)) - torch.outer(vec(A), vec(B)))
    torch.testing.assert_close(lhs, rhs)


# ---- Corollary G.2 ---------------------------------------------------------------------------------------------


def test_nkp_recovers_an_exact_kronecker_product():
    A, B = randn(3, 2, seed=24), randn(2, 4, seed=25)
    C = kron(A, B)
    As, Bs = nearest_kronecker_product(C, (3, 2), (2, 4))
    torch.testing.assert_close(kron(As, Bs), C)
    # A⋆ is A up to the scalar a·b split: A⋆ = c A, B⋆ = B / c, with the balanced split ‖A⋆‖ = ‖B⋆‖.
    c = (As * A).sum() / (A * A).sum()
    torch.testing.assert_close(As, c * A)
    torch.testing.assert_close(Bs, B / c)
    torch.testing.assert_close(torch.linalg.norm(As), torch.linalg.norm(Bs))


def test_nkp_is_optimal_against_random_pairs_and_perturbations():
    m, d, n, l = 2, 3, 3, 2
    C = randn(m * n, d * l, seed=26)
    As, Bs = nearest_kronecker_product(C, (m, d), (n, l))
    best = torch.linalg.norm(C - kron(As, Bs))
    # Eckart-Young on rearrange(C): the residual is sqrt(‖C‖² - σ1²).
    s = torch.linalg.svdvals(rearrange(C, (m, d), (n, l)))
    torch.testing.assert_close(best, (torch.linalg.norm(C) ** 2 - s[0] ** 2).sqrt())
    g = gen(27)
    Ar, Br = torch.randn(1000, m, d, generator=g, dtype=DT), torch.randn(1000, n, l, generator=g, dtype=DT)
    assert (torch.linalg.norm(C - kron(Ar, Br), dim=(-2, -1)) >= best).all()
    for scale in (1e-1, 1e-3):
        Ap = As + scale * torch.randn(1000, m, d, generator=g, dtype=DT)
        Bp = Bs + scale * torch.randn(1000, n, l, generator=g, dtype=DT)
        assert (torch.linalg.norm(C - kron(Ap, Bp), dim=(-2, -1)) >= best - 1e-12).all()


def test_nkp_is_a_fixed_point_of_the_least_squares_conditions():
    # Independent check: with B fixed, the best A has A[i1, i2] = <block (i1, i2) of C, B> / ‖B‖², and vice versa.
    m, d, n, l = 3, 2, 2, 3
    C = randn(m * n, d * l, seed=28)
    As, Bs = nearest_kronecker_product(C, (m, d), (n, l))
    A_ls = torch.empty(m, d, dtype=DT)
    for i1, i2 in itertools.product(range(m), range(d)):
        A_ls[i1, i2] = (C[i1 * n : (i1 + 1) * n, i2 * l : (i2 + 1) * l] * Bs).sum() / (Bs * Bs).sum()
    B_ls = torch.zeros(n, l, dtype=DT)
    for i1, i2 in itertools.product(range(m), range(d)):
        B_ls += As[i1, i2] * C[i1 * n : (i1 + 1) * n, i2 * l : (i2 + 1) * l]
    B_ls /= (As * As).sum()
    torch.testing.assert_close(As, A_ls)
    torch.testing.assert_close(Bs, B_ls)


def test_nkp_batched_float32_sign_and_zero():
    C = randn(4, 6, 6, seed=29, dtype=torch.float32)
    As, Bs = nearest_kronecker_product(C, (2, 3), (3, 2))
    assert As.shape == (4, 2, 3) and Bs.shape == (4, 3, 2) and As.dtype == torch.float32
    for b in range(4):
        A1, B1 = nearest_kronecker_product(C[b], (2, 3), (3, 2))
        torch.testing.assert_close(kron(As[b], Bs[b]), kron(A1, B1))
        flat = vec(As[b])
        assert flat[flat.abs().argmax()] > 0
    Az, Bz = nearest_kronecker_product(torch.zeros(6, 6), (2, 3), (3, 2))
    assert torch.equal(Az, torch.zeros(2, 3)) and torch.equal(Bz, torch.zeros(3, 2))


def test_nkp_of_psd_matrix_has_psd_factors():
    C = random_psd(6, seed=30, shift=0.1)
    As, Bs = nearest_kronecker_product(C, (2, 2), (3, 3))
    torch.testing.assert_close(As, As.T)
    torch.testing.assert_close(Bs, Bs.T)
    assert torch.linalg.eigvalsh(As).min() > 0 and torch.linalg.eigvalsh(Bs).min() > 0


def test_nkp_errors():
    with pytest.raises(ValueError, match="non-finite"):
        nearest_kronecker_product(torch.full((4, 4), float("nan")), (2, 2), (2, 2))
    with pytest.raises(TypeError, match="float32 or float64"):
        nearest_kronecker_product(torch.ones(4, 4, dtype=torch.int64), (2, 2), (2, 2))
    with pytest.raises(ValueError, match="shape"):
        nearest_kronecker_product(torch.ones(4, 5), (2, 2), (2, 2))


# ---- G.2: square matrices (104)-(107) ----------------------------------------------------------------------------


def test_kron_eigenvalues_are_products_and_eq104_trace():
    A, B = randn(3, 3, seed=31), randn(4, 4, seed=32)
    torch.testing.assert_close(torch.trace(kron(A, B)), torch.trace(A) * torch.trace(B))
    S, T = random_psd(3, 33, rank=2), random_psd(4, 34)
    lam, mu = torch.linalg.eigvalsh(S), torch.linalg.eigvalsh(T)
    products = torch.sort(torch.outer(lam, mu).flatten()).values
    torch.testing.assert_close(torch.linalg.eigvalsh(kron(S, T)), products)


@pytest.mark.parametrize("p", [0.5, -0.25, -1.0, 2.0, 1 / 3])
def test_eq105_power_of_kron(p):
    A, B = random_psd(3, 35, shift=0.5), random_psd(2, 36, shift=0.5)
    torch.testing.assert_close(psd_power(kron(A, B), p), kron(psd_power(A, p), psd_power(B, p)))


def test_eq106_and_eq107_psd_order():
    tol = 1e-10
    A, B = random_psd(3, 37, rank=1), random_psd(4, 38, rank=2)
    assert torch.linalg.eigvalsh(kron(A, B)).min() > -tol  # (106), even for singular factors
    Ap, Bp = random_psd(3, 39, rank=2), random_psd(4, 40, rank=3)
    A, B = Ap + random_psd(3, 41, rank=1), Bp + random_psd(4, 42, rank=2)  # A ⪰ A' ⪰ 0, B ⪰ B' ⪰ 0
    assert torch.linalg.eigvalsh(kron(A, B) - kron(Ap, Bp)).min() > -tol  # (107)
    # The converse fails without the ordering: kron(A', B) - kron(A, B') need not be PSD.
    assert torch.linalg.eigvalsh(kron(Ap, B) - kron(A, Bp)).min() < -tol
