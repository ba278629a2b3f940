"""The matrix families (Muon, Steepest, Shampoo, IdealizedShampoo, Adafactor, AdamNMF) on the shared layer.

* weight decay: each class reports its lambda_t, so the base class refuses lambda_t >= 1 before anything changes;
* the seam: every class ends its step in ``_final_step``; a subclass replacing only that stage (here a retraction
  onto the unit sphere) keeps the rule before it, and each functional rule takes the last stage as ``step``;
* Muon in stages (momentum -> orthogonalize -> step), Shampoo's preconditioner object (a view over the state dict
  with the old keys), and the helpers moved to ``adaptim.linalg``.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from _assertions import assert_same, assert_same_state

import adaptim
from adaptim import functional as F
from adaptim.functional.common import apply_update_
from adaptim.functional.shampoo import (
    ShampooPreconditioner,
    block_slices,
    init_shampoo_state,
    kron_views,
    symmetric_from,
)
from adaptim.linalg import as_matrix, check_ns_bounded, matrix_view_shape, newton_schulz

F64 = torch.float64


def randn(*shape, seed: int, dtype=F64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64).to(dtype)


def set_grads(params, seed: int) -> None:
    for i, p in enumerate(params):
        p.grad = randn(*p.shape, seed=seed + i, dtype=p.dtype)


# ------------------------------------------------------------------------------------------- weight decay
#: (id, constructor, shape, whether weight decay acts through lambda_t = lr * wd): each with lr * wd = 2
REFUSED = [
    ("muon", lambda ps: adaptim.Muon(ps, lr=0.5, weight_decay=4.0), (4, 3)),
    ("muon_adamw_side", lambda ps: adaptim.Muon([{"params": ps, "use_muon": False}], lr=0.5, weight_decay=4.0), (3,)),
    ("adafactor", lambda ps: adaptim.Adafactor(ps, lr=0.5, relative_step=False, weight_decay=4.0), (4, 3)),
    ("adafactor_relative_step", lambda ps: adaptim.Adafactor(ps, weight_decay=200.0), (4, 3)),  # rho_1 = 1e-2
    ("adam_nmf", lambda ps: adaptim.AdamNMF(ps, lr=0.5, weight_decay=4.0), (4, 3)),
    ("shampoo", lambda ps: adaptim.Shampoo(ps, lr=0.5, weight_decay=4.0), (4, 3)),
    ("idealized_shampoo", lambda ps: adaptim.IdealizedShampoo(ps, lr=0.5, weight_decay=4.0), (4, 3)),
]


@pytest.mark.parametrize("make,shape", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_decay_factor_of_one_or_more_is_refused_and_changes_nothing(make, shape):
    """lambda_t = 2 would map every weight w to about -w; the step raises before any group, state or weight
    changes, also in an earlier group that could be stepped on its own."""
    fine = torch.ones(shape, requires_grad=True)
    bad = torch.ones(shape, requires_grad=True)
    opt = make([fine])
    decayed = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    opt.add_param_group({**decayed, "params": [bad]})
    opt.param_groups[0]["weight_decay"] = 0.0  # the first group alone would step
    before = copy.deepcopy([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])
    set_grads([fine, bad], seed=1)
    with pytest.raises(RuntimeError, match="lambda_t = 2 .* >= 1"):
        opt.step()
    assert torch.equal(fine.detach(), torch.ones(shape)) and torch.equal(bad.detach(), torch.ones(shape))
    assert len(opt.state) == 0
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == before
    # a quarter of that decay is a legal step: lambda_t = 1/2
    opt.param_groups[1]["weight_decay"] = decayed["weight_decay"] / 4
    opt.step()
    assert not torch.equal(bad.detach(), torch.ones(shape))


def test_adafactor_relative_step_decay_factor_follows_each_parameters_step_count():
    """With the relative step rho_t = min(1e-2, 1/sqrt(t)), lambda_t = rho_t * wd shrinks with t: wd = 200 is
    refused at t = 1 (lambda = 2) and taken at t = 10^6 (lambda = 0.2); the bound is the group's largest."""
    old, new = torch.ones(4, 3, requires_grad=True), torch.ones(4, 3, requires_grad=True)
    opt = adaptim.Adafactor([old, new])
    set_grads([old], seed=2)
    opt.step()  # only `old` has a gradient: it gets state, `new` none
    opt.state[old]["step"].fill_(1e6 - 1)
    opt.param_groups[0]["weight_decay"] = 200.0
    assert opt._decay_factor(opt.param_groups[0]) == pytest.approx(0.2, rel=1e-12)
    w = old.detach().clone()
    set_grads([old], seed=3)
    opt.step()
    assert not torch.equal(old.detach(), w)
    set_grads([old, new], seed=4)  # `new` would take its first step, with rho_1 = 1e-2
    assert opt._decay_factor(opt.param_groups[0]) == pytest.approx(2.0, rel=1e-12)
    with pytest.raises(RuntimeError, match="lambda_t"):
        opt.step()


