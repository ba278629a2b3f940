"""API behaviour shared by every optimizer of issues 2 and 3, parametrized over all of them (see ``conftest.py``).

torch.optim compatibility (param groups, state_dict, closures, lr schedulers, zero_grad), the schedule
factories against their definitions, and validation of every hyperparameter at construction.
"""

from __future__ import annotations

import io
import math
import re

import pytest
import torch
from _assertions import assert_same, assert_same_state
from torch.optim.lr_scheduler import LambdaLR, StepLR

import adaptim


def params_and_grads(steps: int, shapes=((3,), (2, 2)), seed: int = 0, case=None):
    """Random parameters and ``steps`` lists of gradients; ``case`` maps the shapes (matrices for Muon)."""
    if case is not None:
        shapes = [case.shape(s) for s in shapes]
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(*s, generator=gen).requires_grad_() for s in shapes]
    grads = [[torch.randn(*s, generator=gen) for s in shapes] for _ in range(steps)]
    return params, grads


def clones(params):
    return [p.detach().clone().requires_grad_() for p in params]


# ---------------------------------------------------------------------------------------------- basics


def test_is_torch_optimizer(optimizer_class):
    p = torch.ones(optimizer_class.shape((2,)), requires_grad=True)
    opt = optimizer_class.make([p])
    assert isinstance(opt, torch.optim.Optimizer)
    assert isinstance(opt, adaptim.AdaptimOptimizer)
    # nothing is written into the group at construction: a scheduler built later starts from the group's lr
    assert "initial_lr" not in opt.param_groups[0]


def test_exported_at_top_level():
    for name in [
        "SGD",
        "AdaGrad",
        "AdaGradNorm",
        "FullMatrixAdaGrad",
        "RMSProp",
        "Adam",
        "AdamW",
        "AdamAtan2",
        "warmup_cosine",
        "warmup_linear",
        "inverse_sqrt",
        "Adafactor",
        "AdamNMF",
        "Shampoo",
        "IdealizedShampoo",
        "Muon",
        "muon_param_groups",
        "Steepest",
    ]:
        assert hasattr(adaptim, name), name


def test_param_groups_with_different_lr(optimizer_case):
    lr = optimizer_case.kwargs["lr"]
    (p1, p2), grads = params_and_grads(4, case=optimizer_case)
    grouped = optimizer_case.make([{"params": [p1]}, {"params": [p2], "lr": lr / 4}])
    s1, s2 = clones([p1]), clones([p2])
    alone1 = optimizer_case.make(s1)
    alone2 = optimizer_case.make(s2, lr=lr / 4)
    same_lr = clones([p2])
    alone_same_lr = optimizer_case.make(same_lr)
    for g1, g2 in grads:
        optimizer_case.step(grouped, [p1, p2], [g1, g2])
        optimizer_case.step(alone1, s1, [g1])
        optimizer_case.step(alone2, s2, [g2])
        optimizer_case.step(alone_same_lr, same_lr, [g2])
    assert_same(p1.detach(), s1[0].detach())
    assert_same(p2.detach(), s2[0].detach())
    assert not torch.equal(p2.detach(), same_lr[0].detach())  # the second group's lr was used
    assert [g["lr"] for g in grouped.param_groups] == [lr, lr / 4]
    assert all("initial_lr" not in g for g in grouped.param_groups)


@pytest.mark.parametrize("through_bytes", [True, False])
def test_state_dict_round_trip(optimizer_case, through_bytes):
    params, grads = params_and_grads(6, case=optimizer_case)
    opt = optimizer_case.make(params)
    for gs in grads[:3]:
        optimizer_case.step(opt, params, gs)
    saved = opt.state_dict()
    if through_bytes:
        buf = io.BytesIO()
        torch.save(saved, buf)
        buf.seek(0)
        saved = torch.load(buf, weights_only=True)
    copies = clones(params)
    fresh = optimizer_case.make(copies)
    fresh.load_state_dict(saved)
    assert fresh.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    for gs in grads[3:]:
        optimizer_case.step(opt, params, gs)
        optimizer_case.step(fresh, copies, gs)
    for p, q in zip(params, copies):
        assert_same(q.detach(), p.detach())
        assert_same_state(fresh.state[q], opt.state[p])  # also: the two never shared state tensors


