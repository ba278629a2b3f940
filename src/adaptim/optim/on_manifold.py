"""Any rule's direction kept on a manifold: the ``manifold`` entry of a param group (Section 8, beyond the notes).

Section 8 keeps a weight on the sphere or the Stiefel manifold with plain gradient steps; the same last stage works
for the direction of any adaptim optimizer (Adam's, as geoopt's ``RiemannianAdam`` does; Muon's, as dion's
``MuonSphere`` does). A param group with ``"manifold": M`` (an :class:`adaptim.manifolds.Manifold`, e.g.
``Sphere(dim=1)`` or ``Stiefel()``) changes three things in that group's step and nothing else:

1. the rule sees the Riemannian gradient P_w(g), g projected onto the tangent space at w (the embedded metric), so
   its moments accumulate tangent vectors;
2. the last stage is w <- R(w - eta_t P_w(d_t)) -- the direction projected onto the tangent space, then retracted
   onto the manifold (for the sphere with the classical step: (72) without its closed-form normalization);
3. after the step, the first moments of :attr:`OnManifold.tangent_state` are projected onto the tangent space at
   the new point (vector transport by projection), so the next step starts from a tangent momentum.

Parameters off the manifold by more than 64 ulps (relative) when the group is added are projected onto it then
(in place); one on it to rounding, as a resumed run's, is left bit for bit. Weight decay is
refused in such a group: the retraction would undo a pure shrinking of w and leave only a larger relative step.
"""

from __future__ import annotations

from typing import Any

import torch

from adaptim.manifolds.base import Manifold


class OnManifold:
    """Mixin of :class:`adaptim.AdaptimOptimizer`: the ``manifold`` entry of a param group (see the module doc)."""

    #: state entries that are tangent vectors (first moments, momentum buffers): transported by projection
    tangent_state: tuple[str, ...] = ("exp_avg", "momentum_buffer")

    @staticmethod
    def group_manifold(group: dict[str, Any]) -> Manifold | None:
        """The manifold of ``group`` (its ``"manifold"`` entry), or None."""
        return group.get("manifold")

    def _check_manifold(self, group: dict[str, Any]) -> None:
        """Raise ``ValueError`` if the group's ``manifold`` entry is not a Manifold, cannot hold its parameters, or
        comes with weight decay; or ``TypeError`` if this optimizer ends its step its own way (a retraction or
        mirror step of its own)."""
        m = group.get("manifold")
        if m is None:
            return
        if not isinstance(m, Manifold):
            raise ValueError(
                f"manifold: expected an adaptim.manifolds.Manifold (such as Sphere() or Stiefel()) or None, got "
                f"{type(m).__name__}"
            )
        if self._overrides_final_step():
            raise TypeError(
                f"{type(self).__name__} ends its step on its own geometry; a param group's 'manifold' entry is for "
                "optimizers with the Euclidean last stage (SGD, Adam, AdamW, RMSProp, AdaGrad, Muon, ...)"
            )
        wd = group.get("weight_decay", 0.0)
        if isinstance(wd, (int, float)) and wd != 0:
            raise ValueError(
                f"weight_decay={wd!r} in a param group with a manifold: the retraction undoes a pure shrinking of "
                "the weights, so decay would only enlarge the relative step; set the group's weight_decay to 0"
            )
        for i, p in enumerate(group["params"]):
            m.check_point(p.detach(), name=f"parameter {i} of the group")

    def _overrides_final_step(self) -> bool:
        from adaptim.optim.base import AdaptimOptimizer

        return type(self)._final_step is not AdaptimOptimizer._final_step or "_final_step" in self.__dict__

    @torch.no_grad()
    def _onto_manifold(self, group: dict[str, Any]) -> None:
        """Project the group's parameters onto its manifold, in place (when the group is added)."""
        m = group.get("manifold")
        if m is None:
            return
        for p in group["params"]:
            # a point on the manifold to rounding (a resumed run's) is left bit for bit as it is
            if m.distance_to_manifold(p.detach()) > 64 * torch.finfo(p.dtype).eps:
                p.copy_(m.project_point(p.detach()))

    @staticmethod
    def _tangent_grads(m: Manifold, params: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """P_w(g) for each parameter: new tensors (the gradients in ``p.grad`` stay as they are)."""
        return [m.project_tangent(w, g) for w, g in zip(params, grads)]

    @staticmethod
    def _retract_step(m: Manifold, params: list[torch.Tensor], directions: list[torch.Tensor], lr: float) -> None:
        """w <- R(w - lr P_w(d)) for each parameter, in place."""
        for w, d in zip(params, directions):
            w.copy_(m.retract_from(w, w - lr * m.project_tangent(w, d)))

    def _transport_state(self, m: Manifold, params: list[torch.Tensor], states: list[dict[str, Any]]) -> None:
        """Project each tangent state entry onto the tangent space at the parameter's new point, in place."""
        for w, state in zip(params, states):
            for key in self.tangent_state:
                buf = state.get(key)
                if isinstance(buf, torch.Tensor) and buf.shape == w.shape:
                    buf.copy_(m.project_tangent(w, buf))
