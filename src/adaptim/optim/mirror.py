"""Online mirror descent (notes (1)-(3)) and exponentiated gradient ((90)-(91)) as optimizers.

Both differ from gradient descent only in the last stage of a step: the direction is the gradient itself, and
the step is the mirror step of :mod:`adaptim.mirror` instead of w <- w - lr d. So each class overrides only
:meth:`~adaptim.optim.base.AdaptimOptimizer._final_step` (the seam) and never takes the fused path.
"""

from __future__ import annotations

from typing import Any

import torch

from adaptim.mirror import MIRROR_MAPS, Weighted, check_simplex, exponentiated_gradient
from adaptim.optim.base import AdaptimOptimizer
from adaptim.validation import check_choice

__all__ = ["MirrorDescent", "ExponentiatedGradient"]


def _check_dim(dim: Any) -> None:
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
        raise ValueError(f"dim must be None (one simplex over the whole tensor) or an int, got {dim!r}")


class _SimplexChecks:
    """Construction-time checks of simplex parameters, shared by both classes (a mixin of AdaptimOptimizer)."""

    def _simplex_dim(self, group: dict[str, Any]) -> tuple[bool, int | None]:
        """Whether ``group``'s parameters live on the simplex, and the ``dim`` of each simplex."""
        raise NotImplementedError

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self._check_simplex_params(len(self.param_groups) - 1, group)
        except ValueError:
            self.param_groups.pop()  # a refused group must not stay behind for step() to use
            raise

    def _check_simplex_params(self, gi: int, group: dict[str, Any]) -> None:
        on_simplex, dim = self._simplex_dim(group)
        if not on_simplex:
            return
        names = group.get("param_names")
        for i, p in enumerate(group["params"]):
            p = p[1] if isinstance(p, tuple) else p
            label = f"parameter {i} of param group {gi}" + (f" ({names[i]!r})" if names else "")
            nd = max(p.dim(), 1)
            if dim is not None and p.numel() and not -nd <= dim < nd:  # (an empty parameter is skipped)
                raise ValueError(f"dim={dim} is out of range for {label} of shape {tuple(p.shape)}")
            check_simplex(p, dim, label)


class ExponentiatedGradient(_SimplexChecks, AdaptimOptimizer):
    """Exponentiated gradient: mirror descent (1) with the negative entropy on the probability simplex (Lemma D.1).

    Each step is (91), the minimizer of (90)::

        w_{t+1,i} = w_{t,i} exp(-lr g_{t,i}) / sum_j w_{t,j} exp(-lr g_{t,j})

    computed in log space by :func:`adaptim.mirror.exponentiated_gradient` (subtract the max of log w - lr g
    before exponentiating): for any finite gradient of any size the weights stay finite and on the simplex, zeros
    of w stay zeros, and a zero gradient leaves w unchanged bitwise. Case C15: w = (1/3, 1/3, 1/3),
    g = (-800, 0, 800), lr = 1 gives (1, 0, 0) exactly (exponentiate then normalize gives NaN). The paper: Kivinen
    and Warmuth, "Exponentiated gradient versus gradient descent for linear predictors" (1997).

    Every parameter must be a point of the simplex at construction (and when added with ``add_param_group``):
    entries >= 0 summing to 1 within max(1e-6, n eps(dtype)) for its n entries
    (:func:`adaptim.mirror.simplex_tolerance`); by default one simplex over the whole tensor, with ``dim=k`` one
    simplex per slice along dimension k (``dim=-1``: each row of a matrix). A parameter with no entries is
    skipped. The state is empty (no per-parameter state). float16/bfloat16 parameters step through a float32 copy
    (their sums then stay within the tolerance of their dtype).

    Args:
        params: tensors or param groups; real (complex is refused), any shape.
        lr: eta >= 0, in inverse gradient units (exp(-lr g)); default 0.1.
        dim: ``None`` or the dimension along which each slice is a simplex.
        maximize: ascend (w_i exp(+lr g_i)) instead of descend.

    Raises:
        ValueError: a parameter not on the simplex (named by its index, group and name), ``dim`` not None or an
            int in range for every parameter, a negative lr.
        TypeError: complex or sparse parameters.
        RuntimeError: a NaN or infinite gradient (nothing changes).
    """

    supports_complex = False

    def __init__(self, params, lr: float = 0.1, dim: int | None = None, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, dim=dim, maximize=maximize))

    def _simplex_dim(self, group):
        return True, group["dim"]

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        _check_dim(group["dim"])

    def _update_group(self, group, params, grads, states) -> None:
        self._final_step(group, params, grads, group["lr"])

    def _final_step(self, group, params, directions, lr, decay=0.0) -> None:
        """The multiplicative last stage (91): w <- w exp(-lr d) / sum(...), in log space, each parameter."""
        for w, d in zip(params, directions):
            w.copy_(exponentiated_gradient(w, d, lr, group["dim"]))


