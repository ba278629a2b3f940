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

**Called directly.** torch.compile evaluates its guards (sizes, dtypes, strides, aliasing) at every call of a
compiled function, about half the cost of a call over a chunk of small tensors. Each kernel's first call (the
warm-up) keeps the graph inductor compiled for it (:func:`_backend`) and where each of its arguments comes from
(:func:`_call_plan`); later calls go straight to that graph with what the guards would have checked already true
by construction: one dtype and device per call, contiguous tensors of at least 2 entries, the same absent state
slots. A graph whose arguments cannot be mapped falls back to the call through torch.compile (``DIRECT = False``
forces that; the tests compare the two bitwise).

Entry points: :func:`fused_step` (one rule on lists of tensors) and :func:`fused_available`.
"""

from __future__ import annotations

import functools
import operator
import os
import re
import shutil
import types
import weakref
from collections.abc import Callable, Sequence

import torch

__all__ = ["CHUNK", "RULES", "fused_available", "fused_step", "compile_count"]

#: tensors per compiled call; a chunk shorter than this is padded with scratch tensors of 2 entries
CHUNK = 8
#: call the compiled graphs directly, without dynamo's per-call guards (their checks are fused_step's own: one dtype
#: and device, contiguous tensors of >= 2 entries); False: every call through dynamo (the tests compare the two)
DIRECT = True

_where = torch.where


def _keep(bad: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return _where(bad, old, new)


def _nonfinite(*xs: torch.Tensor) -> torch.Tensor:
    """Where some x is NaN or infinite: x - x is 0 for a finite x and NaN otherwise (cheaper than ``isfinite``)."""
    acc = xs[0] - xs[0]
    for x in xs[1:]:
        acc = acc + (x - x)
    return acc != 0


def _underflows(g: torch.Tensor) -> torch.Tensor:
    """Where a nonzero g squares to 0 (a step dividing by sqrt(v) with nothing added would read 0/0)."""
    return (g * g == 0) & (g != 0)


def _gradient(p, g, c_l2, *, maximize: bool, l2: bool):
    g = -g if maximize else g  # maximize: negated, exact
    return g + c_l2 * p if l2 else g  # add_l2


def _ema(m, g, w, *, lerp_hi: bool):
    """ema_ = ``m.lerp_(g, w)`` in torch's two forms: m + w (g - m) for w < 0.5, else g + (w - 1) (g - m)."""
    return g + (w - 1) * (g - m) if lerp_hi else m + w * (g - m)


# ---------------------------------------------------------------------------------------------------- the rules
# Each rule takes one parameter's 1-D tensors (p, g, state...) and its row ``c`` of the coefficient table, and
# returns (bad, new p, new state...). The arithmetic follows the literal functions op for op; the comments name
# them. The switches are compile-time: a switch off removes its operations from the loop. Which outputs are checked:
# a bad gradient (NaN, inf) makes every output NaN or inf, and a finite one whose square overflows makes the
# second moment inf (d is then finite: m / inf = 0), so the second moment (and AMSGrad's max) is checked with the
# parameter; for SGD, which squares nothing, the parameter. (Checking the parameter too also makes inductor compute
# the flag in the loop that writes the outputs, instead of a loop of its own that reads the inputs again.)

#: the coefficient table of the Adam family (one row per parameter), in this order
ADAM_COEFFS = ("l2", "w1", "b2", "w2", "cm", "cg", "bc2", "eps", "a", "b", "keep", "neg_lr")


