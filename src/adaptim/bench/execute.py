"""Running the bench's planned runs: in this process or in worker processes, with a cost-weighted ETA.

A bench or sweep is a list of independent runs (:class:`Run`). :func:`execute` runs them and returns their
records in plan order, appending each new record to the :class:`adaptim.bench.store.RunStore` as it finishes
(so an interrupted bench keeps its work). With ``jobs > 1`` the runs go to that many worker processes
(``multiprocessing``'s spawn context), each with ``threads`` torch threads and deterministic algorithms: a run's
numbers depend only on its seed, hyperparameters and thread count, not on which process ran it. For models of
the default bench's size, two processes of one thread each do about twice the work of one process of two
threads (docs/bench.md, "Threads and processes").

Runs are dispatched longest first (estimated cost, stable otherwise), so the optimizers of one (task, seed,
horizon) run next to each other: a change of machine load during the bench falls on all of them alike.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

__all__ = ["Run", "execute", "choose_jobs", "Interrupted"]


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C during :func:`execute`: ``kept`` runs were written to the store before it."""

    def __init__(self, kept: int, total: int) -> None:
        super().__init__(f"interrupted after {kept} of {total} runs")
        self.kept, self.total = kept, total


@dataclass
class Run:
    """One planned run: a task (with the recipe that rebuilds it in a worker), an optimizer entry and its ids."""

    task: Any
    spec: Any
    hparams: dict[str, Any]
    source: str
    seed: int
    role: str
    horizon: float
    steps: int
    variant: str | None
    #: validation every <= 25 steps (the curves); False: only the final evaluation (a shorter horizon's run)
    curve: bool = True

    def key_record(self) -> dict[str, Any]:
        """The fields that identify the run in ``runs.jsonl`` (:func:`adaptim.bench.store.run_key`)."""
        return {
            "task": self.task.name,
            "variant": self.variant,
            "optimizer": self.spec.name,
            "seed": self.seed,
            "horizon": float(self.horizon),
            "steps": self.steps,
            "preset": getattr(self.task, "preset", "cpu"),
            "device": str(getattr(self.task, "device", "cpu")),
            "hparams": self.hparams,
        }

    def run(self, device: str) -> dict[str, Any]:
        from adaptim.bench.runner import run_one

        return run_one(
            self.task,
            self.spec,
            self.hparams,
            self.steps,
            seed=self.seed,
            horizon=self.horizon,
            seed_role=self.role,
            variant=self.variant,
            hparams_source=self.source,
            device=device,
            full_curve=self.curve,
        )

    def job(self) -> tuple[Any, ...]:
        """The run as plain data for a worker process (the task by its recipe, the optimizer by name)."""
        return (
            self.task.recipe,
            self.spec.name,
            self.hparams,
            self.source,
            self.seed,
            self.role,
            self.horizon,
            self.steps,
            self.variant,
            self.curve,
        )


def busy_cores(window: float = 0.5) -> float | None:
    """Cores busy right now, from ``/proc/stat`` over ``window`` seconds (non-idle time / elapsed time x CPUs);
    ``None`` where it cannot be read. Unlike the 1-minute load average it does not remember a job that just ended
    (the README's first command installs adaptim right before the bench)."""
    import time

    def read() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total0, idle0 = read()
        time.sleep(window)
        total1, idle1 = read()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    ncpu = os.cpu_count() or 1
    return ncpu * (1 - (idle1 - idle0) / (total1 - total0))


def choose_jobs(cpus: int | None = None, load: float | None = None, cap: int = 8) -> tuple[int, int, str]:
    """The default (worker processes, torch threads each, why): one single-threaded process per idle core, at most
    ``cap``; one process of one thread when no core is idle.

    Idle cores are the CPUs available to this process (``os.sched_getaffinity``) minus the cores busy now
    (:func:`busy_cores`; the 1-minute load average where ``/proc/stat`` is missing), rounded, read before any
    training. On a machine whose cores are busy, every extra thread or process waits for a core (2 threads at
    load 4 on 2 cores made a charlm step 10x slower, docs/bench.md "Threads and processes").
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    how = "busy"
    if load is None:
        load = busy_cores()
        if load is None:
            load, how = (os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0), "load"
    idle = math.floor(cpus - load + 0.5)
    jobs = max(1, min(cap, idle))
    return jobs, 1, f"{jobs} process(es) x 1 thread: one per idle core ({cpus} CPUs, {how} {load:.2f}), at most {cap}"


def _parallel_ok(runs: Sequence[Run]) -> bool:
    """Whether every run can be rebuilt in a worker: its task from a recipe, its optimizer by name there (a
    built-in entry, as a fresh process's registry has it; not one registered at run time)."""
    from adaptim.bench.registry import OPTIMIZERS
    from adaptim.optim.factory import NAMED_OPTIMIZERS

    for r in runs:
        if getattr(r.task, "recipe", None) is None:
            return False
        if r.task.contenders() is None and (
            r.spec.name not in NAMED_OPTIMIZERS or OPTIMIZERS.get(r.spec.name) is not r.spec
        ):
            return False
    return True


# ------------------------------------------------------------------------------------------------ the workers
_TASKS: dict[str, Any] = {}
_DEVICE = "cpu"


def _init_worker(threads: int, device: str, env: dict[str, str]) -> None:
    import signal

    global _DEVICE
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends the pool
    os.environ.update(env)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=device != "cpu")
    _DEVICE = device


