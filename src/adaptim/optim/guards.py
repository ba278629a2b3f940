"""The gradient checks every adaptim optimizer makes before a step, so that a refused step changes nothing.

:class:`GradientChecks` is a mixin of :class:`adaptim.AdaptimOptimizer`: before any group changes, every gradient
of every group must be dense and finite; where the statistics square it (``squares_gradients``), the squares --
and their sums with the statistics kept so far -- must not overflow the statistics' dtype; and where the step
divides by sqrt(v) with nothing added (``_needs_exact_squares``: eps = 0, Adam-atan2), no nonzero gradient may
square to 0. One reduction per gradient and one host sync per step.

DTensor parameters (FSDP2's ``fully_shard``): each rank checks its own shards (a sum of squares over the whole
tensor, where the statistics need one, is summed across the shards: one all-reduce per group), and the
flags are AND-ed across ranks by one all-reduce per step, so every rank raises, or none does, and no rank is
left waiting in a collective. Mixing flags of different DTensor placements (``Replicate to Partial`` errors) is
avoided by computing every flag on plain local tensors.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["GradientChecks", "state_dtype"]


def state_dtype(p: torch.Tensor) -> torch.dtype:
    """The dtype statistics are kept in for parameter ``p``: float64 for float64, float32 otherwise."""
    return torch.float64 if p.dtype == torch.float64 else torch.float32


_DTENSOR = None


def _dt():
    """:mod:`adaptim.distributed.dtensor`, imported when first used: adaptim.distributed sits above adaptim.optim."""
    global _DTENSOR
    if _DTENSOR is None:
        from adaptim.distributed import dtensor

        _DTENSOR = dtensor
    return _DTENSOR


def _underflows(g: torch.Tensor) -> torch.Tensor:
    """0-dim bool: some nonzero entry of ``g`` squares to exactly 0 in ``g``'s dtype."""
    return ((g * g == 0) & (g != 0)).any()


