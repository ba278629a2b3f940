"""Adafactor (Section 4.7, (52); Section 4.7.1; Appendix K) against literal references, and cases C09, C10.

The reference below is written from the notes and the paper (Shazeer and Stern, 2018, Algorithm 4) with explicit
ones-vectors, outer products and Python-float RMS loops; it never calls adaptim.functional.
"""

from __future__ import annotations

import math

import pytest
import torch

from adaptim.functional.adafactor import factored_second_moment, rms_clip
from adaptim.linalg.nmf import idiv, rank1_nmf
from adaptim.optim.adafactor import Adafactor

F64 = torch.float64


# ------------------------------------------------------------------------------------------------ reference
def rms_literal(x: torch.Tensor) -> float:
    vals = x.reshape(-1).tolist()
    return math.sqrt(sum(v * v for v in vals) / len(vals))


def vhat_literal(G2sum_rows, G2sum_cols, corr):
    """(52): Vhat = c a s^T / (1_m^T a), entry by entry."""
    m, n = len(G2sum_rows), len(G2sum_cols)
    total = sum(G2sum_rows)
    return torch.tensor([[corr * G2sum_rows[i] * G2sum_cols[j] / total for j in range(n)] for i in range(m)], dtype=F64)


class AdafactorReference:
    """One parameter's Adafactor, literally: the five changes of 4.7.1 as plain if-branches."""

    def __init__(
        self,
        w,
        *,
        lr=1e-2,
        beta1=None,
        beta2=None,
        decay_rate=-0.8,
        eps=(1e-30, 1e-3),
        clip_threshold=1.0,
        relative_step=True,
        scale_parameter=True,
        warmup_init=False,
        factored=True,
        weight_decay=0.0,
    ):
        self.w = w.clone().to(F64)
        self.h = dict(
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            decay_rate=decay_rate,
            eps=eps,
            clip=clip_threshold,
            relative_step=relative_step,
            scale=scale_parameter,
            warmup=warmup_init,
            factored=factored,
            wd=weight_decay,
        )
        self.t = 0
        self.factored = factored and w.dim() >= 2
        lead = w.shape[:-2] if self.factored else ()
        self.a = {idx: [0.0] * w.shape[-2] for idx in _indices(lead)} if self.factored else None
        self.s = {idx: [0.0] * w.shape[-1] for idx in _indices(lead)} if self.factored else None
        self.v = torch.zeros_like(self.w)
        self.m = torch.zeros_like(self.w)

    def step(self, g, lr=None):
        h = self.h
        self.t += 1
        t = self.t
        g = g.to(F64)
        beta = h["beta2"] if h["beta2"] is not None else 1.0 - t ** h["decay_rate"]  # change (5)
        corr = 1.0 / (1.0 - h["beta2"] ** t) if h["beta2"] is not None else 1.0
        G2 = g * g + h["eps"][0]
        if self.factored:  # change (1), (52)
            vhat = torch.zeros_like(self.w)
            for idx in self.a:
                M = G2[idx]
                m, n = M.shape
                rows = (M @ torch.ones(n, dtype=F64)).tolist()
                cols = (M.T @ torch.ones(m, dtype=F64)).tolist()
                self.a[idx] = [beta * x + (1 - beta) * y for x, y in zip(self.a[idx], rows)]
                self.s[idx] = [beta * x + (1 - beta) * y for x, y in zip(self.s[idx], cols)]
                vhat[idx] = vhat_literal(self.a[idx], self.s[idx], corr)
        else:
            self.v = beta * self.v + (1 - beta) * G2
            vhat = corr * self.v
        if h["beta1"] is None:  # change (2)
            num = g
        else:
            self.m = h["beta1"] * self.m + (1 - h["beta1"]) * g
            num = self.m / (1 - h["beta1"] ** t)
        U = num / vhat.sqrt()
        if h["clip"] is not None:  # change (3)
            U = U / max(1.0, rms_literal(U) / h["clip"])
        lr = lr if lr is not None else h["lr"]  # the scheduled lr
        if h["relative_step"]:  # lr caps the relative step (torch's reading)
            rho = min(lr, 1e-6 * t, 1 / math.sqrt(t)) if h["warmup"] else min(lr, 1 / math.sqrt(t))
        else:
            rho = lr
        alpha = rho * max(h["eps"][1], rms_literal(self.w)) if h["scale"] else rho  # change (4)
        self.w = self.w - rho * h["wd"] * self.w - alpha * U
        return self.w


