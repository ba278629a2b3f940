"""The bench's tasks: what is trained, on which data, with which loss, and what counts as success.

A :class:`Task` loads its data once (:meth:`Task.setup`), builds a fresh model from the current torch seed,
gives the minibatch objective of each step and evaluates a model on fixed training and validation sets.
Every size is a constructor argument, so a test can run a task in a fraction of a second.

* ``digits``: an MLP 64-128-10 on scikit-learn's handwritten digits, cross-entropy in nats.
* ``charlm``: a 2-layer causal transformer over the characters of the Python standard library's source,
  losses in bits per character.
* ``logreg``: L2-regularized logistic regression on the standardized breast-cancer table (convex), full batch;
  the optimality gap is measured against SciPy's L-BFGS.

The constrained tasks (``digits_sphere``, ``digits_stiefel``, ``mixture``) are in :mod:`adaptim.bench.constrained`
and registered in :data:`TASKS` at the end of this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adaptim.bench.data import CHAR_VOCAB_SIZE, load_breast_cancer_split, load_digits_split, load_stdlib_corpus
from adaptim.bench.models import MLP, CharTransformer

if TYPE_CHECKING:
    from adaptim.bench.registry import OptimizerSpec

__all__ = ["Evaluation", "Task", "DigitsTask", "CharLMTask", "LogRegTask", "TASKS", "DEFAULT_TASKS", "make_task"]

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Evaluation:
    """Losses of a model on the task's fixed evaluation sets (in the task's ``loss_unit``)."""

    train_loss: float
    val_loss: float
    val_accuracy: float | None = None


class Task:
    """Base class of a bench task (see the module docstring). Subclasses set the class attributes below."""

    name: str = ""
    description: str = ""
    loss_unit: str = "nats"
    #: default number of optimizer steps, and the interval (in steps) of logged and evaluated curve points
    steps: int = 100
    log_every: int = 10
    eval_every: int = 50
    #: steps of linear warm-up, as a fraction of the run, before the cosine decay
    warmup_fraction: float = 0.05
    #: the run-record field ``adaptim bench --sweep`` minimizes to choose a learning rate
    sweep_metric: str = "final_val_loss"

    def setup(self) -> None:
        """Load the data (idempotent; called once before the first run)."""

    def build_model(self) -> nn.Module:
        """A freshly initialized model; the runner seeds torch just before calling this."""
        raise NotImplementedError

    def batch_loss(self, model: nn.Module, generator: torch.Generator) -> torch.Tensor:
        """The objective of one training step (a scalar tensor with a graph), drawing a batch from ``generator``."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> Evaluation:
        """Losses on the fixed training and validation evaluation sets."""
        raise NotImplementedError

    @torch.no_grad()
    def val_loss(self, model: nn.Module) -> float:
        """The validation loss alone (for the curve's intermediate points)."""
        return self.evaluate(model).val_loss

    def optimality_gap(self, train_loss: float) -> float | None:
        """``train_loss`` minus the optimum of the training objective, where one is known; else ``None``."""
        return None

    def info(self) -> dict[str, Any]:
        """Facts about the data and model for the results' ``meta`` (after :meth:`setup`)."""
        return {"description": self.description, "loss_unit": self.loss_unit, "steps": self.steps}

    def targets(self, runs: list[dict[str, Any]]) -> list[tuple[str, bool]]:
        """Task-specific quality targets as (statement, holds) pairs, judged on this task's run records."""
        return []

    # A constrained task (adaptim.bench.constrained) runs its own contenders and reports its constraint's violation.
    #: name -> label of each number :meth:`constraint_violation` reports (empty: the task has no constraint)
    constraint_metrics: ClassVar[dict[str, str]] = {}

    def contenders(self) -> list[OptimizerSpec] | None:
        """The task's own optimizer configurations (with their rates), run instead of the bench's registry; ``None``
        (the default): every registered optimizer."""
        return None

    def constraint_violation(self, model: nn.Module) -> dict[str, float]:
        """How far ``model`` is from the constraint, one number per key of :attr:`constraint_metrics`."""
        return {}

    def progress_target(self, run: dict[str, Any], fraction: float) -> tuple[str, bool] | None:
        """The (statement, holds) of "real progress" for ``run``; ``None``: the runner's default (final training
        loss at most ``fraction`` x the initial one)."""
        return None


