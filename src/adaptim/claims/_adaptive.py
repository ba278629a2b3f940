"""Shared pieces of the Section 2.2-4.5 claims (momentum, Adam): a real training problem.

Not a claim module (the leading underscore keeps it out of discovery).
"""

from __future__ import annotations

import torch

from adaptim.online.adversaries import breast_cancer_table


def breast_cancer(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's breast-cancer data (bundled, no download): standardized features with a bias column.

    Returns:
        ``(X, y)``: X of shape (569, 31) (30 standardized features, then 1.0), y of shape (569,) in {0, 1}.
    """
    data, target = breast_cancer_table()
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


def train_rows(optimizer_cls, runs, x, y, order, *, lr: float, fused: bool | None = False) -> list[torch.Tensor]:
    """Logistic regressions on ``(x, y)`` trained by one optimizer of ``optimizer_cls`` (an elementwise one).

    Args:
        runs: a list of ``(scales, group)``: scales of shape (R, d), one param group (extra keywords ``group``)
            of R independent rows (zeros at the start), each row's gradient multiplied elementwise by its row of
            scales (g_t -> c g_t).
        order: minibatch indices, shape (steps, batch_size) (:func:`batches`).
        lr: the learning rate (the gradient is that of each batch's mean loss).
        fused: the optimizer's ``fused`` (default False: the foreach path, no compile; None: the path users get by
            default, the compiled kernel where torch.compile can build one).

    Returns:
        each run's iterates w_1 .. w_(T+1), shape (T + 1, R, d), float64.
    """
    params = [torch.zeros(scales.shape, dtype=torch.float64) for scales, _ in runs]
    opt = optimizer_cls([{"params": [p], **group} for p, (_, group) in zip(params, runs)], lr=lr, fused=fused)
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
