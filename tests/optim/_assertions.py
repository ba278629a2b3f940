"""Bitwise comparisons shared by the optimizer tests (imported by name: pytest puts this folder on sys.path)."""

import torch


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    """Bitwise equality, dtype and shape included."""
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    assert torch.equal(a, b), (a, b)


def assert_same_state(s1: dict, s2: dict) -> None:
    """Two optimizer states for one parameter hold the same entries, tensors bitwise equal."""
    assert set(s1) == set(s2)
    for k in s1:
        if isinstance(s1[k], torch.Tensor):
            assert_same(s1[k], s2[k])
        else:
            assert s1[k] == s2[k], k
