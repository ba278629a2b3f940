"""Shared pieces of the Section 2.2-4.5 claims (momentum, Adam): a real training problem and a thread setting.

Not a claim module (the leading underscore keeps it out of discovery).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (restored after).

    These claims step small tensors thousands of times; on a shared 2-core machine a second thread only adds
    synchronization (measured: 10x slower steps on 20 000 entries), and one thread changes no result.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _breast_cancer_arrays():
    """The (569, 30) features and (569,) targets of ``sklearn.datasets.load_breast_cancer``, read from the CSV
    scikit-learn ships (importing scikit-learn itself takes seconds; it is the fallback)."""
    import importlib.util
    from pathlib import Path

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "breast_cancer.csv" if spec and spec.origin else None
    if csv is not None and csv.is_file():
        table = np.loadtxt(csv, delimiter=",", skiprows=1)
        if table.shape == (569, 31):
            return table[:, :30], table[:, 30]
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return bunch.data, bunch.target


def breast_cancer(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's breast-cancer data (bundled, no download): standardized features with a bias column.

    Returns:
        ``(X, y)``: X of shape (569, 31) (30 standardized features, then 1.0), y of shape (569,) in {0, 1}.
    """
    data, target = _breast_cancer_arrays()
    x = torch.as_tensor(data, dtype=dtype)
    x = (x - x.mean(0)) / x.std(0)
    x = torch.cat([x, torch.ones(len(x), 1, dtype=dtype)], 1)
    return x, torch.as_tensor(target, dtype=dtype)


def logistic_losses(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss of each row of ``w`` (R independent replicas, shape (R, d)) on ``(x, y)``; shape (R,).

    An elementwise optimizer (Adam, AdamAtan2) on the (R, d) tensor with loss ``(c * losses).sum()`` runs R
    independent trainings, replica r seeing the gradients of the r-th loss times c_r.
    """
    logits = x @ w.T  # (n, R)
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits, y[:, None].expand_as(logits), reduction="none"
    ).mean(0)


def batches(n: int, steps: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Minibatch indices, shape (steps, size): consecutive slices of shuffled passes over range(n)."""
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(steps * size // n + 1)])
    return order[: steps * size].view(steps, size)


def train_rows(optimizer_cls, runs, x, y, order, *, lr: float) -> list[torch.Tensor]:
    """Logistic regressions on ``(x, y)`` trained by one optimizer of ``optimizer_cls`` (an elementwise one).

    Args:
        runs: a list of ``(scales, group)``: scales of shape (R, d), one param group (extra keywords ``group``)
            of R independent rows (zeros at the start), each row's gradient multiplied elementwise by its row of
            scales (g_t -> c g_t).
        order: minibatch indices, shape (steps, batch_size) (:func:`batches`).
        lr: the learning rate (the gradient is that of each batch's mean loss).

    Returns:
        each run's iterates w_1 .. w_(T+1), shape (T + 1, R, d), float64.
    """
    params = [torch.zeros(scales.shape, dtype=torch.float64) for scales, _ in runs]
    opt = optimizer_cls([{"params": [p], **group} for p, (_, group) in zip(params, runs)], lr=lr, fused=False)
    scales = torch.cat([s for s, _ in runs])
    sizes = [len(s) for s, _ in runs]
    path = torch.empty(len(order) + 1, len(scales), scales.shape[1], dtype=torch.float64)
    path[0] = 0.0
    for t, idx in enumerate(order):
        xb, w = x[idx], torch.cat(params)
        # the mean logistic loss's gradient X^T (sigmoid(X w) - y) / B for every row at once, then g -> c g
        grads = (torch.sigmoid(xb @ w.T) - y[idx, None]).T @ xb / len(idx) * scales
        for p, g in zip(params, grads.split(sizes)):
            p.grad = g
        opt.step()
        path[t + 1] = torch.cat(params)
    return list(path.split(sizes, dim=1))
