"""A per-step time model of owner-computes sharding at scale (docs/distributed.md, "Scale on paper").

Each rank of a process group of ``N`` ranks computes the matrix work (Newton–Schulz for Muon, the inverse roots for
Shampoo) of the parameters it owns, then one all-gather brings every rank the new parameters. Against computing
everything on every rank, the model compares

* compute, replicated: ``W / F`` (the whole matrix work ``W`` flops at ``F`` flop/s per device);
* compute, sharded: ``max(W / N, w_max) / F`` (the greedy assignment's bound: at most ``W/N`` plus the largest item);
* communication: a ring all-gather of the parameters, ``(N - 1) / N x P x b / B`` (``P`` parameters of ``b`` bytes at
  ``B`` bytes/s per device: NVLink within a node, the network across nodes).

Sharding pays where ``W/F - max(W/N, w_max)/F`` exceeds the all-gather. The numbers are a model, not a measurement:
the hardware figures are stated with every table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Transformer",
    "Hardware",
    "newton_schulz_flops",
    "shampoo_root_flops",
    "step_model",
    "scale_table",
    "TRANSFORMERS",
    "H100",
]


@dataclass(frozen=True)
class Transformer:
    """A GPT-style model's matrices: per layer Q, K, V, O (d x d) and the MLP's up and down (d x 4d), plus the
    embedding and head (vocab x d; on the AdamW side of Muon, elementwise)."""

    name: str
    d_model: int
    n_layer: int
    vocab: int = 50304

    def matrices(self) -> list[tuple[int, int]]:
        d = self.d_model
        per_layer = [(d, d)] * 4 + [(4 * d, d), (d, 4 * d)]
        return per_layer * self.n_layer

    def n_params(self) -> int:
        return sum(m * n for m, n in self.matrices()) + 2 * self.vocab * self.d_model


@dataclass(frozen=True)
class Hardware:
    """Per device: sustained matmul flop/s in the working precision, all-gather bandwidth within a node and across
    nodes (bytes/s), devices per node."""

    name: str
    flops: float
    intra_bw: float
    inter_bw: float
    per_node: int = 8


#: roughly an H100 SXM node: 400 TFLOP/s sustained bf16 matmul (40% of the dense peak), NVLink all-gather at
#: 300 GB/s per device, 400 Gb/s InfiniBand (50 GB/s) per device across nodes
H100 = Hardware("H100 (model)", 400e12, 300e9, 50e9)

#: about 1B and 7B parameters
TRANSFORMERS = (Transformer("1B", 2048, 20), Transformer("7B", 4096, 32))


def newton_schulz_flops(m: int, n: int, steps: int = 5) -> float:
    """Flops of ``steps`` quintic Newton–Schulz iterations on an m x n matrix (Section 7): per step
    A = X X^T (2 k^2 l), B = b A + c A^2 (2 k^3), X <- a X + B X (2 k^2 l), with k = min(m, n), l = max(m, n)."""
    k, l = min(m, n), max(m, n)
    return steps * (4 * k * k * l + 2 * k**3)


def shampoo_root_flops(m: int, n: int) -> float:
    """Flops of Shampoo's two inverse roots of an m x n matrix by eigendecomposition, about 9 k^3 per side of size k
    (symmetric eigensolver plus the reconstruction), amortized over no steps (a root every step)."""
    return 9.0 * (m**3 + n**3)


def step_model(model: Transformer, hw: Hardware, ranks: int, method: str = "muon", bytes_per_param: int = 2) -> dict:
    """The model's per-step times in seconds for ``ranks`` devices in one process group (see the module docstring).

    Returns ``{"replicated_s", "sharded_s", "allgather_s", "saving_s", "pays"}``; ``pays``: the sharded compute plus
    the all-gather is below the replicated compute.

    Raises:
        ValueError: an unknown ``method`` or ``ranks < 1``.
    """
    if ranks < 1:
        raise ValueError(f"ranks must be >= 1, got {ranks!r}")
    cost = {"muon": newton_schulz_flops, "shampoo": shampoo_root_flops}.get(method)
    if cost is None:
        raise ValueError(f"method must be 'muon' or 'shampoo', got {method!r}")
    items = [cost(m, n) for m, n in model.matrices()]
    work = sum(items)
    replicated = work / hw.flops
    sharded = max(work / ranks, max(items)) / hw.flops
    bw = hw.intra_bw if ranks <= hw.per_node else hw.inter_bw
    matrix_params = sum(m * n for m, n in model.matrices())
    allgather = (ranks - 1) / ranks * matrix_params * bytes_per_param / bw
    return {
        "replicated_s": replicated,
        "sharded_s": sharded,
        "allgather_s": allgather,
        "saving_s": replicated - sharded - allgather,
        "pays": sharded + allgather < replicated,
    }


def scale_table(hw: Hardware = H100, ranks: tuple[int, ...] = (8, 64, 256, 1024)) -> str:
    """The Markdown table of :func:`step_model` for :data:`TRANSFORMERS`, Muon and Shampoo, at ``ranks`` (ms)."""
    lines = [
        "| model | method | ranks | replicated compute | sharded compute | all-gather | sharded total | best group |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for model in TRANSFORMERS:
        for method in ("muon", "shampoo"):
            rows = {n: step_model(model, hw, n, method) for n in ranks}
            best = min(rows, key=lambda n: rows[n]["sharded_s"] + rows[n]["allgather_s"])
            for n, r in rows.items():
                total = r["sharded_s"] + r["allgather_s"]
                size = f"{model.name} ({model.n_params() / 1e9:.1f}B)"
                lines.append(
                    f"| {size} | {method} | {n} | {1e3 * r['replicated_s']:.1f} ms "
                    f"| {1e3 * r['sharded_s']:.1f} ms | {1e3 * r['allgather_s']:.1f} ms | {1e3 * total:.1f} ms "
                    f"| {'**this one**' if n == best else ''} |"
                )
    return "\n".join(lines)
