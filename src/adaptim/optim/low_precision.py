"""How a bfloat16/float16 parameter's float32 working copy is written back: the group entry ``low_precision``.

:class:`LowPrecision` is a mixin of :class:`adaptim.AdaptimOptimizer`, so every optimizer has it. A float16 or
bfloat16 parameter is updated through a float32 working copy; the group entry ``low_precision`` says how the
copy becomes the parameter again:

* ``"nearest"`` (the default; also when the entry is absent): round to nearest, as ``torch.optim`` does. An
  update smaller than half an ulp of the weight is lost: from 1.0 in bfloat16 (ulp 2^-7), 100 steps of
  1e-3 leave the weight at 1.0.
* ``"stochastic"``: stochastic rounding (:func:`adaptim.functional.lowp.stochastic_round`, unbiased), no extra
  state. The random bits come from one ``torch.Generator`` per optimizer and device, seeded with the optimizer's
  attribute :attr:`LowPrecision.low_precision_seed` (default 0) when first used; its state is saved by
  ``state_dict()`` (key ``"low_precision_rng"``) and restored by ``load_state_dict()``, so a checkpoint resumes
  the exact trajectory (a deep copy or pickle of the optimizer carries the generators too). Set the seed before
  the first stochastic step: a generator, once made, keeps its stream.
* ``"kahan"``: a compensated update. The state entry ``"compensation"`` (the parameter's shape and dtype) keeps
  the rounding error of the last write-back; the next working copy is parameter + compensation, so updates
  smaller than an ulp accumulate (effectively a 16-bit mantissa for bfloat16) at the cost of a second
  parameter-sized tensor.

float32 and float64 parameters are updated in place whatever the entry says (no copy, no state, nothing drawn).
Set the entry per group (``{"params": ..., "low_precision": "stochastic"}``), for every group with
``adaptim.create_optimizer(..., low_precision=...)``, or on ``opt.param_groups`` before the first step; switching
to or from ``"kahan"`` after a stateful step is refused like any change of the state's layout.
"""

from __future__ import annotations

from typing import Any

import torch

from adaptim.functional.lowp import stochastic_round_

__all__ = ["LowPrecision", "LOW_PRECISION_MODES", "check_low_precision"]

#: the values of the group entry ``low_precision``
LOW_PRECISION_MODES = ("nearest", "stochastic", "kahan")
#: the dtypes updated through a float32 working copy
_LOW_DTYPES = (torch.bfloat16, torch.float16)
#: the state_dict() key of the generators' states
RNG_KEY = "low_precision_rng"


def check_low_precision(mode: Any) -> None:
    """Raise ``ValueError`` unless ``mode`` is one of :data:`LOW_PRECISION_MODES`."""
    if not isinstance(mode, str) or mode not in LOW_PRECISION_MODES:
        raise ValueError(f"low_precision must be one of {', '.join(map(repr, LOW_PRECISION_MODES))}, got {mode!r}")


class LowPrecision:
    """Mixin: the ``low_precision`` group entry (see the module doc)."""

    #: seed of the generators of stochastic rounding (one per device, made at the first stochastic write-back)
    low_precision_seed: int = 0

    @staticmethod
    def _low_precision(group: dict[str, Any]) -> str:
        return group.get("low_precision", "nearest")

    def _with_compensation(self, state: dict[str, Any], p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """``state`` (fresh, from ``_init_state``) plus the zero ``"compensation"`` of a low-precision ``p`` in a
        ``"kahan"`` group (a meta tensor for a meta ``p``'s layout check)."""
        if p.dtype in _LOW_DTYPES and self._low_precision(group) == "kahan":
            # like p: a DTensor's compensation is sharded as it is (its working copy adds it before any rule runs)
            state["compensation"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
        return state

    def _rounding_generator(self, device: torch.device) -> torch.Generator:
        gens = self.__dict__.setdefault("_rounding_generators", {})
        key = str(device)
        if key not in gens:
            gens[key] = torch.Generator(device=device).manual_seed(int(self.low_precision_seed))
        return gens[key]

    def _write_back(
        self,
        params: list[torch.Tensor],
        work: list[torch.Tensor],
        group: dict[str, Any] | None = None,
        states: list[dict[str, Any]] | None = None,
    ) -> None:
        """Copy each float32 working copy back into its low-precision parameter, as ``group["low_precision"]``
        says (a parameter that is its own working copy is already updated)."""
        from adaptim.distributed.dtensor import local  # DTensors: each rank rounds its own shard, no collective

        mode = "nearest" if group is None else self._low_precision(group)
        for i, (p, w) in enumerate(zip(params, work)):
            if p is w:
                continue
            p, w = local(p), local(w)
            comp = states[i].get("compensation") if mode == "kahan" and states is not None else None
            comp = local(comp)
            if mode == "stochastic" and p.dtype in _LOW_DTYPES:
                stochastic_round_(p, w, self._rounding_generator(p.device))
            elif comp is not None:
                p.copy_(w)  # nearest; what it lost is kept for the next step
                comp.copy_(w.sub_(p))  # exact in float32: p is within an ulp of w
            else:
                p.copy_(w)

    @staticmethod
    def _add_compensation(w: torch.Tensor, state: dict[str, Any]) -> None:
        """Add the saved rounding error to the fresh working copy ``w`` (a ``"kahan"`` group)."""
        comp = state.get("compensation")
        if comp is not None:
            w.add_(comp)

    def _rounding_state(self) -> dict[str, Any] | None:
        gens = self.__dict__.get("_rounding_generators")
        if not gens:
            return None
        return {"seed": int(self.low_precision_seed), "states": {k: g.get_state() for k, g in gens.items()}}

    def _load_rounding_state(self, saved: dict[str, Any] | None) -> None:
        """Restore the generators saved by ``state_dict()`` (none saved: they restart from the seed)."""
        gens: dict[str, torch.Generator] = {}
        if saved:
            self.low_precision_seed = int(saved["seed"])
            for key, st in saved["states"].items():
                device = torch.device(key)
                if device.type != "cpu" and not getattr(torch, device.type).is_available():
                    continue  # a generator of a device this process lacks: its parameters are elsewhere now
                gen = torch.Generator(device=device)
                gen.set_state(st.cpu() if isinstance(st, torch.Tensor) else torch.as_tensor(st, dtype=torch.uint8))
                gens[key] = gen
        self.__dict__["_rounding_generators"] = gens

    def __getstate__(self) -> dict[str, Any]:
        # a deep copy or a pickle continues the same random draws
        state = super().__getstate__()
        if "_rounding_generators" in self.__dict__:
            state["_rounding_generators"] = self.__dict__["_rounding_generators"]
        return state

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Optimizer.state_dict()``, plus the states of the stochastic-rounding generators under
        ``"low_precision_rng"`` once one was used (``{"seed": int, "states": {device: uint8 tensor}}``)."""
        sd = super().state_dict()
        rng = self._rounding_state()
        if rng is not None:
            sd[RNG_KEY] = rng
        return sd
