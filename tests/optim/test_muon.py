"""Muon (Section 7, Appendix Q.3.1): a literal reference loop, torch.optim.Muon, shapes (C14), zero gradients (C13)."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

import adaptim.functional.muon as fmuon
from adaptim.functional.muon import adjust_lr_ratio
from adaptim.optim.muon import Muon, muon_param_groups

JORDAN = (3.4445, -4.7750, 2.0315)


# ----------------------------------------------------------------------------------------- literal references
def ns_reference(X: torch.Tensor, coeffs=JORDAN, steps: int = 5) -> torch.Tensor:
    """(147) through an explicit SVD: U phi^K(S / ||X||_F) V^T, in float64."""
    X = X.double()
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    s = S / math.sqrt(float((X**2).sum()))
    for _ in range(steps):
        s = sum(c * s ** (2 * i + 1) for i, c in enumerate(coeffs))
    return U @ torch.diag(s) @ Vh


def uvt(X: torch.Tensor) -> torch.Tensor:
    U, _, Vh = torch.linalg.svd(X.double(), full_matrices=False)
    return U @ Vh


def reference_muon(W0, grads, *, lr, momentum, nesterov, weight_decay, adjust, orth):
    """Section 7's Muon written out: EMA momentum, Nesterov mix, orthogonalize the (out, rest) matrix, step."""
    W = [w.clone() for w in W0]
    M = [torch.zeros_like(w) for w in W0]
    for gs in grads:
        for i, g in enumerate(gs):
            M[i] = momentum * M[i] + (1 - momentum) * g
            N = (1 - momentum) * g + momentum * M[i] if nesterov else M[i]
            rows, cols = N.shape[0], N[0].numel()
            O = orth(N.reshape(rows, cols)).reshape(N.shape).to(W[i].dtype)
            ratio = {
                "original": math.sqrt(max(1.0, rows / cols)),
                "match_rms_adamw": 0.2 * math.sqrt(max(rows, cols)),
                None: 1.0,
            }[adjust]
            W[i] = (1 - lr * weight_decay) * W[i] - lr * ratio * O
    return W


def run(params, opt, grads):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = g.clone()
        opt.step()


