"""The seam in the elementwise rules: each computes a direction d_t and hands it to a last stage.

For SGD, AdaGrad, RMSProp and Adam: the direction's literal loop (``*_direction_single``) and foreach path
(``*_direction_foreach``) agree bitwise and read ``params`` and ``grads`` only; the whole step (``*_single``,
``*_foreach``) is that direction followed by ``apply_update_``, bitwise; a ``step_fn`` given to the whole step
receives exactly those directions (per tensor in the loop, once on the lists in the foreach path) and is the only
thing that writes the parameters. The look-ahead point (28), AdaGrad-Norm's step size (33) and full-matrix
AdaGrad's direction are checked against their definitions.
"""

from __future__ import annotations

import math

import pytest
import torch

from adaptim import functional as F
from adaptim.functional.common import apply_update_

F64 = torch.float64
SPECS = [((3, 4), torch.float32), ((5,), F64), ((2, 3, 2), torch.float32), ((), F64)]
STEPS = 5


def tensors(seed: int, scale: float = 1.0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(s, generator=gen, dtype=F64) * scale).to(dt) for s, dt in SPECS]


def clones(ts):
    return [t.clone() for t in ts]


def assert_same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), (x, y)


class Rule:
    """One elementwise rule: its direction functions, whole-step functions, state and keywords."""

    def __init__(
        self,
        name,
        direction_single,
        direction_foreach,
        step_single,
        step_foreach,
        n_state,
        kw,
        *,
        none_state=(),
        counts=False,
        lr_kw=("lr",),
        decay=0.0,
    ):
        self.name, self.kw, self.n_state, self.counts, self.decay = name, kw, n_state, counts, decay
        self.none_state = none_state  # positions of state lists passed as None (e.g. no first moment)
        self.direction = {False: direction_single, True: direction_foreach}
        self.step = {False: step_single, True: step_foreach}

    def fresh(self):
        params = tensors(0)
        states = [None if i in self.none_state else [torch.zeros_like(p) for p in params] for i in range(self.n_state)]
        return params, states

    def args(self, states, t):
        extra = [[t + 1 + k for k in range(len(SPECS))]] if self.counts else []  # t differs per parameter
        return [*states, *extra]

    def __repr__(self):
        return self.name


ADAM_KW = dict(beta1=0.9, beta2=0.99, eps=1e-6)
RULES = [
    Rule(
        "sgd",
        F.sgd_direction_single,
        F.sgd_direction_foreach,
        F.sgd_single,
        F.sgd_foreach,
        1,
        dict(momentum=0.0, nesterov=False, weight_decay=0.0),
        none_state=(0,),
    ),
    Rule(
        "sgd_l2",
        F.sgd_direction_single,
        F.sgd_direction_foreach,
        F.sgd_single,
        F.sgd_foreach,
        1,
        dict(momentum=0.0, nesterov=False, weight_decay=0.1),
        none_state=(0,),
    ),
    Rule(
        "sgd_heavy_ball",
        F.sgd_direction_single,
        F.sgd_direction_foreach,
        F.sgd_single,
        F.sgd_foreach,
        1,
        dict(momentum=0.9, nesterov=False, weight_decay=0.1),
    ),
    Rule(
        "sgd_nesterov",
        F.sgd_direction_single,
        F.sgd_direction_foreach,
        F.sgd_single,
        F.sgd_foreach,
        1,
        dict(momentum=0.9, nesterov=True, weight_decay=0.1),
    ),
    Rule(
        "adagrad",
        F.adagrad_direction_single,
        F.adagrad_direction_foreach,
        F.adagrad_single,
        F.adagrad_foreach,
        1,
        dict(eps=1e-10, weight_decay=0.0),
    ),
    Rule(
        "adagrad_l2",
        F.adagrad_direction_single,
        F.adagrad_direction_foreach,
        F.adagrad_single,
        F.adagrad_foreach,
        1,
        dict(eps=1e-3, weight_decay=0.1),
    ),
    Rule(
        "adagrad_eps0",
        F.adagrad_direction_single,
        F.adagrad_direction_foreach,
        F.adagrad_single,
        F.adagrad_foreach,
        1,
        dict(eps=0.0, weight_decay=0.0),
    ),
    Rule(
        "rmsprop",
        F.rmsprop_direction_single,
        F.rmsprop_direction_foreach,
        F.rmsprop_single,
        F.rmsprop_foreach,
        2,
        dict(beta1=0.9, beta2=0.95, eps=1e-6, weight_decay=0.0),
    ),
    Rule(
        "rmsprop_l2_eps0",
        F.rmsprop_direction_single,
        F.rmsprop_direction_foreach,
        F.rmsprop_single,
        F.rmsprop_foreach,
        2,
        dict(beta1=0.9, beta2=0.95, eps=0.0, weight_decay=0.1),
    ),
    Rule(
        "rmsprop_beta1_0_eps0",
        F.rmsprop_direction_single,
        F.rmsprop_direction_foreach,
        F.rmsprop_single,
        F.rmsprop_foreach,
        2,
        dict(beta1=0.0, beta2=0.95, eps=0.0, weight_decay=0.0),
        none_state=(0,),
    ),
    Rule(
        "adam",
        F.adam_direction_single,
        F.adam_direction_foreach,
        F.adam_single,
        F.adam_foreach,
        3,
        dict(ADAM_KW),
        none_state=(2,),
        counts=True,
    ),
    Rule(
        "adam_l2_amsgrad_nesterov_inside",
        F.adam_direction_single,
        F.adam_direction_foreach,
        F.adam_single,
        F.adam_foreach,
        3,
        dict(ADAM_KW, l2=0.1, amsgrad=True, nesterov=True, eps_inside_sqrt=True),
        counts=True,
        decay=0.01,
    ),
    Rule(
        "adam_eps0",
        F.adam_direction_single,
        F.adam_direction_foreach,
        F.adam_single,
        F.adam_foreach,
        3,
        dict(ADAM_KW, eps=0.0),
        none_state=(2,),
        counts=True,
        decay=0.01,
    ),
    Rule(
        "adam_atan2",
        F.adam_direction_single,
        F.adam_direction_foreach,
        F.adam_single,
        F.adam_foreach,
        3,
        dict(ADAM_KW, nesterov=True, atan2=(2.0, 0.5)),
        none_state=(2,),
        counts=True,
        decay=0.01,
    ),
]


