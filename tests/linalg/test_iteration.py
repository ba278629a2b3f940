"""Appendix Q.1-Q.2.1: power iteration (141), orthogonal iteration (142)-(143), and the online version
(144)-(145) with the sign and order corrections of Q.2.1.

References: torch.linalg.eigh, X^P computed with matrix_power, literal loops of the notes' steps using
torch's raw (Householder) QR, and matrices built from a known eigendecomposition.
"""

import itertools

import pytest
import torch

from adaptim.linalg.iteration import (
    OnlineOrthogonalIteration,
    _match_order,
    online_orthogonal_iteration_step,
    orthogonal_iteration,
    power_iteration,
)

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def random_orthogonal(n, seed):
    Q, R = torch.linalg.qr(torch.randn(n, n, generator=gen(seed), dtype=DT))
    return Q * torch.sign(torch.diagonal(R))


def with_spectrum(lams, seed):
    """X = V diag(lams) Vᵀ with a random orthogonal V; returns (X, V)."""
    lams = torch.as_tensor(lams, dtype=DT)
    V = random_orthogonal(len(lams), seed)
    return (V * lams) @ V.T, V


def projector(V):
    return V @ V.transpose(-1, -2)


def tan_theta(Vhat, V, m):
    """tan of the largest principal angle between span(Vhat) and span(V[:, :m]): ‖C B⁻¹‖₂ (Q.2 notation)."""
    B, C = V[:, :m].T @ Vhat, V[:, m:].T @ Vhat
    return torch.linalg.matrix_norm(C @ torch.linalg.inv(B), ord=2)


# ---- power iteration (Q.1) ----------------------------------------------------------------------------------------


def test_power_iteration_finds_top_eigenpair_batched():
    X = torch.stack([with_spectrum([5.0, 2.0, 1.0, 0.5, 0.1, 0.0], s)[0] for s in range(3)])
    lam, q = power_iteration(X, num_iters=80, generator=gen(0))
    evals, evecs = torch.linalg.eigh(X)
    torch.testing.assert_close(lam, evals[:, -1])
    v1 = evecs[:, :, -1]
    signs = torch.sign((q * v1).sum(-1, keepdim=True))
    torch.testing.assert_close(q, signs * v1)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(3, dtype=DT))


def test_power_iteration_is_eq141_and_converges_at_rate_lambda2_over_lambda1():
    lams = torch.tensor([4.0, 3.0, 1.0, 0.5], dtype=DT)
    X, V = with_spectrum(lams, 1)
    q0 = torch.randn(4, generator=gen(2), dtype=DT)
    q0 = q0 / q0.norm()
    a = V.T @ q0  # a_i = v_iᵀ q0
    r0 = None
    for P in range(0, 30, 3):
        _, q = power_iteration(X, num_iters=P, q0=q0)
        vP = torch.linalg.matrix_power(X, P) @ q0  # v̂_P = X^P v̂_0 (141)
        torch.testing.assert_close(q, vP / vP.norm())
        # r_P = sum_{i>1} (λ_i/λ_1)^P (a_i/a_1) v_i, and tan∠(q_P, v1) = ‖r_P‖.
        r = ((lams[1:] / lams[0]) ** P * a[1:] / a[0] * V[:, 1:]).sum(-1)
        cos = (q @ V[:, 0]).abs()
        torch.testing.assert_close((1 - cos**2).sqrt() / cos, r.norm())
        r0 = r.norm() if P == 0 else r0
        assert r.norm() <= (lams[1] / lams[0]) ** P * r0 * (1 + 1e-12)
    _, q = power_iteration(X, num_iters=200, q0=q0)
    torch.testing.assert_close(q, torch.sign(a[0]) * V[:, 0])  # -> sign(a1) v1


def test_power_iteration_without_gap_goes_to_projection_of_q0():
    X, V = with_spectrum([2.0, 2.0, 0.5, 0.1], 3)  # footnote 27
    q0 = torch.randn(4, generator=gen(4), dtype=DT)
    _, q = power_iteration(X, num_iters=100, q0=q0)
    proj = V[:, :2] @ (V[:, :2].T @ q0)
    torch.testing.assert_close(q, proj / proj.norm())


def test_power_iteration_zero_matrix_and_float32():
    q0 = torch.tensor([3.0, 4.0])
    lam, q = power_iteration(torch.zeros(2, 2), num_iters=5, q0=q0)
    assert lam == 0 and torch.equal(q, q0 / 5)
    X = with_spectrum([3.0, 1.0, 0.2], 5)[0].float()
    lam, q = power_iteration(X, num_iters=60, generator=gen(6))
    assert lam.dtype == q.dtype == torch.float32
    torch.testing.assert_close(lam, torch.linalg.eigvalsh(X)[-1])


