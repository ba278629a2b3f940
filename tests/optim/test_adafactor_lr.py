"""Adafactor's lr is a number, the largest relative step (torch.optim.Adafactor's reading): rho_t = min(lr, 1/sqrt(t))
(warm-up: min(lr, 1e-6 t, 1/sqrt(t))), which at the default lr = 1e-2 is the paper's step of 4.7.1 bit for bit.

So every ``torch.optim.lr_scheduler`` runs on a default Adafactor (it failed with torch's bare
``TypeError: NoneType * float``), and ``lr=None`` -- the previous default -- still means the same run.

The step sizes are measured, not recomputed through adaptim: a constant rank-1 gradient G = u v^T makes the
factored Vhat_t = G^2 exactly (a_t and s_t stay the row and column sums of G^2), so U_t = sign(G), of RMS 1 and not
clipped, and the default step is W_{t+1} = (1 - rho_t wd) W_t - rho_t max(1e-3, RMS(W_t)) sign(G).
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from _assertions import assert_same, assert_same_state
from torch.optim.lr_scheduler import CosineAnnealingLR, ExponentialLR, OneCycleLR, StepLR

import adaptim
from adaptim.functional.adafactor import adafactor_step_size

F64 = torch.float64
STEPS = 15
U = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)
V = torch.tensor([0.7, -1.0, 2.0], dtype=F64)
G = torch.outer(U, V)  # rank 1, no zero entry


def rms(x: torch.Tensor) -> float:
    return math.sqrt(sum(v * v for v in x.reshape(-1).tolist()) / x.numel())


def _one_cycle(
    k: int, max_lr: float = 1e-2, total: int = STEPS, pct: float = 0.3, div: float = 25.0, final_div: float = 1e4
) -> float:
    """OneCycleLR's documented default policy (cosine annealing, two phases): from max_lr/div up to max_lr by step
    pct*total - 1, then down to max_lr/(div final_div) at step total - 1."""
    start, low = max_lr / div, max_lr / div / final_div
    peak_at = pct * total - 1

    def cos(a, b, frac):
        return b + (a - b) * (1 + math.cos(math.pi * frac)) / 2

    return cos(start, max_lr, k / peak_at) if k <= peak_at else cos(max_lr, low, (k - peak_at) / (total - 1 - peak_at))


def _warmup_cosine(k: int, warmup: int = 3, total: int = 12, final: float = 0.1) -> float:
    if k < warmup:
        return (k + 1) / warmup
    return final + (1 - final) * (1 + math.cos(math.pi * min(1.0, (k - warmup) / (total - warmup)))) / 2


#: name -> (build the scheduler on an optimizer whose lr is 1e-2, the lr of step k (0-based) by its documentation)
SCHEDULERS = {
    "StepLR": (lambda opt: StepLR(opt, step_size=3, gamma=0.5), lambda k: 1e-2 * 0.5 ** (k // 3)),
    "ExponentialLR": (lambda opt: ExponentialLR(opt, gamma=0.9), lambda k: 1e-2 * 0.9**k),
    "LambdaLR_warmup_cosine": (
        lambda opt: adaptim.warmup_cosine(opt, warmup_steps=3, total_steps=12, final_scale=0.1),
        lambda k: 1e-2 * _warmup_cosine(k),
    ),
    # no momentum to cycle (Adafactor has no "momentum" or "betas")
    "OneCycleLR": (lambda opt: OneCycleLR(opt, max_lr=1e-2, total_steps=STEPS, cycle_momentum=False), _one_cycle),
    "CosineAnnealingLR": (
        lambda opt: CosineAnnealingLR(opt, T_max=STEPS, eta_min=1e-3),
        lambda k: 1e-3 + (1e-2 - 1e-3) * (1 + math.cos(math.pi * k / STEPS)) / 2,
    ),
}


def _measure_steps(opt, w, sched, expected_lr, weight_decay=0.0):
    """Step ``opt`` (on the single parameter ``w``) STEPS times under ``sched`` with the constant gradient G; at
    step t check the group's lr against ``expected_lr(t - 1)`` and return the measured rho_t of each step, after
    checking the whole displacement against the default step with that rho_t."""
    rhos = []
    for k in range(STEPS):
        lr = opt.param_groups[0]["lr"]
        assert lr == pytest.approx(expected_lr(k), rel=1e-12, abs=0)
        before = w.detach().clone()
        w.grad = G.clone()
        opt.step()
        sched.step()
        scale = max(1e-3, rms(before))
        # W_{t+1} = (1 - rho wd) W_t - rho scale sign(G): rho from the entries, then every entry checked with it
        rho = float(((before - w.detach()) / (weight_decay * before + scale * torch.sign(G))).mean())
        torch.testing.assert_close(
            w.detach(), (1 - rho * weight_decay) * before - rho * scale * torch.sign(G), rtol=1e-12, atol=0
        )
        rhos.append(rho)
    return rhos


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_torch_scheduler_runs_on_a_default_adafactor(name):
    """rho_t = min(s_t 1e-2, 1/sqrt(t)) with s_t 1e-2 the scheduler's documented lr (the cap 1/sqrt(t) lies above
    1e-2 until t = 10^4: here rho_t is the scheduled lr itself, as with relative_step=False)."""
    make, lr_at = SCHEDULERS[name]
    w = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=F64).requires_grad_()
    opt = adaptim.Adafactor([w])
    sched = make(opt)
    rhos = _measure_steps(opt, w, sched, lr_at)
    expected = [min(lr_at(k), 1 / math.sqrt(k + 1)) for k in range(STEPS)]
    assert rhos == pytest.approx(expected, rel=1e-9, abs=0)
    assert len(set(rhos)) > 1  # the schedule did change the step


@pytest.mark.parametrize("relative_step", [True, False])
def test_a_scheduled_lr_caps_the_relative_step_and_is_the_step_without_it(relative_step):
    """lr = 1 under ExponentialLR(0.8): the relative step is min(0.8^k, 1/sqrt(k + 1)) -- each side is the smaller
    at some step -- and the decoupled decay is rho_t wd; with relative_step=False the step is 0.8^k itself."""
    w = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=F64).requires_grad_()
    opt = adaptim.Adafactor([w], lr=1.0, relative_step=relative_step, weight_decay=0.1)
    rhos = _measure_steps(opt, w, ExponentialLR(opt, gamma=0.8), lambda k: 0.8**k, weight_decay=0.1)
    scheduled = [0.8**k for k in range(STEPS)]
    cap = [1 / math.sqrt(k + 1) for k in range(STEPS)]
    if relative_step:
        assert any(c < s for s, c in zip(scheduled, cap)) and any(s < c for s, c in zip(scheduled, cap))
        assert rhos == pytest.approx([min(s, c) for s, c in zip(scheduled, cap)], rel=1e-9, abs=0)
    else:
        assert rhos == pytest.approx(scheduled, rel=1e-9, abs=0)


def test_the_decay_bound_is_rho_t_times_weight_decay():
    """lambda_t = min(lr, 1/sqrt(t)) wd, refused at >= 1 with nothing changed: wd = 1.5 at lr = 1 is refused at
    t = 1 (lambda 1.5), taken at lr = 0.5 (0.75), and at lr = 1 again from t = 3 on, where 1/sqrt(3) caps it."""
    w = torch.ones(4, 3, dtype=F64, requires_grad=True)
    opt = adaptim.Adafactor([w], lr=1.0, weight_decay=1.5)
    group = opt.param_groups[0]
    w.grad = G.clone()
    assert opt._decay_factor(group) == 1.5
    with pytest.raises(RuntimeError, match="lambda_t"):
        opt.step()
    assert torch.equal(w.detach(), torch.ones(4, 3, dtype=F64)) and not opt.state
    for t, lr in ((1, 0.5), (2, 0.5), (3, 1.0), (4, 1.0)):
        group["lr"] = lr
        w.grad = G.clone()
        assert opt._decay_factor(group) == pytest.approx(min(lr, 1 / math.sqrt(t)) * 1.5, rel=1e-15)
        opt.step()
        assert int(opt.state[w]["step"]) == t


# ------------------------------------------------------------------------------- the previous default, lr=None
def _previous_rho(t: int, warmup_init: bool) -> float:
    """The relative step of the previous version (lr=None), as it was written: min(1e-2 or 1e-6 t, 1/sqrt(t))."""
    cap = 1e-6 * t if warmup_init else 1e-2
    return min(cap, 1.0 / math.sqrt(t))


@pytest.mark.parametrize("warmup_init", [False, True])
def test_the_step_size_at_the_default_lr_is_the_previous_one_bitwise(warmup_init):
    """Across t = 10^4, where 1/sqrt(t) (and 1e-6 t) cross 1e-2, and far beyond it."""
    for t in list(range(1, 30_001)) + [10**6, 10**8]:
        expected = _previous_rho(t, warmup_init)
        assert adafactor_step_size(t, 1e-2, True, warmup_init) == expected, t
        assert adafactor_step_size(t, None, True, warmup_init) == expected, t


def _run(params, opt, grads, jump_to=None, set_lr=None):
    """Step ``opt`` through ``grads``; after the first step every step counter jumps to ``jump_to`` (so the run
    crosses t = 10^4); ``set_lr(t)``, if given, is written into the group before step t."""
    for i, gs in enumerate(grads):
        if i == 1 and jump_to is not None:
            for p in params:
                opt.state[p]["step"].fill_(jump_to)
        if set_lr is not None:
            t = int(opt.state[params[0]]["step"]) + 1 if params[0] in opt.state else 1
            opt.param_groups[0]["lr"] = set_lr(t)
        for p, g in zip(params, gs):
            p.grad = g.clone()
        opt.step()


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(warmup_init=True), dict(beta1=0.9, weight_decay=0.5, foreach=False)],
    ids=["default", "warmup", "beta1_wd_single"],
)
def test_the_default_lr_reproduces_the_previous_lr_none_trajectory_bitwise(kwargs):
    """Three runs from t = 1 and then across t = 10^4 agree bit for bit, parameters and state: the default lr,
    lr=None, and the previous lr=None step written as an lr: relative_step=False with the group's lr set to the
    previous rho_t before each step (the same directions and last stage, so only rho_t could differ)."""
    gen = torch.Generator().manual_seed(2)
    shapes = [(4, 3), (5,), (2, 3, 2)]
    w0 = [torch.randn(s, generator=gen) for s in shapes]
    grads = [[torch.randn(s, generator=gen) * (1 + k % 3) for s in shapes] for k in range(12)]
    runs = []
    for build, set_lr in (
        (lambda ps: adaptim.Adafactor(ps, **kwargs), None),
        (lambda ps: adaptim.Adafactor(ps, lr=None, **kwargs), None),
        (
            lambda ps: adaptim.Adafactor(
                ps, relative_step=False, **{k: v for k, v in kwargs.items() if k != "warmup_init"}
            ),
            lambda t: _previous_rho(t, kwargs.get("warmup_init", False)),
        ),
    ):
        params = [w.clone().requires_grad_() for w in w0]
        opt = build(params)
        _run(params, opt, grads, jump_to=9_995, set_lr=set_lr)
        runs.append((params, opt))
    (p0, o0), *others = runs
    assert int(o0.state[p0[0]]["step"]) == 10_006
    assert o0.param_groups[0]["lr"] == 1e-2 and runs[1][1].param_groups[0]["lr"] == 1e-2  # lr=None stores 1e-2
    for params, opt in others:
        for a, b in zip(p0, params):
            assert_same(a.detach(), b.detach())
            assert_same_state(o0.state[a], opt.state[b])


@pytest.mark.parametrize(
    "kwargs", [dict(beta1=0.9, weight_decay=0.1), dict(warmup_init=True)], ids=["beta1_wd", "warmup"]
)
def test_a_checkpoint_saved_with_lr_none_loads_and_resumes_exactly(kwargs):
    """A state dict as the previous version saved it (the group's lr None), through torch.save and
    torch.load(weights_only=True), loads with the group's lr 1e-2 and continues bit for bit as the run that was
    never interrupted."""
    gen = torch.Generator().manual_seed(3)
    shapes = [(4, 3), (5,)]
    w0 = [torch.randn(s, generator=gen) for s in shapes]
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(8)]
    params = [w.clone().requires_grad_() for w in w0]
    opt = adaptim.Adafactor(params, **kwargs)
    _run(params, opt, grads[:4])
    old = copy.deepcopy(opt.state_dict())
    old["param_groups"][0]["lr"] = None
    buf = io.BytesIO()
    torch.save(old, buf)
    buf.seek(0)
    old = torch.load(buf, weights_only=True)
    resumed = [p.detach().clone().requires_grad_() for p in params]
    opt2 = adaptim.Adafactor(resumed, lr=None, **kwargs)  # as the previous version's code built it
    opt2.load_state_dict(old)
    assert opt2.param_groups[0]["lr"] == 1e-2 and opt2.state_dict()["param_groups"][0]["lr"] == 1e-2
    _run(params, opt, grads[4:])
    _run(resumed, opt2, grads[4:])
    for a, b in zip(params, resumed):
        assert_same(a.detach(), b.detach())
        assert_same_state(opt.state[a], opt2.state[b])


def test_lr_none_set_on_a_group_steps_as_1e_2_and_is_stored_as_1e_2():
    gen = torch.Generator().manual_seed(4)
    w0 = torch.randn(4, 3, generator=gen)
    grads = [[torch.randn(4, 3, generator=gen)] for _ in range(3)]
    a, b = [w0.clone().requires_grad_()], [w0.clone().requires_grad_()]
    oa, ob = adaptim.Adafactor(a, lr=0.5), adaptim.Adafactor(b)
    oa.param_groups[0]["lr"] = None
    _run(a, oa, grads)
    _run(b, ob, grads)
    assert oa.param_groups[0]["lr"] == 1e-2
    assert adaptim.Adafactor([torch.zeros(2, requires_grad=True)], lr=None).defaults["lr"] == 1e-2
    assert_same(a[0].detach(), b[0].detach())
