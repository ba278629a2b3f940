"""Cases C01-C08 and C13 of the shared cases list, each checked for its whole kind across the optimizers.

Every case first checks the stated input and value, then the kind of fault it stands for over every optimizer
it applies to (``optimizer_case`` and friends are parametrized in ``conftest.py``: the optimizers of issues 2
and 3). Comparisons are bitwise, except between a batched matrix path and the same parameters updated one at a
time (see ``OptimizerCase.batched_to_rounding``), which agree to rounding: there :func:`assert_close_state`.
"""

from __future__ import annotations

import io
import math

import pytest
import torch
from _assertions import assert_same, assert_same_state

import adaptim

# ------------------------------------------------------------------------------------------------- helpers


def assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Agreement to rounding: dtype and shape equal, values within 16 units of the dtype's precision relative to
    the tensor's scale (for half precision that is one rounding step of the stored value, at most)."""
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    eps = torch.finfo(a.dtype).eps
    scale = float(b.abs().max()) if b.numel() else 0.0
    torch.testing.assert_close(a, b, rtol=16 * eps, atol=16 * eps * scale)


def assert_close_state(s1: dict, s2: dict) -> None:
    assert set(s1) == set(s2)
    for k in s1:
        if isinstance(s1[k], torch.Tensor) and k != "step":
            assert_close(s1[k], s2[k])
        elif isinstance(s1[k], torch.Tensor):
            assert_same(s1[k], s2[k])
        else:
            assert s1[k] == s2[k], k


def assert_finite_state(opt: torch.optim.Optimizer) -> None:
    for state in opt.state.values():
        for k, v in state.items():
            if isinstance(v, torch.Tensor):
                assert torch.isfinite(v).all(), (k, v)


def randn(shape, dtype, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Deterministic normal samples drawn in float64, then cast (complex: real view of twice the size)."""
    gen = torch.Generator().manual_seed(seed)
    if dtype.is_complex:
        real = torch.randn(*shape, 2, generator=gen, dtype=torch.float64) * scale
        return torch.view_as_complex(real).to(dtype)
    return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def run(case, params, grad_steps, **overrides):
    """Build ``case``'s optimizer over ``params`` and take one step per entry of ``grad_steps``."""
    opt = case.make(params, **overrides)
    for grads in grad_steps:
        case.step(opt, params, grads)
    return opt


# weight decay multiplies w (decoupled); the other classes with a weight_decay add it to g (L2)
DECOUPLED_DECAY = (
    adaptim.AdamW,
    adaptim.AdamAtan2,
    adaptim.Adafactor,
    adaptim.AdamNMF,
    adaptim.Shampoo,
    adaptim.IdealizedShampoo,
    adaptim.Muon,
)


def decay_per_step(case) -> float:
    """lambda_t of Figure 1 (d) at s_t = 1 (w <- (1 - lambda_t) w on a zero gradient) for the decoupled classes,
    0 for the others. Adafactor multiplies by rho_t (lr, or the relative step min(lr, 1/sqrt(t)) = lr for
    t <= 1/lr^2; lr defaults to 1e-2); the rest of issue 3 and AdamW's default by lr."""
    wd = case.kwargs.get("weight_decay", 1e-2 if case.cls is adaptim.AdamW else 0.0)
    if case.cls not in DECOUPLED_DECAY:
        return 0.0
    if case.kwargs.get("independent_weight_decay", False):
        return wd
    if case.cls is adaptim.Adafactor:
        return case.kwargs.get("lr", 1e-2) * wd
    return case.kwargs["lr"] * wd


def zero_grad_trajectory(case, start: torch.Tensor, steps: int) -> torch.Tensor:
    """Where ``steps`` zero gradients take ``start`` (computed in float64, rounded to its dtype each step, as the
    parameter is stored): decoupled decay only; Shampoo adds the decay to its search direction *before* the
    heavy-ball momentum, so there M <- mu M + wd w, w <- w - lr M."""
    lam = decay_per_step(case)
    mu = case.kwargs.get("momentum", 0.0) if case.cls is adaptim.Shampoo else 0.0
    w, buf = start, torch.zeros_like(start, dtype=torch.float64)
    for _ in range(steps):
        if mu:
            buf = mu * buf + case.kwargs.get("weight_decay", 0.0) * w.double()
            w = (w.double() - case.kwargs["lr"] * buf).to(start.dtype)
        else:
            w = (w.double() * (1 - lam)).to(start.dtype)
    return w


# --------------------------------------------------------------------- C01: eps placement vs bias correction


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)], ids=["f32", "f64"])
@pytest.mark.parametrize("cls", [adaptim.Adam, adaptim.AdamW])
@pytest.mark.parametrize(
    "inside,expected",
    [(False, 1 / (1 + 0.1)), (True, 1 / math.sqrt(1 + 0.1))],
    ids=["eps_outside_sqrt", "eps_inside_sqrt"],
)
def test_c01_eps_after_bias_correction(cls, dtype, tol, foreach, inside, expected):
    p = torch.tensor(1.0, dtype=dtype, requires_grad=True)
    opt = cls([p], lr=1.0, eps=0.1, betas=(0.9, 0.999), weight_decay=0.0, eps_inside_sqrt=inside, foreach=foreach)
    p.grad = torch.tensor(1.0, dtype=dtype)
    opt.step()
    assert 1 - p.item() == pytest.approx(expected, abs=tol)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("inside", [False, True])
