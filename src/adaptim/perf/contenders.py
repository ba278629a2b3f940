"""The contenders of ``adaptim perf``: the parameter shapes, and for each rule adaptim's optimizer next to
torch.optim's forloop / foreach / fused variants and, when importable, pytorch-optimizer's and heavyball's.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

import adaptim

__all__ = ["Contender", "KEYS", "gpt2_shapes", "make_params", "build_contenders"]

#: the rules ``adaptim perf`` compares, in report order: key -> (adaptim name, extra kwargs, lr, torch class name,
#: torch kwargs); lr None keeps both classes' defaults
KEYS: dict[str, tuple[str, dict, float | None, str, dict]] = {
    "adamw": ("adamw", {}, 1e-3, "AdamW", dict(weight_decay=0.01)),
    "adam": ("adam", {}, 1e-3, "Adam", {}),
    "sgd": ("sgd", dict(momentum=0.9), 1e-3, "SGD", dict(momentum=0.9)),
    "adagrad": ("adagrad", {}, 1e-3, "Adagrad", {}),
    "rmsprop": ("rmsprop", {}, 1e-3, "RMSprop", dict(alpha=0.999, momentum=0.9)),
    "adam_atan2": ("adam_atan2", {}, 1e-3, "", {}),
    "adafactor": ("adafactor", {}, None, "Adafactor", {}),
    "muon": ("muon", {}, 1e-3, "Muon", {}),
}

#: optional libraries: key -> [(module, class name)]; used only when importable
OPTIONAL: dict[str, list[tuple[str, str]]] = {
    "adamw": [("heavyball", "ForeachAdamW")],
    "adafactor": [("pytorch_optimizer", "AdaFactor")],
    "muon": [("pytorch_optimizer", "Muon"), ("heavyball", "ForeachMuon")],
}


@dataclass
class Contender:
    """One optimizer under test. ``variant`` is ``forloop`` / ``foreach`` / ``fused`` for torch.optim, else ""."""

    name: str
    key: str
    library: str
    variant: str
    build: Callable[[list[torch.Tensor]], torch.optim.Optimizer]
    params: list[torch.Tensor] | None = None
    optimizer: torch.optim.Optimizer | None = None

    def step(self) -> None:
        self.optimizer.step()


def gpt2_shapes(size: int) -> list[tuple[int, ...]]:
    """Blocks of a GPT-2-like transformer with about ``size`` parameters in all.

    A block of width d holds (d, d) x 4 (attention), (4d, d) and (d, 4d) (MLP), (d,) x 5 and (4d,) (norms, biases):
    12 d^2 + 9 d entries. d is 768 (GPT-2 small) when one such block fits in ``size``, else the largest multiple of
    8 (at least 8) whose block fits; the block is repeated round(size / block) times (at least once).
    """

    def block(d: int) -> int:
        return 12 * d * d + 9 * d

    d = 768
    while d > 8 and block(d) > size:
        d -= 8
    one = [(d, d)] * 4 + [(4 * d, d), (d, 4 * d)] + [(d,)] * 5 + [(4 * d,)]
    return one * max(1, round(size / block(d)))


def make_params(shapes: list[tuple[int, ...]], device: torch.device | str, seed: int = 0) -> list[torch.Tensor]:
    """float32 leaf tensors of ``shapes`` with fixed random values and fixed random gradients (scaled 1e-2)."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen).to(device).requires_grad_()
        p.grad = (1e-2 * torch.randn(shape, generator=gen)).to(device)
        params.append(p)
    return params


def _adaptim(key: str, **path: bool) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
    name, extra, lr, _, _ = KEYS[key]
    return lambda params: adaptim.create_optimizer(name, params, lr=lr, **extra, **path)


def _unchecked(build: Callable[[list[torch.Tensor]], torch.optim.Optimizer]):
    """``build`` with ``check_finite = False``: the fused kernel without its check of every entry."""

    def make(params: list[torch.Tensor]) -> torch.optim.Optimizer:
        opt = build(params)
        opt.check_finite = False
        return opt

    return make


def _has_fused(key: str) -> bool:
    probe = _adaptim(key)([torch.zeros(2, 2, requires_grad=True)])
    return getattr(probe, "fused_rule", None) is not None


def _torch(cls: type, lr: float | None, kwargs: dict) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
    args = {} if lr is None else {"lr": lr}
    return lambda params: cls(params, **args, **kwargs)


def build_contenders(keys: list[str], notes: list[str]) -> list[Contender]:
    """The contenders of every rule in ``keys``; each one left out (not in torch, not importable) gets a line in
    ``notes``. Nothing is built yet: ``Contender.build`` takes the parameters."""
    out: list[Contender] = []
    for key in keys:
        _, _, lr, torch_name, torch_kwargs = KEYS[key]
        out.append(Contender(f"adaptim.{key}", key, "adaptim", "", _adaptim(key)))
        if _has_fused(key):  # the default is the fused path: show the foreach path, and the kernel unchecked
            out.append(Contender(f"adaptim.{key}[foreach]", key, "adaptim", "foreach", _adaptim(key, foreach=True)))
            out.append(Contender(f"adaptim.{key}[unchecked]", key, "adaptim", "unchecked", _unchecked(_adaptim(key))))
        cls = getattr(torch.optim, torch_name, None) if torch_name else None
        if cls is None:
            notes.append(f"{key}: torch.optim {torch.__version__} has no equivalent")
        else:
            accepted = inspect.signature(cls).parameters
            variants = [v for v in ("foreach", "fused") if v in accepted]
            for v in ["forloop", *variants]:
                kw = dict(torch_kwargs, **({v: True} if v != "forloop" else {"foreach": False} if variants else {}))
                out.append(Contender(f"torch.{torch_name}[{v}]", key, "torch", v, _torch(cls, lr, kw)))
            missing = [v for v in ("foreach", "fused") if v not in variants]
            if missing:
                notes.append(f"{key}: torch.optim.{torch_name} has no {' / '.join(missing)} variant")
        for module, attr in OPTIONAL.get(key, []):
            try:
                cls = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError):
                notes.append(f"{key}: {module}.{attr} not importable, left out")
                continue
            out.append(Contender(f"{module}.{attr}", key, module, "", _torch(cls, lr, {})))
    return out
