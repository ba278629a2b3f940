"""The training loop of the bench: one run per (task, optimizer), the whole bench, and the learning-rate sweep.

Every run of a task starts from the same initial model (torch is seeded with ``seed`` just before the model is
built) and sees the same sequence of minibatches (drawn from a generator seeded with ``seed``), under the same
schedule shape: linear warm-up over ``task.warmup_fraction`` of the steps, then cosine decay to 0
(:func:`adaptim.warmup_cosine`). Runs use ``threads`` CPU threads and ``torch.use_deterministic_algorithms``, so
the same seed and thread count give the same numbers.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from tqdm import tqdm

import adaptim
from adaptim.bench.registry import OPTIMIZERS, OptimizerSpec, ladder, ladder_index, sweep_grid
from adaptim.bench.tasks import DEFAULT_TASKS, TASKS, Task, make_task

__all__ = [
    "run_one",
    "run_bench",
    "run_sweep",
    "state_bytes",
    "check_names",
    "optimizer_names",
    "default_threads",
    "PROGRESS_FRACTION",
    "SWEEP_TIE",
]

#: sweep scores within this (absolute) amount of the lowest count as ties; the smallest tied rate is chosen
SWEEP_TIE = 1e-12

#: a run "makes real progress" when its final training loss is at most this fraction of the initial one
PROGRESS_FRACTION = 0.6


def default_threads() -> int:
    """min(2, number of CPUs): the bench's documented budget is 2 CPU cores."""
    return max(1, min(2, os.cpu_count() or 1))


@contextmanager
def deterministic_torch(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads and deterministic algorithms, restoring both after."""
    prev_threads, prev_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by all tensors in ``optimizer.state`` (scalars kept in param groups are not counted)."""
    return sum(v.nbytes for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor))


def check_names(kind: str, names: list[str], valid: list[str]) -> None:
    """Raise ``KeyError`` naming the unknown entries of ``names`` and listing the ``valid`` ones."""
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise KeyError(f"unknown {kind} {', '.join(map(repr, unknown))}; valid {kind}s: {', '.join(valid)}")


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _record(task: Task, spec: OptimizerSpec, lr: float, steps: int) -> dict[str, Any]:
    return {
        "task": task.name,
        "optimizer": spec.name,
        "lr": lr,
        "steps": steps,
        "final_train_loss": None,
        "final_val_loss": None,
        "val_accuracy": None,
        "optimality_gap": None,
        "wall_time_s": None,
        "state_bytes": None,
        "curve": [],
        "skipped": None,
        "diverged": None,
        # a constrained task's runs: the violation at the end, per metric (None while skipped)
        **({"constraint_violation": None} if task.constraint_metrics else {}),
    }


