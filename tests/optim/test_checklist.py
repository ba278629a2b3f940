"""PyTorch's optimizer checklist (``TestOptimRenewed`` in pytorch's test/test_optim.py), for every adaptim optimizer.

One test per property, each parametrized over every configuration of ``conftest.py`` (``optimizer_case``, 35
configurations of the 16 classes) or over the classes (``optimizer_class``); the inputs each class must refuse
and the schedulers live in ``_checklist.py`` (PyTorch's ``OptimizerInfo`` database). Where adaptim deliberately
differs from ``torch.optim`` the test says so and checks adaptim's behaviour instead of skipping: duplicate
parameters raise, non-finite and sparse gradients raise, the step counter stays float32 under a float64 default
dtype, ``load_state_dict`` keeps the saved dtypes, decoupled decay (Figure 1) does not scale with lr, complex
parameters are their ``view_as_real`` (not two real parameters) for non-elementwise rules.
"""

from __future__ import annotations

import copy
import inspect
import io
import math

import pytest
import torch
from _assertions import assert_same
from _checklist import (
    SCHEDULERS,
    SPIKY,
    assert_close_tree,
    assert_same_tree,
    assert_unchanged,
    build,
    error_inputs,
    leaf,
    lr_free_decay,
    numeric_lr,
    scheduler_step,
    snapshot,
    split_for,
    training_overrides,
)
from torch.nn import Parameter
from torch.optim.lr_scheduler import CyclicLR, ReduceLROnPlateau, StepLR
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import adaptim

# ------------------------------------------------------------------------------------------------ helpers


def regression(case, contiguous: bool = True, seed: int = 0):
    """PyTorch's problem: weight (10, 5), bias (10,) (a (1, 10) row for Muon), input (5,); loss ||W x + b||^2."""
    gen = torch.Generator().manual_seed(seed)
    bshape = case.shape((10,))
    if contiguous:
        w, b = torch.randn(10, 5, generator=gen), torch.randn(bshape, generator=gen)
    else:
        w, b = torch.randn(10, 5, 2, generator=gen)[..., 0], torch.randn(*bshape, 2, generator=gen)[..., 0]
    x = torch.randn(5, generator=gen) * 0.3  # a gentle curvature: the configurations' lrs are stable on it
    return Parameter(w), Parameter(b), x


def loss_of(w, b, x):
    return (w.mv(x) + b.reshape(-1)).pow(2).sum()


def make_closure(opt, w, b, x):
    def closure():
        opt.zero_grad()
        loss = loss_of(w, b, x)
        loss.backward()
        return loss

    return closure


def train(opt, closure, steps: int = 20, sched=None) -> tuple[float, list[float]]:
    """The initial loss and the loss after each of ``steps`` steps (a scheduler, if any, steps after each)."""
    initial = closure().item()
    losses = []
    for _ in range(steps):
        loss = opt.step(closure)
        if sched is not None:
            scheduler_step(sched, loss)
        losses.append(closure().item())
    return initial, losses


def assert_right_direction(case, initial: float, losses: list[float], maximize: bool = False, what: str = ""):
    """The loss ends below its start (above it with maximize); for the configurations of :data:`SPIKY` the
    losses stay finite and the first steps descend (their rule may step far where the gradient nears 0)."""
    sign = -1.0 if maximize else 1.0
    assert all(map(math.isfinite, losses)), what
    if case.name in SPIKY:
        assert sign * losses[2] < sign * initial, what
    else:
        assert sign * losses[-1] < sign * initial, what


def accepts(case, name: str) -> bool:
    return name in inspect.signature(case.cls.__init__).parameters


def conv_bn(dtype=torch.float32):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 2, 1, stride=2), torch.nn.BatchNorm2d(2, eps=1e-05, momentum=0.1))
    inp = torch.rand(1, 4, 16, 16, dtype=dtype)
    with torch.no_grad():  # a nonzero bias: a sphere optimizer refuses a zero vector
        model[1].bias.fill_(0.1)
    return model.to(dtype), inp


def model_step(opt, model, inp):
    def closure():
        opt.zero_grad()
        loss = model(inp).sum()
        loss.backward()
        return loss

    return opt.step(closure)


def names_of(groups) -> list[str]:
    return [x[0] for g in (groups if isinstance(groups[0], dict) else [{"params": groups}]) for x in g["params"]]


# ------------------------------------------------------------------------------------------------- errors


def test_errors(optimizer_class):
    """Every input of the database is refused with its error type and message; a refused step changes nothing
    (parameters, state and group entries bitwise)."""
    case = optimizer_class
    for err in error_inputs(case):
        try:
            check_error_input(case, err)
        except (AssertionError, pytest.fail.Exception) as failure:
            raise AssertionError(f"{case.cls.__name__}, {err.desc}: {failure}") from None


def check_error_input(case, err) -> None:
    params, kwargs = build(case, err)
    if err.on == "construction":
        with pytest.raises(err.error, match=err.regex):
            case.make(params, **kwargs)
        return
    opt = case.make(params, **kwargs)
    opt.check_finite = "eager"  # all or nothing on every path (the fused default: tests/optim/test_fused.py)
    if err.mutate is not None:
        err.mutate(opt)
    plist = [p for g in opt.param_groups for p in g["params"]]
    before = snapshot(opt, plist)
    with pytest.raises(err.error, match=err.regex):
        opt.step(lambda: None) if err.step_closure else opt.step()
    assert_unchanged(before, opt, plist)


def test_shampoo_frequency_set_after_construction_is_validated_at_step():
    """The defect: precondition_frequency = 10 set on a group after construction left start_preconditioning_step
    at 1, so steps 1..9 used roots never computed (the identity: plain SGD). The step now refuses it, and the
    consistent change (both set to 10) runs exactly as an optimizer built with them."""
    w = leaf(torch.randn(4, 3))
    opt = adaptim.Shampoo([w], lr=0.1, precondition_frequency=1, start_preconditioning_step=1)  # roots every step
    opt.param_groups[0]["precondition_frequency"] = 10
    w.grad = torch.randn(4, 3)
    with pytest.raises(ValueError, match="param group 0.*precondition_frequency"):
        opt.step()
    assert not opt.state
    opt.param_groups[0]["start_preconditioning_step"] = 10
    twin_w = leaf(w.detach())
    twin = adaptim.Shampoo([twin_w], lr=0.1, precondition_frequency=10, start_preconditioning_step=10)
    for t in range(12):
        g = torch.randn(4, 3, generator=torch.Generator().manual_seed(t))
        w.grad, twin_w.grad = g.clone(), g.clone()
        opt.step()
        twin.step()
    assert_same(w.detach(), twin_w.detach())
    assert_same_tree(opt.state[w], twin.state[twin_w])