def test_power_iteration_errors():
    with pytest.raises(ValueError, match=r"\(\.\.\., n, n\)"):
        power_iteration(torch.ones(2, 3))
    with pytest.raises(TypeError, match="float32 or float64"):
        power_iteration(torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="non-finite"):
        power_iteration(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="num_iters"):
        power_iteration(torch.eye(2), num_iters=-1)
    with pytest.raises(ValueError, match="nonzero"):
        power_iteration(torch.eye(2), q0=torch.zeros(2))
    with pytest.raises(ValueError, match="q0"):
        power_iteration(torch.eye(2), q0=torch.ones(3))


# ---- orthogonal iteration (142)-(143) -------------------------------------------------------------------------------


def test_orthogonal_iteration_recovers_top_k_subspace_batched():
    lams = [10.0, 6.0, 3.0, 1.0, 0.5, 0.2, 0.0]
    X = torch.stack([with_spectrum(lams, s)[0] for s in range(10, 13)])
    vals, V = orthogonal_iteration(X, k=3, num_iters=100, generator=gen(7))
    assert V.shape == (3, 7, 3)
    torch.testing.assert_close(V.transpose(-1, -2) @ V, torch.eye(3, dtype=DT).expand(3, 3, 3))
    evals, evecs = torch.linalg.eigh(X)
    torch.testing.assert_close(projector(V), projector(evecs[..., -3:]))
    torch.testing.assert_close(vals, evals.flip(-1)[..., :3])  # columns come out in decreasing order


def test_orthogonal_iteration_is_literal_142_143_and_rate_bound():
    lams = torch.tensor([5.0, 4.0, 2.0, 1.0, 0.3], dtype=DT)
    X, Vtrue = with_spectrum(lams, 14)
    m = 2
    V0 = torch.randn(5, m, generator=gen(15), dtype=DT)
    Vref = torch.linalg.qr(V0).Q
    tan0 = tan_theta(Vref, Vtrue, m)
    for K in range(1, 16):
        Vref = torch.linalg.qr(X @ Vref).Q  # (142)-(143), raw Householder QR
        _, V = orthogonal_iteration(X, num_iters=K, V0=V0)
        torch.testing.assert_close(projector(V), projector(Vref))
        torch.testing.assert_close(projector(V), projector(torch.linalg.qr(torch.linalg.matrix_power(X, K) @ V0).Q))
        # tan Θ_K <= (λ_{m+1}/λ_m)^K tan Θ_0.
        assert tan_theta(V, Vtrue, m) <= (lams[m] / lams[m - 1]) ** K * tan0 * (1 + 1e-9)
    assert tan_theta(V, Vtrue, m) < 1e-3


def test_orthogonal_iteration_float32_and_errors():
    X = with_spectrum([4.0, 2.0, 1.0, 0.1], 16)[0].float()
    vals, V = orthogonal_iteration(X, k=2, num_iters=60, generator=gen(8))
    assert V.dtype == torch.float32
    torch.testing.assert_close(vals, torch.linalg.eigvalsh(X).flip(-1)[:2])
    with pytest.raises(ValueError, match="k must be"):
        orthogonal_iteration(X, k=5)
    with pytest.raises(ValueError, match="k must be"):
        orthogonal_iteration(X)
    with pytest.raises(ValueError, match="V0"):
        orthogonal_iteration(X, V0=torch.ones(3, 2))
    with pytest.raises(ValueError, match="disagrees"):
        orthogonal_iteration(X, k=1, V0=torch.ones(4, 2))


# ---- online orthogonal iteration (Q.2.1) ----------------------------------------------------------------------------


def literal_online_step(X, V_prev, order):
    """(144)-(145) then the Q.2.1 corrections, column by column, with raw Householder QR (arbitrary signs)."""
    V = torch.linalg.qr(X @ V_prev).Q
    k = V.shape[1]
    cols = [V[:, i] for i in range(k)]
    if order == "eigenvalue":
        lam = [float(c @ X @ c) for c in cols]
        cols = [cols[i] for i in sorted(range(k), key=lambda i: -lam[i])]
    elif order == "match":
        free_new, free_prev, out = set(range(k)), set(range(k)), [None] * k
        for _ in range(k):  # the largest |<v_i, v_prev_j>| among unassigned pairs first
            i, j = max(
                ((i, j) for i in free_new for j in free_prev), key=lambda ij: abs(float(cols[ij[0]] @ V_prev[:, ij[1]]))
            )
            out[j] = cols[i]
            free_new.remove(i)
            free_prev.remove(j)
        cols = out
    cols = [-c if float(c @ V_prev[:, i]) < 0 else c for i, c in enumerate(cols)]
    return torch.stack(cols, dim=1)


