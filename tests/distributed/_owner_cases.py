"""The runs of the owner-computes tests: the same code builds the one-process reference (``process_group=None``)
and, on each spawned rank, the sharded optimizer; gradients are drawn from fixed seeds, identical on every rank."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

import adaptim
from adaptim.distributed import shard

STEPS = 3

# (shape, group, grad on which steps: "all", "never", or a set of 1-based steps)
MIXED = [
    ((8, 4), 0, "all"),
    ((8, 4), 0, "all"),
    ((8, 4), 0, "all"),  # three of one shape: not divisible by 2
    ((4, 8), 0, "all"),
    ((6, 6), 0, {1, 3}),  # no gradient at step 2
    ((3, 2, 2), 0, "all"),  # a conv-like weight (flattened to 3 x 4)
    ((5, 3), 0, "never"),  # grad None throughout
    ((7,), 1, "all"),  # vectors
    ((3,), 1, "all"),
]
#: two parameters on three ranks: one rank owns nothing
TWO = [((6, 5), 0, "all"), ((5,), 1, "all")]


def _grad(shape, step: int, index: int, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1000 * step + index)
    return torch.randn(shape, generator=gen, dtype=dtype)


def make_params(layout, dtype=torch.float32) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    return [torch.randn(shape, generator=gen, dtype=dtype).requires_grad_() for shape, _, _ in layout]


def build(name: str, params: list[torch.Tensor], layout, pg: Any) -> adaptim.AdaptimOptimizer:
    """The optimizer ``name`` on ``params`` (groups from ``layout``), sharded over ``pg`` unless it is None."""
    groups = [[p for p, (_, g, _) in zip(params, layout) if g == k] for k in (0, 1)]
    kw = {} if pg is None else {"process_group": pg}
    if name in ("muon_foreach", "muon_loop"):
        foreach = name == "muon_foreach"
        return adaptim.Muon(
            [{"params": groups[0]}, {"params": groups[1], "use_muon": False}],
            lr=0.02,
            momentum=0.9,
            weight_decay=0.01,
            foreach=foreach,
            **kw,
        )
    flat = [{"params": g} for g in groups if g]
    if name == "shampoo":
        return adaptim.Shampoo(flat, lr=0.01, precondition_frequency=1, max_preconditioner_dim=6, **kw)
    if name == "adam_nmf":
        return adaptim.AdamNMF(flat, lr=0.01, rank=2, beta1=0.9, weight_decay=0.01, **kw)
    if name == "adafactor":
        return adaptim.Adafactor(flat, beta1=0.9, weight_decay=0.01, **kw)
    if name == "steepest":
        return adaptim.Steepest(flat, lr=0.02, momentum=0.5, **kw)
    if name == "idealized_shampoo":
        return adaptim.IdealizedShampoo(flat, lr=0.01, max_preconditioner_dim=6, **kw)
    if name == "full_matrix_adagrad":
        return adaptim.FullMatrixAdaGrad(flat, lr=0.1, **kw)
    if name == "adamw":  # any optimizer, sharded after construction (ZeRO-1)
        opt = adaptim.AdamW(flat, lr=0.01, weight_decay=0.01, foreach=True)
        return opt if pg is None else shard(opt, pg)
    raise ValueError(name)


def feed(params: list[torch.Tensor], layout, step: int) -> None:
    for i, (p, (shape, _, when)) in enumerate(zip(params, layout)):
        has = when == "all" or (when != "never" and step in when)
        p.grad = _grad(shape, step, i, p.dtype) if has else None


class Counter:
    """Counts the matrices handed to a linalg function (a batch of k matrices counts k)."""

    def __init__(self, module, name: str) -> None:
        self.module, self.name, self.count = module, name, 0
        self.original = getattr(module, name)

    def __enter__(self) -> Counter:
        def counted(x, *args, **kwargs):
            self.count += math.prod(x.shape[:-2])
            return self.original(x, *args, **kwargs)

        setattr(self.module, self.name, counted)
        return self

    def __exit__(self, *exc) -> None:
        setattr(self.module, self.name, self.original)


def counter_for(name: str) -> Counter | None:
    import adaptim.functional.muon as fm
    import adaptim.functional.shampoo as fs

    if name.startswith("muon"):
        return Counter(fm, "newton_schulz")
    if name in ("shampoo", "idealized_shampoo"):
        return Counter(fs, "psd_power")
    return None


def run(name: str, layout, pg: Any, steps: int = STEPS) -> dict[str, Any]:
    """``steps`` steps; the parameters, the state dict (consolidated onto rank 0 when sharded), the matrices
    counted, and with a group each parameter's owner and cost."""
    params = make_params(layout)
    opt = build(name, params, layout, pg)
    counter = counter_for(name)
    with counter if counter is not None else _nothing():
        for t in range(1, steps + 1):
            feed(params, layout, t)
            opt.step()
    out: dict[str, Any] = {"params": [p.detach().clone() for p in params], "count": counter.count if counter else 0}
    if pg is None:
        out["state_dict"] = opt.state_dict()
        return out
    owner = opt.__dict__["_owner"]
    out["owners"] = [owner.owner_of(p) for p in params]
    out["costs"] = [opt._work_cost(p, g) for g in opt.param_groups for p in g["params"]]
    # the costs in parameter order across groups
    out["costs"] = _in_param_order(opt, params, out["costs"])
    out["local_state"] = sorted(i for i, p in enumerate(params) if opt.state.get(p))
    opt.consolidate_state_dict(to=0)
    if dist.get_rank(pg) == 0:
        out["state_dict"] = opt.state_dict()
    return out


