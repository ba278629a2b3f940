"""The bench's outputs, read from its ``results.json`` (and the sweep's ``sweep.json``).

* ``results.md``: per ranked task a table of the final test loss (mean ± 95% interval over the report seeds), the
  paired difference against AdamW, steps- and time-to-target and their ratios against AdamW with intervals, and the
  verdict ("faster" only where the paired steps ratio's interval lies below 1); failures shown as such; the target
  and how it was set; the cost of a step (wall and CPU time, ms per step and the optimizer's share); the horizon sweep;
  the unranked tasks (logreg) as a correctness section; the held-out variants in a section of their own; the tuned
  hyperparameters.
* PNGs: ``<task>.png`` (loss curves with seed bands against steps and against time), ``profile.png`` (the
  Dolan-Moré performance profile of steps-to-target across workloads) and, from a sweep, ``lr-<optimizer>.png``
  (validation loss against lr over the tuning trials).
* :func:`ranking_text`: the compact ranking the terminal ends with.

Every optimizer has one colour and one line style in every figure (:func:`optimizer_style`). Files are written
atomically: to a temporary file in the same directory, renamed into place.

The schema is the one of docs/bench.md ("Outputs"): ``{"meta", "runs", "summary"}``, where ``summary[task]`` holds
``target``, ``ranked`` and per optimizer ``n_ok``, ``n_failed`` and the interval statistics
``{"mean", "lo", "hi", "n"}`` of ``final_test_loss``, ``diff_vs_adamw``, ``steps_to_target`` (with ``reached``),
``steps_ratio_vs_adamw``, ``time_to_target_s``, ``time_ratio_vs_adamw``, and ``faster``.
"""

from __future__ import annotations

import math
import os
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from adaptim.bench.store import write_json_atomic

__all__ = [
    "BASELINE",
    "optimizer_style",
    "performance_profile",
    "profile_costs",
    "ranking",
    "ranking_text",
    "results_markdown",
    "sweep_markdown",
    "sweep_text",
    "plot_task",
    "plot_lr_sensitivity",
    "plot_performance_profile",
    "write_results",
    "write_sweep",
]

#: the optimizer every other one is compared with (paired by seed)
BASELINE = "adamw"

#: the full horizon: runs at this fraction of a task's steps are the ones reported
FULL = 1.0

# ----------------------------------------------------------------------------------------------------- styles
# The bench's optimizer names in a fixed order: the registry's (adaptim.create_optimizer's table), then the
# constrained tasks' contenders. Each group gets its own evenly spaced hues, so no two names of a group share a hue;
# the second group's hues sit between the first's, so adamw (the constrained tasks' baseline) differs from them too.
# the default set (muon, adamw, shampoo, adafactor) at indices 0, 7, 8, 14: slots 0, 4, 11, 8, a quarter apart
_MAIN = (
    "muon",
    "sgd_nesterov",
    "adagrad",
    "adagrad_norm",
    "full_matrix_adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "shampoo",
    "steepest_spectral",
    "adam_nmf",
    "adam_atan2",
    "idealized_shampoo",
    "sgd",
    "adafactor",
)
_CONSTRAINED = (
    "sphere_sgd",
    "adamw_sphere",
    "muon_sphere",
    "stiefel_project",
    "stiefel_manifold_muon",
    "adamw_stiefel",
    "exponentiated_gradient",
    "mirror_entropy",
    "projected_sgd",
    "adam_softmax",
)
_LINESTYLES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))


def _place(name: str) -> tuple[float, int, int]:
    """(hue in [0, 1), slot on the wheel, index in the fixed order) of ``name``: neighbours in the fixed order get
    hues far apart on the wheel (slot = index x 7 mod 15, or x 3 mod 10)."""
    for group, step, offset in ((_MAIN, 7, 0.0), (_CONSTRAINED, 3, 1 / 60)):
        if name in group:
            index = group.index(name)
            slot = index * step % len(group)
            return (slot / len(group) + offset) % 1.0, slot, index
    code = zlib.crc32(name.encode())  # a name of one's own: a stable hue of its own (not checked against others)
    return (code % 3600) / 3600, code, code >> 12


def _lch_to_rgb(lightness: float, chroma: float, hue: float) -> tuple[float, float, float]:
    """sRGB in [0, 1] of the CIE LCh(ab) colour (D65; hue in turns), clipped to the gamut. Hues evenly spaced in
    LCh look evenly spaced; in HSV a third of the wheel looks green."""
    a, b = chroma * math.cos(2 * math.pi * hue), chroma * math.sin(2 * math.pi * hue)
    fy = (lightness + 16) / 116

    def finv(t: float) -> float:
        return t**3 if t > 6 / 29 else 3 * (6 / 29) ** 2 * (t - 4 / 29)

    x, y, z = 0.95047 * finv(fy + a / 500), finv(fy), 1.08883 * finv(fy - b / 200)
    linear = (
        3.2406 * x - 1.5372 * y - 0.4986 * z,
        -0.9689 * x + 1.8758 * y + 0.0415 * z,
        0.0557 * x - 0.2040 * y + 1.0570 * z,
    )
    gamma = (12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055 for c in linear)
    return tuple(min(1.0, max(0.0, round(c, 4))) for c in gamma)


def optimizer_style(name: str) -> dict[str, Any]:
    """The fixed matplotlib style of optimizer ``name``: ``{"color": (r, g, b), "linestyle": ...}``.

    The same name has the same colour and line style in every figure. The 15 names of
    :data:`adaptim.optim.factory.NAMED_OPTIMIZERS` have 15 hues evenly spaced in CIE LCh, the constrained tasks'
    contenders 10 hues of their own between those; neighbouring hues alternate dark and light, and neighbouring
    names in either list sit far apart on the wheel and have different line styles. Names are case-insensitive;
    another name gets a hue from a hash of it.
    """
    hue, slot, index = _place(name.lower())
    lightness = 48.0 if slot % 2 else 66.0
    return {"color": _lch_to_rgb(lightness, 50.0, hue), "linestyle": _LINESTYLES[index % len(_LINESTYLES)]}


# ---------------------------------------------------------------------------------------------- formatting
def _fmt(x: float | None, spec: str = ".4g") -> str:
    return "-" if x is None else format(x, spec)