def test_closure_returns_loss_with_grad_enabled(optimizer_case):
    p = optimizer_case.tensor(torch.tensor([1.0, -2.0])).requires_grad_()
    optimizer_case.place([p])  # a simplex case: softmax(1, -2), loss 0.91
    opt = optimizer_case.make([p])
    expected = float((p.detach() ** 2).sum())  # 5 (StiefelSGD orthonormalizes p at construction: 1)
    calls = []

    def closure():
        calls.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    with torch.no_grad():  # the step enables grad for the closure whatever the caller's mode
        loss = opt.step(closure)
    assert calls == [True]
    assert isinstance(loss, torch.Tensor) and loss.item() == pytest.approx(expected, rel=1e-6)
    if optimizer_case.simplex:  # on the simplex ||p||^2 descends toward the uniform point
        assert float((p.detach() ** 2).sum()) < expected
    elif optimizer_case.fixed_norm:  # the gradient 2p of ||p||^2 is radial: a sphere's step leaves p as it is
        assert torch.equal(p.detach(), optimizer_case.tensor(torch.tensor([1.0, -2.0])))
    else:
        assert torch.all(p.detach().abs() < optimizer_case.tensor(torch.tensor([1.0, 2.0])))  # it descended
    if not optimizer_case.kwargs.get("lookahead"):
        assert opt.step() is None  # without a closure: None (grads from the closure above are reused)


def test_closure_loss_object_is_returned():
    p = torch.tensor([1.0], requires_grad=True)
    sentinel = object()

    def closure():
        p.grad = torch.ones(1)
        return sentinel

    for opt in (adaptim.Adam([p]), adaptim.SGD([p], lr=0.1, momentum=0.5, nesterov=True, lookahead=True)):
        assert opt.step(closure) is sentinel


def test_params_without_grad_are_skipped(optimizer_case):
    (p1, p2), grads = params_and_grads(3, case=optimizer_case)
    optimizer_case.place([p1, p2])
    opt = optimizer_case.make([p1, p2])
    before = p2.detach().clone()  # after construction (which may put it on a manifold)
    alone = clones([p1])
    opt_alone = optimizer_case.make(alone)
    for g1, _ in grads:
        optimizer_case.step(opt, [p1], [g1])
        optimizer_case.step(opt_alone, alone, [g1])
    assert p2.grad is None
    assert_same(p2.detach(), before)
    assert_same(p1.detach(), alone[0].detach())
    if not optimizer_case.kwargs.get("lookahead"):  # lookahead moves every parameter to x_t before the closure
        assert not opt.state.get(p2)


def test_zero_grad(optimizer_case):
    (p1, p2), grads = params_and_grads(1, case=optimizer_case)
    opt = optimizer_case.make([p1, p2])
    optimizer_case.step(opt, [p1, p2], grads[0])
    opt.zero_grad(set_to_none=False)
    assert torch.equal(p1.grad, torch.zeros_like(p1)) and torch.equal(p2.grad, torch.zeros_like(p2))
    opt.zero_grad()
    assert p1.grad is None and p2.grad is None


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("warm", [False, True])
def test_nonfinite_gradient_in_a_later_group_changes_nothing(optimizer_case, bad, warm):
    """A NaN/inf gradient in the second group raises before the first group is updated or any state is made."""
    (p1, p2), grads = params_and_grads(2, case=optimizer_case)
    opt = optimizer_case.make([{"params": [p1]}, {"params": [p2]}])
    opt.check_finite = "eager"  # all or nothing on every path (the fused default: tests/optim/test_fused.py)
    if warm:
        optimizer_case.step(opt, [p1, p2], grads[0])
    before = [p.detach().clone() for p in (p1, p2)]
    saved = opt.state_dict()
    saved = {
        "state": {
            k: {n: v.clone() if isinstance(v, torch.Tensor) else v for n, v in s.items()}
            for k, s in saved["state"].items()
        },
        "param_groups": saved["param_groups"],
    }
    g2 = grads[1][1].clone()
    g2.view(-1)[0] = bad
    with pytest.raises(RuntimeError, match="group 1 .*NaN or infinite"):
        optimizer_case.step(opt, [p1, p2], [grads[1][0], g2])
    for p, b in zip((p1, p2), before):
        assert_same(p.detach(), b)
    after = opt.state_dict()
    assert after["param_groups"] == saved["param_groups"]
    assert sorted(after["state"]) == sorted(saved["state"])  # no state created for a fresh parameter either
    for k in saved["state"]:
        assert_same_state(after["state"][k], saved["state"][k])