@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)])
@pytest.mark.parametrize("cls", [adaptim.Adam, adaptim.AdamW])
def test_c01_kind_eps_never_bias_corrected(cls, betas, inside, amsgrad, foreach):
    # With a constant gradient, mbar_t = g and vbar_t = g^2 at every t: the step is g/(|g| + eps) (4.1.1) or
    # g/sqrt(g^2 + eps) (Figure 1) at every step, whatever the betas. eps scaled by a bias correction breaks it.
    g = torch.tensor([1e-3, -0.5, 2.0, 30.0], dtype=torch.float64)
    eps, lr = 0.1, 0.5
    p = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = cls(
        [p], lr=lr, eps=eps, betas=betas, weight_decay=0.0, amsgrad=amsgrad, eps_inside_sqrt=inside, foreach=foreach
    )
    expected = lr * g / ((g * g + eps).sqrt() if inside else g.abs() + eps)
    for _ in range(6):
        before = p.detach().clone()
        p.grad = g.clone()
        opt.step()
        torch.testing.assert_close(before - p.detach(), expected, rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------------- C02: AMSGrad order


def _amsgrad_steps(make, grads):
    p = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    opt = make([p])
    out = []
    for g in grads:
        before = p.item()
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append(before - p.item())
    return out


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("cls", [adaptim.Adam, adaptim.AdamW])
def test_c02_amsgrad_max_after_bias_correction(cls, foreach):
    def make(ps):
        return cls(ps, lr=1.0, betas=(0.9, 0.5), eps=0.0, weight_decay=0.0, amsgrad=True, foreach=foreach)

    assert _amsgrad_steps(make, [1.0, 0.1, 0.1]) == pytest.approx([1.0, 0.526316, 0.369004], abs=1e-6)

    def make_issue(ps):  # the issue's example: beta1 = 0, beta2 = 0.9
        return cls(ps, lr=1.0, betas=(0.0, 0.9), eps=0.0, weight_decay=0.0, amsgrad=True, foreach=foreach)

    assert _amsgrad_steps(make_issue, [10.0, 1.0, 1.0]) == pytest.approx([1.0, 0.1, 0.1], abs=1e-12)


def test_c02_torch_order_differs():
    # torch.optim takes the max of the raw v_t and corrects afterwards (Section 4.2): other step sizes.
    def make(ps):
        return torch.optim.Adam(ps, lr=1.0, betas=(0.9, 0.5), eps=0.0, amsgrad=True)

    torch_steps = _amsgrad_steps(make, [1.0, 0.1, 0.1])
    assert torch_steps == pytest.approx([1.0, 0.644603, 0.488146], abs=1e-6)

    def make_issue(ps):
        return torch.optim.Adam(ps, lr=1.0, betas=(0.0, 0.9), eps=0.0, amsgrad=True)

    assert _amsgrad_steps(make_issue, [10.0, 1.0, 1.0]) == pytest.approx([1.0, 0.1378, 0.1646], abs=1e-4)

    ours = _amsgrad_steps(lambda ps: adaptim.Adam(ps, lr=1.0, betas=(0.9, 0.5), eps=0.0, amsgrad=True), [1.0, 0.1, 0.1])
    assert abs(ours[1] - torch_steps[1]) > 0.1


@pytest.mark.parametrize("cls", [adaptim.Adam, adaptim.AdamW])
def test_c02_kind_amsgrad_literal(cls):
    # Figure 1 (b)-(c) written out: vmax_t = max(vmax_{t-1}, v_t/(1-b2^t)), step = lr mbar_t/(sqrt(vmax_t)+eps).
    b1, b2, eps, lr = 0.8, 0.6, 1e-3, 0.1
    grads = [1.0, -0.3, 0.05, 2.0, 0.01, -0.01, 0.5, 0.0]
    m = v = vmax = 0.0
    expected = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = max(vmax, v / (1 - b2**t))
        expected.append(lr * (m / (1 - b1**t)) / (math.sqrt(vmax) + eps))
    got = _amsgrad_steps(lambda ps: cls(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=0.0, amsgrad=True), grads)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-15)


# --------------------------------------------------------------------------- C03: every path, one answer


@pytest.mark.parametrize("decoupled", [True, False])
def test_c03_decay_applied_once_per_parameter(decoupled):
    results = {}
    for foreach in (False, True):
        p32 = torch.tensor([1.0], dtype=torch.float32, requires_grad=True)
        p64 = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
        opt = adaptim.AdamW([p32, p64], lr=1.0, weight_decay=0.1, independent_weight_decay=decoupled, foreach=foreach)
        p32.grad, p64.grad = torch.zeros_like(p32), torch.zeros_like(p64)
        opt.step()
        assert p32.item() == pytest.approx(0.9, rel=1e-7)
        assert p64.item() == pytest.approx(0.9, rel=1e-15)
        results[foreach] = ([p32, p64], [opt.state[p32], opt.state[p64]])
    for a, b in zip(results[False][0], results[True][0]):
        assert_same(a.detach(), b.detach())
    for a, b in zip(results[False][1], results[True][1]):
        assert_same_state(a, b)


