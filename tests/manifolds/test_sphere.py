"""adaptim.manifolds.Sphere and the steps of Section 8.1: the geometry, Lemma S.19 (pin-to-sphere is
w - eta g_perp + O(eta^2)) and Lemma S.21 (the dual solution of the trust region (73) attains the primal maximum)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from adaptim.manifolds import Manifold, Sphere
from adaptim.manifolds.sphere import sphere_steps, trust_region_direction

DUAL = {"l2": 2, "l1": np.inf, "linf": 1}  # the dual norm's order
PRIMAL = {"l2": 2, "l1": 1, "linf": np.inf}


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ------------------------------------------------------------------------------------------------ geometry
def test_is_a_manifold_and_projections_are_the_definitions():
    s = Sphere(radius=2.0)
    assert isinstance(s, Manifold)
    x, v = rand(5), rand(5, seed=1)
    p = s.project_point(x)
    np.testing.assert_allclose(p.numpy(), (2.0 * x / x.norm()).numpy(), rtol=1e-15)
    w = p
    t = s.project_tangent(w, v)
    literal = v - (w @ v) / 4.0 * w  # (71) with r^2 = 4
    np.testing.assert_allclose(t.numpy(), literal.numpy(), atol=1e-14)
    assert s.is_tangent(w, t, 1e-12) and not s.is_tangent(w, v, 1e-3)
    np.testing.assert_allclose(float(s.retract(w + 0.3 * t).norm()), 2.0, rtol=1e-15)
    assert s.distance_to_manifold(p) < 1e-15 and s.distance_to_manifold(3 * p) == pytest.approx(2.0)


def test_rows_are_their_own_spheres_with_dim():
    W = rand(4, 3)
    s = Sphere(radius=1.5, dim=1)
    P = s.project_point(W)
    np.testing.assert_allclose(P.norm(dim=1).numpy(), 1.5, rtol=1e-15)
    for i in range(4):  # row i is W's row i, rescaled
        np.testing.assert_allclose(P[i].numpy(), (1.5 * W[i] / W[i].norm()).numpy(), rtol=1e-15)
    V = rand(4, 3, seed=2)
    T = s.project_tangent(P, V)
    for i in range(4):
        assert abs(float(T[i] @ P[i])) < 1e-14
    # dim=0: the columns
    c = Sphere(radius=1.0, dim=0).project_point(W)
    np.testing.assert_allclose(c.norm(dim=0).numpy(), 1.0, rtol=1e-15)
    # radius=None: each slice keeps its own norm
    own = Sphere(dim=1)
    np.testing.assert_allclose(own.radius_of(W).squeeze(1).numpy(), W.norm(dim=1).numpy(), rtol=1e-15)
    np.testing.assert_allclose(own.retract(2 * W, radius=own.radius_of(W)).numpy(), W.numpy(), rtol=1e-15)


def test_tiny_and_huge_points_project_without_underflow_or_overflow():
    s = Sphere(radius=1.0)
    for scale in (1e-30, 1e30):
        x = rand(4, dtype=torch.float32) * scale
        p = s.project_point(x)
        assert torch.isfinite(p).all() and float(p.norm()) == pytest.approx(1.0, rel=1e-6)
        t = s.project_tangent(x, rand(4, seed=3, dtype=torch.float32))
        assert torch.isfinite(t).all() and s.is_tangent(x, t, 1e-5)


@pytest.mark.parametrize("radius", [0, 0.0, -1.0, math.inf, math.nan, "1", True])
def test_bad_radius_is_refused(radius):
    with pytest.raises(ValueError, match="radius must be a positive finite number or None"):
        Sphere(radius=radius)


def test_zero_vectors_and_missing_dims_are_refused_by_name():
    with pytest.raises(ValueError, match="the point of shape \\(3,\\) is the zero vector.*cannot be projected"):
        Sphere(1.0).project_point(torch.zeros(3))
    W = torch.ones(3, 2)
    W[1] = 0
    with pytest.raises(ValueError, match="weight of shape \\(3, 2\\) has 1 zero slice"):
        Sphere(1.0, dim=1).check_point(W, "weight")
    with pytest.raises(ValueError, match="no dimension dim=2"):
        Sphere(1.0, dim=2).check_point(torch.ones(3, 2))
    with pytest.raises(ValueError, match="dim must be an int"):
        Sphere(1.0, dim=1.0)
    with pytest.raises(ValueError, match="needs the radius"):
        Sphere().retract(torch.ones(3))


# ------------------------------------------------------------------------------------------- Lemma S.19
def test_lemma_s19_pin_to_sphere_error_shrinks_like_eta_squared():
    r = 1.7
    w = rand(6)
    w = r * w / w.norm()
    g = rand(6, seed=4)
    g_perp = g - (w @ g) / r**2 * w
    etas = np.logspace(-5, -1, 9)
    errors = []
    for eta in etas:
        w_new = sphere_steps(w[None], g[None], float(eta), torch.tensor([[r]], dtype=torch.float64), "pin")[0]
        literal = r / float((w - eta * g).norm()) * (w - eta * g)  # (70)
        np.testing.assert_allclose(w_new.numpy(), literal.numpy(), rtol=1e-13, atol=1e-15)
        errors.append(float((w_new - (w - eta * g_perp)).norm()))
    slope = np.polyfit(np.log(etas), np.log(errors), 1)[0]
    assert 1.9 < slope < 2.1, slope


# ------------------------------------------------------------------------------------------- Lemma S.21
def primal_lp(w: np.ndarray, g: np.ndarray, norm: str) -> float:
    """max <Delta, g> over ||Delta|| <= 1, <Delta, w> = 0 for l1 / linf, as a linear program (Delta = p - q)."""
    d = len(w)
    c = -np.concatenate([g, -g])  # maximize g^T (p - q)
    a_eq = np.concatenate([w, -w])[None]
    if norm == "l1":  # sum(p + q) <= 1
        res = linprog(c, A_ub=np.ones((1, 2 * d)), b_ub=[1.0], A_eq=a_eq, b_eq=[0.0], bounds=(0, None), method="highs")
    else:  # |p_i - q_i| <= 1 with p, q in [0, 1]
        res = linprog(c, A_eq=a_eq, b_eq=[0.0], bounds=(0, 1), method="highs")
    assert res.status == 0
    return -res.fun


def primal_sampled_l2(w: np.ndarray, g: np.ndarray, n: int = 200_000) -> float:
    """max <Delta, g> over the unit l2 ball of w's orthogonal complement, by dense sampling of its sphere."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, len(w)))
    x -= np.outer(x @ w / (w @ w), w)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return float((x @ g).max())


