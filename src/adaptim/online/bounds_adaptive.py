"""The regret bounds of AdaGrad (Section 3) and Shampoo (Section 5), evaluated on a recorded online run.

Each function takes an :class:`~adaptim.online.OnlineRun` (its played iterates w_1..w_T, its gradients
g_1..g_T and its comparator u) and the method's hyperparameters, and returns the bound as a Python float. The
distances are measured on the run against ``u`` (default: the run's best fixed point in hindsight):

    D_1 = ||w_1 - u||_2,   D = max_t ||w_t - u||_2,   delta_i = max_t |w_{t,i} - u_i|,   delta_{1,i} = |w_{1,i} - u_i|,
    S_t = sum_{l<=t} ||g_l||^2,   S_{t,i} = sum_{l<=t} g_{l,i}^2,   O_t = sum_{l<=t} g_l g_l^T.

The notes set the learning rate from the unknown D (eta_t = D / sqrt(S_t) in (33), eta = D in (43),
eta = D / sqrt(2r) for Shampoo). With ``lr=None`` these functions return the notes' bound with that choice;
with a given ``lr`` (the value the optimizer ran with) they return the same derivation's bound for that lr,
which is what bounds the regret of a run whose lr differs from its measured D: e.g. (34) becomes
(D^2 / (2 lr) + lr) sqrt(S_T), equal to (3/2) D sqrt(S_T) at lr = D. ``eps`` is the optimizer's damping
(adaptim's AdaGrad / AdaGradNorm add it to the root, FullMatrixAdaGrad and Shampoo to the eigenvalues); with
eps > 0 the bound is that of the damped preconditioner, which the optimizer actually used.

All arithmetic is in float64 numpy; an empty run (T = 0) has bound 0. Numbers (``lr``, ``eps``, ``rank``) may
be Python, numpy or one-entry torch scalars, not bools; non-finite numbers and a non-finite ``u`` raise
``ValueError`` naming the argument.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adaptim.online import _checks

__all__ = [
    "adagrad_norm_oracle_bound",
    "adagrad_norm_bound",
    "adagrad_diagonal_bound",
    "full_matrix_adagrad_bound",
    "shampoo_bound",
]


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)


def _run_arrays(run: Any, u: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(G (T, d), W (T, d), u (d,)) as float64 arrays; ``u=None`` takes ``run.comparator``."""
    grads = _np(run.grads)
    grads = grads.reshape(grads.shape[0], -1)
    iterates = run.iterates
    if iterates is None:
        raise ValueError("the run kept no iterates (record_iterates=False); the bounds need w_1..w_T")
    iterates = _np(iterates).reshape(grads.shape[0], -1)
    if u is None:
        u = _np(run.comparator).reshape(-1)
    else:
        u = _checks.finite_tensor(u, "u").numpy().reshape(-1)
    if u.shape[0] != grads.shape[1] or iterates.shape != grads.shape:
        raise ValueError(
            f"shapes disagree: grads {grads.shape}, iterates {iterates.shape}, comparator {u.shape} "
            "(each round's gradient and iterate must have the comparator's d entries)"
        )
    return grads, iterates, u


def _check_lr(lr: Any, d: int | None = None) -> np.ndarray | float:
    if (hasattr(lr, "ndim") and lr.ndim == 0) or not hasattr(lr, "__len__"):
        return _checks.positive(lr, "lr")
    if str(getattr(lr, "dtype", "")) in ("bool", "torch.bool"):
        raise ValueError(f"lr must hold numbers, got {lr!r}")
    try:
        arr = _np(lr)
    except (TypeError, ValueError) as e:
        raise ValueError(f"lr must be a number or an array of numbers: {e}") from None
    if arr.ndim > (0 if d is None else 1) or (arr.ndim == 1 and arr.shape[0] != d):
        raise ValueError(f"lr must be a positive float{'' if d is None else f' or a ({d},) array'}, got {lr!r}")
    if not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
        raise ValueError(f"lr must be finite and > 0, got {lr!r}")
    return float(arr) if arr.ndim == 0 else arr


