"""Section 6.1, (58)-(60): Adam's preconditioner as the square root of the diagonal empirical Fisher.

* (58): E_{yhat ~ p}[g_{x, yhat}] = 0, so the Fisher is the covariance of the model-sampled gradients.
* 6.1: I(w) -> I_emp(w) at w = w* when the labels come from the model (here a logistic model with known w*);
  elsewhere the two differ.
* (60): Adam's v (adaptim.Adam, b1 = 0), fed per-example gradients drawn at a fixed w, estimates
  diag(E[g^2]) = diag(I_emp); its update is -eta I_emp,diag^{-1/2} g, as Shampoo's diagonal preconditioner with
  exponent -1/2 (adaptim.Shampoo on a vector longer than max_preconditioner_dim) gives.
* 6.1's inverse gradient scaling: when gradients have a large mean and small covariance, I_emp ~ g g^T and the
  preconditioner without the square root (Shampoo's diagonal with exponent_override=-1) moves each weight by
  about 1/g_j, the largest gradients the least; the square root (Adam) makes the step size independent of the
  gradient's scale, and SGD's grows with it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

import adaptim
from adaptim.claims._adaptive import breast_cancer
from adaptim.claims._core import Claim, Context

_F64 = torch.float64


def _logistic_grads(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example gradients (N, d) of the logistic loss log(1 + e^z) - y z, z = w^T x, by autograd."""
    W = w.detach().expand(len(y), -1).clone().requires_grad_(True)  # one copy of w per example
    z = (X * W).sum(1)
    (J,) = torch.autograd.grad((torch.nn.functional.softplus(z) - y * z).sum(), W)
    return J


def _fisher_parts(ctx: Context) -> None:
    gen = torch.Generator().manual_seed(ctx.seed)
    # (58): for every x, the model-sampled gradients have mean zero, so I = Cov
    X, y = breast_cancer()
    w = 0.2 * torch.randn(X.shape[1], generator=gen, dtype=_F64)
    p = torch.sigmoid(X @ w)
    g1, g0 = _logistic_grads(w, X, torch.ones_like(y)), _logistic_grads(w, X, torch.zeros_like(y))
    mean = p[:, None] * g1 + (1 - p[:, None]) * g0  # E_{yhat ~ p(.|x)} g_{x, yhat}, per x
    ctx.close(
        "(58): E_{yhat ~ f_w(x)}[g_{x,yhat}] = 0 for every x (breast cancer, logistic)",
        torch.zeros_like(mean),
        mean,
        atol=1e-14,
    )

    # I(w*) = I_emp(w*) when the labels are drawn from the model at w*
    N = ctx.size(20000, 400000)
    Xs = torch.cat([torch.randn(N, 3, generator=gen, dtype=_F64), torch.ones(N, 1, dtype=_F64)], dim=1)
    w_star = torch.tensor([1.0, -2.0, 0.5, 0.3], dtype=_F64)
    ys = torch.bernoulli(torch.sigmoid(Xs @ w_star), generator=gen)
    w_away = torch.tensor([-1.0, 1.0, 0.0, 0.0], dtype=_F64)
    for label, w_at in (("w = w*", w_star), ("w = (-1, 1, 0, 0)", w_away)):
        G = _logistic_grads(w_at, Xs, ys)
        q = torch.sigmoid(Xs @ w_at)
        terms = G[:, :, None] * G[:, None, :] - (q * (1 - q))[:, None, None] * Xs[:, :, None] * Xs[:, None, :]
        z = (terms.mean(0) / (terms.std(0) / math.sqrt(N))).abs().nan_to_num(0.0).max()  # I_emp - I, z-scores
        if label == "w = w*":
            ctx.le(
                f"6.1: I_emp(w*) = I(w*) for labels drawn from the model (largest |z| of I_emp - I, N = {N})", z, 5.0
            )
        else:
            ctx.ge(f"6.1: away from w* ({label}) I_emp and I differ (largest |z| of I_emp - I)", z, 20.0)


