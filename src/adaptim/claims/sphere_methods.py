"""Section 8.1: pin-to-sphere (70) is w - eta g_perp + O(eta^2) (Lemma S.19), the classical update (72), the trust
region (73) and its dual (Lemma S.21), and frozen-scale weight normalization as (72) with lr alpha_t (Lemma 8.1)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linprog, minimize_scalar

import adaptim
from adaptim.claims._core import Claim, Context


def _sphere_step(w: np.ndarray, g: np.ndarray, lr: float, **kw) -> np.ndarray:
    """One adaptim.SphereSGD step from w along the gradient g (float64)."""
    p = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    p.grad = torch.tensor(g, dtype=torch.float64)
    adaptim.SphereSGD([p], lr=lr, **kw).step()
    return p.detach().numpy()


def _tangent_of_step(w: np.ndarray, w_new: np.ndarray, r: float) -> np.ndarray:
    """The tangent step Delta with w_new = r (w - Delta) / ||w - Delta|| and <Delta, w> = 0: w_new = c (w - Delta)
    gives <w_new, w> = c r^2, so c = <w_new, w> / r^2 and Delta = w - w_new / c."""
    c = float(w_new @ w) / r**2
    return w - w_new / c


def _primal_73(w: np.ndarray, g: np.ndarray, eta: float, norm: str) -> float:
    """max <Delta, g> over ||Delta|| <= eta, <Delta, w> = 0 (73) as a linear program (scipy's HiGHS)."""
    d = w.size
    if norm == "linf":  # box constraints
        res = linprog(-g, A_eq=w[None], b_eq=[0.0], bounds=[(-eta, eta)] * d, method="highs")
    else:  # l1: Delta = a - b with a, b >= 0 and sum(a + b) <= eta
        res = linprog(
            np.concatenate([-g, g]),
            A_ub=np.ones((1, 2 * d)),
            b_ub=[eta],
            A_eq=np.concatenate([w, -w])[None],
            b_eq=[0.0],
            bounds=[(0, None)] * (2 * d),
            method="highs",
        )
    return -float(res.fun)


def _dual_s21(w: np.ndarray, g: np.ndarray, eta: float, norm: str) -> float:
    """eta min_lambda ||g + lambda w||_* (Lemma S.21's dual), by a bounded scalar minimization."""
    order = {"l2": 2, "l1": np.inf, "linf": 1}[norm]  # the dual norm's order
    f = lambda lam: np.linalg.norm(g + lam * w, ord=order)
    bound = 10 * np.abs(g).sum() / np.abs(w).max()
    res = minimize_scalar(f, bounds=(-bound, bound), method="bounded", options={"xatol": 1e-12})
    return eta * float(res.fun)


def run(ctx: Context):
    rng = np.random.default_rng(0)
    d, r = 8, 2.0
    w = rng.standard_normal(d)
    w *= r / np.linalg.norm(w)
    g = rng.standard_normal(d)
    P = np.eye(d) - np.outer(w, w) / r**2
    g_perp = P @ g

    # (71): the tangent projection of the library is (I - w w^T / r^2) g
    lib_perp = adaptim.manifolds.Sphere(radius=r).project_tangent(torch.tensor(w), torch.tensor(g)).numpy()
    ctx.close("(71) Sphere.project_tangent(w, g) = (I - w w^T / r^2) g", g_perp, lib_perp, atol=1e-13)

    # Lemma S.19 and (71) for (72): ||w' - (w - eta g_perp)|| = O(eta^2), a slope 2 in log-log
    etas = np.logspace(-4, -1, ctx.size(7, 13))
    errs = {}
    for method in ("pin", "tangent"):
        errs[method] = np.array(
            [np.linalg.norm(_sphere_step(w, g, e, method=method, radius=r) - (w - e * g_perp)) for e in etas]
        )
        slope = np.polyfit(np.log(etas), np.log(errs[method]), 1)[0]
        what = "pin-to-sphere (70), Lemma S.19" if method == "pin" else "classical (72)"
        ctx.close(f"{what}: log-log slope of ||w' - (w - eta g_perp)|| against eta", 2.0, slope, atol=0.05)
    # the second-order coefficient of Lemma S.19: ||w' - (w - eta g_perp)|| / eta^2 settles to a constant
    c = errs["pin"] / etas**2
    ctx.close("Lemma S.19: error / eta^2 at the two smallest eta agree", c[0], c[1], rtol=0.01)

    # (72) in closed form
    for eta in (0.05, 0.7, 5.0):
        pred = r / math.sqrt(r**2 + eta**2 * g_perp @ g_perp) * (w - eta * g_perp)
        meas = _sphere_step(w, g, eta, method="tangent", radius=r)
        ctx.close(f"(72) closed form, eta = {eta}", pred, meas, atol=1e-13)

    # (73): l2 closed form; l1 and linf against a linear program (primal) and Lemma S.21's dual
    eta = 0.3
    meas = _sphere_step(w, g, eta, method="trust_region", norm="l2", radius=r)
    delta = eta * g_perp / np.linalg.norm(g_perp)
    ctx.close(
        "(73) l2: Delta = eta g_perp / ||g_perp||, then retract",
        r * (w - delta) / np.linalg.norm(w - delta),
        meas,
        atol=1e-13,
    )
    for norm, order in (("l2", 2), ("l1", 1), ("linf", np.inf)):
        new = _sphere_step(w, g, eta, method="trust_region", norm=norm, radius=r)
        D = _tangent_of_step(w, new, r)
        ctx.close(
            f"(73) {norm}: the step is tangent, <Delta, w> / (||Delta|| r)",
            0.0,
            D @ w / (np.linalg.norm(D) * r),
            atol=1e-12,
        )
        ctx.close(f"(73) {norm}: ||Delta||_{norm} = eta", eta, np.linalg.norm(D, ord=order), rtol=1e-10)
        best = _primal_73(w, g, eta, norm) if norm != "l2" else eta * np.linalg.norm(g_perp)
        ctx.close(f"(73) {norm}: <Delta, g> = the maximum of (73) (LP / closed form)", best, D @ g, rtol=1e-8)
        ctx.close(
            f"Lemma S.21 {norm}: strong duality, eta min_lam ||g + lam w||_* = max of (73)",
            best,
            _dual_s21(w, g, eta, norm),
            rtol=1e-7,
        )

    # 8.1.1's downside: a large radial gradient leaves pin-to-sphere almost still; the trust region moves eta
    u = P @ rng.standard_normal(d)
    u /= np.linalg.norm(u)
    c_rad, eta = 1000.0, 0.1
    g_big = -c_rad * w / r + u
    angle = lambda a, b: math.acos(min(1.0, float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))))
    pin_angle = angle(w, _sphere_step(w, g_big, eta, method="pin", radius=r))
    tr_angle = angle(w, _sphere_step(w, g_big, eta, method="trust_region", radius=r))
    ctx.close(
        "pin-to-sphere angle with radial part 1000: atan(eta ||g_perp|| / (r + eta c))",
        math.atan2(eta, r + eta * c_rad),
        pin_angle,
        rtol=1e-9,
    )
    ctx.close("trust-region angle, same gradient: atan(eta / r)", math.atan2(eta, r), tr_angle, rtol=1e-9)

    # Lemma 8.1: SGD on v of w = r v / ||v|| (frozen scale) is (76), i.e. (72) with alpha_t = eta r^2 / ||v_t||^2
    H = rng.standard_normal((d, d))
    H = H @ H.T / d
    b = rng.standard_normal(d)
    grad_w = lambda x: H @ x + b  # the gradient of L(w) = 1/2 w^T H w + b^T w
    v = torch.tensor(3.0 * w, requires_grad=True)  # ||v_1|| = 3 r, so alpha_1 = eta / 9
    eta = 0.5
    opt = adaptim.SGD([v], lr=eta, foreach=True)
    worst76 = worst72 = 0.0
    alphas = []
    for _ in range(ctx.size(20, 100)):
        wt = (r * v / torch.linalg.vector_norm(v)).detach().numpy()
        nv = float(torch.linalg.vector_norm(v.detach()))
        alpha = eta * r**2 / nv**2
        alphas.append(alpha)
        gw = grad_w(wt)
        gp = (np.eye(d) - np.outer(wt, wt) / r**2) @ gw
        pred = r / math.sqrt(r**2 + alpha**2 * gp @ gp) * (wt - alpha * gp)
        via72 = _sphere_step(wt, gw, alpha, method="tangent", radius=r)
        opt.zero_grad()
        x = r * v / torch.linalg.vector_norm(v)
        (0.5 * x @ torch.tensor(H) @ x + torch.tensor(b) @ x).backward()
        opt.step()
        w_next = (r * v / torch.linalg.vector_norm(v)).detach().numpy()
        worst76 = max(worst76, float(np.abs(w_next - pred).max()))
        worst72 = max(worst72, float(np.abs(w_next - via72).max()))
    ctx.close("Lemma 8.1: frozen-scale WN step (adaptim.SGD on v) = (76), max over steps", 0.0, worst76, atol=1e-12)
    ctx.close("Lemma 8.1: = SphereSGD(method='tangent', lr=alpha_t), max over steps", 0.0, worst72, atol=1e-12)
    ctx.true(
        "alpha_t = eta r^2 / ||v_t||^2 decreases as ||v_t|| grows",
        all(np.diff(alphas) <= 0),
        measured=[alphas[0], alphas[-1]],
    )

    # every method keeps ||w|| = r over many steps
    steps = ctx.size(100, 1000)
    for method in ("pin", "tangent", "trust_region"):
        p = torch.tensor(w, requires_grad=True)
        opt = adaptim.SphereSGD([p], lr=0.05, method=method, radius=r)
        drift = 0.0
        for _ in range(steps):
            opt.zero_grad()
            (0.5 * p @ torch.tensor(H) @ p + torch.tensor(b) @ p).backward()
            opt.step()
            drift = max(drift, abs(float(torch.linalg.vector_norm(p.detach())) - r))
        ctx.close(f"{method}: max | ||w_t|| - r | over {steps} float64 steps", 0.0, drift, atol=1e-13)

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.loglog(etas, errs["pin"], "o-", label="pin-to-sphere (70)")
    ax.loglog(etas, errs["tangent"], "s-", label="classical (72)")
    ax.loglog(etas, c[0] * etas**2, "k--", label=r"$c\,\eta^2$")
    ax.set_xlabel(r"learning rate $\eta$")
    ax.set_ylabel(r"$\|w' - (w - \eta g^\perp)\|_2$")
    ax.set_title("sphere-methods: Lemma S.19, (71)")
    ax.legend()
    return fig


CLAIM = Claim(
    name="sphere-methods",
    section="8.1, (70)-(73), Lemmas S.19, S.21, 8.1",
    statement="Pin-to-sphere (70) and the classical update (72) are w - eta g_perp + O(eta^2) (Lemma S.19); the "
    "trust region (73) takes a tangent step of norm eta attaining the maximum, equal to its dual (Lemma S.21); "
    "frozen-scale weight normalization is (72) with alpha_t = eta r^2/||v_t||^2 (Lemma 8.1); all stay on the sphere.",
    run=run,
)
