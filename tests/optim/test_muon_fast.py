"""Muon's fast path: Newton-Schulz steps as fused matrix multiply-adds, one batched call per shape, and the
bfloat16 option ``ns_dtype`` -- each tested against the literal float32 path.

Stated tolerances (relative Frobenius difference of the orthogonalized matrices, "jordan", 5 steps):

* fused float32 vs literal float32: < 1e-5 (measured: at most 2e-6);
* bfloat16 (fused, the path Muon takes) vs literal float32: < 0.04 on Gaussian matrices (measured: 1.0-1.4e-2)
  and < 0.2 with singular values spread over 1..1e-3 (measured: 3-7e-2); the literal bfloat16 iteration, which
  rounds every intermediate to bfloat16, is less accurate: < 0.09 and < 0.3 (measured: 2.3-2.9e-2 and 5-10e-2);
* the orthogonality errors ||O^T O - I||_F / sqrt(k) of bfloat16 and float32 differ by < 0.02 (measured: at most
  3e-3 fused, 6e-3 literal; the error itself, 0.28-0.59, comes from the "jordan" polynomial and 5 steps).

The bounds are about three times the largest measured figure.

Run as a script (``PYTHONPATH=src python tests/optim/test_muon_fast.py``) it prints the measured figures quoted in
the Muon docstring.
"""

from __future__ import annotations

import io

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import adaptim
import adaptim.functional.muon as fmuon
from adaptim.linalg.newton_schulz import NS_COEFFICIENTS, newton_schulz, newton_schulz_coefficients

#: the tested shapes (small: bfloat16 products are slow on CPUs without bfloat16 units) and, for the script's
#: table, two of the 4M-parameter ``adaptim perf`` model's shapes
SHAPES = [(64, 64), (128, 512), (512, 128), (192, 192), (768, 192)]
MEASURED_SHAPES = SHAPES + [(576, 576), (2304, 576)]