def test_c03_kind_decay_applied_once_per_parameter(optimizer_case):
    # The stated input for every optimizer: a float32 and a float64 parameter of ones in one group, zero
    # gradients, one step, every path: each parameter is only decayed (L2-style decay, which would turn the zero
    # gradient into a nonzero one, is switched off), exactly once.
    case = optimizer_case
    overrides = {}
    if case.cls not in DECOUPLED_DECAY and "weight_decay" in case.kwargs:
        overrides["weight_decay"] = 0.0
    lam = decay_per_step(case)
    for foreach in [False, True] if case.has_foreach else [None]:
        mode = {} if foreach is None else {"foreach": foreach}
        params = [leaf(torch.ones(case.shape((2,)), dtype=d)) for d in (torch.float32, torch.float64)]
        case.place(params)  # (a simplex case: (1/2, 1/2))
        opt = case.make(params, **overrides, **mode)
        start = [p.detach().clone() for p in params]  # ones (StiefelSGD: put on the manifold at construction)
        case.step(opt, params, [torch.zeros_like(p) for p in params])
        for p, s, rtol in zip(params, start, (2e-7, 1e-15)):  # (1 - lam) in the parameter's dtype, to rounding
            torch.testing.assert_close(p.detach(), s * (1 - lam), rtol=rtol, atol=0)
        assert_finite_state(opt)


# the last entry stacks with the (2, 3) float16 one (whose float32 working copy has the same shape and dtype)
MIXED = [
    ((3,), torch.float32),
    ((2, 2), torch.float64),
    ((4,), torch.bfloat16),
    ((2, 3), torch.float16),
    ((2,), torch.complex64),
    ((1, 3), torch.complex128),
    ((2, 3), torch.float32),
]


def _mixed_indices(case) -> list[int]:
    """The MIXED parameters ``case`` accepts: all, or the real ones for classes that refuse complex (C04)."""
    return [i for i, (_, d) in enumerate(MIXED) if case.cls.supports_complex or not d.is_complex]


def _mixed_run(case, idx, steps=4, **overrides):
    """Run ``case`` on the MIXED parameters with indices ``idx`` in one group, with fixed per-step gradients
    (shapes through ``case.shape``: rows for Muon)."""
    shapes = {i: case.shape(MIXED[i][0]) for i in idx}
    params = [leaf(randn(shapes[i], MIXED[i][1], seed=i)) for i in idx]
    grad_steps = [[randn(shapes[i], MIXED[i][1], seed=100 * (t + 1) + i) for i in idx] for t in range(steps)]
    opt = run(case, params, grad_steps, **overrides)
    return params, [opt.state[p] for p in params], opt


def test_c03_kind_foreach_equals_single(foreach_optimizer_case):
    # Elementwise classes: the foreach kernels do the loop's arithmetic op for op, so the paths agree bitwise.
    # Batched matrix classes (Adafactor, AdamNMF, Muon, Steepest) stack equal shapes into batched matmul /
    # reductions / SVD, which round differently from one matrix at a time: they agree to rounding.
    case = foreach_optimizer_case
    everything = _mixed_indices(case)
    p_on, s_on, _ = _mixed_run(case, everything, foreach=True)
    p_off, s_off, _ = _mixed_run(case, everything, foreach=False)
    same, same_state = (
        (assert_close, assert_close_state) if case.batched_to_rounding else (assert_same, assert_same_state)
    )
    for a, b in zip(p_on, p_off):
        same(a.detach(), b.detach())
    for a, b in zip(s_on, s_off):
        same_state(a, b)


def test_c03_kind_no_cross_talk_between_parameters(optimizer_case):
    # Bitwise for elementwise classes. Batched matrix classes (Shampoo included, whose only path is batched)
    # update the two (2, 3) parameters as one stack, and alone as a stack of one: equal only to rounding. A real
    # cross-talk bug (a norm or RMS taken over the whole stack, say) is far outside that tolerance.
    if optimizer_case.cls is adaptim.AdaGradNorm:
        pytest.skip("AdaGradNorm couples the group by design (33); checked against a literal computation below")
    same, same_state = (
        (assert_close, assert_close_state) if optimizer_case.batched_to_rounding else (assert_same, assert_same_state)
    )
    everything = _mixed_indices(optimizer_case)
    together, states, _ = _mixed_run(optimizer_case, everything)
    for k, i in enumerate(everything):
        alone, alone_state, _ = _mixed_run(optimizer_case, [i])
        same(together[k].detach(), alone[0].detach())
        same_state(states[k], alone_state[0])


