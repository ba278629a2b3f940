"""Low-precision parameters: stochastic rounding and the Kahan write-back (the group entry ``low_precision``).

* :func:`adaptim.functional.lowp.stochastic_round`: exact on representable values, every draw one of the two
  neighbours, unbiased over many draws, sign-symmetric, special values and saturation, reproducible, its errors.
* The stall: bfloat16 from 1.0, 100 steps of lr 1e-3 with gradient 1: ``"nearest"`` stays at 1.0, ``"stochastic"``
  and ``"kahan"`` reach float32's 0.9.
* A digits MLP trained in bfloat16 with AdamW and SGD follows its float32 run (loss curve and weights) with
  ``"stochastic"`` and ``"kahan"``, and ``"nearest"`` does measurably worse (fixed seeds: deterministic).
* Checkpoints resume the exact trajectory in both modes; every optimizer configuration steps a bfloat16 parameter
  in every mode and leaves float32 parameters bitwise as ``"nearest"`` does; the entry is validated.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from _assertions import assert_same, assert_same_state

import adaptim
from adaptim.functional.lowp import stochastic_round, stochastic_round_
from adaptim.perf.lowprec import digits_mlp_init, train_digits_mlp

LOW = [torch.bfloat16, torch.float16]
MODES = ["nearest", "stochastic", "kahan"]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _neighbours(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi): the representable values of ``dtype`` around float32 ``x`` (float64, exact)."""
    x64 = x.double()
    near = x.to(dtype).double()
    bits = x.to(dtype).view(torch.int16)
    # one step of the magnitude away from 0 or toward it, on x's side of `near`
    up = (near.abs() < x64.abs()).to(torch.int16) * 2 - 1
    other = (bits + up).view(dtype).double()
    return torch.minimum(near, other), torch.maximum(near, other)


# ------------------------------------------------------------------------------------------- the rounding
@pytest.mark.parametrize("dtype", LOW)
def test_representable_values_are_exact(dtype):
    # every finite pattern of the dtype, normal and subnormal, of both signs
    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    values = bits.view(dtype)
    values = values[torch.isfinite(values)].float()
    for seed in range(3):
        out = stochastic_round(values, dtype, _gen(seed))
        assert torch.equal(out.view(torch.int16), values.to(dtype).view(torch.int16))


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("scale", [1.0, 3.0e-3, -7.5, 2.0**-20, 6.0e4])
@pytest.mark.parametrize("frac", [0.01, 1 / 3, 0.5, 0.9])
def test_each_draw_is_a_neighbour_and_the_mean_is_unbiased(dtype, scale, frac):
    lo0 = torch.tensor([scale]).to(dtype)
    lo, hi = _neighbours(lo0.float() * (1 + 2**-12), dtype)  # the interval just beyond lo0, away from 0
    x = (lo + frac * (hi - lo)).float()
    assert lo < x.double() < hi  # the test value is not representable
    n = 200_000
    out = stochastic_round(x.expand(n).contiguous(), dtype, _gen(1)).double()
    assert bool(((out == lo) | (out == hi)).all())
    p = float(((out - lo) / (hi - lo)).mean())  # the fraction rounded to hi
    p_exact = float((x.double() - lo) / (hi - lo))
    se = (p_exact * (1 - p_exact) / n) ** 0.5
    assert abs(p - p_exact) < 5 * se  # 5 standard errors; the generator is seeded, so no flakiness


@pytest.mark.parametrize("dtype", LOW)
def test_sign_symmetric_and_reproducible(dtype):
    x = torch.randn(10_000, generator=_gen(3)) * torch.logspace(-6, 3, 10_000)
    if dtype == torch.float16:
        x = x.clamp(-6e4, 6e4)
    pos = stochastic_round(x, dtype, _gen(5))
    neg = stochastic_round(-x, dtype, _gen(5))
    assert torch.equal(neg.view(torch.int16), (-pos).view(torch.int16))
    assert torch.equal(stochastic_round(x, dtype, _gen(5)).view(torch.int16), pos.view(torch.int16))
    assert not torch.equal(stochastic_round(x, dtype, _gen(6)), pos)  # another seed, other draws
    # the two neighbours of each value bracket it
    lo, hi = _neighbours(x, dtype)
    assert bool(((pos.double() == lo) | (pos.double() == hi)).all())


