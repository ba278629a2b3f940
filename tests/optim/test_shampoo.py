"""Shampoo (53)-(54), Section 5.1, and the IdealizedShampooIteration of 6.2.1 against dense literal references.

References are written here straight from the notes: explicit eigendecompositions, torch.kron for (54), einsum
for the mode-wise products of order-3 tensors, plain loops over steps and blocks. Case C11 is tested with its
kind (the exponent -1/(2k) for every tensor order k).
"""

from __future__ import annotations

import io

import pytest
import torch

import adaptim.functional.shampoo as fshampoo
from adaptim.functional.shampoo import (
    idealized_shampoo_batched,
    idealized_shampoo_single,
    init_shampoo_state,
    kron_views,
    shampoo_batched,
    shampoo_single,
    symmetric_from,
)
from adaptim.optim.adagrad import FullMatrixAdaGrad
from adaptim.optim.shampoo import IdealizedShampoo
from adaptim.optim.shampoo import Shampoo as ShampooClass

F64 = torch.float64


def Shampoo(params, **kwargs):
    """The plain Shampoo of (53) that the literal references below describe: roots every step from step 1, no
    grafting, unless a test sets these itself. (The class's defaults add Adam grafting and roots every 10 steps,
    see tests/optim/test_defaults_train.py.)"""
    return ShampooClass(params, **{"grafting": None, "precondition_frequency": 1, **kwargs})


# -------------------------------------------------------------------------------------- literal helpers
def randn(*shape, seed: int, dtype=F64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64).to(dtype)


def mpow(A: torch.Tensor, p: float) -> torch.Tensor:
    """A^p for a symmetric positive definite A, from its eigendecomposition."""
    evals, evecs = torch.linalg.eigh(A)
    return evecs @ torch.diag(evals**p) @ evecs.T


def damped(A: torch.Tensor, eps: float) -> torch.Tensor:
    return A + eps * torch.eye(A.shape[0], dtype=A.dtype)


def run(opt, params, grad_steps):
    """Take one step per entry of ``grad_steps``; return the parameters (cloned) after every step."""
    history = []
    for grads in grad_steps:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        history.append([p.detach().clone() for p in params])
    return history


def reference_shampoo_2d(
    W0,
    grads,
    *,
    lr,
    eps,
    beta2=None,
    exponent=-0.25,
    freq=1,
    start=1,
    momentum=0.0,
    wd=0.0,
    grafting=None,
    gb2=0.999,
    geps=1e-8,
):
    """The documented Shampoo step for one matrix, literally: returns W after every step."""
    W = W0.clone()
    m, n = W.shape
    L, R = torch.zeros(m, m, dtype=W.dtype), torch.zeros(n, n, dtype=W.dtype)
    QL, QR = torch.eye(m, dtype=W.dtype), torch.eye(n, dtype=W.dtype)
    V, M = torch.zeros_like(W), torch.zeros_like(W)
    out = []
    for t, G in enumerate(grads, start=1):
        if beta2 is None:
            L, R = L + G @ G.T, R + G.T @ G
        else:
            L, R = beta2 * L + (1 - beta2) * G @ G.T, beta2 * R + (1 - beta2) * G.T @ G
        if t % freq == 0 and t + freq > start:
            bc = 1.0 if beta2 is None else 1 - beta2**t
            QL, QR = mpow(damped(L / bc, eps), exponent), mpow(damped(R / bc, eps), exponent)
        if grafting == "adagrad":
            V = V + G * G
            U = G / (V.sqrt() + geps)
        elif grafting == "adam":
            V = gb2 * V + (1 - gb2) * G * G
            U = G / ((V / (1 - gb2**t)).sqrt() + geps)
        if t >= start:
            D = QL @ G @ QR
            if grafting is not None:
                D = D * (U.norm() / D.norm())
        else:
            D = U if grafting is not None else G
        P = D + wd * W
        M = momentum * M + P
        W = W - lr * (M if momentum else P)
        out.append(W.clone())
    return out


