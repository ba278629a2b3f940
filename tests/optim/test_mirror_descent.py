"""MirrorDescent (notes (1)-(3)) and ExponentiatedGradient ((90)-(91)): each map against a literal reference, case
C15 and any finite gradient, the bitwise identities (euclidean = SGD, entropy = ExponentiatedGradient), checkpoints
with A, and the refusals (a parameter off the simplex, a bad A, an unknown map)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from _assertions import assert_same
from hypothesis import given, settings
from hypothesis import strategies as st

import adaptim
from adaptim.mirror import simplex_tolerance


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def simplex(shape, seed: int, dtype=torch.float32, dim=None) -> torch.Tensor:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    p = torch.softmax(x.reshape(-1), 0).reshape(shape) if dim is None else torch.softmax(x, dim)
    return leaf(p.to(dtype))


def grads_for(params, steps: int, seed: int, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=g, dtype=p.dtype) * scale for p in params] for _ in range(steps)]


def run(opt, params, grad_steps):
    for gs in grad_steps:
        for p, g in zip(params, gs):
            p.grad = g.clone()
        opt.step()


def literal_91(w: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
    """(91) in float64 with plain loops: w_i exp(-lr g_i) / sum_j w_j exp(-lr g_j)."""
    num = [w[i] * math.exp(-lr * g[i]) for i in range(len(w))]
    total = sum(num)
    return np.array([v / total for v in num])


# ----------------------------------------------------------------------------------------------- C15
@pytest.mark.parametrize("make", ["eg", "md_entropy"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_c15_one_step_gives_1_0_0_exactly_and_zero_gradient_changes_nothing(make, dtype):
    w = leaf(torch.full((3,), 1 / 3, dtype=dtype))
    opt = (
        adaptim.ExponentiatedGradient([w], lr=1.0)
        if make == "eg"
        else adaptim.MirrorDescent([w], lr=1.0, mirror_map="entropy")
    )
    w.grad = torch.tensor([-800.0, 0.0, 800.0], dtype=dtype)
    opt.step()
    assert torch.equal(w.detach(), torch.tensor([1.0, 0.0, 0.0], dtype=dtype))
    assert float(w.detach().sum()) == 1.0 and bool(torch.isfinite(w).all())
    v = leaf(torch.tensor([0.2, 0.3, 0.5], dtype=dtype))
    other = type(opt)([v], **opt.defaults)
    start = v.detach().clone()
    for _ in range(3):
        v.grad = torch.zeros_like(v)
        other.step()
    assert_same(v.detach(), start)


@pytest.mark.parametrize("name", ["euclidean", "weighted"])
def test_c15_kind_euclidean_and_weighted_take_a_finite_step_for_a_huge_gradient(name):
    """The other maps have no exp to overflow: a huge finite gradient (1e38 in float32) gives the finite step
    w - lr g or w - lr A^{-1} g (A in float64, so A^{-1} g is solved without overflow)."""
    A = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]], dtype=torch.float64)
    w = leaf(torch.tensor([0.1, -0.2, 0.3]))
    opt = adaptim.MirrorDescent([w], lr=1.0, mirror_map=name, A=A if name == "weighted" else None)
    g = torch.tensor([1.0, -0.5, 0.25]) * 1e38
    w.grad = g.clone()
    opt.step()
    assert bool(torch.isfinite(w).all())
    step = g.double() if name == "euclidean" else torch.linalg.solve(A, g.double())
    torch.testing.assert_close(w.detach().double(), torch.tensor([0.1, -0.2, 0.3]).double() - step, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_finite_gradient_keeps_the_optimizer_on_the_simplex(dtype, data):
    """The whole kind of fault, through the optimizer and over several steps: any finite gradients (any
    magnitude up to the dtype's largest float), any lr, rows or the whole tensor: finite, on the simplex."""
    rows = data.draw(st.booleans())
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)))
    w = simplex(shape, data.draw(st.integers(0, 1000)), dtype, dim=-1 if rows else None)
    lr = data.draw(st.sampled_from([1e-3, 1.0, 50.0, 1e8]))
    opt = adaptim.ExponentiatedGradient([w], lr=lr, dim=-1 if rows else None)
    width = 32 if dtype == torch.float32 else 64
    entries = st.floats(allow_nan=False, allow_infinity=False, width=width)
    n = shape[0] * shape[1]
    for _ in range(3):
        w.grad = torch.tensor(data.draw(st.lists(entries, min_size=n, max_size=n)), dtype=dtype).reshape(shape)
        opt.step()
        x = w.detach()
        assert bool(torch.isfinite(x).all()) and float(x.min()) >= 0, x
        sums = x.double().sum(-1) if rows else x.double().sum()
        k = shape[1] if rows else n
        assert float((sums - 1).abs().max()) <= simplex_tolerance(k, dtype), sums


