"""Steepest descent under a norm: the closed forms (69) of (67) and (68), checked against their objectives."""

from __future__ import annotations

import io
import math

import pytest
import torch

from adaptim.optim.steepest import Steepest

NORMS = ("spectral", "frobenius", "inf")
RULES = ("trust_region", "majorization")


# ----------------------------------------------------------------------------------------- literal references
def norm_of(X: torch.Tensor, name: str) -> float:
    if name == "frobenius":
        return math.sqrt(float((X**2).sum()))
    if name == "inf":
        return float(X.abs().max())
    if name == "spectral":
        return float(torch.linalg.svdvals(X)[0])
    raise AssertionError(name)


def literal_69(G: torch.Tensor, eta: float, name: str, rule: str) -> torch.Tensor:
    """(69) exactly as printed: Delta_TR and Delta_MM for each norm, G = U S V^T."""
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    if rule == "trust_region":
        if name == "frobenius":
            return -eta / math.sqrt(float((G**2).sum())) * G
        if name == "inf":
            return -eta * torch.sign(G)
        return -eta * U @ Vh
    if name == "frobenius":
        return -eta * G
    if name == "inf":
        return -eta * float(G.abs().sum()) * torch.sign(G)
    return -eta * float(S.sum()) * U @ Vh


def objective(G, Delta, eta, name, rule) -> float:
    """(67): <G, Delta> (feasibility checked separately); (68): <G, Delta> + ||Delta||^2 / (2 eta)."""
    lin = float((G * Delta).sum())
    return lin if rule == "trust_region" else lin + norm_of(Delta, name) ** 2 / (2 * eta)


def one_step(G: torch.Tensor, W0: torch.Tensor, **kw) -> torch.Tensor:
    W = W0.clone().requires_grad_()
    opt = Steepest([W], **kw)
    W.grad = G.clone()
    opt.step()
    return W.detach() - W0


# ----------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("rule", RULES)
def test_step_is_the_closed_form_and_beats_1000_random_feasible_steps(name, rule):
    gen = torch.Generator().manual_seed(7)
    G = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    W0 = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    eta = 0.3
    Delta = one_step(G, W0, lr=eta, norm=name, rule=rule)
    torch.testing.assert_close(Delta, literal_69(G, eta, name, rule), rtol=1e-12, atol=1e-12)
    best = objective(G, Delta, eta, name, rule)
    if rule == "trust_region":
        assert norm_of(Delta, name) == pytest.approx(eta, rel=1e-12)
    dual = {
        "frobenius": norm_of(G, "frobenius"),
        "inf": float(G.abs().sum()),
        "spectral": float(torch.linalg.svdvals(G).sum()),
    }[name]
    for k in range(1000):
        R = torch.randn(5, 4, generator=gen, dtype=torch.float64)
        if k % 2:  # half of them near the optimum, the hardest competitors
            R = -Delta / max(norm_of(Delta, name), 1e-300) + 0.05 * R
        R = R / norm_of(R, name)
        u = float(torch.rand(1, generator=gen))
        # trust region: any point of the ball; majorization: any size around the optimal eta ||G||_*
        r = eta * u ** (1 / 20) if rule == "trust_region" else eta * dual * 2 * u
        assert best <= objective(G, r * R, eta, name, rule) + 1e-12
    # the optimal value is -eta ||G||_* (TR) and -eta ||G||_*^2 / 2 (MM) (proof of (69))
    expected = -eta * dual if rule == "trust_region" else -eta * dual**2 / 2
    assert best == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", NORMS)
