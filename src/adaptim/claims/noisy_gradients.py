"""A.1, noisy gradients: with gradient noise of variance sigma^2, SGD's error has an O(sigma/sqrt(T)) term."""

from __future__ import annotations

import numpy as np
import torch

import adaptim
from adaptim.claims._core import Claim, Context
from adaptim.solvers import fit_rate


def _sgd_errors(T: int, sigma: float, reps: int, gen: torch.Generator) -> np.ndarray:
    """J(w_{T+1}) - J* for ``reps`` independent runs of adaptim.SGD on J(w) = w^2/2 from w_1 = D = 1, with
    g_t = w_t + sigma xi_t (xi_t ~ N(0, 1)) and the step eta = D/(sigma sqrt T) of the sigma/sqrt(T) analysis.
    The runs are the entries of one parameter vector (J is separable)."""
    w = torch.ones(reps, dtype=torch.float64, requires_grad=True)
    opt = adaptim.SGD([w], lr=1.0 / (sigma * T**0.5), foreach=True)
    for _ in range(T):
        w.grad = w.detach() + sigma * torch.randn(reps, dtype=torch.float64, generator=gen)
        opt.step()
    return 0.5 * w.detach().numpy() ** 2


def _expected(T: int, sigma: float) -> float:
    """E[J(w_{T+1})] in closed form: (1/2)[(1-eta)^{2T} + eta^2 sigma^2 (1 - (1-eta)^{2T}) / (1 - (1-eta)^2)]."""
    eta = 1.0 / (sigma * T**0.5)
    r = (1 - eta) ** (2 * T)
    return 0.5 * (r + eta**2 * sigma**2 * (1 - r) / (1 - (1 - eta) ** 2))


def run(ctx: Context):
    import matplotlib.pyplot as plt

    gen = torch.Generator().manual_seed(ctx.seed)
    grid = np.array(ctx.size([16, 32, 64, 128, 256], [16, 64, 256, 1024, 4096]))
    reps = ctx.size(4000, 8000)
    sigma = 1.0
    means, ses = [], []
    for T in grid:
        e = _sgd_errors(int(T), sigma, reps, gen)
        means.append(e.mean())
        ses.append(e.std(ddof=1) / np.sqrt(reps))
    means, ses = np.array(means), np.array(ses)
    expected = np.array([_expected(int(T), sigma) for T in grid])
    z = np.abs(means - expected) / ses
    ctx.le("max over T of |mean error - closed-form E[J(w_T+1)] - J*| in standard errors", z.max(), 4.0)
    fit = fit_rate(means, t=grid)
    exact = fit_rate(expected, t=grid)
    # the slope's standard error: least-squares weights applied to the log-means' standard errors
    x = np.log(grid) - np.log(grid).mean()
    slope_se = float(np.sqrt(np.sum((x / np.sum(x**2)) ** 2 * (ses / means) ** 2)))
    tol = abs(exact.alpha - 0.5) + 4 * slope_se
    ctx.close(f"exponent of the error in T over T = {grid.tolist()} (sigma/sqrt(T): 1/2)", 0.5, fit.alpha, atol=tol)
    ctx.note(
        "tolerance",
        f"{tol:.3g} = |alpha of the closed form - 1/2| ({abs(exact.alpha - 0.5):.2g}: eta sigma^2/(2 - eta) rather "
        f"than eta sigma^2/2, and the bias (1-eta)^2T) + 4 standard errors of the fitted slope ({slope_se:.2g})",
    )
    ctx.close(
        "sqrt(T) (J(w_T+1) - J*) / (sigma D) at the largest T (closed form's limit 1/4)",
        0.25,
        means[-1] * np.sqrt(grid[-1]),
        atol=4 * ses[-1] * np.sqrt(grid[-1]) + abs(expected[-1] * np.sqrt(grid[-1]) - 0.25),
    )
    # the term is proportional to sigma: doubling sigma (with eta = D/(sigma sqrt T)) doubles the error
    T = int(grid[-2])
    e2 = _sgd_errors(T, 2 * sigma, reps, gen)
    ratio = e2.mean() / means[-2]
    ratio_se = ratio * np.sqrt((e2.std(ddof=1) / np.sqrt(reps) / e2.mean()) ** 2 + (ses[-2] / means[-2]) ** 2)
    pred = _expected(T, 2 * sigma) / _expected(T, sigma)
    ctx.close(f"error at sigma = 2 / error at sigma = 1, T = {T} (sigma/sqrt(T): 2)", pred, ratio, atol=4 * ratio_se)

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.errorbar(grid, means, yerr=2 * ses, fmt="o", label=f"adaptim.SGD, mean of {reps} runs (±2 se)")
    ax.loglog(grid, expected, "-", label="closed form E[J(w_T+1)] - J*")
    ax.loglog(grid, sigma / (4 * np.sqrt(grid)), "k--", label="σ D / (4 √T)")
    ax.set_xscale("log")
    ax.set_xlabel("T")
    ax.set_ylabel("J(w_T+1) - J*")
    ax.set_title("noisy-gradients: the σ/√T term (A.1)")
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="noisy-gradients",
    section="A.1",
    statement="With unbiased gradients of noise variance sigma^2, SGD's error has a variance term O(sigma/sqrt(T)) "
    "that dominates unless the gradients are noise-free; measured on J = w^2/2 with eta = D/(sigma sqrt T).",
    run=run,
)
