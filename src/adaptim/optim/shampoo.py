"""Shampoo (53)-(54) with sums or a bias-corrected EMA (Section 5.1), and the IdealizedShampooIteration (6.2.1)."""

from __future__ import annotations

from typing import Any

import torch

from adaptim.functional.common import WeightDecay, add_l2
from adaptim.functional.shampoo import (
    idealized_shampoo_directions,
    init_shampoo_state,
    merge_factor_and_root,
    shampoo_directions,
)
from adaptim.optim.base import AdaptimOptimizer, state_dtype
from adaptim.validation import check_choice, check_int, check_range

__all__ = ["Shampoo", "IdealizedShampoo"]

GRAFTING_METHODS = (None, "adagrad", "adam")


def _preconditioner_cost(opt: AdaptimOptimizer, p: torch.Tensor, group: dict[str, Any]) -> float:
    """Sum of n^3 over the preconditioned sides of ``p``'s blocks (n for a diagonal one), read off the state
    layout on a shape-only tensor (nothing allocated)."""
    from adaptim.distributed.owner import preconditioner_cost

    return preconditioner_cost(opt._init_state(torch.empty(p.shape, device="meta"), group))


class _OwnerHeldState(AdaptimOptimizer):
    """On DTensor (FSDP2) parameters, the per-matrix state (statistics, roots, grafting sums: the entries named
    by ``_held``) kept whole, as plain tensors, by one owner rank per parameter; the rest of the state (``step``,
    ``momentum_buffer``) on every rank, DTensors sharded like the parameter. :mod:`adaptim.distributed.dtensor`
    hands these entries over as they are (``_owner_held``)."""

    _held: tuple[str, ...] = ()

    def _full_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _runs_on_shards(self, group: dict[str, Any]) -> bool:
        """On DTensor (FSDP2) parameters a group steps the local shards (:mod:`adaptim.distributed.dtensor`): each
        parameter's matrix state is kept whole by one owner rank, which gets the whole gradient and sends back
        each rank's chunk of the direction (two all-to-alls per group); the decay and momentum are elementwise,
        on the shards."""
        euclidean = type(self)._final_step is AdaptimOptimizer._final_step  # a retraction needs whole matrices
        return euclidean and group.get("manifold") is None

    def _owner_held(self, group: dict[str, Any], key: str) -> bool:
        """Whether state entry ``key`` is kept whole, on its parameter's owner rank only (DTensor parameters)."""
        return key.startswith(self._held)

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        from adaptim.distributed.dtensor import is_dtensor  # (a layer above optim)

        if not (is_dtensor(p) and self._runs_on_shards(group)) or self.__dict__.get("_loading"):
            return self._full_state(p, group)  # (loading: what a one-process checkpoint holds)
        # the statistics and grafting sums: made whole by the owner at its first step (_owned_state)
        state: dict[str, Any] = {"step": self.new_step()}
        if group.get("momentum", 0) != 0:
            state["momentum_buffer"] = torch.zeros_like(p)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # DTensor parameters: a one-process state dict, or one rank's own (whose statistics its owners kept:
        # the others are filled with fresh ones, which the step drops again on every rank that does not own them)
        state_dict = self._with_owner_placeholders(state_dict)
        self.__dict__["_loading"] = True
        try:
            super().load_state_dict(state_dict)
        finally:
            self.__dict__.pop("_loading", None)

    def _with_owner_placeholders(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        from adaptim.distributed.dtensor import is_dtensor  # (a layer above optim)

        saved = state_dict.get("state", {})
        params = [p for g in self.param_groups for p in g["params"]]
        groups = [g for g in self.param_groups for _ in g["params"]]
        ids = [i for sg in state_dict.get("param_groups", []) for i in sg["params"]]
        state = dict(saved)
        for pid, p, group in zip(ids, params, groups):
            st = saved.get(pid)
            if not st or not is_dtensor(p) or any(self._owner_held(group, k) for k in st):
                continue
            full = self._full_state(torch.empty(p.shape, dtype=state_dtype(p)), group)
            state[pid] = {**{k: v for k, v in full.items() if self._owner_held(group, k)}, **st}
        return {**state_dict, "state": state}

    def _owned_state(self, group, grads, states, like) -> tuple[list[int], list[int]]:
        """The owner rank of each of ``like`` (-1: computed on every rank) and the new step counts; drops the
        matrix state this rank does not own, makes (or takes over from a checkpoint) the state it owns."""
        from adaptim.distributed.dtensor import is_dtensor, local, owners, split_alike  # (a layer above optim)

        alike = split_alike(like, [g.dtype for g in grads])
        assign = self._owners(group, like, alike, owners)
        rank = next((p.device_mesh.get_local_rank() for p, a in zip(like, alike) if a), 0)
        steps = self.step_counts(states)
        for p, g, st, a, o in zip(like, grads, states, alike, assign):
            if a and o != rank:  # another rank keeps these (e.g. loaded from a one-process checkpoint)
                for k in [k for k in st if self._owner_held(group, k)]:
                    del st[k]
                continue
            for k, v in self._full_state(torch.empty(p.shape, dtype=g.dtype, device=g.device), group).items():
                if not self._owner_held(group, k):
                    continue
                if k not in st:
                    st[k] = v
                elif is_dtensor(st[k]):  # a replicated DTensor of a checkpoint: its whole value is local
                    if any(pl.is_shard() for pl in st[k].placements):
                        raise RuntimeError(
                            f"{type(self).__name__} on DTensor parameters keeps state entry {k!r} whole on one rank; "
                            "got it sharded: load a checkpoint with whole (or replicated) statistics"
                        )
                    st[k] = local(st[k])
        return assign, steps

    def _owners(self, group, like, alike, owners) -> list[int]:
        """The owner rank of each of ``like`` (-1 where not ``alike``): fixed by the group's sharded parameters
        (with or without a gradient this step), so that the state stays where it is."""
        from adaptim.distributed.dtensor import split_alike  # (a layer above optim)

        with_grad = [p for p in group["params"] if p.grad is not None and p.numel() > 0]  # as _gather
        every = [p for p in group["params"] if p.numel() > 0]
        shard = split_alike(every, [like[0].dtype] * len(every))
        pos = {id(p): k for k, p in enumerate(every)}
        if len(with_grad) != len(like) or sum(alike) != sum(shard[pos[id(p)]] for p in with_grad):
            raise RuntimeError(
                f"{type(self).__name__} on DTensor parameters keeps each sharded parameter's statistics on one "
                "owner rank, and needs every sharded parameter of a group on one 1-D mesh, in one dtype"
            )
        sharded = [p for p, a in zip(every, shard) if a]
        world = sharded[0].device_mesh.size() if sharded else 1
        costs = [_preconditioner_cost(self, p, group) for p in sharded]
        rank_of = {id(p): r for p, r in zip(sharded, owners(costs, world))}
        return [rank_of.get(id(p), -1) if a else -1 for p, a in zip(with_grad, alike)]


class Shampoo(_OwnerHeldState):
    """Shampoo (Gupta et al., 2018), notes (53)-(54), with the practical options of distributed Shampoo.

    The step -- statistics by sums (53) or the bias-corrected EMA of 5.1, cached inverse roots with exponent
    -1/(2k) for an order-k tensor, the mode-wise product (54), blocking, grafting, decay and momentum on the
    direction -- is documented once, with the notes' equation numbers, in :mod:`adaptim.functional.shampoo`.
    Each parameter's statistics and roots are read through a
    :class:`~adaptim.functional.shampoo.ShampooPreconditioner`, a view over its state dict.

    In short: the first step from zero statistics is -lr U V^T for G = U S V^T (eps -> 0), for every order k
    invariant to the gradient's scale; a vector gets the full-matrix root -1/2 (full-matrix AdaGrad), or the
    diagonal one when it is longer than ``max_preconditioner_dim``; a scalar is a vector of length 1. A dimension
    longer than ``max_preconditioner_dim`` is cut into chunks of that length, every block preconditioned on its
    own. Roots come from :func:`adaptim.linalg.psd_power`, one batched eigendecomposition per (size, exponent)
    bucket of the group, and are recomputed only at the parameter's steps t = f, 2f, 3f, ...
    (f = ``precondition_frequency``); in between the stale roots precondition the current gradient.

    Before step ``start_preconditioning_step`` the update is the grafted method's (or, without grafting, the
    plain gradient: SGD); statistics accumulate from step 1. Since the first root exists at step f, a
    ``start_preconditioning_step`` below ``precondition_frequency`` is refused at construction.

    Grafting (Agarwal et al., 2020, as distributed Shampoo): ``"adagrad"`` or ``"adam"`` rescales each block's
    Shampoo direction to the norm of that method's direction on the same block. ``momentum`` is heavy ball on the
    search direction as distributed Shampoo does (like :class:`adaptim.SGD`'s Polyak form). ``weight_decay`` is
    added to the search direction after preconditioning and grafting (distributed Shampoo's decoupled decay), so
    with ``momentum=0`` the step is W <- (1 - lr wd) W - lr D; it never enters the statistics.

    On DTensor (FSDP2) parameters each parameter's statistics, cached roots and grafting sums live whole, as
    plain tensors, on one owner rank only (greedy least-loaded on the eigendecompositions' cost, fixed by the
    group's parameters); one all-to-all brings each owner its whole gradients, the owner updates them and
    computes the grafted direction, a second sends each rank its chunk back; the decay and momentum (a DTensor
    sharded like the parameter) are applied on the shards. Each rank's ``state_dict()`` then holds ``step`` and
    ``momentum_buffer`` for every parameter and the statistics of the parameters it owns; it loads a one-process
    state dict (each rank keeps the statistics it owns) or its own (the same world size).

    Defaults, as distributed Shampoo's practice (grafting, a root frequency), train a small network as Adam's
    defaults do (``tests/optim/test_defaults_train.py``): Adam grafting gives every block the norm of an Adam
    step, so ``lr`` = 1e-3 is Adam's step size (without grafting the first step is -lr U V^T, of spectral norm
    lr, and 1e-3 barely moves a network), and roots every 10 steps, used from step 10, take about a third of
    the time of roots every step. The plain (53) is ``grafting=None, precondition_frequency=1``.

    Args:
        params: tensors or param groups; real floating point of any shape (complex is refused: optimize
            ``torch.view_as_real(p)``). Statistics are float32 (float64 for float64 parameters);
            float16/bfloat16 parameters are updated through a float32 copy.
        lr: eta >= 0 (default 1e-3): with grafting, the grafted method's learning rate; without, parameter units
            per unit of preconditioned gradient.
        beta2: None (sums, (53)) or the EMA coefficient in [0, 1) of 5.1.
        eps: > 0, added to every eigenvalue of the (bias-corrected) statistic before the root.
        momentum: heavy-ball coefficient in [0, 1).
        weight_decay: decoupled decay coefficient >= 0 (multiplied by lr).
        precondition_frequency: f >= 1, steps between recomputations of the roots (default 10).
        start_preconditioning_step: the first step (>= f) that uses the Shampoo direction; ``None`` (default):
            f, the first step that has roots.
        max_preconditioner_dim: the largest preconditioner side, >= 1.
        exponent_override: a negative exponent used instead of -1/(2k) for every statistic, or None.
        grafting: None, ``"adagrad"`` or ``"adam"`` (default).
        grafting_beta2: the grafted Adam's second-moment coefficient, in [0, 1).
        grafting_eps: > 0, added to the grafted method's sqrt(v).
        maximize: ascend instead of descend (weight decay still pulls toward 0).
        process_group: a ``torch.distributed`` process group to share the work over (each parameter's update
            computed by one owner rank, one all-gather per step: :mod:`adaptim.distributed.owner`); ``None``
            (default): every rank computes everything, as without torch.distributed.
        communication_dtype: the dtype of that all-gather (``None``: each parameter's own; a narrower one
            sends the rounded changes).

    Raises:
        ValueError: a hyperparameter outside its range, an unknown ``grafting``, or
            ``start_preconditioning_step < precondition_frequency``.
        TypeError: complex or sparse parameters.
        RuntimeError: at ``step``, a NaN or infinite gradient (or one whose square overflows), or
            lr * weight_decay >= 1; nothing is changed then.
    """

    weight_decay_kind = WeightDecay.DIRECTION

    supports_complex = False
    squares_gradients = True
    _held = ("kron_", "factor_", "inv_root_", "grafting_")

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        beta2: float | None = None,
        eps: float = 1e-12,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        precondition_frequency: int = 10,
        start_preconditioning_step: int | None = None,
        max_preconditioner_dim: int = 1024,
        exponent_override: float | None = None,
        grafting: str | None = "adam",
        grafting_beta2: float = 0.999,
        grafting_eps: float = 1e-8,
        maximize: bool = False,
        process_group: Any = None,
        communication_dtype: torch.dtype | None = None,
    ) -> None:
        if start_preconditioning_step is None:  # the first step that has roots
            start_preconditioning_step = precondition_frequency
        defaults = dict(
            lr=lr,
            beta2=beta2,
            eps=eps,
            momentum=momentum,
            weight_decay=weight_decay,
            precondition_frequency=precondition_frequency,
            start_preconditioning_step=start_preconditioning_step,
            max_preconditioner_dim=max_preconditioner_dim,
            exponent_override=exponent_override,
            grafting=grafting,
            grafting_beta2=grafting_beta2,
            grafting_eps=grafting_eps,
            maximize=maximize,
        )
        super().__init__(params, defaults, process_group=process_group, communication_dtype=communication_dtype)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        if group["beta2"] is not None:
            check_range("beta2", group["beta2"], 0.0, 1.0, high_open=True)
        check_range("eps", group["eps"], 0.0, low_open=True)
        check_range("momentum", group["momentum"], 0.0, 1.0, high_open=True)
        check_range("weight_decay", group["weight_decay"], 0.0)
        check_int("precondition_frequency", group["precondition_frequency"], 1)
        check_int("start_preconditioning_step", group["start_preconditioning_step"], 1)
        check_int("max_preconditioner_dim", group["max_preconditioner_dim"], 1)
        if group["start_preconditioning_step"] < group["precondition_frequency"]:
            raise ValueError(
                f"start_preconditioning_step ({group['start_preconditioning_step']}) must be >= "
                f"precondition_frequency ({group['precondition_frequency']}): the roots are first computed at "
                "step precondition_frequency, so an earlier preconditioned step would have no root; set "
                "start_preconditioning_step to a value >= precondition_frequency (the steps before it use the "
                "grafted method, or the plain gradient without grafting)"
            )
        if group["exponent_override"] is not None:
            check_range("exponent_override", group["exponent_override"], None, 0.0, high_open=True)
        check_choice("grafting", group["grafting"], GRAFTING_METHODS)
        check_range("grafting_beta2", group["grafting_beta2"], 0.0, 1.0, high_open=True)
        check_range("grafting_eps", group["grafting_eps"], 0.0, low_open=True)

    def _full_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.new_step()}
        state.update(init_shampoo_state(p, group["max_preconditioner_dim"]))
        if group["grafting"] == "adagrad":
            state["grafting_sum_sq"] = torch.zeros_like(p)
        elif group["grafting"] == "adam":
            state["grafting_exp_avg_sq"] = torch.zeros_like(p)
        if group["momentum"] != 0:
            state["momentum_buffer"] = torch.zeros_like(p)
        return state

    def _work_cost(self, p: torch.Tensor, group: dict[str, Any]) -> float:
        return _preconditioner_cost(self, p, group)  # the eigendecompositions: n^3 per preconditioned side

    def _decay_factor(self, group: dict[str, Any]) -> float:
        # wd * w is added to the direction: with momentum 0 the step is w <- (1 - lr wd) w - lr D
        return group["lr"] * group["weight_decay"]

    def _accumulated(self, group: dict[str, Any], state: dict[str, Any]) -> list[torch.Tensor]:
        # sums (53) and AdaGrad grafting grow without bound; EMA statistics stay below their inputs (a kron_
        # tensor holds the root's triangle too: its entries, at most eps^(-1/2), only loosen the bound)
        return [
            v
            for k, v in state.items()
            if (group["beta2"] is None and k.startswith(("factor_", "kron_"))) or k == "grafting_sum_sq"
        ]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """:meth:`adaptim.AdaptimOptimizer.load_state_dict`; a checkpoint of older versions, which kept each
        statistic and its cached root as two (n, n) matrices ``factor_{b}_{i}`` and ``inv_root_{b}_{i}``, loads
        into today's ``kron_{b}_{i}`` (the statistic's lower and the root's upper triangle, kept bit for bit)."""
        saved = state_dict.get("state", {})
        if any(k.startswith("inv_root_") and k != "inv_root_diag" for st in saved.values() for k in st):
            state_dict = {**state_dict, "state": {i: merge_factor_and_root(st) for i, st in saved.items()}}
        super().load_state_dict(state_dict)

    def _update_group(self, group, params, grads, states) -> None:
        from adaptim.distributed.dtensor import sharded_like  # (a layer above optim)

        like = sharded_like(self)
        if like is not None:
            self._owner_update(group, params, grads, states, like)
            return
        directions = shampoo_directions(
            params,
            grads,
            states,
            self.step_counts(states),
            beta2=group["beta2"],
            eps=group["eps"],
            momentum=group["momentum"],
            weight_decay=group["weight_decay"],
            precondition_frequency=group["precondition_frequency"],
            start_preconditioning_step=group["start_preconditioning_step"],
            max_preconditioner_dim=group["max_preconditioner_dim"],
            exponent_override=group["exponent_override"],
            grafting=group["grafting"],
            grafting_beta2=group["grafting_beta2"],
            grafting_eps=group["grafting_eps"],
        )
        self._final_step(group, params, directions, group["lr"], 0.0)  # the decay is in the direction

    def _owner_update(self, group, params, grads, states, like) -> None:
        """The step on local shards of DTensor parameters ``like``: each parameter's statistics, roots and
        grafting sums live whole on its owner rank (a fixed greedy assignment over the group's sharded
        parameters, on the eigendecompositions' cost), which computes the grafted Shampoo direction from the
        whole gradient (:func:`~adaptim.distributed.dtensor.owner_compute`); the decay and momentum follow on
        the shards. Parameters that are not split on the group's mesh are computed whole on every rank."""
        from adaptim.distributed.dtensor import owner_compute

        assign, steps = self._owned_state(group, grads, states, like)

        def direction(whole: list[torch.Tensor], idx: list[int]) -> list[torch.Tensor]:
            return shampoo_directions(
                whole,
                whole,
                [states[i] for i in idx],
                [steps[i] for i in idx],
                beta2=group["beta2"],
                eps=group["eps"],
                precondition_frequency=group["precondition_frequency"],
                start_preconditioning_step=group["start_preconditioning_step"],
                max_preconditioner_dim=group["max_preconditioner_dim"],
                exponent_override=group["exponent_override"],
                grafting=group["grafting"],
                grafting_beta2=group["grafting_beta2"],
                grafting_eps=group["grafting_eps"],
            )

        directions = owner_compute(grads, like, direction, assign=assign)
        # (5) of shampoo_directions, elementwise: the decay added to the direction, then heavy-ball momentum
        directions = add_l2(directions, params, group["weight_decay"])
        if group["momentum"] != 0:
            bufs = [st["momentum_buffer"] for st in states]
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, directions)
            directions = bufs
        self._final_step(group, params, directions, group["lr"], 0.0)


