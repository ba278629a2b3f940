"""Fact 2.1: sum_t x_t^T X_t^{-1/2} x_t <= 2 tr(X_T^{1/2}) for X_t = sum_{l<=t} x_l x_l^T (and its d = 1 form)."""

from __future__ import annotations

import math

import numpy as np
import torch

from adaptim.claims._core import Claim, Context
from adaptim.linalg import psd_power


def _pinv_sqrt(X: np.ndarray) -> np.ndarray:
    """X^{-1/2} on X's range (the pseudo-inverse root): x_t lies in range(X_t), so this is the term of the Fact."""
    lam, V = np.linalg.eigh(X)
    keep = lam > 1e-12 * max(lam[-1], 1e-300)
    return (V[:, keep] / np.sqrt(lam[keep])) @ V[:, keep].T


def _terms(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T,) terms x_t^T X_t^{-1/2} x_t and (T,) tr(X_t^{1/2}), t = 1..T."""
    d = xs.shape[1]
    X = np.zeros((d, d))
    terms, traces = [], []
    for x in xs:
        X = X + np.outer(x, x)
        terms.append(float(x @ _pinv_sqrt(X) @ x))
        lam = np.linalg.eigvalsh(X)
        # eigenvalues at rounding level (a rank-deficient X) are 0: their square roots would add noise ~1e-7
        traces.append(float(np.sqrt(lam[lam > 1e-12 * max(lam[-1], 1e-300)]).sum()))
    return np.array(terms), np.array(traces)


def run(ctx: Context):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(ctx.seed)
    T = ctx.size(60, 300)
    cases = {
        "Gaussian, d = 4": rng.normal(size=(T, 4)),
        "Student-t(1.5), d = 6": rng.standard_t(1.5, size=(T, 6)),
        "rank 2 in d = 5": rng.normal(size=(T, 2)) @ rng.normal(size=(2, 5)),
        "growing scale, d = 3": rng.normal(size=(T, 3)) * np.linspace(0.1, 10, T)[:, None],
    }
    curves = {}
    for name, xs in cases.items():
        terms, traces = _terms(xs)
        curves[name] = (np.cumsum(terms), 2 * traces)
        ctx.le(f"{name}, T = {T}: sum_t x_t^T X_t^(-1/2) x_t <= 2 tr(X_T^(1/2))", terms.sum(), 2 * traces[-1])
        # the proof's step (with X_t, as concavity gives): tr(X_t^½) - tr(X_{t-1}^½) >= ½ x_t^T X_t^(-1/2) x_t
        steps = np.diff(np.concatenate([[0.0], traces])) - 0.5 * terms
        ctx.ge(
            f"{name}: min_t of tr(X_t^½) - tr(X_(t-1)^½) - ½ x_t^T X_t^(-½) x_t",
            steps.min(),
            0.0,
            atol=1e-9 * traces[-1],
        )
    # the library's psd_power gives the same terms once X_t is nonsingular (t >= d)
    xs = cases["Gaussian, d = 4"]
    X = np.cumsum(xs[:, :, None] * xs[:, None, :], 0)
    lib = [
        float(torch.from_numpy(x) @ psd_power(torch.from_numpy(Xt), -0.5) @ torch.from_numpy(x))
        for x, Xt in zip(xs[4:], X[4:], strict=True)
    ]
    ctx.close(
        "x_t^T X_t^(-1/2) x_t: adaptim.linalg.psd_power against numpy's eigh (t >= d)",
        _terms(xs)[0][4:],
        lib,
        rtol=1e-9,
    )
    # d = 1: sum_t b_t / sqrt(B_t) <= 2 sqrt(B_T) for b_t >= 0 (zeros included; 0/0 terms are 0)
    b = rng.exponential(size=T) * (rng.random(T) < 0.7)
    B = np.cumsum(b)
    lhs = float(np.sum(np.divide(b, np.sqrt(B), out=np.zeros(T), where=B > 0)))
    ctx.le(f"d = 1, b_t ~ Exp(1) with 30% zeros, T = {T}: sum b_t/sqrt(B_t) <= 2 sqrt(B_T)", lhs, 2 * math.sqrt(B[-1]))
    # b_t = 1: sum_t 1/sqrt(t) <= 2 sqrt(T), the step behind (24); the ratio tends to 1 (the constant 2 is sharp)
    for n in (1, 10, 1000, ctx.size(10**5, 10**6)):
        s = float(np.sum(1 / np.sqrt(np.arange(1, n + 1))))
        ctx.le(f"sum_(t<=T) 1/sqrt(t) <= 2 sqrt(T), T = {n}", s, 2 * math.sqrt(n))
    ctx.ge(f"sharpness: sum 1/sqrt(t) / (2 sqrt(T)) at T = {n} (-> 1; 1 - 0.73/sqrt(T))", s / (2 * math.sqrt(n)), 0.99)
    # the proof as printed uses X_(t-1)^(-1/2); that step fails already for b = (1, 1) at t = 2
    printed = (math.sqrt(2) - 1) - 0.5 * 1 / math.sqrt(1)
    ctx.true(
        "the printed step tr(X_t^½) - tr(X_(t-1)^½) >= ½ x_t^T X_(t-1)^(-½) x_t fails for b = (1, 1), t = 2 "
        "(sqrt 2 - 1 < ½): the proof needs X_t (a typo)",
        printed < 0,
        measured=round(printed, 6),
        tolerance="left side minus right side < 0",
    )
    ctx.note("typo", "Fact 2.1's proof should read x_t^T X_t^{-1/2} x_t (concavity at B = X_t), not X_{t-1}")

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, (lhs_c, rhs_c) in curves.items():
        line = ax.plot(np.arange(1, T + 1), lhs_c, label=f"{name}: sum")[0]
        ax.plot(np.arange(1, T + 1), rhs_c, "--", color=line.get_color())
    ax.set_xlabel("t")
    ax.set_ylabel("sum_s x_s^T X_s^(-1/2) x_s  (solid)   2 tr(X_t^(1/2))  (dashed)")
    ax.set_yscale("log")
    ax.set_title("fact-2.1 (Section 2.1): the sum stays below 2 tr(X_t^(1/2))")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


CLAIM = Claim(
    name="fact-2.1",
    section="2.1, Fact 2.1",
    statement="For any x_1..x_T in R^d and X_t = sum_{l<=t} x_l x_l^T, sum_t x_t^T X_t^{-1/2} x_t <= 2 tr(X_T^{1/2}); "
    "for d = 1, sum_t b_t/sqrt(B_t) <= 2 sqrt(B_T), and in particular sum_t 1/sqrt(t) <= 2 sqrt(T).",
    run=run,
)