CASES = [(d, seed) for d in (2, 3, 4, 5) for seed in range(5)]


@pytest.mark.parametrize("norm", ["l2", "l1", "linf"])
@pytest.mark.parametrize("d,seed", CASES)
def test_lemma_s21_dual_solution_attains_the_primal_maximum(norm, d, seed):
    w, g = rand(d, seed=seed), rand(d, seed=100 + seed)
    z, lam = trust_region_direction(w[None], g[None], norm)
    z, lam = z[0], float(lam[0])
    zn, wn, gn = z.numpy(), w.numpy(), g.numpy()
    assert abs(zn @ wn) < 1e-12  # orthogonal to w
    assert np.linalg.norm(zn, PRIMAL[norm]) == pytest.approx(1.0, rel=1e-12)  # on the boundary of the ball
    # strong duality: <z, g> = ||g + lambda* w||_* and lambda* minimizes the dual over a dense grid around it
    phi = lambda t: np.linalg.norm(gn + t * wn, DUAL[norm])
    assert zn @ gn == pytest.approx(phi(lam), rel=1e-12)
    grid = lam + np.linspace(-3, 3, 20001)
    assert phi(lam) <= min(phi(t) for t in grid) + 1e-12
    # the primal maximum, by brute force
    if norm == "l2":
        sampled = primal_sampled_l2(wn, gn)
        # (samples nearly parallel to w lose digits in the projection: a 1e-9 slack)
        assert sampled <= zn @ gn + 1e-9 and zn @ gn == pytest.approx(sampled, rel=1e-3)
    else:
        assert zn @ gn == pytest.approx(primal_lp(wn, gn, norm), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("norm", ["l1", "linf"])
@pytest.mark.parametrize(
    "w,g",
    [
        ([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, -1.0, -1.0]),  # ties: several a_i at the median, equal pair values
        ([1.0, 0.0, 2.0], [0.5, 3.0, -1.0]),  # an entry with w_i = 0 carries the l1 step
        ([0.0, 2.0, -1.0, 0.0], [0.0, 1.0, 1.0, -0.25]),
        ([3.0, -1.0], [0.0, 2.0]),  # d = 2: the step is along the one tangent direction
        ([1.0, 2.0, 3.0], [-1.0, 0.5, 0.5]),
    ],
)
def test_lemma_s21_degenerate_problems(norm, w, g):
    w, g = torch.tensor(w, dtype=torch.float64), torch.tensor(g, dtype=torch.float64)
    z = trust_region_direction(w[None], g[None], norm)[0][0].numpy()
    assert abs(z @ w.numpy()) < 1e-12
    assert np.linalg.norm(z, PRIMAL[norm]) == pytest.approx(1.0, rel=1e-12)
    assert z @ g.numpy() == pytest.approx(primal_lp(w.numpy(), g.numpy(), norm), rel=1e-10, abs=1e-12)


def test_trust_region_direction_rows_are_solved_independently():
    W, G = rand(6, 5, seed=7), rand(6, 5, seed=8)
    for norm in ("l2", "l1", "linf"):
        Z, lam = trust_region_direction(W, G, norm)
        for i in range(6):
            zi, li = trust_region_direction(W[i : i + 1], G[i : i + 1], norm)
            torch.testing.assert_close(Z[i], zi[0], rtol=0, atol=1e-15)
            assert float(lam[i]) == pytest.approx(float(li[0]), abs=1e-12)


@pytest.mark.parametrize(
    "method,norm",
    [("pin", "l2"), ("tangent", "l2"), ("trust_region", "l2"), ("trust_region", "l1"), ("trust_region", "linf")],
)
def test_radial_or_zero_gradient_leaves_the_point(method, norm):
    w = rand(2, 4, dtype=torch.float32)
    G = torch.stack([torch.zeros(4), 3.0 * w[1]])  # zero; radial (pin's (70) would flip it for eta * 3 > 1)
    r = w.norm(dim=1, keepdim=True)
    out = sphere_steps(w, G, 0.5, r, method, norm)
    assert torch.equal(out, w)