# ------------------------------------------------------------------------------------------------ the seam
#: the matrix families, each with weight decay where it has one: (class, arguments, parameter shapes)
MATRIX_CASES = {
    "muon": (adaptim.Muon, dict(lr=0.02, weight_decay=0.1), [(4, 3), (3, 4), (4, 3), (2, 2, 3)]),
    "muon_svd_single": (adaptim.Muon, dict(lr=0.02, orthogonalize="svd", foreach=False), [(4, 3), (5, 2)]),
    "steepest": (adaptim.Steepest, dict(lr=0.1, momentum=0.5), [(4, 3), (3,), (4, 3)]),
    "steepest_inf_single": (
        adaptim.Steepest,
        dict(lr=0.1, norm="inf", rule="majorization", foreach=False),
        [(4, 3), (3,)],
    ),
    "shampoo": (
        adaptim.Shampoo,
        dict(lr=0.1, beta2=0.9, momentum=0.5, weight_decay=0.1, grafting="adam", max_preconditioner_dim=3),
        [(4, 3), (5,), (2,), ()],
    ),
    "idealized_shampoo": (adaptim.IdealizedShampoo, dict(lr=0.1, weight_decay=0.1), [(4, 3), (3,)]),
    "adafactor": (adaptim.Adafactor, dict(beta1=0.9, weight_decay=0.1), [(4, 3), (4, 3), (3,), (2, 3, 2)]),
    "adafactor_single": (
        adaptim.Adafactor,
        dict(lr=0.01, relative_step=False, weight_decay=0.1, foreach=False),
        [(4, 3), (3,)],
    ),
    "adam_nmf": (adaptim.AdamNMF, dict(lr=0.01, beta1=0.9, weight_decay=0.1), [(4, 3), (4, 3), (3,)]),
    "adam_nmf_single": (adaptim.AdamNMF, dict(lr=0.01, rank=2, weight_decay=0.1, foreach=False), [(4, 3), (3,)]),
}


def _on_sphere(cls):
    """``cls`` whose last stage is a step followed by a retraction onto the unit sphere ||W||_F = 1, the kind of
    optimizer the seam exists for; it records what reaches the last stage."""

    class OnSphere(cls):
        def _final_step(self, group, params, directions, lr, decay=0.0):
            self.calls = getattr(self, "calls", []) + [(lr, decay, [tuple(d.shape) for d in directions])]
            for w, d in zip(params, directions):
                w.add_(d, alpha=-lr)
                w.div_(torch.linalg.vector_norm(w))

    return OnSphere


def _params(shapes, seed):
    return [randn(*s, seed=seed + i).requires_grad_() for i, s in enumerate(shapes)]


@pytest.mark.parametrize("name", list(MATRIX_CASES))
def test_every_step_ends_in_final_step_and_replacing_it_keeps_the_rule(name):
    cls, kwargs, shapes = MATRIX_CASES[name]
    qs = _params(shapes, seed=10)
    sphere = _on_sphere(cls)(qs, **kwargs)
    for t in range(3):
        set_grads(qs, seed=100 * t)
        sphere.step()
        for q in qs:  # the replaced last stage ran on every parameter
            torch.testing.assert_close(
                torch.linalg.vector_norm(q.detach()), torch.tensor(1.0, dtype=F64), rtol=1e-12, atol=0
            )
    assert len(sphere.calls) >= 3
    assert sorted(s for call in sphere.calls for s in call[2]) == sorted(tuple(s) for s in shapes * 3)
    # the stages before it are the class's own: from equal weights both keep the same statistics
    ps, qs = _params(shapes, seed=10), _params(shapes, seed=10)
    base, sphere = cls(ps, **kwargs), _on_sphere(cls)(qs, **kwargs)
    set_grads(ps, seed=7)
    set_grads(qs, seed=7)
    base.step()
    sphere.step()
    for p, q in zip(ps, qs):
        assert_same_state(base.state[p], sphere.state[q])