def _indices(lead):
    if len(lead) == 0:
        return [()]
    return [
        tuple(int(k) for k in idx)
        for idx in torch.cartesian_prod(*[torch.arange(s) for s in lead]).reshape(-1, len(lead)).tolist()
    ]


SHAPES = [(3, 4), (5,), (2, 3, 2), (), (3, 4)]


def problem(seed, steps=8, shapes=SHAPES):
    gen = torch.Generator().manual_seed(seed)
    w1 = [torch.randn(s, generator=gen, dtype=F64) for s in shapes]
    w1[-1] = w1[-1] * 1e-5  # RMS(W) below eps2: the floor of change (4) is used
    grads = [
        [torch.randn(s, generator=gen, dtype=F64) * math.exp(float(torch.randn((), generator=gen))) for s in shapes]
        for _ in range(steps)
    ]
    return w1, grads


CONFIGS = {
    "default": dict(),
    "unfactored": dict(factored=False),
    "beta1": dict(beta1=0.9),
    "no_clip": dict(clip_threshold=None),
    "clip_0.5": dict(clip_threshold=0.5),
    "no_scale": dict(scale_parameter=False),
    "beta2_ema": dict(beta2=0.999),
    "beta2_0.5": dict(beta2=0.5),
    "lr": dict(lr=0.05, relative_step=False),
    "warmup": dict(warmup_init=True),
    "relative_lr_0.5": dict(lr=0.5),  # rho_t = 0.5 for t <= 4, then 1/sqrt(t)
    "warmup_lr": dict(lr=3e-6, warmup_init=True),  # rho_t = 1e-6 t for t <= 3, then 3e-6
    "decay_rate": dict(decay_rate=-0.5),
    "weight_decay": dict(weight_decay=0.1),
    "all": dict(
        lr=0.03,
        relative_step=False,
        beta1=0.8,
        beta2=0.99,
        factored=False,
        clip_threshold=2.0,
        scale_parameter=False,
        weight_decay=0.01,
    ),
}


