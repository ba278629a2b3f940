"""Summary statistics of the bench: means with Student-t intervals, paired differences and ratios by seed.

Every interval is two-sided at ``confidence`` (95% by default) from Student's t with n - 1 degrees of freedom
(:func:`scipy.stats.t.ppf`): mean +- t s / sqrt(n), s the sample standard deviation. A comparison against the
baseline pairs runs by seed (the same initial model and minibatches), so the interval is that of the per-seed
differences. Ratios (steps or time to target) are compared on the log scale: the interval of the mean log-ratio,
back-transformed by exp, i.e. the geometric mean ratio and its interval.

Each summary is ``{"mean", "lo", "hi", "n"}``: ``n`` counts the values (seeds); ``lo``/``hi`` are ``None`` for
n < 2 and ``mean`` is ``None`` for n = 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["mean_interval", "paired_difference", "paired_ratio", "excludes", "summarize_task"]

CONFIDENCE = 0.95


def mean_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean and Student-t interval of ``values`` (finite floats; ``None`` entries are dropped).

    Raises:
        ValueError: ``confidence`` outside (0, 1), or a non-finite value.
    """
    from scipy import stats

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    xs = [float(v) for v in values if v is not None]
    if any(not math.isfinite(x) for x in xs):
        raise ValueError(f"values must be finite, got {xs!r}")
    n = len(xs)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    mean = math.fsum(xs) / n
    if n == 1:
        return {"mean": mean, "lo": None, "hi": None, "n": 1}
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n}


def _pairs(a: Mapping[Any, float | None], b: Mapping[Any, float | None]) -> list[tuple[float, float]]:
    return [(a[k], b[k]) for k in sorted(a.keys() & b.keys()) if a[k] is not None and b[k] is not None]


def paired_difference(
    a: Mapping[Any, float | None], b: Mapping[Any, float | None], confidence: float = CONFIDENCE
) -> dict[str, Any]:
    """Mean and interval of ``a[seed] - b[seed]`` over the seeds both have (a value of ``None`` drops its seed)."""
    return mean_interval([x - y for x, y in _pairs(a, b)], confidence)


def paired_ratio(
    a: Mapping[Any, float | None], b: Mapping[Any, float | None], confidence: float = CONFIDENCE
) -> dict[str, Any]:
    """Geometric mean of ``a[seed] / b[seed]`` and its interval: :func:`mean_interval` of the log-ratios,
    back-transformed by exp. Seeds where either is ``None`` or not > 0 are dropped."""
    logs = [math.log(x / y) for x, y in _pairs(a, b) if x > 0 and y > 0]
    s = mean_interval(logs, confidence)
    return {k: (math.exp(v) if k != "n" and v is not None else v) for k, v in s.items()}


def excludes(interval: Mapping[str, Any], value: float) -> bool | None:
    """Whether ``interval`` lies entirely on one side of ``value`` (``None`` when it has no bounds)."""
    lo, hi = interval.get("lo"), interval.get("hi")
    if lo is None or hi is None:
        return None
    return bool(hi < value or lo > value)


def _faster(ratio: Mapping[str, Any]) -> bool | None:
    """True: the steps ratio's interval lies below 1; False: it does not; None: no interval (n < 2)."""
    hi = ratio.get("hi")
    return None if hi is None else bool(hi < 1)


def summarize_task(
    runs: list[dict[str, Any]],
    task: str,
    target: float | None,
    ranked: bool = True,
    baseline: str = "adamw",
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """The ``summary[task]`` of results.json from the reported runs of ``task`` (see docs/bench.md).

    Per optimizer: ``n_ok`` / ``n_failed`` (runs at horizon 1), the final test loss at horizon 1, its paired
    difference against ``baseline`` (negative = better), steps-to-target per seed
    (:func:`adaptim.bench.protocol.steps_to_target` over the horizons) with the count that reached it, its paired
    ratio against ``baseline``, time-to-target (steps x that seed's measured ms per step at horizon 1, in s) and its
    ratio, and ``faster``: True only where the steps ratio's interval lies below 1 (the paired log-ratio's interval
    excludes 0 on the faster side), False where it does not, None without an interval.
    """
    from adaptim.bench.protocol import steps_to_target

    mine = [r for r in runs if r["task"] == task and r.get("seed_role", "report") == "report"]
    names = list(dict.fromkeys(r["optimizer"] for r in mine))
    final: dict[str, dict[int, float | None]] = {}
    steps: dict[str, dict[int, float | None]] = {}
    time: dict[str, dict[int, float | None]] = {}
    counts: dict[str, tuple[int, int]] = {}
    for name in names:
        rs = [r for r in mine if r["optimizer"] == name]
        full = [r for r in rs if r["horizon"] == 1.0]
        counts[name] = (sum(r["status"] == "ok" for r in full), sum(r["status"] != "ok" for r in full))
        final[name] = {r["seed"]: r["final_test_loss"] if r["status"] == "ok" else None for r in full}
        steps[name], time[name] = {}, {}
        for seed in sorted({r["seed"] for r in rs}):
            by_seed = [r for r in rs if r["seed"] == seed]
            pts = [(r["steps"], r["final_test_loss"] if r["status"] == "ok" else None) for r in by_seed]
            s = steps_to_target(pts, target)
            steps[name][seed] = s
            ms = next((r["ms_per_step"] for r in by_seed if r["horizon"] == 1.0 and r["ms_per_step"]), None)
            if ms is None:  # horizon 1 failed: the longest horizon that measured a step time
                ms = next(
                    (r["ms_per_step"] for r in sorted(by_seed, key=lambda r: -r["steps"]) if r["ms_per_step"]), None
                )
            time[name][seed] = None if s is None or ms is None else s * ms / 1000
    base_final, base_steps, base_time = final.get(baseline, {}), steps.get(baseline, {}), time.get(baseline, {})
    out = {}
    for name in names:
        ratio = paired_ratio(steps[name], base_steps, confidence)
        out[name] = {
            "n_ok": counts[name][0],
            "n_failed": counts[name][1],
            "final_test_loss": mean_interval(final[name].values(), confidence),
            "diff_vs_adamw": paired_difference(final[name], base_final, confidence),
            "steps_to_target": {
                **mean_interval(steps[name].values(), confidence),
                "reached": sum(v is not None for v in steps[name].values()),
            },
            "steps_ratio_vs_adamw": ratio,
            "time_to_target_s": mean_interval(time[name].values(), confidence),
            "time_ratio_vs_adamw": paired_ratio(time[name], base_time, confidence),
            "faster": None if name == baseline else _faster(ratio),
        }
    return {"target": target, "ranked": ranked, "optimizers": out}