@pytest.mark.parametrize("dtype", LOW)
def test_special_values_and_saturation(dtype):
    big = torch.finfo(dtype).max
    f32max = torch.finfo(torch.float32).max
    x = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), big, -big, f32max, -f32max, big * 1.001])
    for seed in range(20):
        out = stochastic_round(x, dtype, _gen(seed))
        assert out[0] == 0 and not out[0].signbit() and out[1] == 0 and out[1].signbit()
        assert out[2] == float("inf") and out[3] == -float("inf") and torch.isnan(out[4])
        # finite values never round to infinity: beyond the largest finite value they saturate
        assert out[5:].float().tolist() == [big, -big, big, -big, big]
    if dtype == torch.float16:  # below the smallest subnormal 2^-24: 0 or 2^-24 with mean x
        x = torch.full((100_000,), 2.0**-26)
        out = stochastic_round(x, dtype, _gen(0)).double()
        assert set(out.unique().tolist()) == {0.0, 2.0**-24}
        assert abs(out.mean().item() / 2.0**-26 - 1) < 0.02  # about 5 standard errors


def test_shapes_and_layouts():
    x = torch.randn(6, 5, generator=_gen(0))
    t = x.t()  # not contiguous
    assert stochastic_round(t, torch.bfloat16, _gen(2)).shape == (5, 6)
    assert torch.equal(
        stochastic_round(t, torch.bfloat16, _gen(2)), stochastic_round(t.contiguous(), torch.bfloat16, _gen(2))
    )
    out = torch.empty(5, 6, dtype=torch.bfloat16)
    assert stochastic_round_(out, t, _gen(2)) is out
    assert torch.equal(out, stochastic_round(t, torch.bfloat16, _gen(2)))
    assert stochastic_round(torch.tensor(1.5), torch.float16).shape == ()


def test_rounding_errors():
    x = torch.ones(3)
    with pytest.raises(TypeError, match="float32 values, got torch.float64"):
        stochastic_round(x.double())
    with pytest.raises(TypeError, match="bfloat16 or torch.float16, got dtype torch.float32"):
        stochastic_round(x, torch.float32)
    with pytest.raises(TypeError, match="float32 values"):
        stochastic_round([1.0, 2.0])
    with pytest.raises(ValueError, match="out has shape"):
        stochastic_round_(torch.empty(4, dtype=torch.bfloat16), x)
    with pytest.raises(TypeError, match="got dtype torch.float64"):
        stochastic_round_(torch.empty(3, dtype=torch.float64), x)


# -------------------------------------------------------------------------------------------- the stall
def _stall(cls, dtype, mode, steps=100, n=1000, **kwargs):
    p = torch.nn.Parameter(torch.ones(n, dtype=dtype))
    opt = cls([{"params": [p], "low_precision": mode}], lr=1e-3, **kwargs)
    for _ in range(steps):
        p.grad = torch.ones_like(p)
        opt.step()
    return p.detach(), opt


