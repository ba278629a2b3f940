from adaptim.manifolds.base import Manifold
from adaptim.manifolds.stiefel import Stiefel

__all__ = ["Manifold", "Stiefel"]