def _adam_estimates_fisher(ctx: Context) -> None:
    X, y = breast_cancer()
    gen = torch.Generator().manual_seed(ctx.seed + 1)
    w0 = 0.2 * torch.randn(X.shape[1], generator=gen, dtype=_F64)
    G = _logistic_grads(w0, X, y)  # the population of per-example gradients at the fixed w0
    diag_emp = (G**2).mean(0)  # diag I_emp(w0) of (60)
    chains, steps, eta, b2 = ctx.size(2000, 20000), 20, 1e-3, 0.99
    W = torch.zeros(chains, X.shape[1], dtype=_F64)
    opt = adaptim.Adam([W], lr=eta, betas=(0.0, b2), eps=0.0, fused=False)
    for _ in range(steps):
        g = G[torch.randint(len(G), (chains,), generator=gen)]
        before = W.clone()
        W.grad = g
        opt.step()
    P2 = (eta * g / (before - W)) ** 2  # the squared preconditioner read from the last update: vbar_t
    z = ((P2.mean(0) - diag_emp) / (P2.std(0) / math.sqrt(chains))).abs().max()
    ctx.le(
        f"(60): Adam's update -eta g / sqrt(v): E[v] = diag I_emp(w) (largest |z| over {X.shape[1]} weights, "
        f"{chains} runs)",
        z,
        5.0,
    )

    # Shampoo's diagonal preconditioner with exponent -1/2 is the same step (60)
    wa = torch.zeros(X.shape[1], dtype=_F64)
    ws = torch.zeros_like(wa)
    adam = adaptim.Adam([wa], lr=eta, betas=(0.0, b2), eps=0.0, fused=False)
    shampoo = adaptim.Shampoo(
        [ws], lr=eta, beta2=b2, eps=1e-300, max_preconditioner_dim=1, grafting=None, precondition_frequency=1
    )
    for _ in range(steps):
        g = G[torch.randint(len(G), (1,), generator=gen)][0]
        wa.grad, ws.grad = g.clone(), g.clone()
        adam.step()
        shampoo.step()
    ctx.close(
        "(60): Adam(b1 = 0) = Shampoo's diagonal I_emp,diag^{-1/2} preconditioner, 20 steps",
        ws,
        wa,
        rtol=1e-12,
        atol=1e-18,
    )


def run(ctx: Context):
    import matplotlib.pyplot as plt

    _fisher_parts(ctx)
    _adam_estimates_fisher(ctx)

    # inverse gradient scaling: large mean, small covariance
    gen = torch.Generator().manual_seed(ctx.seed + 2)
    d, steps, eta, b2 = 9, 10, 1e-3, 0.99
    mu = torch.logspace(-2, 2, d, dtype=_F64) * torch.tensor([1.0, -1.0] * 4 + [1.0], dtype=_F64)
    params = {k: torch.zeros(d, dtype=_F64) for k in ("exponent -1", "exponent -1/2 (Adam)", "SGD")}
    opts = [
        adaptim.Shampoo(
            [params["exponent -1"]],
            lr=eta,
            beta2=b2,
            eps=1e-300,
            max_preconditioner_dim=1,
            exponent_override=-1.0,
            grafting=None,
            precondition_frequency=1,
        ),
        adaptim.Adam([params["exponent -1/2 (Adam)"]], lr=eta, betas=(0.0, b2), eps=0.0, fused=False),
        adaptim.SGD([params["SGD"]], lr=eta, fused=False),
    ]
    samples = []
    for _ in range(steps):
        g = mu * (1 + 0.01 * torch.randn(d, generator=gen, dtype=_F64))
        samples.append(g)
        before = {k: p.clone() for k, p in params.items()}
        for p in params.values():
            p.grad = g.clone()
        for opt in opts:
            opt.step()
    S = torch.stack(samples)
    emp = S.T @ S / steps
    gbar = S.mean(0)
    ctx.le(
        "I_emp ~ g g^T when the covariance is small: ||I_emp - g g^T|| / ||I_emp||",
        (emp - torch.outer(gbar, gbar)).norm() / emp.norm(),
        1e-3,
    )
    logmu = np.log(mu.abs().numpy())
    slopes = {}
    for (name, p), pred in zip(params.items(), (-1.0, 0.0, 1.0)):
        step = (p - before[name]).abs().numpy()
        slopes[name] = (step, np.polyfit(logmu, np.log(step), 1)[0])
        ctx.close(f"slope of log|step| against log|g| over 4 decades: {name}", pred, slopes[name][1], atol=0.01)
    step = slopes["exponent -1"][0]
    ctx.true(
        "without the square root the largest gradient gets the smallest step (6.1, Kunstner et al.)",
        int(np.argmin(step)) == int(np.argmax(np.abs(mu.numpy()))),
        measured=f"smallest step at weight {int(np.argmin(step))}, largest |g| at {int(np.argmax(np.abs(mu.numpy())))}",
    )
    ctx.note(
        "tolerance",
        "slopes: 0.01 (gradients carry 1% noise); z-scores: 5 standard errors of a mean over independent draws",
    )

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for (name, (step, slope)), marker in zip(slopes.items(), "os^"):
        ax.loglog(mu.abs().numpy(), step, marker, label=f"{name}: slope {slope:.3f}")
    ax.set_xlabel("|mean gradient| of the weight")
    ax.set_ylabel("|step| of the weight")
    ax.set_title("hessian-view (6.1): inverse gradient scaling")
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="hessian-view",
    section="6.1, (58)-(60)",
    statement="Adam's sqrt(v) estimates the square root of the diagonal empirical Fisher (60); without the square "
    "root, gradients with a large mean and small covariance give I_emp ~ g g^T and the inverse gradient scaling "
    "where the weights with the largest gradients move least (6.1).",
    run=run,
)
