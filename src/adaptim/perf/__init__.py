"""``adaptim perf``: the speed and memory of each optimizer's ``step()`` next to torch.optim's, in one process.

The triad bandwidth and the byte floors: :mod:`adaptim.perf.bandwidth`. The parameter shapes and the contenders:
:mod:`adaptim.perf.contenders`. The round-robin timing loop: :mod:`adaptim.perf.runner`. Output files:
:mod:`adaptim.perf.report`. See docs/perf.md.
"""

from adaptim.perf.bandwidth import RULES, floor_bytes, parse_size, theory_state_bytes
from adaptim.perf.contenders import KEYS, gpt2_shapes
from adaptim.perf.report import perf_markdown, write_perf
from adaptim.perf.runner import round_robin, run_perf

__all__ = [
    "RULES",
    "KEYS",
    "floor_bytes",
    "theory_state_bytes",
    "parse_size",
    "gpt2_shapes",
    "round_robin",
    "run_perf",
    "perf_markdown",
    "write_perf",
]
