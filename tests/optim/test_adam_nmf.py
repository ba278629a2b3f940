"""AdamNMF (Appendix L.2) against a literal loop of its algorithm box, memory, and the full-rank limit.

The reference runs the box entry by entry on Python floats (R, A_t, B_t of step (b) by index loops, step (c)
elementwise), with the one documented reading of (124): B_t is normalized by the updated A_t^T 1_m (see
adaptim/linalg/nmf.py and tests/linalg/test_nmf.py for why). It never calls adaptim.linalg or functional.
"""

from __future__ import annotations

import math

import pytest
import torch

from adaptim.linalg.nmf import idiv
from adaptim.optim.adam_nmf import AdamNMF

F64 = torch.float64


def floored(values: list[float]) -> list[float]:
    """C = g^2 + max(1e-10 mean(g^2), 1e-30) over one matrix or vector (the documented floor)."""
    sq = [x * x for x in values]
    f = max(1e-10 * sum(sq) / len(sq), 1e-30)
    return [x + f for x in sq]


def initial_factors(shape, rank, init_range, dtype=F64):
    """L.2 step 1 as documented: Unif(0, init_range] from a generator seeded with 0, A drawn before B."""
    *lead, m, n = shape
    gen = torch.Generator().manual_seed(0)
    A = (1 - torch.rand((*lead, m, rank), generator=gen, dtype=dtype)) * init_range
    B = (1 - torch.rand((*lead, rank, n), generator=gen, dtype=dtype)) * init_range
    return A, B


class BoxReference:
    """The AdamNMF box for one parameter, literally (plus beta1, eps and decoupled weight decay as documented)."""

    def __init__(self, w, lr=1e-3, rank=1, init_range=1e-3, eps=1e-8, beta1=0.0, weight_decay=0.0):
        self.w = [float(x) for x in w.reshape(-1).tolist()]
        self.shape = tuple(w.shape)
        self.lr, self.eps, self.beta1, self.wd = lr, eps, beta1, weight_decay
        self.m = [0.0] * len(self.w)
        self.t = 0
        self.matrix = w.dim() >= 2
        if self.matrix:
            A, B = initial_factors(self.shape, rank, init_range)
            *_lead, mm, nn = self.shape
            self.mn = (mm, nn)
            self.A = A.reshape(-1, mm, rank).tolist()  # one [m][r] list per leading index
            self.B = B.reshape(-1, rank, nn).tolist()

    def em_round(self, C, A, B):
        m, n, r = len(A), len(B[0]), len(B)
        R = [[C[i][j] / sum(A[i][k] * B[k][j] for k in range(r)) for j in range(n)] for i in range(m)]
        A2 = [
            [A[i][k] * sum(R[i][j] * B[k][j] for j in range(n)) / sum(B[k][j] for j in range(n)) for k in range(r)]
            for i in range(m)
        ]
        B2 = [
            [B[k][j] * sum(A[i][k] * R[i][j] for i in range(m)) / sum(A2[i][k] for i in range(m)) for j in range(n)]
            for k in range(r)
        ]
        return A2, B2

    def step(self, g):
        self.t += 1
        g = [float(x) for x in g.reshape(-1).tolist()]
        den = [0.0] * len(g)
        if self.matrix:
            m, n = self.mn
            for b in range(len(self.A)):
                flat = floored(g[b * m * n : (b + 1) * m * n])
                C = [[flat[i * n + j] for j in range(n)] for i in range(m)]
                self.A[b], self.B[b] = self.em_round(C, self.A[b], self.B[b])
                r = len(self.B[b])
                for i in range(m):
                    for j in range(n):
                        ab = sum(self.A[b][i][k] * self.B[b][k][j] for k in range(r))
                        den[b * m * n + i * n + j] = math.sqrt(ab) + self.eps
        else:
            den = [math.sqrt(c) + self.eps for c in floored(g)]
        if self.beta1 > 0:
            self.m = [self.beta1 * a + (1 - self.beta1) * x for a, x in zip(self.m, g)]
            num = [a / (1 - self.beta1**self.t) for a in self.m]
        else:
            num = g
        self.w = [(1 - self.lr * self.wd) * w - self.lr * u / d for w, u, d in zip(self.w, num, den)]
        return torch.tensor(self.w, dtype=F64).reshape(self.shape)