def test_gradient_whose_square_overflows_is_refused_or_stepped_finitely(optimizer_case):
    """A finite float32 gradient of 1e30 squares to inf: optimizers whose statistics square it refuse it before
    anything changes (it gave NaN parameters in Adafactor and AdamNMF, and inf, frozen moments in Adam); the
    others (scale-free or float64 statistics: AdaGradNorm, FullMatrixAdaGrad) take a finite step."""
    (p1, p2), grads = params_and_grads(2, case=optimizer_case)
    opt = optimizer_case.make([{"params": [p1]}, {"params": [p2]}])
    opt.check_finite = "eager"  # all or nothing on every path (the fused default: tests/optim/test_fused.py)
    optimizer_case.step(opt, [p1, p2], grads[0])
    before = [p.detach().clone() for p in (p1, p2)]
    huge = [grads[1][0], grads[1][1] * 1e30]
    assert all(torch.isfinite(g).all() for g in huge)
    if opt._squares_gradients(opt.param_groups[1]) and opt._statistics_dtype(p2) == torch.float32:
        with pytest.raises(RuntimeError, match="group 1 .*squares overflow torch.float32"):
            optimizer_case.step(opt, [p1, p2], huge)
        for p, b in zip((p1, p2), before):
            assert_same(p.detach(), b)
    else:
        optimizer_case.step(opt, [p1, p2], huge)
        assert all(torch.isfinite(p).all() for p in (p1, p2))
    for s in opt.state.values():
        assert all(torch.isfinite(v).all() for v in s.values() if isinstance(v, torch.Tensor))


def test_sparse_gradient_in_a_later_group_changes_nothing(optimizer_class):
    (p1, p2), grads = params_and_grads(1, case=optimizer_class)
    opt = optimizer_class.make([{"params": [p1]}, {"params": [p2]}])
    before = [p.detach().clone() for p in (p1, p2)]
    with pytest.raises(RuntimeError, match="sparse gradients .*group 1"):
        optimizer_class.step(opt, [p1, p2], [grads[0][0], grads[0][1].to_sparse()])
    for p, b in zip((p1, p2), before):
        assert_same(p.detach(), b)
    assert not opt.state_dict()["state"]


def test_empty_and_zero_dim_parameters(optimizer_case):
    """numel-0 parameters are skipped (no state, no error); a 0-d parameter is stepped like a 1-element one."""
    shapes = [(0,), (0, 3), (3, 0), ()]
    fixed = optimizer_case.fixed_norm  # a sphere refuses a zero vector
    params = [(torch.ones if fixed else torch.zeros)(optimizer_case.shape(s)).requires_grad_() for s in shapes]
    opt = optimizer_case.make(params)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        optimizer_case.step(opt, params, [torch.randn(p.shape, generator=gen) for p in params])
    for p in params[:3]:
        assert not opt.state.get(p)
    scalar = params[3].detach()
    if fixed:  # the sphere of a 0-dim parameter is {-r, r}: its tangent space is {0}, the point stays
        assert torch.equal(scalar, torch.ones(()))
    else:
        assert torch.isfinite(scalar).all() and scalar.abs().sum() > 0


# --------------------------------------------------------------------------------------------- schedules


def _manual_lr_run(case, params, grads, lr_at):
    """The same run with group["lr"] set by hand before each step; the constructor's lr is stated as the peak
    (group["peak_lr"]), as a scheduler's initial_lr states it, so s_t = lr / peak follows the manual lr."""
    opt = case.make(params)
    opt.param_groups[0]["peak_lr"] = case.kwargs["lr"]
    for k, gs in enumerate(grads):
        opt.param_groups[0]["lr"] = lr_at(k)
        case.step(opt, params, gs)
    return opt


