"""Section 4.1.2 and footnote 4: Adam-atan2 is scale invariant with no eps, its update is arctan of Adam's, about
0.785 (pi/4) of Adam's at |mbar| = sqrt(vbar), and at most pi/2 per coordinate."""

from __future__ import annotations

import math

import numpy as np
import torch

import adaptim
from adaptim.claims._adaptive import batches, breast_cancer, train_rows
from adaptim.claims._core import Claim, Context

LR = 2.0**-10  # a power of two: (w_t - w_{t+1}) / lr is the direction, with nothing lost to the division
KNOBS = ((1.0, 1.0), (1 / math.atan(1 / 2), 2.0), (1 / math.atan(1 / 10), 10.0))  # footnote 4's (a, b)
POWERS = tuple(range(-80, 21, 10))  # gradient scales c = 2^k, 1e-24 .. 1e6


def _gradients(n: int, steps: int, gen: torch.Generator) -> torch.Tensor:
    """Gradient sequences (steps, 3n) independent of w: n random streams g = mu + sigma xi whose signal-to-noise
    |mu|/sigma runs over 1e-3 .. 1e2 (so |mbar| / sqrt(vbar) spans both regimes of footnote 4), then n constant
    streams (|mbar_t| = sqrt(vbar_t) at every step), then n streams tiny until a last-step spike."""
    snr = 10 ** torch.empty(n, dtype=torch.float64).uniform_(-3, 2, generator=gen)
    sign = torch.randint(0, 2, (n,), generator=gen).double() * 2 - 1
    scale = 10 ** torch.empty(n, dtype=torch.float64).uniform_(-3, 3, generator=gen)
    noisy = scale * (sign * snr + torch.randn(steps, n, generator=gen, dtype=torch.float64))
    constant = (scale * sign).expand(steps, n)
    spike = torch.full((steps, n), 1e-6, dtype=torch.float64) * sign
    spike[-1] = sign
    return torch.cat([noisy, constant, spike], 1)


