"""Optimizer steps on DTensor parameters (FSDP2's ``fully_shard``, tensor parallelism).

A step of an :class:`adaptim.AdaptimOptimizer` on ``torch.distributed.tensor.DTensor`` parameters goes through
:func:`on_shards`, which gives the rule plain tensors, so that no DTensor operation (and no hidden collective)
runs inside a rule:

* elementwise rules (SGD, AdaGrad, RMSProp, Adam, AdamW and their fused kernels, Muon's AdamW side; see
  :func:`runs_on_shards`) run on each rank's local shards: zero collectives per step;
* Muon (and Steepest) keeps its momentum on the local shards; each matrix's update is orthogonalized (its
  steepest direction computed) once, by one owner rank (:func:`owner_compute`: two all-to-alls per group and step
  bring owners their matrices and send the directions' shards back, as microsoft/dion does), and each rank
  applies its own chunk of the direction;
* Shampoo and IdealizedShampoo keep each parameter's statistics whole on its owner rank only (``_owner_held``),
  which gets the whole gradient and sends back the direction's chunks (:func:`owner_compute` with fixed owners);
* every other rule (AdamNMF, Adafactor, AdaGradNorm,
  FullMatrixAdaGrad, a group on a manifold) needs whole matrices (or, for Adafactor's RMS and AdaGradNorm's sum,
  whole tensors): the group's sharded parameters, gradients and sharded state are gathered whole
  (:func:`gather_many`: one all-gather of a flat buffer per group and step), every rank computes the same full
  step, and keeps its own shard of the result. Replicated state (Adafactor's row and column sums, AdamNMF's
  factors) is kept whole on every rank and updated in place, with no collective.

State of a DTensor parameter is made of DTensors on the parameter's mesh (:func:`dtensor_state`): sharded like
the parameter where it has the parameter's shape, replicated otherwise, so that ``torch.distributed.checkpoint``
sees it as it sees ``torch.optim``'s state. The non-finite check (:mod:`adaptim.optim.guards`) runs on local
shards and agrees across ranks with one all-reduce per step (:func:`all_reduce_flags`).

Nothing here imports ``torch.distributed.tensor``: where it was never imported no DTensor can exist, and a
single-process step pays one dictionary look-up.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from typing import Any

import torch

__all__ = [
    "is_dtensor",
    "local",
    "local_chunk",
    "dtensor_state",
    "runs_on_shards",
    "on_shards",
    "sharded_like",
    "gather_whole",
    "gather_many",
    "keep_local",
    "owners",
    "owner_compute",
    "split_alike",
    "all_reduce_flags",
    "sum_over_shards",
    "sum_over_shards_many",
]


def _dtensor_class() -> type | None:
    mod = sys.modules.get("torch.distributed.tensor")
    return getattr(mod, "DTensor", None) if mod is not None else None


def is_dtensor(t: Any) -> bool:
    """Whether ``t`` is a ``torch.distributed.tensor.DTensor``."""
    if type(t) is torch.Tensor or type(t) is torch.nn.Parameter:  # the single-process case, first
        return False
    cls = _dtensor_class()
    return cls is not None and isinstance(t, cls)


def local(t: Any) -> Any:
    """``t``'s local tensor (a view sharing its storage: in-place writes reach ``t``), or ``t`` itself."""
    return t.to_local() if is_dtensor(t) else t


def _sharded_dims(t: Any) -> list[int]:
    """The mesh dimensions along which DTensor ``t`` is split (none for a plain or replicated tensor)."""
    if not is_dtensor(t):
        return []
    return [d for d, pl in enumerate(t.placements) if pl.is_shard()]


def local_chunk(full: torch.Tensor, like: Any) -> torch.Tensor:
    """The part of ``full`` (a plain tensor of ``like``'s global shape) that this rank holds of DTensor ``like``.

    A view of ``full``: no communication (uneven shards, several mesh dimensions included)."""
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    shape, offset = compute_local_shape_and_global_offset(full.shape, like.device_mesh, like.placements)
    out = full
    for d, (size, start) in enumerate(zip(shape, offset)):
        if size != full.shape[d]:
            out = out.narrow(d, start, size)
    return out


