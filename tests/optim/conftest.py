"""Shared parametrization for the optimizer tests: every optimizer of issue 2 in small valid configurations.

Test functions get parametrized by argument name (no import of this module needed, which would be fragile
with several ``conftest.py`` files and no ``__init__.py``):

* ``optimizer_case``           -- every entry of :data:`ALL_OPTIMIZERS`;
* ``foreach_optimizer_case``   -- those whose class has a ``foreach`` path;
* ``stateful_optimizer_case``  -- those that keep per-parameter state tensors;
* ``optimizer_class``          -- each of the eight classes once (see :data:`ALL_OPTIMIZER_CLASSES`).

The fixture ``make_optimizer_case`` returns the :class:`OptimizerCase` class itself, for one-off configurations.

Each case is an :class:`OptimizerCase`: ``case.make(params, **overrides)`` builds the optimizer and
``case.step(opt, params, grads)`` takes one step with the given gradients through a closure (so
``SGD(lookahead=True)``, which requires one, runs like the others).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

import adaptim


@dataclass(frozen=True)
class OptimizerCase:
    """One optimizer class with a small valid configuration."""

    name: str
    cls: type
    kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self, params, **overrides) -> torch.optim.Optimizer:
        return self.cls(params, **{**self.kwargs, **overrides})

    @property
    def has_foreach(self) -> bool:
        return "foreach" in inspect.signature(self.cls.__init__).parameters

    @property
    def per_param_state(self) -> bool:
        """Whether the configuration keeps state tensors per parameter (plain SGD and AdaGradNorm do not)."""
        if self.cls is adaptim.AdaGradNorm:
            return False
        if self.cls is adaptim.SGD:
            return self.kwargs.get("momentum", 0.0) != 0
        return True

    @staticmethod
    def step(opt: torch.optim.Optimizer, params: list[torch.Tensor], grads: list[torch.Tensor]) -> Any:
        """One ``opt.step`` whose closure sets ``p.grad = g`` (a copy) for each pair; returns the step's result."""
        def closure():
            for p, g in zip(params, grads):
                p.grad = g.clone()
            return None
        return opt.step(closure)

    def __repr__(self) -> str:  # shows in test ids and failure messages
        return self.name


#: every optimizer of issue 2, several with their optional paths switched on
ALL_OPTIMIZERS: list[OptimizerCase] = [
    OptimizerCase("sgd", adaptim.SGD, dict(lr=0.1)),
    OptimizerCase("sgd_momentum_wd", adaptim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    OptimizerCase("sgd_nesterov", adaptim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    OptimizerCase("sgd_lookahead", adaptim.SGD, dict(lr=0.1, momentum=0.8, nesterov=True, lookahead=True,
                                                     weight_decay=0.01)),
    OptimizerCase("adagrad", adaptim.AdaGrad, dict(lr=0.1)),
    OptimizerCase("adagrad_wd", adaptim.AdaGrad, dict(lr=0.1, weight_decay=0.01, initial_accumulator_value=0.1)),
    OptimizerCase("adagrad_norm", adaptim.AdaGradNorm, dict(lr=0.5)),
    OptimizerCase("full_matrix_adagrad", adaptim.FullMatrixAdaGrad, dict(lr=0.5, eps=1e-8, max_dim=64)),
    OptimizerCase("rmsprop", adaptim.RMSProp, dict(lr=0.01)),
    OptimizerCase("rmsprop_beta1_0_wd", adaptim.RMSProp, dict(lr=0.01, betas=(0.0, 0.99), weight_decay=0.01)),
    OptimizerCase("adam", adaptim.Adam, dict(lr=0.01)),
    OptimizerCase("adam_all_flags", adaptim.Adam, dict(lr=0.01, weight_decay=0.01, amsgrad=True, nesterov=True,
                                                       eps_inside_sqrt=True)),
    OptimizerCase("adamw", adaptim.AdamW, dict(lr=0.01)),
    OptimizerCase("adamw_decoupled_amsgrad", adaptim.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True,
                                                                 decoupled_weight_decay=True)),
    OptimizerCase("adam_atan2", adaptim.AdamAtan2, dict(lr=0.01, weight_decay=0.1, a=1.2, b=0.8)),
]

#: the eight classes of issue 2, each with its first (simplest) configuration above
_first: dict[type, OptimizerCase] = {}
for _case in ALL_OPTIMIZERS:
    _first.setdefault(_case.cls, _case)
ALL_OPTIMIZER_CLASSES: list[OptimizerCase] = list(_first.values())
assert len(ALL_OPTIMIZER_CLASSES) == 8

_BY_ARGNAME = {
    "optimizer_case": ALL_OPTIMIZERS,
    "foreach_optimizer_case": [c for c in ALL_OPTIMIZERS if c.has_foreach],
    "stateful_optimizer_case": [c for c in ALL_OPTIMIZERS if c.per_param_state],
    "optimizer_class": ALL_OPTIMIZER_CLASSES,
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for argname, cases in _BY_ARGNAME.items():
        if argname in metafunc.fixturenames:
            metafunc.parametrize(argname, cases, ids=[c.name for c in cases])


@pytest.fixture
def make_optimizer_case() -> type[OptimizerCase]:
    """:class:`OptimizerCase` itself: ``make_optimizer_case(name, cls, kwargs)`` for a one-off configuration."""
    return OptimizerCase
