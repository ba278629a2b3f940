"""Helpers shared by the matrix claims (Sections 5-7, Appendices G, M, Q): the notes' side in numpy.

Nothing here re-implements a method of the library: these are the generic pieces of linear algebra the
predictions are written with (a symmetric matrix power by eigendecomposition, a log-log slope, the largest
principal angle between two subspaces), plus a context that runs torch on one thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (restored after).

    The claims use matrices of a few rows; on a loaded 2-core machine torch's thread pool made each
    ``tril_``/``triu`` on a 4 x 4 matrix take about 15 ms (a barrier waiting for a descheduled thread), so
    Shampoo's steps cost 100x their arithmetic. One thread computes the same numbers.
    """
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def sym_power(A: np.ndarray, p: float, *, floor: float = 0.0) -> np.ndarray:
    """(A)^p for symmetric PSD ``A`` by numpy's eigendecomposition; eigenvalues <= ``floor`` * max are dropped
    (a pseudo-power on the range) when ``p < 0``, clamped at 0 otherwise."""
    lam, V = np.linalg.eigh((A + A.T) / 2)
    lam = np.clip(lam, 0.0, None)
    if p < 0:
        keep = lam > floor * lam.max()
        out = np.zeros_like(lam)
        out[keep] = lam[keep] ** p
    else:
        out = lam**p
    return (V * out) @ V.T


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def log_rate(y) -> float:
    """Least-squares slope of log y against the index 0, 1, 2, ..., as a per-step factor exp(slope)."""
    y = np.asarray(y, float)
    return float(np.exp(np.polyfit(np.arange(len(y)), np.log(y), 1)[0]))


def sin_theta(V: np.ndarray, W: np.ndarray) -> float:
    """sin of the largest principal angle between span(V) and span(W) (orthonormal columns, same count)."""
    P = V @ V.T
    return float(np.linalg.norm(W - P @ W, 2))
