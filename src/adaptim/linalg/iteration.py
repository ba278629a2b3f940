"""Matrix iterations for top eigenvectors (Appendix Q.1-Q.2.1): power, orthogonal, and online orthogonal iteration.

* Power iteration (Q.1, (141)): q_{k+1} = X q_k / ‖X q_k‖₂, converging to ±v1 with the error
  ‖r_P‖₂ = O((λ2/λ1)^P) when λ1 > λ2.
* Orthogonal iteration (142)-(143): Ṽ_{k+1} = X V̂_k, V̂_{k+1} = QR(Ṽ_{k+1}); span(V̂_k) -> span(V_m) with
  sin Θ = O((λ_{m+1}/λ_m)^k).
* Online orthogonal iteration (Q.2.1, (144)-(145)): one such step per new matrix X^(t) of a slowly drifting
  sequence, started from an exact eigendecomposition, followed by the notes' order and sign corrections.

"QR" here is the thin QR with a non-negative diagonal of R (the Gram-Schmidt basis): it spans the same column
space as any QR, and for PSD X with V̂ near an eigenbasis it leaves the columns' signs unchanged.

All functions are batched over leading dimensions and take float32 or float64 symmetric (PSD, as in the notes)
matrices; symmetry is assumed, not checked.
"""

from __future__ import annotations

import torch

__all__ = ["power_iteration", "orthogonal_iteration", "online_orthogonal_iteration_step", "OnlineOrthogonalIteration"]

_ORDERS = ("eigenvalue", "match", None)