@pytest.mark.parametrize("foreach", [False, True])
def test_c03_adagrad_norm_mixed_group_literal(foreach, make_optimizer_case):
    # (33) over one group: eta_t = D / (sqrt(sum_{l<=t} sum_i ||g_{l,i}||^2) + eps), w_i <- w_i - eta_t g_{t,i},
    # each parameter stored in its own dtype between steps (computed here in float64, then rounded).
    lr, eps, steps = 0.5, 1e-10, 4
    everything = list(range(len(MIXED)))
    case = make_optimizer_case("adagrad_norm", adaptim.AdaGradNorm, dict(lr=lr, eps=eps))
    params, _, opt = _mixed_run(case, everything, steps, foreach=foreach)
    ref = [randn(MIXED[i][0], MIXED[i][1], seed=i) for i in everything]
    total = 0.0
    for t in range(steps):
        grads = [randn(MIXED[i][0], MIXED[i][1], seed=100 * (t + 1) + i) for i in everything]
        total += sum(float((torch.view_as_real(g) if g.is_complex() else g).double().pow(2).sum()) for g in grads)
        eta = lr / (math.sqrt(total) + eps)
        ref = [
            (w.to(torch.complex128) if w.is_complex() else w.double())
            .sub(eta * (g.to(torch.complex128) if g.is_complex() else g.double()))
            .to(w.dtype)
            for w, g in zip(ref, grads)
        ]
    assert opt.param_groups[0]["sum_sq"] == pytest.approx(total, rel=1e-12)
    for p, r in zip(params, ref):
        tiny = torch.finfo(torch.view_as_real(r).dtype if r.is_complex() else r.dtype).eps
        torch.testing.assert_close(p.detach(), r, rtol=2 * tiny, atol=2 * tiny)


# ------------------------------------------------------------------------------------- C04: complex parameters


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_c04_adam_complex_value(dtype, foreach):
    p = torch.tensor([1 + 1j], dtype=dtype, requires_grad=True)
    opt = adaptim.Adam([p], lr=0.1, foreach=foreach)
    p.grad = torch.tensor([1 + 2j], dtype=dtype)
    opt.step()
    # each real coordinate moves by lr * g/(|g| + eps) ~ lr: (1 - 0.1) + (1 - 0.1)j
    assert complex(p.detach()[0]) == pytest.approx(0.9 + 0.9j, abs=1e-6)


def test_c04_kind_complex_equals_real_view(optimizer_case):
    shapes = [((3,), torch.complex64), ((2, 2), torch.complex128)]
    if not optimizer_case.cls.supports_complex:
        # refused at construction, also beside real parameters and in a group added later
        real = leaf(torch.ones(optimizer_case.shape((3,))))
        for s, d in shapes:
            bad = leaf(randn(optimizer_case.shape(s), d, seed=0))
            with pytest.raises(TypeError, match="complex"):
                optimizer_case.make([bad])
            with pytest.raises(TypeError, match="complex"):
                optimizer_case.make([real, bad])
            opt = optimizer_case.make([real])
            with pytest.raises(TypeError, match="complex"):
                opt.add_param_group({"params": [bad], **optimizer_case.group_extra})
            assert len(opt.param_groups) == 1
        return
    complex_params = [leaf(randn(s, d, seed=i)) for i, (s, d) in enumerate(shapes)]
    real_params = [leaf(torch.view_as_real(p.detach())) for p in complex_params]
    grad_steps = [[randn(s, d, seed=10 * t + i) for i, (s, d) in enumerate(shapes)] for t in range(5)]
    opt_c = run(optimizer_case, complex_params, grad_steps)
    opt_r = run(optimizer_case, real_params, [[torch.view_as_real(g) for g in gs] for gs in grad_steps])
    for pc, pr in zip(complex_params, real_params):
        assert_same(torch.view_as_real(pc.detach()), pr.detach())
        assert_same_state(opt_c.state[pc], opt_r.state[pr])


def test_c04_kind_refusal_at_construction():
    # The other branch of the kind: a class that declares supports_complex = False refuses at construction,
    # before any step could silently treat the imaginary part as a separate (or dropped) coordinate.
    refusing = type("RealOnlyAdam", (adaptim.Adam,), {"supports_complex": False})
    with pytest.raises(TypeError, match="complex"):
        refusing([leaf(torch.ones(2, dtype=torch.complex64))])
    refusing([leaf(torch.ones(2))])  # real parameters still accepted


# ----------------------------------------------------------------------------------- C05: half precision


def test_c05_adam_float16_zero_grads():
    p = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float16, requires_grad=True)
    start = p.detach().clone()
    opt = adaptim.Adam([p])
    for _ in range(3):
        p.grad = torch.zeros_like(p)
        opt.step()
    assert_same(p.detach(), start)
    assert_finite_state(opt)


HALF = [torch.float16, torch.bfloat16]
HALF_VALUES = [1.0, -2.0, 0.5, 1e-3, 100.0]


