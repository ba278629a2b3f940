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

The Shampoo step, per parameter (the order of operations of distributed Shampoo, Shi et al., 2023):

    1. statistics A_i of every block, sums (53) or the EMA of 5.1;
    2. at steps t = f, 2f, ... (f = ``precondition_frequency``, t the parameter's own step count) the cached
       roots Q_i = (A_i / (1 - b2^t) + eps I)^e, e = ``exponent_override`` or -1/(2k), are recomputed (only from
       the last multiple of f at or before ``start_preconditioning_step`` on); in between the stale roots are used;
    3. the grafted method's direction u: AdaGrad g / (sqrt(sum g^2) + grafting_eps) or Adam without first moment
       g / (sqrt(v / (1 - gb2^t)) + grafting_eps), v the EMA of g^2 with ``grafting_beta2``;
    4. D: for t >= ``start_preconditioning_step`` the Shampoo direction (each block rescaled to ||u_block|| when
       grafting; a zero Shampoo block stays zero); before it u, or the plain gradient without grafting;
    5. P = D + weight_decay * w (decay added to the preconditioned direction: it bypasses the statistics);
       momentum: M = momentum * M + P, P = M (heavy ball, distributed Shampoo's dampening-free form);
    6. the last stage w <- w - lr * P.

The IdealizedShampooIteration of 6.2.1 views each parameter as a matrix (:func:`adaptim.linalg.matrix_view_shape`:
a vector as one column, a k > 2 tensor as (shape[0], rest)), cut into blocks of at most ``max_preconditioner_dim``
rows and columns; per block, with t the parameter's step count,

    L = b2 L + (1 - b2) G G^T,  R = b2 R + (1 - b2) G^T G,  Lhat = L / (1 - b2^t),  Rhat = R / (1 - b2^t)
    D = sqrt(tr Lhat) (Lhat + eps I)^{-1/2} G (Rhat + eps I)^{-1/2}                                    (63)

and w <- w - lr (D + weight_decay w). With I_emp = Lhat (x) Rhat / tr Lhat (64), D is exactly I_emp^{-1/2} vec(G)
(for eps -> 0): the Newton step with H ~ I_emp^{1/2}. A vector (one column) gets (Lhat + eps I)^{-1/2} g up to the
eps in Rhat: full-matrix RMSProp.

The statistics and roots of a parameter are read through :class:`ShampooPreconditioner`, a view over the tensors
of its state dict (keys ``kron_{b}_{i}``: A_i and Q_i as two triangles of one (n + 1, n) tensor, see
:func:`kron_views`; ``factor_{b}_{i}`` without cached roots; ``factor_diag``, ``inv_root_diag``).
``shampoo_single``/``idealized_shampoo_single`` are the literal loops (one eigendecomposition per matrix);
``shampoo_batched``/``idealized_shampoo_batched`` compute the same numbers with one batched eigendecomposition
per (size, exponent, dtype, device) bucket and batched products per block shape. They agree to rounding, not
bitwise: LAPACK/BLAS round a matrix differently inside a batch than alone. ``grads`` are read, never written.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from adaptim.functional.common import (
    StepFn,
    add_l2,
    apply_update_,
    bias_correction,
    bucket_indices,
    ema_,
    ema_sq_,
    stack,
)
from adaptim.linalg import psd_power
from adaptim.linalg.views import matrix_view_shape

__all__ = [
    "block_slices",
    "shampoo_view_shape",
    "shampoo_exponent",
    "mode_gram",
    "mode_product",
    "init_shampoo_state",
    "ShampooBlock",
    "ShampooPreconditioner",
    "update_statistics",
    "compute_roots",
    "precondition",
    "shampoo_directions",
    "shampoo_single",
    "shampoo_batched",
    "idealized_shampoo_directions",
    "idealized_shampoo_single",
    "idealized_shampoo_batched",
]


# ------------------------------------------------------------------------------------------------ layout
def block_slices(shape: tuple[int, ...], max_dim: int) -> list[tuple[slice, ...]]:
    """The blocks of a tensor of ``shape``: every dimension longer than ``max_dim`` cut into chunks of ``max_dim``.

    Returns the index tuples of the grid's blocks in row-major order (a tensor with no long dimension is one
    block). Example: shape (5, 7), max_dim 3 gives rows 0:3, 3:5 times columns 0:3, 3:6, 6:7, six blocks.
    """
    chunks = [
        [slice(s, min(s + max_dim, n)) for s in range(0, n, max_dim)] if n > max_dim else [slice(0, n)] for n in shape
    ]
    return list(itertools.product(*chunks))


def shampoo_view_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The tensor Shampoo preconditions: the parameter itself, a scalar as a vector of length 1."""
    return tuple(shape) if len(shape) > 0 else (1,)


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


def _view_shape(shape: Sequence[int], matrix_view: bool) -> tuple[int, ...]:
    return matrix_view_shape(shape) if matrix_view else shampoo_view_shape(tuple(shape))


def init_shampoo_state(
    p: torch.Tensor, max_dim: int, *, matrix_view: bool = False, cache_roots: bool = True
) -> dict[str, torch.Tensor]:
    """Zero statistics (and identity cached roots) for the working tensor ``p`` (float32 or float64).

    Keys: ``kron_{b}_{i}`` (n_i + 1, n_i), the statistic A_i of block b and its cached inverse root as two
    triangles (:func:`kron_views`: n_i (n_i + 1) floats, as distributed Shampoo's packed storage), or with
    ``cache_roots=False`` ``factor_{b}_{i}`` (n_i, n_i) alone; for a vector longer than ``max_dim`` (Shampoo only),
    ``factor_diag`` and ``inv_root_diag`` of its length.
    :meth:`ShampooPreconditioner.from_state` reads them back.
    """
    view = _view_shape(p.shape, matrix_view)
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
            if cache_roots:  # A_i and Q_i, both symmetric, share one (n + 1, n) tensor: see :func:`kron_views`
                state[f"kron_{b}_{i}"] = torch.zeros(n + 1, n, **kw)
                state[f"kron_{b}_{i}"][:-1].diagonal().fill_(1.0)  # Q_i = I
            else:
                state[f"factor_{b}_{i}"] = torch.zeros(n, n, **kw)
    return state


def kron_views(kron: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The statistic and root views of one ``kron_{b}_{i}`` state tensor K of shape (n + 1, n).

    A_i (symmetric) is the lower triangle, diagonal included, of ``K[1:]``; the cached root Q_i (symmetric) is
    the upper triangle, diagonal included, of ``K[:-1]``. The two triangles are disjoint (K[r, c] is A's for
    r > c, Q's for r <= c), so both matrices take n (n + 1) entries, as two packed triangles would, and each is
    read back exactly (:func:`symmetric_from`). Returns ``(K[1:], K[:-1])``, two (n, n) views."""
    return kron[1:], kron[:-1]


@functools.lru_cache(maxsize=64)
def _triangle(n: int, device: torch.device, lower: bool) -> torch.Tensor:
    mask = torch.ones(n, n, dtype=torch.bool, device=device)
    return mask.tril() if lower else mask.triu()


def symmetric_from(view: torch.Tensor, lower: bool) -> torch.Tensor:
    """The symmetric matrix (..., n, n) whose lower (``lower=True``) or upper triangle is that of ``view``: one
    pass, each entry read from its own triangle or mirrored from the other."""
    return torch.where(_triangle(view.shape[-1], view.device, lower), view, view.transpose(-1, -2))


def _set_triangle_(view: torch.Tensor, value: torch.Tensor, lower: bool) -> None:
    """Write the lower (or upper) triangle of ``value`` into ``view``, leaving its other entries unchanged."""
    view.copy_(torch.where(_triangle(view.shape[-1], view.device, lower), value, view))


def merge_factor_and_root(state: dict[str, Any]) -> dict[str, Any]:
    """A Shampoo state saved with separate ``factor_{b}_{i}`` and ``inv_root_{b}_{i}`` (n, n) matrices (older
    versions) in the ``kron_{b}_{i}`` layout of :func:`init_shampoo_state`; other entries are kept as they are.
    The statistic's lower triangle and the root's upper triangle are kept, bit for bit."""
    out = {}
    for key, value in state.items():
        if key.startswith("inv_root_") and key != "inv_root_diag":
            continue
        if key.startswith("factor_") and key != "factor_diag" and f"inv_root_{key[7:]}" in state:
            root = state[f"inv_root_{key[7:]}"]
            kron = torch.zeros(value.shape[0] + 1, value.shape[0], dtype=value.dtype, device=value.device)
            a, q = kron_views(kron)
            _set_triangle_(a, value, lower=True)
            _set_triangle_(q, root.to(kron), lower=False)
            out[f"kron_{key[7:]}"] = kron
        else:
            out[key] = value
    return out


# ------------------------------------------------------------------------------------ the preconditioner
@dataclass
class ShampooBlock:
    """Block ``index`` of a parameter: the index ``slices`` it covers in the preconditioned view and, per
    dimension i, the statistic A_i (``factors[i]``, state key ``factor_{index}_{i}``, (n_i, n_i)) and its cached
    inverse root Q_i (``roots[i]``, ``inv_root_{index}_{i}``; ``roots`` is ``None`` when roots are not cached)."""

    index: int
    slices: tuple[slice, ...]
    factors: list[torch.Tensor]
    roots: list[torch.Tensor] | None
    #: ``factors`` and ``roots`` are the triangle views of ``kron_{index}_{i}`` (:func:`kron_views`): A_i is the
    #: lower triangle of ``factors[i]``, Q_i the upper triangle of ``roots[i]``
    packed: bool = False

    def statistic(self, i: int) -> torch.Tensor:
        """A_i as a full symmetric (n_i, n_i) matrix (a new tensor when packed)."""
        return symmetric_from(self.factors[i], lower=True) if self.packed else self.factors[i]

    def root(self, i: int) -> torch.Tensor:
        """The cached Q_i as a full symmetric (n_i, n_i) matrix (a new tensor when packed)."""
        return symmetric_from(self.roots[i], lower=False) if self.packed else self.roots[i]


@dataclass
class ShampooPreconditioner:
    """One parameter's Shampoo preconditioner: a view over the statistics and roots of its state dict.

    Its tensors *are* the state dict's (updates write through), so a checkpoint keeps the keys of
    :func:`init_shampoo_state`. Either ``blocks`` (a Kronecker-factored preconditioner per block) or ``diag``
    (a vector longer than the largest preconditioner side: the diagonal statistic a, and its cached root
    ``diag_root``) is set.

    The methods work on one parameter with the literal per-matrix kernels; :func:`shampoo_directions` and
    :func:`idealized_shampoo_directions` run the same stages over a list of preconditioners with
    :func:`update_statistics`, :func:`compute_roots` and :func:`precondition`, which batch across parameters.
    """

    shape: tuple[int, ...]
    blocks: list[ShampooBlock]
    diag: torch.Tensor | None = None
    diag_root: torch.Tensor | None = None

    @classmethod
    def from_state(
        cls, state: dict[str, Any], shape: Sequence[int], max_dim: int, *, matrix_view: bool = False
    ) -> ShampooPreconditioner:
        """The preconditioner whose tensors are those of ``state`` (made by :func:`init_shampoo_state` for a
        parameter of ``shape`` with the same ``max_dim`` and ``matrix_view``)."""
        view = _view_shape(shape, matrix_view)
        if "factor_diag" in state:
            return cls(view, [], state["factor_diag"], state.get("inv_root_diag"))
        blocks = []
        for b, sl in enumerate(block_slices(view, max_dim)):
            if f"kron_{b}_0" in state:
                views = [kron_views(state[f"kron_{b}_{i}"]) for i in range(len(sl))]
                blocks.append(ShampooBlock(b, sl, [a for a, _ in views], [q for _, q in views], packed=True))
            else:
                blocks.append(ShampooBlock(b, sl, [state[f"factor_{b}_{i}"] for i in range(len(sl))], None))
        return cls(view, blocks)

    @property
    def order(self) -> int:
        """k, the order of the preconditioned tensor."""
        return len(self.shape)

    @property
    def is_diagonal(self) -> bool:
        return self.diag is not None

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x`` (the parameter's shape) viewed as :attr:`shape` and cut into its blocks (views, no copy); a
        diagonal preconditioner has one block, the whole vector."""
        x = x.reshape(self.shape)
        return [x] if self.is_diagonal else [x[blk.slices] for blk in self.blocks]

    def slices(self) -> list[tuple[slice, ...]]:
        """The index tuples of the blocks in the view (one covering everything when diagonal)."""
        return [(slice(None),)] if self.is_diagonal else [blk.slices for blk in self.blocks]

    def corrected(self, step: int, beta2: float | None) -> list[list[torch.Tensor]]:
        """Per block, the statistics as used at ``step``: A_i / (1 - b2^t) for an EMA, A_i itself for sums."""
        bc = 1.0 if beta2 is None else bias_correction(beta2, step)
        stats = [[blk.statistic(i) for i in range(len(blk.factors))] for blk in self.blocks]
        return [[a if bc == 1.0 else a / bc for a in per_block] for per_block in stats]

    def update(self, grad_blocks: list[torch.Tensor], beta2: float | None) -> None:
        """Step 1: accumulate the blocks' Gram matrices (sums, or the EMA with ``beta2``), in place."""
        update_statistics([self], [grad_blocks], beta2, batched=False)

    def compute_roots(self, step: int, beta2: float | None, eps: float, exponent_override: float | None = None) -> None:
        """Step 2: recompute and cache the inverse roots from the statistics as used at ``step``."""
        compute_roots([self], [step], beta2, eps, exponent_override, batched=False)

    def precondition(self, grad_blocks: list[torch.Tensor]) -> torch.Tensor:
        """Step 4: the preconditioned direction (the view's shape) with the cached roots."""
        return precondition([self], [grad_blocks], batched=False)[0]


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


def _grams_batched(blocks: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    out: list[list[torch.Tensor]] = [[] for _ in blocks]
    for (shape, *_), js in bucket_indices(blocks).items():
        x = stack(blocks, js)
        for i, n in enumerate(shape):
            xi = x.movedim(i + 1, 1).reshape(len(js), n, -1)
            grams = (xi @ xi.transpose(1, 2)).unbind(0)
            for j, a in zip(js, grams):
                out[j].append(a)
    return out


def _powers_batched(mats: list[torch.Tensor], exponents: list[float], eps: float) -> list[torch.Tensor]:
    out: list[torch.Tensor] = [None] * len(mats)  # type: ignore[list-item]
    buckets = bucket_indices(mats, key=lambda j, a: (tuple(a.shape), a.dtype, a.device, exponents[j]))
    for (*_, exponent), js in buckets.items():
        batch = stack(mats, js)
        roots = psd_power(batch, exponent, eps, rtol=_rtol(batch)).unbind(0)  # one eigh per bucket
        for j, r in zip(js, roots):
            out[j] = r
    return out


def _precondition_batched(blocks: list[torch.Tensor], roots: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    out: list[torch.Tensor] = [None] * len(blocks)  # type: ignore[list-item]
    for (shape, *_), js in bucket_indices(blocks).items():
        y = stack(blocks, js)
        for i in range(len(shape)):
            q = torch.stack([roots[j][i] for j in js])
            ym = y.movedim(i + 1, -1)
            z = ym.reshape(len(js), -1, shape[i]) @ q.transpose(1, 2)
            y = z.reshape(ym.shape).movedim(-1, i + 1)
        for j, yj in zip(js, y.unbind(0)):
            out[j] = yj
    return out


_GRAMS = {False: _grams_loop, True: _grams_batched}
_POWERS = {False: _powers_loop, True: _powers_batched}
_PRECONDITION = {False: _precondition_loop, True: _precondition_batched}


# ------------------------------------------------------------------- the stages, over many preconditioners
def update_statistics(
    preconditioners: list[ShampooPreconditioner],
    grad_blocks: list[list[torch.Tensor]],
    beta2: float | None,
    *,
    batched: bool = True,
) -> None:
    """Step 1 for every parameter: A_i <- A_i + X_(i) X_(i)^T per block and dimension ((53), ``beta2=None``) or
    the EMA b2 A_i + (1 - b2) X_(i) X_(i)^T of 5.1; a diagonal statistic takes x^2 instead. In place.

    ``grad_blocks[k]`` is ``preconditioners[k].split(grad)``.
    """
    full = [(pc, xs) for pc, xs in zip(preconditioners, grad_blocks) if not pc.is_diagonal]
    stats = [a for pc, _ in full for blk in pc.blocks for a in blk.factors]
    packed = [blk.packed for pc, _ in full for blk in pc.blocks for _ in blk.factors]
    grams = [a for g in _GRAMS[batched]([x for _, xs in full for x in xs]) for a in g]
    if any(packed):  # only A's triangle changes; adding zeros leaves the root's triangle as it is
        grams = [g.tril_() if p else g for g, p in zip(grams, packed)]
        if beta2 is not None:  # the EMA as A + (1 - b2) (gram - A), on A's triangle only
            packed_stats = [a for a, p in zip(stats, packed) if p]
            deltas = [(g - a).tril_() for g, a, p in zip(grams, stats, packed) if p]
            torch._foreach_add_(packed_stats, deltas, alpha=1 - beta2)
            stats = [a for a, p in zip(stats, packed) if not p]
            grams = [g for g, p in zip(grams, packed) if not p]
    diag = [pc.diag for pc in preconditioners if pc.is_diagonal]
    dx = [xs[0] for pc, xs in zip(preconditioners, grad_blocks) if pc.is_diagonal]
    if beta2 is None:
        if stats:
            torch._foreach_add_(stats, grams)
        if diag:
            torch._foreach_addcmul_(diag, dx, dx)
    else:
        ema_(stats, grams, beta2)
        ema_sq_(diag, dx, beta2)


def compute_roots(
    preconditioners: list[ShampooPreconditioner],
    steps: list[int],
    beta2: float | None,
    eps: float,
    exponent_override: float | None = None,
    *,
    batched: bool = True,
) -> None:
    """Step 2 for every parameter: cache Q_i = (A_i / (1 - b2^t) + eps I)^e, e = ``exponent_override`` or
    -1/(2k), in the roots (diagonal: (a / (1 - b2^t) + eps)^e); one batched eigendecomposition per bucket of
    equal size and exponent when ``batched``."""
    mats, exps, targets = [], [], []
    for pc, t in zip(preconditioners, steps):
        e = shampoo_exponent(pc.order, exponent_override)
        if pc.is_diagonal:
            bc = 1.0 if beta2 is None else bias_correction(beta2, t)
            a = pc.diag if bc == 1.0 else pc.diag / bc
            pc.diag_root.copy_((a + eps).pow_(e))
            continue
        for blk, corrected in zip(pc.blocks, pc.corrected(t, beta2)):
            mats += corrected
            exps += [e] * len(corrected)
            targets += [(q, blk.packed) for q in blk.roots]
    if targets:
        for (q, packed), root in zip(targets, _POWERS[batched](mats, exps, eps)):
            if packed:  # Q's upper triangle; the lower one holds A
                _set_triangle_(q, root, lower=False)
            else:
                q.copy_(root)


def precondition(
    preconditioners: list[ShampooPreconditioner],
    grad_blocks: list[list[torch.Tensor]],
    *,
    roots: list[list[list[torch.Tensor]]] | None = None,
    batched: bool = True,
) -> list[torch.Tensor]:
    """Step 4 for every parameter: the blocks' mode-wise products X x_0 Q_0 ... x_{k-1} Q_{k-1} (diagonal:
    q * x), assembled into new tensors of each preconditioner's view shape.

    Args:
        preconditioners: the parameters' preconditioners.
        grad_blocks: ``grad_blocks[k]`` is ``preconditioners[k].split(grad)``.
        roots: ``roots[k][b]``, the roots to use for block b of parameter k instead of the cached ones.
        batched: one batched product per block shape and dimension instead of one per block.
    """
    items = [(k, b) for k, pc in enumerate(preconditioners) if not pc.is_diagonal for b in range(len(pc.blocks))]
    qs = [
        [blk.root(i) for i in range(len(blk.roots))] if roots is None else roots[k][b]
        for k, b in items
        for blk in (preconditioners[k].blocks[b],)
    ]
    ys = _PRECONDITION[batched]([grad_blocks[k][b] for k, b in items], qs)
    out = []
    for k, pc in enumerate(preconditioners):
        out.append(
            pc.diag_root * grad_blocks[k][0]
            if pc.is_diagonal
            else torch.empty(pc.shape, dtype=grad_blocks[k][0].dtype, device=grad_blocks[k][0].device)
        )
    for (k, b), y in zip(items, ys):
        out[k][preconditioners[k].blocks[b].slices] = y
    return out


# ------------------------------------------------------------------------------------------------ Shampoo
def shampoo_directions(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: list[dict[str, Any]],
    steps: list[int],
    *,
    beta2: float | None,
    eps: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    precondition_frequency: int = 1,
    start_preconditioning_step: int = 1,
    max_preconditioner_dim: int = 1024,
    exponent_override: float | None = None,
    grafting: str | None = None,
    grafting_beta2: float = 0.999,
    grafting_eps: float = 1e-8,
    batched: bool = True,
) -> list[torch.Tensor]:
    """Steps 1-5 of the module's Shampoo step: update the state in place and return P_t per parameter.

    The last stage is w <- w - lr * P_t (see :func:`shampoo_single`); P_t already holds the weight decay, so the
    last stage decays nothing itself.

    Args:
        params: working parameters w_t (float32/float64, any shape); read only here.
        grads: gradients g_t, same shapes and dtypes; read only.
        states: one dict per parameter as made by :func:`init_shampoo_state` plus ``grafting_sum_sq`` or
            ``grafting_exp_avg_sq`` (parameter's shape) when grafting and ``momentum_buffer`` when momentum;
            updated in place.
        steps: t per parameter (Python ints, already incremented, >= 1).
        beta2: None (sums) or in [0, 1). eps: damping > 0 added to every eigenvalue. momentum: in [0, 1).
        weight_decay: >= 0, added to the direction as weight_decay * w.
        precondition_frequency, start_preconditioning_step, max_preconditioner_dim: f, the first preconditioned
            step, the largest preconditioner side.
        exponent_override: a negative exponent or None. grafting: None, "adagrad" or "adam".
        grafting_beta2, grafting_eps: the grafted Adam's EMA coefficient and the grafted method's epsilon.
        batched: one eigendecomposition per bucket of equal size and exponent (else one per matrix).

    Returns:
        P_t per parameter, of the parameter's shape (the momentum buffers themselves when ``momentum != 0``).
    """
    if not params:
        return []
    freq, start = precondition_frequency, start_preconditioning_step
    pcs = [ShampooPreconditioner.from_state(st, g.shape, max_preconditioner_dim) for st, g in zip(states, grads)]
    xs = [pc.split(g) for pc, g in zip(pcs, grads)]

    # (1) statistics, every step
    update_statistics(pcs, xs, beta2, batched=batched)

    # (2) inverse roots, recomputed at steps t = freq, 2 freq, ... from the one before start on, then cached
    due = [k for k, t in enumerate(steps) if t % freq == 0 and t + freq > start]
    compute_roots([pcs[k] for k in due], [steps[k] for k in due], beta2, eps, exponent_override, batched=batched)

    # (3) the grafted method's direction (its statistics follow every step, also before start)
    graft = [None] * len(grads)
    if grafting is not None:
        if grafting == "adagrad":
            sums = [st["grafting_sum_sq"] for st in states]
            torch._foreach_addcmul_(sums, grads, grads)
            den = torch._foreach_sqrt(sums)
        else:  # Adam without first moment: bias-corrected EMA of g^2
            sums = [st["grafting_exp_avg_sq"] for st in states]
            ema_sq_(sums, grads, grafting_beta2)
            den = torch._foreach_div(sums, [bias_correction(grafting_beta2, t) for t in steps])
            torch._foreach_sqrt_(den)
        torch._foreach_add_(den, grafting_eps)
        graft = torch._foreach_div(grads, den)

    # (4) directions: Shampoo from step `start` on; before it the grafted direction or the plain gradient
    directions: list[torch.Tensor] = [None] * len(grads)  # type: ignore[list-item]
    for k, t in enumerate(steps):
        if t < start:
            directions[k] = graft[k] if graft[k] is not None else grads[k].clone()
    pre = [k for k, t in enumerate(steps) if t >= start]
    for k, d in zip(pre, precondition([pcs[k] for k in pre], [xs[k] for k in pre], batched=batched)):
        if grafting is not None:  # each block's Shampoo direction rescaled to the grafted direction's norm
            gview = graft[k].reshape(pcs[k].shape)
            for sl in pcs[k].slices():
                blk = d[sl]
                dn, gn = torch.linalg.vector_norm(blk), torch.linalg.vector_norm(gview[sl])
                blk.mul_(torch.where(dn > 0, gn / dn, torch.zeros_like(dn)))
        directions[k] = d.reshape(params[k].shape)

    # (5) weight decay added to the search direction, then heavy-ball momentum on it
    directions = add_l2(directions, params, weight_decay)
    if momentum != 0:
        bufs = [st["momentum_buffer"] for st in states]
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, directions)
        directions = bufs
    return directions


def shampoo_single(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: list[dict[str, Any]],
    steps: list[int],
    *,
    lr: float,
    step: StepFn = apply_update_,
    **hyperparameters: Any,
) -> None:
    """One Shampoo step on each parameter, in place (the literal loop: one eigendecomposition per matrix).

    :func:`shampoo_directions` (steps 1-5 of the module doc; ``hyperparameters`` are its keywords: ``beta2``,
    ``eps``, ``momentum``, ``weight_decay``, ``precondition_frequency``, ...), then the last stage
    ``step(params, P, lr, 0.0)`` (default :func:`adaptim.functional.common.apply_update_`: w <- w - lr * P).
    ``lr`` is eta, in parameter units per unit of preconditioned gradient.
    """
    directions = shampoo_directions(params, grads, states, steps, **hyperparameters, batched=False)
    if params:
        step(params, directions, lr, 0.0)


def shampoo_batched(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: list[dict[str, Any]],
    steps: list[int],
    *,
    lr: float,
    step: StepFn = apply_update_,
    **hyperparameters: Any,
) -> None:
    """The step of :func:`shampoo_single` with one eigendecomposition per bucket of equal size and exponent and
    batched products per block shape; equal to the loop to rounding. Same arguments."""
    directions = shampoo_directions(params, grads, states, steps, **hyperparameters, batched=True)
    if params:
        step(params, directions, lr, 0.0)


# -------------------------------------------------------------------------------------- IdealizedShampoo
def idealized_shampoo_directions(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: list[dict[str, Any]],
    steps: list[int],
    *,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    max_preconditioner_dim: int = 1024,
    batched: bool = True,
) -> list[torch.Tensor]:
    """The IdealizedShampooIteration's direction D + weight_decay * w per parameter (module doc, (63)-(64)).

    Args:
        params, grads: working parameters and gradients (float32/float64), both read only here.
        states: one dict per parameter from ``init_shampoo_state(p, max_dim, matrix_view=True,
            cache_roots=False)``; the statistics are updated in place.
        steps: t per parameter (>= 1). beta2: in [0, 1). eps: damping > 0. weight_decay: >= 0.
        max_preconditioner_dim: the largest block side. batched: one eigendecomposition per size bucket.

    Returns:
        New tensors of the parameters' shapes.
    """
    if not params:
        return []
    pcs = [
        ShampooPreconditioner.from_state(st, g.shape, max_preconditioner_dim, matrix_view=True)
        for st, g in zip(states, grads)
    ]
    xs = [pc.split(g) for pc, g in zip(pcs, grads)]
    update_statistics(pcs, xs, beta2, batched=batched)
    # step 2: bias-corrected estimates of E[G G^T], E[G^T G]; step 3 with their -1/2 roots, computed afresh
    hats = [pc.corrected(t, beta2) for pc, t in zip(pcs, steps)]
    flat = [a for per_param in hats for pair in per_param for a in pair]
    roots = iter(_POWERS[batched](flat, [-0.5] * len(flat), eps))
    nested = [[[next(roots) for _ in pair] for pair in per_param] for per_param in hats]
    directions = precondition(pcs, xs, roots=nested, batched=batched)
    for d, pc, per_param in zip(directions, pcs, hats):
        for blk, (lhat, _) in zip(pc.blocks, per_param):
            d[blk.slices].mul_(torch.trace(lhat).sqrt())
    return add_l2([d.reshape(w.shape) for d, w in zip(directions, params)], params, weight_decay)


def idealized_shampoo_single(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: list[dict[str, Any]],
    steps: list[int],
    *,
    lr: float,
    step: StepFn = apply_update_,
    **hyperparameters: Any,
) -> None:
    """The IdealizedShampooIteration of Section 6.2.1 on each parameter, in place (the literal loop):
    :func:`idealized_shampoo_directions` (``hyperparameters`` are its keywords: ``beta2``, ``eps``,
    ``weight_decay``, ``max_preconditioner_dim``), then ``step(params, D, lr, 0.0)`` (default w <- w - lr D)."""
    directions = idealized_shampoo_directions(params, grads, states, steps, **hyperparameters, batched=False)
    if params:
        step(params, directions, lr, 0.0)


def idealized_shampoo_batched(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: list[dict[str, Any]],
    steps: list[int],
    *,
    lr: float,
    step: StepFn = apply_update_,
    **hyperparameters: Any,
) -> None:
    """The step of :func:`idealized_shampoo_single` with batched eigendecompositions; equal to it to rounding.
    Same arguments."""
    directions = idealized_shampoo_directions(params, grads, states, steps, **hyperparameters, batched=True)
    if params:
        step(params, directions, lr, 0.0)
