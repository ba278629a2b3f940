"""Appendix C: Bregman divergences (83)-(84), the three-point identity (Lemma C.1), the generalized Pythagorean
theorem for Bregman projections (Lemma C.2, Example C.1) and its regularized form (Lemma C.3), duality (Lemma C.4)
and the mean as minimizer (Lemma C.5), for several mirror maps."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from adaptim.claims._core import Claim, Context
from adaptim.mirror import (
    Ball,
    Box,
    Simplex,
    Subspace,
    bregman_divergence,
    bregman_projection,
    mirror_descent_step,
    mirror_map,
)


def _burg(x: torch.Tensor) -> torch.Tensor:
    """psi(x) = -sum log x_i on x > 0 (Burg entropy; D_psi is the Itakura-Saito divergence)."""
    return -torch.log(x).sum()


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def _solve(obj, x0: np.ndarray, convex_set, lower: float | None) -> np.ndarray:
    """argmin of ``obj`` over ``convex_set`` by SLSQP (a Subspace by BFGS over its coefficients)."""
    d = x0.size
    if isinstance(convex_set, Subspace):
        B = convex_set.basis.numpy()
        c = minimize(
            lambda c: obj(B @ c), np.linalg.lstsq(B, x0, rcond=None)[0], method="BFGS", options={"gtol": 1e-12}
        ).x
        return B @ c
    bounds, cons = [(lower, None)] * d, []
    if isinstance(convex_set, Simplex):
        bounds = [(lower if lower is not None else 0.0, None)] * d
        cons = [{"type": "eq", "fun": lambda z: z.sum() - 1.0}]
    elif isinstance(convex_set, Box):
        bounds = [(max(convex_set.low, lower if lower is not None else -np.inf), convex_set.high)] * d
    elif isinstance(convex_set, Ball):
        cons = [{"type": "ineq", "fun": lambda z: convex_set.radius**2 - z @ z}]
    start = np.clip(x0, 0.1, 0.2) if lower is not None else np.zeros(d)
    res = minimize(obj, start, method="SLSQP", bounds=bounds, constraints=cons, options={"ftol": 1e-15, "maxiter": 500})
    return res.x


def _sample(rng, convex_set, d: int, n: int) -> np.ndarray:
    """n random points of ``convex_set``."""
    if isinstance(convex_set, Simplex):
        return rng.dirichlet(np.ones(d), n)
    if isinstance(convex_set, Box):
        return rng.uniform(convex_set.low, convex_set.high, (n, d))
    if isinstance(convex_set, Ball):
        u = rng.standard_normal((n, d))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        return convex_set.radius * u * rng.uniform(0, 1, (n, 1)) ** (1 / d)
    return rng.standard_normal((n, convex_set.basis.shape[1])) @ convex_set.basis.numpy().T


def run(ctx: Context):
    rng = np.random.default_rng(0)
    d = 5
    A = rng.standard_normal((d, d))
    A = _t(A @ A.T + 0.5 * np.eye(d))
    maps = {
        "euclidean": mirror_map("euclidean"),
        "weighted": mirror_map("weighted", A),
        "entropy": mirror_map("entropy"),
    }
    psis = {name: m.psi for name, m in maps.items()}
    psis["burg"] = _burg
    D = {name: (lambda x, y, m=m: float(m.divergence(_t(x), _t(y)))) for name, m in maps.items()}
    D["burg"] = lambda x, y: float(bregman_divergence(_burg, _t(x), _t(y)))
    n = ctx.size(100, 2000)
    pos = lambda k: rng.uniform(0.05, 2.0, (k, d))  # points of every map's domain
    X, Y, Z = pos(n), pos(n), pos(n)
    Pa, Pb = rng.dirichlet(np.ones(d), n), rng.dirichlet(np.ones(d), n)

    # (83), (84) and the autograd divergence of any psi against the closed forms
    An = A.numpy()
    closed = {
        "euclidean": lambda x, y: 0.5 * (x - y) @ (x - y),
        "weighted": lambda x, y: 0.5 * (x - y) @ An @ (x - y),
        "entropy": lambda x, y: np.sum(x * np.log(x / y) - x + y),
        "burg": lambda x, y: np.sum(x / y - np.log(x / y) - 1),  # Itakura-Saito
    }
    for name in D:
        err = max(abs(D[name](x, y) - closed[name](x, y)) / (1 + closed[name](x, y)) for x, y in zip(X[:50], Y[:50]))
        ctx.close(
            f"{name}: D_psi = its closed form ((83), (84), Itakura-Saito), max relative error", 0.0, err, atol=1e-12
        )
        auto = max(
            abs(float(bregman_divergence(psis[name], _t(x), _t(y))) - D[name](x, y)) for x, y in zip(X[:20], Y[:20])
        )
        ctx.close(f"{name}: bregman_divergence(psi) by autograd = the map's divergence", 0.0, auto, atol=1e-12)
        ctx.ge(f"{name}: min D_psi(x, y) over {n} random pairs (>= 0)", min(D[name](x, y) for x, y in zip(X, Y)), 0.0)
        ctx.close(f"{name}: D_psi(x, x) = 0", 0.0, D[name](X[0], X[0]), atol=1e-15)
    kl = np.array([D["entropy"](x, y) for x, y in zip(Pa, Pb)])
    kl_closed = np.array([np.sum(x * np.log(x / y)) for x, y in zip(Pa, Pb)])
    ctx.close("(84) on the simplex: D_psi = KL(x, y)", kl_closed, kl, atol=1e-13)
    ctx.ge(
        "Pinsker: min of KL(x, y) - 1/2 ||x - y||_1^2 over random simplex pairs",
        float(np.min(kl - 0.5 * np.abs(Pa - Pb).sum(1) ** 2)),
        0.0,
    )

    # Lemma C.1 (85): D(y, x) = D(z, x) + D(y, z) + (grad psi(z) - grad psi(x))^T (y - z)
    grad = {name: (lambda v, m=m: m.grad_psi(_t(v)).numpy()) for name, m in maps.items()}
    grad["burg"] = lambda v: -1.0 / v
    for name in D:
        err = max(
            abs(D[name](y, x) - D[name](z, x) - D[name](y, z) - (grad[name](z) - grad[name](x)) @ (y - z))
            / (1 + D[name](y, x))
            for x, y, z in zip(X[:100], Y[:100], Z[:100])
        )
        ctx.close(f"Lemma C.1 (85), {name}: max relative error of the three-point identity", 0.0, err, atol=1e-12)

    # Lemma C.2 (86)-(87): the projection minimizes D(., x) over C, and D(y, x) >= D(p, x) + D(y, p), with
    # equality for every y exactly where grad psi(p) - grad psi(x) is orthogonal to C - p (affine cases)
    B = _t(rng.standard_normal((d, 2)))
    cases = [
        ("euclidean", Simplex(), False),
        ("euclidean", Box(-0.2, 0.3), False),
        ("euclidean", Ball(1.0), False),
        ("euclidean", Subspace(B), True),  # Example C.1
        ("weighted", Subspace(B), True),
        ("entropy", Simplex(), True),
        ("entropy", Box(0.05, 0.3), False),
    ]
    gaps = {}
    for name, C, affine in cases:
        where = f"{name} onto {type(C).__name__}"
        x = 1.5 * rng.standard_normal(d) if name != "entropy" else rng.uniform(0.01, 1.0, d)
        p = bregman_projection(maps[name], _t(x), C).numpy()
        num = _solve(
            lambda z, name=name, x=x: closed[name](np.maximum(z, 1e-300) if name == "entropy" else z, x),
            x,
            C,
            1e-12 if name == "entropy" else None,
        )
        ctx.close(f"Lemma C.2 (86), {where}: bregman_projection = numerical argmin (SLSQP/BFGS)", num, p, atol=1e-5)
        ctx.le(
            f"(86), {where}: D(p, x) <= D(numerical argmin, x)",
            D[name](p, x),
            D[name](np.maximum(num, 1e-300) if name == "entropy" else num, x),
            atol=1e-12,
        )
        ys = _sample(rng, C, d, ctx.size(60, 1000))
        gap = np.array([D[name](y, x) - D[name](p, x) - D[name](y, p) for y in ys])
        gaps[where] = gap
        ctx.ge(
            f"Lemma C.2 (87), {where}: min over y in C of D(y,x) - D(p,x) - D(y,p)", float(gap.min()), 0.0, atol=1e-12
        )
        if affine:
            ctx.close(
                f"(87) is tight, {where}: max |gap| (grad psi(p) - grad psi(x) orthogonal to C - p)",
                0.0,
                float(np.abs(gap).max()),
                atol=1e-12,
            )
        else:
            ctx.ge(f"(87) is strict somewhere, {where}: max gap", float(gap.max()), 1e-6)

    # Lemma C.3 (88)-(89) with l(z) = g^T z: the regularized projection is the mirror step (2)-(3) with lr 1
    g = rng.standard_normal(d)
    for name, C, tight in (("entropy", Simplex(), True), ("euclidean", Box(-0.2, 0.3), False)):
        x = rng.uniform(0.01, 1.0, d) if name == "entropy" else 1.5 * rng.standard_normal(d)
        p = mirror_descent_step(maps[name], _t(x), _t(g), 1.0, C).numpy()
        obj = lambda z, name=name, x=x: closed[name](np.maximum(z, 1e-300) if name == "entropy" else z, x) + g @ z
        num = _solve(obj, x, C, 1e-12 if name == "entropy" else None)
        where = f"{name} onto {type(C).__name__}"
        ctx.close(f"Lemma C.3 (88), {where}, l(z) = g^T z: mirror step (2)-(3) = numerical argmin", num, p, atol=1e-5)
        ys = _sample(rng, C, d, ctx.size(60, 1000))
        gap = np.array([D[name](y, x) + g @ y - D[name](p, x) - D[name](y, p) - g @ p for y in ys])
        ctx.ge(f"Lemma C.3 (89), {where}: min gap over y in C", float(gap.min()), 0.0, atol=1e-12)
        if tight:
            ctx.close(f"(89) tight for affine l, {where}: max |gap|", 0.0, float(np.abs(gap).max()), atol=1e-12)
    # a non-affine l makes (89) strict: l(z) = 1/2 ||z - c||^2, Euclidean, onto the subspace
    c = rng.standard_normal(d)
    x = rng.standard_normal(d)
    obj = lambda z: D["euclidean"](z, x) + 0.5 * (z - c) @ (z - c)
    p = _solve(obj, x, Subspace(B), None)
    ys = _sample(rng, Subspace(B), d, 50)
    gap = np.array([obj(y) - D["euclidean"](p, x) - D["euclidean"](y, p) - 0.5 * (p - c) @ (p - c) for y in ys])
    ctx.ge("Lemma C.3: a quadratic l makes (89) strict: min gap over y != p", float(gap.min()), 1e-6)

    # Lemma C.4: D_psi(y, x) = D_psi*(grad psi(x), grad psi(y))
    for name, m in maps.items():
        err = max(
            abs(D[name](y, x) - float(m.conjugate_divergence(m.grad_psi(_t(x)), m.grad_psi(_t(y)))))
            / (1 + D[name](y, x))
            for x, y in zip(X[:100], Y[:100])
        )
        ctx.close(
            f"Lemma C.4, {name}: D_psi(y, x) = D_psi*(grad psi(x), grad psi(y)), max relative error",
            0.0,
            err,
            atol=1e-12,
        )

    # Lemma C.5: the mean minimizes E_y D_psi(y, x); E D(y, x) - E D(y, mu) = D(mu, x)
    samples = rng.uniform(0.1, 2.0, (ctx.size(40, 200), d))
    mu = samples.mean(0)
    for name in D:
        f = lambda x, name=name: float(np.mean([closed[name](y, x) for y in samples]))
        num = minimize(
            f, np.ones(d), method="L-BFGS-B", bounds=[(1e-6, None)] * d, options={"ftol": 1e-15, "gtol": 1e-10}
        ).x
        ctx.close(f"Lemma C.5, {name}: argmin_x E D_psi(y, x) (L-BFGS-B) = the sample mean", mu, num, atol=1e-4)
        xr = pos(1)[0]
        lib = lambda x, name=name: float(np.mean([D[name](y, x) for y in samples]))
        ctx.close(
            f"Lemma C.5, {name}: E D(y, x) - E D(y, mu) = D(mu, x)", D[name](mu, xr), lib(xr) - lib(mu), atol=1e-12
        )

    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    t = np.linspace(0.02, 2.5, 300)
    y0, x0 = 0.6, 2.0
    ax.plot(t, t * np.log(t), label=r"$\psi(x) = x \log x$")
    ax.plot(t, y0 * np.log(y0) + (1 + np.log(y0)) * (t - y0), "--", label=r"tangent at $y$")
    lin = y0 * np.log(y0) + (1 + np.log(y0)) * (x0 - y0)
    ax.vlines(x0, lin, x0 * np.log(x0), colors="r", lw=2)
    ax.annotate(
        r"$D_\psi(x, y)$", (x0, (lin + x0 * np.log(x0)) / 2), xytext=(5, 0), textcoords="offset points", color="r"
    )
    ax.plot([y0, x0], [y0 * np.log(y0), x0 * np.log(x0)], "ko")
    ax.annotate("y", (y0, y0 * np.log(y0)), xytext=(0, 8), textcoords="offset points")
    ax.annotate("x", (x0, x0 * np.log(x0)), xytext=(-12, 4), textcoords="offset points")
    ax.set_xlabel("x")
    ax.set_ylabel(r"$\psi$")
    ax.set_title("bregman: D_psi(x, y), Appendix C")
    ax.legend()
    shown = ("euclidean onto Box", "euclidean onto Simplex", "entropy onto Simplex")
    bins = np.linspace(-0.05, max(float(gaps[w].max()) for w in shown) + 0.05, 40)
    for where in shown:
        ax2.hist(gaps[where], bins=bins, alpha=0.6, label=where)
    ax2.set_xlabel(r"$D(y,x) - D(p_x,x) - D(y,p_x)$ for random $y \in C$")
    ax2.set_ylabel("count")
    ax2.set_title("Lemma C.2 (87): the gap is >= 0 (0 when tight)")
    ax2.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="bregman",
    section="C, (83)-(89), Lemmas C.1-C.5",
    statement="For the Euclidean, A-weighted, negative-entropy and Burg mirror maps: D_psi >= 0 with its closed forms "
    "(83)-(84); the three-point identity (85); Bregman projections satisfy the generalized Pythagorean inequality "
    "(87), tight on affine sets, and its regularized form (89); D_psi(y, x) = D_psi*(grad psi(x), grad psi(y)); the "
    "mean minimizes the expected divergence.",
    run=run,
)