def _adam(
    p,
    g,
    m,
    v,
    vmax,
    c,
    *,
    amsgrad,
    atan2,
    exact_squares,
    maximize,
    l2,
    nesterov,
    eps_inside_sqrt,
    lerp_hi,
    decay,
    check,
):
    c_l2, w1, b2, w2, cm, cg, bc2, eps, a, b, keep, neg_lr = (c[i] for i in range(12))
    g = _gradient(p, g, c_l2, maximize=maximize, l2=l2)
    m2 = _ema(m, g, w1, lerp_hi=lerp_hi)  # ema_
    v2 = v * b2 + w2 * g * g  # ema_sq_
    mbar = m2 * cm + g * cg if nesterov else m2 * cm  # Figure 1 (b): Dozat's first moment or m_t / (1 - b1^t)
    vbar = v2 / bc2
    vmax2 = None
    if amsgrad:
        vmax2 = torch.maximum(vmax, vbar)
        vbar = vmax2
    if atan2:
        d = a * torch.atan2(mbar, vbar.sqrt() * b)
    else:
        den = (vbar + eps).sqrt() if eps_inside_sqrt else vbar.sqrt() + eps
        if exact_squares:
            den = _where(den == 0, 1.0, den)  # safe_denominator_ (eps = 0): 0/0 := 0
        d = mbar / den
    p2 = (p * keep if decay else p) + neg_lr * d  # apply_update_: decay_, then w - lr d
    out = [p2, m2, v2, *([vmax2] if amsgrad else [])]
    if not check:
        return None, out
    bad = _nonfinite(v2, p2, *([vmax2] if amsgrad else []))
    if exact_squares:
        bad = bad | _underflows(g)
    return bad, [_keep(bad, new, old) for new, old in zip(out, [p, m, v, vmax])]


SGD_COEFFS = ("l2", "mu", "keep", "neg_lr")


def _sgd(p, g, buf, c, *, momentum, maximize, l2, nesterov, decay, check):
    c_l2, mu, keep, neg_lr = (c[i] for i in range(4))
    g = _gradient(p, g, c_l2, maximize=maximize, l2=l2)
    d = g
    if momentum:
        buf2 = buf * mu + g  # v_t = mu v_{t-1} + g  (25)
        d = g + mu * buf2 if nesterov else buf2  # Nesterov: d_t = g + mu v_t
    p2 = (p * keep if decay else p) + neg_lr * d
    out = [p2, *([buf2] if momentum else [])]
    if not check:
        return None, out
    bad = _nonfinite(p2)  # a bad g or buffer makes p2 NaN or inf
    return bad, [_keep(bad, new, old) for new, old in zip(out, [p, buf])]


ADAGRAD_COEFFS = ("l2", "eps", "keep", "neg_lr")


def _adagrad(p, g, s, c, *, exact_squares, maximize, l2, decay, check):
    c_l2, eps, keep, neg_lr = (c[i] for i in range(4))
    g = _gradient(p, g, c_l2, maximize=maximize, l2=l2)
    g2 = g * g
    s2 = s + g2  # S_t = S_{t-1} + g^2  (44)
    den = s2.sqrt() + eps
    if exact_squares:
        den = _where(den == 0, 1.0, den)
    step = neg_lr * (g / den)
    p2 = (p * keep if decay else p) + step
    if not check:
        return None, [p2, s2]
    bad = _nonfinite(s2, p2)
    if exact_squares:
        bad = bad | _underflows(g)
    # written as x + (bad ? 0 : increment), which is exactly x_t or x: with a select of the old value for both
    # outputs, inductor wrote one of them to a fresh temporary and copied it (an extra pass and an allocation)
    p_out = _keep(bad, p2, p) if decay else p + _where(bad, 0.0, step)
    return bad, [p_out, s + _where(bad, 0.0, g2)]


RMSPROP_COEFFS = ("l2", "w1", "b2", "w2", "eps", "keep", "neg_lr")


def _rmsprop(p, g, v, m, c, *, first_moment, exact_squares, maximize, l2, lerp_hi, decay, check):
    c_l2, w1, b2, w2, eps, keep, neg_lr = (c[i] for i in range(7))
    g = _gradient(p, g, c_l2, maximize=maximize, l2=l2)
    v2 = v * b2 + w2 * g * g  # (45)
    num = g
    m2 = None
    if first_moment:
        m2 = _ema(m, g, w1, lerp_hi=lerp_hi)
        num = m2
    den = v2.sqrt() + eps
    if exact_squares:
        den = _where(den == 0, 1.0, den)
    p2 = (p * keep if decay else p) + neg_lr * (num / den)
    out = [p2, v2, *([m2] if first_moment else [])]
    if not check:
        return None, out
    bad = _nonfinite(v2, p2)
    if exact_squares:
        bad = bad | _underflows(g)
    return bad, [_keep(bad, new, old) for new, old in zip(out, [p, v, m])]


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
        bad_i, out = _KERNEL(p, g, *state, coeffs[i], **_FLAGS)  # noqa: F821
        if bad_i is not None:
            bad.append(bad_i.any())  # before the writes below: then inductor fuses it into their loop
        targets = [p] + [s for s in state if s is not None]
        for t, new in zip(targets, out):
            t.copy_(new)
    if bad:
        flag.copy_(flag | torch.stack(bad).any())