def test_shapes_vector_conv_scalar(name):
    gen = torch.Generator().manual_seed(2)
    g = torch.randn(6, generator=gen, dtype=torch.float64)
    d = one_step(g, torch.zeros(6, dtype=torch.float64), lr=0.1, norm=name)
    expected = -0.1 * torch.sign(g) if name == "inf" else -0.1 * g / g.norm()  # column vector: GD or sign descent
    torch.testing.assert_close(d, expected, rtol=0, atol=1e-14)
    G = torch.randn(4, 2, 3, 3, generator=gen, dtype=torch.float64)
    d = one_step(G, torch.zeros_like(G), lr=0.1, norm=name, rule="majorization")
    torch.testing.assert_close(
        d, literal_69(G.reshape(4, 18), 0.1, name, "majorization").reshape(G.shape), rtol=1e-12, atol=1e-12
    )
    s = one_step(torch.tensor(-2.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64), lr=0.5, norm=name)
    assert float(s) == 0.5


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("rule", RULES)
def test_momentum_ema_against_a_literal_loop_and_batched_equals_single(name, rule):
    gen = torch.Generator().manual_seed(3)
    shapes = [(4, 3), (4, 3), (3, 5), (7,)]
    W0 = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(4)]
    mu, eta = 0.8, 0.05
    # literal: M_t = mu M_{t-1} + (1 - mu) G_t, then (69) on M_t
    ref = [w.clone() for w in W0]
    M = [torch.zeros_like(w) for w in W0]
    for gs in grads:
        for i, g in enumerate(gs):
            M[i] = mu * M[i] + (1 - mu) * g
            mat = M[i] if M[i].dim() == 2 else M[i].reshape(-1, 1)
            ref[i] = ref[i] + literal_69(mat, eta, name, rule).reshape(ref[i].shape)
    results = []
    for foreach in (True, False):
        ps = [w.clone().requires_grad_() for w in W0]
        opt = Steepest(ps, lr=eta, norm=name, rule=rule, momentum=mu, foreach=foreach)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            opt.step()
        for p, r in zip(ps, ref):
            torch.testing.assert_close(p.detach(), r, rtol=1e-10, atol=1e-12)
        results.append([p.detach() for p in ps])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_case_c13_zero_first_gradient(name, momentum):
    """C13: a zero gradient leaves the 4x6 parameter unchanged, the state finite, and the next step fresh."""
    gen = torch.Generator().manual_seed(4)
    W0 = torch.randn(4, 6, generator=gen)
    G = torch.randn(4, 6, generator=gen)
    W = W0.clone().requires_grad_()
    opt = Steepest([W], lr=0.1, norm=name, rule="majorization", momentum=momentum)
    W.grad = torch.zeros(4, 6)
    opt.step()
    assert torch.equal(W.detach(), W0)
    assert all(torch.isfinite(v).all() for v in opt.state[W].values())
    W.grad = G.clone()
    opt.step()
    fresh = W0.clone().requires_grad_()
    opt2 = Steepest([fresh], lr=0.1, norm=name, rule="majorization", momentum=momentum)
    fresh.grad = G.clone()
    opt2.step()
    assert torch.equal(W.detach(), fresh.detach())


def test_state_dict_round_trip_is_bitwise():
    gen = torch.Generator().manual_seed(5)
    shapes = [(4, 3), (5,)]
    W0 = [torch.randn(s, generator=gen) for s in shapes]
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(5)]

    def run(ps, opt, gs_list):
        for gs in gs_list:
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            opt.step()

    ps = [w.clone().requires_grad_() for w in W0]
    groups = [{"params": [ps[0]]}, {"params": [ps[1]], "norm": "inf", "lr": 0.01}]
    opt = Steepest(groups, lr=0.1, momentum=0.9, rule="majorization")
    run(ps, opt, grads[:3])
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    qs = [p.detach().clone().requires_grad_() for p in ps]
    opt2 = Steepest([{"params": [qs[0]]}, {"params": [qs[1]]}], lr=0.5)
    buf.seek(0)
    opt2.load_state_dict(torch.load(buf))
    assert opt2.param_groups[1]["norm"] == "inf" and opt2.param_groups[0]["rule"] == "majorization"
    run(ps, opt, grads[3:])
    run(qs, opt2, grads[3:])
    for p, q in zip(ps, qs):
        assert torch.equal(p, q)


def test_low_precision_parameter():
    W = torch.randn(4, 4).to(torch.bfloat16).requires_grad_()
    opt = Steepest([W], lr=0.1, momentum=0.5)
    W.grad = torch.randn(4, 4).to(torch.bfloat16)
    opt.step()
    assert W.dtype == torch.bfloat16 and opt.state[W]["momentum_buffer"].dtype == torch.float32


def test_bad_hyperparameters_are_refused():
    p = [torch.zeros(2, 2, requires_grad=True)]
    with pytest.raises(ValueError, match="norm"):
        Steepest(p, lr=0.1, norm="nuclear")
    with pytest.raises(ValueError, match="rule"):
        Steepest(p, lr=0.1, rule="newton")
    with pytest.raises(ValueError, match="momentum"):
        Steepest(p, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="lr"):
        Steepest(p, lr=-1.0)
    with pytest.raises(TypeError, match="complex"):
        Steepest([torch.zeros(2, 2, dtype=torch.complex64, requires_grad=True)], lr=0.1)