def test_group_validation_runs_only_when_a_group_changed(monkeypatch):
    """Re-validation costs nothing while no group entry changes: it runs once after each change (an lr set by
    a scheduler, an entry written by hand, a tensor lr filled in place)."""
    calls = []
    original = adaptim.Muon._validate_group

    def counting(self, group):
        calls.append(group["lr"])
        return original(self, group)

    monkeypatch.setattr(adaptim.Muon, "_validate_group", counting)
    w = leaf(torch.randn(4, 3))
    opt = adaptim.Muon([w], lr=torch.tensor(0.02))
    assert len(calls) == 1  # construction

    def step():
        w.grad = torch.randn(4, 3)
        opt.step()

    for _ in range(4):
        step()
    assert len(calls) == 1
    opt.param_groups[0]["momentum"] = 0.9
    step()
    step()
    assert len(calls) == 2
    opt.param_groups[0]["lr"].fill_(0.01)  # in place, as LRScheduler writes a tensor lr
    step()
    assert len(calls) == 3 and calls[-1] == pytest.approx(0.01)  # validated as its float
    opt.param_groups[0]["lr"].fill_(-1.0)
    with pytest.raises(ValueError, match="param group 0.*lr"):
        step()
    opt.param_groups[0]["lr"] = 0.01
    sched = StepLR(opt, step_size=1, gamma=0.5)
    n = len(calls)
    for _ in range(3):
        step()
        sched.step()
    assert len(calls) == n + 3  # the scheduler changes lr every step


# ---------------------------------------------------------------------------------------- right direction


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("contiguous", [True, False])
def test_goes_right_direction(optimizer_case, contiguous, maximize):
    w, b, x = regression(optimizer_case, contiguous)
    assert w.is_contiguous() == contiguous and b.is_contiguous() == contiguous
    opt = optimizer_case.make([w, b], maximize=maximize, **training_overrides(optimizer_case))
    assert_right_direction(optimizer_case, *train(opt, make_closure(opt, w, b, x)), maximize)


@pytest.mark.parametrize(
    "scheduler,contiguous", [(name, True) for name in SCHEDULERS] + [("StepLR", False), ("ReduceLROnPlateau", False)]
)  # torch's two, non-contiguous
def test_goes_right_direction_under_scheduler(optimizer_case, scheduler, contiguous):
    w, b, x = regression(optimizer_case, contiguous)
    opt = optimizer_case.make([w, b], **training_overrides(optimizer_case))
    sched = SCHEDULERS[scheduler](opt)
    assert_right_direction(optimizer_case, *train(opt, make_closure(opt, w, b, x), sched=sched))


def test_param_group_with_scheduler_goes_right_direction(optimizer_case):
    """Two groups (the second with its own lr) under torch's default schedulers (StepLR, ReduceLROnPlateau)."""
    lr = numeric_lr(optimizer_case)
    for name in ("StepLR", "ReduceLROnPlateau"):
        make_sched = SCHEDULERS[name]
        w, b, x = regression(optimizer_case)
        opt = optimizer_case.make(
            [{"params": [w]}, {"params": [b], "lr": lr / 2}], **training_overrides(optimizer_case)
        )
        assert_right_direction(
            optimizer_case, *train(opt, make_closure(opt, w, b, x), sched=make_sched(opt)), what=name
        )


def test_cyclic_lr(optimizer_case):
    """CyclicLR raises the lr above the scheduler's initial_lr (its base_lr). Optimizers whose update does not use
    s_t run as usual. Figure 1's decoupled decay uses s_t = lr / peak, which would reach 10 here: the step raises
    (nothing changed) and says to state the peak; with group["peak_lr"] stated it runs, s_t in [0, 1]."""
    lr = numeric_lr(optimizer_case)
    w, b, x = regression(optimizer_case)
    opt = optimizer_case.make([w, b], **training_overrides(optimizer_case))
    sched = CyclicLR(opt, base_lr=lr / 10, max_lr=lr, step_size_up=4, cycle_momentum=False)
    closure = make_closure(opt, w, b, x)
    initial = closure().item()
    if lr_free_decay(optimizer_case):
        opt.step(closure)  # the first step is at base_lr: s_t = 1
        sched.step()
        before = snapshot(opt, [w, b])
        with pytest.raises(RuntimeError, match=r"group\['peak_lr'\] = <largest lr of the schedule>"):
            opt.step(closure)
        assert_unchanged(before, opt, [w, b])
        opt.param_groups[0]["peak_lr"] = lr
    losses = []
    for _ in range(20):
        if lr_free_decay(optimizer_case):
            assert 0 < adaptim.AdaptimOptimizer.schedule_multiplier(opt.param_groups[0]) <= 1
        opt.step(closure)
        sched.step()
        losses.append(closure().item())
    assert_right_direction(optimizer_case, initial, losses)


# ----------------------------------------------------------------------------------------------- tensor lr


def test_tensor_lr_is_the_float_lr_bitwise(optimizer_case):
    """lr = torch.tensor(v) gives bitwise the run of lr = float(v) (float64: v itself; float32: v rounded), and
    the group keeps the tensor, unchanged."""
    case = optimizer_case
    lr = numeric_lr(case)
    for t in (torch.tensor(lr, dtype=torch.float64), torch.tensor(lr)):
        w, b, x = regression(case)
        w2, b2 = Parameter(w.detach().clone()), Parameter(b.detach().clone())
        by_tensor = case.make([w, b], lr=t)
        by_float = case.make([w2, b2], lr=float(t))
        for _ in range(5):
            by_tensor.step(make_closure(by_tensor, w, b, x))
            by_float.step(make_closure(by_float, w2, b2, x))
        assert_same(w.detach(), w2.detach())
        assert_same(b.detach(), b2.detach())
        for p, q in ((w, w2), (b, b2)):
            assert_same_tree(by_tensor.state.get(p, {}), by_float.state.get(q, {}))
        assert by_tensor.param_groups[0]["lr"] is t and float(t) == float(torch.tensor(lr, dtype=t.dtype))