@pytest.mark.parametrize("order", ["eigenvalue", "match"])
def test_online_step_matches_literal_reference(order):
    X, Vtrue = with_spectrum([6.0, 3.0, 2.0, 1.0, 0.5], 17)
    # A previous estimate near a shuffled, sign-flipped eigenbasis.
    V_prev = torch.linalg.qr(
        Vtrue[:, [2, 0, 3, 1]] * torch.tensor([1.0, -1, -1, 1], dtype=DT)
        + 0.05 * torch.randn(5, 4, generator=gen(18), dtype=DT)
    ).Q
    lam, V = online_orthogonal_iteration_step(X, V_prev, order=order)
    torch.testing.assert_close(V, literal_online_step(X, V_prev, order))
    torch.testing.assert_close(lam, torch.einsum("ni,nm,mi->i", V, X, V))
    if order == "eigenvalue":
        assert (lam[:-1] >= lam[1:]).all()


@pytest.mark.parametrize("order", ["eigenvalue", "match", None])
def test_online_step_reorders_when_qr_swaps_labels(order):
    # In the basis R, X = [[1, 3, 0], [3, 10, 0], [0, 0, 0.1]] (PSD) and V_prev = R: QR's first column is
    # X r1 ∝ R (1, 3, 0), mostly r2, and its second ∝ R (3, -1, 0), mostly r1 (a label swap).
    R = random_orthogonal(3, 23)
    X = R @ torch.tensor([[1.0, 3.0, 0.0], [3.0, 10.0, 0.0], [0.0, 0.0, 0.1]], dtype=DT) @ R.T
    lam, V = online_orthogonal_iteration_step(X, R, order=order)
    torch.testing.assert_close(V, literal_online_step(X, R, order) if order else _qr_positive_reference(X @ R))
    overlap = (V.T @ R).abs()
    if order == "match":
        assert overlap[0, 0] > 0.9 and overlap[1, 1] > 0.9  # the previous labels are restored
    else:
        assert overlap[0, 1] > 0.9 and overlap[1, 0] > 0.9  # QR's order, which here is also λ̂'s order
    if order == "eigenvalue":
        assert (lam[:-1] >= lam[1:]).all()
    if order is not None:
        assert ((V * R).sum(0) >= 0).all()  # signs agree with the previous column at the same position


def _qr_positive_reference(A):
    """Gram-Schmidt, column by column: the QR with a positive diagonal of R."""
    cols = []
    for i in range(A.shape[1]):
        c = A[:, i] - sum((q @ A[:, i]) * q for q in cols) if cols else A[:, i]
        cols.append(c / c.norm())
    return torch.stack(cols, dim=1)


def test_sign_correction_flips_against_previous_column():
    X = torch.diag(torch.tensor([3.0, -2.0, 1.0], dtype=DT))  # a negative eigenvalue makes QR flip column 1
    V_prev = torch.eye(3, dtype=DT)
    _, V_raw = online_orthogonal_iteration_step(X, V_prev, order=None, correct_sign=False)
    _, V = online_orthogonal_iteration_step(X, V_prev, order=None, correct_sign=True)
    assert torch.equal(V_raw, torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=DT)))
    assert torch.equal(V, torch.eye(3, dtype=DT))


def test_match_order_is_a_permutation_when_argmaxes_collide():
    c0 = torch.tensor([1.0, 0.85, 0.75], dtype=DT)
    c1 = torch.tensor([1.0, -0.7, (-1 + 0.595) / 0.75], dtype=DT)  # c0 · c1 = 0
    C = torch.linalg.qr(torch.stack([c0, c1, torch.linalg.cross(c0, c1)], dim=1)).Q
    I = torch.eye(3, dtype=DT)
    assert C[:, 0].abs().argmax() == C[:, 1].abs().argmax() == 0  # a per-column argmax would collide
    out = _match_order(C, I)
    # Greedy reference written out: the largest |<c_i, e_j>| among unassigned pairs first.
    ov = (C.T @ I).abs()
    ref = [None] * 3
    free_i, free_j = {0, 1, 2}, {0, 1, 2}
    for _ in range(3):
        i, j = max(itertools.product(free_i, free_j), key=lambda ij: float(ov[ij]))
        ref[j] = C[:, i]
        free_i.remove(i)
        free_j.remove(j)
    assert torch.equal(out, torch.stack(ref, dim=1))  # a column permutation of C, every column used once


