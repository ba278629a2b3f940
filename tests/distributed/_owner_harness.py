"""Run a function on N CPU processes joined by a gloo process group (loopback only), with deadlines.

``run_ranks(fn, world_size, *args)`` starts the ranks (forked from a fork server); each calls
``fn(rank, world_size, *args)`` inside an initialized process group and returns a result (saved with
``torch.save``); the list of results comes back in rank order. A rank
that raises makes the run fail with its traceback; a rank that hangs (a collective some rank never joins) fails
at the collective's timeout or at the run's deadline, never hanging the test suite.
"""

from __future__ import annotations

import os
import queue
import tempfile
import traceback
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

#: modules the rank processes import once, in the fork server
PRELOAD = ["torch", "torch._dynamo", "torch.distributed", "torch.nn.parallel", "adaptim", "adaptim.distributed"]
#: a collective waits at most this long before raising (a rank that skipped it)
COLLECTIVE_TIMEOUT_S = 30


def _entry(fn, rank: int, world_size: int, init_file: str, results, args: tuple) -> None:
    # results travel as files: a tensor put on a torch.multiprocessing queue is shared through a handle that dies
    # with the process
    torch.set_num_threads(1)  # 2 shared cores: one thread per rank
    os.environ.setdefault("ADAPTIM_FUSED", "0")
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"file://{init_file}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S),
        )
        try:
            out = f"{init_file}.rank{rank}"
            torch.save(fn(rank, world_size, *args), out)
            results.put((rank, "ok", out))
        finally:
            dist.destroy_process_group()
    except BaseException:  # reported to the parent, which fails the test with it
        results.put((rank, "error", traceback.format_exc()))


def run_ranks(fn, world_size: int, *args: Any, deadline_s: float = 120) -> list[Any]:
    """``fn(rank, world_size, *args)`` on ``world_size`` spawned processes; their results in rank order.

    Raises:
        RuntimeError: a rank raised (its traceback in the message), or the run passed ``deadline_s``.
    """
    # forkserver: a fresh process (not a fork of the test runner's threads) that imports torch and adaptim once
    # (torch._dynamo alone, which torch.optim imports, takes seconds); every rank of every run is forked from it
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    results = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        procs = [
            ctx.Process(target=_entry, args=(fn, r, world_size, init_file, results, args), daemon=True)
            for r in range(world_size)
        ]
        for p in procs:
            p.start()
        out: dict[int, Any] = {}
        errors = []
        try:
            for _ in range(world_size):
                rank, status, value = results.get(timeout=deadline_s)
                if status == "ok":
                    out[rank] = torch.load(value, weights_only=False)
                else:
                    errors.append(f"rank {rank}:\n{value}")
        except queue.Empty:
            errors.append(f"no result within {deadline_s} s (ranks done: {sorted(out)})")
        finally:
            for p in procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
                    p.join(timeout=5)
        if errors:
            raise RuntimeError("\n".join(errors))
    return [out[r] for r in range(world_size)]
