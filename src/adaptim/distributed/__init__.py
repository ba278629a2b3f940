"""Work of one optimizer step shared over the ranks of a ``torch.distributed`` process group.

:mod:`adaptim.distributed.owner`: owner computes (each parameter's update on one rank, one all-gather of the new
values per step), turned on by ``process_group=`` on any :class:`adaptim.AdaptimOptimizer` that takes it, and
:func:`shard` for an optimizer already built. :mod:`adaptim.distributed.dtensor`: optimizer steps on DTensor (FSDP2)
parameters, used by every optimizer's step without anything to switch on. :mod:`adaptim.distributed.scale`: the
per-step time model at scale; :mod:`adaptim.distributed.measure`: ``adaptim perf --nproc N``.
"""

from __future__ import annotations

from typing import Any

import torch

from adaptim.distributed.dtensor import (
    all_reduce_flags,
    dtensor_state,
    gather_many,
    is_dtensor,
    on_shards,
    owner_compute,
    owners,
    runs_on_shards,
)
from adaptim.distributed.owner import OwnerComputes, assign_owners, preconditioner_cost

__all__ = [
    "OwnerComputes",
    "assign_owners",
    "preconditioner_cost",
    "shard",
    "all_reduce_flags",
    "dtensor_state",
    "gather_many",
    "is_dtensor",
    "on_shards",
    "owner_compute",
    "owners",
    "runs_on_shards",
]


def shard(optimizer: Any, process_group: Any, communication_dtype: torch.dtype | None = None) -> Any:
    """Shard an adaptim optimizer built without ``process_group`` (AdamW, SGD, ...): from its next step each
    parameter is updated, and its state kept, on one rank (ZeRO-1's memory saving), as with ``process_group=``.

    Args:
        optimizer: an :class:`adaptim.AdaptimOptimizer` that has not stepped yet (no state).
        process_group: a ``torch.distributed`` process group (``torch.distributed.group.WORLD``: every rank).
        communication_dtype: the dtype of the all-gather (``None``: each parameter's own).

    Returns:
        ``optimizer``, sharded in place.

    Raises:
        TypeError: not an adaptim optimizer.   ValueError: already sharded, it holds state already, it cannot
            shard (AdaGradNorm), or the arguments are refused as by ``process_group=`` itself.
    """
    from adaptim.optim.base import AdaptimOptimizer

    if not isinstance(optimizer, AdaptimOptimizer):
        raise TypeError(f"shard takes an adaptim optimizer, got {type(optimizer).__name__}")
    if optimizer.__dict__.get("_owner") is not None:
        raise ValueError(f"{type(optimizer).__name__} is sharded already")
    if any(optimizer.state.values()):
        raise ValueError(
            f"shard: {type(optimizer).__name__} holds state already; shard it before its first step (or load a "
            "state dict after sharding)"
        )
    optimizer.__dict__["_owner"] = OwnerComputes(optimizer, process_group, communication_dtype)
    return optimizer