def _in_param_order(opt, params, costs_by_group) -> list[float]:
    order = [p for g in opt.param_groups for p in g["params"]]
    by_id = {id(p): c for p, c in zip(order, costs_by_group)}
    return [by_id[id(p)] for p in params]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


PARITY = (
    "muon_foreach",
    "muon_loop",
    "shampoo",
    "adam_nmf",
    "adafactor",
    "adamw",
    "steepest",
    "idealized_shampoo",
    "full_matrix_adagrad",
)


def parity_runs(rank: int, world_size: int) -> dict[str, Any]:
    """Every optimizer of :data:`PARITY` on :data:`MIXED`, and Muon on :data:`TWO` (a rank may own nothing)."""
    pg = dist.group.WORLD
    out = {name: run(name, MIXED, pg) for name in PARITY}
    out["two"] = run("muon_foreach", TWO, pg)
    return out


def _raises(fn: Callable[[], Any]) -> str | None:
    try:
        fn()
    except RuntimeError as err:
        return str(err)
    return None


def nan_runs(rank: int, world_size: int) -> dict[str, Any]:
    """A NaN gradient on a parameter owned by rank 1, fed to every rank; then a NaN seen by rank 1 alone."""
    pg = dist.group.WORLD
    params = make_params(MIXED)
    opt = build("muon_foreach", params, MIXED, pg)
    feed(params, MIXED, 1)
    opt.step()
    owner = opt.__dict__["_owner"]
    target = next(i for i, p in enumerate(params) if p.grad is not None and owner.owner_of(p) == 1)
    before = [p.detach().clone() for p in params]
    feed(params, MIXED, 2)
    params[target].grad[0, 0] = float("nan")
    everyone = _raises(opt.step)
    unchanged = all(torch.equal(a, p) for a, p in zip(before, params))
    # only rank 1 sees the NaN (gradients that differ across ranks): every rank still raises, none hangs
    feed(params, MIXED, 2)
    mine = next(i for i, p in enumerate(params) if p.grad is not None and owner.owner_of(p) == 0)
    if rank == 1:
        params[mine].grad[0, 0] = float("nan")
    alone = _raises(opt.step)
    return {"everyone": everyone, "unchanged": unchanged, "alone": alone, "target": target}


