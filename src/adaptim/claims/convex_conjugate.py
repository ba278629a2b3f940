"""Appendix E: the convex conjugate of psi(x) = x^2 (Lemmas E.1-E.3, Exercise 1) computed numerically against the
closed form, Fenchel-Young, (psi*)' = (psi')^{-1}, psi** = psi (and psi** <= psi for a nonconvex psi), and
Fact E.4 (94)-(96) for the library's mirror maps."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize, minimize_scalar

from adaptim.claims._core import Claim, Context
from adaptim.mirror import mirror_map


def _conj_1d(f, p: float) -> float:
    """max_x p x - f(x) (92) by a bounded scalar search on [-50, 50] (the maximizers here lie well inside)."""
    res = minimize_scalar(lambda x: f(x) - p * x, bounds=(-50, 50), method="bounded", options={"xatol": 1e-12})
    return -float(res.fun)


def _legendre(xs: np.ndarray, fx: np.ndarray, ps: np.ndarray) -> np.ndarray:
    """The discrete conjugate max_i p_j x_i - f(x_i) for each p_j (a grid version of (92))."""
    return np.max(ps[:, None] * xs[None, :] - fx[None, :], axis=1)


def run(ctx: Context):
    rng = np.random.default_rng(0)
    psi = lambda x: x**2
    inv_dpsi = lambda p: p / 2  # (psi')^{-1}, psi' = 2x
    lib = mirror_map("weighted", torch.tensor([[2.0]], dtype=torch.float64))  # 1/2 x A x = x^2
    t = lambda v: torch.tensor([v], dtype=torch.float64)

    ps = np.linspace(-3, 3, ctx.size(13, 61))
    numeric = np.array([_conj_1d(psi, p) for p in ps])
    e1 = np.array([p * inv_dpsi(p) - psi(inv_dpsi(p)) for p in ps])  # Lemma E.1
    ctx.close("Lemma E.1: p (psi')^-1(p) - psi((psi')^-1(p)) = p^2/4", ps**2 / 4, e1, atol=1e-15)
    ctx.close("(92) psi*(p) by scipy = p^2/4 (Lemma E.1)", ps**2 / 4, numeric, atol=1e-9)
    ctx.close(
        "library psi_star of psi = x^2 (Weighted, A = 2) = numerical psi*",
        numeric,
        [float(lib.psi_star(t(p))) for p in ps],
        atol=1e-9,
    )

    # Lemma E.2: (psi*)' = (psi')^{-1}, by central differences of the numerical conjugate
    h = 1e-3
    deriv = np.array([(_conj_1d(psi, p + h) - _conj_1d(psi, p - h)) / (2 * h) for p in ps])
    ctx.close(
        "Lemma E.2: (psi*)'(p) by finite differences of scipy's psi* = (psi')^-1(p) = p/2",
        inv_dpsi(ps),
        deriv,
        atol=1e-5,
    )
    ctx.close(
        "Lemma E.2: library grad_psi_star = (psi')^-1",
        inv_dpsi(ps),
        [float(lib.grad_psi_star(t(p))) for p in ps],
        atol=1e-15,
    )

    # Lemma E.3: psi** = psi for psi = x^2; psi** <= psi for the nonconvex double well (x^2 - 1)^2, whose
    # biconjugate is its convex envelope (0 on [-1, 1]); a conjugate is convex whatever psi is
    xs = np.linspace(-3, 3, ctx.size(1201, 6001))
    grid_p = np.linspace(-12, 12, ctx.size(2401, 12001))
    xin = xs[np.abs(xs) <= 1.5]
    star = _legendre(xs, psi(xs), grid_p)
    bi = _legendre(grid_p, star, xin)
    step = xs[1] - xs[0]
    ctx.close("Lemma E.3: psi** = psi for x^2 on [-1.5, 1.5] (grid conjugates)", psi(xin), bi, atol=step**2)
    ctx.note("tolerance", "grid conjugates on a grid of step h are exact to O(h^2) for x^2: atol = h^2")
    well = lambda x: (x**2 - 1) ** 2
    star_w = _legendre(xs, well(xs), grid_p)
    bi_w = _legendre(grid_p, star_w, xin)
    envelope = np.where(np.abs(xin) <= 1, 0.0, well(xin))
    ctx.le(
        "Lemma E.3: max of psi** - psi for the double well (psi** <= psi)",
        float(np.max(bi_w - well(xin))),
        0.0,
        atol=1e-12,
    )
    ctx.close("Lemma E.3: double well's psi** = its convex envelope (0 on [-1, 1])", envelope, bi_w, atol=4 * step)
    ctx.ge(
        "Lemma E.3: psi** < psi strictly at x = 0 for the double well", well(0.0) - bi_w[np.argmin(np.abs(xin))], 0.5
    )
    second = star_w[2:] - 2 * star_w[1:-1] + star_w[:-2]
    ctx.ge("(92) the double well's conjugate is convex: min second difference", float(second.min()), 0.0, atol=1e-12)

    # Fenchel-Young: psi(x) + psi*(p) >= p x, with equality iff p = psi'(x)
    X, P = rng.uniform(-3, 3, ctx.size(500, 5000)), rng.uniform(-6, 6, ctx.size(500, 5000))
    fy = psi(X) + np.array([float(lib.psi_star(t(p))) for p in P]) - P * X
    ctx.ge("Fenchel-Young: min of psi(x) + psi*(p) - p x over random (x, p)", float(fy.min()), 0.0, atol=1e-12)
    eq = max(abs(psi(x) + float(lib.psi_star(t(2 * x))) - 2 * x * x) for x in X[:50])
    ctx.close("Fenchel-Young: equality at p = psi'(x) = 2x", 0.0, eq, atol=1e-12)

    # Fact E.4 in R^d for the library's maps: psi* = sup_x p^T x - psi(x), (94), (95), (96)
    d = 4
    A = rng.standard_normal((d, d))
    A = A @ A.T + 0.5 * np.eye(d)
    maps = {
        "weighted": mirror_map("weighted", torch.tensor(A)),
        "entropy": mirror_map("entropy"),
        "euclidean": mirror_map("euclidean"),
    }
    for name, m in maps.items():
        f = lambda x, m=m: float(m.psi(torch.tensor(x)))
        bounds = [(0.0, None)] * d if name == "entropy" else None  # the entropy lives on x >= 0
        worst = worst94 = worst95 = worst96 = 0.0
        for _ in range(ctx.size(3, 10)):
            p = rng.uniform(-1.5, 1.5, d)
            tp = torch.tensor(p)
            x0 = np.full(d, 0.5)
            num = -minimize(
                lambda x, p=p, f=f: f(x) - p @ x,
                x0,
                method="L-BFGS-B",
                bounds=bounds,
                options={"ftol": 1e-15, "gtol": 1e-11},
            ).fun
            worst = max(worst, abs(num - float(m.psi_star(tp))))
            xp = m.grad_psi_star(tp)  # (95): (grad psi)^{-1}(p)
            worst94 = max(worst94, abs(float(tp @ xp - m.psi(xp)) - float(m.psi_star(tp))))
            worst95 = max(worst95, float((m.grad_psi(xp) - tp).abs().max()))
            x = rng.uniform(0.1, 1.5, d)
            bic = -minimize(
                lambda q, x=x, m=m: float(m.psi_star(torch.tensor(q))) - q @ x,
                np.zeros(d),
                method="BFGS",
                options={"gtol": 1e-10},
            ).fun
            worst96 = max(worst96, abs(bic - f(x)))
        ctx.close(f"Fact E.4, {name}: psi_star = max_x p^T x - psi(x) (L-BFGS-B), max error", 0.0, worst, atol=1e-8)
        ctx.close(f"(94), {name}: p^T (grad psi)^-1(p) - psi((grad psi)^-1(p)) = psi*(p)", 0.0, worst94, atol=1e-13)
        ctx.close(f"(95), {name}: grad psi(grad psi*(p)) = p", 0.0, worst95, atol=1e-14)
        ctx.close(f"(96), {name}: psi**(x) = max_p p^T x - psi*(p) (BFGS) = psi(x)", 0.0, worst96, atol=1e-8)

    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.linspace(-2, 3, 200)
    p0 = 3.0
    ax.plot(x, psi(x), label=r"$\psi(x) = x^2$")
    ax.plot(x, p0 * x, "--", label=rf"$px$, $p$ = {p0:g}")
    xp = inv_dpsi(p0)
    ax.vlines(xp, psi(xp), p0 * xp, colors="r", lw=2, label=rf"$\psi^*(p) = \max_x\, px - \psi(x)$ at $x_p$ = {xp:g}")
    ax.plot(x, psi(xp) + p0 * (x - xp), ":", color="gray", label=r"tangent of slope $p$")
    ax.set_xlabel("x")
    ax.set_title("convex-conjugate: Appendix E, (92)")
    ax.legend(fontsize=8)
    ax2.plot(ps, numeric, "o", label=r"$\psi^*$ by scipy")
    ax2.plot(ps, ps**2 / 4, "-", label=r"$p^2/4$ (Lemma E.1)")
    ax2.plot(xin, well(xin), label=r"double well $(x^2-1)^2$")
    ax2.plot(xin, bi_w, "--", label=r"its $\psi^{**}$ (Lemma E.3)")
    ax2.set_xlabel("p  (or x)")
    ax2.set_title("conjugate and biconjugate")
    ax2.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="convex-conjugate",
    section="E, (92)-(96), Lemmas E.1-E.3, Fact E.4",
    statement="For psi(x) = x^2, psi*(p) = p (psi')^{-1}(p) - psi((psi')^{-1}(p)) = p^2/4 (Lemma E.1), (psi*)' = "
    "(psi')^{-1} (E.2) and psi** = psi (E.3), while psi** <= psi for a nonconvex psi; Fenchel-Young holds with "
    "equality at p = psi'(x); (94)-(96) hold for the library's mirror maps.",
    run=run,
)