@pytest.mark.parametrize("dtype", HALF)
def test_c05_kind_zero_grads_leave_half_params_unchanged(optimizer_case, dtype):
    # L2-style weight decay turns a zero gradient into a nonzero one, so it is switched off here; decoupled
    # decay is kept and must be all that moves the parameter.
    overrides = {}
    if optimizer_case.cls not in DECOUPLED_DECAY and "weight_decay" in optimizer_case.kwargs:
        overrides["weight_decay"] = 0.0
    lam = decay_per_step(optimizer_case)
    p = leaf(optimizer_case.tensor(torch.tensor(HALF_VALUES, dtype=dtype)))
    optimizer_case.place([p])
    opt = optimizer_case.make([p], **overrides)
    expected = zero_grad_trajectory(optimizer_case, p.detach().clone(), 3)  # from p after construction
    for _ in range(3):
        optimizer_case.step(opt, [p], [torch.zeros_like(p)])
    assert torch.isfinite(p).all()
    if lam == 0:
        assert_same(p.detach(), expected)
    else:  # rounding the product through float32 first may differ from float64 by one ulp
        ulp = torch.finfo(dtype).eps
        torch.testing.assert_close(p.detach(), expected, rtol=ulp, atol=0)
    assert_finite_state(opt)


@pytest.mark.parametrize("dtype", HALF)
def test_c05_kind_small_grads_finite_and_close_to_float32(optimizer_case, dtype):
    steps = 3
    case = optimizer_case
    start = case.tensor(torch.tensor(HALF_VALUES, dtype=dtype))
    grad_steps = [[case.tensor((randn((5,), torch.float64, seed=t) * 1e-3).to(dtype))] for t in range(steps - 1)]
    grad_steps.append([case.tensor(torch.tensor([1e-7, -1e-7, 0.0, 6e-5, -6e-5], dtype=dtype))])  # some subnormal
    p = leaf(start)
    opt = run(optimizer_case, [p], grad_steps)
    assert torch.isfinite(p).all()
    assert_finite_state(opt)
    # the same run in float32 (same gradient values): differs only by rounding the parameter once a step
    p32 = leaf(start.float())
    run(optimizer_case, [p32], [[g.float() for g in gs] for gs in grad_steps])
    # each write-back rounds by at most half an ulp of the value at that step (|values| stay near the start)
    ulp = torch.finfo(dtype).eps
    torch.testing.assert_close(p.detach().float(), p32.detach(), rtol=steps * ulp, atol=steps * ulp * 0.05)
    for state in opt.state.values():
        for k, v in state.items():
            if isinstance(v, torch.Tensor) and v.is_floating_point() and k != "step":
                assert v.dtype in (torch.float32, torch.float64), (k, v.dtype)


# --------------------------------------------------------------------------- C06: resume in low precision


def _roundtrip(state_dict: dict) -> dict:
    """Through bytes, as a checkpoint on disk (and loadable with ``weights_only=True``)."""
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _dtypes(opt, p) -> dict:
    return {k: v.dtype for k, v in opt.state[p].items() if isinstance(v, torch.Tensor)}


def test_c06_adam_bfloat16_resume_after_257_steps():
    def grad(t):
        return randn((4,), torch.float64, seed=t).to(torch.bfloat16)

    p = leaf(torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.bfloat16))
    opt = adaptim.Adam([p], lr=1e-2)
    for t in range(257):
        p.grad = grad(t)
        opt.step()
    saved = _roundtrip(opt.state_dict())
    q = leaf(p.detach())
    fresh = adaptim.Adam([q], lr=1e-2)
    fresh.load_state_dict(saved)
    assert fresh.state[q]["step"].item() == 257
    assert _dtypes(fresh, q) == _dtypes(opt, p)
    assert _dtypes(fresh, q)["exp_avg"] == torch.float32
    p.grad, q.grad = grad(257), grad(257)
    opt.step()
    fresh.step()
    assert_same(q.detach(), p.detach())
    assert_same_state(fresh.state[q], opt.state[p])


@pytest.mark.parametrize("dtype", HALF)
def test_c06_kind_resume_is_bitwise(optimizer_case, dtype):
    shapes = [optimizer_case.shape(s) for s in [(3,), (2, 2)]]
    grad_steps = [[randn(s, torch.float64, seed=10 * t + i).to(dtype) for i, s in enumerate(shapes)] for t in range(7)]
    params = [leaf(randn(s, torch.float64, seed=i).to(dtype)) for i, s in enumerate(shapes)]
    opt = run(optimizer_case, params, grad_steps[:4])
    saved = _roundtrip(opt.state_dict())
    copies = [leaf(p.detach()) for p in params]
    fresh = optimizer_case.make(copies)
    fresh.load_state_dict(saved)
    for p, q in zip(params, copies):
        assert _dtypes(fresh, q) == _dtypes(opt, p)
    for grads in grad_steps[4:]:
        optimizer_case.step(opt, params, grads)
        optimizer_case.step(fresh, copies, grads)
    for p, q in zip(params, copies):
        assert_same(q.detach(), p.detach())
        assert_same_state(fresh.state[q], opt.state[p])
    assert fresh.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


# ---------------------------------------------------------------- C07: state attached to the wrong parameter


def test_c07_adam_swapped_parameters_refused():
    a, b = leaf(torch.ones(2, 3)), leaf(torch.ones(3, 4))
    opt = adaptim.Adam([a, b])
    a.grad, b.grad = torch.full((2, 3), 0.5), torch.full((3, 4), -0.5)
    opt.step()
    saved = _roundtrip(opt.state_dict())
    a2, b2 = leaf(a.detach()), leaf(b.detach())
    fresh = adaptim.Adam([b2, a2])
    with pytest.raises(ValueError, match=r"shape.*\(2, 3\).*\(3, 4\)|shape.*\(3, 4\).*\(2, 3\)"):
        fresh.load_state_dict(saved)
    assert all(len(fresh.state[p]) == 0 for p in (a2, b2))  # nothing half-loaded