def checkpoint_runs(rank: int, world_size: int) -> dict[str, Any]:
    """Two sharded steps, consolidated onto rank 0, then a third step; and a one-process state dict loaded into a
    sharded optimizer."""
    pg = dist.group.WORLD
    params = make_params(MIXED)
    opt = build("muon_foreach", params, MIXED, pg)
    for t in (1, 2):
        feed(params, MIXED, t)
        opt.step()
    opt.consolidate_state_dict(to=0)
    saved = opt.state_dict() if rank == 0 else None
    saved_params = [p.detach().clone() for p in params]
    feed(params, MIXED, 3)
    opt.step()
    after = [p.detach().clone() for p in params]
    # the other way: a one-process optimizer's state dict (built here, identical on every rank) loaded sharded
    single_params = make_params(MIXED)
    single = build("muon_foreach", single_params, MIXED, None)
    for t in (1, 2):
        feed(single_params, MIXED, t)
        single.step()
    loaded_params = [p.detach().clone().requires_grad_() for p in single_params]
    loaded = build("muon_foreach", loaded_params, MIXED, pg)
    loaded.load_state_dict(single.state_dict())
    owner = loaded.__dict__["_owner"]
    kept = sorted(i for i, p in enumerate(loaded_params) if loaded.state.get(p))
    owned_with_state = sorted(
        i for i, p in enumerate(loaded_params) if owner.owns(p) and single.state.get(single_params[i])
    )
    feed(loaded_params, MIXED, 3)
    loaded.step()
    return {
        "saved": saved,
        "saved_params": saved_params,
        "after": after,
        "kept": kept,
        "owned_with_state": owned_with_state,
        "loaded_after": [p.detach().clone() for p in loaded_params],
    }


def ddp_model(dtype=torch.float32) -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)
    ).to(dtype)


def ddp_batch(dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(11)
    return torch.randn(12, 6, generator=gen, dtype=dtype), torch.randn(12, 2, generator=gen, dtype=dtype)


DDP_STEPS = 4


def ddp_optimizer(kind: str, model: torch.nn.Module, pg: Any) -> adaptim.AdaptimOptimizer:
    kw = {} if pg is None else {"process_group": pg}
    if kind == "muon":
        return adaptim.Muon(adaptim.muon_param_groups(model, adamw_lr=0.01), lr=0.02, **kw)
    opt = adaptim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    return opt if pg is None else shard(opt, pg)


def train(kind: str, model: torch.nn.Module, opt, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    for _ in range(DDP_STEPS):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def ddp_runs(rank: int, world_size: int) -> dict[str, Any]:
    """DDP on gloo, each rank a 1/N slice of the batch, with AdamW (sharded by :func:`shard`) and Muon."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    pg = dist.group.WORLD
    x, y = ddp_batch()
    n = x.shape[0] // world_size
    xs, ys = x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]
    out = {}
    for kind in ("adamw", "muon"):
        model = ddp_model()
        ddp = DDP(model)
        out[kind] = train(kind, ddp, ddp_optimizer(kind, model, pg), xs, ys)
    return out


def mixed_dtypes(pg: Any) -> dict[str, Any]:
    """AdamW on float32 and float64 parameters (two buffers); sharded unless ``pg`` is None."""
    params = make_params(MIXED)
    params[1] = params[1].detach().double().requires_grad_()
    params[7] = params[7].detach().double().requires_grad_()
    opt = build("adamw", params, MIXED, pg)
    for t in range(1, STEPS + 1):
        feed(params, MIXED, t)
        opt.step()
    owner = opt.__dict__.get("_owner")
    return {"params": [p.detach().clone() for p in params], "comm": dict(owner.last_step) if owner else {}}


def narrow_wire(pg: Any) -> dict[str, Any]:
    """Muon with ``communication_dtype=torch.bfloat16``: the rounded changes travel."""
    params = make_params(MIXED)
    opt = adaptim.Muon(params[:6], lr=0.02, process_group=pg, communication_dtype=torch.bfloat16)
    for t in range(1, STEPS + 1):
        feed(params, MIXED, t)
        opt.step()
    owner = opt.__dict__["_owner"]
    width = max(sum(p.numel() for p in params[:6] if p.grad is not None and owner.owner_of(p) == r) for r in (0, 1))
    return {"params": [p.detach().clone() for p in params[:6]], "comm": dict(owner.last_step), "width": width}


def all_runs(rank: int, world_size: int) -> dict[str, Any]:
    out = {"parity": parity_runs(rank, world_size)}
    if world_size == 2:
        out["mixed_dtypes"] = mixed_dtypes(dist.group.WORLD)
        out["narrow_wire"] = narrow_wire(dist.group.WORLD)
        out["nan"] = nan_runs(rank, world_size)
        out["checkpoint"] = checkpoint_runs(rank, world_size)
        out["ddp"] = ddp_runs(rank, world_size)
    return out
