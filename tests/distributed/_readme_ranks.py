"""The README's distributed snippets, run on every rank of a gloo group (test_readme_distributed.py)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def snippets() -> dict[str, str]:
    """The README's ``py`` blocks under "Several processes", by the word after the fence's first comment: ddp, fsdp2."""
    blocks = re.findall(r"```py\n(# (\w+).*?)```", (ROOT / "README.md").read_text(), re.S)
    return {name.lower(): code for code, name in blocks}


class Blocks(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(11, 8)
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(8, 8) for _ in range(3))
        self.head = torch.nn.Linear(8, 11)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for b in self.blocks:
            h = torch.tanh(b(h))
        return self.head(h)


def train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int = 3) -> None:
    """``steps`` steps of next-token loss on one fixed batch (the same on every rank and in one process)."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randint(0, 11, (4, 6), generator=gen)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten()).backward()
        opt.step()


def run(rank: int, world_size: int, kind: str) -> list[torch.Tensor]:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel as DDP

    import adaptim

    ns = {"torch": torch, "adaptim": adaptim, "DDP": DDP, "fully_shard": fully_shard, "model": Blocks()}
    exec(snippets()[kind], ns)
    model = ns["model"]
    train(model, ns["opt"])
    dist.barrier()
    return [(p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone() for p in model.parameters()]
