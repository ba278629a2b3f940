"""Section 2.2, (27): with a constant gradient g, heavy ball's velocity approaches g / (1 - mu) (20 g at mu = 0.95)."""

from __future__ import annotations

import math

import torch

import adaptim
from adaptim.claims._core import Claim, Context

MOMENTA = (0.5, 0.9, 0.95, 0.99)


def _velocities(mu: float, g: torch.Tensor, steps: int, lr: float):
    """Run adaptim.SGD and torch.optim.SGD (momentum mu) on the constant gradient g; return the velocities
    (w_t - w_{t+1}) / lr of (26), shape (steps, d), the final momentum buffer and the largest parameter gap."""
    ours, theirs = torch.zeros_like(g), torch.zeros_like(g)
    opt = adaptim.SGD([ours], lr=lr, momentum=mu)  # the path users get by default
    ref = torch.optim.SGD([theirs], lr=lr, momentum=mu)
    path = torch.empty(steps + 1, 2, len(g), dtype=g.dtype)  # w_t of both, t = 1..T+1
    path[0] = 0.0
    for t in range(steps):
        ours.grad, theirs.grad = g, g  # both read the gradient, never write it
        opt.step()
        ref.step()
        path[t + 1, 0], path[t + 1, 1] = ours, theirs
    velocity = (path[:-1, 0] - path[1:, 0]) / lr
    gap = (path[:, 0] - path[:, 1]).abs().max().item()
    return velocity, opt.state[ours]["momentum_buffer"], gap, ours.abs().max().item()


def run(ctx: Context):
    import matplotlib.pyplot as plt

    lr = 2.0**-10  # a power of two: (w_t - w_{t+1}) / lr loses nothing to the division
    g = torch.randn(4, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(6, 4))
    for mu in MOMENTA:
        # enough steps for mu^T < 1e-13 (v_T = g/(1 - mu) to rounding), capped in --quick
        steps = min(math.ceil(math.log(1e-13) / math.log(mu)), ctx.size(600, 10**6))
        velocity, buffer, gap, size = _velocities(mu, g, steps, lr)
        t = torch.arange(1, steps + 1, dtype=torch.float64)
        # v_t = g + mu g + ... + mu^(t-1) g = (1 - mu^t)/(1 - mu) g: the partial sums whose limit is (27)
        partial = ((1 - mu**t) / (1 - mu))[:, None] * g
        ctx.close(
            f"mu = {mu}: velocity (w_t - w_(t+1))/lr = (1 - mu^t)/(1 - mu) g, t = 1..{steps}",
            partial,
            velocity,
            rtol=1e-10,
        )
        remaining = mu**steps / (1 - mu)  # |v_T - g/(1 - mu)| / |g| by the partial sum
        ctx.close(
            f"mu = {mu}: momentum buffer after T = {steps} steps vs g/(1 - mu) (27), allowing mu^T/(1 - mu) |g|",
            g / (1 - mu),
            buffer,
            atol=remaining * g.abs().max().item() + 1e-12,
        )
        ctx.le(
            f"mu = {mu}: largest |adaptim.SGD - torch.optim.SGD| parameter gap over the run (rounding)",
            gap,
            1e-13 * size,
        )
        if mu == 0.95:
            ctx.close("mu = 0.95: v_T / g (the notes' 20)", 20.0, (velocity[-1] / g).mean(), rtol=1e-12)
        shown = min(steps, 600)
        (line,) = ax.plot(t[:shown], (velocity[:shown] / g).mean(1), label=f"mu = {mu}: measured v_t / g")
        ax.axhline(1 / (1 - mu), color=line.get_color(), ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("velocity v_t / g")
    ax.set_title("heavy-ball-velocity (2.2, (27)): v_t -> g/(1 - mu) (dashed)")
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="heavy-ball-velocity",
    section="2.2, (27)",
    statement="With a constant gradient g, heavy ball's velocity v_t = g + mu v_(t-1) grows to g/(1 - mu): "
    "at the typical mu = 0.95 the update is 20 g.",
    run=run,
)
