"""The shared layer (``adaptim.functional.common``): each helper against its definition, its tensor and list forms
bitwise equal, and the base class's one refusal of a weight-decay factor lambda_t >= 1 for every optimizer that
decays multiplicatively.

Definitions are checked exactly on dyadic inputs (where every operation of the definition is exact in float64, so
any other formula would differ) and to a few units of rounding on random ones.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

import adaptim
from adaptim.functional.common import (
    WeightDecay,
    add_l2,
    apply_update_,
    bias_correction,
    bucket_indices,
    decay_,
    ema_,
    ema_sq_,
    safe_denominator_,
    stack,
    unstack_,
)

F64 = torch.float64
SHAPES = [(3, 4), (5,), (), (2, 3, 2)]


def randoms(seed: int, dtype=torch.float32, shapes=SHAPES) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=F64).to(dtype) for s in shapes]


def dyadic(seed: int) -> torch.Tensor:
    """Small multiples of 1/8 (some zero): sums and products with beta = 0.75 stay exact in float64."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(-64, 65, (7,), generator=gen).to(F64) / 8


def clones(ts):
    return [t.clone() for t in ts]


def assert_same(a, b) -> None:
    a, b = (list(a), list(b)) if isinstance(a, (list, tuple)) else ([a], [b])
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), (x, y)


def close(a, b, dtype=F64) -> None:
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(a, b, rtol=4 * eps, atol=4 * eps)


# -------------------------------------------------------------------------------------------------- moments
def test_ema_is_the_convex_combination():
    avg, x = dyadic(0), dyadic(1)
    want = 0.75 * avg + 0.25 * x
    ema_(avg, x, 0.75)
    assert_same(avg, want)
    for dtype in (torch.float32, F64):
        avg, x = randoms(2, dtype), randoms(3, dtype)
        want = [0.9 * a + 0.1 * b for a, b in zip(avg, x)]
        for a, b, w in zip(avg, x, want):
            ema_(a, b, 0.9)
            close(a, w, dtype)


def test_ema_sq_is_the_convex_combination_with_the_square():
    avg, x = dyadic(4), dyadic(5)
    want = 0.75 * avg + 0.25 * x * x
    kept = x.clone()
    ema_sq_(avg, x, 0.75)
    assert_same(avg, want)
    assert_same(x, kept)  # x is read only


@pytest.mark.parametrize("helper", [ema_, ema_sq_])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_moment_list_form_equals_tensor_form_bitwise(helper, dtype):
    single, many, x = randoms(6, dtype), randoms(6, dtype), randoms(7, dtype)
    kept = clones(x)
    for a, b in zip(single, x):
        helper(a, b, 0.95)
    helper(many, x, 0.95)
    assert_same(single, many)
    assert_same(x, kept)
    helper([], [], 0.95)  # an empty list is a no-op, not a foreach error


def test_ema_with_a_tensor_beta_decays_each_member_at_its_rate():
    avg, x = torch.stack([dyadic(8), dyadic(9)]), torch.stack([dyadic(10), dyadic(11)])
    beta = torch.tensor([[0.75], [0.5]], dtype=F64)
    want = beta * avg + (1 - beta) * x
    ema_(avg, x, beta)
    assert_same(avg, want)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.999])
def test_bias_correction_unbiases_the_ema_of_a_constant(beta):
    """1 - beta^t is what an EMA started at 0 has of a constant c after t updates: m_t / (1 - beta^t) = c."""
    c = torch.tensor([3.0, -0.5], dtype=F64)
    m = torch.zeros(2, dtype=F64)
    for t in range(1, 30):
        ema_(m, c, beta)
        assert bias_correction(beta, t) == 1 - beta**t
        torch.testing.assert_close(m / bias_correction(beta, t), c, rtol=1e-13, atol=0)
    assert bias_correction(beta, 1) == pytest.approx(1 - beta)


def test_safe_denominator_replaces_zeros_only_when_eps_is_zero():
    den = torch.tensor([0.0, -0.0, 2.0, 1e-300, float("inf")], dtype=F64)
    kept = den.clone()
    safe_denominator_(den, 1e-8)
    assert_same(den, kept)  # eps > 0: untouched
    safe_denominator_(den, 0.0)
    assert_same(den, torch.tensor([1.0, 1.0, 2.0, 1e-300, float("inf")], dtype=F64))
    num = torch.zeros(5, dtype=F64)
    assert torch.equal(num / den, torch.zeros(5, dtype=F64))  # 0/0 := 0
    single = [torch.tensor([0.0, 3.0]), torch.zeros(2, 2)]
    many = clones(single)
    for d in single:
        safe_denominator_(d, 0.0)
    safe_denominator_(many, 0.0)
    assert_same(single, many)
    assert all(bool((d != 0).all()) for d in many)


# --------------------------------------------------------------------------------------------- weight decay
def test_weight_decay_kinds():
    assert {k.value for k in WeightDecay} == {"l2", "decoupled", "direction"}
    assert WeightDecay("l2") is WeightDecay.L2


