"""Appendix L, (121)-(124) and Lemma S.2: the multiplicative NMF updates are EM and never increase the I-divergence.

Lemma S.2 (the posterior of independent Poisson counts given their sum is multinomial) gives the E-step (121);
the M-step then splits into one rank-1 Poisson fit per component k of Y_k = C * A_k B_k / (AB), whose optimum
is rowsum(Y_k) colsum(Y_k) / sum(Y_k). adaptim.linalg.nmf_step is checked against that closed form, and the
I-divergence is followed over many rounds on random, count and real data (scikit-learn's digits, squared
per-example gradients of a logistic regression on the breast-cancer data).

adaptim reads the box of L.2 with B normalized by the *updated* A (docs/equations.md, "Where adaptim reads the
notes in a particular way"): that is the exact M-step; the box's A_{t-1} is not monotone
(tests/linalg/test_nmf.py::test_box_normalization_by_old_a_is_not_monotone).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import scipy.stats
import torch

from adaptim.claims._core import Claim, Context
from adaptim.linalg import idiv, nmf_step

_F64 = torch.float64


def _datasets(ctx: Context) -> dict[str, torch.Tensor]:
    from sklearn.datasets import load_breast_cancer, load_digits

    gen = torch.Generator().manual_seed(ctx.seed)
    out = {"uniform 30 x 20": torch.rand(30, 20, generator=gen, dtype=_F64)}
    A = torch.rand(40, 3, generator=gen, dtype=_F64)
    B = torch.rand(3, 30, generator=gen, dtype=_F64)
    out["Poisson counts 40 x 30 (many zeros)"] = torch.poisson(1.5 * A @ B, generator=gen)
    rows = ctx.size(300, 1797)
    out[f"digits {rows} x 64"] = torch.tensor(load_digits().data[:rows], dtype=_F64)
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    w = np.zeros(X.shape[1])
    p = 1 / (1 + np.exp(-X @ w))
    out[f"squared logistic gradients {X.shape[0]} x {X.shape[1]} (breast cancer)"] = torch.tensor(
        ((p - y)[:, None] * X) ** 2, dtype=_F64
    )
    return out


def _m_step_closed_form(C: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The exact M-step's product: sum_k rowsum(Y_k) colsum(Y_k) / sum(Y_k), Y_k = C A_k B_k / AB (E-step (121))."""
    AB = A @ B
    total = np.zeros_like(C)
    for k in range(A.shape[1]):
        Y = C * np.outer(A[:, k], B[k]) / AB
        total += np.outer(Y.sum(1), Y.sum(0)) / Y.sum()
    return total


def _elbo(C: np.ndarray, A: np.ndarray, B: np.ndarray, A_hat: np.ndarray, B_hat: np.ndarray) -> float:
    """E_{Z ~ p_{A,B}(.|C)} log p_{A_hat,B_hat}(Z, C) up to terms free of (A_hat, B_hat)."""
    AB = A @ B
    value = 0.0
    for k in range(A.shape[1]):
        Y = C * np.outer(A[:, k], B[k]) / AB
        P = np.outer(A_hat[:, k], B_hat[k])
        value += float(np.sum(Y * np.log(P) - P))
    return value


def run(ctx: Context):
    import matplotlib.pyplot as plt

    # Lemma S.2 exactly: Poisson counts conditioned on their sum are multinomial
    lam = np.array([0.7, 1.3, 2.5])
    worst = 0.0
    for x in range(7):
        for z in itertools.product(range(x + 1), repeat=3):
            if sum(z) != x:
                continue
            cond = np.prod(scipy.stats.poisson.pmf(z, lam)) / scipy.stats.poisson.pmf(x, lam.sum())
            worst = max(worst, abs(cond - scipy.stats.multinomial.pmf(z, x, lam / lam.sum())))
    ctx.close("Lemma S.2: p(z | sum z = x) = Mult(x, lambda / sum lambda), all z with x <= 6", 0.0, worst, atol=1e-14)

    steps = ctx.size(100, 2000)
    ranks = ctx.size((4, 10), (1, 4, 10))
    data = _datasets(ctx)
    gen = torch.Generator().manual_seed(ctx.seed + 1)
    curves = {}
    first = True
    for name, C in data.items():
        m, n = C.shape
        for rank in ranks:
            scale = math.sqrt(float(C.mean()) / rank)
            A = torch.rand(m, rank, generator=gen, dtype=_F64) * scale + 1e-3 * scale
            B = torch.rand(rank, n, generator=gen, dtype=_F64) * scale + 1e-3 * scale
            if first and rank == 4:  # one round is the exact EM step
                A1, B1 = nmf_step(C, A, B)
                Cn, An, Bn = C.numpy(), A.numpy(), B.numpy()
                ctx.close(
                    f"one nmf_step = exact M-step of the Lemma S.2 posterior ({name}, rank {rank})",
                    _m_step_closed_form(Cn, An, Bn),
                    (A1 @ B1).numpy(),
                    rtol=1e-10,
                )
                q1 = _elbo(Cn, An, Bn, A1.numpy(), B1.numpy())
                rng = np.random.default_rng(ctx.seed)
                perturbed = max(
                    _elbo(
                        Cn,
                        An,
                        Bn,
                        A1.numpy() * np.exp(0.05 * rng.normal(size=A.shape)),
                        B1.numpy() * np.exp(0.05 * rng.normal(size=B.shape)),
                    )
                    for _ in range(20)
                )
                ctx.ge(
                    "ELBO at nmf_step's output - best of 20 perturbed factors (M-step maximizes it)",
                    q1 - perturbed,
                    0.0,
                )
                ctx.ge("ELBO gain of one round, Q(A', B') - Q(A, B)", q1 - _elbo(Cn, An, Bn, An, Bn), 0.0)
                first = False
            div = [float(idiv(C, A @ B))]
            for _ in range(steps):
                A, B = nmf_step(C, A, B)
                div.append(float(idiv(C, A @ B)))
            div = np.array(div)
            rise = float(np.max(np.diff(div) / div[:-1]))
            curves[(name, rank)] = div
            ctx.le(
                f"largest relative rise of IDiv(C, AB) per round over {steps} rounds: {name}, rank {rank}",
                rise,
                0.0,
                atol=1e-12,
            )
    drops = [c[-1] / c[0] for c in curves.values()]
    ctx.le("IDiv after the rounds / at the start (largest over data and ranks): EM makes progress", max(drops), 0.9)
    ctx.note("tolerance", "1e-12 relative per round: float64 rounding of the divergence's sum")

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for (name, rank), c in curves.items():
        ax.plot(
            np.arange(len(c)),
            c / c[0],
            color=f"C{list(data).index(name)}",
            ls=["-", "--", ":"][(1, 4, 10).index(rank)],
            lw=1,
            label=name if rank == ranks[0] else None,
        )
    ax.set_xscale("symlog", linthresh=1)
    ax.set_yscale("log")
    ax.set_xlabel("EM round (nmf_step)")
    ax.set_ylabel("IDiv(C, AB) / IDiv at start")
    ax.set_title("nmf-em-monotone ((124), Lemma S.2); solid, dashed, dotted: r = 1, 4, 10")
    ax.legend(fontsize=7)
    return fig


CLAIM = Claim(
    name="nmf-em-monotone",
    section="L.1, (121)-(124), Lemma S.2",
    statement="Independent Poisson counts given their sum are multinomial (Lemma S.2), which makes the "
    "multiplicative updates (123)-(124) an EM round for the Poisson model, so they never increase IDiv(C, AB).",
    run=run,
)