class MirrorDescent(_SimplexChecks, AdaptimOptimizer):
    """Online mirror descent (1)-(3): w_{t+1} = argmin_{w in V} g_t^T w + (1 / lr) D_psi(w, w_t), as the step in
    mirrored coordinates w~ = grad psi*(grad psi(w_t) - lr g_t) (2) followed by the Bregman projection onto V (3).

    ``mirror_map`` chooses psi (:mod:`adaptim.mirror`):

    * ``"euclidean"``: psi = 1/2 ||w||^2, V = R^d: gradient descent w - lr g (bitwise ``adaptim.SGD`` and
      ``torch.optim.SGD`` without momentum);
    * ``"weighted"``: psi = 1/2 ||w||_A^2 (83), V = R^d: w - lr A^{-1} g, for a symmetric positive-definite
      d x d ``A`` and parameters of d entries (flattened row-major; A^{-1} g by a Cholesky solve in the wider of
      A's and the parameter's dtypes). Parameters of other sizes go in their own param group with their own A;
    * ``"entropy"``: psi = sum w log w (84), V = the probability simplex: exponentiated gradient (91), exactly
      :class:`ExponentiatedGradient` (same simplex checks at construction, same ``dim``).

    Keeps no per-parameter state. A, mirror_map and dim are group entries (a group may set its own).

    Args:
        params: tensors or param groups; real (complex is refused).
        lr: eta >= 0; default 1e-3 (``torch.optim.SGD``'s).
        mirror_map: "euclidean", "weighted" or "entropy".
        A: the d x d matrix of "weighted" (required there, refused otherwise).
        dim: for "entropy": ``None`` (one simplex per tensor) or the dimension of each simplex slice.
        maximize: ascend instead of descend.

    Raises:
        ValueError: an unknown mirror map (the names are listed), "weighted" without A or with an A that is not
            symmetric positive definite or whose size differs from a parameter's number of entries, A or dim for
            a map that does not use it, an "entropy" parameter not on the simplex, a negative lr.
        TypeError: complex or sparse parameters.
        RuntimeError: a NaN or infinite gradient (nothing changes).
    """

    supports_complex = False

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        mirror_map: str = "euclidean",
        A: torch.Tensor | None = None,
        dim: int | None = None,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, dict(lr=lr, mirror_map=mirror_map, A=A, dim=dim, maximize=maximize))

    def _simplex_dim(self, group):
        return group["mirror_map"] == "entropy", group["dim"]

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_choice("mirror_map", group["mirror_map"], MIRROR_MAPS)
        _check_dim(group["dim"])
        name, A = group["mirror_map"], group["A"]
        if name != "entropy" and group["dim"] is not None:
            raise ValueError(f"dim is used by mirror_map='entropy' only, got dim={group['dim']!r} for {name!r}")
        if name != "weighted":
            if A is not None:
                raise ValueError(f"A is used by mirror_map='weighted' only, got A for mirror_map={name!r}")
            return
        if A is None:
            raise ValueError(
                "mirror_map='weighted' needs A, a d x d symmetric positive-definite matrix (psi = 1/2 ||w||_A^2, (83))"
            )
        m = self._weighted(group)  # checks A
        for i, p in enumerate(group["params"]):
            p = p[1] if isinstance(p, tuple) else p
            if p.numel() not in (0, m.d):
                raise ValueError(
                    f"A is {m.d} x {m.d} but parameter {i} (shape {tuple(p.shape)}) has {p.numel()} entries; give "
                    "each parameter size its own param group with its own A"
                )

    def _weighted(self, group: dict[str, Any]) -> Weighted:
        """The group's :class:`~adaptim.mirror.Weighted` map (its Cholesky factor made once per A, kept until A is
        replaced or written in place)."""
        A = group["A"]
        cache = self.__dict__.setdefault("_weighted_maps", {})
        hit = cache.get(id(group))
        if hit is None or hit[0] is not A or hit[1] != A._version:  # (holding A: its id is not reused)
            hit = (A, A._version, Weighted(A))
            cache[id(group)] = hit
        return hit[2]

    def _update_group(self, group, params, grads, states) -> None:
        self._final_step(group, params, grads, group["lr"])

    def _final_step(self, group, params, directions, lr, decay=0.0) -> None:
        """The mirror step (2)-(3) of the group's map, in place."""
        name = group["mirror_map"]
        if name == "euclidean":  # (2) with grad psi = identity: the base class's w - lr d
            super()._final_step(group, params, directions, lr, decay)
        elif name == "weighted":
            m = self._weighted(group)
            for w, d in zip(params, directions):
                w.add_(m.solve(d), alpha=-lr)
        else:
            for w, d in zip(params, directions):
                w.copy_(exponentiated_gradient(w, d, lr, group["dim"]))