# -------------------------------------------------------------------------------------------------- C11
def test_c11_diag_gradient_gives_identity_direction():
    W = torch.zeros(2, 2, dtype=F64, requires_grad=True)
    run(Shampoo([W], lr=1.0, eps=1e-30), [W], [[torch.diag(torch.tensor([2.0, 1.0], dtype=F64))]])
    torch.testing.assert_close(W.detach(), -torch.eye(2, dtype=F64), rtol=0, atol=1e-12)
    # an exponent of -1/2 on each side: L^{-1/2} G R^{-1/2} = diag(1/2, 1) diag(2, 1) diag(1/2, 1)
    W = torch.zeros(2, 2, dtype=F64, requires_grad=True)
    run(
        Shampoo([W], lr=1.0, eps=1e-30, exponent_override=-0.5),
        [W],
        [[torch.diag(torch.tensor([2.0, 1.0], dtype=F64))]],
    )
    torch.testing.assert_close(W.detach(), -torch.diag(torch.tensor([0.5, 1.0], dtype=F64)), rtol=0, atol=1e-12)
    # float32 with the default eps: the same up to float32 rounding
    W = torch.zeros(2, 2, requires_grad=True)
    run(Shampoo([W], lr=1.0), [W], [[torch.diag(torch.tensor([2.0, 1.0]))]])
    torch.testing.assert_close(W.detach(), -torch.eye(2), rtol=0, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 5), (1, 4)])
def test_c11_first_step_is_polar_factor(shape):
    G = randn(*shape, seed=sum(shape))
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    W = torch.zeros(shape, dtype=F64, requires_grad=True)
    run(Shampoo([W], lr=0.3, eps=1e-24), [W], [[G]])
    torch.testing.assert_close(W.detach(), -0.3 * U @ Vh, rtol=0, atol=1e-6)


def test_c11_vector_first_step_is_normalized_gradient():
    g = randn(6, seed=1)
    w = torch.zeros(6, dtype=F64, requires_grad=True)
    run(Shampoo([w], lr=1.0, eps=1e-30), [w], [[g]])
    # g g^T has rank 1: its five null eigenvalues are rounding noise, floored at machine epsilon * |g|^2, so the
    # noise components (~1e-16 |g|) come back multiplied by at most (2e-16)^{-1/2}: an error near 1e-8
    torch.testing.assert_close(w.detach(), -g / g.norm(), rtol=0, atol=1e-7)