def _bytes(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1024**2:.1f} MiB" if n >= 1024**2 else f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n:.0f} B"


def _ok(stat: Mapping[str, Any] | None) -> bool:
    return bool(stat) and stat.get("mean") is not None and bool(stat.get("n"))


_BOUND_SIGN = {"<=": "≤ ", ">=": "≥ ", "?": "~ "}


def _b(stat: Mapping[str, Any]) -> str:
    """The prefix saying a censored mean is a bound (stats.censored_mean): ``≤ ``, ``≥ ``, ``~ `` (both ways)."""
    return _BOUND_SIGN.get(stat.get("bound") or "=", "")


def _pm(stat: Mapping[str, Any] | None, sign: bool = False, count: bool = True) -> str:
    """``mean ± half-width`` of a (symmetric, Student t) interval, the half-width to 2 significant digits and the
    mean to as many decimals; the mean alone, with its n unless ``count`` is false, when it has no interval. A
    censored mean (a bound) is prefixed ``≤`` / ``≥``."""
    if not _ok(stat):
        return "-"
    return _b(stat) + _pm_plain(stat, sign, count)


def _pm_plain(stat: Mapping[str, Any], sign: bool, count: bool) -> str:
    plus = "+" if sign else ""
    lo, hi = stat.get("lo"), stat.get("hi")
    if lo is None or hi is None:
        return f"{stat['mean']:{plus}.4g}" + (f" (n={stat['n']})" if count else "")
    half = (hi - lo) / 2
    if not half > 0:
        return f"{stat['mean']:{plus}.4g} ± 0"
    decimals = max(0, 1 - math.floor(math.log10(half)))
    return f"{stat['mean']:{plus}.{decimals}f} ± {half:.{decimals}f}"


def _ratio(stat: Mapping[str, Any] | None) -> str:
    """``mean× [lo, hi]`` of a ratio, whose interval (back-transformed from log-ratios) is not symmetric."""
    if not _ok(stat):
        return "-"
    lo, hi = stat.get("lo"), stat.get("hi")
    inner = f" (n={stat['n']})" if lo is None or hi is None else f" [{lo:.2f}, {hi:.2f}]"
    return f"{_b(stat)}{stat['mean']:.2f}×{inner}"


def _verdict(row: Mapping[str, Any], target: float | None = 0.0) -> str:
    """The verdict: "faster" only where the summary says so (the paired interval lies below 1 with every seed
    paired); "target not reached" where no seed reached it, "reached on k/n seeds" where some did not; "slower"
    where the steps ratio's interval lies above 1; "no target" where the task has none; otherwise "not
    distinguishable"."""
    if target is None:
        return "no target"
    if row.get("faster") is True:
        return "**faster**"
    stt = row.get("steps_to_target") or {}
    reached, seeds = int(stt.get("reached") or 0), int(stt.get("seeds") or 0)
    if reached == 0:
        return "target not reached"
    if reached < seeds:
        return f"reached on {reached}/{seeds} seeds"
    ratio = row.get("steps_ratio_vs_adamw") or {}
    if ratio.get("lo") is not None and ratio["lo"] > 1 and ratio.get("bound") in ("=", ">="):
        return "slower"
    return "not distinguishable"


# --------------------------------------------------------------------------------------------- the records
def _workloads(results: Mapping[str, Any]) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """(summary key, task, variant, entry) for every summary entry, in the summary's order.

    A held-out variant's entry is keyed ``"<task>:<variant>"`` or carries ``"task"`` and ``"variant"``."""
    out = []
    for key, entry in results.get("summary", {}).items():
        task, _, variant = key.partition(":")
        out.append((key, entry.get("task", task), entry.get("variant", variant or None), entry))
    return out


def _label(task: str, variant: str | None) -> str:
    return task if variant is None else f"{task} ({variant} variant)"


def _report_runs(
    results: Mapping[str, Any], task: str, variant: str | None, optimizer: str | None = None, horizon: float = FULL
) -> list[dict[str, Any]]:
    return [
        r
        for r in results["runs"]
        if r["task"] == task
        and r.get("variant") == variant
        and r.get("seed_role", "report") == "report"
        and math.isclose(r["horizon"], horizon)
        and (optimizer is None or r["optimizer"] == optimizer)
    ]


def _status_note(runs: Sequence[Mapping[str, Any]]) -> str:
    """``3/3 ok``, or the count of each failure: ``2 ok, 1 diverged``."""
    if not runs:
        return "no runs"
    counts: dict[str, int] = {}
    for r in runs:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    if set(counts) == {"ok"}:
        return f"{counts['ok']}/{len(runs)} ok"
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: kv[0] != "ok"))


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _seeds(results: Mapping[str, Any], task: str, variant: str | None, name: str) -> int:
    """The number of report seeds of ``name`` on the workload (its runs at the full horizon)."""
    return len({r["seed"] for r in _report_runs(results, task, variant, name)})


def _entry(results: Mapping[str, Any], key: str) -> tuple[str, str | None, dict[str, Any]]:
    for k, task, variant, entry in _workloads(results):
        if k == key:
            return task, variant, entry
    raise KeyError(f"no summary entry {key!r}; entries: {', '.join(results.get('summary', {}))}")


def _steps_to_target(results: Mapping[str, Any], key: str, name: str) -> tuple[float | None, int, int]:
    """(mean steps-to-target over every seed, those that did not reach the target entering at their longest
    horizon (a lower bound), or None without a target; seeds that reached it; report seeds)."""
    task, variant, entry = _entry(results, key)
    stt = entry["optimizers"][name].get("steps_to_target") or {}
    reached = int(stt.get("reached") or 0)
    seeds = int(stt.get("seeds") or _seeds(results, task, variant, name))
    return (stt["mean"] if _ok(stt) else None), reached, seeds