# ------------------------------------------------------------------------------------------------- complex


def test_complex_is_view_as_real(optimizer_case):
    """Complex parameters (beside a real one, in one group) follow exactly the run of their view_as_real, at
    every step; classes with supports_complex = False refuse them at construction."""
    case = optimizer_case
    if not case.cls.supports_complex:
        with pytest.raises(TypeError, match="view_as_real"):
            case.make([leaf(torch.randn(case.shape((10, 5)), dtype=torch.complex64))])
        return
    gen = torch.Generator().manual_seed(0)
    complex_params = [
        leaf(torch.randn(5, 3, dtype=torch.complex64, generator=gen)),
        leaf(torch.randn(10, dtype=torch.complex64, generator=gen)),
        leaf(torch.randn(5, 3, generator=gen)),
    ]
    real_params = [leaf(torch.view_as_real(p.detach()) if p.is_complex() else p.detach()) for p in complex_params]
    opt_c, opt_r = case.make(complex_params), case.make(real_params)
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) for p in real_params]
        case.step(opt_r, real_params, grads)
        case.step(
            opt_c,
            complex_params,
            [torch.view_as_complex(g) if p.is_complex() else g for p, g in zip(complex_params, grads)],
        )
        for pc, pr in zip(complex_params, real_params):
            assert_same(torch.view_as_real(pc.detach()) if pc.is_complex() else pc.detach(), pr.detach())
            assert_same_tree(opt_c.state[pc], opt_r.state[pr])


def rosenbrock(t):
    x, y = t
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def test_complex_as_real_and_imaginary_parameters(optimizer_case):
    """PyTorch's test_complex_2d: a complex vector against its real and imaginary parts as two parameters. Equal
    for elementwise rules (bitwise) and for AdaGradNorm (its group norm sums the same squares, to rounding). A
    rule that couples the entries of a parameter differs, deliberately: FullMatrixAdaGrad's d x d statistic of
    view_as_real(p) couples the real and imaginary parts, two parameters would not be coupled."""
    case = optimizer_case
    if not case.cls.supports_complex:
        with pytest.raises(TypeError, match="view_as_real"):
            case.make([leaf(torch.randn(case.shape((2,)), dtype=torch.complex64))])
        return
    a1 = leaf(torch.randn(2, dtype=torch.complex64, generator=torch.Generator().manual_seed(2024)))
    re, im = leaf(a1.real.detach()), leaf(a1.imag.detach())
    opt1, opt2 = case.make([a1]), case.make([re, im])

    def closure(opt, loss):
        def run():
            opt.zero_grad()
            out = loss()
            out.backward()
            return out

        return run

    for t in range(3):
        opt1.step(closure(opt1, lambda: rosenbrock(a1).abs()))
        opt2.step(closure(opt2, lambda: rosenbrock(torch.complex(re, im)).abs()))
        if t == 0 or case.cls is not adaptim.FullMatrixAdaGrad:  # the gradients seen by the step agree
            torch.testing.assert_close(a1.grad.real, re.grad, rtol=0 if t == 0 else 1e-5, atol=0)
            torch.testing.assert_close(a1.grad.imag, im.grad, rtol=0 if t == 0 else 1e-5, atol=0)
    if case.cls is adaptim.FullMatrixAdaGrad:
        assert not torch.allclose(a1.real.detach(), re.detach(), rtol=1e-3)  # the documented difference
    elif case.cls is adaptim.AdaGradNorm:
        torch.testing.assert_close(a1.real.detach(), re.detach(), rtol=1e-6, atol=0)
        torch.testing.assert_close(a1.imag.detach(), im.detach(), rtol=1e-6, atol=0)
    else:
        assert_same(a1.real.detach(), re.detach())
        assert_same(a1.imag.detach(), im.detach())


# ------------------------------------------------------------------------------------- foreach = for-loop


def test_foreach_matches_forloop(foreach_optimizer_case):
    """PyTorch's _test_derived_optimizers: a small float64 network plus a 0-dim and a zero-size parameter, 7 steps;
    at step 2 every gradient is None (zero_grad without backward), at steps 3-4 the second linear layer is frozen,
    then unfrozen. Parameters and every state tensor agree after each step: bitwise, or to rounding for the classes
    that stack matrices into batched kernels."""
    case = foreach_optimizer_case
    same = assert_close_tree if case.batched_to_rounding else assert_same_tree
    runs = []
    for foreach in (False, True):
        torch.manual_seed(1)
        model = torch.nn.Sequential(
            torch.nn.Linear(2, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 1), torch.nn.Sigmoid()
        ).to(torch.float64)
        extra = [
            leaf(torch.rand(case.shape(()), dtype=torch.float64)),
            leaf(torch.empty(case.shape((0,)), dtype=torch.float64)),
        ]
        params = list(model.parameters()) + extra
        opt = case.make(split_for(case, params), foreach=foreach)
        runs.append((model, params, extra, opt))
    inp = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], dtype=torch.float64).reshape(3, 2)
    for i in range(7):
        for model, _, extra, opt in runs:
            opt.zero_grad()
            if i == 3:
                model[2].requires_grad_(False)
            if i == 5:
                model[2].requires_grad_(True)
            if i != 2:
                (model(inp).sum() + extra[0].sum() ** 2).backward()
                extra[1].grad = torch.zeros_like(extra[1])
            opt.step(lambda: None)  # SGD(lookahead=True) needs a closure; the gradients are set above
        (_, p_off, _, o_off), (_, p_on, _, o_on) = runs
        for a, b in zip(p_off, p_on):
            same(a.detach(), b.detach(), f"step {i}")
            same(o_off.state.get(a, {}), o_on.state.get(b, {}), f"step {i} state")
    assert all(p not in o_on.state for p in p_on[-1:])  # the zero-size parameter has no state