@pytest.mark.parametrize("foreach", [True, False], ids=["batched", "single"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_against_literal_reference(name, foreach):
    kwargs = CONFIGS[name]
    w1, grads = problem(list(CONFIGS).index(name))
    params = [w.clone().requires_grad_(True) for w in w1]
    opt = Adafactor([{"params": params, "foreach": foreach}], **kwargs)
    refs = [AdafactorReference(w, **kwargs) for w in w1]
    for g in grads:
        for p, gi in zip(params, g):
            p.grad = gi.clone()
        opt.step()
        for p, ref, gi in zip(params, refs, g):
            torch.testing.assert_close(p.detach(), ref.step(gi), rtol=1e-10, atol=1e-13)


def test_under_lr_scheduler_the_schedule_multiplies_lr():
    w1, grads = problem(11)
    params = [w.clone().requires_grad_(True) for w in w1]
    opt = Adafactor(params, lr=0.1, relative_step=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5**k)
    refs = [AdafactorReference(w, lr=0.1, relative_step=False) for w in w1]
    for k, g in enumerate(grads):
        for p, gi in zip(params, g):
            p.grad = gi.clone()
        opt.step()
        for p, ref, gi in zip(params, refs, g):
            torch.testing.assert_close(p.detach(), ref.step(gi, lr=0.1 * 0.5**k), rtol=1e-10, atol=1e-13)
        sched.step()
    assert opt.param_groups[0]["initial_lr"] == 0.1


# ------------------------------------------------------------------------------------------------------ (52)
@pytest.mark.parametrize("beta2", [0.9, None])
def test_vhat_is_52_and_the_rank1_idiv_minimizer_of_the_averaged_square(beta2):
    """Vhat_t = c a_t s_t^T / (1^T a_t); since a_t, s_t are the row/column sums of the EMA E_t of G^2 + eps1,
    Vhat_t is the closed-form rank-1 minimizer of IDiv(c E_t, .) (Section 4.7), beaten by no perturbation."""
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(4, 5, dtype=F64, requires_grad=True)
    opt = Adafactor([w], beta2=beta2)
    E = torch.zeros(4, 5, dtype=F64)
    for t in range(1, 7):
        g = torch.randn(4, 5, generator=gen, dtype=F64) * (1 + t)
        w.grad = g
        opt.step()
        beta = beta2 if beta2 is not None else 1 - t**-0.8
        corr = 1 / (1 - beta2**t) if beta2 is not None else 1.0
        E = beta * E + (1 - beta) * (g * g + 1e-30)
        st = opt.state[w]
        vhat = factored_second_moment(st["exp_avg_sq_row"], st["exp_avg_sq_col"], corr)
        a = [sum(float(E[i, j]) for j in range(5)) for i in range(4)]
        s = [sum(float(E[i, j]) for i in range(4)) for j in range(5)]
        torch.testing.assert_close(vhat, vhat_literal(a, s, corr), rtol=1e-12, atol=0)
        A, B = rank1_nmf(corr * E)
        torch.testing.assert_close(vhat, A @ B, rtol=1e-12, atol=0)
        best = float(idiv(corr * E, vhat))
        for _ in range(50):
            u = torch.exp(0.05 * torch.randn(4, 1, generator=gen, dtype=F64))
            v = torch.exp(0.05 * torch.randn(1, 5, generator=gen, dtype=F64))
            assert float(idiv(corr * E, vhat * u * v)) >= best - 1e-9 * best


# -------------------------------------------------------------------------------------------------- C10 clip
def test_c10_clip_rms4_to_1_and_leaves_rms_quarter():
    gen = torch.Generator().manual_seed(4)
    u = torch.randn(6, 7, generator=gen, dtype=F64)
    u4 = u * (4 / rms_literal(u))
    u_small = u * (0.25 / rms_literal(u))
    clipped = rms_clip(u4, 1.0)
    assert rms_literal(clipped) == pytest.approx(1.0, rel=1e-12)
    torch.testing.assert_close(clipped, u4 / 4, rtol=1e-14, atol=0)  # direction kept
    assert torch.equal(rms_clip(u_small, 1.0), u_small)
    assert torch.equal(rms_clip(u4, None), u4)


def test_c10_clip_inside_the_optimizer():
    """At t = 1 (beta_1 = 0) with lr 1 and no parameter scaling, the step is -RMSClip(G / sqrt(Vhat_1)).
    G = diag(1, sqrt(d)), d = 31 - sqrt(960), gives an update of RMS 4 exactly; E_11 in 4 x 4 one of RMS 1/4."""
    d = 31 - math.sqrt(960)

    def step(G, clip):
        w = torch.zeros_like(G, requires_grad=True)
        opt = Adafactor([w], lr=1.0, relative_step=False, scale_parameter=False, clip_threshold=clip)
        w.grad = G
        opt.step()
        return -w.detach()

    G4 = torch.tensor([[1.0, 0.0], [0.0, math.sqrt(d)]], dtype=F64)
    assert rms_literal(step(G4, None)) == pytest.approx(4.0, rel=1e-9)
    assert rms_literal(step(G4, 1.0)) == pytest.approx(1.0, rel=1e-12)
    torch.testing.assert_close(step(G4, 1.0), step(G4, None) / rms_literal(step(G4, None)), rtol=1e-12, atol=0)
    G_small = torch.zeros(4, 4, dtype=F64)
    G_small[0, 0] = 3.0
    assert rms_literal(step(G_small, 1.0)) == pytest.approx(0.25, rel=1e-12)
    assert torch.equal(step(G_small, 1.0), step(G_small, None))


# ------------------------------------------------------------------------------------------ C09 group's lr
@pytest.mark.parametrize("order", [(2.0, 3.0), (3.0, 2.0)])
@pytest.mark.parametrize("foreach", [True, False])
def test_c09_group_lr_untouched_and_step_follows_rms_of_each_weight(order, foreach):
    """Gradients with rank-1 G^2 make Vhat_1 = G^2 (+eps1), so U = sign(G) has RMS 1 and is not clipped:
    the displacement is exactly lr * RMS(W) * sign(G), whatever the order of the parameters."""
    gen = torch.Generator().manual_seed(5)
    params = []
    for r in order:
        s = torch.sign(torch.randn(3, 4, generator=gen, dtype=F64))
        params.append((s * r).requires_grad_(True))  # RMS exactly r
    opt = Adafactor([{"params": params, "foreach": foreach}], lr=1e-3, relative_step=False, scale_parameter=True)
    group_before = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    grads = [
        torch.outer(torch.tensor([1.0, -2.0, 0.5], dtype=F64), torch.tensor([1.0, 3.0, -1.0, 0.2], dtype=F64))
        for _ in params
    ]
    before = [p.detach().clone() for p in params]
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()
    assert opt.param_groups[0]["lr"] == 1e-3
    assert {k: v for k, v in opt.param_groups[0].items() if k != "params"} == group_before
    for r, p, b, g in zip(order, params, before, grads):
        torch.testing.assert_close(b - p.detach(), 1e-3 * r * torch.sign(g), rtol=1e-9, atol=0)


def test_relative_step_keeps_group_lr_and_warmup_runs():
    torch.manual_seed(0)
    for kwargs in (dict(), dict(warmup_init=True)):
        model = torch.nn.Linear(6, 3)
        opt = Adafactor(model.parameters(), **kwargs)
        x, y = torch.randn(32, 6), torch.randn(32, 3)
        first = None
        for _ in range(30):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            first = first if first is not None else loss.item()
            loss.backward()
            opt.step()
        assert opt.param_groups[0]["lr"] == 1e-2
        assert all(torch.isfinite(p).all() for p in model.parameters())
        if not kwargs:
            assert loss.item() < first  # warm-up's 1e-6 t steps are too small to show in 30


# ----------------------------------------------------------------------------------------------------- memory
def state_floats(opt):
    return sum(v.numel() for st in opt.state.values() for k, v in st.items() if k != "step")


@pytest.mark.parametrize("m,n", [(7, 5), (1, 9), (16, 3)])
def test_state_is_m_plus_n_floats(m, n):
    w = torch.randn(m, n, requires_grad=True)
    opt = Adafactor([w])
    w.grad = torch.randn(m, n)
    opt.step()
    assert state_floats(opt) == m + n
    assert set(opt.state[w]) == {"step", "exp_avg_sq_row", "exp_avg_sq_col"}


def test_state_sizes_of_other_shapes_and_switches():
    def count(shape, **kw):
        w = torch.randn(shape, requires_grad=True)
        opt = Adafactor([w], **kw)
        w.grad = torch.randn(shape)
        opt.step()
        return state_floats(opt)

    assert count((2, 3, 4)) == 2 * (3 + 4)  # factored over the last two dimensions
    assert count((5,)) == 5  # vectors are not factored
    assert count((3, 4), factored=False) == 12
    assert count((3, 4), beta1=0.9) == 3 + 4 + 12


# ------------------------------------------------------------------------------------------- torch / others
@pytest.mark.parametrize("lr,wd", [(1e-2, 0.1), (0.5, 0.0)])
def test_matches_torch_adafactor_where_the_math_coincides(lr, wd):
    """torch.optim.Adafactor(lr) is the configuration with that lr: relative step min(lr, 1/sqrt(t)) (the
    default lr = 1e-2 gives the paper's), RMS(W) scaling with floor 1e-3, clip at 1, beta_t = 1 - t^-0.8, no
    first moment. Decay: theirs is (1 - lr wd), ours (1 - rho_t wd), equal while rho_t = lr (lr = 1e-2, t <= 1e4);
    at lr = 0.5 the cap 1/sqrt(t) takes over from t = 5 on, so that run has no decay."""
    gen = torch.Generator().manual_seed(6)
    shapes = [(5, 7), (7,), (3, 2, 4)]
    w1 = [torch.randn(s, generator=gen) for s in shapes]
    ours = [w.clone().requires_grad_(True) for w in w1]
    theirs = [w.clone().requires_grad_(True) for w in w1]
    o1 = Adafactor(ours, **({} if lr == 1e-2 else {"lr": lr}), weight_decay=wd)
    o2 = torch.optim.Adafactor(theirs, lr=lr, weight_decay=wd)
    for _ in range(15):
        gs = [torch.randn(s, generator=gen) for s in shapes]
        for a, b, g in zip(ours, theirs, gs):
            a.grad, b.grad = g.clone(), g.clone()
        o1.step()
        o2.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)


def test_beta1_zero_equals_no_first_moment():
    w1, grads = problem(7)
    runs = []
    for beta1 in (None, 0.0):
        params = [w.clone().requires_grad_(True) for w in w1]
        opt = Adafactor(params, beta1=beta1)
        for g in grads:
            for p, gi in zip(params, g):
                p.grad = gi.clone()
            opt.step()
        runs.append(params)
    for a, b in zip(*runs):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-14, atol=0)