_COMPILED: dict[tuple, Callable] = {}
# size_asserts off: the sizes are the caller's (dynamo's guards, or fused_step's own checks for a direct call)
_OPTIONS = {"aggressive_fusion": True, "size_asserts": False}
_COMPILES = [0]
#: the key (rule, flags, dtype, device, absent slots) whose first call is running, for _backend to file its graph
_CAPTURING: list = [None]
#: that key -> (inductor's compiled callable, where each of its arguments comes from), or None
_DIRECT: dict[tuple, tuple[Callable, Callable] | None] = {}


def compile_count() -> int:
    """How many compiled kernels this process has built (each (rule, flags) once; dtype/device add entries)."""
    return _COMPILES[0]


def _backend(gm: torch.fx.GraphModule, example_inputs: list) -> Callable:
    """torch.compile's inductor backend, which also keeps the compiled graph of a first call (see _call_plan)."""
    from torch._inductor.compile_fx import compile_fx

    compiled = compile_fx(gm, example_inputs, config_patches=_OPTIONS)
    if _CAPTURING[0] is not None:
        key = _CAPTURING[0]
        _DIRECT[key] = _call_plan(gm, compiled, 2 + len(key[-1]))
    return compiled


def _call_plan(gm: torch.fx.GraphModule, compiled: Callable, width: int) -> tuple[Callable, Callable] | None:
    """How to call ``compiled`` without dynamo, or None.

    Dynamo calls a graph with the input tensors it reads and one integer per symbolic size; calling the same graph
    directly skips its guard evaluation and frame handling (half the cost of a call on a small model). The call
    gathers its arguments from one list, ``tensors + sizes + [rows, flag, rows.shape[0], rows.shape[1]]``
    (``tensors``: the chunk's (p, g, *state) tuples of ``width`` entries concatenated, ``sizes``: one numel per
    parameter); the plan is an ``itemgetter`` of that list. Every size must be a symbol owned by one parameter's
    tensors or by the rows; anything else (a placeholder of another kind, one size symbol for two parameters) gives
    None, and the calls go through dynamo."""
    nodes = [n for n in gm.graph.nodes if n.op == "placeholder"]
    tail = CHUNK * width + CHUNK  # where rows, flag and the rows' two sizes sit in the list
    owner: dict[str, int] = {}
    index: dict[str, int] = {}
    for n in nodes:
        v = n.meta.get("example_value")
        if not isinstance(v, torch.Tensor):
            continue
        m = re.fullmatch(r"l_tensors_(\d+)_(\d+)_", n.name)
        if m:
            index[n.name] = int(m[1]) * width + int(m[2])
            sizes = [CHUNK * width + int(m[1])]
        elif n.name in ("l_coeffs_", "l_flag_"):
            index[n.name] = tail + (n.name == "l_flag_")
            sizes = [tail + 2, tail + 3]
        else:
            return None
        for d, size in enumerate(v.shape):
            if isinstance(size, torch.SymInt) and owner.setdefault(str(size), sizes[d]) != sizes[d]:
                return None  # one size symbol for two parameters (or a parameter and the rows)
    order = []
    for n in nodes:
        v = n.meta.get("example_value")
        if isinstance(v, torch.Tensor):
            order.append(index[n.name])
        elif isinstance(v, torch.SymInt) and str(v) in owner:
            order.append(owner[str(v)])
        else:
            return None
    if len(order) < 2:
        return None
    return compiled, operator.itemgetter(*order)


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
        fn = torch.compile(types.FunctionType(code, scope, code.co_name), dynamic=True, backend=_backend)
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


