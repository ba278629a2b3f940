"""Appendix K: RMS as a per-entry size; for Gaussian entries RMS = sqrt(pi/2) E|X|; the mean says nothing of size."""

from __future__ import annotations

import math

import torch

from adaptim.claims._core import Claim, Context
from adaptim.linalg import rms


def run(ctx: Context) -> None:
    # the notes' example: fifty entries at -42 and fifty at +42 have mean 0 and RMS 42
    x = torch.cat([torch.full((50,), -42.0), torch.full((50,), 42.0)]).double()
    ctx.close("RMS of the ±42 vector", 42.0, rms(x), rtol=1e-15)
    ctx.close("mean of the ±42 vector", 0.0, x.mean(), atol=1e-12)
    # d = 1: RMS is the absolute value
    ctx.close("RMS of a single entry -3.5", 3.5, rms(torch.tensor([-3.5], dtype=torch.float64)), rtol=0)
    # X ~ N(0, sigma^2): RMS / mean |X| -> sqrt(pi/2) ≈ 1.2533; the estimate's standard error is about 0.8/sqrt(d)
    d = ctx.size(200_000, 4_000_000)
    sigma = 3.0
    g = torch.randn(d, dtype=torch.float64) * sigma
    ratio = (rms(g) / g.abs().mean()).item()
    ctx.close(f"RMS / mean|X| for N(0, 9), d = {d}", math.sqrt(math.pi / 2), ratio, atol=5 / math.sqrt(d))
    ctx.close(f"RMS of N(0, 9) samples, d = {d}", sigma, rms(g), atol=5 * sigma / math.sqrt(2 * d))
    # Cauchy-Schwarz: mean |x| <= RMS(x) for any vector (checked on heavy-tailed samples)
    t = torch.distributions.StudentT(2.5).sample((10_000,)).double()
    ctx.le("mean|x| <= RMS(x), Student-t(2.5) samples", t.abs().mean(), rms(t))


CLAIM = Claim(
    name="rms",
    section="K",
    statement="RMS(x) = ||x||_2/sqrt(d) measures typical entry size: the ±42 vector has mean 0 and RMS 42, "
    "E|X| <= sqrt(E X^2), and for Gaussian entries RMS = sqrt(pi/2) E|X| ≈ 1.25 E|X|.",
    run=run,
)