def grads_at(t):
    grads = tensors(100 + t, scale=0.1 + t % 3)
    if t < 2:
        grads[1].zero_()  # zero gradients from the start (with eps = 0: the 0/0 := 0 guard)
    return grads


def step_kw(rule):
    return dict(rule.kw, lr=0.05, **({"decay": rule.decay} if rule.counts else {}))


@pytest.mark.parametrize("rule", RULES, ids=repr)
def test_direction_loop_equals_foreach_and_reads_params_and_grads_only(rule):
    out = {}
    for foreach in (False, True):
        params, states = rule.fresh()
        dirs = []
        for t in range(STEPS):
            grads = grads_at(t)
            kept = (clones(params), clones(grads))
            d = rule.direction[foreach](params, grads, *rule.args(states, t), **rule.kw)
            assert_same(params, kept[0])  # a direction never moves the parameters
            assert_same(grads, kept[1])
            assert [x.shape for x in d] == [p.shape for p in params]
            assert [x.dtype for x in d] == [p.dtype for p in params]
            assert all(bool(x.isfinite().all()) for x in d)  # eps = 0 too: 0/0 := 0, no NaN
            dirs.append(clones(d))
            apply_update_(params, d, 0.05)
        out[foreach] = (params, states, dirs)
    (pa, sa, da), (pb, sb, db) = out[False], out[True]
    assert_same(pa, pb)
    for x, y in zip(sa, sb):
        if x is not None:
            assert_same(x, y)
    for x, y in zip(da, db):
        assert_same(x, y)
    assert (
        rule.direction[True](
            [], [], *[[] if s is not None else None for s in sa], *([[]] if rule.counts else []), **rule.kw
        )
        == []
    )


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("rule", RULES, ids=repr)
def test_whole_step_is_the_direction_then_apply_update(rule, foreach):
    (pa, sa), (pb, sb) = rule.fresh(), rule.fresh()
    for t in range(STEPS):
        grads = grads_at(t)
        rule.step[foreach](pa, grads, *rule.args(sa, t), **step_kw(rule))
        d = rule.direction[foreach](pb, grads, *rule.args(sb, t), **rule.kw)
        for w, x in zip(pb, d):
            apply_update_(w, x, 0.05, rule.decay)
    assert_same(pa, pb)
    for x, y in zip(sa, sb):
        if x is not None:
            assert_same(x, y)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("rule", RULES, ids=repr)
