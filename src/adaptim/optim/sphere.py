"""SGD on the sphere: pin-to-sphere (70), the classical update (72) and the trust region (73) of Section 8.1."""

from __future__ import annotations

from typing import Any

import torch

from adaptim.manifolds.sphere import METHODS, NORMS, Sphere, sphere_steps
from adaptim.optim.base import AdaptimOptimizer
from adaptim.validation import check_choice, check_range

__all__ = ["SphereSGD"]


class SphereSGD(AdaptimOptimizer):
    r"""SGD that keeps each parameter (or each slice of it along ``dim``) on a sphere ||w||_2 = r (Section 8.1).

    The last stage of the step (:meth:`_final_step`) is the chosen formulation, with gradient g and lr eta:

    * ``method="pin"``: pin-to-sphere (70), w <- r (w - eta g) / ||w - eta g||, which is w - eta g_perp + O(eta^2)
      with g_perp = (I - w w^T / r^2) g of (71) (Lemma S.19);
    * ``method="tangent"``: the classical update (72), w <- r (w - eta g_perp) / sqrt(r^2 + eta^2 ||g_perp||^2);
    * ``method="trust_region"``: (73), Delta = argmax <Delta, g> over ||Delta|| <= eta, <Delta, w> = 0, then
      w <- r (w - Delta) / ||w - Delta||. ``norm="l2"`` gives Delta = eta g_perp / ||g_perp||; "l1" and "linf"
      are solved exactly through the dual problem of Lemma S.21 (a weighted median for "linf", Dinkelbach's
      iteration over pairs of entries for "l1"; see :func:`adaptim.manifolds.sphere.trust_region_direction`), so
      the tangent step has length exactly eta in the chosen norm (Bernstein's manifold Muon, 2025, is the Stiefel
      analogue; the sphere case follows the notes).

    Every method ends with the retraction by renormalization to r, computed from the moved point's own norm (for
    (72) equal to its closed form when ||w|| = r), so ||w|| stays at r to rounding over any number of steps.

    The radius: ``radius=r`` puts every parameter (slice) on the sphere of radius r; a parameter not on it is
    projected onto it (w <- r w / ||w||) at its first step, before the update. ``radius=None`` (default) keeps each
    parameter (slice) at its norm at its first step, recorded in the state entry ``radius`` (so a checkpoint
    resumes with the same radii).

    Momentum (``momentum = mu > 0``): a heavy-ball buffer replaces g in the rule, and after each step the buffer is
    projected onto the tangent space at the new point, so that it stays tangent as w moves:
    m_t = mu P_t m_{t-1} + g_t with P_t = I - w_t w_t^T / r^2 (the tangent methods thus see mu P_t m_{t-1} +
    g_perp). The projection of step t-1's buffer is taken at the start of step t (the same numbers; the state entry
    ``momentum_buffer`` holds m_{t-1} as the last step left it).

    A zero gradient (or buffer), or one with no tangent component (g parallel to w, to rounding: ||g_perp|| at most
    4 sqrt(n) eps ||g||), leaves the point unchanged, never NaN; pin-to-sphere (70) would map an exactly radial g
    to w or -w, or to 0/0.

    Args:
        params: tensors or param groups; real float16/bfloat16/float32/float64 (float16/bfloat16 through a float32
            copy; its rounding back moves the norm by about the dtype's precision). Complex is refused. No entry
            and no slice may be all zeros (``ValueError``).
        lr: eta >= 0; the tangent step length in the trust region (parameter units), the gradient step size in
            the others. Default 0.1.
        radius: r > 0 or ``None`` (each parameter's initial norm).
        method: "pin", "tangent" or "trust_region" (default: its lr is the length of the step, whatever the
            gradient's scale, which is the point of (73)).
        norm: the trust region's norm, "l2", "l1" or "linf"; the other methods take "l2" only.
        momentum: mu in [0, 1).
        dim: ``None`` (the whole parameter is one vector) or an int: each slice along ``dim`` is its own sphere
            (``dim=1`` or ``-1`` for the rows of a (D, d) weight). Every parameter of the group must have that
            dimension (a 0-dim tensor has 0 and -1).
        maximize: ascend instead of descend.

    Raises:
        ValueError: an unknown ``method`` or ``norm``, a norm other than "l2" outside the trust region, ``radius``
            <= 0 or not finite, ``momentum`` outside [0, 1), a ``dim`` a parameter lacks, a zero parameter or
            slice.
        TypeError: complex or sparse parameters.
        RuntimeError: a NaN or infinite gradient (nothing changes).
    """

    supports_complex = False

    def __init__(
        self,
        params,
        lr: float = 0.1,
        radius: float | None = None,
        method: str = "trust_region",
        norm: str = "l2",
        momentum: float = 0.0,
        dim: int | None = None,
        maximize: bool = False,
    ) -> None:
        defaults = dict(lr=lr, radius=radius, method=method, norm=norm, momentum=momentum, dim=dim, maximize=maximize)
        super().__init__(params, defaults)

    @staticmethod
    def _sphere(group: dict[str, Any]) -> Sphere:
        return Sphere(radius=group["radius"], dim=group["dim"])

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_choice("method", group["method"], METHODS)
        check_choice("norm", group["norm"], NORMS)
        if group["norm"] != "l2" and group["method"] != "trust_region":
            raise ValueError(
                f"norm={group['norm']!r} needs method='trust_region' (73); method={group['method']!r} is the "
                "Euclidean (l2) update of (70) or (72)"
            )
        check_range("momentum", group["momentum"], 0.0, 1.0, high_open=True)
        sphere = self._sphere(group)  # radius and dim
        for i, p in enumerate(group["params"]):
            p = p[1] if isinstance(p, tuple) else p
            if isinstance(p, torch.Tensor) and p.numel() > 0:
                sphere.check_point(p.detach(), f"parameter {i} of the group")

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.new_step()}
        if group["radius"] is None:
            state["radius"] = self._sphere(group).norms(p).to(p.dtype)
        if group["momentum"] != 0:
            state["momentum_buffer"] = torch.zeros_like(p)
        return state

    def _update_group(self, group, params, grads, states) -> None:
        sphere = self._sphere(group)
        steps = self.step_counts(states)
        mu = group["momentum"]
        directions = []
        radii = {}
        for w, g, s, t in zip(params, grads, states, steps):
            if t == 1 and group["radius"] is not None:  # the first step: onto the sphere
                w.copy_(sphere.project_point(w))
            radii[id(w)] = s["radius"] if group["radius"] is None else sphere.radius_of(w)
            if mu != 0:  # the buffer, tangent at the previous point, moved to the tangent space at this one
                buf = s["momentum_buffer"]
                buf.copy_(sphere.project_tangent(w, buf)).mul_(mu).add_(g)
                g = buf
            directions.append(g)
        # the seam keeps its signature: the radii of this step reach _final_step through the instance
        self.__dict__["_step_radii"] = radii
        try:
            self._final_step(group, params, directions, group["lr"])
        finally:
            self.__dict__.pop("_step_radii", None)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """:meth:`AdaptimOptimizer.load_state_dict`, refusing besides a saved ``radius`` that is not the norm of the
        parameter it is loaded onto (beyond 16 units of the parameter dtype's precision): the state was saved for
        another parameter (two parameters of one shape swapped, say) or the parameter changed since, and the next
        step would move it to another sphere. The check runs after the pre-hooks, before anything is loaded."""
        handle = self.register_load_state_dict_pre_hook(self._check_saved_radii)  # the last pre-hook
        try:
            super().load_state_dict(state_dict)
        finally:
            handle.remove()

    @staticmethod
    def _check_saved_radii(opt: SphereSGD, state_dict: dict[str, Any]) -> None:
        groups, saved_groups = opt.param_groups, state_dict.get("param_groups", [])
        if len(groups) != len(saved_groups):
            return  # the base class says what is wrong
        position = 0
        for gi, (group, saved) in enumerate(zip(groups, saved_groups)):
            dim = saved.get("dim", group["dim"])
            for p, pid in zip(group["params"], saved.get("params", [])):
                r = state_dict["state"].get(pid, {}).get("radius")
                norms = Sphere(dim=dim).norms(p.detach()) if isinstance(r, torch.Tensor) else None
                if norms is not None and r.shape == norms.shape:
                    tol = 16 * torch.finfo(p.dtype).eps
                    if not torch.allclose(r.to(norms.dtype), norms, rtol=tol, atol=0.0):
                        raise ValueError(
                            f"parameter {position} (group {gi}, shape {tuple(p.shape)}): its saved radius "
                            f"{r.flatten()[:4].tolist()} is not its norm {norms.flatten()[:4].tolist()}: the state "
                            "dict was saved for other parameters, another parameter order, or before the parameter "
                            "was changed"
                        )
                position += 1

    def _final_step(
        self,
        group: dict[str, Any],
        params: list[torch.Tensor],
        directions: list[torch.Tensor],
        lr: float,
        decay: float = 0.0,
    ) -> None:
        """The step of ``group["method"]`` along each direction, then the retraction onto the sphere (in place).

        The radius of each parameter is the one :meth:`_update_group` recorded for this step (the group's
        ``radius``, or the parameter's initial norms); called on its own, the group's radius or, without one, each
        parameter's current norms. ``decay`` must be 0 (a sphere has no weight decay)."""
        if decay != 0:
            raise ValueError("SphereSGD has no weight decay: the retraction would undo it")
        sphere = self._sphere(group)
        radii = self.__dict__.get("_step_radii", {})
        for w, d in zip(params, directions):
            r = radii.get(id(w))
            r = sphere.radius_of(w) if r is None else r
            rows_r = sphere.rows(r.expand(sphere.norms(w).shape)) if r.dim() else r.reshape(1, 1)
            new = sphere_steps(sphere.rows(w), sphere.rows(d), lr, rows_r, group["method"], group["norm"])
            w.copy_(sphere.unrows(new, w))
