"""Owner computes without processes: the assignment rule, the cost models and the refusals."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import adaptim
from adaptim.distributed import assign_owners, shard


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**6), max_size=40), st.integers(1, 9))
def test_greedy_assignment_bound_and_determinism(costs, world):
    owners = assign_owners([float(c) for c in costs], world)
    assert owners == assign_owners([float(c) for c in costs], world)
    assert all(0 <= r < world for r in owners)
    loads = [sum(c for c, o in zip(costs, owners) if o == r) for r in range(world)]
    if costs:
        assert max(loads) <= sum(costs) / world + max(costs)


def test_largest_first_then_least_loaded():
    # 5 goes to rank 0, 4 to rank 1, 3 to rank 1 (load 4 < 5), 2 to rank 0: loads 7 and 7
    assert assign_owners([2.0, 5.0, 3.0, 4.0], 2) == [0, 0, 1, 1]
    # more ranks than items: the last ranks own nothing
    assert assign_owners([1.0, 1.0], 3) == [0, 1]


def test_cost_models():
    w = torch.zeros(8, 4)
    muon = adaptim.Muon([w])
    assert muon._work_cost(w, muon.param_groups[0]) == 8 * 4 * 4  # m n min(m, n)
    conv = torch.zeros(3, 2, 2)
    assert muon._work_cost(conv, muon.param_groups[0]) == 3 * 4 * 3  # its (3, 4) flattening
    nmf = adaptim.AdamNMF([w], rank=3)
    assert nmf._work_cost(w, nmf.param_groups[0]) == 8 * 4 * 3
    sh = adaptim.Shampoo([w], max_preconditioner_dim=6)
    # blocks (6, 4) and (2, 4): sides 6 and 4, then 2 and 4
    assert sh._work_cost(w, sh.param_groups[0]) == 6**3 + 4**3 + 2**3 + 4**3
    v = torch.zeros(5)
    assert sh._work_cost(v, sh.param_groups[0]) == 5**3  # a vector: full-matrix, n^3
    assert sh._work_cost(torch.zeros(9), sh.param_groups[0]) == 9  # longer than the largest side: diagonal
    fm = adaptim.FullMatrixAdaGrad([v])
    assert fm._work_cost(v, fm.param_groups[0]) == 5**3
    assert adaptim.Adafactor([w])._work_cost(w, {}) == 32  # elementwise: numel
    st_ = adaptim.Steepest([w])
    assert st_._work_cost(w, st_.param_groups[0]) == 8 * 4 * 4


def test_adagrad_norm_refuses_process_group():
    with pytest.raises(ValueError, match="couples every parameter"):
        adaptim.AdaGradNorm([torch.zeros(3, requires_grad=True)], process_group=object())


def test_communication_dtype_needs_a_process_group():
    with pytest.raises(ValueError, match="communication_dtype.*needs a process_group"):
        adaptim.Muon([torch.zeros(3, 3, requires_grad=True)], communication_dtype=torch.bfloat16)


@pytest.mark.skipif(torch.distributed.is_available() and torch.distributed.is_initialized(), reason="initialized")
def test_process_group_without_torch_distributed_initialized():
    with pytest.raises(ValueError, match="process_group: torch.distributed is not initialized"):
        adaptim.Shampoo([torch.zeros(3, 3, requires_grad=True)], process_group=object())


def test_shard_refuses_other_optimizers_and_state():
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match="adaptim optimizer"):
        shard(torch.optim.SGD([p], lr=0.1), object())
    opt = adaptim.AdamW([p])
    p.grad = torch.ones(3)
    opt.step()
    with pytest.raises(ValueError, match="holds state already"):
        shard(opt, object())


def test_consolidate_needs_a_sharded_optimizer():
    with pytest.raises(RuntimeError, match="not sharded"):
        adaptim.Muon([torch.zeros(3, 3, requires_grad=True)]).consolidate_state_dict()
