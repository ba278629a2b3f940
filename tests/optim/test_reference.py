"""Every update rule of issue 2 against a literal reference loop written here from the notes' equations.

The references work coordinate by coordinate on plain Python floats (IEEE double), or with numpy/scipy for the
dense matrix root of full-matrix AdaGrad; they never call ``adaptim.functional``. The optimizers run in float64,
so the only differences are the order of rounding: RTOL = 1e-12, ATOL = 1e-14 (parameters are of order 1).
Equation numbers are the notes' (Sections 2-4.6 and Figure 1).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import torch

import adaptim

F64 = torch.float64
RTOL, ATOL = 1e-12, 1e-14
SHAPES = [(3,), (2, 4), ()]  # a vector, a matrix, a scalar; the second gets small gradients (eps matters)
T = 30


def flat(tensors) -> list[float]:
    return [x for t in tensors for x in t.detach().reshape(-1).tolist()]


def close(got, want, rtol=RTOL, atol=ATOL) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=rtol, atol=atol)


def random_problem(seed: int, shapes=SHAPES, steps: int = T):
    """w_1 and g_1..g_T, standard normal; each step's gradients scaled by exp(N(0,1)) (the second moment rises
    and falls, so AMSGrad's max is active) and the second parameter's by 1e-2 (so eps matters)."""
    gen = torch.Generator().manual_seed(seed)
    w1 = [torch.randn(s, generator=gen, dtype=F64) for s in shapes]
    grads = []
    for _ in range(steps):
        scale = math.exp(float(torch.randn((), generator=gen, dtype=F64)))
        grads.append(
            [torch.randn(s, generator=gen, dtype=F64) * scale * (1e-2 if i == 1 else 1.0) for i, s in enumerate(shapes)]
        )
    return w1, grads


def cosine(opt):
    return adaptim.warmup_cosine(opt, warmup_steps=5, total_steps=T, final_scale=0.1)


def run(make, w1, grads, schedule=None):
    """Run ``make(params)`` on the fixed gradients; return (lr of each step, flattened w_2 .. w_{T+1})."""
    params = [w.clone().requires_grad_(True) for w in w1]
    opt = make(params)
    sched = schedule(opt) if schedule else None
    lrs, traj = [], []
    for g in grads:
        for p, gi in zip(params, g):
            p.grad = gi.clone()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched:
            sched.step()
        traj.append(flat(params))
    return lrs, traj


def check_schedule_moves(lrs, peak):
    """Guard: the schedule really warms up and decays, so s_t != 1 is exercised."""
    assert lrs[0] == pytest.approx(peak / 5) and max(lrs) == pytest.approx(peak) and lrs[-1] < 0.5 * peak


# ------------------------------------------------------------------------------------------ a real loss
_gen = torch.Generator().manual_seed(7)
X = torch.randn(16, 3, generator=_gen, dtype=F64)
Y = (torch.rand(16, generator=_gen, dtype=F64) < 0.5).to(F64)


def logreg_loss(w, b):
    """Mean logistic loss of z = X w + b with labels Y in {0, 1}."""
    z = X @ w + b
    return (torch.nn.functional.softplus(z) - Y * z).mean()


def logreg_grad(coords: list[float]) -> list[float]:
    """The same gradient written out: d/dw_j = mean_n (sigma(z_n) - y_n) x_nj, d/db = mean_n (sigma(z_n) - y_n)."""
    w, b = coords[:3], coords[3]
    xs, ys, n = X.tolist(), Y.tolist(), X.shape[0]
    r = [1 / (1 + math.exp(-(sum(wj * xj for wj, xj in zip(w, x)) + b))) - y for x, y in zip(xs, ys)]
    return [sum(r[k] * xs[k][j] for k in range(n)) / n for j in range(3)] + [sum(r) / n]


def run_closure(make, w1, steps, schedule=None):
    """Run on logreg_loss with a closure; return (lrs, w_2..w_{T+1}, closure points, momentum buffers)."""
    params = [w.clone().requires_grad_(True) for w in w1]
    opt = make(params)
    sched = schedule(opt) if schedule else None
    lrs, traj, points, bufs = [], [], [], []

    def closure():
        points.append(flat(params))
        opt.zero_grad()
        loss = logreg_loss(*params)
        loss.backward()
        return loss

    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step(closure)
        if sched:
            sched.step()
        traj.append(flat(params))
        bufs.append(
            flat(opt.state[p]["momentum_buffer"] for p in params) if "momentum_buffer" in opt.state[params[0]] else None
        )
    return lrs, traj, points, bufs


W1_LOGREG = [torch.tensor([0.5, -1.0, 2.0], dtype=F64), torch.tensor(0.3, dtype=F64)]


# ------------------------------------------------------------------------------- Figure 1: the Adam family
def figure1(
    w1,
    grad_at,
    s,
    *,
    eta_max,
    lam_max,
    betas,
    eps,
    amsgrad=False,
    nesterov=False,
    decoupled=False,
    eps_inside_sqrt=False,
    l2=0.0,
    atan2=None,
):
    """Figure 1, steps 1-2(e), literally; returns w_2 .. w_{T+1}.

    ``l2`` adds l2 * w to g_t (torch.optim.Adam's weight_decay); ``atan2 = (a, b)`` replaces m/den in (e) by
    a * atan2(mbar, b sqrt(vbar)) (Section 4.1.2 and footnote 4). eps_inside_sqrt: den = sqrt(vbar + eps) as in
    Figure 1 (e); otherwise den = sqrt(vbar) + eps (Section 4.1.1).
    """
    b1, b2 = betas
    d = len(w1)
    w, m, v, vmax = list(w1), [0.0] * d, [0.0] * d, [0.0] * d  # step 1
    out = []
    for t in range(1, len(s) + 1):
        g = grad_at(t, w)  # (a)
        g = [gi + l2 * wi for gi, wi in zip(g, w)]
        eta = s[t - 1] * eta_max  # (d)
        lam = s[t - 1] * lam_max if decoupled else eta * lam_max
        new = []
        for i in range(d):
            m[i] = b1 * m[i] + (1 - b1) * g[i]  # (b)
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            if nesterov:
                mbar = b1 / (1 - b1 ** (t + 1)) * m[i] + (1 - b1) / (1 - b1**t) * g[i]
            else:
                mbar = m[i] / (1 - b1**t)
            vbar = v[i] / (1 - b2**t)
            vmax[i] = max(vmax[i], vbar)
            if amsgrad:  # (c)
                vbar = vmax[i]
            if atan2 is not None:
                a, bb = atan2
                new.append((1 - lam) * w[i] - eta * a * math.atan2(mbar, bb * math.sqrt(vbar)))
            else:  # (e)
                den = math.sqrt(vbar + eps) if eps_inside_sqrt else math.sqrt(vbar) + eps
                new.append((1 - lam) * w[i] - eta / den * mbar)
        w = new
        out.append(list(w))
    return out


def fixed(grads):
    return lambda t, w: flat(grads[t - 1])


FLAGS = list(itertools.product([False, True], repeat=4))
ADAMW = dict(lr=0.05, betas=(0.9, 0.99), eps=1e-3, weight_decay=0.2)


@pytest.mark.parametrize("amsgrad,nesterov,decoupled,inside", FLAGS)
def test_adamw_figure1_every_flag_under_warmup_cosine(amsgrad, nesterov, decoupled, inside):
    w1, grads = random_problem(seed=1)
    flags = dict(amsgrad=amsgrad, nesterov=nesterov, eps_inside_sqrt=inside)
    lrs, got = run(lambda p: adaptim.AdamW(p, **ADAMW, independent_weight_decay=decoupled, **flags), w1, grads, cosine)
    check_schedule_moves(lrs, ADAMW["lr"])
    s = [lr / ADAMW["lr"] for lr in lrs]  # s_t = lr_t / initial lr
    want = figure1(
        flat(w1), fixed(grads), s, eta_max=0.05, lam_max=0.2, betas=(0.9, 0.99), eps=1e-3, decoupled=decoupled, **flags
    )
    close(got, want)


def test_figure1_inputs_exercise_every_flag():
    """Guard for the test above: each of the 16 flag combinations gives a different trajectory on its inputs."""
    w1, grads = random_problem(seed=1)
    opt = torch.optim.SGD([torch.zeros(1)], lr=1.0)  # only to read off s_t of the schedule
    sched = cosine(opt)
    s = []
    for _ in range(T):
        s.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    finals = [
        figure1(
            flat(w1),
            fixed(grads),
            s,
            eta_max=0.05,
            lam_max=0.2,
            betas=(0.9, 0.99),
            eps=1e-3,
            amsgrad=a,
            nesterov=n,
            decoupled=d,
            eps_inside_sqrt=e,
        )[-1]
        for a, n, d, e in FLAGS
    ]
    for x, y in itertools.combinations(finals, 2):
        assert max(abs(p - q) for p, q in zip(x, y)) > 1e-6


@pytest.mark.parametrize("amsgrad,nesterov", list(itertools.product([False, True], repeat=2)))
def test_adamw_figure1_on_a_real_loss_with_closure(amsgrad, nesterov):
    kw = dict(
        lr=0.1,
        betas=(0.8, 0.9),
        eps=1e-4,
        weight_decay=0.1,
        amsgrad=amsgrad,
        nesterov=nesterov,
        independent_weight_decay=True,
        eps_inside_sqrt=True,
    )
    lrs, got, _, _ = run_closure(lambda p: adaptim.AdamW(p, **kw), W1_LOGREG, T, cosine)
    s = [lr / 0.1 for lr in lrs]
    want = figure1(
        flat(W1_LOGREG),
        lambda t, w: logreg_grad(w),
        s,
        eta_max=0.1,
        lam_max=0.1,
        betas=(0.8, 0.9),
        eps=1e-4,
        amsgrad=amsgrad,
        nesterov=nesterov,
        decoupled=True,
        eps_inside_sqrt=True,
    )
    close(got, want)


@pytest.mark.parametrize("amsgrad,nesterov,inside", list(itertools.product([False, True], repeat=3)))
def test_adam_l2_figure1_every_flag(amsgrad, nesterov, inside):
    w1, grads = random_problem(seed=2)
    flags = dict(amsgrad=amsgrad, nesterov=nesterov, eps_inside_sqrt=inside)
    lrs, got = run(
        lambda p: adaptim.Adam(p, lr=0.05, betas=(0.9, 0.99), eps=1e-3, weight_decay=0.3, **flags), w1, grads, cosine
    )
    check_schedule_moves(lrs, 0.05)
    want = figure1(
        flat(w1),
        fixed(grads),
        [lr / 0.05 for lr in lrs],
        eta_max=0.05,
        lam_max=0.0,
        betas=(0.9, 0.99),
        eps=1e-3,
        l2=0.3,
        **flags,
    )
    close(got, want)


# ------------------------------------------------------------------------------------- 4.1.2 Adam-atan2
@pytest.mark.parametrize("a,b", [(1.0, 1.0), (2.0, 0.5)])
@pytest.mark.parametrize("wd", [0.0, 0.2])
def test_adam_atan2_reference(a, b, wd):
    w1, grads = random_problem(seed=3)
    lrs, got = run(
        lambda p: adaptim.AdamAtan2(p, lr=0.05, betas=(0.9, 0.99), weight_decay=wd, a=a, b=b), w1, grads, cosine
    )
    want = figure1(
        flat(w1),
        fixed(grads),
        [lr / 0.05 for lr in lrs],
        eta_max=0.05,
        lam_max=wd,
        betas=(0.9, 0.99),
        eps=0.0,
        atan2=(a, b),
    )
    close(got, want)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_atan2_zero_gradient_from_the_start(wd):
    """atan2(0, 0) = 0: zero gradients leave the parameters unchanged (only decayed by (1 - lr wd) per step)."""
    w1 = [torch.tensor([1.0, -2.0, 0.5], dtype=F64), torch.ones(2, 2, dtype=F64)]
    params = [w.clone().requires_grad_(True) for w in w1]
    opt = adaptim.AdamAtan2(params, lr=0.1, weight_decay=wd)
    for t in range(1, 6):
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
        for p, w in zip(params, w1):
            if wd == 0:
                assert torch.equal(p.detach(), w)
            else:
                close(flat([p]), flat([w * (1 - 0.1 * wd) ** t]), rtol=1e-14)
    assert all(torch.isfinite(v).all() for st in opt.state.values() for v in st.values())
    # a coordinate whose gradient stays zero is not moved while the others are
    p = torch.tensor([1.0, 1.0], dtype=F64, requires_grad=True)
    opt = adaptim.AdamAtan2([p], lr=0.1)
    for _ in range(3):
        p.grad = torch.tensor([0.0, 0.7], dtype=F64)
        opt.step()
    assert p[0].item() == 1.0 and p[1].item() < 1.0


@pytest.mark.parametrize("b", [0.5, 1.0, 3.0])
def test_adam_atan2_footnote_knobs(b):
    """Footnote 4: at t = 1, |mbar| = sqrt(vbar), so a = 1/arctan(1/b) gives a step of exactly lr, a = b = 1
    gives lr * pi/4; and a = b large gives Adam's mbar/sqrt(vbar) (eps = 0) when |mbar| << b sqrt(vbar)."""
    g = torch.tensor([0.3, -2.0, 1e-3], dtype=F64)
    for a, expected in [(1 / math.atan(1 / b), 1.0), (1.0, math.atan(1 / b))]:
        p = torch.zeros(3, dtype=F64, requires_grad=True)
        p.grad = g.clone()
        adaptim.AdamAtan2([p], lr=0.1, a=a, b=b).step()
        close(flat([p]), flat([-0.1 * expected * torch.sign(g)]), rtol=1e-14)
    w1, grads = random_problem(seed=4, steps=10)
    _, atan = run(lambda p: adaptim.AdamAtan2(p, lr=0.05, a=1e3, b=1e3), w1, grads)
    _, adam = run(lambda p: adaptim.Adam(p, lr=0.05, eps=0.0), w1, grads)
    close(atan, adam, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------- (45) RMSProp
def rmsprop_reference(w1, grads, etas, *, betas, eps, wd):
    """(45) with eps outside the root: m_t = b1 m + (1-b1) g, v_t = b2 v + (1-b2) g^2, w -= eta m_t/(sqrt(v_t)+eps)."""
    b1, b2 = betas
    w, m, v = list(w1), [0.0] * len(w1), [0.0] * len(w1)
    out = []
    for eta, gt in zip(etas, grads):
        g = [gi + wd * wi for gi, wi in zip(flat(gt), w)]
        for i in range(len(w)):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            w[i] = w[i] - eta * m[i] / (math.sqrt(v[i]) + eps)
        out.append(list(w))
    return out


@pytest.mark.parametrize("beta1", [0.0, 0.9])
@pytest.mark.parametrize("eps,wd", [(1e-8, 0.0), (1e-3, 0.1)])
def test_rmsprop_reference(beta1, eps, wd):
    w1, grads = random_problem(seed=5)
    kw = dict(betas=(beta1, 0.95), eps=eps)
    lrs, got = run(lambda p: adaptim.RMSProp(p, lr=0.01, weight_decay=wd, **kw), w1, grads, cosine)
    close(got, rmsprop_reference(flat(w1), grads, lrs, wd=wd, **kw))


# ------------------------------------------------------------------------------------ (44) diagonal AdaGrad
def adagrad_reference(w1, grads, etas, *, eps, init, wd):
    """(44) with eps outside the root and S_0 = init: w_i -= eta_t g_i / (sqrt(init + sum_l g_{l,i}^2) + eps)."""
    w, acc = list(w1), [init] * len(w1)
    out = []
    for eta, gt in zip(etas, grads):
        g = [gi + wd * wi for gi, wi in zip(flat(gt), w)]
        for i in range(len(w)):
            acc[i] += g[i] ** 2
            w[i] -= eta * g[i] / (math.sqrt(acc[i]) + eps)
        out.append(list(w))
    return out


@pytest.mark.parametrize("eps,init,wd", [(0.0, 0.0, 0.0), (1e-10, 0.0, 0.0), (1e-3, 0.5, 0.1)])
def test_adagrad_reference(eps, init, wd):
    w1, grads = random_problem(seed=6)
    lrs, got = run(
        lambda p: adaptim.AdaGrad(p, lr=0.1, eps=eps, initial_accumulator_value=init, weight_decay=wd),
        w1,
        grads,
        cosine,
    )
    close(got, adagrad_reference(flat(w1), grads, lrs, eps=eps, init=init, wd=wd))
    if eps == 0 and init == 0:  # the notes after (44): w_{2,i} = w_{1,i} - eta_1 sign(g_{1,i})
        sign = [math.copysign(1.0, g) for g in flat(grads[0])]
        close(got[0], [w - lrs[0] * sg for w, sg in zip(flat(w1), sign)], rtol=0, atol=1e-15)


# ------------------------------------------------------------------------------------- (33) AdaGrad-Norm
def adagrad_norm_reference(groups, grads, eps):
    """(33) per group: S_t = sum_{l<=t} ||g_l||^2 over all the group's coordinates, w -= D g_t/(sqrt(S_t)+eps).

    ``groups``: list of (D, [flat w of each param]); ``grads[t][group][param]`` flat lists."""
    ws = [[list(w) for w in ps] for _, ps in groups]
    sums = [0.0] * len(groups)
    out = []
    for gt in grads:
        for k, (D, _) in enumerate(groups):
            sums[k] += sum(x * x for g in gt[k] for x in g)
            eta = D / (math.sqrt(sums[k]) + eps)
            ws[k] = [[wi - eta * gi for wi, gi in zip(w, g)] for w, g in zip(ws[k], gt[k])]
        out.append([x for grp in ws for w in grp for x in w])
    return out, sums


def test_adagrad_norm_reference_two_params_one_group_and_two_groups():
    gen = torch.Generator().manual_seed(8)
    shapes = [[(3,), (2, 2)], [(4,)]]
    w1 = [[torch.randn(s, generator=gen, dtype=F64) for s in grp] for grp in shapes]
    grads = [
        [[torch.randn(s, generator=gen, dtype=F64) * (t + 1) ** -0.5 for s in grp] for grp in shapes] for t in range(T)
    ]
    grads[0][1] = [torch.zeros(4, dtype=F64)]  # a zero first gradient in group 2: no move, no NaN
    params = [[w.clone().requires_grad_(True) for w in grp] for grp in w1]
    opt = adaptim.AdaGradNorm([{"params": params[0], "lr": 0.7}, {"params": params[1], "lr": 0.3}])
    alone = [w.clone().requires_grad_(True) for w in w1[1]]
    opt_alone = adaptim.AdaGradNorm(alone, lr=0.3)
    got, got_alone = [], []
    for gt in grads:
        for grp, ggrp in zip(params, gt):
            for p, g in zip(grp, ggrp):
                p.grad = g.clone()
        for p, g in zip(alone, gt[1]):
            p.grad = g.clone()
        opt.step()
        opt_alone.step()
        got.append(flat(params[0] + params[1]))
        got_alone.append(flat(alone))
    assert got[0][7:] == flat(w1[1])
    want, sums = adagrad_norm_reference(
        [(0.7, [flat([w]) for w in w1[0]]), (0.3, [flat([w1[1][0]])])],
        [[[flat([g]) for g in grp] for grp in gt] for gt in grads],
        eps=1e-10,
    )
    close(got, want)
    close([g["sum_sq"] for g in opt.param_groups], sums)
    # the groups are independent: group 2 moves exactly as when it is optimized alone
    assert [row[7:] for row in got] == got_alone


# ------------------------------------------------------------------------------- 3.2.1 full-matrix AdaGrad
@pytest.mark.parametrize("eps,atol", [(1e-2, 1e-14), (1e-4, 1e-13), (1e-10, 1e-10)])
def test_full_matrix_adagrad_dense_reference(eps, atol):
    """w <- w - D (O_t + eps I)^{-1/2} g_t, O_t = sum_{l<=t} g_l g_l^T on each row-major-flattened parameter;
    the reference takes scipy's Schur-based sqrtm of O_t + eps I and solves with it (the optimizer uses eigh).
    Until O_t has full rank (t < d) the damped root has condition number ~1/sqrt(eps), which amplifies rounding
    in the null directions: atol grows from 1e-14 (eps = 1e-2) to 1e-10 (eps = 1e-10, the default)."""
    shapes = [(4,), (2, 3)]
    w1, grads = random_problem(seed=9, shapes=shapes, steps=12)
    _, got = run(lambda p: adaptim.FullMatrixAdaGrad(p, lr=0.5, eps=eps), w1, grads)
    ws = [w.numpy().reshape(-1).copy() for w in w1]
    outer = [np.zeros((w.size, w.size)) for w in ws]
    want = []
    for gt in grads:
        for k, g in enumerate(gt):
            gv = g.numpy().reshape(-1)
            outer[k] += np.outer(gv, gv)
            root = scipy.linalg.sqrtm(outer[k] + eps * np.eye(gv.size)).real
            ws[k] = ws[k] - 0.5 * np.linalg.solve(root, gv)
        want.append(np.concatenate(ws))
    close(got, want, rtol=1e-12, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1.0, 1e6, 1e12])
def test_full_matrix_adagrad_first_step_is_scale_free(dtype, scale):
    """The first step is -D (g g^T + eps I)^{-1/2} g = -D g / sqrt(||g||^2 + eps) (g is an eigenvector): a step of
    length D in g's direction at any gradient scale. Without a relative eigenvalue floor the rounding noise of
    the null eigenvalues is amplified by eps^{-1/2} and the step was 76x too long at scale 1e12."""
    g = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * scale
    p = torch.zeros(4, 3, dtype=dtype, requires_grad=True)
    p.grad = g.to(dtype)
    adaptim.FullMatrixAdaGrad([p], lr=0.5).step()
    want = -0.5 * g / math.sqrt(float(g.square().sum()) + 1e-10)
    torch.testing.assert_close(p.detach().double(), want, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- (21), (25)-(26), Section 2.3.1
def sgd_reference(w1, grads, etas, *, mu, wd, double_momentum=False):
    """(21) for mu = 0; Polyak (25)-(26), v_t = g_t + mu v_{t-1}, v_0 = 0, w -= eta_t v_t; with
    ``double_momentum`` the update of Section 2.3.1, w -= eta_t (g_t + mu v_t). L2: g_t += wd w_t."""
    w, v = list(w1), [0.0] * len(w1)
    out = []
    for eta, gt in zip(etas, grads):
        g = [gi + wd * wi for gi, wi in zip(flat(gt), w)]
        for i in range(len(w)):
            v[i] = g[i] + mu * v[i]
            w[i] -= eta * ((g[i] + mu * v[i]) if double_momentum else v[i])
        out.append(list(w))
    return out


@pytest.mark.parametrize("mu,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_sgd_plain_polyak_double_momentum_reference(mu, nesterov, wd):
    w1, grads = random_problem(seed=10)
    lrs, got = run(
        lambda p: adaptim.SGD(p, lr=0.05, momentum=mu, nesterov=nesterov, weight_decay=wd), w1, grads, cosine
    )
    close(got, sgd_reference(flat(w1), grads, lrs, mu=mu, wd=wd, double_momentum=nesterov))


def lookahead_reference(w1, etas, *, mu, wd):
    """(28)-(31): x_t = w_t - eta_t mu v_{t-1}; g'_t = grad l(x_t) + wd x_t; v_t = g'_t + mu v_{t-1};
    w_{t+1} = w_t - eta_t v_t. Returns (x_1..x_T, w_2..w_{T+1})."""
    w, v = list(w1), [0.0] * len(w1)
    xs, ws = [], []
    for eta in etas:
        x = [wi - eta * mu * vi for wi, vi in zip(w, v)]
        g = [gi + wd * xi for gi, xi in zip(logreg_grad(x), x)]
        v = [gi + mu * vi for gi, vi in zip(g, v)]
        w = [wi - eta * vi for wi, vi in zip(w, v)]
        xs.append(x)
        ws.append(w)
    return xs, ws


def piecewise(opt):  # a schedule that jumps up and down, far from constant
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: [1.0, 0.3, 1.5, 0.8][k % 4] / (1 + 0.1 * k))


@pytest.mark.parametrize("schedule", [cosine, piecewise])
@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_sgd_lookahead_is_literal_28_31_under_a_schedule(schedule, wd):
    make = lambda p: adaptim.SGD(p, lr=0.5, momentum=0.9, nesterov=True, lookahead=True, weight_decay=wd)
    lrs, got_w, got_x, _ = run_closure(make, W1_LOGREG, T, schedule)
    assert len(set(lrs)) > T // 2
    want_x, want_w = lookahead_reference(flat(W1_LOGREG), lrs, mu=0.9, wd=wd)
    close(got_x, want_x)  # the closure was evaluated at x_t
    close(got_w, want_w)  # the parameters hold w_t between steps


def test_lookahead_x_sequence_is_the_double_momentum_trajectory_at_constant_lr():
    """Section 2.3.1 (Lemma S.10): at constant eta and mu, SGD(nesterov=True) (double momentum) produces the
    look-ahead points x_t of (28), not w_t: its parameters before step t equal x_t, its velocities equal v_t.
    Under a changing eta_t the reparametrization is not exact (the notes say so); both are checked."""
    la = lambda p: adaptim.SGD(p, lr=0.5, momentum=0.9, nesterov=True, lookahead=True, weight_decay=0.05)
    dm = lambda p: adaptim.SGD(p, lr=0.5, momentum=0.9, nesterov=True, weight_decay=0.05)
    _, la_w, la_x, la_v = run_closure(la, W1_LOGREG, T)
    _, dm_w, dm_x, dm_v = run_closure(dm, W1_LOGREG, T)
    close(dm_x, la_x, rtol=1e-11)  # both closures see x_1 .. x_T
    close(dm_w[:-1], la_x[1:], rtol=1e-11)  # double momentum's parameters are x_{t+1} = w_{t+1} - eta mu v_t
    close(dm_v, la_v, rtol=1e-11)
    assert max(abs(a - b) for a, b in zip(dm_w[5], la_w[5])) > 1e-3  # w_t itself is a different sequence
    _, _, la_x, _ = run_closure(la, W1_LOGREG, T, piecewise)
    _, _, dm_x, _ = run_closure(dm, W1_LOGREG, T, piecewise)
    assert np.abs(np.asarray(dm_x) - np.asarray(la_x)).max() > 1e-6