def ranking(results: Mapping[str, Any], key: str) -> list[str]:
    """The optimizers of summary entry ``key`` (a task, or ``"<task>:<variant>"``), best first.

    Those with a finished run first, by (seeds that did not reach the target, mean steps-to-target, mean final test
    loss): an optimizer that missed the target on a seed never ranks above one that reached it on every seed, and
    equal step counts (e.g. both reached it at the shortest horizon) are ordered by the loss. Without a target, by
    the final test loss. Then those whose every run failed, in the summary's order.

    Raises:
        KeyError: no summary entry ``key``.
    """
    entry = _entry(results, key)[2]
    rows = entry["optimizers"]

    def order(item: tuple[int, str]) -> tuple[int, int, float, float, int]:
        i, name = item
        row = rows[name]
        if not (row.get("n_ok") and _ok(row.get("final_test_loss"))):
            return (1, 0, 0.0, 0.0, i)
        steps, reached, seeds = _steps_to_target(results, key, name)
        missed = seeds - reached + int(row.get("n_failed") or 0) if entry.get("target") is not None else 0
        return (0, missed, math.inf if steps is None else steps, row["final_test_loss"]["mean"], i)

    return [name for _, name in sorted(enumerate(rows), key=order)]


# ------------------------------------------------------------------------------------------- the markdown
#: task facts left out of the line under a task's title: said elsewhere in the report, or not facts of the task
_INFO_SKIP = frozenset({"description", "ranked", "preset", "device", "variant", "loss_unit", "has_test"})


def _task_info(info: Mapping[str, Any]) -> str:
    """One line of a task's facts: its description, then the scalar entries of ``info`` (numbers to 4 digits)."""
    parts = [str(info["description"])] if "description" in info else []
    for k, v in info.items():
        if k in _INFO_SKIP or v is None or isinstance(v, (dict, list, bool)):
            continue
        value = f"{v:,}" if isinstance(v, int) else f"{v:.4g}" if isinstance(v, float) else v
        parts.append(f"{k.replace('_', ' ')} {value}")
    return "; ".join(parts) + "." if parts else ""


def _source(runs: Sequence[Mapping[str, Any]]) -> str:
    """`` (untuned)`` or `` (given lr)`` where runs did not take the committed tuned hyperparameters, else ``""``."""
    sources = {r.get("hparams_source", "tuned") for r in runs} - {"tuned", "trial"}
    return " (untuned)" if "untuned" in sources else " (given lr)" if sources else ""


def _target_line(entry: Mapping[str, Any], unit: str, steps: int | None, baseline_note: str = "") -> str:
    target = entry.get("target")
    if target is None:
        return (
            f"Target: none: {BASELINE} has no finished run here, so no steps-to-target and no ratios "
            "(the losses are still compared)."
        )
    at = f" ({steps:,} steps)" if steps else ""
    return (
        f"Target: **{target:.4g}** {unit}: the tuned {BASELINE}'s median final test loss over its report seeds at the "
        f"full horizon{at}{baseline_note}. Steps-to-target comes from the horizon sweep (each optimizer re-run with "
        f"its whole schedule compressed into shorter horizons; {BASELINE} also at longer ones, so every seed of it "
        "reaches its median), interpolated in log steps; time-to-target = steps x measured time per step. ≤ marks a "
        "mean with a seed that reached the target already at the shortest horizon, ≥ one with a seed that never did "
        "(each enters at its bound)."
    )


