"""Constrained tasks of the bench (Section 8 and Appendix D of the notes): each runs its own contenders.

A constrained task's weight lives on a manifold or on the probability simplex, so the bench's global optimizers
(which know nothing of the constraint) are not its contenders: :meth:`Task.contenders` names the task's own
configurations, each with its learning rate (chosen by ``adaptim bench --sweep --tasks <task>``: a 7-rate grid
around the entry's ``sweep_center``, extended at an edge; the tables are in docs/bench.md), and the unconstrained
AdamW as the baseline where it applies. Every run records the constraint's violation at the end
(``constraint_violation``).

* ``digits_sphere``: the digits MLP 64-128-10 with each row of its hidden weight ``layers.0.weight`` (128 x 64) at
  unit norm, :class:`~adaptim.manifolds.Sphere` ``(radius=1, dim=1)`` (8.1: "a row of layer W").
* ``digits_stiefel``: the same MLP with its hidden weight (D x d = 128 x 64) orthonormal, W^T W = I_64,
  :class:`~adaptim.manifolds.Stiefel` (8.2).
* ``mixture``: maximum-likelihood weights pi of a mixture of K fixed Gaussians on the probability simplex (the
  mixture-estimation problem of Helmbold, Schapire, Singer and Warmuth, 1997, on which exponentiated gradient (91)
  was compared with EM); convex in pi, with a certified optimum.

In the digits tasks every contender starts from the same model, already on the manifold (the initial hidden weight
projected onto it), and the constrained weight's optimizer is paired with AdamW on the other parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

import adaptim
from adaptim.bench.data import load_digits_split
from adaptim.bench.registry import OPTIMIZERS, OptimizerSpec, from_name
from adaptim.bench.tasks import DigitsTask, Evaluation, Task
from adaptim.manifolds import Manifold, Sphere, Stiefel
from adaptim.mirror import project_simplex

__all__ = ["JointOptimizer", "DigitsSphereTask", "DigitsStiefelTask", "MixtureTask", "CONSTRAINED_TASKS"]


class _JointState(Mapping):
    """The parts' ``state`` dicts read as one (parameter -> its state), live."""

    def __init__(self, parts: tuple[torch.optim.Optimizer, ...]) -> None:
        self.parts = parts

    def __getitem__(self, p: torch.Tensor) -> dict[str, Any]:
        for o in self.parts:
            if p in o.state:
                return o.state[p]
        raise KeyError(p)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for o in self.parts:
            yield from o.state

    def __len__(self) -> int:
        return sum(len(o.state) for o in self.parts)


class JointOptimizer(torch.optim.Optimizer):
    """Several optimizers over disjoint parameters, stepped as one (a constrained weight with one, the rest with
    another).

    ``param_groups`` is the list of the parts' own group dicts, so a scheduler that sets ``group["lr"]`` drives
    every part; ``state`` reads the parts' states (read-only). ``state_dict()`` is ``{"parts": [each part's
    state_dict()]}`` and :meth:`load_state_dict` gives each part its own.

    Raises:
        ValueError: no parts, or a parameter in two parts.
    """

    def __init__(self, *parts: torch.optim.Optimizer) -> None:
        params = [p for o in parts for g in o.param_groups for p in g["params"]]
        if not parts:
            raise ValueError("JointOptimizer needs at least one optimizer")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("the optimizers of a JointOptimizer must not share a parameter")
        super().__init__(params, {})
        self.parts = tuple(parts)
        self.param_groups = [g for o in self.parts for g in o.param_groups]
        self.state = _JointState(self.parts)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if hasattr(self, "parts"):  # (torch.optim.Optimizer.__init__ adds the first one)
            raise TypeError("add a param group to one of the parts of a JointOptimizer, not to the joint one")
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Evaluate ``closure`` once (with grad enabled), then step every part; return the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for o in self.parts:
            o.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"parts": [o.state_dict() for o in self.parts]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict["parts"]
        if len(saved) != len(self.parts):
            raise ValueError(f"state_dict holds {len(saved)} parts, this JointOptimizer has {len(self.parts)}")
        for o, s in zip(self.parts, saved):
            o.load_state_dict(s)
        self.param_groups = [g for o in self.parts for g in o.param_groups]


