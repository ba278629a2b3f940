"""Measure owner computes on N local CPU processes (gloo, loopback): per-rank matrix work, bytes and step times.

``python -m adaptim.distributed.measure --nproc 2`` runs Muon on a set of matrices like those of a small
transformer block stack, once with every rank computing everything (``process_group=None``, as plain DDP) and once
sharded (``process_group=WORLD``), and prints per rank: the Newton-Schulz matrices orthogonalized per step, the
collectives and payload bytes of the sharded step (:attr:`OwnerComputes.last_step`), and the median step times.
Times depend on the machine's load: quote them with it (``uptime``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["measure", "SHAPES"]

#: d = 128, 4 layers: attention q, k, v, o (d x d) and the MLP (4d x d, d x 4d) per layer
SHAPES = [(128, 128)] * 16 + [(512, 128)] * 4 + [(128, 512)] * 4


def _worker(rank: int, world: int, init_file: str, shapes, steps: int, out) -> None:
    import adaptim
    import adaptim.functional.muon as fm

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timedelta(seconds=60)
    )
    try:
        counted = {"n": 0}
        original = fm.newton_schulz

        def newton_schulz(x, *a, **k):
            counted["n"] += math.prod(x.shape[:-2])
            return original(x, *a, **k)

        fm.newton_schulz = newton_schulz
        result: dict[str, Any] = {"rank": rank}
        for mode, pg in (("replicated", None), ("sharded", dist.group.WORLD)):
            gen = torch.Generator().manual_seed(0)
            params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
            opt = adaptim.Muon(params, lr=0.02, process_group=pg)
            times = []
            for t in range(steps + 2):
                for i, p in enumerate(params):
                    p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(1000 * t + i))
                counted["n"] = 0
                dist.barrier()
                t0 = time.perf_counter()
                opt.step()
                times.append(time.perf_counter() - t0)
            owner = opt.__dict__.get("_owner")
            result[mode] = {
                "median_step_ms": 1e3 * statistics.median(times[2:]),  # the first two: warm-up
                "ns_matrices_per_step": counted["n"],
                "comm": dict(owner.last_step) if owner is not None else {},
                "state_mib": sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()) / 2**20,
            }
        out.put(result)
    finally:
        dist.destroy_process_group()


def measure(nproc: int = 2, steps: int = 10, shapes=SHAPES) -> list[dict[str, Any]]:
    """One run of :data:`SHAPES` (or ``shapes``) under Muon on ``nproc`` processes; per-rank figures."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        procs = [ctx.Process(target=_worker, args=(r, nproc, init_file, shapes, steps, out)) for r in range(nproc)]
        for p in procs:
            p.start()
        results = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join(timeout=30)
    return sorted(results, key=lambda r: r["rank"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    params = sum(math.prod(s) for s in SHAPES)
    ranks = measure(args.nproc, args.steps)
    print(json.dumps({"parameters": params, "matrices": len(SHAPES), "ranks": ranks}, indent=1))


if __name__ == "__main__":
    main()