@pytest.mark.parametrize("kind", ["lambda", "step"])
def test_torch_lr_schedulers(optimizer_case, kind):
    lr = optimizer_case.kwargs["lr"]
    params, grads = params_and_grads(6, case=optimizer_case)
    manual, constant = clones(params), clones(params)
    opt = optimizer_case.make(params)
    if kind == "lambda":
        sched = LambdaLR(opt, lambda k: 1.0 / (1 + k))

        def lr_at(k):
            return lr * (1.0 / (1 + k))
    else:
        sched = StepLR(opt, step_size=2, gamma=0.5)

        def lr_at(k):
            return lr * 0.5 ** (k // 2)

    for k, gs in enumerate(grads):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_at(k), rel=1e-15)
        optimizer_case.step(opt, params, gs)
        sched.step()
    assert opt.param_groups[0]["initial_lr"] == lr
    _manual_lr_run(optimizer_case, manual, grads, lr_at)
    _manual_lr_run(optimizer_case, constant, grads, lambda k: lr)
    for p, q in zip(params, manual):
        assert_same(p.detach(), q.detach())
    assert any(not torch.equal(p.detach(), c.detach()) for p, c in zip(params, constant))


def _cosine(k, w, total, final):
    if k < w:
        return (k + 1) / w
    frac = min(1.0, (k - w) / (total - w))
    return final + (1 - final) * (1 + math.cos(math.pi * frac)) / 2


def _linear(k, w, total, final):
    if k < w:
        return (k + 1) / w
    return 1 - (1 - final) * min(1.0, (k - w) / (total - w))


@pytest.mark.parametrize("factory,definition", [(adaptim.warmup_cosine, _cosine), (adaptim.warmup_linear, _linear)])
@pytest.mark.parametrize("warmup,total,final", [(3, 10, 0.1), (0, 5, 0.0), (4, 5, 0.5)])
def test_warmup_factories_follow_their_definitions(factory, definition, warmup, total, final):
    p = torch.zeros(1, requires_grad=True)
    opt = adaptim.AdamW([p], lr=2.0)
    sched = factory(opt, warmup_steps=warmup, total_steps=total, final_scale=final)
    assert isinstance(sched, LambdaLR)
    seen = []
    for _ in range(total + 3):
        seen.append(opt.param_groups[0]["lr"] / 2.0)
        p.grad = torch.ones(1)
        opt.step()
        sched.step()
    assert seen == pytest.approx([definition(k, warmup, total, final) for k in range(total + 3)], abs=1e-12)
    # landmarks: the first step is 1/warmup (never 0), the peak is 1, and the end is final_scale
    assert seen[0] == pytest.approx(1 / warmup if warmup else 1.0)
    assert max(seen) == pytest.approx(1.0)
    assert seen[total] == pytest.approx(final) and seen[-1] == pytest.approx(final)
    assert opt.param_groups[0]["initial_lr"] == 2.0


def test_inverse_sqrt_factory():
    p = torch.zeros(1, requires_grad=True)
    opt = adaptim.SGD([p], lr=0.3)
    sched = adaptim.inverse_sqrt(opt)
    assert isinstance(sched, LambdaLR)
    for t in range(1, 10):  # the t-th step uses eta / sqrt(t) (Section 2.1)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.3 / math.sqrt(t), rel=1e-15)
        p.grad = torch.ones(1)
        opt.step()
        sched.step()


@pytest.mark.parametrize("factory", [adaptim.warmup_cosine, adaptim.warmup_linear])
@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(warmup_steps=-1, total_steps=5), "warmup_steps"),
        (dict(warmup_steps=5, total_steps=5), "total_steps"),
        (dict(warmup_steps=1, total_steps=5, final_scale=1.5), "final_scale"),
        (dict(warmup_steps=1, total_steps=5, final_scale=math.nan), "final_scale"),
    ],
)
def test_schedule_factories_validate(factory, kwargs, name):
    opt = adaptim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match=name):
        factory(opt, **kwargs)


# -------------------------------------------------------------------------------------------- validation

P = [torch.zeros(3, requires_grad=True)]
M = [torch.zeros(3, 2, requires_grad=True)]  # Muon groups take matrices only


def params_for(cls):
    return M if cls is adaptim.Muon else P


BETAS = [
    ((1.0, 0.9), "betas"),
    ((0.9, 1.0), "betas"),
    ((-0.1, 0.9), "betas"),
    ((math.nan, 0.9), "betas"),
    ((0.9,), "betas"),
    (0.9, "betas"),
]
LR = [(dict(lr=-1e-3), "lr"), (dict(lr=math.nan), "lr"), (dict(lr=math.inf), "lr"), (dict(lr="0.1"), "lr")]