def _run_of(runs: list[dict[str, Any]], optimizer: str) -> dict[str, Any] | None:
    return next((r for r in runs if r["optimizer"] == optimizer and not r.get("skipped")), None)


class DigitsTask(Task):
    """MLP classifier on the handwritten digits; fixed stratified split (every 5th image per class to validation).

    Args:
        hidden: widths of the hidden layers.
        batch_size: images per step, drawn with replacement.
        max_train: keep only the first training images (tests).
    """

    name = "digits"
    description = "MLP classifier on scikit-learn's 8x8 handwritten digits (cross-entropy, nats)"
    steps = 300
    log_every = 10
    eval_every = 50

    def __init__(
        self,
        hidden: tuple[int, ...] = (128,),
        batch_size: int = 64,
        max_train: int | None = None,
        steps: int | None = None,
    ) -> None:
        self.hidden, self.batch_size, self.max_train = tuple(hidden), batch_size, max_train
        if steps is not None:
            self.steps = steps
        self.data = None

    def setup(self) -> None:
        if self.data is None:
            self.data = load_digits_split(max_train=self.max_train)

    def build_model(self) -> nn.Module:
        return MLP((64, *self.hidden, 10))

    def batch_loss(self, model, generator):
        idx = torch.randint(0, len(self.data.y_train), (self.batch_size,), generator=generator)
        return F.cross_entropy(model(self.data.x_train[idx]), self.data.y_train[idx])

    @torch.no_grad()
    def evaluate(self, model):
        d = self.data
        logits = model(d.x_val)
        return Evaluation(
            train_loss=F.cross_entropy(model(d.x_train), d.y_train).item(),
            val_loss=F.cross_entropy(logits, d.y_val).item(),
            val_accuracy=(logits.argmax(1) == d.y_val).double().mean().item(),
        )

    def info(self):
        return {
            **super().info(),
            "model": f"MLP {'-'.join(map(str, (64, *self.hidden, 10)))}, GELU",
            "n_train": len(self.data.y_train),
            "n_val": len(self.data.y_val),
            "batch_size": self.batch_size,
        }

    def targets(self, runs):
        r = _run_of(runs, "adamw")
        if r is None:
            return []
        return [(f"AdamW validation accuracy {r['val_accuracy']:.1%} >= 95%", r["val_accuracy"] >= 0.95)]


