"""Appendix H, Lemma H.1, (113)-(114), (59) and footnote 11: Gauss-Newton = Fisher for the cross-entropy loss.

On the iris data (softmax, linear and a small tanh network) and the breast-cancer data (logistic), with the data
set as the population: the Gauss-Newton term of (113), E[J^T (diag p - p p^T) J] with the loss Hessian taken by
autograd, equals the Fisher E_{x, yhat ~ p}[g g^T] (114) computed from per-label gradients; the full Hessian
equals it for linear models and differs for the network (footnote 20). The empirical Fisher is Cov + g g^T (59),
and for batches drawn with replacement E[g_B g_B^T] = I_emp / |B| + (1 - 1/|B|) g g^T (footnote 11), checked by
enumerating every batch.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch.autograd.functional import hessian, jacobian

from adaptim.claims._core import Claim, Context

_F64 = torch.float64


def _data(name: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    from sklearn.datasets import load_breast_cancer, load_iris

    if name == "iris":
        X, y = load_iris(return_X_y=True)
        K = 3
    else:
        X, y = load_breast_cancer(return_X_y=True)
        X = X[:, :6]
        K = 2
    X = (X - X.mean(0)) / X.std(0)
    X = np.hstack([X, np.ones((len(X), 1))])
    return torch.tensor(X, dtype=_F64), torch.tensor(y), K


def _models(ctx: Context):
    """(label, X, y, K, logits(w, X), w): the softmax and logistic models of the claim."""
    gen = torch.Generator().manual_seed(ctx.seed)
    X, y, K = _data("iris")
    p = X.shape[1]
    out = [
        (
            "softmax regression, iris",
            X,
            y,
            K,
            lambda w, X: X @ w.view(K, p).T,
            0.5 * torch.randn(K * p, generator=gen, dtype=_F64),
        )
    ]
    H = 4

    def mlp(w, X):
        U, V = w[: H * p].view(H, p), w[H * p :].view(K, H)
        return torch.tanh(X @ U.T) @ V.T

    out.append(("tanh network 5-4-3, iris", X, y, K, mlp, 0.7 * torch.randn(H * p + K * H, generator=gen, dtype=_F64)))
    Xb, yb, _ = _data("breast cancer")
    pb = Xb.shape[1]

    def logistic(w, X):  # binary logistic regression as logits (0, w^T x): sigma(w^T x) = softmax(0, w^T x)_1
        z = X @ w
        return torch.stack([torch.zeros_like(z), z], dim=1)

    out.append(
        ("logistic regression, breast cancer", Xb, yb, 2, logistic, 0.3 * torch.randn(pb, generator=gen, dtype=_F64))
    )
    return out


def _ce(Z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy -log p_z(y) = logsumexp(z) - z_y (Appendix H)."""
    return torch.logsumexp(Z, dim=1) - Z.gather(1, y.view(-1, 1)).squeeze(1)


def run(ctx: Context):
    rel = [(label, _check_model(ctx, label, X, y, K, f, w)) for label, X, y, K, f, w in _models(ctx)]
    ctx.note("||H - GN|| / ||GN||", dict(rel))


def _check_model(ctx: Context, label: str, X: torch.Tensor, y: torch.Tensor, K: int, f, w: torch.Tensor) -> float:
    """The checks of one model; returns ||H - GN|| / ||GN||."""
    N, d = X.shape[0], w.numel()
    Z = f(w, X).detach()
    P = torch.softmax(Z, dim=1)
    J = jacobian(lambda w_: f(w_, X), w, vectorize=True)  # (N, K, d)
    # the loss Hessian in z, by autograd: block (i, i) of the Hessian of sum_i L(z_i, y_i)
    HZ = hessian(lambda Z_: _ce(Z_, y).sum(), Z, vectorize=True)  # (N, K, N, K)
    HZ = HZ[torch.arange(N), :, torch.arange(N), :]  # (N, K, K)
    gn = torch.einsum("nka,nkl,nlb->ab", J, HZ, J) / N  # E[J^T H_z J], the GN term of (113)
    # Fisher: every label yhat, weighted by the model's p(yhat | x) (114)
    G_all = jacobian(
        lambda w_: torch.stack([_ce(f(w_, X), torch.full((N,), k)) for k in range(K)], dim=1), w, vectorize=True
    )
    fisher = torch.einsum("nk,nka,nkb->ab", P, G_all, G_all) / N
    scale = float(fisher.norm())
    ctx.close(f"Lemma H.1: Gauss-Newton = Fisher, {label} (d = {d})", fisher, gn, atol=1e-12 * scale)
    full = hessian(lambda w_: _ce(f(w_, X), y).mean(), w, vectorize=True)
    gap = float((full - gn).norm()) / scale
    if "network" in label:
        ctx.ge(f"footnote 20: the Hessian differs from GN for the network, ||H - GN|| / ||GN||, {label}", gap, 1e-3)
    else:
        ctx.close(f"(113): the Hessian is GN for a linear model, ||H - GN|| / ||GN||, {label}", 0.0, gap, atol=1e-12)
    # (59): empirical Fisher with the true labels = Cov + g g^T
    Gy = G_all[torch.arange(N), y]  # (N, d) per-example gradients at the true labels
    gbar = Gy.mean(0)
    emp = Gy.T @ Gy / N
    cov = (Gy - gbar).T @ (Gy - gbar) / N
    ctx.close(f"(59): I_emp = Cov + g g^T, {label}", emp, cov + torch.outer(gbar, gbar), atol=1e-13 * float(emp.norm()))
    if label.startswith("softmax"):
        # footnote 11 by enumeration: every batch of |B| = 2 from the N examples, and |B| = 3 from the first 40
        for size, M in ((2, N), (3, 40)):
            Gm = Gy[:M]
            gm = Gm.mean(0)
            em = Gm.T @ Gm / M
            idx = torch.tensor(list(itertools.product(range(M), repeat=size)))
            gB = Gm[idx].mean(1)  # (M^size, d): the batch gradients
            batched = gB.T @ gB / len(gB)
            pred = em / size + (1 - 1 / size) * torch.outer(gm, gm)
            ctx.close(
                f"footnote 11: E[g_B g_B^T] = I_emp/|B| + (1 - 1/|B|) g g^T, all {len(gB)} batches of |B| = {size}",
                pred,
                batched,
                atol=1e-13 * float(pred.norm()),
            )
    return gap


CLAIM = Claim(
    name="gauss-newton-fisher",
    section="H, Lemma H.1, (59), footnote 11",
    statement="For the cross-entropy loss the Gauss-Newton term of the Hessian equals the Fisher matrix (Lemma "
    "H.1), the empirical Fisher is Cov + g g^T (59), and with batch gradients E[g_B g_B^T] = I_emp/|B| + "
    "(1 - 1/|B|) g g^T (footnote 11).",
    run=run,
)
