"""Shampoo (53)-(54), its EMA form (Section 5.1) and the IdealizedShampooIteration (Section 6.2.1).

A parameter is read as a tensor X of order k (a vector has k = 1, a matrix k = 2). For every block of X (below)
and every dimension i, Shampoo keeps the mode-i Gram matrix of the gradient,

    A_i <- A_i + X_(i) X_(i)^T            (sums, (53); X_(i) is the mode-i unfolding)
    A_i <- b2 A_i + (1 - b2) X_(i) X_(i)^T,   used as A_i / (1 - b2^t)       (bias-corrected EMA, 5.1)

so for a matrix G, A_0 = L = sum G G^T and A_1 = R = sum G^T G. Every ``precondition_frequency`` steps the
inverse roots Q_i = (A_i + eps I)^{-1/(2k)} are recomputed (:func:`adaptim.linalg.psd_power`, eps is damping,
never a pseudo-inverse; eigenvalues below the statistic dtype's machine epsilon times the largest one, which
are rounding noise, are first raised to that floor so that eps^{-1/(2k)} cannot amplify the noise) and cached;
each step the direction is the mode-wise product

    D = X x_0 Q_0 x_1 Q_1 ... x_{k-1} Q_{k-1},    (X x_i Q)[.., a, ..] = sum_c Q[a, c] X[.., c, ..]

which for a matrix is L^{-1/4} G R^{-1/4} of (53), i.e. (54): vec(D) = (L^{1/4} (x) R^{1/4})^{-1} vec(G) with
row-major vec ((99), (105)). A vector (k = 1) gets the full-matrix root (A_0 + eps I)^{-1/2}, or the diagonal
(a_0 + eps)^{-1/2} when it is longer than ``max_preconditioner_dim``. A dimension longer than
``max_preconditioner_dim`` is cut into consecutive chunks of that length (the last one shorter); every block of
the resulting grid has its own statistics and roots.

The IdealizedShampooIteration of 6.2.1 views each parameter as a matrix (a vector as one column, a k > 2 tensor
as (shape[0], rest)) and steps with sqrt(tr Lhat) (Lhat + eps I)^{-1/2} G (Rhat + eps I)^{-1/2}, where Lhat,
Rhat are bias-corrected EMA estimates of E[G G^T], E[G^T G]: the Newton step with I_emp^{1/2} of (64).

``shampoo_single``/``idealized_shampoo_single`` are the literal loops (one eigendecomposition per matrix);
``shampoo_batched``/``idealized_shampoo_batched`` compute the same numbers with one batched eigendecomposition
per (size, exponent, dtype, device) bucket and batched products per block shape. They agree to rounding, not
bitwise: LAPACK/BLAS round a matrix differently inside a batch than alone. ``grads`` are read, never written.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Any

import torch

from adaptim.linalg import psd_power

__all__ = ["block_slices", "shampoo_view_shape", "matrix_view_shape", "shampoo_exponent", "mode_gram",
           "mode_product", "init_shampoo_state", "shampoo_single", "shampoo_batched", "idealized_shampoo_single",
           "idealized_shampoo_batched"]


# ------------------------------------------------------------------------------------------------ layout
def block_slices(shape: tuple[int, ...], max_dim: int) -> list[tuple[slice, ...]]:
    """The blocks of a tensor of ``shape``: every dimension longer than ``max_dim`` cut into chunks of ``max_dim``.

    Returns the index tuples of the grid's blocks in row-major order (a tensor with no long dimension is one
    block). Example: shape (5, 7), max_dim 3 gives rows 0:3, 3:5 times columns 0:3, 3:6, 6:7, six blocks.
    """
    chunks = [[slice(s, min(s + max_dim, n)) for s in range(0, n, max_dim)] if n > max_dim else [slice(0, n)]
              for n in shape]
    return list(itertools.product(*chunks))


def shampoo_view_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The tensor Shampoo preconditions: the parameter itself, a scalar as a vector of length 1."""
    return tuple(shape) if len(shape) > 0 else (1,)


