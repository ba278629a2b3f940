"""The shared glue of every adaptim optimizer.

:class:`AdaptimOptimizer` is a :class:`torch.optim.Optimizer` that adds what every method of the notes needs and
that ``torch.optim`` gets wrong or leaves to each class:

* The schedule multiplier s_t of the notes (Figure 1 (d)) is ``lr`` over the group's peak lr (see
  :meth:`AdaptimOptimizer.schedule_multiplier`); nothing is written into a group at construction, so an lr set
  on a group before a scheduler is built is the one the scheduler starts from, as in ``torch.optim``.
* ``lr`` may be a one-element CPU tensor (as ``torch.optim`` allows): every step reads it as a Python float, so
  a tensor lr gives bitwise the run of the float ``float(lr)``.
* Every group's hyperparameters are validated at construction and again at ``step()`` whenever a group entry
  changed since the last check (``ValueError`` naming the argument, before anything changes).
* ``maximize`` negates a *copy* of the gradient before anything else (weight decay still pulls toward 0), and
  ``p.grad`` is never written by a step.
* Complex parameters are optimized as :func:`torch.view_as_real` of themselves (so a complex optimizer gives
  exactly what it gives on the real view); classes with ``supports_complex = False`` refuse them at construction.
* Statistics are kept in float32 whatever the parameter's dtype (float64 stays float64): a float16/bfloat16
  parameter is updated through a float32 working copy and written back once, to the nearest value or, as the
  group entry ``low_precision`` says, stochastically rounded or with a Kahan compensation
  (:mod:`adaptim.optim.low_precision`).
* A gradient with NaN or infinite entries, in any group, raises ``RuntimeError`` before anything changes (no
  parameter, state or group entry of any group; set the attribute ``check_finite = False`` on an optimizer to
  skip the check, e.g. under a loss scaler that skips such steps). Optimizers whose statistics square the
  gradient (``squares_gradients``) also refuse a finite gradient whose squared norm overflows the statistics'
  dtype (about 1e19 in float32), of any shape (one entry included), or whose square added to the sums kept so far
  (AdaGrad's, Shampoo's) would overflow, which would otherwise give infinite statistics or NaN parameters.
* A parameter with no entries (``numel() == 0``) is skipped: it has nothing to update and gets no state; a
  rule that keeps no state for a parameter (plain SGD, AdaGradNorm) stores no empty entry for it.
* ``load_state_dict`` checks every saved state tensor against the shape the optimizer would give the parameter it
  is loaded onto (a clear ``ValueError`` instead of another parameter's moments), and keeps the saved dtypes
  (``torch.optim`` would cast float32 moments of a bfloat16 parameter to bfloat16); a ``step`` saved as a plain
  number or a tensor of another dtype becomes the optimizer's float32 step tensor. ``load_state_dict`` pre-hooks
  run before these checks and post-hooks after them.

Subclasses implement :meth:`_validate_group`, :meth:`_init_state` and :meth:`_update_group`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from adaptim.functional import fused
from adaptim.functional.common import WeightDecay, apply_update_
from adaptim.optim.guards import GradientChecks, state_dtype
from adaptim.optim.low_precision import RNG_KEY, LowPrecision, check_low_precision
from adaptim.optim.on_manifold import OnManifold
from adaptim.optim.torch_names import NOT_GIVEN, TORCH_SWITCHES, TorchNames
from adaptim.validation import check_betas, check_bool, check_int, check_range

__all__ = ["AdaptimOptimizer", "check_range", "check_int", "check_betas", "state_dtype", "NOT_GIVEN", "TORCH_SWITCHES"]


def _as_float(x: Any) -> Any:
    return float(x) if isinstance(x, torch.Tensor) else x


def _freeze(v: Any) -> Any:
    """A comparable snapshot of a group entry: tensors by identity and version (in-place writes bump it)."""
    if isinstance(v, torch.Tensor):
        return ("tensor", id(v), v._version)
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, *map(_freeze, v))
    if isinstance(v, dict):
        return ("dict", *((k, _freeze(x)) for k, x in v.items()))
    return v


def _state_mismatch(expected: dict[str, Any], got: dict[str, Any]) -> str | None:
    """How the state ``got`` differs in layout from ``expected`` (entries, tensor shapes), or ``None``.

    A plain number stands for a 0-dim tensor (a ``step`` saved by older code); values are not compared."""
    if set(expected) != set(got):
        return f"has entries {sorted(got)}, expected {sorted(expected)}"
    for k, v in expected.items():
        if not isinstance(v, torch.Tensor):
            continue
        g = got[k]
        if not isinstance(g, torch.Tensor):
            if v.dim() == 0 and isinstance(g, (int, float)) and not isinstance(g, bool):
                continue
            return f"'{k}' is {type(g).__name__} {g!r}, expected a tensor of shape {tuple(v.shape)}"
        if tuple(v.shape) != tuple(g.shape):
            return f"'{k}' has shape {tuple(g.shape)}, expected {tuple(v.shape)}"
    return None


#: group entries a scheduler changes every step: a change of these alone cannot change the state's layout
_SCHEDULED = ("lr", "initial_lr", "max_lr", "min_lr", "peak_lr", "momentum", "betas")


def _signature(group: dict[str, Any]) -> tuple:
    """The group's hyperparameters: every entry but the parameters and their names."""
    return tuple((k, _freeze(v)) for k, v in group.items() if k not in ("params", "param_names"))


