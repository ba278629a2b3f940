"""Adafactor's fast path (``adafactor_batched``, the optimizer's default) against its literal loop
(``adafactor_single``, float64 U rounded once), over every flag combination, on shapes that are stacked
(small, repeated) and unstacked (large, alone), and on the extreme values where float32 norms fail.

Stated tolerances: float64 parameters agree to rtol 1e-12; float32 parameters after ``STEPS`` steps agree to
``F32_RTOL`` of each parameter's total movement plus one float32 ulp of its largest weight per step (the fast path
rounds the unit in three float32 multiplies instead of one, sums G^2 + eps1 as sum(G^2) + n eps1, and applies the
scalars in the step size, so a weight's write-back may round the other way).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from adaptim.functional import adafactor as af
from adaptim.optim.adafactor import Adafactor

STEPS = 8
F32_RTOL = 2e-5
#: small repeated shapes (stacked), a scalar, a 3-d tensor, and one matrix above STACK_BELOW (updated alone)
SHAPES = [(3, 4), (3, 4), (5,), (5,), (2, 3, 2), (), (70, 1000)]
FLAGS = dict(
    beta1=[None, 0.9],
    beta2=[None, 0.999],
    clip_threshold=[None, 1.0, 1e-3],
    scale_parameter=[True, False],
    factored=[True, False],
    weight_decay=[0.0, 0.1],
)
COMBOS = [dict(zip(FLAGS, values)) for values in itertools.product(*FLAGS.values())]


def _problem(seed: int, dtype: torch.dtype, shapes=SHAPES, steps: int = STEPS):
    gen = torch.Generator().manual_seed(seed)
    w0 = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes]
    grads = [
        [
            (torch.randn(s, generator=gen, dtype=torch.float64) * 10 ** float(torch.randn((), generator=gen))).to(dtype)
            for s in shapes
        ]
        for _ in range(steps)
    ]
    return w0, grads


def _run(w0, grads, foreach: bool, **kwargs) -> list[torch.Tensor]:
    params = [w.clone().requires_grad_(True) for w in w0]
    opt = Adafactor([{"params": params, "foreach": foreach}], **kwargs)
    for g in grads:
        for p, gi in zip(params, g):
            p.grad = gi.clone()
        opt.step()
    return [p.detach() for p in params]


def _assert_within_movement(fast, literal, w0, rtol, steps=STEPS):
    for a, b, w in zip(fast, literal, w0):
        assert bool(a.isfinite().all())
        moved = float((b.double() - w.double()).abs().max())
        err = float((a.double() - b.double()).abs().max())
        ulps = steps * torch.finfo(w.dtype).eps * float(w.double().abs().max())
        assert err <= rtol * moved + ulps, f"{tuple(w.shape)}: {err:.3e} > {rtol} x movement {moved:.3e} + {ulps:.1e}"


def _id(c):
    return "-".join(f"{k}={v}" for k, v in c.items())


def test_shapes_cover_both_kinds_of_bucket():
    sizes = [math.prod(s) for s in SHAPES]
    assert max(sizes) >= af.STACK_BELOW and any(
        SHAPES.count(s) > 1 and n < af.STACK_BELOW for s, n in zip(SHAPES, sizes)
    )


@pytest.mark.parametrize("combo", COMBOS, ids=_id)
def test_float32_fast_path_matches_literal_loop(combo):
    w0, grads = _problem(COMBOS.index(combo), torch.float32)
    fast, literal = _run(w0, grads, True, **combo), _run(w0, grads, False, **combo)
    _assert_within_movement(fast, literal, w0, F32_RTOL)


@pytest.mark.parametrize("combo", COMBOS[::5], ids=_id)
def test_float64_fast_path_matches_literal_loop(combo):
    w0, grads = _problem(100 + COMBOS.index(combo), torch.float64, shapes=SHAPES[:-1])
    fast, literal = _run(w0, grads, True, **combo), _run(w0, grads, False, **combo)
    for a, b in zip(fast, literal):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "schedule",
    [dict(relative_step=False, lr=0.05), dict(warmup_init=True), dict(lr=0.5)],
    ids=["fixed_lr", "warmup", "relative_lr_0.5"],
)
def test_step_sizes_match_literal_loop(schedule):
    w0, grads = _problem(7, torch.float32)
    fast, literal = _run(w0, grads, True, **schedule), _run(w0, grads, False, **schedule)
    _assert_within_movement(fast, literal, w0, F32_RTOL)


@pytest.mark.parametrize("batched", [True, False])
def test_directions_api_fast_equals_literal(batched):
    """adafactor_directions(batched=True) returns D = s U' materialized; it matches the literal directions."""
    w0, grads = _problem(3, torch.float32)
    outs = []
    for b in (batched, False):
        states = _states(w0, beta1=0.9)
        outs.append(af.adafactor_directions(w0, grads[0], *states, [1] * len(w0), **_DIR_KW, batched=b))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * float(b.abs().max()))


