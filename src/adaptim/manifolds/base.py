"""The interface every manifold of :mod:`adaptim.manifolds` implements (Section 8 of the notes).

An optimizer that keeps a weight on a manifold uses four operations: check that a point is on it, project an
ambient point onto it, project an ambient vector onto the tangent space at a point, and retract a point moved
along (or near) the tangent space back onto the manifold. Tensors are real float32/float64 and keep their shapes.
"""

from __future__ import annotations

import abc

import torch


class Manifold(abc.ABC):
    """A manifold embedded in a space of tensors of one shape (Section 8)."""

    @abc.abstractmethod
    def check_point(self, w: torch.Tensor, name: str = "parameter") -> None:
        """Raise ``ValueError`` naming ``name`` if ``w`` cannot live on this manifold (wrong shape, a zero
        vector); a point merely off the manifold is not an error (see :meth:`project_point`)."""

    @abc.abstractmethod
    def project_point(self, x: torch.Tensor) -> torch.Tensor:
        """The point of the manifold nearest ``x`` (a new tensor, ``x``'s shape and dtype)."""

    @abc.abstractmethod
    def project_tangent(self, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The orthogonal projection of the ambient vector ``v`` onto the tangent space at the point ``w``."""

    @abc.abstractmethod
    def retract(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` (a point moved from the manifold by a step) back onto the manifold."""

    def retract_from(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """:meth:`retract` of ``x``, the point ``w`` moved by a step (a manifold whose size is each point's own, as
        ``Sphere(radius=None)``, reads it from ``w``)."""
        return self.retract(x)

    @abc.abstractmethod
    def is_tangent(self, w: torch.Tensor, v: torch.Tensor, tol: float) -> bool:
        """Whether ``v`` is tangent at ``w`` to within ``tol`` (relative to ``v``'s size)."""

    def distance_to_manifold(self, w: torch.Tensor) -> float:
        """How far ``w`` is from the manifold, relative (for tests and checks): ``||w - project_point(w)|| /
        ||project_point(w)||``."""
        p = self.project_point(w)
        return float(torch.linalg.vector_norm(w - p) / torch.linalg.vector_norm(p))
