"""The fused (compiled) path of the elementwise optimizers against the literal per-tensor path.

Each rule of :mod:`adaptim.functional.fused` is compared with the same optimizer built with ``foreach=False`` (the
literal ``*_single`` functions) over every flag combination, to a stated tolerance: the compiled loop may contract a
multiply and an add into one FMA, so the two differ by a few ulps per step (float32: rtol 1e-5 after 8 steps;
float64: rtol 1e-12). Then: what the in-kernel check does with non-finite entries, one compile per (rule, flags)
whatever the shapes and the schedule, tensor learning rates, exact resume, and when the fused path is not taken.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

import adaptim
from adaptim.functional import fused

pytestmark = pytest.mark.skipif(not fused.fused_available("cpu"), reason="torch.compile cannot build CPU kernels here")

SHAPES = [(5, 4), (3,), (1,), (2, 3, 2), (7,)]  # (1,): the foreach fallback inside a fused group
STEPS = 8


def _params(dtype=torch.float32, seed=0, shapes=SHAPES):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]


def _run(make, params, steps=STEPS, seed=1, grads=None):
    opt = make(params)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        opt.step()
    return opt


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)


def _same_as_literal(cls, kwargs, dtype=torch.float32):
    a, b = _params(dtype), _params(dtype)
    fast = _run(lambda p: cls(p, fused=True, **kwargs), a)
    slow = _run(lambda p: cls(p, foreach=False, **kwargs), b)
    assert fast.uses_fused(fast.param_groups[0]) and not slow.uses_fused(slow.param_groups[0])
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, **_tol(dtype))
    for p, q in zip(a, b):
        for k, v in slow.state[q].items():
            torch.testing.assert_close(fast.state[p][k], v, **_tol(dtype))
    assert all(torch.isfinite(p).all() for p in a)


ADAM_FLAGS = list(itertools.product([False, True], repeat=4))  # amsgrad, nesterov, eps_inside_sqrt, maximize


@pytest.mark.parametrize("amsgrad,nesterov,eps_inside_sqrt,maximize", ADAM_FLAGS)
@pytest.mark.parametrize(
    "decay", [dict(), dict(weight_decay=0.1, decoupled_weight_decay=False), dict(independent_weight_decay=True)]
)
def test_adamw_every_figure1_flag_matches_the_literal_path(amsgrad, nesterov, eps_inside_sqrt, maximize, decay):
    kw = dict(lr=1e-2, amsgrad=amsgrad, nesterov=nesterov, eps_inside_sqrt=eps_inside_sqrt, maximize=maximize)
    if decay.get("independent_weight_decay"):
        kw["weight_decay"] = 1e-3
    _same_as_literal(adaptim.AdamW, {**kw, **decay})


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (adaptim.Adam, dict(lr=1e-2, weight_decay=0.05)),
        (adaptim.Adam, dict(lr=1e-2, eps=0.0, betas=(0.0, 0.99))),
        (adaptim.AdamAtan2, dict(lr=1e-2, weight_decay=0.01, a=1.5, b=0.5, maximize=True)),
        (adaptim.SGD, dict(lr=0.1)),
        (adaptim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
        (adaptim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
        (adaptim.AdaGrad, dict(lr=0.1, weight_decay=0.01, initial_accumulator_value=0.1)),
        (adaptim.AdaGrad, dict(lr=0.1, eps=0.0, maximize=True)),
        (adaptim.RMSProp, dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01)),
        (adaptim.RMSProp, dict(lr=1e-2, betas=(0.0, 0.99), eps=0.0, maximize=True)),
    ],
    ids=lambda x: x.__name__ if isinstance(x, type) else "-".join(f"{k}={v}" for k, v in x.items()),
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_rule_matches_the_literal_path(cls, kwargs, dtype):
    _same_as_literal(cls, kwargs, dtype)


def test_complex_parameters_match_the_literal_path():
    def make(dtype_seed):
        return [torch.randn(4, 3, dtype=torch.complex64, generator=torch.Generator().manual_seed(dtype_seed))]

    a, b = make(0), make(0)
    _run(lambda p: adaptim.AdamW(p, lr=1e-2, fused=True), a)
    _run(lambda p: adaptim.AdamW(p, lr=1e-2, foreach=False), b)
    torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)


def test_default_is_fused_and_an_explicit_foreach_keeps_its_path():
    p = [torch.zeros(3, requires_grad=True)]
    assert adaptim.AdamW(p).uses_fused(adaptim.AdamW(p).param_groups[0])
    for kw in (dict(foreach=True), dict(foreach=False), dict(fused=False)):
        opt = adaptim.AdamW(p, **kw)
        assert not opt.uses_fused(opt.param_groups[0])
    with pytest.raises(ValueError, match="fused=True and foreach=True"):
        adaptim.AdamW(p, fused=True, foreach=True)
    with pytest.raises(ValueError, match="fused"):
        adaptim.SGD(p, fused="yes")


def test_fused_is_not_taken_where_it_cannot_run():
    # a bfloat16 parameter in a fused group takes the float32 working-copy path, the float32 one the kernel; each
    # parameter's step is what it would be alone (no dependence on the group's other members)
    low = torch.linspace(-1, 1, 6, dtype=torch.bfloat16).requires_grad_()
    high, alone = torch.linspace(-1, 1, 6).requires_grad_(), torch.linspace(-1, 1, 6).requires_grad_()
    low_ref = low.detach().clone().requires_grad_()
    mixed = adaptim.AdamW([low, high], lr=0.1, fused=True)
    ref_low = adaptim.AdamW([low_ref], lr=0.1, foreach=True)
    ref_high = adaptim.AdamW([alone], lr=0.1, fused=True)
    for p in (low, high, alone, low_ref):
        p.grad = torch.full_like(p, 0.5)
    for opt in (mixed, ref_low, ref_high):
        opt.step()
    assert torch.equal(low, low_ref) and torch.equal(high, alone)

    class Retracted(adaptim.SGD):  # a last stage of its own (a manifold) is never fused
        def _final_step(self, group, params, directions, lr, decay=0.0):
            super()._final_step(group, params, directions, lr, decay)

    p = [torch.zeros(4, requires_grad=True)]
    opt = Retracted(p, lr=0.1)
    assert not opt.uses_fused(opt.param_groups[0])
    opt = adaptim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, lookahead=True)
    assert not opt.uses_fused(opt.param_groups[0])


def test_environment_switch_turns_the_fused_path_off(monkeypatch):
    monkeypatch.setenv("ADAPTIM_FUSED", "0")
    fused._compiler_found.cache_clear()
    try:
        p = [torch.zeros(4, requires_grad=True)]
        opt = adaptim.AdamW(p)
        assert not opt.uses_fused(opt.param_groups[0])
        p[0].grad = torch.ones(4)
        with pytest.raises(RuntimeError, match="ADAPTIM_FUSED=0"):
            adaptim.AdamW(p, fused=True).step()
    finally:
        monkeypatch.delenv("ADAPTIM_FUSED")
        fused._compiler_found.cache_clear()


# ------------------------------------------------------------------------------------------ non-finite entries
@pytest.mark.parametrize(
    "make",
    [
        lambda p: adaptim.AdamW(p, lr=0.1),
        lambda p: adaptim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: adaptim.AdaGrad(p, lr=0.1),
        lambda p: adaptim.RMSProp(p, lr=0.1),
    ],
    ids=["adamw", "sgd", "adagrad", "rmsprop"],
)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e30], ids=["nan", "inf", "square-overflows"])
def test_non_finite_entries_are_left_unchanged_and_the_step_raises(make, bad):
    p = torch.arange(1.0, 9.0).requires_grad_()
    opt = make([p])
    p.grad = torch.full((8,), 0.5)
    opt.step()  # the state is warm
    before_p, before_state = p.detach().clone(), copy.deepcopy(opt.state[p])
    g = torch.full((8,), 0.5)
    g[3] = bad
    p.grad = g
    if bad == 1e30 and isinstance(opt, adaptim.SGD):  # SGD squares nothing: a large finite step is a step
        opt.step()
        assert torch.isfinite(p).all()
        return
    with pytest.raises(RuntimeError, match="left unchanged"):
        opt.step()
    assert p[3] == before_p[3]  # the bad entry did not move ...
    assert (p[torch.arange(8) != 3] != before_p[torch.arange(8) != 3]).all()  # ... every other entry did
    for k, v in opt.state[p].items():
        assert torch.isfinite(v).all(), k
        if v.dim() and v.numel() == 8:
            assert v[3] == before_state[k][3], k


def test_eager_check_refuses_the_whole_step_before_anything_changes():
    p = torch.arange(1.0, 9.0).requires_grad_()
    opt = adaptim.AdamW([p], lr=0.1)
    p.grad = torch.full((8,), 0.5)
    opt.step()
    opt.check_finite = "eager"
    snapshot = (p.detach().clone(), copy.deepcopy(opt.state_dict()))
    g = torch.full((8,), 0.5)
    g[2] = float("nan")
    p.grad = g
    with pytest.raises(RuntimeError, match="nothing was changed"):
        opt.step()
    assert torch.equal(p, snapshot[0])
    assert torch.equal(opt.state[p]["exp_avg"], snapshot[1]["state"][0]["exp_avg"])
    assert opt.state[p]["step"] == snapshot[1]["state"][0]["step"]


def test_underflowing_square_with_eps_zero_is_left_unchanged():
    p = torch.ones(4).requires_grad_()
    opt = adaptim.Adam([p], lr=0.1, eps=0.0)
    p.grad = torch.tensor([1e-30, 0.5, 0.5, 0.5])  # 1e-30 squares to 0 in float32
    with pytest.raises(RuntimeError, match="left unchanged"):
        opt.step()
    assert p[0] == 1 and (p[1:] < 1).all()


def test_grad_scaler_skips_inf_steps_as_before():
    model = torch.nn.Linear(4, 2)
    opt = adaptim.AdamW(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    before = [p.detach().clone() for p in model.parameters()]
    loss = model(torch.full((3, 4), float("inf"))).sum()
    scaler.scale(loss).backward()
    scaler.step(opt)  # found inf: the step is skipped, nothing changes
    scaler.update()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    opt.zero_grad()
    scaler.scale(model(torch.ones(3, 4)).sum()).backward()
    scaler.step(opt)
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# ---------------------------------------------------------------------------------------- compiles and tensors
def test_one_compile_per_rule_whatever_the_shapes_the_count_and_the_schedule():
    frames = torch._dynamo.utils.counters["frames"]
    _run(lambda p: adaptim.AdamW(p, lr=1e-2, weight_decay=0.1), _params(shapes=[(3, 4), (5,)]), steps=2)
    ok = frames["ok"]

    def make(params):
        opt = adaptim.AdamW(params, lr=torch.tensor(1e-2), betas=(0.8, 0.9), weight_decay=0.2)
        make.sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / (1 + k))
        return opt

    params = _params(shapes=[(7, 3), (2,), (11,), (4, 4, 2)] * 3, seed=5)
    opt = make(params)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
        make.sched.step()
        opt.param_groups[0]["betas"] = (0.85, 0.95)
    assert frames["ok"] == ok, "the fused kernel was compiled again"


@pytest.mark.parametrize(
    "make",
    [
        lambda p: adaptim.AdamW(p, lr=1e-2, amsgrad=True, weight_decay=0.1),
        lambda p: adaptim.Adam(p, lr=1e-2),  # an absent slot (no vmax) inside each chunk's tuples
        lambda p: adaptim.SGD(p, lr=1e-2, momentum=0.9, nesterov=True),
        lambda p: adaptim.SGD(p, lr=1e-2),
        lambda p: adaptim.AdaGrad(p, lr=1e-2),
        lambda p: adaptim.RMSProp(p, lr=1e-2, betas=(0.9, 0.99)),
    ],
    ids=["adamw-amsgrad", "adam", "sgd-nesterov", "sgd-plain", "adagrad", "rmsprop"],
)
def test_direct_calls_of_the_compiled_graph_equal_the_calls_through_dynamo(make, monkeypatch):
    # more parameters than one chunk, sizes equal and distinct, a shape of several dims
    shapes = [(3, 4), (5,), (12,), (2, 2, 3), (7,), (5,), (9, 2)]
    a, b = _params(shapes=shapes, seed=2), _params(shapes=shapes, seed=2)
    calls = []
    fused_step = fused.fused_step
    monkeypatch.setattr(fused, "fused_step", lambda *x, **k: calls.append(1) or fused_step(*x, **k))
    _run(make, a)
    assert calls and all(v is not None for k, v in fused._DIRECT.items()), "a kernel without its direct call"
    monkeypatch.setattr(fused, "DIRECT", False)
    _run(make, b)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_a_direct_call_plan_refuses_a_graph_it_cannot_map():
    # a graph whose placeholders are not a chunk's: no plan (then the calls go through dynamo)
    gm = torch.fx.symbolic_trace(lambda x: x + 1)
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            n.meta["example_value"] = torch.zeros(3)
    assert fused._call_plan(gm, lambda *a: None, 4) is None


def test_tensor_lr_is_bitwise_the_float_lr():
    a, b = _params(), _params()
    _run(lambda p: adaptim.AdamW(p, lr=torch.tensor(3e-3)), a)
    _run(lambda p: adaptim.AdamW(p, lr=3e-3), b)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_checkpoint_resumes_the_exact_trajectory():
    gen = torch.Generator().manual_seed(3)
    grads = [[torch.randn(s, generator=gen) for s in SHAPES] for _ in range(10)]

    def steps(opt, params, gs):
        for g in gs:
            for p, x in zip(params, g):
                p.grad = x.clone()
            opt.step()

    a = _params()
    opt = adaptim.AdamW(a, lr=1e-2, amsgrad=True)
    steps(opt, a, grads[:5])
    saved = (copy.deepcopy([p.detach() for p in a]), copy.deepcopy(opt.state_dict()))
    steps(opt, a, grads[5:])
    b = [p.clone() for p in saved[0]]
    opt2 = adaptim.AdamW(b, lr=1e-2, amsgrad=True)
    opt2.load_state_dict(saved[1])
    steps(opt2, b, grads[5:])
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_step_counts_are_read_once_per_group_not_per_parameter(monkeypatch):
    calls = []
    original = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: calls.append(1) or original(self))
    params = _params(shapes=[(4, 4)] * 6)
    _run(lambda p: adaptim.AdamW(p, lr=1e-2), params, steps=2)
    assert calls == []


# ------------------------------------------------------------------------------------------- inside torch.compile
@pytest.fixture(autouse=True)
def _room_for_every_test_optimizer():
    # every test here compiles AdaptimOptimizer.step for optimizers of its own: more than torch's default limit of
    # 8 graphs per code object in one process (a training process compiles one optimizer's step)
    with torch._dynamo.config.patch(cache_size_limit=64):
        yield


def _model_pair():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    return model, copy.deepcopy(model)


def _train(models_and_steps, n):
    X, Y = torch.randn(64, 8, generator=torch.Generator().manual_seed(1)), torch.randn(64, 1)
    graphs = []
    for _ in range(n):
        for model, opt, step in models_and_steps:
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(X), Y).backward()
            step()
        graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    return graphs


@pytest.mark.parametrize("name", ["adamw", "sgd", "adagrad", "rmsprop"])
def test_compiled_step_is_one_graph_and_a_changing_tensor_lr_recompiles_nothing(name):
    """torch.compile(fullgraph=True) of step(): the first call makes the state (one graph), the second is the
    steady step (another); then the lr, a tensor changed in place every step, recompiles nothing. The trajectory is
    the literal path's to rounding."""
    kw = {"adamw": {}, "sgd": dict(momentum=0.9, nesterov=True), "adagrad": {}, "rmsprop": {}}[name]
    model, ref = _model_pair()
    opt = adaptim.create_optimizer(name, model.parameters(), lr=torch.tensor(1e-2), **kw)
    ref_opt = adaptim.create_optimizer(name, ref.parameters(), lr=torch.tensor(1e-2), foreach=False, **kw)
    compiled = torch.compile(opt.step, fullgraph=True)

    def step():
        compiled()
        opt.param_groups[0]["lr"].mul_(0.9)

    def ref_step():
        ref_opt.step()
        ref_opt.param_groups[0]["lr"].mul_(0.9)

    graphs = _train([(model, opt, step), (ref, ref_opt, ref_step)], 6)
    assert graphs[-1] == graphs[1], f"recompiled as the lr changed: unique graphs per step {graphs}"
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_compiled_step_with_a_lambdalr_scheduler_compiles_once():
    """The pattern of torch's tutorial (a tensor lr, opt.step() and sched.step() in one compiled function; the
    scheduler's wrapper breaks the graph, as it does for torch.optim): after the first two steps nothing
    recompiles while LambdaLR changes the lr."""
    model, ref = _model_pair()
    opt = adaptim.AdamW(model.parameters(), lr=torch.tensor(1e-2))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / (1 + k))
    ref_opt = adaptim.AdamW(ref.parameters(), lr=torch.tensor(1e-2), foreach=False)
    ref_sched = torch.optim.lr_scheduler.LambdaLR(ref_opt, lambda k: 1 / (1 + k))

    @torch.compile
    def step():
        opt.step()
        sched.step()

    def ref_step():
        ref_opt.step()
        ref_sched.step()

    graphs = _train([(model, opt, step), (ref, ref_opt, ref_step)], 6)
    assert graphs[-1] == graphs[2], f"recompiled as the lr changed: unique graphs per step {graphs}"
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(1e-2 / 7)
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_non_finite_entries_inside_a_compiled_step_raise_at_the_next_eager_step():
    p = torch.ones(4, requires_grad=True)
    opt = adaptim.AdamW([p], lr=0.1)
    compiled = torch.compile(opt.step, fullgraph=True)
    p.grad = torch.full((4,), 0.5)
    compiled()
    compiled()
    opt.step()  # clean compiled steps leave no flag behind
    p.grad = torch.tensor([0.5, float("nan"), 0.5, 0.5])
    before = p.detach().clone()
    compiled()
    assert p[1] == before[1] and torch.isfinite(p).all() and (p[[0, 2, 3]] < before[[0, 2, 3]]).all()
    p.grad = torch.full((4,), 0.5)
    with pytest.raises(RuntimeError, match="previous step"):
        opt.step()
    opt.step()  # the flag was read: the next step runs


