"""Gradients at the edges of float32's range: each optimizer computes what float64 would, or refuses cleanly.

* Adafactor's factored second moment (52) in float32 equals the float64 computation, rounded, where a gradient
  row or column vanishes next to large entries (it gave NaN parameters: the ratio a_i / 1^T a underflowed).
* AdamNMF's warm-started factors stay finite when the gradient's scale jumps (A alone carried it and overflowed).
* One-element parameters are held to the squared-gradient overflow check like any other (``vector_norm`` of one
  entry is |g|, which never overflows), and sums that grow over steps (AdaGrad, Shampoo, full-matrix AdaGrad,
  AdaGrad-Norm) or an L2 term are refused before they overflow: nothing changes, not even the step count.
"""

from __future__ import annotations

import math

import pytest
import torch
from _assertions import assert_same, assert_same_state

import adaptim

F32, F64 = torch.float32, torch.float64


# --------------------------------------------------------------------------------------------- Adafactor
def adafactor_float64(w, grads, *, beta1=None, beta2=None, factored=True, clip=1.0, decay_rate=-0.8, eps=(1e-30, 1e-3)):
    """(52) and the changes of 4.7.1 with the relative step, written plainly in float64 (Vhat formed whole)."""
    w = w.to(F64).clone()
    a = s = v = m = None
    for t, g in enumerate(grads, start=1):
        g = g.to(F64)
        beta = beta2 if beta2 is not None else 1.0 - t**decay_rate
        corr = 1.0 / (1.0 - beta2**t) if beta2 is not None else 1.0
        g2 = g * g + eps[0]
        if factored and w.dim() >= 2:
            a = (1 - beta) * g2.sum(-1) + (beta * a if a is not None else 0.0)
            s = (1 - beta) * g2.sum(-2) + (beta * s if s is not None else 0.0)
            vhat = corr * a.unsqueeze(-1) * s.unsqueeze(-2) / a.sum(-1)[..., None, None]
        else:
            v = (1 - beta) * g2 + (beta * v if v is not None else 0.0)
            vhat = corr * v
        if beta1 is None:
            num = g
        else:
            m = (1 - beta1) * g + (beta1 * m if m is not None else 0.0)
            num = m / (1 - beta1**t)
        u = num / vhat.sqrt()
        if clip is not None:
            u = u / max(1.0, float(u.pow(2).mean().sqrt()) / clip)
        rho = min(1e-2, 1 / math.sqrt(t))
        w = w - rho * max(eps[1], float(w.pow(2).mean().sqrt())) * u
    return w


def _spike(shape, big, small=0.0):
    g = torch.full(shape, small, dtype=F64)
    g.view(-1, shape[-1])[0] = big
    return g


GRADIENTS = {
    # the two cases: row 0 of a 4x3 gradient 4e7 and the rest exactly 0 (3e7 was fine), and [[1e15, 1e-30],
    # [1e-30, 1e-30]]
    "row_4e7": (4, 3),
    "row_1e15": (4, 3),
    "corner_1e15": (2, 2),
    "stack_row_1e12": (3, 4, 3),
    "mixed": (5, 4),
}


def _gradient(name, gen):
    shape = GRADIENTS[name]
    if name == "row_4e7":
        return _spike(shape, 4e7)
    if name == "row_1e15":
        return _spike(shape, 1e15)
    if name == "corner_1e15":
        return torch.tensor([[1e15, 1e-30], [1e-30, 1e-30]], dtype=F64)
    if name == "stack_row_1e12":
        return _spike(shape, 1e12) * torch.randn(shape, generator=gen, dtype=F64).sign()
    # every entry with its own magnitude between 1e-30 and 1e15, some exactly 0
    g = torch.randn(shape, generator=gen, dtype=F64) * 10.0 ** torch.randint(-30, 16, shape, generator=gen)
    return g * (torch.rand(shape, generator=gen, dtype=F64) > 0.2)


