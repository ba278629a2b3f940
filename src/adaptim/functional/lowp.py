"""Stochastic rounding of float32 to bfloat16 / float16: the write-back of a low-precision parameter.

A bfloat16 parameter is updated through a float32 working copy (see :class:`adaptim.AdaptimOptimizer`). Rounding
the copy back to the nearest bfloat16 loses every update smaller than half a unit in the last place (ulp): with
lr 1e-3 a weight of 1.0 (ulp 2^-7) never moves. Stochastic rounding picks one of the two representable neighbours
lo <= x <= hi at random, hi with probability (x - lo) / (hi - lo), so that E[round(x)] = x: small updates survive
in expectation and the parameter follows its float32 trajectory up to zero-mean noise of at most one ulp.

Conventions (both dtypes):

* Values already representable come back unchanged (probability 1); the sign is kept (round(-x) is -round(x) for
  the same random draw, and -0.0 stays -0.0).
* +-inf and NaN come back as themselves.
* A finite value never rounds to infinity: beyond the largest finite value M the upper neighbour is +-inf,
  which is chosen with probability (x - M) / (inf - M) = 0, so |x| > M gives +-M (saturation; round-to-nearest
  would give inf above M plus half an ulp).
"""

from __future__ import annotations

import torch

__all__ = ["stochastic_round", "stochastic_round_"]

#: the dtypes a float32 value can be rounded to
_LOW = (torch.bfloat16, torch.float16)


def _check(x: torch.Tensor, dtype: torch.dtype) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"stochastic rounding reads float32 values, got {got}")
    if dtype not in _LOW:
        raise TypeError(f"stochastic rounding targets torch.bfloat16 or torch.float16, got dtype {dtype}")


def _bfloat16(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # bfloat16 is the upper half of float32: add 16 uniform random bits to the low half of the bit pattern
    # and clear it. The pattern is sign-magnitude, so the carry raises |x| to the next bfloat16 with probability
    # (low half) / 2^16 = (|x| - lo) / ulp, for either sign; 0 stays 0. NaN patterns may wrap and are put back.
    bits = torch.randint(0, 1 << 16, x.shape, dtype=torch.int32, device=x.device, generator=generator)
    bits.add_(x.view(torch.int32)).bitwise_and_(-65536)
    y = bits.view(torch.float32)
    big = torch.finfo(torch.bfloat16).max
    y.clamp_(-big, big)  # a carry past the largest bfloat16 made inf: saturate (see the module doc)
    return torch.where(torch.isfinite(x), y, x).to(torch.bfloat16)  # exact: the low half is 0


def _float16(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # float16 has its own exponent range (subnormals below 2^-14), so no fixed bit mask: round to nearest, take
    # the neighbour on the other side of x (one step of the magnitude in the int16 pattern) and choose it with
    # probability d / s. d = |x - y| and the spacing s (a power of 2) are exact in float32, so is p = d / s, a
    # multiple of 2^-24 for |x| >= 2^-24: u < p with u uniform on the 2^-24 grid of torch.rand has probability p.
    big = torch.finfo(torch.float16).max
    x = torch.where(torch.isfinite(x), x.clamp(-big, big), x)  # saturate: finite stays finite
    y = x.to(torch.float16)
    yf = y.float()
    step = torch.where(yf.abs() < x.abs(), 1, -1).to(torch.int16)
    other = (y.view(torch.int16) + step).view(torch.float16)  # |x| beyond |y|: next magnitude, else the previous
    p = (x - yf).abs() / (other.float() - yf).abs()  # NaN for NaN/inf inputs and 0/0 (exact): never chosen
    u = torch.rand(x.shape, dtype=torch.float32, device=x.device, generator=generator)
    return torch.where(u < p, other, y)


def stochastic_round(
    x: torch.Tensor, dtype: torch.dtype = torch.bfloat16, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x`` rounded to ``dtype`` stochastically: to the neighbour above with probability (x - lo) / (hi - lo).

    Unbiased (E[result] = x) for every finite x of magnitude at most the dtype's largest finite value, exactly
    for bfloat16 (16 random bits for the 16 bits dropped) and for float16 down to its smallest subnormal 2^-24
    (below it the probability is rounded to a multiple of 2^-24). See the module doc for signs, zeros, inf, NaN
    and saturation beyond the largest finite value.

    Args:
        x: float32 tensor, any shape, on any device.
        dtype: ``torch.bfloat16`` (the bit-pattern method: one random int32 per entry) or ``torch.float16``
            (one random float32 per entry).
        generator: the source of the random bits (on ``x``'s device); ``None`` draws from torch's default
            generator. The same generator state gives the same result.

    Returns:
        A new tensor of ``x``'s shape in ``dtype``.

    Raises:
        TypeError: ``x`` is not a float32 tensor, or ``dtype`` is neither bfloat16 nor float16.
    """
    _check(x, dtype)
    x = x.contiguous()  # the bit view needs a dense layout
    return _bfloat16(x, generator) if dtype == torch.bfloat16 else _float16(x, generator)


def stochastic_round_(out: torch.Tensor, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Write :func:`stochastic_round` of ``x`` into ``out`` (a bfloat16 or float16 tensor) and return ``out``.

    Args:
        out: bfloat16/float16 tensor, written in place (e.g. the parameter).
        x: float32 tensor of ``out``'s shape (e.g. the float32 working copy), on ``out``'s device.
        generator: as in :func:`stochastic_round`.

    Raises:
        TypeError: ``x`` is not float32 or ``out`` is neither bfloat16 nor float16.
        ValueError: ``x`` and ``out`` differ in shape or device.
    """
    _check(x, out.dtype)
    if out.shape != x.shape:
        raise ValueError(f"stochastic_round_: out has shape {tuple(out.shape)}, x has {tuple(x.shape)}")
    if out.device != x.device:
        raise ValueError(f"stochastic_round_: out is on {out.device}, x on {x.device}")
    return out.copy_(stochastic_round(x, out.dtype, generator))
