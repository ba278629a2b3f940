"""Norms, dual norms (125), steepest directions of (67)-(69), subgradients (152), and RMS (Appendix K)."""

from __future__ import annotations

import math

import pytest
import torch

from adaptim.linalg.norms import (
    DUAL_NORM,
    NORMS,
    dual_norm,
    elementwise_inf_norm,
    elementwise_l1_norm,
    frobenius_norm,
    matrix_norm,
    norm_subgradient,
    nuclear_norm,
    rms,
    spectral_norm,
    steepest_direction,
)


# ----------------------------------------------------------------------------------------- literal references
def literal_norm(X: torch.Tensor, name: str) -> float:
    """One matrix, from the definitions: loops over entries; singular values from a symmetric eigenproblem."""
    m, n = X.shape
    entries = [float(X[i, j]) for i in range(m) for j in range(n)]
    if name == "frobenius":
        return math.sqrt(sum(e * e for e in entries))
    if name == "inf":
        return max(abs(e) for e in entries)
    if name == "l1":
        return sum(abs(e) for e in entries)
    # the eigenvalues of the symmetric [[0, X], [X^T, 0]] are +-sigma_i (and zeros): accurate even for tiny sigma_i
    Z = torch.zeros(m + n, m + n, dtype=X.dtype)
    Z[:m, m:], Z[m:, :m] = X, X.T
    ev = [float(e) for e in torch.linalg.eigvalsh(Z)]
    return max(ev) if name == "spectral" else sum(abs(e) for e in ev) / 2


def inner(A: torch.Tensor, B: torch.Tensor) -> float:
    """<A, B> = tr(A^T B)."""
    return float(torch.trace(A.T @ B))


GEN = torch.Generator().manual_seed(11)
MATS = [
    torch.randn(4, 6, generator=GEN, dtype=torch.float64),
    torch.randn(5, 3, generator=GEN, dtype=torch.float64),
    torch.randn(7, 1, generator=GEN, dtype=torch.float64),
]


# ----------------------------------------------------------------------------------------------- the norms
@pytest.mark.parametrize("name", NORMS)
def test_norms_match_their_definitions_batched(name):
    X = torch.stack([MATS[0], 2 * MATS[0].flip(0), -MATS[0]])
    got = matrix_norm(X, name)
    assert got.shape == (3,)
    for b in range(3):
        assert float(got[b]) == pytest.approx(literal_norm(X[b], name), rel=1e-12)
    fn = {
        "frobenius": frobenius_norm,
        "spectral": spectral_norm,
        "nuclear": nuclear_norm,
        "inf": elementwise_inf_norm,
        "l1": elementwise_l1_norm,
    }[name]
    assert torch.equal(fn(X), got)


def test_duality_table_is_an_involution():
    assert DUAL_NORM == {
        "frobenius": "frobenius",
        "spectral": "nuclear",
        "nuclear": "spectral",
        "inf": "l1",
        "l1": "inf",
    }
    for n in NORMS:
        assert DUAL_NORM[DUAL_NORM[n]] == n


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("k", range(len(MATS)))
def test_steepest_direction_attains_the_dual_norm(name, k):
    """||D|| = 1 and <G, D> = ||G||_* (the sup of (125) is attained), and Hoelder (126) for random W."""
    G = MATS[k]
    D = steepest_direction(G, name)
    assert literal_norm(D, name) == pytest.approx(1.0, rel=1e-12)
    dual = literal_norm(G, DUAL_NORM[name])
    assert inner(G, D) == pytest.approx(dual, rel=1e-12)
    assert float(dual_norm(G, name)) == pytest.approx(dual, rel=1e-12)
    gen = torch.Generator().manual_seed(k)
    for _ in range(200):  # no feasible W does better than D
        W = torch.randn(G.shape, generator=gen, dtype=torch.float64)
        W = W / literal_norm(W, name)
        assert inner(G, W) <= dual * (1 + 1e-12)


def test_closed_forms_of_69():
    G = MATS[0]
    U, _S, Vh = torch.linalg.svd(G, full_matrices=False)
    torch.testing.assert_close(steepest_direction(G, "frobenius"), G / math.sqrt(float((G**2).sum())))
    assert torch.equal(steepest_direction(G, "inf"), torch.sign(G))
    torch.testing.assert_close(steepest_direction(G, "spectral"), U @ Vh, rtol=0, atol=1e-12)
    torch.testing.assert_close(steepest_direction(G, "nuclear"), torch.outer(U[:, 0], Vh[0]), rtol=0, atol=1e-12)
    i, j = divmod(int(G.abs().argmax()), G.shape[1])
    E = torch.zeros_like(G)
    E[i, j] = torch.sign(G[i, j])
    assert torch.equal(steepest_direction(G, "l1"), E)


