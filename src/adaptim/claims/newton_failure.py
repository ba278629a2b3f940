"""A.2.1: outside the Newton ball Newton loses its quadratic rate (w^4/4: linear, factor 2/3) or diverges (e^w - w
from w = -100 jumps past 10^43)."""

from __future__ import annotations

import math

import numpy as np
import torch

from adaptim.claims._core import Claim, Context
from adaptim.solvers import SolverError, fit_rate, gradient, hessian, newton

D = torch.float64


def quartic(w):
    return (w**4).sum() / 4


def exp_minus(w):
    return (torch.exp(w) - w).sum()


def run(ctx: Context):
    import matplotlib.pyplot as plt

    # J = w^4/4: Newton's w_{t+1} = (2/3) w_t, J(w_{T+1}) = (16/81)^T J(w_1)
    T = 40
    h = newton(quartic, torch.tensor([1.0], dtype=D), T)
    w = h.iterates[:, 0].numpy()
    ctx.close("w^4/4: w_t+1 / w_t for every step", np.full(T, 2 / 3), w[1:] / w[:-1], rtol=1e-13)
    ctx.close("w^4/4: J(w_T+1) = (16/81)^T J(w_1), T = 40", (16 / 81) ** T * 0.25, float(h.values[-1]), rtol=1e-12)
    fit = fit_rate(h.values.numpy())
    ctx.true("w^4/4: fit_rate's kind of J(w_t) - J*", fit.kind == "linear", predicted="linear", measured=fit.kind)
    ctx.close("w^4/4: fitted linear factor beta of J(w_t) - J*", 16 / 81, fit.beta, rtol=1e-10)
    ctx.close("w^4/4: fitted order p (2 would be quadratic)", 1.0, fit.order, atol=1e-8)
    ctx.true(
        "w^4/4: the quadratic model fits far worse than the linear one",
        not fit.fits("quadratic", rtol=10.0),
        predicted="no",
        measured=f"residuals: linear {fit.residuals['linear']:.2g}, quadratic {fit.residuals['quadratic']:.2g}",
        tolerance="quadratic residual > 11 x linear residual",
    )

    # J = e^w - w from w = -100: w_2 = -101 + e^100 > 10^43; at w_2 the gradient overflows and Newton stops
    try:
        newton(exp_minus, torch.tensor([-100.0], dtype=D), 3)
        ctx.true("e^w - w from -100: Newton cannot continue past w_2", False, measured="no error raised")
        w2 = math.nan
    except SolverError as e:
        w2 = float(e.history.iterates[-1, 0])
        ctx.true(
            "e^w - w from -100: Newton cannot take step 2 (the gradient e^w2 - 1 overflows)",
            e.step == 2,
            predicted="SolverError at step 2",
            measured=f"SolverError at step {e.step}",
        )
        ctx.note("solver message", str(e))
    ctx.close("e^w - w: w_2 = w_1 - 1 + e^-w_1 from w_1 = -100", math.exp(100) - 101, w2, rtol=1e-12)
    ctx.ge("e^w - w: w_2 > 10^43", w2, 1e43)
    # far right of w* = 0 a Newton step moves by -1 + e^-w ~ -1: from 700 (where e^w is still finite) ...
    steps = newton(exp_minus, torch.tensor([700.0], dtype=D), 10).iterates[:, 0].numpy()
    ctx.close("e^w - w from 700: each Newton step is -1 + e^-w = -1", np.full(10, -1.0), np.diff(steps), atol=2e-13)
    ctx.note("so from w_2 ~ 2.7e43", f"returning to w* = 0 would take about {w2:.2g} steps: Newton fails to converge")

    # figure: J and Newton's quadratic model at w = -3 for both examples
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    panels = (("J(w) = w⁴/4", quartic, -4.0, 2.0, (-1, 60)), ("J(w) = eʷ - w", exp_minus, -4.0, 18.0, (-8, 15)))
    for ax, (name, fn, lo, hi, ylim) in zip(axes, panels):
        w0 = torch.tensor([-3.0], dtype=D)
        g, H = float(gradient(fn, w0)[0]), float(hessian(fn, w0)[0, 0])
        j0 = float(fn(w0))
        w_next = float(newton(fn, w0, 1).iterates[1, 0])
        grid = np.linspace(lo, hi, 400)
        ax.plot(grid, [float(fn(torch.tensor([x], dtype=D))) for x in grid], label="J")
        ax.plot(grid, j0 + g * (grid + 3) + 0.5 * H * (grid + 3) ** 2, "--", label="quadratic model at w = -3")
        ax.plot([-3.0], [j0], "ko", label="w_t = -3")
        ax.axvline(w_next, color="r", lw=0.8, label=f"Newton step: w_t+1 = {w_next:.3g}")
        ax.set_ylim(*ylim)
        ax.set_xlabel("w")
        ax.set_ylabel("J(w)")
        ax.set_title(name)
        ax.legend(fontsize=7)
    fig.suptitle("newton-failure: Newton's quadratic approximations at w = -3 (A.2.1)")
    fig.tight_layout()
    return fig


CLAIM = Claim(
    name="newton-failure",
    section="A.2.1",
    statement="Outside the Newton ball Newton can lose its quadratic rate: on J = w^4/4 it contracts by exactly 2/3 "
    "per step (J - J* = O((81/16)^-T), linear); on J = e^w - w from w = -100 it jumps past 10^43 and cannot return.",
    run=run,
)