def make(shapes, steps, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    W0 = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    grads = [[torch.randn(s, generator=gen, dtype=dtype) for s in shapes] for _ in range(steps)]
    return W0, grads


SHAPES = [(10, 20), (20, 10), (8, 8), (8, 8), (6, 2, 3, 3)]


# ----------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("adjust", ["original", "match_rms_adamw", None])
@pytest.mark.parametrize("foreach", [True, False])
def test_against_literal_reference(nesterov, adjust, foreach):
    W0, grads = make(SHAPES, 4, seed=1)
    kw = dict(lr=0.03, momentum=0.9, nesterov=nesterov, weight_decay=0.1, adjust=adjust)
    ps = [w.clone().requires_grad_() for w in W0]
    opt = Muon(ps, lr=0.03, momentum=0.9, nesterov=nesterov, weight_decay=0.1, adjust_lr=adjust, foreach=foreach)
    run(ps, opt, grads)
    for p, r in zip(ps, reference_muon(W0, grads, orth=ns_reference, **kw)):
        torch.testing.assert_close(p.detach(), r, rtol=0, atol=1e-12)
    # exact orthogonalization: the update is -lr a(m, n) U V^T of the momentum
    ps = [w.clone().requires_grad_() for w in W0]
    opt = Muon(
        ps,
        lr=0.03,
        momentum=0.9,
        nesterov=nesterov,
        weight_decay=0.1,
        adjust_lr=adjust,
        orthogonalize="svd",
        foreach=foreach,
    )
    run(ps, opt, grads)
    for p, r in zip(ps, reference_muon(W0, grads, orth=uvt, **kw)):
        torch.testing.assert_close(p.detach(), r, rtol=0, atol=1e-12)


def test_sum_convention_momentum_gives_the_same_steps():
    """Jordan et al.'s M = mu M + G, N = G + mu M differ from the EMA by the factor 1 - mu, which Orth removes."""
    W0, grads = make([(6, 4)], 5, seed=2)
    W, M, mu, lr = W0[0].clone(), torch.zeros(6, 4, dtype=torch.float64), 0.95, 0.02
    for gs in grads:
        M = mu * M + gs[0]
        W = W - lr * uvt(gs[0] + mu * M)
    p = W0[0].clone().requires_grad_()
    run([p], Muon([p], lr=lr, momentum=mu, orthogonalize="svd", adjust_lr=None), grads)
    torch.testing.assert_close(p.detach(), W, rtol=0, atol=1e-12)


def _torch_ns_float32(grad, ns_coefficients, ns_steps, eps):
    """torch.optim.Muon's Newton-Schulz (torch/optim/_muon.py) step for step, but in float32, not bfloat16."""
    a, b, c = ns_coefficients
    X = grad.float()
    if grad.size(0) > grad.size(1):
        X = X.T
    X = X / X.norm().clamp(min=eps)
    for _ in range(ns_steps):
        A = X @ X.T
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    if grad.size(0) > grad.size(1):
        X = X.T
    return X


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon needs torch >= 2.9")
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("adjust", ["original", "match_rms_adamw"])
@pytest.mark.parametrize("float32_ns", [True, False])
def test_against_torch_optim_muon(monkeypatch, nesterov, adjust, float32_ns):
    """Configured alike (same lr, momentum, weight decay, coefficients, adjust_lr), both take the same steps.

    torch runs Newton-Schulz in bfloat16; with its iteration patched to float32 the match is to float32 rounding,
    unpatched it is to bfloat16 accuracy (a few percent of the displacement).
    """
    import torch.optim._muon as tmuon

    if float32_ns:
        monkeypatch.setattr(tmuon, "_zeropower_via_newtonschulz", _torch_ns_float32)
    W0, grads = make([(10, 20), (20, 10), (16, 16)], 5, seed=3, dtype=torch.float32)
    ps = [w.clone().requires_grad_() for w in W0]
    qs = [w.clone().requires_grad_() for w in W0]
    kw = dict(lr=0.02, momentum=0.95, nesterov=nesterov, weight_decay=0.1)
    run(ps, Muon(ps, adjust_lr=adjust, ns_coefficients=JORDAN, **kw), grads)
    run(qs, torch.optim.Muon(qs, adjust_lr_fn=adjust, ns_coefficients=JORDAN, **kw), grads)
    for p, q, w in zip(ps, qs, W0):
        moved = float((q.detach() - w).abs().max())
        err = float((p.detach() - q.detach()).abs().max())
        assert err <= (1e-6 if float32_ns else 5e-2 * moved)  # float32: a few ulps of parameters of size ~1


def test_case_c14_shapes_and_scales():
    """C14: conv weight (64, 2, 3, 3) orthogonalized as (64, 18); scales 1.885618, 1, sqrt 2; a bias is refused."""
    assert adjust_lr_ratio((64, 2, 3, 3), "original") == pytest.approx(1.885618, abs=1e-6)
    assert adjust_lr_ratio((10, 20), "original") == 1.0
    assert adjust_lr_ratio((20, 10), "original") == pytest.approx(math.sqrt(2), rel=1e-15)
    assert adjust_lr_ratio((64, 2, 3, 3), "match_rms_adamw") == pytest.approx(0.2 * 8, rel=1e-15)
    assert adjust_lr_ratio((10, 20), None) == 1.0
    gen = torch.Generator().manual_seed(4)
    W0 = torch.randn(64, 2, 3, 3, generator=gen)
    G = torch.randn(64, 2, 3, 3, generator=gen)
    for orth, ref in (("svd", uvt), ("newton_schulz", ns_reference)):
        W = W0.clone().requires_grad_()
        W.grad = G.clone()
        Muon([W], lr=0.01, momentum=0.0, orthogonalize=orth).step()
        assert W.shape == (64, 2, 3, 3)
        expected = W0.double() - 0.01 * math.sqrt(64 / 18) * ref(G.reshape(64, 18)).reshape(64, 2, 3, 3)
        torch.testing.assert_close(W.detach().double(), expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="use_muon=False"):
        Muon([torch.zeros(10, 20, requires_grad=True), torch.zeros(10, requires_grad=True)])


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("foreach", [True, False])
def test_case_c13_zero_first_gradient(weight_decay, foreach):
    """C13: zero gradient -> unchanged (or only decayed), finite state, then exactly a fresh first step."""
    gen = torch.Generator().manual_seed(5)
    W0, G = torch.randn(4, 6, generator=gen), torch.randn(4, 6, generator=gen)
    W = W0.clone().requires_grad_()
    opt = Muon([W], lr=0.02, weight_decay=weight_decay, foreach=foreach)
    W.grad = torch.zeros(4, 6)
    opt.step()
    assert torch.equal(W.detach(), W0 * (1 - 0.02 * weight_decay) if weight_decay else W0)
    buf = opt.state[W]["momentum_buffer"]
    assert torch.isfinite(buf).all() and not buf.any()  # the EMA of zeros is zero: nothing to remember
    W.grad = G.clone()
    opt.step()
    fresh = W0.clone().mul_(1 - 0.02 * weight_decay).requires_grad_() if weight_decay else W0.clone().requires_grad_()
    opt2 = Muon([fresh], lr=0.02, weight_decay=weight_decay, foreach=foreach)
    fresh.grad = G.clone()
    opt2.step()
    assert torch.equal(W.detach(), fresh.detach())
    assert torch.equal(opt.state[W]["momentum_buffer"], opt2.state[fresh]["momentum_buffer"])


def test_one_batched_newton_schulz_call_per_shape(monkeypatch):
    calls = []
    real = fmuon.newton_schulz

    def counting(X, *a, **k):
        calls.append(tuple(X.shape))
        return real(X, *a, **k)

    monkeypatch.setattr(fmuon, "newton_schulz", counting)
    W0, grads = make([(8, 8), (4, 6), (8, 8), (8, 2, 2, 2), (8, 8)], 1, seed=6, dtype=torch.float32)
    ps = [w.clone().requires_grad_() for w in W0]
    run(ps, Muon(ps), grads)
    assert sorted(calls) == sorted([(4, 8, 8), (1, 4, 6)])  # (8, 2, 2, 2) flattens to (8, 8)
    qs = [w.clone().requires_grad_() for w in W0]
    calls.clear()
    run(qs, Muon(qs, foreach=False), grads)
    assert len(calls) == 5
    for p, q in zip(ps, qs):  # batched and single products agree to rounding
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_adamw_group_is_torch_adamw():
    W0, grads = make([(5, 3), (3,)], 4, seed=7, dtype=torch.float32)
    ps = [w.clone().requires_grad_() for w in W0]
    qs = [w.clone().requires_grad_() for w in W0]
    opt = Muon([{"params": ps, "use_muon": False, "lr": 1e-2, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.05}])
    run(ps, opt, grads)
    run(qs, torch.optim.AdamW(qs, lr=1e-2, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.05), grads)
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert set(opt.state[ps[0]]) == {"step", "exp_avg", "exp_avg_sq"}


def test_muon_param_groups_split():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(11, 16)
            self.conv = nn.Conv1d(16, 8, 3)
            self.hidden = nn.Linear(8, 16)
            self.norm = nn.LayerNorm(16)
            self.out = nn.Linear(16, 11)
            self.frozen = nn.Linear(4, 4)
            self.frozen.requires_grad_(False)

    net = Net()
    groups = muon_param_groups(net)
    muon, adamw = groups
    assert muon["use_muon"] is True and adamw["use_muon"] is False
    assert {id(p) for p in muon["params"]} == {id(net.conv.weight), id(net.hidden.weight)}
    expected_adamw = [
        net.emb.weight,
        net.conv.bias,
        net.hidden.bias,
        net.norm.weight,
        net.norm.bias,
        net.out.weight,
        net.out.bias,
    ]
    assert {id(p) for p in adamw["params"]} == {id(p) for p in expected_adamw}
    assert adamw["lr"] == 3e-4 and adamw["betas"] == (0.9, 0.95)
    # a head named by the user; the last Linear (out) then is a hidden matrix
    groups = muon_param_groups(net, head="hidden", adamw_lr=1e-3)
    assert {id(p) for p in groups[0]["params"]} == {id(net.conv.weight), id(net.out.weight)}
    # tied embedding and head: listed once, with AdamW
    net.out.weight = net.emb.weight
    groups = muon_param_groups(net)
    all_params = [p for g in groups for p in g["params"]]
    assert len(all_params) == len({id(p) for p in all_params})
    # the groups make a working optimizer
    x = torch.randint(0, 11, (2, 5))
    opt = Muon(muon_param_groups(net))
    h = net.conv(net.emb(x).transpose(1, 2)).transpose(1, 2)
    net.out(net.norm(net.hidden(h))).sum().backward()
    opt.step()
    with pytest.raises(ValueError, match="head"):
        muon_param_groups(net, head="nope")


def test_state_dict_round_trip_is_bitwise():
    W0, grads = make([(6, 4), (6, 4), (5,), (3, 2, 2)], 5, seed=8, dtype=torch.float32)
    ps = [w.clone().requires_grad_() for w in W0]
    groups = [
        {"params": [ps[0], ps[1], ps[3]], "weight_decay": 0.01},
        {"params": [ps[2]], "use_muon": False, "lr": 1e-3},
    ]
    opt = Muon(groups, lr=0.02)
    run(ps, opt, grads[:3])
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    qs = [p.detach().clone().requires_grad_() for p in ps]
    opt2 = Muon([{"params": [qs[0], qs[1], qs[3]]}, {"params": [qs[2]], "use_muon": False}])
    buf.seek(0)
    opt2.load_state_dict(torch.load(buf))
    assert opt2.param_groups[1]["lr"] == 1e-3 and opt2.param_groups[0]["weight_decay"] == 0.01
    run(ps, opt, grads[3:])
    run(qs, opt2, grads[3:])
    for p, q in zip(ps, qs):
        assert torch.equal(p, q)


def test_maximize_and_low_precision():
    W0, grads = make([(6, 4)], 2, seed=9, dtype=torch.float32)
    p = W0[0].clone().requires_grad_()
    q = W0[0].clone().requires_grad_()
    run([p], Muon([p], maximize=True), grads)
    run([q], Muon([q]), [[-g for g in gs] for gs in grads])
    assert torch.equal(p, q)
    b = W0[0].to(torch.bfloat16).requires_grad_()
    opt = Muon([b])
    run([b], opt, [[g.to(torch.bfloat16) for g in gs] for gs in grads])
    assert b.dtype == torch.bfloat16 and opt.state[b]["momentum_buffer"].dtype == torch.float32


def test_bad_hyperparameters_are_refused():
    p = [torch.zeros(3, 3, requires_grad=True)]
    for kw, match in [
        (dict(momentum=1.0), "momentum"),
        (dict(ns_steps=0), "ns_steps"),
        (dict(ns_steps=2.5), "ns_steps"),
        (dict(adjust_lr="moonshot"), "adjust_lr"),
        (dict(orthogonalize="qr"), "orthogonalize"),
        (dict(ns_coefficients="septic"), "coefficients"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(lr=-0.1), "lr"),
        (dict(betas=(0.9, 1.0)), None),
        (dict(eps=-1.0), None),
    ]:
        if match is None:  # AdamW settings are checked in use_muon=False groups
            with pytest.raises(ValueError):
                Muon([{"params": p, "use_muon": False}], **kw)
        else:
            with pytest.raises(ValueError, match=match):
                Muon(p, **kw)
    with pytest.raises(TypeError, match="complex"):
        Muon([torch.zeros(2, 2, dtype=torch.complex64, requires_grad=True)])
    with pytest.raises(ValueError, match="use_muon=False"):
        Muon([torch.zeros((), requires_grad=True)])