# -------------------------------------------------------------------------------- literal references
@pytest.mark.parametrize("dim", [None, -1, 0])
def test_exponentiated_gradient_is_literal_91(dim):
    """Five steps, two parameters in one group, float64: each (slice of each) parameter follows (91) computed with
    plain loops."""
    shapes = [(3, 4), (5,)] if dim is None else [(3, 4), (2, 3)]
    params = [simplex(s, i, torch.float64, dim) for i, s in enumerate(shapes)]
    ref = [p.detach().numpy().copy() for p in params]
    lr = 0.37
    opt = adaptim.ExponentiatedGradient(params, lr=lr, dim=dim)
    steps = grads_for(params, 5, seed=3, scale=2.0)
    for gs in steps:
        run(opt, params, [gs])
        for k, g in enumerate(gs):
            g = g.numpy()
            if dim is None:
                ref[k] = literal_91(ref[k].reshape(-1), g.reshape(-1), lr).reshape(ref[k].shape)
            else:
                moved, gm = np.moveaxis(ref[k], dim, -1), np.moveaxis(g, dim, -1)
                new = np.stack(
                    [
                        literal_91(a, b, lr)
                        for a, b in zip(moved.reshape(-1, moved.shape[-1]), gm.reshape(-1, gm.shape[-1]))
                    ]
                )
                ref[k] = np.moveaxis(new.reshape(moved.shape), -1, dim)
        for p, r in zip(params, ref):
            np.testing.assert_allclose(p.detach().numpy(), r, rtol=1e-12, atol=1e-300)


def test_maximize_is_the_step_on_minus_g():
    a, b = simplex((6,), 0), simplex((6,), 0)
    up = adaptim.ExponentiatedGradient([a], lr=0.5, maximize=True)
    down = adaptim.ExponentiatedGradient([b], lr=0.5)
    for (g,) in grads_for([a], 4, seed=1):
        a.grad, b.grad = g.clone(), -g
        up.step()
        down.step()
        assert_same(a.detach(), b.detach())


@pytest.mark.parametrize("maximize", [False, True])
def test_euclidean_mirror_descent_is_sgd_bitwise(maximize):
    """psi = 1/2 ||w||^2 in (2) is gradient descent: bitwise adaptim.SGD (both literal paths) and torch.optim.SGD,
    under a schedule, with two groups."""
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(4, 3, generator=gen), torch.randn(5, generator=gen)]
    makers = [
        lambda ps: adaptim.MirrorDescent(
            [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.03}], lr=0.1, maximize=maximize
        ),
        lambda ps: adaptim.SGD(
            [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.03}], lr=0.1, maximize=maximize, foreach=True
        ),
        lambda ps: adaptim.SGD(
            [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.03}], lr=0.1, maximize=maximize, foreach=False
        ),
        lambda ps: torch.optim.SGD(
            [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.03}], lr=0.1, maximize=maximize, foreach=False
        ),
    ]
    results = []
    for make in makers:
        params = [leaf(t) for t in start]
        opt = make(params)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        for gs in grads_for(params, 6, seed=4):
            run(opt, params, [gs])
            sched.step()
        results.append([p.detach() for p in params])
    moved = not torch.equal(results[0][0], start[0])
    assert moved
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_same(a, b)


def test_weighted_mirror_descent_is_literal_w_minus_lr_a_inverse_g():
    """mirror_map="weighted": w <- w - lr A^{-1} g for each flattened parameter, against numpy's solve, in float64
    (bitwise to rounding) and in float32 with a float64 A; two groups with their own A of their own size."""
    rng = np.random.default_rng(0)

    def spd(d):
        m = rng.normal(size=(d, d))
        return m @ m.T + 0.5 * np.eye(d)

    A6, A5 = spd(6), spd(5)
    for dtype, rtol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
        w = leaf(torch.as_tensor(rng.normal(size=(2, 3))).to(dtype))
        v = leaf(torch.as_tensor(rng.normal(size=5)).to(dtype))
        ref = [w.detach().double().numpy().reshape(-1).copy(), v.detach().double().numpy().copy()]
        opt = adaptim.MirrorDescent(
            [{"params": [w], "A": torch.as_tensor(A6)}, {"params": [v], "A": torch.as_tensor(A5), "lr": 0.05}],
            lr=0.2,
            mirror_map="weighted",
        )
        for gs in grads_for([w, v], 5, seed=2):
            run(opt, [w, v], [gs])
            ref[0] = ref[0] - 0.2 * np.linalg.solve(A6, gs[0].double().numpy().reshape(-1))
            ref[1] = ref[1] - 0.05 * np.linalg.solve(A5, gs[1].double().numpy())
        np.testing.assert_allclose(w.detach().double().numpy().reshape(-1), ref[0], rtol=rtol, atol=rtol)
        np.testing.assert_allclose(v.detach().double().numpy(), ref[1], rtol=rtol, atol=rtol)