@pytest.mark.parametrize("default", [torch.float64, torch.float16])
def test_set_default_dtype(optimizer_case, default):
    """Under torch.set_default_dtype(float64 or float16) a float32 run is bitwise the float32-default run (no
    tensor of the default dtype sneaks into the arithmetic), for both foreach paths. The step counter follows
    torch: float64 under a float64 default, float32 otherwise (exact to 2^24 steps; never float16)."""
    case = optimizer_case

    def run(default_dtype):
        old = torch.get_default_dtype()
        torch.set_default_dtype(default_dtype)
        try:
            gen = torch.Generator().manual_seed(0)
            out = []
            for foreach in (False, True) if case.has_foreach else (None,):
                params = [
                    leaf(torch.randn(case.shape(s), generator=gen, dtype=torch.float32)) for s in ((3, 4), (4,), ())
                ]
                kw = {} if foreach is None else {"foreach": foreach}
                opt = case.make(params, **kw)
                for _ in range(3):
                    case.step(opt, params, [torch.randn(p.shape, generator=gen, dtype=torch.float32) for p in params])
                out.append(([p.detach() for p in params], [opt.state.get(p, {}) for p in params]))
            return out
        finally:
            torch.set_default_dtype(old)

    want = torch.float64 if default == torch.float64 else torch.float32
    for ref, got in zip(run(torch.float32), run(default), strict=True):
        for state in got[1]:
            if "step" in state:
                assert state["step"].dtype == want
                state["step"] = state["step"].to(torch.float32)  # the same count
        assert_same_tree(ref, got)


def test_none_grads_mid_run_and_zero_size_parameters(optimizer_case):
    """A step in which every gradient is None changes nothing (step counters included); zero-size parameters
    (with zero-size gradients) are carried along untouched and get no state."""
    case = optimizer_case
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(case.shape(s), generator=gen) for s in ((2, 3), (0,), (3, 0), ())]
    grads = [[torch.randn(p.shape, generator=gen) for p in start] for _ in range(5)]
    with_gap, without = [leaf(p) for p in start], [leaf(p) for p in start]
    opt_gap, opt = case.make(with_gap), case.make(without)
    for t, gs in enumerate(grads):
        case.step(opt_gap, with_gap, gs)
        case.step(opt, without, gs)
        if t == 2:
            before = snapshot(opt_gap, with_gap)

            def nothing():
                for p in with_gap:
                    p.grad = None

            opt_gap.step(nothing)
            assert_unchanged(before, opt_gap, with_gap)
    for p, q in zip(with_gap, without):
        assert_same(p.detach(), q.detach())
        assert_same_tree(opt_gap.state.get(p, {}), opt.state.get(q, {}))
    for p, s in zip(with_gap[1:3], start[1:3]):
        assert p.shape == s.shape and p not in opt_gap.state


# ------------------------------------------------------------------------------------------- param groups


@pytest.mark.parametrize("maximize", [False, True])
def test_param_groups_weight_decay(optimizer_case, maximize):
    """The weight with the configuration's decay, the bias in a group without decay (classes without a
    weight_decay argument: both groups as configured)."""
    case = optimizer_case
    w, b, x = regression(case)
    bias_group = {"params": [b], **({"weight_decay": 0.0} if accepts(case, "weight_decay") else {})}
    opt = case.make([{"params": [w]}, bias_group], maximize=maximize, **training_overrides(case))
    assert_right_direction(case, *train(opt, make_closure(opt, w, b, x)), maximize)


def test_param_groups_lr(optimizer_case):
    """A group at lr = 1e-28 stays put bitwise while another group trains. Deliberate difference: Figure 1's
    decoupled decay lambda_t = s_t weight_decay does not scale with lr, so that group still decays, by exactly
    (1 - weight_decay) per step up to the lr-sized update."""
    case = optimizer_case
    inner = {"lr": numeric_lr(case)}
    outer = {**case.kwargs, "lr": 1e-28}  # the other group: the same configuration at lr = 1e-28
    w, b, x = regression(case)
    irrelevant = Parameter(torch.randn(case.shape((2,)), generator=torch.Generator().manual_seed(5)))
    case.place([w, b, irrelevant])  # (the simplex cases; case.cls is called directly below)
    opt = case.cls(
        [{"params": [w, b], **case.group_extra, **inner}, {"params": [irrelevant], **case.group_extra}], **outer
    )
    start = irrelevant.detach().clone()  # after construction (which may put it on a manifold)
    gen = torch.Generator().manual_seed(6)

    def closure():
        opt.zero_grad()
        loss = loss_of(w, b, x)
        loss.backward()
        irrelevant.grad = torch.rand(irrelevant.shape, generator=gen)  # a gradient every step
        return loss

    assert_right_direction(case, *train(opt, closure))
    assert len(opt.state.get(irrelevant, {"stepped": True})) > 0  # it was stepped (stateless rules: no state)
    decay = lr_free_decay(case)
    if decay:
        torch.testing.assert_close(irrelevant.detach(), start * (1 - decay) ** 20, rtol=1e-5, atol=0)
    else:
        assert_same(irrelevant.detach(), start)


# ----------------------------------------------------------------------------------------------- no-ops


def test_step_is_noop_when_params_have_no_grad(optimizer_case):
    case = optimizer_case
    params = [torch.randn(case.shape((2, 3))) for _ in range(2)]  # requires_grad=False, as torch's test
    opt = case.make(params)
    before = snapshot(opt, params)
    opt.step(lambda: torch.tensor([1.0]))
    assert_unchanged(before, opt, params)
    assert opt.state_dict()["state"] == {}


def test_step_is_noop_for_zero_grads(optimizer_case):
    """Zero gradients move nothing, for every rule here (each maps g = 0 to a zero direction: eps, atan2(0, 0) = 0,
    a zero Newton-Schulz or SVD input, a zero Shampoo direction), over three steps; weight decay, which moves the
    weights whatever the gradient, is set to 0 as in torch's test."""
    case = optimizer_case
    p = leaf(torch.randn(case.shape((5, 1)), generator=torch.Generator().manual_seed(0)))
    case.place([p])
    opt = case.make([p], **({"weight_decay": 0.0} if accepts(case, "weight_decay") else {}))
    start = p.detach().clone()  # after construction (which may put it on a manifold)
    for _ in range(3):
        case.step(opt, [p], [torch.zeros_like(p)])
    assert_same(p.detach(), start)


