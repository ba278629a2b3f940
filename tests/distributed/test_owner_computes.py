"""Owner computes on 2 and 3 CPU processes (gloo, loopback): the same parameters and state as one process, bit for
bit; the matrix work split, not repeated; NaN refused on every rank; checkpoints across world sizes; DDP.

Each world size is one spawn of its ranks (module fixtures), running every case of ``_owner_cases``; the tests
below compare their results with the one-process runs made here."""

from __future__ import annotations

import pytest
import torch
from _owner_cases import (
    DDP_STEPS,
    MIXED,
    PARITY,
    STEPS,
    TWO,
    all_runs,
    build,
    ddp_batch,
    ddp_model,
    ddp_optimizer,
    feed,
    make_params,
    mixed_dtypes,
    run,
    train,
)
from _owner_harness import run_ranks

import adaptim

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason="needs gloo"
)


@pytest.fixture(scope="module")
def two():
    return run_ranks(all_runs, 2)


@pytest.fixture(scope="module")
def three():
    return run_ranks(all_runs, 3)


def assert_same_state(got: dict, want: dict) -> None:
    assert got["param_groups"] == want["param_groups"]
    assert sorted(got["state"]) == sorted(want["state"])
    for i, s in want["state"].items():
        assert sorted(got["state"][i]) == sorted(s), i
        for k, v in s.items():
            g = got["state"][i][k]
            assert g.dtype == v.dtype and torch.equal(g, v), (i, k)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("name", [*PARITY, "two"])
def test_parameters_and_state_bitwise_as_one_process(name, world, two, three):
    ranks = two if world == 2 else three
    layout, opt_name = (TWO, "muon_foreach") if name == "two" else (MIXED, name)
    want = run(opt_name, layout, None)
    for r, result in enumerate(ranks):
        got = result["parity"][name]
        for i, (a, b) in enumerate(zip(got["params"], want["params"])):
            assert torch.equal(a, b), f"rank {r}, parameter {i} {tuple(b.shape)}"
    assert_same_state(ranks[0]["parity"][name]["state_dict"], want["state_dict"])
    # each rank keeps the state of its own parameters only
    owned_state = [set(result["parity"][name]["local_state"]) for result in ranks]
    assert sum(len(s) for s in owned_state) == len(want["state_dict"]["state"])
    for r, s in enumerate(owned_state):
        assert all(ranks[0]["parity"][name]["owners"][i] == r for i in s)


def test_a_rank_may_own_nothing(three):
    owners = three[0]["parity"]["two"]["owners"]
    assert len(set(owners)) == 2 and all(result["parity"]["two"]["owners"] == owners for result in three)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("name", ["muon_foreach", "muon_loop", "shampoo", "idealized_shampoo"])
def test_matrix_work_split_not_repeated(name, world, two, three):
    ranks = two if world == 2 else three
    want = run(name, MIXED, None)["count"]
    counts = [result["parity"][name]["count"] for result in ranks]
    assert want > 0 and sum(counts) == want, counts
    owners, costs = ranks[0]["parity"][name]["owners"], ranks[0]["parity"][name]["costs"]
    loads = [sum(c for c, o in zip(costs, owners) if o == r) for r in range(world)]
    assert max(loads) <= sum(costs) / world + max(costs)
    assert all(result["parity"][name]["owners"] == owners for result in ranks)  # every rank agrees


def test_nan_on_the_other_ranks_parameter_raises_on_both(two):
    for r, result in enumerate(two):
        nan = result["nan"]
        assert nan["everyone"] is not None and "NaN" in nan["everyone"], r
        assert nan["unchanged"], r
        assert nan["alone"] is not None, r
    assert "another rank" in two[0]["nan"]["alone"] and "NaN" in two[1]["nan"]["alone"]


def test_consolidated_checkpoint_resumes_on_one_process(two):
    ck = two[0]["checkpoint"]
    params = [p.clone().requires_grad_() for p in ck["saved_params"]]
    opt = build("muon_foreach", params, MIXED, None)
    opt.load_state_dict(ck["saved"])
    feed(params, MIXED, 3)
    opt.step()
    for r, result in enumerate(two):
        for i, (a, b) in enumerate(zip(result["checkpoint"]["after"], params)):
            assert torch.equal(a, b), (r, i)


def test_one_process_state_dict_loads_sharded(two):
    want = run("muon_foreach", MIXED, None)["params"]
    kept = [set(result["checkpoint"]["kept"]) for result in two]
    assert kept[0].isdisjoint(kept[1]) and kept[0] | kept[1]
    for r, result in enumerate(two):
        assert result["checkpoint"]["kept"] == result["checkpoint"]["owned_with_state"], r
        for i, (a, b) in enumerate(zip(result["checkpoint"]["loaded_after"], want)):
            assert torch.equal(a, b), (r, i)


@pytest.mark.parametrize("kind", ["adamw", "muon"])
def test_ddp_ranks_identical_and_close_to_one_process(kind, two):
    model = ddp_model()
    x, y = ddp_batch()
    want = train(kind, model, ddp_optimizer(kind, model, None), x, y)
    got = [result["ddp"][kind] for result in two]
    for a, b in zip(*got):
        assert torch.equal(a, b)
    moved = max(float((w - p.detach()).abs().max()) for w, p in zip(want, ddp_model().parameters()))
    assert moved > 1e-3  # the runs went somewhere in DDP_STEPS steps
    assert max(float((a - w).abs().max()) for a, w in zip(got[0], want)) <= 1e-6, DDP_STEPS


def test_process_group_none_is_unchanged():
    # the same class and arguments, with and without the keyword: bitwise the same run
    params_a, params_b = make_params(MIXED), make_params(MIXED)
    a = build("muon_foreach", params_a, MIXED, None)
    b = adaptim.Muon(
        [
            {"params": [p for p, s in zip(params_b, MIXED) if s[1] == 0]},
            {"params": [p for p, s in zip(params_b, MIXED) if s[1] == 1], "use_muon": False},
        ],
        lr=0.02,
        momentum=0.9,
        weight_decay=0.01,
        foreach=True,
        process_group=None,
    )
    for t in (1, 2):
        feed(params_a, MIXED, t)
        feed(params_b, MIXED, t)
        a.step()
        b.step()
    assert all(torch.equal(x, y) for x, y in zip(params_a, params_b))
    assert "_owner" not in b.__dict__


def test_one_buffer_per_dtype(two):
    want = mixed_dtypes(None)["params"]
    for result in two:
        got = result["mixed_dtypes"]
        assert all(torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(got["params"], want))
        assert got["comm"]["all_gather"] == 2 and got["comm"]["all_reduce"] == 1


def test_narrow_communication_dtype_keeps_ranks_identical(two):
    a, b = (result["narrow_wire"] for result in two)
    assert all(torch.equal(x, y) for x, y in zip(a["params"], b["params"]))
    params = make_params(MIXED)
    opt = adaptim.Muon(params[:6], lr=0.02)
    start = [p.detach().clone() for p in params[:6]]
    for t in range(1, STEPS + 1):
        feed(params, MIXED, t)
        opt.step()
    for x, w, s in zip(a["params"], params, start):
        moved = (w.detach() - s).abs().max()
        # only the steps are rounded (bfloat16: 8 bits), not the parameters
        assert 0 < (x - w.detach()).abs().max() <= 2**-7 * moved
    # the changes travel in 2 bytes each (plus the 4-byte flag of the checks)
    assert a["comm"]["bytes_sent"] == 2 * a["width"] + 4 and a["comm"]["all_gather"] == 1
