"""Sections 4.7 and L.2: optimizer state sizes, Adam's 2mn against Adafactor's m + n and AdamNMF's r (m + n).

Each optimizer takes one step on a float32 weight matrix of each shape; the bytes of every tensor in its state
(the per-parameter step counter excepted, a scalar) are compared with the notes' count of floats times 4.
"""

from __future__ import annotations

import torch

import adaptim
from adaptim.claims._core import Claim, Context

FLOAT = 4  # bytes of a float32 entry


def _state_bytes(opt: torch.optim.Optimizer) -> tuple[int, int]:
    """(bytes of the state tensors other than the step counters, bytes of the step counters)."""
    main = steps = 0
    for state in opt.state.values():
        for key, v in state.items():
            if isinstance(v, torch.Tensor):
                if key == "step":
                    steps += v.nbytes
                else:
                    main += v.nbytes
    return main, steps


def _one_step(make, shape, dtype=torch.float32, seed=0) -> tuple[torch.optim.Optimizer, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=gen).to(dtype)
    opt = make([w])
    w.grad = torch.randn(shape, generator=gen).to(dtype)
    opt.step()
    return opt, w


# name -> (constructor, the notes' count of state floats for an m x n matrix, where the count comes from)
OPTIMIZERS = {
    "Adam": (lambda p: adaptim.Adam(p, fused=False), lambda m, n: 2 * m * n, "4.7: m, v in R^d, d = mn"),
    "AdamW": (lambda p: adaptim.AdamW(p, fused=False), lambda m, n: 2 * m * n, "4.7: m, v"),
    "Adafactor (beta1=None)": (lambda p: adaptim.Adafactor(p), lambda m, n: m + n, "(52): a_t in R^m, s_t in R^n"),
    "Adafactor (beta1=0.9)": (
        lambda p: adaptim.Adafactor(p, beta1=0.9),
        lambda m, n: m * n + m + n,
        "(52) plus Adam's first moment (4.7.1 item 2 dropped)",
    ),
    "AdamNMF rank 1": (lambda p: adaptim.AdamNMF(p, rank=1), lambda m, n: m + n, "L.2: A in R^{m x r}, B in R^{r x n}"),
    "AdamNMF rank 4": (lambda p: adaptim.AdamNMF(p, rank=4), lambda m, n: 4 * (m + n), "L.2: r (m + n)"),
    "IdealizedShampoo": (
        lambda p: adaptim.IdealizedShampoo(p),
        lambda m, n: m * m + n * n,
        "6.2.1: E[G G^T] in R^{m x m}, E[G^T G] in R^{n x n}",
    ),
    "Shampoo (no grafting)": (
        lambda p: adaptim.Shampoo(p, grafting=None),
        lambda m, n: m * m + n * n + m + n,
        "(53): L_t, R_t (m^2 + n^2); the cached roots share their symmetric storage, + m + n",
    ),
    "Shampoo (Adam grafting)": (
        lambda p: adaptim.Shampoo(p, grafting="adam"),
        lambda m, n: m * m + n * n + m + n + m * n,
        "(53) plus the grafted Adam's second moment",
    ),
    "SGD (momentum)": (lambda p: adaptim.SGD(p, lr=0.1, momentum=0.9, fused=False), lambda m, n: m * n, "(25): v_t"),
    "AdaGrad": (lambda p: adaptim.AdaGrad(p, fused=False), lambda m, n: m * n, "(44): sum of g^2"),
    "Muon": (lambda p: adaptim.Muon(p), lambda m, n: m * n, "7: the momentum buffer"),
}


def run(ctx: Context):
    import matplotlib.pyplot as plt

    shapes = ctx.size([(64, 32), (120, 20)], [(64, 32), (300, 20), (512, 256), (1000, 40)])
    table = {}
    for shape in shapes:
        m, n = shape
        for name, (make, floats, source) in OPTIMIZERS.items():
            opt, _ = _one_step(make, shape)
            measured, _ = _state_bytes(opt)
            table[(name, shape)] = measured
            ctx.close(f"{name}, {m} x {n}: state bytes = 4 x [{source}]", FLOAT * floats(m, n), measured)
    # 4.7: bfloat16 weights with float32 m, v: 4d bytes (weights and gradients) become 12d
    m, n = shapes[0]
    d = m * n
    opt, w = _one_step(lambda p: adaptim.Adam(p, fused=False), shapes[0], dtype=torch.bfloat16)
    state, _ = _state_bytes(opt)
    ctx.close(f"bfloat16 weights and gradients, {m} x {n}: 4d bytes", 4 * d, w.nbytes + w.grad.nbytes)
    ctx.close(
        f"Adam on bfloat16 weights, {m} x {n}: with float32 m, v, 12d bytes in all",
        12 * d,
        w.nbytes + w.grad.nbytes + state,
    )
    # full-matrix AdaGrad (3.2) keeps the d x d sum of outer products (float64): far beyond the others
    small = (8, 6)
    opt, _ = _one_step(lambda p: adaptim.FullMatrixAdaGrad(p), small)
    full, _ = _state_bytes(opt)
    dd = small[0] * small[1]
    ctx.close(f"FullMatrixAdaGrad, {small[0]} x {small[1]}: (mn)^2 float64 entries (3.2's O_t)", 8 * dd * dd, full)
    # Adafactor's overhead relative to Adam vanishes for large layers: (m + n) / (2 m n)
    big = max(shapes, key=lambda s: s[0] * s[1])
    ratio = table[("Adafactor (beta1=None)", big)] / table[("Adam", big)]
    ctx.close(
        f"Adafactor / Adam state, {big[0]} x {big[1]}: (m + n) / (2mn)",
        (big[0] + big[1]) / (2 * big[0] * big[1]),
        ratio,
        rtol=1e-12,
    )
    _, steps = _state_bytes(_one_step(lambda p: adaptim.Adam(p, fused=False), shapes[0])[0])
    ctx.note("not counted", f"each parameter also keeps a scalar step counter ({steps} bytes)")

    fig, ax = plt.subplots(figsize=(7, 3.8))
    names = list(OPTIMIZERS)
    m, n = big
    ys = [table[(k, big)] for k in names]
    ax.barh(range(len(names)), ys, color="C0", label="measured state bytes")
    ax.plot(
        [FLOAT * OPTIMIZERS[k][1](m, n) for k in names], range(len(names)), "k|", ms=14, mew=2, label="4 x notes' count"
    )
    ax.axvline(m * n * FLOAT, color="C3", ls="--", lw=0.8, label="one float32 copy of W")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("bytes of optimizer state")
    ax.set_title(f"optimizer-memory (4.7, L.2): one {m} x {n} float32 layer")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


CLAIM = Claim(
    name="optimizer-memory",
    section="4.7, L.2",
    statement="Adam keeps 2mn floats per m x n layer (bfloat16 weights: 4d bytes become 12d), Adafactor m + n (52), "
    "AdamNMF r (m + n) (L.2), Shampoo the m x m and n x n statistics of (53).",
    run=run,
)