@pytest.mark.parametrize("foreach", [True, False], ids=["batched", "single"])
@pytest.mark.parametrize(
    "config", [dict(), dict(beta1=0.9, beta2=0.999), dict(factored=False)], ids=["default", "beta1_beta2", "unfactored"]
)
@pytest.mark.parametrize("name", list(GRADIENTS))
def test_adafactor_float32_equals_float64_rounded(name, config, foreach):
    gen = torch.Generator().manual_seed(list(GRADIENTS).index(name))
    shape = GRADIENTS[name]
    w0 = torch.randn(shape, generator=gen).to(F32)
    grads = [_gradient(name, gen).to(F32) for _ in range(3)]
    grads[1] = -grads[1]
    p = w0.clone().requires_grad_()
    opt = adaptim.Adafactor([{"params": [p], "foreach": foreach}], **config)
    for g in grads:
        p.grad = g.clone()
        opt.step()
        assert bool(p.isfinite().all())
    expected = adafactor_float64(w0, grads, **{("clip" if k == "clip_threshold" else k): v for k, v in config.items()})
    assert bool(expected.isfinite().all())
    # a few float32 roundings of the update (and of the stored statistics) apart from float64 rounded once
    torch.testing.assert_close(p.detach(), expected.to(F32), rtol=4e-7, atol=1e-37)


def test_adafactor_statistics_near_float32_max_are_not_corrected_into_overflow():
    """c_t v_t with c_t = 1 / (1 - beta2^t) = 1000 overflowed float32 for v near 1e36: 1 / sqrt(inf) = 0 froze
    the parameter; float64 gives the step."""
    w0 = torch.ones(3)
    g = torch.tensor([1e18, 1.0, -1e18])
    p = w0.clone().requires_grad_()
    opt = adaptim.Adafactor([p], beta2=0.999, factored=False, clip_threshold=None, scale_parameter=False)
    p.grad = g.clone()
    opt.step()
    expected = adafactor_float64(w0, [g], beta2=0.999, factored=False, clip=None)
    torch.testing.assert_close(p.detach(), expected.to(F32), rtol=4e-7, atol=0)


# ----------------------------------------------------------------------------------------------- AdamNMF
@pytest.mark.parametrize("foreach", [True, False], ids=["batched", "single"])
@pytest.mark.parametrize("rank", [1, 2])
def test_adam_nmf_factors_stay_finite_when_the_gradient_scale_jumps(rank, foreach):
    """Factors fit to gradients of 1e-20, then 1e18 (squares 1e36, finite): A alone carried the scale
    C / B ~ 1e39 and overflowed float32. G^2 has rank 1, so the fit is exact and the step of a large gradient is
    lr sign(g)
    (a gradient of 1e-20 sits below the floor 1e-30 added to g^2 and barely moves w)."""
    w = torch.zeros(4, 3, requires_grad=True)
    opt = adaptim.AdamNMF([{"params": [w], "foreach": foreach}], lr=0.01, rank=rank)
    gen = torch.Generator().manual_seed(rank)
    for scale in (1e-20, 1e-20, 1e18, 1e18, 1e-20):
        before = w.detach().clone()
        g = torch.randn(4, 1, generator=gen) * torch.randn(1, 3, generator=gen) * scale  # G^2 has rank 1
        w.grad = g.clone()
        opt.step()
        st = opt.state[w]
        for k in ("nmf_a", "nmf_b"):
            assert bool(st[k].isfinite().all()) and bool((st[k] > 0).all()), (k, st[k])
        assert bool(w.isfinite().all())
        if rank == 1 and scale > 1:
            torch.testing.assert_close(w.detach(), before - 0.01 * g.sign(), rtol=1e-4, atol=1e-6)