def _work(item: tuple[int, tuple[Any, ...]]) -> tuple[int, dict[str, Any]]:
    from adaptim.bench.runner import _pool
    from adaptim.bench.tasks import make_task

    index, (recipe, spec_name, hparams, source, seed, role, horizon, steps, variant, curve) = item
    key = json.dumps(recipe, sort_keys=True)
    task = _TASKS.get(key)
    if task is None:
        task = _TASKS[key] = make_task(recipe[0], **recipe[1])
        task.setup()
    spec = {s.name: s for s in _pool(task)}[spec_name]
    run = Run(task, spec, hparams, source, seed, role, horizon, steps, variant, curve)
    rec = run.run(_DEVICE)
    rec["worker"] = os.getpid()  # its CPU time is not the bench process's
    return index, rec


# ------------------------------------------------------------------------------------------------ the loop
class _Eta:
    """Seconds of work left, from each task's measured seconds per step (its hint until a run of it finished)."""

    def __init__(self, runs: Sequence[Run]) -> None:
        self.runs = runs
        self.rate: dict[str, list[float]] = {}

    def cost(self, r: Run) -> float:
        seen = self.rate.get(r.task.name)
        per_step = seen[0] / seen[1] if seen else getattr(r.task, "cost_hint_ms", 10.0) / 1000
        return per_step * r.steps * (1.0 if r.curve else 0.8)

    def observe(self, r: Run, rec: dict[str, Any]) -> None:
        wall = rec.get("wall_time_s")
        if wall and r.curve:
            seen = self.rate.setdefault(r.task.name, [0.0, 0])
            seen[0] += wall
            seen[1] += r.steps


def execute(
    runs: Sequence[Run],
    store: Any,
    progress: bool,
    device: str,
    desc: str,
    jobs: int = 1,
    threads: int = 1,
    on_record: Callable[[Run, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``runs`` (reusing those ``store`` already has) and return their records in the order given.

    Args:
        store: a :class:`adaptim.bench.store.RunStore` or ``None``; each new record is appended as it finishes.
        progress: a tqdm bar on stderr whose unit is seconds of one worker's work, so its ETA weights each run by
            its task's measured cost per step.
        jobs: worker processes (1: this process; more needs every task built by name and every optimizer from the
            registry or the task's contenders, else this process runs them all).
        threads: torch threads of each worker (this process keeps its own setting).
        on_record: called with each finished run and its record (after it is stored).

    Raises:
        Interrupted: on Ctrl-C, after ending the workers; the runs finished before it are in ``store``.
    """
    records: list[dict[str, Any] | None] = [None] * len(runs)
    todo: list[int] = []
    for i, r in enumerate(runs):
        kept = store.get(r.key_record()) if store is not None else None
        if kept is not None:
            records[i] = kept
        else:
            todo.append(i)
    eta = _Eta(runs)
    # longest first: fewer idle workers at the end; the sort is stable, so equal runs keep the plan's interleaving
    todo.sort(key=lambda i: -eta.cost(runs[i]))
    bar = tqdm(
        total=round(sum(eta.cost(runs[i]) for i in todo), 1),
        desc=desc,
        unit="s",
        disable=not progress or not todo,
        file=sys.stderr,
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {postfix} [{elapsed}<{remaining}]",
    )
    done = 0
    left = set(todo)

    def finish(i: int, rec: dict[str, Any]) -> None:
        nonlocal done
        records[i] = rec
        if store is not None:
            store.append(rec)
        done += 1
        left.discard(i)
        r = runs[i]
        eta.observe(r, rec)
        if on_record is not None:
            on_record(r, rec)
        spent = bar.n + (rec.get("wall_time_s") or 0.0)
        bar.total = round(spent + sum(eta.cost(runs[j]) for j in left), 1)
        bar.n = round(spent, 1)
        bar.set_postfix_str(f"run {done}/{len(todo)} {r.task.name}/{r.spec.name}", refresh=False)
        bar.refresh()

    try:
        if jobs > 1 and len(todo) > 1 and _parallel_ok([runs[i] for i in todo]):
            env = {k: v for k, v in os.environ.items() if k.startswith(("ADAPTIM_", "TORCH", "OMP_"))}
            ctx = multiprocessing.get_context("spawn")
            # a worker compiles in its own process: no pool of compile subprocesses per worker
            saved = os.environ.get("TORCHINDUCTOR_COMPILE_THREADS")
            os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = saved or "1"
            try:
                pool = ctx.Pool(min(jobs, len(todo)), initializer=_init_worker, initargs=(threads, device, env))
            finally:
                if saved is None:
                    del os.environ["TORCHINDUCTOR_COMPILE_THREADS"]
            try:
                for i, rec in pool.imap_unordered(_work, [(i, runs[i].job()) for i in todo], chunksize=1):
                    finish(i, rec)
                pool.close()
                pool.join()
            except BaseException:
                pool.terminate()
                pool.join()
                raise
        else:
            for i in todo:
                finish(i, runs[i].run(device))
    except KeyboardInterrupt:
        raise Interrupted(len(runs) - len(left), len(runs)) from None
    finally:
        bar.close()
    return [rec for rec in records if rec is not None]
