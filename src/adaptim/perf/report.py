"""Writing ``adaptim perf``'s results: ``perf.json``, the ``perf.md`` tables and ``perf.png`` (ns/param)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adaptim.perf.lowprec import low_precision_markdown

__all__ = ["write_perf", "perf_markdown", "plot_perf"]


def _f(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _mb(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def perf_markdown(results: dict[str, Any]) -> str:
    """The tables of ``results`` (as returned by :func:`adaptim.perf.run_perf`), in Markdown."""
    meta, triad = results["meta"], results["triad"]
    lines = [
        "# adaptim perf",
        "",
        f"adaptim {meta['adaptim']}, torch {meta['torch']}, Python {meta['python']}, {meta['machine']}, "
        f"device {meta['device']}, {meta['threads']} thread(s); {results['n_params']:,} parameters in "
        f"{len(results['shapes'])} tensors; {meta['rounds']} rounds, contenders interleaved round-robin.",
        "",
        f"Triad a = b + s*c over {triad['entries']:,} float32 entries (16 B each, write-allocate counted): "
        f"median {triad['median_ms']:.2f} ms, **{triad['bandwidth_GBps']:.2f} GB/s**.",
        "",
        "ns/param and ratios use the median wall time of `step()`; *ref* is torch's fused variant of the same rule, "
        "else foreach, else the for-loop; *floor* is the rule's byte floor at the triad bandwidth.",
        "",
        "| optimizer | wall ms (median / min) | CPU ms (median / min) | ns/param | × ref | × floor | first step ms "
        "| state | state / theory |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["rows"]:
        w, c = r["wall"], r["cpu"]
        lines.append(
            f"| {r['name']} | {w['median_ms']:.2f} / {w['min_ms']:.2f} | {c['median_ms']:.2f} / {c['min_ms']:.2f} "
            f"| {r['ns_per_param']:.2f} | {_f(r['ratio_ref'])} | {r['ratio_floor']:.2f} | {r['first_step_ms']:.2f} "
            f"| {_mb(r['state_bytes'])} | {_f(r['state_ratio'])} |"
        )
    lines += ["", "Byte floors (float32, 4 B per entry):", ""]
    lines += [f"- {k}: {formula}" for k, formula in meta["floors"].items()]
    compiled = [r["name"] for r in results["rows"] if r.get("compiled")]
    lines += [
        "",
        "First step: the state's allocation, and for the fused (compiled) path "
        + (", ".join(compiled) if compiled else "(none here)")
        + " torch.compile's build of its kernel when this process has not built it yet (inductor's on-disk cache "
        "serves a later process from compiled code: a cold first step is longer than a warm one).",
    ]
    if results.get("scaling"):
        sizes = results["scaling"]["sizes"]
        lines += ["", "## Scaling (ns/param, median)", ""]
        lines += ["| optimizer | " + " | ".join(f"{s:,}" for s in sizes) + " | max / min |"]
        lines += ["| --- |" + " ---: |" * (len(sizes) + 1)]
        for r in results["scaling"]["rows"]:
            cells = " | ".join(_f(r["ns_per_param"][str(s)]) for s in sizes)
            lines.append(f"| {r['name']} | {cells} | {_f(r['spread'])} |")
    if results.get("low_precision"):
        lines += low_precision_markdown(results["low_precision"])
    if meta["notes"]:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in meta["notes"]]
    return "\n".join(lines) + "\n"


def plot_perf(results: dict[str, Any], path: Path) -> None:
    """A horizontal bar chart of each contender's ns/param, its rule's byte floor marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.5))
    y = range(len(rows))
    ax.barh(y, [r["ns_per_param"] for r in rows], color=["C0" if r["library"] == "adaptim" else "C7" for r in rows])
    floors = [r["floor_ms"] * 1e6 / r["n_params"] for r in rows]
    ax.scatter(floors, y, marker="|", s=200, color="C3", label="byte floor", zorder=3)
    ax.set_yticks(list(y), [r["name"] for r in rows])
    ax.invert_yaxis()
    ax.set_xscale("log")  # Muon's matrix products sit orders of magnitude above the elementwise rules
    ax.set_xlabel("ns per parameter (median wall time of step()), log scale")
    ax.set_title(f"adaptim perf: {results['n_params']:,} parameters, {results['meta']['threads']} thread(s)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_perf(results: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``perf.json``, ``perf.md`` and ``perf.png`` into ``out`` (created if needed); return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "perf.json", out / "perf.md", out / "perf.png"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n")
    paths[1].write_text(perf_markdown(results) + "\n![ns per parameter](perf.png)\n")
    plot_perf(results, paths[2])
    return paths
