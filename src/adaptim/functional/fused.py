"""Fused steps of the elementwise rules: one compiled pass over p, g and the state, no temporaries, no host sync.

Each rule of this module is the *whole* step of an elementwise optimizer -- the gradient's sign (``maximize``), the
L2 term, the moments, the direction, the last stage w <- (1 - lambda_t) w - eta_t d_t and the check of every entry
-- written once as a pure function of one tensor's entries (``_adam``, ``_sgd``, ``_adagrad``, ``_rmsprop``),
with the same arithmetic as the literal ``*_single`` functions of :mod:`adaptim.functional` (the reference it is
tested against). ``torch.compile`` turns it into one loop that reads every input once and writes every output once
(inductor emits vectorized C++ on CPU and Triton on GPU), where the foreach path makes 9 passes (Adam) and two
full-size temporaries.

**Compiled once per (rule, flags, dtype, device).** The kernel works on 1-D views and is compiled with dynamic sizes
for a chunk of :data:`CHUNK` tensors (a short last chunk is padded with tiny scratch tensors), so a model of any
shapes and any number of parameters reuses it. Every hyperparameter that may change between steps -- lr, the
bias corrections 1 - b^t, lambda_t, betas, eps, the sign -- is an entry of a coefficient table (a tensor with one
row per parameter), never a constant of the compiled code, so a scheduler changing the lr (float or tensor) or the
betas does not recompile. The compile (tens of seconds on a small CPU, once per process unless inductor's on-disk
cache has it; ``adaptim perf`` reports it) happens at the first step.

**Non-finite entries.** The kernel checks every entry it writes: where the new parameter or state entry would be
NaN or infinite (a NaN or infinite gradient, a square that overflows), or, for rules dividing by sqrt(v) with
nothing added (``exact_squares``), where a nonzero gradient squares to 0, that entry of the parameter and of the
state is left as it was and a flag is raised on the device; the other entries take their step. The optimizer reads
the flag after the step (see :class:`adaptim.AdaptimOptimizer`). No extra pass and no host sync: the check is part
of the one loop.

Entry points: :func:`fused_step` (one rule on lists of tensors) and :func:`fused_available`.
"""

from __future__ import annotations

import functools
import os
import shutil
import types
from collections.abc import Callable, Sequence

import torch

__all__ = ["CHUNK", "RULES", "fused_available", "fused_step", "compile_count"]

#: tensors per compiled call; a chunk shorter than this is padded with scratch tensors of 2 entries
CHUNK = 8

_where = torch.where