class IdealizedShampoo(_OwnerHeldState):
    """The IdealizedShampooIteration of Section 6.2.1 (Morwani et al., 2024).

    The step sqrt(tr Lhat) (Lhat + eps I)^{-1/2} G (Rhat + eps I)^{-1/2} with bias-corrected EMA statistics
    ((63)-(64): the Newton step with H ~ I_emp^{1/2}) is documented once in :mod:`adaptim.functional.shampoo`.
    Note the square of Shampoo's preconditioner (exponent -1/2) and the trace factor, which makes the step
    invariant to the gradient's scale. Each parameter is viewed as a matrix (:func:`adaptim.linalg.as_matrix`: a
    vector as one column, then the step is full-matrix RMSProp up to eps; a scalar as 1 x 1; a k > 2 tensor as
    (shape[0], product of the rest)); sides longer than ``max_preconditioner_dim`` are cut into blocks
    preconditioned on their own. Roots are recomputed every step (one batched eigendecomposition per size bucket
    of the group) and not stored: the state holds the two statistics per block and the step count.
    On DTensor (FSDP2) parameters each parameter's statistics live whole, as plain tensors, on one owner rank
    only, which gets the whole gradient by an all-to-all and sends back each rank's chunk of the direction (two
    all-to-alls per group, as :class:`Shampoo`); ``state_dict()`` then holds ``step`` for every parameter and
    the statistics of the parameters this rank owns.
    ``weight_decay`` is added to the direction: W <- W - lr (D + wd W).

    Args:
        params: tensors or param groups, real floating point (complex refused); float32 statistics (float64 for
            float64 parameters).
        lr: eta >= 0 (parameter units per unit of whitened gradient).
        beta2: EMA coefficient in [0, 1).
        eps: damping > 0 added to every eigenvalue of Lhat and Rhat.
        weight_decay: decoupled decay coefficient >= 0 (multiplied by lr).
        max_preconditioner_dim: the largest preconditioner side, >= 1.
        maximize: ascend instead of descend.
        process_group: a ``torch.distributed`` process group to share the work over (each parameter's update
            computed by one owner rank, one all-gather per step: :mod:`adaptim.distributed.owner`); ``None``
            (default): every rank computes everything, as without torch.distributed.
        communication_dtype: the dtype of that all-gather (``None``: each parameter's own; a narrower one
            sends the rounded changes).

    Raises:
        ValueError: a hyperparameter outside its range.  TypeError: complex or sparse parameters.
        RuntimeError: at ``step``, a NaN or infinite gradient (or one whose square overflows), or
            lr * weight_decay >= 1; nothing is changed then.
    """

    weight_decay_kind = WeightDecay.DIRECTION

    supports_complex = False
    squares_gradients = True
    _held = ("factor_",)

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        beta2: float = 0.999,
        eps: float = 1e-12,
        weight_decay: float = 0.0,
        max_preconditioner_dim: int = 1024,
        maximize: bool = False,
        process_group: Any = None,
        communication_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                beta2=beta2,
                eps=eps,
                weight_decay=weight_decay,
                max_preconditioner_dim=max_preconditioner_dim,
                maximize=maximize,
            ),
            process_group=process_group,
            communication_dtype=communication_dtype,
        )

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_range("beta2", group["beta2"], 0.0, 1.0, high_open=True)
        check_range("eps", group["eps"], 0.0, low_open=True)
        check_range("weight_decay", group["weight_decay"], 0.0)
        check_int("max_preconditioner_dim", group["max_preconditioner_dim"], 1)

    def _full_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.new_step()}
        state.update(init_shampoo_state(p, group["max_preconditioner_dim"], matrix_view=True, cache_roots=False))
        return state

    def _work_cost(self, p: torch.Tensor, group: dict[str, Any]) -> float:
        return _preconditioner_cost(self, p, group)

    def _decay_factor(self, group: dict[str, Any]) -> float:
        return group["lr"] * group["weight_decay"]  # w <- w - lr (D + wd w)

    def _update_group(self, group, params, grads, states) -> None:
        from adaptim.distributed.dtensor import owner_compute, sharded_like  # (a layer above optim)

        like = sharded_like(self)
        if like is None:
            directions = idealized_shampoo_directions(
                params,
                grads,
                states,
                self.step_counts(states),
                beta2=group["beta2"],
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                max_preconditioner_dim=group["max_preconditioner_dim"],
            )
        else:  # DTensor parameters: the statistics and the direction on each parameter's owner, the decay here
            assign, steps = self._owned_state(group, grads, states, like)

            def direction(whole: list[torch.Tensor], idx: list[int]) -> list[torch.Tensor]:
                return idealized_shampoo_directions(
                    whole,
                    whole,
                    [states[i] for i in idx],
                    [steps[i] for i in idx],
                    beta2=group["beta2"],
                    eps=group["eps"],
                    max_preconditioner_dim=group["max_preconditioner_dim"],
                )

            directions = add_l2(owner_compute(grads, like, direction, assign=assign), params, group["weight_decay"])
        self._final_step(group, params, directions, group["lr"], 0.0)  # the decay is in the direction
