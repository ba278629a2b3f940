"""The shared glue of every adaptim optimizer.

:class:`AdaptimOptimizer` is a :class:`torch.optim.Optimizer` that adds what every method of the notes needs and
that ``torch.optim`` gets wrong or leaves to each class:

* ``initial_lr`` is recorded in every param group at construction, so the schedule multiplier
  ``s_t = lr / initial_lr`` of the notes (Figure 1 (d)) is defined under any ``torch.optim.lr_scheduler`` and
  without one (``s_t = 1``).
* ``maximize`` negates a *copy* of the gradient before anything else (weight decay still pulls toward 0), and
  ``p.grad`` is never written by a step.
* Complex parameters are optimized as :func:`torch.view_as_real` of themselves (so a complex optimizer gives
  exactly what it gives on the real view); classes with ``supports_complex = False`` refuse them at construction.
* Statistics are kept in float32 whatever the parameter's dtype (float64 stays float64): a float16/bfloat16
  parameter is updated through a float32 working copy and written back once.
* A gradient with NaN or infinite entries, in any group, raises ``RuntimeError`` before anything changes (no
  parameter, state or group entry of any group; set the attribute ``check_finite = False`` on an optimizer to
  skip the check, e.g. under a loss scaler that skips such steps). Optimizers whose statistics square the
  gradient (``squares_gradients``) also refuse a finite gradient whose squared norm overflows the statistics'
  dtype (about 1e19 in float32), of any shape (one entry included), or whose square added to the sums kept so far
  (AdaGrad's, Shampoo's) would overflow, which would otherwise give infinite statistics or NaN parameters.
* A parameter with no entries (``numel() == 0``) is skipped: it has nothing to update and gets no state.
* ``load_state_dict`` checks every saved state tensor against the shape the optimizer would give the parameter it
  is loaded onto (a clear ``ValueError`` instead of another parameter's moments), and keeps the saved dtypes
  (``torch.optim`` would cast float32 moments of a bfloat16 parameter to bfloat16).

Subclasses implement :meth:`_validate_group`, :meth:`_init_state` and :meth:`_update_group`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from typing import Any, Callable

import torch

__all__ = ["AdaptimOptimizer", "check_range", "state_dtype"]


def check_range(name: str, value: Any, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite real number in the given interval.

    ``low``/``high`` of ``None`` mean unbounded; ``*_open`` makes that end exclusive.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    interval = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")


def check_int(name: str, value: Any, low: int) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an int (not a bool) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def check_betas(betas: Any, name: str = "betas") -> None:
    """Raise ``ValueError`` unless ``betas`` is a pair of numbers each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {betas!r}")
    for i, b in enumerate(betas):
        check_range(f"{name}[{i}]", b, 0.0, 1.0, high_open=True)


class _NotGiven:
    def __repr__(self) -> str:
        return "<not given>"


#: default of a torch.optim argument whose ``None`` means something (so ``None`` cannot mean "not given")
NOT_GIVEN: Any = _NotGiven()

#: torch.optim switches adaptim has no counterpart for: accepted off (torch's default, which computes what adaptim
#: computes), refused on, with what to write instead
TORCH_SWITCHES = {
    "differentiable": "adaptim's steps run under torch.no_grad() and cannot be differentiated through; drop "
                      "differentiable=True",
    "fused": "adaptim.{cls} has no fused kernel; drop fused=True (foreach=True, the default, is its fast path)",
    "capturable": "adaptim.{cls} keeps its step counts on the CPU and cannot be captured in a CUDA graph; drop "
                  "capturable=True",
}


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(a != b)
    except (RuntimeError, TypeError, ValueError):  # tensors of several entries: count as set by the caller
        return True


def state_dtype(p: torch.Tensor) -> torch.dtype:
    """The dtype statistics are kept in for parameter ``p``: float64 for float64, float32 otherwise."""
    return torch.float64 if p.dtype == torch.float64 else torch.float32


