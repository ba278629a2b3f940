"""Saving ``state_dict`` mid-run and loading it into a fresh optimizer over fresh copies of the parameters
continues the same trajectory bitwise, for every optimizer of issue 2, with and without a learning-rate
scheduler (whose state is saved too), through a deep copy and through ``torch.save``/``torch.load``.
"""

from __future__ import annotations

import copy
import io
import itertools

import pytest
import torch

import adaptim

SPECS = [((3, 4), torch.float32), ((5,), torch.float64), ((2, 3), torch.float32)]
BEFORE, AFTER = 7, 6  # steps before the checkpoint and after it

OPTIMIZERS = [
    ("sgd", adaptim.SGD, dict(lr=0.1)),
    ("sgd-momentum-wd", adaptim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    ("sgd-nesterov", adaptim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("sgd-lookahead", adaptim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, lookahead=True, weight_decay=0.1)),
    ("adagrad", adaptim.AdaGrad, dict(lr=0.1, initial_accumulator_value=0.1, weight_decay=0.1)),
    ("adagrad-norm", adaptim.AdaGradNorm, dict(lr=0.5)),
    ("full-matrix-adagrad", adaptim.FullMatrixAdaGrad, dict(lr=0.5, eps=1e-6)),
    ("rmsprop-beta1-0", adaptim.RMSProp, dict(lr=0.01, betas=(0.0, 0.9))),
    ("rmsprop", adaptim.RMSProp, dict(lr=0.01, betas=(0.9, 0.9), weight_decay=0.1)),
    ("adam", adaptim.Adam, dict(lr=0.01, weight_decay=0.1)),
    ("adam-amsgrad-nesterov-inside", adaptim.Adam, dict(lr=0.01, amsgrad=True, nesterov=True, eps_inside_sqrt=True)),
    ("adamw", adaptim.AdamW, dict(lr=0.01, weight_decay=0.1)),
    (
        "adamw-all-flags",
        adaptim.AdamW,
        dict(
            lr=0.01, weight_decay=0.1, amsgrad=True, nesterov=True, eps_inside_sqrt=True, independent_weight_decay=True
        ),
    ),
    ("adam-atan2", adaptim.AdamAtan2, dict(lr=0.01, weight_decay=0.1, a=2.0, b=0.5)),
]


def warmup_cosine(opt):
    return adaptim.warmup_cosine(opt, warmup_steps=4, total_steps=BEFORE + AFTER, final_scale=0.1)


def start_params():
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dt).requires_grad_(True) for s, dt in SPECS]


def gradient(t):
    gen = torch.Generator().manual_seed(100 + t)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dt) * (0.1 + t % 3) for s, dt in SPECS]


def take_step(opt, sched, params, t):
    g = gradient(t)

    def closure():  # the gradient depends on the point (lookahead evaluates it at x_t)
        for p, gi in zip(params, g):
            p.grad = gi + 0.5 * p.detach()

    opt.step(closure)
    if sched:
        sched.step()


def snapshot(opt, params):
    return (
        [p.detach().clone() for p in params],
        [{k: (v.clone() if torch.is_tensor(v) else v) for k, v in opt.state[p].items()} for p in params],
        [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
    )


def assert_bitwise(a, b):
    (pa, sa, ga), (pb, sb, gb) = a, b
    for x, y in zip(pa, pb, strict=True):
        assert x.dtype == y.dtype and torch.equal(x, y)
    for x, y in zip(sa, sb, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            if torch.is_tensor(x[k]):
                assert x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]), k
            else:
                assert x[k] == y[k], k
    assert ga == gb