def _as_dtensor_like(t: torch.Tensor, p: Any) -> Any:
    """Plain state tensor ``t`` of DTensor parameter ``p`` as a DTensor on ``p``'s mesh, with no communication:
    sharded like ``p`` (this rank's chunk, copied) when it has ``p``'s global shape, replicated otherwise (every
    rank made the same tensor)."""
    from torch.distributed.tensor import DTensor, Replicate

    mesh = p.device_mesh
    if tuple(t.shape) == tuple(p.shape):
        chunk = local_chunk(t, p).to(device=local(p).device).contiguous()
        return DTensor.from_local(chunk, mesh, p.placements, run_check=False, shape=p.shape, stride=t.stride())
    return DTensor.from_local(t.to(local(p).device), mesh, [Replicate()] * mesh.ndim, run_check=False)


def dtensor_state(state: dict[str, Any], p: Any, into: dict[str, Any] | None = None) -> dict[str, Any]:
    """Make the plain tensors of ``state`` (the state of DTensor parameter ``p``) DTensors on ``p``'s mesh, in
    place, and return it: sharded like ``p`` where an entry has ``p``'s shape (e.g. zeros made with
    ``torch.zeros(p.shape)``, or a full-size entry of a single-process checkpoint), replicated otherwise
    (Adafactor's row and column sums, AdamNMF's factors). The ``step`` counter and other 0-dimensional entries
    stay plain CPU tensors, as ``torch.optim`` keeps them. Entries that are DTensors already are kept. With
    ``into``, the converted entries are stored there instead (``state`` a selection of ``into``'s entries)."""
    out = state if into is None else into
    if not is_dtensor(p):
        return out
    for k, v in list(state.items()):
        if isinstance(v, torch.Tensor) and not is_dtensor(v) and v.dim() > 0 and v.device.type != "meta":
            out[k] = _as_dtensor_like(v, p)
    return out


def runs_on_shards(opt: Any, group: dict[str, Any]) -> bool:
    """Whether ``group``'s rule takes the local shards: it is elementwise (no collective), or it gathers the few
    matrices it needs whole itself (:func:`sharded_like`, :func:`gather_whole`: Muon's orthogonalization).

    An optimizer says so with a method ``_runs_on_shards(group)``; otherwise a class with a fused (elementwise)
    kernel runs on shards wherever that kernel may run (no manifold, the Euclidean last stage). Everything else
    is gathered: a rule that is not known to be elementwise is computed on whole tensors."""
    hook = getattr(opt, "_runs_on_shards", None)
    if hook is not None:
        return bool(hook(group))
    return opt.fused_rule is not None and opt._fused_obstacle(group, devices=False) is None


def _full(t: Any) -> Any:
    """``t`` whole on this rank: an all-gather for a sharded DTensor, the local view for a replicated one."""
    if not is_dtensor(t):
        return t
    return t.full_tensor() if _sharded_dims(t) else t.to_local()


def gather_many(tensors: list) -> list:
    """Each of ``tensors`` whole on this rank, in order: plain tensors (and anything else) as they are, replicated
    DTensors as their local views, sharded ones as new whole tensors.

    Those split along one dimension of a 1-D mesh (FSDP2's ``Shard(0)``, uneven shards included) come from one
    all-gather per (mesh, dtype, device): each rank's shards, flattened into one buffer padded to the longest
    rank's; any other sharded DTensor from its own ``full_tensor()``."""
    import torch.distributed as dist

    out = list(tensors)
    buckets: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        if is_dtensor(t) and _split_dim(t) is not None:
            buckets.setdefault((id(t.device_mesh), t.dtype, local(t).device), []).append(i)
        else:
            out[i] = _full(t)
    for idx in buckets.values():
        like = [tensors[i] for i in idx]
        mesh = like[0].device_mesh
        world, rank = mesh.size(), mesh.get_local_rank()
        dims = [_split_dim(t) for t in like]
        shapes = [[_shard_shape(t, d, n) for n in _chunk_sizes(t.shape[d], world)] for t, d in zip(like, dims)]
        per_rank = [sum(math.prod(sh[r]) for sh in shapes) for r in range(world)]
        width = max(per_rank)
        mine = local(like[0])
        send = torch.zeros(width, dtype=mine.dtype, device=mine.device)
        if per_rank[rank]:
            send[: per_rank[rank]] = torch.cat([local(t).reshape(-1) for t in like])
        recv = torch.empty(world * width, dtype=mine.dtype, device=mine.device)
        _all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # 2.13's new name
        _all_gather(recv, send, group=mesh.get_group())
        starts = [r * width for r in range(world)]
        for i, d, sh in zip(idx, dims, shapes):
            parts = []
            for r in range(world):
                n = math.prod(sh[r])
                parts.append(recv.narrow(0, starts[r], n).view(sh[r]))
                starts[r] += n
            out[i] = torch.cat(parts, dim=d)
    return out