class AdaptimOptimizer(GradientChecks, LowPrecision, TorchNames, OnManifold, torch.optim.Optimizer):
    """Base class: parameter checks, ``maximize``, complex and low-precision handling, safe state loading."""

    #: whether complex parameters are optimized (as their real view) or refused at construction
    supports_complex: bool = True
    #: how ``weight_decay`` enters the update (:class:`adaptim.functional.common.WeightDecay`): ``L2`` into the
    #: gradient, ``DECOUPLED`` as the factor (1 - lambda_t) of the last stage, ``DIRECTION`` added to the
    #: preconditioned direction; ``None`` for optimizers without weight decay. See :meth:`weight_decay_kind`.
    weight_decay_kind: WeightDecay | None = None
    #: the rule of :mod:`adaptim.functional.fused` this class's fused path runs (``None``: no fused path)
    fused_rule: str | None = None

    #: why this class cannot shard its work over ranks (``process_group``), or ``None`` (it can)
    owner_computes_refusal: str | None = None

    def __init__(
        self,
        params: Iterable,
        defaults: dict[str, Any],
        *,
        process_group: Any = None,
        communication_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(params, defaults)
        if process_group is not None or communication_dtype is not None:
            from adaptim.distributed.owner import OwnerComputes  # torch.distributed only where asked for

            # kept outside the groups (state_dict saves groups) and dropped by pickling and deepcopy
            self.__dict__["_owner"] = OwnerComputes(self, process_group, communication_dtype)

    def __getstate__(self) -> dict[str, Any]:
        # torch keeps defaults, state and groups only: keep the public attributes set on the instance too
        # (check_finite = False, init_seed), so that deepcopy and pickling give the same optimizer
        return {**super().__getstate__(), **{k: v for k, v in self.__dict__.items() if not k.startswith("_")}}

    # ----------------------------------------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        given = {k: param_group[k] for k in self.torch_names if k in param_group}
        if given:  # torch.optim's spelling of a group entry: this optimizer's entry, or a clear refusal
            param_group = {k: v for k, v in param_group.items() if k not in given}
            self._from_torch(param_group, given, set(param_group), self.defaults)
        params = param_group["params"]
        if isinstance(params, set):  # torch's own refusal, which the list() below would bypass
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the ordering "
                "of tensors in sets will change between runs. Please use a list instead."
            )
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        # named parameters come as (name, tensor) pairs (model.named_parameters()); torch splits them
        tensors = [p[1] if isinstance(p, tuple) and len(p) == 2 else p for p in params]
        if len({id(p) for p in tensors}) != len(tensors):
            raise ValueError(
                "a parameter appears twice in one parameter group; it would be updated twice per "
                "step: list each parameter once"
            )
        super().add_param_group({**param_group, "params": params})
        group = self.param_groups[-1]
        try:
            for p in group["params"]:
                self._check_param(p)
            self._validate_all(group)
        except (TypeError, ValueError):
            self.param_groups.pop()  # a refused group must not stay behind for step() to use
            raise
        self._validated_signatures()[id(group)] = _signature(group)
        self._onto_manifold(group)  # a group with a manifold: its points projected onto it (on_manifold.py)
        if self.fused_rule is not None:
            self._make_traced_flags(group["params"])

    def _validate_all(self, group: dict[str, Any]) -> None:
        """Every check of a group's hyperparameters (construction, ``step()`` after a change, loading)."""
        for key in self._flags():  # flags must be real booleans: amsgrad="no" would read as True
            if key in group:
                check_bool(key, group[key])
        for key in ("foreach", "fused"):  # None: the default path; "no" would read as True
            if group.get(key) is not None:
                check_bool(key, group[key])
        if group.get("foreach") and group.get("fused"):
            raise ValueError("fused=True and foreach=True are two different paths; set one of them")
        if "low_precision" in group:
            check_low_precision(group["low_precision"])
        if group.get("manifold") is not None:
            self._check_manifold(group)
        lr = group.get("lr")
        if isinstance(lr, torch.Tensor):
            if lr.numel() != 1:
                raise ValueError(f"Tensor lr must be 1-element, got shape {tuple(lr.shape)}")
            if lr.device.type != "cpu" or not lr.is_floating_point():
                raise ValueError(
                    f"a tensor lr must be a floating-point CPU tensor (each step reads it as a "
                    f"Python float), got dtype {lr.dtype} on {lr.device}; pass a float instead"
                )
        if "peak_lr" in group:  # stated by the user for s_t, see schedule_multiplier
            check_range("peak_lr", _as_float(group["peak_lr"]), 0.0)
        with self._float_lrs([group]):
            self._validate_group(group)

    def _validated_signatures(self) -> dict[int, tuple]:
        # kept outside the groups (state_dict saves groups); pickling and deepcopy drop it, so it is made lazily
        return self.__dict__.setdefault("_group_signatures", {})

    def _revalidate_groups(self) -> None:
        """Validate again every group whose entries changed since it was last validated (``ValueError`` naming
        the group and the argument); called first by :meth:`step`, so a refused step changes nothing.

        A group is compared by a signature of its non-parameter entries (tensors by identity and version), so
        an unchanged group costs no validation."""
        seen = self._validated_signatures()
        for gi, group in enumerate(self.param_groups):
            if seen.get(id(group)) == _signature(group):
                continue
            try:
                self._validate_all(group)
            except (TypeError, ValueError) as err:
                raise type(err)(f"param group {gi} (changed after construction): {err}") from None
            before = seen.get(id(group))
            if before is not None and self._layout_may_change(dict(before), group):
                self._check_state_layout(gi, group)
            seen[id(group)] = _signature(group)  # after validation, which may add entries

    @staticmethod
    def _layout_may_change(before: dict[str, Any], group: dict[str, Any]) -> bool:
        now = dict(_signature(group))
        changed = {k for k in set(before) | set(now) if before.get(k) != now.get(k)}
        if not changed <= set(_SCHEDULED):
            return True

        # momentum or beta1 moving to or from 0 adds or removes a buffer (SGD, Steepest, RMSProp)
        def first_is_zero(v: Any) -> bool:
            if isinstance(v, tuple) and v and v[0] in ("tuple", "list"):  # a frozen pair: (kind, beta1, beta2)
                v = v[1] if len(v) > 1 else None
            return v == 0

        return any(first_is_zero(before.get(k)) != first_is_zero(now.get(k)) for k in ("momentum", "betas"))

    def _check_state_layout(self, gi: int, group: dict[str, Any]) -> None:
        """Raise ``ValueError`` if ``group``'s hyperparameters, changed after its parameters got state, would give
        them state of another layout (``amsgrad`` switched on, momentum from 0, Shampoo's grafting or block size,
        Adafactor's ``factored``, AdamNMF's rank, ...): a step would fail half-way or read the wrong buffers.

        The expected layout is that of :meth:`_init_state` on a shape-only (meta) tensor: nothing is allocated."""
        for pi, p in enumerate(group["params"]):
            got = self.state.get(p)
            if not got:
                continue
            pr = self._real(p)
            with torch.random.fork_rng(devices=[]):  # an _init_state that draws must not move the global seed
                expected = self._init_state(torch.empty(pr.shape, dtype=state_dtype(pr), device="meta"), group)
            expected = self._with_compensation(expected, pr.to("meta"), group)
            problem = _state_mismatch(expected, got)
            if problem is not None:
                raise ValueError(
                    f"param group {gi} (changed after construction): with its new hyperparameters, the state of "
                    f"parameter {pi} (shape {tuple(p.shape)}) would need another layout, but its state {problem}. "
                    "A setting that decides the state's layout cannot change after the first step: set it back, "
                    f"or build a new {type(self).__name__} for the new setting; the step was not taken"
                )

    @staticmethod
    @contextlib.contextmanager
    def _float_lrs(groups: list[dict[str, Any]]) -> Iterator[None]:
        """Within the block, a tensor ``lr`` of each group reads as its Python float (restored afterwards), so a
        tensor lr gives bitwise what the float gives."""
        tensors = [(g, g["lr"]) for g in groups if isinstance(g.get("lr"), torch.Tensor)]
        for g, t in tensors:
            g["lr"] = float(t)
        try:
            yield
        finally:
            for g, t in tensors:
                g["lr"] = t

    @classmethod
    @functools.cache
    def _flags(cls) -> list[str]:
        """The constructor's arguments whose default is a bool (the optimizer's on/off flags)."""
        sig = inspect.signature(cls.__init__)
        return [k for k, v in sig.parameters.items() if isinstance(v.default, bool)]

    def _check_param(self, p: torch.Tensor) -> None:
        name = type(self).__name__
        if p.is_sparse:
            raise TypeError(f"{name} does not support sparse parameters; use a dense tensor")
        if p.is_complex() and not self.supports_complex:
            raise TypeError(
                f"{name} does not support complex parameters (got {p.dtype}); optimize "
                "torch.view_as_real(p) as a real parameter, or use an elementwise optimizer such as AdamW"
            )
        if not (p.is_floating_point() or p.is_complex()):
            raise TypeError(f"{name} optimizes floating-point parameters, got dtype {p.dtype}")

    def _validate_group(self, group: dict[str, Any]) -> None:
        """Raise ``ValueError`` naming the first hyperparameter of ``group`` out of its allowed range."""
        check_range("lr", group["lr"], 0.0)

    # ------------------------------------------------------------------------------------------------ state
    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """Fresh state for the real-valued parameter ``p`` (a real view for complex ones)."""
        return {}

    @staticmethod
    def _real(t: torch.Tensor) -> torch.Tensor:
        return torch.view_as_real(t) if t.is_complex() else t

    def _gather(self, group: dict[str, Any], negate: bool = True) -> tuple[list, list, list, list]:
        """Collect (params, working params, grads, states) of the group's parameters that have a gradient.

        Working params are the parameter itself (float32/float64) or a float32 copy (float16/bfloat16) that
        :meth:`_write_back` copies back; grads are never the tensor in ``p.grad``'s storage when they will be
        changed (``maximize`` negates a copy, unless ``negate`` is False: the fused step takes the sign itself).
        """
        params, work, grads, states = [], [], [], []
        maximize = group.get("maximize", False) and negate
        for p in group["params"]:
            if p.grad is None or p.numel() == 0:  # a parameter with no entries has nothing to update
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            pr = self._real(p)
            g = self._real(p.grad)
            wdtype = state_dtype(pr)
            w = pr if pr.dtype == wdtype else pr.to(wdtype)
            if g.dtype != wdtype:
                g = g.to(wdtype)
            if maximize:
                g = torch.neg(g)
            state = self.state.get(p)  # .get: the defaultdict must not gain an empty entry
            if not state:
                state = self._with_compensation(self._init_state(w, group), pr, group)
                if state:  # a rule with no state for p stores nothing (torch keeps no empty entries)
                    self.state[p] = state
            if pr is not w:
                self._add_compensation(w, state)
            params.append(pr)
            work.append(w)
            grads.append(g)
            states.append(state)
        return params, work, grads, states

    # ------------------------------------------------------------------------------------------------- step
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss; it is called with
                gradients enabled before the update.

        Returns:
            The closure's loss, or ``None``.
        """
        owner = self.__dict__.get("_owner")
        if owner is not None:  # sharded over ranks (adaptim.distributed.owner): the same stages, owned params only
            return owner.step(closure)
        if torch.compiler.is_compiling():
            return self._traced_step(closure)
        self._revalidate_groups()  # hyperparameters set on a group since the last step, before anything runs
        self._raise_pending_nonfinite()
        with self._float_lrs(self.param_groups):
            loss = self._evaluate_closure(closure)
            fused = [self.uses_fused(group) for group in self.param_groups]
            self._check_finite_grads(fused)  # every group's gradients, before anything changes
            for group in self.param_groups:
                self._check_group_step(group)
            self._report_nonfinite(self._take_steps(fused))
        return loss

    def _take_steps(self, fused: list[bool]) -> list[torch.Tensor]:
        """Update every group's parameters that have a gradient (the checks passed); returns the fused groups'
        flags of entries left unchanged, for :meth:`_report_nonfinite`."""
        from adaptim.distributed.dtensor import on_shards  # here: adaptim.distributed sits above adaptim.optim

        flags = []
        for group, use_fused in zip(self.param_groups, fused):
            params, work, grads, states = self._gather(group, negate=not use_fused)
            if not params:
                continue
            with on_shards(self, group, work, grads, states) as (w, g, s):  # DTensors: local or gathered
                if use_fused:
                    flags.append(self._fused_group_step(group, w, g, s))
                else:
                    self._group_update(group, w, g, s)
            self._write_back(params, work, group, states)
        return flags

    def _work_cost(self, p: torch.Tensor, group: dict[str, Any]) -> float:
        """The cost model of one step on ``p`` that assigns parameters to ranks (:mod:`adaptim.distributed.owner`):
        proportional to the flops of its update. Elementwise rules: ``p.numel()``; matrix methods override it."""
        return float(p.numel())

    def state_dict(self) -> dict[str, Any]:
        owner = self.__dict__.get("_owner")
        if owner is not None:  # sharded: the consolidated state (consolidate_state_dict), as ZeroRedundancyOptimizer
            return owner.state_dict()
        return super().state_dict()

    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gather the state of a sharded optimizer (``process_group``) onto rank ``to`` of the group; then
        :meth:`state_dict` on that rank is the one-process optimizer's state dict (as
        ``torch.distributed.optim.ZeroRedundancyOptimizer.consolidate_state_dict``). A collective: call it on
        every rank of the group.

        Raises:
            RuntimeError: the optimizer is not sharded (no ``process_group``).
            ValueError: ``to`` is not a rank of the group.
        """
        owner = self.__dict__.get("_owner")
        if owner is None:
            raise RuntimeError(
                f"{type(self).__name__}.consolidate_state_dict: this optimizer is not sharded (no process_group); "
                "its state_dict() is complete already"
            )
        owner.consolidate_state_dict(to)

    def _traced_step(self, closure: Callable[[], Any] | None) -> Any:
        """``step()`` inside ``torch.compile``: the fused rule of each group traced into the caller's graph.

        For the elementwise classes (a :attr:`fused_rule`) this is one graph with no break (``fullgraph=True``
        works): the step counts, bias corrections and a tensor lr stay tensors, so a scheduler that changes a tensor
        lr (``param_group["lr"].fill_``) recompiles nothing. What the eager step does on the host is skipped here:
        the hyperparameters are the ones validated at construction or at the last eager step, and non-finite
        entries are left unchanged by the rule's own check and recorded in a flag that the next eager ``step()``
        raises on. Other classes run their eager step (torch.compile breaks the graph where it must).
        """
        loss = self._evaluate_closure(closure)
        for group in self.param_groups:
            # (no device check: torch.compile is building this graph already)
            if self.fused_rule is None or group.get("fused") is False or self._fused_obstacle(group, False):
                self._eager_group_step(group)
                continue
            params, work, grads, states = self._gather(group, negate=False)  # the fused rule takes the sign
            if not params:
                continue
            if any(w is not p for w, p in zip(work, params)):  # float16/bfloat16: the working-copy path
                self._update_group(group, work, [torch.neg(g) if group.get("maximize") else g for g in grads], states)
                self._write_back(params, work, group, states)
                continue
            flags, slots, row = self._fused_rule_args(group, states)
            kernel = fused.RULES[self.fused_rule][0]
            bad = self._traced_flag(params[0].device)
            for i, (p, g) in enumerate(zip(params, grads)):
                t = 0.0
                if "step" in states[i]:
                    states[i]["step"] += 1
                    t = states[i]["step"]
                c = torch.stack([torch.as_tensor(x, dtype=p.dtype, device=p.device) for x in row(t)])
                state = [None if slot is None else slot[i] for slot in slots]
                bad_here, out = kernel(p, g, *state, c, **flags)
                for target, new in zip([p, *(x for x in state if x is not None)], out):
                    target.copy_(new)
                if bad_here is not None:
                    bad |= bad_here.any()
        return loss

    def _eager_group_step(self, group: dict[str, Any]) -> None:
        params, work, grads, states = self._gather(group)
        if params:
            self._group_update(group, work, grads, states)
            self._write_back(params, work, group, states)

    def _group_update(self, group: dict[str, Any], params: list, grads: list, states: list) -> None:
        """:meth:`_update_group`, on the tangent gradients and with the state transported after it when the group
        has a manifold (:mod:`adaptim.optim.on_manifold`)."""
        m = group.get("manifold")
        if m is None:
            self._update_group(group, params, grads, states)
            return
        self._update_group(group, params, self._tangent_grads(m, params, grads), states)
        self._transport_state(m, params, states)

    def _traced_flag(self, device: torch.device) -> torch.Tensor:
        """The flag of non-finite entries left unchanged inside torch.compile (read by the next eager step); made
        eagerly, per device, by :meth:`add_param_group`, so that the compiled graph mutates this very tensor."""
        flags = self.__dict__.get("_traced_nonfinite", {})
        if device not in flags:  # an unpickled or deep-copied optimizer: made here (the flag then lives in the graph)
            self._make_traced_flags([torch.empty(0, device=device)])
        return self.__dict__["_traced_nonfinite"][device]

    def _make_traced_flags(self, params: list[torch.Tensor]) -> None:
        flags = self.__dict__.setdefault("_traced_nonfinite", {})
        for p in params:
            if isinstance(p, torch.Tensor) and p.device not in flags:
                flags[p.device] = torch.zeros((), dtype=torch.bool, device=p.device)

    # --------------------------------------------------------------------------------------------- fused path
    def uses_fused(self, group: dict[str, Any]) -> bool:
        """Whether ``group``'s next step takes the fused (compiled) path of :mod:`adaptim.functional.fused`.

        Yes when the class has one (:attr:`fused_rule`), the group's ``fused`` is True, or None with ``foreach``
        not set either (an explicit ``foreach`` choice keeps its path), the last stage is the Euclidean one (a
        class overriding :meth:`_final_step` never fuses), and :func:`~adaptim.functional.fused.fused_available`
        on the group's devices. Within a fused group each parameter is decided alone (:meth:`_fusable`): a
        contiguous float32/float64 tensor (a complex one as its real view) with at least 2 entries goes through the
        kernel, any other (float16/bfloat16, one entry, non-contiguous) through the foreach path; so a parameter's
        trajectory does not depend on the others in its group.

        Raises:
            RuntimeError: ``fused=True`` where the fused path cannot run (says why).
        """
        wanted = group.get("fused")
        if self.fused_rule is None or wanted is False or (wanted is None and group.get("foreach") is not None):
            return False
        why = self._fused_obstacle(group)
        if why is not None and wanted:
            raise RuntimeError(f"{type(self).__name__}(fused=True): {why}; pass fused=None or False")
        return why is None

    def _fused_obstacle(self, group: dict[str, Any], devices: bool = True) -> str | None:
        """Why ``group`` cannot take the fused path, or ``None`` (``devices``: check that kernels can be built)."""
        if type(self)._final_step is not AdaptimOptimizer._final_step or "_final_step" in self.__dict__:
            return "this optimizer's last stage is not the Euclidean w <- (1 - lambda) w - lr d"
        if group.get("manifold") is not None:
            return "the group's last stage is a retraction onto its manifold"
        if not devices:
            return None
        kinds = {p.device.type for p in group["params"]}
        if all(fused.fused_available(k) for k in kinds):
            return None
        missing = sorted({str(p.device) for p in group["params"] if not fused.fused_available(p.device)})
        if missing:
            return (
                f"torch.compile cannot build kernels for {', '.join(missing)} here (no C++ compiler / Triton, "
                "or ADAPTIM_FUSED=0)"
            )
        return None

    @staticmethod
    def _fusable(p: torch.Tensor, g: torch.Tensor) -> bool:
        """Whether the (real, working) parameter ``p`` with gradient ``g`` goes through the fused kernel."""
        return fused.fusable(p) and fused.fusable(g) and g.dtype == p.dtype and g.device == p.device

    def _fused_group_step(
        self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict]
    ) -> torch.Tensor:
        """One step of a fused group: the compiled kernel on the parameters :meth:`_fusable` takes (one call per
        dtype and device), the foreach path on the others (their gradients were checked before the step). Returns
        the flag "some entry was left unchanged" (on the first parameter's device)."""
        flag = torch.zeros((), dtype=torch.bool, device=params[0].device)
        take = [self._fusable(w, g) for w, g in zip(params, grads)]
        rest = [i for i, t in enumerate(take) if not t]
        if rest:
            rest_grads = [grads[i] for i in rest]
            if group.get("maximize", False):
                rest_grads = [torch.neg(g) for g in rest_grads]
            self._update_group(group, [params[i] for i in rest], rest_grads, [states[i] for i in rest])
        buckets: dict[tuple, list[int]] = {}
        for i, t in enumerate(take):
            if t:
                buckets.setdefault((params[i].dtype, params[i].device), []).append(i)
        for (_, device), members in buckets.items():
            here = flag if device == flag.device else torch.zeros((), dtype=torch.bool, device=device)
            self._fused_update(
                group, [params[i] for i in members], [grads[i] for i in members], [states[i] for i in members], here
            )
            if here is not flag:
                flag |= here.to(flag.device)
        return flag

    def _fused_update(
        self,
        group: dict[str, Any],
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        states: list[dict[str, Any]],
        flag: torch.Tensor,
    ) -> None:
        """The fused step of :attr:`fused_rule` on ``params`` (one dtype and device): the coefficient table of
        :meth:`_fused_rule_args` and one call of :func:`adaptim.functional.fused.fused_step`."""
        flags, slots, row = self._fused_rule_args(group, states)
        steps = self.fused_steps(states) if "step" in states[0] else [0.0] * len(params)
        table = self.coefficient_table(steps, row, params[0].dtype, params[0].device)
        fused.fused_step(self.fused_rule, params, grads, slots, table, flag, **flags)

    def _fused_rule_args(
        self, group: dict[str, Any], states: list[dict[str, Any]]
    ) -> tuple[dict[str, bool], list[list[torch.Tensor] | None], Callable[[Any], list[Any]]]:
        """What the fused rule needs for ``group``: its compile-time switches, its state slots (one list per slot
        of ``fused.RULES[rule][1]``, ``None`` for an absent one) and ``row(t)``, the coefficients at step t in the
        order of ``fused.RULES[rule][2]`` (Python floats, or tensors when t or the lr is one). Classes with a
        :attr:`fused_rule` implement it."""
        raise NotImplementedError

    def _fused_common_flags(self, group: dict[str, Any], ema_weight: float | None = None) -> dict[str, bool]:
        """The compile-time switches every fused rule has: ``maximize``, ``l2`` (an L2 term), ``decay`` (a
        multiplicative decay) and, for a rule with an EMA of weight ``ema_weight`` (1 - b1), ``lerp_hi`` (torch's
        second form of ``lerp`` for weights >= 0.5). Each is off in the common case and its operations then leave
        the loop; none depends on a scheduled value (the lr), so a schedule never recompiles."""
        flags = dict(
            check=bool(self.check_finite),  # False: no check in the kernel either (its cost shows in adaptim perf)
            maximize=bool(group.get("maximize", False)),
            l2=self._l2_coefficient(group) != 0,
            decay=self.group_weight_decay_kind(group) is WeightDecay.DECOUPLED and group.get("weight_decay", 0) != 0,
        )
        if ema_weight is not None:
            flags["lerp_hi"] = abs(ema_weight) >= 0.5
        return flags

    @staticmethod
    def fused_steps(states: list[dict[str, Any]]) -> list[float]:
        """Increment every state's ``step`` tensor (one foreach op) and return the new counts (one host read for
        the list, not one ``.item()`` per parameter)."""
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        return torch.stack(steps).tolist()

    @staticmethod
    def coefficient_table(
        steps: list[float], row: Callable[[float], list[float]], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """The (len(steps), C) table of a fused step: ``row(t)`` (Python floats, computed once per distinct t)
        for each parameter's step t, cast to the parameters' dtype (as a Python scalar is in the literal path)."""
        distinct = {t: k for k, t in enumerate(dict.fromkeys(steps))}
        # the Python floats (doubles) rounded to dtype once, as a Python scalar is in the literal path
        rows = torch.tensor([row(t) for t in distinct], dtype=dtype)
        if len(distinct) > 1:
            rows = rows[torch.tensor([distinct[t] for t in steps])]
        else:
            rows = rows.expand(len(steps), -1).contiguous()  # one layout for the compiled kernel to see
        return rows.to(device, non_blocking=True)

    def _report_nonfinite(self, flags: list[torch.Tensor]) -> None:
        """Raise if a fused step left entries unchanged (read at once on CPU, where it costs no sync; on other
        devices at the start of the next step)."""
        if not flags or not self.check_finite:
            return
        bad = flags[0] if len(flags) == 1 else torch.stack([f.to(flags[0].device) for f in flags]).any()
        if bad.device.type == "cpu":
            if bool(bad):
                self._raise_nonfinite_entries()
        else:
            self.__dict__["_pending_nonfinite"] = bad

    def _raise_pending_nonfinite(self) -> None:
        bad = self.__dict__.pop("_pending_nonfinite", None)
        if bad is not None and bool(bad):
            self._raise_nonfinite_entries(previous=True)
        for flag in self.__dict__.get("_traced_nonfinite", {}).values():
            if bool(flag):
                flag.zero_()
                self._raise_nonfinite_entries(previous=True)

    def _raise_nonfinite_entries(self, previous: bool = False) -> None:
        when = "the previous step" if previous else "this step"
        raise RuntimeError(
            f"{type(self).__name__}: in {when} (fused path) some gradient entries were NaN or infinite, or their "
            "squares overflowed (or, with eps = 0, underflowed to 0); those entries of the parameters and of the "
            "state were left unchanged and every other entry took its step. Fix the loss, clip or unscale the "
            "gradients first; set check_finite = 'eager' to refuse such a step before anything changes (one more "
            "read of every gradient), or check_finite = False to skip the check"
        )

    def _update_group(
        self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict[str, Any]]
    ) -> None:
        raise NotImplementedError

    def _evaluate_closure(self, closure: Callable[[], Any] | None) -> Any:
        """Call ``closure`` with gradients enabled and return its loss (``None`` without a closure).

        The hook for an optimizer that evaluates the gradient at another point than the parameters (SGD's
        look-ahead x_t of (28)): it overrides this method, moves the parameters, calls it, and moves them back.
        Called by :meth:`step` before any check or change.
        """
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    @staticmethod
    def schedule_multiplier(group: dict[str, Any]) -> float:
        """``s_t`` of Figure 1 (d): the group's current lr over its peak lr, in [0, 1] (1.0 when the peak is 0).

        The peak is, in this order: ``group["peak_lr"]`` if the user stated one; ``group["max_lr"]``
        (``OneCycleLR`` writes it: it starts at ``initial_lr = max_lr / div_factor`` and warms up to it);
        ``group["initial_lr"]`` (every ``torch.optim.lr_scheduler.LRScheduler`` writes it, with the group's lr
        when the scheduler is built); else the current lr itself (no scheduler: s_t = 1). ``ReduceLROnPlateau``
        and manual lr changes record no peak: state ``peak_lr`` for s_t to follow them.

        Call it from :meth:`_check_group_step` (before any group changes) in an optimizer whose update uses it.

        Raises:
            RuntimeError: the lr is above the peak (beyond rounding), e.g. under ``CyclicLR``, whose
                ``initial_lr`` is its ``base_lr``, or after raising a scheduled lr by hand: s_t would exceed 1.
        """
        lr = _as_float(group["lr"])
        for key in ("peak_lr", "max_lr", "initial_lr"):
            if key in group:
                peak = _as_float(group[key])
                break
        else:
            return 1.0
        if lr > peak * (1 + 1e-6):  # a chained scheduler may land on the peak up to rounding
            raise RuntimeError(
                f"the group's lr {lr:.6g} exceeds its peak lr {peak:.6g} (group['{key}']): the schedule multiplier "
                f"s_t = lr / peak = {lr / peak if peak else math.inf:.4g} of Figure 1 must lie in [0, 1]. State "
                "the largest lr of the schedule: group['peak_lr'] = <largest lr of the schedule> (for CyclicLR its "
                "max_lr), for every such param group; the step was not taken"
            )
        return min(lr / peak, 1.0) if peak != 0 else 1.0

    def _check_group_step(self, group: dict[str, Any]) -> None:
        """Raise ``RuntimeError`` if ``group``'s current hyperparameters cannot be stepped (called for every group
        before any group changes).

        The base class refuses a weight-decay factor lambda_t = :meth:`_decay_factor` >= 1 for every optimizer that
        decays: (1 - lambda_t) w would zero or flip every weight. Subclasses extend this with their own checks.
        """
        decay = self._shrink_factor(group)
        if decay >= 1:
            raise RuntimeError(
                f"{type(self).__name__}: the weight decay factor lambda_t = {decay:.4g} of this step is >= 1 "
                f"(lr = {group['lr']!r}, weight_decay = {group.get('weight_decay')!r}); the step would zero or flip "
                "every weight, and Figure 1 needs lambda_t in [0, 1). Lower weight_decay or the lr (or the lr the "
                "scheduler sets); the step was not taken"
            )

    def group_weight_decay_kind(self, group: dict[str, Any]) -> WeightDecay | None:
        """How ``group``'s weight decay enters its update (the class's :attr:`weight_decay_kind`, unless a flag of
        the group changes it)."""
        return self.weight_decay_kind

    def _shrink_factor(self, group: dict[str, Any]) -> float:
        """The fraction of w that weight decay removes in this group's next step, whatever its kind: the base
        class refuses a step where it is >= 1. By default lambda_t (:meth:`_decay_factor`); an L2 term on a plain
        gradient step (SGD) shrinks w by lr * weight_decay too."""
        return self._decay_factor(group)

    def _decay_factor(self, group: dict[str, Any]) -> float:
        """lambda_t: the fraction of w that this group's next step removes by weight decay (an upper bound where
        it varies per parameter). 0 for optimizers without decay; those with decay override this."""
        return 0.0

    def _final_step(
        self,
        group: dict[str, Any],
        params: list[torch.Tensor],
        directions: list[torch.Tensor],
        lr: float,
        decay: float = 0.0,
    ) -> None:
        """The last stage of a step (the seam): w <- (1 - decay) w - lr * d for each parameter, in place.

        Every rule computes its direction d and ends here. An optimizer whose step ends differently -- a
        retraction onto a manifold, a multiplicative or mirror step -- overrides this method only.

        Args:
            group: the param group being stepped.
            params: working parameters (float32/float64 real views), updated in place.
            directions: d_t, one per parameter, same shapes.
            lr: eta_t.   decay: lambda_t in [0, 1).

        A group with a ``manifold`` entry ends with w <- R(w - lr P_w(d)) instead (its decay is 0; see
        :mod:`adaptim.optim.on_manifold`).
        """
        m = group.get("manifold")
        if m is not None:
            self._retract_step(m, params, directions, lr)
            return
        if self.use_foreach(group):
            apply_update_(params, directions, lr, decay)
        else:  # the literal per-tensor loop: no foreach kernel (same arithmetic, bitwise equal)
            for w, d in zip(params, directions):
                apply_update_(w, d, lr, decay)

    @staticmethod
    def step_counts(states: list[dict[str, Any]]) -> list[int]:
        """Increment every state's ``step`` tensor and return the new counts as Python ints (one host read for the
        list, not one ``.item()`` per parameter; no foreach kernel, so ``foreach=False`` stays the literal loop)."""
        if not states:
            return []
        steps = [s["step"] for s in states]
        for t in steps:
            t.add_(1)
        return [int(t) for t in torch.stack(steps).tolist()]

    @staticmethod
    def new_step() -> torch.Tensor:
        """A fresh step counter: a CPU scalar in float32 (exact up to 2**24 steps; bfloat16 would round 257), or
        float64 when that is the default dtype (``torch.set_default_dtype``), as ``torch.optim`` does."""
        return torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32)

    def use_foreach(self, group: dict[str, Any]) -> bool:
        f = group.get("foreach")
        return True if f is None else bool(f)

    # ------------------------------------------------------------------------------------------ checkpoints
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state saved by :meth:`state_dict`, checking it fits the parameters it is loaded onto.

        Hooks registered with ``register_load_state_dict_pre_hook`` run first (so a hook may convert a foreign
        dict before the checks), those of ``register_load_state_dict_post_hook`` last (they see the loaded
        state). A saved ``step`` that is a plain number (older checkpoints) or a tensor of another dtype becomes
        the optimizer's float32 step tensor; any other 0-dimensional state entry saved as a plain number becomes
        a tensor of the dtype this optimizer gives it. Saved empty per-parameter entries are dropped.

        Raises:
            ValueError: if the number of groups or parameters differs, a saved hyperparameter is outside its
                range (the same check as at construction), or a saved state tensor has a shape
                other than the one this optimizer gives the parameter at the same position (for example the
                state of a 2×3 parameter loaded onto a 3×4 one), or it lacks or adds state entries.
        """
        state_dict = state_dict.copy()  # shallow, as torch does; a pre-hook may replace or edit it
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        saved_state = state_dict["state"]
        position = 0
        kept: dict[int, tuple[torch.Tensor, dict[str, Any], dict[str, Any]]] = {}
        merged_groups: list[dict[str, Any]] = []
        for gi, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(
                    f"group {gi}: loaded state dict has {len(saved['params'])} parameters, "
                    f"this optimizer has {len(group['params'])}"
                )
            merged = {**group, **{k: v for k, v in saved.items() if k != "params"}}
            try:
                self._validate_all(merged)
            except (TypeError, ValueError) as err:
                raise type(err)(f"group {gi} of the loaded state dict: {err}") from None
            merged_groups.append(merged)
            for p, pid in zip(group["params"], saved["params"]):
                if saved_state.get(pid):  # an empty entry (a stateless rule, older versions) is no state
                    pr = self._real(p)
                    w = pr if pr.dtype == state_dtype(pr) else pr.to(state_dtype(pr))
                    expected = self._with_compensation(self._init_state(w, merged), pr, merged)
                    got = saved_state[pid]
                    problem = _state_mismatch(expected, got)
                    if problem is not None:
                        raise ValueError(
                            f"parameter {position} (group {gi}, shape {tuple(p.shape)}): saved state {problem}; "
                            f"the state dict was saved for other parameters, another parameter order or other "
                            f"settings of {type(self).__name__}"
                        )
                    kept[id(p)] = (p, got, expected)
                position += 1
        # torch's loading without the hooks, which ran above and run again below
        pre_hooks = self._optimizer_load_state_dict_pre_hooks
        post_hooks = self._optimizer_load_state_dict_post_hooks
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        try:
            super().load_state_dict(state_dict)
        finally:
            self._optimizer_load_state_dict_pre_hooks = pre_hooks
            self._optimizer_load_state_dict_post_hooks = post_hooks
        # torch replaces each group by the saved one; keep entries it lacks (saved by an older version or a
        # sibling class, e.g. Adam's state loaded into AdamW) at this optimizer's values instead of dropping them
        for group, merged in zip(self.param_groups, merged_groups):
            for k, v in merged.items():
                group.setdefault(k, v)
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state and not self.state[p]:
                    del self.state[p]
        # torch casts floating state to the parameter's dtype; restore the saved tensors' dtypes exactly.
        for p, got, expected in kept.values():
            self.state[p] = {k: self._loaded_entry(k, v, expected[k], p) for k, v in got.items()}
        self._load_rounding_state(state_dict.get(RNG_KEY))
        for post_hook in post_hooks.values():
            post_hook(self)

    @staticmethod
    def _loaded_entry(key: str, value: Any, expected: Any, p: torch.Tensor) -> Any:
        """A saved state entry as this optimizer keeps it: a copy on the parameter's device in the saved dtype,
        except the step counter (the CPU tensor of :meth:`new_step`) and plain numbers saved for
        0-dimensional tensors (the dtype and device this optimizer gives them)."""
        if isinstance(expected, torch.Tensor) and not isinstance(value, torch.Tensor):
            return torch.tensor(value, dtype=expected.dtype, device=expected.device)  # not via the default dtype
        if isinstance(expected, torch.Tensor) and key == "step":
            return value.to(dtype=expected.dtype, device=expected.device, copy=True)
        if isinstance(value, torch.Tensor):
            return value.to(device=p.device if key != "step" else value.device, copy=True)
        return value
