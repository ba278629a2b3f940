"""Lemma S.10 (Sections 2.3, 2.3.1, 2.3.2): Nesterov's look-ahead (28)-(31) is double momentum on x_t, exactly at
constant eta and mu, and with the correction (eta_t mu_t - eta_(t+1) mu_(t+1)) v_t under a schedule."""

from __future__ import annotations

import numpy as np
import torch

import adaptim
from adaptim.claims._core import Claim, Context

D, N = 5, 8  # parameters, rows of each random least-squares loss


def _losses(steps: int, gen: torch.Generator):
    """l_t(w) = 1/2 |A_t w - b_t|^2 with fresh random A_t, b_t each step: gradients that are random and depend on
    the point where they are taken (so the look-ahead matters)."""
    a = torch.randn(steps, N, D, generator=gen, dtype=torch.float64) / N**0.5
    b = torch.randn(steps, N, generator=gen, dtype=torch.float64)
    return a, b


def _run(make, a, b, lrs, momenta, correct: bool = False):
    """Step the optimizer ``make(p)`` over the losses with lr eta_t and momentum mu_t (lists, t = 1..T).

    Returns the points where each gradient was taken (x_t: the closure's point), the gradients there, and the
    velocities v_t after each step, as float64 arrays of shape (T, D). ``correct`` adds Lemma S.10's term
    (eta_t mu_t - eta_(t+1) mu_(t+1)) v_t to the parameter after step t (v_t read from the optimizer's state).
    """
    steps = len(lrs)
    p = torch.zeros(D, dtype=torch.float64)
    opt = make(p)
    xs, gs, vs = np.empty((steps, D)), np.empty((steps, D)), np.empty((steps, D))
    for t in range(steps):
        opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"] = lrs[t], momenta[t]

        def closure(t=t):
            r = a[t] @ p - b[t]
            p.grad = a[t].T @ r
            xs[t], gs[t] = p.numpy(), p.grad.numpy()
            return 0.5 * float(r @ r)

        opt.step(closure)
        v = opt.state[p]["momentum_buffer"]
        vs[t] = v.numpy()
        if correct and t + 1 < steps:
            with torch.no_grad():
                p.add_(v, alpha=lrs[t] * momenta[t] - lrs[t + 1] * momenta[t + 1])
    return xs, gs, vs


def run(ctx: Context):
    import matplotlib.pyplot as plt

    steps = ctx.size(300, 3000)
    gen = torch.Generator().manual_seed(ctx.seed)
    a, b = _losses(steps, gen)
    eta, mu = 0.02, 0.9
    literal = lambda p: adaptim.SGD([p], lr=eta, momentum=mu, nesterov=True, lookahead=True, fused=False)
    double = lambda p: adaptim.SGD([p], lr=eta, momentum=mu, nesterov=True, fused=False)
    torch_double = lambda p: torch.optim.SGD([p], lr=eta, momentum=mu, nesterov=True)
    t = np.arange(steps)
    # a warm-up then cosine lr, and a momentum rising from 0.85 to 0.95: Lemma S.10's eta_t and mu_t
    sched_lr = list(eta * np.where(t < steps // 10, (t + 1) / (steps // 10), 0.5 * (1 + np.cos(np.pi * t / steps))))
    sched_mu = list(0.85 + 0.1 * t / steps)

    x_lit, _, v_lit = _run(literal, a, b, [eta] * steps, [mu] * steps)
    x_dm, _, v_dm = _run(double, a, b, [eta] * steps, [mu] * steps)
    x_torch, _, _ = _run(torch_double, a, b, [eta] * steps, [mu] * steps)
    xs_lit, gs_lit, vs_lit = _run(literal, a, b, sched_lr, sched_mu)
    xs_dm, _, _ = _run(double, a, b, sched_lr, sched_mu)
    xs_fix, _, _ = _run(double, a, b, sched_lr, sched_mu, correct=True)
    scale = np.abs(x_lit).max()

    # constant eta, mu: double momentum's parameters are the look-ahead points x_t of (28), its velocities v_t
    ctx.close(
        f"constant eta, mu: adaptim.SGD(nesterov) iterates = (28)'s x_t of SGD(lookahead), t = 1..{steps}",
        x_lit,
        x_dm,
        atol=1e-12 * scale,
    )
    ctx.close(
        "constant eta, mu: double-momentum velocities = (30)'s v_t", v_lit, v_dm, atol=1e-12 * np.abs(v_lit).max()
    )
    ctx.close("constant eta, mu: torch.optim.SGD(nesterov=True) iterates = x_t", x_lit, x_torch, atol=1e-12 * scale)
    # Lemma S.10's recurrence on the literal look-ahead points, with its correction term, under the schedule
    lr, mom = np.asarray(sched_lr)[:, None], np.asarray(sched_mu)[:, None]
    correction = (lr[:-1] * mom[:-1] - lr[1:] * mom[1:]) * vs_lit[:-1]
    lemma = xs_lit[:-1] - lr[:-1] * (gs_lit[:-1] + mom[:-1] * vs_lit[:-1]) + correction
    scale_s = np.abs(xs_lit).max()
    ctx.close(
        "schedule: x_(t+1) of (28)-(31) = x_t - eta_t (g'_t + mu_t v_t) + (eta_t mu_t - eta_(t+1) mu_(t+1)) v_t",
        lemma,
        xs_lit[1:],
        atol=1e-12 * scale_s,
    )
    ctx.ge(
        "schedule: largest |correction term| (the lemma's check above could not pass without it)",
        np.abs(correction).max(),
        1e6 * 1e-12 * scale_s,
    )
    # the library's double momentum (Section 2.3.1) drops the correction: not exact under a schedule ...
    gap = np.abs(xs_dm - xs_lit).max(1)
    ctx.ge(
        "schedule: largest |adaptim.SGD(nesterov) - x_t| (not exact: 2.3.1), vs 1e6 x rounding",
        gap.max(),
        1e6 * 1e-12 * scale_s,
    )
    # ... and adding the correction after each of its steps recovers (28)-(31) exactly
    ctx.close(
        "schedule: adaptim.SGD(nesterov) + the correction after each step = x_t of (28)-(31)",
        xs_lit,
        xs_fix,
        atol=1e-12 * scale_s,
    )
    rel = float(gap.max() / np.abs(xs_lit - xs_lit[0]).max())
    ctx.note("schedule: largest uncorrected gap / largest distance travelled", f"{rel:.3g}")

    fig, ax = plt.subplots(figsize=(6, 4))
    tiny = 1e-18  # zero gaps drawn at the bottom of the log axis
    ax.semilogy(t + 1, np.abs(x_dm - x_lit).max(1) + tiny, label="constant eta, mu: double momentum")
    ax.semilogy(t + 1, gap + tiny, label="schedule: double momentum (no correction)")
    ax.semilogy(t + 1, np.abs(xs_fix - xs_lit).max(1) + tiny, label="schedule: double momentum + correction")
    ax.set_xlabel("step t")
    ax.set_ylabel("max |x_t(double momentum) - x_t(28)-(31)|")
    ax.set_title("nesterov-double-momentum (Lemma S.10)")
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="nesterov-double-momentum",
    section="2.3.1, Lemma S.10",
    statement="Nesterov's look-ahead (28)-(31) equals double momentum x_(t+1) = x_t - eta_t (g'_t + mu_t v_t) on the "
    "look-ahead points, exactly for constant eta and mu; under a schedule the exact recurrence adds "
    "(eta_t mu_t - eta_(t+1) mu_(t+1)) v_t, which double-momentum implementations drop.",
    run=run,
)