def _check_eps(eps: float) -> float:
    v = _checks.number(eps, "eps")
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")
    return v


def _max_dist(w: np.ndarray, u: np.ndarray) -> float:
    return float(np.max(np.linalg.norm(w - u, axis=1))) if w.shape[0] else 0.0


def _psd_root(a: np.ndarray, power: float) -> np.ndarray:
    """(a)^power of a symmetric PSD matrix; with a negative power, the pseudo-inverse's (zero eigenvalues stay 0)."""
    evals, evecs = np.linalg.eigh((a + a.T) / 2)
    evals = np.clip(evals, 0.0, None)
    if power < 0:
        floor = max(evals[-1], 0.0) * a.shape[0] * np.finfo(np.float64).eps if evals.size else 0.0
        keep = evals > floor
        scaled = np.zeros_like(evals)
        scaled[keep] = evals[keep] ** power
    else:
        scaled = evals**power
    return (evecs * scaled) @ evecs.T


def _trace_power(a: np.ndarray, power: float) -> float:
    return float(np.sum(np.clip(np.linalg.eigvalsh((a + a.T) / 2), 0.0, None) ** power))


def adagrad_norm_oracle_bound(run: Any, *, u: Any = None) -> float:
    """The oracle bound (32): D_1 sqrt(sum_t ||g_t||_2^2), D_1 = ||w_1 - u||_2.

    It bounds the regret of SGD with the constant learning rate eta* = D_1 / sqrt(S_T) chosen in hindsight
    (the minimizer of (22)'s first bound), the benchmark that AdaGrad-Norm (33) matches up to 1.5 (34).

    Args:
        run: an :class:`~adaptim.online.OnlineRun` with iterates (T rounds, d entries).
        u: the comparator, (d,) array-like; default ``run.comparator`` (the best fixed point in hindsight).

    Returns:
        The bound, a float >= 0 (0 for T = 0).

    Raises:
        ValueError: the run kept no iterates, or shapes disagree.
    """
    g, w, u = _run_arrays(run, u)
    if g.shape[0] == 0:
        return 0.0
    return float(np.linalg.norm(w[0] - u) * np.sqrt(np.sum(g * g)))


def adagrad_norm_bound(
    run: Any, lr: float | None = None, *, u: Any = None, eps: float = 0.0, tight: bool = False
) -> float:
    """AdaGrad-Norm's regret bound (34) for eta_t = lr / (sqrt(S_t) + eps) of (33) (:class:`adaptim.AdaGradNorm`).

    - ``lr=None``: the notes' (34) with lr = D: (3/2) D sqrt(S_T).
    - ``lr`` given: the same derivation for that lr, D^2 (sqrt(S_T) + eps) / (2 lr) + lr sqrt(S_T) (the first
      bound of (34), D^2 / (2 eta_T) + (1/2) sum_t eta_t ||g_t||^2, with Fact 2.1's sum <= 2 sqrt(S_T)).
    - ``tight=True``: the first bound of (34) itself, D^2 / (2 eta_T) + (1/2) sum_t eta_t ||g_t||^2, from the
      run's gradients (rounds with S_t = 0 contribute 0: the optimizer does not move then).

    Args:
        run: an :class:`~adaptim.online.OnlineRun` with iterates.
        lr: the optimizer's lr (D of (33)), > 0, or None for lr = D measured on the run.
        u: the comparator (d,); default ``run.comparator``.
        eps: the optimizer's eps (added to the root), >= 0.
        tight: return the bound before Fact 2.1.

    Returns:
        The bound, a float >= 0 (0 for T = 0 or all-zero gradients).

    Raises:
        ValueError: lr <= 0 or not finite, eps < 0, no iterates, shapes disagree.
    """
    g, w, u = _run_arrays(run, u)
    eps = _check_eps(eps)
    D = _max_dist(w, u)
    lr = D if lr is None else _check_lr(lr)
    s = np.cumsum(np.sum(g * g, axis=1))
    if g.shape[0] == 0 or s[-1] == 0 or lr == 0:  # lr = D = 0: w_t = u throughout, zero regret
        return 0.0
    first = D**2 * (np.sqrt(s[-1]) + eps) / (2 * lr)
    if tight:
        seen = s > 0
        eta = lr / (np.sqrt(s[seen]) + eps)
        return float(first + 0.5 * np.sum(eta * np.sum(g[seen] ** 2, axis=1)))
    return float(first + lr * np.sqrt(s[-1]))


