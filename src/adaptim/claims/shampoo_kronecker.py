"""Section 5, (53)-(55): Shampoo's two-sided step is the Kronecker-preconditioned step, its preconditioner
dominates O_t^{1/2} / sqrt(r), and tr(L_T^{1/4}) grows like T^{1/4}."""

from __future__ import annotations

import math

import numpy as np
import torch

import adaptim
from adaptim.claims._core import Claim, Context
from adaptim.claims._matrix import loglog_slope, sym_power
from adaptim.functional.shampoo import ShampooPreconditioner
from adaptim.linalg import kron

F64 = torch.float64


def _shampoo(W: torch.Tensor, **kw) -> adaptim.Shampoo:
    # the plain (53): no grafting, roots every step
    return adaptim.Shampoo([W], grafting=None, precondition_frequency=1, **kw)


def _set_grad_and_step(opt, W, G: np.ndarray) -> None:
    W.grad = torch.from_numpy(G).clone()
    opt.step()


def _statistics(opt, W, step: int) -> tuple[np.ndarray, np.ndarray]:
    """L_t and R_t as the optimizer holds them."""
    pc = ShampooPreconditioner.from_state(opt.state[W], W.shape, 1024)
    (L, R), *_ = pc.corrected(step, None)
    return L.numpy().copy(), R.numpy().copy()


def _roots(opt, W) -> tuple[np.ndarray, np.ndarray]:
    """The cached inverse roots (L + eps I)^{-1/4}, (R + eps I)^{-1/4}."""
    pc = ShampooPreconditioner.from_state(opt.state[W], W.shape, 1024)
    blk = pc.blocks[0]
    return blk.root(0).numpy().copy(), blk.root(1).numpy().copy()


def _check_53_54(ctx: Context, rng: np.random.Generator) -> None:
    m, n, lr, eps, T = 3, 4, 0.1, 1e-8, 8
    W = torch.from_numpy(rng.standard_normal((m, n))).requires_grad_(True)
    opt = _shampoo(W, lr=lr, eps=eps)
    L, R = np.zeros((m, m)), np.zeros((n, n))
    err53, err54, errkron = 0.0, 0.0, 0.0
    for _ in range(T):
        G = rng.standard_normal((m, n))
        L, R = L + G @ G.T, R + G.T @ G
        before = W.detach().numpy().copy()
        _set_grad_and_step(opt, W, G)
        step = W.detach().numpy() - before
        Lr = sym_power(L + eps * np.eye(m), 0.25)
        Rr = sym_power(R + eps * np.eye(n), 0.25)
        # (53): -lr L^{-1/4} G R^{-1/4}
        pred53 = -lr * np.linalg.solve(Lr, G) @ np.linalg.inv(Rr)
        # (54): -lr (L^{1/4} (x) R^{1/4})^{-1} vec(G), the mn x mn matrix built explicitly
        A = kron(torch.from_numpy(Lr), torch.from_numpy(Rr)).numpy()
        errkron = max(errkron, float(np.abs(A - np.kron(Lr, Rr)).max()))
        pred54 = -lr * np.linalg.solve(A, G.reshape(-1))  # row-major vec
        scale = float(np.abs(pred53).max())
        err53 = max(err53, float(np.abs(step - pred53).max()) / scale)
        err54 = max(err54, float(np.abs(step.reshape(-1) - pred54).max()) / scale)
    ctx.close("adaptim.linalg.kron against numpy's Kronecker product (98), 12 x 12", 0.0, errkron, atol=1e-15 * T)
    ctx.close(f"Shampoo's step vs (53) -lr L^-1/4 G R^-1/4, {m}x{n}, {T} steps (max rel. error)", 0.0, err53, atol=1e-9)
    ctx.close(
        f"Shampoo's step vs (54) -lr (L^1/4 ⊗ R^1/4)^-1 vec(G) built with kron, {T} steps (max rel. error)",
        0.0,
        err54,
        atol=1e-9,
    )


