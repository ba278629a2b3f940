"""SphereSGD (Section 8.1) against literal float64 references of (70), (72), (73); the radius kept over 1,000
float32 steps; the step lengths of (72) and (73); Lemma 8.1 and (74)-(75) of weight normalization."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch.nn.utils.parametrizations import weight_norm

import adaptim
from adaptim.manifolds.weight_norm import weight_norm_gradients, weight_norm_preconditioner

METHODS = [("pin", "l2"), ("tangent", "l2"), ("trust_region", "l2"), ("trust_region", "l1"), ("trust_region", "linf")]
IDS = [f"{m}-{n}" for m, n in METHODS]
PRIMAL = {"l2": 2, "l1": 1, "linf": np.inf}


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ------------------------------------------------------------------------------------ literal references
def tr_step_lp(w: np.ndarray, g: np.ndarray, eta: float, norm: str) -> np.ndarray:
    """Delta of (73) by solving the primal linear program (l1, linf) or by its closed form (l2)."""
    if norm == "l2":
        gp = g - (w @ g) / (w @ w) * w
        return eta * gp / np.linalg.norm(gp)
    d = len(w)
    c = -np.concatenate([g, -g])
    a_eq = np.concatenate([w, -w])[None]
    if norm == "l1":
        res = linprog(c, A_ub=np.ones((1, 2 * d)), b_ub=[eta], A_eq=a_eq, b_eq=[0.0], bounds=(0, None), method="highs")
    else:
        res = linprog(c, A_eq=a_eq, b_eq=[0.0], bounds=(0, eta), method="highs")
    return res.x[:d] - res.x[d:]


def reference_step(w, g, m, eta, r, method, norm, mu):
    """One step of SphereSGD written from (70), (72), (73) on one vector (numpy float64); returns (w', m')."""
    if mu:  # the buffer, moved to the tangent space at w, then the heavy ball
        m = mu * (m - (w @ m) / (r * r) * w) + g
        g = m
    if method == "pin":  # (70)
        x = w - eta * g
        return r / np.linalg.norm(x) * x, m
    gp = g - (w @ g) / (r * r) * w  # (71)
    if method == "tangent":  # (72)
        return r / np.sqrt(r * r + eta * eta * (gp @ gp)) * (w - eta * gp), m
    delta = tr_step_lp(w, g, eta, norm)  # (73), then retract
    x = w - delta
    return r / np.linalg.norm(x) * x, m


def quadratic(d, seed):
    a = rand(d, d, seed=seed)
    return a @ a.T / d + torch.eye(d, dtype=torch.float64), rand(d, seed=seed + 1)


@pytest.mark.parametrize("momentum", [0.0, 0.7])
@pytest.mark.parametrize("method,norm", METHODS, ids=IDS)
def test_matches_literal_reference_float64(method, norm, momentum):
    """10 steps on 0.5 w^T A w - b^T w, one vector and the rows of a matrix (dim=1), against the reference."""
    A, b = quadratic(5, 3)
    w = rand(5, seed=10)
    W = rand(3, 5, seed=11)
    p, P = w.clone().requires_grad_(), W.clone().requires_grad_()
    opt = adaptim.SphereSGD(
        [{"params": [p]}, {"params": [P], "dim": 1}], lr=0.05, method=method, norm=norm, momentum=momentum
    )
    ref = [w.numpy().copy()] + [row.copy() for row in W.numpy()]
    radii = [np.linalg.norm(x) for x in ref]
    bufs = [np.zeros(5) for _ in ref]
    An, bn = A.numpy(), b.numpy()
    for _ in range(10):
        p.grad, P.grad = A @ p.detach() - b, P.detach() @ A - b
        opt.step()
        for k, x in enumerate(ref):
            ref[k], bufs[k] = reference_step(x, An @ x - bn, bufs[k], 0.05, radii[k], method, norm, momentum)
    tol = 1e-12 if norm == "l2" else 1e-8  # the LP solver's accuracy
    np.testing.assert_allclose(p.detach().numpy(), ref[0], atol=tol)
    np.testing.assert_allclose(P.detach().numpy(), np.stack(ref[1:]), atol=tol)


def test_explicit_radius_projects_at_the_first_step_and_maximize_ascends():
    w = rand(4, seed=2) * 3
    g = rand(4, seed=3)
    p = w.clone().requires_grad_()
    opt = adaptim.SphereSGD([p], lr=0.1, radius=2.0, method="tangent", maximize=True)
    p.grad = g.clone()
    opt.step()
    w0 = (2.0 * w / w.norm()).numpy()  # projected first, then (72) with -g
    want, _ = reference_step(w0, -g.numpy(), None, 0.1, 2.0, "tangent", "l2", 0.0)
    np.testing.assert_allclose(p.detach().numpy(), want, atol=1e-14)


# ------------------------------------------------------------------------------------ the constraint holds
@pytest.mark.parametrize("dim", [None, 1])
@pytest.mark.parametrize("method,norm", METHODS, ids=IDS)
def test_radius_is_kept_to_1e_6_over_1000_float32_steps(method, norm, dim):
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(4, 16, generator=gen)
    p = W.clone().requires_grad_()
    opt = adaptim.SphereSGD([p], lr=0.05, method=method, norm=norm, momentum=0.5, dim=dim)
    r0 = W.norm() if dim is None else W.norm(dim=1)
    target = torch.randn(4, 16, generator=gen)
    for _ in range(1000):
        p.grad = (p.detach() - target) + 0.1 * torch.randn(4, 16, generator=gen)
        opt.step()
    r = p.detach().norm() if dim is None else p.detach().norm(dim=1)
    assert float(((r - r0).abs() / r0).max()) < 1e-6
    assert float((p.detach() - W).norm()) > 0.1  # it moved


# ------------------------------------------------------------------------------------------ step lengths
def step_taken(w: torch.Tensor, w_new: torch.Tensor) -> torch.Tensor:
    """The tangent step Delta with w_new = r (w - Delta) / ||w - Delta|| (Delta orthogonal to w, ||w|| = r)."""
    c = (w_new @ w) / (w @ w)  # = r / ||w - Delta||
    return w - w_new / c


@pytest.mark.parametrize("method,norm", METHODS[1:], ids=IDS[1:])
def test_tangent_steps_have_length_eta(method, norm):
    """(73): the step before retraction has length eta in its norm and is orthogonal to w; (72): it is eta g_perp
    (length eta ||g_perp||_2)."""
    for seed in range(5):
        w, g = rand(6, seed=seed), rand(6, seed=50 + seed)
        p = w.clone().requires_grad_()
        opt = adaptim.SphereSGD([p], lr=0.3, method=method, norm=norm)
        p.grad = g.clone()
        opt.step()
        delta = step_taken(w, p.detach())
        assert abs(float(delta @ w)) < 1e-12
        if method == "tangent":
            g_perp = g - (w @ g) / (w @ w) * w
            torch.testing.assert_close(delta, 0.3 * g_perp, rtol=1e-12, atol=1e-14)
        else:
            assert np.linalg.norm(delta.numpy(), PRIMAL[norm]) == pytest.approx(0.3, rel=1e-12)


# --------------------------------------------------------------------------------- zero and radial steps
@pytest.mark.parametrize("method,norm", METHODS, ids=IDS)
def test_zero_gradient_and_zero_tangent_component_leave_the_point(method, norm):
    W = rand(3, 4, dtype=torch.float32)
    p = W.clone().requires_grad_()
    opt = adaptim.SphereSGD([p], lr=5.0, method=method, norm=norm, dim=1)
    g = torch.zeros(3, 4)
    g[1] = 2.0 * W[1]  # radial: no tangent component (lr * 2 > 1: (70) would flip the row)
    g[2] = rand(4, seed=9, dtype=torch.float32)
    p.grad = g
    opt.step()
    out = p.detach()
    assert torch.isfinite(out).all()
    assert torch.equal(out[:2], W[:2]) and not torch.equal(out[2], W[2])
    p.grad = torch.zeros(3, 4)
    before = out.clone()
    opt.step()
    assert torch.equal(p.detach(), before)


# --------------------------------------------------------------------------------------------- state
def test_radius_is_the_initial_norm_and_survives_a_state_dict_round_trip():
    w = rand(2, 5, seed=4)
    p = w.clone().requires_grad_()
    opt = adaptim.SphereSGD([p], lr=0.2, method="pin", dim=0)
    grads = [rand(2, 5, seed=20 + t) for t in range(6)]
    for g in grads[:3]:
        p.grad = g.clone()
        opt.step()
    torch.testing.assert_close(opt.state[p]["radius"], w.norm(dim=0, keepdim=True), rtol=1e-15, atol=0)
    q = p.detach().clone().requires_grad_()
    twin = adaptim.SphereSGD([q], lr=0.2, method="pin", dim=0)
    twin.load_state_dict(copy.deepcopy(opt.state_dict()))
    for g in grads[3:]:
        p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        twin.step()
    assert torch.equal(p.detach(), q.detach())
    # the state of a parameter loaded onto one of another norm is refused, and nothing is loaded
    other = (3 * p.detach()).requires_grad_()
    fresh = adaptim.SphereSGD([other], lr=0.2, method="pin", dim=0)
    with pytest.raises(ValueError, match="saved radius .* is not its norm"):
        fresh.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert not fresh.state


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(radius=0.0), "radius must be a positive finite number"),
        (dict(radius=float("inf")), "radius must be a positive finite number"),
        (dict(method="riemannian"), "method must be one of"),
        (dict(norm="l3", method="trust_region"), "norm must be one of"),
        (dict(method="pin", norm="l1"), "norm='l1' needs method='trust_region'"),
        (dict(method="tangent", norm="linf"), "norm='linf' needs method='trust_region'"),
        (dict(momentum=1.0), "momentum"),
        (dict(dim=2), "no dimension dim=2"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        adaptim.SphereSGD([torch.ones(2, 3, requires_grad=True)], **kwargs)


def test_zero_parameter_or_row_is_refused():
    with pytest.raises(ValueError, match="parameter 1 of the group .* zero vector cannot be projected"):
        adaptim.SphereSGD([torch.ones(3, requires_grad=True), torch.zeros(3, requires_grad=True)])
    W = torch.ones(3, 2)
    W[0] = 0
    with pytest.raises(ValueError, match="1 zero slice"):
        adaptim.SphereSGD([W.requires_grad_()], dim=1)


# ----------------------------------------------------------------------------------- weight normalization
def test_eq74_gradients_match_autograd_through_torch_weight_norm():
    lin = weight_norm(torch.nn.Linear(5, 3, bias=False).double(), dim=0)
    with torch.no_grad():
        lin.parametrizations.weight.original0.copy_(torch.tensor([[0.5], [2.0], [-1.5]]))
    x, y = rand(7, 5, seed=1), rand(7, 3, seed=2)
    loss = (lin(x) - y).pow(2).sum()
    s, v = lin.parametrizations.weight.original0, lin.parametrizations.weight.original1
    g_s_auto, g_v_auto = torch.autograd.grad(loss, [s, v])
    w = lin.weight.detach().clone().requires_grad_()
    (g_w,) = torch.autograd.grad((x @ w.T - y).pow(2).sum(), [w])
    g_v, g_s = weight_norm_gradients(v.detach(), s.detach(), g_w)
    torch.testing.assert_close(g_v, g_v_auto, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(g_s, g_s_auto, rtol=1e-12, atol=1e-13)
    # one vector: (74) literally
    v1, g1 = v.detach()[1], g_w[1]
    vbar = v1 / v1.norm()
    gv1, gs1 = weight_norm_gradients(v1, 2.0, g1)
    torch.testing.assert_close(
        gv1, 2.0 / v1.norm() * (torch.eye(5, dtype=torch.float64) - torch.outer(vbar, vbar)) @ g1
    )
    assert gs1.shape == () and float(gs1) == pytest.approx(float(vbar @ g1))


def test_eq75_preconditioner_is_the_first_order_change_of_w():
    v, s, g_w = rand(4, seed=5), 1.7, rand(4, seed=6)
    P = weight_norm_preconditioner(v, s)
    vbar = v / v.norm()
    radial = torch.outer(vbar, vbar)
    torch.testing.assert_close(P, (s / v.norm()) ** 2 * (torch.eye(4, dtype=torch.float64) - radial) + radial)
    g_v, g_s = weight_norm_gradients(v, s, g_w)
    errors = []
    etas = np.logspace(-6, -2, 5)
    for eta in etas:
        v2, s2 = v - eta * g_v, s - eta * g_s
        dw = s2 * v2 / v2.norm() - s * vbar
        errors.append(float((dw + eta * P @ g_w).norm()))
    slope = np.polyfit(np.log(etas), np.log(errors), 1)[0]
    assert 1.9 < slope < 2.1, slope  # the remainder is O(eta^2): P is the first-order map
    # s = ||v||: the identity (vanilla gradient descent)
    torch.testing.assert_close(weight_norm_preconditioner(v, float(v.norm())), torch.eye(4, dtype=torch.float64))


def test_lemma_8_1_frozen_scale_weight_norm_is_the_classical_update_with_alpha():
    """A weight-normalized linear layer with its scale frozen at r, trained by plain SGD on v with lr eta, follows
    (76): w_{t+1} = r (w_t - alpha_t g_perp) / sqrt(r^2 + alpha_t^2 ||g_perp||^2), alpha_t = eta r^2 / ||v_t||^2,
    row by row, to 1e-10 in float64."""
    torch.manual_seed(0)
    lin = weight_norm(torch.nn.Linear(6, 3, bias=False).double(), dim=0)
    r = torch.tensor([[0.7], [1.0], [2.5]], dtype=torch.float64)
    s, v = lin.parametrizations.weight.original0, lin.parametrizations.weight.original1
    with torch.no_grad():
        s.copy_(r)
        v.mul_(torch.tensor([[3.0], [0.2], [1.0]], dtype=torch.float64))  # ||v|| far from r: alpha != eta
    s.requires_grad_(False)
    eta = 0.1
    opt = torch.optim.SGD([v], lr=eta)
    x, y = rand(10, 6, seed=3), rand(10, 3, seed=4)
    for _ in range(8):
        w = lin.weight.detach().clone()
        v_t = v.detach().clone()
        wl = w.clone().requires_grad_()
        (g_w,) = torch.autograd.grad((x @ wl.T - y).pow(2).mean(), [wl])
        opt.zero_grad()
        (lin(x) - y).pow(2).mean().backward()
        opt.step()
        w_next = lin.weight.detach()
        for i in range(3):
            ri, wi, gi = float(r[i]), w[i], g_w[i]
            g_perp = gi - (wi @ gi) / ri**2 * wi
            alpha = eta * ri**2 / float(v_t[i] @ v_t[i])
            want = ri / np.sqrt(ri**2 + alpha**2 * float(g_perp @ g_perp)) * (wi - alpha * g_perp)
            torch.testing.assert_close(w_next[i], want, rtol=0, atol=1e-10)
        # and SphereSGD's classical method with that alpha takes the same step
        q = w.clone().requires_grad_()
        for i in range(3):
            alpha = eta * float(r[i]) ** 2 / float(v_t[i] @ v_t[i])
            qi = q[i].detach().clone().requires_grad_()
            sgd = adaptim.SphereSGD([qi], lr=alpha, method="tangent", radius=float(r[i]))
            qi.grad = g_w[i].clone()
            sgd.step()
            torch.testing.assert_close(qi.detach(), w_next[i], rtol=0, atol=1e-10)