def test_add_l2_is_x_plus_coeff_w_and_writes_nothing():
    x, w = dyadic(12), dyadic(13)
    kept = (x.clone(), w.clone())
    out = add_l2(x, w, 0.75)
    assert_same(out, x + 0.75 * w)
    assert_same(x, kept[0])
    assert_same(w, kept[1])
    assert add_l2(x, w, 0.0) is x  # no copy when there is nothing to add
    xs, ws = randoms(14), randoms(15)
    assert add_l2(xs, ws, 0.0) is xs
    many = add_l2(xs, ws, 0.3)
    assert_same(many, [add_l2(a, b, 0.3) for a, b in zip(xs, ws)])
    assert all(m is not a for m, a in zip(many, xs))
    assert add_l2([], [], 0.3) == []


def test_decay_multiplies_by_one_minus_the_factor():
    w = dyadic(16)
    want = (1 - 0.25) * w
    decay_(w, 0.25)
    assert_same(w, want)
    single, many = randoms(17, F64), randoms(17, F64)
    for t in single:
        decay_(t, 0.1)
    decay_(many, 0.1)
    assert_same(single, many)
    kept = clones(many)
    decay_(many, 0.0)
    assert_same(many, kept)
    decay_([], 0.1)


# ---------------------------------------------------------------------------------------------- last stage
def test_apply_update_is_decay_then_the_step():
    w, d = dyadic(18), dyadic(19)
    want = (1 - 0.25) * w - 0.5 * d
    kept = d.clone()
    apply_update_(w, d, 0.5, 0.25)
    assert_same(w, want)
    assert_same(d, kept)  # the direction is read only
    w = dyadic(18)
    apply_update_(w, d, 0.5)  # decay defaults to 0
    assert_same(w, dyadic(18) - 0.5 * d)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("decay", [0.0, 0.01])
def test_apply_update_list_form_equals_tensor_form_bitwise(dtype, decay):
    single, many, d = randoms(20, dtype), randoms(20, dtype), randoms(21, dtype)
    for w, di in zip(single, d):
        apply_update_(w, di, 0.1, decay)
    apply_update_(many, d, 0.1, decay)
    assert_same(single, many)
    apply_update_([], [], 0.1, decay)


# ------------------------------------------------------------------------------------------------- buckets
def test_bucket_indices_groups_by_shape_dtype_device_in_first_seen_order():
    ts = [torch.zeros(2, 3), torch.zeros(3), torch.zeros(2, 3, dtype=F64), torch.zeros(2, 3), torch.zeros(3)]
    buckets = bucket_indices(ts)
    assert list(buckets.values()) == [[0, 3], [1, 4], [2]]
    assert list(buckets) == [
        ((2, 3), torch.float32, ts[0].device),
        ((3,), torch.float32, ts[0].device),
        ((2, 3), F64, ts[0].device),
    ]
    by_ndim = bucket_indices(ts, key=lambda i, t: t.dim())
    assert by_ndim == {2: [0, 2, 3], 1: [1, 4]}
    assert bucket_indices([]) == {}


def test_stack_and_unstack_round_trip_through_a_view():
    ts = randoms(22, F64, shapes=[(2, 3, 2), (4,), (2, 3, 2), (2, 6)])
    idx = [0, 2, 3]

    def view(t):  # the "matrix view" of each member
        return t.reshape(2, -1)

    batch = stack(ts, idx, view)
    assert batch.shape == (3, 2, 6)
    for k, i in enumerate(idx):
        assert_same(batch[k], view(ts[i]))
    targets = [torch.zeros_like(t) for t in ts]
    unstack_(targets, idx, batch * 2)
    for i in idx:
        assert_same(targets[i], ts[i] * 2)  # written back in each target's own shape
    assert_same(targets[1], torch.zeros(4, dtype=F64))  # not in the bucket: untouched
    assert_same(stack(ts, [1]), ts[1][None])


# ------------------------------------------------------- lambda_t >= 1 refused once, in the base class
#: every class whose weight decay is multiplicative, with a configuration whose lambda_t is >= 1: (1 - lambda_t) w
#: would zero or flip every weight. The L2 kind (SGD, AdaGrad, RMSProp, Adam: wd * w added to the gradient, as in
#: torch.optim) has lambda_t = 0.
L2_KIND = {adaptim.SGD, adaptim.AdaGrad, adaptim.RMSProp, adaptim.Adam}
DECAYING = [
    ("adamw_lambda_2", adaptim.AdamW, dict(lr=0.5, weight_decay=4.0), {}),
    ("adamw_amsgrad_lambda_1", adaptim.AdamW, dict(lr=1.0, weight_decay=1.0, amsgrad=True, nesterov=True), {}),
    ("adam_atan2_lambda_1", adaptim.AdamAtan2, dict(lr=0.5, weight_decay=2.0), {}),
    ("muon_adamw_side_lambda_2", adaptim.Muon, dict(lr=0.5, weight_decay=4.0), {"use_muon": False}),
    ("muon_lambda_2", adaptim.Muon, dict(lr=0.5, weight_decay=4.0), {}),
    ("adafactor_lambda_2", adaptim.Adafactor, dict(lr=0.5, relative_step=False, weight_decay=4.0), {}),
    ("adam_nmf_lambda_2", adaptim.AdamNMF, dict(lr=0.5, weight_decay=4.0), {}),
    ("shampoo_lambda_2", adaptim.Shampoo, dict(lr=0.5, weight_decay=4.0), {}),
    ("idealized_shampoo_lambda_2", adaptim.IdealizedShampoo, dict(lr=0.5, weight_decay=4.0), {}),
]