def test_optimizer_can_be_printed(optimizer_case):
    case = optimizer_case
    params = [Parameter(torch.randn(case.shape((2, 3)))) for _ in range(2)]
    text = repr(case.make(params))
    assert text.startswith(f"{case.cls.__name__} (\nParameter Group 0\n")
    for k, v in case.kwargs.items():
        assert f"    {k}: {v}\n" in text, k
    lr = numeric_lr(case)
    if lr is not None:
        assert f"    lr: {torch.tensor(lr)}\n" in repr(case.make(params, lr=torch.tensor(lr)))


# ------------------------------------------------------------------------------------------- state dicts


def without_names(sd):
    sd = copy.deepcopy(sd)
    for g in sd["param_groups"]:
        g.pop("param_names", None)
    return sd


@pytest.mark.parametrize("named1", [False, True], ids=["unnamed1", "named1"])
@pytest.mark.parametrize("named0", [False, True], ids=["unnamed0", "named0"])
def test_state_dict_deterministic(optimizer_case, named0, named1):
    """Load a primed optimizer's state into one over equal (not identical) parameters, named or not: both run the
    same steps bitwise, their state dicts are equal (names aside), and a repeated group is packed identically."""
    case = optimizer_case
    gen = torch.Generator().manual_seed(0)
    w = Parameter(torch.randn(case.shape((2, 3)), generator=gen))
    b = Parameter(torch.randn(case.shape((w.shape[0],)), generator=gen))
    x = torch.randn(w.shape[1], generator=gen)

    def named(ps, flag):
        return [(f"name{i}", p) for i, p in enumerate(ps)] if flag else ps

    opt = case.make(named([w, b], named0))
    for _ in range(5):
        opt.step(make_closure(opt, w, b, x))
    with torch.no_grad():
        w_c, b_c = Parameter(w.clone()), Parameter(b.clone())
    opt_c = case.make(named([w_c, b_c], named1))
    opt_c.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(5):
        opt.step(make_closure(opt, w, b, x))
        opt_c.step(make_closure(opt_c, w_c, b_c, x))
        assert_same(w.detach(), w_c.detach())
        assert_same(b.detach(), b_c.detach())
    assert_same_tree(without_names(opt.state_dict()), without_names(opt_c.state_dict()))
    opt_c.param_groups.extend(opt_c.param_groups)
    assert_same_tree(
        without_names(opt.state_dict())["param_groups"][-1], without_names(opt_c.state_dict())["param_groups"][-1]
    )


def test_can_load_older_state_dict(optimizer_case):
    """A state dict without the group entries added after the first release (torch's not_og_supported_flags:
    foreach, maximize, differentiable, capturable) and without param_names loads; those entries come back at
    this optimizer's values and the run continues bitwise as if never saved."""
    case = optimizer_case
    case.skip_unless_whole_models()
    model, inp = conv_bn()
    twin = copy.deepcopy(model)
    opt = case.make(split_for(case, list(model.parameters())))
    ref = case.make(split_for(case, list(twin.parameters())))
    for _ in range(3):
        model_step(opt, model, inp)
        model_step(ref, twin, inp)
    old = copy.deepcopy(opt.state_dict())
    new_keys = ("foreach", "maximize", "differentiable", "capturable", "param_names")
    for g in old["param_groups"]:
        for k in new_keys:
            g.pop(k, None)
    opt.load_state_dict(old)
    for g, r in zip(opt.param_groups, ref.param_groups):
        assert {k: g.get(k) for k in new_keys} == {k: r.get(k) for k in new_keys}
    model_step(opt, model, inp)
    model_step(ref, twin, inp)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert_same(p.detach(), q.detach())


@pytest.mark.parametrize("named1", [False, True], ids=["unnamed1", "named1"])
@pytest.mark.parametrize("named0", [False, True], ids=["unnamed0", "named0"])
def test_can_load_from_to_named_state_dict(optimizer_case, named0, named1):
    """model.named_parameters() is accepted (names kept in each group's param_names); a state dict moves between
    named and unnamed optimizers, keeping the names where either had them."""
    case = optimizer_case
    case.skip_unless_whole_models()
    model, inp = conv_bn()

    def params(named):
        return split_for(case, list(model.named_parameters()) if named else list(model.parameters()))

    opt = case.make(params(named0))
    for _ in range(3):
        model_step(opt, model, inp)
    saved = copy.deepcopy(opt.state_dict())
    opt2 = case.make(params(named1))
    opt2.load_state_dict(saved)
    model_step(opt2, model, inp)
    if named0 or named1:
        got = [n for g in opt2.state_dict()["param_groups"] for n in g["param_names"]]
        assert got == names_of(params(True)) and sorted(got) == ["0.bias", "0.weight", "1.bias", "1.weight"]
    else:
        assert all("param_names" not in g for g in opt2.state_dict()["param_groups"])


@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "named"])
def test_save_load_weights_only(optimizer_case, named):
    """torch.save then torch.load, with and without weights_only=True, gives the state dict back exactly
    (tensor lr included)."""
    case = optimizer_case
    gen = torch.Generator().manual_seed(0)
    w = Parameter(torch.randn(case.shape((2, 3)), generator=gen))
    b = Parameter(torch.randn(case.shape((w.shape[0],)), generator=gen))
    x = torch.randn(w.shape[1], generator=gen)
    lr = numeric_lr(case)
    opt = case.make([("w", w), ("b", b)] if named else [w, b], lr=torch.tensor(lr))
    for _ in range(3):
        opt.step(make_closure(opt, w, b, x))
    sd = opt.state_dict()
    buf = io.BytesIO()
    torch.save(sd, buf)
    for weights_only in (False, True):
        buf.seek(0)
        assert_same_tree(sd, torch.load(buf, weights_only=weights_only))


