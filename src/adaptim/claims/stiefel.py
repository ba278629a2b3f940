"""Section 8.2: the Stiefel tangent projection, the retraction Orth (77), the projected step, and manifold Muon
(78)-(79) through the dual of Lemma S.22; iterates stay on the manifold."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from scipy.optimize import minimize

import adaptim
from adaptim.claims._core import Claim, Context
from adaptim.manifolds import Sphere, Stiefel
from adaptim.manifolds.stiefel import manifold_muon_direction


def _random_point(rng: np.random.Generator, D: int, d: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((D, d)))
    return q


def _step(W: np.ndarray, G: np.ndarray, lr: float, **kw) -> np.ndarray:
    p = torch.tensor(W, requires_grad=True)
    p.grad = torch.tensor(G)
    adaptim.StiefelSGD([p], lr=lr, **kw).step()
    return p.detach().numpy()


def _dual_79(W: np.ndarray, G: np.ndarray) -> float:
    """min over symmetric Lambda of ||G + W Lambda||_nuc (79), by Nelder-Mead then Powell on the d(d+1)/2
    entries of Lambda (a convex, nonsmooth objective of a few variables)."""
    d = W.shape[1]
    iu = np.triu_indices(d)

    def f(x):
        L = np.zeros((d, d))
        L[iu] = x
        L = L + L.T - np.diag(np.diag(L))
        return np.linalg.svd(G + W @ L, compute_uv=False).sum()

    S0 = -(W.T @ G + G.T @ W) / 2  # the Frobenius dual solution, a good start
    x = S0[iu]
    nm = {"xatol": 1e-12, "fatol": 1e-14, "maxfev": 20000}
    for method, opts in (("Nelder-Mead", nm), ("Powell", {"xtol": 1e-12, "ftol": 1e-14}), ("Nelder-Mead", nm)):
        x = minimize(f, x, method=method, options=opts).x
    return float(f(x))


def run(ctx: Context):
    rng = np.random.default_rng(0)
    D, d = 6, 3
    W = _random_point(rng, D, d)
    G = rng.standard_normal((D, d))
    V = rng.standard_normal((D, d))
    st = Stiefel()
    tW, tV = torch.tensor(W), torch.tensor(V)

    # the tangent projection is the orthogonal projection onto {Delta : Delta^T W + W^T Delta = 0} (78)
    P = st.project_tangent(tW, tV).numpy()
    A = np.stack([np.ravel(W.T @ E + E.T @ W) for E in np.eye(D * d).reshape(D * d, D, d)], axis=1)
    N = scipy.linalg.null_space(A)  # an orthonormal basis of the tangent space (vec form)
    ctx.close("tangent space dimension Dd - d(d+1)/2", D * d - d * (d + 1) // 2, N.shape[1])
    ctx.close(
        "P_W(V) = the orthogonal projection onto the null space of Delta -> sym(W^T Delta)",
        (N @ (N.T @ V.ravel())).reshape(D, d),
        P,
        atol=1e-13,
    )
    ctx.close("P_W(V) is tangent: ||P^T W + W^T P||_F", 0.0, np.linalg.norm(P.T @ W + W.T @ P), atol=1e-13)

    # (77): Orth(M) = U V^T is the Frobenius-nearest point of the manifold (the polar factor)
    M = W - 0.3 * G
    R = st.retract(torch.tensor(M)).numpy()
    ctx.close(
        "(77) Stiefel.retract(M) = polar factor of M (scipy.linalg.polar)", scipy.linalg.polar(M)[0], R, atol=1e-13
    )
    others = min(np.linalg.norm(_random_point(rng, D, d) - M) for _ in range(ctx.size(300, 3000)))
    ctx.le("(77) ||Orth(M) - M||_F <= ||Q - M||_F for random points Q of the manifold", np.linalg.norm(R - M), others)
    ns = Stiefel("newton_schulz").retract(torch.tensor(M)).numpy()
    ctx.close("(77) Newton-Schulz retraction (quintic, 12 steps) = U V^T", R, ns, atol=1e-10)

    # the projected step W <- Orth(W - eta G)
    ctx.close(
        "StiefelSGD(method='project') = Orth(W - eta G)",
        scipy.linalg.polar(W - 0.2 * G)[0],
        _step(W, G, 0.2),
        atol=1e-13,
    )

    # (78)-(79), Lemma S.22 under the spectral norm: the direction is tangent, of spectral norm 1, and attains
    # the dual value min_{Lambda sym} ||G + W Lambda||_nuc (strong duality)
    step = manifold_muon_direction(st, tW, torch.tensor(G), tol=1e-10, dual_steps=ctx.size(300, 1000))
    Z = step.direction.numpy()
    dual = _dual_79(W, G)
    ctx.close(
        "(78) manifold Muon Z is tangent: ||Z^T W + W^T Z||_F", 0.0, np.linalg.norm(Z.T @ W + W.T @ Z), atol=1e-12
    )
    ctx.close("(78) ||Z||_2 = 1 (the step eta Z has spectral norm eta)", 1.0, np.linalg.norm(Z, 2), rtol=1e-12)
    ctx.le("weak duality: <Z, G> <= min_Lambda ||G + W Lambda||_nuc (79)", float((Z * G).sum()), dual, atol=1e-9)
    ctx.close("Lemma S.22: <Z, G> = min_Lambda ||G + W Lambda||_nuc (scipy)", dual, float((Z * G).sum()), rtol=1e-6)
    # no random feasible step does better
    best = -np.inf
    for _ in range(ctx.size(500, 5000)):
        T = st.project_tangent(tW, torch.tensor(rng.standard_normal((D, d)))).numpy()
        best = max(best, float((T * G).sum()) / np.linalg.norm(T, 2))
    ctx.le("max <T, G> over random tangent T with ||T||_2 = 1 <= <Z, G>", best, float((Z * G).sum()))
    ctx.ge(
        "footnote 16: without the tangency constraint (Muon, U V^T) the maximum ||G||_nuc is larger",
        np.linalg.svd(G, compute_uv=False).sum(),
        float((Z * G).sum()),
    )
    Wm = _step(W, G, 0.2, method="manifold_muon", dual_steps=ctx.size(300, 1000), tol=1e-10)
    ctx.close("StiefelSGD(method='manifold_muon') = Orth(W - eta Z)", scipy.linalg.polar(W - 0.2 * Z)[0], Wm, atol=1e-9)

    # d = 1: the Stiefel manifold is the unit sphere and (78) is (73) in l2
    w1, g1 = _random_point(rng, D, 1), rng.standard_normal((D, 1))
    sph = torch.tensor(w1[:, 0], requires_grad=True)
    sph.grad = torch.tensor(g1[:, 0])
    adaptim.SphereSGD([sph], lr=0.3, method="trust_region", radius=1.0).step()
    ctx.close(
        "d = 1: manifold Muon step = SphereSGD trust-region (73) step",
        sph.detach().numpy(),
        _step(w1, g1, 0.3, method="manifold_muon")[:, 0],
        atol=1e-12,
    )
    ctx.close(
        "d = 1: P_W(g) = the sphere's g_perp (71)",
        Sphere(1.0).project_tangent(torch.tensor(w1[:, 0]), torch.tensor(g1[:, 0])).numpy(),
        st.project_tangent(torch.tensor(w1), torch.tensor(g1)).numpy()[:, 0],
        atol=1e-14,
    )

    # iterates stay on the manifold: minimize the Brockett cost tr(W^T A W N) (its minimum: the smallest
    # eigenvalues of A weighted by N)
    Dn, dn = 10, 4
    A = rng.standard_normal((Dn, Dn))
    A = torch.tensor(A @ A.T / Dn)
    Nw = torch.diag(torch.arange(1.0, dn + 1, dtype=torch.float64))
    lam = np.linalg.eigvalsh(A.numpy())
    fmin = float(np.sort(lam)[:dn] @ np.arange(dn, 0, -1))
    W0 = torch.tensor(_random_point(rng, Dn, dn))
    steps = ctx.size(60, 800)
    curves, dist = {}, {}
    for method, lr in (("project", 0.01), ("manifold_muon", 0.02)):
        p = W0.clone().requires_grad_(True)
        opt = adaptim.StiefelSGD([p], lr=lr, method=method, momentum=0.5, dual_steps=ctx.size(10, 30))
        f, worst = [], 0.0
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.trace(p.T @ A @ p @ Nw)
            loss.backward()
            f.append(float(loss.detach()))
            opt.step()
            worst = max(
                worst, float(torch.linalg.matrix_norm(p.detach().T @ p.detach() - torch.eye(dn, dtype=p.dtype)))
            )
        curves[method], dist[method] = f, worst
        ctx.close(f"{method}: max ||W_t^T W_t - I||_F over {steps} float64 steps", 0.0, worst, atol=1e-12)
        ctx.true(
            f"{method}: the Brockett cost falls toward its minimum",
            f[-1] < f[0] and f[-1] >= fmin - 1e-9,
            predicted=fmin,
            measured=[f[0], f[-1]],
            tolerance="f(W_T) < f(W_1), f >= min",
        )
    ctx.note("Brockett minimum (sum of the smallest eigenvalues of A weighted by N)", fmin)

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, f in curves.items():
        ax.semilogy(np.array(f) - fmin + 1e-16, label=f"StiefelSGD({method!r})")
    ax.set_xlabel("step t")
    ax.set_ylabel(r"tr$(W_t^\top A W_t N)$ - minimum")
    ax.set_title("stiefel: (77)-(79), iterates on St(10, 4)")
    ax.legend()
    return fig


CLAIM = Claim(
    name="stiefel",
    section="8.2, (77)-(79), Lemma S.22",
    statement="P_W(V) = V - W sym(W^T V) is the orthogonal projection onto the tangent space of (78); Orth(M) = U V^T "
    "is the nearest point of the manifold (77); manifold Muon's tangent direction of spectral norm 1 attains the "
    "dual min over symmetric Lambda of ||G + W Lambda||_nuc (79); the iterates stay on the manifold.",
    run=run,
)