def test_the_kernel_is_one_graph_with_no_break():
    torch._dynamo.utils.counters["graph_break"].clear()
    _run(lambda p: adaptim.AdamW(p, lr=1e-2, amsgrad=True), _params(), steps=2)
    _run(lambda p: adaptim.RMSProp(p, lr=1e-2), _params(), steps=2)
    assert not torch._dynamo.utils.counters["graph_break"]


@pytest.mark.parametrize("name", ["adamw", "sgd", "adagrad", "rmsprop"])
def test_without_the_check_the_kernel_computes_the_same_step_and_lets_nan_through(name):
    """check_finite = False compiles the kernel without its check (the cost of the check is what adaptim perf
    shows between the two): the same steps as the literal path, and a NaN gradient goes where torch's does."""
    a, b = _params(), _params()
    fast = _run(lambda p: _unchecked(adaptim.create_optimizer(name, p, lr=1e-2)), a)
    _run(lambda p: adaptim.create_optimizer(name, p, lr=1e-2, foreach=False), b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, **_tol(torch.float32))
    p = a[0]
    p.grad = torch.full_like(p, float("nan"))
    fast.step()  # no error
    assert torch.isnan(p).all()


def _unchecked(opt):
    opt.check_finite = False
    return opt


def test_compiled_step_with_a_bfloat16_parameter_takes_the_working_copy_path():
    """Inside torch.compile a float16/bfloat16 parameter is stepped as in eager mode (the float32 working copy),
    with maximize: the same result as the eager step."""
    a = torch.linspace(-1, 1, 6, dtype=torch.bfloat16).requires_grad_()
    b = a.detach().clone().requires_grad_()
    opt_a, opt_b = adaptim.AdamW([a], lr=0.1, maximize=True), adaptim.AdamW([b], lr=0.1, maximize=True)
    compiled = torch.compile(opt_a.step)
    for _ in range(2):
        a.grad, b.grad = torch.full_like(a, 0.5), torch.full_like(b, 0.5)
        compiled()
        opt_b.step()
    assert torch.equal(a, b) and not torch.equal(a, torch.linspace(-1, 1, 6, dtype=torch.bfloat16))
