"""Every elementwise rule's two paths give one answer, bitwise: the literal ``*_single`` loop and the
``torch._foreach_*`` path, called directly and through the optimizers (``foreach=True`` / ``False``), on several
parameters of different shapes with float32 and float64 in one group (case C03's kind). Rules read ``grads``
and never write them.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import adaptim
from adaptim import functional as F

SPECS = [((3, 4), torch.float32), ((5,), torch.float64), ((2, 3, 2), torch.float32), ((), torch.float64)]
STEPS = 6


def tensors(seed: int, scale: float = 1.0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(s, generator=gen, dtype=torch.float64) * scale).to(dt) for s, dt in SPECS]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and torch.equal(x, y)


def copies(ts):
    return [t.clone() for t in ts]


# ----------------------------------------------------------------------------- the functional rules directly
def twice(single, foreach, n_state: int, steps: int = STEPS, **kw):
    """Run ``single`` and ``foreach`` from the same start for ``steps`` steps; return both (params, states)."""
    results = []
    for fn in (single, foreach):
        params = tensors(0)
        states = [[torch.zeros_like(p) for p in params] for _ in range(n_state)]
        for t in range(steps):
            grads = tensors(100 + t, scale=0.1 + t % 3)
            if t == 2:
                grads[1].zero_()  # a zero gradient on one parameter
            kept = copies(grads)
            fn(params, grads, *states, **kw)
            assert_same(grads, kept)  # grads are read only
        results.append((params, states))
    return results


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_sgd_single_equals_foreach(momentum, nesterov, weight_decay):
    kw = dict(lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if momentum == 0:
        single = lambda p, g, **k: F.sgd_single(p, g, None, **k)
        foreach = lambda p, g, **k: F.sgd_foreach(p, g, None, **k)
        (pa, _), (pb, _) = twice(single, foreach, 0, **kw)
    else:
        (pa, sa), (pb, sb) = twice(F.sgd_single, F.sgd_foreach, 1, **kw)
        assert_same(sa[0], sb[0])
    assert_same(pa, pb)


@pytest.mark.parametrize("eps,weight_decay", [(1e-10, 0.0), (1e-3, 0.1)])
def test_adagrad_single_equals_foreach(eps, weight_decay):
    (pa, sa), (pb, sb) = twice(F.adagrad_single, F.adagrad_foreach, 1, lr=0.1, eps=eps, weight_decay=weight_decay)
    assert_same(pa, pb)
    assert_same(sa[0], sb[0])


def test_adagrad_norm_step_foreach_flag():
    out = []
    for foreach in (False, True):
        params, total = tensors(0), 0.0
        for t in range(STEPS):
            grads = tensors(100 + t, scale=0.1 + t % 3)
            kept = copies(grads)
            total = F.adagrad_norm_step(params, grads, total, lr=0.5, eps=1e-10, foreach=foreach)
            assert_same(grads, kept)
        out.append((params, total))
    assert_same(out[0][0], out[1][0])
    assert out[0][1] == out[1][1]


@pytest.mark.parametrize("beta1", [0.0, 0.9])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_rmsprop_single_equals_foreach(beta1, weight_decay):
    kw = dict(lr=0.01, beta1=beta1, beta2=0.95, eps=1e-6, weight_decay=weight_decay)
    if beta1 == 0:
        single = lambda p, g, v, **k: F.rmsprop_single(p, g, None, v, **k)
        foreach = lambda p, g, v, **k: F.rmsprop_foreach(p, g, None, v, **k)
        (pa, sa), (pb, sb) = twice(single, foreach, 1, **kw)
    else:
        (pa, sa), (pb, sb) = twice(F.rmsprop_single, F.rmsprop_foreach, 2, **kw)
    assert_same(pa, pb)
    for x, y in zip(sa, sb):
        assert_same(x, y)


ADAM_FLAGS = list(itertools.product([False, True], repeat=3))


ADAM_RULES = [
    (*flags, *extra) for flags in ADAM_FLAGS for extra in [(0.0, 0.0, None), (0.1, 0.0, None), (0.0, 0.01, None)]
]
ADAM_RULES += [(False, nesterov, False, 0.0, 0.01, (2.0, 0.5)) for nesterov in (False, True)]  # atan2: no eps


@pytest.mark.parametrize("amsgrad,nesterov,inside,l2,decay,atan2", ADAM_RULES)
def test_adam_single_equals_foreach(amsgrad, nesterov, inside, l2, decay, atan2):
    kw = dict(
        lr=0.01,
        beta1=0.9,
        beta2=0.99,
        eps=1e-6,
        l2=l2,
        decay=decay,
        amsgrad=amsgrad,
        nesterov=nesterov,
        eps_inside_sqrt=inside,
        atan2=atan2,
    )
    counts = {}

    def with_steps(fn):
        def step(params, grads, m, v, vmax):
            # a different step count t per parameter, as after parameters joined at different times
            counts[fn] = [c + 1 for c in counts.get(fn, [0, 2, 5, 9])]
            fn(params, grads, m, v, vmax if amsgrad else None, counts[fn], **kw)

        return step

    (pa, sa), (pb, sb) = twice(with_steps(F.adam_single), with_steps(F.adam_foreach), 3)
    assert_same(pa, pb)
    for x, y in zip(sa, sb):
        assert_same(x, y)


# ---------------------------------------------------------------------------- through the optimizer classes
OPTIMIZERS = [
    ("sgd", adaptim.SGD, dict(lr=0.1)),
    ("sgd-momentum", adaptim.SGD, dict(lr=0.1, momentum=0.9)),
    ("sgd-nesterov", adaptim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("sgd-momentum-wd", adaptim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    ("sgd-nesterov-wd", adaptim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("sgd-lookahead-wd", adaptim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, lookahead=True, weight_decay=0.1)),
    ("adagrad", adaptim.AdaGrad, dict(lr=0.1, initial_accumulator_value=0.1, weight_decay=0.1)),
    ("adagrad-norm", adaptim.AdaGradNorm, dict(lr=0.5)),
    ("rmsprop-beta1-0", adaptim.RMSProp, dict(lr=0.01, betas=(0.0, 0.9), weight_decay=0.1)),
    ("rmsprop", adaptim.RMSProp, dict(lr=0.01, betas=(0.9, 0.9), eps=1e-3)),
    *[
        (
            f"adam-{a:d}{n:d}{e:d}",
            adaptim.Adam,
            dict(lr=0.01, weight_decay=0.1, amsgrad=a, nesterov=n, eps_inside_sqrt=e, eps=1e-3),
        )
        for a, n, e in ADAM_FLAGS
    ],
    *[
        (
            f"adamw-{a:d}{n:d}{d:d}{e:d}",
            adaptim.AdamW,
            dict(
                lr=0.01,
                weight_decay=0.1,
                amsgrad=a,
                nesterov=n,
                independent_weight_decay=d,
                eps_inside_sqrt=e,
                eps=1e-3,
            ),
        )
        for a, n, d, e in itertools.product([False, True], repeat=4)
    ],
    ("adam-atan2", adaptim.AdamAtan2, dict(lr=0.01, weight_decay=0.1, a=2.0, b=0.5)),
]


def run_optimizer(cls, kw, foreach: bool):
    params = [p.requires_grad_(True) for p in tensors(0)]
    opt = cls(params, **kw, foreach=foreach)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (1 + k))  # s_t != 1 (AdamW's decay)
    for t in range(STEPS):
        grads = tensors(100 + t, scale=0.1 + t % 3)

        def closure():  # gradient depends on where it is evaluated (the look-ahead point for lookahead=True)
            for p, g in zip(params, grads):  # noqa: B023 (called within this iteration)
                p.grad = g + 0.5 * p.detach()

        opt.step(closure)
        sched.step()
    return params, opt


@pytest.mark.parametrize("name,cls,kw", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_foreach_on_and_off_bitwise(name, cls, kw):
    (pa, oa), (pb, ob) = run_optimizer(cls, kw, False), run_optimizer(cls, kw, True)
    assert_same([p.detach() for p in pa], [p.detach() for p in pb])
    assert not torch.equal(pa[0].detach(), tensors(0)[0])  # the run moved
    for p, q in zip(pa, pb):
        sa, sb = oa.state[p], ob.state[q]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k
    for ga, gb in zip(oa.param_groups, ob.param_groups):
        assert {k: v for k, v in ga.items() if k not in ("params", "foreach")} == {
            k: v for k, v in gb.items() if k not in ("params", "foreach")
        }


def test_decoupled_decay_applied_once_per_parameter_in_both_modes():
    """Case C03: float32 and float64 parameters in one group, zero gradients, decoupled decay 0.1, lr 1."""
    for foreach in (False, True):
        params = [torch.ones((), dtype=dt, requires_grad=True) for dt in (torch.float32, torch.float64)]
        opt = adaptim.AdamW(params, lr=1.0, weight_decay=0.1, independent_weight_decay=True, foreach=foreach)
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
        assert [p.item() for p in params] == [pytest.approx(0.9, abs=1e-7), 0.9]