def _bad(cls, base, cases):
    return [pytest.param(cls, {**base, **kw}, name, id=f"{cls.__name__}-{name}-{kw}") for kw, name in cases]


BAD_CONFIGS = (
    _bad(
        adaptim.SGD,
        {"lr": 0.1},
        LR
        + [
            (dict(momentum=1.0), "momentum"),
            (dict(momentum=-0.1), "momentum"),
            (dict(weight_decay=-0.1), "weight_decay"),
            (dict(nesterov=True), "nesterov"),  # needs momentum > 0
            (dict(momentum=0.9, lookahead=True), "lookahead"),
        ],
    )  # needs nesterov
    + _bad(
        adaptim.AdaGrad,
        {},
        LR
        + [
            (dict(eps=-1e-10), "eps"),
            (dict(weight_decay=-0.1), "weight_decay"),
            (dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
        ],
    )
    + _bad(adaptim.AdaGradNorm, {}, LR + [(dict(eps=-1e-10), "eps")])
    + _bad(
        adaptim.FullMatrixAdaGrad,
        {},
        LR + [(dict(eps=-1e-10), "eps"), (dict(eps=0.0), "eps"), (dict(max_dim=0), "max_dim")],
    )
    + _bad(
        adaptim.RMSProp,
        {},
        LR
        + [(dict(betas=b), n) for b, n in BETAS]
        + [(dict(eps=-1e-8), "eps"), (dict(weight_decay=-0.1), "weight_decay")],
    )
    + _bad(
        adaptim.Adam,
        {},
        LR
        + [(dict(betas=b), n) for b, n in BETAS]
        + [(dict(eps=-1e-8), "eps"), (dict(weight_decay=-0.1), "weight_decay")],
    )
    + _bad(
        adaptim.AdamW,
        {},
        LR
        + [(dict(betas=b), n) for b, n in BETAS]
        + [
            (dict(eps=-1e-8), "eps"),
            (dict(weight_decay=-0.1), "weight_decay"),
            (dict(independent_weight_decay=True, weight_decay=1.0), "weight_decay"),
        ],
    )
    + _bad(
        adaptim.AdamAtan2,
        {},
        LR
        + [(dict(betas=b), n) for b, n in BETAS]
        + [
            (dict(weight_decay=-0.1), "weight_decay"),
            (dict(a=0.0), "a"),
            (dict(a=-1.0), "a"),
            (dict(b=0.0), "b"),
            (dict(b=-1.0), "b"),
        ],
    )
    # issue 3
    + _bad(
        adaptim.Adafactor,
        {"lr": 1e-2, "relative_step": False},
        LR
        + [
            (dict(warmup_init=True), "warmup_init"),  # needs relative_step
            (dict(beta1=1.0), "beta1"),
            (dict(beta1=-0.1), "beta1"),
            (dict(beta1=math.nan), "beta1"),
            (dict(beta2=1.0), "beta2"),
            (dict(beta2=-0.1), "beta2"),
            (dict(beta2="0.9"), "beta2"),
            (dict(decay_rate=0.5), "decay_rate"),
            (dict(decay_rate=math.nan), "decay_rate"),
            (dict(eps=1e-30), "eps"),
            (dict(eps=(1e-30,)), "eps"),
            (dict(eps=(0.0, 1e-3)), "eps"),
            (dict(eps=(1e-30, -1e-3)), "eps"),
            (dict(eps=(math.nan, 1e-3)), "eps"),
            (dict(clip_threshold=0.0), "clip_threshold"),
            (dict(clip_threshold=-1.0), "clip_threshold"),
            (dict(weight_decay=-0.1), "weight_decay"),
        ],
    )
    + _bad(
        adaptim.AdamNMF,
        {},
        LR
        + [
            (dict(rank=0), "rank"),
            (dict(rank=1.5), "rank"),
            (dict(rank=True), "rank"),
            (dict(init_range=0.0), "init_range"),
            (dict(init_range=-1e-3), "init_range"),
            (dict(eps=-1e-8), "eps"),
            (dict(beta1=1.0), "beta1"),
            (dict(beta1=-0.1), "beta1"),
            (dict(weight_decay=-0.1), "weight_decay"),
        ],
    )
    + _bad(
        adaptim.Shampoo,
        {},
        LR
        + [
            (dict(beta2=1.0), "beta2"),
            (dict(beta2=-0.1), "beta2"),
            (dict(eps=0.0), "eps"),
            (dict(eps=-1.0), "eps"),
            (dict(momentum=1.0), "momentum"),
            (dict(momentum=-0.1), "momentum"),
            (dict(weight_decay=-0.1), "weight_decay"),
            (dict(precondition_frequency=0), "precondition_frequency"),
            (dict(precondition_frequency=2.0, start_preconditioning_step=2), "precondition_frequency"),
            (dict(start_preconditioning_step=0), "start_preconditioning_step"),
            # the first root exists at step precondition_frequency: an earlier preconditioned step is refused
            (dict(precondition_frequency=3, start_preconditioning_step=2), "start_preconditioning_step"),
            (dict(max_preconditioner_dim=0), "max_preconditioner_dim"),
            (dict(exponent_override=0.0), "exponent_override"),
            (dict(exponent_override=0.25), "exponent_override"),
            (dict(grafting="sgd"), "grafting"),
            (dict(grafting_beta2=1.0), "grafting_beta2"),
            (dict(grafting_eps=0.0), "grafting_eps"),
        ],
    )
    + _bad(
        adaptim.IdealizedShampoo,
        {},
        LR
        + [
            (dict(beta2=1.0), "beta2"),
            (dict(beta2=None), "beta2"),
            (dict(eps=0.0), "eps"),
            (dict(weight_decay=-0.1), "weight_decay"),
            (dict(max_preconditioner_dim=0), "max_preconditioner_dim"),
        ],
    )
    + _bad(
        adaptim.Muon,
        {},
        LR
        + [
            (dict(momentum=1.0), "momentum"),
            (dict(momentum=-0.1), "momentum"),
            (dict(ns_coefficients="fifth"), "ns_coefficients"),
            (dict(ns_coefficients=()), "ns_coefficients"),
            (dict(ns_steps=0), "ns_steps"),
            (dict(ns_steps=2.0), "ns_steps"),
            (dict(orthogonalize="qr"), "orthogonalize"),
            (dict(adjust_lr="spectral"), "adjust_lr"),
            (dict(weight_decay=-0.1), "weight_decay"),
        ]
        # the AdamW side's betas and eps are checked even when every group is a Muon group
        + [(dict(betas=b), n) for b, n in BETAS]
        + [(dict(eps=-1e-8), "eps"), (dict(eps=math.nan), "eps")],
    )
    + _bad(
        adaptim.Steepest,
        {"lr": 0.1},
        LR
        + [
            (dict(norm="l2"), "norm"),
            (dict(rule="newton"), "rule"),
            (dict(momentum=1.0), "momentum"),
            (dict(momentum=-0.1), "momentum"),
        ],
    )
)


@pytest.mark.parametrize("cls,kwargs,name", BAD_CONFIGS)
def test_construction_validates_hyperparameters(cls, kwargs, name):
    with pytest.raises(ValueError) as info:
        cls(params_for(cls), **kwargs)
    assert re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", str(info.value)), str(info.value)


@pytest.mark.parametrize(
    "make,bad,name",
    [
        (lambda ps: adaptim.SGD(ps, lr=0.1), dict(lr=-1.0), "lr"),
        (lambda ps: adaptim.SGD(ps, lr=0.1, momentum=0.9), dict(nesterov=True, momentum=0.0), "nesterov"),
        (lambda ps: adaptim.Adam(ps), dict(betas=(1.0, 0.9)), "betas"),
        (lambda ps: adaptim.AdamAtan2(ps), dict(a=0.0), "a"),
        (
            lambda ps: adaptim.FullMatrixAdaGrad(ps, max_dim=4),
            dict(params=[torch.zeros(5, requires_grad=True)]),
            "max_dim",
        ),
        (lambda ps: adaptim.Adafactor(ps), dict(lr=-0.1), "lr"),
        (lambda ps: adaptim.Shampoo(ps), dict(precondition_frequency=20), "start_preconditioning_step"),
        (lambda ps: adaptim.Muon([{"params": ps, "use_muon": False}]), dict(use_muon=False, betas=(1.0, 0.9)), "betas"),
        (lambda ps: adaptim.Muon([{"params": ps, "use_muon": False}]), dict(use_muon=False, eps=-1.0), "eps"),
        (lambda ps: adaptim.Muon([{"params": ps, "use_muon": False}]), dict(use_muon="no"), "use_muon"),
        # a vector in a Muon group is refused, naming the way out
        (lambda ps: adaptim.Muon([{"params": ps, "use_muon": False}]), dict(), "use_muon"),
    ],
)
def test_add_param_group_validates_and_leaves_optimizer_unchanged(make, bad, name):
    p = torch.ones(2, requires_grad=True)
    opt = make([p])
    with pytest.raises(ValueError, match=rf"(?<![\w]){name}(?![\w])"):
        opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)], **bad})
    assert len(opt.param_groups) == 1  # the refused group is not left behind for step() to use
    p.grad = torch.ones(2)
    opt.step()


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (adaptim.SGD, dict(lr=0.0, momentum=0.0, weight_decay=0.0)),
        (adaptim.AdaGrad, dict(lr=0.0, eps=0.0, initial_accumulator_value=0.0, weight_decay=0.0)),
        (adaptim.AdaGradNorm, dict(lr=0.0, eps=0.0)),
        (adaptim.FullMatrixAdaGrad, dict(lr=0.0, eps=1e-300, max_dim=3)),
        (adaptim.RMSProp, dict(lr=0.0, betas=(0.0, 0.0), eps=0.0, weight_decay=0.0)),
        (adaptim.Adam, dict(lr=0.0, betas=[0.0, 0.0], eps=0.0, weight_decay=0.0)),
        (adaptim.AdamW, dict(lr=0.0, betas=(0.0, 0.0), eps=0.0, weight_decay=0.999, independent_weight_decay=True)),
        (adaptim.AdamW, dict(weight_decay=5.0)),  # coupled decay lr * wd: only lr * wd < 1 matters, wd may be > 1
        (adaptim.AdamAtan2, dict(lr=0.0, betas=(0.0, 0.0), weight_decay=0.0, a=1e-3, b=1e-3)),
        (
            adaptim.Adafactor,
            dict(
                lr=0.0,
                relative_step=False,
                beta1=0.0,
                beta2=0.0,
                decay_rate=0.0,
                eps=[1e-45, 0.0],
                clip_threshold=1e-30,
                weight_decay=0.0,
            ),
        ),
        (adaptim.Adafactor, dict(lr=None, relative_step=True, warmup_init=True, clip_threshold=None)),  # None: 1e-2
        (adaptim.Adafactor, dict(lr=None, relative_step=False)),  # rho_t = 1e-2
        (adaptim.Adafactor, dict(lr=0.0, relative_step=True)),
        (adaptim.AdamNMF, dict(lr=0.0, rank=1, init_range=1e-30, eps=0.0, beta1=0.0, weight_decay=0.0)),
        (adaptim.AdamNMF, dict(rank=1000)),  # more than min(m, n) is allowed (documented)
        (
            adaptim.Shampoo,
            dict(
                lr=0.0,
                beta2=0.0,
                eps=1e-300,
                momentum=0.0,
                weight_decay=0.0,
                precondition_frequency=1,
                start_preconditioning_step=1,
                max_preconditioner_dim=1,
                exponent_override=-1e-3,
                grafting=None,
                grafting_beta2=0.0,
                grafting_eps=1e-300,
            ),
        ),
        (adaptim.Shampoo, dict(precondition_frequency=5, start_preconditioning_step=5, grafting="adagrad")),
        (adaptim.IdealizedShampoo, dict(lr=0.0, beta2=0.0, eps=1e-300, weight_decay=0.0, max_preconditioner_dim=1)),
        (
            adaptim.Muon,
            dict(
                lr=0.0,
                momentum=0.0,
                nesterov=False,
                ns_coefficients=(1.5, -0.5),
                ns_steps=1,
                weight_decay=0.0,
                adjust_lr=None,
            ),
        ),
        (adaptim.Muon, dict(orthogonalize="svd", ns_coefficients="cubic", adjust_lr="match_rms_adamw")),
        (adaptim.Steepest, dict(lr=0.0, norm="inf", rule="majorization", momentum=0.0)),
    ],
)
def test_boundary_values_accepted(cls, kwargs):
    cls(params_for(cls), **kwargs)