def _rank_r(rng: np.random.Generator, m: int, n: int, r: int) -> np.ndarray:
    return rng.standard_normal((m, r)) @ rng.standard_normal((r, n))


def _min_constant(A: np.ndarray, O_half: np.ndarray) -> float:
    """The smallest c with O^{1/2} <= c A (A > 0): the largest eigenvalue of A^{-1/2} O^{1/2} A^{-1/2}."""
    Ai = sym_power(A, -0.5)
    return float(np.linalg.eigvalsh(Ai @ O_half @ Ai).max())


def _check_55(ctx: Context, rng: np.random.Generator) -> None:
    m, n, T = 3, 4, ctx.size(6, 15)
    for r in (1, 2, 3):
        W = torch.zeros(m, n, dtype=F64, requires_grad=True)
        opt = _shampoo(W, lr=0.0, eps=1e-12)
        O = np.zeros((m * n, m * n))
        worst = 0.0
        for _ in range(T):
            G = _rank_r(rng, m, n, r)
            O += np.outer(G.reshape(-1), G.reshape(-1))
            _set_grad_and_step(opt, W, G)
            Ql, Qr = _roots(opt, W)  # Shampoo's (L_t + eps)^{-1/4}, (R_t + eps)^{-1/4}
            A = np.linalg.inv(kron(torch.from_numpy(Ql), torch.from_numpy(Qr)).numpy())  # A_t = L^1/4 ⊗ R^1/4
            worst = max(worst, _min_constant((A + A.T) / 2, sym_power(O, 0.5)))
        ctx.le(
            f"(55) smallest c with O_t^1/2 <= c A_t, rank-{r} gradients, {T} steps (bound sqrt(r))",
            worst,
            math.sqrt(r),
            atol=1e-7,
        )
    # tightness: one gradient [I_r 0] with r equal singular values needs exactly c = sqrt(r)
    r = 2
    G = np.zeros((m, n))
    G[:r, :r] = np.eye(r)
    g = G.reshape(-1)
    O_half = np.outer(g, g) / np.linalg.norm(g)
    A = kron(torch.from_numpy(sym_power(G @ G.T, 0.25)), torch.from_numpy(sym_power(G.T @ G, 0.25))).numpy()
    c = float(np.linalg.eigvalsh(np.linalg.pinv(sym_power(A, 0.5)) @ O_half @ np.linalg.pinv(sym_power(A, 0.5))).max())
    ctx.close("(55) is tight: G = [I_2 0] needs c = sqrt(2) exactly", math.sqrt(r), c, rtol=1e-10)