def _shard_shape(t: Any, dim: int, n: int) -> list[int]:
    shape = list(t.shape)
    shape[dim] = n
    return shape


@contextlib.contextmanager
def on_shards(
    opt: Any, group: dict[str, Any], params: list, grads: list, states: list[dict[str, Any]]
) -> Iterator[tuple[list, list, list[dict[str, Any]]]]:
    """Yield ``(params, grads, states)`` as plain tensors for a rule to step, and put the result back.

    Without DTensors this yields its arguments unchanged (bit for bit today's step). With DTensor parameters
    (all of one group: the working parameters of :meth:`AdaptimOptimizer._gather`, their gradients and state
    dicts), their state is first made DTensors (:func:`dtensor_state`), then:

    * an elementwise group (:func:`runs_on_shards`) gets the local shards (views: the rule writes into the
      DTensors' storage), with no collective;
    * any other group gets every sharded tensor gathered whole (:func:`gather_many`: one all-gather for the
      group's parameters, gradients and sharded state) and replicated ones as their local (whole) views; after
      the rule, each rank copies its own chunk of the new parameters and sharded state back (no collective).
      Every rank computes the same step, so the shards stay consistent.

    A state entry that the rule adds or replaces (instead of updating it in place) is stored back as a DTensor.
    An optimizer whose rule keeps some entries whole on one owner rank says which with a method
    ``_owner_held(group, key)``: on shards, those entries are handed over and stored back as they are (plain
    tensors), and dropped where the rule drops them.
    """
    if not any(is_dtensor(p) for p in params):
        yield params, grads, states
        return
    gather = not runs_on_shards(opt, group)
    held = getattr(opt, "_owner_held", None) if not gather else None  # entries kept whole on one owner rank
    for p, s in zip(params, states):
        if held is None:
            dtensor_state(s, p)
        else:
            dtensor_state({k: v for k, v in s.items() if not held(group, k)}, p, into=s)
    if gather:  # one all-gather for the group's parameters, gradients and sharded state
        keys = [list(s) for s in states]
        whole = iter(gather_many([*params, *grads, *(s[k] for s, ks in zip(states, keys) for k in ks)]))
        work, full_grads = [next(whole) for _ in params], [next(whole) for _ in grads]
        views = [{k: next(whole) for k in ks} for ks in keys]
    else:
        work, full_grads = [local(p) for p in params], [local(g) for g in grads]
        views = [{k: local(v) for k, v in s.items()} for s in states]
    given = [dict(v) for v in views]
    if not gather:  # what sharded_like() tells a rule that gathers some tensors itself
        opt.__dict__["_sharded_like"] = params
    try:
        yield work, full_grads, views
    finally:
        opt.__dict__.pop("_sharded_like", None)
    for p, w in zip(params, work):
        if gather and _sharded_dims(p):
            local(p).copy_(local_chunk(w, p))
    for p, s, new, old in zip(params, states, views, given):
        for k, v in new.items():
            if held is not None and held(group, k):  # whole, on its owner: stored as the rule left it
                s[k] = v
            else:
                _put_back(s, k, v, old.get(k), p, gather)
        for k in [k for k in s if held is not None and held(group, k) and k not in new]:
            del s[k]  # dropped by the rule: another rank owns it