def test_last_stage_receives_the_documented_lr_and_decay():
    """Muon and AdamNMF decay by lr * wd in the last stage; Shampoo and IdealizedShampoo add wd * w to the
    direction and pass no decay; Adafactor passes rho_t and rho_t * wd; Steepest has no decay."""
    expected = {
        "muon": (0.02, 0.02 * 0.1),
        "adam_nmf": (0.01, 0.01 * 0.1),
        "shampoo": (0.1, 0.0),
        "idealized_shampoo": (0.1, 0.0),
        "adafactor": (1e-2, 1e-2 * 0.1),
        "steepest": (0.1, 0.0),
    }
    for name, (lr, decay) in expected.items():
        cls, kwargs, shapes = MATRIX_CASES[name]
        ps = _params(shapes, seed=20)
        opt = _on_sphere(cls)(ps, **kwargs)
        set_grads(ps, seed=21)
        opt.step()
        assert [(c[0], c[1]) for c in opt.calls] == [(lr, decay)], name


# ------------------------------------------------------------------------- functional rules take a step
def _functional_cases():
    """(name, single, batched, make arguments, lr, decay): each rule's two paths and how to call them."""

    def muon_args(ps, seed):
        return (
            ps,
            [randn(*p.shape, seed=seed + i) for i, p in enumerate(ps)],
            [torch.zeros_like(p) for p in ps],
        ), dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.1)

    def steepest_args(ps, seed):
        return (
            ps,
            [randn(*p.shape, seed=seed + i) for i, p in enumerate(ps)],
            [torch.zeros_like(p) for p in ps],
        ), dict(lr=0.1, norm="spectral", rule="majorization", momentum=0.5)

    def shampoo_args(ps, seed):
        states = [{**init_shampoo_state(p, 3), "momentum_buffer": torch.zeros_like(p)} for p in ps]
        return (ps, [randn(*p.shape, seed=seed + i) for i, p in enumerate(ps)], states, [1] * len(ps)), dict(
            lr=0.1, beta2=0.9, eps=1e-6, momentum=0.5, weight_decay=0.1, max_preconditioner_dim=3
        )

    def idealized_args(ps, seed):
        states = [init_shampoo_state(p, 3, matrix_view=True, cache_roots=False) for p in ps]
        return (ps, [randn(*p.shape, seed=seed + i) for i, p in enumerate(ps)], states, [1] * len(ps)), dict(
            lr=0.1, beta2=0.9, eps=1e-6, weight_decay=0.1, max_preconditioner_dim=3
        )

    def adafactor_args(ps, seed):
        rows = [torch.zeros(p.shape[:-1], dtype=F64) if p.dim() >= 2 else None for p in ps]
        cols = [torch.zeros(p.shape[:-2] + p.shape[-1:], dtype=F64) if p.dim() >= 2 else None for p in ps]
        sqs = [None if p.dim() >= 2 else torch.zeros_like(p) for p in ps]
        return (
            ps,
            [randn(*p.shape, seed=seed + i) for i, p in enumerate(ps)],
            [torch.zeros_like(p) for p in ps],
            rows,
            cols,
            sqs,
            [1] * len(ps),
        ), dict(
            lr=0.01,
            beta1=0.9,
            beta2=0.999,
            decay_rate=-0.8,
            eps1=1e-30,
            eps2=1e-3,
            clip_threshold=1.0,
            relative_step=False,
            scale_parameter=True,
            warmup_init=False,
            weight_decay=0.1,
        )

    def adam_nmf_args(ps, seed):
        a = [torch.full((*p.shape[:-1], 2), 1e-3, dtype=F64) if p.dim() >= 2 else None for p in ps]
        b = [torch.full((*p.shape[:-2], 2, p.shape[-1]), 1e-3, dtype=F64) if p.dim() >= 2 else None for p in ps]
        return (
            ps,
            [randn(*p.shape, seed=seed + i) for i, p in enumerate(ps)],
            a,
            b,
            [torch.zeros_like(p) for p in ps],
            [1] * len(ps),
        ), dict(lr=0.01, beta1=0.9, eps=1e-8, weight_decay=0.1)

    return [
        ("muon", F.muon_single, F.muon_batched, muon_args, 0.02, 0.002, [(4, 3), (4, 3), (2, 6)]),
        ("steepest", F.steepest_single, F.steepest_batched, steepest_args, 0.1, 0.0, [(4, 3), (4, 3), (3,)]),
        ("shampoo", F.shampoo_single, F.shampoo_batched, shampoo_args, 0.1, 0.0, [(4, 3), (4, 3), (5,)]),
        (
            "idealized",
            F.idealized_shampoo_single,
            F.idealized_shampoo_batched,
            idealized_args,
            0.1,
            0.0,
            [(4, 3), (4, 3), (5,)],
        ),
        ("adafactor", F.adafactor_single, F.adafactor_batched, adafactor_args, 0.01, 0.001, [(4, 3), (4, 3), (3,)]),
        ("adam_nmf", F.adam_nmf_single, F.adam_nmf_batched, adam_nmf_args, 0.01, 0.001, [(4, 3), (4, 3), (3,)]),
    ]


