"""The ``manifold`` entry of a param group: any rule's direction kept on a manifold (adaptim.optim.on_manifold).

The manifold here is a literal unit sphere written in this file from (71) and (70)'s renormalization, so the tests
check the seam (tangent gradients, projected direction, retraction, transported moments) against plain loops
written from the same formulas, independently of :mod:`adaptim.manifolds`' own classes.
"""

from __future__ import annotations

import copy

import pytest
import torch

import adaptim
from adaptim.manifolds.base import Manifold


class UnitSphere(Manifold):
    """The unit sphere of the whole tensor, literally."""

    def check_point(self, w, name="parameter"):
        if float(w.norm()) == 0:
            raise ValueError(f"{name} is zero")

    def project_point(self, x):
        return x / x.norm()

    def project_tangent(self, w, v):  # (71) with r = ||w||
        return v - (w * v).sum() / (w * w).sum() * w

    def retract(self, x):
        return x / x.norm()

    def is_tangent(self, w, v, tol):
        return abs(float((w * v).sum())) <= tol * float(v.norm())


def _problem(dtype=torch.float64, seed=0, steps=20):
    gen = torch.Generator().manual_seed(seed)
    w0 = torch.randn(6, generator=gen, dtype=dtype)
    w0 = w0 / w0.norm()
    grads = [torch.randn(6, generator=gen, dtype=dtype) for _ in range(steps)]
    return w0, grads


def _run(make, w0, grads):
    w = w0.clone().requires_grad_(True)
    opt = make([{"params": [w], "manifold": UnitSphere(), "weight_decay": 0.0}])
    for g in grads:
        w.grad = g.clone()
        opt.step()
    return w.detach(), opt


def test_sgd_with_momentum_on_the_sphere_matches_the_literal_loop():
    w0, grads = _problem()
    got, _ = _run(lambda p: adaptim.SGD(p, lr=0.1, momentum=0.9), w0, grads)
    sph, w, buf = UnitSphere(), w0.clone(), None
    for g in grads:
        g = sph.project_tangent(w, g)
        buf = g.clone() if buf is None else 0.9 * buf + g
        w = sph.retract(w - 0.1 * sph.project_tangent(w, buf))
        buf = sph.project_tangent(w, buf)  # transported to the new point
    torch.testing.assert_close(got, w, rtol=1e-12, atol=1e-14)


def test_adam_on_the_sphere_matches_the_literal_riemannian_adam():
    w0, grads = _problem()
    got, opt = _run(lambda p: adaptim.Adam(p, lr=0.05, betas=(0.9, 0.99), eps=1e-8), w0, grads)
    sph, w = UnitSphere(), w0.clone()
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    for t, g in enumerate(grads, 1):
        g = sph.project_tangent(w, g)  # the Riemannian gradient feeds both moments
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        d = (m / (1 - 0.9**t)) / ((v / (1 - 0.99**t)).sqrt() + 1e-8)
        w = sph.retract(w - 0.05 * sph.project_tangent(w, d))
        m = sph.project_tangent(w, m)
    torch.testing.assert_close(got, w, rtol=1e-10, atol=1e-12)
    p = opt.param_groups[0]["params"][0]
    assert abs(float((opt.state[p]["exp_avg"] * got).sum())) < 1e-12  # the moment is tangent at the new point


def test_the_norm_stays_one_over_a_thousand_float32_steps():
    w0, grads = _problem(torch.float32, steps=1000)
    got, _ = _run(lambda p: adaptim.AdamW(p, lr=0.1), w0, grads)
    assert abs(float(got.norm()) - 1) < 1e-6


def test_a_point_off_the_manifold_is_projected_when_the_group_is_added():
    w = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    adaptim.SGD([{"params": [w], "manifold": UnitSphere()}], lr=0.1)
    torch.testing.assert_close(w.detach(), torch.tensor([0.6, 0.8], dtype=torch.float64))


def test_the_fused_path_is_not_taken_and_the_other_groups_are_unchanged():
    a, b = torch.randn(4, requires_grad=True), torch.randn(4, requires_grad=True)
    opt = adaptim.AdamW([{"params": [a], "manifold": UnitSphere(), "weight_decay": 0.0}, {"params": [b]}], lr=0.1)
    assert not opt.uses_fused(opt.param_groups[0])
    b_ref = b.detach().clone().requires_grad_(True)
    ref = adaptim.AdamW([b_ref], lr=0.1)
    for _ in range(3):
        a.grad, b.grad, b_ref.grad = torch.ones(4), torch.ones(4), torch.ones(4)
        opt.step()
        ref.step()
    assert torch.equal(b, b_ref)


def test_a_checkpoint_resumes_the_exact_trajectory():
    w0, grads = _problem()
    full, _ = _run(lambda p: adaptim.Adam(p, lr=0.05), w0, grads)
    w = w0.clone().requires_grad_(True)
    opt = adaptim.Adam([{"params": [w], "manifold": UnitSphere(), "weight_decay": 0.0}], lr=0.05)
    for g in grads[:10]:
        w.grad = g.clone()
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    w2 = w.detach().clone().requires_grad_(True)
    opt2 = adaptim.Adam([{"params": [w2], "manifold": UnitSphere(), "weight_decay": 0.0}], lr=0.05)
    opt2.load_state_dict(saved)
    for g in grads[10:]:
        w2.grad = g.clone()
        opt2.step()
    assert torch.equal(w2.detach(), full)