def test_batched_and_single_agree_with_uneven_step_counts():
    gen = torch.Generator().manual_seed(8)
    w1 = [torch.randn(3, 4, generator=gen) for _ in range(3)] + [torch.randn(4, generator=gen)]
    runs = []
    for foreach in (True, False):
        params = [w.clone().requires_grad_(True) for w in w1]
        opt = Adafactor([{"params": params, "foreach": foreach}], beta1=0.9, beta2=0.99)
        g2 = torch.Generator().manual_seed(9)
        for k in range(6):
            for i, p in enumerate(params):
                p.grad = None if (i == 1 and k < 3) else torch.randn(p.shape, generator=g2)
            opt.step()
        runs.append(params)
    for a, b in zip(*runs):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-6, atol=1e-7)


def test_bf16_params_finite_and_close_to_float32():
    gen = torch.Generator().manual_seed(10)
    w1 = torch.randn(8, 6, generator=gen)
    p16 = w1.to(torch.bfloat16).requires_grad_(True)
    p32 = w1.to(torch.bfloat16).float().requires_grad_(True)
    o16, o32 = Adafactor([p16], beta1=0.9), Adafactor([p32], beta1=0.9)
    for _ in range(5):
        g = torch.randn(8, 6, generator=gen)
        p16.grad, p32.grad = g.to(torch.bfloat16), g.to(torch.bfloat16).float()
        o16.step()
        o32.step()
    assert p16.dtype == torch.bfloat16 and bool(p16.isfinite().all())
    assert o16.state[p16]["exp_avg_sq_row"].dtype == torch.float32
    torch.testing.assert_close(p16.float(), p32.detach(), rtol=2e-2, atol=2e-2)