def test_full_matrix_max_dim_suggests_alternative():
    big = torch.zeros(4, 5, requires_grad=True)
    with pytest.raises(ValueError, match="max_dim") as info:
        adaptim.FullMatrixAdaGrad([big], max_dim=10)
    assert "AdaGrad" in str(info.value).replace("FullMatrixAdaGrad", "")  # names what to use instead
    adaptim.FullMatrixAdaGrad([big], max_dim=20)
    with pytest.raises(ValueError, match="max_dim"):  # complex counts as its real view: 2 x 10 entries
        adaptim.FullMatrixAdaGrad([torch.zeros(10, dtype=torch.complex64, requires_grad=True)], max_dim=10)


def test_lookahead_needs_closure():
    p = torch.ones(2, requires_grad=True)
    opt = adaptim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, lookahead=True)
    p.grad = torch.ones(2)
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(2))


def test_sparse_params_refused(optimizer_class):
    sparse = torch.zeros(optimizer_class.shape((4,))).to_sparse().requires_grad_()
    with pytest.raises(TypeError, match="sparse"):
        optimizer_class.make([sparse])


def test_sparse_grads_refused(optimizer_class):
    shape = optimizer_class.shape((4,))
    p = torch.ones(shape, requires_grad=True)
    opt = optimizer_class.make([p])
    before = p.detach().clone()  # after construction (which may put it on a manifold)
    with pytest.raises((RuntimeError, TypeError), match="sparse"):
        optimizer_class.step(opt, [p], [torch.ones(shape).to_sparse()])
    assert torch.equal(p.detach(), before)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_params_refused(optimizer_class, dtype):
    with pytest.raises(TypeError, match=re.escape(str(dtype))):
        optimizer_class.make([torch.zeros(optimizer_class.shape((3,)), dtype=dtype)])


