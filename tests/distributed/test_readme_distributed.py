"""The README's DDP and FSDP2 snippets run as written on 2 gloo processes: the ranks end with the same
parameters, which moved, and the sharded Muon (DDP) or the FSDP2 one ends where one process ends."""

from __future__ import annotations

import pytest
import torch
from _owner_harness import run_ranks
from _readme_ranks import Blocks, run, snippets, train

import adaptim


def one_process() -> list[torch.Tensor]:
    model = Blocks()
    train(model, adaptim.Muon(adaptim.muon_param_groups(model), lr=0.02))
    return [p.detach() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["ddp", "fsdp2"])
def test_readme_snippet_runs_on_two_processes(kind):
    code = snippets()[kind]
    assert 2 <= sum(1 for line in code.splitlines() if line.strip() and not line.startswith("#")) <= 3
    a, b = run_ranks(run, 2, kind)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    want, start = one_process(), list(Blocks().parameters())
    assert max(float((w - s.detach()).abs().max()) for w, s in zip(want, start)) > 1e-3
    assert max(float((x - w).abs().max()) for x, w in zip(a, want)) <= 1e-5