_DIR_KW = dict(beta1=0.9, beta2=None, decay_rate=-0.8, eps1=1e-30, eps2=1e-3, clip_threshold=1.0, scale_parameter=True)


def _states(w0, beta1=None):
    fac = [w.dim() >= 2 for w in w0]
    return (
        [torch.zeros_like(w) if beta1 is not None else None for w in w0],
        [torch.zeros(w.shape[:-1]) if f else None for w, f in zip(w0, fac)],
        [torch.zeros(w.shape[:-2] + w.shape[-1:]) if f else None for w, f in zip(w0, fac)],
        [None if f else torch.zeros_like(w) for w, f in zip(w0, fac)],
    )


def test_scratch_reuse_and_stacking_change_no_bit(monkeypatch):
    """The CPU scratch buffer (reuse=True) and the deferred host read (reuse=False) give the same bits; so do
    stacked and unstacked buckets of equal shapes (each slice is reduced on its own)."""
    w0, grads = _problem(4, torch.float32)
    results = []
    for reuse, stack_below in [(True, af.STACK_BELOW), (False, af.STACK_BELOW), (True, 0)]:
        monkeypatch.setattr(af, "STACK_BELOW", stack_below)
        states = _states(w0, beta1=0.9)
        got = {}
        af._units_fast(
            w0,
            grads[0],
            *states,
            [1] * len(w0),
            **_DIR_KW,
            emit=lambda i, u, s, got=got: got.__setitem__(i, (u.clone(), s)),
            reuse=reuse,
        )
        results.append((got, states))
    (ref, ref_states), *others = results
    for got, states in others:
        for i in ref:
            assert torch.equal(got[i][0], ref[i][0]) and got[i][1] == ref[i][1]
        for a, b in zip(ref_states, states):
            for x, y in zip(a, b):
                assert (x is None and y is None) or torch.equal(x, y)


EXTREMES = {
    # weights whose squares overflow float32: RMS(W) is taken again in float64
    "huge_weights": (lambda w: w * 1e25, lambda g: g, {}),
    # zero weights with eps2 = 0: RMS(W) = 0 exactly, the literal arithmetic decides
    "zero_weights_eps2_0": (lambda w: w * 0, lambda g: g, dict(eps=(1e-30, 0.0))),
    # gradients whose squares underflow float32: the sums are eps1, the unit is large
    "tiny_gradients": (lambda w: w, lambda g: g * 1e-25, {}),
    # a vanished row and column next to large entries (rsqrt of eps1-sized sums)
    "zero_row_and_column": (lambda w: w, lambda g: _zero_row_col(g) * 1e3, {}),
    # an all-zero gradient: U' = 0, its norm 0
    "zero_gradient": (lambda w: w, lambda g: g * 0, {}),
}


def _zero_row_col(g):
    g = g.clone()
    if g.dim() >= 2:
        g[..., 1, :] = 0
        g[..., :, 0] = 0
    return g


@pytest.mark.parametrize("beta1", [None, 0.9])
@pytest.mark.parametrize("name", list(EXTREMES))
def test_extreme_values_match_literal_loop(name, beta1):
    wmap, gmap, extra = EXTREMES[name]
    w0, grads = _problem(11, torch.float32, steps=4)
    w0 = [wmap(w) for w in w0]
    grads = [[gmap(g) for g in gs] for gs in grads]
    fast = _run(w0, grads, True, beta1=beta1, **extra)
    literal = _run(w0, grads, False, beta1=beta1, **extra)
    assert all(bool(b.isfinite().all()) for b in literal)
    _assert_within_movement(fast, literal, w0, F32_RTOL, steps=len(grads))


def test_fallback_is_taken_where_float32_norms_overflow(monkeypatch):
    """Huge weights: the float32 norm of W is inf, so the literal float64 direction is used for those tensors."""
    calls = []
    real = af._literal_direction
    monkeypatch.setattr(af, "_literal_direction", lambda *a, **k: calls.append(1) or real(*a, **k))
    w0, grads = _problem(12, torch.float32, steps=1)
    _run([w * 1e25 for w in w0], grads, True)
    assert len(calls) >= sum(w.numel() > 1 for w in w0)
    calls.clear()
    _run(w0, grads, True)
    assert calls == []


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_parameters_follow_the_literal_loop(dtype):
    w0, grads = _problem(13, dtype, shapes=[(6, 8), (8,)], steps=5)
    fast, literal = _run(w0, grads, True, beta1=0.9), _run(w0, grads, False, beta1=0.9)
    for a, b in zip(fast, literal):
        assert a.dtype == dtype
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-2, atol=1e-2)