# ------------------------------------------------------------------------------------------- the digits MLP
#: the digits MLP's hidden weight, the constrained parameter of the digits tasks
HIDDEN = "layers.0.weight"
#: weight decay of the AdamW side (the registry's ``adamw``); biases are not decayed, as create_optimizer does
ADAMW_DECAY = 0.01


def _adamw_lr() -> float:
    """The baseline's rate: the registry's ``adamw`` rate on ``digits``."""
    return OPTIMIZERS["adamw"].lr_for("digits")


def _rest_groups(model: nn.Module, held: torch.Tensor) -> list[dict[str, Any]]:
    """AdamW param groups of every parameter but ``held``: matrices decayed, vectors (biases) not."""
    rest = [p for p in model.parameters() if p is not held]
    return [
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": ADAMW_DECAY},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
    ]


class _ConstrainedDigits(DigitsTask):
    """The digits MLP with its hidden weight on :meth:`manifold` (subclasses choose it and their contenders)."""

    #: the contender names that ignore the constraint (their violation is reported, not judged)
    unconstrained = ("adamw",)
    #: the largest violation at the end that counts as rounding (float32 weights)
    tolerance = 1e-5

    def manifold(self) -> Manifold:
        raise NotImplementedError

    @staticmethod
    def hidden_weight(model: nn.Module) -> torch.Tensor:
        return model.get_parameter(HIDDEN)

    def build_model(self) -> nn.Module:
        model = super().build_model()
        w = self.hidden_weight(model)
        with torch.no_grad():
            w.copy_(self.manifold().project_point(w))  # every contender starts on the manifold
        return model

    def _violation(self, w: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    @torch.no_grad()
    def constraint_violation(self, model: nn.Module) -> dict[str, float]:
        return self._violation(self.hidden_weight(model).detach().double())

    def _manifold_adamw(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        """AdamW with the hidden weight in a group on the manifold (no decay there: the retraction would undo it)."""
        w = self.hidden_weight(model)
        group = {"params": [w], "manifold": self.manifold(), "weight_decay": 0.0}
        return adaptim.AdamW([group, *_rest_groups(model, w)], lr=lr, weight_decay=ADAMW_DECAY)

    def _paired(self, make: Callable[[list[torch.Tensor], float], torch.optim.Optimizer]) -> Callable:
        """A factory: ``make([hidden weight], lr)`` on the constrained weight, AdamW at the baseline's rate on the
        rest (the scheduler scales both)."""

        def build(model: nn.Module, lr: float) -> torch.optim.Optimizer:
            w = self.hidden_weight(model)
            return JointOptimizer(make([w], lr), adaptim.AdamW(_rest_groups(model, w), lr=_adamw_lr()))

        return build

    def _baseline(self) -> OptimizerSpec:
        base = OPTIMIZERS["adamw"]
        return OptimizerSpec(
            "adamw",
            from_name("adamw"),
            lrs={self.name: _adamw_lr()},
            sweep_center=base.sweep_center,
            description=f"unconstrained {base.description}, the registry's digits rate",
        )

    def targets(self, runs):
        out = []
        for r in runs:
            if r["skipped"] or r["optimizer"] in self.unconstrained:
                continue
            v = r.get("constraint_violation") or {}
            worst = max(v.values(), default=None) if None not in v.values() else None
            out.append(
                (
                    f"{r['optimizer']}: constraint violation at the end "
                    f"{'-' if worst is None else format(worst, '.2e')} <= {self.tolerance:g}",
                    worst is not None and worst <= self.tolerance,
                )
            )
        return out


class DigitsSphereTask(_ConstrainedDigits):
    """The digits MLP with each row of its hidden weight at unit norm (Section 8.1, Sphere(radius=1, dim=1)).

    Contenders: ``adamw`` (unconstrained), ``sphere_sgd`` (SphereSGD (72) with momentum 0.9 on the hidden weight,
    AdamW on the rest), ``adamw_sphere`` (AdamW, the hidden weight in a group with ``"manifold"``), ``muon_sphere``
    (Muon's orthogonalized step kept on the sphere for the hidden weight, AdamW on the rest: one Muon optimizer).
    Violation: max over rows of | ||row||_2 - 1 |.
    """

    name = "digits_sphere"
    description = "digits MLP, hidden weight with unit-norm rows (sphere, 8.1; cross-entropy, nats)"
    constraint = "each row of layers.0.weight (128 x 64) at unit norm: Sphere(radius=1, dim=1)"
    constraint_metrics: ClassVar[dict[str, str]] = {"row_norm_error": "max abs(norm(row) - 1)"}

    def manifold(self) -> Manifold:
        return Sphere(radius=1.0, dim=1)

    def _violation(self, w):
        return {"row_norm_error": float((torch.linalg.vector_norm(w, dim=1) - 1).abs().max())}

    def _muon(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        groups = adaptim.muon_param_groups(model, adamw_lr=lr)
        hidden = self.hidden_weight(model)
        for g in groups:
            if g["use_muon"]:
                assert len(g["params"]) == 1 and g["params"][0] is hidden  # one hidden layer: its weight alone
                g["manifold"] = self.manifold()
        return adaptim.Muon(groups, lr=lr, adjust_lr="match_rms_adamw")

    def contenders(self) -> list[OptimizerSpec]:
        t = self.name
        return [
            self._baseline(),
            OptimizerSpec(
                "sphere_sgd",
                self._paired(
                    lambda p, lr: adaptim.SphereSGD(p, lr=lr, radius=1.0, dim=1, method="tangent", momentum=0.9)
                ),
                lrs={t: 0.3},
                sweep_center=0.3,
                description="SphereSGD(method='tangent', momentum=0.9) (72) on the rows, AdamW on the rest",
            ),
            OptimizerSpec(
                "adamw_sphere",
                self._manifold_adamw,
                lrs={t: 0.1},
                sweep_center=3e-3,
                description="AdamW, the hidden weight in a group with 'manifold': Sphere(radius=1, dim=1)",
            ),
            OptimizerSpec(
                "muon_sphere",
                self._muon,
                lrs={t: 0.3},
                sweep_center=0.01,
                description="Muon on the hidden weight kept on Sphere(radius=1, dim=1), AdamW on the rest",
            ),
        ]

    def info(self):
        return {**super().info(), **_constraint_info(self)}


class DigitsStiefelTask(_ConstrainedDigits):
    """The digits MLP with an orthonormal hidden weight, W^T W = I_64 for W of 128 x 64 (Section 8.2, Stiefel).

    Contenders: ``adamw`` (unconstrained), ``stiefel_project`` (StiefelSGD "project", the retraction (77) of a
    momentum step), ``stiefel_manifold_muon`` (StiefelSGD "manifold_muon", (78)-(79)), each on the hidden weight
    with AdamW on the rest, and ``adamw_stiefel`` (AdamW, the hidden weight in a group with ``"manifold":
    Stiefel()``). Violation: ||W^T W - I||_F.
    """

    name = "digits_stiefel"
    description = "digits MLP, orthonormal hidden weight (Stiefel, 8.2; cross-entropy, nats)"
    constraint = "layers.0.weight (128 x 64) orthonormal, W^T W = I: Stiefel()"
    constraint_metrics: ClassVar[dict[str, str]] = {"orthonormality_error": "norm(W^T W - I) (Frobenius)"}
    tolerance = 1e-4  # a Frobenius norm over 64 x 64 entries, each at float32 rounding

    def manifold(self) -> Manifold:
        return Stiefel()

    def _violation(self, w):
        eye = torch.eye(w.shape[1], dtype=w.dtype)
        return {"orthonormality_error": float(torch.linalg.matrix_norm(w.T @ w - eye))}

    def contenders(self) -> list[OptimizerSpec]:
        t = self.name
        return [
            self._baseline(),
            OptimizerSpec(
                "stiefel_project",
                self._paired(lambda p, lr: adaptim.StiefelSGD(p, lr=lr, method="project", momentum=0.9)),
                lrs={t: 0.1},
                sweep_center=0.3,
                description="StiefelSGD(method='project', momentum=0.9): Orth(W - lr B) (77), AdamW on the rest",
            ),
            OptimizerSpec(
                "stiefel_manifold_muon",
                self._paired(
                    lambda p, lr: adaptim.StiefelSGD(p, lr=lr, method="manifold_muon", momentum=0.9, dual_steps=20)
                ),
                lrs={t: 0.1},
                sweep_center=0.03,
                description="StiefelSGD(method='manifold_muon', momentum=0.9, dual_steps=20) (78)-(79), AdamW on the "
                "rest",
            ),
            OptimizerSpec(
                "adamw_stiefel",
                self._manifold_adamw,
                lrs={t: 0.1},
                sweep_center=3e-3,
                description="AdamW, the hidden weight in a group with 'manifold': Stiefel()",
            ),
        ]

    def info(self):
        return {**super().info(), **_constraint_info(self)}


# ------------------------------------------------------------------------------------------------ mixture
class MixtureWeights(nn.Module):
    """The mixture weights pi, a float64 vector of ``k`` entries starting at the uniform point 1/k."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.pi = nn.Parameter(torch.full((k,), 1.0 / k, dtype=torch.float64))


class _Softmax(nn.Module):
    """pi = softmax(logits), with the logits log pi when set from a point of the open simplex (the usual workaround:
    an unconstrained parameter mapped onto the simplex)."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, 0)

    def right_inverse(self, pi: torch.Tensor) -> torch.Tensor:
        return torch.log(pi)


def _projected_sgd(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """MirrorDescent("euclidean") (gradient descent) followed by the Euclidean projection onto the simplex (86)."""
    opt = adaptim.MirrorDescent(model.parameters(), lr=lr, mirror_map="euclidean")

    @torch.no_grad()
    def project(optimizer, args, kwargs) -> None:
        for g in optimizer.param_groups:
            for p in g["params"]:
                p.copy_(project_simplex(p))

    opt.register_step_post_hook(project)
    return opt


def _adam_softmax(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    parametrize.register_parametrization(model, "pi", _Softmax())  # the parameter is now the logits, log pi
    return adaptim.Adam(model.parameters(), lr=lr)


class MixtureTask(Task):
    """Maximum-likelihood weights of a mixture of K fixed Gaussians, on the probability simplex (float64, full batch).

    Data: scikit-learn's digits (the bench's split: 1,442 training / 355 validation images), pixels / 16, projected
    onto the top ``dims`` principal directions of the training images (numpy's SVD). Components: K isotropic
    Gaussians N(c_k, h^2 I) whose centers c_k are K training images at evenly spaced indices, bandwidth h. The
    objective is the mean negative log-likelihood of the training images,

        f(pi) = -(1/n) sum_i log sum_k pi_k N(z_i; c_k, h^2 I),      pi on the simplex,

    convex in pi (log of a linear function), computed stably as -(1/n) sum_i (log(S_i . pi) + m_i) with
    m_i = max_k log N(z_i; c_k, h^2 I) and S_ik = exp(log N_ik - m_i). Validation loss: the same on the held-out
    images. Its optimum f* comes from SciPy's SLSQP, polished by EM steps pi_k <- pi_k r_k with
    r_k = (1/n) sum_i S_ik / (S_i . pi) until the Frank-Wolfe gap max_k r_k - 1, an upper bound of f(pi) - f*
    (convexity: f(pi) - f* <= grad f(pi) . (pi - e_k) for the best vertex e_k), is at most 1e-12.

    Contenders: ``exponentiated_gradient`` (91), ``mirror_entropy`` (MirrorDescent with the entropy map, the same
    update), ``projected_sgd`` (gradient descent then the Euclidean projection onto the simplex) and
    ``adam_softmax`` (Adam on logits, pi = softmax(logits)). Violation: | sum pi - 1 | and min pi.

    Args:
        components: K.
        dims: principal directions kept.
        bandwidth: h (in units of pixel / 16).
    """

    name = "mixture"
    description = "mixture weights of K fixed Gaussians on the digits' principal components (simplex; NLL, nats)"
    steps = 300
    log_every = 1
    eval_every = 25
    sweep_metric = "optimality_gap"
    constraint = "pi on the probability simplex (entries >= 0 summing to 1)"
    constraint_metrics: ClassVar[dict[str, str]] = {"sum_error": "abs(sum pi - 1)", "min_weight": "min pi"}
    tolerance = 1e-12  # | sum pi - 1 | in float64
    unconstrained = ()

    def __init__(self, components: int = 32, dims: int = 10, bandwidth: float = 0.5, steps: int | None = None) -> None:
        if components < 2 or dims < 1 or not bandwidth > 0:
            raise ValueError(
                f"components must be >= 2, dims >= 1 and bandwidth > 0, got {components!r}, {dims!r}, {bandwidth!r}"
            )
        self.k, self.dims, self.bandwidth = components, dims, bandwidth
        if steps is not None:
            self.steps = steps
        self.fit = None

    def setup(self) -> None:
        if self.fit is not None:
            return
        d = load_digits_split()
        x, xv = d.x_train.double().numpy(), d.x_val.double().numpy()
        mean = x.mean(0)
        vt = np.linalg.svd(x - mean, full_matrices=False)[2][: self.dims]
        vt *= np.sign(vt[np.arange(self.dims), np.abs(vt).argmax(1)])[:, None]  # a fixed sign per direction
        z, zv = (x - mean) @ vt.T, (xv - mean) @ vt.T
        self.centers = z[np.linspace(0, len(z) - 1, self.k).astype(np.int64)]
        self.fit, self.val = self._scaled(z), self._scaled(zv)
        self.pi_star, self.f_star, self.certificate, self.ref_iterations = self._reference_optimum()

    def _scaled(self, z: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, m): S_ik = exp(log N(z_i; c_k) - m_i) in (0, 1] with m_i the row's max log-density."""
        h2 = self.bandwidth**2
        d2 = ((z[:, None, :] - self.centers[None]) ** 2).sum(-1)
        logn = -d2 / (2 * h2) - 0.5 * self.dims * math.log(2 * math.pi * h2)
        m = logn.max(1, keepdims=True)
        return torch.from_numpy(np.exp(logn - m)), torch.from_numpy(m[:, 0])

    @staticmethod
    def _nll(pi: torch.Tensor, split: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        s, m = split
        return -(torch.log(s @ pi) + m).mean()

    def frank_wolfe_gap(self, pi: torch.Tensor) -> float:
        """max_k r_k - 1 >= f(pi) - f*, for pi on the simplex (see the class doc)."""
        s = self.fit[0]
        return float((s / (s @ pi)[:, None]).mean(0).max() - 1)

    def _reference_optimum(self) -> tuple[np.ndarray, float, float, int]:
        from scipy.optimize import minimize

        s, m = (t.numpy() for t in self.fit)
        k = self.k

        def fun(pi: np.ndarray) -> tuple[float, np.ndarray]:
            q = s @ pi
            return float(-(np.log(q) + m).mean()), -(s / q[:, None]).mean(0)

        res = minimize(
            fun,
            np.full(k, 1.0 / k),
            jac=True,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * k,
            constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1.0, "jac": lambda p: np.ones(k)}],
            options={"ftol": 1e-16, "maxiter": 1000},
        )
        pi = np.clip(res.x, 0.0, None)
        pi = 0.999 * pi / pi.sum() + 0.001 / k  # every component back in play: EM cannot revive an exact zero
        its = 0
        while its < 100_000:
            r = (s / (s @ pi)[:, None]).mean(0)
            if r.max() - 1 <= 1e-12:
                break
            pi, its = pi * r, its + 1
        pi = pi / pi.sum()
        pt = torch.from_numpy(pi)
        return pi, float(self._nll(pt, self.fit)), self.frank_wolfe_gap(pt), its

    def build_model(self) -> nn.Module:
        return MixtureWeights(self.k)

    def batch_loss(self, model, generator):
        return self._nll(model.pi, self.fit)

    @torch.no_grad()
    def evaluate(self, model):
        pi = model.pi
        return Evaluation(train_loss=self._nll(pi, self.fit).item(), val_loss=self._nll(pi, self.val).item())

    def optimality_gap(self, train_loss):
        return train_loss - self.f_star

    @torch.no_grad()
    def constraint_violation(self, model: nn.Module) -> dict[str, float]:
        pi = model.pi.detach()
        return {"sum_error": float((pi.sum() - 1).abs()), "min_weight": float(pi.min())}

    def contenders(self) -> list[OptimizerSpec]:
        t = self.name
        return [
            OptimizerSpec(
                "exponentiated_gradient",
                lambda model, lr: adaptim.ExponentiatedGradient(model.parameters(), lr=lr),
                lrs={t: 1.0},
                sweep_center=1.0,
                description="ExponentiatedGradient (91)",
            ),
            OptimizerSpec(
                "mirror_entropy",
                lambda model, lr: adaptim.MirrorDescent(model.parameters(), lr=lr, mirror_map="entropy"),
                lrs={t: 1.0},
                sweep_center=1.0,
                description="MirrorDescent(mirror_map='entropy'), (1)-(3) with (84): the update (91)",
            ),
            OptimizerSpec(
                "projected_sgd",
                _projected_sgd,
                lrs={t: 0.03},
                sweep_center=0.1,
                description="MirrorDescent('euclidean') then the Euclidean projection onto the simplex (86)",
            ),
            OptimizerSpec(
                "adam_softmax",
                _adam_softmax,
                lrs={t: 0.3},
                sweep_center=0.03,
                description="Adam on logits, pi = softmax(logits)",
            ),
        ]

    def progress_target(self, run: dict[str, Any], fraction: float) -> tuple[str, bool]:
        """Progress is judged on the gap f - f* (a negative log-likelihood of densities has no natural zero)."""
        initial, final = run["curve"][0][1], run["optimality_gap"]
        start = None if initial is None else initial - self.f_star
        ok = start is not None and final is not None and final <= fraction * start
        return (
            f"{run['optimizer']}: final optimality gap {final if final is None else format(final, '.3g')} <= "
            f"{fraction:g} x initial {start if start is None else format(start, '.3g')}",
            ok,
        )

    def targets(self, runs):
        out = []
        for r in runs:
            if r["skipped"]:
                continue
            v = r.get("constraint_violation") or {}
            ok = v.get("sum_error") is not None and v["sum_error"] <= self.tolerance and v["min_weight"] >= 0
            out.append((f"{r['optimizer']}: |sum pi - 1| <= {self.tolerance:g} and min pi >= 0 at the end", ok))
        return out

    def info(self):
        return {
            **super().info(),
            "model": f"mixture weights of {self.k} Gaussians N(c_k, {self.bandwidth:g}^2 I) in {self.dims} "
            "principal components, float64, starting uniform",
            "n_train": len(self.fit[1]),
            "n_val": len(self.val[1]),
            "optimum": self.f_star,
            "optimum_solver": f"scipy.optimize.minimize SLSQP, then {self.ref_iterations} EM steps",
            "optimum_certificate": self.certificate,
            "optimum_support": int((self.pi_star > 1e-9).sum()),
            **_constraint_info(self),
        }


def _constraint_info(task: Task) -> dict[str, Any]:
    """The ``meta`` facts of a constrained task's constraint: what, the tolerance, the contenders that ignore it."""
    return {
        "constraint": task.constraint,
        "constraint_metrics": dict(task.constraint_metrics),
        "constraint_tolerance": task.tolerance,
        "unconstrained_contenders": list(task.unconstrained),
    }


#: the constrained tasks, by name (registered in :data:`adaptim.bench.tasks.TASKS`)
CONSTRAINED_TASKS: dict[str, Callable[..., Task]] = {
    "digits_sphere": DigitsSphereTask,
    "digits_stiefel": DigitsStiefelTask,
    "mixture": MixtureTask,
}
