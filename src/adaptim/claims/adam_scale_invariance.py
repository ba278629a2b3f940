"""Section 4.1, (47) and 4.1.1: Adam's updates do not change when every gradient is multiplied by c > 0, up to
eps's effect; the invariance breaks once c |g| is comparable to or below eps."""

from __future__ import annotations

import numpy as np
import torch

import adaptim
from adaptim.claims._adaptive import batches, breast_cancer, logistic_losses, train_rows
from adaptim.claims._core import Claim, Context
from adaptim.functional.fused import fused_available

EPS, LR, BATCH = 1e-8, 0.01, 64
POWERS = tuple(range(-60, 21, 5))  # c = 2^k: 1e-18 .. 1e6 (powers of two keep c g, c^2 g^2 free of rounding)


def run(ctx: Context):
    import matplotlib.pyplot as plt

    steps = ctx.size(200, 1000)
    gen = torch.Generator().manual_seed(ctx.seed)
    x, y = breast_cancer()
    n, d = x.shape
    order = batches(n, steps, BATCH, gen)
    cs = np.array([2.0**k for k in POWERS])
    one = POWERS.index(0)
    scalar_rows = torch.tensor(cs, dtype=torch.float64)[:, None].expand(len(cs), d)
    per_coordinate = 2.0 ** torch.randint(-20, 21, (1, d), generator=gen).double()  # c in R^d, 1e-6 .. 1e6
    sub = [POWERS.index(k) for k in (-30, 0, 20)]
    unscaled = torch.ones(1, d, dtype=torch.float64)
    exact, smooth, *moved_eps = train_rows(
        adaptim.Adam,
        [(torch.cat([scalar_rows, per_coordinate]), {"eps": 0.0}), (scalar_rows, {"eps": EPS})]
        + [(unscaled, {"eps": EPS / cs[i]}) for i in sub],
        x,
        y,
        order,
        lr=LR,
    )
    moved_eps = torch.cat(moved_eps, 1)
    ref = exact[:, one]  # eps = 0, c = 1
    path = (ref - ref[0]).abs().max().item()
    rounding = 1e-12 * path  # rows of one matmul may be summed in different orders: a few ulps per step

    # (47) with eps = 0: every c, scalar or per coordinate, gives the same iterates
    ctx.close(
        f"eps = 0: iterates for c = 2^k, k = {POWERS[0]}..{POWERS[-1]} vs c = 1 ((47))",
        ref[:, None].expand(steps + 1, len(cs), d),
        exact[:, : len(cs)],
        atol=rounding,
    )
    ctx.close(
        "eps = 0: iterates for a per-coordinate c in [2^-20, 2^20]^d vs c = 1 ((47))", ref, exact[:, -1], atol=rounding
    )
    # with eps: c enters only through eps / c (m c / (c sqrt(v) + eps) = m / (sqrt(v) + eps / c))
    ctx.close(
        "eps = 1e-8: Adam on c g = Adam with eps/c on g (c = 2^-30, 1, 2^20)",
        moved_eps,
        smooth[:, sub],
        atol=rounding,
    )
    # the first step in closed form: w_2 - w_1 = -lr c g_1 / (c |g_1| + eps) (mbar_1 = c g_1, vbar_1 = c^2 g_1^2)
    b1 = order[0]
    g1 = (x[b1].T @ (0.5 - y[b1]) / BATCH).numpy()  # the logistic loss's gradient at w = 0
    first = -LR * cs[:, None] * g1 / (cs[:, None] * np.abs(g1) + EPS)
    ctx.close(
        "eps = 1e-8: first step = -lr c g_1 / (c |g_1| + eps) for every c (shrinks once c |g_1| <~ eps)",
        first,
        smooth[1].numpy(),
        rtol=1e-12,
    )

    # the same on the path users get by default (fused=None: the compiled kernel where one can be built)
    short = ctx.size(20, 100)
    (default,) = train_rows(adaptim.Adam, [(scalar_rows, {"eps": EPS})], x, y, order[:short], lr=LR, fused=None)
    ctx.close(
        "default path (adaptim.Adam(...) as users call it): first step = -lr c g_1 / (c |g_1| + eps) for every c",
        first,
        default[1].numpy(),
        rtol=1e-12,
    )
    ctx.close(
        f"default path: iterates of {short} steps = the foreach path's, for every c",
        smooth[: short + 1],
        default,
        atol=1e-9 * path,
    )
    ctx.note("default path taken", "compiled kernel" if fused_available("cpu") else "foreach (no kernel can be built)")

    dev = (smooth - ref[:, None]).abs().amax((0, 2)).numpy() / path  # largest |w_t(c, eps) - w_t(eps = 0)| / path
    loss = logistic_losses(smooth[-1], x, y).detach().numpy()
    loss_ref = logistic_losses(ref[-1:], x, y).item()
    # first order in eps / c: where c |g| >> eps (and above rounding) the deviation falls like 1/c
    gmin = float(np.abs(g1).min())
    regime = (EPS / (cs * gmin) < 1e-2) & (dev > 1e3 * 1e-16 * steps)
    slope = np.polyfit(np.log(cs[regime]), np.log(dev[regime]), 1)[0]
    ctx.close(
        f"eps's effect on the iterates is first order in eps / c: log-log slope of deviation vs c over "
        f"{int(regime.sum())} c with c |g| >> eps",
        -1.0,
        slope,
        atol=0.05,
    )
    ctx.le(
        "eps = 1e-8, c = 1: largest deviation from the eps = 0 iterates / distance, vs eps / min|g_1| "
        "(eps's relative weight in the smallest first denominator)",
        dev[one],
        EPS / gmin,
    )
    ctx.note("deviation / distance travelled, by c", {f"2^{k}": f"{v:.3g}" for k, v in zip(POWERS, dev)})
    # failure: with c max|x| <= eps / 100 every |c g| is below eps / 100 (|g_i| <= max|x_ij| for the logistic loss):
    # Adam becomes SGD with lr lr c / eps and moves at most steps * lr * c * max|x| / eps per coordinate
    gmax = x.abs().max().item()
    k_fail = max(k for k, c in zip(POWERS, cs) if c * gmax <= EPS / 100)
    i_fail = POWERS.index(k_fail)
    bound = steps * LR * cs[i_fail] * gmax / EPS
    moved = (smooth[-1, i_fail] - smooth[0, i_fail]).abs().max().item()
    ctx.le(f"c = 2^{k_fail} (|c g| <= eps/100): largest |w_T - w_1| <= T lr c max|g| / eps", moved, bound)
    ctx.ge(
        f"c = 2^{k_fail}: deviation from the invariant iterates / distance travelled >= 1 - that bound / distance",
        dev[i_fail],
        1 - bound / path,
    )
    ctx.ge(
        f"c = 2^{k_fail}: final training loss vs the invariant run's (left near ln 2 = 0.693)",
        loss[i_fail],
        loss_ref,
        factor=5,
    )

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.loglog(cs, np.maximum(dev, 1e-17), "o-", label="eps = 1e-8")
    right = cs >= EPS / np.median(np.abs(g1))
    ax1.loglog(cs[right], dev[one] / cs[right], "k:", lw=0.8, label="slope -1 (eps / c)")
    ax1.axvline(EPS / np.median(np.abs(g1)), color="gray", ls="--", lw=0.8, label="c = eps / median|g_1|")
    ax1.set_xlabel("gradient scale c")
    ax1.set_ylabel("max |w_t(c) - w_t(eps = 0)| / distance travelled")
    ax1.legend(fontsize=8)
    ax2.semilogx(cs, loss, "o-", label="eps = 1e-8")
    ax2.axhline(loss_ref, color="k", ls=":", lw=0.8, label="eps = 0 (any c)")
    ax2.set_xlabel("gradient scale c")
    ax2.set_ylabel(f"training loss after {steps} steps")
    ax2.legend(fontsize=8)
    fig.suptitle("adam-scale-invariance (4.1, (47)): Adam on breast-cancer logistic regression, gradients x c")
    return fig


CLAIM = Claim(
    name="adam-scale-invariance",
    section="4.1, (47), 4.1.1",
    statement="Multiplying every gradient by c > 0 (or elementwise by c in R^d) leaves Adam's updates unchanged; "
    "with eps smoothing only approximately (c enters through eps/c), and the invariance breaks once |c g| is "
    "comparable to or below eps.",
    run=run,
)