class CharLMTask(Task):
    """Causal transformer language model over the standard library's characters; losses in bits per character.

    Training windows of ``context + 1`` characters start at positions drawn uniformly from the training text;
    the evaluation sets are ``n_eval`` windows at evenly spaced fixed positions of each split.

    Args:
        context, d_model, n_head, n_layer: the model (see :class:`CharTransformer`).
        batch_size: windows per step.
        n_eval: windows per evaluation set.
        max_files: read only the first standard-library files (tests).
    """

    name = "charlm"
    description = "causal transformer over the characters of the Python standard library's source (bits/char)"
    loss_unit = "bits/char"
    steps = 400
    log_every = 10
    eval_every = 100

    def __init__(
        self,
        context: int = 64,
        d_model: int = 64,
        n_head: int = 4,
        n_layer: int = 2,
        batch_size: int = 32,
        n_eval: int = 256,
        max_files: int | None = None,
        steps: int | None = None,
    ) -> None:
        self.context, self.d_model, self.n_head, self.n_layer = context, d_model, n_head, n_layer
        self.batch_size, self.n_eval, self.max_files = batch_size, n_eval, max_files
        if steps is not None:
            self.steps = steps
        self.corpus = None

    def setup(self) -> None:
        if self.corpus is not None:
            return
        self.corpus = load_stdlib_corpus(max_files=self.max_files)
        self.eval_train = self._fixed_windows(self.corpus.train)
        self.eval_val = self._fixed_windows(self.corpus.val)

    def _fixed_windows(self, text: torch.Tensor) -> torch.Tensor:
        starts = np.linspace(0, len(text) - self.context - 1, self.n_eval).astype(np.int64)
        return self._windows(text, torch.from_numpy(starts))

    def _windows(self, text: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        offsets = torch.arange(self.context + 1)
        return text[starts[:, None] + offsets].long()  # (n, context + 1)

    def build_model(self) -> nn.Module:
        return CharTransformer(CHAR_VOCAB_SIZE, self.context, self.d_model, self.n_head, self.n_layer)

    @staticmethod
    def _bits(model: nn.Module, w: torch.Tensor) -> torch.Tensor:
        logits = model(w[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1)) / LN2

    def batch_loss(self, model, generator):
        text = self.corpus.train
        starts = torch.randint(0, len(text) - self.context - 1, (self.batch_size,), generator=generator)
        return self._bits(model, self._windows(text, starts))

    @torch.no_grad()
    def evaluate(self, model):
        return Evaluation(train_loss=self._bits(model, self.eval_train).item(), val_loss=self.val_loss(model))

    @torch.no_grad()
    def val_loss(self, model):
        return self._bits(model, self.eval_val).item()

    def info(self):
        c = self.corpus
        n_params = sum(p.numel() for p in self.build_model().parameters())  # (the runner reseeds every run)
        return {
            **super().info(),
            "model": f"causal transformer, {self.n_layer} layers, d_model {self.d_model}, {self.n_head} heads, "
            f"context {self.context}, {n_params} parameters",
            "corpus": f"{len(c.files)} top-level .py files of the standard library, every 10th to validation",
            "n_files": len(c.files),
            "n_train_chars": int(c.train.numel()),
            "n_val_chars": int(c.val.numel()),
            "corpus_sha256": c.sha256,
            "vocab_size": CHAR_VOCAB_SIZE,
            "unigram_entropy_bits": c.unigram_entropy_bits,
            "target_bits": 0.8 * c.unigram_entropy_bits,
            "batch_size": self.batch_size,
            "eval_chars": self.n_eval * self.context,
        }

    def targets(self, runs):
        r = _run_of(runs, "adamw")
        if r is None:
            return []
        h = self.corpus.unigram_entropy_bits
        return [
            (
                f"AdamW validation {r['final_val_loss']:.3f} bits/char < 80% of the unigram entropy "
                f"{h:.3f} bits = {0.8 * h:.3f}",
                r["final_val_loss"] < 0.8 * h,
            )
        ]


class LogRegTask(Task):
    """L2-regularized logistic regression on the standardized breast-cancer table, full batch, float64.

    Objective f(w, b) = mean_i log(1 + exp(-s_i (x_i.w + b))) + (l2 / 2) ||w||^2 with s_i = +-1 (the bias is not
    regularized); the optimum f* comes from SciPy's L-BFGS-B to a gradient norm of 1e-10. The model starts at 0.

    Args:
        l2: the regularization strength lambda > 0 (makes the problem strongly convex in w).
    """

    name = "logreg"
    description = "L2-regularized logistic regression on scikit-learn's breast-cancer table (convex, nats)"
    steps = 300
    log_every = 1
    eval_every = 25
    sweep_metric = "optimality_gap"

    def __init__(self, l2: float = 1e-3, steps: int | None = None) -> None:
        if not l2 > 0:
            raise ValueError(f"l2 must be > 0, got {l2!r}")
        self.l2 = l2
        if steps is not None:
            self.steps = steps
        self.data = None

    def setup(self) -> None:
        if self.data is not None:
            return
        self.data = load_breast_cancer_split(dtype=torch.float64)
        self.theta_star, self.f_star, self.ref_grad_norm, self.ref_iterations = self._reference_optimum()

    def _reference_optimum(self) -> tuple[np.ndarray, float, float, int]:
        """(argmin [w, b], f*, final gradient norm, iterations) of SciPy's L-BFGS-B on the objective, float64."""
        from scipy.optimize import minimize

        x = self.data.x_train.numpy()
        y = self.data.y_train.numpy().astype(np.float64)
        n, d = x.shape

        def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:d], theta[d]
            z = x @ w + b
            f = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * self.l2 * w @ w
            r = (1.0 / (1.0 + np.exp(-z)) - y) / n  # d f / d z_i
            return f, np.concatenate([x.T @ r + self.l2 * w, [r.sum()]])

        res = minimize(
            fun,
            np.zeros(d + 1),
            jac=True,
            method="L-BFGS-B",
            options={"gtol": 1e-10, "ftol": 0.0, "maxiter": 10_000, "maxfun": 20_000},
        )
        # evaluate f* with the same torch code as the runs, so the gap has no formula-rounding offset
        model = self.model_at(res.x)
        with torch.no_grad():
            f_star = self._objective(model, self.data.x_train, self.data.y_train).item()
        return res.x, f_star, float(np.linalg.norm(res.jac)), int(res.nit)

    def model_at(self, theta: np.ndarray) -> nn.Module:
        """A model with weights ``theta[:-1]`` and bias ``theta[-1]``."""
        model = self.build_model()
        with torch.no_grad():
            model.weight.copy_(torch.from_numpy(np.asarray(theta[:-1], dtype=np.float64)).view(1, -1))
            model.bias.fill_(float(theta[-1]))
        return model

    def build_model(self) -> nn.Module:
        model = nn.Linear(self.data.x_train.shape[1], 1, dtype=torch.float64)
        nn.init.zeros_(model.weight)
        nn.init.zeros_(model.bias)
        return model

    def _logistic(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(model(x).squeeze(1), y.to(x.dtype))

    def _objective(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._logistic(model, x, y) + 0.5 * self.l2 * model.weight.pow(2).sum()

    def batch_loss(self, model, generator):
        return self._objective(model, self.data.x_train, self.data.y_train)

    @torch.no_grad()
    def evaluate(self, model):
        d = self.data
        acc = ((model(d.x_val).squeeze(1) > 0).long() == d.y_val).double().mean().item()
        return Evaluation(
            train_loss=self._objective(model, d.x_train, d.y_train).item(),
            val_loss=self._logistic(model, d.x_val, d.y_val).item(),
            val_accuracy=acc,
        )

    def optimality_gap(self, train_loss):
        return train_loss - self.f_star

    def info(self):
        return {
            **super().info(),
            "model": "logistic regression, 30 weights + bias, float64",
            "n_train": len(self.data.y_train),
            "n_val": len(self.data.y_val),
            "l2": self.l2,
            "optimum": self.f_star,
            "optimum_solver": "scipy.optimize.minimize L-BFGS-B, gtol 1e-10",
            "optimum_grad_norm": self.ref_grad_norm,
            "optimum_iterations": self.ref_iterations,
        }

    def targets(self, runs):
        done = [r for r in runs if not r.get("skipped")]
        return [
            (
                "optimality gap reported for every optimizer run",
                all(r["optimality_gap"] is not None and math.isfinite(r["optimality_gap"]) for r in done),
            )
        ]


#: task name -> constructor (called with keyword options; the defaults are the bench's default setting)
TASKS: dict[str, Callable[..., Task]] = {"digits": DigitsTask, "charlm": CharLMTask, "logreg": LogRegTask}
#: the tasks ``adaptim bench`` runs when none are named
DEFAULT_TASKS: tuple[str, ...] = ("digits", "charlm", "logreg")


def make_task(name: str, **options: Any) -> Task:
    """Construct the task called ``name`` with ``options`` (constructor arguments).

    Raises:
        KeyError: unknown name (the message lists the valid names).
    """
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name](**options)


def _register_constrained() -> None:
    from adaptim.bench.constrained import CONSTRAINED_TASKS  # (it imports this module's classes)

    TASKS.update(CONSTRAINED_TASKS)


_register_constrained()