def run_one(
    task: Task, spec: OptimizerSpec, lr: float, steps: int, seed: int = 0, progress: bool = False
) -> dict[str, Any]:
    """Train ``task``'s model with ``spec`` for ``steps`` steps; return the run record of ``results.json``.

    The curve has a point at step 0 (training loss on the task's fixed evaluation set) and every
    ``task.log_every`` steps (the mean minibatch objective over the steps since the previous point); the
    validation loss is filled in every ``task.eval_every`` steps and at the last step, ``None`` elsewhere.
    ``final_*`` come from :meth:`Task.evaluate` after the last step. Call ``task.setup()`` first.

    A ``ValueError`` raised while building the optimizer makes the run *skipped* (its message is the reason);
    a non-finite minibatch loss stops the run (``diverged`` = that step, final losses ``None``).
    """
    rec = _record(task, spec, lr, steps)
    torch.manual_seed(seed)
    model = task.build_model()
    try:
        optimizer = spec.build(model, lr)
    except ValueError as exc:
        rec["skipped"] = str(exc)
        return rec
    warmup = int(task.warmup_fraction * steps)
    scheduler = adaptim.warmup_cosine(optimizer, warmup_steps=warmup, total_steps=max(steps, warmup + 1))
    generator = torch.Generator().manual_seed(seed)

    start = time.perf_counter()
    first = task.evaluate(model)
    curve = [[0, _finite(first.train_loss), _finite(first.val_loss)]]
    window: list[float] = []
    bar = tqdm(
        total=steps,
        desc=f"{task.name}/{spec.name}",
        leave=False,
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    for step in range(1, steps + 1):
        loss = task.batch_loss(model, generator)
        value = loss.item()
        if not math.isfinite(value):
            rec["diverged"] = step
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        window.append(value)
        if step % task.log_every == 0 or step == steps:
            val = task.val_loss(model) if (step % task.eval_every == 0 or step == steps) else None
            curve.append([step, sum(window) / len(window), _finite(val)])
            window = []
            bar.set_postfix(loss=f"{curve[-1][1]:.3f}", refresh=False)
        bar.update(1)
    bar.close()

    if rec["diverged"] is None:
        final = task.evaluate(model)
        rec["final_train_loss"] = _finite(final.train_loss)
        rec["final_val_loss"] = _finite(final.val_loss)
        rec["val_accuracy"] = final.val_accuracy
        gap = task.optimality_gap(final.train_loss)
        rec["optimality_gap"] = _finite(gap) if gap is not None else None
        if rec["final_train_loss"] is None:
            rec["diverged"] = steps
    rec["wall_time_s"] = round(time.perf_counter() - start, 3)
    if task.constraint_metrics:
        rec["constraint_violation"] = {k: _finite(v) for k, v in task.constraint_violation(model).items()}
    rec["state_bytes"] = state_bytes(optimizer)
    rec["curve"] = curve
    return rec


def _pool(task: Task) -> list[OptimizerSpec]:
    """The configurations ``task`` runs: its own contenders, else the registry's."""
    own = task.contenders()
    return list(OPTIMIZERS.values()) if own is None else own


def optimizer_names(tasks: list[str] | None = None) -> list[str]:
    """The optimizer names valid on ``tasks`` (default: the default tasks): the registry's, then each task's own
    contenders (in task order, without repeats)."""
    names: dict[str, None] = {}
    for name in DEFAULT_TASKS if tasks is None else tasks:
        names.update((s.name, None) for s in _pool(make_task(name)))
    return list(names)


def _resolve(
    tasks: list[str] | None, optimizers: list[str] | None, task_options: dict[str, dict[str, Any]] | None
) -> list[tuple[Task, list[OptimizerSpec]]]:
    """(task, its configurations to run) pairs: each task's pool (:func:`_pool`), filtered to ``optimizers`` in
    their order; a task left with none is dropped."""
    task_names = list(DEFAULT_TASKS) if tasks is None else list(tasks)
    check_names("task", task_names, list(TASKS))
    task_options = task_options or {}
    task_objs = [make_task(n, **task_options.get(n, {})) for n in task_names]
    pools = [{s.name: s for s in _pool(t)} for t in task_objs]
    if optimizers is not None:
        valid: dict[str, None] = {}
        for pool in pools:
            valid.update(dict.fromkeys(pool))
        check_names("optimizer", list(optimizers), list(valid))
    plan = []
    for t, pool in zip(task_objs, pools):
        specs = list(pool.values()) if optimizers is None else [pool[n] for n in optimizers if n in pool]
        if specs:
            plan.append((t, specs))
    return plan


def _meta(seed: int, threads: int, task_objs: list[Task], **extra: Any) -> dict[str, Any]:
    import numpy
    import sklearn

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "adaptim": adaptim.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "device": "cpu",
        "threads": threads,
        "deterministic_algorithms": True,
        "seed": seed,
        "schedule": "linear warm-up then cosine decay to 0 (adaptim.warmup_cosine)",
        **extra,
        "tasks": {t.name: {**t.info(), "warmup_fraction": t.warmup_fraction} for t in task_objs},
    }


