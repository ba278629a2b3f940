"""adaptim over ``torch.distributed``: optimizer steps on DTensor (FSDP2) parameters (:mod:`.dtensor`)."""

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

__all__ = [
    "all_reduce_flags",
    "dtensor_state",
    "gather_many",
    "is_dtensor",
    "on_shards",
    "owner_compute",
    "owners",
    "runs_on_shards",
]