def test_duplicate_parameter_in_a_group_is_refused():
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="twice"):
        adaptim.Adam([p, p])


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: adaptim.Adam(ps, amsgrad="no"),
        lambda ps: adaptim.AdamW(ps, decoupled_weight_decay=1),
        lambda ps: adaptim.SGD(ps, lr=0.1, maximize="yes"),
        lambda ps: adaptim.Adafactor(ps, relative_step=0),
    ],
)
def test_flags_must_be_booleans(make):
    with pytest.raises(ValueError, match="must be True or False"):
        make([torch.zeros(2, 2, requires_grad=True)])


def test_one_cycle_schedule_multiplier_stays_at_most_one():
    """OneCycleLR sets initial_lr = max_lr / div_factor; s_t is measured against the peak, so decoupled decay
    never exceeds weight_decay (Figure 1: s_t in [0, 1])."""
    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = adaptim.AdamW([p], lr=1e-3, weight_decay=0.1, independent_weight_decay=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=100)
    expected = 1.0
    for _ in range(30):
        s_t = adaptim.AdaptimOptimizer.schedule_multiplier(opt.param_groups[0])
        assert 0 < s_t <= 1
        p.grad = torch.zeros_like(p)
        opt.step()
        expected *= 1 - 0.1 * s_t
        sched.step()
    torch.testing.assert_close(p.detach(), torch.full((3,), expected, dtype=torch.float64))
    assert bool((p > 0).all())


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: adaptim.AdamW(ps, lr=2.0, weight_decay=0.5),
        lambda ps: adaptim.AdamAtan2(ps, lr=10.0, weight_decay=0.2),
    ],
)
def test_weight_decay_factor_of_one_or_more_is_refused_before_any_change(make):
    p = torch.ones(3, requires_grad=True)
    opt = make([p])
    p.grad = torch.ones_like(p)
    with pytest.raises(RuntimeError, match="lambda_t"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(3)) and len(opt.state[p]) == 0


def test_muon_refuses_diverging_newton_schulz_coefficients():
    with pytest.raises(ValueError, match="ns_coefficients"):
        adaptim.Muon([torch.zeros(4, 4, requires_grad=True)], ns_coefficients=(0.9, 0.99, 0.1))
    adaptim.Muon([torch.zeros(4, 4, requires_grad=True)], ns_coefficients=(1.5, -0.5))  # the cubic map is fine
