"""Newton-Schulz (147) and its coefficients (Appendix Q.3, Q.3.1), orthogonalize (69)/(77), and case C12."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from adaptim.linalg.newton_schulz import NS_COEFFICIENTS, newton_schulz, newton_schulz_coefficients, orthogonalize

JORDAN = (3.4445, -4.7750, 2.0315)


# ----------------------------------------------------------------------------------------- literal references
def phi(coeffs, x):
    """phi(x) = sum_i c_i x^(2i-1) of Q.3.1, literally."""
    return sum(c * x ** (2 * i + 1) for i, c in enumerate(coeffs))


def reference_ns(X: torch.Tensor, coeffs, steps: int) -> torch.Tensor:
    """U phi^K(S / ||X||_F) V^T via an explicit float64 SVD: the second line of (147), one matrix at a time."""
    X = X.to(torch.float64)
    out = torch.empty_like(X)
    flat_in, flat_out = X.reshape(-1, *X.shape[-2:]), out.view(-1, *X.shape[-2:])
    for b in range(flat_in.shape[0]):
        U, S, Vh = torch.linalg.svd(flat_in[b], full_matrices=False)
        s = S / math.sqrt(float((flat_in[b] ** 2).sum()))
        for _ in range(steps):
            s = phi(coeffs, s)
        flat_out[b] = U @ torch.diag(s) @ Vh
    return out


def random_orthogonal(n: int, gen: torch.Generator) -> torch.Tensor:
    Q, R = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return Q * torch.sign(torch.diagonal(R))


def with_singular_values(s: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = s.shape[-1]
    return random_orthogonal(n, gen) @ torch.diag(s) @ random_orthogonal(n, gen)


# ------------------------------------------------------------------------------------------- coefficients
def test_coefficient_systems_of_the_notes():
    # the unique solutions stated in Q.3.1
    assert newton_schulz_coefficients(2) == (1.5, -0.5)
    assert newton_schulz_coefficients(3) == (15 / 8, -5 / 4, 3 / 8)
    assert NS_COEFFICIENTS["cubic"] == (1.5, -0.5)
    assert NS_COEFFICIENTS["quintic"] == (15 / 8, -5 / 4, 3 / 8)
    assert NS_COEFFICIENTS["jordan"] == JORDAN


@pytest.mark.parametrize("P", [2, 3, 4, 5])
def test_coefficients_solve_the_system(P):
    c = newton_schulz_coefficients(P)
    assert len(c) == P
    # the polynomial written out as a coefficient list by degree, differentiated k times literally
    poly = [0.0] * (2 * P)
    for i, ci in enumerate(c):
        poly[2 * i + 1] = ci
    for k in range(P):
        value_at_1 = sum(a for a in poly)
        assert value_at_1 == pytest.approx(1.0 if k == 0 else 0.0, abs=1e-12), (P, k)
        poly = [j * poly[j] for j in range(1, len(poly))]  # d/dx
    # the P-th derivative is not zero (the order is exactly P)
    assert abs(sum(poly)) > 1e-6


@pytest.mark.parametrize("bad", [1, 0, 2.0, True, "3"])
def test_coefficients_reject_bad_P(bad):
    with pytest.raises(ValueError, match="P must be an int >= 2"):
        newton_schulz_coefficients(bad)


@pytest.mark.parametrize("name,order", [("cubic", 2), ("quintic", 3)])
def test_local_convergence_order(name, order):
    """eps_next = 1 - phi(1 - eps) = O(eps^n_loc) with n_loc = 2 (cubic), 3 (quintic) (Q.3), in exact arithmetic."""
    coeffs = [Fraction(c) for c in NS_COEFFICIENTS[name]]
    errs = [Fraction(1, 10**k) for k in (3, 4, 5, 6)]
    nxt = [1 - phi(coeffs, 1 - e) for e in errs]
    assert all(n > 0 for n in nxt)  # from below, phi stays below 1
    for e1, e2, n1, n2 in zip(errs, errs[1:], nxt, nxt[1:]):
        est = math.log(n1 / n2) / math.log(e1 / e2)
        assert est == pytest.approx(order, abs=1e-2)
    # iterating from x0 = 0.9: eps_{k+1} ~ C eps_k^n_loc with C = |phi^(n_loc)(1)| / n_loc! (Taylor term of Q.3)
    deriv = sum(c * math.perm(2 * i + 1, order) for i, c in enumerate(coeffs))
    C = abs(float(deriv)) / math.factorial(order)
    x, err = Fraction(9, 10), []
    for _ in range(4):
        x = phi(coeffs, x)
        err.append(float(1 - x))
    for a, b in zip(err[1:], err[2:]):
        assert b == pytest.approx(C * a**order, rel=0.05)


def test_jordan_five_steps_scalar_range():
    """Five "jordan" steps send every x in [3e-3, 1] into [0.68, 1.21] (Q.3.1); also without reaching 1."""
    x = torch.logspace(math.log10(3e-3), 0.0, 200_001, dtype=torch.float64)
    for _ in range(5):
        x = phi(JORDAN, x)
    assert float(x.min()) >= 0.68 and float(x.max()) <= 1.21
    assert float(x.min()) < 0.7 and float(x.max()) > 1.19  # the band is tight, not trivially satisfied


def test_jordan_five_steps_matrix_range():
    """The same through the matrix iteration: normalized singular values in [3e-3, 1] end in [0.68, 1.21]."""
    gen = torch.Generator().manual_seed(1)
    mats = []
    for _ in range(40):
        rest = torch.exp(torch.empty(15, dtype=torch.float64).uniform_(math.log(3e-3), math.log(0.2), generator=gen))
        s = torch.cat([torch.sqrt(1 - (rest**2).sum()).reshape(1), rest])  # ||s||_2 = 1, all in [3e-3, 1]
        mats.append(with_singular_values(s, gen))
    X = torch.stack(mats).to(torch.float32)
    out = newton_schulz(X, "jordan", 5)
    sv = torch.linalg.svdvals(out.double())
    assert float(sv.min()) >= 0.68 and float(sv.max()) <= 1.21


# ------------------------------------------------------------------------------------- the matrix iteration
@pytest.mark.parametrize("coefficients", ["jordan", "cubic", "quintic", (2.0, -1.5, 0.5, 0.0)])
@pytest.mark.parametrize("shape", [(5, 7), (7, 5), (3, 4, 6), (2, 2, 6, 3), (1, 9)])
@pytest.mark.parametrize("steps", [1, 5])
def test_matches_svd_reference(coefficients, shape, steps):
    gen = torch.Generator().manual_seed(hash((shape, steps)) % 1000)
    X = torch.randn(*shape, generator=gen, dtype=torch.float64)
    coeffs = NS_COEFFICIENTS[coefficients] if isinstance(coefficients, str) else coefficients
    out = newton_schulz(X, coefficients, steps)
    assert out.shape == X.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, reference_ns(X, coeffs, steps), rtol=0, atol=1e-10)


def test_steps_zero_is_frobenius_normalization():
    X = torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(newton_schulz(X, steps=0), X / torch.sqrt((X**2).sum()))


def test_case_c12_tiny_scales_zero_and_shape():
    """C12: five "jordan" steps on an 8x8 standard normal G in float32 at scales 1, 1e-6, 1e-9, 1e-12 agree."""
    gen = torch.Generator().manual_seed(0)
    G = torch.randn(8, 8, generator=gen)
    outs = [newton_schulz(G * c, "jordan", 5) for c in (1.0, 1e-6, 1e-9, 1e-12)]
    exact = reference_ns(G, JORDAN, 5)
    for o in outs:
        assert o.dtype == torch.float32
        torch.testing.assert_close(o.double(), exact, rtol=0, atol=2e-5)
    # an epsilon guard would shrink the 1e-12 output to ~0.04 in Frobenius norm; here it keeps the full size
    assert float(torch.linalg.matrix_norm(outs[3])) == pytest.approx(float(torch.linalg.matrix_norm(exact)), rel=1e-5)
    # beyond C12: scales whose squares underflow float32 (1e-25 -> 1e-50) and float64 (1e-200)
    torch.testing.assert_close(newton_schulz(G * 1e-25).double(), exact, rtol=0, atol=2e-5)
    torch.testing.assert_close(newton_schulz(G.double() * 1e-200), exact, rtol=0, atol=1e-12)
    # an all-zero G gives exactly 0; a 6x3 G gives a 6x3 result
    assert torch.equal(newton_schulz(torch.zeros(8, 8)), torch.zeros(8, 8))
    tall = torch.randn(6, 3, generator=gen)
    out = newton_schulz(tall)
    assert out.shape == (6, 3)
    torch.testing.assert_close(out.double(), reference_ns(tall, JORDAN, 5), rtol=0, atol=2e-5)


def test_zero_in_a_batch_stays_zero_and_others_are_unaffected():
    X = torch.randn(3, 4, 5, dtype=torch.float64)
    X[1] = 0
    out = newton_schulz(X, "quintic", 4)
    assert torch.equal(out[1], torch.zeros(4, 5, dtype=torch.float64))
    # batched and single matrix products may round differently, hence not bitwise
    torch.testing.assert_close(out[0], newton_schulz(X[0], "quintic", 4), rtol=0, atol=1e-14)
    assert torch.equal(orthogonalize(X, "svd")[1], torch.zeros(4, 5, dtype=torch.float64))


def test_transpose_equivariance():
    X = torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(newton_schulz(X), newton_schulz(X.T).T, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_input_computes_in_float32(dtype):
    X = torch.randn(2, 8, 12).to(dtype)
    out = newton_schulz(X)
    assert out.dtype == dtype and out.shape == X.shape
    # equal to the float32 computation on the same (rounded) input, rounded once at the end
    assert torch.equal(out, newton_schulz(X.float()).to(dtype))


# ------------------------------------------------------------------------------------------- orthogonalize
@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 5, 5)])
def test_orthogonalize_svd_and_converged_newton_schulz_agree(shape):
    gen = torch.Generator().manual_seed(3)
    # well conditioned: singular values in [0.5, 1] before normalization
    n = min(shape[-2:])
    Q1 = torch.linalg.qr(torch.randn(*shape[:-2], shape[-2], n, generator=gen, dtype=torch.float64))[0]
    Q2 = torch.linalg.qr(torch.randn(*shape[:-2], shape[-1], n, generator=gen, dtype=torch.float64))[0]
    s = torch.linspace(0.5, 1.0, n, dtype=torch.float64)
    X = (Q1 * s) @ Q2.mT
    exact = Q1 @ Q2.mT  # U V^T by construction
    svd = orthogonalize(X, method="svd")
    torch.testing.assert_close(svd, exact, rtol=0, atol=1e-12)
    torch.testing.assert_close(orthogonalize(X, "newton_schulz", "cubic", 40), exact, rtol=0, atol=1e-10)
    torch.testing.assert_close(orthogonalize(X, "newton_schulz", "quintic", 25), exact, rtol=0, atol=1e-10)
    # "jordan" gets U S' V^T with S' in about [0.68, 1.21]: same singular vectors, not exactly U V^T
    j = orthogonalize(X)
    assert float((j - exact).abs().max()) > 1e-3
    torch.testing.assert_close(svd.mT @ j, (svd.mT @ j).mT, rtol=0, atol=1e-10)  # U S' U^T-like: symmetric


def test_orthogonalize_svd_rank_deficient_keeps_the_range():
    gen = torch.Generator().manual_seed(4)
    X = torch.randn(6, 2, generator=gen, dtype=torch.float64) @ torch.randn(2, 5, generator=gen, dtype=torch.float64)
    O = orthogonalize(X, "svd")
    sv = torch.linalg.svdvals(O)
    torch.testing.assert_close(sv, torch.tensor([1.0, 1.0, 0, 0, 0], dtype=torch.float64), rtol=0, atol=1e-10)
    # <X, O> = ||X||_nuc (the steepest direction of (69)) and the range is X's
    assert float((X * O).sum()) == pytest.approx(float(torch.linalg.matrix_norm(X, "nuc")), rel=1e-12)
    P = O @ O.T  # projector onto range(X)
    torch.testing.assert_close(P @ X, X, rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------------------------- errors
def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="matrices"):
        newton_schulz(torch.randn(5))
    with pytest.raises(TypeError, match="floating"):
        newton_schulz(torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="coefficients"):
        newton_schulz(torch.randn(3, 3), "septic")
    with pytest.raises(ValueError, match="coefficients"):
        newton_schulz(torch.randn(3, 3), (1.0, float("nan")))
    with pytest.raises(ValueError, match="steps"):
        newton_schulz(torch.randn(3, 3), steps=-1)
    with pytest.raises(RuntimeError, match="non-finite"):
        newton_schulz(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(RuntimeError, match="non-finite"):
        orthogonalize(torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), "svd")
    with pytest.raises(ValueError, match="method"):
        orthogonalize(torch.randn(3, 3), "qr")
