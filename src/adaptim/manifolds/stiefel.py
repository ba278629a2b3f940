"""The Stiefel manifold St(D, d) = {W in R^{D x d} : W^T W = I_d}, D >= d (Section 8.2 of the notes).

* Tangent space at W (Tagare, 2011; the constraint of (78)): {Delta : Delta^T W + W^T Delta = 0_{d x d}}.
* Orthogonal projection onto it (in the Frobenius inner product): P_W(V) = V - W sym(W^T V), with
  sym(M) = (M + M^T) / 2 of Lemma S.20. (V - P_W(V) = W sym(W^T V) is orthogonal to every tangent Delta, since
  <W S, Delta> = <S, sym(W^T Delta)> = 0 for symmetric S.)
* Retraction (77): Orth(M) = U V^T for M = U S V^T, the Frobenius-nearest point of the manifold to M, by SVD or by
  the Newton-Schulz iteration (147) of Appendix Q.3.1.
* The trust-region step (78) under the spectral norm (Bernstein, 2025, "Modular manifolds": manifold Muon),
  computed through the dual problem (79) of Lemma S.22: :func:`manifold_muon_direction`.

Tensors are real float32/float64 (float16/bfloat16 are computed in float32 and cast back) and keep their shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from adaptim.linalg.newton_schulz import newton_schulz, orthogonalize
from adaptim.manifolds.base import Manifold
from adaptim.validation import check_choice, check_int

__all__ = ["Stiefel", "TangentStep", "manifold_muon_direction", "sym"]

_METHODS = ("svd", "newton_schulz")

#: Newton-Schulz polynomial of the retraction: (15/8, -5/4, 3/8), phi(1) = 1 and phi'(1) = phi''(1) = 0 (Q.3.1),
#: so singular values converge to 1 (cubically once close); Muon's "jordan" set only lands them in [0.68, 1.21]
NS_RETRACTION_COEFFICIENTS = "quintic"


def sym(m: torch.Tensor) -> torch.Tensor:
    """sym(M) = (M + M^T) / 2 of Lemma S.20 (over the last two dimensions)."""
    return (m + m.mT) / 2


def _work(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)


class Stiefel(Manifold):
    """St(D, d) = {W in R^{D x d} : W^T W = I_d} for D >= d (Section 8.2, (77)).

    Args:
        orthogonalize: how :meth:`retract` computes Orth(M) = U V^T of (77): "svd" (exact, the default) or
            "newton_schulz" ((147) with the quintic coefficients (15/8, -5/4, 3/8) of Appendix Q.3.1, whose fixed
            point is exactly 1; Muon's "jordan" coefficients are not used, they only bring singular values into
            about [0.68, 1.21]). Newton-Schulz starts from M / ||M||_F, so a singular value s_i of M starts at
            s_i / ||M||_F (about 1/sqrt(d) for M near the manifold) and grows by about 1.875 per step until it is
            near 1, then converges cubically: with the default ``ns_steps = 12``, M = W - Delta near the manifold
            (singular values within a factor 2 of each other) and d up to about 4096 give U V^T to float32
            rounding (measured: about 3e-7 relative, tests/manifolds/test_stiefel.py). A rank-deficient or badly
            conditioned M is not orthonormalized by it; use "svd" there.
        ns_steps: Newton-Schulz iterations (an int >= 1); ignored by "svd".

    Raises:
        ValueError: an unknown ``orthogonalize``, or ``ns_steps`` not an int >= 1.
    """

    def __init__(self, orthogonalize: str = "svd", ns_steps: int = 12) -> None:
        check_choice("orthogonalize", orthogonalize, _METHODS)
        check_int("ns_steps", ns_steps, 1)
        self.orthogonalize = orthogonalize
        self.ns_steps = ns_steps

    def __repr__(self) -> str:
        ns = f", ns_steps={self.ns_steps}" if self.orthogonalize == "newton_schulz" else ""
        return f"Stiefel(orthogonalize={self.orthogonalize!r}{ns})"

    # ------------------------------------------------------------------------------------------- points
    def check_point(self, w: torch.Tensor, name: str = "parameter") -> None:
        """Raise ``ValueError`` naming ``name`` unless ``w`` is a real floating-point D x d matrix with D >= d.

        A matrix off the manifold is not an error (:meth:`project_point` maps it onto it)."""
        if not isinstance(w, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(w).__name__}")
        if w.dim() != 2:
            raise ValueError(
                f"{name} must be a D x d matrix (2 dimensions) for the Stiefel manifold, got shape "
                f"{tuple(w.shape)}; reshape it to a matrix (a vector w of length D as the column w[:, None], which "
                "puts it on the unit sphere)"
            )
        if w.shape[0] < w.shape[1]:
            raise ValueError(
                f"{name} has shape {tuple(w.shape)} = (D, d) with D < d: the Stiefel manifold W^T W = I_d needs "
                f"D >= d (at most D orthonormal columns in R^D); keep its transpose on the manifold instead "
                f"(orthonormal rows: optimize a {w.shape[1]} x {w.shape[0]} parameter and use its .T)"
            )
        if not w.is_floating_point():
            raise ValueError(f"{name} must be a real floating-point tensor, got dtype {w.dtype}")

    def project_point(self, x: torch.Tensor) -> torch.Tensor:
        """A Frobenius-nearest point of St(D, d) to ``x`` (D x d): U V^T of the thin SVD x = U S V^T ((77), Q.3.1).

        Always by SVD (whatever ``orthogonalize``): for ``x`` of rank below d the nearest point is not unique and
        U V^T is one of them (LAPACK completes U with orthonormal columns), still exactly on the manifold; the zero
        matrix maps to a point of the manifold too."""
        self.check_point(x, "x")
        y = _work(x)
        U, _, Vh = torch.linalg.svd(y, full_matrices=False)
        return (U @ Vh).to(x.dtype)

    def retract(self, x: torch.Tensor) -> torch.Tensor:
        """Orth(x) = U V^T of (77), by SVD or Newton-Schulz (see the class); ``x``'s shape and dtype.

        Raises:
            ValueError: ``x`` not a D x d matrix with D >= d.
            RuntimeError: ``x`` holds NaN or infinity.
        """
        self.check_point(x, "x")
        y = _work(x)
        if not bool(torch.isfinite(y).all()):
            raise RuntimeError("Stiefel.retract: the matrix has non-finite entries (NaN or infinity)")
        if self.orthogonalize == "svd":
            U, _, Vh = torch.linalg.svd(y, full_matrices=False)
            out = U @ Vh
        else:
            out = newton_schulz(y, NS_RETRACTION_COEFFICIENTS, self.ns_steps)
        return out.to(x.dtype)

    def orthogonalize_direction(self, h: torch.Tensor) -> torch.Tensor:
        """U_r V_r^T of h = U S V^T over its nonzero singular values: a subgradient of the nuclear norm at h
        (Appendix R.2, (152)), of spectral norm 1 (0 for h = 0). By SVD (singular values below the rank tolerance
        count as zero, :func:`adaptim.linalg.orthogonalize`) or by ``ns_steps`` quintic Newton-Schulz steps, which
        map a singular value s_i only approximately to 1 when s_i / ||h||_F is small (about below
        1.875^-(ns_steps - 4))."""
        if self.orthogonalize == "svd":
            return orthogonalize(h, "svd")
        return newton_schulz(h, NS_RETRACTION_COEFFICIENTS, self.ns_steps)

    # ------------------------------------------------------------------------------------------ tangents
    def project_tangent(self, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """P_W(V) = V - W sym(W^T V): the orthogonal (Frobenius) projection of V onto the tangent space at W."""
        return v - w @ sym(w.mT @ v)

    def tangent_error(self, w: torch.Tensor, v: torch.Tensor) -> float:
        """||V^T W + W^T V||_F / ||V||_F: how far V is from tangent at W, relative (0 for V = 0)."""
        n = float(torch.linalg.vector_norm(v))
        if n == 0.0:
            return 0.0
        return float(torch.linalg.vector_norm(v.mT @ w + w.mT @ v)) / n

    def is_tangent(self, w: torch.Tensor, v: torch.Tensor, tol: float) -> bool:
        """Whether ||V^T W + W^T V||_F <= tol ||V||_F (the tangent-space condition of (78), relative)."""
        return self.tangent_error(w, v) <= tol

    def distance_to_manifold(self, w: torch.Tensor) -> float:
        """||W^T W - I_d||_F / sqrt(d) (0 on the manifold; for tests and checks), for a D x d matrix ``w``."""
        self.check_point(w, "w")
        d = w.shape[1]
        if d == 0:
            return 0.0
        y = _work(w)
        return float(torch.linalg.matrix_norm(y.mT @ y - torch.eye(d, dtype=y.dtype, device=y.device))) / math.sqrt(d)


@dataclass
class TangentStep:
    """The result of :func:`manifold_muon_direction`.

    Attributes:
        direction: Z, tangent at W (exactly, up to rounding: projected) with ||Z||_2 = 1, or zero; the step of (78)
            is Delta = eta Z, and W_{t+1} = Orth(W - Delta).
        tangent_error: ||Z_k^T W + W^T Z_k||_F / ||Z_k||_F of the dual iterate Z_k that was kept (before the
            projection), the stopping measure.
        iterations: dual updates taken (0: the first candidate was tangent to ``tol``).
        converged: whether the kept iterate was tangent to within ``tol``.
    """

    direction: torch.Tensor
    tangent_error: float
    iterations: int
    converged: bool


def manifold_muon_direction(
    manifold: Stiefel,
    w: torch.Tensor,
    g: torch.Tensor,
    *,
    dual_steps: int = 100,
    dual_lr: float = 0.3,
    tol: float = 1e-4,
) -> TangentStep:
    """The spectral-norm trust-region direction of (78) on St(D, d), through the dual (79) (Lemma S.22).

    Lemma S.22 with ||.|| the spectral norm (dual: the nuclear norm): the maximizer of <Delta, G> over tangent
    Delta with ||Delta||_2 <= eta is Delta = eta Z with Z = Orth(G + W Lambda*) in the subdifferential of
    ||G + W Lambda*||_nuc, Lambda* in argmin_{Lambda in Sym(d)} ||G + W Lambda||_nuc; this Z is tangent. As
    Bernstein (2025) does, Lambda* is approximated by subgradient descent on the convex
    f(Lambda) = ||G + W(Lambda + Lambda^T)||_nuc over Lambda in R^{d x d}:

        Z_k = Orth(G + W(Lambda_k + Lambda_k^T))       (a subgradient of the nuclear norm, Appendix R.2)
        R_k = W^T Z_k + Z_k^T W                        (a subgradient of f at Lambda_k, by (151); 0 iff Z_k tangent)
        Lambda_{k+1} = Lambda_k - a_k R_k

    from Lambda_0 = -sym(W^T G) / 2, where G + W(Lambda_0 + Lambda_0^T) = P_W(G) (the first candidate is the
    orthogonalized projected gradient). It stops at the first k with ||R_k||_F <= tol ||Z_k||_F (Z_k tangent to
    within ``tol``) or after ``dual_steps`` updates, and keeps the iterate of smallest tangency error. Step sizes:
    a_0 = dual_lr * ||G||_F / sqrt(d) (proportional to G, so the direction does not depend on G's scale), then
    halved whenever the tangency error grew since the previous iterate (the oscillation of a too-long step) and
    lengthened by 10% when it fell. Where H* = G + W Lambda* has full rank d the objective is smooth near Lambda*
    and the iteration reaches small tolerances (measured on random 64 x 16 and 4 x 3 problems: 1e-6 in about 20
    updates). Where H* is rank-deficient (generic for some shapes, e.g. 3 x 2; or a gradient of rank below d) the
    subgradient Orth(H) of the iterates is not the tangent one and the iteration does not reach ``tol``; then, as
    in the proof of Lemma S.22, the tangent element of the subdifferential at the best iterate (its singular values
    below a tenth of the largest treated as zero) is solved for directly: U_r V_r^T + U_0 C V_0^T with
    sym(W^T Z) = 0 a linear system for C, kept if ||C||_2 <= 1 and it is more tangent (systems above 2^18 entries
    are skipped, large layers keep the projected candidate).

    The kept Z is then projected onto the tangent space and rescaled to spectral norm 1, so the returned direction
    is always feasible for (78) -- exactly tangent (up to rounding) with ||Z||_2 = 1 -- and close to optimal when
    the dual converged: for tangent Z, <Z, G> = <Z, G + W S> for every symmetric S, and the gap to the maximum of
    (78) vanishes with the tangency error (tests/optim/test_stiefel_sgd.py compares with a generic solver).
    A projected gradient P_W(G) of norm at most 4 eps sqrt(D) ||G||_F (rounding; G = W S for a symmetric S:
    nothing tangent to gain) gives the zero direction, as does G = 0.

    Args:
        manifold: the :class:`Stiefel` instance (its ``orthogonalize`` computes Orth in the dual iteration).
        w: W, D x d on the manifold (D >= d), float32/float64.
        g: G, D x d, the gradient (same dtype).
        dual_steps: the most dual updates, an int >= 0 (0: the orthogonalized projected gradient, projected).
        dual_lr: the relative dual step size a_0 / (||G||_F / sqrt(d)), > 0.
        tol: the relative tangency error at which the dual iteration stops, >= 0.

    Returns:
        :class:`TangentStep`.
    """
    d = w.shape[1]
    gnorm = float(torch.linalg.vector_norm(g))
    # P_W(G) at the level of rounding (G = W S for a symmetric S): no tangent direction to take, and
    # orthogonalizing the rounding noise would give an arbitrary unit step
    noise = 4 * torch.finfo(g.dtype).eps * math.sqrt(w.shape[0]) * gnorm
    if d == 0 or float(torch.linalg.vector_norm(manifold.project_tangent(w, g))) <= noise:
        return TangentStep(torch.zeros_like(g), 0.0, 0, True)
    lam = -sym(w.mT @ g) / 2
    step = dual_lr * gnorm / math.sqrt(d)
    best_z, best_err, best_h, prev_err, k = None, math.inf, None, math.inf, 0
    for k in range(dual_steps + 1):
        h = g + w @ (lam + lam.mT)
        z = manifold.orthogonalize_direction(h)
        r = w.mT @ z + z.mT @ w
        znorm = float(torch.linalg.vector_norm(z))
        err = float(torch.linalg.vector_norm(r)) / znorm if znorm > 0 else 0.0
        if err < best_err:
            best_z, best_err, best_h = z, err, h
        if err <= tol or k == dual_steps:
            break
        step *= 0.5 if err > prev_err else 1.1
        prev_err = err
        lam = lam - step * r
    if best_err > tol:  # a rank-deficient H*: look for the tangent subgradient Lemma S.22 says exists
        completed = _tangent_subgradient(w, best_h)
        if completed is not None and completed[1] < best_err:
            best_z, best_err = completed
    z = manifold.project_tangent(w, best_z)
    spec = float(torch.linalg.matrix_norm(z, ord=2))
    if spec == 0.0:  # a guard against 0/0
        return TangentStep(torch.zeros_like(g), best_err, k, best_err <= tol)
    return TangentStep(z / spec, best_err, k, best_err <= tol)


#: the largest linear system (entries) :func:`_tangent_subgradient` builds; larger problems keep the projection
_COMPLETION_MAX_ENTRIES = 1 << 18


def _tangent_subgradient(w: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, float] | None:
    """A tangent Z in the subdifferential of the nuclear norm at h (up to singular values of h treated as zero),
    or ``None``.

    Where h = U_r S_r V_r^T has rank r < d, the subdifferential is {U_r V_r^T + U_0 C V_0^T : ||C||_2 <= 1} with
    U_0, V_0 orthonormal bases of the complements of range(U_r) in R^D and of range(V_r) in R^d (Appendix R.2,
    (152)); the Z of Lemma S.22 is one of them with sym(W^T Z) = 0, a linear condition on C. For each candidate
    rank r (a gap sigma_{r+1} <= sigma_1 / 10) this solves it for the least-squares C; of the Z with
    ||C||_2 <= 1 + 1e-6 it returns (Z, its relative tangency error) of the smallest error (``None`` if there is
    none). Candidate ranks whose system would have more than 2^18 entries are skipped.
    """
    D, d = w.shape
    U, S, Vh = torch.linalg.svd(h, full_matrices=True)
    if float(S[0]) == 0.0:
        return None
    best = None
    for r in range(d - 1, 0, -1):
        if float(S[r]) > 0.1 * float(S[0]):
            continue
        m, k = D - r, d - r
        if d * d * m * k > _COMPLETION_MAX_ENTRIES:
            continue
        z0 = U[:, :r] @ Vh[:r]
        a, v0, u0 = w.mT @ U[:, r:], Vh[r:].mT, U[:, r:]  # (d, m), (d, k), (D, m)
        t = torch.einsum("ai,bj->abij", a, v0)  # C -> A C V0^T, entry (a, b) per entry (i, j) of C
        t = ((t + t.transpose(0, 1)) / 2).reshape(d * d, m * k)
        rhs = -sym(w.mT @ z0).reshape(d * d, 1)
        c = torch.linalg.lstsq(t, rhs, driver="gelsd" if t.device.type == "cpu" else None).solution.reshape(m, k)
        if float(torch.linalg.matrix_norm(c, ord=2)) > 1 + 1e-6:
            continue
        z = z0 + u0 @ c @ v0.mT
        err = float(torch.linalg.vector_norm(w.mT @ z + z.mT @ w)) / float(torch.linalg.vector_norm(z))
        if best is None or err < best[1]:
            best = (z, err)
    return best
