"""Section 4.4.1, (48)-(49): the stationary weight size under AdamW balances the decay against the update size.

w_{t+1} = (1 - lambda) w_t - eta o_t with E[o_t] = 0, E[o_t^2] = sigma^2 has the stationary size
|w_inf| = eta sigma / sqrt(lambda (2 - lambda)) ~ eta sigma / sqrt(2 lambda) (48); with the decay coupled to the lr,
lambda = eta wd, |w_inf| ~ sqrt(eta / (2 wd)) sigma (49). Under decoupled decay, eta -> c eta with lambda -> c^2 lambda
keeps |w_inf|. Measured with adaptim.AdamW on pure-noise gradients (beta1 = 0, so o_t is a martingale difference:
E[o_t w_t] = 0 and the variance recursion behind (48) holds exactly, with sigma^2 = E[o_t^2] ~ 1, footnote 5).
"""

from __future__ import annotations

import math

import numpy as np
import torch

import adaptim
from adaptim.claims._core import Claim, Context

_F64 = torch.float64
BETA2 = 0.99

# name -> (eta, weight_decay, independent): independent = Figure 1's lambda_t = s_t wd (the notes' decoupled
# decay of (48)); otherwise torch's AdamW, lambda_t = eta wd (the coupled decay of (49))
GROUPS = {
    "base": (0.01, 0.01, True),
    "c=2": (0.02, 0.04, True),
    "c=4": (0.04, 0.16, True),
    "lambda -> c lambda, c=4": (0.04, 0.04, True),
    "lambda=0.2": (0.01, 0.2, True),
    "coupled": (0.01, 2.0, False),
    "coupled c=2": (0.02, 4.0, False),
}


def _decay(eta: float, wd: float, independent: bool) -> float:
    return wd if independent else eta * wd