@pytest.mark.parametrize("cls, kwargs", [(adaptim.SGD, {}), (adaptim.AdamW, dict(weight_decay=0.0))])
@pytest.mark.parametrize("dtype", LOW)
def test_stall_nearest_stays_stochastic_and_kahan_move(cls, kwargs, dtype):
    ref, _ = _stall(cls, torch.float32, "nearest", **kwargs)
    assert abs(ref[0].item() - 0.9) < 1e-5  # 100 steps of 1e-3 (Adam's bias-corrected step is lr here)
    stuck, _ = _stall(cls, dtype, "nearest", **kwargs)
    if dtype == torch.bfloat16:
        assert bool((stuck == 1).all())  # each step is below half an ulp of 1.0 (2^-8): rounded away
    ulp = 2.0 ** -(8 if dtype == torch.bfloat16 else 11)  # spacing just below 1.0
    # stochastic: unbiased per step, each step adds noise of variance <= ulp^2 / 4: after 100 steps each entry
    # is 0.9 within sigma <= 5 ulps, and the mean of 1000 entries within sigma / sqrt(1000) (~0.16 ulp)
    sr, _ = _stall(cls, dtype, "stochastic", **kwargs)
    sigma = (100 / 4) ** 0.5 * ulp
    assert abs(sr.float().mean().item() - ref[0].item()) < 0.5 * ulp
    assert (sr.float() - ref).abs().max().item() < 6 * sigma
    # kahan: the parameter is the nearest value to 0.9, and parameter + compensation is float32's 0.9 up to
    # the compensation's own roundings (it has the parameter's dtype: 8 bits for bfloat16), a few % of an ulp
    kp, opt = _stall(cls, dtype, "kahan", **kwargs)
    comp = opt.state[opt.param_groups[0]["params"][0]]["compensation"]
    assert comp.dtype == dtype
    assert bool((kp == ref.to(dtype)).all())
    assert (kp.float() + comp.float() - ref).abs().max().item() < 0.05 * ulp


# ---------------------------------------------------------------------------------------- the trajectory
TRAJECTORY_STEPS = 300


@pytest.mark.parametrize(
    "cls, kwargs", [(adaptim.AdamW, dict(lr=1e-3, weight_decay=0.01)), (adaptim.SGD, dict(lr=0.1, momentum=0.9))]
)
def test_bfloat16_model_follows_its_float32_trajectory(cls, kwargs):
    """The stated tolerances (README, docs/perf.md): after 300 steps, with stochastic rounding the loss curve
    stays within 0.01 of float32's and the weights within 10% of the distance float32 travelled; with Kahan
    within 0.005 and 1%; round-to-nearest is at least 3x further on both counts."""
    w0 = torch.cat([t.flatten() for t in digits_mlp_init()])
    ref_loss, ref_w = train_digits_mlp(cls, kwargs, torch.float32, "nearest", TRAJECTORY_STEPS)
    assert ref_loss[-1] < 0.5 * ref_loss[0]  # the float32 run learns
    gap, dev = {}, {}
    for mode in MODES:
        loss, w = train_digits_mlp(cls, kwargs, torch.bfloat16, mode, TRAJECTORY_STEPS)
        gap[mode] = (loss - ref_loss).abs().max().item()
        dev[mode] = ((w - ref_w).norm() / (ref_w - w0).norm()).item()
    assert gap["stochastic"] < 0.01 and dev["stochastic"] < 0.1, (gap, dev)
    assert gap["kahan"] < 0.005 and dev["kahan"] < 0.01, (gap, dev)
    for mode in ("stochastic", "kahan"):
        assert gap["nearest"] > 3 * gap[mode] and dev["nearest"] > 3 * dev[mode], (gap, dev)


# ---------------------------------------------------------------------------------------- checkpoints
def _bf16_params():
    g = _gen(11)
    return [torch.nn.Parameter(torch.randn(s, generator=g).to(torch.bfloat16)) for s in [(4, 5), (7,)]]


def _run(opt, params, steps, seed):
    g = _gen(seed)
    for _ in range(steps):
        for p in params:
            p.grad = (torch.randn(p.shape, generator=g) * 1e-2).to(p.dtype)
        opt.step()