def adagrad_diagonal_bound(
    run: Any,
    lr: Any = None,
    *,
    u: Any = None,
    oracle: bool = False,
    eps: float = 0.0,
    tight: bool = False,
) -> float:
    """Diagonal AdaGrad's regret bounds: the hindsight-optimal diagonal (38) and the per-step preconditioner (39).

    - ``oracle=True``: (38), sum_i |delta_{1,i}| sqrt(S_{T,i}): the bound (20) with the best fixed diagonal
      preconditioner (37) (no lr; by Hölder never above (32)).
    - ``lr=None``: (39), (3/2) sum_i delta_i sqrt(S_{T,i}): per-coordinate learning rates lr_i = delta_i.
    - ``lr`` given (a float for :class:`adaptim.AdaGrad`'s shared lr, or one per coordinate, shape (d,)): the
      same per-coordinate derivation for those rates, sum_i [delta_i^2 (sqrt(S_{T,i}) + eps) / (2 lr_i)
      + lr_i sqrt(S_{T,i})]; with one lr = D (>= every delta_i) it is at most 3.1.1's first bound
      (3 D / 2) sum_i sqrt(S_{T,i}).
    - ``tight=True`` (with lr): the per-coordinate bound before Fact 2.1, sum_i [delta_i^2 / (2 eta_{T,i})
      + (1/2) sum_t eta_{t,i} g_{t,i}^2] with eta_{t,i} = lr_i / (sqrt(S_{t,i}) + eps) (unseen coordinates: 0).

    The per-coordinate argument ((39): the regret is at most the linearized regret, which splits over
    coordinates) holds without projection or with a coordinate-wise (box) projection; a Euclidean projection
    onto a ball is not AdaGrad's A_t-norm projection.

    Args:
        run: an :class:`~adaptim.online.OnlineRun` with iterates (d entries).
        lr: None, a float > 0, or a (d,) array of positive per-coordinate rates.
        u: the comparator (d,); default ``run.comparator``.
        oracle: return (38) (``lr``, ``eps`` and ``tight`` are then ignored).
        eps: the optimizer's eps (added to the root), >= 0.
        tight: with ``lr``, the bound before Fact 2.1.

    Returns:
        The bound, a float >= 0.

    Raises:
        ValueError: a non-positive lr or one of the wrong shape, eps < 0, tight without lr, no iterates,
            shapes disagree.
    """
    g, w, u = _run_arrays(run, u)
    eps = _check_eps(eps)
    if g.shape[0] == 0:
        return 0.0
    beta = np.sqrt(np.sum(g * g, axis=0))
    if oracle:
        return float(np.sum(np.abs(w[0] - u) * beta))
    delta = np.max(np.abs(w - u), axis=0)
    if lr is None:
        if tight:
            raise ValueError("tight=True needs the optimizer's lr")
        return float(1.5 * np.sum(delta * beta))
    lr = _check_lr(lr, g.shape[1]) * np.ones(g.shape[1])
    first = delta**2 * (beta + eps) / (2 * lr)
    if not tight:
        return float(np.sum(first + lr * beta))
    s = np.cumsum(g * g, axis=0)
    den = np.sqrt(s) + eps
    ratio = np.divide(g * g, den, out=np.zeros_like(den), where=den > 0)  # 0/0 := 0, as the optimizer
    return float(np.sum(first) + 0.5 * np.sum(lr * ratio.sum(axis=0)))