@pytest.mark.parametrize("shapes", [[(2, 3), (3, 4)], [(2, 3), (3, 2)]], ids=["other", "transposed"])
def test_c07_kind_swapped_parameters_refused(stateful_optimizer_case, shapes):
    # "transposed": the same number of entries, so state that only depends on numel cannot tell them apart
    case = stateful_optimizer_case
    shapes = [case.shape(s) for s in shapes]
    if shapes[0] == shapes[1]:  # StiefelSGD makes both tall (3, 2): two other tall shapes of 6 entries
        shapes = [(6, 1), (3, 2)]
    params = [leaf(randn(s, torch.float32, seed=i)) for i, s in enumerate(shapes)]
    opt = run(case, params, [[randn(s, torch.float32, seed=5 + i) for i, s in enumerate(shapes)]])
    saved = _roundtrip(opt.state_dict())
    swapped = [leaf(params[1].detach()), leaf(params[0].detach())]
    fresh = case.make(swapped)
    with pytest.raises(ValueError, match="shape"):
        fresh.load_state_dict(saved)
    assert all(len(fresh.state[p]) == 0 for p in swapped)
    # the same state loads onto parameters in the saved order
    case.make([leaf(p.detach()) for p in params]).load_state_dict(saved)


def test_c07_kind_other_mismatches_refused():
    p = leaf(torch.ones(3))
    adam = adaptim.Adam([p])
    p.grad = torch.ones(3)
    adam.step()
    saved = _roundtrip(adam.state_dict())
    with pytest.raises(ValueError, match="parameters"):  # a parameter more
        adaptim.Adam([leaf(torch.ones(3)), leaf(torch.ones(3))]).load_state_dict(saved)
    with pytest.raises(ValueError, match="groups"):  # a group more
        adaptim.Adam([{"params": [leaf(torch.ones(3))]}, {"params": [leaf(torch.ones(3))]}]).load_state_dict(saved)
    with pytest.raises(ValueError, match="entries"):  # another method's state
        adaptim.RMSProp([leaf(torch.ones(3))]).load_state_dict(saved)


# ------------------------------------------------------------------------ C08: maximize with weight decay


@pytest.mark.parametrize("foreach", [False, True])
def test_c08_sgd_maximize_with_weight_decay(foreach):
    p = torch.tensor(1.0, requires_grad=True)
    opt = adaptim.SGD([p], lr=0.1, weight_decay=0.5, maximize=True, foreach=foreach)
    p.grad = torch.tensor(1.0)
    opt.step()
    # ascend along g = 1 while the decay term 0.5 * p still pulls toward 0: 1 + 0.1 * (1 - 0.5)
    assert p.item() == pytest.approx(1.05, abs=1e-7)


def test_c08_kind_maximize_is_minimize_of_negated_grad(optimizer_case):
    # Holds with weight decay too: maximize negates g before decay enters, so decay still pulls toward 0.
    shapes = [
        (optimizer_case.shape(s), d)
        for s, d in [((3,), torch.float32), ((2, 2), torch.bfloat16), ((2,), torch.complex64)]
        if optimizer_case.cls.supports_complex or not d.is_complex
    ]
    grad_steps = [[randn(s, d, seed=10 * t + i) for i, (s, d) in enumerate(shapes)] for t in range(5)]
    up = [leaf(randn(s, d, seed=i)) for i, (s, d) in enumerate(shapes)]
    down = [leaf(p.detach()) for p in up]
    opt_up = optimizer_case.make(up, maximize=True)
    opt_down = optimizer_case.make(down, maximize=False)
    for grads in grad_steps:
        optimizer_case.step(opt_up, up, grads)
        optimizer_case.step(opt_down, down, [-g for g in grads])
        for p, q, g in zip(up, down, grads):
            assert_same(p.grad, g)  # the step never writes p.grad
            assert_same(q.grad, -g)
            assert_same(p.detach(), q.detach())
    for p, q in zip(up, down):
        assert_same_state(opt_up.state[p], opt_down.state[q])


def test_adagrad_norm_zero_first_gradient_with_eps_zero():
    """A zero first gradient with eps = 0 moves nothing (no 0/0), and the next step equals a fresh first step."""
    p = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = adaptim.AdaGradNorm([p], lr=0.5, eps=0.0)
    p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.equal(p.detach(), torch.tensor([1.0, -2.0], dtype=torch.float64))
    q = p.detach().clone().requires_grad_()
    fresh = adaptim.AdaGradNorm([q], lr=0.5, eps=0.0)
    g = torch.tensor([3.0, 4.0], dtype=torch.float64)
    p.grad, q.grad = g.clone(), g.clone()
    opt.step()
    fresh.step()
    assert torch.equal(p.detach(), q.detach())
    torch.testing.assert_close(p.detach(), torch.tensor([1.0 - 0.3, -2.0 - 0.4], dtype=torch.float64))


# ------------------------------------------------------------- C13: zero gradients in data-dependent scaling