SHAPES = [(3, 4), (4,), (2, 3, 2), (), (3, 4)]

CONFIGS = {
    "default": dict(),
    "rank2": dict(rank=2, lr=1e-2),
    "rank3_beta1": dict(rank=3, beta1=0.9, lr=1e-2),
    "wd_eps": dict(rank=2, weight_decay=0.1, eps=1e-3, init_range=0.5),
}


@pytest.mark.parametrize("foreach", [True, False], ids=["batched", "single"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_against_literal_box(name, foreach):
    kwargs = CONFIGS[name]
    gen = torch.Generator().manual_seed(list(CONFIGS).index(name))
    w1 = [torch.randn(s, generator=gen, dtype=F64) for s in SHAPES]
    params = [w.clone().requires_grad_(True) for w in w1]
    opt = AdamNMF([{"params": params, "foreach": foreach}], **kwargs)
    refs = [BoxReference(w, **kwargs) for w in w1]
    for _ in range(5):
        grads = [
            torch.randn(s, generator=gen, dtype=F64) * math.exp(float(torch.randn((), generator=gen))) for s in SHAPES
        ]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        for p, ref, g in zip(params, refs, grads):
            torch.testing.assert_close(p.detach(), ref.step(g), rtol=1e-9, atol=1e-12)


def test_documented_initialization():
    w = torch.zeros(3, 5, dtype=F64, requires_grad=True)
    opt = AdamNMF([w], rank=2, init_range=0.25)
    w.grad = torch.zeros(3, 5, dtype=F64)
    st = opt._init_state(w, opt.param_groups[0])
    A, B = initial_factors((3, 5), 2, 0.25)
    assert torch.equal(st["nmf_a"], A) and torch.equal(st["nmf_b"], B)
    assert float(A.min()) > 0 and float(A.max()) <= 0.25 and float(B.min()) > 0 and float(B.max()) <= 0.25


def test_em_step_inside_the_optimizer_never_increases_the_fit_error():
    """On a fixed gradient, each step's one EM round (124) does not increase IDiv(G^2 + floor, A_t B_t)."""
    gen = torch.Generator().manual_seed(1)
    for _trial in range(10):
        m, n = torch.randint(2, 7, (2,), generator=gen).tolist()
        r = int(torch.randint(1, 4, (1,), generator=gen))
        G = torch.randn(m, n, generator=gen, dtype=F64)
        G[torch.rand(m, n, generator=gen) < 0.2] = 0.0
        w = torch.zeros(m, n, dtype=F64, requires_grad=True)
        opt = AdamNMF([w], rank=r)
        C = torch.tensor(floored(G.reshape(-1).tolist()), dtype=F64).reshape(m, n)
        prev = math.inf
        for _ in range(20):
            w.grad = G.clone()
            opt.step()
            st = opt.state[w]
            cur = float(idiv(C, st["nmf_a"] @ st["nmf_b"]))
            assert cur <= prev + 1e-12 * (1 + float(C.sum()))
            prev = cur


# ------------------------------------------------------------------------------------------- the full rank
def adam_beta2_zero_step(w, G, lr, eps):
    """torch.optim.Adam with betas (0, 0): v_t = g_t^2, the step lr g / (|g| + eps)."""
    p = w.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr, betas=(0.0, 0.0), eps=eps)
    p.grad = G.clone()
    opt.step()
    return w.detach() - p.detach()


@pytest.mark.parametrize("m,n", [(3, 5), (5, 3), (4, 4)])
def test_full_rank_exact_factorization_is_a_fixed_point_giving_adam_scaling(m, n):
    """r = min(m, n): G^2 always has an exact nonnegative factorization (A = I, B = G^2 or A = G^2, B = I). It is
    a fixed point of the EM round (R = 1), so from it AdamNMF's step is exactly the elementwise
    lr g / (sqrt(C) + eps), C = g^2 + floor: Adam with beta2 = 0 (no EMA is kept) up to the documented floor
    (relative 1e-10): the full-rank limit of the second moment."""
    gen = torch.Generator().manual_seed(m * 10 + n)
    G = torch.randn(m, n, generator=gen, dtype=F64)
    r = min(m, n)
    w = torch.randn(m, n, generator=gen, dtype=F64, requires_grad=True)
    opt = AdamNMF([w], lr=1e-2, rank=r, eps=1e-8)
    C = torch.tensor(floored(G.reshape(-1).tolist()), dtype=F64).reshape(m, n)
    opt.state[w].update(opt._init_state(w.detach(), opt.param_groups[0]))
    eye = torch.eye(r, dtype=F64)
    opt.state[w]["nmf_a"].copy_(eye if m <= n else C)
    opt.state[w]["nmf_b"].copy_(C if m <= n else eye)
    before = w.detach().clone()
    w.grad = G.clone()
    opt.step()
    step = before - w.detach()
    torch.testing.assert_close(step, 1e-2 * G / (C.sqrt() + 1e-8), rtol=1e-12, atol=0)
    torch.testing.assert_close(step, adam_beta2_zero_step(before, G, 1e-2, 1e-8), rtol=1e-4, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_r_converges_to_adam_scaling_on_a_rank_r_square(seed):
    """From the default start, a fixed gradient whose G^2 has nonnegative rank r: after enough warm-started EM
    rounds the step approaches lr G / |G| elementwise at rank r, but not at rank 1."""
    gen = torch.Generator().manual_seed(seed)
    G2 = (torch.rand(6, 2, generator=gen, dtype=F64) + 0.1) @ (torch.rand(2, 5, generator=gen, dtype=F64) + 0.1)
    G = G2.sqrt() * torch.randn(6, 5, generator=gen, dtype=F64).sign()

    def last_step(rank, steps=400):
        w = torch.zeros(6, 5, dtype=F64, requires_grad=True)
        opt = AdamNMF([w], lr=1.0, rank=rank, eps=0.0)
        for _ in range(steps):
            before = w.detach().clone()
            w.grad = G.clone()
            opt.step()
        return before - w.detach()

    assert float((last_step(2) - G.sign()).abs().max()) < 0.05
    assert float((last_step(1, 20) - G.sign()).abs().max()) > 0.05


# -------------------------------------------------------------------------------------------------- memory
def state_floats(opt):
    return sum(v.numel() for st in opt.state.values() for k, v in st.items() if k != "step")


@pytest.mark.parametrize("m,n,r", [(7, 5, 1), (4, 9, 3), (1, 6, 2)])
def test_state_is_r_times_m_plus_n_floats(m, n, r):
    w = torch.randn(m, n, requires_grad=True)
    opt = AdamNMF([w], rank=r)
    w.grad = torch.randn(m, n)
    opt.step()
    assert state_floats(opt) == r * (m + n)
    w2 = torch.randn(m, n, requires_grad=True)
    opt2 = AdamNMF([w2], rank=r, beta1=0.9)
    w2.grad = torch.randn(m, n)
    opt2.step()
    assert state_floats(opt2) == r * (m + n) + m * n


def test_vector_rule_keeps_no_factors_and_is_the_exact_rank1_matrix_rule():
    gen = torch.Generator().manual_seed(3)
    v = torch.randn(7, generator=gen, dtype=F64, requires_grad=True)
    row = v.detach().clone().view(1, 7).requires_grad_(True)
    ov, orow = AdamNMF([v], lr=0.1), AdamNMF([row], lr=0.1)
    for _ in range(3):
        g = torch.randn(7, generator=gen, dtype=F64)
        v.grad, row.grad = g.clone(), g.view(1, 7).clone()
        before = v.detach().clone()
        ov.step()
        orow.step()
        torch.testing.assert_close(v.detach(), row.detach().view(7), rtol=1e-12, atol=1e-14)
        C = torch.tensor(floored(g.tolist()), dtype=F64)
        torch.testing.assert_close(before - v.detach(), 0.1 * g / (C.sqrt() + 1e-8), rtol=1e-12, atol=0)
        torch.testing.assert_close(before - v.detach(), adam_beta2_zero_step(before, g, 0.1, 1e-8), rtol=1e-4, atol=0)
    assert state_floats(ov) == 0


# ---------------------------------------------------------------------------------------------- behaviour
def test_weight_decay_is_decoupled_and_lr_follows_a_scheduler():
    w = torch.full((3, 4), 2.0, dtype=F64, requires_grad=True)
    opt = AdamNMF([w], lr=0.1, weight_decay=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5**k)
    expected = 2.0
    for k in range(3):
        w.grad = torch.zeros(3, 4, dtype=F64)  # zero gradient: only the decay (1 - lr_t wd) acts
        opt.step()
        expected *= 1 - 0.1 * 0.5**k * 0.5
        torch.testing.assert_close(w.detach(), torch.full((3, 4), expected, dtype=F64), rtol=1e-14, atol=0)
        sched.step()
    assert opt.param_groups[0]["initial_lr"] == 0.1


def test_batched_and_single_agree_with_uneven_step_counts():
    gen = torch.Generator().manual_seed(4)
    w1 = [torch.randn(3, 4, generator=gen) for _ in range(3)] + [torch.randn(5, generator=gen)]
    runs = []
    for foreach in (True, False):
        params = [w.clone().requires_grad_(True) for w in w1]
        opt = AdamNMF([{"params": params, "foreach": foreach}], rank=2, beta1=0.9, lr=1e-2)
        g2 = torch.Generator().manual_seed(5)
        for k in range(6):
            for i, p in enumerate(params):
                p.grad = None if (i == 1 and k < 3) else torch.randn(p.shape, generator=g2)
            opt.step()
        runs.append(params)
    for a, b in zip(*runs):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-6, atol=1e-7)


def test_state_dict_round_trip_is_bitwise():
    gen = torch.Generator().manual_seed(6)
    shapes = [(4, 5), (2, 3, 3), (6,)]
    params = [torch.randn(s, generator=gen, requires_grad=True) for s in shapes]
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(8)]
    opt = AdamNMF(params, rank=2, beta1=0.9, lr=1e-2)
    for g in grads[:4]:
        for p, gi in zip(params, g):
            p.grad = gi.clone()
        opt.step()
    params2 = [p.detach().clone().requires_grad_(True) for p in params]
    opt2 = AdamNMF(params2, rank=2, beta1=0.9, lr=1e-2)
    opt2.load_state_dict(opt.state_dict())
    for g in grads[4:]:
        for p, p2, gi in zip(params, params2, g):
            p.grad, p2.grad = gi.clone(), gi.clone()
        opt.step()
        opt2.step()
    for p, p2 in zip(params, params2):
        assert torch.equal(p, p2)