def full_matrix_adagrad_bound(
    run: Any, lr: float | None = None, *, u: Any = None, kind: str = "per_step", eps: float = 0.0
) -> float:
    """Full-matrix AdaGrad's regret bounds (41)-(43) (Section 3.2, :class:`adaptim.FullMatrixAdaGrad`).

    ``kind``:

    - ``"oracle"`` (41): D tr(O_T^{1/2}), the bound (18) with the fixed A = O_T^{1/2} and eta = D.
    - ``"diagonal"`` (42): D sum_i sqrt(S_{T,i}), (18) with its diagonal counterpart A_ii = sqrt(S_{T,i}).
      By Lemma S.1, (41) <= (42), with equality iff O_T is diagonal.
    - ``"per_step"`` (43): A_t = (O_t + eps I)^{1/2} and eta_t = lr: with ``lr=None`` (lr = D) the notes'
      (3/2) D tr(O_T^{1/2}); with a given lr, D^2 tr(A_T) / (2 lr) + lr (tr(A_T) - d sqrt(eps)) (Fact 2.1 on
      the damped sums; eps = 0 gives (D^2 / (2 lr) + lr) tr(O_T^{1/2})).
    - ``"tight"``: (18) itself for that preconditioner, D^2 tr(A_T) / (2 lr) + (lr/2) sum_t g_t^T A_t^{-1} g_t
      (pseudo-inverse when eps = 0: g_t lies in the range of O_t); ``lr=None`` means lr = D.

    Args:
        run: an :class:`~adaptim.online.OnlineRun` with iterates (d entries; O(T d^3) time for ``"tight"``).
        lr: the optimizer's lr (> 0), or None for lr = D (ignored by ``"oracle"`` and ``"diagonal"``).
        u: the comparator (d,); default ``run.comparator``.
        kind: ``"oracle"``, ``"diagonal"``, ``"per_step"`` or ``"tight"``.
        eps: the optimizer's eigenvalue damping, >= 0.

    Returns:
        The bound, a float >= 0.

    Raises:
        ValueError: an unknown kind, lr <= 0, eps < 0, no iterates, shapes disagree.
    """
    kinds = ("oracle", "diagonal", "per_step", "tight")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}, got {kind!r}")
    g, w, u = _run_arrays(run, u)
    eps = _check_eps(eps)
    if g.shape[0] == 0:
        return 0.0
    D = _max_dist(w, u)
    O_T = g.T @ g
    if kind == "oracle":
        return D * _trace_power(O_T, 0.5)
    if kind == "diagonal":
        return D * float(np.sum(np.sqrt(np.diag(O_T))))
    lr = D if lr is None else _check_lr(lr)
    if lr == 0:  # lr = D = 0: w_t = u throughout
        return 0.0
    d = g.shape[1]
    tr_a = _trace_power(O_T + eps * np.eye(d), 0.5)
    first = D**2 * tr_a / (2 * lr)
    if kind == "per_step":
        return float(first + lr * (tr_a - d * np.sqrt(eps)))
    o = np.zeros((d, d))
    total = 0.0
    for gt in g:
        o += np.outer(gt, gt)
        total += float(gt @ _psd_root(o + eps * np.eye(d), -0.5) @ gt)
    return float(first + 0.5 * lr * total)


