"""Writing the bench's results: ``results.json``, the ``results.md`` table and one PNG of loss curves per task;
and the learning-rate sweep's ``sweep.json`` / ``sweep.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adaptim.bench.store import write_json_atomic

__all__ = ["write_results", "results_markdown", "plot_task", "write_sweep", "sweep_markdown"]


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def results_markdown(results: dict[str, Any], images: dict[str, str] | None = None) -> str:
    """The side-by-side table of ``results`` (as returned by :func:`adaptim.bench.run_bench`), in Markdown.

    ``images`` maps a task name to the file name of its curve plot, linked under the task's table.
    """
    meta, runs = results["meta"], results["runs"]
    lines = [
        "# adaptim bench results",
        "",
        f"adaptim {meta['adaptim_version']}, torch {meta['torch']}, Python {meta['python']}, device {meta['device']}, "
        f"{meta['threads']} thread(s), seeds {meta['seeds']}; total wall time {meta['wall_time_s']:.1f} s.",
        f"Schedule: {meta['schedule']}.",
        "",
    ]
    for task, info in meta["tasks"].items():
        lines += [f"## {task}", "", f"{info['description']}; model: {info['model']}.", ""]
        if "unigram_entropy_bits" in info:
            lines += [
                f"Corpus: {info['corpus']} ({info['n_train_chars']:,} training / {info['n_val_chars']:,} "
                f"validation characters). Unigram entropy of the corpus: "
                f"**{info['unigram_entropy_bits']:.3f} bits/char**; target for AdamW: below 80% of it, "
                f"**{info['target_bits']:.3f} bits/char**.",
                "",
            ]
        if "optimum" in info and "l2" in info:
            lines += [
                f"Training objective optimum f* = {info['optimum']:.10f} (lambda = {info['l2']:g}; "
                f"{info['optimum_solver']}, final gradient norm {info['optimum_grad_norm']:.1e}).",
                "",
            ]
        elif "optimum" in info:
            lines += [
                f"Training objective optimum f* = {info['optimum']:.10f} ({info['optimum_solver']}; certified: "
                f"f - f* <= {info['optimum_certificate']:.1e} there).",
                "",
            ]
        metrics = info.get("constraint_metrics", {})  # a constrained task: one column per violation metric
        if metrics:
            lines += [f"Constraint: {info['constraint']}; violation at the end of each run in the last columns.", ""]
        unit = info["loss_unit"]
        lines += [
            f"| optimizer | lr | steps | train loss ({unit}) | val loss ({unit}) | val acc | optimality gap "
            "| state | wall s | note |" + "".join(f" {label} |" for label in metrics.values()),
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |" + " ---: |" * len(metrics),
        ]
        for r in (r for r in runs if r["task"] == task):
            note = (
                f"skipped: {r['skipped']}"
                if r["skipped"]
                else f"diverged at step {r['diverged']}"
                if r["diverged"] is not None
                else ""
            )
            acc = "-" if r["val_accuracy"] is None else f"{r['val_accuracy']:.1%}"
            lines.append(
                f"| {r['optimizer']} | {r['hparams']['lr']:.3g} | {r['steps']} | {_fmt(r['final_train_loss'], '.4f')} "
                f"| {_fmt(r['final_val_loss'], '.4f')} | {acc} | {_fmt(r['optimality_gap'], '.2e')} "
                f"| {_bytes(r['state_bytes'])} | {_fmt(r['wall_time_s'], '.2f')} | {note} |"
                + "".join(f" {_fmt((r['constraint_violation'] or {}).get(k), '.1e')} |" for k in metrics)
            )
        if images and task in images:
            lines += ["", f"![{task} loss curves]({images[task]})"]
        lines.append("")
    checks = meta.get("checks", [])
    if checks:
        lines += ["## Quality targets", ""]
        lines += [f"- [{'x' if c['holds'] else ' '}] {c['task']}: {c['statement']}" for c in checks]
        lines.append("")
    return "\n".join(lines)


def plot_task(results: dict[str, Any], task: str, path: str | Path) -> None:
    """Draw the training (lines) and validation (markers) curves of every run of ``task`` into the PNG ``path``.

    For a task with a known optimum (logreg) the training curve is drawn as the gap f - f* on a log scale; other
    tasks use a log scale when some final training loss is below a tenth of the initial loss.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = results["meta"]["tasks"][task]
    f_star = info.get("optimum")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    runs = [r for r in results["runs"] if r["task"] == task and not r["skipped"]]
    palette = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    for i, r in enumerate(runs):
        # tab20 holds 10 dark/light pairs: the first ten runs take the dark colors, the next ten the light ones
        color = palette(i) if palette.N == 10 else palette((2 * i) % 20 + (i // 10) % 2)
        pts = [(s, tr) for s, tr, *_ in r["curve"] if tr is not None]
        if f_star is not None:
            pts = [(s, max(tr - f_star, 1e-16)) for s, tr in pts]
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            color=color,
            lw=1.2,
            label=f"{r['optimizer']} ({r['hparams']['lr']:.3g})",
        )
        if f_star is None:
            val = [(s, v) for s, _, v, *_ in r["curve"] if v is not None]
            ax.plot([p[0] for p in val], [p[1] for p in val], "o--", color=color, ms=3, lw=0.6)
    ax.set_xlabel("step")
    if f_star is not None:
        ax.set_yscale("log")
        ax.set_ylabel("training objective - f*")
    else:
        ax.set_ylabel(f"loss ({info['loss_unit']}): train (line), validation (markers)")
        finals = [r["final_train_loss"] for r in runs if r["final_train_loss"]]
        if finals and min(finals) < 0.1 * runs[0]["curve"][0][1]:  # losses spanning decades: log scale
            ax.set_yscale("log")
    if "unigram_entropy_bits" in info:
        ax.axhline(info["unigram_entropy_bits"], color="gray", ls=":", lw=1, label="unigram entropy")
        ax.axhline(info["target_bits"], color="gray", ls="-.", lw=1, label="80% of unigram entropy")
        ax.set_ylim(top=min(ax.get_ylim()[1], 2 * info["unigram_entropy_bits"]))
    ax.set_title(f"adaptim bench: {task}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``results.json``, ``results.md`` and ``<task>.png`` per task into ``out_dir`` (created if needed).

    Returns the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json_atomic(out / "results.json", results)]
    images = {}
    for task in results["meta"]["tasks"]:
        images[task] = f"{task}.png"
        plot_task(results, task, out / images[task])
        paths.append(out / images[task])
    (out / "results.md").write_text(results_markdown(results, images))
    paths.append(out / "results.md")
    return paths


def sweep_markdown(sweep: dict[str, Any]) -> str:
    """The sweep's results as Markdown: per task, one row per optimizer with the score at every grid rate."""
    lines = []
    for task, info in sweep["meta"]["tasks"].items():
        rows = [r for r in sweep["sweep"] if r["task"] == task]
        metric = rows[0]["metric"].replace("_", " ") if rows else ""
        steps = sweep["meta"].get("steps_override") or info["steps"]
        lines += [f"### {task} ({metric}, {info['loss_unit']}, {steps} steps)", ""]
        lines += ["| optimizer | best lr | best | scores at lr = ... |", "| --- | ---: | ---: | --- |"]
        for r in rows:
            if r["skipped"]:
                lines.append(f"| {r['optimizer']} | - | - | skipped: {r['skipped']} |")
                continue
            spec = ".2e" if r["metric"] == "optimality_gap" else ".4f"
            cells = ", ".join(
                f"{lr:.3g}: {'diverged' if s is None else format(s, spec)}" for lr, s in zip(r["grid"], r["scores"])
            )
            edge = " (edge)" if r["at_edge"] else ""
            lines.append(
                f"| {r['optimizer']} | {_fmt(r['best_lr'], '.3g')}{edge} | {_fmt(r['best_score'], spec)} | {cells} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_sweep(sweep: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``sweep.json`` and ``sweep.md`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(sweep, indent=1, allow_nan=False) + "\n")
    (out / "sweep.md").write_text(sweep_markdown(sweep))
    return [out / "sweep.json", out / "sweep.md"]