def test_bad_manifold_entries_are_refused_with_clear_messages():
    w = torch.randn(3, requires_grad=True)
    with pytest.raises(ValueError, match="manifold: expected an adaptim.manifolds.Manifold"):
        adaptim.SGD([{"params": [w], "manifold": "sphere"}], lr=0.1)
    with pytest.raises(ValueError, match="weight_decay=0.1 in a param group with a manifold"):
        adaptim.AdamW([{"params": [w], "manifold": UnitSphere(), "weight_decay": 0.1}], lr=0.1)
    with pytest.raises(ValueError, match="is zero"):
        adaptim.SGD([{"params": [torch.zeros(3, requires_grad=True)], "manifold": UnitSphere()}], lr=0.1)

    class OwnLastStage(adaptim.SGD):
        def _final_step(self, group, params, directions, lr, decay=0.0):
            pass

    with pytest.raises(TypeError, match="ends its step on its own geometry"):
        OwnLastStage([{"params": [w], "manifold": UnitSphere()}], lr=0.1)


# ------------------------------------------------------------------------------- with adaptim.manifolds' classes
def test_adam_keeps_each_row_on_its_sphere_as_the_literal_loop_does():
    from adaptim.manifolds import Sphere

    gen = torch.Generator().manual_seed(4)
    W0 = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    grads = [torch.randn(3, 5, generator=gen, dtype=torch.float64) for _ in range(15)]
    W = W0.clone().requires_grad_(True)
    opt = adaptim.Adam([{"params": [W], "manifold": Sphere(radius=2.0, dim=1)}], lr=0.05)
    for g in grads:
        W.grad = g.clone()
        opt.step()
    # the literal loop, row by row, from (71) and the renormalization of (70)
    rows = [2.0 * r / r.norm() for r in W0]  # projected onto the radius-2 spheres when the group was added
    for i in range(3):
        w, m, v = rows[i], torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
        for t, G in enumerate(grads, 1):
            g = G[i] - (w @ G[i]) / (w @ w) * w
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            d = (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
            d = d - (w @ d) / (w @ w) * w
            w = 2.0 * (w - 0.05 * d) / (w - 0.05 * d).norm()
            m = m - (w @ m) / (w @ w) * w
        rows[i] = w
    torch.testing.assert_close(W.detach(), torch.stack(rows), rtol=1e-10, atol=1e-12)


def test_muon_on_a_sphere_keeps_each_matrix_norm():
    from adaptim.manifolds import Sphere

    gen = torch.Generator().manual_seed(5)
    Ws = [torch.randn(6, 4, generator=gen).requires_grad_(True) for _ in range(2)]
    norms = [float(W.detach().norm()) for W in Ws]
    starts = [W.detach().clone() for W in Ws]
    opt = adaptim.Muon([{"params": Ws, "manifold": Sphere()}], lr=0.05)  # radius=None: each matrix keeps its own
    for _ in range(200):
        for W in Ws:
            W.grad = torch.randn(6, 4, generator=gen)
        opt.step()
    for W, r, W0 in zip(Ws, norms, starts):
        assert abs(float(W.detach().norm()) / r - 1) < 1e-4
        assert float((W.detach() - W0).norm()) > 0.1 * r  # the weights moved on the sphere


def _polar(M):
    u, _, vt = torch.linalg.svd(M, full_matrices=False)
    return u @ vt


def test_adam_on_the_stiefel_manifold_matches_the_literal_loop_and_keeps_w_orthonormal():
    from adaptim.manifolds import Stiefel

    gen = torch.Generator().manual_seed(6)
    W0 = _polar(torch.randn(5, 3, generator=gen, dtype=torch.float64))
    grads = [torch.randn(5, 3, generator=gen, dtype=torch.float64) for _ in range(12)]
    W = W0.clone().requires_grad_(True)
    opt = adaptim.Adam([{"params": [W], "manifold": Stiefel()}], lr=0.05)
    for g in grads:
        W.grad = g.clone()
        opt.step()

    def tangent(X, V):  # V - X sym(X^T V)
        S = X.T @ V
        return V - X @ (S + S.T) / 2

    X, m, v = W0.clone(), torch.zeros_like(W0), torch.zeros_like(W0)
    for t, G in enumerate(grads, 1):
        g = tangent(X, G)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        d = (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
        X = _polar(X - 0.05 * tangent(X, d))  # (77)
        m = tangent(X, m)
    torch.testing.assert_close(W.detach(), X, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(W.detach().T @ W.detach(), torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-12)


def test_muon_on_the_stiefel_manifold_keeps_w_orthonormal_in_float32():
    from adaptim.manifolds import Stiefel

    gen = torch.Generator().manual_seed(7)
    W = torch.randn(8, 4, generator=gen).requires_grad_(True)
    opt = adaptim.Muon([{"params": [W], "manifold": Stiefel()}], lr=0.02)  # projected onto the manifold here
    start = W.detach().clone()
    for _ in range(300):
        W.grad = torch.randn(8, 4, generator=gen)
        opt.step()
    eye = torch.eye(4)
    assert float((W.detach().T @ W.detach() - eye).abs().max()) < 1e-5
    assert float((W.detach() - start).norm()) > 0.1