@pytest.mark.parametrize("kind", ["int", "float", "float64 tensor", "int64 tensor"])
def test_load_nontensor_step(stateful_optimizer_case, kind):
    """A checkpoint whose `step` is a plain number (older torch and adaptim wrote ints) or a tensor of another
    dtype, and whose 0-dim state tensors are plain numbers, loads; `step` becomes the float32 step tensor, and the
    run continues bitwise as the uninterrupted one. (The defect: AttributeError "'int' object has no attribute
    'shape'" for Adam, AdamW, AdamAtan2, Adafactor, AdamNMF, Shampoo and IdealizedShampoo.)"""
    case = stateful_optimizer_case
    convert = {
        "int": lambda v: int(v.item()),
        "float": lambda v: v.item(),
        "float64 tensor": lambda v: v.to(torch.float64),
        "int64 tensor": lambda v: v.to(torch.int64),
    }[kind]
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(case.shape(s), generator=gen) for s in ((2, 3), ())]
    grads = [[torch.rand(p.shape, generator=gen) for p in start] for _ in range(6)]
    params, resumed = [leaf(p) for p in start], [leaf(p) for p in start]
    opt = case.make(params)
    for gs in grads[:3]:
        case.step(opt, params, gs)
    sd = copy.deepcopy(opt.state_dict())
    converted = 0
    for state in sd["state"].values():
        for k, v in state.items():
            if k == "step":
                state[k] = convert(v)
                converted += 1
            elif kind == "float" and v.dim() == 0:  # any 0-dim entry saved as a plain number
                state[k] = v.item()
                converted += 1
    if not converted:
        pytest.skip(f"{case.name} keeps no step counter and no 0-dim state")
    with torch.no_grad():
        for p, q in zip(resumed, params):
            p.copy_(q)
    opt2 = case.make(resumed)
    opt2.load_state_dict(sd)
    for p in resumed:
        step = opt2.state[p].get("step")
        assert step is None or (step.dtype == torch.float32 and step.dim() == 0 and float(step) == 3.0)
    for gs in grads[3:]:
        case.step(opt, params, gs)
        case.step(opt2, resumed, gs)
    for p, q in zip(params, resumed):
        assert_same(p.detach(), q.detach())
        assert_same_tree(opt.state[p], opt2.state[q])


# --------------------------------------------------------------------------------------------------- hooks


def test_step_pre_and_post_hooks(optimizer_case):
    case = optimizer_case
    params = [torch.ones(case.shape((2,)))]
    opt = case.make(params)
    data = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: data.append("pre"))
    post = opt.register_step_post_hook(lambda o, args, kwargs: data.append("post"))
    opt.step(lambda: 1)
    opt.step(lambda: 1)
    assert data == ["pre", "post"] * 2
    pre.remove()
    post.remove()
    opt.step(lambda: 1)
    assert data == ["pre", "post"] * 2


def test_step_all_hooks_global_before_local(optimizer_case):
    """torch's order: global pre, local pre, step, local post, global post; for this optimizer and beside a
    torch optimizer, then nothing once the handles are removed."""
    case = optimizer_case
    params = [torch.ones(case.shape((2,)))]
    opt, other = case.make(params), torch.optim.SGD(params)
    data = []
    handles = [
        register_optimizer_step_pre_hook(lambda o, a, k: data.append(0)),
        register_optimizer_step_post_hook(lambda o, a, k: data.append(5)),
    ]
    try:
        for o in (opt, other):
            handles += [
                o.register_step_pre_hook(lambda o_, a, k: data.append(1)),
                o.register_step_post_hook(lambda o_, a, k: data.append(2)),
            ]
        opt.step(lambda: 1)
        assert data == [0, 1, 2, 5]
        other.step()
        opt.step(lambda: 1)
        assert data == [0, 1, 2, 5] * 3
    finally:
        for h in handles:
            h.remove()
    opt.step(lambda: 1)
    other.step()
    assert data == [0, 1, 2, 5] * 3


def test_state_dict_hooks(optimizer_case):
    case = optimizer_case

    def pre(o):
        o.state["test"] = 1

    def post(o, sd):
        sd["ran_state_dict_pre_hook"] = sd["state"].pop("test", None) is not None
        return sd

    def fresh():
        return case.make([leaf(torch.rand(case.shape((2, 3))))])

    o = fresh()
    o.register_state_dict_pre_hook(pre)
    assert o.state_dict()["state"]["test"] == 1
    o = fresh()
    o.register_state_dict_post_hook(post)
    assert o.state_dict()["ran_state_dict_pre_hook"] is False
    o = fresh()
    o.register_state_dict_pre_hook(pre)
    o.register_state_dict_post_hook(post)
    sd = o.state_dict()
    assert "test" not in sd["state"] and sd["ran_state_dict_pre_hook"] is True


def test_load_state_dict_hooks(optimizer_case):
    """torch's load_state_dict hook tests: a pre-hook may edit the dict or return another, prepend=True runs
    first, post-hooks run after loading (the hooks write a group entry of their own, "tag")."""
    case = optimizer_case

    def tag_a(o, sd):
        sd["param_groups"][0]["tag"] = "a"

    def tag_b(o, sd):
        sd = copy.deepcopy(sd)
        sd["param_groups"][0]["tag"] = "b"
        return sd

    def post(o):
        o.state["ran_pre_b"] = o.param_groups[0].get("tag") == "b"
        o.state["ran_post"] = True

    def fresh():
        return case.make([leaf(torch.rand(case.shape((2, 3))))])

    o = fresh()
    sd = o.state_dict()
    o.register_load_state_dict_pre_hook(tag_a)
    o.load_state_dict(sd)
    assert o.param_groups[0]["tag"] == "a"
    o.register_load_state_dict_pre_hook(tag_b, prepend=True)
    o.load_state_dict(sd)
    assert o.param_groups[0]["tag"] == "a"  # b ran first, a overrode it
    o = fresh()
    o.register_load_state_dict_post_hook(post)
    o.load_state_dict(o.state_dict())
    assert o.state["ran_pre_b"] is False and o.state["ran_post"] is True
    o = fresh()
    o.register_load_state_dict_pre_hook(tag_b)
    o.register_load_state_dict_post_hook(post)
    o.load_state_dict(o.state_dict())
    assert o.state["ran_pre_b"] is True and o.state["ran_post"] is True


