"""``adaptim perf``'s low-precision section: the memory of bfloat16 parameters and how closely they follow float32.

Two measurements, both from real runs (nothing here is a hard-coded figure):

* **Memory** (:func:`memory_rows`): AdamW on the perf run's shapes, one step taken, with float32 parameters and
  with bfloat16 parameters under each ``low_precision`` write-back (:mod:`adaptim.optim.low_precision`); bytes of
  the parameters, their gradients and the optimizer state, summed over the tensors themselves.
* **Trajectory** (:func:`trajectory_rows`): a 64-32-10 tanh MLP on sklearn's bundled digits (1,797 images, full
  batch), trained from one bfloat16-representable initialization in float32 and in bfloat16 with each write-back.
  The loss and its gradient are computed in float32 from the (upcast) parameters, so the runs differ only in the
  parameters' storage (and the gradients', which have the parameters' dtype). Reported: the final loss, the largest
  gap between the loss curves, and the weights' deviation ||w - w32|| / ||w32 - w0|| (relative to how far float32
  travelled).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

import adaptim

__all__ = [
    "MODES",
    "TRAJECTORY_OPTIMIZERS",
    "digits_mlp_init",
    "train_digits_mlp",
    "memory_rows",
    "trajectory_rows",
    "low_precision_results",
    "low_precision_markdown",
]

#: (parameter dtype, ``low_precision``) pairs compared, the float32 reference first
MODES: tuple[tuple[torch.dtype, str], ...] = (
    (torch.float32, "nearest"),
    (torch.bfloat16, "nearest"),
    (torch.bfloat16, "stochastic"),
    (torch.bfloat16, "kahan"),
)
#: the optimizers of the trajectory runs: (label, class, keyword arguments)
TRAJECTORY_OPTIMIZERS: tuple[tuple[str, type, dict[str, Any]], ...] = (
    ("AdamW lr 1e-3, wd 0.01", adaptim.AdamW, dict(lr=1e-3, weight_decay=0.01)),
    ("SGD lr 0.1, momentum 0.9", adaptim.SGD, dict(lr=0.1, momentum=0.9)),
)
_HIDDEN = 32


def _name(dtype: torch.dtype, mode: str) -> str:
    return str(dtype).removeprefix("torch.") + ("" if dtype == torch.float32 else f" + {mode}")


def digits_mlp_init(seed: int = 0) -> list[torch.Tensor]:
    """The MLP's initial (W1 (64, 32), b1 (32,), W2 (32, 10), b2 (10,)), float32 values representable in bfloat16."""
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn(64, _HIDDEN, generator=gen) / 8
    w2 = torch.randn(_HIDDEN, 10, generator=gen) / _HIDDEN**0.5
    return [t.to(torch.bfloat16).float() for t in (w1, torch.zeros(_HIDDEN), w2, torch.zeros(10))]


def _digits(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32, device=device) / 16
    return x, torch.tensor(data.target, device=device)