def run(ctx: Context):
    import matplotlib.pyplot as plt

    # 1. scale invariance with no eps, on a real problem: logistic regression on breast-cancer data
    steps = ctx.size(200, 1000)
    gen = torch.Generator().manual_seed(ctx.seed)
    x, y = breast_cancer()
    order = batches(len(x), steps, 64, gen)
    cs = torch.tensor([2.0**k for k in POWERS], dtype=torch.float64)
    rows = cs[:, None].expand(len(cs), x.shape[1])
    one, k_small = POWERS.index(0), POWERS.index(-40)
    (atan,) = train_rows(adaptim.AdamAtan2, [(rows, {})], x, y, order, lr=0.01)
    (adam,) = train_rows(adaptim.Adam, [(rows[[one, k_small]], {})], x, y, order, lr=0.01)  # eps = 1e-8
    path = (atan[:, one] - atan[0, one]).abs().max().item()
    ctx.close(
        f"AdamAtan2 iterates for gradients x c, c = 2^k, k = {POWERS[0]}..{POWERS[-1]}, vs c = 1 (no eps: exact)",
        atan[:, one : one + 1].expand_as(atan),
        atan,
        atol=1e-12 * path,
    )
    adam_dev = (adam[:, 1] - adam[:, 0]).abs().max().item() / path
    # Adam's iterates at c = 2^-40 move at most T lr c max|g| / eps (|g_i| <= max|x_ij| for the logistic loss)
    moved = steps * 0.01 * cs[k_small].item() * x.abs().max().item() / 1e-8
    ctx.ge(
        "contrast: Adam (eps = 1e-8) at c = 2^-40: largest deviation from its c = 1 iterates / distance, "
        ">= 1 - (its largest possible movement T lr c max|g| / eps) / distance",
        adam_dev,
        1 - moved / path,
    )

    # 2. the update against Adam's, coordinate by coordinate, on gradient streams independent of w
    n, t_len = ctx.size(2000, 20000), 30
    grads = _gradients(n, t_len, gen)
    spike_betas = (0.5, 0.99)  # (1 - b1)/sqrt(1 - b2) = 5: Adam's step after a spike exceeds pi/2
    w_adam = [torch.zeros(3 * n, dtype=torch.float64) for _ in range(2)]
    w_atan = [torch.zeros(3 * n, dtype=torch.float64) for _ in range(len(KNOBS) + 1)]
    opt_adam = adaptim.Adam(
        [{"params": [w_adam[0]]}, {"params": [w_adam[1]], "betas": spike_betas}], lr=LR, eps=0.0, fused=False
    )
    opt_atan = adaptim.AdamAtan2(
        [{"params": [w], "a": a, "b": b} for w, (a, b) in zip(w_atan, KNOBS)]
        + [{"params": [w_atan[-1]], "betas": spike_betas}],
        lr=LR,
        fused=False,
    )
    d_adam = torch.empty(t_len, 2, 3 * n, dtype=torch.float64)
    d_atan = torch.empty(t_len, len(KNOBS) + 1, 3 * n, dtype=torch.float64)
    for t in range(t_len):
        before_adam, before_atan = torch.stack(w_adam), torch.stack(w_atan)
        for w in w_adam + w_atan:
            w.grad = grads[t]
        opt_adam.step()
        opt_atan.step()
        d_adam[t] = (before_adam - torch.stack(w_adam)) / LR  # mbar / sqrt(vbar)
        d_atan[t] = (before_atan - torch.stack(w_atan)) / LR  # a atan2(mbar, b sqrt(vbar))
    r = d_adam[:, 0].numpy()
    for k, (a, b) in enumerate(KNOBS):
        ctx.close(
            f"a = {a:.4g}, b = {b:g}: AdamAtan2 step = a arctan(Adam's step / b), {t_len} steps x {3 * n} coordinates",
            a * np.arctan(r / b),
            d_atan[:, k],
            atol=1e-12,
        )
    noisy, constant = slice(0, n), slice(n, 2 * n)
    ratio = (d_atan[:, :, constant] / d_adam[:, :1, constant]).numpy()
    ctx.close(
        "|mbar| = sqrt(vbar) (constant gradients), a = b = 1: AdamAtan2 / Adam = pi/4 (footnote 4's ~0.8)",
        math.pi / 4,
        ratio[:, 0].mean(),
        rtol=1e-12,
    )
    ctx.close("... every step and coordinate", np.full(ratio[:, 0].shape, math.pi / 4), ratio[:, 0], rtol=1e-12)
    for k, (_, b) in enumerate(KNOBS[1:], 1):
        ctx.close(
            f"a = 1/arctan(1/b), b = {b:g}: ratio at |mbar| = sqrt(vbar) is 1", 1.0, ratio[:, k].mean(), rtol=1e-12
        )
    small = np.abs(r[:, noisy]) < 1e-2
    for k, (a, b) in enumerate(KNOBS):
        measured = (d_atan[:, k, noisy].numpy()[small] / r[:, noisy][small]).mean()
        # a arctan(r/b)/r = (a/b)(1 - r^2/(3 b^2) + ...): within 1e-4/3 of a/b for |r| < 1e-2
        ctx.close(
            f"a = {a:.4g}, b = {b:g}: ratio where |mbar| << sqrt(vbar) (|r| < 1e-2) is a/b",
            a / b,
            measured,
            atol=1e-4 / 3,
        )
    ctx.note(
        "footnote 4", f"a/b - 1 for b = 2, 10: {KNOBS[1][0] / 2 - 1:.3g}, {KNOBS[2][0] / 10 - 1:.3g} (-> 0 as b grows)"
    )
    # clipping: a spike after tiny gradients; Adam's step exceeds pi/2, Adam-atan2's never does
    spike = slice(2 * n, 3 * n)
    ctx.ge(
        "spike after tiny gradients, betas (0.5, 0.99): largest |Adam step| / lr (exceeds pi/2)",
        d_adam[-1, 1, spike].abs().max(),
        math.pi / 2,
    )
    ctx.le(
        "largest |AdamAtan2 step| / (a lr) over every stream, knob and step (at most pi/2)",
        (d_atan[:, :-1] / torch.tensor([a for a, _ in KNOBS])[None, :, None]).abs().max(),
        math.pi / 2,
    )
    ctx.le("spike: largest |AdamAtan2 step| / lr", d_atan[-1, -1, spike].abs().max(), math.pi / 2)

    fig, ax = plt.subplots(figsize=(6, 4))
    grid = np.logspace(-3, 1.5, 200)
    pick = np.random.default_rng(0).choice(r[:, noisy].size, 1500, replace=False)
    for k, (a, b) in enumerate(KNOBS):
        rr = np.abs(r[:, noisy]).ravel()[pick]
        (line,) = ax.semilogx(grid, a * np.arctan(grid / b) / grid, label=f"a = {a:.3g}, b = {b:g}: a arctan(r/b)/r")
        ax.scatter(
            rr,
            (d_atan[:, k, noisy].numpy().ravel()[pick] / r[:, noisy].ravel()[pick]),
            s=3,
            color=line.get_color(),
            alpha=0.5,
        )
    rs = d_adam[-1, 1, spike].abs().numpy()
    ax.scatter(
        rs,
        (d_atan[-1, -1, spike] / d_adam[-1, 1, spike]).numpy(),
        s=6,
        marker="x",
        color="k",
        label="a = b = 1 after a spike (betas 0.5, 0.99)",
    )
    ax.axvline(1.0, color="gray", ls="--", lw=0.8)
    ax.axhline(math.pi / 4, color="gray", ls=":", lw=0.8, label="pi/4")
    ax.set_xlabel("r = |mbar| / sqrt(vbar) (Adam's step / lr)")
    ax.set_ylabel("AdamAtan2 step / Adam step")
    ax.set_title("adam-atan2 (4.1.2, footnote 4): measured (dots), predicted (lines)")
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="adam-atan2",
    section="4.1.2, footnote 4",
    statement="Adam-atan2's update a atan2(mbar, b sqrt(vbar)) needs no eps and is exactly scale invariant; with "
    "a = b = 1 it is about pi/4 = 0.785 times Adam's where |mbar| = sqrt(vbar), equal to Adam's where |mbar| << "
    "sqrt(vbar), and never above pi/2; a = 1/arctan(1/b) matches the first regime instead, the two agreeing as "
    "b -> infinity.",
    run=run,
)
