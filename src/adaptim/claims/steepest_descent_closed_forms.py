"""Section 7, (67)-(69): the steepest direction under each norm maximizes <G, D> over the unit ball with value
||G||_*, and adaptim.Steepest's trust-region and majorization steps are the closed forms of (69)."""

from __future__ import annotations

import numpy as np
import torch

import adaptim
from adaptim.claims._core import Claim, Context
from adaptim.claims._matrix import np_norm, numerical_max
from adaptim.linalg import NORMS, dual_norm, steepest_direction

F64 = torch.float64


def _check_directions(ctx: Context, rng: np.random.Generator, G0: np.ndarray, maxima0: dict[str, float]) -> None:
    for G, maxima in ((G0, maxima0), (rng.standard_normal((4, 1)), None)):
        shape = G.shape
        for norm in NORMS:
            D = steepest_direction(torch.from_numpy(G), norm).numpy()
            value = float((G * D).sum())
            best = maxima[norm] if maxima else numerical_max(G, norm, rng, ctx.size(2, 10))
            tag = f"{norm}, G {shape[0]}x{shape[1]}"
            ctx.close(f"||D(G)|| = 1 ({tag})", 1.0, np_norm(D, norm), rtol=1e-12)
            ctx.close(f"<G, D(G)> vs the numerical max of <G, D> over the unit ball ({tag})", best, value, rtol=1e-7)
            ctx.close(
                f"<G, D(G)> = dual_norm(G) ({tag})", float(dual_norm(torch.from_numpy(G), norm)), value, rtol=1e-12
            )


def _step(G: np.ndarray, lr: float, norm: str, rule: str) -> np.ndarray:
    W = torch.zeros(G.shape, dtype=F64, requires_grad=True)
    opt = adaptim.Steepest([W], lr=lr, norm=norm, rule=rule)
    W.grad = torch.from_numpy(G.copy())
    opt.step()
    return W.detach().numpy().copy()


def _check_69(ctx: Context, rng: np.random.Generator, G: np.ndarray, maxima: dict[str, float]) -> None:
    lr = 0.1
    U, S, Vt = np.linalg.svd(G, full_matrices=False)
    closed = {
        ("frobenius", "trust_region"): -lr * G / np.linalg.norm(G),
        ("inf", "trust_region"): -lr * np.sign(G),
        ("spectral", "trust_region"): -lr * U @ Vt,
        ("frobenius", "majorization"): -lr * G,
        ("inf", "majorization"): -lr * np.abs(G).sum() * np.sign(G),
        ("spectral", "majorization"): -lr * S.sum() * U @ Vt,
    }
    steps = {}
    for (norm, rule), pred in closed.items():
        steps[norm, rule] = step = _step(G, lr, norm, rule)
        ctx.close(
            f"(69) Steepest({norm}, {rule}) step vs the closed form (max abs error)",
            0.0,
            np.abs(step - pred).max(),
            atol=1e-14,
        )
    for norm in ("frobenius", "inf", "spectral"):
        a, b = steps[norm, "trust_region"].reshape(-1), steps[norm, "majorization"].reshape(-1)
        ctx.close(
            f"TR and MM give the same direction under {norm}: cosine",
            1.0,
            a @ b / np.linalg.norm(a) / np.linalg.norm(b),
            atol=1e-14,
        )
        # (67): the TR step has norm lr and attains -lr max_{||D|| <= 1} <G, D>, the max found numerically
        tr_step = steepest = steps[norm, "trust_region"]
        best = maxima[norm]
        ctx.close(f"(67) ||TR step|| = lr ({norm})", lr, np_norm(tr_step, norm), rtol=1e-12)
        ctx.close(
            f"(67) <G, TR step> = -lr x the numerical max of <G, D> over the unit ball ({norm})",
            -lr * best,
            float((G * steepest).sum()),
            rtol=1e-7,
        )

        # (68): for ||Δ|| = r, <G, Δ> >= -r max <G, D>, so min <G, Δ> + ||Δ||^2 / (2 lr) = -lr (max)^2 / 2
        def h(X, norm=norm):
            return float((G * X).sum()) + np_norm(X, norm) ** 2 / (2 * lr)

        mm = steps[norm, "majorization"]
        ctx.close(
            f"(68) MM objective at the MM step = -lr (numerical max)^2 / 2 ({norm})",
            -lr * best**2 / 2,
            h(mm),
            rtol=1e-7,
        )
        # a convex function has no lower point nearby only at its minimizer: random perturbations at three scales,
        # and along the step itself (a step of the wrong length fails there)
        E = rng.standard_normal((ctx.size(200, 3000), *G.shape))
        E = np.concatenate([E, mm[None], -mm[None]])
        drop = min(h(mm + s * e / np.linalg.norm(e)) - h(mm) for s in (1e-1 * lr, 1e-3 * lr, 1e-5 * lr) for e in E)
        ctx.ge(
            f"(68) min over random perturbations of MM objective(step + E) - objective(step) ({norm})",
            drop,
            0.0,
            atol=1e-14,
        )
    # the vector case: m x 1 gives gradient descent under the spectral (= Euclidean) norm and sign descent under inf
    g = rng.standard_normal(5)
    for norm, pred in (("spectral", -lr * g / np.linalg.norm(g)), ("inf", -lr * np.sign(g))):
        w = torch.zeros(5, dtype=F64, requires_grad=True)
        opt = adaptim.Steepest([w], lr=lr, norm=norm)
        w.grad = torch.from_numpy(g.copy())
        opt.step()
        ctx.close(
            f"vector parameter, {norm}: the step is {'-lr g/||g||_2' if norm == 'spectral' else '-lr sign(g)'}",
            0.0,
            np.abs(w.detach().numpy() - pred).max(),
            atol=1e-15,
        )


