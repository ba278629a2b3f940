"""Shared parametrization for the optimizer tests: every optimizer of issues 2 and 3 in small valid configurations.

Test functions get parametrized by argument name (no import of this module needed, which would be fragile
with several ``conftest.py`` files and no ``__init__.py``):

* ``optimizer_case``           -- every entry of :data:`ALL_OPTIMIZERS`;
* ``foreach_optimizer_case``   -- those whose class has a ``foreach`` path;
* ``stateful_optimizer_case``  -- those that keep per-parameter state tensors;
* ``optimizer_class``          -- each class once (see :data:`ALL_OPTIMIZER_CLASSES`).

The fixture ``make_optimizer_case`` returns the :class:`OptimizerCase` class itself, for one-off configurations.

Each case is an :class:`OptimizerCase`: ``case.make(params, **overrides)`` builds the optimizer and
``case.step(opt, params, grads)`` takes one step with the given gradients through a closure (so
``SGD(lookahead=True)``, which requires one, runs like the others). Shapes go through ``case.shape(shape)``
(and fixed values through ``case.tensor(t)``): Muon groups take matrices only, so for Muon a vector (n,) becomes
the row (1, n) and a scalar (1, 1); StiefelSGD takes D x d matrices with D >= d, so a vector (n,) becomes the
column (n, 1) (an empty one (0, 0)), a wide matrix (a, b) the tall (b, a) and a scalar (1, 1); every other case
keeps the shape. ``case.batched_to_rounding`` says whether
the class stacks matrices of one shape into batched matrix kernels, which agree with the per-parameter loop to
rounding only (the tests compare those to a tight tolerance, and everything else bitwise).
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
    #: entries added to every param group (e.g. Muon's ``use_muon=False``), under the test's own group entries
    group_extra: dict[str, Any] = field(default_factory=dict)
    #: the class takes points of the probability simplex only (ExponentiatedGradient, MirrorDescent("entropy")):
    #: ``make`` first moves every parameter given to it that is not one onto it, in place (see :func:`on_simplex`)
    simplex: bool = False

    def make(self, params, **overrides) -> torch.optim.Optimizer:
        if self.simplex and not isinstance(params, torch.Tensor):  # (a bare tensor: the class's own TypeError)
            params = list(params)
            on_simplex(params)
        if self.group_extra:
            params = list(params)
            if params and isinstance(params[0], dict):
                params = [{**self.group_extra, **g} for g in params]
            else:
                params = [{"params": params, **self.group_extra}]
        return self.cls(params, **{**self.kwargs, **overrides})

    def place(self, params) -> None:
        """For a simplex case, move ``params`` onto the simplex as :meth:`make` does (for a test that builds the
        optimizer itself, or keeps the starting values); nothing otherwise."""
        if self.simplex:
            on_simplex(params)

    @property
    def matrix_only(self) -> bool:
        """Whether the configuration refuses parameters with fewer than 2 dimensions (Muon groups)."""
        return (self.cls is adaptim.Muon and self.group_extra.get("use_muon", True)) or self.cls is adaptim.StiefelSGD

    def shape(self, shape) -> tuple[int, ...]:
        """The test shape ``shape`` for this case: a row (1, n) or (1, 1) for matrix-only cases, else itself."""
        shape = tuple(shape)
        if self.cls is adaptim.StiefelSGD:  # D x d with D >= d: a vector as a column, a wide matrix transposed
            if len(shape) == 1:
                return (shape[0], 1) if shape[0] else (0, 0)
            if len(shape) == 2 and shape[0] < shape[1]:
                return (shape[1], shape[0])
        if not self.matrix_only or len(shape) >= 2:
            return shape
        return (1, shape[0]) if shape else (1, 1)

    def tensor(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` reshaped to :meth:`shape` (same values, row-major)."""
        return t.reshape(self.shape(t.shape))

    @property
    def batched_to_rounding(self) -> bool:
        """Whether parameters of one shape are stacked into batched matrix products / decompositions, which round
        differently from the same products taken one parameter at a time (not bitwise; see the functional docs)."""
        return self.cls in _MATRIX_BATCHED and not (self.cls is adaptim.Muon and not self.matrix_only)

    @property
    def fixed_norm(self) -> bool:
        """Whether the configuration keeps each parameter on a sphere (``SphereSGD``): it refuses an all-zero
        parameter (a zero vector has no nearest point on a sphere), a radial gradient (that of ||p||^2) moves
        nothing, and a 0-dim parameter never moves (its tangent space is {0})."""
        return self.cls is adaptim.SphereSGD

    @property
    def has_foreach(self) -> bool:
        return "foreach" in inspect.signature(self.cls.__init__).parameters

    @property
    def per_param_state(self) -> bool:
        """Whether the configuration keeps state tensors per parameter (plain SGD and AdaGradNorm do not)."""
        if self.cls in (adaptim.AdaGradNorm, adaptim.MirrorDescent, adaptim.ExponentiatedGradient):
            return False
        if self.cls in (adaptim.SGD, adaptim.Steepest, adaptim.StiefelSGD):
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


