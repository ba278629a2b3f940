"""StiefelSGD (Section 8.2): the constraint over long runs, "project" against a literal numpy reference of (77),
manifold Muon's steps (tangent, spectral norm lr) and Lemma S.22 against a generic solver of the primal (78) for
the spectral and Frobenius norms, orthonormalization at construction, bad inputs and zero gradients."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import torch

import adaptim
from adaptim.manifolds import Stiefel
from adaptim.manifolds.stiefel import manifold_muon_direction

METHODS = ["project", "manifold_muon"]
ORTHS = ["svd", "newton_schulz"]


def qr_point(D: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(D, d, generator=g, dtype=torch.float64))[0].to(dtype)


def randn(*shape, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def step_with(opt, p, g):
    p.grad = g.clone()
    opt.step()


# ----------------------------------------------------------------------------------------- the constraint


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("orth", ORTHS)
def test_stays_on_the_manifold_over_1000_float32_steps(method, orth):
    # a regression loss ||X W - Y||^2 whose minimizer is not orthonormal: every step pulls W off the manifold
    X, Y = randn(32, 12, seed=1, dtype=torch.float32), randn(32, 5, seed=2, dtype=torch.float32)
    W = torch.nn.Parameter(qr_point(12, 5, seed=3, dtype=torch.float32))
    opt = adaptim.StiefelSGD([W], lr=0.01, method=method, orthogonalize=orth, momentum=0.9, dual_steps=10)
    eye = torch.eye(5)
    worst = 0.0
    losses = []
    for _ in range(1000):
        opt.zero_grad()
        loss = ((X @ W - Y) ** 2).sum()
        loss.backward()
        opt.step()
        worst = max(worst, float((W.detach().T @ W.detach() - eye).abs().max()))
        losses.append(float(loss.detach()))
    assert worst < 1e-5, worst
    assert losses[-1] < 0.9 * losses[0]  # and it optimizes


# ------------------------------------------------------------------------------- "project" against (77)


def numpy_orth(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m, full_matrices=False)
    return u @ vt


@pytest.mark.parametrize("momentum", [0.0, 0.7])
def test_project_matches_a_literal_numpy_reference(momentum):
    D, d, lr = 6, 3, 0.3
    W = torch.nn.Parameter(qr_point(D, d, seed=4))
    opt = adaptim.StiefelSGD([W], lr=lr, method="project", momentum=momentum)
    w = W.detach().numpy().copy()
    buf = np.zeros_like(w)
    for t in range(5):
        g = randn(D, d, seed=10 + t)
        step_with(opt, W, g)
        gn = g.numpy()
        if momentum:  # heavy ball, the old buffer projected onto the tangent space at the current point
            buf = momentum * (buf - w @ (w.T @ buf + buf.T @ w) / 2) + gn
            gn = buf
        w = numpy_orth(w - lr * gn)  # (77) in float64
        np.testing.assert_allclose(W.detach().numpy(), w, rtol=0, atol=1e-12)
        if momentum:
            np.testing.assert_allclose(opt.state[W]["momentum_buffer"].numpy(), buf, rtol=0, atol=1e-12)


def test_maximize_ascends():
    W1 = torch.nn.Parameter(qr_point(5, 2, seed=5))
    W2 = torch.nn.Parameter(W1.detach().clone())
    g = randn(5, 2, seed=6)
    step_with(adaptim.StiefelSGD([W1], lr=0.1, maximize=True), W1, g)
    step_with(adaptim.StiefelSGD([W2], lr=0.1), W2, -g)
    assert torch.equal(W1.detach(), W2.detach())


# ------------------------------------------------------------------------------------------- manifold Muon


@pytest.mark.parametrize("orth", ORTHS)
@pytest.mark.parametrize("shape", [(4, 2), (3, 2), (16, 4), (8, 8), (5, 1)])
def test_manifold_muon_steps_are_tangent_with_spectral_norm_lr(orth, shape):
    D, d = shape
    lr, tol = 0.05, 1e-4
    m = Stiefel(orth)
    W = torch.nn.Parameter(qr_point(D, d, seed=7, dtype=torch.float32))
    opt = adaptim.StiefelSGD([W], lr=lr, method="manifold_muon", orthogonalize=orth, tol=tol)
    for t in range(5):
        w, g = W.detach().clone(), randn(D, d, seed=20 + t, dtype=torch.float32)
        step = manifold_muon_direction(m, w, g, tol=tol)
        delta = lr * step.direction
        assert m.tangent_error(w, delta) <= tol
        assert float(torch.linalg.matrix_norm(delta, ord=2)) == pytest.approx(lr, rel=1e-5)
        step_with(opt, W, g)  # the optimizer takes exactly this step, then retracts
        torch.testing.assert_close(W.detach(), m.retract(w - delta), rtol=0, atol=1e-6)


def test_manifold_muon_direction_does_not_depend_on_the_gradient_scale():
    m = Stiefel()
    W, G = qr_point(7, 3, seed=8), randn(7, 3, seed=9)
    a = manifold_muon_direction(m, W, G, tol=1e-10, dual_steps=500).direction
    b = manifold_muon_direction(m, W, 1e-6 * G, tol=1e-10, dual_steps=500).direction
    torch.testing.assert_close(a, b, rtol=0, atol=1e-8)


def tangent_basis(W: np.ndarray) -> np.ndarray:
    """An orthonormal basis (r, D, d) of the tangent space {Delta : Delta^T W + W^T Delta = 0} at W."""
    D, d = W.shape
    rows = []
    for i in range(D):
        for j in range(d):
            E = np.zeros((D, d))
            E[i, j] = 1.0
            rows.append((E - W @ (W.T @ E + E.T @ W) / 2).ravel())
    _, s, vt = np.linalg.svd(np.array(rows))
    r = int((s > 1e-10).sum())
    return vt[:r].reshape(r, D, d)


def primal_maximum(W: np.ndarray, G: np.ndarray, ord, starts: int = 4) -> float:
    """max <Delta, G> over tangent Delta with ||Delta|| <= 1 ((78) with eta = 1) by a generic solver: Nelder-Mead on
    the tangent coordinates x of <Delta(x), G> / ||Delta(x)|| (its superlevel sets are convex cones), from several
    random starts, each restarted once from its end point."""
    basis = tangent_basis(W)
    rng = np.random.default_rng(0)

    def f(x):
        delta = np.tensordot(x, basis, 1)
        n = np.linalg.norm(delta, ord=ord)
        return -np.sum(delta * G) / n if n > 0 else 0.0

    opts = dict(xatol=1e-12, fatol=1e-14, maxiter=20000, maxfev=40000)
    best = 0.0
    for _ in range(starts):
        res = scipy.optimize.minimize(f, rng.standard_normal(len(basis)), method="Nelder-Mead", options=opts)
        res = scipy.optimize.minimize(f, res.x, method="Nelder-Mead", options=opts)
        best = min(best, res.fun)
    return -best


# (D, d) <= 4: 3 x 2 has a rank-deficient dual solution (the subgradient completion), 3 x 3 a square W
S22_SHAPES = [(2, 1), (3, 1), (3, 2), (4, 2), (4, 3), (3, 3)]


@pytest.mark.parametrize("shape", S22_SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_lemma_s22_spectral_dual_attains_the_primal_maximum(shape, seed):
    D, d = shape
    rng = np.random.default_rng(100 * D + 10 * d + seed)
    W = np.linalg.qr(rng.standard_normal((D, d)))[0]
    G = rng.standard_normal((D, d))
    eta = 0.7
    step = manifold_muon_direction(Stiefel(), torch.tensor(W), torch.tensor(G), dual_steps=300, tol=1e-10)
    value = eta * float(np.sum(step.direction.numpy() * G))
    best = eta * primal_maximum(W, G, 2)
    # feasible for (78) (so never above the maximum, up to the solver's rounding) and within 1e-6 of it (the
    # rank-deficient 3 x 2 case: about 1e-7, from the near-zero singular value treated as zero)
    assert value <= best * (1 + 1e-9)
    assert value == pytest.approx(best, rel=1e-6)


def test_lemma_s22_d1_is_the_sphere_trust_region_step():
    # d = 1: St(D, 1) is the unit sphere, the spectral norm of a column is its l2 norm, and (78) is (73) with the
    # l2 solution Delta = eta g_perp / ||g_perp||_2
    w, g = qr_point(6, 1, seed=11), randn(6, 1, seed=12)
    gp = g - w @ (w.T @ g)
    z = manifold_muon_direction(Stiefel(), w, g).direction
    torch.testing.assert_close(z, gp / torch.linalg.vector_norm(gp), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 2), (4, 2), (4, 3)])
def test_lemma_s22_frobenius_closed_form(shape):
    # the Frobenius norm is its own dual: Lambda* = -sym(W^T G) minimizes ||G + W Lambda||_F over Sym(d), so
    # H* = P_W(G) and Delta = eta P_W(G) / ||P_W(G)||_F, with f* = eta ||P_W(G)||_F
    D, d = shape
    rng = np.random.default_rng(D * 10 + d)
    W = np.linalg.qr(rng.standard_normal((D, d)))[0]
    G = rng.standard_normal((D, d))
    pg = Stiefel().project_tangent(torch.tensor(W), torch.tensor(G)).numpy()
    closed = np.linalg.norm(pg)
    # the dual by a generic solver over symmetric Lambda (its upper triangle)
    iu = np.triu_indices(d)

    def dual(x):
        lam = np.zeros((d, d))
        lam[iu] = x
        lam = lam + np.triu(lam, 1).T
        return np.linalg.norm(G + W @ lam)

    dual_min = scipy.optimize.minimize(dual, np.zeros(len(iu[0])), method="BFGS", options=dict(gtol=1e-12)).fun
    primal = primal_maximum(W, G, "fro")
    assert closed == pytest.approx(dual_min, rel=1e-9)
    assert closed == pytest.approx(primal, rel=1e-9)
    # and the closed-form maximizer attains it: <P(G) / ||P(G)||_F, G> = ||P(G)||_F
    assert float(np.sum(pg / closed * G)) == pytest.approx(closed, rel=1e-12)


# ------------------------------------------------------------------------------------------ construction


def test_parameters_off_the_manifold_are_orthonormalized_at_construction():
    M = randn(6, 3, seed=13)
    W = torch.nn.Parameter(M.clone())
    on = torch.nn.Parameter(qr_point(5, 2, seed=14))
    before = on.detach().clone()
    adaptim.StiefelSGD([W, on], lr=0.1)
    np.testing.assert_allclose(W.detach().numpy(), scipy.linalg.polar(M.numpy())[0], rtol=0, atol=1e-12)
    assert torch.equal(on.detach(), before)  # already on it: untouched
    # a group added later too
    V = torch.nn.Parameter(randn(4, 4, seed=15, dtype=torch.float32))
    opt = adaptim.StiefelSGD([on], lr=0.1)
    opt.add_param_group({"params": [V]})
    assert float((V.detach().T @ V.detach() - torch.eye(4)).abs().max()) < 1e-6


@pytest.mark.parametrize(
    ("shape", "regex"),
    [((2, 3), r"D < d.*transpose"), ((4,), "2 dimensions"), ((2, 3, 3), "2 dimensions"), ((), "2 dimensions")],
)
def test_bad_parameter_shapes_are_refused(shape, regex):
    p = torch.nn.Parameter(torch.randn(shape))
    before = p.detach().clone()
    with pytest.raises(ValueError, match=regex):
        adaptim.StiefelSGD([p], lr=0.1)
    assert torch.equal(p.detach(), before)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(method="riemannian"), "method"),
        (dict(orthogonalize="qr"), "orthogonalize"),
        (dict(momentum=1.0), "momentum"),
        (dict(lr=-1.0), "lr"),
        (dict(ns_steps=0), "ns_steps"),
        (dict(dual_steps=-1), "dual_steps"),
        (dict(dual_lr=0.0), "dual_lr"),
        (dict(tol=-1e-3), "tol"),
    ],
)
def test_bad_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=name):
        adaptim.StiefelSGD([torch.nn.Parameter(qr_point(3, 2, seed=0))], **kwargs)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("orth", ORTHS)
def test_zero_gradient_leaves_w_unchanged(method, orth):
    W = torch.nn.Parameter(qr_point(5, 3, seed=16, dtype=torch.float32))
    before = W.detach().clone()
    opt = adaptim.StiefelSGD([W], lr=0.1, method=method, orthogonalize=orth, momentum=0.5)
    for _ in range(3):
        step_with(opt, W, torch.zeros(5, 3))
    assert torch.equal(W.detach(), before)


def test_normal_gradient_leaves_w_unchanged_under_manifold_muon():
    # G = W S with S symmetric has no tangent component: (78)'s maximum is 0, the step is zero
    W = torch.nn.Parameter(qr_point(5, 3, seed=17))
    S = randn(3, 3, seed=18)
    before = W.detach().clone()
    opt = adaptim.StiefelSGD([W], lr=0.1, method="manifold_muon")
    step_with(opt, W, before @ (S + S.T))
    assert torch.isfinite(W).all()
    assert torch.equal(W.detach(), before)


def test_momentum_buffer_is_transported_by_projection():
    # B_t = mu P_{W_t}(B_{t-1}) + G_t: with G = 0 after the first step, the buffer is a tangent vector at W_t
    W = torch.nn.Parameter(qr_point(6, 2, seed=19))
    opt = adaptim.StiefelSGD([W], lr=0.1, momentum=0.9, method="manifold_muon")
    step_with(opt, W, randn(6, 2, seed=30))
    for _ in range(2):
        before = opt.state[W]["momentum_buffer"].clone()
        w = W.detach().clone()
        step_with(opt, W, torch.zeros(6, 2, dtype=torch.float64))
        buf = opt.state[W]["momentum_buffer"]
        torch.testing.assert_close(buf, 0.9 * Stiefel().project_tangent(w, before), rtol=0, atol=1e-14)
        assert Stiefel().tangent_error(w, buf) < 1e-12


def test_exported():
    assert adaptim.StiefelSGD is adaptim.optim.StiefelSGD
    assert "StiefelSGD" in adaptim.__all__