class AdaptimOptimizer(torch.optim.Optimizer):
    """Base class: parameter checks, ``maximize``, complex and low-precision handling, safe state loading."""

    #: whether complex parameters are optimized (as their real view) or refused at construction
    supports_complex: bool = True
    #: raise RuntimeError before a step whose gradients hold NaN or infinity (nothing is changed then)
    check_finite: bool = True
    #: the statistics square the gradient (g^2, G G^T): then a finite gradient whose squared norm overflows the
    #: statistics' dtype (|g| ~ 1e19 in float32), or would once added to the accumulated sums, is refused as well,
    #: instead of giving inf statistics or NaN (see :meth:`_square_bounds`)
    squares_gradients: bool = False
    #: torch.optim's names for hyperparameters of this class, accepted as constructor keywords and param-group keys
    #: and translated by :meth:`_from_torch` (or refused with what to write instead)
    torch_names: tuple[str, ...] = ()

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)

    # ----------------------------------------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        given = {k: param_group[k] for k in self.torch_names if k in param_group}
        if given:  # torch.optim's spelling of a group entry: this optimizer's entry, or a clear refusal
            param_group = {k: v for k, v in param_group.items() if k not in given}
            self._from_torch(param_group, given, set(param_group), self.defaults)
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter appears twice in one parameter group; it would be updated twice per "
                             "step: list each parameter once")
        super().add_param_group({**param_group, "params": params})
        group = self.param_groups[-1]
        try:
            for p in group["params"]:
                self._check_param(p)
            for key in self._flags():  # flags must be real booleans: amsgrad="no" would read as True
                if key in group and not isinstance(group[key], bool):
                    raise ValueError(f"{key} must be True or False, got {group[key]!r}")
            self._validate_group(group)
        except (TypeError, ValueError):
            self.param_groups.pop()  # a refused group must not stay behind for step() to use
            raise
        # s_t = lr / initial_lr (Figure 1 (d)); LRScheduler uses setdefault, so it keeps this value.
        group.setdefault("initial_lr", group["lr"])

    def _with_torch_names(self, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        """The constructor's ``defaults`` with the torch.optim keywords ``given`` translated (see
        :meth:`_from_torch`); an argument counts as set by the caller when it differs from its default."""
        given = {k: v for k, v in given.items() if v is not NOT_GIVEN}
        sig = inspect.signature(type(self).__init__).parameters
        explicit = {k for k, v in defaults.items() if k in sig and sig[k].default is not inspect.Parameter.empty
                    and _differs(v, sig[k].default)}
        out = dict(defaults)
        self._from_torch(out, given, explicit, defaults)
        return out

    def _from_torch(self, entries: dict[str, Any], given: dict[str, Any], explicit: set[str],
                    fallback: dict[str, Any]) -> None:
        """Write torch.optim's hyperparameters ``given`` (name -> value) into ``entries`` (the constructor's
        defaults or a param group) under this optimizer's names where they compute the same thing, or raise
        ``ValueError`` saying what to write instead. ``explicit``: the entries the caller set (the same
        hyperparameter set twice, differently, is refused); ``fallback``: the values of entries not in
        ``entries``. Subclasses translate their own names and pass the rest here: the switches of
        :data:`TORCH_SWITCHES`, accepted when off."""
        for name, value in given.items():
            if value:
                raise ValueError(f"{name}={value!r}: " + TORCH_SWITCHES[name].format(cls=type(self).__name__))

    @staticmethod
    def _set_alias(entries: dict[str, Any], explicit: set[str], spelled: str, name: str, translated: Any) -> None:
        """entries[name] = translated for torch.optim's arguments ``spelled`` (e.g. "alpha=0.9"), unless ``name``
        was set to something else too."""
        if name in explicit and _differs(entries[name], translated):
            raise ValueError(f"{spelled} (torch.optim's spelling) and {name}={entries[name]!r} set the same "
                             f"hyperparameter differently; pass one of them ({name}={translated!r} is what "
                             f"{spelled} means here)")
        entries[name] = translated

    @classmethod
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

    def _gather(self, group: dict[str, Any]) -> tuple[list, list, list, list]:
        """Collect (params, working params, grads, states) of the group's parameters that have a gradient.

        Working params are the parameter itself (float32/float64) or a float32 copy (float16/bfloat16) that
        :meth:`_write_back` copies back; grads are never the tensor in ``p.grad``'s storage when they will be
        changed (``maximize`` negates a copy).
        """
        params, work, grads, states = [], [], [], []
        maximize = group.get("maximize", False)
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
            state = self.state[p]
            if len(state) == 0:
                state.update(self._init_state(w, group))
            params.append(pr)
            work.append(w)
            grads.append(g)
            states.append(state)
        return params, work, grads, states

    def _check_finite_grads(self) -> None:
        """Raise ``RuntimeError`` if any gradient of any group is sparse, has NaN or infinite entries, or (in a
        group whose statistics square it, see :attr:`squares_gradients`) would make those statistics overflow.

        Called before any group is updated and before any state is created, so a refused step changes nothing.
        """
        where, flags = [], []
        for gi, group in enumerate(self.param_groups):
            with_grad = []
            for pi, p in enumerate(group["params"]):
                if p.grad is None or p.numel() == 0:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients (parameter {pi} "
                                       f"of group {gi}); the step was not taken")
                if self.check_finite:
                    where.append((gi, pi, p))
                    with_grad.append(p)
            if not with_grad:
                continue
            if self._squares_gradients(group):  # a bound on every statistic is finite: so is every statistic
                flags.extend(b.isfinite() for b in self._square_bounds(group, with_grad))
            else:
                flags.extend(self._real(p.grad).isfinite().all() for p in with_grad)
        if not flags:
            return
        finite = torch.stack([f.to(flags[0].device) for f in flags])
        if not bool(finite.all()):
            gi, pi, p = where[int((~finite).nonzero()[0, 0])]
            g = self._real(p.grad)
            dtype = self._statistics_dtype(g)
            if not bool(g.isfinite().all()):
                what = "has NaN or infinite entries"
            elif not bool(self._squared_norm(g, dtype).isfinite()):
                what = (f"has entries up to {float(g.abs().max()):.3g}, whose squares overflow "
                        f"{dtype} in this optimizer's statistics")
            else:
                what = (f"has entries up to {float(g.abs().max()):.3g}: with the statistics accumulated so far "
                        f"(and any L2 term weight_decay * w) their squares overflow {dtype}")
            raise RuntimeError(
                f"{type(self).__name__}: the gradient of parameter {pi} of group {gi} (shape {tuple(p.shape)}) "
                f"{what}; the step was not taken and nothing was changed. Fix the loss, clip or unscale the "
                "gradients first, or set check_finite = False on the optimizer to skip this check")

    def _squares_gradients(self, group: dict[str, Any]) -> bool:
        """Whether ``group``'s statistics square the gradient (see :attr:`squares_gradients`)."""
        return self.squares_gradients

    @staticmethod
    def _squared_norm(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """||x||^2 in ``dtype``, squared explicitly: ``vector_norm`` of a single entry is |x|, never squared."""
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

    def _square_bounds(self, group: dict[str, Any], params: list[torch.Tensor]) -> list[torch.Tensor]:
        """For each of ``params`` (with gradients) a 0-dim bound on every entry its statistics can reach this
        step: (||g|| + l2 ||w||)^2 (it bounds g'^2 and every Gram entry of g' = g + l2 w) plus the largest
        accumulated entry, in the statistics' dtype; inf or NaN when they could overflow."""
        l2 = self._l2_coefficient(group)
        out = []
        for p in params:
            g = self._real(p.grad)
            dtype = self._statistics_dtype(g)
            n = torch.linalg.vector_norm(g, dtype=dtype)
            if l2 != 0:
                n = n + l2 * torch.linalg.vector_norm(self._real(p), dtype=dtype).to(n.device)
            bound = n * n
            state = self.state.get(p)
            for acc in self._accumulated(group, state) if state else []:
                bound = bound + acc.abs().amax().to(device=bound.device, dtype=dtype)
            out.append(bound)
        return out

    @staticmethod
    def _write_back(params: list[torch.Tensor], work: list[torch.Tensor]) -> None:
        for p, w in zip(params, work):
            if p is not w:
                p.copy_(w)

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
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._check_finite_grads()  # every group's gradients, before anything changes
        for group in self.param_groups:
            self._check_group_step(group)
        for group in self.param_groups:
            params, work, grads, states = self._gather(group)
            if params:
                self._update_group(group, work, grads, states)
                self._write_back(params, work)
        return loss

    def _update_group(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor],
                      states: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    @staticmethod
    def schedule_multiplier(group: dict[str, Any]) -> float:
        """``s_t`` of Figure 1: the group's current lr over its peak lr (1.0 when that is 0).

        The peak is the group's ``initial_lr`` (recorded at construction, kept by every ``LRScheduler``), or
        ``max_lr`` where a scheduler records one above it (``OneCycleLR`` sets ``initial_lr`` to
        ``max_lr / div_factor`` and warms up to ``max_lr``): s_t stays in [0, 1] as Figure 1 requires.
        """
        peak = group.get("max_lr", group.get("initial_lr", group["lr"]))
        return group["lr"] / peak if peak != 0 else 1.0

    def _check_group_step(self, group: dict[str, Any]) -> None:
        """Raise ``RuntimeError`` if ``group``'s current hyperparameters cannot be stepped (called for every group
        before any group changes). Default: nothing to check."""

    @staticmethod
    def step_counts(states: list[dict[str, Any]]) -> list[int]:
        """Increment every state's float32 ``step`` tensor and return the new counts as Python ints."""
        out = []
        for s in states:
            s["step"] += 1
            out.append(int(s["step"].item()))
        return out

    @staticmethod
    def new_step() -> torch.Tensor:
        """A fresh step counter: a float32 CPU scalar, exact up to 2**24 steps (bfloat16 would round 257)."""
        return torch.tensor(0.0, dtype=torch.float32)

    def use_foreach(self, group: dict[str, Any]) -> bool:
        f = group.get("foreach")
        return True if f is None else bool(f)

    # ------------------------------------------------------------------------------------------ checkpoints
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state saved by :meth:`state_dict`, checking it fits the parameters it is loaded onto.

        Raises:
            ValueError: if the number of groups or parameters differs, a saved hyperparameter is outside its
                range (the same check as at construction), or a saved state tensor has a shape
                other than the one this optimizer gives the parameter at the same position (for example the
                state of a 2×3 parameter loaded onto a 3×4 one), or it lacks or adds state entries.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        saved_state = state_dict["state"]
        position = 0
        kept: dict[int, tuple[torch.Tensor, dict[str, Any]]] = {}
        merged_groups: list[dict[str, Any]] = []
        for gi, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(f"group {gi}: loaded state dict has {len(saved['params'])} parameters, "
                                 f"this optimizer has {len(group['params'])}")
            merged = {**group, **{k: v for k, v in saved.items() if k != "params"}}
            try:
                self._validate_group(merged)
            except (TypeError, ValueError) as err:
                raise type(err)(f"group {gi} of the loaded state dict: {err}") from None
            merged_groups.append(merged)
            for p, pid in zip(group["params"], saved["params"]):
                if pid in saved_state:
                    pr = self._real(p)
                    w = pr if pr.dtype == state_dtype(pr) else pr.to(state_dtype(pr))
                    expected = self._init_state(w, merged)
                    got = saved_state[pid]
                    if set(expected) != set(got):
                        raise ValueError(
                            f"parameter {position} (group {gi}, shape {tuple(p.shape)}): saved state has "
                            f"entries {sorted(got)}, {type(self).__name__} expects {sorted(expected)}")
                    for k, v in expected.items():
                        if isinstance(v, torch.Tensor) and tuple(v.shape) != tuple(got[k].shape):
                            raise ValueError(
                                f"parameter {position} (group {gi}, shape {tuple(p.shape)}): saved state "
                                f"'{k}' has shape {tuple(got[k].shape)}, expected {tuple(v.shape)}; the "
                                "state dict was saved for other parameters or another parameter order")
                    kept[id(p)] = (p, got)
                position += 1
        super().load_state_dict(state_dict)
        # torch replaces each group by the saved one; keep entries it lacks (saved by an older version or a
        # sibling class, e.g. Adam's state loaded into AdamW) at this optimizer's values instead of dropping them
        for group, merged in zip(self.param_groups, merged_groups):
            for k, v in merged.items():
                group.setdefault(k, v)
        # torch casts floating state to the parameter's dtype; restore the saved tensors' dtypes exactly.
        for p, got in kept.values():
            self.state[p] = {k: (v.to(device=p.device if k != "step" else v.device, copy=True)
                                 if isinstance(v, torch.Tensor) else v)
                             for k, v in got.items()}