def _gaussian(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _spread(shape, seed):
    """A matrix with random singular vectors and singular values spread over 1..1e-3 (like a momentum)."""
    gen = torch.Generator().manual_seed(seed)
    U, _, Vh = torch.linalg.svd(torch.randn(shape, generator=gen), full_matrices=False)
    return (U * torch.logspace(0, -3, min(shape))) @ Vh


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max over the batch of ||a - b||_F / ||b||_F, in float64."""
    a, b = a.double(), b.double()
    return float((torch.linalg.matrix_norm(a - b) / torch.linalg.matrix_norm(b)).max())


def _orth_error(O: torch.Tensor) -> float:
    """max over the batch of ||O^T O - I||_F / sqrt(k), k = min(m, n), on the small Gram side, in float64."""
    O = O.double()
    G = O.mT @ O if O.shape[-2] >= O.shape[-1] else O @ O.mT
    k = G.shape[-1]
    return float((torch.linalg.matrix_norm(G - torch.eye(k, dtype=G.dtype)) / k**0.5).max())


def _literal_reference(X: torch.Tensor, coeffs, steps: int) -> torch.Tensor:
    """Newton-Schulz as adaptim wrote it before the fused path: the arithmetic the default literal path keeps."""
    Y = X.float()
    tall = Y.shape[-2] > Y.shape[-1]
    if tall:
        Y = Y.mT
    amax = Y.abs().amax(dim=(-2, -1), keepdim=True)
    Y = Y / amax
    Y = Y / torch.linalg.matrix_norm(Y, keepdim=True)
    c1, rest = coeffs[0], coeffs[1:]
    for _ in range(steps):
        A = Y @ Y.mT
        B = rest[-1] * A
        for c in reversed(rest[:-1]):
            B = c * A + B @ A
        Y = c1 * Y + B @ Y
    return (Y.mT if tall else Y).contiguous()


# ------------------------------------------------------------------------------------------ the fused iteration
@pytest.mark.parametrize(
    "coefficients",
    ["jordan", "cubic", "quintic", newton_schulz_coefficients(4), (1.0,)],
    ids=["jordan", "cubic", "quintic", "P4", "P1"],
)
@pytest.mark.parametrize("shape", [(3, 48, 48), (2, 96, 32), (2, 32, 96), (2, 2, 40, 24), (40, 24)])
def test_fused_matches_literal_float32(shape, coefficients):
    X = _gaussian(shape, 1)
    literal = newton_schulz(X, coefficients, 5)
    fused = newton_schulz(X, coefficients, 5, fused=True)
    assert fused.shape == X.shape and fused.dtype == torch.float32
    assert _rel(fused, literal) < 1e-5


def test_fused_matches_literal_float64():
    X = _gaussian((3, 60, 40), 2).double()
    fused = newton_schulz(X, "jordan", 5, fused=True)
    assert fused.dtype == torch.float64
    assert _rel(fused, newton_schulz(X, "jordan", 5)) < 1e-13


def test_fused_step_is_three_gemm_calls_and_no_elementwise_pass():
    """Each extra step adds exactly one bmm and two baddbmm ("jordan", P = 3) and no other operator but views."""

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops: dict[str, int] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not func.is_view:  # views (the transposes of X) touch no data
                name = func.overloadpacket.__name__
                self.ops[name] = self.ops.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    X = _gaussian((4, 24, 40), 3)  # wide: a tall one adds one copy at the end, for any number of steps >= 1
    counts = []
    for steps in (0, 5):
        with Count() as mode:
            newton_schulz(X, "jordan", steps, fused=True)
        counts.append(mode.ops)
    extra = {k: counts[1].get(k, 0) - counts[0].get(k, 0) for k in set(counts[0]) | set(counts[1])}
    assert {k: v for k, v in extra.items() if v} == {"bmm": 5, "baddbmm": 10}


def test_fused_keeps_zero_and_nonfinite_behaviour():
    X = torch.zeros(2, 8, 5)
    for dtype in (None, "bfloat16"):
        out = newton_schulz(X, fused=True, dtype=dtype)
        assert out.dtype == torch.float32 and bool((out == 0).all())
    X[1, 2, 3] = float("nan")
    with pytest.raises(RuntimeError, match="non-finite"):
        newton_schulz(X, fused=True)


# ------------------------------------------------------------------------------------------ bfloat16 accuracy
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{n}" for m, n in SHAPES])
def test_bfloat16_accuracy_bounds(shape):
    bounds = {(_gaussian, True): 0.04, (_spread, True): 0.2, (_gaussian, False): 0.09, (_spread, False): 0.3}
    for (make, fused), bound in bounds.items():
        X = make(shape, 4)
        f32 = newton_schulz(X)
        bf16 = newton_schulz(X, dtype="bfloat16", fused=fused)
        assert bf16.dtype == torch.float32  # computed in bfloat16, returned in the input's dtype
        rel = _rel(bf16, f32)
        assert 1e-4 < rel < bound  # the products did run in bfloat16 (8 bits of mantissa), within the bound
        assert abs(_orth_error(bf16) - _orth_error(f32)) < 0.02


def test_ns_dtype_float32_on_float64_input():
    X = _gaussian((50, 30), 5).double()
    out = newton_schulz(X, dtype=torch.float32, fused=True)
    assert out.dtype == torch.float64
    assert 1e-9 < _rel(out, newton_schulz(X)) < 1e-5


# ------------------------------------------------------------------------------------------ the optimizer
def _params(seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(24, 24), (24, 24), (24, 24), (96, 24), (24, 96), (24, 3, 2, 4)]
    return [torch.randn(s, generator=gen).requires_grad_() for s in shapes]


def _grads(params, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=gen) for p in params]


def _run(steps=3, **kwargs):
    params = _params()
    opt = adaptim.Muon(params, lr=0.02, **kwargs)
    for t in range(steps):
        for p, g in zip(params, _grads(params, 100 + t)):
            p.grad = g
        opt.step()
    return params, opt


@pytest.mark.parametrize("value", ["float16", torch.float16, "bf16", "torch.bfloat16", 16, torch.int32, True], ids=repr)
def test_ns_dtype_validation(value):
    with pytest.raises(ValueError, match="ns_dtype"):
        adaptim.Muon(_params(), ns_dtype=value)
    with pytest.raises(ValueError, match="ns_dtype"):
        newton_schulz(torch.ones(3, 3), dtype=value)
    opt = adaptim.Muon(_params())
    with pytest.raises(ValueError, match="ns_dtype"):
        opt.add_param_group({"params": [torch.zeros(3, 3, requires_grad=True)], "ns_dtype": value})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("value", [None, "float32", torch.float32, "float64", "bfloat16", torch.bfloat16])
def test_ns_dtype_accepted(value):
    params, opt = _run(steps=1, ns_dtype=value)
    assert opt.param_groups[0]["ns_dtype"] == value
    assert all(opt.state[p]["momentum_buffer"].dtype == torch.float32 for p in params)


def test_default_literal_path_bitwise_as_before():
    """foreach=False (the reference) with the default ns_dtype keeps the float32 arithmetic bit for bit."""
    params = _params()
    start = [p.detach().clone() for p in params]
    opt = adaptim.Muon(params, lr=0.02, foreach=False)
    bufs = [torch.zeros_like(p) for p in params]
    for t in range(3):
        grads = _grads(params, 100 + t)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        for k, (w, g) in enumerate(zip(start, grads)):
            bufs[k].lerp_(g, 1 - 0.95)
            n = g.lerp(bufs[k], 0.95)
            m = n.reshape(n.shape[0], -1)
            a = max(1.0, m.shape[0] / m.shape[1]) ** 0.5
            d = _literal_reference(m, NS_COEFFICIENTS["jordan"], 5).view_as(n)
            if a != 1:
                d = d * a
            w.add_(d, alpha=-0.02)
    for p, w in zip(params, start):
        assert torch.equal(p.detach(), w)


def test_default_batched_fused_path_matches_literal():
    """The default (batched, fused) directions agree with the literal loop's to 1e-5 relative, and the parameters
    after three steps to 1e-6 absolute (the directions' difference plus the parameters' own rounding)."""
    updates = _grads(_params(), 9)
    fast = fmuon.muon_directions(updates)
    ref = fmuon.muon_directions(updates, batched=False)
    for f, r in zip(fast, ref):
        assert _rel(f.reshape(f.shape[0], -1), r.reshape(r.shape[0], -1)) < 1e-5
    fast, _ = _run(steps=3)
    ref, _ = _run(steps=3, foreach=False)
    for f, r in zip(fast, ref):
        torch.testing.assert_close(f, r, rtol=0, atol=1e-6)


def test_default_is_float32():
    default, _ = _run(steps=2)
    f32, _ = _run(steps=2, ns_dtype="float32")
    bf16, _ = _run(steps=2, ns_dtype=torch.bfloat16)
    start = _params()
    for d, f, b, w in zip(default, f32, bf16, start):
        assert torch.equal(d, f)
        b, d = (b - w).detach().flatten(1), (d - w).detach().flatten(1)  # the two steps taken
        assert 1e-4 < _rel(b, d) < 0.04


def test_batched_path_is_default_one_call_per_shape(monkeypatch):
    calls = []

    def spy(X, *args, **kwargs):
        calls.append((tuple(X.shape), kwargs.get("fused"), kwargs.get("dtype")))
        return newton_schulz(X, *args, **kwargs)

    monkeypatch.setattr(fmuon, "newton_schulz", spy)
    _run(steps=1, ns_dtype="bfloat16")
    # (24, 24) x 3 and the (24, 3, 2, 4) convolution weight flattened to (24, 24); (96, 24); (24, 96)
    assert sorted(calls) == sorted(
        [((4, 24, 24), True, "bfloat16"), ((1, 96, 24), True, "bfloat16"), ((1, 24, 96), True, "bfloat16")]
    )
    calls.clear()
    _run(steps=1, foreach=False)
    assert len(calls) == 6 and all(fused is False for _, fused, _ in calls)


@pytest.mark.parametrize("value", ["bfloat16", torch.bfloat16])
def test_state_dict_round_trip_keeps_ns_dtype(value):
    params, opt = _run(steps=2, ns_dtype=value)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    clones = [p.detach().clone().requires_grad_() for p in params]
    restored = adaptim.Muon(clones, lr=0.02)  # default ns_dtype; the saved group brings bfloat16 back
    restored.load_state_dict(saved)
    assert restored.param_groups[0]["ns_dtype"] == value
    for group in (params, clones):
        for p, g in zip(group, _grads(params, 7)):
            p.grad = g
    opt.step()
    restored.step()
    for p, c in zip(params, clones):
        assert torch.equal(p, c)


def test_checkpoint_without_ns_dtype_loads_as_default():
    params, opt = _run(steps=1)
    state = opt.state_dict()
    del state["param_groups"][0]["ns_dtype"]  # saved before the option existed
    restored = adaptim.Muon([p.detach().clone().requires_grad_() for p in params], lr=0.02, ns_dtype="bfloat16")
    restored.load_state_dict(state)
    assert restored.param_groups[0]["ns_dtype"] == "bfloat16"  # kept at this optimizer's value, as other entries
    fresh = adaptim.Muon([p.detach().clone().requires_grad_() for p in params], lr=0.02)
    fresh.load_state_dict(state)
    assert fresh.param_groups[0]["ns_dtype"] is None


def _measure() -> None:  # pragma: no cover - the table quoted in the Muon docstring
    print("shape        matrix    bf16 vs f32 (fused / literal)   orth f32   orth bf16   fused f32 vs literal")
    for shape in MEASURED_SHAPES:
        for name, make in (("gaussian", _gaussian), ("spread", _spread)):
            X = make(shape, 4)
            f32 = newton_schulz(X)
            bf = newton_schulz(X, dtype="bfloat16", fused=True)
            bfl = newton_schulz(X, dtype="bfloat16")
            fused = newton_schulz(X, fused=True)
            print(
                f"{shape!s:12s} {name:9s} {_rel(bf, f32):.2e} / {_rel(bfl, f32):.2e}"
                f"              {_orth_error(f32):.4f}     {_orth_error(bf):.4f}      {_rel(fused, f32):.1e}"
            )


if __name__ == "__main__":  # pragma: no cover
    _measure()