def test_vector_case_recovers_gradient_and_sign_descent():
    """For G in R^{m x 1}, spectral = Frobenius gives g / ||g||_2 and elementwise inf gives sign(g) (Section 7)."""
    g = MATS[2]
    torch.testing.assert_close(steepest_direction(g, "spectral"), g / g.norm(), rtol=0, atol=1e-14)
    torch.testing.assert_close(steepest_direction(g, "frobenius"), g / g.norm(), rtol=0, atol=1e-15)
    assert torch.equal(steepest_direction(g, "inf"), torch.sign(g))


@pytest.mark.parametrize("name", NORMS)
def test_zero_gives_zero_direction_and_batches(name):
    X = torch.stack([torch.zeros(3, 4, dtype=torch.float64), MATS[0][:3, :4]])
    D = steepest_direction(X, name)
    assert torch.equal(D[0], torch.zeros(3, 4, dtype=torch.float64))
    torch.testing.assert_close(D[1], steepest_direction(MATS[0][:3, :4], name), rtol=0, atol=1e-14)
    assert float(matrix_norm(X, name)[0]) == 0.0


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_float32_norms_and_directions_are_homogeneous_at_extreme_scales(name, scale):
    """||cX|| = c ||X|| and D(cX) = D(X) in float32 for c = 1e-30, 1e30, whose squared entries underflow or
    overflow: the Frobenius norm was 0 or inf there, giving a zero step (and 0 * inf = NaN for majorization)."""
    X = MATS[0][:3, :4].to(torch.float32)
    torch.testing.assert_close(matrix_norm(X * scale, name) / scale, matrix_norm(X, name), rtol=1e-5, atol=0)
    torch.testing.assert_close(steepest_direction(X * scale, name), steepest_direction(X, name), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_direction_keeps_dtype(dtype):
    G = MATS[0].to(dtype)
    for name in NORMS:
        assert steepest_direction(G, name).dtype == dtype


# ------------------------------------------------------------------------------------------------ subgradients
@pytest.mark.parametrize("name", NORMS)
def test_subgradient_characterization_152(name):
    """Z in d||X||: ||Z||_* <= 1, <Z, X> = ||X|| (152), and the subgradient inequality (148) at random points."""
    X = MATS[1]
    Z = norm_subgradient(X, name)
    assert literal_norm(Z, DUAL_NORM[name]) <= 1 + 1e-12
    assert inner(Z, X) == pytest.approx(literal_norm(X, name), rel=1e-12)
    fX = literal_norm(X, name)
    gen = torch.Generator().manual_seed(5)
    for _ in range(200):
        Y = X + torch.randn(X.shape, generator=gen, dtype=torch.float64) * float(torch.rand(1, generator=gen))
        assert literal_norm(Y, name) >= fX + inner(Z, Y - X) - 1e-12
    assert torch.equal(norm_subgradient(torch.zeros(2, 2), name), torch.zeros(2, 2))


# ------------------------------------------------------------------------------------------------------ RMS
def test_rms():
    x = torch.tensor([-42.0] * 50 + [42.0] * 50)  # Appendix K: mean 0, RMS 42
    assert float(x.mean()) == 0.0 and float(rms(x)) == pytest.approx(42.0, rel=1e-7)
    assert float(rms(torch.tensor(-3.0))) == 3.0  # d = 1: absolute value
    X = MATS[0]
    assert float(rms(X)) == pytest.approx(math.sqrt(sum(float(v) ** 2 for v in X.flatten()) / X.numel()), rel=1e-12)
    rows = rms(X, dim=1)
    for i in range(X.shape[0]):
        assert float(rows[i]) == pytest.approx(math.sqrt(float((X[i] ** 2).mean())), rel=1e-12)


# ------------------------------------------------------------------------------------------------------ errors
def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="norm must be one of"):
        matrix_norm(MATS[0], "operator")
    with pytest.raises(ValueError, match="norm must be one of"):
        steepest_direction(MATS[0], "max")
    with pytest.raises(ValueError, match="column"):
        spectral_norm(torch.randn(4))
    with pytest.raises(TypeError, match="floating"):
        frobenius_norm(torch.ones(2, 2, dtype=torch.int32))
    with pytest.raises(TypeError, match="floating"):
        rms(torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="empty"):
        rms(torch.ones(0))
    with pytest.raises(RuntimeError, match="non-finite"):
        steepest_direction(torch.tensor([[float("nan"), 1.0]]), "spectral")