def test_weighted_follows_a_changed_in_place_and_a_replaced_a():
    """The Cholesky factor is kept per A: an A written in place (or a new A in the group) is the one used next."""
    w, u = leaf(torch.ones(3, dtype=torch.float64)), leaf(torch.ones(3, dtype=torch.float64))
    A = torch.diag(torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64))
    opt = adaptim.MirrorDescent([w], lr=1.0, mirror_map="weighted", A=A)
    w.grad = torch.ones(3, dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([0.0, 0.5, 0.75], dtype=torch.float64))
    A.mul_(2)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([-0.5, 0.25, 0.625], dtype=torch.float64))
    opt.param_groups[0]["A"] = torch.eye(3, dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([-1.5, -0.75, -0.375], dtype=torch.float64))
    opt.param_groups[0]["A"] = -torch.eye(3, dtype=torch.float64)
    u.grad = None
    before = w.detach().clone()
    with pytest.raises(ValueError, match="param group 0.*positive definite"):
        opt.step()
    assert_same(w.detach(), before)


@pytest.mark.parametrize("dim", [None, 1])
def test_entropy_mirror_descent_is_exponentiated_gradient_bitwise(dim):
    shapes = [(3, 4), (2, 5)]
    a = [simplex(s, i, dim=dim) for i, s in enumerate(shapes)]
    b = [leaf(p) for p in a]
    md = adaptim.MirrorDescent(a, lr=0.8, mirror_map="entropy", dim=dim)
    eg = adaptim.ExponentiatedGradient(b, lr=0.8, dim=dim)
    for gs in grads_for(a, 5, seed=7, scale=3.0):
        run(md, a, [gs])
        run(eg, b, [gs])
    for p, q in zip(a, b):
        assert_same(p.detach(), q.detach())


def test_weighted_checkpoint_resumes_bitwise():
    """A (a group entry) travels in the state dict; a loaded optimizer continues the same trajectory."""
    A = torch.tensor([[2.0, 0.3], [0.3, 1.0]])
    w = leaf(torch.tensor([1.0, -1.0]))
    opt = adaptim.MirrorDescent([w], lr=0.1, mirror_map="weighted", A=A)
    steps = grads_for([w], 6, seed=5)
    run(opt, [w], steps[:3])
    saved = copy.deepcopy(opt.state_dict())
    w2 = leaf(w.detach())
    opt2 = adaptim.MirrorDescent([w2], lr=0.1, mirror_map="weighted", A=torch.eye(2))
    opt2.load_state_dict(saved)
    assert torch.equal(opt2.param_groups[0]["A"], A)
    run(opt, [w], steps[3:])
    run(opt2, [w2], steps[3:])
    assert_same(w.detach(), w2.detach())


def test_low_precision_parameter_stays_on_the_simplex_of_its_dtype():
    w = simplex((4, 8), 0, torch.bfloat16)
    opt = adaptim.ExponentiatedGradient([w], lr=0.5)
    run(opt, [w], grads_for([w], 20, seed=1, scale=3.0))
    x = w.detach()
    assert x.dtype == torch.bfloat16 and float(x.min()) >= 0
    assert abs(float(x.double().sum()) - 1) <= simplex_tolerance(x.numel(), torch.bfloat16)


def test_exponentiated_gradient_learns_mixture_weights():
    """A use: the weights of a mixture of fixed predictors, fitted by EG on the squared error, approach the true
    weights (the loss falls below 1% of its start)."""
    gen = torch.Generator().manual_seed(0)
    preds = torch.randn(200, 4, generator=gen, dtype=torch.float64)
    true = torch.tensor([0.6, 0.3, 0.1, 0.0], dtype=torch.float64)
    y = preds @ true
    w = leaf(torch.full((4,), 0.25, dtype=torch.float64))
    opt = adaptim.ExponentiatedGradient([w], lr=1.0)

    def closure():
        opt.zero_grad()
        loss = ((preds @ w - y) ** 2).mean()
        loss.backward()
        return loss

    first = float(closure().detach())
    for _ in range(300):
        opt.step(closure)
    assert float(closure().detach()) < 0.01 * first
    torch.testing.assert_close(w.detach(), true, rtol=0, atol=0.05)


