"""torch.optim's argument names on adaptim's counterparts: accepted where adaptim computes the same thing,
otherwise refused with a ValueError that says what to write instead; never a TypeError, never silently ignored.

``adaptim.RMSProp(alpha=...)`` raised ``TypeError``: torch's RMSprop calls b2 ``alpha``.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from _assertions import assert_same, assert_same_state

import adaptim

F64 = torch.float64

#: each torch.optim class and its adaptim counterpart
COUNTERPARTS = [
    (torch.optim.SGD, adaptim.SGD),
    (torch.optim.Adagrad, adaptim.AdaGrad),
    (torch.optim.RMSprop, adaptim.RMSProp),
    (torch.optim.Adam, adaptim.Adam),
    (torch.optim.AdamW, adaptim.AdamW),
    (torch.optim.Muon, adaptim.Muon),
    (torch.optim.Adafactor, adaptim.Adafactor),
]


def _param(shape=(4, 3), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=F64).requires_grad_()


def _run(opt, params, steps=20, sched=None, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for t in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=F64) * (0.1 + t % 3)
        opt.step()
        if sched is not None:
            sched.step()
    return [p.detach().clone() for p in params]


def _same_run(make_a, make_b, steps=20):
    """Two optimizers built by ``make_a`` and ``make_b`` take bitwise the same steps and hold the same state."""
    pa, pb = [_param()], [_param()]
    oa, ob = make_a(pa), make_b(pb)
    for a, b in zip(_run(oa, pa, steps), _run(ob, pb, steps)):
        assert_same(a, b)
    assert_same_state(oa.state[pa[0]], ob.state[pb[0]])
    ga, gb = ({k: v for k, v in o.param_groups[0].items() if k != "params"} for o in (oa, ob))
    assert ga == gb


@pytest.mark.parametrize("torch_cls,cls", COUNTERPARTS, ids=[c.__name__ for _, c in COUNTERPARTS])
def test_every_torch_argument_name_is_accepted_or_refused_with_a_value_error(torch_cls, cls):
    """Each keyword of the torch.optim class, at torch's default, builds the adaptim optimizer or raises a
    ValueError naming the argument (Adafactor's eps=(None, 1e-3) means another thing here)."""
    sig = inspect.signature(torch_cls.__init__).parameters
    for name, par in sig.items():
        if name in ("self", "params"):
            continue
        kwargs = {"lr": 0.1} if cls is adaptim.SGD else {}  # adaptim.SGD has no default lr
        kwargs[name] = par.default
        try:
            opt = cls([torch.zeros(3, 2, requires_grad=True)], **kwargs)
        except ValueError as err:
            assert name in str(err), (name, err)
            continue
        assert not any(k in opt.param_groups[0] for k in cls.torch_names), "a torch name left in the group"


# --------------------------------------------------------------------------------------------- RMSprop
def test_rmsprop_alpha_is_beta2():
    """torch's alpha alone means torch's RMSprop: no first moment (betas = (0, alpha)), as torch.optim.RMSprop with
    momentum=0; with betas given too, alpha is their b2."""
    _same_run(lambda p: adaptim.RMSProp(p, lr=0.01, alpha=0.9), lambda p: adaptim.RMSProp(p, lr=0.01, betas=(0.0, 0.9)))
    _same_run(
        lambda p: adaptim.RMSProp(p, lr=0.01, alpha=0.9, betas=(0.5, 0.9)),
        lambda p: adaptim.RMSProp(p, lr=0.01, betas=(0.5, 0.9)),
    )


def test_rmsprop_momentum_zero_is_no_first_moment():
    _same_run(
        lambda p: adaptim.RMSProp(p, lr=0.01, momentum=0.0), lambda p: adaptim.RMSProp(p, lr=0.01, betas=(0.0, 0.999))
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lr=0.01, alpha=0.95, eps=1e-6, momentum=0.0),
        dict(
            lr=0.01,
            alpha=0.9,
            weight_decay=0.1,
            momentum=0,
            centered=False,
            capturable=False,
            differentiable=False,
            maximize=True,
        ),
    ],
)
def test_rmsprop_in_torch_spelling_is_torch_rmsprop(kwargs):
    pa, pb = [_param()], [_param()]
    for a, b in zip(_run(adaptim.RMSProp(pa, **kwargs), pa), _run(torch.optim.RMSprop(pb, **kwargs), pb)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_rmsprop_torch_names_in_a_param_group():
    p, q = _param(), _param((3,))
    opt = adaptim.RMSProp([{"params": [p], "alpha": 0.5, "momentum": 0}, {"params": [q]}], betas=(0.8, 0.9))
    assert opt.param_groups[0]["betas"] == (0.0, 0.5) and "alpha" not in opt.param_groups[0]
    assert "momentum" not in opt.param_groups[0] and opt.param_groups[1]["betas"] == (0.8, 0.9)
    with pytest.raises(ValueError, match="alpha=0.5 .*betas=\\(0.8, 0.9\\)"):
        opt.add_param_group({"params": [_param((2,))], "alpha": 0.5, "betas": (0.8, 0.9)})
    assert len(opt.param_groups) == 2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(alpha=0.9, betas=(0.9, 0.5)), r"alpha=0.9 \(torch.optim's spelling\) and betas=\(0.9, 0.5\) .*pass one"),
        (dict(momentum=0.0, betas=(0.9, 0.5)), r"momentum=0.0 .*betas=\(0.9, 0.5\)"),
        (dict(momentum=0.9), r"momentum=0.9: .*heavy ball .*write betas=\(b1, alpha\)"),
        (dict(centered=True), r"centered=True: .*no centered variant.*drop centered=True"),
        (dict(capturable=True), r"capturable=True: .*drop capturable=True"),
        (dict(differentiable=True), r"differentiable=True: .*drop differentiable=True"),
        (dict(alpha=1.5), r"betas\[1\] must lie in \[0.0, 1.0\)"),
    ],
)
def test_rmsprop_refusals_say_what_to_write(kwargs, match):
    with pytest.raises(ValueError, match=match):
        adaptim.RMSProp([_param()], **kwargs)


