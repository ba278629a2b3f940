"""Appendix F: regularized update descent (Botev et al., 2017). SGD on the velocity v of
J~(theta, v) = J(theta + v) + gamma/2 v^2, then theta <- theta + v, is (97), a momentum method with mu_t = 1 - eta_t
gamma; replacing J'(theta_t + v_t) by its first-order approximation gives Polyak's heavy ball, by its regularized
second-order one Nesterov's momentum; neither is exact, and the minimizer of J~ is (argmin J, 0)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize, minimize_scalar

import adaptim
from adaptim.claims._core import Claim, Context


def J(x):
    """A smooth, strongly convex, non-quadratic objective: log cosh(x - 1) + 0.05 x^2 (torch or numpy)."""
    lib = torch if isinstance(x, torch.Tensor) else np
    return lib.log(lib.cosh(x - 1)) + 0.05 * x**2


def dJ(x):
    return np.tanh(x - 1) + 0.1 * x


def d2J(x):
    return 1 / np.cosh(x - 1) ** 2 + 0.1


def _rud(theta: float, v: float, etas, gamma: float) -> tuple[list[float], list[float]]:
    """(97) through the library: adaptim.SGD on v for the loss J~(theta_t, v) (theta held), then theta += v."""
    p = torch.tensor([v], dtype=torch.float64, requires_grad=True)
    opt = adaptim.SGD([p], lr=etas[0], foreach=True)
    thetas, vs = [theta], [v]
    for eta in etas:
        opt.param_groups[0]["lr"] = eta
        opt.zero_grad()
        (J(theta + p) + gamma / 2 * p**2).sum().backward()
        opt.step()
        theta = theta + float(p.detach())
        thetas.append(theta)
        vs.append(float(p.detach()))
    return thetas, vs


def _momentum(theta: float, V: float, steps: int, eta: float, mu: float, nesterov: bool) -> list[float]:
    """adaptim.SGD with heavy-ball (or look-ahead Nesterov (28)-(31)) momentum on J from the state (theta, V):
    a first step on the linear loss -V/eta * w from theta - V leaves w = theta and a velocity V; then J."""
    p = torch.tensor([theta - V], dtype=torch.float64, requires_grad=True)
    opt = adaptim.SGD([p], lr=eta, momentum=mu, nesterov=nesterov, lookahead=nesterov, foreach=True)
    loss = {"f": lambda w: (-V / eta) * w.sum()}

    def closure():
        opt.zero_grad()
        out = loss["f"](p)
        out.backward()
        return out

    opt.step(closure)
    loss["f"] = lambda w: J(w).sum()
    thetas = [float(p.detach())]
    for _ in range(steps):
        opt.step(closure)
        thetas.append(float(p.detach()))
    return thetas


def run(ctx: Context):
    eta, gamma = 0.1, 2.0
    mu = 1 - eta * gamma
    theta_star = float(minimize_scalar(J, bounds=(-10, 10), method="bounded", options={"xatol": 1e-12}).x)

    # the minimizer of J~ is (argmin J, 0)
    res = minimize(lambda z: J(z[0] + z[1]) + gamma / 2 * z[1] ** 2, [3.0, 1.0], method="BFGS", options={"gtol": 1e-12})
    ctx.close("argmin J~(theta, v): v* = 0 (BFGS)", 0.0, res.x[1], atol=1e-7)
    ctx.close("argmin J~(theta, v): theta* = argmin J", theta_star, res.x[0], atol=1e-7)

    # (97) via the library against its closed form, with constant eta and with a schedule (mu_t = 1 - eta_t gamma)
    T = ctx.size(200, 1000)
    for name, etas in (
        ("constant eta", [eta] * T),
        ("eta_t = 0.2 / sqrt(t)", [0.2 / math.sqrt(t + 1) for t in range(T)]),
    ):
        th, vs = _rud(3.0, 0.0, etas, gamma)
        pth, pv = [3.0], [0.0]
        for e in etas:
            pv.append((1 - e * gamma) * pv[-1] - e * dJ(pth[-1] + pv[-1]))
            pth.append(pth[-1] + pv[-1])
        err = max(np.max(np.abs(np.array(th) - pth)), np.max(np.abs(np.array(vs) - pv)))
        ctx.close(
            f"(97), {name}: SGD on v then theta += v = (1 - eta_t gamma) v_t - eta_t J'(theta_t + v_t)",
            0.0,
            err,
            atol=1e-12,
        )
    th, vs = _rud(3.0, 0.0, [eta] * T, gamma)
    ctx.close(f"(97) converges: theta_T = argmin J after {T} steps", theta_star, th[-1], atol=1e-8)
    ctx.close(f"(97) converges: v_T = 0 after {T} steps", 0.0, vs[-1], atol=1e-8)

    # Polyak and Nesterov as written in Appendix F are adaptim.SGD's heavy ball and look-ahead Nesterov
    for nesterov in (False, True):
        lib = _momentum(3.0, 0.0, T, eta, mu, nesterov)
        pth, pv = [3.0], [0.0]
        for _ in range(T):
            x = pth[-1] + (mu * pv[-1] if nesterov else 0.0)
            pv.append(mu * pv[-1] - eta * dJ(x))
            pth.append(pth[-1] + pv[-1])
        what = "Nesterov v' = mu v - eta J'(theta + mu v)" if nesterov else "Polyak v' = mu v - eta J'(theta)"
        ctx.close(
            f"{what}: adaptim.SGD trajectory, max error over {T} steps",
            0.0,
            float(np.max(np.abs(np.array(lib) - pth))),
            atol=1e-12,
        )

    # one step from a common state (theta, V): Polyak differs from (97) by eta |J'(theta + V) - J'(theta)|
    # ~ eta J'' |V|, Nesterov by eta |J'(theta + V) - J'(theta + mu V)| ~ (1 - mu) eta J'' |V| = eta gamma (that)
    theta0 = 0.4
    sizes = np.logspace(-1, -5, ctx.size(5, 9))
    eP, eN = [], []
    for s in sizes:
        rud = _rud(theta0, s, [eta], gamma)[0][1]
        eP.append(abs(rud - _momentum(theta0, s, 1, eta, mu, False)[1]))
        eN.append(abs(rud - _momentum(theta0, s, 1, eta, mu, True)[1]))
    eP, eN = np.array(eP), np.array(eN)
    ctx.close(
        "Polyak's one-step gap / (eta |V|) -> J''(theta) as V -> 0 (first-order approximation)",
        d2J(theta0),
        eP[-1] / (eta * sizes[-1]),
        rtol=1e-3,
    )
    ctx.close("Nesterov's gap / Polyak's gap -> 1 - mu = eta gamma as V -> 0", 1 - mu, eN[-1] / eP[-1], rtol=1e-3)
    ctx.note(
        "tolerance",
        "the one-step ratios are first-order limits; at |V| = 1e-5 the O(|V|) remainder is below 1e-3 relative",
    )
    ctx.ge("not exact: Nesterov's one-step gap at |V| = 0.1 is nonzero", eN[0], 1e-6)

    # updating the velocity does not guarantee that J(theta + v) decreases
    th, vs = _rud(3.0, 0.0, [0.5] * 60, 0.2)
    vals = [float(J(a + b)) for a, b in zip(th, vs)]
    ups = int(np.sum(np.diff(vals) > 1e-12))
    ctx.true(
        "eta = 0.5, gamma = 0.2: some steps of (97) increase J(theta_t + v_t)",
        ups > 0,
        measured=ups,
        tolerance="count > 0",
    )

    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    steps = ctx.size(80, 120)
    Jstar = J(theta_star)
    rud_th = _rud(3.0, 0.0, [eta] * steps, gamma)[0]
    ax.semilogy([J(x) - Jstar + 1e-16 for x in rud_th], label="(97) regularized update descent")
    ax.semilogy(
        [J(x) - Jstar + 1e-16 for x in _momentum(3.0, 0.0, steps, eta, mu, False)], "--", label="Polyak (adaptim.SGD)"
    )
    ax.semilogy(
        [J(x) - Jstar + 1e-16 for x in _momentum(3.0, 0.0, steps, eta, mu, True)], ":", label="Nesterov (look-ahead)"
    )
    ax.set_xlabel("step t")
    ax.set_ylabel(r"$J(\theta_t) - \min J$ (+1e-16)")
    ax.set_title(rf"regularized-update-descent ($\eta$ = {eta}, $\mu$ = {mu:g})")
    ax.legend(fontsize=8)
    ax2.loglog(sizes, eP, "o-", label="Polyak vs (97)")
    ax2.loglog(sizes, eN, "s-", label="Nesterov vs (97)")
    ax2.loglog(sizes, (1 - mu) * eta * d2J(theta0) * sizes, "k--", lw=1, label=r"$(1-\mu)\,\eta J''(\theta)|V|$")
    ax2.set_xlabel(r"velocity $|V|$")
    ax2.set_ylabel(r"one-step gap $|\theta'_{(97)} - \theta'|$")
    ax2.set_title("App. F: one step from a common state")
    ax2.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="regularized-update-descent",
    section="F, (97)",
    statement="SGD on the velocity of J(theta + v) + gamma/2 v^2 followed by theta <- theta + v is (97), momentum "
    "with mu_t = 1 - eta_t gamma, converging to (argmin J, 0); approximating J'(theta + v) to first order gives "
    "Polyak's heavy ball and to (regularized) second order Nesterov's momentum, neither exactly.",
    run=run,
)