@pytest.mark.parametrize(
    "name,single,batched,args,lr,decay,shapes", _functional_cases(), ids=[c[0] for c in _functional_cases()]
)
def test_functional_rules_end_in_the_given_step(name, single, batched, args, lr, decay, shapes):
    """``step`` receives (params, directions, lr, decay) once; the default step is apply_update_ with them; the
    literal loop and the batched path give the same directions to rounding."""
    got = {}
    for path, fn in (("single", single), ("batched", batched)):
        ps = [randn(*s, seed=30 + i) for i, s in enumerate(shapes)]
        calls = []
        pos, kw = args(ps, seed=40)
        fn(
            *pos,
            **kw,
            step=lambda params, dirs, lr_, decay_: calls.append(  # noqa: B023 (called within this iteration)
                (params, [d.clone() for d in dirs], lr_, decay_)
            ),
        )
        ((params, dirs, lr_, decay_),) = calls
        assert len(params) == len(ps) and all(a is b for a, b in zip(params, ps))
        assert lr_ == lr and decay_ == pytest.approx(decay, rel=1e-15)
        assert [tuple(d.shape) for d in dirs] == [tuple(s) for s in shapes]
        assert all(torch.equal(p, randn(*s, seed=30 + i)) for i, (p, s) in enumerate(zip(ps, shapes)))  # untouched
        # the default last stage applies exactly these directions
        qs = [randn(*s, seed=30 + i) for i, s in enumerate(shapes)]
        pos, kw = args(qs, seed=40)
        fn(*pos, **kw)
        expected = [randn(*s, seed=30 + i) for i, s in enumerate(shapes)]
        apply_update_(expected, dirs, lr, decay_)
        for q, e in zip(qs, expected):
            assert_same(q, e)
        got[path] = dirs
    for a, b in zip(got["single"], got["batched"]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------------------- Muon in stages
def test_muon_is_momentum_then_orthogonalize_then_step():
    """muon_momentum_ -> muon_directions -> apply_update_ is muon_batched / muon_single, bitwise; the direction
    carries a(m, n): sqrt(2) NS(N) for a 20 x 10 matrix with adjust_lr="original"."""
    shapes = [(20, 10), (10, 20), (20, 10), (4, 2, 3)]
    for batched, fn in ((True, F.muon_batched), (False, F.muon_single)):
        ws = [randn(*s, seed=50 + i) for i, s in enumerate(shapes)]
        gs = [randn(*s, seed=60 + i) for i, s in enumerate(shapes)]
        bufs = [randn(*s, seed=70 + i) for i, s in enumerate(shapes)]
        ws2, bufs2 = [w.clone() for w in ws], [b.clone() for b in bufs]
        ns = F.muon_momentum_(gs, bufs, momentum=0.9, nesterov=True, foreach=batched)
        for g, b0, b, n in zip(gs, bufs2, bufs, ns):
            m = b0.lerp(g, 1 - 0.9)
            assert_same(b, m)
            assert_same(n, g.lerp(m, 0.9))
        ds = F.muon_directions(ns, batched=batched)
        assert all(d.shape == w.shape for d, w in zip(ds, ws))
        if not batched:  # one call per matrix: the ratio is the only thing added to Newton-Schulz
            assert_same(ds[0], newton_schulz(ns[0]) * math.sqrt(2))
            assert_same(ds[1], newton_schulz(ns[1]))
            assert_same(ds[3], newton_schulz(as_matrix(ns[3])).view(4, 2, 3))  # a(4, 6) = 1
        apply_update_(ws, ds, 0.02, 0.02 * 0.1)
        fn(ws2, gs, bufs2, lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.1)
        for a, b in zip(ws, ws2):
            assert_same(a, b)
        for a, b in zip(bufs, bufs2):
            assert_same(a, b)


def test_muon_momentum_foreach_equals_loop_bitwise():
    gs = [randn(3, 4, seed=80 + i, dtype=torch.float32) for i in range(3)]
    for nesterov in (True, False):
        b1 = [randn(3, 4, seed=90 + i, dtype=torch.float32) for i in range(3)]
        b2 = [b.clone() for b in b1]
        n1 = F.muon_momentum_(gs, b1, momentum=0.95, nesterov=nesterov, foreach=True)
        n2 = F.muon_momentum_(gs, b2, momentum=0.95, nesterov=nesterov, foreach=False)
        for x, y in zip(b1 + n1, b2 + n2):
            assert_same(x, y)


# ------------------------------------------------------------------------------ Shampoo's preconditioner
def _mpow(A: torch.Tensor, p: float, eps: float) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(A + eps * torch.eye(A.shape[0], dtype=A.dtype))
    return evecs @ torch.diag(evals**p) @ evecs.T


def test_shampoo_preconditioner_is_a_view_over_the_state_with_the_old_keys():
    p = torch.zeros(5, 7, dtype=F64)
    state = init_shampoo_state(p, 3)
    blocks = block_slices((5, 7), 3)
    assert sorted(state) == sorted([f"kron_{b}_{i}" for b in range(6) for i in range(2)])
    pc = ShampooPreconditioner.from_state(state, p.shape, 3)
    assert [blk.index for blk in pc.blocks] == list(range(6)) and [blk.slices for blk in pc.blocks] == blocks
    for blk in pc.blocks:
        for i in range(2):  # the statistic and the root are the two triangles of one (n + 1, n) state tensor
            kron = state[f"kron_{blk.index}_{i}"]
            n = kron.shape[1]
            assert kron.shape == (n + 1, n) and blk.packed
            assert blk.factors[i].data_ptr() == kron[1:].data_ptr() and blk.roots[i].data_ptr() == kron.data_ptr()
            assert torch.equal(blk.root(i), torch.eye(n, dtype=F64)) and not blk.statistic(i).any()
    G = randn(5, 7, seed=5)
    pc.update(pc.split(G), None)  # (53): A_0 = G_b G_b^T, A_1 = G_b^T G_b per block, written into the state
    pc.compute_roots(1, None, 1e-3)
    D = pc.precondition(pc.split(G))
    for b, sl in enumerate(blocks):
        Gb = G[sl]
        blk = ShampooPreconditioner.from_state(state, p.shape, 3).blocks[b]
        torch.testing.assert_close(blk.statistic(0), Gb @ Gb.T, rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(blk.statistic(1), Gb.T @ Gb, rtol=1e-14, atol=1e-14)
        L, R = _mpow(Gb @ Gb.T, -0.25, 1e-3), _mpow(Gb.T @ Gb, -0.25, 1e-3)
        torch.testing.assert_close(blk.root(0), L, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(blk.root(1), R, rtol=1e-9, atol=1e-12)
        # (54): vec(D_b) = (L^{1/4} (x) R^{1/4})^{-1} vec(G_b), row-major vec
        torch.testing.assert_close(D[sl].reshape(-1), torch.kron(L, R) @ Gb.reshape(-1), rtol=1e-9, atol=1e-12)
    # the methods are one parameter's share of the functional rule: one step of shampoo_single gives the same
    w, w_state = torch.zeros(5, 7, dtype=F64), init_shampoo_state(p, 3)
    F.shampoo_single([w], [G], [w_state], [1], lr=1.0, beta2=None, eps=1e-3, max_preconditioner_dim=3)
    torch.testing.assert_close(w, -D, rtol=1e-12, atol=1e-14)
    for k in state:
        torch.testing.assert_close(w_state[k], state[k], rtol=1e-12, atol=1e-14)


def test_shampoo_diagonal_preconditioner_for_a_long_vector():
    state = init_shampoo_state(torch.zeros(5, dtype=F64), 3)
    assert sorted(state) == ["factor_diag", "inv_root_diag"]
    pc = ShampooPreconditioner.from_state(state, (5,), 3)
    assert pc.is_diagonal and pc.diag is state["factor_diag"] and pc.diag_root is state["inv_root_diag"]
    g = randn(5, seed=6)
    for t in (1, 2):  # EMA with bias correction: a_t / (1 - 0.9^t) = mean of the g^2 seen
        pc.update(pc.split(g), 0.9)
        pc.compute_roots(t, 0.9, 1e-6)
    torch.testing.assert_close(pc.precondition(pc.split(g)), g / (g * g + 1e-6).sqrt(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("old_layout", [False, True], ids=["kron", "factor_and_inv_root"])
def test_shampoo_checkpoint_keys_are_unchanged(old_layout):
    """A checkpoint loads and continues bitwise, also one saved with the older layout (each statistic and its
    root as two (n, n) matrices ``factor_{b}_{i}``, ``inv_root_{b}_{i}``), which loads into ``kron_{b}_{i}``."""
    ps = [randn(4, 3, seed=7).requires_grad_(), randn(9, seed=8).requires_grad_()]
    opt = adaptim.Shampoo(ps, lr=0.1, max_preconditioner_dim=3, grafting="adagrad", momentum=0.5)
    set_grads(ps, seed=9)
    opt.step()
    sd = opt.state_dict()
    assert sorted(sd["state"][0]) == sorted(
        ["step", "grafting_sum_sq", "momentum_buffer"] + [f"kron_{b}_{i}" for b in range(2) for i in range(2)]
    )
    if old_layout:  # what older versions saved: full symmetric statistic and root
        old = {}
        for k, v in sd["state"][0].items():
            if k.startswith("kron_"):
                a, q = kron_views(v)
                old[f"factor_{k[5:]}"] = symmetric_from(a, lower=True)
                old[f"inv_root_{k[5:]}"] = symmetric_from(q, lower=False)
            else:
                old[k] = v
        sd = {**sd, "state": {**sd["state"], 0: old}}
    assert sorted(sd["state"][1]) == ["factor_diag", "grafting_sum_sq", "inv_root_diag", "momentum_buffer", "step"]
    qs = [p.detach().clone().requires_grad_() for p in ps]
    opt2 = adaptim.Shampoo(qs, lr=0.1, max_preconditioner_dim=3, grafting="adagrad", momentum=0.5)
    opt2.load_state_dict(copy.deepcopy(sd))
    set_grads(ps, seed=10)
    set_grads(qs, seed=10)
    opt.step()
    opt2.step()
    for p, q in zip(ps, qs):
        assert_same(p.detach(), q.detach())
        assert_same_state(opt.state[p], opt2.state[q])


# --------------------------------------------------------------------------------------- linalg's rooms
def test_matrix_views_live_in_linalg():
    assert [matrix_view_shape(s) for s in [(), (5,), (3, 4), (64, 2, 3, 3)]] == [(1, 1), (5, 1), (3, 4), (64, 18)]
    x = torch.arange(24.0).reshape(2, 3, 4)
    m = as_matrix(x)
    assert m.shape == (2, 12) and m.data_ptr() == x.data_ptr()  # a view, not a copy
    assert as_matrix(torch.ones(3, 4)).shape == (3, 4) and as_matrix(torch.tensor(2.0)).shape == (1, 1)


def test_newton_schulz_bound_check_lives_in_linalg():
    for name in ("jordan", "cubic", "quintic"):
        check_ns_bounded(name, 5)
    check_ns_bounded((1.5, -0.5), 50)
    with pytest.raises(ValueError, match="ns_coefficients .* ns_steps=5"):
        check_ns_bounded((0.9, 0.99, 0.1), 5)
    check_ns_bounded((0.9, 0.99, 0.1), 0)  # no iteration: nothing can blow up
    with pytest.raises(ValueError, match="coefficients"):
        check_ns_bounded("septic", 5)