# Every matrix method on a 4 x 6 parameter whose first gradient is all zero. `ratio` is what the notes imply for
# the next (nonzero) step, relative to a fresh optimizer's first step from the same parameter:
# * 1.0 where a zero gradient adds nothing: sums (Shampoo's (53), AdaGrad grafting, full-matrix AdaGrad), an EMA
#   with beta = 0, or an EMA started at 0 and never bias-corrected (Muon's and Steepest's momentum: the EMA of a
#   zero is 0, so M_2 = (1 - mu) G is a fresh M_1);
# * otherwise the zero counts as an observation, which is the mathematically correct behaviour of a
#   bias-corrected EMA: after g_1 = 0, g_2 = G the corrected average is (1 - b) G / (1 - b^2) = G / (1 + b), so
#   - a first moment (Adafactor's or AdamNMF's beta1) gives the step 1 / (1 + b1) times the fresh one;
#   - a second-moment statistic is 1 / (1 + b2) times the fresh one, and the step is homogeneous of degree
#     -1/2 in it (Shampoo: (cL)^{-1/4} G (cR)^{-1/4}; IdealizedShampoo: sqrt(tr cL) (cL)^{-1/2} G (cR)^{-1/2};
#     the grafted Adam norm), so the step is sqrt(1 + b2) times the fresh one (exactly so for eps -> 0: those
#     cases set eps = 1e-30);
#   - Adafactor's schedule beta_t = 1 - t^-0.8 (change 5, no bias correction) has beta_1 = 0 (the fresh step
#     sees G alone) and at t = 2 keeps 1 - beta_2 = 2^-0.8 of G^2 (the zero's share holds only eps1), so
#     Vhat_2 = 2^-0.8 Vhat_fresh and, unclipped, the step is 2^0.4 times the fresh one;
# * None: AdamNMF with rank >= 2 warm-starts one EM round (124) from the factors fit to the zero gradient's
#   floor; one round from a different start is a different iterate (at rank 1 it is the closed-form fit from any
#   start, hence 1.0), so no relation is claimed: unchanged parameter, finite state and a finite next step.
# `p`: None where both runs do the same arithmetic (bitwise); else they agree to rounding, amplified by
# eps^-p: G^T G of a 4 x 6 gradient has rank 4, and its two null eigenvalues (rounding noise, floored at
# machine epsilon times the largest) go through the inverse root t^-p (Shampoo's 1/4, IdealizedShampoo's 1/2).
SQRT_1_9 = math.sqrt(1.9)
C13_CASES = [
    pytest.param(adaptim.Adafactor, dict(beta2=0.0), 1.0, None, id="adafactor_beta2_0_relative_step"),
    pytest.param(
        adaptim.Adafactor,
        dict(lr=0.01, relative_step=False, beta2=0.0, weight_decay=0.1),
        1.0,
        None,
        id="adafactor_beta2_0_wd",
    ),
    pytest.param(
        adaptim.Adafactor,
        dict(lr=0.01, relative_step=False, beta2=0.0, factored=False),
        1.0,
        None,
        id="adafactor_unfactored",
    ),
    pytest.param(adaptim.Adafactor, dict(clip_threshold=None), 2**0.4, 0.0, id="adafactor_schedule"),
    pytest.param(
        adaptim.Adafactor,
        dict(lr=0.01, relative_step=False, beta1=0.9, beta2=0.0, clip_threshold=None),
        1 / 1.9,
        0.0,
        id="adafactor_beta1",
    ),
    pytest.param(adaptim.AdamNMF, dict(lr=0.01), 1.0, 0.0, id="adam_nmf"),
    pytest.param(adaptim.AdamNMF, dict(lr=0.01, weight_decay=0.1), 1.0, 0.0, id="adam_nmf_wd"),
    pytest.param(adaptim.AdamNMF, dict(lr=0.01, beta1=0.9), 1 / 1.9, 0.0, id="adam_nmf_beta1"),
    pytest.param(adaptim.AdamNMF, dict(lr=0.01, rank=2), None, None, id="adam_nmf_rank2"),
    # roots every step (precondition_frequency=1), so that the second step is Shampoo's direction
    pytest.param(adaptim.Shampoo, dict(lr=0.1, grafting=None, precondition_frequency=1), 1.0, None, id="shampoo"),
    pytest.param(
        adaptim.Shampoo,
        dict(lr=0.1, beta2=0.0, weight_decay=0.1, grafting="adagrad", precondition_frequency=1),
        1.0,
        None,
        id="shampoo_beta2_0_wd_graft_adagrad",
    ),
    pytest.param(
        adaptim.Shampoo,
        dict(lr=0.1, beta2=0.9, eps=1e-30, grafting=None, precondition_frequency=1),
        SQRT_1_9,
        0.25,
        id="shampoo_ema",
    ),
    pytest.param(
        adaptim.Shampoo,
        dict(lr=0.1, grafting="adam", grafting_beta2=0.9, grafting_eps=1e-30, precondition_frequency=1),
        SQRT_1_9,
        0.0,
        id="shampoo_graft_adam",
    ),
    pytest.param(adaptim.IdealizedShampoo, dict(lr=0.1, beta2=0.0), 1.0, None, id="idealized_shampoo_beta2_0"),
    pytest.param(
        adaptim.IdealizedShampoo,
        dict(lr=0.1, beta2=0.0, weight_decay=0.1),
        1.0,
        None,
        id="idealized_shampoo_beta2_0_wd",
    ),
    pytest.param(
        adaptim.IdealizedShampoo, dict(lr=0.1, beta2=0.9, eps=1e-30), SQRT_1_9, 0.5, id="idealized_shampoo_ema"
    ),
    pytest.param(adaptim.Muon, dict(lr=0.02), 1.0, None, id="muon"),
    pytest.param(
        adaptim.Muon, dict(lr=0.02, weight_decay=0.1, nesterov=False, orthogonalize="svd"), 1.0, None, id="muon_svd_wd"
    ),
    *[
        pytest.param(adaptim.Steepest, dict(lr=0.1, norm=n, rule=r, momentum=0.9), 1.0, None, id=f"steepest_{n}_{r}")
        for n in ("spectral", "frobenius", "inf")
        for r in ("trust_region", "majorization")
    ],
    pytest.param(adaptim.FullMatrixAdaGrad, dict(lr=0.5, eps=1e-8, max_dim=24), 1.0, None, id="full_matrix_adagrad"),
]


