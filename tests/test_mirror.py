"""adaptim.mirror against the notes: the closed forms (83), (84) against autograd, Lemmas C.1-C.5 and Example C.1,
(91) as the minimizer of (90), the conjugates of Appendix E, the dual of the weighted norm (M.3, M.3.1), the
projections against a generic constrained solver, and case C15 (exponentiated gradient never overflows)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from adaptim.mirror import (
    MIRROR_MAPS,
    Ball,
    Box,
    Entropy,
    Euclidean,
    Simplex,
    Subspace,
    Weighted,
    bregman_divergence,
    bregman_projection,
    check_simplex,
    dual_weighted_norm,
    exponentiated_gradient,
    mirror_descent_step,
    mirror_map,
    normalize_simplex,
    project_simplex,
    simplex_tolerance,
    weighted_norm,
)

D = 5
SEEDS = range(5)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def spd(d: int, seed: int) -> torch.Tensor:
    m = torch.randn(d, d, generator=gen(1000 + seed), dtype=torch.float64)
    return m @ m.T + 0.5 * torch.eye(d, dtype=torch.float64)


def point(name: str, seed: int, d: int = D) -> torch.Tensor:
    """A random point of the map's domain: R^d, or the interior of the simplex for the entropy."""
    x = torch.randn(d, generator=gen(seed), dtype=torch.float64)
    return torch.softmax(x, 0) if name == "entropy" else x


def maps(seed: int = 0) -> dict[str, object]:
    return {"euclidean": Euclidean(), "weighted": Weighted(spd(D, seed)), "entropy": Entropy()}


