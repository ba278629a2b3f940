"""Section 6.2-6.2.1, Lemma 6.1, (63)-(64): when rearrange(I_emp) = E[G ⊗ G] has rank 1, one power-iteration
step from the identity recovers I_emp = E[GG^T] ⊗ E[G^T G] / tr(E[GG^T]), and IdealizedShampoo is Newton's step
with H = I_emp^{1/2}."""

from __future__ import annotations

import numpy as np
import torch

import adaptim
from adaptim.claims._core import Claim, Context
from adaptim.claims._matrix import sym_power
from adaptim.linalg import kron, nearest_kronecker_product, power_iteration, rearrange

F64 = torch.float64


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    X = rng.standard_normal((d, d))
    return X @ X.T / d + 0.2 * np.eye(d)


def _kronecker_distribution(rng, m, n, U, V) -> list[np.ndarray]:
    """The mn equally likely values G = sqrt(mn) U^1/2 E_ij V^1/2: E[vec(G) vec(G)^T] = U ⊗ V exactly."""
    Uh, Vh = sym_power(U, 0.5), sym_power(V, 0.5)
    out = []
    for i in range(m):
        for j in range(n):
            E = np.zeros((m, n))
            E[i, j] = np.sqrt(m * n)
            out.append(Uh @ E @ Vh)
    return out