# ----------------------------------------------------------------------------------------- SGD, Adagrad
def test_sgd_torch_switches_at_their_defaults():
    _same_run(
        lambda p: adaptim.SGD(p, lr=0.1, momentum=0.9, dampening=0, differentiable=False, fused=None),
        lambda p: adaptim.SGD(p, lr=0.1, momentum=0.9),
    )


def test_adagrad_torch_switches_at_their_defaults():
    _same_run(
        lambda p: adaptim.AdaGrad(p, lr=0.1, lr_decay=0, differentiable=False, fused=None),
        lambda p: adaptim.AdaGrad(p, lr=0.1),
    )


def test_adagrad_lr_decay_advice_gives_torchs_steps():
    """The refusal of lr_decay proposes LambdaLR(opt, lambda k: 1 / (1 + k lr_decay)): it is torch's rule."""
    with pytest.raises(ValueError, match=r"lr_decay=0.05: .*LambdaLR\(opt, lambda k: 1 / \(1 \+ k \* 0.05\)\)"):
        adaptim.AdaGrad([_param()], lr_decay=0.05)
    pa, pb = [_param()], [_param()]
    ours = adaptim.AdaGrad(pa, lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(ours, lambda k: 1 / (1 + k * 0.05))
    for a, b in zip(_run(ours, pa, sched=sched), _run(torch.optim.Adagrad(pb, lr=0.1, lr_decay=0.05), pb)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: adaptim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1), r"dampening=0.1: .*drop dampening"),
        (lambda p: adaptim.SGD(p, lr=0.1, differentiable=True), r"differentiable=True: .*drop differentiable=True"),
        (lambda p: adaptim.AdaGrad(p, differentiable=True), r"differentiable=True"),
        (lambda p: adaptim.SGD([{"params": p, "dampening": 0.5}], lr=0.1), r"dampening=0.5"),
    ],
)
def test_sgd_adagrad_refusals_say_what_to_write(make, match):
    with pytest.raises(ValueError, match=match):
        make([_param()])