# --------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("make", ["eg", "md_entropy"])
def test_parameters_off_the_simplex_are_refused_naming_the_parameter(make):
    def build(params, **kw):
        if make == "eg":
            return adaptim.ExponentiatedGradient(params, lr=0.1, **kw)
        return adaptim.MirrorDescent(params, lr=0.1, mirror_map="entropy", **kw)

    good = simplex((3,), 0)
    with pytest.raises(ValueError, match=r"parameter 1 of param group 0 \(shape \(2,\)\).*negative entries"):
        build([good, leaf(torch.tensor([1.5, -0.5]))])
    with pytest.raises(ValueError, match=r"parameter 0 of param group 0 \('mix.weights'\).*sum to 1.2"):
        build([("mix.weights", leaf(torch.tensor([0.6, 0.6])))])
    with pytest.raises(ValueError, match="NaN or infinite"):
        build([leaf(torch.tensor([math.nan, 1.0]))])
    with pytest.raises(ValueError, match="slice along dim=-1 sums"):
        build([leaf(torch.tensor([[0.5, 0.5], [0.7, 0.7]]))], dim=-1)
    with pytest.raises(ValueError, match="dim=1 is out of range"):
        build([simplex((3,), 1)], dim=1)
    # the stated tolerance, max(1e-6, n eps): inside passes, beyond is refused
    n = 4
    tol = simplex_tolerance(n, torch.float64)
    build([leaf(torch.full((n,), 0.25, dtype=torch.float64) + 0.4 * tol / n)])
    with pytest.raises(ValueError, match="tolerance 1e-06"):
        build([leaf(torch.full((n,), 0.25, dtype=torch.float64) + 2 * tol / n)])
    # rows: each row its simplex; empty parameters are skipped; a refused add_param_group adds nothing
    opt = build([simplex((2, 3), 2, dim=1), leaf(torch.empty(0))], dim=1)
    with pytest.raises(ValueError, match="param group 1"):
        opt.add_param_group({"params": [leaf(torch.ones(2))]})
    assert len(opt.param_groups) == 1


def test_mirror_descent_refusals():
    w = leaf(torch.ones(3))
    with pytest.raises(ValueError, match="mirror_map must be one of \\('euclidean', 'weighted', 'entropy'\\)"):
        adaptim.MirrorDescent([w], mirror_map="kl")
    with pytest.raises(ValueError, match="needs A"):
        adaptim.MirrorDescent([w], mirror_map="weighted")
    with pytest.raises(ValueError, match="A is used by mirror_map='weighted' only"):
        adaptim.MirrorDescent([w], A=torch.eye(3))
    with pytest.raises(ValueError, match="dim is used by mirror_map='entropy' only"):
        adaptim.MirrorDescent([w], dim=0)
    with pytest.raises(ValueError, match="symmetric"):
        adaptim.MirrorDescent([w], mirror_map="weighted", A=torch.triu(torch.ones(3, 3)))
    with pytest.raises(ValueError, match="positive definite"):
        adaptim.MirrorDescent([w], mirror_map="weighted", A=torch.diag(torch.tensor([1.0, 0.0, 1.0])))
    with pytest.raises(ValueError, match=r"A is 2 x 2 but parameter 0 \(shape \(3,\)\) has 3 entries"):
        adaptim.MirrorDescent([w], mirror_map="weighted", A=torch.eye(2))
    with pytest.raises(ValueError, match="lr"):
        adaptim.MirrorDescent([w], lr=-1.0)
    with pytest.raises(TypeError, match="view_as_real"):
        adaptim.MirrorDescent([leaf(torch.ones(2, dtype=torch.complex64))])
    with pytest.raises(TypeError, match="view_as_real"):
        adaptim.ExponentiatedGradient([leaf(torch.ones(2, dtype=torch.complex64) / 2)])
    opt = adaptim.MirrorDescent([w], lr=0.1)
    opt.param_groups[0]["mirror_map"] = "bregman"
    w.grad = torch.ones(3)
    with pytest.raises(ValueError, match="param group 0.*mirror_map"):
        opt.step()
    assert torch.equal(w.detach(), torch.ones(3))


def test_nonfinite_gradient_is_refused_before_any_change():
    w = simplex((4,), 0)
    opt = adaptim.ExponentiatedGradient([w], lr=1.0)
    before = w.detach().clone()
    w.grad = torch.tensor([1.0, math.inf, 0.0, 0.0])
    with pytest.raises(RuntimeError, match="NaN or infinite"):
        opt.step()
    assert_same(w.detach(), before)