# -------------------------------------------------------------------------------- refused before any change
def _snapshot(opt, params):
    return (
        [p.detach().clone() for p in params],
        {
            id(p): {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
            for p, s in opt.state.items()
        },
        [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
    )


def _assert_unchanged(opt, params, snap):
    ps, states, groups = snap
    for p, b in zip(params, ps):
        assert_same(p.detach(), b)
    assert {id(p) for p in opt.state} == set(states)
    for p, s in opt.state.items():
        assert_same_state(s, states[id(p)])
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)], ids=["scalar", "one", "one_by_one"])
@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "warm"])
def test_one_element_gradient_whose_square_overflows_is_refused_with_nothing_changed(optimizer_case, shape, warm):
    """g = 1e20 in float32 squares to inf: AdaGrad and Adafactor took it into inf statistics and then stopped
    moving; Shampoo raised only after writing its step count and an inf factor (so every later step raised).
    Optimizers that do not square the gradient (or keep float64 sums) take a finite step instead."""
    case = optimizer_case
    p = torch.ones(case.shape(shape), requires_grad=True)
    q = torch.ones(case.shape((2, 3)), requires_grad=True)
    opt = case.make([p, q])
    if warm:
        case.step(opt, [p, q], [torch.full_like(p, 0.5), torch.full_like(q, 0.5)])
    snap = _snapshot(opt, [p, q])
    huge = [torch.full_like(p, 1e20), torch.full_like(q, 0.5)]
    squares_in_float32 = opt._squares_gradients(opt.param_groups[0]) and opt._statistics_dtype(p) == F32
    if squares_in_float32:
        with pytest.raises(RuntimeError, match=r"parameter 0 of group 0 .*squares overflow torch.float32"):
            case.step(opt, [p, q], huge)
        _assert_unchanged(opt, [p, q], snap)
    else:
        case.step(opt, [p, q], huge)
    case.step(opt, [p, q], [torch.full_like(p, 0.5), torch.full_like(q, 0.5)])  # and it goes on normally
    assert bool(p.isfinite().all()) and bool(q.isfinite().all())
    for s in opt.state.values():
        assert all(bool(v.isfinite().all()) for v in s.values() if isinstance(v, torch.Tensor))


@pytest.mark.parametrize(
    "make,dtype,g",
    [
        (lambda ps: adaptim.AdaGrad(ps, lr=0.1), F32, 5e18),
        (lambda ps: adaptim.Shampoo(ps, lr=0.1), F32, 5e18),
        (lambda ps: adaptim.Shampoo(ps, lr=0.1, beta2=0.9, grafting="adagrad"), F32, 5e18),
        (lambda ps: adaptim.FullMatrixAdaGrad(ps, lr=0.1), F64, 4e153),
        (lambda ps: adaptim.AdaGradNorm(ps, lr=0.1), F64, 4e153),
    ],
    ids=["adagrad", "shampoo_sums", "shampoo_adagrad_grafting", "full_matrix_adagrad", "adagrad_norm"],
)
def test_sums_that_would_overflow_are_refused_before_any_change(make, dtype, g):
    """Each squared norm is finite (1e38 in float32, 6.4e307 in float64), but the sums kept over steps would pass
    the dtype's largest value: the step that would make them infinite is refused (they froze the parameters, or
    made every later step raise)."""
    p = torch.ones(2, 2, dtype=dtype, requires_grad=True)
    opt = make([p])
    with pytest.raises(RuntimeError, match="squares overflow"):
        for _ in range(20):
            snap = _snapshot(opt, [p])
            p.grad = torch.full_like(p, g)
            opt.step()
            for s in opt.state.values():
                assert all(bool(v.isfinite().all()) for v in s.values() if isinstance(v, torch.Tensor))
            assert all(math.isfinite(v) for v in opt.param_groups[0].values() if isinstance(v, float))
    _assert_unchanged(opt, [p], snap)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: adaptim.Adam(ps, weight_decay=0.1),
        lambda ps: adaptim.AdaGrad(ps, weight_decay=0.1),
        lambda ps: adaptim.RMSProp(ps, weight_decay=0.1),
    ],
    ids=["adam", "adagrad", "rmsprop"],
)
def test_l2_term_whose_square_overflows_is_refused(make):
    """L2 decay squares g + wd w: a weight of 1e21 with wd 0.1 gives (1e20)^2 = inf in float32 statistics."""
    p = torch.full((3,), 1e21, requires_grad=True)
    opt = make([p])
    opt.check_finite = "eager"  # the refusal before anything changes (the fused default: test_fused.py)
    snap = _snapshot(opt, [p])
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="L2 term"):
        opt.step()
    _assert_unchanged(opt, [p], snap)


