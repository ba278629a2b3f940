"""Appendix D, Lemma D.1: mirror descent with the negative entropy on the simplex is exponentiated gradient (91), the
minimizer of (90); the same argument gives the KL-regularized policy update."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

import adaptim
from adaptim.claims._core import Claim, Context
from adaptim.mirror import Entropy, Simplex, exponentiated_gradient, mirror_descent_step


def _kl(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(x * np.log(x / y)))


def _on_simplex(obj, w0: np.ndarray, extra=()) -> np.ndarray:
    """A minimizer of ``obj`` over the probability simplex (SLSQP, entries kept >= 1e-15)."""
    d = w0.size
    cons = [{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(d)}, *extra]
    res = minimize(
        obj,
        np.full(d, 1.0 / d),
        method="SLSQP",
        bounds=[(1e-15, 1.0)] * d,
        constraints=cons,
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    return res.x


def _optimizer_step(cls, w: np.ndarray, g: np.ndarray, lr: float, **kw) -> np.ndarray:
    p = torch.tensor(w, requires_grad=True)
    p.grad = torch.tensor(g)
    cls([p], lr=lr, **kw).step()
    return p.detach().numpy()


def run(ctx: Context):
    rng = np.random.default_rng(0)
    d = 6
    w = rng.dirichlet(np.ones(d))
    g = rng.standard_normal(d)
    tw, tg = torch.tensor(w), torch.tensor(g)

    for eta in (0.1, 1.0, 4.0):
        closed = w * np.exp(-eta * g) / np.sum(w * np.exp(-eta * g))  # (91)
        eg = _optimizer_step(adaptim.ExponentiatedGradient, w, g, eta)
        ctx.close(f"eta = {eta}: ExponentiatedGradient step = (91)", closed, eg, atol=1e-15)
        md = _optimizer_step(adaptim.MirrorDescent, w, g, eta, mirror_map="entropy")
        ctx.close(f"eta = {eta}: MirrorDescent(mirror_map='entropy') = (91)", closed, md, atol=1e-15)
        literal = mirror_descent_step(Entropy(), tw, tg, eta, Simplex()).numpy()  # (2) then the KL projection (3)
        ctx.close(f"eta = {eta}: (2)-(3) literally (grad psi*, then KL projection) = (91)", closed, literal, atol=1e-15)
        # (90) solved numerically: g^T w + KL(w, w_t) / eta over the simplex
        obj = lambda x, eta=eta: g @ x + _kl(x, w) / eta
        num = _on_simplex(obj, w)
        ctx.close(f"eta = {eta}: (91) = argmin of (90) by SLSQP", num, eg, atol=1e-6)
        ctx.le(f"eta = {eta}: objective (90) at the library's step <= at SLSQP's", obj(eg), obj(num), atol=1e-14)

    # the KL-regularized policy update: argmax_pi E_pi[r] - KL(pi, pi_t) / eta is pi_t e^{eta r} normalized
    pi = rng.dirichlet(np.ones(d))
    reward = rng.standard_normal(d)
    policy = {}
    for eta in (0.5, 1.0, 2.0):
        lib = _optimizer_step(adaptim.ExponentiatedGradient, pi, reward, eta, maximize=True)
        num = _on_simplex(lambda x, eta=eta: -(reward @ x) + _kl(x, pi) / eta, pi)
        policy[eta] = (lib, num)
        ctx.close(
            f"policy update, eta = {eta}: ExponentiatedGradient(maximize=True) = argmax by SLSQP", num, lib, atol=1e-6
        )
        ctx.close(
            f"policy update, eta = {eta}: = pi_t e^(eta r) / Z",
            pi * np.exp(eta * reward) / np.sum(pi * np.exp(eta * reward)),
            lib,
            atol=1e-15,
        )
        # the KL-constrained problem with C = KL(pi_{t+1}, pi_t) has the same solution (eta: its multiplier)
        C = _kl(lib, pi)
        con = {"type": "ineq", "fun": lambda x, C=C: C - _kl(np.maximum(x, 1e-300), pi)}
        num_c = _on_simplex(lambda x: -(reward @ x), pi, extra=[con])
        ctx.close(
            f"policy update, eta = {eta}: = argmax E_pi[r] s.t. KL(pi, pi_t) <= {C:.3g} (SLSQP)", num_c, lib, atol=1e-5
        )
    as_printed = pi * np.exp(reward) / np.sum(pi * np.exp(reward))
    gap = float(np.abs(policy[2.0][1] - as_printed).max())
    ctx.ge("eta = 2: the maximizer differs from the printed pi_t e^r / Z (the printed form is eta = 1)", gap, 1e-3)
    ctx.note(
        "reading",
        "the notes print pi_{t+1}(y) ∝ pi_t(y) e^{r(y)}; with the 1/eta_t of the objective it is "
        "pi_t(y) e^{eta_t r(y)} (equal for eta_t = 1), which is what (91) with g = -r gives",
    )

    # over T steps of linear losses, w_{T+1} ∝ w_1 exp(-eta sum_t g_t): EG is "follow the regularized leader"
    T, eta = ctx.size(50, 500), 0.05
    gs = rng.standard_normal((T, d))
    p = torch.tensor(w, requires_grad=True)
    opt = adaptim.ExponentiatedGradient([p], lr=eta)
    for t in range(T):
        p.grad = torch.tensor(gs[t])
        opt.step()
    cum = w * np.exp(-eta * gs.sum(0))
    ctx.close(f"{T} steps: w_(T+1) = w_1 exp(-eta sum g_t) / Z", cum / cum.sum(), p.detach().numpy(), atol=1e-14)
    one = exponentiated_gradient(tw, torch.tensor(gs.sum(0)), eta).numpy()
    ctx.close(f"{T} steps = one step with the summed gradient", one, p.detach().numpy(), atol=1e-14)

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    x = np.arange(d)
    ax.bar(x - 0.3, pi, 0.2, label=r"$\pi_t$", color="gray")
    for k, (eta, (lib, num)) in enumerate(policy.items()):
        ax.bar(x - 0.1 + 0.2 * k, lib, 0.2, label=rf"$\pi_{{t+1}}$, $\eta$ = {eta}")
        ax.plot(x - 0.1 + 0.2 * k, num, "k.", ms=4, label="SLSQP" if k == 0 else None)
    ax.set_xlabel("action y")
    ax.set_ylabel("probability")
    ax.set_title("exponentiated-gradient: the KL-regularized policy update (App. D)")
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="exponentiated-gradient",
    section="D, Lemma D.1, (90)-(91)",
    statement="Mirror descent (1) with the negative entropy on the simplex is exponentiated gradient (91), the "
    "minimizer of (90); likewise argmax_pi E_pi[r] - KL(pi, pi_t)/eta is pi_t e^{eta r} normalized (the notes print "
    "the eta = 1 case), which also solves the KL-constrained problem.",
    run=run,
)