def kl(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """KL(x, y) = sum_i x_i log(x_i / y_i), literally (x, y > 0 on the simplex)."""
    return sum(x[i] * math.log(x[i] / y[i]) for i in range(len(x)))


# --------------------------------------------------------------------------------- (83), (84), autograd
@pytest.mark.parametrize("seed", SEEDS)
def test_83_weighted_distance_is_the_bregman_divergence_of_half_the_squared_a_norm(seed):
    A = spd(D, seed)
    x, y = point("weighted", seed), point("weighted", seed + 50)
    literal = 0.5 * (x - y) @ A @ (x - y)
    by_autograd = bregman_divergence(lambda v: 0.5 * v @ A @ v, x, y)
    torch.testing.assert_close(by_autograd, literal, rtol=1e-12, atol=0)
    torch.testing.assert_close(Weighted(A).divergence(x, y), literal, rtol=1e-12, atol=0)
    torch.testing.assert_close(Euclidean().divergence(x, y), 0.5 * ((x - y) ** 2).sum(), rtol=1e-12, atol=0)
    torch.testing.assert_close(
        bregman_divergence(lambda v: 0.5 * (v * v).sum(), x, y), Euclidean().divergence(x, y), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_84_negative_entropy_gives_kl_on_the_simplex(seed):
    x, y = point("entropy", seed), point("entropy", seed + 50)
    literal = kl(x, y)
    by_autograd = bregman_divergence(lambda v: (v * torch.log(v)).sum(), x, y)
    torch.testing.assert_close(by_autograd, torch.as_tensor(literal), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(Entropy().divergence(x, y), torch.as_tensor(literal), rtol=1e-10, atol=1e-14)
    assert Entropy().divergence(x, y) >= 0.5 * float((x - y).abs().sum()) ** 2  # Pinsker: 1-strongly convex in l1


@pytest.mark.parametrize("name", MIRROR_MAPS)
@pytest.mark.parametrize("seed", SEEDS)
def test_each_map_gradient_inverse_and_divergence_agree_with_autograd(name, seed):
    m = maps(seed)[name]
    x, y = point(name, seed), point(name, seed + 50)
    xx = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(m.psi(xx), xx)
    torch.testing.assert_close(m.grad_psi(x), grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.grad_psi_star(m.grad_psi(x)), x, rtol=1e-12, atol=1e-12)  # (95)
    torch.testing.assert_close(m.divergence(x, y), bregman_divergence(m.psi, x, y), rtol=1e-10, atol=1e-14)
    assert float(m.divergence(x, y)) > 0 and float(m.divergence(x, x)) == pytest.approx(0, abs=1e-15)


@pytest.mark.parametrize("name", MIRROR_MAPS)
def test_conjugate_is_fact_e4_and_the_maximum_of_92(name):
    """psi*(p) = p^T (grad psi)^{-1}(p) - psi((grad psi)^{-1}(p)) (94), and equals max_x p^T x - psi(x) (93) found
    by a generic solver; grad psi* = (grad psi)^{-1} (95) by autograd."""
    m = maps()[name]
    p = torch.randn(D, generator=gen(7), dtype=torch.float64) * 0.5
    xp = m.grad_psi_star(p)
    torch.testing.assert_close(m.psi_star(p), p @ xp - m.psi(xp), rtol=1e-12, atol=1e-12)
    pp = p.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(m.psi_star(pp), pp)
    torch.testing.assert_close(grad, xp, rtol=1e-12, atol=1e-12)

    def neg(v):
        x = torch.as_tensor(v)
        return -float(p @ x - m.psi(x))

    bounds = [(1e-12, None)] * D if name == "entropy" else None
    best = minimize(neg, np.full(D, 0.5), method="L-BFGS-B", bounds=bounds, options=dict(ftol=1e-14, gtol=1e-10))
    assert -best.fun == pytest.approx(float(m.psi_star(p)), rel=1e-6, abs=1e-8)


def test_bregman_divergence_takes_any_convex_function_and_refuses_shape_mismatch():
    psi = lambda v: torch.logsumexp(v, 0) + (v**4).sum()  # convex, not one of the maps
    x, y = point("euclidean", 1), point("euclidean", 2)
    yy = y.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(psi(yy), yy)
    literal = psi(x) - psi(y) - g @ (x - y)
    torch.testing.assert_close(bregman_divergence(psi, x, y), literal.detach(), rtol=1e-12, atol=0)
    assert float(bregman_divergence(psi, x, y)) > 0
    with pytest.raises(ValueError, match="one shape"):
        bregman_divergence(psi, x, y[:3])


# ------------------------------------------------------------------------------------------- Lemma C.1
@pytest.mark.parametrize("name", MIRROR_MAPS)
@pytest.mark.parametrize("seed", SEEDS)
def test_lemma_c1_three_point_identity(name, seed):
    m = maps(seed)[name]
    x, y, z = (point(name, seed + k) for k in (0, 100, 200))
    lhs = m.divergence(y, x)
    rhs = m.divergence(z, x) + m.divergence(y, z) + (m.grad_psi(z) - m.grad_psi(x)) @ (y - z)
    torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------------------------ projections, Lemma C.2
def _cases(seed: int):
    """(map name, map, convex set, whether (87) holds with equality): every closed form implemented."""
    A = spd(D, seed)
    diag = torch.diag(torch.rand(D, generator=gen(seed), dtype=torch.float64) + 0.5)
    basis = torch.randn(D, 2, generator=gen(seed + 3), dtype=torch.float64)
    return [
        ("euclidean", Euclidean(), Simplex(), False),
        ("euclidean", Euclidean(), Box(-0.3, 0.4), False),
        ("euclidean", Euclidean(), Ball(0.7, torch.full((D,), 0.1, dtype=torch.float64)), False),
        ("euclidean", Euclidean(), Subspace(basis), True),  # Example C.1
        ("weighted", Weighted(A), Subspace(basis), True),
        ("weighted", Weighted(diag), Box(-0.3, 0.4), False),
        ("weighted", Weighted(3 * torch.eye(D, dtype=torch.float64)), Ball(0.7), False),
        ("entropy", Entropy(), Simplex(), True),  # the simplex is affine for KL: equality
        ("entropy", Entropy(), Box(0.05, 0.3), False),
    ]


def _sample_in(s, seed: int) -> torch.Tensor:
    g = gen(seed)
    if isinstance(s, Simplex):
        return torch.softmax(2 * torch.randn(D, generator=g, dtype=torch.float64), 0)
    if isinstance(s, Box):
        return s.low + (s.high - s.low) * torch.rand(D, generator=g, dtype=torch.float64)
    if isinstance(s, Ball):
        v = torch.randn(D, generator=g, dtype=torch.float64)
        return s._c(v) + v / v.norm() * s.radius * float(torch.rand(1, generator=g, dtype=torch.float64))
    return s.basis @ torch.randn(s.basis.shape[1], generator=g, dtype=torch.float64)


def _outside(name: str, seed: int) -> torch.Tensor:
    """A point of the map's domain that is (typically) outside the set: scaled up, positive for the entropy."""
    x = 2 * torch.randn(D, generator=gen(300 + seed), dtype=torch.float64)
    return x.exp() if name == "entropy" else x


def _solver_projection(m, s, x: torch.Tensor) -> np.ndarray:
    """argmin_{z in s} D_psi(z, x) by a generic solver: SLSQP under the set's constraints (BFGS over the
    coefficients z = B c for a subspace), with grad_z D(z, x) = grad psi(z) - grad psi(x)."""
    f = lambda z: float(m.divergence(torch.as_tensor(z), x))
    jac = lambda z: (m.grad_psi(torch.as_tensor(z)) - m.grad_psi(x)).numpy()
    if isinstance(s, Subspace):
        B = s.basis.numpy()
        res = minimize(
            lambda c: f(B @ c),
            np.zeros(B.shape[1]),
            jac=lambda c: B.T @ jac(B @ c),
            method="BFGS",
            options=dict(gtol=1e-12),
        )
        return B @ res.x
    cons, bounds, start = [], None, np.full(D, 1 / D)
    if isinstance(s, Simplex):
        cons = [{"type": "eq", "fun": lambda z: z.sum() - 1, "jac": lambda z: np.ones(D)}]
        bounds = [(1e-12 if isinstance(m, Entropy) else 0, 1)] * D
    elif isinstance(s, Box):
        bounds, start = [(s.low, s.high)] * D, np.full(D, 0.5 * (s.low + s.high))
    else:
        c = s._c(x).numpy()
        cons, start = (
            [{"type": "ineq", "fun": lambda z: s.radius**2 - ((z - c) ** 2).sum(), "jac": lambda z: -2 * (z - c)}],
            c,
        )
    res = minimize(
        f, start, jac=jac, method="SLSQP", bounds=bounds, constraints=cons, options=dict(ftol=1e-14, maxiter=500)
    )
    # status 8: no descent direction left at this precision (the optimum; the comparison below checks it)
    assert res.success or res.status == 8, res.message
    return res.x


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", range(9))
def test_projection_is_the_minimizer_of_86_and_lemma_c2_holds(k, seed):
    """p_x = argmin_{z in C} D_psi(z, x) (86) equals a generic solver's minimizer, lies in C, and for y in C
    D(y, x) >= D(p_x, x) + D(y, p_x) (87), with equality where C is a subspace (Example C.1) or, for KL, the
    simplex (grad psi(p_x) - grad psi(x) is constant, orthogonal to y - p_x)."""
    name, m, s, equality = _cases(seed)[k]
    x = _outside(name, seed)
    p = bregman_projection(m, x, s)
    assert s.contains(p, tol=1e-9)
    np.testing.assert_allclose(p.numpy(), _solver_projection(m, s, x), rtol=1e-5, atol=1e-6)
    for j in range(5):
        y = _sample_in(s, 10 * seed + j)
        lhs, rhs = m.divergence(y, x), m.divergence(p, x) + m.divergence(y, p)
        if equality:
            torch.testing.assert_close(lhs, rhs, rtol=1e-9, atol=1e-12)
        else:
            assert float(lhs) >= float(rhs) - 1e-10 * (1 + float(lhs))


def test_example_c1_squared_euclidean_pythagoras_and_a_strict_case():
    """Example C.1 with psi = ||x||^2 (D = ||x - z||^2) on a subspace: the usual Pythagorean theorem. Off a
    subspace (the simplex, x far outside) the inequality (87) is strict for some y."""
    basis = torch.randn(D, 3, generator=gen(5), dtype=torch.float64)
    x, y = _outside("euclidean", 1), basis @ torch.randn(3, generator=gen(6), dtype=torch.float64)
    p = Euclidean().project(x, Subspace(basis))
    torch.testing.assert_close(((x - y) ** 2).sum(), ((x - p) ** 2).sum() + ((p - y) ** 2).sum(), rtol=1e-12, atol=0)
    assert float((basis.T @ (x - p)).abs().max()) < 1e-12  # x - p_x is orthogonal to C
    m, s = Euclidean(), Simplex()
    x = torch.tensor([3.0, -2.0, 0.5, 0.1, -1.0], dtype=torch.float64)
    p = m.project(x, s)
    y = torch.full((D,), 1 / D, dtype=torch.float64)
    assert float(m.divergence(y, x)) > float(m.divergence(p, x) + m.divergence(y, p)) + 1e-3


def test_project_simplex_rows_and_literal_cases():
    x = torch.tensor([[0.5, 0.9, -1.0], [3.0, 0.0, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    want = torch.tensor([[0.3, 0.7, 0.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(project_simplex(x, dim=-1), want, rtol=0, atol=1e-15)
    torch.testing.assert_close(project_simplex(x.T, dim=0), want.T, rtol=0, atol=1e-15)
    whole = project_simplex(x)
    assert whole.shape == x.shape and float(whole.sum()) == pytest.approx(1, abs=1e-15) and float(whole.min()) >= 0
    torch.testing.assert_close(normalize_simplex(torch.tensor([1.0, 3.0])), torch.tensor([0.25, 0.75]))


# ------------------------------------------------------------------------------------ Lemmas C.4, C.5
@pytest.mark.parametrize("name", MIRROR_MAPS)
@pytest.mark.parametrize("seed", SEEDS)
def test_lemma_c4_duality(name, seed):
    """D_psi(y, x) = D_psi*(grad psi(x), grad psi(y)): by the closed forms and by autograd on psi*."""
    m = maps(seed)[name]
    x, y = point(name, seed), point(name, seed + 100)
    lhs = m.divergence(y, x)
    torch.testing.assert_close(m.conjugate_divergence(m.grad_psi(x), m.grad_psi(y)), lhs, rtol=1e-9, atol=1e-13)
    by_autograd = bregman_divergence(m.psi_star, m.grad_psi(x), m.grad_psi(y))
    torch.testing.assert_close(by_autograd, lhs, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("name", MIRROR_MAPS)
@pytest.mark.parametrize("seed", SEEDS)
def test_lemma_c5_the_mean_minimizes_the_expected_divergence(name, seed):
    """For a discrete distribution p over points y_k: E D(y, x) - E D(y, mu_p) = D(mu_p, x) >= 0 for any x, and a
    generic minimizer of x -> E D(y, x) is mu_p."""
    m = maps(seed)[name]
    ys = torch.stack([point(name, seed * 10 + k) for k in range(6)])
    probs = torch.softmax(torch.randn(6, generator=gen(seed), dtype=torch.float64), 0)
    mu = probs @ ys

    def expected(x):
        return sum(float(q) * float(m.divergence(y, x)) for q, y in zip(probs, ys))

    for k in range(4):
        x = point(name, 500 + 10 * seed + k)
        assert expected(x) - expected(mu) == pytest.approx(float(m.divergence(mu, x)), rel=1e-9, abs=1e-13)
        assert expected(x) > expected(mu)
    bounds = [(1e-9, None)] * D if name == "entropy" else None
    res = minimize(
        lambda v: expected(torch.as_tensor(v)),
        np.full(D, 1 / D),
        method="L-BFGS-B",
        bounds=bounds,
        options=dict(ftol=1e-15, gtol=1e-12),
    )
    np.testing.assert_allclose(res.x, mu.numpy(), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------- (90), (91)
def literal_91(w: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
    num = [w[i] * math.exp(-lr * g[i]) for i in range(len(w))]
    return np.array(num) / sum(num)


@pytest.mark.parametrize("seed", range(6))
def test_91_is_the_minimizer_of_90(seed):
    """(91) against argmin_{w in simplex} g^T w + KL(w, w_t) / lr found by SLSQP, and against the literal (91)."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 7))
    wt = rng.dirichlet(np.ones(d))
    g, lr = rng.normal(size=d) * 2, float(rng.uniform(0.1, 1.5))
    got = exponentiated_gradient(torch.as_tensor(wt), torch.as_tensor(g), lr).numpy()
    np.testing.assert_allclose(got, literal_91(wt, g, lr), rtol=1e-13, atol=0)

    def objective(w):
        w = np.clip(w, 1e-300, None)
        return g @ w + (w * np.log(w / wt)).sum() / lr

    res = minimize(
        objective,
        np.full(d, 1 / d),
        method="SLSQP",
        bounds=[(0, 1)] * d,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
        options=dict(ftol=1e-15, maxiter=500),
    )
    assert res.success, res.message
    np.testing.assert_allclose(got, res.x, rtol=1e-4, atol=1e-6)
    assert objective(got) <= res.fun + 1e-12
    # (2)-(3) literally: grad psi*(grad psi(w) - lr g) = w exp(-lr g), then the KL projection (normalization)
    lit = mirror_descent_step(Entropy(), torch.as_tensor(wt), torch.as_tensor(g), lr, Simplex())
    np.testing.assert_allclose(lit.numpy(), got, rtol=1e-13, atol=0)


# ----------------------------------------------------------------------------------------------- C15
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_c15_exponentiated_gradient_does_not_overflow(dtype):
    w = torch.full((3,), 1 / 3, dtype=dtype)
    g = torch.tensor([-800.0, 0.0, 800.0], dtype=dtype)
    naive = w * torch.exp(-g)
    assert bool(torch.isnan(naive / naive.sum()).any())  # exponentiate then normalize: inf / inf
    for new in (exponentiated_gradient(w, g, 1.0), Entropy().step(w, g, 1.0)):
        assert torch.equal(new, torch.tensor([1.0, 0.0, 0.0], dtype=dtype))
        assert float(new.sum()) == 1.0 and bool(torch.isfinite(new).all())
    assert torch.equal(exponentiated_gradient(w, torch.zeros_like(w), 1.0), w)  # zero gradient: w, bitwise


def _finite_floats(dtype):
    width = 32 if dtype == torch.float32 else 64
    return st.floats(allow_nan=False, allow_infinity=False, width=width)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_finite_gradient_keeps_the_weights_finite_and_on_the_simplex(dtype, data):
    """The whole kind of fault: for any finite gradient of any magnitude (up to the dtype's largest float, where
    lr g itself may overflow) and any lr, (91) is finite, on the simplex, and keeps zeros at zero."""
    d = data.draw(st.integers(1, 6))
    raw = data.draw(st.lists(st.floats(0, 1e3, allow_nan=False), min_size=d, max_size=d))
    if sum(raw) == 0:
        raw[0] = 1.0
    w = torch.tensor(raw, dtype=torch.float64)
    w = (w / w.sum()).to(dtype)
    g = torch.tensor(data.draw(st.lists(_finite_floats(dtype), min_size=d, max_size=d)), dtype=dtype)
    lr = data.draw(st.sampled_from([0.0, 1e-30, 1e-3, 1.0, 37.0, 1e6, 1e30]))
    new = exponentiated_gradient(w, g, lr)
    assert bool(torch.isfinite(new).all()), (w, g, lr, new)
    assert float(new.min()) >= 0
    assert abs(float(new.double().sum()) - 1) <= simplex_tolerance(d, dtype)
    assert bool((new[w == 0] == 0).all())


def test_exponentiated_gradient_rows_and_edge_cases():
    w = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    g = torch.tensor([[1.0, -1.0, 5.0], [0.0, 2.0, -3.0]], dtype=torch.float64)
    rows = exponentiated_gradient(w, g, 0.7, dim=-1)
    for i in range(2):
        np.testing.assert_allclose(rows[i].numpy(), literal_91(w[i].numpy(), g[i].numpy(), 0.7), rtol=1e-14)
    torch.testing.assert_close(exponentiated_gradient(w.T, g.T, 0.7, dim=0), rows.T, rtol=0, atol=0)
    # a constant gradient changes nothing (91); -lr g overflowing to +inf: those entries share the mass as w does
    assert torch.equal(exponentiated_gradient(w, torch.full_like(w, 3.0), 0.0), w)
    big = torch.tensor([-3e38, -3e38, 1.0], dtype=torch.float32)
    out = exponentiated_gradient(torch.tensor([0.25, 0.5, 0.25]), big, 10.0)
    torch.testing.assert_close(out, torch.tensor([1 / 3, 2 / 3, 0.0]))
    # entries <= 0 (off the simplex: only by hand) count as zeros, never NaN; no support at all: unchanged
    odd = exponentiated_gradient(torch.tensor([-0.5, 1.0, 0.5]), torch.tensor([1.0, 2.0, 3.0]), 1.0)
    assert bool(torch.isfinite(odd).all()) and float(odd[0]) == 0 and float(odd.sum()) == pytest.approx(1)
    zero = torch.zeros(3)
    assert torch.equal(exponentiated_gradient(zero, torch.ones(3), 1.0), zero)
    scalar = torch.tensor(1.0)
    assert torch.equal(exponentiated_gradient(scalar, torch.tensor(-5.0), 1.0), scalar)


@pytest.mark.parametrize("name", ["euclidean", "weighted"])
def test_euclidean_and_weighted_steps_stay_finite_for_huge_gradients(name):
    """A huge finite gradient gives a finite step whenever lr g is representable (here |g| up to 1e38 in float32,
    lr 1): w - lr g, and w - lr A^{-1} g solved in A's float64."""
    m = Euclidean() if name == "euclidean" else Weighted(spd(3, 0))
    w = torch.tensor([0.1, -0.2, 0.3])
    for scale in (1e10, 1e30, 1e38):
        g = torch.tensor([1.0, -0.5, 0.25]) * scale
        new = m.step(w, g, 1.0)
        assert new.dtype == torch.float32 and bool(torch.isfinite(new).all()), (scale, new)
        lit = mirror_descent_step(m, w.double(), g.double(), 1.0)  # (2) literally, in float64
        torch.testing.assert_close(new.double(), lit, rtol=1e-5, atol=0)


# ------------------------------------------------------------------------------------------------- M.3
def _numeric_dual(y: np.ndarray, A: np.ndarray, seeds=range(4)) -> float:
    """sup_{x^T A x <= 1} y^T x by SLSQP from several starts (125)."""
    best = -math.inf
    for s in seeds:
        x0 = np.random.default_rng(s).normal(size=len(y)) * 0.1
        res = minimize(
            lambda x: -y @ x,
            x0,
            jac=lambda x: -y,
            method="SLSQP",
            constraints=[{"type": "ineq", "fun": lambda x: 1 - x @ A @ x, "jac": lambda x: -2 * A @ x}],
            options=dict(ftol=1e-14, maxiter=1000),
        )
        best = max(best, -res.fun)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_m3_dual_of_the_a_norm_is_the_a_inverse_norm(seed):
    A = spd(4, seed)
    y = torch.randn(4, generator=gen(seed), dtype=torch.float64)
    dual = float(dual_weighted_norm(y, A))
    assert dual == pytest.approx(math.sqrt(float(y @ torch.linalg.solve(A, y))), rel=1e-12)
    assert _numeric_dual(y.numpy(), A.numpy()) == pytest.approx(dual, rel=1e-6)
    # the bound is attained at x = A^{-1} y / ||y||_{A^{-1}}; Hölder (126) for random x
    x = torch.linalg.solve(A, y) / dual
    assert float(weighted_norm(x, A)) == pytest.approx(1, rel=1e-12) and float(y @ x) == pytest.approx(dual)
    for k in range(5):
        x = torch.randn(4, generator=gen(100 + k), dtype=torch.float64)
        assert float(y @ x) <= float(weighted_norm(x, A)) * dual * (1 + 1e-12)
    assert float(weighted_norm(y, A)) == pytest.approx(math.sqrt(float(y @ A @ y)), rel=1e-14)


@pytest.mark.parametrize("seed", range(4))
def test_m31_singular_a_dual_is_the_pseudo_inverse_norm_on_the_range_and_infinite_off_it(seed):
    V = torch.linalg.qr(torch.randn(5, 5, generator=gen(seed), dtype=torch.float64)).Q
    lam = torch.tensor([2.0, 0.5, 1.5, 0.0, 0.0], dtype=torch.float64)  # rank 3
    A = V @ torch.diag(lam) @ V.T
    A = 0.5 * (A + A.T)
    y = V[:, :3] @ torch.randn(3, generator=gen(seed + 9), dtype=torch.float64)  # in range(A)
    dual = float(dual_weighted_norm(y, A))
    assert dual == pytest.approx(math.sqrt(float(y @ torch.linalg.pinv(A) @ y)), rel=1e-9)
    assert _numeric_dual(y.numpy(), A.numpy()) == pytest.approx(dual, rel=1e-5)
    assert float(weighted_norm(V[:, 3], A)) < 1e-7  # a seminorm: zero on null(A)
    off = y + 0.3 * V[:, 4]
    assert dual_weighted_norm(off, A) == math.inf
    w0 = V[:, :3] @ (torch.ones(3, dtype=torch.float64) / lam[:3].sqrt()) / math.sqrt(3)  # w0^T A w0 = 1
    assert float(w0 @ A @ w0) == pytest.approx(1)
    for alpha in (1e2, 1e3, 1e4):  # w(alpha) = w0 + alpha v stays on the unit A-sphere; <off, w> grows without bound
        w = w0 + alpha * V[:, 4]
        assert float(w @ A @ w) == pytest.approx(1, rel=1e-6) and float(off @ w) > 0.2 * alpha


# ------------------------------------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_clear_value_errors():
    with pytest.raises(ValueError, match="unknown mirror map 'kl'.*'euclidean', 'weighted', 'entropy'"):
        mirror_map("kl")
    assert isinstance(mirror_map("entropy"), Entropy) and isinstance(mirror_map("euclidean"), Euclidean)
    assert isinstance(mirror_map("weighted", A=torch.eye(2)), Weighted)
    with pytest.raises(ValueError, match="needs A"):
        mirror_map("weighted")
    with pytest.raises(ValueError, match="A is used by the 'weighted' mirror map only"):
        mirror_map("euclidean", A=torch.eye(2))
    with pytest.raises(ValueError, match="symmetric"):
        Weighted(torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive definite.*smallest eigenvalue is -1"):
        Weighted(torch.diag(torch.tensor([1.0, -1.0])))
    with pytest.raises(ValueError, match="positive definite"):
        Weighted(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="square"):
        Weighted(torch.ones(2, 3))
    with pytest.raises(ValueError, match="finite"):
        Weighted(torch.tensor([[1.0, math.nan], [math.nan, 1.0]]))
    with pytest.raises(ValueError, match="must have 2 entries"):
        Weighted(torch.eye(2)).psi(torch.ones(3))
    with pytest.raises(ValueError, match="no closed-form Bregman projection for the weighted mirror map onto Simplex"):
        Weighted(spd(3, 0)).project(torch.ones(3, dtype=torch.float64), Simplex())
    with pytest.raises(ValueError, match="no closed-form .* entropy .* Ball"):
        Entropy().project(torch.ones(3), Ball(1.0))
    with pytest.raises(ValueError, match="low >= 0"):
        Entropy().project(torch.ones(3), Box(-1.0, 1.0))
    with pytest.raises(ValueError, match="x >= 0"):
        normalize_simplex(torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="positive sum"):
        normalize_simplex(torch.zeros(2))
    with pytest.raises(ValueError, match="radius"):
        Ball(0.0)
    with pytest.raises(ValueError, match="low <= high"):
        Box(1.0, 0.0)
    with pytest.raises(ValueError, match="d x k"):
        Subspace(torch.ones(2, 3))
    with pytest.raises(ValueError, match="positive semidefinite"):
        dual_weighted_norm(torch.ones(2), torch.diag(torch.tensor([1.0, -1.0])))
    with pytest.raises(ValueError, match="symmetric"):
        weighted_norm(torch.ones(2), torch.tensor([[1.0, 1.0], [0.0, 1.0]]))


def test_check_simplex_states_its_tolerance_and_names_the_tensor():
    n = 4
    tol = simplex_tolerance(n, torch.float64)
    assert tol == 1e-6 and simplex_tolerance(1000, torch.float32) == 1000 * torch.finfo(torch.float32).eps
    ok = torch.full((n,), 0.25, dtype=torch.float64)
    check_simplex(ok + 0.4 * tol / n, name="w")  # the sum is 1 + 0.4 tol
    check_simplex(torch.empty(0), name="empty")  # nothing to check
    with pytest.raises(ValueError, match=r"'weights' \(shape \(4,\)\).*sum to 1.00000.*not 1 \(tolerance 1e-06"):
        check_simplex(ok + 2 * tol / n, name="'weights'")
    with pytest.raises(ValueError, match="negative entries"):
        check_simplex(torch.tensor([1.5, -0.5]), name="w")
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_simplex(torch.tensor([math.nan, 1.0]), name="w")
    with pytest.raises(ValueError, match="each slice along dim=1.*some slice along dim=1 sums to 0.5"):
        check_simplex(torch.tensor([[0.5, 0.5], [0.25, 0.25]]), dim=1, name="w")
