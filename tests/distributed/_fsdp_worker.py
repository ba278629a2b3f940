"""The processes of tests/distributed/test_fsdp_optimizers.py: FSDP2 (``fully_shard``) on CPU with gloo.

Each rank trains a tiny model (an embedding, a LayerNorm, two Linear layers) sharded by ``fully_shard`` on half
of a batch, and beside it the same model, unsharded, on the whole batch in this process (the one-process
reference); it saves what the tests compare: both models' parameters, the state's kinds, the collectives of a
step counted by ``CommDebugMode``, and what a NaN on one rank's shard did on this rank.
"""

from __future__ import annotations

import copy
import os
import sys
import traceback
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

STEPS = 3  # steps compared with the one-process run
BATCH = 8  # the whole batch; each rank gets BATCH / world


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.norm = nn.LayerNorm(8)
        self.hidden = nn.Linear(8, 12)
        self.head = nn.Linear(12, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.hidden(self.norm(self.emb(ids)))))


def make_optimizer(name: str, model: nn.Module):
    import adaptim

    if name == "SGD":
        return adaptim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if name == "Adam":
        return adaptim.Adam(model.parameters(), lr=1e-2)
    if name == "AdamW":
        return adaptim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    if name == "Adafactor":
        return adaptim.Adafactor(model.parameters(), lr=1e-2, beta1=0.9)
    if name == "Muon":
        return adaptim.Muon(adaptim.muon_param_groups(model, adamw_lr=1e-2), lr=0.02, weight_decay=0.01)
    if name == "Shampoo":  # eps well above rounding: roots of nearly singular 2-step statistics amplify it
        return adaptim.Shampoo(model.parameters(), lr=1e-2, eps=1e-3, precondition_frequency=1, momentum=0.5)
    if name == "RMSProp":
        return adaptim.RMSProp(model.parameters(), lr=1e-2, betas=(0.5, 0.99))
    if name == "AdaGrad":
        return adaptim.AdaGrad(model.parameters(), lr=1e-1)
    if name == "AdaGradNorm":  # one scalar over every parameter: a sum over whole gradients
        return adaptim.AdaGradNorm(model.parameters(), lr=1e-1)
    if name == "Steepest":
        return adaptim.Steepest(model.parameters(), lr=1e-2, momentum=0.5)
    if name == "IdealizedShampoo":
        return adaptim.IdealizedShampoo(model.parameters(), lr=1e-2, eps=1e-3)
    if name == "AdamNMF":
        return adaptim.AdamNMF(model.parameters(), lr=1e-2, beta1=0.9)
    if name == "MuonAllMatrices":  # every parameter in one Muon group but the vectors: what the report ran
        mats = [p for p in model.parameters() if p.dim() >= 2]
        rest = [p for p in model.parameters() if p.dim() < 2]
        return adaptim.Muon([{"params": mats}, {"params": rest, "use_muon": False}], lr=0.02)
    raise ValueError(name)


def _batch(world: int, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 11, (BATCH,), generator=gen)
    target = torch.randint(0, 5, (BATCH,), generator=gen)
    per = BATCH // world
    return ids, target, ids[rank * per : (rank + 1) * per], target[rank * per : (rank + 1) * per]


def _step(model, opt, ids, target) -> None:
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(ids), target).backward()
    opt.step()


def _state_kinds(opt) -> dict[str, str]:
    from torch.distributed.tensor import DTensor

    out = {}
    for i, p in enumerate(p for g in opt.param_groups for p in g["params"]):
        for k, v in opt.state.get(p, {}).items():
            kind = type(v).__name__
            if isinstance(v, DTensor):
                kind = "DTensor" + "".join(str(pl) for pl in v.placements)
            out[f"{i}.{k}"] = kind
    return out