def matrix_view_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The matrix IdealizedShampoo sees: (d,) -> (d, 1), () -> (1, 1), (m, n, ...) -> (m, n * ...)."""
    if len(shape) == 0:
        return (1, 1)
    if len(shape) == 1:
        return (shape[0], 1)
    return (shape[0], math.prod(shape[1:]))


def shampoo_exponent(order: int, exponent_override: float | None = None) -> float:
    """-1/(2k) for an order-k tensor ((53): -1/4 for a matrix, -1/2 for a vector), or ``exponent_override``."""
    return -1.0 / (2 * order) if exponent_override is None else float(exponent_override)


def _is_diagonal(view_shape: tuple[int, ...], max_dim: int) -> bool:
    return len(view_shape) == 1 and view_shape[0] > max_dim


def mode_gram(x: torch.Tensor, i: int) -> torch.Tensor:
    """X_(i) X_(i)^T, the (n_i, n_i) Gram matrix of the mode-i unfolding (G G^T for i = 0, G^T G for i = 1)."""
    xi = x.movedim(i, 0).reshape(x.shape[i], -1)
    return xi @ xi.T


def mode_product(x: torch.Tensor, q: torch.Tensor, i: int) -> torch.Tensor:
    """X x_i Q: multiply dimension i of ``x`` by the (n_i, n_i) matrix ``q`` (Q G for i = 0, G Q^T for i = 1)."""
    return torch.tensordot(q, x, dims=([1], [i])).movedim(0, i)


def init_shampoo_state(p: torch.Tensor, max_dim: int, *, matrix_view: bool = False,
                       cache_roots: bool = True) -> dict[str, torch.Tensor]:
    """Zero statistics (and identity cached roots) for the working tensor ``p`` (float32 or float64).

    Keys: ``factor_{b}_{i}`` (n_i, n_i) statistic A_i of block b, ``inv_root_{b}_{i}`` its cached inverse root;
    or, for a vector longer than ``max_dim`` (Shampoo only), ``factor_diag`` and ``inv_root_diag`` of its length.
    """
    view = matrix_view_shape(p.shape) if matrix_view else shampoo_view_shape(p.shape)
    kw = dict(dtype=p.dtype, device=p.device)
    if not matrix_view and _is_diagonal(view, max_dim):
        state = {"factor_diag": torch.zeros(view[0], **kw)}
        if cache_roots:
            state["inv_root_diag"] = torch.ones(view[0], **kw)
        return state
    state = {}
    for b, sl in enumerate(block_slices(view, max_dim)):
        for i, s in enumerate(sl):
            n = s.stop - s.start
            state[f"factor_{b}_{i}"] = torch.zeros(n, n, **kw)
            if cache_roots:
                state[f"inv_root_{b}_{i}"] = torch.eye(n, **kw)
    return state


# ---------------------------------------------------------------------- the three costly kernels, two ways
def _grams_loop(blocks: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    return [[mode_gram(x, i) for i in range(x.dim())] for x in blocks]


def _rtol(a: torch.Tensor) -> float:
    # eigenvalues below the dtype's resolution of lambda_max are rounding noise (a rank-deficient G G^T stored
    # in float32 has them of either sign); floored there, eps**exponent cannot amplify the noise directions
    return torch.finfo(a.dtype).eps


def _powers_loop(mats: list[torch.Tensor], exponents: list[float], eps: float) -> list[torch.Tensor]:
    return [psd_power(a, e, eps, rtol=_rtol(a)) for a, e in zip(mats, exponents)]


def _precondition_loop(blocks: list[torch.Tensor], roots: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    out = []
    for x, qs in zip(blocks, roots):
        for i, q in enumerate(qs):
            x = mode_product(x, q, i)
        out.append(x)
    return out


def _buckets(tensors: list[torch.Tensor], extra: list[Any] | None = None) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = defaultdict(list)
    for j, t in enumerate(tensors):
        groups[(tuple(t.shape), t.dtype, t.device, None if extra is None else extra[j])].append(j)
    return groups


def _grams_batched(blocks: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    out: list[list[torch.Tensor]] = [[] for _ in blocks]
    for (shape, *_), js in _buckets(blocks).items():
        x = torch.stack([blocks[j] for j in js])
        for i, n in enumerate(shape):
            xi = x.movedim(i + 1, 1).reshape(len(js), n, -1)
            grams = (xi @ xi.transpose(1, 2)).unbind(0)
            for j, a in zip(js, grams):
                out[j].append(a)
    return out


def _powers_batched(mats: list[torch.Tensor], exponents: list[float], eps: float) -> list[torch.Tensor]:
    out: list[torch.Tensor] = [None] * len(mats)  # type: ignore[list-item]
    for (*_, exponent), js in _buckets(mats, exponents).items():
        batch = torch.stack([mats[j] for j in js])
        roots = psd_power(batch, exponent, eps, rtol=_rtol(batch)).unbind(0)  # one eigh per bucket
        for j, r in zip(js, roots):
            out[j] = r
    return out


def _precondition_batched(blocks: list[torch.Tensor], roots: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    out: list[torch.Tensor] = [None] * len(blocks)  # type: ignore[list-item]
    for (shape, *_), js in _buckets(blocks).items():
        y = torch.stack([blocks[j] for j in js])
        for i in range(len(shape)):
            q = torch.stack([roots[j][i] for j in js])
            ym = y.movedim(i + 1, -1)
            z = ym.reshape(len(js), -1, shape[i]) @ q.transpose(1, 2)
            y = z.reshape(ym.shape).movedim(-1, i + 1)
        for j, yj in zip(js, y.unbind(0)):
            out[j] = yj
    return out


_KERNELS = {False: (_grams_loop, _powers_loop, _precondition_loop),
            True: (_grams_batched, _powers_batched, _precondition_batched)}


def _accumulate(stats: list[torch.Tensor], new: list[torch.Tensor], beta2: float | None) -> None:
    """Sums (53) when ``beta2`` is None, else the EMA b2 A + (1 - b2) new of Section 5.1 (in place)."""
    if not stats:
        return
    if beta2 is None:
        torch._foreach_add_(stats, new)
    else:
        torch._foreach_mul_(stats, beta2)
        torch._foreach_add_(stats, new, alpha=1 - beta2)


# ------------------------------------------------------------------------------------------------ Shampoo
def _shampoo(params, grads, states, steps, *, lr, beta2, eps, momentum, weight_decay, precondition_frequency,
             start_preconditioning_step, max_preconditioner_dim, exponent_override, grafting, grafting_beta2,
             grafting_eps, batched) -> None:
    if not params:
        return
    grams_fn, powers_fn, precondition_fn = _KERNELS[batched]
    freq, start, max_dim = precondition_frequency, start_preconditioning_step, max_preconditioner_dim
    views = [g.reshape(shampoo_view_shape(g.shape)) for g in grads]
    slices = [None if "factor_diag" in st else block_slices(x.shape, max_dim) for x, st in zip(views, states)]

    # (1) statistics: A_i += X_(i) X_(i)^T per block and dimension (or their EMA); diagonal: a += x^2
    items = [(k, b, views[k][sl]) for k in range(len(views)) if slices[k] is not None
             for b, sl in enumerate(slices[k])]
    stats = [states[k][f"factor_{b}_{i}"] for k, b, x in items for i in range(x.dim())]
    _accumulate(stats, [a for grams in grams_fn([x for *_, x in items]) for a in grams], beta2)
    diag = [k for k in range(len(views)) if slices[k] is None]
    _accumulate([states[k]["factor_diag"] for k in diag], [views[k] * views[k] for k in diag], beta2)

    # (2) inverse roots, recomputed at steps t = freq, 2 freq, ... from the one before start on, then cached
    mats, exps, targets = [], [], []
    for k, t in enumerate(steps):
        if t % freq != 0 or t + freq <= start:
            continue
        st, e = states[k], shampoo_exponent(views[k].dim(), exponent_override)
        bc = 1.0 if beta2 is None else 1 - beta2 ** t
        if slices[k] is None:
            a = st["factor_diag"] if bc == 1.0 else st["factor_diag"] / bc
            st["inv_root_diag"].copy_((a + eps).pow_(e))
            continue
        for b, sl in enumerate(slices[k]):
            for i in range(len(sl)):
                a = st[f"factor_{b}_{i}"]
                mats.append(a if bc == 1.0 else a / bc)
                exps.append(e)
                targets.append(st[f"inv_root_{b}_{i}"])
    if targets:
        torch._foreach_copy_(targets, powers_fn(mats, exps, eps))

    # (3) the grafted method's direction (its statistics follow every step, also before start)
    graft = [None] * len(grads)
    if grafting is not None:
        if grafting == "adagrad":
            sums = [st["grafting_sum_sq"] for st in states]
            torch._foreach_addcmul_(sums, grads, grads)
            den = torch._foreach_sqrt(sums)
        else:  # Adam without first moment: bias-corrected EMA of g^2
            sums = [st["grafting_exp_avg_sq"] for st in states]
            torch._foreach_mul_(sums, grafting_beta2)
            torch._foreach_addcmul_(sums, grads, grads, value=1 - grafting_beta2)
            den = torch._foreach_div(sums, [1 - grafting_beta2 ** t for t in steps])
            torch._foreach_sqrt_(den)
        torch._foreach_add_(den, grafting_eps)
        graft = torch._foreach_div(grads, den)

    # (4) directions: Shampoo from step `start` on; before it the grafted direction or the plain gradient
    directions: list[torch.Tensor] = [None] * len(grads)  # type: ignore[list-item]
    pre = [k for k, t in enumerate(steps) if t >= start]
    for k, t in enumerate(steps):
        if t < start:
            directions[k] = graft[k] if graft[k] is not None else grads[k].clone()
    for k in pre:
        if slices[k] is None:
            directions[k] = states[k]["inv_root_diag"] * views[k]
        else:
            directions[k] = torch.empty_like(views[k])
    items = [(k, sl, views[k][sl], [states[k][f"inv_root_{b}_{i}"] for i in range(len(sl))])
             for k in pre if slices[k] is not None for b, sl in enumerate(slices[k])]
    for (k, sl, *_), y in zip(items, precondition_fn([x for *_, x, _ in items], [q for *_, q in items])):
        directions[k][sl] = y
    if grafting is not None:  # each block's Shampoo direction rescaled to the grafted direction's norm
        for k in pre:
            gview = graft[k].reshape(views[k].shape)
            for sl in slices[k] if slices[k] is not None else [(slice(None),)]:
                d = directions[k][sl]
                dn, gn = torch.linalg.vector_norm(d), torch.linalg.vector_norm(gview[sl])
                d.mul_(torch.where(dn > 0, gn / dn, torch.zeros_like(dn)))

    # (5) decoupled weight decay and heavy-ball momentum on the search direction, then the step
    directions = [d.reshape(w.shape) for d, w in zip(directions, params)]
    if weight_decay != 0:
        directions = torch._foreach_add(directions, params, alpha=weight_decay)
    if momentum != 0:
        bufs = [st["momentum_buffer"] for st in states]
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, directions)
        directions = bufs
    torch._foreach_add_(params, directions, alpha=-lr)


_SHAMPOO_DOC = """One Shampoo step on each parameter, in place ({path}).

    Per parameter (the order of operations of distributed Shampoo, Shi et al., 2023):

    1. statistics: sums (53) (``beta2=None``) or the EMA of 5.1 of the mode-wise Gram matrices of the gradient;
    2. at steps t = f, 2f, ... (f = ``precondition_frequency``, t the parameter's own step count) the cached
       inverse roots (A_i / (1 - b2^t) + eps I)^{{e}}, e = ``exponent_override`` or -1/(2k), are recomputed (only
       from the last multiple of f at or before ``start_preconditioning_step`` on); between those steps the
       stale roots are used;
    3. the grafted method's direction u: AdaGrad g / (sqrt(sum g^2) + grafting_eps) or Adam without first moment
       g / (sqrt(v / (1 - gb2^t)) + grafting_eps), v the EMA of g^2 with ``grafting_beta2``;
    4. direction D: for t >= ``start_preconditioning_step`` the Shampoo direction (each block rescaled to
       ||u_block|| when grafting); before it u, or the plain gradient without grafting;
    5. P = D + weight_decay * w (decoupled: the decay bypasses the statistics and the preconditioner);
       momentum: M = momentum * M + P, P = M (heavy ball, distributed Shampoo's dampening-free form);
       w <- w - lr * P.

    Args:
        params: working parameters w_t (float32/float64, any shape), updated in place.
        grads: gradients g_t, same shapes and dtypes; read only.
        states: one dict per parameter as made by :func:`init_shampoo_state` plus ``grafting_sum_sq`` or
            ``grafting_exp_avg_sq`` (parameter's shape) when grafting and ``momentum_buffer`` when momentum;
            updated in place.
        steps: t per parameter (Python ints, already incremented, >= 1).
        lr: eta (parameter units per unit of preconditioned gradient). beta2: None (sums) or in [0, 1).
        eps: damping > 0 added to every eigenvalue. exponent_override: a negative exponent or None.
        grafting: None, "adagrad" or "adam".
    """


def shampoo_single(params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict[str, Any]],
                   steps: list[int], *, lr: float, beta2: float | None, eps: float, momentum: float = 0.0,
                   weight_decay: float = 0.0, precondition_frequency: int = 1, start_preconditioning_step: int = 1,
                   max_preconditioner_dim: int = 1024, exponent_override: float | None = None,
                   grafting: str | None = None, grafting_beta2: float = 0.999, grafting_eps: float = 1e-8) -> None:
    _shampoo(**{k: v for k, v in locals().items()}, batched=False)


def shampoo_batched(params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict[str, Any]],
                    steps: list[int], *, lr: float, beta2: float | None, eps: float, momentum: float = 0.0,
                    weight_decay: float = 0.0, precondition_frequency: int = 1, start_preconditioning_step: int = 1,
                    max_preconditioner_dim: int = 1024, exponent_override: float | None = None,
                    grafting: str | None = None, grafting_beta2: float = 0.999, grafting_eps: float = 1e-8) -> None:
    _shampoo(**{k: v for k, v in locals().items()}, batched=True)


shampoo_single.__doc__ = _SHAMPOO_DOC.format(path="literal loop: one eigendecomposition per matrix")
shampoo_batched.__doc__ = _SHAMPOO_DOC.format(
    path="batched: one eigendecomposition per bucket of equal size and exponent; equal to the loop to rounding")


# -------------------------------------------------------------------------------------- IdealizedShampoo
def _idealized(params, grads, states, steps, *, lr, beta2, eps, weight_decay, max_preconditioner_dim,
               batched) -> None:
    if not params:
        return
    grams_fn, powers_fn, precondition_fn = _KERNELS[batched]
    views = [g.reshape(matrix_view_shape(g.shape)) for g in grads]
    items = [(k, b, sl, views[k][sl]) for k in range(len(views))
             for b, sl in enumerate(block_slices(views[k].shape, max_preconditioner_dim))]
    stats = [(states[k][f"factor_{b}_0"], states[k][f"factor_{b}_1"]) for k, b, *_ in items]
    _accumulate([a for pair in stats for a in pair],
                [a for grams in grams_fn([x for *_, x in items]) for a in grams], beta2)
    # step 2: bias-corrected estimates of E[G G^T], E[G^T G]; step 3 with their -1/2 roots
    hats = [[a / (1 - beta2 ** steps[k]) for a in pair] for (k, *_), pair in zip(items, stats)]
    roots = powers_fn([a for pair in hats for a in pair], [-0.5] * (2 * len(hats)), eps)
    blocks = precondition_fn([x for *_, x in items], [roots[2 * j: 2 * j + 2] for j in range(len(items))])
    directions = [torch.empty_like(x) for x in views]
    for (k, _, sl, _), (lhat, _), y in zip(items, hats, blocks):
        directions[k][sl] = y.mul_(torch.trace(lhat).sqrt())
    directions = [d.reshape(w.shape) for d, w in zip(directions, params)]
    if weight_decay != 0:
        directions = torch._foreach_add(directions, params, alpha=weight_decay)
    torch._foreach_add_(params, directions, alpha=-lr)


_IDEALIZED_DOC = """The IdealizedShampooIteration of Section 6.2.1 on each parameter, in place ({path}).

    Each parameter is viewed as a matrix G (:func:`matrix_view_shape`), cut into blocks of at most
    ``max_preconditioner_dim`` rows and columns; per block, with t the parameter's step count,

        L = b2 L + (1 - b2) G G^T,  R = b2 R + (1 - b2) G^T G,  Lhat = L / (1 - b2^t),  Rhat = R / (1 - b2^t)
        D = sqrt(tr Lhat) (Lhat + eps I)^{{-1/2}} G (Rhat + eps I)^{{-1/2}}

    and w <- w - lr (D + weight_decay w). With I_emp = Lhat (x) Rhat / tr Lhat (64), D is exactly
    I_emp^{{-1/2}} vec(G) (for eps -> 0): the Newton step with H ~ I_emp^{{1/2}}. A vector (one column) gets
    (Lhat + eps I)^{{-1/2}} g up to the eps in Rhat: full-matrix RMSProp.

    Args:
        params, grads: working parameters (updated in place) and gradients (read only), float32/float64.
        states: one dict per parameter from ``init_shampoo_state(p, max_dim, matrix_view=True,
            cache_roots=False)``; the statistics are updated in place.
        steps: t per parameter (>= 1). lr: eta. beta2: in [0, 1). eps: damping > 0.
    """


def idealized_shampoo_single(params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict[str, Any]],
                             steps: list[int], *, lr: float, beta2: float, eps: float, weight_decay: float = 0.0,
                             max_preconditioner_dim: int = 1024) -> None:
    _idealized(**{k: v for k, v in locals().items()}, batched=False)


def idealized_shampoo_batched(params: list[torch.Tensor], grads: list[torch.Tensor],
                              states: list[dict[str, Any]], steps: list[int], *, lr: float, beta2: float,
                              eps: float, weight_decay: float = 0.0, max_preconditioner_dim: int = 1024) -> None:
    _idealized(**{k: v for k, v in locals().items()}, batched=True)


idealized_shampoo_single.__doc__ = _IDEALIZED_DOC.format(path="literal loop")
idealized_shampoo_batched.__doc__ = _IDEALIZED_DOC.format(path="batched eigendecompositions")