@pytest.mark.parametrize("shape", [(), (5,), (3, 3), (2, 3, 4), (2, 2, 3, 2)])
@pytest.mark.parametrize("override", [None, -0.3])
def test_c11_kind_exponent_per_tensor_order(shape, override):
    """Exponent e on each of the k factors: the first step scales as c^(1 + 2ek) when G is scaled by c.

    The default e = -1/(2k) makes it scale-free for every order k (the kind of C11: an exponent that ignores
    the tensor's order breaks this); the override is applied to every factor as given.
    """
    k = max(len(shape), 1)
    G = randn(*shape, seed=7)
    steps = {}
    for c in (1e-3, 1.0, 1e3):
        w = torch.zeros(shape, dtype=F64, requires_grad=True)
        run(Shampoo([w], lr=1.0, eps=1e-30, exponent_override=override), [w], [[c * G]])
        steps[c] = w.detach()
    e = -1 / (2 * k) if override is None else override
    for c in (1e-3, 1e3):
        torch.testing.assert_close(steps[c], steps[1.0] * c ** (1 + 2 * e * k), rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------- (53), (54) over many steps
def _statistic(state, key):
    """A_i of block and dimension ``key`` ("b_i"), read from its kron_ tensor as a full symmetric matrix."""
    return symmetric_from(kron_views(state[f"kron_{key}"])[0], lower=True)


def test_matches_kronecker_form_54_and_preconditioner_grows():
    m, n, lr, eps = 3, 2, 0.1, 1e-3
    grads = [randn(m, n, seed=10 + t) for t in range(5)]
    W = randn(m, n, seed=0).requires_grad_(True)
    before = W.detach().clone()
    opt = Shampoo([W], lr=lr, eps=eps)
    L, R = torch.zeros(m, m, dtype=F64), torch.zeros(n, n, dtype=F64)
    A_prev = torch.zeros(m * n, m * n, dtype=F64)
    for G in grads:
        L_prev, R_prev = L, R
        L, R = L + G @ G.T, R + G.T @ G
        run(opt, [W], [[G]])
        # (54): row-major vec(W) moves by -(L^{1/4} (x) R^{1/4})^{-1} vec(G), damping inside each root
        A = torch.kron(mpow(damped(L, eps), 0.25), mpow(damped(R, eps), 0.25))
        expected = before.reshape(-1) - lr * torch.linalg.solve(A, G.reshape(-1))
        torch.testing.assert_close(W.detach().reshape(-1), expected, rtol=1e-10, atol=1e-12)
        before = W.detach().clone()
        # statistics are the literal sums, L_t - L_{t-1} and R_t - R_{t-1} are PSD, and A_t >= A_{t-1} (107)
        torch.testing.assert_close(_statistic(opt.state[W], "0_0"), L, rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(_statistic(opt.state[W], "0_1"), R, rtol=1e-14, atol=1e-14)
        for new, old in ((L, L_prev), (R, R_prev), (A, A_prev)):
            assert torch.linalg.eigvalsh(new - old).min() >= -1e-10
        A_prev = A


def test_ema_bias_correction_against_literal_loop():
    grads = [randn(3, 4, seed=20 + t) for t in range(6)]
    W0 = randn(3, 4, seed=1)
    W = W0.clone().requires_grad_(True)
    history = run(Shampoo([W], lr=0.05, eps=1e-4, beta2=0.8), [W], [[G] for G in grads])
    expected = reference_shampoo_2d(W0, grads, lr=0.05, eps=1e-4, beta2=0.8)
    for got, want in zip(history, expected):
        torch.testing.assert_close(got[0], want, rtol=1e-10, atol=1e-12)
    # bias correction makes the first EMA step the first step with sums, for any beta2
    W_sum = W0.clone().requires_grad_(True)
    first = run(Shampoo([W_sum], lr=0.05, eps=1e-4), [W_sum], [[grads[0]]])
    # (uncorrected, L_1 = (1 - b2) G G^T would make that step (1 - b2)^{-1/2} = sqrt(5) times as long)
    torch.testing.assert_close(history[0][0], first[0][0], rtol=1e-12, atol=1e-14)


def order3_reference(X0, grads, *, lr, eps, exponent=-1 / 6):
    """Mode-wise Shampoo for an order-3 tensor, written with explicit index strings."""
    X = X0.clone()
    a, b, c = X.shape
    A = [torch.zeros(a, a, dtype=F64), torch.zeros(b, b, dtype=F64), torch.zeros(c, c, dtype=F64)]
    out = []
    for G in grads:
        A[0] = A[0] + torch.einsum("ijk,ljk->il", G, G)
        A[1] = A[1] + torch.einsum("ijk,ilk->jl", G, G)
        A[2] = A[2] + torch.einsum("ijk,ijl->kl", G, G)
        Q = [mpow(damped(Ai, eps), exponent) for Ai in A]
        X = X - lr * torch.einsum("ip,jq,kr,pqr->ijk", Q[0], Q[1], Q[2], G)
        out.append(X.clone())
    return out


def test_order3_tensor_against_literal_modewise_reference():
    grads = [randn(2, 3, 4, seed=30 + t) for t in range(3)]
    X0 = randn(2, 3, 4, seed=2)
    X = X0.clone().requires_grad_(True)
    history = run(Shampoo([X], lr=0.1, eps=1e-3), [X], [[G] for G in grads])
    for got, want in zip(history, order3_reference(X0, grads, lr=0.1, eps=1e-3)):
        torch.testing.assert_close(got[0], want, rtol=1e-10, atol=1e-12)


def test_vector_full_matrix_root_and_diagonal_when_long():
    grads = [randn(6, seed=40 + t) for t in range(4)]
    w0 = randn(6, seed=3)
    w, w_fm = w0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    history = run(Shampoo([w], lr=0.2, eps=1e-3, max_preconditioner_dim=6), [w], [[g] for g in grads])
    full_matrix = run(FullMatrixAdaGrad([w_fm], lr=0.2, eps=1e-3), [w_fm], [[g] for g in grads])
    S, ref = torch.zeros(6, 6, dtype=F64), w0.clone()
    for g, got, fm in zip(grads, history, full_matrix):
        S = S + torch.outer(g, g)
        ref = ref - 0.2 * mpow(damped(S, 1e-3), -0.5) @ g
        torch.testing.assert_close(got[0], ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got[0], fm[0], rtol=1e-10, atol=1e-12)
    # longer than max_preconditioner_dim: the diagonal root (s + eps)^{-1/2} g, with s the sum of squares
    w = w0.clone().requires_grad_(True)
    opt = Shampoo([w], lr=0.2, eps=1e-3, max_preconditioner_dim=5)
    history = run(opt, [w], [[g] for g in grads])
    assert opt.state[w]["factor_diag"].shape == (6,) and "kron_0_0" not in opt.state[w]
    s, ref = torch.zeros(6, dtype=F64), w0.clone()
    for g, got in zip(grads, history):
        s = s + g * g
        ref = ref - 0.2 * g / (s + 1e-3).sqrt()
        torch.testing.assert_close(got[0], ref, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------- blocking, grafting
ROWS, COLS = [slice(0, 3), slice(3, 5)], [slice(0, 3), slice(3, 6), slice(6, 7)]


@pytest.mark.parametrize("grafting", [None, "adagrad", "adam"])
def test_blocking_is_blockwise_shampoo(grafting):
    """A 5 x 7 matrix with max_preconditioner_dim 3 is six blocks, each with its own L and R (and grafting)."""
    kw = dict(lr=0.1, eps=1e-3, beta2=0.9, momentum=0.5, wd=0.01, grafting=grafting, geps=1e-6)
    grads = [randn(5, 7, seed=50 + t) for t in range(3)]
    W0 = randn(5, 7, seed=4)
    W = W0.clone().requires_grad_(True)
    opt = Shampoo(
        [W],
        lr=0.1,
        eps=1e-3,
        beta2=0.9,
        momentum=0.5,
        weight_decay=0.01,
        grafting=grafting,
        grafting_eps=1e-6,
        max_preconditioner_dim=3,
    )
    history = run(opt, [W], [[G] for G in grads])
    assert sum(k.startswith("kron_") for k in opt.state[W]) == 12
    expected = torch.zeros(len(grads), 5, 7, dtype=F64)
    for r in ROWS:
        for c in COLS:
            block = reference_shampoo_2d(W0[r, c], [G[r, c] for G in grads], **kw)
            for t, Wt in enumerate(block):
                expected[t][r, c] = Wt
    for got, want in zip(history, expected):
        torch.testing.assert_close(got[0], want, rtol=1e-10, atol=1e-12)


def test_blocking_order3_tensor():
    grads = [randn(2, 5, 3, seed=60 + t) for t in range(3)]
    X0 = randn(2, 5, 3, seed=5)
    X = X0.clone().requires_grad_(True)
    history = run(Shampoo([X], lr=0.1, eps=1e-3, max_preconditioner_dim=3), [X], [[G] for G in grads])
    for cols in (slice(0, 3), slice(3, 5)):
        ref = order3_reference(X0[:, cols], [G[:, cols] for G in grads], lr=0.1, eps=1e-3)
        for got, want in zip(history, ref):
            torch.testing.assert_close(got[0][:, cols], want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("grafting", ["adagrad", "adam"])
def test_grafting_block_norm_equals_grafted_method_norm(grafting):
    grads = [randn(5, 7, seed=70 + t) for t in range(4)]
    W = randn(5, 7, seed=6).requires_grad_(True)
    opt = Shampoo(
        [W], lr=0.1, eps=1e-3, grafting=grafting, grafting_beta2=0.9, grafting_eps=1e-6, max_preconditioner_dim=3
    )
    V = torch.zeros(5, 7, dtype=F64)
    blocks = {
        (r.start, c.start): (
            torch.zeros(r.stop - r.start, r.stop - r.start, dtype=F64),
            torch.zeros(c.stop - c.start, c.stop - c.start, dtype=F64),
        )
        for r in ROWS
        for c in COLS
    }
    for t, G in enumerate(grads, start=1):
        before = W.detach().clone()
        run(opt, [W], [[G]])
        step = (before - W.detach()) / 0.1
        V = V + G * G if grafting == "adagrad" else 0.9 * V + 0.1 * G * G
        vhat = V if grafting == "adagrad" else V / (1 - 0.9**t)
        U = G / (vhat.sqrt() + 1e-6)
        for r in ROWS:
            for c in COLS:
                L, R = blocks[(r.start, c.start)]
                L += G[r, c] @ G[r, c].T
                R += G[r, c].T @ G[r, c]
                D = mpow(damped(L, 1e-3), -0.25) @ G[r, c] @ mpow(damped(R, 1e-3), -0.25)
                torch.testing.assert_close(step[r, c].norm(), U[r, c].norm(), rtol=1e-12, atol=0)
                torch.testing.assert_close(step[r, c], D * U[r, c].norm() / D.norm(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("grafting", [None, "adagrad", "adam"])
def test_before_start_the_update_is_the_grafted_method(grafting):
    """Steps 1-2 (start 3) are torch.optim's SGD / Adagrad / Adam(beta1=0); step 3 is Shampoo."""
    grads = [randn(3, 4, seed=80 + t) for t in range(3)]
    W0 = randn(3, 4, seed=7)
    W, W_torch = W0.clone().requires_grad_(True), W0.clone().requires_grad_(True)
    history = run(
        Shampoo(
            [W],
            lr=0.1,
            eps=1e-3,
            start_preconditioning_step=3,
            grafting=grafting,
            grafting_beta2=0.9,
            grafting_eps=1e-6,
        ),
        [W],
        [[G] for G in grads],
    )
    torch_opt = {
        None: lambda p: torch.optim.SGD(p, lr=0.1),
        "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-6),
        "adam": lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.0, 0.9), eps=1e-6),
    }[grafting]([W_torch])
    torch_history = run(torch_opt, [W_torch], [[G] for G in grads[:2]])
    for got, want in zip(history[:2], torch_history):
        torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-14)
    expected = reference_shampoo_2d(W0, grads, lr=0.1, eps=1e-3, start=3, grafting=grafting, gb2=0.9, geps=1e-6)
    torch.testing.assert_close(history[2][0], expected[2], rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------- stale roots, momentum, wd
@pytest.mark.parametrize("freq,start", [(3, 3), (2, 3), (1, 4)])
def test_precondition_frequency_uses_stale_roots(freq, start, monkeypatch):
    calls = []
    real = fshampoo.psd_power
    monkeypatch.setattr(fshampoo, "psd_power", lambda *a, **k: calls.append(step_no) or real(*a, **k))
    grads = [randn(3, 2, seed=90 + t) for t in range(8)]
    W0 = randn(3, 2, seed=8)
    W = W0.clone().requires_grad_(True)
    opt = Shampoo([W], lr=0.1, eps=1e-3, precondition_frequency=freq, start_preconditioning_step=start)
    expected = reference_shampoo_2d(W0, grads, lr=0.1, eps=1e-3, freq=freq, start=start)
    roots = None
    for step_no, G in enumerate(grads, start=1):
        got = run(opt, [W], [[G]])[0][0]
        torch.testing.assert_close(got, expected[step_no - 1], rtol=1e-10, atol=1e-12)
        new_roots = kron_views(opt.state[W]["kron_0_0"])[1].triu()
        if roots is not None and (step_no % freq != 0 or step_no + freq <= start):
            assert torch.equal(new_roots, roots)  # cached, not recomputed
        roots = new_roots
    due = [t for t in range(1, 9) if t % freq == 0 and t + freq > start]
    assert sorted(set(calls)) == due and len(calls) == 2 * len(due)  # L (3x3) and R (2x2): two buckets


def test_momentum_and_decoupled_weight_decay_against_literal_loop():
    grads = [randn(4, 3, seed=100 + t) for t in range(5)]
    W0 = randn(4, 3, seed=9)
    W = W0.clone().requires_grad_(True)
    history = run(
        Shampoo([W], lr=0.05, eps=1e-3, beta2=0.95, momentum=0.9, weight_decay=0.1), [W], [[G] for G in grads]
    )
    expected = reference_shampoo_2d(W0, grads, lr=0.05, eps=1e-3, beta2=0.95, momentum=0.9, wd=0.1)
    for got, want in zip(history, expected):
        torch.testing.assert_close(got[0], want, rtol=1e-10, atol=1e-12)
    # a zero gradient with momentum 0: only the decoupled decay (1 - lr wd) moves W
    W = W0.clone().requires_grad_(True)
    run(Shampoo([W], lr=0.05, weight_decay=0.1), [W], [[torch.zeros(4, 3, dtype=F64)]])
    torch.testing.assert_close(W.detach(), W0 * (1 - 0.05 * 0.1), rtol=1e-15, atol=0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(precondition_frequency=10, start_preconditioning_step=5), "start_preconditioning_step"),
        (dict(precondition_frequency=3, start_preconditioning_step=2), "start_preconditioning_step"),
        (dict(start_preconditioning_step=0), "start_preconditioning_step"),
        (dict(precondition_frequency=0), "precondition_frequency"),
        (dict(precondition_frequency=2.0, start_preconditioning_step=2), "precondition_frequency"),
        (dict(max_preconditioner_dim=0), "max_preconditioner_dim"),
        (dict(eps=0.0), "eps"),
        (dict(beta2=1.0), "beta2"),
        (dict(momentum=1.0), "momentum"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(exponent_override=0.25), "exponent_override"),
        (dict(grafting="sgd"), "grafting"),
        (dict(grafting="adam", grafting_beta2=1.0), "grafting_beta2"),
        (dict(grafting_eps=0.0), "grafting_eps"),
        (dict(lr=-1.0), "lr"),
    ],
)
def test_refused_configurations(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Shampoo([torch.zeros(2, 2, requires_grad=True)], **kwargs)


def test_refused_parameters_and_idealized_ranges():
    with pytest.raises(TypeError, match="complex"):
        Shampoo([torch.zeros(2, 2, dtype=torch.complex64, requires_grad=True)])
    with pytest.raises(TypeError, match="complex"):
        IdealizedShampoo([torch.zeros(2, dtype=torch.complex64, requires_grad=True)])
    for kwargs, match in [
        (dict(beta2=None), "beta2"),
        (dict(beta2=1.0), "beta2"),
        (dict(eps=0.0), "eps"),
        (dict(max_preconditioner_dim=0), "max_preconditioner_dim"),
    ]:
        with pytest.raises(ValueError, match=match):
            IdealizedShampoo([torch.zeros(2, 2, requires_grad=True)], **kwargs)
    # the boundary configuration is accepted: roots computed at step f, used from step f on
    Shampoo([torch.zeros(2, 2, requires_grad=True)], precondition_frequency=5, start_preconditioning_step=5)


# ---------------------------------------------------------------------------------------- IdealizedShampoo
def reference_idealized(W0, grads, *, lr, beta2, eps, wd=0.0):
    """Section 6.2.1 for one matrix, literally: returns W after every step and the last (Lhat, Rhat)."""
    W, (m, n) = W0.clone(), W0.shape
    L, R, out = torch.zeros(m, m, dtype=F64), torch.zeros(n, n, dtype=F64), []
    for t, G in enumerate(grads, start=1):
        L = beta2 * L + (1 - beta2) * G @ G.T
        R = beta2 * R + (1 - beta2) * G.T @ G
        Lhat, Rhat = L / (1 - beta2**t), R / (1 - beta2**t)
        D = torch.trace(Lhat).sqrt() * mpow(damped(Lhat, eps), -0.5) @ G @ mpow(damped(Rhat, eps), -0.5)
        W = W - lr * (D + wd * W)
        out.append(W.clone())
    return out, (Lhat, Rhat)


@pytest.mark.parametrize("shape,view", [((3, 2), (3, 2)), ((4,), (4, 1)), ((2, 2, 3), (2, 6)), ((), (1, 1))])
def test_idealized_shampoo_against_literal_loop(shape, view):
    grads = [randn(*shape, seed=110 + t) for t in range(4)]
    W0 = randn(*shape, seed=10)
    W = W0.clone().requires_grad_(True)
    history = run(IdealizedShampoo([W], lr=0.05, beta2=0.9, eps=1e-6, weight_decay=0.1), [W], [[G] for G in grads])
    expected, _ = reference_idealized(
        W0.reshape(view), [G.reshape(view) for G in grads], lr=0.05, beta2=0.9, eps=1e-6, wd=0.1
    )
    for got, want in zip(history, expected):
        torch.testing.assert_close(got[0], want.reshape(shape), rtol=1e-10, atol=1e-12)


def test_idealized_shampoo_is_newton_step_with_kronecker_fisher_64():
    """sqrt(tr L) L^{-1/2} G R^{-1/2} = I_emp^{-1/2} vec(G) for I_emp = Lhat (x) Rhat / tr(Lhat) of (64)."""
    grads = [randn(3, 2, seed=120 + t) for t in range(4)]
    W = torch.zeros(3, 2, dtype=F64, requires_grad=True)
    history = run(IdealizedShampoo([W], lr=1.0, beta2=0.9, eps=1e-30), [W], [[G] for G in grads])
    _, (Lhat, Rhat) = reference_idealized(torch.zeros(3, 2, dtype=F64), grads, lr=1.0, beta2=0.9, eps=1e-30)
    I_emp = torch.kron(Lhat, Rhat) / torch.trace(Lhat)
    newton = mpow(I_emp, -0.5) @ grads[-1].reshape(-1)
    torch.testing.assert_close((history[-2][0] - history[-1][0]).reshape(-1), newton, rtol=1e-9, atol=1e-12)


def test_idealized_shampoo_blocks():
    grads = [randn(5, 4, seed=130 + t) for t in range(3)]
    W0 = randn(5, 4, seed=11)
    W = W0.clone().requires_grad_(True)
    history = run(
        IdealizedShampoo([W], lr=0.1, beta2=0.9, eps=1e-6, max_preconditioner_dim=3), [W], [[G] for G in grads]
    )
    for r in (slice(0, 3), slice(3, 5)):
        for c in (slice(0, 3), slice(3, 4)):
            ref, _ = reference_idealized(W0[r, c], [G[r, c] for G in grads], lr=0.1, beta2=0.9, eps=1e-6)
            for got, want in zip(history, ref):
                torch.testing.assert_close(got[0][r, c], want, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- batching, state, dtypes
SHAPES = [(4, 4), (4, 4), (4, 3), (4,), (2, 4, 3), (9,)]


def _functional_run(fn, init, steps=3, **kw):
    params = [randn(*s, seed=140 + i) for i, s in enumerate(SHAPES)]
    states = [init(p) for p in params]
    for t in range(1, steps + 1):
        fn(params, [randn(*s, seed=150 + 10 * t + i) for i, s in enumerate(SHAPES)], states, [t] * len(params), **kw)
    return params, states


def test_batched_path_equals_literal_loop():
    kw = dict(
        lr=0.1,
        beta2=0.9,
        eps=1e-6,
        momentum=0.5,
        weight_decay=0.01,
        precondition_frequency=2,
        start_preconditioning_step=2,
        max_preconditioner_dim=8,
        grafting="adam",
    )

    def init(p):
        return {
            **init_shampoo_state(p, 8),
            "grafting_exp_avg_sq": torch.zeros_like(p),
            "momentum_buffer": torch.zeros_like(p),
        }

    p1, s1 = _functional_run(shampoo_single, init, **kw)
    p2, s2 = _functional_run(shampoo_batched, init, **kw)
    for a, b in zip(p1 + [v for s in s1 for v in s.values()], p2 + [v for s in s2 for v in s.values()]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    kw = dict(lr=0.1, beta2=0.9, eps=1e-6, max_preconditioner_dim=3)
    init = lambda p: init_shampoo_state(p, 3, matrix_view=True, cache_roots=False)
    p1, _ = _functional_run(idealized_shampoo_single, init, **kw)
    p2, _ = _functional_run(idealized_shampoo_batched, init, **kw)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_one_batched_eigendecomposition_per_bucket(monkeypatch):
    sizes = []
    real = fshampoo.psd_power
    monkeypatch.setattr(fshampoo, "psd_power", lambda A, *a, **k: sizes.append(tuple(A.shape)) or real(A, *a, **k))
    params = [torch.zeros(s, requires_grad=True) for s in [(4, 4), (4, 4), (4, 4), (4,), (4,)]]
    run(Shampoo(params, lr=0.1), params, [[torch.ones_like(p) for p in params]])
    # six 4x4 factors with exponent -1/4 in one call, two 4x4 vector factors with -1/2 in another
    assert sorted(sizes) == [(2, 4, 4), (6, 4, 4)]


def _all_options(params):
    return Shampoo(
        params,
        lr=0.1,
        beta2=0.9,
        eps=1e-6,
        momentum=0.9,
        weight_decay=0.01,
        precondition_frequency=2,
        start_preconditioning_step=3,
        max_preconditioner_dim=4,
        grafting="adam",
    )


@pytest.mark.parametrize(
    "make", [_all_options, lambda ps: IdealizedShampoo(ps, lr=0.1, beta2=0.9, max_preconditioner_dim=4)]
)
def test_state_dict_round_trip_is_bitwise(make):
    shapes = [(5, 7), (3,), (6,), (2, 3, 5), ()]
    grads = [[randn(*s, seed=200 + 10 * t + i, dtype=torch.float32) for i, s in enumerate(shapes)] for t in range(6)]
    params = [randn(*s, seed=190 + i, dtype=torch.float32).requires_grad_(True) for i, s in enumerate(shapes)]
    opt = make(params)
    run(opt, params, grads[:3])
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    resumed_params = [p.detach().clone().requires_grad_(True) for p in params]
    resumed = make(resumed_params)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer))
    run(opt, params, grads[3:])
    run(resumed, resumed_params, grads[3:])
    for p, q in zip(params, resumed_params):
        assert torch.equal(p, q)
        s, r = opt.state[p], resumed.state[q]
        assert set(s) == set(r)
        for key in s:
            assert s[key].dtype == r[key].dtype and torch.equal(s[key], r[key]), key
    # the state of other shapes is refused with a clear error
    wrong = make([torch.zeros(s, requires_grad=True) for s in reversed(shapes)])
    with pytest.raises(ValueError, match="shape"):
        wrong.load_state_dict(opt.state_dict())


@pytest.mark.parametrize(
    "dtype,state_dtype",
    [(torch.float16, torch.float32), (torch.bfloat16, torch.float32), (torch.float32, torch.float32), (F64, F64)],
)
def test_statistics_dtype(dtype, state_dtype):
    for cls in (Shampoo, IdealizedShampoo):
        p = torch.ones(3, 2, dtype=dtype, requires_grad=True)
        opt = cls([p], lr=0.1)
        run(opt, [p], [[torch.full((3, 2), 0.5, dtype=dtype)]])
        assert all(v.dtype == state_dtype for k, v in opt.state[p].items() if k != "step")
        assert torch.isfinite(p).all()


@pytest.mark.parametrize("cls", [Shampoo, IdealizedShampoo])
def test_zero_first_gradient_then_fresh_first_step(cls):
    """C13's kind: a zero first gradient leaves W unchanged and the state finite; the next step is a fresh first.

    Shampoo with sums (its default) and IdealizedShampoo with beta2 = 0: an EMA counts the zero gradient as an
    observation, so with beta2 > 0 the next step legitimately differs from a fresh first step.
    """
    W0, G = randn(4, 6, seed=12), randn(4, 6, seed=13)
    kw = dict(lr=0.1) if cls is Shampoo else dict(lr=0.1, beta2=0.0)
    W = W0.clone().requires_grad_(True)
    opt = cls([W], **kw)
    run(opt, [W], [[torch.zeros(4, 6, dtype=F64)]])
    assert torch.equal(W.detach(), W0)
    assert all(torch.isfinite(v).all() for v in opt.state[W].values())
    run(opt, [W], [[G]])
    fresh = W0.clone().requires_grad_(True)
    run(cls([fresh], **kw), [fresh], [[G]])
    torch.testing.assert_close(W.detach(), fresh.detach(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make", [_all_options, lambda ps: IdealizedShampoo(ps, lr=0.1)])
def test_maximize_equals_minimizing_the_negated_gradient(make):
    grads = [randn(5, 3, seed=300 + t) for t in range(3)]
    W1 = randn(5, 3, seed=14).requires_grad_(True)
    W2 = W1.detach().clone().requires_grad_(True)
    opt1 = make([W1])
    opt1.param_groups[0]["maximize"] = True
    run(opt1, [W1], [[G] for G in grads])
    run(make([W2]), [W2], [[-G] for G in grads])
    assert torch.equal(W1, W2)


def test_float32_rank_deficient_statistics_do_not_amplify_rounding_noise():
    """A float32 g g^T has null eigenvalues of either sign at ~1e-7 |g|^2; floored at machine epsilon times
    lambda_max (psd_power's rtol) they cannot be amplified by eps^{-1/2} = 1e6 (which made this step ~100% wrong).
    """
    g = randn(50, seed=15, dtype=torch.float32)
    w = torch.zeros(50, requires_grad=True)
    run(Shampoo([w], lr=1.0), [w], [[g]])
    assert (w.detach() + g / g.norm()).norm() < 5e-3
    G = randn(20, 5, seed=16, dtype=torch.float32)
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    W = torch.zeros(20, 5, requires_grad=True)
    run(Shampoo([W], lr=1.0), [W], [[G]])
    assert (W.detach() + U @ Vh).norm() < 2e-4


def test_psd_power_relative_floor():
    values = torch.tensor([4.0, 1e-20, 0.0], dtype=F64)
    A = torch.diag(values)
    torch.testing.assert_close(fshampoo.psd_power(A, -0.5, 1e-12), torch.diag((values + 1e-12) ** -0.5))
    # rtol raises eigenvalues below rtol * lambda_max = 4e-10 to that floor, then eps is added
    floored = torch.tensor([4.0, 4e-10, 4e-10], dtype=F64)
    torch.testing.assert_close(fshampoo.psd_power(A, -0.5, 1e-12, rtol=1e-10), torch.diag((floored + 1e-12) ** -0.5))
    with pytest.raises(ValueError, match="rtol"):
        fshampoo.psd_power(A, -0.5, 1e-12, rtol=1.0)
