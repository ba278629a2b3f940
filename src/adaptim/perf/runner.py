"""The loop of ``adaptim perf``: build every contender on shared parameters, time its first step, then time one
``step()`` of each contender per round, round-robin, so that machine noise falls on all of them alike.
"""

from __future__ import annotations

import platform
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import torch

import adaptim
from adaptim.bench.runner import check_names, default_threads, state_bytes
from adaptim.perf.bandwidth import ELEMENTWISE, RULES, Triad, clock, floor_bytes, theory_state_bytes
from adaptim.perf.contenders import KEYS, Contender, build_contenders, gpt2_shapes, make_params
from adaptim.perf.lowprec import low_precision_results

__all__ = ["run_perf", "round_robin", "DEFAULT_KEYS", "SCALING_SIZES"]

DEFAULT_KEYS = list(KEYS)
SCALING_SIZES = (1_000_000, 4_000_000, 16_000_000)
#: the triad's buffers hold at least this many float32 entries (32 MB each), beyond any last-level cache
MIN_TRIAD_ENTRIES = 8 * 2**20


def round_robin(names: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """The timing order: (round, name) for every name in the given order, round after round."""
    return [(r, n) for r in range(rounds) for n in names]


def _timed(fn, device: torch.device) -> tuple[int, int]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    w0, c0 = clock()
    fn()
    sync()
    w1, c1 = clock()
    return w1 - w0, c1 - c0


def _stats(ns: list[int]) -> dict[str, float]:
    return {"median_ms": statistics.median(ns) / 1e6, "min_ms": min(ns) / 1e6}


def _measure(keys: list[str], size: int, rounds: int, device: torch.device, notes: list[str]) -> dict[str, Any]:
    shapes = gpt2_shapes(size)
    params = make_params(shapes, device)
    matrices = [p for p in params if p.ndim >= 2]
    triad = Triad(max(size, MIN_TRIAD_ENTRIES), device)
    if "muon" in keys:
        n_mat = sum(p.numel() for p in matrices)
        notes.append(f"muon: the {len(matrices)} matrices only ({n_mat:,} parameters); its rule is for matrices")
    contenders: list[Contender] = []
    first: dict[str, float] = {}
    for c in build_contenders(keys, notes):
        c.params = matrices if c.key == "muon" else params
        try:
            c.optimizer = c.build(c.params)
            wall, _ = _timed(c.step, device)  # allocates the state; a compiled path would compile here
        except Exception as e:  # a contender that cannot run here is reported, not fatal
            notes.append(f"{c.name}: left out ({type(e).__name__}: {e})")
            continue
        first[c.name] = wall / 1e6
        contenders.append(c)
    by_name: dict[str, Any] = {triad.name: triad, **{c.name: c for c in contenders}}
    order = round_robin(list(by_name), rounds)
    times: dict[str, list[tuple[int, int]]] = {n: [] for n in by_name}
    for _, name in order:
        times[name].append(_timed(by_name[name].step, device))
    triad_wall = [w for w, _ in times.pop("triad")]
    bandwidth = triad.bytes / (statistics.median(triad_wall) / 1e9)
    rows = []
    for c in contenders:
        wall = [w for w, _ in times[c.name]]
        cpu = [t for _, t in times[c.name]]
        c_shapes = [tuple(p.shape) for p in c.params]
        n = sum(p.numel() for p in c.params)
        floor_s = floor_bytes(c.key, c_shapes) / bandwidth
        theory = theory_state_bytes(c.key, c_shapes)
        measured = state_bytes(c.optimizer)
        rows.append(
            {
                "name": c.name,
                "key": c.key,
                "library": c.library,
                "variant": c.variant,
                "n_params": n,
                "first_step_ms": first[c.name],
                "compiled": bool(getattr(c.optimizer, "uses_fused", lambda g: False)(c.optimizer.param_groups[0])),
                "wall": _stats(wall),
                "cpu": _stats(cpu),
                "ns_per_param": statistics.median(wall) / n,
                "floor_ms": floor_s * 1e3,
                "ratio_floor": statistics.median(wall) / 1e9 / floor_s,
                "state_bytes": measured,
                "state_bytes_theory": theory,
                "state_ratio": measured / theory if theory else None,
            }
        )
    _add_ratios(rows)
    return {
        "n_params": sum(p.numel() for p in params),
        "shapes": [list(s) for s in shapes],
        "triad": {"entries": triad.n, "bytes": triad.bytes, **_stats(triad_wall), "bandwidth_GBps": bandwidth / 1e9},
        "order": [name for _, name in order],
        "rows": rows,
    }


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's median wall time over its rule's torch reference: fused, else foreach, else the for-loop."""
    for key in {r["key"] for r in rows}:
        torch_rows = {r["variant"]: r for r in rows if r["key"] == key and r["library"] == "torch"}
        ref = next((torch_rows[v] for v in ("fused", "foreach", "forloop") if v in torch_rows), None)
        for r in (r for r in rows if r["key"] == key):
            r["reference"] = ref["name"] if ref else None
            r["ratio_ref"] = r["wall"]["median_ms"] / ref["wall"]["median_ms"] if ref else None


def run_perf(
    size: int = 16_000_000,
    optimizers: Sequence[str] | None = None,
    threads: int | None = None,
    device: str = "cpu",
    rounds: int = 10,
    scaling_sizes: Sequence[int] | None = None,
    low_precision_steps: int = 300,
) -> dict[str, Any]:
    """Measure every contender's ``step()`` on about ``size`` parameters; return the results as a dict.

    Args:
        size: parameter count; the shapes are :func:`adaptim.perf.contenders.gpt2_shapes` of it.
        optimizers: keys of :data:`adaptim.perf.contenders.KEYS` (default: all).
        threads: torch CPU threads (default: min(2, CPUs)).
        device: ``"cpu"`` or ``"cuda"``.
        rounds: timed steps per contender (the first, untimed here, is reported apart).
        scaling_sizes: when given, the elementwise rules among ``optimizers`` are measured again at each size.
        low_precision_steps: steps of the bfloat16 trajectory runs of :mod:`adaptim.perf.lowprec` (0: memory only).

    Raises:
        KeyError: an unknown optimizer key.
        ValueError: ``rounds`` < 1 or ``low_precision_steps`` < 0.
        RuntimeError: ``device="cuda"`` without a GPU.
    """
    keys = list(optimizers) if optimizers is not None else DEFAULT_KEYS
    check_names("optimizer", keys, DEFAULT_KEYS)
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if low_precision_steps < 0:
        raise ValueError(f"low_precision_steps must be >= 0, got {low_precision_steps}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for, but torch sees no GPU")
    threads = threads or default_threads()
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    notes: list[str] = []
    try:
        main = _measure(keys, size, rounds, dev, notes)
        scaling = None
        if scaling_sizes:
            elementwise = [k for k in keys if k in ELEMENTWISE]
            runs = {s: _measure(elementwise, s, rounds, dev, []) for s in scaling_sizes}
            scaling = {"sizes": list(scaling_sizes), "rows": _scaling_rows(runs)}
        low_precision = low_precision_results(gpt2_shapes(size), low_precision_steps, dev)
    finally:
        torch.set_num_threads(prev)
    meta = {
        "adaptim": adaptim.__version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "machine": platform.processor() or platform.machine(),
        "device": str(dev),
        "threads": threads,
        "size": size,
        "rounds": rounds,
        "floors": {k: RULES[k][3] for k in keys},
        "notes": notes,
    }
    return {"meta": meta, **main, "scaling": scaling, "low_precision": low_precision}


def _scaling_rows(runs: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    names = [r["name"] for r in next(iter(runs.values()))["rows"]]
    rows = []
    for name in names:
        ns = {
            str(s): next((r["ns_per_param"] for r in run["rows"] if r["name"] == name), None) for s, run in runs.items()
        }
        values = [v for v in ns.values() if v is not None]
        rows.append({"name": name, "ns_per_param": ns, "spread": max(values) / min(values) if values else None})
    return rows