def _c13_decay(cls, kwargs) -> float:
    """lambda of the first (zero-gradient) step: decoupled decay times rho_1 = lr (Adafactor's default 1e-2)."""
    wd = kwargs.get("weight_decay", 0.0)
    return wd * kwargs.get("lr", 1e-2 if cls is adaptim.Adafactor else 0.0)


@pytest.mark.parametrize("scale", [1.0, 1e4])  # 1e4: G^2 / (factors fit to a zero gradient) overflowed float32
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cls,kwargs,ratio,p", C13_CASES)
def test_c13_zero_first_gradient(cls, kwargs, ratio, p, dtype, scale):
    W0 = randn((4, 6), dtype, seed=13)
    G = randn((4, 6), dtype, seed=14, scale=scale)
    W = leaf(W0)
    opt = cls([W], **kwargs)
    W.grad = torch.zeros_like(W0)
    opt.step()
    # unchanged, or only weight-decayed (as w - lr (wd w) by some classes, (1 - lr wd) w by others: to rounding)
    eps = torch.finfo(dtype).eps
    lam = _c13_decay(cls, kwargs)
    if lam == 0:
        assert_same(W.detach(), W0)
    else:
        torch.testing.assert_close(W.detach(), W0 * (1 - lam), rtol=2 * eps, atol=0)
    assert_finite_state(opt)
    W1 = W.detach().clone()
    W.grad = G.clone()
    opt.step()
    fresh = leaf(W1)
    fresh_opt = cls([fresh], **kwargs)
    fresh.grad = G.clone()
    fresh_opt.step()
    assert torch.isfinite(W).all()
    assert_finite_state(opt)
    if ratio is None:
        assert not torch.equal(W.detach(), W1)
        return
    if p is None:
        assert_same(W.detach(), fresh.detach())
        return
    # to rounding: each parameter is stored to eps |W|, and the step itself computed to eps^(1 - p) of its size
    step, fresh_step = W.detach() - W1, fresh.detach() - W1
    atol = 16 * (eps * float(W1.abs().max()) + eps ** (1 - p) * float(fresh_step.abs().max()))
    torch.testing.assert_close(step, ratio * fresh_step, rtol=0, atol=atol)
    assert ratio == 1.0 or (step - fresh_step).abs().max() > 10 * atol  # the ratio is not lost in the tolerance


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize(
    "make",
    [
        lambda ps: adaptim.Adam(ps, lr=0.1, eps=0.0),
        lambda ps: adaptim.Adam(ps, lr=0.1, eps=0.0, amsgrad=True, eps_inside_sqrt=True),
        lambda ps: adaptim.AdamW(ps, lr=0.1, eps=0.0, nesterov=True, weight_decay=0.0),
        lambda ps: adaptim.RMSProp(ps, lr=0.1, eps=0.0),
        lambda ps: adaptim.RMSProp(ps, lr=0.1, betas=(0.0, 0.9), eps=0.0),
        lambda ps: adaptim.AdaGrad(ps, lr=0.1, eps=0.0),
    ],
    ids=["adam", "adam_ams_inside", "adamw_nesterov", "rmsprop", "rmsprop_b1_0", "adagrad"],
)
def test_eps_zero_never_seen_coordinate_stays_put(make, foreach):
    """eps = 0 is allowed (C02 needs it); a coordinate whose gradient has always been 0 is 0/0: it must not
    become NaN but stay where it is, while the others move as the formula says."""
    p = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = make([p])
    opt.param_groups[0]["foreach"] = foreach
    for _ in range(3):
        p.grad = torch.tensor([1.0, 0.0], dtype=torch.float64)
        opt.step()
    assert torch.isfinite(p).all()
    assert p[1].item() == 2.0
    assert p[0].item() < 1.0
    assert all(torch.isfinite(v).all() for v in opt.state[p].values() if isinstance(v, torch.Tensor))
