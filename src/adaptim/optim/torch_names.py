"""torch.optim's names for adaptim's hyperparameters: translated where the math is the same, refused otherwise.

:class:`TorchNames` is a mixin of :class:`adaptim.AdaptimOptimizer`. A class lists torch's spellings it knows in
``torch_names``; the constructor passes them to :meth:`TorchNames._with_torch_names` and ``add_param_group`` to
:meth:`TorchNames._from_torch`, which write this optimizer's entries or raise ``ValueError`` saying what to write.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["NOT_GIVEN", "TORCH_SWITCHES", "TorchNames"]


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


class TorchNames:
    """Mixin: translation of torch.optim's argument names (see the module doc)."""

    #: torch.optim's names for hyperparameters of this class, accepted as constructor keywords and param-group keys
    #: and translated by :meth:`_from_torch` (or refused with what to write instead)
    torch_names: tuple[str, ...] = ()

    def _with_torch_names(self, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        """The constructor's ``defaults`` with the torch.optim keywords ``given`` translated (see
        :meth:`_from_torch`); an argument counts as set by the caller when it differs from its default."""
        given = {k: v for k, v in given.items() if v is not NOT_GIVEN}
        sig = inspect.signature(type(self).__init__).parameters
        explicit = {
            k
            for k, v in defaults.items()
            if k in sig and sig[k].default is not inspect.Parameter.empty and _differs(v, sig[k].default)
        }
        out = dict(defaults)
        self._from_torch(out, given, explicit, defaults)
        return out

    def _from_torch(
        self, entries: dict[str, Any], given: dict[str, Any], explicit: set[str], fallback: dict[str, Any]
    ) -> None:
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
            raise ValueError(
                f"{spelled} (torch.optim's spelling) and {name}={entries[name]!r} set the same "
                f"hyperparameter differently; pass one of them ({name}={translated!r} is what "
                f"{spelled} means here)"
            )
        entries[name] = translated