def _alias(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(0, dtype=t.dtype, device=t.device).set_(
        t.untyped_storage(), t.storage_offset(), (t.numel(),), (1,)
    )


#: id(t) -> (weak reference to t, (data_ptr, numel), alias); an entry leaves with its tensor
_ALIASES: dict[int, tuple] = {}


def _flat(t: torch.Tensor, keep: bool = True) -> torch.Tensor:
    """A 1-D tensor on ``t``'s storage (``t`` contiguous), not a view in autograd's sense: no ``_base`` and no
    ``requires_grad`` for torch.compile to guard on, so parameters, views and plain tensors share one kernel.

    With ``keep`` (parameters and state, which live across steps) the alias is kept for ``t``'s next step, and made
    again when ``t`` has moved to other memory (``p.data = ...``, a loaded state)."""
    if not keep:
        return _alias(t)
    key = (t.data_ptr(), t.numel())
    got = _ALIASES.get(id(t))
    if got is None or got[0]() is not t or got[1] != key:
        k = id(t)
        got = (weakref.ref(t, lambda _, k=k: _ALIASES.pop(k, None)), key, _alias(t))
        _ALIASES[k] = got
    return got[2]


def fusable(t: torch.Tensor) -> bool:
    """Whether tensor ``t`` can go through the compiled kernel: contiguous, float32/float64, at least 2 entries (the
    kernel's sizes are symbolic from 2 up; a 1-entry tensor takes the foreach path)."""
    return t.is_contiguous() and t.dtype in (torch.float32, torch.float64) and t.numel() >= 2


_WARM: set[tuple] = set()


def _warm_up(fn, key: tuple, states, n_coeffs: int, dtype, device) -> None:
    """The first call of ``fn`` for ``key`` (rule, flags, dtype, device, absent slots), on scratch tensors of
    distinct sizes: torch.compile then gives every tensor of the chunk a size of its own (equal sizes would be
    assumed equal ever after, and the first model with other sizes would compile again). The sizes (1001, 1003, ...)
    differ from the coefficient table's (CHUNK, n_coeffs) too. Files the compiled graph for direct calls."""
    if key in _WARM:
        return
    zeros = functools.partial(torch.zeros, dtype=dtype, device=device)
    sizes = [1001 + 2 * i for i in range(CHUNK)]
    tensors = [(zeros(n), zeros(n), *(None if s is None else zeros(n) for s in states)) for n in sizes]
    coeffs = torch.ones(CHUNK, n_coeffs, dtype=dtype, device=device)
    _CAPTURING[0] = key
    try:
        fn(tensors, coeffs, torch.zeros((), dtype=torch.bool, device=device))
    finally:
        _CAPTURING[0] = None
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
        flags: the rule's compile-time switches (Adam: ``amsgrad``, ``atan2``, ``exact_squares``; SGD:
            ``momentum``; AdaGrad: ``exact_squares``; RMSProp: ``first_moment``, ``exact_squares``), each a state
            tensor more or another formula (``exact_squares``: eps = 0 or Adam-atan2, where the step divides by
            sqrt(v) with nothing added); everything else is a coefficient.
    """
    if not params:
        return
    key = tuple(sorted(flags.items()))
    fn = _compiled(rule, key)
    n = len(params)
    dtype, device = params[0].dtype, params[0].device
    key = (rule, key, dtype, device, tuple(s is None for s in states))
    _warm_up(fn, key, states, coeffs.shape[1], dtype, device)
    direct = _DIRECT.get(key) if DIRECT else None
    padded = -n % CHUNK
    if padded:  # rows for the scratch tensors of the last chunk: any valid row
        coeffs = torch.cat([coeffs, coeffs[:1].expand(padded, -1)])
    width = 2 + len(states)
    scratch = _scratch(padded * width, dtype, device) if padded else []
    if direct is not None:
        compiled, take = direct
        tensors = []
        for i, (p, g) in enumerate(zip(params, grads)):
            # no dynamo guards to satisfy here: a 1-D view of the gradient will do (a parameter's alias is kept)
            tensors += (
                _flat(p),
                g if g.dim() == 1 else g.view(-1),
                *(None if s is None else _flat(s[i]) for s in states),
            )
        tensors += scratch
        sizes = [p.numel() for p in params] + [2] * padded
        cols = coeffs.shape[1]
        for k in range(0, n, CHUNK):
            compiled(
                *take(
                    tensors[k * width : (k + CHUNK) * width]
                    + sizes[k : k + CHUNK]
                    + [coeffs[k : k + CHUNK], flag, CHUNK, cols]
                )
            )
        return
    for k in range(0, n, CHUNK):
        tensors = [
            (_flat(params[i]), _flat(grads[i], keep=False), *(None if s is None else _flat(s[i]) for s in states))
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