def _counted_step(model, opt, ids, target, check) -> dict[str, int]:
    from torch.distributed.tensor.debug import CommDebugMode

    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(ids), target).backward()  # FSDP's own collectives: not counted
    opt.check_finite = check
    with CommDebugMode() as comm:
        opt.step()
    opt.check_finite = True
    return {str(k): v for k, v in comm.get_comm_counts().items()}


class LinalgCounter:
    """Counts the matrices decomposed by ``torch.linalg.svd`` and ``torch.linalg.eigh`` (a batch of k counts k)
    while active: the per-rank work of a step."""

    NAMES = ("svd", "eigh")

    def __enter__(self) -> dict[str, int]:
        self.counts = dict.fromkeys(self.NAMES, 0)
        self.saved = {n: getattr(torch.linalg, n) for n in self.NAMES}
        for n, fn in self.saved.items():
            setattr(torch.linalg, n, self._counting(n, fn))
        return self.counts

    def _counting(self, name, fn):
        def counted(A, *args, **kwargs):
            self.counts[name] += A.shape[:-2].numel()
            return fn(A, *args, **kwargs)

        return counted

    def __exit__(self, *exc) -> None:
        for n, fn in self.saved.items():
            setattr(torch.linalg, n, fn)


def _linalg_step(model, opt, ids, target) -> dict[str, int]:
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(ids), target).backward()
    with LinalgCounter() as counts:
        opt.step()
    return counts


def run_case(name: str, rank: int, world: int, mesh) -> dict:
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    ref = Tiny()
    model = copy.deepcopy(ref)
    for m in (model.hidden, model.head):
        fully_shard(m, mesh=mesh)
    fully_shard(model, mesh=mesh)
    ids, target, my_ids, my_target = _batch(world, rank)
    ref_opt, opt = make_optimizer(name, ref), make_optimizer(name, model)
    for _ in range(STEPS):
        _step(ref, ref_opt, ids, target)
        _step(model, opt, my_ids, my_target)
    out = {
        "ref": {k: v.detach().clone() for k, v in ref.state_dict().items()},
        "full": {k: v.full_tensor().detach().clone() for k, v in model.state_dict().items()},
        "kinds": _state_kinds(opt),
        "n_params": len(list(model.parameters())),
    }
    # a one-process checkpoint resumed on the sharded model: a new optimizer loads ref_opt's state (whole
    # tensors), and one more step of each must agree as the runs above do
    resumed = make_optimizer(name, model)
    resumed.load_state_dict(ref_opt.state_dict())
    _step(ref, ref_opt, ids, target)
    _step(model, resumed, my_ids, my_target)
    out["resume_ref"] = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    out["resume_full"] = {k: v.full_tensor().detach().clone() for k, v in model.state_dict().items()}
    out["resume_kinds"] = _state_kinds(resumed)
    out["comm_checked"] = _counted_step(model, opt, my_ids, my_target, True)
    out["comm_unchecked"] = _counted_step(model, opt, my_ids, my_target, False)
    out["linalg"] = _linalg_step(model, opt, my_ids, my_target)  # this rank's decompositions in one step
    out["linalg_ref"] = _linalg_step(ref, ref_opt, ids, target)  # one process's
    # a NaN in one entry of rank 1's shard of the hidden weight only: every rank must refuse the step
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(my_ids), my_target).backward()
    if rank == 1:
        model.hidden.weight.grad.to_local()[0, 0] = float("nan")
    before = {k: v.to_local().clone() for k, v in model.state_dict().items()}
    try:
        opt.step()
        out["nan"] = "no error"
    except RuntimeError as err:
        out["nan"] = str(err)
    out["nan_unchanged"] = all(torch.equal(before[k], v.to_local()) for k, v in model.state_dict().items())
    dist.barrier()  # both ranks get here: nobody is left in a collective
    return out


