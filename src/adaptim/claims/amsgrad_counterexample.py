"""Section 4.2: Reddi et al.'s online problem on [-1, 1], where Adam's regret is linear and AMSGrad's is not."""

from __future__ import annotations

import math

import torch

import adaptim
from adaptim.claims._core import Claim, Context
from adaptim.online import ReddiCounterexample, run_online

C = 3.0  # Reddi et al.'s Theorem 1 needs C > 2
BETA2 = 1 / (1 + C**2)  # the Theorem's beta_2, with beta_1 = 0
LR = 1.0  # alpha of the Theorem's step alpha_t = alpha / sqrt(t)


def _play(T: int, amsgrad: bool):
    adv = ReddiCounterexample(C, T)

    def make(params):
        return adaptim.Adam(params, lr=LR, betas=(0.0, BETA2), eps=1e-8, amsgrad=amsgrad, fused=False, foreach=False)

    # x_1 = 1, as in the Theorem's proof; the learner projects onto V = [-1, 1]
    run = run_online(make, adv, w0=torch.tensor([1.0]), projection=adv.domain, scheduler=adaptim.inverse_sqrt)
    return run, run.regret_curve()


def run(ctx: Context):
    T = ctx.size(450, 6000)
    limit = 2 * (C - 2) / 3  # at x = +1 each 3 rounds cost (C - 2) - (2 - C) more than at u* = -1
    t = torch.arange(1, T + 1, dtype=torch.float64)
    adam, adam_curve = _play(T, amsgrad=False)
    ams, ams_curve = _play(T, amsgrad=True)
    ctx.close("best fixed point in hindsight u*", -1.0, adam.comparator.item(), atol=1e-12)
    adam_avg, ams_avg = adam_curve / t, ams_curve / t

    # Adam: linear regret, the iterate driven to the worst point +1
    tail = slice(T // 2 - 1, T)
    ctx.note("tolerance (Adam)", "R_t/t tends to 2(C-2)/3 from above as the steps alpha/sqrt(t) shrink; 10% slack")
    ctx.ge(f"Adam: min of R_t/t over t in [T/2, T], T = {T}", adam_avg[tail].min(), limit, factor=0.9)
    ctx.close("Adam: last iterate x_{T+1} (Reddi: Adam converges to +1)", 1.0, adam.final.item(), atol=1e-6)

    # AMSGrad: regret O(sqrt(T)) (Reddi et al.'s Theorem 4), so R_T/T -> 0
    ctx.note(
        "tolerance (AMSGrad)",
        "O(sqrt T) regret: R_t/sqrt(t) must not grow from T/4 to T, and R_T/T must fall below a fraction of "
        "Adam's limit that shrinks with T (0.15 at T = 450, 0.05 at T = 6000)",
    )
    q = T // 4
    ctx.le(
        "AMSGrad: R_T/sqrt(T) <= R_{T/4}/sqrt(T/4) (regret grows no faster than sqrt(T))",
        ams_curve[-1] / math.sqrt(T),
        ams_curve[q - 1] / math.sqrt(q),
    )
    ctx.le(f"AMSGrad: R_T/T at T = {T}, against Adam's limit 2(C-2)/3", ams_avg[-1], limit, factor=ctx.size(0.15, 0.05))
    ctx.le("AMSGrad's R_T/T below Adam's", ams_avg[-1], adam_avg[-1])
    ctx.note("R_T/T (Adam, AMSGrad)", [round(adam_avg[-1].item(), 4), round(ams_avg[-1].item(), 4)])
    ctx.note("last iterate (Adam, AMSGrad)", [round(adam.final.item(), 4), round(ams.final.item(), 4)])

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(t, adam_avg, label="Adam")
    ax.plot(t, ams_avg, label="AMSGrad (adaptim.Adam(amsgrad=True))")
    ax.axhline(limit, color="gray", ls="--", lw=1, label="2(C-2)/3 (Adam at x = +1)")
    ax.set_xscale("log")
    ax.set_xlabel("round t")
    ax.set_ylabel("average regret R_t / t")
    ax.set_title(f"amsgrad-counterexample (4.2): C = {C:g}, β1 = 0, β2 = 1/(1+C²), α_t = {LR:g}/√t", fontsize=9)
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="amsgrad-counterexample",
    section="4.2",
    statement="On Reddi et al.'s online problem on [-1, 1] (f_t(x) = C x once every 3 rounds, -x otherwise, C > 2) "
    "with beta_1 = 0, beta_2 = 1/(1+C^2), alpha_t = alpha/sqrt(t), Adam's average regret stays away from 0 (it "
    "converges to the worst point +1), while AMSGrad's running max of vbar makes the step nonincreasing and its "
    "average regret goes to 0.",
    run=run,
)
