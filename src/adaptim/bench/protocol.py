"""The bench's protocol: one search space for every optimizer, seeds, horizons, the target and steps-to-target.

* **Equal tuning.** Every optimizer gets the same ``N`` quasirandom points of the unit cube (a scrambled Sobol
  sequence, :func:`sobol_points`, with the fixed seed :data:`SOBOL_SEED`), mapped onto one search space
  (:class:`SearchSpace`): lr log-uniform over ``10^(+-lr_decades)`` around the optimizer's center on the task,
  1 - beta2 log-uniform in [1e-3, 1e-1], the per-step decoupled decay ``lr x weight_decay`` log-uniform in
  [1e-5, 1e-2] (so ``weight_decay`` = that / lr), warm-up fraction uniform in [0, 0.2]. A dimension the method
  lacks (:class:`adaptim.bench.registry.OptimizerSpec` ``tunes_beta2``, ``tunes_weight_decay``) is ``None``.
  Trials run on the tuning seeds (:func:`tuning_seeds`, 1000 and up) and are selected on the final validation
  loss (:func:`select_best`); the reported runs use other seeds (:func:`report_seeds`, 0 and up) and the test split.
* **Horizons.** A horizon h re-runs the whole schedule (warm-up and cosine decay) compressed into
  ``round(h x steps)`` steps (:func:`horizon_steps`).
* **Target and steps-to-target.** The target of a task is the tuned AdamW's median final test loss at horizon 1
  (:func:`target_loss`); AdamW also runs at horizon 1.5 (:data:`BASELINE_HORIZONS`) so that its seeds above the
  median reach it too. An optimizer's steps-to-target on a seed is the fewest steps at which its final test loss
  is at or below the target, interpolated in log steps between the bracketing horizons, with a bound where the
  target is reached already at the shortest horizon or never (:func:`steps_to_target`).
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SOBOL_SEED",
    "TUNING_SEED_BASE",
    "DEFAULT_HORIZONS",
    "BASELINE_HORIZONS",
    "EXACT",
    "AT_MOST",
    "MORE_THAN",
    "SearchSpace",
    "SPACE",
    "sobol_points",
    "trial_hparams",
    "tuning_seeds",
    "report_seeds",
    "horizon_steps",
    "select_best",
    "lr_position",
    "edges",
    "target_loss",
    "steps_to_target",
    "write_tuned",
    "TUNED_PATH",
]

#: the seed of the scrambled Sobol sequence: every optimizer and task gets the same points
SOBOL_SEED = 20250
#: tuning seeds are TUNING_SEED_BASE, TUNING_SEED_BASE + 1, ...; reported seeds 0, 1, ... (disjoint)
TUNING_SEED_BASE = 1000
#: fractions of a task's steps the reported runs re-run at (each a whole schedule in that many steps); geometric,
#: so a method needing 1/8 of AdamW's steps is still measured, not floored
DEFAULT_HORIZONS = (0.125, 0.25, 0.5, 1.0)
#: the baseline's extra horizons beyond 1: its seeds above the median (the target) reach the target there, so a
#: steps ratio pairs every seed
BASELINE_HORIZONS = (1.5,)
#: where :func:`write_tuned` writes by default: the package's data file the registry reads
TUNED_PATH = Path(__file__).with_name("tuned.json")


@dataclass(frozen=True)
class SearchSpace:
    """The one search space of the protocol (every range is closed; "log" means log-uniform).

    Attributes:
        lr_decades: the lr range is ``center x 10^[-lr_decades, +lr_decades]``, the same width for every optimizer
            around its own center (its former tuned rate on the task, or its ``sweep_center``).
        one_minus_beta2: range of 1 - beta2 (log).
        decay_per_step: range of lr x weight_decay (log), the fraction of W removed per step at the peak rate.
        warmup_fraction: range of the warm-up's share of the steps (uniform).
    """

    lr_decades: float = 1.0
    one_minus_beta2: tuple[float, float] = (1e-3, 1e-1)
    decay_per_step: tuple[float, float] = (1e-5, 1e-2)
    warmup_fraction: tuple[float, float] = (0.0, 0.2)

    def describe(self) -> dict[str, Any]:
        """The space as JSON-ready data (for sweep.json)."""
        return {
            **asdict(self),
            "points": f"scipy.stats.qmc.Sobol(d=4, scramble=True, seed={SOBOL_SEED}); the same for every optimizer",
            "lr": "center x 10^((2u - 1) lr_decades), center: the optimizer's rate on the task before tuning",
            "beta2": "1 - beta2 log-uniform in one_minus_beta2; None where the method has no second-moment decay",
            "weight_decay": "decay_per_step / lr, decay_per_step log-uniform; None where the method has no "
            "decoupled decay",
        }


#: the search space of ``adaptim bench --sweep``
SPACE = SearchSpace()


def sobol_points(n: int, seed: int = SOBOL_SEED) -> np.ndarray:
    """The first ``n`` points of the scrambled 4-D Sobol sequence seeded with ``seed``: an (n, 4) float64 array in
    [0, 1); columns lr, beta2, weight decay, warm-up. Powers of 2 keep the sequence's balance (others are allowed).

    Raises:
        ValueError: ``n < 1``.
    """
    from scipy.stats import qmc

    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"trials must be an int >= 1, got {n!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "balance properties ... power of 2": documented above
        return qmc.Sobol(d=4, scramble=True, seed=seed).random(n)


def _log_uniform(u: float, lo: float, hi: float) -> float:
    return float(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))


def trial_hparams(
    point: Sequence[float], spec: Any, task: str, space: SearchSpace = SPACE, center: float | None = None
) -> dict[str, Any]:
    """The ``hparams`` of one point of the unit cube for optimizer ``spec`` on ``task`` (see :class:`SearchSpace`);
    the lr range is around ``center`` (default ``spec.lr_for(task)``; a sweep's extension moves it).

    Returns ``{"lr", "beta2", "weight_decay", "warmup_fraction"}`` with ``beta2`` / ``weight_decay`` ``None``
    where ``spec`` does not tune them. Values are rounded to 4 significant digits (they are written to JSON).
    """
    u_lr, u_b2, u_wd, u_wu = (float(x) for x in point)
    center = spec.lr_for(task) if center is None else center
    lr = center * 10.0 ** ((2 * u_lr - 1) * space.lr_decades)
    beta2 = 1 - _log_uniform(u_b2, *space.one_minus_beta2) if spec.tunes_beta2 else None
    decay = _log_uniform(u_wd, *space.decay_per_step) / lr if spec.tunes_weight_decay else None
    lo, hi = space.warmup_fraction
    return {
        "lr": _round(lr),
        "beta2": None if beta2 is None else _round(beta2, 6),
        "weight_decay": None if decay is None else _round(decay),
        "warmup_fraction": _round(lo + u_wu * (hi - lo)),
    }


def _round(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def tuning_seeds(n: int) -> list[int]:
    """The ``n`` seeds of the tuning trials: 1000, 1001, ... (never a reported seed)."""
    return [TUNING_SEED_BASE + i for i in range(n)]


def report_seeds(seeds: int | Iterable[int]) -> list[int]:
    """The reported seeds: ``0 .. seeds - 1`` for an int, else the given ones.

    Raises:
        ValueError: no seed, a negative one, a repeated one, or one in the tuning range (>= 1000).
    """
    out = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not out or min(out) < 0 or len(set(out)) != len(out) or max(out) >= TUNING_SEED_BASE:
        raise ValueError(
            f"seeds must be a count >= 1 or distinct seeds in [0, {TUNING_SEED_BASE}) (the tuning seeds start "
            f"at {TUNING_SEED_BASE}), got {seeds!r}"
        )
    return out


def horizon_steps(horizon: float, steps: int, longest: float = 1.0) -> int:
    """Steps of a run at ``horizon`` (a fraction in (0, ``longest``] of the task's ``steps``):
    ``max(1, round(h x steps))``. The reported horizons are at most 1; the baseline's go beyond
    (:data:`BASELINE_HORIZONS`).

    Raises:
        ValueError: ``horizon`` outside (0, longest].
    """
    if not (isinstance(horizon, (int, float)) and 0 < horizon <= longest):
        raise ValueError(f"a horizon must be a fraction in (0, {longest:g}], got {horizon!r}")
    return max(1, round(horizon * steps))


def select_best(trials: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The best trial of each (task, optimizer) by its mean ``final_val_loss`` over its tuning seeds (the
    validation split only: no test loss is read).

    A trial counts only when every seed finished ``ok`` with a finite loss. Among those, only the trials run on the
    most seeds compete (after :func:`adaptim.bench.runner.run_sweep`'s confirmation, the leading trials re-run on
    more seeds: the winner is chosen among them, on their means, not from a single noisy seed); ties go to the lower
    trial index. Returns ``{task: {optimizer: {**hparams, "trial", "val_loss", "seeds"}}}``; a pair with no such
    trial is left out (it then runs untuned).
    """
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for t in trials:
        groups.setdefault((t["task"], t["optimizer"], t["trial"]), []).append(t)
    cands: dict[tuple[str, str], list[tuple[int, float, int, list[dict[str, Any]]]]] = {}
    for (task, opt, trial), rows in groups.items():
        vals = [r.get("final_val_loss") for r in rows]
        if any(r.get("status") != "ok" or v is None or not math.isfinite(v) for r, v in zip(rows, vals)):
            continue
        cands.setdefault((task, opt), []).append((len(rows), math.fsum(vals) / len(vals), trial, rows))
    best: dict[str, dict[str, dict[str, Any]]] = {}
    for (task, opt), items in cands.items():
        most = max(n for n, *_ in items)
        _, val, trial, rows = min((c for c in items if c[0] == most), key=lambda c: (c[1], c[2]))
        seeds = sorted(r["seed"] for r in rows if "seed" in r)
        best.setdefault(task, {})[opt] = {**rows[0]["hparams"], "trial": trial, "val_loss": val, "seeds": seeds}
    return best


def lr_position(lr: float, center: float, space: SearchSpace = SPACE) -> float:
    """Where ``lr`` lies in the lr range around ``center``: 0 at its low end, 1 at its high end (log scale)."""
    return (math.log10(lr / center) / space.lr_decades + 1) / 2


def edges(
    hparams: dict[str, Any], centers: Sequence[float], space: SearchSpace = SPACE, margin: float = 0.1
) -> list[str]:
    """The dimensions on which ``hparams`` lies in the outer ``margin`` of the searched range, e.g. ``["lr high"]``.

    The lr range is the union of the ranges around every ``center`` searched; 1 - beta2 and ``lr x weight_decay``
    are on a log scale, the warm-up fraction linear. A winner on an edge means the best value may lie outside the
    space: :func:`adaptim.bench.runner.run_sweep` extends the lr range there and reports the others.
    """
    out = []
    lo = math.log10(min(centers)) - space.lr_decades
    hi = math.log10(max(centers)) + space.lr_decades
    u = (math.log10(hparams["lr"]) - lo) / (hi - lo)
    out += ["lr low"] if u < margin else ["lr high"] if u > 1 - margin else []

    def pos(x: float, rng: tuple[float, float], log: bool = True) -> float:
        f = math.log10 if log else float
        return (f(x) - f(rng[0])) / (f(rng[1]) - f(rng[0]))

    if hparams.get("beta2") is not None:
        u = pos(1 - hparams["beta2"], space.one_minus_beta2)
        out += ["1-beta2 low"] if u < margin else ["1-beta2 high"] if u > 1 - margin else []
    if hparams.get("weight_decay") is not None:
        u = pos(hparams["lr"] * hparams["weight_decay"], space.decay_per_step)
        out += ["decay low"] if u < margin else ["decay high"] if u > 1 - margin else []
    return out


def target_loss(runs: list[dict[str, Any]], task: str, baseline: str = "adamw") -> float | None:
    """The target of ``task``: the median final test loss of ``baseline``'s reported runs at horizon 1 (``ok``
    runs with a test loss); ``None`` when there is none."""
    losses = [
        r["final_test_loss"]
        for r in runs
        if r["task"] == task
        and r["optimizer"] == baseline
        and r.get("seed_role", "report") == "report"
        and r["horizon"] == 1.0
        and r["status"] == "ok"
        and r.get("final_test_loss") is not None
    ]
    return statistics.median(losses) if losses else None


#: the bound of a steps-to-target value: exact (interpolated), at most (the shortest horizon already reached the
#: target), more than (no horizon reached it: the value is the longest horizon's steps)
EXACT, AT_MOST, MORE_THAN = "=", "<=", ">"


def steps_to_target(points: Iterable[tuple[int, float | None]], target: float | None) -> tuple[float, str] | None:
    """Steps to reach ``target`` from one seed's runs at several horizons, and whether that is exact or a bound.

    Args:
        points: ``(steps, final test loss)`` of each horizon's run; a loss of ``None`` (a failed run) never reaches.
        target: the loss to reach (``None``: no target, returns ``None``).

    Returns:
        ``(steps, bound)``: ``(s, EXACT)`` interpolated between the last horizon above the target and the first at
        or below it, linearly in (log steps, loss): ``log s = log s0 + (log s1 - log s0) (l0 - target) /
        (l0 - l1)`` (a loss curve is closer to linear in log steps than in steps, so this errs less on either
        side); ``(s1, EXACT)`` where the run before failed; ``(shortest steps, AT_MOST)`` when the shortest
        horizon already reaches it; ``(longest steps, MORE_THAN)`` when none does. ``None`` without a target or
        without points.
    """
    pts = sorted(points, key=lambda p: p[0])
    if target is None or not pts:
        return None
    prev: tuple[int, float | None] | None = None
    for steps, loss in pts:
        if loss is not None and loss <= target:
            if prev is None:
                return float(steps), AT_MOST
            if prev[1] is None:
                return float(steps), EXACT
            s0, l0 = prev
            frac = (l0 - target) / (l0 - loss)
            if frac >= 1:  # on the point itself (exp(log s) need not give s back exactly)
                return float(steps), EXACT
            return float(math.exp(math.log(s0) + frac * (math.log(steps) - math.log(s0)))), EXACT
        prev = (steps, loss)
    return float(pts[-1][0]), MORE_THAN


def write_tuned(sweep: dict[str, Any], path: str | Path | None = None) -> Path:
    """Write ``sweep["best"]`` (see :func:`adaptim.bench.runner.run_sweep`) as the tuned hyperparameters the
    registry reads: the package's ``tuned.json`` by default (commit it), else ``path``. Entries of tasks and
    optimizers already in the file and absent from the sweep are kept. Atomic (a temporary file renamed).

    Raises:
        KeyError: ``sweep`` has no ``"best"``.
    """
    from adaptim.bench.store import write_json_atomic

    target = Path(path) if path is not None else TUNED_PATH
    merged: dict[str, dict[str, Any]] = json.loads(target.read_text()) if target.exists() else {}
    for task, by_opt in sweep["best"].items():
        merged.setdefault(task, {}).update(by_opt)
    write_json_atomic(target, merged)
    if path is None:
        from adaptim.bench.registry import _tuned_file

        _tuned_file.cache_clear()
    return target