def drifting(lams, T, speed, seed):
    """X^(t) = Q(t) diag(λ) Q(t)ᵀ with Q(t) = Q0 expm(t S), S skew-symmetric of norm ~speed; returns X's and Q's."""
    n = len(lams)
    S = torch.randn(n, n, generator=gen(seed), dtype=DT)
    S = speed * (S - S.T) / torch.linalg.matrix_norm(S - S.T, ord=2)
    Q0 = random_orthogonal(n, seed + 1)
    Qs = [Q0 @ torch.linalg.matrix_exp(t * S) for t in range(T)]
    lam = torch.tensor(lams, dtype=DT)
    return [(Q * lam) @ Q.T for Q in Qs], Qs


@pytest.mark.parametrize("k,order", [(None, "eigenvalue"), (3, "eigenvalue"), (None, "match")])
def test_online_iteration_tracks_drifting_matrix_with_consistent_signs_and_order(k, order):
    lams = [16.0, 8.0, 4.0, 2.0, 1.0]
    Xs, Qs = drifting(lams, T=60, speed=0.01, seed=19)
    tracker = OnlineOrthogonalIteration(Xs[0], k=k, order=order)
    kk = k or 5
    # Reference: exact eigh every step, sorted by decreasing eigenvalue, signs aligned to the previous step.
    evals, evecs = torch.linalg.eigh(Xs[0])
    ref = evecs.flip(-1)[:, :kk]
    torch.testing.assert_close(tracker.basis, ref)
    init_signs = torch.sign((tracker.basis * Qs[0][:, :kk]).sum(0))
    for t in range(1, 60):
        evals, evecs = torch.linalg.eigh(Xs[t])
        new = evecs.flip(-1)[:, :kk]
        ref = new * torch.sign((new * ref).sum(0))
        V = tracker.update(Xs[t])
        assert tracker.t == t + 1
        assert (V - ref).abs().max() < 0.02, t
        # Each column keeps following the same eigenvector of the true rotation, with the sign it had at t = 1.
        torch.testing.assert_close(torch.sign((V * Qs[t][:, :kk]).sum(0)), init_signs)
        torch.testing.assert_close(tracker.eigenvalues, evals.flip(-1)[:kk], atol=0.05, rtol=0)
        torch.testing.assert_close(V.T @ V, torch.eye(kk, dtype=DT))


def test_online_order_corrections_when_eigenvalues_cross():
    V = random_orthogonal(3, 20)
    T = 21
    l1 = torch.linspace(3.0, 1.0, T, dtype=DT)
    Xs = [(V * torch.stack([l1[t], l1[T - 1 - t], torch.tensor(0.5, dtype=DT)])) @ V.T for t in range(T)]
    by_value = OnlineOrthogonalIteration(Xs[0], order="eigenvalue")
    by_match = OnlineOrthogonalIteration(Xs[0], order="match")
    s0 = torch.sign((by_match.basis * V).sum(0))
    for t in range(1, T):
        by_value.update(Xs[t])
        by_match.update(Xs[t])
        assert (by_value.eigenvalues[:-1] >= by_value.eigenvalues[1:]).all()  # sorted: labels follow λ̂
        torch.testing.assert_close(by_match.basis, V * s0)  # matched: labels (and signs) follow the vectors
    # After the crossing the sorted tracker holds v2 first, the matched one still v1.
    torch.testing.assert_close(by_value.basis[:, 0].abs(), V[:, 1].abs())
    torch.testing.assert_close(by_match.eigenvalues, torch.tensor([1.0, 3.0, 0.5], dtype=DT))


def test_online_batched_float32_and_errors():
    Xs = torch.stack([with_spectrum([4.0, 2.0, 1.0], s)[0] for s in (21, 22)]).float()
    tr = OnlineOrthogonalIteration(Xs, k=2)
    assert tr.basis.shape == (2, 3, 2) and tr.basis.dtype == torch.float32
    V = tr.update(Xs)
    for b in range(2):
        torch.testing.assert_close(projector(V[b]), projector(torch.linalg.eigh(Xs[b]).eigenvectors[:, 1:]))
    with pytest.raises(ValueError, match="shape"):
        tr.update(Xs[0])
    with pytest.raises(TypeError, match="dtype"):
        tr.update(Xs.double())
    with pytest.raises(ValueError, match="k must be"):
        OnlineOrthogonalIteration(Xs, k=4)
    with pytest.raises(ValueError, match="order"):
        OnlineOrthogonalIteration(Xs, order="sorted")
    with pytest.raises(ValueError, match="V_prev"):
        online_orthogonal_iteration_step(Xs, torch.ones(2, 4, 2))