def _decaying_params(request, name, cls):
    gen = torch.Generator().manual_seed(0)
    return [
        torch.randn(3, 2, generator=gen, dtype=F64).requires_grad_(True),
        torch.randn(2, 2, generator=gen, dtype=F64).requires_grad_(True),
    ]


def _make(cls, kw, extra, params, **overrides):
    groups = [{"params": params, **extra}] if extra else params
    return cls(groups, **{**kw, **overrides})


def _snapshot(opt, params):
    return [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict())


def _assert_unchanged(opt, params, snap):
    before_params, before = snap
    assert_same([p.detach() for p in params], before_params)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert after["state"].keys() == before["state"].keys()
    for k in before["state"]:
        s1, s2 = before["state"][k], after["state"][k]
        assert s1.keys() == s2.keys()
        for key in s1:
            if isinstance(s1[key], torch.Tensor):
                assert_same(s1[key], s2[key])
            else:
                assert s1[key] == s2[key], key


def _set_grads(params, seed):
    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)


def test_every_multiplicative_decay_is_in_the_refusal_list():
    """Each optimizer class with a ``weight_decay`` argument is either of the L2 kind or listed in DECAYING."""
    with_wd = {
        c
        for c in map(lambda n: getattr(adaptim, n), adaptim.__all__)
        if isinstance(c, type)
        and issubclass(c, adaptim.AdaptimOptimizer)
        and "weight_decay" in inspect.signature(c.__init__).parameters
    }
    assert with_wd - L2_KIND == {cls for _, cls, _, _ in DECAYING}


@pytest.mark.parametrize("name,cls,kw,extra", DECAYING, ids=[d[0] for d in DECAYING])
def test_decay_factor_at_least_one_refused_before_anything_changes(request, name, cls, kw, extra):
    params = _decaying_params(request, name, cls)
    opt = _make(cls, kw, extra, params)
    _set_grads(params, 1)
    assert opt._decay_factor(opt.param_groups[0]) >= 1
    snap = _snapshot(opt, params)
    try:
        opt.step()
    except RuntimeError as err:
        assert "weight decay" in str(err) and "not taken" in str(err)
    else:
        raise AssertionError(f"{name}: a step with lambda_t >= 1 was taken")
    _assert_unchanged(opt, params, snap)  # no parameter, no state (not even a step count)


@pytest.mark.parametrize("name,cls,kw,extra", DECAYING, ids=[d[0] for d in DECAYING])
def test_decay_factor_reaching_one_mid_run_is_refused_with_state_kept(request, name, cls, kw, extra):
    """A run at a small lr, then the lr raised (as a scheduler or the user may) until lambda_t >= 1: that step is
    refused, the state of the earlier steps is kept as it was, and lowering the lr again resumes."""
    params = _decaying_params(request, name, cls)
    small = kw["lr"] / 100
    opt = _make(cls, kw, extra, params, lr=small)
    for t in range(2):
        _set_grads(params, 10 + t)
        opt.step()
    for g in opt.param_groups:
        g["lr"] = kw["lr"]
    _set_grads(params, 20)
    snap = _snapshot(opt, params)
    with pytest.raises(RuntimeError, match="weight decay"):
        opt.step()
    _assert_unchanged(opt, params, snap)
    for g in opt.param_groups:
        g["lr"] = small
    opt.step()
    assert not torch.equal(params[0].detach(), snap[0][0])


def test_every_class_with_weight_decay_states_its_kind():
    """``weight_decay_kind`` is set exactly on the classes that take a ``weight_decay`` argument, and the L2 kind is
    exactly the classes whose decay enters the gradient (as torch.optim's SGD, Adagrad, RMSprop, Adam)."""
    from adaptim.functional.common import WeightDecay

    classes = {
        c
        for c in (getattr(adaptim, n) for n in adaptim.__all__)
        if isinstance(c, type) and issubclass(c, adaptim.AdaptimOptimizer) and c is not adaptim.AdaptimOptimizer
    }
    for c in classes:
        has_wd = "weight_decay" in inspect.signature(c.__init__).parameters
        assert (c.weight_decay_kind is not None) == has_wd, c
    assert {c for c in classes if c.weight_decay_kind is WeightDecay.L2} == L2_KIND
    assert {c for c in classes if c.weight_decay_kind is WeightDecay.DIRECTION} == {
        adaptim.Shampoo,
        adaptim.IdealizedShampoo,
    }