def run_dtensor_case(name: str, rank: int, world: int, mesh) -> dict:
    """DTensor parameters placed by hand (tensor-parallel style: columns split, rows split, uneven, replicated),
    given the same whole gradients as a one-process run."""
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    import adaptim

    name, _, precision = name.partition("-")  # "AdamW-bfloat16-kahan": bfloat16 parameters, Kahan write-back
    dtype, _, mode = precision.partition("-")
    gen = torch.Generator().manual_seed(3)
    shapes = [(6, 5), (7, 4), (4, 3), (5, 6)]
    placements = [[Shard(1)], [Shard(0)], [Replicate()], [Shard(0)]]
    ref = [torch.randn(s, generator=gen).to(getattr(torch, dtype or "float32")) for s in shapes]
    params = [nn.Parameter(distribute_tensor(w.clone(), mesh, pl)) for w, pl in zip(ref, placements)]
    ref = [nn.Parameter(w) for w in ref]
    kw = {
        "Muon": dict(lr=0.02, weight_decay=0.01),
        "Shampoo": dict(lr=1e-2, eps=1e-3, precondition_frequency=1),
        "IdealizedShampooPartial": dict(lr=1e-2, eps=1e-3, weight_decay=0.01),
        "ShampooPartial": dict(lr=1e-2, eps=1e-3, precondition_frequency=2, momentum=0.5, weight_decay=0.01),
        "Steepest": dict(momentum=0.5),
        "SteepestLoop": dict(momentum=0.5, foreach=False),  # the per-tensor directions, owner-computed
        "SteepestMajorization": dict(norm="frobenius", rule="majorization", momentum=0.5),
        "SteepestInf": dict(norm="inf", rule="majorization"),  # ||M||_1 sign(M): a sum over the whole tensor
    }
    cls = getattr(adaptim, next((c for c in ("Steepest", "Shampoo", "IdealizedShampoo") if name.startswith(c)), name))
    ref_opt, opt = cls(ref, **kw.get(name, {})), cls(params, **kw.get(name, {}))
    for g in (*ref_opt.param_groups, *opt.param_groups):
        g["low_precision"] = mode or "nearest"
    for t in range(STEPS):
        grads = [torch.randn(s, generator=gen).to(ref[0].dtype) for s in shapes]
        for i, (p, q, g, pl) in enumerate(zip(ref, params, grads, placements)):
            none = name.endswith("Partial") and t == 1 and i == 0  # no gradient: the owners must not move
            p.grad = None if none else g.clone()
            q.grad = None if none else distribute_tensor(g.clone(), mesh, pl)
        ref_opt.step()
        opt.step()
    out = {
        "ref": {str(i): p.detach().clone() for i, p in enumerate(ref)},
        "full": {str(i): p.full_tensor().detach().clone() for i, p in enumerate(params)},
    }
    if name.endswith("Partial"):  # this rank's state_dict, loaded into a new optimizer, gives the same next step
        saved, before = copy.deepcopy(opt.state_dict()), [p.detach().clone() for p in params]
        opt.step()
        after = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, b in zip(params, before):
                p.copy_(b)
        again = cls(params, **kw.get(name, {}))
        again.load_state_dict(saved)
        again.step()
        out["reload_equal"] = all(torch.equal(local_of(p), local_of(a)) for p, a in zip(params, after))
    return out


def local_of(t):
    return t.to_local() if hasattr(t, "to_local") else t


def main(rank: int, world: int, init_file: str, out_dir: str, cases: list[str]) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timedelta(seconds=60)
    )
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh("cpu", (world,))
    results = {}
    try:
        for name in cases:
            try:
                if name.startswith("dtensor:"):
                    results[name] = run_dtensor_case(name.split(":", 1)[1], rank, world, mesh)
                else:
                    results[name] = run_case(name, rank, world, mesh)
            except Exception:  # reported by the test, which names the case
                results[name] = {"error": traceback.format_exc()}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":  # python _fsdp_worker.py RANK WORLD INIT_FILE OUT_DIR CASE...
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:])
