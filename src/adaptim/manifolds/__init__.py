"""Manifolds of Section 8: the sphere (8.1) and the Stiefel manifold (8.2), behind one interface."""

from adaptim.manifolds.base import Manifold
from adaptim.manifolds.sphere import Sphere
from adaptim.manifolds.stiefel import Stiefel

__all__ = ["Manifold", "Sphere", "Stiefel"]
