"""A claim-run wrapper: run single-threaded, then restore torch's thread count.

The online-learning claims step tiny (or long but elementwise) tensors thousands of times; torch's intra-op
thread pool only adds contention there (2-3x slower on a loaded 2-core machine).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch


def single_threaded(run: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``run`` with ``torch.set_num_threads(1)`` for its duration (the previous count is restored)."""

    @functools.wraps(run)
    def wrapped(ctx: Any) -> Any:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return run(ctx)
        finally:
            torch.set_num_threads(threads)

    return wrapped