def run(ctx: Context):
    import matplotlib.pyplot as plt

    per = ctx.size(600, 4000)
    burn, keep = ctx.size(300, 600), ctx.size(300, 3000)
    batches = 20
    gen = torch.Generator().manual_seed(ctx.seed)
    names = list(GROUPS)
    params = [torch.zeros(per, dtype=_F64) for _ in names]
    groups = [
        {"params": [p], "lr": eta, "weight_decay": wd, "independent_weight_decay": ind}
        for p, (eta, wd, ind) in zip(params, GROUPS.values())
    ]
    opt = adaptim.AdamW(groups, betas=(0.0, BETA2), eps=0.0, fused=False)
    ws = np.empty((keep + 1, len(names), per))
    trace = np.empty((burn + keep, len(names)))  # RMS over coordinates, for the figure
    for t in range(burn + keep):
        g = torch.randn(len(names), per, generator=gen, dtype=_F64)
        for k, p in enumerate(params):
            p.grad = g[k]
        opt.step()
        cur = np.stack([p.numpy() for p in params])
        trace[t] = np.sqrt((cur**2).mean(axis=1))
        if t >= burn - 1:
            ws[t - burn + 1] = cur
    parts = np.array_split(np.arange(per), batches)

    def stats(k: int) -> tuple[float, float, float, float]:
        """(RMS of w, its standard error, E o^2, its standard error) of group k, by batches of coordinates."""
        eta, wd, ind = GROUPS[names[k]]
        lam = _decay(eta, wd, ind)
        w = ws[:, k, :]
        o = ((1 - lam) * w[:-1] - w[1:]) / eta  # the normalized updates o_t of (48)
        size_b = np.array([math.sqrt((w[1:, p] ** 2).mean()) for p in parts])
        o2_b = np.array([(o[:, p] ** 2).mean() for p in parts])
        se = math.sqrt(batches)
        return size_b.mean(), size_b.std(ddof=1) / se, o2_b.mean(), o2_b.std(ddof=1) / se

    st = {n: stats(k) for k, n in enumerate(names)}
    deficit = max((1 - _decay(*g)) ** (2 * burn) for g in GROUPS.values())  # of E w^2, started at w = 0
    ctx.note(
        "tolerance",
        f"5 standard errors over {batches} batches of independent coordinates, plus the start-up deficit "
        f"(1 - lambda)^(2 x {burn}) <= {deficit:.1e} of E w^2 (w_0 = 0); sigma^2 = E o^2 is within 3 (1 - beta2) "
        "of 1 (Lemma S.16's O(1 - beta2), second order in the fluctuation of vbar)",
    )
    size, size_se, o2, o2_se = st["base"]
    ctx.close("E[o_t^2] of momentumless Adam (footnote 5: sigma^2 = 1)", 1.0, o2, atol=3 * (1 - BETA2) + 5 * o2_se)

    for n in names:
        eta, wd, ind = GROUPS[n]
        lam = _decay(eta, wd, ind)
        size, size_se, o2, _ = st[n]
        pred = eta * math.sqrt(o2) / math.sqrt(lam * (2 - lam))
        kind = "decoupled, lambda" if ind else "coupled, lambda = eta wd"
        ctx.close(
            f"(48) |w_inf| = eta sigma / sqrt(lambda (2 - lambda)), {n}: eta={eta:g}, {kind}={lam:g}",
            pred,
            size,
            rtol=deficit,
            atol=5 * size_se,
        )
    # the approximation of (48) is visible at lambda = 0.2: the exact form is needed there
    eta, lam, _ = GROUPS["lambda=0.2"]
    size, size_se, o2, _ = st["lambda=0.2"]
    approx = eta * math.sqrt(o2) / math.sqrt(2 * lam)
    ctx.close(
        "(48) at lambda=0.2: measured / (eta sigma / sqrt(2 lambda)) = sqrt(2 / (2 - lambda)), not 1",
        math.sqrt(2 / (2 - lam)),
        size / approx,
        atol=5 * size_se / approx,
    )
    # (49): coupled decay
    for n in ("coupled", "coupled c=2"):
        eta, wd, _ = GROUPS[n]
        size, size_se, o2, _ = st[n]
        ctx.close(
            f"(49) |w_inf| ~ sqrt(eta / (2 wd)) sigma, {n}: eta={eta:g}, wd={wd:g} (lambda_t = eta wd = {eta * wd:g})",
            math.sqrt(eta / (2 * wd) * o2),
            size,
            rtol=eta * wd / 4 + deficit,
            atol=5 * size_se,
        )

    def ratio(a: str, b: str) -> tuple[float, float]:
        (sa, ea, _, _), (sb, eb, _, _) = st[a], st[b]
        return sa / sb, sa / sb * math.hypot(ea / sa, eb / sb)

    for n, c in (("c=2", 2), ("c=4", 4)):
        r, se = ratio(n, "base")
        lam = GROUPS["base"][1]
        slack = math.sqrt((2 - lam) / (2 - c * c * lam)) - 1  # (48)'s exact factor, which the rule drops
        ctx.close(
            f"lambda -> c^2 lambda rule (decoupled): |w_inf| at eta x {c}, lambda x {c * c} over base",
            1.0,
            r,
            rtol=slack,
            atol=5 * se,
        )
    r, se = ratio("lambda -> c lambda, c=4", "base")
    lam = GROUPS["base"][1]
    ctx.close(
        "lambda -> c lambda instead (c=4): |w_inf| grows by sqrt(c) = 2",
        2 * math.sqrt((2 - lam) / (2 - 4 * lam)),
        r,
        atol=5 * se,
    )
    r, se = ratio("coupled c=2", "coupled")
    ctx.close(
        "coupled decay (49): eta -> 2 eta with wd -> 2 wd keeps |w_inf|",
        1.0,
        r,
        rtol=math.sqrt((2 - 0.02) / (2 - 0.08)) - 1,
        atol=5 * se,
    )

    fig, ax = plt.subplots(figsize=(6, 3.8))
    steps = np.arange(1, burn + keep + 1)
    for k, n in enumerate(names):
        eta, wd, ind = GROUPS[n]
        lam = _decay(eta, wd, ind)
        (line,) = ax.plot(steps, trace[:, k], lw=1, label=f"{n} (eta={eta:g}, lambda_t={lam:g})")
        ax.axhline(eta * math.sqrt(st[n][2]) / math.sqrt(lam * (2 - lam)), color=line.get_color(), ls="--", lw=0.8)
    ax.set_xlabel("step t")
    ax.set_ylabel("RMS of w_t over coordinates")
    ax.set_title("weight-decay-stationary-size (4.4.1, (48)-(49)); dashed: (48)")
    ax.set_ylim(0, 0.2)
    ax.legend(fontsize=6, ncol=2, loc="upper right")
    return fig


CLAIM = Claim(
    name="weight-decay-stationary-size",
    section="4.4.1, (48)-(49)",
    statement="Under AdamW with random gradients the weights settle at |w_inf| = eta sigma / sqrt(lambda (2 - lambda)) "
    "~ eta sigma / sqrt(2 lambda) (48), sqrt(eta / (2 lambda)) sigma with coupled decay (49); so eta -> c eta needs "
    "lambda -> c^2 lambda under decoupled decay to keep the size.",
    run=run,
)