def _check_square(name: str, X: torch.Tensor) -> int:
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
    if X.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {X.dtype}")
    if X.dim() < 2 or X.shape[-1] != X.shape[-2]:
        raise ValueError(f"{name} must have shape (..., n, n), got {tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"{name} has non-finite entries")
    return X.shape[-1]


def _check_iters(num_iters) -> int:
    if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 0:
        raise ValueError(f"num_iters must be an int >= 0, got {num_iters!r}")
    return num_iters


def _qr(A: torch.Tensor) -> torch.Tensor:
    """Thin QR's Q with diag(R) >= 0, so the result does not depend on LAPACK's sign choices."""
    Q, R = torch.linalg.qr(A, mode="reduced")
    d = torch.diagonal(R, dim1=-2, dim2=-1)
    return Q * torch.where(d < 0, -1.0, 1.0).to(A.dtype).unsqueeze(-2)


def _rayleigh(X: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """λ̂_i = v_iᵀ X v_i for each column of V: (..., n, n), (..., n, k) -> (..., k)."""
    return (V * (X @ V)).sum(dim=-2)


def power_iteration(
    X: torch.Tensor, num_iters: int = 100, q0: torch.Tensor | None = None, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Power iteration of Appendix Q.1: q_{k+1} = X q_k / ‖X q_k‖₂, started from a unit q0.

    After P steps q_P = X^P q0 / ‖X^P q0‖₂ (141), which tends to sign(a1)·v1 (a1 = v1ᵀq0) with the error
    ‖r_P‖₂ = tan∠(q_P, v1) = O((λ2/λ1)^P) when λ1 > λ2 (without a gap: to the normalized projection of q0
    onto the top eigenspace). The eigenvalue estimate is the Rayleigh quotient q_Pᵀ X q_P.
    Where X q_k = 0 (e.g. X = 0) q_k is kept instead of dividing by zero: it is then an eigenvector of X
    with eigenvalue 0.

    Args:
        X: (..., n, n) symmetric PSD matrices, float32 or float64.
        num_iters: P >= 0, the number of multiplications by X.
        q0: (..., n) or (n,) start vectors (normalized here; must be nonzero), or ``None`` for a uniform draw
            from the unit sphere using ``generator``.
        generator: torch.Generator for the random start (on X's device).

    Returns:
        (eigenvalue, eigenvector): shapes (...) and (..., n), X's dtype; the vector has unit 2-norm.

    Raises:
        TypeError: X not a float32/float64 tensor.
        ValueError: X not square or non-finite, num_iters < 0, q0 of the wrong shape or zero.
    """
    n = _check_square("X", X)
    _check_iters(num_iters)
    if q0 is None:
        q = torch.randn(*X.shape[:-1], generator=generator, dtype=X.dtype, device=X.device)
    else:
        if not isinstance(q0, torch.Tensor) or q0.dim() < 1 or q0.shape[-1] != n:
            raise ValueError(
                f"q0 must be a tensor of shape (..., {n}), got "
                f"{tuple(q0.shape) if isinstance(q0, torch.Tensor) else type(q0).__name__}"
            )
        try:
            batch = torch.broadcast_shapes(X.shape[:-2], q0.shape[:-1])
        except RuntimeError:
            raise ValueError(
                f"q0's batch shape {tuple(q0.shape[:-1])} does not broadcast with X's {tuple(X.shape[:-2])}"
            ) from None
        X = X.expand(*batch, n, n)
        q = q0.to(dtype=X.dtype, device=X.device).expand(*batch, n).clone()
    norm = q.norm(dim=-1, keepdim=True)
    if bool((norm == 0).any()):
        raise ValueError("power_iteration: q0 must be nonzero")
    q = q / norm
    for _ in range(num_iters):
        y = (X @ q.unsqueeze(-1)).squeeze(-1)
        ny = y.norm(dim=-1, keepdim=True)
        q = torch.where(ny > 0, y / torch.where(ny > 0, ny, 1.0), q)
    eigenvalue = (q * (X @ q.unsqueeze(-1)).squeeze(-1)).sum(dim=-1)
    return eigenvalue, q


def orthogonal_iteration(
    X: torch.Tensor,
    k: int | None = None,
    num_iters: int = 100,
    V0: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthogonal iteration (142)-(143): Ṽ_{j+1} = X V̂_j, V̂_{j+1} = QR(Ṽ_{j+1}), for the top-k eigenspace.

    span(V̂_j) = span(X^j V̂_0) (QR only re-bases the column space), and if λ_k > λ_{k+1} it tends to the
    top-k eigenspace with tan Θ(V̂_j, V_k) <= (λ_{k+1}/λ_k)^j tan Θ(V̂_0, V_k). Each column tends to ±v_i at a
    rate set by its own eigengaps (the notes' footnote 28); columns are not sorted or sign-corrected.

    Args:
        X: (..., n, n) symmetric PSD matrices, float32 or float64.
        k: the subspace dimension, 1 <= k <= n; taken from V0 when V0 is given (and must then agree).
        num_iters: the number of steps (142)-(143), >= 0.
        V0: (..., n, k) or (n, k) start matrix of full column rank (orthonormalized here by QR), or ``None`` for
            the Q factor of a Gaussian matrix (a uniform draw from the Stiefel manifold) using ``generator``.
        generator: torch.Generator for the random start.

    Returns:
        (eigenvalues, V): the Rayleigh quotients diag(V̂ᵀ X V̂), shape (..., k), and the orthonormal V̂,
        shape (..., n, k); X's dtype.

    Raises:
        TypeError: X not a float32/float64 tensor.
        ValueError: X not square or non-finite, k outside [1, n] or disagreeing with V0, V0 of the wrong shape,
            num_iters < 0.
    """
    n = _check_square("X", X)
    _check_iters(num_iters)
    if V0 is None:
        if k is None or isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
            raise ValueError(f"k must be an int in [1, {n}] when V0 is not given, got {k!r}")
        V = torch.randn(*X.shape[:-1], k, generator=generator, dtype=X.dtype, device=X.device)
    else:
        if not isinstance(V0, torch.Tensor) or V0.dim() < 2 or V0.shape[-2] != n or not 1 <= V0.shape[-1] <= n:
            raise ValueError(
                f"V0 must have shape (..., {n}, k) with 1 <= k <= {n}, got "
                f"{tuple(V0.shape) if isinstance(V0, torch.Tensor) else type(V0).__name__}"
            )
        if k is not None and k != V0.shape[-1]:
            raise ValueError(f"k = {k!r} disagrees with V0's {V0.shape[-1]} columns")
        try:
            batch = torch.broadcast_shapes(X.shape[:-2], V0.shape[:-2])
        except RuntimeError:
            raise ValueError(
                f"V0's batch shape {tuple(V0.shape[:-2])} does not broadcast with X's {tuple(X.shape[:-2])}"
            ) from None
        X = X.expand(*batch, n, n)
        V = V0.to(dtype=X.dtype, device=X.device).expand(*batch, n, V0.shape[-1])
    V = _qr(V)
    for _ in range(num_iters):
        V = _qr(X @ V)
    return _rayleigh(X, V), V


def _match_order(V: torch.Tensor, V_prev: torch.Tensor) -> torch.Tensor:
    """Reorder V's columns to follow V_prev's labels by |⟨v_i, v_prev_j⟩| (greedy, largest overlap first).

    Greedy assignment rather than a per-column argmax, so the result is always a permutation.
    """
    k = V.shape[-1]
    overlap = (V.transpose(-1, -2) @ V_prev).abs()  # (..., k new, k prev)
    perm = torch.zeros(*V.shape[:-2], k, dtype=torch.long, device=V.device)
    for _ in range(k):
        flat = overlap.flatten(-2).argmax(dim=-1)  # (...)
        i, j = flat // k, flat % k
        perm.scatter_(-1, j.unsqueeze(-1), i.unsqueeze(-1))
        # Take row i and column j out of the running (-1 < any |overlap|).
        overlap = overlap.scatter(-2, i[..., None, None].expand(*i.shape, 1, k), -1.0)
        overlap = overlap.scatter(-1, j[..., None, None].expand(*j.shape, k, 1), -1.0)
    return V.gather(-1, perm.unsqueeze(-2).expand_as(V))


def online_orthogonal_iteration_step(
    X: torch.Tensor, V_prev: torch.Tensor, order: str | None = "eigenvalue", correct_sign: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the online orthogonal iteration (144)-(145) with the corrections of Q.2.1.

    Ṽ = X V̂_prev, V̂ = QR(Ṽ); then, in this order:

    1. order correction: ``"eigenvalue"`` sorts the columns by λ̂_i = v̂_iᵀ X v̂_i, largest first (stable on
       ties); ``"match"`` gives the new columns the labels (positions) of V̂_prev's columns by largest
       |⟨v̂_i, v̂_prev_j⟩| (greedy over the k×k overlap matrix, largest first, so always a permutation);
       ``None`` keeps QR's order.
    2. sign correction (``correct_sign``): flip v̂_i when ⟨v̂_i, v̂_prev_i⟩ < 0. The notes list it first; it is
       applied after reordering so that v̂_i is compared with the previous column carrying the same label.

    Args:
        X: (..., n, n) symmetric PSD matrix X^(t), float32 or float64.
        V_prev: (..., n, k) orthonormal previous estimate V̂^(t-1), same dtype.
        order: "eigenvalue", "match" or None.
        correct_sign: whether to apply the sign correction.

    Returns:
        (eigenvalues, V): λ̂ of V's columns (..., k) in V's order, and V̂^(t) (..., n, k).

    Raises:
        TypeError: X not float32/float64.  ValueError: shapes disagree, non-finite X, or an unknown ``order``.
    """
    n = _check_square("X", X)
    if order not in _ORDERS:
        raise ValueError(f"order must be one of {_ORDERS}, got {order!r}")
    if (
        not isinstance(V_prev, torch.Tensor)
        or V_prev.dim() < 2
        or V_prev.shape[-2] != n
        or not 1 <= V_prev.shape[-1] <= n
    ):
        raise ValueError(
            f"V_prev must have shape (..., {n}, k) with 1 <= k <= {n}, got "
            f"{tuple(V_prev.shape) if isinstance(V_prev, torch.Tensor) else type(V_prev).__name__}"
        )
    V_prev = V_prev.to(X.dtype)
    V = _qr(X @ V_prev)
    if order == "eigenvalue":
        idx = torch.argsort(_rayleigh(X, V), dim=-1, descending=True, stable=True)
        V = V.gather(-1, idx.unsqueeze(-2).expand_as(V))
    elif order == "match":
        V = _match_order(V, V_prev)
    if correct_sign:
        dots = (V * V_prev).sum(dim=-2)
        V = V * torch.where(dots < 0, -1.0, 1.0).to(V.dtype).unsqueeze(-2)
    return _rayleigh(X, V), V


class OnlineOrthogonalIteration:
    """Track the top-k eigenbasis of a drifting sequence X^(1), X^(2), ... (Appendix Q.2.1).

    The constructor sets V̂^(1) = V^(1) exactly (``torch.linalg.eigh``, columns sorted by decreasing
    eigenvalue); each :meth:`update` does one step (144)-(145) from the previous estimate followed by the
    order and sign corrections of :func:`online_orthogonal_iteration_step`. This is accurate when
    X^(t) ≈ X^(t-1) (e.g. an EMA of gradient second moments) and eigengaps are not close to zero.

    Args:
        X: (..., n, n) symmetric PSD X^(1), float32 or float64.
        k: number of tracked eigenvectors, 1 <= k <= n (default n).
        order: "eigenvalue" (default), "match" or None; see :func:`online_orthogonal_iteration_step`.
        correct_sign: flip columns whose inner product with their previous value is negative (default True).

    Attributes:
        basis: (..., n, k) the current V̂^(t), orthonormal columns.
        eigenvalues: (..., k) the Rayleigh quotients λ̂_i of ``basis``'s columns (exact eigenvalues at t = 1).
        t: the index of the last matrix seen (1 after construction).

    Raises:
        TypeError / ValueError: as :func:`online_orthogonal_iteration_step`, k outside [1, n], or (in
        :meth:`update`) an X whose shape or dtype differs from X^(1)'s.
    """

    def __init__(
        self, X: torch.Tensor, k: int | None = None, order: str | None = "eigenvalue", correct_sign: bool = True
    ) -> None:
        n = _check_square("X", X)
        if k is None:
            k = n
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
            raise ValueError(f"k must be an int in [1, {n}], got {k!r}")
        if order not in _ORDERS:
            raise ValueError(f"order must be one of {_ORDERS}, got {order!r}")
        self.k, self.order, self.correct_sign = k, order, bool(correct_sign)
        evals, evecs = torch.linalg.eigh((X + X.transpose(-1, -2)) / 2)
        # eigh sorts ascending; keep the k largest, largest first.
        self.eigenvalues = evals.flip(-1)[..., :k]
        self.basis = evecs.flip(-1)[..., :k]
        self.t = 1

    def update(self, X: torch.Tensor) -> torch.Tensor:
        """Take X^(t) (shape and dtype as X^(1)), update ``basis`` and ``eigenvalues``, and return ``basis``."""
        if not isinstance(X, torch.Tensor) or X.shape != self.basis.shape[:-1] + self.basis.shape[-2:-1]:
            raise ValueError(
                f"X must have shape {tuple(self.basis.shape[:-1]) + (self.basis.shape[-2],)}, got "
                f"{tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__}"
            )
        if X.dtype != self.basis.dtype:
            raise TypeError(f"X must have dtype {self.basis.dtype} (that of X^(1)), got {X.dtype}")
        self.eigenvalues, self.basis = online_orthogonal_iteration_step(X, self.basis, self.order, self.correct_sign)
        self.t += 1
        return self.basis