def test_bf16_params_give_finite_results():
    gen = torch.Generator().manual_seed(7)
    p = torch.randn(8, 6, generator=gen).to(torch.bfloat16).requires_grad_(True)
    opt = AdamNMF([p], rank=2, beta1=0.9, lr=1e-2)
    for _ in range(5):
        p.grad = torch.randn(8, 6, generator=gen).to(torch.bfloat16)
        opt.step()
    assert p.dtype == torch.bfloat16 and bool(p.isfinite().all())
    assert opt.state[p]["nmf_a"].dtype == torch.float32


def test_vanishing_gradient_rows_stay_finite_and_recover_in_float32():
    w = torch.randn(4, 5, requires_grad=True)
    opt = AdamNMF([w], rank=2)
    for k in range(6):
        g = torch.randn(4, 5) * 1e2
        if k < 3:
            g[1] = 0.0
            g[:, 2] = 0.0
        w.grad = g
        opt.step()
        assert bool(w.isfinite().all())
    st = opt.state[w]
    assert bool((st["nmf_a"] > 0).all()) and bool((st["nmf_b"] > 0).all())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lr=-1.0), "lr"),
        (dict(rank=0), "rank"),
        (dict(rank=1.5), "rank"),
        (dict(init_range=0.0), "init_range"),
        (dict(eps=-1.0), "eps"),
        (dict(beta1=1.0), "beta1"),
        (dict(weight_decay=-0.1), "weight_decay"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdamNMF([torch.zeros(2, 2, requires_grad=True)], **kwargs)


def test_complex_parameters_are_refused():
    with pytest.raises(TypeError, match="complex"):
        AdamNMF([torch.zeros(2, 2, dtype=torch.complex64, requires_grad=True)])