def _moments(Gs, weights=None):
    w = np.full(len(Gs), 1 / len(Gs)) if weights is None else np.asarray(weights)
    I_emp = sum(wi * np.outer(G.reshape(-1), G.reshape(-1)) for wi, G in zip(w, Gs))
    EGGt = sum(wi * G @ G.T for wi, G in zip(w, Gs))
    EGtG = sum(wi * G.T @ G for wi, G in zip(w, Gs))
    return I_emp, EGGt, EGtG


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1), b.reshape(-1)
    return float(abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _check_lemma(ctx: Context, rng: np.random.Generator) -> None:
    m, n = 3, 4
    sm, sn = (m, m), (n, n)
    # rank-1 case: an exact Kronecker second moment
    Gs = _kronecker_distribution(rng, m, n, _spd(rng, m), _spd(rng, n))
    I_emp, EGGt, EGtG = _moments(Gs)
    It = rearrange(_t(I_emp), sm, sn).numpy()  # m^2 x n^2
    EGG = np.mean([np.kron(G, G) for G in Gs], axis=0)
    ctx.close("rearrange(I_emp) (102) equals E[G ⊗ G] (max abs error)", 0.0, np.abs(It - EGG).max(), atol=1e-13)
    s = np.linalg.svd(It, compute_uv=False)
    ctx.close(
        "sigma_2 / sigma_1 of rearrange(I_emp) for G = sqrt(mn) U^1/2 E_ij V^1/2 (rank 1)", 0.0, s[1] / s[0], atol=1e-12
    )
    rhs = kron(_t(EGGt), _t(EGtG)).numpy() / np.trace(EGGt)
    ctx.close(
        "(64): ||I_emp - E[GG^T] ⊗ E[G^T G] / tr E[GG^T]||_F / ||I_emp||_F",
        0.0,
        np.linalg.norm(I_emp - rhs) / np.linalg.norm(I_emp),
        atol=1e-13,
    )
    # one power-iteration step from the identity: l_1 = Ĩ vec(I_n), r_1 = Ĩ^T vec(I_m)
    l1, r1 = It @ np.eye(n).reshape(-1), It.T @ np.eye(m).reshape(-1)
    ctx.close(
        "l_1 = Ĩ vec(I_n) equals vec(E[GG^T]) (max abs error)", 0.0, np.abs(l1 - EGGt.reshape(-1)).max(), atol=1e-13
    )
    ctx.close("r_1 = Ĩ^T vec(I_m) equals vec(E[G^T G])", 0.0, np.abs(r1 - EGtG.reshape(-1)).max(), atol=1e-13)
    A, B = (x.numpy() for x in nearest_kronecker_product(_t(I_emp), sm, sn))
    ctx.close(
        "rank 1: cos(l_1, u_1) with u_1 from nearest_kronecker_product (Corollary G.2)", 1.0, _cos(l1, A), atol=1e-13
    )
    ctx.close("rank 1: cos(r_1, v_1)", 1.0, _cos(r1, B), atol=1e-13)

    # rank-2 case: a mixture of two Kronecker distributions; the identities of l_1, r_1 still hold, (64) fails
    Gs2 = Gs[: m * n] + _kronecker_distribution(rng, m, n, _spd(rng, m), _spd(rng, n))
    I2, EGGt2, EGtG2 = _moments(Gs2)
    It2 = rearrange(_t(I2), sm, sn).numpy()
    s2 = np.linalg.svd(It2, compute_uv=False)
    ctx.ge("mixture of two Kronecker laws: sigma_2 / sigma_1 of rearrange(I_emp) (rank 2)", s2[1] / s2[0], 1e-3)
    l1b = It2 @ np.eye(n).reshape(-1)
    ctx.close(
        "mixture: l_1 = vec(E[GG^T]) still (any distribution)", 0.0, np.abs(l1b - EGGt2.reshape(-1)).max(), atol=1e-13
    )
    rhs2 = kron(_t(EGGt2), _t(EGtG2)).numpy() / np.trace(EGGt2)
    gap = np.linalg.norm(I2 - rhs2) / np.linalg.norm(I2)
    ctx.ge("mixture: (64) fails, ||I_emp - E[GG^T] ⊗ E[G^T G] / tr||_F / ||I_emp||_F", gap, 1e-3)
    A2, _ = nearest_kronecker_product(_t(I2), sm, sn)
    c1 = _cos(l1b, A2.numpy())
    # more power iterations l_{2k} = (Ĩ Ĩ^T)^k l_0 tend to u_1 (Q.1); the library's power_iteration
    q0 = _t(np.eye(m).reshape(-1).astype(float))
    _, q = power_iteration(_t(It2 @ It2.T), num_iters=ctx.size(30, 60), q0=q0)
    ck = _cos(q.numpy(), A2.numpy())
    ctx.ge("mixture: one step is not exact, 1 - cos(l_1, u_1) > 0", 1.0 - c1, 1e-8)
    ctx.close("mixture: power_iteration(Ĩ Ĩ^T, q0 = vec(I_m)) converges to u_1: cos", 1.0, ck, atol=1e-10)
    ctx.note("mixture: cos(l_1, u_1) after one step", c1)


def _run_idealized(Gs: list[np.ndarray], lr: float, beta2: float) -> list[np.ndarray]:
    W = torch.zeros(Gs[0].shape, dtype=F64, requires_grad=True)
    opt = adaptim.IdealizedShampoo([W], lr=lr, beta2=beta2, eps=1e-30)
    steps = []
    for G in Gs:
        before = W.detach().clone()
        W.grad = _t(G).clone()
        opt.step()
        steps.append((W.detach() - before).numpy())
    return steps


def _newton_step(Gs, t: int, lr: float, beta2: float) -> tuple[np.ndarray, np.ndarray]:
    """-lr I_emp^{-1/2} g_t (pseudo-inverse on the range) with I_emp the bias-corrected EMA of g g^T, mn x mn."""
    w = np.array([(1 - beta2) * beta2 ** (t - s) for s in range(1, t + 1)]) / (1 - beta2**t)
    I_emp, _, _ = _moments(Gs[:t], w)
    g = Gs[t - 1].reshape(-1)
    return -lr * sym_power(I_emp, -0.5, floor=1e-12) @ g, I_emp


def _check_idealized(ctx: Context, rng: np.random.Generator) -> None:
    lr, beta2, T = 0.1, 0.9, ctx.size(10, 20)
    # (a) the notes' example: a linear logistic model, G = (sigmoid(w^T x) - y) x in R^{m x 1}
    m = 5
    W = torch.zeros(m, 1, dtype=F64, requires_grad=True)
    X = rng.standard_normal((T, m)) * np.array([2.0, 1.0, 0.5, 0.3, 0.1])
    y = (rng.random(T) < 0.5).astype(float)
    opt = adaptim.IdealizedShampoo([W], lr=lr, beta2=beta2, eps=1e-30)
    Gs, worst = [], 0.0
    for t in range(1, T + 1):
        opt.zero_grad()
        logit = (_t(X[t - 1]) @ W).squeeze()
        torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.tensor(y[t - 1], dtype=F64)).backward()
        Gs.append(W.grad.numpy().copy())
        before = W.detach().clone()
        opt.step()
        if t >= m:  # I_emp (m x m) has full rank from step m on
            pred, _ = _newton_step(Gs, t, lr, beta2)
            worst = max(worst, np.abs((W.detach() - before).numpy().reshape(-1) - pred).max() / np.abs(pred).max())
    ctx.close(
        f"IdealizedShampoo on logistic-regression gradients (m x 1) vs -lr I_emp^-1/2 g, steps {m}..{T}",
        0.0,
        worst,
        atol=1e-9,
    )
    # (b) matrix gradients G_t = a_t b^T with a fixed b: E[G ⊗ G] = E[a ⊗ a](b ⊗ b)^T has rank 1 for any weights
    m, n = 3, 4
    b = rng.standard_normal(n)
    Gs = [np.outer(rng.standard_normal(m), b) for _ in range(T)]
    steps = _run_idealized(Gs, lr, beta2)
    pred, I_emp = _newton_step(Gs, T, lr, beta2)
    s = np.linalg.svd(rearrange(_t(I_emp), (m, m), (n, n)).numpy(), compute_uv=False)
    ctx.close(
        f"G_t = a_t b^T, EMA I_emp after {T} steps: sigma_2 / sigma_1 of rearrange(I_emp)", 0.0, s[1] / s[0], atol=1e-12
    )
    ctx.close(
        "G_t = a_t b^T: IdealizedShampoo's step vs Newton's -lr I_emp^-1/2 g (pseudo-inverse), rel. error",
        0.0,
        np.abs(steps[-1].reshape(-1) - pred).max() / np.abs(pred).max(),
        atol=1e-6,
    )
    # (c) generic gradients: rank-1 fails, and the idealized step is not the Newton step
    Gs = [rng.standard_normal((m, n)) for _ in range(ctx.size(20, 40))]
    steps = _run_idealized(Gs, lr, beta2)
    pred, _ = _newton_step(Gs, len(Gs), lr, beta2)
    rel = np.linalg.norm(steps[-1].reshape(-1) - pred) / np.linalg.norm(pred)
    ctx.ge(
        "generic N(0,1) gradients (rank(Ĩ) > 1): IdealizedShampoo differs from Newton's step, rel. distance", rel, 1e-2
    )
    ctx.note("generic gradients: relative distance of IdealizedShampoo's step from -lr I_emp^-1/2 g", rel)


def run(ctx: Context) -> None:
    rng = np.random.default_rng(ctx.seed)
    _check_lemma(ctx, rng)
    _check_idealized(ctx, rng)


CLAIM = Claim(
    name="shampoo-exact-decomposition",
    section="6.2.1, Lemma 6.1, (63)-(64)",
    statement="If rearrange(I_emp) = E[G ⊗ G] has rank 1, then I_emp = E[GG^T] ⊗ E[G^T G] / tr(E[GG^T]) (64): one "
    "power-iteration step from l_0 = vec(I_m), r_0 = vec(I_n) gives l_1 = vec(E[GG^T]), r_1 = vec(E[G^T G]) "
    "exactly, and the IdealizedShampooIteration is Newton's step with H = I_emp^{1/2}.",
    run=run,
)
