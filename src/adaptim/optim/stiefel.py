"""SGD on the Stiefel manifold: the projected step (77) and manifold Muon (78)-(79) (Section 8.2, Lemma S.22)."""

from __future__ import annotations

from typing import Any

import torch

from adaptim.manifolds.stiefel import Stiefel, manifold_muon_direction
from adaptim.optim.base import AdaptimOptimizer
from adaptim.validation import check_choice, check_int, check_range

__all__ = ["StiefelSGD"]

_METHODS = ("project", "manifold_muon")
_ORTHOGONALIZE = ("svd", "newton_schulz")


class StiefelSGD(AdaptimOptimizer):
    r"""Gradient descent that keeps each D x d parameter (D >= d) on the Stiefel manifold W^T W = I_d (8.2).

    With the (momentum) gradient G_t and eta_t = lr, the last stage (:meth:`_final_step`) is the method's:

    * ``method="project"``: W_{t+1} = Orth(W_t - eta_t G_t), the retraction (77) of the plain gradient step.
    * ``method="manifold_muon"`` (Bernstein, 2025, "Modular manifolds"): Delta_t = eta_t Z_t, the maximizer of
      <Delta, G_t> over tangent Delta (Delta^T W_t + W_t^T Delta = 0) with spectral norm ||Delta||_2 <= eta_t (78),
      computed through the dual (79) of Lemma S.22 by subgradient descent on ||G_t + W_t(Lambda + Lambda^T)||_nuc
      over Lambda in R^{d x d}, stopped when the candidate Z = Orth(G_t + W_t(Lambda + Lambda^T)) is tangent to
      within ``tol`` (relative, :meth:`adaptim.manifolds.Stiefel.tangent_error`) or after ``dual_steps`` updates;
      the kept Z is then projected onto the tangent space and rescaled to spectral norm 1, so every step is
      exactly tangent with ||Delta_t||_2 = eta_t (the dual's accuracy only affects how close to the maximum of
      (78) it is). Then W_{t+1} = Orth(W_t - Delta_t). Details:
      :func:`adaptim.manifolds.stiefel.manifold_muon_direction`.

    Orth(M) = U V^T is computed by SVD (``orthogonalize="svd"``, exact) or by ``ns_steps`` quintic Newton-Schulz
    steps ((147), Appendix Q.3.1; :class:`adaptim.manifolds.Stiefel` states its accuracy), for the retraction and
    for the dual iteration's candidates alike. A step whose move is zero (a zero gradient, lr = 0, or a gradient
    with no tangent component under "manifold_muon") leaves W exactly unchanged (no retraction of W itself, which
    would change it by rounding).

    Momentum (``momentum = mu > 0``): the heavy ball of the gradient, B_t = mu B_{t-1} + G_t (B_0 = 0, as
    ``torch.optim.SGD``), replaces G_t above; after each step the buffer is projected onto the tangent space at
    W_{t+1} (P(B) = B - W sym(W^T B), the projection as vector transport, as geoopt's ``RiemannianSGD`` does), so
    the old directions it carries are tangent where they are used next.

    Parameters: real D x d matrices with D >= d (a wide matrix: optimize its transpose). A parameter not on the
    manifold when it is given to the optimizer (||W^T W - I||_F / sqrt(d) above 100 eps of its dtype) is
    orthonormalized **in place** at construction (or by ``add_param_group``): W <- U V^T of its SVD, the nearest
    point of the manifold (for a rank-deficient W, one of them). float16/bfloat16 parameters are updated through a
    float32 copy, so they stay orthonormal only to their own precision.

    Args:
        params: tensors or param groups, each a D x d matrix with D >= d.
        lr: eta >= 0: the step before the retraction (parameter units; "manifold_muon": its spectral norm).
        method: "project" or "manifold_muon".
        momentum: mu in [0, 1).
        orthogonalize: "svd" or "newton_schulz".
        ns_steps: Newton-Schulz steps (an int >= 1); ignored by "svd".
        dual_steps: the most dual updates per manifold-Muon step (an int >= 0).
        dual_lr: the first dual step relative to ||G||_F / sqrt(d), > 0 (halved whenever the tangency error grows, else
            lengthened by 10%).
        tol: the relative tangency error that stops the dual iteration, >= 0.
        maximize: ascend instead of descend.

    Raises:
        ValueError: a hyperparameter out of range or an unknown name; a parameter that is not a matrix or has
            D < d (the message says to optimize its transpose).
        TypeError: complex or sparse parameters.
        RuntimeError: a NaN or infinite gradient (before anything changes).
    """

    supports_complex = False

    def __init__(
        self,
        params,
        lr: float = 0.01,
        method: str = "project",
        momentum: float = 0.0,
        orthogonalize: str = "svd",
        ns_steps: int = 12,
        dual_steps: int = 100,
        dual_lr: float = 0.3,
        tol: float = 1e-4,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            method=method,
            momentum=momentum,
            orthogonalize=orthogonalize,
            ns_steps=ns_steps,
            dual_steps=dual_steps,
            dual_lr=dual_lr,
            tol=tol,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    @staticmethod
    def manifold(group: dict[str, Any]) -> Stiefel:
        """The :class:`~adaptim.manifolds.Stiefel` of ``group``'s settings (its retraction and projections)."""
        return Stiefel(group["orthogonalize"], group["ns_steps"])

    def _check_param(self, p: torch.Tensor) -> None:
        super()._check_param(p)
        Stiefel().check_point(p, f"{type(self).__name__} parameter")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (as ``torch.optim``), then orthonormalize in place each of its parameters off the manifold."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        manifold = Stiefel()
        with torch.no_grad():
            for p in group["params"]:
                if p.numel() == 0:
                    continue
                if manifold.distance_to_manifold(p) > 100 * torch.finfo(p.dtype).eps:
                    p.copy_(manifold.project_point(p))

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_choice("method", group["method"], _METHODS)
        check_range("momentum", group["momentum"], 0.0, 1.0, high_open=True)
        check_choice("orthogonalize", group["orthogonalize"], _ORTHOGONALIZE)
        check_int("ns_steps", group["ns_steps"], 1)
        check_int("dual_steps", group["dual_steps"], 0)
        check_range("dual_lr", group["dual_lr"], 0.0, low_open=True)
        check_range("tol", group["tol"], 0.0)

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        if group["momentum"] == 0:
            return {}
        return {"momentum_buffer": torch.zeros_like(p)}

    def _update_group(self, group, params, grads, states) -> None:
        mu = group["momentum"]
        if mu == 0:
            self._final_step(group, params, grads, group["lr"])
            return
        bufs = [s["momentum_buffer"] for s in states]
        for b, g in zip(bufs, grads):
            b.mul_(mu).add_(g)
        self._final_step(group, params, bufs, group["lr"])
        manifold = self.manifold(group)
        for w, b in zip(params, bufs):  # transport: the buffer made tangent at W_{t+1}
            b.copy_(manifold.project_tangent(w, b))

    def _final_step(
        self,
        group: dict[str, Any],
        params: list[torch.Tensor],
        directions: list[torch.Tensor],
        lr: float,
        decay: float = 0.0,
    ) -> None:
        """W <- Orth(W - lr G) ("project", (77)) or W <- Orth(W - lr Z) with Z of (78)-(79) ("manifold_muon")."""
        manifold = self.manifold(group)
        for w, g in zip(params, directions):
            if group["method"] == "project":
                delta = lr * g
            else:
                step = manifold_muon_direction(
                    manifold, w, g, dual_steps=group["dual_steps"], dual_lr=group["dual_lr"], tol=group["tol"]
                )
                delta = lr * step.direction
            if not bool(delta.any()):  # nothing moves: keep W bitwise (a retraction would round it)
                continue
            w.copy_(manifold.retract(w - delta))
