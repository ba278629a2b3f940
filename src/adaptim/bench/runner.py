"""The training loop of the bench: one run, the bench (reported seeds x horizons) and the tuning sweep.

Every run of a task on a seed starts from the same initial model (torch is seeded with the seed just before the
model is built) and sees the same sequence of minibatches (drawn from a generator seeded with the seed), under the
same schedule shape: linear warm-up over ``hparams["warmup_fraction"]`` of the steps, then cosine decay to 0
(:func:`adaptim.warmup_cosine`). Runs use ``threads`` CPU threads and ``torch.use_deterministic_algorithms``, so
the same seed and thread count give the same numbers. The protocol (search space, seeds, horizons, target) is
:mod:`adaptim.bench.protocol`; the statistics :mod:`adaptim.bench.stats`; the files :mod:`adaptim.bench.store`.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from tqdm import tqdm

import adaptim
from adaptim.bench import protocol
from adaptim.bench.execute import Run, choose_jobs, execute
from adaptim.bench.registry import OPTIMIZERS, OptimizerSpec, load_tuned
from adaptim.bench.stats import summarize_task
from adaptim.bench.store import RESULTS_FILE, SWEEP_FILE, RunStore, write_json_atomic
from adaptim.bench.tasks import DEFAULT_TASKS, TASKS, Task, make_task

__all__ = [
    "run_one",
    "run_bench",
    "run_sweep",
    "summarize",
    "state_bytes",
    "check_names",
    "optimizer_names",
    "default_threads",
    "choose_threads",
    "DEFAULT_OPTIMIZERS",
    "EVAL_EVERY_MAX",
    "PROGRESS_FRACTION",
    "QUICK",
    "STATUSES",
]

#: the optimizers of the default bench (``full=True``: every one): the baseline and the three matrix-aware methods
#: the issue's comparison is about. A charlm step costs each 30-45 ms on one thread, and the four take about 6 of
#: the default's 10 minutes on 2 cores; a fifth would take about 1.3 more (docs/bench.md, "Budget")
DEFAULT_OPTIMIZERS: tuple[str, ...] = ("adamw", "muon", "shampoo", "adafactor")
#: validation at least this often (steps), whatever a task's own ``eval_every``
EVAL_EVERY_MAX = 25
#: a run "makes real progress" when its final training loss is at most this fraction of the initial one
PROGRESS_FRACTION = 0.6
#: ``quick=True``: reported seeds, horizons and the fraction of each task's steps
QUICK = {"seeds": 2, "horizons": (0.25, 0.5, 1.0), "step_fraction": 0.15}
#: a run's ``status``: ok, diverged (a non-finite training loss or a failure mid-run: stopped there), refused
#: (the optimizer refused the model: ``ValueError`` when built), nonfinite (finished, a final loss not finite)
STATUSES = ("ok", "diverged", "refused", "nonfinite")


def choose_threads(cpus: int | None = None, load: float | None = None) -> tuple[int, str]:
    """The default torch thread count and why: ``min(2, idle cores)``, at least 1.

    Idle cores are the CPUs (``os.sched_getaffinity`` where available) minus the 1-minute load average, rounded
    (taken before any training, so the bench's own load is not counted). On a
    machine whose cores are busy, a second thread waits for a core at every parallel region: on 2 shared cores
    at load 4, a charlm step took 10x longer with 2 threads than with 1 (docs/bench.md, "Threads").
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    idle = cpus - load
    threads = max(1, min(2, math.floor(idle + 0.5)))
    return threads, f"min(2, idle cores) with {cpus} CPUs at load {load:.2f}"


def _workers(jobs: int | None, threads: int | None, device: str) -> tuple[int, int, str]:
    """(processes, threads each, why) from the given ones: both given as given; ``threads`` alone: one process
    (the former behaviour); ``jobs`` alone: 1 thread each; neither: :func:`choose_jobs` on a CPU, one process at
    :func:`choose_threads` on a GPU."""
    for name, value in (("jobs", jobs), ("threads", threads)):
        if value is not None and not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if jobs is not None or threads is not None:
        return jobs or 1, threads or 1, "given"
    if device != "cpu":
        t, why = choose_threads()
        return 1, t, f"one process on {device}; threads: {why}"
    return choose_jobs()


def default_threads() -> int:
    """:func:`choose_threads`'s count."""
    return choose_threads()[0]


@contextmanager
def deterministic_torch(threads: int, device: str = "cpu") -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads and deterministic algorithms, restoring both after."""
    prev_threads, prev_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    # CUDA's deterministic kernels need CUBLAS_WORKSPACE_CONFIG; warn rather than fail where one is missing
    torch.use_deterministic_algorithms(True, warn_only=device != "cpu")
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


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _record(task: Task, spec: OptimizerSpec, hparams: dict[str, Any], steps: int, **ids: Any) -> dict[str, Any]:
    return {
        "task": task.name,
        "variant": ids.get("variant"),
        "optimizer": spec.name,
        "seed": ids.get("seed", 0),
        "seed_role": ids.get("seed_role", "report"),
        "horizon": float(ids.get("horizon", 1.0)),
        "steps": steps,
        "preset": getattr(task, "preset", "cpu"),
        "device": str(getattr(task, "device", "cpu")),
        "hparams": dict(hparams),
        "hparams_source": ids.get("hparams_source", "given"),
        "status": "ok",
        "reason": None,
        "curve": [],
        "final_train_loss": None,
        "final_val_loss": None,
        "final_test_loss": None,
        "test_accuracy": None,
        "val_accuracy": None,
        "optimality_gap": None,
        "wall_time_s": None,
        "cpu_time_s": None,
        "ms_per_step": None,
        "optimizer_ms_per_step": None,
        "state_bytes": None,
        # the pid of the worker process that ran it (None: the bench's own process)
        "worker": None,
        # read by the tasks' quality targets: the refusal's reason, the step a run diverged at
        "skipped": None,
        "diverged": None,
        # a constrained task's runs: the violation at the end, per metric (None while refused)
        **({"constraint_violation": None} if task.constraint_metrics else {}),
    }


def _test_loss(task: Task, evaluation: Any) -> float | None:
    return getattr(evaluation, "test_loss", None)


def run_one(
    task: Task,
    spec: OptimizerSpec,
    hparams: dict[str, Any] | float,
    steps: int,
    seed: int = 0,
    progress: bool = False,
    *,
    horizon: float = 1.0,
    seed_role: str = "report",
    variant: str | None = None,
    hparams_source: str = "given",
    device: str = "cpu",
    full_curve: bool = True,
) -> dict[str, Any]:
    """Train ``task``'s model with ``spec`` and ``hparams`` for ``steps`` steps; return the run record.

    The record is the contract's (docs/bench.md, "Run record"): ids, ``hparams``, ``status`` (:data:`STATUSES`) and
    ``reason``, the ``curve`` ``[[step, train_loss, val_loss | None, test_loss | None], ...]`` (the training loss
    at step 0 on the task's fixed evaluation set, then the mean minibatch loss since the previous point; the
    validation loss every ``min(task.eval_every, 25)`` steps and at the last step, the test loss at the last
    step), the final losses from :meth:`Task.evaluate`, ``wall_time_s`` and ``cpu_time_s``
    (:func:`time.process_time`, this process's CPU seconds) of the whole run, ``ms_per_step`` (training steps
    alone, evaluations excluded, from step 2 on: the first step of a process compiles the fused kernels) and
    ``optimizer_ms_per_step`` (inside ``optimizer.step``, likewise), ``state_bytes``. Call ``task.setup()`` first.

    Args:
        hparams: ``{"lr", "beta2", "weight_decay", "warmup_fraction"}`` (:meth:`OptimizerSpec.build_with`); a
            float is the lr with the entry's untuned values and the task's warm-up.
        steps: optimizer steps; the schedule spans them (warm-up ``int(warmup_fraction x steps)``).
        seed: seeds the model's initialization and the minibatches.
        horizon, seed_role, variant, hparams_source: recorded as given.
        full_curve: validate every ``min(task.eval_every, 25)`` steps; ``False``: only at the end (the bench's shorter
            horizons, whose final losses alone are used).

    A ``ValueError`` raised while building the optimizer makes the run ``refused`` (its message is the reason);
    a non-finite minibatch loss, or a ``ValueError`` / ``RuntimeError`` raised by a step, stops the run
    (``diverged``, final losses ``None``); a non-finite final loss makes it ``nonfinite``.
    """
    if not isinstance(hparams, dict):
        hparams = {**spec.default_hparams(task.name, task.warmup_fraction), "lr": float(hparams)}
    rec = _record(
        task,
        spec,
        hparams,
        steps,
        seed=seed,
        seed_role=seed_role,
        horizon=horizon,
        variant=variant,
        hparams_source=hparams_source,
    )
    wall0, cpu0 = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    model = task.build_model()
    try:
        optimizer = spec.build_with(model, hparams)
    except ValueError as exc:
        rec.update(status="refused", reason=str(exc), skipped=str(exc))
        return rec
    warmup = int(hparams["warmup_fraction"] * steps)
    scheduler = adaptim.warmup_cosine(optimizer, warmup_steps=warmup, total_steps=max(steps, warmup + 1))
    generator = torch.Generator().manual_seed(seed)
    eval_every = max(1, min(task.eval_every, EVAL_EVERY_MAX))
    log_every = max(1, min(task.log_every, eval_every))

    first = task.evaluate(model)
    curve: list[list[Any]] = [[0, _finite(first.train_loss), _finite(first.val_loss), None]]
    window: list[float] = []
    train_s = opt_s = 0.0
    timed = 0
    bar = tqdm(
        total=steps,
        desc=f"{task.name}/{spec.name}",
        leave=False,
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        for step in range(1, steps + 1):
            _sync(device)
            t0 = time.perf_counter()
            loss = task.batch_loss(model, generator)
            value = loss.item()
            if not math.isfinite(value):
                rec.update(status="diverged", reason=f"non-finite training loss at step {step}", diverged=step)
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            _sync(device)
            t1 = time.perf_counter()
            try:
                optimizer.step()
            except (ValueError, RuntimeError) as exc:  # e.g. a root of a non-finite statistic
                rec.update(status="diverged", reason=f"step {step}: {type(exc).__name__}: {exc}", diverged=step)
                break
            _sync(device)
            t2 = time.perf_counter()
            scheduler.step()
            if step > 1 or steps == 1:  # step 1 of a process compiles: not a step's cost
                train_s += time.perf_counter() - t0
                opt_s += t2 - t1
                timed += 1
            window.append(value)
            if step % log_every == 0 or step == steps:
                due = step == steps or (full_curve and step % eval_every == 0)
                val = task.val_loss(model) if due else None
                curve.append([step, sum(window) / len(window), _finite(val), None])
                window = []
                bar.set_postfix(loss=f"{curve[-1][1]:.3f}", refresh=False)
            bar.update(1)
    finally:
        bar.close()

    if rec["status"] == "ok":
        final = task.evaluate(model)
        values = {
            "final_train_loss": final.train_loss,
            "final_val_loss": final.val_loss,
            "final_test_loss": _test_loss(task, final),
        }
        bad = [k for k, v in values.items() if v is not None and not math.isfinite(v)]
        rec.update({k: _finite(v) for k, v in values.items()})
        rec["test_accuracy"] = getattr(final, "test_accuracy", None)
        rec["val_accuracy"] = final.val_accuracy
        gap = task.optimality_gap(final.train_loss)
        rec["optimality_gap"] = _finite(gap) if gap is not None else None
        curve[-1][3] = rec["final_test_loss"]
        if bad:
            rec.update(status="nonfinite", reason="non-finite " + ", ".join(bad), diverged=steps)
    rec["wall_time_s"] = round(time.perf_counter() - wall0, 4)
    rec["cpu_time_s"] = round(time.process_time() - cpu0, 4)
    if timed:
        rec["ms_per_step"] = round(1000 * train_s / timed, 4)
        rec["optimizer_ms_per_step"] = round(1000 * opt_s / timed, 4)
    if task.constraint_metrics:
        rec["constraint_violation"] = {k: _finite(v) for k, v in task.constraint_violation(model).items()}
    rec["state_bytes"] = state_bytes(optimizer)
    rec["curve"] = curve
    return rec


# ------------------------------------------------------------------------------------------------ planning
def _pool(task: Task) -> list[OptimizerSpec]:
    """The configurations ``task`` runs: its own contenders, else the registry's."""
    own = task.contenders()
    return list(OPTIMIZERS.values()) if own is None else own


def _ranked(task: Task) -> bool:
    """Whether ``task`` is in the ranking: its ``ranked`` flag, and it runs the registry (not its own contenders)."""
    return bool(getattr(task, "ranked", True)) and task.contenders() is None


def optimizer_names(tasks: list[str] | None = None) -> list[str]:
    """The optimizer names valid on ``tasks`` (default: the default tasks): the registry's, then each task's own
    contenders (in task order, without repeats)."""
    names: dict[str, None] = {}
    for name in DEFAULT_TASKS if tasks is None else tasks:
        names.update((s.name, None) for s in _pool(make_task(name)))
    return list(names)


def _make_tasks(
    tasks: Sequence[str | Task] | None,
    task_options: dict[str, dict[str, Any]] | None,
    preset: str,
    device: str,
    variant: str | None,
) -> list[Task]:
    items = list(DEFAULT_TASKS) if tasks is None else list(tasks)
    check_names("task", [t for t in items if isinstance(t, str)], list(TASKS))
    task_options = task_options or {}
    extra = {k: v for k, v in (("preset", preset), ("device", device)) if v != "cpu"}
    if variant is not None:
        extra["variant"] = variant
    out = []
    for t in items:
        if isinstance(t, Task):
            out.append(t)
            continue
        kwargs = {**extra, **task_options.get(t, {})}
        task = make_task(t, **kwargs)
        task.recipe = (t, kwargs)  # how a worker process rebuilds it
        out.append(task)
    return out


def _resolve(
    task_objs: list[Task], optimizers: Sequence[str] | None, full: bool
) -> list[tuple[Task, list[OptimizerSpec]]]:
    """(task, its configurations to run) pairs: each task's pool (:func:`_pool`), filtered to ``optimizers`` in
    their order (default: :data:`DEFAULT_OPTIMIZERS` on the registry's tasks, all with ``full`` or on a task with
    its own contenders); a task left with none is dropped."""
    pools = [{s.name: s for s in _pool(t)} for t in task_objs]
    if optimizers is not None:
        optimizers = [o.strip().lower() for o in optimizers]
        valid: dict[str, None] = {}
        for pool in pools:
            valid.update(dict.fromkeys(pool))
        check_names("optimizer", list(optimizers), list(valid))
    plan = []
    for t, pool in zip(task_objs, pools):
        if optimizers is not None:
            specs = [pool[n] for n in optimizers if n in pool]
        elif full or t.contenders() is not None:
            specs = list(pool.values())
        else:
            specs = [pool[n] for n in DEFAULT_OPTIMIZERS if n in pool]
        if specs:
            plan.append((t, specs))
    return plan


def _hparams_for(
    task: Task, spec: OptimizerSpec, tuned: dict[str, dict[str, dict[str, Any]]], lr: float | None
) -> tuple[dict[str, Any], str]:
    entry = tuned.get(task.name, {}).get(spec.name)
    if entry is not None:
        hp, source = {k: entry.get(k) for k in ("lr", "beta2", "weight_decay", "warmup_fraction")}, "tuned"
    else:
        hp, source = spec.default_hparams(task.name, task.warmup_fraction), "untuned"
    if lr is not None:
        hp, source = {**hp, "lr": lr}, "given"
    return hp, source


def _cpu_total(records: list[dict[str, Any]], cpu0: float) -> float:
    """CPU seconds of the bench: this process's since ``cpu0`` (setup, reports, runs it ran itself) plus the runs
    that worker processes ran (each record's own ``cpu_time_s``, measured in its process)."""
    own = time.process_time() - cpu0
    workers = sum(r.get("cpu_time_s") or 0.0 for r in records if r.get("worker"))
    return round(own + workers, 2)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _meta(task_objs: list[Task], threads: int, threads_reason: str, **extra: Any) -> dict[str, Any]:
    return {
        "adaptim_version": adaptim.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpus": os.cpu_count(),
        "threads": threads,
        "threads_reason": threads_reason,
        "deterministic_algorithms": True,
        "schedule": "linear warm-up over warmup_fraction of the steps, then cosine decay to 0 (adaptim.warmup_cosine)",
        "command": " ".join(sys.argv),
        **extra,
        "tasks": {t.name: {**t.info(), "ranked": _ranked(t), "warmup_fraction": t.warmup_fraction} for t in task_objs},
    }


def quality_checks(task_objs: list[Task], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks' own quality targets and real progress, on the runs at horizon 1 of the first reported seed."""
    checks = []
    for t in task_objs:
        full = [r for r in runs if r["task"] == t.name and r["horizon"] == 1.0 and r["seed_role"] == "report"]
        first = min((r["seed"] for r in full), default=None)
        mine = [r for r in full if r["seed"] == first]
        for statement, holds in t.targets(mine):
            checks.append({"task": t.name, "statement": statement, "holds": bool(holds)})
        for r in mine:
            if r["status"] == "refused":
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


def summarize(runs: list[dict[str, Any]], task_objs: Iterable[Task], baseline: str = "adamw") -> dict[str, Any]:
    """``results["summary"]``: per task, the target (:func:`adaptim.bench.protocol.target_loss`) and
    :func:`adaptim.bench.stats.summarize_task` of its reported runs."""
    out = {}
    for t in task_objs:
        target = protocol.target_loss(runs, t.name, baseline)
        out[t.name] = summarize_task(runs, t.name, target, ranked=_ranked(t), baseline=baseline)
    return out


# ------------------------------------------------------------------------------------------------ the bench
def run_bench(
    tasks: Sequence[str | Task] | None = None,
    optimizers: Sequence[str] | None = None,
    seeds: int | Sequence[int] = 3,
    horizons: Sequence[float] = protocol.DEFAULT_HORIZONS,
    quick: bool = False,
    full: bool = False,
    resume: bool = False,
    out: str | os.PathLike[str] | None = None,
    preset: str = "cpu",
    device: str = "cpu",
    progress: bool = True,
    *,
    steps: int | None = None,
    lr: float | None = None,
    threads: int | None = None,
    task_options: dict[str, dict[str, Any]] | None = None,
    variant: str | None = None,
    tuned: dict[str, dict[str, dict[str, Any]]] | None = None,
    jobs: int | None = None,
    baseline: str = "adamw",
    baseline_horizons: Sequence[float] = protocol.BASELINE_HORIZONS,
) -> dict[str, Any]:
    """Run every (task, optimizer) on the reported seeds at every horizon; return ``{"meta", "runs", "summary"}``.

    Each optimizer runs with its tuned hyperparameters (``tuned``, default the package's ``tuned.json``;
    untuned: its former per-task lr and the method's defaults, ``hparams_source = "untuned"``). A ranked task runs
    every horizon, each the whole schedule compressed into that many steps; an unranked one (``logreg``, a
    constrained task) horizon 1 alone. The summary is per task (:func:`summarize`).

    Args:
        tasks: names or :class:`Task` objects (default :data:`adaptim.bench.tasks.DEFAULT_TASKS`).
        optimizers: names, run on each task that has them, in their order (case-insensitive); default
            :data:`DEFAULT_OPTIMIZERS` (``full``: every one); a task with its own contenders runs all of them.
        seeds: reported seeds: a count S (seeds 0 .. S-1) or the seeds (all below 1000, the tuning seeds').
        horizons: fractions in (0, 1] of each task's steps; 1 is always run (the target's horizon). Only
            horizon 1 records the validation curve; a shorter one evaluates at its end.
        quick: :data:`QUICK`'s seeds, horizons and shorter runs (overrides ``seeds`` and ``horizons``).
        full: every optimizer of each task instead of the default set.
        resume: reuse the runs already in ``out``'s ``runs.jsonl`` (same task, variant, optimizer, seed, horizon
            and hparams) instead of running them again.
        out: a directory for ``runs.jsonl`` (each run appended as it finishes) and ``results.json`` (written
            atomically at the end); ``None``: nothing is written. Checked before any training.
        preset, device: passed to each task built by name (``"cpu"`` passes nothing).
        progress: a tqdm bar over all planned steps (with ETA) on stderr.
        steps: steps at horizon 1 of every run (default: each task's ``steps``).
        lr: one learning rate for every run (``hparams_source = "given"``).
        threads: torch CPU threads of each process (default 1 with ``jobs``, else by the load).
        task_options: per task name, keyword arguments of its constructor (e.g. smaller data for tests).
        variant: the task variant to build (e.g. ``"heldout"``), recorded in every run.
        tuned: ``{task: {optimizer: hparams}}`` instead of the package's.
        jobs: worker processes (:func:`adaptim.bench.execute.execute`); default: one per idle core
            (:func:`adaptim.bench.execute.choose_jobs`), 1 where ``threads`` is given or on a GPU.
        baseline: the optimizer whose median final test loss is the target, and against which ratios are taken.
        baseline_horizons: the baseline's extra horizons, fractions > 1 (default 1.5), so its seeds above the
            median reach the target too.

    Raises:
        KeyError: an unknown task name, or an optimizer name none of the tasks runs (the message lists the valid
            names).
        ValueError: bad ``seeds`` or ``horizons``; ``out`` an existing file, not writable, or holding an earlier
            bench's runs without ``resume``.
    """
    if quick:
        seeds, horizons = QUICK["seeds"], QUICK["horizons"]
    seed_list = protocol.report_seeds(seeds)
    hs = sorted({float(h) for h in horizons} | {1.0})
    for h in hs:
        protocol.horizon_steps(h, 1)  # (checks the range)
    extra_hs = sorted({float(h) for h in baseline_horizons})
    for h in extra_hs:
        if not 1 < h <= 10:
            raise ValueError(f"baseline_horizons must be fractions > 1 (at most 10), got {h!r}")
    store = RunStore(out, resume=resume) if out is not None else None  # before any training
    task_objs = _make_tasks(tasks, task_options, preset, device, variant)
    plan = _resolve(task_objs, optimizers, full)
    task_objs = [t for t, _ in plan]
    tuned = load_tuned() if tuned is None else tuned
    jobs, threads, why = _workers(jobs, threads, device)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with deterministic_torch(threads, device):
        for t in task_objs:
            t.setup()
        runs: list[Run] = []
        used: dict[str, dict[str, Any]] = {}
        for t, specs in plan:
            base = steps or t.steps
            if quick and steps is None:
                base = max(1, round(QUICK["step_fraction"] * base))
            ranked = _ranked(t)
            hp_src = {spec.name: _hparams_for(t, spec, tuned, lr) for spec in specs}
            for spec in specs:
                if hp_src[spec.name][1] == "tuned":
                    used.setdefault(t.name, {})[spec.name] = tuned[t.name][spec.name]
            # seed, then horizon, then optimizer: the optimizers of one (seed, horizon) run side by side
            for seed in seed_list:
                for h in hs + extra_hs if ranked else [1.0]:
                    for spec in specs:
                        if h > 1 and spec.name != baseline:
                            continue
                        hp, source = hp_src[spec.name]
                        n = protocol.horizon_steps(h, base, longest=max([1.0, *extra_hs]))
                        runs.append(Run(t, spec, hp, source, seed, "report", h, n, variant, curve=h == 1.0))
        records = execute(runs, store, progress, device, "adaptim bench", jobs=jobs, threads=threads)
    meta = _meta(
        task_objs,
        threads,
        why,
        jobs=jobs,
        preset=preset,
        device=device,
        variant=variant,
        seeds=seed_list,
        tuning_seeds=sorted({s for by in used.values() for e in by.values() for s in e.get("seeds", [])}),
        horizons=hs,
        baseline_horizons=extra_hs,
        baseline=baseline,
        quick=quick,
        full=full,
        steps_override=steps,
        lr_override=lr,
        tuned=used,
        wall_time_s=round(time.perf_counter() - wall0, 2),
        cpu_time_s=_cpu_total(records, cpu0),
    )
    meta["checks"] = quality_checks(task_objs, records)
    results = {"meta": meta, "runs": records, "summary": summarize(records, task_objs, baseline)}
    if store is not None:
        write_json_atomic(store.out / RESULTS_FILE, results)
    return results


# ------------------------------------------------------------------------------------------------ the sweep
#: the sweep's defaults: Sobol trials per (task, optimizer), then the leading ``confirm`` trials re-run on
#: ``confirm_seeds`` more tuning seeds, and up to ``extend`` extra rounds where the best lr lies on an edge
SWEEP = {"trials": 16, "confirm": 3, "confirm_seeds": 2, "extend": 1}


def run_sweep(
    tasks: Sequence[str | Task] | None = None,
    optimizers: Sequence[str] | None = None,
    trials: int = SWEEP["trials"],
    seeds: int = 1,
    full: bool = False,
    resume: bool = False,
    out: str | os.PathLike[str] | None = None,
    preset: str = "cpu",
    device: str = "cpu",
    progress: bool = True,
    *,
    steps: int | None = None,
    threads: int | None = None,
    jobs: int | None = None,
    task_options: dict[str, dict[str, Any]] | None = None,
    space: protocol.SearchSpace = protocol.SPACE,
    confirm: int = SWEEP["confirm"],
    confirm_seeds: int = SWEEP["confirm_seeds"],
    extend: int = SWEEP["extend"],
) -> dict[str, Any]:
    """Equal tuning: the same ``trials`` Sobol points (:func:`adaptim.bench.protocol.sobol_points`) for every
    (task, optimizer), each run at horizon 1 on ``seeds`` tuning seeds (1000, 1001, ...), selected on the mean
    final validation loss (:func:`adaptim.bench.protocol.select_best`).

    In three phases, the same for every pair:

    1. the ``trials`` points, the lr range centred on the optimizer's former rate on the task;
    2. where the best lr lies in the outer 10% of the range searched so far
       (:func:`adaptim.bench.protocol.edges`), the same points again with the centre moved one ``lr_decades``
       that way (a "round"), at most ``extend`` times;
    3. the ``confirm`` best trials re-run on ``confirm_seeds`` more tuning seeds; the winner is the best of them on
       the mean over all its seeds, so one lucky seed does not choose it.

    Returns ``{"meta", "space", "trials": [{"task", "optimizer", "trial", "round", "center", "hparams", "seed",
    "final_val_loss", "status"}, ...], "best": {task: {optimizer: {**hparams, "trial", "val_loss", "seeds",
    "centers", "edges"}}}}`` (``edges``: the dimensions where the winner still lies on an edge); with ``out``,
    also written there as ``sweep.json`` (atomically), every finished run appended to ``sweep-runs.jsonl`` as it
    finishes (``resume`` reuses them). :func:`adaptim.bench.protocol.write_tuned` turns it into the package's
    ``tuned.json``. Other arguments as :func:`run_bench`.

    Raises:
        KeyError: an unknown task or optimizer name.
        ValueError: ``trials`` or ``seeds`` < 1, ``confirm`` / ``confirm_seeds`` / ``extend`` < 0; ``out`` as in
            :func:`run_bench`.
    """
    points = protocol.sobol_points(trials)
    if not (isinstance(seeds, int) and seeds >= 1):
        raise ValueError(f"seeds must be an int >= 1 (the number of tuning seeds), got {seeds!r}")
    for name, value in (("confirm", confirm), ("confirm_seeds", confirm_seeds), ("extend", extend)):
        if not (isinstance(value, int) and value >= 0):
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    seed_list = protocol.tuning_seeds(seeds)
    more_seeds = protocol.tuning_seeds(seeds + confirm_seeds)[seeds:]
    store = RunStore(out, resume=resume, name="sweep-runs.jsonl") if out is not None else None
    task_objs = _make_tasks(tasks, task_options, preset, device, None)
    plan = _resolve(task_objs, optimizers, full)
    task_objs = [t for t, _ in plan]
    jobs, threads, why = _workers(jobs, threads, device)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    rows: list[dict[str, Any]] = []
    all_records: list[dict[str, Any]] = []
    centers = {(t.name, spec.name): [spec.lr_for(t.name)] for t, specs in plan for spec in specs}

    def run_phase(items: list[tuple[Task, OptimizerSpec, int, int, float, dict[str, Any], int]], desc: str) -> None:
        runs = [
            Run(t, spec, hp, "trial", seed, "tune", 1.0, steps or t.steps, None, curve=False)
            for t, spec, _, _, _, hp, seed in items
        ]
        records = execute(runs, store, progress, device, desc, jobs=jobs, threads=threads)
        all_records.extend(records)
        for (_, _, trial, rnd, center, _, _), r in zip(items, records):
            rows.append(
                {
                    "task": r["task"],
                    "optimizer": r["optimizer"],
                    "trial": trial,
                    "round": rnd,
                    "center": center,
                    "hparams": r["hparams"],
                    "seed": r["seed"],
                    "final_val_loss": r["final_val_loss"],
                    "status": r["status"],
                }
            )

    def round_items(t: Task, spec: OptimizerSpec, rnd: int, center: float) -> list[Any]:
        return [
            (t, spec, rnd * trials + i, rnd, center, protocol.trial_hparams(p, spec, t.name, space, center), seed)
            for i, p in enumerate(points)
            for seed in seed_list
        ]

    def mine(t: Task, spec: OptimizerSpec) -> list[dict[str, Any]]:
        return [r for r in rows if r["task"] == t.name and r["optimizer"] == spec.name]

    with deterministic_torch(threads, device):
        for t in task_objs:
            t.setup()
        pairs = [(t, spec) for t, specs in plan for spec in specs]
        run_phase([x for t, spec in pairs for x in round_items(t, spec, 0, centers[t.name, spec.name][0])], "sweep")
        for rnd in range(1, extend + 1):
            items = []
            for t, spec in pairs:
                best = protocol.select_best(mine(t, spec)).get(t.name, {}).get(spec.name)
                cs = centers[t.name, spec.name]
                side = (
                    None
                    if best is None
                    else next((e for e in protocol.edges(best, cs, space) if e.startswith("lr")), None)
                )
                if side is None:
                    continue
                c = (max(cs) * 10**space.lr_decades) if side == "lr high" else (min(cs) / 10**space.lr_decades)
                c = float(f"{c:.4g}")
                cs.append(c)
                items += round_items(t, spec, rnd, c)
            if not items:
                break
            run_phase(items, f"sweep: {rnd} extension(s)")
        if confirm and confirm_seeds:
            items = []
            for t, spec in pairs:
                ok: dict[int, list[dict[str, Any]]] = {}
                for r in mine(t, spec):
                    ok.setdefault(r["trial"], []).append(r)
                scored = sorted(
                    (math.fsum(r["final_val_loss"] for r in rs) / len(rs), trial, rs[0])
                    for trial, rs in ok.items()
                    if all(r["status"] == "ok" and r["final_val_loss"] is not None for r in rs)
                )
                for _, trial, r in scored[:confirm]:
                    items += [(t, spec, trial, r["round"], r["center"], r["hparams"], seed) for seed in more_seeds]
            run_phase(items, "sweep: confirmation")
    best = protocol.select_best(rows)
    for t, spec in [(t, spec) for t, specs in plan for spec in specs]:
        entry = best.get(t.name, {}).get(spec.name)
        if entry is not None:
            cs = centers[t.name, spec.name]
            entry["centers"] = cs
            entry["edges"] = protocol.edges(entry, cs, space)
    meta = _meta(
        task_objs,
        threads,
        why,
        jobs=jobs,
        preset=preset,
        device=device,
        trials=trials,
        tuning_seeds=seed_list,
        confirm=confirm,
        confirm_seeds=more_seeds,
        extend=extend,
        steps_override=steps,
        wall_time_s=round(time.perf_counter() - wall0, 2),
        cpu_time_s=_cpu_total(all_records, cpu0),
    )
    sweep = {"meta": meta, "space": space.describe(), "trials": rows, "best": best}
    if store is not None:
        write_json_atomic(store.out / SWEEP_FILE, sweep)
    return sweep