def _keep(ok: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return _where(ok, new, old)


def _finite(*xs: torch.Tensor) -> torch.Tensor:
    ok = xs[0].isfinite()
    for x in xs[1:]:
        ok = ok & x.isfinite()
    return ok


def _squares_ok(g: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Where the step needs exact squares (``xs`` = 1: eps = 0, Adam-atan2), a nonzero g must not square to 0."""
    return (xs == 0) | ~((g * g == 0) & (g != 0))


# ---------------------------------------------------------------------------------------------------- the rules
# Each rule takes one parameter's 1-D tensors (p, g, state...) and its row ``c`` of the coefficient table, and
# returns (ok, new p, new state...). The arithmetic follows the literal functions op for op; the comments name them.

#: the coefficient table of the Adam family (one row per parameter), in this order
ADAM_COEFFS = ("sign", "l2", "w1", "b2", "w2", "cm", "cg", "bc2", "eps_in", "eps_out", "a", "b", "keep", "neg_lr", "xs")


def _adam(p, g, m, v, vmax, c, *, amsgrad: bool, atan2: bool):
    sign, l2, w1, b2, w2, cm, cg, bc2, eps_in, eps_out, a, b, keep, neg_lr, xs = (c[i] for i in range(15))
    g = g * sign  # maximize: the sign is -1 (exact)
    g = _where(l2 != 0, g + l2 * p, g)  # add_l2
    m2 = torch.lerp(m, g, w1)  # ema_
    v2 = v * b2 + w2 * g * g  # ema_sq_
    mbar = m2 * cm + g * cg  # Nesterov's cg is 0 otherwise (exact)
    vbar = v2 / bc2
    vmax2 = None
    if amsgrad:
        vmax2 = torch.maximum(vmax, vbar)
        vbar = vmax2
    if atan2:
        d = a * torch.atan2(mbar, vbar.sqrt() * b)
    else:
        den = (vbar + eps_in).sqrt() + eps_out  # eps inside or outside the root: the other one is 0
        den = _where(den == 0, 1.0, den)  # safe_denominator_: 0/0 := 0
        d = mbar / den
    p2 = p * keep + neg_lr * d  # apply_update_: decay_, then w - lr d
    ok = _finite(p2, m2, v2, *([vmax2] if amsgrad else [])) & _squares_ok(g, xs)
    out = [_keep(ok, p2, p), _keep(ok, m2, m), _keep(ok, v2, v)]
    if amsgrad:
        out.append(_keep(ok, vmax2, vmax))
    return ok, out


SGD_COEFFS = ("sign", "l2", "mu", "keep", "neg_lr", "nesterov")


def _sgd(p, g, buf, c, *, momentum: bool):
    sign, l2, mu, keep, neg_lr, nesterov = (c[i] for i in range(6))
    g = g * sign
    g = _where(l2 != 0, g + l2 * p, g)
    out_state = []
    if momentum:
        buf2 = buf * mu + g  # v_t = mu v_{t-1} + g  (25)
        d = _where(nesterov != 0, g + mu * buf2, buf2)  # Nesterov: d_t = g + mu v_t
        out_state = [buf2]
    else:
        d = g
    p2 = p * keep + neg_lr * d
    ok = _finite(p2, *out_state)
    out = [_keep(ok, p2, p)]
    if momentum:
        out.append(_keep(ok, out_state[0], buf))
    return ok, out


ADAGRAD_COEFFS = ("sign", "l2", "eps", "keep", "neg_lr", "xs")


def _adagrad(p, g, s, c):
    sign, l2, eps, keep, neg_lr, xs = (c[i] for i in range(6))
    g = g * sign
    g = _where(l2 != 0, g + l2 * p, g)
    s2 = s + g * g  # S_t = S_{t-1} + g^2  (44)
    den = s2.sqrt() + eps
    den = _where(den == 0, 1.0, den)
    p2 = p * keep + neg_lr * (g / den)
    ok = _finite(p2, s2) & _squares_ok(g, xs)
    return ok, [_keep(ok, p2, p), _keep(ok, s2, s)]


RMSPROP_COEFFS = ("sign", "l2", "w1", "b2", "w2", "eps", "keep", "neg_lr", "xs")


def _rmsprop(p, g, v, m, c, *, first_moment: bool):
    sign, l2, w1, b2, w2, eps, keep, neg_lr, xs = (c[i] for i in range(9))
    g = g * sign
    g = _where(l2 != 0, g + l2 * p, g)
    v2 = v * b2 + w2 * g * g  # (45)
    num = g
    news = [v2]
    if first_moment:
        m2 = torch.lerp(m, g, w1)
        num = m2
        news.append(m2)
    den = v2.sqrt() + eps
    den = _where(den == 0, 1.0, den)
    p2 = p * keep + neg_lr * (num / den)
    ok = _finite(p2, *news) & _squares_ok(g, xs)
    out = [_keep(ok, p2, p), _keep(ok, v2, v)]
    if first_moment:
        out.append(_keep(ok, news[1], m))
    return ok, out


#: rule name -> (kernel, names of its state tensors given the flags, coefficient names)
RULES: dict[str, tuple[Callable, Callable[[dict], tuple[str, ...]], tuple[str, ...]]] = {
    "adam": (_adam, lambda f: ("m", "v", "vmax") if f["amsgrad"] else ("m", "v", None), ADAM_COEFFS),
    "sgd": (_sgd, lambda f: ("buf",) if f["momentum"] else (None,), SGD_COEFFS),
    "adagrad": (_adagrad, lambda f: ("s",), ADAGRAD_COEFFS),
    "rmsprop": (_rmsprop, lambda f: ("v", "m") if f["first_moment"] else ("v", None), RMSPROP_COEFFS),
}


# ----------------------------------------------------------------------------------------------- compilation
def _chunk(tensors, coeffs, flag):
    """Apply the rule to each parameter of a chunk and write the results in place (traced by torch.compile).

    ``_KERNEL`` and ``_FLAGS`` are globals of each compiled copy of this function (see :func:`_compiled`)."""
    bad = []
    for i in range(len(tensors)):
        p, g, *state = tensors[i]
        ok, out = _KERNEL(p, g, *state, coeffs[i], **_FLAGS)  # noqa: F821
        targets = [p] + [s for s in state if s is not None]
        for t, new in zip(targets, out):
            t.copy_(new)
        bad.append((~ok).any())
    flag.copy_(flag | torch.stack(bad).any())


_COMPILED: dict[tuple, Callable] = {}
_COMPILES = [0]


def compile_count() -> int:
    """How many compiled kernels this process has built (each (rule, flags) once; dtype/device add entries)."""
    return _COMPILES[0]


def _compiled(rule: str, flags: tuple[tuple[str, bool], ...]) -> Callable:
    key = (rule, flags)
    fn = _COMPILED.get(key)
    if fn is None:
        kernel = RULES[rule][0]
        # a code object of its own per (rule, flags): torch.compile caches and counts recompiles per code object
        code = _chunk.__code__.replace(co_name=f"_chunk_{rule}_" + "_".join(k for k, v in flags if v))
        scope = {**_chunk.__globals__, "_KERNEL": kernel, "_FLAGS": dict(flags)}
        # fullgraph stays off so that a process exceeding torch's recompile limit (8 per code object) runs the same
        # function eagerly instead of failing; the tests check that the kernel is one graph with no break
        fn = torch.compile(types.FunctionType(code, scope, code.co_name), dynamic=True)
        _COMPILED[key] = fn
        _COMPILES[0] += 1
    return fn


@functools.cache
def _compiler_found(device_type: str) -> bool:
    if os.environ.get("ADAPTIM_FUSED", "1") == "0":
        return False
    if device_type == "cpu":
        try:
            import torch._inductor.config as inductor_config

            cxx = inductor_config.cpp.cxx[-1] if isinstance(inductor_config.cpp.cxx, tuple) else "g++"
        except (ImportError, AttributeError):
            return False
        return any(shutil.which(c) for c in (cxx, "g++", "c++", "clang++"))
    if device_type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    return False


def fused_available(device: torch.device | str) -> bool:
    """Whether the fused (compiled) steps can run on ``device``: a C++ compiler on CPU, Triton on CUDA, and the
    environment variable ``ADAPTIM_FUSED`` is not ``0``."""
    return _compiler_found(torch.device(device).type)


def _flat(t: torch.Tensor) -> torch.Tensor:
    """A 1-D tensor on ``t``'s storage (``t`` contiguous), not a view in autograd's sense: no ``_base`` and no
    ``requires_grad`` for torch.compile to guard on, so parameters, views and plain tensors share one kernel."""
    return torch.empty(0, dtype=t.dtype, device=t.device).set_(
        t.untyped_storage(), t.storage_offset(), (t.numel(),), (1,)
    )


def fusable(t: torch.Tensor) -> bool:
    """Whether tensor ``t`` can go through the compiled kernel: contiguous, float32/float64, at least 2 entries (the
    kernel's sizes are symbolic from 2 up; a 1-entry tensor takes the foreach path)."""
    return t.is_contiguous() and t.dtype in (torch.float32, torch.float64) and t.numel() >= 2


_WARM: set[tuple] = set()


def _warm_up(fn, states, n_coeffs, dtype, device) -> None:
    """The first call of ``fn`` for a dtype and device, on scratch tensors of distinct sizes: torch.compile then
    gives every tensor of the chunk a size of its own (equal sizes would be assumed equal ever after, and the first
    model with other sizes would compile again)."""
    key = (id(fn), dtype, device, tuple(s is None for s in states))
    if key in _WARM:
        return
    zeros = functools.partial(torch.zeros, dtype=dtype, device=device)
    tensors = [
        (zeros(3 + 2 * i), zeros(3 + 2 * i), *(None if s is None else zeros(3 + 2 * i) for s in states))
        for i in range(CHUNK)
    ]
    coeffs = torch.ones(CHUNK, n_coeffs, dtype=dtype, device=device)
    fn(tensors, coeffs, torch.zeros((), dtype=torch.bool, device=device))
    _WARM.add(key)


_SCRATCH: dict[tuple, list[torch.Tensor]] = {}


def _scratch(n: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
    key = (n, dtype, device)
    if key not in _SCRATCH:
        _SCRATCH[key] = [torch.zeros(2, dtype=dtype, device=device) for _ in range(n)]
    return _SCRATCH[key]


def fused_step(
    rule: str,
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[Sequence[torch.Tensor | None]],
    coeffs: torch.Tensor,
    flag: torch.Tensor,
    **flags: bool,
) -> None:
    """One fused step of ``rule`` on every parameter, in place.

    Args:
        rule: a key of :data:`RULES` ("adam", "sgd", "adagrad", "rmsprop").
        params: w_t, contiguous float32/float64 tensors with >= 2 entries (:func:`fusable`), one dtype and device.
        grads: g_t, same shapes, dtype and device; read only (``maximize`` is the row's sign).
        states: per state slot of the rule (in the order of ``RULES[rule][1](flags)``), a list with one tensor per
            parameter, or ``None`` for an absent slot.
        coeffs: (len(params), len(RULES[rule][2])) table of the step's scalars, in the params' dtype and device.
        flag: a 0-dim bool tensor on the params' device, or-ed with "some entry was left unchanged".
        flags: the rule's compile-time switches (Adam: ``amsgrad``, ``atan2``; SGD: ``momentum``; RMSProp:
            ``first_moment``), each a state tensor more or another formula; everything else is a coefficient.
    """
    if not params:
        return
    fn = _compiled(rule, tuple(sorted(flags.items())))
    n = len(params)
    dtype, device = params[0].dtype, params[0].device
    _warm_up(fn, states, coeffs.shape[1], dtype, device)
    padded = -n % CHUNK
    if padded:  # rows for the scratch tensors of the last chunk: any valid row
        coeffs = torch.cat([coeffs, coeffs[:1].expand(padded, -1)])
    width = 2 + len(states)
    scratch = _scratch(padded * width, dtype, device) if padded else []
    for k in range(0, n, CHUNK):
        tensors = [
            (_flat(params[i]), _flat(grads[i]), *(None if s is None else _flat(s[i]) for s in states))
            for i in range(k, min(k + CHUNK, n))
        ]
        for j in range(CHUNK - len(tensors)):
            base = j * width
            tensors.append(
                (
                    scratch[base],
                    scratch[base + 1],
                    *(None if s is None else scratch[base + 2 + q] for q, s in enumerate(states)),
                )
            )
        fn(tensors, coeffs[k : k + CHUNK], flag)