def shampoo_bound(
    run: Any,
    lr: float | None = None,
    *,
    u: Any = None,
    shape: tuple[int, int] | None = None,
    rank: int | None = None,
    eps: float = 0.0,
    tight: bool = False,
) -> float:
    """Shampoo's regret bound of Section 5 for the update (53), W <- W - lr L_t^{-1/4} G_t R_t^{-1/4}.

    With G_t the (m, n) gradient (row-major: g_t = vec(G_t)), L_T = sum G G^T, R_T = sum G^T G, A_T =
    L_T^{1/4} (x) R_T^{1/4} (so tr(A_T) = tr(L_T^{1/4}) tr(R_T^{1/4})) and r = max_t rank(G_t):

    - ``lr=None`` (eta = D / sqrt(2r)): D sqrt(2r) tr(L_T^{1/4}) tr(R_T^{1/4}), the notes' final line.
    - ``lr`` given: D^2 tr(A_T) / (2 lr) + lr r tr(A_T), the line before it (valid for any eta).
    - ``tight=True``: the first line, (18) itself: D^2 tr(A_T) / (2 lr) + (lr/2) sum_t g_t^T A_t^{-1} g_t,
      where g^T A_t^{-1} g = <G, L_t^{-1/4} G R_t^{-1/4}> (pseudo-inverse roots when eps = 0).

    With eps > 0 every statistic is damped as :class:`adaptim.Shampoo` does, L_t + eps I and R_t + eps I
    (the bound of the damped preconditioner; its (55) step uses tr(A_T) of the damped factors).

    Args:
        run: an :class:`~adaptim.online.OnlineRun` with iterates; d = m n.
        lr: the optimizer's lr (> 0), or None for eta = D / sqrt(2r).
        u: the comparator (d,); default ``run.comparator``.
        shape: (m, n); default ``run.shape`` (or ``run.adversary.shape``).
        rank: r; default the largest numerical rank of the G_t (singular values above d * unit roundoff *
            the largest).
        eps: the optimizer's damping, >= 0.
        tight: return the first line of the derivation.

    Returns:
        The bound, a float >= 0.

    Raises:
        ValueError: no (m, n) shape known or m n != d, lr <= 0, rank < 1, eps < 0, no iterates.
    """
    g, w, u = _run_arrays(run, u)
    eps = _check_eps(eps)
    for source in (run, getattr(run, "adversary", None)):
        if shape is None or len(tuple(shape)) != 2:
            shape = getattr(source, "shape", shape)
    if shape is None or len(tuple(shape)) != 2 or int(shape[0]) * int(shape[1]) != g.shape[1]:
        raise ValueError(f"shampoo_bound needs a matrix shape (m, n) with m n = d = {g.shape[1]}, got {shape!r}")
    m, n = int(shape[0]), int(shape[1])
    if g.shape[0] == 0:
        return 0.0
    Gs = g.reshape(-1, m, n)
    if rank is None:
        sv = np.linalg.svd(Gs, compute_uv=False)
        tol = sv[:, :1] * max(m, n) * np.finfo(np.float64).eps
        rank = max(1, int(np.max(np.sum(sv > tol, axis=1))))
    else:
        rank = _checks.count(rank, "rank", low=1)
    D = _max_dist(w, u)
    L = np.einsum("tij,tkj->ik", Gs, Gs) + eps * np.eye(m)
    R = np.einsum("tji,tjk->ik", Gs, Gs) + eps * np.eye(n)
    tr_a = _trace_power(L, 0.25) * _trace_power(R, 0.25)
    if lr is None:
        if tight:
            lr = D / np.sqrt(2 * rank)
        else:
            return float(D * np.sqrt(2 * rank) * tr_a)
    else:
        lr = _check_lr(lr)
    if lr == 0:
        return 0.0
    first = D**2 * tr_a / (2 * lr)
    if not tight:
        return float(first + lr * rank * tr_a)
    lt, rt, total = eps * np.eye(m), eps * np.eye(n), 0.0
    for G in Gs:
        lt += G @ G.T
        rt += G.T @ G
        total += float(np.sum(G * (_psd_root(lt, -0.25) @ G @ _psd_root(rt, -0.25))))
    return float(first + 0.5 * lr * total)