@pytest.mark.parametrize("mode", ["stochastic", "kahan"])
@pytest.mark.parametrize(
    "cls, kwargs", [(adaptim.AdamW, dict(lr=1e-3, weight_decay=0.1)), (adaptim.SGD, dict(lr=1e-2))]
)
@pytest.mark.parametrize("via", ["state_dict", "torch.save"])
def test_checkpoint_resumes_the_exact_trajectory(mode, cls, kwargs, via):
    params = _bf16_params()
    opt = cls([{"params": params, "low_precision": mode}], **kwargs)
    _run(opt, params, 10, seed=0)
    saved_params = [p.detach().clone() for p in params]
    saved = copy.deepcopy(opt.state_dict())
    if via == "torch.save":
        buf = io.BytesIO()
        torch.save(saved, buf)
        buf.seek(0)
        saved = torch.load(buf)
    assert ("low_precision_rng" in saved) == (mode == "stochastic")
    _run(opt, params, 10, seed=1)

    fresh = [torch.nn.Parameter(p.clone()) for p in saved_params]
    opt2 = cls([{"params": fresh, "low_precision": mode}], **kwargs)
    opt2.load_state_dict(saved)
    _run(opt2, fresh, 10, seed=1)
    for a, b in zip(params, fresh):
        assert_same(a.detach(), b.detach())
    for a, b in zip(params, fresh):
        if a in opt.state:
            assert_same_state(opt.state[a], opt2.state[b])
    if mode == "stochastic":  # without the generator's state the draws differ: the saved state is what matters
        fresh3 = [torch.nn.Parameter(p.clone()) for p in saved_params]
        opt3 = cls([{"params": fresh3, "low_precision": mode}], **kwargs)
        opt3.load_state_dict({k: v for k, v in saved.items() if k != "low_precision_rng"})
        _run(opt3, fresh3, 10, seed=1)
        assert any(not torch.equal(a, b) for a, b in zip(params, fresh3))


@pytest.mark.parametrize("mode", ["stochastic", "kahan"])
def test_a_deep_copy_continues_the_same_trajectory(mode):
    params = _bf16_params()
    opt = adaptim.AdamW([{"params": params, "low_precision": mode}], lr=1e-3)
    _run(opt, params, 3, seed=0)
    twin = copy.deepcopy(opt)
    twin_params = twin.param_groups[0]["params"]
    _run(opt, params, 3, seed=1)
    _run(twin, twin_params, 3, seed=1)
    for a, b in zip(params, twin_params):
        assert_same(a.detach(), b.detach())


def test_seed_decides_the_draws():
    def final(seed):
        params = _bf16_params()
        opt = adaptim.SGD([{"params": params, "low_precision": "stochastic"}], lr=1e-2)
        opt.low_precision_seed = seed
        _run(opt, params, 5, seed=0)
        return torch.cat([p.detach().flatten() for p in params])

    assert torch.equal(final(3), final(3))
    assert not torch.equal(final(3), final(4))


# --------------------------------------------------------------------------------- every optimizer
@pytest.mark.parametrize("mode", MODES)
def test_every_optimizer_steps_bfloat16_in_every_mode(optimizer_case, mode):
    g = _gen(0)
    shapes = [optimizer_case.shape(s) for s in [(4, 3), (5,)]]
    params = [torch.nn.Parameter(torch.randn(s, generator=g).to(torch.bfloat16)) for s in shapes]
    opt = optimizer_case.make([{"params": params, "low_precision": mode}])
    before = [p.detach().clone() for p in params]
    for _ in range(3):
        optimizer_case.step(opt, params, [torch.randn(p.shape, generator=g).to(p.dtype) for p in params])
    for p, b in zip(params, before):
        assert p.dtype == torch.bfloat16 and bool(torch.isfinite(p).all())
        assert not torch.equal(p, b)
        comp = opt.state[p].get("compensation") if p in opt.state else None
        if mode == "kahan":
            assert comp is not None and comp.dtype == torch.bfloat16 and comp.shape == p.shape
            assert bool(torch.isfinite(comp).all())
        else:
            assert comp is None