def _put_back(state: dict[str, Any], key: str, value: Any, given: Any, p: Any, gather: bool) -> None:
    """Store entry ``key`` of a state the rule stepped as ``value`` (``given``: the view it was handed)."""
    orig = state.get(key)
    if is_dtensor(orig):
        if gather and _sharded_dims(orig):  # a gathered copy: keep this rank's chunk of it
            local(orig).copy_(local_chunk(value, orig))
        elif value is not given:  # replaced rather than updated in place
            if tuple(value.shape) == tuple(local(orig).shape):
                local(orig).copy_(value)
            else:
                state[key] = _as_dtensor_like(value, p) if gather else _wrap_local(value, p)
    elif value is not given:
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            state[key] = _as_dtensor_like(value, p) if gather else _wrap_local(value, p)
        else:
            state[key] = value


def sharded_like(opt: Any) -> list | None:
    """Inside :func:`on_shards` on local shards: the DTensor parameters the rule's tensors are shards of (in the
    rule's order), for a rule that needs some tensors whole (:func:`gather_whole`); ``None`` otherwise."""
    return opt.__dict__.get("_sharded_like")


def gather_whole(tensors: list[torch.Tensor], like: list) -> list[torch.Tensor]:
    """Whole tensors from this rank's shards: ``tensors[i]`` is the local shard of a tensor placed like
    ``like[i]`` (one all-gather for each sharded one; a plain or replicated one is returned as it is)."""
    from torch.distributed.tensor import DTensor

    return [
        DTensor.from_local(
            t, p.device_mesh, p.placements, run_check=False, shape=p.shape, stride=p.stride()
        ).full_tensor()
        if _sharded_dims(p)
        else t
        for t, p in zip(tensors, like)
    ]


def keep_local(tensors: list[torch.Tensor], like: list) -> list[torch.Tensor]:
    """This rank's chunk of each whole tensor ``tensors[i]`` placed like ``like[i]`` (views; no communication)."""
    return [local_chunk(t, p) if _sharded_dims(p) else t for t, p in zip(tensors, like)]


def _split_dim(p: Any) -> int | None:
    """The tensor dimension DTensor ``p`` is split along when it lives on a 1-D mesh with one Shard placement;
    ``None`` for anything else (replicated, several mesh dimensions)."""
    if not is_dtensor(p) or p.device_mesh.ndim != 1 or not p.placements[0].is_shard():
        return None
    return p.placements[0].dim