def _check_growth(ctx: Context, rng: np.random.Generator):
    m, n = 3, 4
    T_max = ctx.size(500, 20_000)
    checkpoints = sorted({int(t) for t in np.geomspace(20, T_max, 12)})
    # anisotropic gradients G = D1 Z D2 (Z i.i.d. N(0, 1)), so that the bound below is not tight
    d1, d2 = np.array([1.0, 0.5, 0.2]), np.array([1.0, 0.7, 0.4, 0.2])
    W = torch.zeros(m, n, dtype=F64, requires_grad=True)
    # statistics only: roots would first be needed at step 10^9, and lr = 0 keeps W fixed
    opt = adaptim.Shampoo([W], lr=0.0, grafting=None, precondition_frequency=10**9)
    trL, trR, boundL, boundR = [], [], [], []
    sum_sq = 0.0
    grads = d1[:, None] * rng.standard_normal((T_max, m, n)) * d2
    for t in range(1, T_max + 1):
        G = grads[t - 1]
        sum_sq += float((G**2).sum())
        _set_grad_and_step(opt, W, G)
        if t in checkpoints:
            L, R = _statistics(opt, W, t)
            trL.append(float(np.trace(sym_power(L, 0.25))))
            trR.append(float(np.trace(sym_power(R, 0.25))))
            # power-mean inequality: tr(L^1/4) <= m^3/4 (tr L)^1/4 and tr L_T = sum_t ||G_t||_F^2
            boundL.append(m**0.75 * sum_sq**0.25)
            boundR.append(n**0.75 * sum_sq**0.25)
    tol = ctx.size(0.04, 0.02)
    ctx.note(
        "tolerance (growth exponent)",
        "L_T / T = E[G G^T] + O(1/sqrt(T)) fluctuations (relative ≈ 2 sqrt(m/(nT)) ≈ 0.4 at T = 20), moving "
        f"log tr(L^1/4) by up to ≈ 0.1 at the first point, over a log-range of ln({T_max}/20): a slope error "
        f"below {tol}",
    )
    sL, sR = loglog_slope(checkpoints, trL), loglog_slope(checkpoints, trR)
    ctx.close(f"growth exponent of tr(L_T^1/4), T = 20..{T_max}, G = D1 Z D2, Z i.i.d. N(0,1)", 0.25, sL, atol=tol)
    ctx.close(f"growth exponent of tr(R_T^1/4), T = 20..{T_max}", 0.25, sR, atol=tol)
    # the constant: L_T / T -> E[G G^T] = D1^2 tr(D2^2), so tr(L_T^1/4) / T^1/4 -> tr(E[G G^T]^1/4); the diagonal
    # entry L_ii / T has relative standard deviation sqrt(2 sum d2^4 / (sum d2^2)^2 / T), a quarter of it after
    # the 1/4 power: four of those is the tolerance
    for name, stat, a, b, tr in (("L", "G G^T", d1, d2, trL[-1]), ("R", "G^T G", d2, d1, trR[-1])):
        limit = float(np.sum((a**2 * np.sum(b**2)) ** 0.25))
        sd = 0.25 * math.sqrt(2 * np.sum(b**4) / np.sum(b**2) ** 2 / T_max)
        ctx.close(
            f"tr({name}_T^1/4) / T^1/4 at T = {T_max} against tr(E[{stat}]^1/4) (4 standard deviations)",
            limit,
            tr / T_max**0.25,
            rtol=4 * sd,
        )
    ctx.le(
        "max over T of tr(L_T^1/4) / (m^3/4 (sum ||G_t||_F^2)^1/4) (the O(T^1/4) bound)",
        max(a / b for a, b in zip(trL, boundL)),
        1.0,
    )
    ctx.le("max over T of tr(R_T^1/4) / (n^3/4 (sum ||G_t||_F^2)^1/4)", max(a / b for a, b in zip(trR, boundR)), 1.0)
    return checkpoints, trL, trR, boundL, boundR


def run(ctx: Context):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    rng = np.random.default_rng(ctx.seed)
    _check_53_54(ctx, rng)
    _check_55(ctx, rng)
    Ts, trL, trR, bL, bR = _check_growth(ctx, rng)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.loglog(Ts, trL, "o-", label=r"tr$(L_T^{1/4})$ (Shampoo's statistic)")
    ax.loglog(Ts, trR, "s-", label=r"tr$(R_T^{1/4})$")
    ax.loglog(Ts, bL, "--", label=r"$m^{3/4}(\sum_t\|G_t\|_F^2)^{1/4}$")
    ax.loglog(Ts, bR, ":", label=r"$n^{3/4}(\sum_t\|G_t\|_F^2)^{1/4}$")
    ax.set_xlabel("T (steps)")
    ax.set_ylabel("trace of the 1/4 power")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title(r"shampoo-kronecker (Section 5): tr$(L_T^{1/4}) = O(T^{1/4})$")
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="shampoo-kronecker",
    section="5, (53)-(55)",
    statement="Shampoo's step L_t^{-1/4} G_t R_t^{-1/4} (53) is mirror descent with the Kronecker preconditioner "
    "A_t = L_t^{1/4} ⊗ R_t^{1/4} (54); O_t^{1/2} <= sqrt(r) A_t with r the largest gradient rank (55); and "
    "tr(L_T^{1/4}), tr(R_T^{1/4}) = O(T^{1/4}), so the regret bound is O(sqrt(T)).",
    run=run,
)