def test_load_state_dict_hooks_wrap_the_checks(stateful_optimizer_case):
    """adaptim checks a loaded dict against the parameters and keeps the saved dtypes: pre-hooks run before the
    checks (a hook can convert a foreign dict, here one whose state keys carry a prefix) and post-hooks after
    the dtypes are restored (they see float32 statistics of a bfloat16 parameter, as the step will; torch would
    have cast them to bfloat16)."""
    case = stateful_optimizer_case
    p = leaf(torch.randn(case.shape((2, 3))).to(torch.bfloat16))
    opt = case.make([p])
    case.step(opt, [p], [torch.randn(p.shape).to(torch.bfloat16)])
    saved_dtypes = {k: v.dtype for k, v in opt.state[p].items()}
    foreign = copy.deepcopy(opt.state_dict())
    foreign["state"] = {i: {f"old_{k}": v for k, v in s.items()} for i, s in foreign["state"].items()}
    with pytest.raises(ValueError, match="saved state has entries"):
        case.make([leaf(p.detach())]).load_state_dict(copy.deepcopy(foreign))

    def convert(o, sd):
        sd["state"] = {i: {k.removeprefix("old_"): v for k, v in s.items()} for i, s in sd["state"].items()}

    seen = {}
    q = leaf(p.detach())
    other = case.make([q])
    other.register_load_state_dict_pre_hook(convert)
    other.register_load_state_dict_post_hook(lambda o: seen.update({k: v.dtype for k, v in o.state[q].items()}))
    other.load_state_dict(foreign)
    assert seen == saved_dtypes and all(d != torch.bfloat16 for k, d in seen.items() if k != "step")


# ------------------------------------------------------------------------------------------ copies, state


def test_deepcopy(optimizer_case):
    """deepcopy keeps every public attribute (also one set on the instance) and the state, and the copy runs on
    its own, bitwise as the original."""
    case = optimizer_case
    gen = torch.Generator().manual_seed(0)
    params = [Parameter(torch.randn(case.shape(s), generator=gen)) for s in ((2, 3), (2, 3))]
    opt = case.make(params)
    grads = [[torch.rand(p.shape, generator=gen) for p in params] for _ in range(5)]
    for gs in grads[:3]:
        case.step(opt, params, gs)
    opt.check_finite = True  # a public attribute set on the instance (torch's deepcopy dropped it)
    dup = copy.deepcopy(opt)

    def public(o):
        return {k for k in o.__dict__ if not k.startswith("_")}

    assert public(dup) == public(opt)
    assert_same_tree(dup.state_dict(), opt.state_dict())
    dup_params = [p for g in dup.param_groups for p in g["params"]]
    assert all(d is not p for d, p in zip(dup_params, params))
    for gs in grads[3:]:
        case.step(opt, params, gs)
        case.step(dup, dup_params, gs)
    assert_same_tree(dup.state_dict(), opt.state_dict())
    for d, p in zip(dup_params, params):
        assert_same(d.detach(), p.detach())


def test_state_is_never_an_empty_entry(optimizer_case):
    """torch's test_non_empty_state: after a step every per-parameter state holds something; a configuration that
    keeps no per-parameter state leaves state_dict()["state"] empty (the defect: `{0: {}}`), also after loading an
    older dict that held such empty entries."""
    case = optimizer_case
    case.skip_unless_whole_models()
    model = torch.nn.Linear(5, 5)
    opt = case.make(split_for(case, list(model.parameters())))
    opt.zero_grad()
    model(torch.rand(2, 5)).sum().backward()
    opt.step(lambda: None)
    assert all(len(s) > 0 for s in opt.state.values())
    assert (len(opt.state) == 2) == case.per_param_state and (len(opt.state) == 0) != case.per_param_state
    if not case.per_param_state:
        assert opt.state_dict()["state"] == {}
        older = opt.state_dict()
        older["state"] = {0: {}, 1: {}}
        opt.load_state_dict(older)
        assert opt.state_dict()["state"] == {} and len(opt.state) == 0


# --------------------------------------------------------------------------------------- schedule multiplier


def test_no_initial_lr_at_construction_and_a_later_scheduler_uses_the_current_lr():
    """An lr set on a group after construction and before a scheduler is built is the one the scheduler starts
    from, as in torch (the defect: adaptim's scheduler started from the constructor's 0.001, torch's from 0.01)."""
    results = []
    for cls in (adaptim.AdamW, torch.optim.AdamW):
        p = leaf(torch.ones(2))
        opt = cls([p], lr=1e-3)
        assert "initial_lr" not in opt.param_groups[0]
        opt.param_groups[0]["lr"] = 0.01
        sched = StepLR(opt, step_size=1, gamma=0.5)
        p.grad = torch.ones(2)
        opt.step()
        sched.step()
        results.append((opt.param_groups[0]["initial_lr"], opt.param_groups[0]["lr"]))
    assert results[0] == results[1] == (0.01, 0.005)


@pytest.mark.parametrize(
    "group,expected",
    [
        ({"lr": 0.3}, 1.0),  # no scheduler
        ({"lr": 0.005, "initial_lr": 0.01}, 0.5),  # any LRScheduler
        ({"lr": 0.05, "initial_lr": 0.004, "max_lr": 0.1}, 0.5),  # OneCycleLR
        ({"lr": 0.05, "initial_lr": 0.01, "max_lr": 0.2, "peak_lr": 0.1}, 0.5),  # stated by the user: first
        ({"lr": torch.tensor(0.25), "initial_lr": torch.tensor(0.5)}, 0.5),  # tensors
        ({"lr": 0.0, "initial_lr": 0.0}, 1.0),
    ],
)
def test_schedule_multiplier_peak(group, expected):
    assert adaptim.AdaptimOptimizer.schedule_multiplier(group) == expected


@pytest.mark.parametrize(
    "group,key",
    [
        ({"lr": 0.1, "initial_lr": 0.01}, "initial_lr"),
        ({"lr": 0.2, "initial_lr": 0.01, "max_lr": 0.1}, "max_lr"),
        ({"lr": 0.2, "max_lr": 0.3, "peak_lr": 0.1}, "peak_lr"),
        ({"lr": 1e-9, "initial_lr": 0.0}, "initial_lr"),
    ],
)
def test_schedule_multiplier_above_one_raises(group, key):
    with pytest.raises(RuntimeError, match=rf"\(group\['{key}'\]\).*group\['peak_lr'\] = <largest lr"):
        adaptim.AdaptimOptimizer.schedule_multiplier(group)