@pytest.mark.parametrize("mode", ["stochastic", "kahan"])
def test_float32_parameters_are_bitwise_as_nearest(optimizer_case, mode):
    def run(m):
        g = _gen(0)
        params = [torch.nn.Parameter(torch.randn(optimizer_case.shape(s), generator=g)) for s in [(4, 3), (5,)]]
        opt = optimizer_case.make([{"params": params, "low_precision": m}])
        for _ in range(3):
            optimizer_case.step(opt, params, [torch.randn(p.shape, generator=g) for p in params])
        return params, opt

    ref, ref_opt = run("nearest")
    got, opt = run(mode)
    for a, b in zip(ref, got):
        assert_same(a.detach(), b.detach())
        assert (a in ref_opt.state) == (b in opt.state)
        if a in ref_opt.state:
            assert_same_state(ref_opt.state[a], opt.state[b])  # no compensation entry
    assert "low_precision_rng" not in opt.state_dict()


# ----------------------------------------------------------------------------------- the switch
def test_bad_values_are_refused():
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    for bad in ["Stochastic", "round", None, 1]:
        with pytest.raises(ValueError, match="low_precision must be one of 'nearest', 'stochastic', 'kahan'"):
            adaptim.AdamW([{"params": [p], "low_precision": bad}])
    opt = adaptim.AdamW([p], lr=0.1)
    opt.param_groups[0]["low_precision"] = "fast"
    p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match="param group 0 .*low_precision must be one of"):
        opt.step()
    assert bool((p == 1).all()) and not opt.state  # the refused step changed nothing
    with pytest.raises(ValueError, match="low_precision must be one of"):
        adaptim.create_optimizer("adamw", [p], low_precision="bf16")


def test_create_optimizer_sets_every_group_and_later_ones():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3)).to(torch.bfloat16)
    opt = adaptim.create_optimizer("adamw", model, lr=1e-3, low_precision="kahan")
    assert len(opt.param_groups) == 2  # the decay split
    assert all(g["low_precision"] == "kahan" for g in opt.param_groups)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2, dtype=torch.bfloat16))]})
    assert opt.param_groups[-1]["low_precision"] == "kahan"
    # a group's own entry wins; plain tensors become one group
    p, q = (torch.nn.Parameter(torch.ones(2, dtype=torch.bfloat16)) for _ in range(2))
    opt = adaptim.create_optimizer("sgd", [{"params": [p]}, {"params": [q], "low_precision": "nearest"}],
                                   low_precision="stochastic")  # fmt: skip
    assert [g["low_precision"] for g in opt.param_groups] == ["stochastic", "nearest"]
    opt = adaptim.create_optimizer(adaptim.Muon, torch.nn.Linear(4, 4, dtype=torch.bfloat16), low_precision="kahan")
    assert all(g["low_precision"] == "kahan" for g in opt.param_groups)
    assert "low_precision" not in adaptim.create_optimizer("adamw", [p]).param_groups[0]


def test_switching_to_or_from_kahan_after_a_step_is_refused():
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    opt = adaptim.AdamW([p], lr=0.1)
    p.grad = torch.ones_like(p)
    opt.step()
    opt.param_groups[0]["low_precision"] = "stochastic"  # same state layout: allowed
    opt.step()
    opt.param_groups[0]["low_precision"] = "kahan"
    before = p.detach().clone()
    with pytest.raises(ValueError, match="would need another layout"):
        opt.step()
    assert torch.equal(p, before)
    # a Kahan checkpoint does not load into a group without it (and back)
    q = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    kahan = adaptim.AdamW([{"params": [q], "low_precision": "kahan"}], lr=0.1)
    q.grad = torch.ones_like(q)
    kahan.step()
    assert "compensation" in kahan.state[q]
    plain = adaptim.AdamW([torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))], lr=0.1)
    sd = kahan.state_dict()
    sd["param_groups"][0]["low_precision"] = "nearest"
    with pytest.raises(ValueError, match="has entries"):
        plain.load_state_dict(sd)