def _ranked_table(results: Mapping[str, Any], key: str) -> list[str]:
    task, variant, entry = _entry(results, key)
    lines = [
        f"| rank | optimizer | runs | final test loss | vs {BASELINE} (paired) | steps to target (reached) "
        f"| steps ratio vs {BASELINE} | time to target (s) | time ratio vs {BASELINE} | verdict |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for rank, name in enumerate(ranking(results, key), 1):
        row = entry["optimizers"][name]
        runs = _report_runs(results, task, variant, name)
        if not row.get("n_ok"):  # every run failed: say how, in every cell
            what = _status_note(runs) if runs else "failed"
            lines.append(f"| {rank} | {name}{_source(runs)} | {what} | {what} | - | - | - | - | - | failed |")
            continue
        _, reached, seeds = _steps_to_target(results, key, name)
        stt = _pm(row.get("steps_to_target"), count=False) if reached else "not reached"
        diff = "baseline" if name == BASELINE else _pm(row.get("diff_vs_adamw"), sign=True)
        verdict = "baseline" if name == BASELINE else _verdict(row, entry.get("target"))
        lines.append(
            f"| {rank} | {name}{_source(runs)} | {_status_note(runs)} | {_pm(row.get('final_test_loss'))} | {diff} "
            f"| {stt} ({reached}/{seeds}) | {_ratio(row.get('steps_ratio_vs_adamw'))} "
            f"| {_pm(row.get('time_to_target_s'))} | {_ratio(row.get('time_ratio_vs_adamw'))} | {verdict} |"
        )
    return lines


def _cost_table(results: Mapping[str, Any], task: str, variant: str | None, names: Sequence[str]) -> list[str]:
    lines = [
        "| optimizer | wall s | CPU s | ms/step | optimizer ms/step (share) | optimizer state |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in names:
        runs = [r for r in _report_runs(results, task, variant, name) if r["status"] == "ok"]
        if not runs:
            continue
        ms, opt_ms = _mean([r.get("ms_per_step") for r in runs]), _mean([r.get("optimizer_ms_per_step") for r in runs])
        share = f" ({opt_ms / ms:.0%})" if ms and opt_ms is not None else ""
        lines.append(
            f"| {name} | {_fmt(_mean([r.get('wall_time_s') for r in runs]), '.1f')} "
            f"| {_fmt(_mean([r.get('cpu_time_s') for r in runs]), '.1f')} | {_fmt(ms, '.2f')} "
            f"| {_fmt(opt_ms, '.2f')}{share} | {_bytes(_mean([r.get('state_bytes') for r in runs]))} |"
        )
    return lines


def _horizon_table(results: Mapping[str, Any], task: str, variant: str | None, names: Sequence[str]) -> list[str]:
    runs = [
        r
        for r in results["runs"]
        if r["task"] == task and r.get("variant") == variant and r.get("seed_role", "report") == "report"
    ]
    horizons = sorted({r["horizon"] for r in runs})
    if len(horizons) < 2:
        return []
    steps = {h: next(r["steps"] for r in runs if r["horizon"] == h) for h in horizons}
    lines = [
        "Horizon sweep: mean final test loss over the seeds at each horizon (fraction of the full schedule, steps)"
        "; a failed run is counted beside the mean.",
        "",
        "| optimizer | " + " | ".join(f"{h:g} ({steps[h]:,})" for h in horizons) + " |",
        "| --- |" + " ---: |" * len(horizons),
    ]
    for name in names:
        cells = []
        for h in horizons:
            mine = [r for r in runs if r["optimizer"] == name and math.isclose(r["horizon"], h)]
            mean = _mean([r["final_test_loss"] for r in mine if r["status"] == "ok"])
            failed = sum(r["status"] != "ok" for r in mine)
            cells.append(_fmt(mean) + (f" ({failed} failed)" if failed else "") if mine else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _failures(results: Mapping[str, Any], task: str, variant: str | None) -> list[str]:
    bad = [
        r
        for r in results["runs"]
        if r["task"] == task and r.get("variant") == variant and r["status"] != "ok" and r.get("seed_role") != "tune"
    ]
    if not bad:
        return []
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for r in bad:  # one line per (optimizer, failure, reason): a refusal repeats on every seed and horizon
        groups.setdefault((r["optimizer"], r["status"], r.get("reason") or ""), []).append(r)
    lines = ["Failed runs (counted in the tables, never dropped):", ""]
    for (name, status, reason), runs in groups.items():
        where = "; ".join(f"seed {r['seed']}, horizon {r['horizon']:g}" for r in runs[:3])
        more = f" and {len(runs) - 3} more" if len(runs) > 3 else ""
        count = f"{len(runs)} runs: " if len(runs) > 1 else ""
        lines.append(f"- {name}: **{status}** ({count}{where}{more})" + (f": {reason}" if reason else ""))
    return [*lines, ""]


def _correctness(results: Mapping[str, Any], task: str, variant: str | None, entry: Mapping[str, Any]) -> list[str]:
    """An unranked task: did every optimizer solve it? Training objective, its gap to a known optimum, test loss,
    and for a constrained task the violation of the constraint at the end (the largest over the seeds)."""
    info = results["meta"].get("tasks", {}).get(task, {})
    f_star = info.get("optimum")
    metrics = info.get("constraint_metrics") or {}
    lines = [
        "| optimizer | runs | final training loss | optimality gap | final test loss | test accuracy |"
        + "".join(f" {label} |" for label in metrics.values()),
        "| --- | --- | ---: | ---: | ---: | ---: |" + " ---: |" * len(metrics),
    ]
    for name in entry["optimizers"]:
        runs = _report_runs(results, task, variant, name)
        ok = [r for r in runs if r["status"] == "ok"]
        gaps = [
            r["optimality_gap"] if r.get("optimality_gap") is not None else r["final_train_loss"] - f_star
            for r in ok
            if f_star is not None and r.get("final_train_loss") is not None
        ]
        acc = _mean([r.get("test_accuracy") for r in ok])
        worst = []
        for k in metrics:
            values = [(r.get("constraint_violation") or {}).get(k) for r in ok]
            values = [v for v in values if v is not None]
            worst.append(_fmt(max(values) if values else None, ".1e"))
        lines.append(
            f"| {name}{_source(runs)} | {_status_note(runs)} "
            f"| {_fmt(_mean([r['final_train_loss'] for r in ok]), '.6g')} "
            f"| {_fmt(max(gaps) if gaps else None, '.2e')} | {_pm(entry['optimizers'][name].get('final_test_loss'))} "
            f"| {'-' if acc is None else f'{acc:.1%}'} |" + "".join(f" {w} |" for w in worst)
        )
    notes = []
    if f_star is not None:
        notes.append(
            f"Optimality gap: the largest over the seeds of the final training objective - f* (f* = {f_star:.10g}"
            + (
                f"; certified: f - f* <= {info['optimum_certificate']:.1e} there"
                if "optimum_certificate" in info
                else ""
            )
            + ")."
        )
    if metrics:
        notes.append(f"Constraint: {info.get('constraint', '')}; the largest violation over the seeds at the end.")
    return [*lines, "", *notes, ""]


def _tuned_table(meta: Mapping[str, Any]) -> list[str]:
    tuned = meta.get("tuned") or {}
    if not tuned:
        return []
    lines = [
        "## Tuned hyperparameters",
        "",
        "Chosen by `adaptim bench --sweep` on the validation split with the tuning seeds, the same number of "
        "quasirandom trials over one search space for every optimizer (docs/bench.md).",
        "",
        "| task | optimizer | lr | beta2 | weight decay | warm-up fraction | trial | validation loss |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for task, per in tuned.items():
        for name, h in per.items():
            lines.append(
                f"| {task} | {name} | {_fmt(h.get('lr'), '.3g')} | {_fmt(h.get('beta2'), '.4g')} "
                f"| {_fmt(h.get('weight_decay'), '.3g')} | {_fmt(h.get('warmup_fraction'), '.3g')} "
                f"| {h.get('trial', '-')} | {_fmt(h.get('val_loss'))} |"
            )
    return [*lines, ""]


def _header(meta: Mapping[str, Any]) -> list[str]:
    seeds = meta.get("seeds") or []
    tuning = meta.get("tuning_seeds") or []
    horizons = ", ".join(f"{h:g}" for h in meta.get("horizons") or [])
    lines = [
        "# adaptim bench results",
        "",
        f"adaptim {meta.get('adaptim_version', '?')}, torch {meta.get('torch', '?')}, "
        f"Python {meta.get('python', '?')}; "
        f"{meta.get('platform', '?')}, CPU {meta.get('cpu', '?')}, {meta.get('jobs', 1)} process(es) x "
        f"{meta.get('threads', '?')} thread(s); "
        f"preset {meta.get('preset', '?')}, device {meta.get('device', '?')}.",
        f"Report seeds {', '.join(map(str, seeds)) or '-'} ({len(seeds)}); tuning seeds "
        f"{', '.join(map(str, tuning)) or '-'}; horizons {horizons or '1'}.",
    ]
    if meta.get("wall_time_s") is not None:
        cpu = meta.get("cpu_time_s")
        lines.append(
            f"Wall time {meta['wall_time_s']:.1f} s" + ("" if cpu is None else f", CPU time {cpu:.1f} s") + "."
        )
    if meta.get("command"):
        lines.append(f"Command: `{meta['command']}`.")
    return [
        *lines,
        "",
        "Intervals are 95% (Student t over the seeds; differences paired by seed; ratios from log-ratios, "
        f"back-transformed). **faster** means the interval of the paired steps ratio with {BASELINE} lies below 1, "
        'every seed paired; "not distinguishable" means it contains 1.',
        "",
    ]


def results_markdown(
    results: Mapping[str, Any], images: Mapping[str, str] | None = None, profile_image: str | None = None
) -> str:
    """``results.md``: the report of ``results`` (the ``results.json`` schema, docs/bench.md), in Markdown.

    ``images`` maps a summary key (a task, or ``"<task>:<variant>"``) to the file name of its curve figure, linked
    under its tables; ``profile_image`` is the performance profile's file name.

    Raises:
        KeyError: ``results`` lacks ``meta``, ``runs`` or ``summary``.
    """
    meta, _, _ = results["meta"], results["runs"], results["summary"]  # the schema's three parts, up front
    images = images or {}
    lines = _header(meta)
    workloads = _workloads(results)
    sections = [
        ("ranked", [w for w in workloads if w[3].get("ranked", True) and w[2] is None]),
        ("correctness", [w for w in workloads if not w[3].get("ranked", True)]),
        ("heldout", [w for w in workloads if w[3].get("ranked", True) and w[2] is not None]),
    ]
    for kind, group in sections:
        if kind == "heldout" and group:
            lines += [
                "# Held-out variants",
                "",
                "Each workload changed (e.g. width x2, depth +1) and run with the hyperparameters tuned on the "
                "original: reported apart from the ranking above.",
                "",
            ]
        for key, task, variant, entry in group:
            info = meta.get("tasks", {}).get(task, {})
            unit = info.get("loss_unit", "")
            runs = _report_runs(results, task, variant)
            steps = runs[0]["steps"] if runs else None
            head = "#" if kind != "heldout" else "##"
            if kind == "correctness":
                lines += [f"{head}# Correctness probe: {_label(task, variant)} (outside the ranking)", ""]
            else:
                lines += [f"{head}# {_label(task, variant)}", ""]
            if _task_info(info):
                lines += [_task_info(info), ""]
            if kind == "correctness":
                lines += _correctness(results, task, variant, entry)
            else:
                note = _source(_report_runs(results, task, variant, BASELINE))
                how = {" (untuned)": "untuned (no tuned.json entry)", " (given lr)": "at the given lr"}.get(note)
                note = f"; here {BASELINE} ran {how}" if how else ""
                lines += [_target_line(entry, unit, steps, note), ""]
                lines += [*_ranked_table(results, key), ""]
                names = ranking(results, key)
                lines += ["Cost of a run at the full horizon (means over the finished report seeds):", ""]
                lines += [*_cost_table(results, task, variant, names), ""]
                lines += _horizon_table(results, task, variant, names)
            lines += _failures(results, task, variant)
            if key in images:
                lines += [f"![{_label(task, variant)}: loss curves]({images[key]})", ""]
    if profile_image:
        lines += [
            "## Performance profile",
            "",
            "The fraction of workloads on which an optimizer's steps-to-target is within a factor tau of the best "
            "optimizer's there (Dolan and Moré, 2002); reaching the target with half of the seeds or fewer counts as "
            "never.",
            "",
            f"![performance profile]({profile_image})",
            "",
        ]
    lines += _tuned_table(meta)
    return "\n".join(lines).rstrip() + "\n"


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _probe_block(results: Mapping[str, Any], task: str, variant: str | None, entry: Mapping[str, Any]) -> str:
    """A correctness probe's compact table: runs, final training loss and (with a known optimum) the gap."""
    f_star = results["meta"].get("tasks", {}).get(task, {}).get("optimum")
    rows = [("optimizer", "runs", "final training loss", "optimality gap" if f_star is not None else "")]
    for name in entry["optimizers"]:
        runs = _report_runs(results, task, variant, name)
        ok = [r["final_train_loss"] for r in runs if r["status"] == "ok" and r["final_train_loss"] is not None]
        gap = max(ok) - f_star if ok and f_star is not None else None
        rows.append((name, _status_note(runs), _fmt(_mean(ok), ".6g"), "" if f_star is None else _fmt(gap, ".1e")))
    title = f"{_label(task, variant)} (correctness probe, outside the ranking)"
    untuned = sorted(
        {r["optimizer"] for r in _report_runs(results, task, variant) if r.get("hparams_source") == "untuned"}
    )
    if untuned:
        title += f" -- UNTUNED: {', '.join(untuned)} ran without a tuned.json entry"
    return "\n".join([title, *_columns(rows)])


def ranking_text(results: Mapping[str, Any]) -> str:
    """The compact text the terminal ends with: first each correctness probe (unranked task) in a line per
    optimizer, then the ranking per ranked task (held-out variants after): each optimizer's rank, final test loss
    ± 95% interval, paired difference against AdamW, steps and time ratios with their intervals, and the verdict."""
    header = ("#", "optimizer", "test loss", f"vs {BASELINE}", "steps ratio [95%]", "time ratio [95%]", "verdict")
    probes = [
        _probe_block(results, task, variant, entry)
        for _, task, variant, entry in _workloads(results)
        if not entry.get("ranked", True)
    ]
    blocks = []
    workloads = [w for w in _workloads(results) if w[3].get("ranked", True)]
    workloads.sort(key=lambda w: w[2] is not None)  # the held-out variants after the ranked tasks
    for key, task, variant, entry in workloads:
        target = entry.get("target")
        rows = [header]
        for rank, name in enumerate(ranking(results, key), 1):
            row = entry["optimizers"][name]
            if not row.get("n_ok"):
                runs = _report_runs(results, task, variant, name)
                rows.append((str(rank), name, _status_note(runs), "-", "-", "-", "failed"))
                continue
            rows.append(
                (
                    str(rank),
                    name,
                    _pm(row.get("final_test_loss")),
                    "baseline" if name == BASELINE else _pm(row.get("diff_vs_adamw"), sign=True),
                    _ratio(row.get("steps_ratio_vs_adamw")),
                    _ratio(row.get("time_ratio_vs_adamw")),
                    "baseline" if name == BASELINE else _verdict(row, target).strip("*"),
                )
            )
        title = f"{_label(task, variant)}: " + (f"target {_fmt(target)}" if target is not None else "no target")
        untuned = sorted(
            {r["optimizer"] for r in _report_runs(results, task, variant) if r.get("hparams_source") == "untuned"}
        )
        if untuned:
            title += (
                f" -- UNTUNED: {', '.join(untuned)} ran without a tuned.json entry (former lr, default beta2 and "
                "decay); tune with adaptim bench --sweep --write-tuned"
            )
        blocks.append("\n".join([title, *_columns(rows)]))
    if blocks:
        blocks.insert(
            0,
            "Ranking (95% intervals over the seeds; faster = the steps ratio's interval lies below 1, "
            "every seed paired)",
        )
    else:
        blocks = ["No ranked task in this run: no ranking."]
    return "\n\n".join([*probes, *blocks]) + "\n"


# ------------------------------------------------------------------------------------- performance profile
def performance_profile(
    costs: Mapping[str, Mapping[str, float | None]], taus: Sequence[float]
) -> dict[str, list[float]]:
    """Dolan-Moré performance profile: for each optimizer, the fraction of workloads on which its cost is within a
    factor ``tau`` of the best optimizer's on that workload, at each ``tau`` of ``taus``.

    Args:
        costs: ``costs[workload][optimizer]`` = a positive cost (e.g. steps-to-target); ``None`` or ``inf`` where
            the optimizer did not get there (never within any factor). An optimizer missing from a workload counts
            as not getting there. A workload no optimizer solved still counts in the denominator.
        taus: factors >= 1.

    Returns:
        ``{optimizer: [rho(tau) for tau in taus]}``, fractions in [0, 1], optimizers in order of first appearance.

    Raises:
        ValueError: a cost <= 0 or NaN, a tau < 1, or no workload.
    """
    if not costs:
        raise ValueError("performance_profile: costs has no workload")
    if any(not t >= 1 for t in taus):
        raise ValueError(f"performance_profile: every tau must be >= 1, got {list(taus)}")
    names: dict[str, None] = {}
    ratios: list[dict[str, float]] = []
    for workload, per in costs.items():
        clean = {}
        for name, c in per.items():
            names[name] = None
            c = math.inf if c is None else float(c)
            if not c > 0:
                raise ValueError(f"performance_profile: cost of {name!r} on {workload!r} must be > 0, got {c}")
            clean[name] = c
        best = min(clean.values(), default=math.inf)
        ratios.append({n: c / best if math.isfinite(best) else math.inf for n, c in clean.items()})
    n = len(ratios)
    return {name: [sum(r.get(name, math.inf) <= t for r in ratios) / n for t in taus] for name in names}


def profile_costs(results: Mapping[str, Any], variants: bool = False) -> dict[str, dict[str, float | None]]:
    """Steps-to-target per ranked workload and optimizer, for :func:`performance_profile`: the mean over the report
    seeds where more than half of them reached the target (the others entering at their bound), else ``None``
    (never within any factor). Held-out variants are included with ``variants``."""
    costs: dict[str, dict[str, float | None]] = {}
    for key, _task, variant, entry in _workloads(results):
        if not entry.get("ranked", True) or (variant is not None and not variants):
            continue
        costs[key] = {}
        for name in entry["optimizers"]:
            steps, reached, seeds = _steps_to_target(results, key, name)
            enough = steps is not None and steps > 0 and 2 * reached > seeds
            costs[key][name] = steps if enough else None
    return costs


# ---------------------------------------------------------------------------------------------- figures
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(runs: Sequence[Mapping[str, Any]], column: int) -> tuple[list[float], list[float], list[float], list[float]]:
    """(steps, mean, min, max) over ``runs`` of curve column ``column``, at the steps where every run has a value."""
    per_step: dict[float, list[float]] = {}
    for r in runs:
        for point in r["curve"]:
            if len(point) > column and point[column] is not None and math.isfinite(point[column]):
                per_step.setdefault(point[0], []).append(point[column])
    steps = sorted(s for s, v in per_step.items() if len(v) == len(runs))
    return (
        steps,
        [sum(per_step[s]) / len(runs) for s in steps],
        [min(per_step[s]) for s in steps],
        [max(per_step[s]) for s in steps],
    )


def plot_task(results: Mapping[str, Any], key: str, path: str | Path) -> None:
    """Draw the loss curves of summary entry ``key`` (a task, or ``"<task>:<variant>"``) into the PNG ``path``.

    Two panels: against steps and against time (steps x the run's measured seconds per step). Per optimizer, over
    its finished report seeds at the full horizon: the ranked metric (the test loss; for a task with a known optimum,
    the training objective - f* on a log scale) as a bold mean line with a min-max band across seeds, and the
    training loss as a thin line. Where the curves carry the test loss only at the end, the bold line is the
    validation loss and a dot marks the mean final test loss. Failed runs are counted in the legend. A dotted grey
    line marks the target (a test loss).
    """
    plt = _pyplot()
    entry = {k: (t, v) for k, t, v, _ in _workloads(results)}
    task, variant = entry.get(key, (key, None))
    summary = results.get("summary", {}).get(key, {})
    info = results["meta"].get("tasks", {}).get(task, {})
    f_star = info.get("optimum")
    runs = _report_runs(results, task, variant)
    names = list(dict.fromkeys(r["optimizer"] for r in runs))
    has_test = any(p[3] is not None for r in runs if r["status"] == "ok" for p in r["curve"][:-1] if len(p) > 3)
    bold = 1 if f_star is not None else 3 if has_test else 2
    bold_name = "training objective - f*" if f_star is not None else "test loss" if has_test else "validation loss"
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    top = []
    for name in names:
        style = optimizer_style(name)
        mine = [r for r in runs if r["optimizer"] == name]
        ok = [r for r in mine if r["status"] == "ok" and r["curve"]]
        label = name + ("" if len(ok) == len(mine) else f" ({len(mine) - len(ok)}/{len(mine)} failed)")
        if not ok:
            axes[0].plot([], [], label=label, lw=2.2, **style)
            continue
        sec = _mean([r.get("ms_per_step") for r in ok])
        sec = (sec or 0.0) / 1000
        steps, mean, lo, hi = _band(ok, bold)
        tsteps, tmean, _, _ = _band(ok, 1)
        if f_star is not None:
            mean, lo, hi = ([max(v - f_star, 1e-16) for v in vals] for vals in (mean, lo, hi))
            tmean = [max(v - f_star, 1e-16) for v in tmean]
        for ax, scale in ((axes[0], 1.0), (axes[1], sec)):
            if not steps:
                continue
            x = [s * scale for s in steps]
            ax.plot(x, mean, lw=2.2, label=label if ax is axes[0] else None, **style)
            ax.fill_between(x, lo, hi, color=style["color"], alpha=0.15, lw=0)
            if bold != 1:
                ax.plot([s * scale for s in tsteps], tmean, lw=0.7, alpha=0.5, **style)
            final = _mean([r["final_test_loss"] for r in ok])
            if bold == 2 and final is not None:  # the ranked metric, measured at the end alone
                ax.plot([max(r["steps"] for r in ok) * scale], [final], "o", ms=7, color=style["color"], zorder=3)
        if mean:
            top.append(mean[min(len(mean) - 1, max(1, len(mean) // 10))])
    target = summary.get("target")
    for ax in axes:
        if target is not None and f_star is None:
            ax.axhline(target, color="0.4", ls=":", lw=1.2, label="target (test loss)" if ax is axes[0] else None)
        ax.grid(alpha=0.3)
        if f_star is not None:
            ax.set_yscale("log")
    if top and f_star is None:  # the early transient would flatten the part where optimizers differ
        low = axes[0].get_ylim()[0]
        axes[0].set_ylim(low, max(top) + 0.05 * (max(top) - low))
    unit = info.get("loss_unit", "")
    axes[0].set_ylabel(bold_name + (f" [{unit}]" if unit else ""))
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("time (s): steps x measured time per step")
    seeds = len({r["seed"] for r in runs})
    thin = "" if bold == 1 else "; thin: training loss" + ("; dot: final test loss" if bold == 2 else "")
    fig.suptitle(
        f"adaptim bench: {_label(task, variant)}. Bold: {bold_name}, mean over {seeds} seed(s), band min-max{thin}"
    )
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _save(fig, path)


def plot_lr_sensitivity(sweep: Mapping[str, Any], optimizer: str, path: str | Path) -> None:
    """Draw the final validation loss against lr over ``optimizer``'s tuning trials of ``sweep`` (the
    ``sweep.json`` schema) into the PNG ``path``: one panel per task, log lr axis, the chosen trial as a star and
    each failed trial as an x at the top of its panel.

    Raises:
        ValueError: ``optimizer`` has no trial in ``sweep``.
    """
    plt = _pyplot()
    trials = [t for t in sweep["trials"] if t["optimizer"] == optimizer]
    if not trials:
        raise ValueError(f"plot_lr_sensitivity: no trial of optimizer {optimizer!r} in the sweep")
    tasks = list(dict.fromkeys(t["task"] for t in trials))
    style = optimizer_style(optimizer)
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        mine = [t for t in trials if t["task"] == task]
        ok = [t for t in mine if t["status"] == "ok" and t["final_val_loss"] is not None]
        ax.scatter([t["hparams"]["lr"] for t in ok], [t["final_val_loss"] for t in ok], color=style["color"], s=18)
        best = (sweep.get("best") or {}).get(task, {}).get(optimizer)
        if best is not None and best.get("val_loss") is not None:
            ax.scatter([best["lr"]], [best["val_loss"]], marker="*", s=160, color="k", zorder=3, label="chosen")
            ax.legend(fontsize=7)
        failed = [t for t in mine if t not in ok]
        if failed:
            y = max((t["final_val_loss"] for t in ok), default=1.0)
            ax.scatter([t["hparams"]["lr"] for t in failed], [y] * len(failed), marker="x", color="r", s=30)
        ax.set_xscale("log")
        ax.set_xlabel("lr")
        ax.set_title(f"{task}: {len(ok)} of {len(mine)} trials finished", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("final validation loss")
    fig.suptitle(f"lr sensitivity: {optimizer} (x: failed trial)")
    fig.tight_layout()
    _save(fig, path)


def plot_performance_profile(results: Mapping[str, Any], path: str | Path) -> None:
    """Draw the performance profile (:func:`performance_profile` of :func:`profile_costs`) into the PNG ``path``:
    rho(tau) against tau on a log axis, one step curve per optimizer in its fixed style.

    Raises:
        ValueError: ``results`` has no ranked workload.
    """
    plt = _pyplot()
    import matplotlib.ticker

    costs = profile_costs(results)
    if not costs:
        raise ValueError("plot_performance_profile: no ranked workload in the results")
    finite = [
        c / min(v for v in per.values() if v is not None)
        for per in costs.values()
        for c in per.values()
        if c is not None
    ]
    tau_max = max(2.0, 1.1 * max(finite, default=1.0))
    taus = [tau_max ** (i / 200) for i in range(201)]
    profile = performance_profile(costs, taus)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rho in profile.items():
        ax.step(taus, rho, where="post", lw=1.8, label=name, **optimizer_style(name))
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("tau: steps-to-target within a factor tau of the best")
    ax.set_ylabel("fraction of workloads")
    ax.set_title(f"performance profile over {len(costs)} workload(s): {', '.join(costs)}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _save(fig, path)


# ------------------------------------------------------------------------------------------------- files
def _atomic(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` for a temporary file next to ``path``, then rename it into place: a reader (or a kill
    mid-write) never sees a truncated file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


def _save(fig: Any, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    try:
        _atomic(Path(path), lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)


def _figure_name(key: str) -> str:
    return key.replace(":", "-") + ".png"


def write_results(
    results: Mapping[str, Any], out_dir: str | Path, sweep: Mapping[str, Any] | None = None
) -> list[Path]:
    """Write ``results.json``, ``results.md``, ``<task>.png`` per summary entry (``<task>-<variant>.png`` for a
    held-out variant) and ``profile.png`` into ``out_dir`` (created if needed); with ``sweep``, also its files
    (:func:`write_sweep`). Every file is written atomically. Returns the paths written.

    Raises:
        ValueError: ``results`` holds a non-finite number (JSON has none).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json_atomic(out / "results.json", results)]
    images = {}
    for key, *_ in _workloads(results):
        images[key] = _figure_name(key)
        plot_task(results, key, out / images[key])
        paths.append(out / images[key])
    profile = None
    if profile_costs(results):
        profile = "profile.png"
        plot_performance_profile(results, out / profile)
        paths.append(out / profile)
    _write_text(out / "results.md", results_markdown(results, images, profile))
    paths.append(out / "results.md")
    if sweep is not None:
        paths += write_sweep(sweep, out)
    return paths


# --------------------------------------------------------------------------------------------------- sweep
def sweep_markdown(sweep: Mapping[str, Any]) -> str:
    """The sweep's trial table (the ``sweep.json`` schema) in Markdown: the search space and how the sweep ran,
    a summary of the chosen trials (with the lr centres searched and any edge the winner still lies on), then per
    task one row per trial (optimizer, trial, round, the hyperparameters, the final validation loss of each seed
    and their mean, or the failure), the chosen trial of each optimizer in bold."""
    lines = []
    space = sweep.get("space") or {}
    meta = sweep.get("meta") or {}
    if space:
        lines += ["Search space: " + "; ".join(f"{k}: {v}" for k, v in space.items()) + ".", ""]
    if meta.get("trials"):
        lines += [
            f"{meta['trials']} trials per (task, optimizer) on tuning seed(s) {meta.get('tuning_seeds')}; up to "
            f"{meta.get('extend', 0)} extra round(s) where the best lr lay in the outer 10% of the lr range; the "
            f"{meta.get('confirm', 0)} best trials re-run on seeds {meta.get('confirm_seeds', [])}, the winner "
            f"chosen among them on the mean. {meta.get('jobs', 1)} process(es) x {meta.get('threads', '?')} "
            f"thread(s); wall {meta.get('wall_time_s', '?')} s, CPU {meta.get('cpu_time_s', '?')} s. Command: "
            f"`{meta.get('command', '')}`.",
            "",
        ]
    best = sweep.get("best") or {}
    if best:
        lines += [
            "| task | optimizer | trial | lr | beta2 | weight decay | warm-up | mean val loss (seeds) | lr centres "
            "searched | on an edge |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        ]
        for task, per in best.items():
            for name, h in per.items():
                centres = ", ".join(f"{c:g}" for c in h.get("centers", []))
                lines.append(
                    f"| {task} | {name} | {h.get('trial', '-')} | {_fmt(h.get('lr'), '.3g')} "
                    f"| {_fmt(h.get('beta2'), '.4g')} | {_fmt(h.get('weight_decay'), '.3g')} "
                    f"| {_fmt(h.get('warmup_fraction'), '.3g')} | {_fmt(h.get('val_loss'))} "
                    f"({len(h.get('seeds', []))}) | {centres or '-'} | {', '.join(h.get('edges', [])) or '-'} |"
                )
        lines.append("")
    for task in dict.fromkeys(t["task"] for t in sweep["trials"]):
        lines += [
            f"### {task}",
            "",
            "| optimizer | trial | round | lr | beta2 | weight decay | warm-up fraction | final validation loss "
            "per seed | mean |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
        ]
        groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
        for t in (t for t in sweep["trials"] if t["task"] == task):
            groups.setdefault((t["optimizer"], t["trial"]), []).append(t)
        for (name, trial), rows in sorted(groups.items(), key=lambda kv: (list(groups).index(kv[0]), 0)):
            h = rows[0]["hparams"]
            chosen = (best.get(task, {}).get(name) or {}).get("trial") == trial
            each = ", ".join(
                f"{_fmt(r['final_val_loss'])}" if r["status"] == "ok" else r["status"]
                for r in sorted(rows, key=lambda r: r["seed"])
            )
            ok = [r["final_val_loss"] for r in rows if r["status"] == "ok" and r["final_val_loss"] is not None]
            mean = _fmt(sum(ok) / len(ok)) if len(ok) == len(rows) else "-"
            lines.append(
                f"| {name} | {trial} | {rows[0].get('round', 0)} | {_fmt(h.get('lr'), '.3g')} "
                f"| {_fmt(h.get('beta2'), '.4g')} | {_fmt(h.get('weight_decay'), '.3g')} "
                f"| {_fmt(h.get('warmup_fraction'), '.3g')} | {each} | {f'**{mean}**' if chosen else mean} |"
            )
        lines.append("")
    return "\n".join(lines)


def sweep_text(sweep: Mapping[str, Any]) -> str:
    """The compact table the terminal ends with after a sweep: per (task, optimizer) the chosen trial, its
    hyperparameters and mean validation loss, and how many of its trials finished."""
    header = ("task", "optimizer", "trial", "lr", "beta2", "weight decay", "warm-up", "val loss", "finished")
    rows = [header]
    best = sweep.get("best") or {}
    pairs = dict.fromkeys((t["task"], t["optimizer"]) for t in sweep["trials"])
    for task, name in pairs:
        mine = [t for t in sweep["trials"] if (t["task"], t["optimizer"]) == (task, name)]
        done = f"{sum(t['status'] == 'ok' for t in mine)}/{len(mine)}"
        h = best.get(task, {}).get(name)
        if h is None:
            rows.append((task, name, "none", "-", "-", "-", "-", "-", done))
            continue
        rows.append(
            (
                task,
                name,
                str(h.get("trial", "-")),
                _fmt(h.get("lr"), ".3g"),
                _fmt(h.get("beta2"), ".4g"),
                _fmt(h.get("weight_decay"), ".3g"),
                _fmt(h.get("warmup_fraction"), ".3g"),
                _fmt(h.get("val_loss")),
                done,
            )
        )
    title = "Chosen trials (lowest mean final validation loss over the tuning seeds; runs finished / run)"
    return "\n".join([title, *_columns(rows)]) + "\n"


def write_sweep(sweep: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``sweep.json``, ``sweep.md`` and ``lr-<optimizer>.png`` per optimizer into ``out_dir``, atomically;
    return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json_atomic(out / "sweep.json", sweep), out / "sweep.md"]
    _write_text(paths[1], sweep_markdown(sweep))
    for name in dict.fromkeys(t["optimizer"] for t in sweep["trials"]):
        paths.append(out / f"lr-{name}.png")
        plot_lr_sensitivity(sweep, name, paths[-1])
    return paths