# ------------------------------------------------------------------------------------- matrix roots in float32
def test_psd_power_of_a_float32_matrix_spanning_sixty_decades_is_finite():
    """LAPACK's eigh rescaled this Shampoo statistic (one direction 3e31, the others about 1e-28) itself and
    returned NaN eigenvalues without an error: IdealizedShampoo's parameter became NaN."""
    from adaptim.linalg import psd_power

    A = torch.tensor(
        [
            [3.3367e31, -9.7182e-28, -2.0191e-27],
            [-9.7182e-28, 2.8027e-28, 5.8230e-28],
            [-2.0191e-27, 5.8230e-28, 1.2098e-27],
        ]
    )
    for rtol in (0.0, torch.finfo(F32).eps):
        got = psd_power(A, -0.5, 1e-12, rtol=rtol)
        want = psd_power(A.double(), -0.5, 1e-12, rtol=rtol)
        assert bool(got.isfinite().all())
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


def test_psd_power_of_a_float32_matrix_with_entries_45_decades_below_its_largest():
    """Scaled to its largest entry, this statistic (one gradient entry of 1e19 after gradients of 1e-3) holds
    subnormal entries, on which eigh failed to converge: IdealizedShampoo raised after changing its state."""
    from adaptim.linalg import psd_power

    u = torch.tensor([[-4.4662e-08], [4.6581e-07], [-5.4960e-08], [-5.9021e-07], [-3.8e-08]], dtype=F64)
    A = u @ u.T / 4.6581e-07
    A[0, 0] = 5.0025e37
    A = A.to(F32)
    for rtol in (0.0, torch.finfo(F32).eps):
        got = psd_power(A, -0.5, 1e-12, rtol=rtol)
        want = psd_power(A.double(), -0.5, 1e-12, rtol=rtol)
        assert bool(got.isfinite().all())
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


@pytest.mark.parametrize("cls", [adaptim.IdealizedShampoo, adaptim.Shampoo])
@pytest.mark.parametrize("shape", [(3, 1), (5,)])
def test_shampoo_after_small_then_huge_gradients_in_float32_stays_finite(cls, shape):
    p = torch.zeros(shape, requires_grad=True)
    opt = cls([p], lr=0.1)
    gen = torch.Generator().manual_seed(0)
    huge = torch.zeros(shape)
    huge.view(-1)[0] = 1e19
    for g in (torch.randn(shape, generator=gen) * 1e-3, huge, torch.randn(shape, generator=gen)):
        p.grad = g.clone()
        opt.step()
        assert bool(p.isfinite().all()), p


@pytest.mark.parametrize("cls", [adaptim.IdealizedShampoo, adaptim.Shampoo])
def test_shampoo_after_tiny_then_huge_gradients_in_float32_stays_finite(cls):
    p = torch.zeros(3, 1, requires_grad=True)
    opt = cls([p], lr=0.1)
    tiny = torch.tensor([[1.0e-13], [-2.9e-14], [-6.0e-14]])
    huge = torch.tensor([[1e16], [0.0], [0.0]])
    for g in (tiny, torch.zeros(3, 1), huge, tiny):
        p.grad = g.clone()
        opt.step()
        assert bool(p.isfinite().all()), p