#: classes whose batched path stacks matrices of one shape (see ``OptimizerCase.batched_to_rounding``)
_MATRIX_BATCHED = (
    adaptim.Adafactor,
    adaptim.AdamNMF,
    adaptim.Shampoo,
    adaptim.IdealizedShampoo,
    adaptim.Muon,
    adaptim.Steepest,
)

#: every optimizer of issue 2, several with their optional paths switched on
ALL_OPTIMIZERS: list[OptimizerCase] = [
    OptimizerCase("sgd", adaptim.SGD, dict(lr=0.1)),
    OptimizerCase("sgd_momentum_wd", adaptim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    OptimizerCase("sgd_nesterov", adaptim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    OptimizerCase(
        "sgd_lookahead", adaptim.SGD, dict(lr=0.1, momentum=0.8, nesterov=True, lookahead=True, weight_decay=0.01)
    ),
    OptimizerCase("adagrad", adaptim.AdaGrad, dict(lr=0.1)),
    OptimizerCase("adagrad_wd", adaptim.AdaGrad, dict(lr=0.1, weight_decay=0.01, initial_accumulator_value=0.1)),
    OptimizerCase("adagrad_norm", adaptim.AdaGradNorm, dict(lr=0.5)),
    OptimizerCase("full_matrix_adagrad", adaptim.FullMatrixAdaGrad, dict(lr=0.5, eps=1e-8, max_dim=64)),
    OptimizerCase("rmsprop", adaptim.RMSProp, dict(lr=0.01)),
    OptimizerCase("rmsprop_beta1_0_wd", adaptim.RMSProp, dict(lr=0.01, betas=(0.0, 0.99), weight_decay=0.01)),
    OptimizerCase("adam", adaptim.Adam, dict(lr=0.01)),
    OptimizerCase(
        "adam_all_flags",
        adaptim.Adam,
        dict(lr=0.01, weight_decay=0.01, amsgrad=True, nesterov=True, eps_inside_sqrt=True),
    ),
    OptimizerCase("adamw", adaptim.AdamW, dict(lr=0.01)),
    OptimizerCase(
        "adamw_independent_amsgrad",
        adaptim.AdamW,
        dict(lr=0.01, weight_decay=0.1, amsgrad=True, independent_weight_decay=True),
    ),
    OptimizerCase("adam_atan2", adaptim.AdamAtan2, dict(lr=0.01, weight_decay=0.1, a=1.2, b=0.8)),
]

#: the matrix-aware optimizers of issue 3 (all refuse complex parameters: ``supports_complex = False``)
ALL_OPTIMIZERS += [
    OptimizerCase("adafactor", adaptim.Adafactor, dict(lr=0.01, relative_step=False)),
    # the relative step min(lr, 1/sqrt(t)); at lr = 1e-2, the default, the paper's min(1e-2, 1/sqrt(t))
    OptimizerCase("adafactor_relative_step", adaptim.Adafactor, dict(lr=1e-2)),
    OptimizerCase(
        "adafactor_beta1_beta2_wd",
        adaptim.Adafactor,
        dict(lr=0.01, relative_step=False, beta1=0.9, beta2=0.999, weight_decay=0.1),
    ),
    OptimizerCase(
        "adafactor_unfactored",
        adaptim.Adafactor,
        dict(lr=0.01, relative_step=False, factored=False, clip_threshold=None, scale_parameter=False),
    ),
    OptimizerCase("adam_nmf", adaptim.AdamNMF, dict(lr=0.01)),
    OptimizerCase("adam_nmf_rank2_beta1_wd", adaptim.AdamNMF, dict(lr=0.01, rank=2, beta1=0.9, weight_decay=0.1)),
    # roots every step, no grafting: the plain (53) (the defaults compute roots only from step 10)
    OptimizerCase("shampoo", adaptim.Shampoo, dict(lr=0.1, grafting=None, precondition_frequency=1)),
    # EMA statistics, blocks of side 2 (vectors longer than 2 get the diagonal root), stale roots every second
    # step, Adam grafting, heavy-ball momentum and decoupled decay all at once
    OptimizerCase(
        "shampoo_ema_blocks_graft_adam",
        adaptim.Shampoo,
        dict(
            lr=0.1,
            beta2=0.9,
            eps=1e-6,
            momentum=0.5,
            weight_decay=0.01,
            grafting="adam",
            precondition_frequency=2,
            start_preconditioning_step=2,
            max_preconditioner_dim=2,
        ),
    ),
    OptimizerCase(
        "shampoo_graft_adagrad_wd",
        adaptim.Shampoo,
        dict(lr=0.1, grafting="adagrad", exponent_override=-0.5, weight_decay=0.1, precondition_frequency=1),
    ),
    OptimizerCase("idealized_shampoo", adaptim.IdealizedShampoo, dict(lr=0.1)),
    OptimizerCase(
        "idealized_shampoo_wd_blocks",
        adaptim.IdealizedShampoo,
        dict(lr=0.1, beta2=0.9, weight_decay=0.1, max_preconditioner_dim=2),
    ),
    OptimizerCase("muon", adaptim.Muon, dict(lr=0.02)),
    OptimizerCase(
        "muon_svd_wd",
        adaptim.Muon,
        dict(lr=0.02, nesterov=False, orthogonalize="svd", weight_decay=0.1, adjust_lr="match_rms_adamw"),
    ),
    OptimizerCase(
        "muon_adamw_groups", adaptim.Muon, dict(lr=0.01, weight_decay=0.1), group_extra={"use_muon": False}
    ),  # every group on Muon's AdamW side: vectors allowed
    OptimizerCase("steepest", adaptim.Steepest, dict(lr=0.1)),
    OptimizerCase(
        "steepest_inf_majorization_momentum",
        adaptim.Steepest,
        dict(lr=0.01, norm="inf", rule="majorization", momentum=0.9),
    ),
    OptimizerCase(
        "steepest_frobenius_majorization", adaptim.Steepest, dict(lr=0.1, norm="frobenius", rule="majorization")
    ),
]

#: mirror descent (1)-(3) and exponentiated gradient (91) of issue 8 (the simplex ones take simplex points only)
ALL_OPTIMIZERS += [
    OptimizerCase("mirror_descent", adaptim.MirrorDescent, dict(lr=0.1)),
    OptimizerCase("mirror_descent_entropy", adaptim.MirrorDescent, dict(lr=0.5, mirror_map="entropy"), simplex=True),
    OptimizerCase("exponentiated_gradient", adaptim.ExponentiatedGradient, dict(lr=0.5), simplex=True),
]

#: the Stiefel manifold of issue 8 (Section 8.2): D x d matrices with D >= d (see ``OptimizerCase.shape``)
ALL_OPTIMIZERS += [
    OptimizerCase("stiefel_sgd", adaptim.StiefelSGD, dict(lr=0.1)),
    OptimizerCase(
        "stiefel_manifold_muon_ns_momentum",
        adaptim.StiefelSGD,
        dict(lr=0.05, method="manifold_muon", orthogonalize="newton_schulz", momentum=0.9),
    ),
]

#: the classes of issues 2, 3 and 8, each with its first (simplest) configuration above
_first: dict[type, OptimizerCase] = {}
for _case in ALL_OPTIMIZERS:
    _first.setdefault(_case.cls, _case)
ALL_OPTIMIZER_CLASSES: list[OptimizerCase] = list(_first.values())
assert len(ALL_OPTIMIZER_CLASSES) == 17

#: issue 8, the sphere (Section 8.1): each method, the trust region under each norm, momentum, rows as spheres
_SPHERE = [
    OptimizerCase("sphere_sgd", adaptim.SphereSGD, dict(lr=0.1)),
    OptimizerCase("sphere_sgd_tangent_momentum", adaptim.SphereSGD, dict(lr=0.1, method="tangent", momentum=0.9)),
    OptimizerCase("sphere_sgd_trust_region_rows", adaptim.SphereSGD, dict(lr=0.05, method="trust_region", dim=-1)),
    OptimizerCase("sphere_sgd_trust_region_l1", adaptim.SphereSGD, dict(lr=0.05, method="trust_region", norm="l1")),
    OptimizerCase(
        "sphere_sgd_trust_region_linf_momentum",
        adaptim.SphereSGD,
        dict(lr=0.02, method="trust_region", norm="linf", momentum=0.5),
    ),
]
ALL_OPTIMIZERS += _SPHERE
ALL_OPTIMIZER_CLASSES.append(_SPHERE[0])

_BY_ARGNAME = {
    "optimizer_case": ALL_OPTIMIZERS,
    "foreach_optimizer_case": [c for c in ALL_OPTIMIZERS if c.has_foreach],
    "stateful_optimizer_case": [c for c in ALL_OPTIMIZERS if c.per_param_state],
    "optimizer_class": ALL_OPTIMIZER_CLASSES,
}


def on_simplex(params) -> None:
    """Move every parameter in ``params`` (tensors, (name, tensor) pairs or param-group dicts) that is not a point of
    the probability simplex onto it, in place: softmax over all its entries (in float64, then rounded to its dtype).

    PyTorch's checklist draws parameters from randn; a simplex optimizer refuses those at construction, so its
    cases place them first. Points already on the simplex are left bitwise as they are (a copy of a trained
    parameter stays the same), and so are tensors the check cannot take (integer, complex, sparse, empty), which
    the optimizer refuses or skips itself."""
    from adaptim.mirror import simplex_violation

    for item in params:
        if isinstance(item, dict):
            on_simplex(item["params"] if not isinstance(item["params"], torch.Tensor) else [item["params"]])
            continue
        t = item[1] if isinstance(item, tuple) else item
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.is_sparse or t.numel() == 0:
            continue
        if simplex_violation(t.detach()) is not None:
            with torch.no_grad():
                t.copy_(torch.softmax(t.detach().double().reshape(-1), 0).reshape(t.shape).to(t.dtype))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for argname, cases in _BY_ARGNAME.items():
        if argname in metafunc.fixturenames:
            metafunc.parametrize(argname, cases, ids=[c.name for c in cases])


@pytest.fixture
def make_optimizer_case() -> type[OptimizerCase]:
    """:class:`OptimizerCase` itself: ``make_optimizer_case(name, cls, kwargs)`` for a one-off configuration."""
    return OptimizerCase
