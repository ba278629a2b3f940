"""Owner computes: each parameter's update is computed by one rank, and one all-gather shares the new values.

Under data parallelism (DDP, or replicated parameters fed identical gradients) every rank would otherwise repeat
every Newton-Schulz iteration and every eigendecomposition of the step. With a ``process_group`` an adaptim
optimizer instead gives each parameter one owner rank:

* **Assignment** (once, at the first step or the first ``load_state_dict``, in parameter order; parameters added
  later are assigned at the next step): greedy least-loaded assignment, largest cost first (LPT: ties broken by
  parameter order, then the lowest rank), on the optimizer's cost model :meth:`AdaptimOptimizer._work_cost`:
  Newton-Schulz m n min(m, n) (Muon, spectral Steepest), the sum of the cubes of each preconditioned side (Shampoo,
  IdealizedShampoo; vectors included, d^3 for FullMatrixAdaGrad), m n r (AdamNMF of rank r), ``numel`` for
  elementwise rules. The busiest rank's cost is then at most total / N + the largest single cost. Every rank
  computes the same assignment from the same shapes and hyperparameters: no communication.
* **Checks first**: the non-finite check (``check_finite``) and the per-group step checks run on *every* gradient
  on every rank before any rank computes; one all-reduce of a single flag then makes all ranks raise together (a
  rank whose own check passed raises too, saying another rank refused the step) or none.
* **Owner step**: the optimizer's ordinary step runs with the gradients of the parameters this rank does not own
  hidden (``p.grad`` set to ``None`` for the step and restored after), so it keeps state for its own parameters
  only (ZeRO-1's memory saving) and computes only their updates.
* **All-gather**: per (dtype, device) of the stepped parameters, one flat buffer per rank (its stepped parameters
  concatenated, padded to the longest rank's length) and one ``all_gather_into_tensor``; each rank copies the
  others' slices into their parameters. With ``communication_dtype`` narrower than a parameter's dtype the rank
  sends its parameters' *changes* in that dtype and every rank, the owner included, adds the rounded change to the
  old value, so all ranks stay bitwise identical (only the step is rounded, not the parameter).

Bytes per step and rank: each of the B buffers sends max_r S_r elements and receives (N - 1) of them, where S_r is
the number of entries rank r stepped in that buffer; with balanced numels S_r ~ P / N, the all-gather moves about
P (N - 1) / N elements of ``communication_dtype`` into each rank (P: the stepped entries), plus one 4-byte flag.

``consolidate_state_dict(to)`` gathers the owners' states onto one rank, where ``state_dict()`` is then the
one-process optimizer's; ``load_state_dict`` of a one-process (or consolidated) state dict keeps the owned
parameters' state only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["OwnerComputes", "assign_owners", "preconditioner_cost"]


def assign_owners(costs: list[float], world_size: int, loads: list[float] | None = None) -> list[int]:
    """Greedy least-loaded assignment, largest cost first (Graham's LPT rule): the owner rank of each item.

    Args:
        costs: one nonnegative cost per item, in parameter order.
        world_size: N >= 1 ranks.
        loads: the ranks' loads so far (updated in place), for items added after a first assignment.

    Returns:
        ``owners[i]`` in [0, N). Ties go to the earlier item, then to the lowest rank: deterministic. The largest
        load is at most sum(costs) / N + max(costs) (plus the imbalance of ``loads``).
    """
    loads = [0.0] * world_size if loads is None else loads
    owners = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(world_size), key=lambda r: (loads[r], r))
        owners[i] = r
        loads[r] += costs[i]
    return owners


def preconditioner_cost(state: dict[str, Any]) -> float:
    """The cost of one Shampoo-type step from its state layout: n^3 for every n x n statistic (a ``kron_*`` of
    shape (n + 1, n), a ``factor_*`` of shape (n, n)), n for a diagonal one (``factor_diag``)."""
    cost = 0.0
    for k, v in state.items():
        if k.startswith(("kron_", "factor_")) and k != "factor_diag":
            cost += float(v.shape[-1]) ** 3
        elif k == "factor_diag":
            cost += float(v.numel())
    return cost


def _check_group(process_group: Any) -> None:
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError(
            "process_group: torch.distributed is not initialized; call torch.distributed.init_process_group first "
            "(process_group=torch.distributed.group.WORLD shards over every rank), or pass process_group=None"
        )
    try:
        dist.get_world_size(process_group)
    except (RuntimeError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(
            f"process_group must be a torch.distributed process group, got {process_group!r}: {err}"
        ) from None


def _check_dtype(communication_dtype: Any) -> None:
    if communication_dtype is None:
        return
    if not isinstance(communication_dtype, torch.dtype) or not communication_dtype.is_floating_point:
        raise ValueError(
            f"communication_dtype must be None (each parameter's dtype) or a floating-point torch.dtype such as "
            f"torch.bfloat16, got {communication_dtype!r}"
        )


# torch 2.13 renamed all_gather_into_tensor (the old name warns); older versions have the old name only
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


def _exact_in(dtype: torch.dtype, wire: torch.dtype) -> bool:
    """Whether every ``dtype`` value is exact in ``wire`` (then values are sent, else changes)."""
    return dtype == wire or (torch.promote_types(dtype, wire) == wire and wire.itemsize > dtype.itemsize)


class OwnerComputes:
    """The sharding of one :class:`adaptim.AdaptimOptimizer` over ``process_group`` (see the module doc).

    Made by the optimizer's constructor (``process_group=...``); users call the optimizer, not this object.

    Raises:
        ValueError: the optimizer cannot shard (``owner_computes_refusal``: AdaGradNorm), ``communication_dtype``
            without ``process_group``, torch.distributed not initialized, or a ``communication_dtype`` that is not
            a floating-point dtype.
    """

    def __init__(self, optimizer: Any, process_group: Any, communication_dtype: torch.dtype | None) -> None:
        name = type(optimizer).__name__
        if process_group is None:
            raise ValueError(
                f"{name}: communication_dtype={communication_dtype!r} is the dtype of the all-gather of a sharded "
                "optimizer; it needs a process_group (e.g. torch.distributed.group.WORLD)"
            )
        if optimizer.owner_computes_refusal is not None:
            raise ValueError(f"{name} cannot take process_group: {optimizer.owner_computes_refusal}")
        _check_group(process_group)
        _check_dtype(communication_dtype)
        self.optimizer = optimizer
        self.group = process_group
        self.communication_dtype = communication_dtype
        self.rank = dist.get_rank(process_group)
        self.world_size = dist.get_world_size(process_group)
        self.owners: dict[int, int] = {}  # id(param) -> owner rank
        self.loads = [0.0] * self.world_size
        self._checked_layout = False
        self._consolidated: dict[str, Any] | None = None
        #: what the last step communicated: collectives by kind, and bytes this rank sent and received
        self.last_step: dict[str, int] = {}
        optimizer.register_load_state_dict_post_hook(OwnerComputes._drop_unowned_hook, prepend=True)

    # ------------------------------------------------------------------------------------------- assignment
    def _params(self) -> Iterator[tuple[torch.Tensor, dict[str, Any]]]:
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                yield p, group

    def assign(self) -> None:
        """Give every parameter not yet assigned an owner (deterministic: the same on every rank)."""
        new = [(p, g) for p, g in self._params() if id(p) not in self.owners]
        if not new:
            return
        if not self._checked_layout:
            self._check_same_parameters()
        costs = [float(self.optimizer._work_cost(self.optimizer._real(p), g)) for p, g in new]
        for (p, _), r in zip(new, assign_owners(costs, self.world_size, self.loads)):
            self.owners[id(p)] = r

    def _check_same_parameters(self) -> None:
        """Once: every rank holds the same parameter shapes and dtypes in the same order (a mismatch would
        otherwise garble the all-gather or hang it)."""
        mine = [(tuple(p.shape), str(p.dtype)) for p, _ in self._params()]
        everyone: list[Any] = [None] * self.world_size
        dist.all_gather_object(everyone, mine, group=self.group)
        for r, theirs in enumerate(everyone):
            if theirs != mine:
                raise ValueError(
                    f"{type(self.optimizer).__name__}(process_group=...): rank {r} of the group has other "
                    f"parameters (shapes and dtypes, in order) than rank {self.rank}; every rank must build the "
                    "optimizer on the same model"
                )
        self._checked_layout = True

    def owns(self, p: torch.Tensor) -> bool:
        return self.owners[id(p)] == self.rank

    def owner_of(self, p: torch.Tensor) -> int:
        """The rank (in the process group) that computes ``p``'s update (assigned at the first step)."""
        self.assign()
        return self.owners[id(p)]

    # ------------------------------------------------------------------------------------------------- step
    def step(self, closure: Callable[[], Any] | None) -> Any:
        opt = self.optimizer
        if torch.compiler.is_compiling():
            raise RuntimeError(
                f"{type(opt).__name__}(process_group=...): the sharded step runs collectives and cannot be traced "
                "by torch.compile; compile the model, not the optimizer step"
            )
        opt._revalidate_groups()
        opt._raise_pending_nonfinite()
        with opt._float_lrs(opt.param_groups):
            loss = opt._evaluate_closure(closure)
            self.last_step = dict(all_reduce=0, all_gather=0, bytes_sent=0, bytes_received=0)
            self.assign()
            self._agreed_checks()
            stepped = [p for p, _ in self._params() if p.grad is not None and p.numel() > 0]
            buckets = self._buckets(stepped)
            before = self._snapshot(buckets)
            fused = [opt.uses_fused(group) for group in opt.param_groups]
            with self._hide_unowned_grads():
                flags = opt._take_steps(fused)
            self._all_gather(buckets, before)
            self._consolidated = None  # a consolidated state is stale after a step
            opt._report_nonfinite(flags)
        return loss

    def _agreed_checks(self) -> None:
        """Every gradient checked on every rank, then all ranks raise together or none does. The checks of the
        state (overflowing sums of squares, a decay factor from the step count) read the owner's state only,
        hence the all-reduce."""
        opt = self.optimizer
        error: RuntimeError | None = None
        try:
            opt._check_finite_grads(None)  # every gradient, also those a fused kernel would check itself
            for group in opt.param_groups:
                opt._check_group_step(group)
        except RuntimeError as err:
            error = err
        flag = torch.tensor([0 if error is None else 1], dtype=torch.int32, device=self._device())
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        self._count("all_reduce", flag.numel() * flag.element_size(), flag.numel() * flag.element_size())
        if error is not None:
            raise error
        if int(flag.item()):
            raise RuntimeError(
                f"{type(opt).__name__}(process_group=...): another rank of the group refused this step (a NaN or "
                "infinite gradient, or an overflow; see its error); the step was not taken and nothing was changed"
            )

    def _device(self) -> torch.device:
        backend = dist.get_backend(self.group)
        if backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        for p, _ in self._params():
            return p.device
        return torch.device("cpu")

    @contextlib.contextmanager
    def _hide_unowned_grads(self) -> Iterator[None]:
        hidden = []
        for p, _ in self._params():
            if p.grad is not None and not self.owns(p):
                hidden.append((p, p.grad))
                p.grad = None
        try:
            yield
        finally:
            for p, g in hidden:
                p.grad = g

    def _buckets(self, stepped: list[torch.Tensor]) -> dict[tuple, list[list[torch.Tensor]]]:
        """The stepped parameters per (real dtype, device), then per owner rank, in parameter order."""
        out: dict[tuple, list[list[torch.Tensor]]] = {}
        for p in stepped:
            pr = self.optimizer._real(p)
            per_rank = out.setdefault((pr.dtype, pr.device), [[] for _ in range(self.world_size)])
            per_rank[self.owners[id(p)]].append(p)
        return out

    def _wire(self, dtype: torch.dtype) -> tuple[torch.dtype, bool]:
        """The dtype a bucket of ``dtype`` parameters travels in, and whether changes are sent instead of values."""
        wire = self.communication_dtype or dtype
        return wire, not _exact_in(dtype, wire)

    def _snapshot(self, buckets: dict[tuple, list[list[torch.Tensor]]]) -> dict[int, torch.Tensor]:
        """Copies of this rank's parameters whose changes are sent (a narrower ``communication_dtype``)."""
        out = {}
        for (dtype, _), per_rank in buckets.items():
            if self._wire(dtype)[1]:
                for p in per_rank[self.rank]:
                    out[id(p)] = self.optimizer._real(p).detach().clone()
        return out

    def _all_gather(self, buckets: dict[tuple, list[list[torch.Tensor]]], before: dict[int, torch.Tensor]) -> None:
        if self.world_size == 1:
            return
        real = self.optimizer._real
        for (dtype, device), per_rank in buckets.items():
            wire, deltas = self._wire(dtype)
            sizes = [sum(real(p).numel() for p in ps) for ps in per_rank]
            width = max(sizes)
            if width == 0:
                continue
            send = torch.zeros(width, dtype=wire, device=device)
            offset = 0
            for p in per_rank[self.rank]:
                w = real(p)
                n = w.numel()
                value = w - before[id(p)] if deltas else w
                send[offset : offset + n].copy_(value.reshape(-1))
                offset += n
            recv = torch.empty(width * self.world_size, dtype=wire, device=device)
            _all_gather_single(recv, send, group=self.group)
            self._count("all_gather", width * send.element_size(), (self.world_size - 1) * width * send.element_size())
            for r, ps in enumerate(per_rank):
                if r == self.rank and not deltas:
                    continue  # the owner's own values are the ones it sent, exactly
                offset = r * width
                for p in ps:
                    w = real(p)
                    n = w.numel()
                    piece = recv[offset : offset + n].view(w.shape)
                    if deltas:
                        if r == self.rank:
                            w.copy_(before[id(p)])
                        w.add_(piece.to(w.dtype))
                    else:
                        w.copy_(piece)
                    offset += n

    def _count(self, kind: str, sent: int, received: int) -> None:
        stats = self.last_step
        if stats:
            stats[kind] += 1
            stats["bytes_sent"] += sent
            stats["bytes_received"] += received

    # ------------------------------------------------------------------------------------------- checkpoints
    def _local_state_dict(self) -> dict[str, Any]:
        from adaptim.optim.base import AdaptimOptimizer

        return super(AdaptimOptimizer, self.optimizer).state_dict()

    def consolidate_state_dict(self, to: int = 0) -> None:
        if isinstance(to, bool) or not isinstance(to, int) or not 0 <= to < self.world_size:
            raise ValueError(f"to must be a rank of the process group, in [0, {self.world_size}), got {to!r}")
        local = self._local_state_dict()
        cpu_state = {i: {k: _to_cpu(v) for k, v in s.items()} for i, s in local["state"].items()}
        gathered: list[Any] | None = [None] * self.world_size if self.rank == to else None
        dst = to if self.group in (None, dist.group.WORLD) else dist.get_global_rank(self.group, to)
        dist.gather_object(cpu_state, gathered, dst=dst, group=self.group)
        if self.rank != to:
            self._consolidated = None
            return
        devices = {}
        index = 0
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                devices[index] = p.device
                index += 1
        merged: dict[int, Any] = {}
        for part in gathered or []:
            for i, s in part.items():
                merged[i] = {k: _to_device(k, v, devices[i]) for k, v in s.items()}
        self._consolidated = {**local, "state": dict(sorted(merged.items()))}

    def state_dict(self) -> dict[str, Any]:
        if self._consolidated is None:
            raise RuntimeError(
                f"{type(self.optimizer).__name__}(process_group=...): each rank holds the state of the parameters "
                "it owns only; call optimizer.consolidate_state_dict(to=rank) on every rank of the group first, "
                "then state_dict() on that rank (after each step, as the state changes)"
            )
        return self._consolidated

    @staticmethod
    def _drop_unowned_hook(optimizer: Any) -> None:
        self = optimizer.__dict__.get("_owner")
        if self is None:
            return
        self.assign()
        for p, _ in self._params():
            if p in optimizer.state and not self.owns(p):
                del optimizer.state[p]
        self._consolidated = None


def _to_cpu(v: Any) -> Any:
    return v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v


def _to_device(key: str, v: Any, device: torch.device) -> Any:
    if isinstance(v, torch.Tensor) and key != "step":  # the step counter stays a CPU scalar
        return v.to(device)
    return v
