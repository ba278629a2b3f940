"""``adaptim bench``: real models on real data, one run per (task, optimizer), reported side by side.

Tasks (:mod:`adaptim.bench.tasks`): ``digits``, ``charlm``, ``logreg``; the constrained ones, run by name with their
own contenders (:mod:`adaptim.bench.constrained`): ``digits_sphere``, ``digits_stiefel``, ``mixture``. Optimizer
configurations and their tuned learning rates: :mod:`adaptim.bench.registry`. The loop and the sweep:
:mod:`adaptim.bench.runner`. Output files: :mod:`adaptim.bench.report`. See docs/bench.md.
"""

from adaptim.bench.registry import OPTIMIZERS, OptimizerSpec, from_class, register, sweep_grid
from adaptim.bench.report import write_results, write_sweep
from adaptim.bench.runner import run_bench, run_one, run_sweep, state_bytes
from adaptim.bench.tasks import TASKS, Task, make_task

__all__ = [
    "OPTIMIZERS",
    "OptimizerSpec",
    "from_class",
    "register",
    "sweep_grid",
    "TASKS",
    "Task",
    "make_task",
    "run_bench",
    "run_one",
    "run_sweep",
    "state_bytes",
    "write_results",
    "write_sweep",
]