def run(ctx: Context):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(ctx.seed)
    G = rng.standard_normal((3, 2))
    maxima = {norm: numerical_max(G, norm, rng, ctx.size(2, 10)) for norm in NORMS}
    _check_directions(ctx, rng, G, maxima)
    _check_69(ctx, rng, G, maxima)
    # the picture for a 2-vector G: each norm's unit ball and its steepest direction
    G = np.array([[0.55], [0.25]])
    fig, ax = plt.subplots(figsize=(4.6, 4.6))
    th = np.linspace(0, 2 * np.pi, 400)
    balls = {
        "frobenius": (np.cos(th), np.sin(th)),
        "inf": ([1, -1, -1, 1, 1], [1, 1, -1, -1, 1]),
        "l1": ([1, 0, -1, 0, 1], [0, 1, 0, -1, 0]),
    }
    for i, (norm, (x, y)) in enumerate(balls.items()):
        D = steepest_direction(torch.from_numpy(G), norm).numpy().reshape(-1)
        ax.plot(
            x,
            y,
            color=f"C{i}",
            lw=1,
            label=f"unit ball of {norm} (= ℓ2)" if norm == "frobenius" else f"unit ball of {norm}",
        )
        ax.annotate("", xy=D, xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=f"C{i}", lw=2))
    ax.annotate("", xy=G.reshape(-1), xytext=(0, 0), arrowprops=dict(arrowstyle="->", color="k", lw=1, ls="--"))
    ax.text(*G.reshape(-1) * 1.05, "G", fontsize=11)
    ax.set_aspect("equal")
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    ax.set_xlabel("coordinate 1")
    ax.set_ylabel("coordinate 2")
    ax.set_title("steepest-descent-closed-forms (7, (69)):\nD(G) = argmax <G, D> over each unit ball")
    ax.legend(fontsize=8, loc="lower left")
    return fig


CLAIM = Claim(
    name="steepest-descent-closed-forms",
    section="7, (67)-(69)",
    statement="Under the Frobenius, elementwise-inf and spectral norms the trust-region step (67) is -eta G/||G||_F, "
    "-eta sign(G), -eta U V^T and the majorization step (68) is -eta G, -eta ||G||_1 sign(G), -eta ||G||_nuc U V^T "
    "(69); the steepest direction attains <G, D> = ||G||_* over the unit ball, and TR and MM share it.",
    run=run,
)
