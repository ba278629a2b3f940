"""adaptim.manifolds.Stiefel (Section 8.2): the tangent space of (78), its projection, the retraction (77) by SVD
and by Newton-Schulz (Appendix Q.3.1), each against a literal numpy/scipy reference; bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from adaptim.manifolds import Manifold, Stiefel


def stiefel_point(D: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(D, d, generator=g, dtype=torch.float64))[0].to(dtype)


def randn(*shape, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


SHAPES = [(1, 1), (3, 1), (4, 2), (5, 5), (7, 3)]


def test_is_a_manifold():
    assert isinstance(Stiefel(), Manifold)


@pytest.mark.parametrize("shape", SHAPES)
def test_tangent_projection_is_the_orthogonal_projection_onto_the_tangent_space(shape):
    D, d = shape
    m = Stiefel()
    W = stiefel_point(D, d, seed=0)
    V, U = randn(D, d, seed=1), randn(D, d, seed=2)
    P = m.project_tangent(W, V)
    # literal: V - W (W^T V + V^T W) / 2, in numpy
    Wn, Vn = W.numpy(), V.numpy()
    np.testing.assert_allclose(P.numpy(), Vn - Wn @ (Wn.T @ Vn + Vn.T @ Wn) / 2, rtol=0, atol=1e-13)
    # tangent (Delta^T W + W^T Delta = 0), idempotent, and V - P(V) is orthogonal to every tangent vector
    assert m.is_tangent(W, P, 1e-13)
    torch.testing.assert_close(m.project_tangent(W, P), P, rtol=0, atol=1e-13)
    T = m.project_tangent(W, U)
    assert abs(float((V - P).flatten() @ T.flatten())) < 1e-12
    # self-adjoint: <P(V), U> = <V, P(U)>
    assert float(P.flatten() @ U.flatten()) == pytest.approx(float(V.flatten() @ T.flatten()), abs=1e-12)


def test_d1_tangent_projection_is_the_sphere_one():
    # St(D, 1) is the unit sphere: P_w(g) = (I - w w^T) g, the g-perp of (71) with r = 1
    w = stiefel_point(6, 1, seed=3)
    g = randn(6, 1, seed=4)
    expected = (torch.eye(6, dtype=torch.float64) - w @ w.T) @ g
    torch.testing.assert_close(Stiefel().project_tangent(w, g), expected, rtol=0, atol=1e-14)


def test_is_tangent_and_tangent_error():
    m = Stiefel()
    W = stiefel_point(5, 3, seed=5)
    V = randn(5, 3, seed=6)
    assert not m.is_tangent(W, V, 1e-3)
    assert m.tangent_error(W, V) > 0.1
    assert m.tangent_error(W, torch.zeros_like(V)) == 0.0
    # W itself is normal: W^T W + W^T W = 2 I, relative error 2 sqrt(d) / sqrt(d) = 2
    assert m.tangent_error(W, W) == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_project_point_is_the_polar_factor(shape, dtype):
    # (77): the Frobenius-nearest point with orthonormal columns is U V^T, the polar factor of M (scipy)
    M = randn(*shape, seed=7, dtype=dtype)
    out = Stiefel().project_point(M)
    assert out.dtype == dtype and out.shape == M.shape
    expected = scipy.linalg.polar(M.double().numpy())[0]
    atol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=0, atol=atol)
    assert Stiefel().distance_to_manifold(out) < (1e-6 if dtype == torch.float32 else 1e-14)


def test_project_point_is_nearest_among_random_points():
    m = Stiefel()
    M = randn(6, 3, seed=8)
    best = float(torch.linalg.matrix_norm(M - m.project_point(M)))
    for seed in range(200):
        assert best <= float(torch.linalg.matrix_norm(M - stiefel_point(6, 3, seed=100 + seed))) + 1e-12


@pytest.mark.parametrize("M", [torch.zeros(5, 3), torch.ones(5, 3), torch.ones(4, 1)], ids=["zero", "rank1", "col"])
def test_project_point_of_rank_deficient_matrices_is_on_the_manifold(M):
    out = Stiefel().project_point(M)
    assert torch.isfinite(out).all()
    assert Stiefel().distance_to_manifold(out) < 1e-6


@pytest.mark.parametrize("method", ["svd", "newton_schulz"])
@pytest.mark.parametrize("shape", [(4, 2), (16, 16), (64, 32), (256, 128)])
def test_retraction_agrees_with_svd_polar_factor(method, shape):
    # a point moved off the manifold by a step: W - Delta with ||Delta||_2 about 0.1
    D, d = shape
    W = stiefel_point(D, d, seed=9, dtype=torch.float32)
    M = W - 0.1 * randn(D, d, seed=10, dtype=torch.float32) / D**0.5
    out = Stiefel(method).retract(M)
    ref = scipy.linalg.polar(M.double().numpy())[0]
    rel = np.linalg.norm(out.double().numpy() - ref) / np.linalg.norm(ref)
    # the stated accuracy of the class docstring: float32 rounding, about 3e-7 relative
    assert rel < 2e-6, rel
    assert Stiefel(method).distance_to_manifold(out) < 2e-6


def test_newton_schulz_retraction_float64_and_steps():
    W = stiefel_point(32, 8, seed=11)
    M = W - 0.2 * randn(32, 8, seed=12) / 32**0.5
    ref = scipy.linalg.polar(M.numpy())[0]
    err = [float(np.linalg.norm(Stiefel("newton_schulz", k).retract(M).numpy() - ref)) for k in (2, 4, 12)]
    assert err[0] > err[1] > err[2]  # the iteration converges ...
    assert err[2] < 1e-12  # ... to float64 rounding with the default 12 steps


def test_retract_refuses_non_finite():
    with pytest.raises(RuntimeError, match="non-finite"):
        Stiefel().retract(torch.full((3, 2), float("nan")))


@pytest.mark.parametrize(
    ("shape", "regex"),
    [((2, 3), r"D < d.*transpose"), ((3,), "2 dimensions"), ((2, 3, 4), "2 dimensions"), ((), "2 dimensions")],
)
def test_bad_shapes_are_refused(shape, regex):
    m = Stiefel()
    x = torch.zeros(shape)
    for call in (m.check_point, m.project_point, m.retract, m.distance_to_manifold):
        with pytest.raises(ValueError, match=regex):
            call(x)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="orthogonalize"):
        Stiefel("qr")
    with pytest.raises(ValueError, match="ns_steps"):
        Stiefel("newton_schulz", ns_steps=0)
    with pytest.raises(ValueError, match="floating"):
        Stiefel().check_point(torch.zeros(3, 2, dtype=torch.int64))
