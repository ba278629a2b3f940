"""The memory side of ``adaptim perf``: the triad bandwidth and each rule's byte floor.

The byte floor of an update rule is the bytes it must read and write per step: every tensor the rule reads (the
parameter, its gradient, its state) and every one it writes, once, at 4 bytes per float32 entry. Divided by the
triad bandwidth measured in the same process it is the fastest the step could run on this memory system.

| key | read + written per matrix entry | bytes | state per entry |
| --- | --- | ---: | --- |
| adamw, adam, adam_atan2 | read p, g, m, v; write p, m, v | 7 x 4 = 28 | m, v |
| sgd (momentum) | read p, g, buf; write p, buf | 5 x 4 = 20 | buf |
| adagrad | read p, g, sum; write p, sum | 5 x 4 = 20 | sum |
| rmsprop (momentum) | read p, g, v, buf; write p, v, buf | 7 x 4 = 28 | v, buf |
| adafactor | read g (row/column statistics), then p, g; write p | 4 x 4 = 16 | rows + columns of each matrix |
| muon | read p, g, buf; write p, buf (Newton-Schulz not counted: compute-bound) | 5 x 4 = 20 | buf |

A vector entry costs the same, except Adafactor's, which is unfactored: read p, g, v; write p, v (20 B), state v.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

__all__ = ["FLOAT_BYTES", "RULES", "ELEMENTWISE", "floor_bytes", "theory_state_bytes", "Triad", "parse_size", "clock"]

FLOAT_BYTES = 4

#: key -> (float32 words read + written per matrix entry, per vector entry, state words per entry, formula)
RULES: dict[str, tuple[int, int, int, str]] = {
    "adamw": (7, 7, 2, "read p, g, m, v; write p, m, v"),
    "adam": (7, 7, 2, "read p, g, m, v; write p, m, v"),
    "adam_atan2": (7, 7, 2, "read p, g, m, v; write p, m, v"),
    "sgd": (5, 5, 1, "read p, g, buf; write p, buf"),
    "adagrad": (5, 5, 1, "read p, g, sum; write p, sum"),
    "rmsprop": (7, 7, 2, "read p, g, v, buf; write p, v, buf"),
    # state 0 per matrix entry: the factored statistics are rows + columns, counted in theory_state_bytes
    "adafactor": (4, 5, 0, "matrices: read g (statistics), p, g; write p. vectors: read p, g, v; write p, v"),
    "muon": (5, 5, 1, "read p, g, buf; write p, buf (Newton-Schulz not counted: compute-bound)"),
}

#: the rules whose cost is one elementwise pass: the scaling table covers these
ELEMENTWISE = ("adamw", "adam", "adam_atan2", "sgd", "adagrad", "rmsprop")


def floor_bytes(key: str, shapes: Sequence[tuple[int, ...]]) -> int:
    """Bytes the rule ``key`` of :data:`RULES` must read and write in one step over tensors of ``shapes``."""
    per_matrix, per_vector, _, _ = RULES[key]
    total = 0
    for shape in shapes:
        n = _numel(shape)
        total += (per_matrix if len(shape) >= 2 else per_vector) * n * FLOAT_BYTES
    return total


def theory_state_bytes(key: str, shapes: Sequence[tuple[int, ...]]) -> int:
    """The float32 state the rule ``key`` needs for tensors of ``shapes`` (step counters not counted)."""
    words = 0
    for shape in shapes:
        if key == "adafactor":
            words += shape[-2] * _numel(shape[:-2]) + _numel(shape[:-2]) * shape[-1] if len(shape) >= 2 else shape[0]
        else:
            words += RULES[key][2] * _numel(shape)
    return words * FLOAT_BYTES


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


class Triad:
    """The STREAM triad a = b + s * c over three float32 buffers of ``n`` entries; it moves 16 n bytes.

    b and c are read (8 B per entry) and a is written; a write to memory not read first also reads the line in
    (write-allocate), so a costs 8 B per entry. An optimizer's buffers are read before they are written, so its
    writes cost no such read: counting the triad's 12 B of STREAM's convention would understate the bandwidth
    by a quarter and put torch's fused steps below their floors.

    Args:
        n: entries per buffer (choose it well beyond the last-level cache).
        device: where the buffers live.
    """

    name = "triad"

    def __init__(self, n: int, device: torch.device | str = "cpu") -> None:
        self.n = n
        self.a, self.b, self.c = (torch.rand(n, device=device) for _ in range(3))
        self.bytes = 4 * n * FLOAT_BYTES

    def step(self) -> None:
        torch.add(self.b, self.c, alpha=0.5, out=self.a)


def parse_size(text: str) -> int:
    """``"16M"`` -> 16_000_000, ``"20k"`` -> 20_000, ``"4096"`` -> 4096 (decimal prefixes k, M, G).

    Raises:
        ValueError: for anything else or a size below 1.
    """
    t = text.strip()
    scale = {"k": 10**3, "K": 10**3, "m": 10**6, "M": 10**6, "g": 10**9, "G": 10**9}.get(t[-1:], 1)
    number = t[:-1] if scale != 1 else t
    try:
        value = round(float(number) * scale)
    except ValueError:
        raise ValueError(f"size must be a number with an optional k, M or G suffix, got {text!r}") from None
    if value < 1:
        raise ValueError(f"size must be >= 1, got {text!r}")
    return value


def clock() -> tuple[int, int]:
    """(wall, process CPU) time in ns."""
    return time.perf_counter_ns(), time.process_time_ns()
