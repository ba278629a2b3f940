"""Shampoo's state layout: each statistic A_i and its cached root Q_i share one (n + 1, n) tensor ``kron_{b}_{i}``
(two disjoint triangles), so the state is at most distributed Shampoo's at equal settings, and the roots lose no
precision to it.

Distributed Shampoo (facebookresearch/optimizers, default ``RootInvShampooPreconditionerConfig``:
``use_symmetric_packing=True``, float32 factor and inverse-root matrices) keeps, per block and preconditioned
dimension n, n (n + 1) / 2 floats of the factor and as many of the inverse root; every dimension longer than
``max_preconditioner_dim`` is blocked, vectors included; Adam grafting adds one float per parameter entry (with
beta1 = 0 and momentum 0, no filtered gradient or momentum buffer). :func:`distributed_shampoo_bytes` is that count.
"""

from __future__ import annotations

import math

import pytest
import torch

from adaptim.functional.shampoo import ShampooPreconditioner, block_slices, kron_views
from adaptim.optim.shampoo import Shampoo

F64 = torch.float64


def mpow_reference(A: torch.Tensor, p: float, eps: float) -> torch.Tensor:
    """(A + eps I)^p in float64 by a symmetric eigendecomposition."""
    evals, evecs = torch.linalg.eigh(A.double())
    return evecs @ torch.diag((evals.clamp_min(0) + eps) ** p) @ evecs.T


def distributed_shampoo_bytes(shapes, max_dim=1024) -> int:
    total = 0
    for s in shapes:
        total += 4 * math.prod(s)  # Adam grafting
        for sl in block_slices(tuple(s) if s else (1,), max_dim):
            total += sum(4 * n * (n + 1) for n in (x.stop - x.start for x in sl))
    return total


def _state_bytes(opt) -> int:
    return sum(v.numel() * v.element_size() for st in opt.state.values() for v in st.values() if torch.is_tensor(v))


@pytest.mark.parametrize("max_dim", [1024, 40])
def test_state_is_at_most_distributed_shampoos(max_dim):
    """GPT-like shapes (d = 24): ours = theirs + one 4-byte step per tensor - what a diagonal long vector saves."""
    d = 24
    shapes = [(d, d)] * 4 + [(4 * d, d), (d, 4 * d)] + [(d,)] * 5 + [(4 * d,)]
    params = [torch.zeros(s, requires_grad=True) for s in shapes]
    opt = Shampoo(params, max_preconditioner_dim=max_dim)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    ours, theirs = _state_bytes(opt), distributed_shampoo_bytes(shapes, max_dim)
    diagonal_saving = sum(
        distributed_shampoo_bytes([s], max_dim) - 4 * 3 * s[0] for s in shapes if len(s) == 1 and s[0] > max_dim
    )
    assert ours == theirs + 4 * len(shapes) - diagonal_saving
    assert ours <= theirs if max_dim == 40 else ours == theirs + 4 * len(shapes)
    for st in opt.state.values():  # a kron tensor per block and dimension: exactly n (n + 1) floats
        for k, v in st.items():
            if k.startswith("kron_"):
                assert v.shape == (v.shape[1] + 1, v.shape[1])


def _reference_direction(G_list, eps, freq, exponent=-0.25):
    """float64 literal Shampoo for one matrix: the direction of the last step, stale roots in between."""
    m, n = G_list[0].shape
    L, R = torch.zeros(m, m, dtype=F64), torch.zeros(n, n, dtype=F64)
    QL, QR = torch.eye(m, dtype=F64), torch.eye(n, dtype=F64)
    for t, G in enumerate(G_list, start=1):
        G = G.double()
        L, R = L + G @ G.T, R + G.T @ G
        if t % freq == 0:
            QL, QR = mpow_reference(L, exponent, eps), mpow_reference(R, exponent, eps)
    return QL @ G @ QR


@pytest.mark.parametrize("shape", [(6, 5), (40, 33)])
def test_roots_keep_their_precision(shape):
    """After N steps the float32 direction (from the packed statistic and root) matches the float64 literal one
    to 1e-5 of its largest entry (measured: 9e-7 and 1.4e-6, the same to three digits as with the former
    full-matrix layout); the stored roots are exactly symmetric and equal the float64 root of the stored
    statistic to float32 rounding."""
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(shape, generator=gen) for _ in range(12)]
    W = torch.zeros(shape, requires_grad=True)
    opt = Shampoo([W], lr=1.0, eps=1e-3, grafting=None, precondition_frequency=3)
    for G in grads:
        before = W.detach().clone()
        W.grad = G.clone()
        opt.step()
    direction = before - W.detach()
    expected = _reference_direction(grads, 1e-3, 3)
    torch.testing.assert_close(direction.double(), expected, rtol=0, atol=1e-5 * float(expected.abs().max()))
    pc = ShampooPreconditioner.from_state(opt.state[W], shape, 1024)
    for i in range(2):
        q = pc.blocks[0].root(i)
        assert torch.equal(q, q.T)
        a = pc.blocks[0].statistic(i).double()
        ref = mpow_reference(a, -0.25, 1e-3)
        torch.testing.assert_close(q.double(), ref, rtol=0, atol=2e-5 * float(ref.abs().max()))


def test_kron_views_are_disjoint_triangles():
    kron = torch.arange(20.0).reshape(5, 4)
    a, q = kron_views(kron)
    lower = torch.ones(4, 4, dtype=torch.bool).tril()
    covered = torch.zeros(5, 4, dtype=torch.int64)
    covered[1:] += lower.long()
    covered[:-1] += lower.T.long()
    assert torch.equal(covered, torch.ones(5, 4, dtype=torch.int64))  # every entry is A's or Q's, none both
    assert a.data_ptr() == kron[1:].data_ptr() and q.data_ptr() == kron.data_ptr()