def test_zero_gradient_rows_and_columns_stay_finite_in_float32():
    w = torch.randn(4, 5, requires_grad=True)
    opt = Adafactor([w])
    for _ in range(3):
        g = torch.randn(4, 5) * 1e3
        g[1] = 0.0
        g[:, 2] = 0.0
        w.grad = g
        opt.step()
    w.grad = torch.zeros(4, 5)
    opt.step()
    assert bool(w.isfinite().all())
    for _ in range(2):  # the vanished row and column come back
        before = w.detach().clone()
        w.grad = torch.randn(4, 5) * 1e3
        opt.step()
        assert bool(w.isfinite().all())
        assert rms_literal(before - w.detach()) <= 1e-2 * max(1e-3, rms_literal(before)) * (1 + 1e-5)


def test_state_dict_round_trip_is_bitwise():
    w1, grads = problem(12)
    params = [w.clone().requires_grad_(True) for w in w1]
    opt = Adafactor(params, beta1=0.9)
    for g in grads[:4]:
        for p, gi in zip(params, g):
            p.grad = gi.clone()
        opt.step()
    params2 = [p.detach().clone().requires_grad_(True) for p in params]
    opt2 = Adafactor(params2, beta1=0.9)
    opt2.load_state_dict(opt.state_dict())
    for g in grads[4:]:
        for p, p2, gi in zip(params, params2, g):
            p.grad, p2.grad = gi.clone(), gi.clone()
        opt.step()
        opt2.step()
    for p, p2 in zip(params, params2):
        assert torch.equal(p, p2)


# ------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lr=1e-3, relative_step=False, warmup_init=True), "warmup_init"),
        (dict(beta1=1.0), "beta1"),
        (dict(beta2=-0.1), "beta2"),
        (dict(decay_rate=0.5), "decay_rate"),
        (dict(eps=(0.0, 1e-3)), r"eps\[0\]"),
        (dict(eps=(1e-30, -1.0)), r"eps\[1\]"),
        (dict(eps=1e-3), "pair"),
        (dict(clip_threshold=0.0), "clip_threshold"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(lr=-1.0, relative_step=False), "lr"),
        (dict(lr=-1.0), "lr"),
        (dict(lr=math.nan), "lr"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adafactor([torch.zeros(2, 2, requires_grad=True)], **kwargs)


def test_complex_parameters_are_refused():
    with pytest.raises(TypeError, match="complex"):
        Adafactor([torch.zeros(2, 2, dtype=torch.complex64, requires_grad=True)])