def test_schedule_multiplier_under_cyclic_lr_decoupled_decay():
    """The defect: under CyclicLR(base_lr=0.01, max_lr=0.1) s_t reached 10 (decoupled decay 10x Figure 1's). Now
    the step raises before anything changes; with the peak stated, s_t = lr / 0.1 and each step decays the weights
    by exactly (1 - s_t weight_decay) (zero gradients)."""
    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = adaptim.AdamW([p], lr=1e-3, weight_decay=0.1, independent_weight_decay=True)
    sched = CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=4, cycle_momentum=False)
    p.grad = torch.zeros_like(p)
    opt.step()
    sched.step()
    with pytest.raises(RuntimeError, match="peak_lr"):
        opt.step()
    torch.testing.assert_close(p.detach(), torch.full((3,), 0.9, dtype=torch.float64))  # one step at s_t = 1
    opt.param_groups[0]["peak_lr"] = 0.1
    expected = 0.9
    seen = []
    for _ in range(10):
        s_t = adaptim.AdaptimOptimizer.schedule_multiplier(opt.param_groups[0])
        assert s_t == pytest.approx(opt.param_groups[0]["lr"] / 0.1, rel=1e-15) and 0 < s_t <= 1
        seen.append(s_t)
        opt.step()
        expected *= 1 - 0.1 * s_t
        sched.step()
    assert max(seen) == pytest.approx(1.0)
    torch.testing.assert_close(p.detach(), torch.full((3,), expected, dtype=torch.float64))


def test_schedule_multiplier_manual_lr_changes_and_reduce_on_plateau():
    """Without a scheduler s_t = 1 whatever lr is set by hand; after a scheduler, a manual lr above its initial_lr
    raises; ReduceLROnPlateau records no peak (s_t = 1) unless group["peak_lr"] states it."""
    p = leaf(torch.ones(2))
    opt = adaptim.AdamW([p], lr=1e-3, weight_decay=0.1, independent_weight_decay=True)
    opt.param_groups[0]["lr"] = 5e-3
    assert adaptim.AdaptimOptimizer.schedule_multiplier(opt.param_groups[0]) == 1.0
    sched = ReduceLROnPlateau(opt, patience=0, factor=0.5)
    for loss in (1.0, 2.0):
        sched.step(loss)
    assert opt.param_groups[0]["lr"] == 2.5e-3
    assert adaptim.AdaptimOptimizer.schedule_multiplier(opt.param_groups[0]) == 1.0
    opt.param_groups[0]["peak_lr"] = 5e-3
    assert adaptim.AdaptimOptimizer.schedule_multiplier(opt.param_groups[0]) == 0.5
    StepLR(opt, step_size=1)  # writes initial_lr; peak_lr still comes first
    opt.param_groups[0]["lr"] = 1e-2
    p.grad = torch.ones(2)
    with pytest.raises(RuntimeError, match="peak_lr"):
        opt.step()
    assert not opt.state


# ---------------------------------------------------------------------------------- deliberate differences


def test_deliberate_differences_from_torch():
    """The differences the checks above run into, side by side with torch.optim (the README lists them)."""
    p = leaf(torch.ones(3))
    with pytest.warns(UserWarning, match="duplicate parameters"):
        torch.optim.Adam([p, p])
    with pytest.raises(ValueError, match="appears twice"):
        adaptim.Adam([p, p])
    # statistics of half-precision parameters are float32; torch keeps them in the parameter's dtype
    h, h2 = leaf(torch.ones(3, dtype=torch.bfloat16)), leaf(torch.ones(3, dtype=torch.bfloat16))
    ours, theirs = adaptim.Adam([h]), torch.optim.Adam([h2])
    h.grad = h2.grad = torch.ones(3, dtype=torch.bfloat16)
    ours.step()
    theirs.step()
    assert ours.state[h]["exp_avg"].dtype == torch.float32 and theirs.state[h2]["exp_avg"].dtype == torch.bfloat16
    # a non-finite gradient entry never enters the parameters or the state, and the step raises; torch steps into
    # NaN. The fused path (the default) leaves that entry unchanged and steps the others; check_finite="eager"
    # refuses the whole step before anything changes
    q, q2, q3 = leaf(torch.ones(3)), leaf(torch.ones(3)), leaf(torch.ones(3))
    q.grad = q2.grad = q3.grad = torch.tensor([1.0, float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="NaN"):
        adaptim.Adam([q]).step()
    eager = adaptim.Adam([q3])
    eager.check_finite = "eager"
    with pytest.raises(RuntimeError, match="NaN"):
        eager.step()
    torch.optim.Adam([q2]).step()
    assert q[1] == 1 and torch.isfinite(q).all() and bool(q2.isnan().any())
    assert torch.equal(q3.detach(), torch.ones(3))
    # sparse gradients are refused (torch's SGD and Adagrad take them)
    s = leaf(torch.ones(3))
    s.grad = torch.ones(3).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        adaptim.SGD([s], lr=0.1).step()
    # torch's implementation flags capturable and differentiable do not exist here (fused does: the compiled path)
    for flag in ("capturable", "differentiable"):  # torch's switches: accepted off, refused on
        adaptim.Adam([p], **{flag: False})
        with pytest.raises(ValueError, match=flag):
            adaptim.Adam([p], **{flag: True})
    if adaptim.functional.fused.fused_available("cpu"):  # (ADAPTIM_FUSED=0 or no compiler: fused=True refuses)
        assert adaptim.Adam([p], fused=True).uses_fused(adaptim.Adam([p], fused=True).param_groups[0])
    # not a difference: the step counter is float64 under a float64 default dtype, as torch's
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        d, d2 = leaf(torch.ones(3)), leaf(torch.ones(3))
        ours, theirs = adaptim.Adam([d]), torch.optim.Adam([d2])
        d.grad = d2.grad = torch.ones(3)
        ours.step()
        theirs.step()
    finally:
        torch.set_default_dtype(old)
    assert ours.state[d]["step"].dtype == theirs.state[d2]["step"].dtype == torch.float64


def test_checklist_covers_every_class():
    """The database has an entry for every exported optimizer class."""
    from _checklist import _CLASS_ERRORS

    exported = {
        getattr(adaptim, n)
        for n in adaptim.__all__
        if isinstance(getattr(adaptim, n), type)
        and issubclass(getattr(adaptim, n), torch.optim.Optimizer)
        and getattr(adaptim, n) is not adaptim.AdaptimOptimizer
    }
    assert exported == set(_CLASS_ERRORS)