def quality_checks(task_objs: list[Task], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bench's quality targets on ``runs``: each task's own, and real progress of every non-skipped run."""
    checks = []
    for t in task_objs:
        mine = [r for r in runs if r["task"] == t.name]
        for statement, holds in t.targets(mine):
            checks.append({"task": t.name, "statement": statement, "holds": bool(holds)})
        for r in mine:
            if r["skipped"]:
                continue
            own = t.progress_target(r, PROGRESS_FRACTION)
            if own is not None:
                checks.append({"task": t.name, "statement": own[0], "holds": bool(own[1])})
                continue
            initial, final = r["curve"][0][1], r["final_train_loss"]
            ok = initial is not None and final is not None and final <= PROGRESS_FRACTION * initial
            checks.append(
                {
                    "task": t.name,
                    "statement": f"{r['optimizer']}: final training loss "
                    f"{final if final is None else format(final, '.4g')} <= {PROGRESS_FRACTION:g} x initial "
                    f"{initial if initial is None else format(initial, '.4g')}",
                    "holds": ok,
                }
            )
    return checks


def run_bench(
    tasks: list[str] | None = None,
    optimizers: list[str] | None = None,
    steps: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    threads: int | None = None,
    task_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every (task, optimizer) pair and return ``{"meta": ..., "runs": [...]}`` (see docs/bench.md).

    Args:
        tasks, optimizers: names (default: the default tasks, :data:`adaptim.bench.tasks.DEFAULT_TASKS`, and every
            optimizer a task runs: the registry's, in registry order, or a constrained task's own contenders).
            Given optimizer names run, in their order, on each task that has them; a task with none is left out.
        steps: steps of every run (default: each task's ``steps``).
        lr: learning rate of every run (default: each optimizer's tuned rate for the task).
        seed: seeds the model initialization and the minibatch sequence of every run.
        threads: torch CPU threads (default :func:`default_threads`).
        task_options: per task name, keyword arguments of its constructor (e.g. smaller data for tests).
        progress: show tqdm progress bars on stderr.

    Raises:
        KeyError: an unknown task name, or an optimizer name none of the tasks runs (the message lists the valid
            names).
    """
    plan = _resolve(tasks, optimizers, task_options)
    task_objs = [t for t, _ in plan]
    threads = threads or default_threads()
    runs = []
    start = time.perf_counter()
    with deterministic_torch(threads):
        for t in task_objs:
            t.setup()
        outer = tqdm(total=sum(len(s) for _, s in plan), desc="adaptim bench", disable=not progress, file=sys.stderr)
        for t, specs in plan:
            for spec in specs:
                run_lr = lr if lr is not None else spec.lr_for(t.name)
                runs.append(run_one(t, spec, run_lr, steps or t.steps, seed=seed, progress=progress))
                outer.update(1)
        outer.close()
    meta = _meta(
        seed,
        threads,
        task_objs,
        steps_override=steps,
        lr_override=lr,
        total_wall_time_s=round(time.perf_counter() - start, 2),
    )
    meta["checks"] = quality_checks(task_objs, runs)
    return {"meta": meta, "runs": runs}


def _sweep_pair(
    task: Task,
    spec: OptimizerSpec,
    grid: list[float] | None,
    steps: int,
    seed: int,
    progress: bool,
    max_extend: int,
    bar: tqdm,
) -> dict[str, Any]:
    """Score every rate of the grid on one (task, optimizer); extend a default grid past a best end point."""
    rates = list(grid) if grid is not None else sweep_grid(spec.sweep_center)
    scores: dict[float, float | None] = {}
    skipped = None

    def score(rate: float) -> None:
        nonlocal skipped
        rec = run_one(task, spec, rate, steps, seed=seed, progress=progress)
        skipped = rec["skipped"]
        value = rec[task.sweep_metric]
        scores[rate] = value if value is not None and rec["diverged"] is None else None
        bar.update(1)

    def best() -> tuple[float | None, float | None]:
        finite = [(v, r) for r, v in scores.items() if v is not None]
        if not finite:
            return None, None
        # scores within SWEEP_TIE of the lowest are ties (round-off, e.g. gaps of 1e-16): the smallest rate wins
        low = min(v for v, _ in finite)
        rate = min(r for v, r in finite if v <= low + SWEEP_TIE)
        return scores[rate], rate

    for rate in rates:
        score(rate)
        if skipped:
            bar.update(len(rates) - 1)
            break
    for _ in range(0 if grid is not None or skipped else max_extend):
        best_lr = best()[1]
        if best_lr == rates[-1]:
            rates.append(ladder(ladder_index(rates[-1]) + 1))
            new = rates[-1]
        elif best_lr == rates[0]:
            rates.insert(0, ladder(ladder_index(rates[0]) - 1))
            new = rates[0]
        else:
            break
        bar.total += 1
        score(new)
    best_score, best_lr = best()
    return {
        "task": task.name,
        "optimizer": spec.name,
        "metric": task.sweep_metric,
        "grid": rates,
        "scores": [scores.get(r) for r in rates],
        "best_lr": best_lr,
        "best_score": best_score,
        "skipped": skipped,
        "at_edge": best_lr is not None and best_lr in (rates[0], rates[-1]),
    }


def run_sweep(
    tasks: list[str] | None = None,
    optimizers: list[str] | None = None,
    grid: list[float] | None = None,
    steps: int | None = None,
    seed: int = 0,
    threads: int | None = None,
    task_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    max_extend: int = 4,
) -> dict[str, Any]:
    """Run a learning-rate grid per (task, optimizer) and pick the best rate of each.

    The grid is ``grid`` if given, else :func:`sweep_grid` around the optimizer's ``sweep_center`` (7 rates of
    the 1-3-10 ladder); a default grid whose best rate is an end point is extended by one ladder rate beyond
    it, up to ``max_extend`` times. A rate is scored by its run's ``task.sweep_metric`` (final validation
    loss; the optimality gap, i.e. the training objective minus a constant, for logreg); skipped and diverged
    runs have no score. Scores within ``SWEEP_TIE`` of the lowest tie, and the smallest tied rate is chosen. Returns
    ``{"meta": ..., "sweep": [{"task", "optimizer", "metric", "grid", "scores",
    "best_lr", "best_score", "at_edge", "skipped"}]}``; ``at_edge`` says the best rate is still an end point.

    Raises:
        KeyError: an unknown task or optimizer name.
    """
    plan = _resolve(tasks, optimizers, task_options)
    task_objs = [t for t, _ in plan]
    threads = threads or default_threads()
    rows = []
    start = time.perf_counter()
    with deterministic_torch(threads):
        for t in task_objs:
            t.setup()
        total = sum(len(grid or sweep_grid(s.sweep_center)) for _, specs in plan for s in specs)
        bar = tqdm(total=total, desc="adaptim bench --sweep", disable=not progress, file=sys.stderr)
        for t, specs in plan:
            for spec in specs:
                rows.append(_sweep_pair(t, spec, grid, steps or t.steps, seed, progress, max_extend, bar))
        bar.close()
    meta = _meta(
        seed,
        threads,
        task_objs,
        steps_override=steps,
        grid=grid,
        total_wall_time_s=round(time.perf_counter() - start, 2),
    )
    return {"meta": meta, "sweep": rows}
