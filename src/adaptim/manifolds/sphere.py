"""The sphere {w : ||w||_2 = r} of Section 8.1, for a whole tensor or for each slice of it along one dimension.

:class:`Sphere` is the geometry (projection of a point, the tangent projection g_perp of (71), the retraction by
renormalization); :func:`sphere_steps` are the tangent steps of the three formulations of 8.1 -- pin-to-sphere
(70), the classical update (72) and the trust region (73) under the l2, l1 or linf norm, solved through the dual
problem of Lemma S.21 (:func:`trust_region_direction`). Everything here works on ``(B, n)`` batches of vectors
(one sphere per row): :meth:`Sphere.rows` and :meth:`Sphere.unrows` go between a tensor and its rows.
"""

from __future__ import annotations

import math

import torch

from adaptim.manifolds.base import Manifold

__all__ = ["Sphere", "sphere_steps", "trust_region_direction", "safe_norm", "METHODS", "NORMS"]

#: the formulations of Section 8.1: pin-to-sphere (70), classical (72), trust region (73)
METHODS = ("pin", "tangent", "trust_region")
#: the norms of the trust region (73); "l2" is the only one the other two methods use
NORMS = ("l2", "l1", "linf")


class Sphere(Manifold):
    """The sphere of radius ``radius`` in the space of one tensor, or one sphere per slice along ``dim``.

    Args:
        radius: r > 0 (finite), or ``None``: each point lies on the sphere of its own norm (an optimizer records a
            parameter's initial norm and passes it as the ``radius`` argument of :meth:`retract`).
        dim: ``None`` treats the whole tensor as one vector; an int ``k`` makes each slice along ``k`` its own
            sphere (norms over dimension ``k``): ``dim=1`` on ``W`` of shape (D, d) keeps every row of ``W`` at norm
            r, the setting of 8.1 ("a row of layer W").

    Tensors are real float32/float64 and keep their shapes. A radius is a Python float or a tensor that
    broadcasts against the per-slice norms (:meth:`norms`, shape ``w.shape`` with ``dim`` reduced to 1).

    Raises:
        ValueError: ``radius`` <= 0 or not finite; ``dim`` not an int; (by the methods) a zero vector, which
            has no nearest point on the sphere, or a ``dim`` the tensor does not have.
    """

    def __init__(self, radius: float | None = None, dim: int | None = None) -> None:
        if radius is not None:
            if isinstance(radius, bool) or not isinstance(radius, (int, float)):
                raise ValueError(f"radius must be a positive finite number or None, got {radius!r}")
            if not math.isfinite(radius) or radius <= 0:
                raise ValueError(f"radius must be a positive finite number or None, got {radius!r}")
            radius = float(radius)
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
            raise ValueError(f"dim must be an int or None, got {dim!r}")
        self.radius = radius
        self.dim = dim

    def __repr__(self) -> str:
        return f"Sphere(radius={self.radius!r}, dim={self.dim!r})"

    # -------------------------------------------------------------------------------------------- layout
    def check_dim(self, w: torch.Tensor, name: str = "parameter") -> None:
        """Raise ``ValueError`` naming ``name`` if ``w`` has no dimension ``dim`` (a 0-dim tensor has 0 and -1)."""
        if self.dim is None:
            return
        ndim = max(w.dim(), 1)
        if not -ndim <= self.dim < ndim:
            raise ValueError(
                f"{name} of shape {tuple(w.shape)} has no dimension dim={self.dim}: Sphere(dim={self.dim}) needs "
                f"tensors with more than {self.dim if self.dim >= 0 else -self.dim - 1} dimensions (dim=None treats "
                "the whole tensor as one vector)"
            )

    def rows(self, w: torch.Tensor) -> torch.Tensor:
        """``w`` as a ``(B, n)`` matrix whose rows are its spheres' vectors (a view where possible)."""
        if self.dim is None or w.dim() == 0:
            return w.reshape(1, -1)
        return w.movedim(self.dim, -1).reshape(-1, w.shape[self.dim])

    def unrows(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`rows`: ``x`` of shape ``(B, n)`` in ``like``'s shape."""
        if self.dim is None or like.dim() == 0:
            return x.reshape(like.shape)
        moved = list(like.movedim(self.dim, -1).shape)
        return x.reshape(moved).movedim(-1, self.dim)

    def norms(self, w: torch.Tensor) -> torch.Tensor:
        """The norm of each slice (shape ``w.shape`` with ``dim`` reduced to 1; 0-dim for ``dim=None``)."""
        if self.dim is None or w.dim() == 0:
            return safe_norm(w)
        return safe_norm(w, dim=self.dim, keepdim=True)

    def radius_of(self, w: torch.Tensor) -> torch.Tensor:
        """The radius of each slice of the point ``w``: ``radius``, or ``w``'s own norms when it is ``None``."""
        if self.radius is None:
            return self.norms(w)
        return torch.full_like(self.norms(w), self.radius)

    # ------------------------------------------------------------------------------------ the interface
    def check_point(self, w: torch.Tensor, name: str = "parameter") -> None:
        """Raise ``ValueError`` naming ``name`` if ``w`` is not a real floating tensor, lacks dimension ``dim``, or
        has a zero slice (a zero vector has no nearest point on a sphere). Reads ``w`` (one host sync)."""
        if not isinstance(w, torch.Tensor) or not w.is_floating_point():
            raise ValueError(f"{name} must be a real floating-point tensor, got {getattr(w, 'dtype', type(w))}")
        self.check_dim(w, name)
        if w.numel() == 0 or w.device.type == "meta":
            return
        zero = self.rows(w).abs().amax(dim=1) == 0
        if bool(zero.any()):
            where = "is the zero vector" if self.dim is None else f"has {int(zero.sum())} zero slice(s) along dim"
            raise ValueError(
                f"{name} of shape {tuple(w.shape)} {where}: a zero vector cannot be projected onto a sphere "
                "(it has no direction); initialize it with nonzero values"
            )

    def project_point(self, x: torch.Tensor, radius: float | torch.Tensor | None = None) -> torch.Tensor:
        """r x / ||x|| for each slice (``radius`` overrides the sphere's; with neither, x's own norm: a copy).

        Raises:
            ValueError: a zero slice.
        """
        self.check_point(x, "the point")
        return self._scale_to(x, radius)

    def project_tangent(self, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """g_perp of (71): (I - w w^T / ||w||^2) v for each slice, the projection onto the tangent space at ``w``.

        The norm of ``w`` itself is used (r^2 = ||w||^2 on the sphere), so the result is orthogonal to ``w`` up to
        rounding even for a point a little off the sphere."""
        W, V = self.rows(w), self.rows(v)
        return self.unrows(_tangent_rows(W, V), v)

    def retract(self, x: torch.Tensor, radius: float | torch.Tensor | None = None) -> torch.Tensor:
        """Renormalize each slice of ``x`` (a point moved by a step) to norm r (``radius`` overrides the sphere's).

        Raises:
            ValueError: no radius (``Sphere(radius=None)`` without ``radius=``): a moved point no longer knows the
                norm it had.
        """
        if radius is None and self.radius is None:
            raise ValueError(
                "Sphere(radius=None).retract needs the radius of the point before the step: pass radius= (for "
                "example sphere.radius_of(w) taken before the step)"
            )
        return self._scale_to(x, radius)

    def retract_from(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """:meth:`retract` of ``x`` (``w`` moved by a step) to the sphere's radius, or to ``w``'s own norms when the
        sphere has none (``radius=None``: each step keeps the point's current norm)."""
        return self.retract(x, None if self.radius is not None else self.radius_of(w))

    def is_tangent(self, w: torch.Tensor, v: torch.Tensor, tol: float) -> bool:
        """Whether |<w, v>| <= tol ||w|| ||v|| for every slice."""
        W, V = self.rows(w), self.rows(v)
        W, V = W / _row_scale(W), V / _row_scale(V)
        inner = (W * V).sum(dim=1).abs()
        bound = tol * torch.linalg.vector_norm(W, dim=1) * torch.linalg.vector_norm(V, dim=1)
        return bool((inner <= bound).all())

    def _scale_to(self, x: torch.Tensor, radius: float | torch.Tensor | None) -> torch.Tensor:
        r = self.radius if radius is None else radius
        n = self.norms(x)
        if r is None:
            return x.clone()
        return x / n * r


def _row_scale(X: torch.Tensor) -> torch.Tensor:
    """The largest |entry| of each row (1 for a zero row), shape (B, 1): dividing by it first keeps squares and
    inner products from underflowing (a row of 1e-23 in float32) or overflowing (1e20)."""
    s = X.abs().amax(dim=1, keepdim=True)
    return torch.where(s > 0, s, torch.ones_like(s))


def safe_norm(X: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    """``torch.linalg.vector_norm`` without underflow or overflow of the squares: max|x| ||x / max|x|||."""
    s = X.abs().amax() if dim is None else X.abs().amax(dim=dim, keepdim=True)
    s = torch.where(s > 0, s, torch.ones_like(s))
    n = s * torch.linalg.vector_norm(X / s, dim=dim, keepdim=dim is not None)
    return n if keepdim or dim is None else n.squeeze(dim)


def _tangent_rows(W: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """(I - w w^T / ||w||^2) v for each row pair of the ``(B, n)`` matrices ``W`` and ``V`` (rows scaled first)."""
    sw, sv = _row_scale(W), _row_scale(V)
    Wn, Vn = W / sw, V / sv
    coef = (Wn * Vn).sum(dim=1, keepdim=True) / (Wn * Wn).sum(dim=1, keepdim=True)
    return sv * (Vn - coef * Wn)


# ----------------------------------------------------------------------------------- steps of Section 8.1
def trust_region_direction(W: torch.Tensor, G: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit step z of (73) for each row: argmax <z, g> over ||z|| <= 1, <z, w> = 0; and the dual lambda*.

    Lemma S.21: with lambda* in argmin_lambda ||g + lambda w||_*, any subgradient z of the dual norm at
    h* = g + lambda* w with <z, w> = 0 attains the maximum, ||h*||_*. Per norm:

    * "l2" (self-dual): lambda* = -<w, g>/||w||^2, h* = g_perp, z = g_perp / ||g_perp||_2 (the closed form).
    * "linf" (dual l1): ||g + lambda w||_1 = sum_i |w_i| |lambda - a_i| + const with a_i = -g_i / w_i, minimized at
      the |w|-weighted median of the a_i (a sorted sweep); z = sign(h*) off the tie set T = {i : a_i = lambda*},
      and on T the common multiple of sign(w_i) that makes <z, w> = 0 (it lies in [-1, 1] at the median).
    * "l1" (dual linf): ||g + lambda w||_inf = max(C, max_i c_i |lambda - a_i|) with c_i = |w_i|, C = max of |g_i|
      where w_i = 0. The minimum of the second term is attained where a rising line c_i (lambda - a_i) crosses a
      falling one c_j (a_j - lambda), and equals max over pairs of (u_i - u_j) / (1/c_i + 1/c_j) with u = g / w:
      Dinkelbach's iteration on that ratio ends, after a few O(n) passes, exactly at the best pair (i, j), and
      lambda* is their crossing. z puts the weights c_j/(c_i + c_j), c_i/(c_i + c_j) on the two active entries
      (the convex combination of the active signs that is orthogonal to w); when C is larger, z = sign(g_k) e_k at
      the entry k of C (w_k = 0).

    Args:
        W, G: ``(B, n)`` real tensors, the points (nonzero rows) and the gradients.
        norm: "l2", "l1" or "linf", the norm of (73).

    Returns:
        ``(Z, lam)``: ``Z`` of shape (B, n) in ``G``'s dtype, each row of norm 1 (0 where g is parallel to w), and
        ``lam`` of shape (B,) in float64 (``W``'s dtype for "l2"). The l1 and linf solvers run in float64.
    """
    if norm == "l2":
        H = _tangent_rows(W, G)
        lam = ((H - G) / torch.where(W != 0, W, 1.0)).gather(1, W.abs().argmax(dim=1, keepdim=True))[:, 0]
        n = safe_norm(H, dim=1, keepdim=True)
        return torch.where(n > 0, H / torch.where(n > 0, n, 1.0), 0.0), lam
    w, g = W.double(), G.double()
    if norm == "linf":
        z, lam = _linf_step(w, g)
    elif norm == "l1":
        z, lam = _l1_step(w, g)
    else:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return z.to(G.dtype), lam


def _linf_step(w: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(73) under linf: the dual min_lambda ||g + lambda w||_1 by the weighted median (float64 rows)."""
    c = w.abs()
    on = c > 0
    a = torch.where(on, -g / torch.where(on, w, 1.0), torch.inf)
    a_sorted, order = torch.sort(a, dim=1)
    cum = torch.cumsum(c.gather(1, order), dim=1)
    k = torch.argmax((cum >= cum[:, -1:] / 2).to(torch.int8), dim=1, keepdim=True)  # first index at half weight
    lam = a_sorted.gather(1, k)
    tie = on & (a == lam)
    # sign(h_i) = sign(w_i) sign(lambda* - a_i) off the tie set; sign(g_i) where w_i = 0
    sign = torch.where(on, torch.sign(w) * torch.sign(lam - a), torch.sign(g))
    sign = torch.where(tie, 0.0, sign)
    s = (sign * w).sum(dim=1, keepdim=True)
    wt = (c * tie).sum(dim=1, keepdim=True)
    share = (-s / wt.clamp_min(torch.finfo(w.dtype).tiny)).clamp(-1.0, 1.0)
    z = torch.where(tie, share * torch.sign(w), sign)
    return z, lam[:, 0]


def _l1_step(w: torch.Tensor, g: torch.Tensor, max_iter: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """(73) under l1: the dual min_lambda ||g + lambda w||_inf, by Dinkelbach's iteration on the pairs (float64)."""
    c = w.abs()
    on = c > 0
    u = torch.where(on, g / torch.where(on, w, 1.0), 0.0)
    b = torch.where(on, 1.0 / torch.where(on, c, 1.0), 0.0)
    rows = torch.arange(w.shape[0], device=w.device)
    v = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
    best_i = best_j = None
    for _ in range(max_iter):
        i = torch.where(on, u - v[:, None] * b, -torch.inf).argmax(dim=1)
        j = torch.where(on, u + v[:, None] * b, torch.inf).argmin(dim=1)
        ratio = (u[rows, i] - u[rows, j]) / (b[rows, i] + b[rows, j])
        if best_i is None:
            better = torch.ones_like(ratio, dtype=torch.bool)
        else:
            better = ratio > v
        best_i = i if best_i is None else torch.where(better, i, best_i)
        best_j = j if best_j is None else torch.where(better, j, best_j)
        v = torch.where(better, ratio, v)
        if not bool(better.any()):
            break
    i, j = best_i, best_j
    ci, cj = c[rows, i], c[rows, j]
    lam = -(ci * u[rows, i] + cj * u[rows, j]) / (ci + cj)
    z = torch.zeros_like(g)
    z[rows, i] += cj / (ci + cj) * torch.sign(w[rows, i])
    z[rows, j] -= ci / (ci + cj) * torch.sign(w[rows, j])
    # an entry with w_k = 0 and |g_k| above the pairs' value: the step is all on it (it costs no orthogonality)
    off = torch.where(on, 0.0, g.abs())
    cval, k = off.max(dim=1)
    use_k = cval > v
    if bool(use_k.any()):
        zk = torch.zeros_like(g)
        zk[rows, k] = torch.sign(g[rows, k])
        z = torch.where(use_k[:, None], zk, z)
    return z, lam


def sphere_steps(
    W: torch.Tensor, D: torch.Tensor, lr: float, radius: torch.Tensor, method: str, norm: str = "l2"
) -> torch.Tensor:
    """One step of Section 8.1 for each row of ``W`` (on the sphere of its radius) along the gradient ``D``.

    * "pin" (70): r (w - eta g) / ||w - eta g||.
    * "tangent" (72): r (w - eta g_perp) / ||w - eta g_perp||, which is (72)'s r / sqrt(r^2 + eta^2 ||g_perp||^2)
      (w - eta g_perp) for ||w|| = r (w is orthogonal to g_perp); renormalizing by the computed norm keeps ||w||
      at r without drift over many steps.
    * "trust_region" (73): r (w - eta z) / ||w - eta z|| with z of :func:`trust_region_direction` (||eta z|| = eta
      in the chosen norm).

    A row whose tangent component g_perp is zero, or at rounding level (||g_perp|| <= 4 sqrt(n) eps ||g||, where its
    direction is noise), is returned unchanged: so is a zero gradient. Pin-to-sphere with an exactly radial g would
    give w (or -w once eta <w, g> > r^2, and 0/0 at equality); here it leaves w as it is.

    Args:
        W, D: ``(B, n)`` float32/float64: points and gradients (or momentum buffers).
        lr: eta >= 0.   radius: r, shape (B, 1) or broadcastable.   method: one of :data:`METHODS`.
        norm: the trust region's norm (one of :data:`NORMS`); the other methods take "l2" only.

    Returns:
        The new points, ``(B, n)``, a new tensor.
    """
    tangent = _tangent_rows(W, D)
    n = W.shape[1]
    tiny = 4.0 * math.sqrt(n) * torch.finfo(W.dtype).eps
    still = safe_norm(tangent, dim=1, keepdim=True) <= tiny * safe_norm(D, dim=1, keepdim=True)
    if method == "pin":
        moved = W - lr * D
    elif method == "tangent":
        moved = W - lr * tangent
    elif method == "trust_region":
        Z, _ = trust_region_direction(W, D, norm)
        moved = W - lr * Z
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    norms = safe_norm(moved, dim=1, keepdim=True)
    new = moved / torch.where(norms > 0, norms, 1.0) * radius  # unit rows first: r / ||moved|| may underflow
    return torch.where(still, W, new)