def test_step_fn_receives_the_directions_and_is_the_only_writer(rule, foreach):
    calls = []

    def record(w, d, lr, decay):  # a last stage that moves nothing
        calls.append((w, d.clone() if isinstance(d, torch.Tensor) else clones(d), lr, decay))

    params, states = rule.fresh()
    ref_params, ref_states = rule.fresh()
    kept = clones(params)
    grads = grads_at(0)
    rule.step[foreach](params, grads, *rule.args(states, 0), **step_kw(rule), step_fn=record)
    want = rule.direction[foreach](ref_params, grads, *rule.args(ref_states, 0), **rule.kw)
    assert_same(params, kept)
    if foreach:  # once, on the lists
        assert len(calls) == 1
        ((w, d, lr, decay),) = calls
        assert len(w) == len(params) and all(a is b for a, b in zip(w, params))
        assert (lr, decay) == (0.05, rule.decay)
        assert_same(d, want)
    else:  # once per parameter, in order
        assert len(calls) == len(params) and all(c[0] is p for c, p in zip(calls, params))
        assert_same([c[1] for c in calls], want)
        assert {(c[2], c[3]) for c in calls} == {(0.05, rule.decay)}


# ------------------------------------------------------------------------------------- definitions
@pytest.mark.parametrize("foreach", [False, True])
def test_lookahead_point_is_28(foreach):
    """x_t = w_t - eta_t mu v_{t-1}, exactly on dyadic numbers; the inputs are read only."""
    w = [torch.tensor([1.5, -2.0, 0.25], dtype=F64), torch.tensor([[4.0]], dtype=F64)]
    v = [torch.tensor([2.0, 0.5, -1.0], dtype=F64), torch.tensor([[-8.0]], dtype=F64)]
    kept = (clones(w), clones(v))
    x = F.lookahead_point(w, v, lr=0.5, momentum=0.75, foreach=foreach)
    assert_same(x, [torch.tensor([0.75, -2.1875, 0.625], dtype=F64), torch.tensor([[7.0]], dtype=F64)])
    assert_same(w, kept[0])
    assert_same(v, kept[1])
    params, bufs = tensors(1), tensors(2)
    assert_same(
        F.lookahead_point(params, bufs, lr=0.1, momentum=0.9, foreach=foreach),
        [p - b * (0.1 * 0.9) for p, b in zip(params, bufs)],
    )
    assert F.lookahead_point([], [], lr=0.1, momentum=0.9, foreach=foreach) == []


def test_adagrad_norm_step_size_is_33():
    grads = [torch.tensor([3.0, 0.0]), torch.tensor([[4.0]], dtype=F64)]
    eta, total = F.adagrad_norm_step_size(grads, 11.0, lr=2.0, eps=1e-3)
    assert total == 36.0 and eta == 2.0 / (6.0 + 1e-3)
    zeros = [torch.zeros(2), torch.zeros(1, 1)]
    assert F.adagrad_norm_step_size(zeros, 0.0, lr=2.0, eps=0.0) == (0.0, 0.0)  # nothing to move, even at eps 0
    params = tensors(3)
    kept = clones(params)
    assert F.adagrad_norm_step(params, zeros, 0.0, lr=2.0, eps=0.0) == 0.0
    assert_same(params, kept)


def test_full_matrix_adagrad_direction_is_the_inverse_root_times_g():
    gen = torch.Generator().manual_seed(4)
    g = torch.randn(2, 3, generator=gen, dtype=F64)
    o = torch.randn(6, 6, generator=gen, dtype=F64)
    o = o @ o.T
    o_kept = o.clone()
    state = o.clone().reshape(2, 3, 2, 3)
    (d,) = F.full_matrix_adagrad_direction([g], [state], eps=1e-6)
    o_t = o_kept + torch.outer(g.reshape(-1), g.reshape(-1))
    torch.testing.assert_close(state.reshape(6, 6), o_t, rtol=0, atol=0)  # O_t = O_{t-1} + g g^T, in place
    evals, evecs = torch.linalg.eigh(o_t)
    want = (evecs @ torch.diag((evals.clamp(min=0) + 1e-6) ** -0.5) @ evecs.T) @ g.reshape(-1)
    torch.testing.assert_close(d, want.reshape(2, 3), rtol=1e-10, atol=0)
    assert d.dtype == g.dtype and d.shape == g.shape
    # the first step from O_0 = 0 in float32: (g g^T + eps I)^{-1/2} g = g / sqrt(||g||^2 + eps), g an eigenvector
    g32 = g.float()
    (d32,) = F.full_matrix_adagrad_direction([g32], [torch.zeros(6, 6, dtype=F64)], eps=1e-8)
    assert d32.dtype == torch.float32
    g64 = g32.double()
    torch.testing.assert_close(d32.double(), g64 / math.sqrt(float(g64.square().sum()) + 1e-8), rtol=1e-6, atol=0)