# ----------------------------------------------------------------------------------------- Adam, AdamW
@pytest.mark.parametrize("cls", [adaptim.Adam, adaptim.AdamW])
def test_adam_torch_switches_at_their_defaults(cls):
    _same_run(lambda p: cls(p, lr=0.01, capturable=False, differentiable=False, fused=None), lambda p: cls(p, lr=0.01))
    _same_run(lambda p: cls([{"params": p, "fused": None}], lr=0.01), lambda p: cls(p, lr=0.01))


@pytest.mark.parametrize("cls", [adaptim.Adam, adaptim.AdamW])
@pytest.mark.parametrize(
    "name,match",
    [
        ("capturable", r"capturable=True: adaptim.Adam\w* keeps its step counts on the CPU.*drop capturable=True"),
        ("differentiable", r"differentiable=True: .*torch.no_grad\(\).*drop differentiable=True"),
    ],
)
def test_adam_refusals_say_what_to_write(cls, name, match):
    with pytest.raises(ValueError, match=match):
        cls([_param()], **{name: True})
    opt = cls([_param()])
    with pytest.raises(ValueError, match=match):
        opt.add_param_group({"params": [_param((2,))], name: True})
    assert len(opt.param_groups) == 1


# ------------------------------------------------------------------------------------------------ Muon
@pytest.mark.parametrize(
    "fn,adjust", [(None, "original"), ("original", "original"), ("match_rms_adamw", "match_rms_adamw")]
)
def test_muon_adjust_lr_fn_has_torchs_meaning(fn, adjust):
    _same_run(lambda p: adaptim.Muon(p, adjust_lr_fn=fn), lambda p: adaptim.Muon(p, adjust_lr=adjust), steps=5)
    opt = adaptim.Muon([{"params": [_param()], "adjust_lr_fn": fn}])
    assert opt.param_groups[0]["adjust_lr"] == adjust and "adjust_lr_fn" not in opt.param_groups[0]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(adjust_lr_fn="sqrt"), r"adjust_lr_fn must be None, 'original' or 'match_rms_adamw'"),
        (dict(adjust_lr_fn=None, adjust_lr=None), r"adjust_lr_fn=None .*adjust_lr=None .*adjust_lr='original'"),
        (dict(adjust_lr_fn="original", adjust_lr="match_rms_adamw"), r"pass one of them"),
    ],
)
def test_muon_refusals_say_what_to_write(kwargs, match):
    with pytest.raises(ValueError, match=match):
        adaptim.Muon([_param()], **kwargs)


# ------------------------------------------------------------------------------------------- Adafactor
def test_adafactor_beta2_decay_and_d_are_decay_rate_and_clip_threshold():
    _same_run(
        lambda p: adaptim.Adafactor(p, beta2_decay=-0.5, d=0.5),
        lambda p: adaptim.Adafactor(p, decay_rate=-0.5, clip_threshold=0.5),
    )
    opt = adaptim.Adafactor([{"params": [_param()], "beta2_decay": -0.6, "d": 2.0}])
    assert opt.param_groups[0]["decay_rate"] == -0.6 and opt.param_groups[0]["clip_threshold"] == 2.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(beta2_decay=-0.5, decay_rate=-0.6), r"beta2_decay=-0.5 .*decay_rate=-0.6"),
        (dict(d=2.0, clip_threshold=0.5), r"d=2.0 .*clip_threshold=0.5"),
        (dict(eps=(None, 1e-3)), r"eps\[0\]=None .*torch.optim.Adafactor.*eps=\(1e-30, 1e-3\)"),
        (dict(d=0.0), r"clip_threshold must lie in \(0.0, inf\]"),
    ],
)
def test_adafactor_refusals_say_what_to_write(kwargs, match):
    with pytest.raises(ValueError, match=match):
        adaptim.Adafactor([_param()], **kwargs)


def test_constructor_keywords_still_refuse_unknown_names():
    with pytest.raises(TypeError):
        adaptim.RMSProp([_param()], alpah=0.9)
