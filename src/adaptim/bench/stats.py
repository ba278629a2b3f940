"""Summary statistics of the bench: means with Student-t intervals, paired differences and ratios by seed.

Every interval is two-sided at ``confidence`` (95% by default) from Student's t with n - 1 degrees of freedom
(:func:`scipy.stats.t.ppf`): mean +- t s / sqrt(n), s the sample standard deviation. A comparison against the
baseline pairs runs by seed (the same initial model and minibatches), so the interval is that of the per-seed
differences. Ratios (steps or time to target) are compared on the log scale: the interval of the mean log-ratio,
back-transformed by exp, i.e. the geometric mean ratio and its interval.

Steps-to-target is censored: a seed that reached the target already at the shortest horizon has "at most" that
many steps, one that never reached it (or failed) "more than" the longest horizon's. Such a seed is never dropped:
it enters the mean at its bound, and the summary says which way the mean is then a bound (:func:`censored_mean`).

Each summary is ``{"mean", "lo", "hi", "n"}``: ``n`` counts the values (seeds); ``lo``/``hi`` are ``None`` for
n < 2 and ``mean`` is ``None`` for n = 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "mean_interval",
    "paired_difference",
    "paired_ratio",
    "censored_mean",
    "censored_ratio",
    "excludes",
    "summarize_task",
]

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


#: the bound of a summary's mean when some seeds entered at a bound (see :func:`censored_mean`)
BOUNDS = ("=", "<=", ">=", "?")


def _bound(directions: set[str]) -> str:
    if not directions:
        return "="
    return "?" if len(directions) > 1 else directions.pop()


def censored_mean(
    values: Mapping[Any, tuple[float, str] | None], confidence: float = CONFIDENCE, log: bool = False
) -> dict[str, Any]:
    """:func:`mean_interval` of per-seed values some of which are bounds, and the bound that makes of the mean.

    Args:
        values: per seed ``(value, bound)`` with bound ``"="`` (exact), ``"<="`` (the true value is at most it) or
            ``">"`` / ``">="`` (more than it), or ``None`` (no value: left out and not counted).
        log: average the logs and back-transform (a geometric mean, for ratios and step counts).

    Returns:
        ``{"mean", "lo", "hi", "n", "bound", "censored"}``: each censored seed enters at its bound, so the mean is
        itself a bound: ``bound`` ``"<="`` where seeds entered only as upper bounds (the true mean is at most
        ``mean``), ``">="`` only as lower bounds, ``"?"`` both ways, ``"="`` none; ``censored`` counts those seeds.
        The interval is of the values as entered.
    """
    xs, dirs, cens = [], set(), 0
    for v in values.values():
        if v is None:
            continue
        x, b = v
        xs.append(math.log(x) if log else x)
        if b != "=":
            cens += 1
            dirs.add("<=" if b == "<=" else ">=")
    st = mean_interval(xs, confidence)
    if log:
        st = {k: (math.exp(v) if k != "n" and v is not None else v) for k, v in st.items()}
    return {**st, "bound": _bound(dirs), "censored": cens}


def _flip(b: str) -> str:
    return {"=": "=", "<=": ">", ">": "<=", ">=": "<="}[b]


def censored_ratio(
    a: Mapping[Any, tuple[float, str] | None], b: Mapping[Any, tuple[float, str] | None], confidence: float = CONFIDENCE
) -> dict[str, Any]:
    """The paired geometric-mean ratio ``a[seed] / b[seed]`` (:func:`censored_mean` of the log-ratios) over the
    seeds both have; a seed's ratio is a bound where either value is: ``a`` at most (or ``b`` more than) gives
    "at most", ``a`` more than (or ``b`` at most) gives "more than"; both ways, the seed's ratio is unknown
    (its bound ``"?"``, which makes the mean's ``"?"``)."""
    ratios: dict[Any, tuple[float, str] | None] = {}
    mixed = 0
    for k in sorted(a.keys() & b.keys()):
        if a[k] is None or b[k] is None:
            continue
        (x, bx), (y, by) = a[k], b[k]
        if not (x > 0 and y > 0):
            continue
        dirs = {d for d in (bx, _flip(by)) if d != "="}
        dirs = {"<=" if d == "<=" else ">" for d in dirs}
        if len(dirs) > 1:
            mixed += 1
        ratios[k] = (x / y, dirs.pop() if len(dirs) == 1 else ("=" if not dirs else ">"))
    out = censored_mean(ratios, confidence, log=True)
    if mixed:
        out["bound"] = "?"
    return out


def _faster(ratio: Mapping[str, Any], seeds: int) -> bool | None:
    """True: the steps ratio's interval lies below 1 with every seed paired, and no seed entered as more than its
    value; False: it does not, or a seed never reached the target; None: no interval (n < 2)."""
    if ratio.get("bound") in (">=", "?"):
        return False
    hi = ratio.get("hi")
    if hi is None:
        return None
    return bool(hi < 1) and ratio.get("n") == seeds


def summarize_task(
    runs: list[dict[str, Any]],
    task: str,
    target: float | None,
    ranked: bool = True,
    baseline: str = "adamw",
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """The ``summary[task]`` of results.json from the reported runs of ``task`` (see docs/bench.md).

    Per optimizer: ``n_ok`` / ``n_failed`` (runs at horizon 1), the final test loss at horizon 1 over the ``ok``
    runs, its paired difference against ``baseline`` (negative = better), steps-to-target per seed
    (:func:`adaptim.bench.protocol.steps_to_target` over the horizons: a seed that never reached the target, or
    whose runs failed, enters as "more than" its longest horizon, never dropped) with ``reached`` (seeds that
    reached it) and ``seeds``, the paired ratio against ``baseline`` (:func:`censored_ratio`), time-to-target
    (steps x that seed's measured ms per step at horizon 1, in s) and its ratio, and ``faster`` (:func:`_faster`).
    """
    from adaptim.bench.protocol import EXACT, MORE_THAN, steps_to_target

    mine = [r for r in runs if r["task"] == task and r.get("seed_role", "report") == "report"]
    names = list(dict.fromkeys(r["optimizer"] for r in mine))
    final: dict[str, dict[int, float | None]] = {}
    steps: dict[str, dict[int, tuple[float, str] | None]] = {}
    time: dict[str, dict[int, tuple[float, str] | None]] = {}
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
            st = steps_to_target(pts, target)
            steps[name][seed] = st
            ms = next((r["ms_per_step"] for r in by_seed if r["horizon"] == 1.0 and r.get("ms_per_step")), None)
            if ms is None:  # horizon 1 failed: the longest horizon that measured a step time
                ms = next(
                    (r["ms_per_step"] for r in sorted(by_seed, key=lambda r: -r["steps"]) if r.get("ms_per_step")),
                    None,
                )
            time[name][seed] = None if st is None or ms is None else (st[0] * ms / 1000, st[1])
    base_final, base_steps, base_time = final.get(baseline, {}), steps.get(baseline, {}), time.get(baseline, {})
    out = {}
    for name in names:
        ratio = censored_ratio(steps[name], base_steps, confidence)
        seeds = len(steps[name])
        reached = sum(v is not None and v[1] != MORE_THAN for v in steps[name].values())
        out[name] = {
            "n_ok": counts[name][0],
            "n_failed": counts[name][1],
            "final_test_loss": mean_interval(final[name].values(), confidence),
            "diff_vs_adamw": paired_difference(final[name], base_final, confidence),
            "steps_to_target": {
                **censored_mean(steps[name], confidence),
                "reached": reached,
                "seeds": seeds,
                "exact": sum(v is not None and v[1] == EXACT for v in steps[name].values()),
            },
            "steps_ratio_vs_adamw": ratio,
            "time_to_target_s": censored_mean(time[name], confidence),
            "time_ratio_vs_adamw": censored_ratio(time[name], base_time, confidence),
            "faster": None if name == baseline or target is None else _faster(ratio, seeds),
        }
    return {"target": target, "ranked": ranked, "baseline": baseline, "optimizers": out}
