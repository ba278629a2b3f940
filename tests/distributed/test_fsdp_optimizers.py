"""adaptim's optimizers on FSDP2 (``fully_shard``) parameters: 2 CPU processes, gloo, loopback only.

One launch of two processes (tests/distributed/_fsdp_worker.py) runs every case; each test reads what they saved.
A process that hangs in a collective is killed at the deadline and the tests fail (gloo's own timeout is 60 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
SRC = HERE.parent.parent / "src"
WORLD = 2
ELEMENTWISE = ["SGD", "Adam", "AdamW", "RMSProp", "AdaGrad"]
MATRIX = ["Adafactor", "Muon", "MuonAllMatrices", "Shampoo", "IdealizedShampoo", "Steepest", "AdamNMF", "AdaGradNorm"]
DTENSOR = [
    f"dtensor:{n}" for n in ("Muon", "Shampoo", "AdamW", "Adafactor", "Steepest", "AdamNMF", "IdealizedShampoo")
]  # placed by hand: Shard(1), uneven, Replicate
DTENSOR += [f"dtensor:{n}" for n in ("SteepestLoop", "SteepestMajorization", "SteepestInf")]  # owner-computed
# decay, momentum, roots every 2 steps, and a step without one parameter's gradient: the owners stay
DTENSOR += ["dtensor:ShampooPartial", "dtensor:IdealizedShampooPartial"]
DTENSOR += ["dtensor:AdamW-bfloat16-kahan", "dtensor:Muon-bfloat16-nearest"]  # low precision: float32 working copies
CASES = ELEMENTWISE + MATRIX + DTENSOR
DEADLINE_S = 120

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason="needs gloo"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("fsdp")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    env.setdefault("ADAPTIM_FUSED", "0")  # no kernel compiles in the workers: the fused path is tested elsewhere
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_fsdp_worker.py"), str(r), str(WORLD), str(tmp / "init"), str(tmp), *CASES],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(WORLD)
    ]
    logs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=DEADLINE_S)
            logs.append(out.decode(errors="replace"))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"the {WORLD} FSDP processes did not finish within {DEADLINE_S} s (a hung collective)")
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r} exited with {p.returncode}:\n{logs[r][-3000:]}"
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _case(runs: list[dict], name: str) -> list[dict]:
    out = [r[name] for r in runs]
    for r, o in enumerate(out):
        assert "error" not in o, f"rank {r}, {name}:\n{o['error']}"
    return out


#: FSDP's gradient (the mean of the ranks' half-batch means, reduce-scattered) differs from the one-process one
#: by rounding; these rules amplify it more in 3 steps (U V^T by SVD, AdamNMF's sign-like first steps on entries
#: whose gradient is near 0): the same comparison, with a looser bound. The DTensor cases below give both runs the
#: same gradients and are exact.
LOOSER = {"Steepest": 1e-5, "AdamNMF": 1e-5}
#: AdamNMF on this model amplifies a 1e-7 relative change of the gradient past 1e-4 by its fourth step, in one
#: process alone: its fourth (resumed) step is compared through the state's kinds only; the DTensor cases below
#: check its sharded step exactly
SENSITIVE = {"AdamNMF"}
#: the state entries kept whole (plain tensors) by one owner rank only, per rule
OWNER_STATE = {"Shampoo": ("kron_", "factor_", "inv_root_", "grafting_"), "IdealizedShampoo": ("factor_",)}


@pytest.mark.parametrize("name", ELEMENTWISE + MATRIX)
def test_fsdp_ranks_agree_and_match_one_process_on_the_full_batch(runs, name):
    ranks = _case(runs, name)
    for k, ref in ranks[0]["ref"].items():
        for r, o in enumerate(ranks):
            assert torch.equal(o["full"][k], ranks[0]["full"][k]), f"{name}: rank {r}'s {k} differs from rank 0's"
        err = (ranks[0]["full"][k] - ref).abs().max().item()
        assert err <= LOOSER.get(name, 1e-6), f"{name}: {k} is {err:.3g} from the one-process run"


@pytest.mark.parametrize("name", ELEMENTWISE + MATRIX)
def test_fsdp_resumes_a_one_process_checkpoint(runs, name):
    """A one-process optimizer's state_dict (whole tensors) loads into the sharded model's optimizer: its state
    becomes DTensors (each rank's chunk, or replicated), and the next step agrees with the one-process one."""
    for r, o in enumerate(_case(runs, name)):
        kinds = {k: v for k, v in o["resume_kinds"].items() if not k.endswith(".step")}
        if name in OWNER_STATE:  # the statistics are kept whole on their owner
            kinds = {k: v for k, v in kinds.items() if not k.split(".", 1)[1].startswith(OWNER_STATE[name])}
        assert all(v.startswith("DTensor") for v in kinds.values()), (r, o["resume_kinds"])
        for k, ref in o["resume_ref"].items() if name not in SENSITIVE else ():
            err = (o["resume_full"][k] - ref).abs().max().item()
            assert err <= LOOSER.get(name, 1e-6), f"{name}, rank {r}: {k} is {err:.3g} from the one-process run"


@pytest.mark.parametrize("name", DTENSOR)
def test_dtensor_parameters_given_the_same_gradients_step_as_one_process_bitwise(runs, name):
    """Columns split (Shard(1)), rows split unevenly, a replicated matrix: the gathered and owner-computed steps
    are the one-process step on the same whole tensors, and the elementwise ones the same arithmetic per entry."""
    ranks = _case(runs, name)
    for k, ref in ranks[0]["ref"].items():
        for r, o in enumerate(ranks):
            assert torch.equal(o["full"][k], ref), f"{name}: rank {r}'s parameter {k} differs from the one-process one"


@pytest.mark.parametrize("name", ["dtensor:ShampooPartial", "dtensor:IdealizedShampooPartial"])
def test_dtensor_owner_state_dict_resumes_on_the_same_ranks(runs, name):
    """Each rank's state_dict (its owned statistics whole, the others left out) loaded into a new optimizer on the
    same ranks gives the same next step, bitwise."""
    for r, o in enumerate(_case(runs, name)):
        assert o["reload_equal"], f"{name}: rank {r}'s resumed step differs"


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_fsdp_elementwise_step_runs_on_local_shards_without_collectives(runs, name):
    for r, o in enumerate(_case(runs, name)):
        assert o["comm_unchecked"] == {}, f"rank {r}: {o['comm_unchecked']}"
        # the finite check: one all-reduce of every flag, so that the ranks agree
        assert sum(o["comm_checked"].values()) == 1, f"rank {r}: {o['comm_checked']}"


#: the rules whose per-matrix work runs once, on an owner rank (owner_compute: 2 all-to-alls per group)
OWNED = ["Muon", "MuonAllMatrices", "Steepest", "Shampoo", "IdealizedShampoo"]


@pytest.mark.parametrize("name", OWNED)
def test_fsdp_owner_rules_compute_each_matrix_once_with_two_all_to_alls(runs, name):
    """Momentum and the AdamW side on the shards; one all-to-all brings each matrix's update to its owner, one
    sends the directions' shards back: two collectives per group and step (Muon: one matrix, hidden.weight, or
    three, the embedding and the head too; Steepest: all 7 parameters, vectors as columns)."""
    for r, o in enumerate(_case(runs, name)):
        assert sum(o["comm_unchecked"].values()) == 2, f"rank {r}: {o['comm_unchecked']}"
        assert all("alltoall" in k for k in o["comm_unchecked"]), o["comm_unchecked"]


@pytest.mark.parametrize("name", ["Steepest", "Shampoo", "IdealizedShampoo"])
def test_fsdp_owner_rules_decompose_each_matrix_on_one_rank(runs, name):
    """Each SVD (Steepest) or eigendecomposition (Shampoo's roots) runs on one rank only: the ranks' counts in one
    step sum to one process's, and both ranks have some (the 7 parameters' costs spread over both ranks)."""
    ranks = _case(runs, name)
    for op in ("svd", "eigh"):
        counts, one = [o["linalg"][op] for o in ranks], ranks[0]["linalg_ref"][op]
        assert sum(counts) == one, f"{name}, {op}: ranks {counts}, one process {one}"
        assert one == 0 or min(counts) > 0, f"{name}: the {op} calls per rank {counts} are not shared"
    assert sum(ranks[0]["linalg_ref"].values()) > 0, name


@pytest.mark.parametrize("name", [n for n in MATRIX if n not in OWNED])
def test_fsdp_gathered_rules_gather_a_group_with_one_all_gather(runs, name):
    """A rule that needs whole tensors gets the group's parameters, gradients and sharded state from one
    all-gather of a flat buffer (replicated statistics stay where they are); the finite check adds all-reduces."""
    for r, o in enumerate(_case(runs, name)):
        (op, count), *more = o["comm_unchecked"].items()
        assert not more and count == 1 and "allgather" in op, f"rank {r}: {o['comm_unchecked']}"
        extra = {k: v - o["comm_unchecked"].get(k, 0) for k, v in o["comm_checked"].items()}
        assert {k for k, v in extra.items() if v} == {"c10d.allreduce_"}, f"rank {r}: {o['comm_checked']}"


def test_fsdp_owners_balance_the_work():
    """The assignment every rank computes alike: each item once, the busiest rank within total / N + the largest."""
    from adaptim.distributed.dtensor import owners

    gen = torch.Generator().manual_seed(0)
    for world in (1, 2, 3, 5):
        for k in (0, 1, 4, 7, 12):
            costs = (torch.rand(k, generator=gen) * 100).tolist()
            got = owners(costs, world)
            assert len(got) == k and all(0 <= r < world for r in got)
            load = [sum(c for c, r in zip(costs, got) if r == rank) for rank in range(world)]
            assert max(load, default=0) <= sum(costs) / world + max(costs, default=0) + 1e-9
            assert got == owners(costs, world)


def test_fsdp_state_is_made_like_the_parameter(runs):
    adam = _case(runs, "AdamW")[0]["kinds"]
    assert adam and all(v.startswith("DTensorS(0)") for k, v in adam.items() if not k.endswith(".step"))
    factor = _case(runs, "Adafactor")[0]["kinds"]
    rows = [v for k, v in factor.items() if k.endswith(("exp_avg_sq_row", "exp_avg_sq_col"))]
    assert rows and all(v == "DTensorR" for v in rows)
    # Shampoo, IdealizedShampoo: each parameter's statistics (and grafting sums) whole, plain tensors, on exactly
    # one rank; the momentum sharded like the parameter on every rank
    for name, prefixes in OWNER_STATE.items():
        ranks = [o["kinds"] for o in _case(runs, name)]
        held = [{k: v for k, v in kinds.items() if k.split(".", 1)[1].startswith(prefixes)} for kinds in ranks]
        assert all(v == "Tensor" for h in held for v in h.values()), (name, held)
        owners = [{k.split(".")[0] for k in h} for h in held]
        n = _case(runs, name)[0]["n_params"]
        assert set.union(*owners) == {str(i) for i in range(n)} and not set.intersection(*owners), (name, owners)
        for kinds in ranks:
            assert all(v.startswith("DTensorS(") for k, v in kinds.items() if k.endswith(".momentum_buffer"))


@pytest.mark.parametrize("name", ELEMENTWISE + MATRIX)
def test_fsdp_nan_on_one_ranks_shard_raises_on_every_rank_and_changes_nothing(runs, name):
    for r, o in enumerate(_case(runs, name)):
        assert "NaN or infinite" in o["nan"], f"rank {r}: {o['nan']}"
        assert o["nan_unchanged"], f"rank {r}: the refused step changed a parameter"
    assert len({o["nan"] for o in _case(runs, name)}) == 1  # the same message on every rank