def train_digits_mlp(
    cls: type,
    kwargs: dict[str, Any],
    dtype: torch.dtype,
    low_precision: str,
    steps: int,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train the digits MLP full-batch for ``steps`` steps with parameters stored in ``dtype``.

    Args:
        cls, kwargs: the optimizer class and its keyword arguments.
        dtype: the parameters' dtype (float32 or bfloat16/float16).
        low_precision: the group entry ``low_precision`` ("nearest", "stochastic", "kahan").
        steps: optimizer steps (>= 1).
        device: where the data and parameters live.
        seed: of :func:`digits_mlp_init`.

    Returns:
        (losses (steps,) float64: the loss before each step; the final weights flattened, float32).
    """
    dev = torch.device(device)
    x, y = _digits(dev)
    params = [torch.nn.Parameter(t.to(device=dev, dtype=dtype)) for t in digits_mlp_init(seed)]
    opt = cls([{"params": params, "low_precision": low_precision}], **kwargs)
    losses = torch.empty(steps, dtype=torch.float64)
    for i in range(steps):
        w1, b1, w2, b2 = (p.float() for p in params)
        loss = torch.nn.functional.cross_entropy(torch.tanh(x @ w1 + b1) @ w2 + b2, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses[i] = loss.item()
    return losses, torch.cat([p.detach().float().flatten().cpu() for p in params])


def trajectory_rows(steps: int = 300, device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """For each of :data:`TRAJECTORY_OPTIMIZERS` and :data:`MODES`: final loss, the largest loss gap to the
    float32 run, and the relative weight deviation ||w - w32|| / ||w32 - w0|| after ``steps`` steps."""
    w0 = torch.cat([t.flatten() for t in digits_mlp_init()])
    rows = []
    for label, cls, kwargs in TRAJECTORY_OPTIMIZERS:
        ref_losses, ref_w = train_digits_mlp(cls, kwargs, torch.float32, "nearest", steps, device)
        for dtype, mode in MODES:
            if dtype == torch.float32:
                losses, w = ref_losses, ref_w
            else:
                losses, w = train_digits_mlp(cls, kwargs, dtype, mode, steps, device)
            rows.append(
                {
                    "optimizer": label,
                    "name": _name(dtype, mode),
                    "final_loss": float(losses[-1]),
                    "max_loss_gap": float((losses - ref_losses).abs().max()),
                    "weight_deviation": float((w - ref_w).norm() / (ref_w - w0).norm()),
                }
            )
    return rows


def memory_rows(shapes: Sequence[Sequence[int]], device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """Bytes per parameter of AdamW (one step taken) on parameters of ``shapes`` for each of :data:`MODES`,
    measured from the tensors: parameters, gradients, optimizer state (``opt.state``)."""
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for dtype, mode in MODES:
        params = [torch.randn(s, generator=gen).to(device=dev, dtype=dtype) for s in shapes]
        opt = adaptim.AdamW([{"params": params, "low_precision": mode}], lr=1e-3)
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        n = sum(p.numel() for p in params)
        param_b = sum(p.nbytes for p in params)
        grad_b = sum(p.grad.nbytes for p in params)
        state_b = sum(v.nbytes for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor))
        rows.append(
            {
                "name": _name(dtype, mode),
                "n_params": n,
                "param_bytes": param_b,
                "grad_bytes": grad_b,
                "state_bytes": state_b,
                "bytes_per_param": (param_b + state_b) / n,
                "bytes_per_param_with_grad": (param_b + grad_b + state_b) / n,
            }
        )
        del params, opt
    return rows


def low_precision_results(
    shapes: Sequence[Sequence[int]], steps: int = 300, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Both measurements (``steps`` = 0 leaves the trajectory out) as one dict for ``perf.json``."""
    return {
        "memory": memory_rows(shapes, device),
        "trajectory": {"steps": steps, "rows": trajectory_rows(steps, device) if steps > 0 else []},
    }


def low_precision_markdown(section: dict[str, Any]) -> list[str]:
    """The Markdown lines of the section."""
    lines = [
        "",
        "## Low-precision parameters",
        "",
        "Bytes per parameter measured from the tensors after one AdamW step (`low_precision` write-back of "
        "bfloat16 parameters; statistics stay float32):",
        "",
        "| parameters | param B/param | state B/param | param + state | + gradient |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in section["memory"]:
        n = r["n_params"]
        lines.append(
            f"| {r['name']} | {r['param_bytes'] / n:.2f} | {r['state_bytes'] / n:.2f} | {r['bytes_per_param']:.2f} "
            f"| {r['bytes_per_param_with_grad']:.2f} |"
        )
    traj = section["trajectory"]
    if traj["rows"]:
        lines += [
            "",
            f"Trajectory: digits MLP (64-32-10, tanh, full batch), {traj['steps']} steps from one initialization; "
            "loss computed in float32 from the parameters. *weight dev.* is ||w - w32|| / ||w32 - w0||.",
            "",
            "| optimizer | parameters | final loss | max loss gap to float32 | weight dev. |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for r in traj["rows"]:
            lines.append(
                f"| {r['optimizer']} | {r['name']} | {r['final_loss']:.4f} | {r['max_loss_gap']:.4f} "
                f"| {r['weight_deviation']:.4f} |"
            )
    return lines