class GradientChecks:
    """Mixin: :meth:`_check_finite_grads` and the per-class hooks it reads (see the module doc)."""

    #: True: raise RuntimeError before a step whose gradients hold NaN or infinity (nothing is changed then); on
    #: the fused path the kernel checks every entry instead, leaves the bad ones unchanged and the step raises
    #: after it. "eager": the check before the step on every path. False: no check.
    check_finite: bool | str = True
    #: the statistics square the gradient (g^2, G G^T): then a finite gradient whose square overflows the
    #: statistics' dtype (|g| ~ 1e19 in float32), or would once added to the accumulated sums, is refused as well,
    #: instead of giving inf statistics or NaN
    squares_gradients: bool = False
    #: the squared gradients enter the statistics entry by entry (Adam's v, AdaGrad's sum): the overflow check
    #: bounds them by the largest squared entry; otherwise (Gram matrices, row sums) by the squared norm
    statistics_elementwise: bool = False

    def _check_finite_grads(self, fused: list[bool] | None = None) -> None:
        """Raise ``RuntimeError`` if any gradient of any group is sparse, has NaN or infinite entries, or (in a
        group whose statistics square it, see :attr:`squares_gradients`) would make those statistics overflow,
        or (in a group whose step depends on exact squares, see :meth:`_needs_exact_squares`) has nonzero entries
        whose squares underflow to 0.

        Called before any group is updated and before any state is created, so a refused step changes nothing.
        One reduction per gradient (``torch.aminmax``; a norm where the statistics sum squares) and one host
        sync for the whole step.

        ``fused[gi]`` true: group ``gi`` takes the fused path, whose kernel checks every entry itself (no extra
        pass); only its gradients that the kernel does not take are checked here, unless ``check_finite`` is
        ``"eager"`` (then all are).
        """
        where, flags = [], []
        eager = self.check_finite == "eager"
        for gi, group in enumerate(self.param_groups):
            in_kernel = bool(fused and fused[gi]) and not eager
            with_grad = []
            for pi, p in enumerate(group["params"]):
                if p.grad is None or p.numel() == 0:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(
                        f"{type(self).__name__} does not support sparse gradients (parameter {pi} "
                        f"of group {gi}); the step was not taken"
                    )
                # a DTensor's kernel sees one shard: the ranks must agree before the step, so it is checked here
                if in_kernel and not _dt().is_dtensor(p.grad) and self._fusable(self._real(p), self._real(p.grad)):
                    continue
                if self.check_finite:
                    where.append((gi, pi, p))
                    with_grad.append(p)
            if not with_grad:
                continue
            squares = self._squares_gradients(group)
            if squares and not self.statistics_elementwise:  # sums of squares: a norm bounds every statistic
                group_flags = [b.isfinite() for b in self._square_bounds(group, with_grad)]
            else:
                group_flags = self._entry_flags(group, with_grad, squares)
            if self._needs_exact_squares(group):
                group_flags = [f & ~self._underflow_flag(p) for f, p in zip(group_flags, with_grad)]
            flags.extend(group_flags)
        if not flags:
            return
        finite = torch.stack([f.to(flags[0].device) for f in flags])
        # DTensor gradients: each rank checked its shards; the same answer on every rank
        finite = _dt().all_reduce_flags(finite, [p.grad for _, _, p in where])
        if not bool(finite.all()):
            gi, pi, p = where[int((~finite).nonzero()[0, 0])]
            self._raise_bad_gradient(gi, pi, p)

    def _entry_flags(self, group: dict[str, Any], params: list[torch.Tensor], squares: bool) -> list[torch.Tensor]:
        """One 0-dim bool per parameter: its gradient is finite and, when ``squares`` (elementwise statistics such
        as Adam's v), (max |g| + l2 max |w|)^2 plus the largest accumulated entry is finite in the statistics'
        dtype: a bound on every entry the statistics reach this step."""
        l2 = self._l2_coefficient(group) if squares else 0.0
        out = []
        for p in params:
            g = _dt().local(self._real(p.grad))  # a DTensor's shard: this bound covers every entry this rank holds
            lo, hi = torch.aminmax(g)  # NaN propagates; one pass, far cheaper than isfinite().all()
            if not squares:
                out.append(lo.isfinite() & hi.isfinite())
                continue
            dtype = self._statistics_dtype(g)
            m = torch.maximum(hi, -lo).to(dtype)
            if l2 != 0:
                wlo, whi = torch.aminmax(_dt().local(self._real(p)))
                m = m + l2 * torch.maximum(whi, -wlo).to(device=m.device, dtype=dtype)
            bound = m * m
            state = self.state.get(p)
            for acc in self._accumulated(group, state) if state else []:
                bound = bound + _dt().local(acc).abs().amax().to(device=bound.device, dtype=dtype)
            out.append(bound.isfinite())
        return out

    def _needs_exact_squares(self, group: dict[str, Any]) -> bool:
        """Whether the step divides by sqrt of the squared gradients with nothing added (eps = 0, Adam-atan2): then
        a nonzero gradient whose square underflows to 0 (|g| below about 1e-19 in float32) would give a wrong
        step (0/0 read as 0, or atan2(m, 0) = pi/2), so such a step is refused. False by default."""
        return False

    def _underflow_flag(self, p: torch.Tensor) -> torch.Tensor:
        g = _dt().local(self._real(p.grad))
        return _underflows(g.to(self._statistics_dtype(g)))  # squares are formed in the statistics' dtype

    def _raise_bad_gradient(self, gi: int, pi: int, p: torch.Tensor) -> None:
        g = self._real(p.grad)
        if _dt().is_dtensor(g):  # every rank raises here together: the same whole gradient, the same message
            g = g.full_tensor()
        dtype = self._statistics_dtype(g)
        if not bool(g.isfinite().all()):
            what = "has NaN or infinite entries"
        elif self._needs_exact_squares(self.param_groups[gi]) and bool(_underflows(g.to(dtype))):
            gs = g.to(dtype)
            tiny = float(gs[(gs != 0) & (gs * gs == 0)].abs().max())
            what = (
                f"has nonzero entries as small as {tiny:.3g} whose squares underflow to 0 in {dtype}; with eps = 0 "
                "(or Adam-atan2, which has none) the step would divide 0 by 0 there and be wrong. Use eps > 0, "
                "float64 parameters, or scale the loss up"
            )
        elif self._squares_gradients(self.param_groups[gi]):
            what = (
                f"has entries up to {float(g.abs().max()):.3g}, whose squares overflow {dtype} in this "
                "optimizer's statistics (added to the statistics accumulated so far, with any L2 term "
                "weight_decay * w)"
            )
        else:
            what = "cannot be stepped"
        raise RuntimeError(
            f"{type(self).__name__}: the gradient of parameter {pi} of group {gi} (shape {tuple(p.shape)}) "
            f"{what}; the step was not taken and nothing was changed. Fix the loss, clip or unscale the "
            "gradients first, or set check_finite = False on the optimizer to skip this check"
        )

    def _squares_gradients(self, group: dict[str, Any]) -> bool:
        """Whether ``group``'s statistics square the gradient (see :attr:`squares_gradients`)."""
        return self.squares_gradients

    @staticmethod
    def _squared_norm(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """||x||^2 in ``dtype``, squared explicitly: ``vector_norm`` of a single entry is |x|, never squared. For a
        sharded DTensor, the local squares summed over the shards (one all-reduce), as a plain tensor."""
        if _dt().is_dtensor(x):
            n = torch.linalg.vector_norm(_dt().local(x), dtype=dtype)
            return _dt().sum_over_shards(n * n, x)
        n = torch.linalg.vector_norm(x, dtype=dtype)
        return n * n

    def _statistics_dtype(self, g: torch.Tensor) -> torch.dtype:
        """The dtype the statistics of a parameter with gradient ``g`` are kept in."""
        return state_dtype(g)

    def _l2_coefficient(self, group: dict[str, Any]) -> float:
        """The L2 coefficient added to the gradient before it is squared (``g + l2 w``); 0 by default."""
        return 0.0

    def _accumulated(self, group: dict[str, Any], state: dict[str, Any]) -> list[torch.Tensor]:
        """The state tensors that sum squared gradients without bound (AdaGrad's sums): the check adds their
        largest entry to the new square. EMA statistics stay below their largest input and need none."""
        return []

    def _whole_squared_norms(self, params: list[torch.Tensor], with_params: bool) -> list[torch.Tensor] | None:
        """For DTensor gradients: ||g||^2 of each whole gradient (then ||w||^2 of each parameter when
        ``with_params``), in the statistics' dtype, the shards' sums of squares summed across ranks by one
        all-reduce for all of them; ``None`` when no gradient is a DTensor (nothing is computed then)."""
        grads = [self._real(p.grad) for p in params]
        if not any(_dt().is_dtensor(g) for g in grads):
            return None
        tensors = grads + ([self._real(p) for p in params] if with_params else [])
        local_sq = []
        for t, g in zip(tensors, grads + grads):
            n = torch.linalg.vector_norm(_dt().local(t), dtype=self._statistics_dtype(g))
            local_sq.append(n * n)
        return _dt().sum_over_shards_many(local_sq, tensors)

    def _square_bounds(self, group: dict[str, Any], params: list[torch.Tensor]) -> list[torch.Tensor]:
        """For each of ``params`` (with gradients) a 0-dim bound on every entry its statistics can reach this
        step: (||g|| + l2 ||w||)^2 (it bounds g'^2 and every Gram entry of g' = g + l2 w) plus the largest
        accumulated entry, in the statistics' dtype; inf or NaN when they could overflow."""
        l2 = self._l2_coefficient(group)
        out = []
        whole = self._whole_squared_norms(params, l2 != 0)
        for i, p in enumerate(params):
            g = self._real(p.grad)
            dtype = self._statistics_dtype(g)
            if whole is not None and _dt().is_dtensor(g):  # the norm of the whole gradient
                n = whole[i].sqrt()
                if l2 != 0:
                    n = n + l2 * whole[len(params) + i].sqrt().to(n.device)
            else:
                n = torch.linalg.vector_norm(g, dtype=dtype)
                if l2 != 0:
                    n = n + l2 * torch.linalg.vector_norm(self._real(p), dtype=dtype).to(n.device)
            bound = n * n
            state = self.state.get(p)
            # a sharded accumulator's local maximum: the all-reduce of the flags takes the largest over ranks
            for acc in self._accumulated(group, state) if state else []:
                bound = bound + _dt().local(acc).abs().amax().to(device=bound.device, dtype=dtype)
            out.append(bound)
        return out