@pytest.mark.parametrize("through", ["deepcopy", "torch.save"])
@pytest.mark.parametrize("schedule", [None, warmup_cosine], ids=["constant", "warmup_cosine"])
@pytest.mark.parametrize("name,cls,kw", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_resume_continues_bitwise(name, cls, kw, schedule, through):
    params = start_params()
    opt = cls(params, **kw)
    sched = schedule(opt) if schedule else None
    for t in range(BEFORE):
        take_step(opt, sched, params, t)
    saved = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict() if sched else None}
    if through == "deepcopy":
        saved = copy.deepcopy(saved)
    else:
        buf = io.BytesIO()
        torch.save(saved, buf)
        buf.seek(0)
        saved = torch.load(buf)
    fresh = [p.detach().clone().requires_grad_(True) for p in params]
    for t in range(BEFORE, BEFORE + AFTER):  # the uninterrupted run goes on
        take_step(opt, sched, params, t)

    def resumed(load: bool):
        ps = [p.detach().clone().requires_grad_(True) for p in fresh]
        o = cls(ps, **kw)
        s = schedule(o) if schedule else None  # built before loading, as a training script would
        if load:
            o.load_state_dict(saved["optimizer"])
            if s:
                s.load_state_dict(saved["scheduler"])
        for t in range(BEFORE, BEFORE + AFTER):
            take_step(o, s, ps, t)
        return snapshot(o, ps)

    assert_bitwise(resumed(load=True), snapshot(opt, params))
    stateless = cls is adaptim.SGD and kw.get("momentum", 0) == 0 and schedule is None
    if not stateless:  # guard: without loading, the continuation is different, so the check above has teeth
        naive, want = resumed(load=False), snapshot(opt, params)
        assert any(not torch.equal(x, y) for x, y in zip(naive[0], want[0]))


def test_resume_under_steplr_saved_mid_decay():
    """StepLR's counter is saved with the scheduler: resuming at a step that is not a multiple of step_size
    keeps the next decay at the same step."""
    make_sched = lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)
    runs = []
    for resume in (False, True):
        params = start_params()
        opt = adaptim.AdamW(params, lr=0.05, independent_weight_decay=True, weight_decay=0.2)
        sched = make_sched(opt)
        lrs = []
        for t in itertools.chain(range(BEFORE), range(BEFORE, BEFORE + AFTER)):
            if resume and t == BEFORE:
                buf = io.BytesIO()
                torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
                buf.seek(0)
                saved = torch.load(buf)
                params = [p.detach().clone().requires_grad_(True) for p in params]
                opt = adaptim.AdamW(params, lr=0.05, independent_weight_decay=True, weight_decay=0.2)
                sched = make_sched(opt)
                opt.load_state_dict(saved["opt"])
                sched.load_state_dict(saved["sched"])
            lrs.append(opt.param_groups[0]["lr"])
            take_step(opt, sched, params, t)
        runs.append((lrs, snapshot(opt, params)))
    assert runs[0][0] == runs[1][0]
    assert_bitwise(runs[0][1], runs[1][1])


def test_loaded_hyperparameters_are_validated_and_nothing_changes():
    """A state dict whose saved lr or betas are out of range is refused like the constructor refuses them."""
    params = start_params()
    opt = adaptim.Adam(params, lr=0.01)
    take_step(opt, None, params, 0)
    for key, bad in (("lr", -1.0), ("betas", (1.5, 0.999))):
        saved = copy.deepcopy(opt.state_dict())
        saved["param_groups"][0][key] = bad
        fresh = adaptim.Adam([p.detach().clone().requires_grad_(True) for p in params], lr=0.01)
        with pytest.raises(ValueError, match=f"group 0 of the loaded state dict: {key}"):
            fresh.load_state_dict(saved)
        assert fresh.param_groups[0]["lr"] == 0.01 and not fresh.state


@pytest.mark.parametrize("cls", [adaptim.AdamW, adaptim.AdamAtan2])
def test_group_entries_missing_from_the_saved_dict_keep_this_optimizers_values(cls):
    """Adam's state loaded into AdamW/AdamAtan2 (same state entries) keeps their own group entries
    (independent_weight_decay; a, b) instead of dropping them and failing at the next step; an entry removed
    from the saved dict (as from an older version) comes back at the optimizer's value."""
    params = start_params()
    opt = adaptim.Adam(params, lr=0.01)
    take_step(opt, None, params, 0)
    saved = copy.deepcopy(opt.state_dict())
    del saved["param_groups"][0]["maximize"]
    other = cls(params, lr=0.01, weight_decay=0.1)
    own = {k: v for k, v in other.param_groups[0].items() if k not in saved["param_groups"][0]}
    assert own  # the test has teeth: entries of `cls` that Adam's dict lacks
    other.load_state_dict(saved)
    for k, v in own.items():
        assert other.param_groups[0][k] == v, k
    assert other.param_groups[0]["weight_decay"] == 0.0  # the saved entries win, as in torch.optim
    take_step(other, None, params, 1)
    assert all(torch.isfinite(p).all() for p in params)