def _chunk_sizes(n: int, world: int) -> list[int]:
    """The lengths of ``torch.chunk``'s pieces of n entries over ``world`` ranks, as DTensor's Shard cuts them
    (the last ranks may get fewer, or none)."""
    step = -(-n // world)
    return [max(0, min(n, (r + 1) * step) - min(n, r * step)) for r in range(world)]


def owners(costs: list[float], world: int) -> list[int]:
    """A rank for each item: greedy least-loaded, largest cost first, ties to the lower index and rank, so every
    rank computes the same assignment; the busiest rank's cost is at most sum / world + the largest item (the
    assignment of owner computes, :func:`adaptim.distributed.owner.assign_owners`)."""
    from adaptim.distributed.owner import assign_owners

    return assign_owners(costs, world)


def owner_compute(
    tensors: list[torch.Tensor],
    like: list,
    fn: Any,
    cost: Any = lambda shape: math.prod(shape),
    assign: list[int] | None = None,
) -> list[torch.Tensor]:
    """``fn`` on whole tensors, each computed once, by its owner: the sharded pattern of microsoft/dion.

    ``tensors[i]`` is this rank's shard of a tensor placed like DTensor ``like[i]``; ``fn`` maps a list of whole
    tensors to a list of results of the same shapes (Newton-Schulz on each). Each tensor gets one owner
    (:func:`owners` on ``cost(shape)``); one all-to-all brings every owner the shards of its tensors, the owner
    applies ``fn`` to them, and a second all-to-all sends each rank its shards of the results, returned in order.
    Two collectives for the whole list, each shard sent once each way; every rank computes about 1/world of the
    work. Tensors that are not split along one dimension of the first such tensor's 1-D mesh, in its dtype
    (replicated ones, several mesh dimensions), are gathered whole (:func:`gather_whole`), computed on every rank,
    and each rank keeps its chunk.

    ``assign`` (a rank per tensor, the same on every rank) fixes the owners instead of ``cost``, for a rule that
    keeps per-tensor state on the owner (:func:`split_alike` says which tensors have one); ``fn`` is then called
    as ``fn(whole, indices)``, ``indices`` the positions in ``like`` of the tensors it gets."""
    owned = [i for i, a in enumerate(split_alike(like, [t.dtype for t in tensors])) if a]
    rest = [i for i in range(len(like)) if i not in owned]
    out: list[torch.Tensor] = [None] * len(like)  # type: ignore[list-item]
    if rest:
        whole = gather_whole([tensors[i] for i in rest], [like[i] for i in rest])
        done = keep_local(fn(whole) if assign is None else fn(whole, rest), [like[i] for i in rest])
        for i, t in zip(rest, done):
            out[i] = t
    if owned:
        sub = None if assign is None else [assign[i] for i in owned]
        call = fn if assign is None else lambda whole, mine: fn(whole, [owned[k] for k in mine])
        done = _owner_compute([tensors[i] for i in owned], [like[i] for i in owned], call, cost, sub)
        for i, t in zip(owned, done):
            out[i] = t
    return out


def split_alike(like: list, dtypes: list) -> list[bool]:
    """Which tensors :func:`owner_compute` sends to one owner (the others are computed on every rank): those
    split along one dimension of the first such tensor's 1-D mesh, in its dtype (``dtypes[i]``: tensor i's)."""
    split = [i for i, p in enumerate(like) if _split_dim(p) is not None]
    if not split:
        return [False] * len(like)
    mesh, dtype = like[split[0]].device_mesh, dtypes[split[0]]
    return [i in split and like[i].device_mesh is mesh and dtypes[i] == dtype for i in range(len(like))]


def _owner_compute(
    tensors: list[torch.Tensor], like: list, fn: Any, cost: Any, assign: list[int] | None = None
) -> list[torch.Tensor]:
    """:func:`owner_compute` for tensors all split along one dimension of one 1-D mesh, in one dtype (``fn``
    called as ``fn(whole, indices)`` where ``assign`` is given)."""
    import torch.distributed as dist

    dims = [_split_dim(p) for p in like]
    mesh = like[0].device_mesh
    world, rank, group = mesh.size(), mesh.get_local_rank(), mesh.get_group()
    owner = assign if assign is not None else owners([float(cost(tuple(p.shape))) for p in like], world)
    sizes = [_chunk_sizes(p.shape[d], world) for p, d in zip(like, dims)]

    def numel(i: int, r: int) -> int:  # entries of rank r's shard of tensor i
        return sizes[i][r] * math.prod(like[i].shape) // max(like[i].shape[dims[i]], 1)

    mine = [i for i in range(len(like)) if owner[i] == rank]
    dtype, device = tensors[0].dtype, tensors[0].device

    def exchange(pieces: list[list[torch.Tensor]], recv_splits: list[int]) -> list[torch.Tensor]:
        send = [
            torch.cat([x.reshape(-1) for x in ps]) if ps else torch.empty(0, dtype=dtype, device=device)
            for ps in pieces
        ]
        recv = torch.empty(sum(recv_splits), dtype=dtype, device=device)
        dist.all_to_all_single(recv, torch.cat(send), recv_splits, [x.numel() for x in send], group=group)
        return list(recv.split(recv_splits))

    # 1. every rank sends its shard of tensor i to owner[i]; the owner stacks the shards along the split dimension
    got = exchange(
        [[tensors[i].contiguous() for i in range(len(like)) if owner[i] == o] for o in range(world)],
        [sum(numel(i, r) for i in mine) for r in range(world)],
    )
    whole = []
    for k, i in enumerate(mine):
        parts = []
        for r in range(world):
            start = sum(numel(j, r) for j in mine[:k])
            shape = list(like[i].shape)
            shape[dims[i]] = sizes[i][r]
            parts.append(got[r].narrow(0, start, numel(i, r)).reshape(shape))
        whole.append(torch.cat(parts, dim=dims[i]))
    results = (fn(whole) if assign is None else fn(whole, mine)) if whole else []
    # 2. the owner sends each rank its chunk of each result
    back = [
        [res.to(dtype).narrow(dims[i], sum(sizes[i][:r]), sizes[i][r]).contiguous() for i, res in zip(mine, results)]
        for r in range(world)
    ]
    got = exchange(back, [sum(numel(i, rank) for i in range(len(like)) if owner[i] == o) for o in range(world)])
    out: list[torch.Tensor] = [None] * len(like)  # type: ignore[list-item]
    offsets = [0] * world
    for i in range(len(like)):
        o = owner[i]
        out[i] = got[o].narrow(0, offsets[o], numel(i, rank)).reshape(tensors[i].shape)
        offsets[o] += numel(i, rank)
    return out


def _wrap_local(t: torch.Tensor, p: Any) -> Any:
    """A new local-shard tensor of an elementwise rule as a DTensor placed like ``p`` (no communication)."""
    from torch.distributed.tensor import DTensor

    if tuple(t.shape) != tuple(local(p).shape):
        return t
    return DTensor.from_local(t, p.device_mesh, p.placements, run_check=False, shape=p.shape, stride=p.stride())


def _groups(t: Any, dims: list[int]) -> list:
    mesh = t.device_mesh
    return [mesh.get_group(d) for d in dims]


def all_reduce_flags(ok: torch.Tensor, tensors: list) -> torch.Tensor:
    """``ok`` (bool, any shape) AND-ed across the ranks of every mesh among ``tensors`` (one all-reduce per mesh
    dimension: one for FSDP2's 1-D mesh), so that every rank takes the same decision; ``ok`` itself when none of
    ``tensors`` is a DTensor."""
    import torch.distributed as dist

    meshes = {}
    for t in tensors:
        if is_dtensor(t):
            meshes.setdefault(id(t.device_mesh), t)
    if not meshes:
        return ok
    flags = ok.to(torch.int32)
    for t in meshes.values():
        for g in _groups(t, list(range(t.device_mesh.ndim))):
            dist.all_reduce(flags, op=dist.ReduceOp.MIN, group=g)
    return flags.bool()


def sum_over_shards(x: torch.Tensor, like: Any) -> torch.Tensor:
    """``x`` (a plain tensor computed from this rank's shard of DTensor ``like``, e.g. a squared norm) summed over
    the ranks that hold the other shards (one all-reduce per sharded mesh dimension; none when ``like`` is
    replicated or plain)."""
    import torch.distributed as dist

    dims = _sharded_dims(like)
    if not dims:
        return x
    x = x.clone()
    for g in _groups(like, dims):
        dist.all_reduce(x, op=dist.ReduceOp.SUM, group=g)
    return x


def sum_over_shards_many(values: list[torch.Tensor], like: list) -> list[torch.Tensor]:
    """:func:`sum_over_shards` for many 0-dim ``values`` at once: those of tensors split on a 1-D mesh are summed
    by one all-reduce per mesh (in float64, then cast back); those of plain or replicated tensors are whole
    already and returned as they are."""
    import torch.distributed as dist

    out = list(values)
    buckets: dict[int, list[int]] = {}
    for i, t in enumerate(like):
        if not _sharded_dims(t):
            continue
        if t.device_mesh.ndim == 1:
            buckets.setdefault(id(t.device_mesh), []).append(i)
        else:
            out[i] = sum_over_shards(values[i], t)
    for idx in buckets.values():
        x = torch.stack([values[i].reshape(()).to(torch.float64) for i in idx])
        dist.all_reduce(x, op=dist.ReduceOp.SUM, group=like[idx[0]].device_mesh.get_group())
        for k, i in enumerate(idx):
            out[i] = x[k].to(values[i].dtype)
    return out
