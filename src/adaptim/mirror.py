"""Mirror maps, Bregman divergences and Bregman projections (notes Section 1.1, Appendices C, D, E, M.3).

Online mirror descent (1) takes the step

    w_{t+1} = argmin_{w in V} g_t^T w + (1 / eta_t) D_psi(w, w_t)                                           (1)

computed as a gradient step in the mirrored coordinates z = grad psi(w) followed by a Bregman projection onto V:

    w~_{t+1} = grad psi*(grad psi(w_t) - eta_t g_t)          (2)      w_{t+1} = argmin_{w in V} D_psi(w, w~_{t+1})   (3)

where D_psi(x, y) = psi(x) - psi(y) - grad psi(y)^T (x - y) is the Bregman divergence of Appendix C and psi* the
convex conjugate (Fact E.4, grad psi* = (grad psi)^{-1}). This module holds:

* three mirror maps, small objects with ``psi``, ``grad_psi``, ``grad_psi_star`` (the inverse map), ``psi_star``,
  the closed-form ``divergence``, the mirror ``step`` (2)-(3) and Bregman ``project`` onto a convex set:
  :class:`Euclidean` (psi = 1/2 ||x||^2: gradient descent), :class:`Weighted` (psi = 1/2 ||x||_A^2, D of (83)) and
  :class:`Entropy` (negative entropy, D = KL of (84); its step on the simplex is exponentiated gradient (91));
  :func:`mirror_map` builds one by name;
* :func:`bregman_divergence` for any differentiable convex psi given as a torch function (autograd for grad psi);
* convex sets with a projection oracle (:class:`Simplex`, :class:`Box`, :class:`Ball`, :class:`Subspace`) and
  :func:`bregman_projection` (86) for the (map, set) pairs that have a closed form;
* :func:`exponentiated_gradient`, the update (91) computed stably in log space;
* the weighted norm ||x||_A (127) and its dual ||y||_{A^{-1}} (M.3), or ||y||_{A^+} on range(A) for a singular
  A >= 0 (M.3.1): :func:`weighted_norm`, :func:`dual_weighted_norm`;
* the simplex checks the simplex optimizers use (:func:`check_simplex`, :func:`simplex_tolerance`).

Vectors are tensors of any shape whose entries are the coordinates (``Weighted`` flattens them row-major);
psi, psi* and D return 0-dim tensors in the input's dtype. Real float32/float64 tensors throughout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "MirrorMap",
    "Euclidean",
    "Weighted",
    "Entropy",
    "MIRROR_MAPS",
    "mirror_map",
    "mirror_descent_step",
    "bregman_divergence",
    "Simplex",
    "Box",
    "Ball",
    "Subspace",
    "bregman_projection",
    "project_simplex",
    "normalize_simplex",
    "exponentiated_gradient",
    "weighted_norm",
    "dual_weighted_norm",
    "simplex_tolerance",
    "simplex_violation",
    "check_simplex",
]


# ------------------------------------------------------------------------------------------------- simplex
def simplex_tolerance(n: int, dtype: torch.dtype) -> float:
    """How far from 1 the entries of a point of the simplex with ``n`` entries of ``dtype`` may sum:
    max(1e-6, n * eps(dtype)) (rounding each entry to ``dtype`` moves the sum by up to about n eps / 2; 1e-6 in
    float64 and in float32 below about 8 entries)."""
    return max(1e-6, n * torch.finfo(dtype).eps)


def _dims(x: torch.Tensor, dim: int | None) -> int | tuple[int, ...]:
    if dim is None:
        return tuple(range(x.dim()))
    return dim


def simplex_violation(x: torch.Tensor, dim: int | None = None) -> str | None:
    """Why ``x`` is not on the probability simplex (over all entries, or over each slice along ``dim``), or ``None``.

    On the simplex: every entry finite and >= 0, and each sum within :func:`simplex_tolerance` of 1 (counted over
    the entries of one simplex, in ``x``'s dtype). Reads the values (one host sync)."""
    if not bool(torch.isfinite(x).all()):
        return "it has NaN or infinite entries"
    if x.numel() and float(x.min()) < 0:
        return f"it has negative entries (the smallest is {float(x.min()):.6g})"
    sums = x.double().sum(dim=_dims(x, dim)) if x.dim() else x.double()
    n = x.numel() if dim is None else (x.shape[dim] if x.dim() else 1)
    tol = simplex_tolerance(n, x.dtype)
    worst = float((sums - 1).abs().max()) if sums.numel() else 0.0
    if worst > tol:
        what = "its entries sum" if dim is None else f"some slice along dim={dim} sums"
        bad = float(sums.reshape(-1)[(sums - 1).abs().reshape(-1).argmax()])
        return f"{what} to {bad:.9g}, not 1 (tolerance {tol:.3g} for {n} entries of {x.dtype})"
    return None


def check_simplex(x: torch.Tensor, dim: int | None = None, name: str = "parameter") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``x`` is on the probability simplex (:func:`simplex_violation`).

    A tensor with no entries passes (it has nothing to update)."""
    if x.numel() == 0:
        return
    why = simplex_violation(x.detach(), dim)
    if why is not None:
        over = "all its entries" if dim is None else f"each slice along dim={dim}"
        raise ValueError(
            f"{name} (shape {tuple(x.shape)}) must lie on the probability simplex over {over} (entries >= 0 summing "
            f"to 1), but {why}; start from a point of the simplex, e.g. torch.softmax(x.flatten(), 0).view_as(x) "
            "or torch.full_like(x, 1 / x.numel())"
        )


def _as_rows(x: torch.Tensor, dim: int | None) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``x`` as a 2-D (simplices, entries) tensor and the function that puts such a tensor back in ``x``'s shape."""
    if dim is None or x.dim() == 0:
        return x.reshape(1, -1), lambda r: r.reshape(x.shape)
    moved = x.movedim(dim, -1)
    shape = moved.shape
    return moved.reshape(-1, shape[-1]), lambda r: r.reshape(shape).movedim(-1, dim)


def project_simplex(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """The Euclidean projection of ``x`` onto the probability simplex: argmin_{z in simplex} ||z - x||_2 (86).

    The sort-based algorithm (Held, Wolfe and Crowder 1974; Duchi et al. 2008): with u the entries sorted in
    decreasing order and rho the largest k such that u_k > (sum_{j<=k} u_j - 1) / k, the projection is
    max(x - theta, 0) for theta = (sum_{j<=rho} u_j - 1) / rho. Over all entries, or each slice along ``dim``."""
    rows, back = _as_rows(x, dim)
    u = torch.sort(rows, dim=-1, descending=True).values
    css = u.cumsum(-1) - 1
    k = torch.arange(1, rows.shape[-1] + 1, dtype=rows.dtype, device=rows.device)
    rho = ((u - css / k) > 0).sum(-1, keepdim=True)  # the condition holds exactly for k = 1..rho
    theta = css.gather(-1, rho - 1) / rho.to(rows.dtype)
    return back((rows - theta).clamp_min(0))


def normalize_simplex(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """The KL (Bregman) projection of ``x`` >= 0 onto the probability simplex: x / sum(x) (over all entries or each
    slice along ``dim``). Raises ``ValueError`` for negative entries or a zero sum (no projection exists)."""
    if x.numel() and float(x.min()) < 0:
        raise ValueError("the KL projection onto the simplex needs x >= 0 (KL is defined on the nonnegative orthant)")
    rows, back = _as_rows(x, dim)
    s = rows.sum(-1, keepdim=True)
    if bool((s <= 0).any()):
        raise ValueError("the KL projection onto the simplex needs a positive sum of x over each simplex")
    return back(rows / s)


def exponentiated_gradient(w: torch.Tensor, g: torch.Tensor, lr: float, dim: int | None = None) -> torch.Tensor:
    """One exponentiated-gradient step (91), w_i exp(-lr g_i) / sum_j w_j exp(-lr g_j), computed in log space.

    With a_i = log w_i - lr g_i and m = max_i a_i, the step is exp(a_i - m) / sum_j exp(a_j - m): every exponent is
    <= 0 and the largest term is 1, so no exp overflows and the sum is >= 1 (exponentiating first gives inf / inf
    = NaN for w = (1/3, 1/3, 1/3), g = (-800, 0, 800), lr = 1; this gives (1, 0, 0)). Hence for any finite
    gradient and lr the result is finite and on the simplex:

    * zeros of w stay zeros (log 0 = -inf), and entries <= 0, which a point of the simplex does not have, count
      as zeros (never a NaN);
    * where lr g_i overflows to -inf for some entries of the support, those entries share all the mass in
      proportion to w_i (the limit of (91));
    * where the step changes no log-weight at the working precision (a zero gradient, lr g below rounding) w is
      returned unchanged, bitwise, rather than renormalized (which would move it by rounding).

    Args:
        w: a point of the simplex (over all entries, or each slice along ``dim``), float32/float64, any shape.
        g: the gradient, ``w``'s shape and dtype, finite.
        lr: eta_t >= 0.
        dim: ``None`` (one simplex over the whole tensor) or the dimension along which each slice is a simplex.

    Returns:
        w_{t+1}, a new tensor of ``w``'s shape and dtype.
    """
    wr, back = _as_rows(w, dim)
    gr, _ = _as_rows(g, dim)
    pos = wr > 0
    neg_inf = torch.full_like(wr, -math.inf)
    logw = torch.where(pos, torch.log(torch.where(pos, wr, torch.ones_like(wr))), neg_inf)
    z = gr * (-lr)
    a = torch.where(pos, logw + z, neg_inf)
    m = a.amax(-1, keepdim=True)
    u = torch.exp(a - torch.where(torch.isfinite(m), m, torch.zeros_like(m)))
    top = torch.where(a == math.inf, wr, torch.zeros_like(wr))  # lr g_i = -inf: those entries take the mass
    u = torch.where(m == math.inf, top, u)
    new = u / u.sum(-1, keepdim=True)
    # unchanged where the step moves no log-weight, or where there is no support at all (no simplex point)
    same = ((a - m) == (logw - logw.amax(-1, keepdim=True))) | ~pos
    keep = same.all(-1, keepdim=True) | (m == -math.inf)
    return back(torch.where(keep, wr, new))


# -------------------------------------------------------------------------------------------- convex sets
@dataclass(frozen=True)
class Simplex:
    """The probability simplex {x >= 0, sum x = 1} over all entries, or over each slice along ``dim``."""

    dim: int | None = None

    def contains(self, x: torch.Tensor, tol: float = 1e-9) -> bool:
        rows, _ = _as_rows(x, self.dim)
        return bool((rows >= -tol).all()) and bool(((rows.sum(-1) - 1).abs() <= tol * rows.shape[-1] + tol).all())


@dataclass(frozen=True)
class Box:
    """The box {low <= x <= high} (entrywise; ``low``/``high`` numbers or tensors broadcasting to x)."""

    low: Any = -math.inf
    high: Any = math.inf

    def __post_init__(self) -> None:
        lo, hi = torch.as_tensor(self.low, dtype=torch.float64), torch.as_tensor(self.high, dtype=torch.float64)
        if bool(torch.isnan(lo).any() | torch.isnan(hi).any()) or bool((lo > hi).any()):
            raise ValueError(f"Box needs low <= high entrywise, got low={self.low!r}, high={self.high!r}")

    def contains(self, x: torch.Tensor, tol: float = 1e-9) -> bool:
        lo, hi = torch.as_tensor(self.low, dtype=x.dtype), torch.as_tensor(self.high, dtype=x.dtype)
        return bool(((x >= lo - tol) & (x <= hi + tol)).all())


@dataclass(frozen=True)
class Ball:
    """The Euclidean ball {||x - center||_2 <= radius} (``center`` ``None``: the origin)."""

    radius: float
    center: Any = None

    def __post_init__(self) -> None:
        if not (isinstance(self.radius, (int, float)) and math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"Ball radius must be a finite number > 0, got {self.radius!r}")

    def _c(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x) if self.center is None else torch.as_tensor(self.center, dtype=x.dtype)

    def contains(self, x: torch.Tensor, tol: float = 1e-9) -> bool:
        return float(torch.linalg.vector_norm(x - self._c(x))) <= self.radius * (1 + tol)


@dataclass(frozen=True)
class Subspace:
    """The linear subspace spanned by the columns of ``basis`` (d x k, any full-column-rank basis) of R^d, d the
    number of entries of x (row-major)."""

    basis: torch.Tensor

    def __post_init__(self) -> None:
        b = self.basis
        if not isinstance(b, torch.Tensor) or b.dim() != 2 or b.shape[1] > b.shape[0]:
            raise ValueError(f"Subspace basis must be a d x k tensor with k <= d, got {getattr(b, 'shape', b)!r}")

    def contains(self, x: torch.Tensor, tol: float = 1e-9) -> bool:
        v = x.reshape(-1)
        q = torch.linalg.qr(self.basis.to(x.dtype)).Q
        return float(torch.linalg.vector_norm(v - q @ (q.mT @ v))) <= tol * (1 + float(torch.linalg.vector_norm(v)))


ConvexSet = Simplex | Box | Ball | Subspace


def _no_oracle(map_name: str, s: Any) -> ValueError:
    return ValueError(
        f"no closed-form Bregman projection for the {map_name} mirror map onto {type(s).__name__}: it is a "
        "constrained convex program (solve it with a generic solver such as scipy.optimize.minimize)"
    )


# -------------------------------------------------------------------------------------------- mirror maps
class MirrorMap:
    """A mirror map psi (strictly convex, differentiable) and what mirror descent needs of it (Section 1.1).

    Subclasses define :meth:`psi`, :meth:`grad_psi`, :meth:`grad_psi_star` (= (grad psi)^{-1}, (95)),
    :meth:`psi_star` (the convex conjugate (93)), :meth:`divergence` (D_psi in closed form) and :meth:`project`
    (the Bregman projection (86) onto a convex set, where it has a closed form)."""

    name: str = ""

    def psi(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def grad_psi(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def grad_psi_star(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def psi_star(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def divergence(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """D_psi(x, y) = psi(x) - psi(y) - grad psi(y)^T (x - y) (Appendix C), in closed form."""
        raise NotImplementedError

    def conjugate_divergence(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """D_{psi*}(p, q) = psi*(p) - psi*(q) - grad psi*(q)^T (p - q) (Lemma C.4 compares it with D_psi)."""
        return self.psi_star(p) - self.psi_star(q) - (self.grad_psi_star(q) * (p - q)).sum()

    def project(self, x: torch.Tensor, convex_set: ConvexSet) -> torch.Tensor:
        """argmin_{z in convex_set} D_psi(z, x) (86); ``ValueError`` where no closed form is implemented."""
        raise _no_oracle(self.name, convex_set)

    def step(self, w: torch.Tensor, g: torch.Tensor, lr: float, convex_set: ConvexSet | None = None) -> torch.Tensor:
        """The mirror-descent step (2)-(3): grad psi*(grad psi(w) - lr g), then projected onto ``convex_set``."""
        return mirror_descent_step(self, w, g, lr, convex_set)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def mirror_descent_step(
    m: MirrorMap, w: torch.Tensor, g: torch.Tensor, lr: float, convex_set: ConvexSet | None = None
) -> torch.Tensor:
    """(2)-(3) literally: w~ = grad psi*(grad psi(w) - lr g), then the Bregman projection of w~ onto ``convex_set``
    (none: V = the map's whole domain)."""
    w_tilde = m.grad_psi_star(m.grad_psi(w) - lr * g)
    return w_tilde if convex_set is None else m.project(w_tilde, convex_set)


class Euclidean(MirrorMap):
    """psi(x) = 1/2 ||x||_2^2: grad psi = grad psi* = identity, D_psi(x, y) = 1/2 ||x - y||_2^2; mirror descent is
    (projected) gradient descent (Section 1.1). Projections: onto :class:`Simplex` (sort-based), :class:`Box`
    (clamp), :class:`Ball` (rescale toward the center), :class:`Subspace` (orthogonal projection, Example C.1)."""

    name = "euclidean"

    def psi(self, x):
        return 0.5 * (x * x).sum()

    def grad_psi(self, x):
        return x.clone()

    def grad_psi_star(self, z):
        return z.clone()

    def psi_star(self, z):
        return 0.5 * (z * z).sum()

    def divergence(self, x, y):
        d = x - y
        return 0.5 * (d * d).sum()

    def step(self, w, g, lr, convex_set=None):
        new = w - lr * g
        return new if convex_set is None else self.project(new, convex_set)

    def project(self, x, convex_set):
        s = convex_set
        if isinstance(s, Simplex):
            return project_simplex(x, s.dim)
        if isinstance(s, Box):
            return torch.clamp(x, torch.as_tensor(s.low, dtype=x.dtype), torch.as_tensor(s.high, dtype=x.dtype))
        if isinstance(s, Ball):
            c = s._c(x)
            n = torch.linalg.vector_norm(x - c)
            return c + (x - c) * torch.clamp(s.radius / n, max=1.0) if float(n) > 0 else x.clone()
        if isinstance(s, Subspace):
            q = torch.linalg.qr(s.basis.to(x.dtype)).Q
            v = x.reshape(-1)
            return (q @ (q.mT @ v)).reshape(x.shape)
        raise _no_oracle(self.name, s)


def _check_spd(A: Any, name: str = "A") -> torch.Tensor:
    """The lower Cholesky factor of ``A``; ``ValueError`` unless A is a finite, symmetric positive-definite matrix."""
    if not isinstance(A, torch.Tensor) or A.dim() != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"{name} must be a square d x d tensor (d >= 1), got {getattr(A, 'shape', type(A).__name__)}")
    if not A.is_floating_point():
        raise ValueError(f"{name} must have a floating-point dtype, got {A.dtype}")
    if not bool(torch.isfinite(A).all()):
        raise ValueError(f"{name} must have only finite entries")
    scale = float(A.abs().max())
    asym = float((A - A.mT).abs().max())
    if asym > 1e-6 * scale:
        raise ValueError(
            f"{name} must be symmetric (psi = 1/2 ||x||_A^2 of (83) needs A = A^T > 0); max |A - A^T| = {asym:.3g}"
        )
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0 or scale == 0:
        low = float(torch.linalg.eigvalsh(0.5 * (A + A.mT).double()).min())
        raise ValueError(
            f"{name} must be positive definite (psi = 1/2 ||x||_A^2 of (83)); its smallest eigenvalue is {low:.3g}. "
            "Add a small multiple of the identity, or use dual_weighted_norm for a singular A >= 0 (M.3.1)"
        )
    return L


class Weighted(MirrorMap):
    """psi(x) = 1/2 ||x||_A^2 = 1/2 x^T A x for a symmetric positive-definite d x d ``A`` (83), x flattened
    row-major to its d entries: grad psi(x) = A x, grad psi*(z) = A^{-1} z, psi*(z) = 1/2 z^T A^{-1} z,
    D_psi(x, y) = 1/2 ||x - y||_A^2. Its mirror step is w - lr A^{-1} g (a preconditioned gradient step, Section
    1.3). Projections: onto :class:`Subspace` (the A-orthogonal projection B (B^T A B)^{-1} B^T A x, equality in
    (87)); onto :class:`Box` when A is diagonal (clamp); onto :class:`Ball` when A = c I (rescale).

    Raises:
        ValueError: A not a square, finite, symmetric (to 1e-6 relative) positive-definite matrix.
    """

    name = "weighted"

    def __init__(self, A: torch.Tensor) -> None:
        self._L = _check_spd(A)
        self.A = A

    @property
    def d(self) -> int:
        return self.A.shape[0]

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() != self.d:
            raise ValueError(f"Weighted: A is {self.d} x {self.d}, so x must have {self.d} entries, got {x.numel()}")
        return x.reshape(-1)

    def _A(self, x):
        return self.A.to(dtype=x.dtype, device=x.device)

    def solve(self, z: torch.Tensor) -> torch.Tensor:
        """A^{-1} z (by the Cholesky factor), in ``z``'s shape; computed in the wider of A's and z's dtypes."""
        v = self._flat(z)
        dt = torch.promote_types(v.dtype, self._L.dtype)
        out = torch.cholesky_solve(v.to(dt).reshape(-1, 1), self._L.to(dtype=dt, device=v.device))
        return out.reshape(z.shape).to(z.dtype)

    def psi(self, x):
        v = self._flat(x)
        return 0.5 * v @ (self._A(x) @ v)

    def grad_psi(self, x):
        return (self._A(x) @ self._flat(x)).reshape(x.shape)

    def grad_psi_star(self, z):
        return self.solve(z)

    def psi_star(self, z):
        return 0.5 * (self._flat(z) @ self._flat(self.solve(z)))

    def divergence(self, x, y):
        d = self._flat(x - y)
        return 0.5 * d @ (self._A(x) @ d)

    def step(self, w, g, lr, convex_set=None):
        new = w - lr * self.solve(g)
        return new if convex_set is None else self.project(new, convex_set)

    def project(self, x, convex_set):
        s, A = convex_set, self._A(x)
        if isinstance(s, Subspace):
            B = s.basis.to(x.dtype)
            v = self._flat(x)
            coef = torch.linalg.solve(B.mT @ A @ B, B.mT @ (A @ v))
            return (B @ coef).reshape(x.shape)
        diagonal = int(torch.count_nonzero(A - torch.diag(torch.diagonal(A)))) == 0
        if isinstance(s, Box) and diagonal:  # separable: each coordinate's 1-D projection is a clamp
            return Euclidean().project(x, s)
        if isinstance(s, Ball) and diagonal and bool((torch.diagonal(A) == A[0, 0]).all()):
            return Euclidean().project(x, s)
        raise _no_oracle(self.name, s)

    def __repr__(self) -> str:
        return f"Weighted(A={self.d}x{self.d})"


class Entropy(MirrorMap):
    """Negative entropy psi(x) = sum_i x_i log x_i on the nonnegative orthant (0 log 0 = 0), (84):
    grad psi(x) = 1 + log x, grad psi*(z) = exp(z - 1), psi*(z) = sum_i exp(z_i - 1), and
    D_psi(x, y) = sum_i x_i log(x_i / y_i) - x_i + y_i, which is KL(x, y) on the simplex. Its mirror step onto the
    simplex is exponentiated gradient (90)-(91) (:func:`exponentiated_gradient`, computed stably in log space).
    Projections: onto :class:`Simplex` (normalization, equality in (87): the simplex is affine for KL) and onto a
    :class:`Box` with low >= 0 (clamp: D_psi is separable)."""

    name = "entropy"

    def psi(self, x):
        return torch.xlogy(x, x).sum()

    def grad_psi(self, x):
        return 1 + torch.log(x)

    def grad_psi_star(self, z):
        return torch.exp(z - 1)

    def psi_star(self, z):
        return torch.exp(z - 1).sum()

    def divergence(self, x, y):
        return (torch.xlogy(x, x) - torch.xlogy(x, y) - x + y).sum()

    def step(self, w, g, lr, convex_set=None, dim: int | None = None):
        """Exponentiated gradient (91) on the simplex (``convex_set`` ``None`` or a :class:`Simplex`, whose ``dim``
        wins); another set: the literal (2)-(3) with that set's projection."""
        if convex_set is None or isinstance(convex_set, Simplex):
            return exponentiated_gradient(w, g, lr, dim if convex_set is None else convex_set.dim)
        return mirror_descent_step(self, w, g, lr, convex_set)

    def project(self, x, convex_set):
        s = convex_set
        if isinstance(s, Simplex):
            return normalize_simplex(x, s.dim)
        if isinstance(s, Box):
            if bool((torch.as_tensor(s.low) < 0).any()):
                raise ValueError("the entropy mirror map lives on x >= 0: a Box for it needs low >= 0")
            return Euclidean().project(x, s)
        raise _no_oracle(self.name, s)


#: the names :func:`mirror_map` and :class:`adaptim.MirrorDescent` accept
MIRROR_MAPS: tuple[str, ...] = ("euclidean", "weighted", "entropy")


def mirror_map(name: str, A: torch.Tensor | None = None) -> MirrorMap:
    """The mirror map called ``name`` ("euclidean", "weighted" with its matrix ``A``, or "entropy").

    Raises:
        ValueError: an unknown name (the message lists the names), "weighted" without ``A`` or with an ``A`` that is
            not symmetric positive definite, or an ``A`` given for another map.
    """
    if name not in MIRROR_MAPS:
        raise ValueError(f"unknown mirror map {name!r}; the mirror maps are {', '.join(map(repr, MIRROR_MAPS))}")
    if name == "weighted":
        if A is None:
            raise ValueError("the 'weighted' mirror map psi = 1/2 ||x||_A^2 (83) needs A (d x d, symmetric > 0)")
        return Weighted(A)
    if A is not None:
        raise ValueError(f"A is used by the 'weighted' mirror map only, got A for {name!r}")
    return Euclidean() if name == "euclidean" else Entropy()


def bregman_divergence(psi: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """D_psi(x, y) = psi(x) - psi(y) - grad psi(y)^T (x - y) (Appendix C) for any differentiable convex ``psi``
    given as a torch function of one tensor returning a scalar; grad psi(y) by autograd.

    Args:
        psi: callable, tensor -> 0-dim tensor (e.g. ``lambda x: 0.5 * x @ A @ x``).
        x, y: tensors of one shape (any), float32/float64.

    Returns:
        A 0-dim tensor (detached).
    """
    if x.shape != y.shape:
        raise ValueError(f"x and y must have one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    with torch.enable_grad():
        yy = y.detach().clone().requires_grad_(True)
        py = psi(yy)
        (grad,) = torch.autograd.grad(py, yy)
    with torch.no_grad():
        return psi(x.detach()) - py.detach() - (grad * (x.detach() - y.detach())).sum()


def bregman_projection(m: MirrorMap, x: torch.Tensor, convex_set: ConvexSet) -> torch.Tensor:
    """The Bregman projection p_x = argmin_{z in convex_set} D_psi(z, x) of (86), by the map's closed form.

    Closed forms: Euclidean onto Simplex (sort-based), Box, Ball, Subspace; Weighted onto Subspace (and Box for a
    diagonal A, Ball for A = c I); Entropy onto Simplex (normalization) and Box with low >= 0.

    Raises:
        ValueError: no closed form for that pair (a generic constrained solver is needed).
    """
    return m.project(x, convex_set)


# ------------------------------------------------------------------------------------------ weighted norms
def _check_psd(A: Any) -> torch.Tensor:
    if not isinstance(A, torch.Tensor) or A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square d x d tensor, got {getattr(A, 'shape', type(A).__name__)}")
    if float((A - A.mT).abs().max()) > 1e-6 * max(float(A.abs().max()), 1e-300):
        raise ValueError("A must be symmetric")
    return A


def weighted_norm(x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """||x||_A = sqrt(x^T A x) (127) of the d entries of ``x`` (row-major), for a symmetric ``A`` >= 0 (a norm for A
    > 0, a seminorm vanishing on null(A) otherwise, M.3.1). Returns a 0-dim tensor."""
    _check_psd(A)
    v = x.reshape(-1)
    return torch.sqrt(torch.clamp(v @ (A.to(v.dtype) @ v), min=0))


def dual_weighted_norm(y: torch.Tensor, A: torch.Tensor, rtol: float | None = None) -> torch.Tensor:
    """The dual norm sup_{||x||_A <= 1} <y, x> of ||.||_A (M.2.1 (125)): ||y||_{A^{-1}} = sqrt(y^T A^{-1} y) for
    A > 0 (M.3), and for a singular A >= 0 (M.3.1) ||y||_{A^+} = sqrt(y^T A^+ y) when y lies in range(A), +inf
    otherwise (the supremum is unbounded along null(A)).

    Computed by the eigendecomposition A = V diag(lambda) V^T; eigenvalues <= ``rtol`` * max(lambda) count as 0
    (default: d * eps(dtype)), and y is in range(A) when its component along the null space is at most
    sqrt(``rtol``) times ||y||.

    Raises:
        ValueError: A not square and symmetric, or with a negative eigenvalue beyond ``rtol``.
    """
    _check_psd(A)
    v = y.reshape(-1)
    if v.numel() != A.shape[0]:
        raise ValueError(f"y must have {A.shape[0]} entries for a {A.shape[0]} x {A.shape[0]} A, got {v.numel()}")
    lam, V = torch.linalg.eigh(A.to(v.dtype))
    top = float(lam.abs().max()) if lam.numel() else 0.0
    rtol = A.shape[0] * torch.finfo(v.dtype).eps if rtol is None else rtol
    if float(lam.min()) < -rtol * top:
        raise ValueError(f"A must be positive semidefinite; its smallest eigenvalue is {float(lam.min()):.3g}")
    keep = lam > rtol * top
    c = V.mT @ v
    null = torch.linalg.vector_norm(c[~keep])
    if float(null) > math.sqrt(rtol) * float(torch.linalg.vector_norm(v)):
        return torch.tensor(math.inf, dtype=v.dtype)
    return torch.sqrt((c[keep] ** 2 / lam[keep]).sum())
