"""Tests of the bench's report (adaptim.bench.report) on a fabricated, schema-valid results dict: the Markdown shows
intervals, verdicts and failures; the figures are PNG files with one fixed (colour, line style) per optimizer; the
performance profile matches a hand-computed example; the terminal ranking; the sweep's trial table and plots; and
atomic writes."""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics

import pytest
from scipy import stats

from adaptim.bench import report
from adaptim.bench.report import (
    optimizer_style,
    performance_profile,
    profile_costs,
    ranking,
    ranking_text,
    results_markdown,
    sweep_markdown,
    write_results,
    write_sweep,
)

PNG = b"\x89PNG\r\n\x1a\n"
SEEDS = (0, 1, 2)
HORIZONS = (0.25, 0.5, 1.0)
STEPS = {"mnist1d": 400, "charlm": 800, "logreg": 200}
BASE = {"mnist1d": 0.5, "charlm": 2.4, "logreg": 0.07}
# final test loss relative to AdamW's at the full horizon
FACTOR = {"adamw": 1.0, "muon": 0.9, "shampoo": 0.995, "sgd": 1.3, "full_matrix_adagrad": 1.0}
# shampoo reaches the target at half the horizon with seed 0, at the full one with seed 1: its steps ratio's
# interval straddles 1
SEED_FACTOR = {("shampoo", 0): 0.9, ("shampoo", 1): 0.99}
OPTIMIZERS = tuple(FACTOR)
REFUSED = "FullMatrixAdaGrad: a parameter has 4096 entries, more than max_dim 1024"


def _failure(task: str, variant: str | None, name: str, seed: int, horizon: float) -> tuple[str, str] | None:
    if name == "full_matrix_adagrad" and task != "logreg":
        return "refused", REFUSED
    if name == "shampoo" and task == "charlm" and variant is None and seed == 2 and horizon == 1.0:
        return "diverged", "training loss nan at step 130"
    if name == "sgd" and task == "mnist1d" and variant is None and seed == 1 and horizon == 1.0:
        return "nonfinite", "final test loss inf"
    return None


def _run(task: str, variant: str | None, name: str, seed: int, horizon: float) -> dict:
    steps = int(STEPS[task] * horizon)
    base = BASE[task] * (1.1 if variant else 1.0)
    jitter = 1 + 0.004 * ((seed * 7 + len(name)) % 5)  # seed-to-seed spread, different per optimizer
    final = base * SEED_FACTOR.get((name, seed), FACTOR[name]) * (1 + 0.2 * (1 - horizon)) * jitter
    curve = []
    for step in range(0, steps + 1, 25):
        level = final * (1 + 3 * (1 - step / steps))
        curve.append([step, 1.05 * level, level, level])
    failed = _failure(task, variant, name, seed, horizon)
    ms = 10.0 * (1.5 if name == "shampoo" else 1.0)
    record = {
        "task": task,
        "variant": variant,
        "optimizer": name,
        "seed": seed,
        "seed_role": "report",
        "horizon": horizon,
        "steps": steps,
        "hparams": {"lr": 1e-3, "beta2": 0.95, "weight_decay": 0.1, "warmup_fraction": 0.05},
        "status": "ok",
        "reason": None,
        "curve": curve,
        "final_train_loss": 1.05 * final,
        "final_val_loss": final,
        "final_test_loss": final,
        "test_accuracy": 0.9 if task != "charlm" else None,
        "wall_time_s": steps * ms / 1000 * 1.2,
        "cpu_time_s": steps * ms / 1000 * 1.9,
        "ms_per_step": ms,
        "optimizer_ms_per_step": ms * (0.4 if name == "shampoo" else 0.1),
        "state_bytes": 4096 * (3 if name == "shampoo" else 2),
    }
    if failed:
        record["status"], record["reason"] = failed
        for key in ("final_train_loss", "final_val_loss", "final_test_loss", "test_accuracy"):
            record[key] = None
        record["curve"] = [] if failed[0] == "refused" else curve[:6]
    return record


def _interval(values: list[float]) -> dict:
    n = len(values)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    mean = statistics.fmean(values)
    if n < 2:
        return {"mean": mean, "lo": None, "hi": None, "n": n}
    half = float(stats.t.ppf(0.975, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n}


def _log_interval(ratios: list[float]) -> dict:
    out = _interval([math.log(r) for r in ratios])
    return {k: (math.exp(v) if k != "n" and v is not None else v) for k, v in out.items()}


def _summary(runs: list[dict], task: str, variant: str | None) -> dict:
    mine = [r for r in runs if r["task"] == task and r["variant"] == variant]
    full = {(r["optimizer"], r["seed"]): r for r in mine if r["horizon"] == 1.0}
    adamw = [full["adamw", s]["final_test_loss"] for s in SEEDS if full["adamw", s]["status"] == "ok"]
    target = statistics.median(adamw)

    def steps_to_target(name: str, seed: int) -> int | None:
        for h in HORIZONS:
            r = next(r for r in mine if (r["optimizer"], r["seed"], r["horizon"]) == (name, seed, h))
            if r["status"] == "ok" and r["final_test_loss"] <= target:
                return r["steps"]
        return None

    def censored(name: str) -> dict:
        # a seed that never reached the target enters at the longest horizon's steps, as a lower bound
        longest = max(r["steps"] for r in mine if r["optimizer"] == name)
        values = [steps_to_target(name, s) for s in SEEDS]
        out = _interval([float(longest if v is None else v) for v in values])
        reached = sum(v is not None for v in values)
        return {**out, "reached": reached, "seeds": len(SEEDS), "bound": "=" if reached == len(SEEDS) else ">="}

    def time_to_target(name: str, seed: int) -> float | None:
        steps = steps_to_target(name, seed)
        return None if steps is None else steps * full[name, seed]["ms_per_step"] / 1000

    optimizers = {}
    for name in OPTIMIZERS:
        ok = {s: full[name, s]["final_test_loss"] for s in SEEDS if full[name, s]["status"] == "ok"}
        base = {s: full["adamw", s]["final_test_loss"] for s in SEEDS}
        stt = {s: steps_to_target(name, s) for s in SEEDS}
        ttt = {s: time_to_target(name, s) for s in SEEDS}
        a_stt = {s: steps_to_target("adamw", s) for s in SEEDS}
        a_ttt = {s: time_to_target("adamw", s) for s in SEEDS}
        both = [s for s in SEEDS if stt[s] is not None and a_stt[s] is not None]
        steps_ratio = _log_interval([stt[s] / a_stt[s] for s in both])
        faster = None
        if steps_ratio["hi"] is not None and (steps_ratio["hi"] < 1 or steps_ratio["lo"] > 1):
            faster = steps_ratio["hi"] < 1
        optimizers[name] = {
            "n_ok": len(ok),
            "n_failed": len(SEEDS) - len(ok),
            "final_test_loss": _interval(list(ok.values())),
            "diff_vs_adamw": _interval([ok[s] - base[s] for s in ok]),
            "steps_to_target": censored(name) if ok else {**_interval([]), "reached": 0, "seeds": len(SEEDS)},
            "steps_ratio_vs_adamw": steps_ratio,
            "time_to_target_s": _interval([v for v in ttt.values() if v is not None]),
            "time_ratio_vs_adamw": _log_interval([ttt[s] / a_ttt[s] for s in both]),
            "faster": faster,
        }
    return {"target": target, "ranked": task != "logreg", "optimizers": optimizers}


WORKLOADS = (("mnist1d", None), ("charlm", None), ("logreg", None), ("mnist1d", "heldout"))


def synthetic_results() -> dict:
    """A schema-valid results dict: three tasks (logreg unranked), a held-out variant of mnist1d, five optimizers,
    three seeds, three horizons; one diverged, one non-finite and a refused optimizer."""
    runs = [
        _run(task, variant, name, seed, h)
        for task, variant in WORKLOADS
        for name in OPTIMIZERS
        for seed in SEEDS
        for h in HORIZONS
    ]
    summary = {
        (task if variant is None else f"{task}:{variant}"): _summary(runs, task, variant) for task, variant in WORKLOADS
    }
    hp = {"lr": 3e-3, "beta2": 0.95, "weight_decay": 0.1, "warmup_fraction": 0.05, "trial": 4, "val_loss": 0.5}
    meta = {
        "adaptim_version": "0.1.0",
        "torch": "2.13.0",
        "python": "3.11.7",
        "platform": "Linux-x86_64",
        "cpu": "x86_64",
        "threads": 2,
        "preset": "cpu",
        "device": "cpu",
        "seeds": list(SEEDS),
        "tuning_seeds": [100, 101],
        "horizons": list(HORIZONS),
        "tasks": {
            "mnist1d": {"description": "1-D CNN on mnist1d", "loss_unit": "nats", "params": 5000},
            "charlm": {"description": "character transformer", "loss_unit": "bits/char", "params": 120833},
            "logreg": {"description": "logistic regression", "loss_unit": "nats", "optimum": 0.0605044806},
        },
        "tuned": {t: {n: dict(hp) for n in OPTIMIZERS} for t in ("mnist1d", "charlm", "logreg")},
        "wall_time_s": 123.4,
        "cpu_time_s": 234.5,
        "command": "adaptim bench --quick",
    }
    return {"meta": meta, "runs": runs, "summary": summary}


def synthetic_sweep() -> dict:
    trials = []
    for task, name, trial in itertools.product(("mnist1d", "charlm"), ("adamw", "muon"), range(4)):
        lr = 10 ** (-4 + trial)
        status = "diverged" if trial == 3 else "ok"
        loss = None if status != "ok" else BASE[task] * (1 + abs(trial - 1.5) / 3)
        h = {"lr": lr, "beta2": 0.95, "weight_decay": 0.1 * trial, "warmup_fraction": 0.05}
        trials.append(
            {"task": task, "optimizer": name, "trial": trial, "hparams": h, "seed": 100, "final_val_loss": loss}
            | {"status": status}
        )
    best = {
        task: {
            name: {**trials[0]["hparams"], "lr": 1e-2, "trial": 2, "val_loss": BASE[task] * 7 / 6}
            for name in ("adamw", "muon")
        }
        for task in ("mnist1d", "charlm")
    }
    return {
        "meta": {},
        "space": {"lr": "log-uniform [1e-4, 1e-1]", "beta2": "[0.9, 0.999]"},
        "trials": trials,
        "best": best,
    }


@pytest.fixture(scope="module")
def results():
    return synthetic_results()


def _section(md: str, title: str) -> str:
    start = md.index(title)
    nxt = re.search(r"^#{1,3} ", md[start + len(title) :], re.M)
    return md[start : start + len(title) + (nxt.start() if nxt else len(md))]


def _pm_cell(cell: str) -> tuple[float, float]:
    mean, half = cell.split(" ± ")
    return float(mean), float(half)


def _row(section: str, name: str) -> list[str]:
    rows = ([c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| "))
    return next(row for row in rows if name in row[:2])


# -------------------------------------------------------------------------------------------------- markdown
def test_markdown_shows_intervals_verdicts_and_the_target(results):
    md = results_markdown(results)
    charlm = _section(md, "## charlm")
    entry = results["summary"]["charlm"]
    assert f"**{entry['target']:.4g}** bits/char" in charlm and "median final test loss" in charlm
    muon = entry["optimizers"]["muon"]
    row = _row(charlm, "muon")
    for cell, stat in ((row[3], muon["final_test_loss"]), (row[4], muon["diff_vs_adamw"])):
        mean, half = _pm_cell(cell)  # mean ± half-width, rounded to the half-width's second digit
        assert mean == pytest.approx(stat["mean"], abs=half / 10) and half == pytest.approx(
            (stat["hi"] - stat["lo"]) / 2, rel=0.05
        )
    assert row[4].startswith("-")  # better than AdamW: a negative difference
    ratio = muon["steps_ratio_vs_adamw"]
    assert row[6] == f"{ratio['mean']:.2f}× [{ratio['lo']:.2f}, {ratio['hi']:.2f}]"
    assert muon["faster"] is True and row[-1] == "**faster**" and row[0] == "1"
    assert row[5] == f"{muon['steps_to_target']['mean']:.0f} ± 0 (3/3)"
    # shampoo's steps ratio interval straddles 1: not "faster", and said so
    mnist = _section(md, "## mnist1d")
    sh = results["summary"]["mnist1d"]["optimizers"]["shampoo"]
    assert sh["steps_ratio_vs_adamw"]["lo"] < 1 < sh["steps_ratio_vs_adamw"]["hi"] and sh["faster"] is None
    assert _row(mnist, "shampoo")[-1] == "not distinguishable"
    assert _row(charlm, "adamw")[4] == "baseline" and _row(charlm, "adamw")[5].endswith("(2/3)")
    # sgd is worse everywhere: never reaches the target
    assert _row(charlm, "sgd")[5] == "not reached (0/3)" and _row(charlm, "sgd")[-1] == "target not reached"


def test_markdown_shows_failures_as_such(results):
    md = results_markdown(results)
    charlm, mnist = _section(md, "## charlm"), _section(md, "## mnist1d")
    assert _row(charlm, "shampoo")[2] == "2 ok, 1 diverged"
    assert "- shampoo: **diverged** (seed 2, horizon 1): training loss nan at step 130" in charlm
    assert _row(mnist, "sgd")[2] == "2 ok, 1 nonfinite"
    refused = _row(mnist, "full_matrix_adagrad")
    assert refused[2] == refused[3] == "3 refused" and refused[-1] == "failed"
    assert refused[0] == str(len(OPTIMIZERS))  # ranked last
    # a refusal repeats on every seed and horizon: one line with the count and the reason
    assert "- full_matrix_adagrad: **refused** (9 runs: seed 0, horizon 0.25;" in mnist
    assert mnist.count(REFUSED) == 1


def test_markdown_sections_correctness_heldout_tuned_and_costs(results):
    md = results_markdown(results, {"charlm": "charlm.png"}, "profile.png")
    probe = _section(md, "## Correctness probe: logreg")
    assert "outside the ranking" in probe and "optimality gap" in probe
    assert "full_matrix_adagrad | 3/3 ok" in probe  # logreg is where it runs
    # the probe is not ranked: no rank column, no target line, no verdict
    assert "Target:" not in probe and "faster" not in probe
    held = md[md.index("# Held-out variants") :]
    assert "## mnist1d (heldout variant)" in held and md.index("## charlm") < md.index("# Held-out variants")
    tuned = _section(md, "## Tuned hyperparameters")
    assert "| charlm | muon | 0.003 | 0.95 | 0.1 | 0.05 | 4 | 0.5 |" in tuned
    charlm = _section(md, "## charlm")
    cost = _row(charlm[charlm.index("Cost of a run") :], "shampoo")
    assert cost[1:5] == ["14.4", "22.8", "15.00", "6.00 (40%)"]  # wall s, CPU s, ms/step, optimizer share
    assert "| optimizer | 0.25 (200) | 0.5 (400) | 1 (800) |" in charlm  # the horizon sweep
    assert "![charlm: loss curves](charlm.png)" in md and "![performance profile](profile.png)" in md
    assert "Wall time 123.4 s, CPU time 234.5 s" in md and "Report seeds 0, 1, 2 (3)" in md


def test_ranking_order_reached_first_then_loss_then_failed(results):
    order = ranking(results, "mnist1d")
    assert order[0] == "muon" and order[-1] == "full_matrix_adagrad"
    assert order.index("sgd") > order.index("adamw")
    with pytest.raises(KeyError, match="no summary entry 'nope'"):
        ranking(results, "nope")


def test_terminal_ends_with_a_compact_ranking_not_a_checklist(results):
    text = ranking_text(results)
    assert "[x]" not in text and "[ ]" not in text
    lines = text.strip().splitlines()
    # the correctness probe first, outside the ranking; the ranking last
    assert lines[0] == "logreg (correctness probe, outside the ranking)"
    ranking_line = (
        "Ranking (95% intervals over the seeds; faster = the steps ratio's interval lies below 1, every seed paired)"
    )
    assert lines.index(ranking_line) > 5
    block = text[text.index("charlm: target") :].split("\n\n")[0].splitlines()
    muon = block[2].split()
    assert muon[:2] == ["1", "muon"] and "±" in block[2] and "faster" in block[2]
    assert "logreg" not in text[text.index("Ranking") :]  # the correctness probe is outside the ranking
    assert text.index("mnist1d (heldout variant)") > text.index("charlm: target")
    assert any("3 refused" in line for line in lines)


# ----------------------------------------------------------------------------------------------- profile
def test_performance_profile_hand_computed():
    costs = {
        "a": {"x": 100, "y": 200, "z": None},
        "b": {"x": 300, "y": 150, "z": 150},
        "c": {"x": None, "y": math.inf, "z": None},  # nobody reached it: still counted
    }
    got = performance_profile(costs, [1, 1.5, 2, 3])
    # ratios: a: x 1, y 2, z never; b: x 2, y 1, z 1; c: never for all
    assert got == {
        "x": [1 / 3, 1 / 3, 2 / 3, 2 / 3],
        "y": [1 / 3, 1 / 3, 2 / 3, 2 / 3],
        "z": [1 / 3, 1 / 3, 1 / 3, 1 / 3],
    }
    # an optimizer missing from a workload never gets there
    assert performance_profile({"a": {"x": 1.0}, "b": {"x": 1.0, "w": 4.0}}, [1, 4]) == {
        "x": [1.0, 1.0],
        "w": [0.0, 0.5],
    }
    with pytest.raises(ValueError, match="tau"):
        performance_profile(costs, [0.5])
    with pytest.raises(ValueError, match="cost of 'x' on 'a'"):
        performance_profile({"a": {"x": 0.0}}, [1])


def test_profile_costs_of_the_results(results):
    costs = profile_costs(results)
    assert list(costs) == ["mnist1d", "charlm"]  # ranked, no held-out variant, no logreg
    summary = results["summary"]["charlm"]["optimizers"]
    assert costs["charlm"]["muon"] == summary["muon"]["steps_to_target"]["mean"]
    assert costs["charlm"]["full_matrix_adagrad"] is None and costs["charlm"]["sgd"] is None
    # reaching the target with more than half of the seeds counts (the others enter at their bound)
    stt = summary["adamw"]["steps_to_target"]
    assert (costs["charlm"]["adamw"] is None) == (2 * stt["reached"] <= stt["seeds"])
    assert "mnist1d:heldout" in profile_costs(results, variants=True)


# -------------------------------------------------------------------------------------------------- styles
def _lab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """CIELAB (D65) of an sRGB colour in [0, 1]."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    x = (0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047
    y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    z = (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883
    f = [t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29 for t in (x, y, z)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def test_every_optimizer_has_its_own_colour_and_line_style():
    from adaptim.optim.factory import NAMED_OPTIMIZERS

    # the registry's names (one figure can hold all of them), and a constrained task's contenders with its baseline
    for group in (list(NAMED_OPTIMIZERS), [*report._CONSTRAINED, "adamw"]):
        styles = [optimizer_style(n) for n in group]
        assert len({(s["color"], str(s["linestyle"])) for s in styles}) == len(group)
        labs = [_lab(s["color"]) for s in styles]
        hues = [math.degrees(math.atan2(b, a)) % 360 for _, a, b in labs]
        gaps = [min(abs(a - b), 360 - abs(a - b)) for a, b in itertools.combinations(hues, 2)]
        assert min(gaps) >= 15, "two optimizers share a hue"
        # and every pair is far apart as colours (a CIE76 difference of 2.3 is just noticeable)
        assert min(math.dist(p, q) for p, q in itertools.combinations(labs, 2)) >= 15
    for a, b in itertools.pairwise(NAMED_OPTIMIZERS):  # neighbours differ in line style too
        assert optimizer_style(a)["linestyle"] != optimizer_style(b)["linestyle"]
    assert optimizer_style("AdamW") == optimizer_style("adamw")
    assert optimizer_style("my_own") == optimizer_style("my_own")


# ------------------------------------------------------------------------------------------------- figures
def test_figures_are_pngs_with_each_optimizer_in_its_style(results, tmp_path, monkeypatch):
    drawn = {}
    save = report._save

    def capture(fig, path):
        drawn[path.name] = [
            (line.get_label(), line.get_color(), line.get_linestyle(), line.get_linewidth())
            for ax in fig.axes
            for line in ax.get_lines()
        ]
        save(fig, path)

    monkeypatch.setattr(report, "_save", capture)
    paths = write_results(results, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == sorted(
        ["results.json", "results.md", "mnist1d.png", "charlm.png", "logreg.png", "mnist1d-heldout.png", "profile.png"]
    )
    for p in paths:
        assert p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert "![charlm: loss curves](charlm.png)" in (tmp_path / "results.md").read_text()
    # both panels (steps, time) draw every finished optimizer in its fixed style, the ranked metric bold
    from matplotlib.colors import to_rgb

    for fig_name in ("charlm.png", "profile.png"):
        labelled = {label: (c, ls, lw) for label, c, ls, lw in drawn[fig_name] if not label.startswith("_")}
        for name in ("adamw", "muon", "sgd"):
            label = next(k for k in labelled if k.split(" ")[0] == name)
            color, ls, lw = labelled[label]
            style = optimizer_style(name)
            assert to_rgb(color) == pytest.approx(style["color"])
            if isinstance(style["linestyle"], str):
                assert ls == style["linestyle"]
            assert lw >= 1.8
    assert "shampoo (1/3 failed)" in {label for label, *_ in drawn["charlm.png"]}
    assert sum(label == "muon" or label.startswith("_") for label, *_ in drawn["charlm.png"]) >= 4  # 2 panels


def test_sweep_table_and_lr_sensitivity_plots(tmp_path):
    sweep = synthetic_sweep()
    md = sweep_markdown(sweep)
    assert "Search space: lr: log-uniform [1e-4, 1e-1]" in md
    charlm = _section(md, "### charlm")
    # one row per trial: its round, hyperparameters, each seed's validation loss and their mean, the chosen in bold
    assert "| muon | 2 | 0 | 0.01 | 0.95 | 0.2 | 0.05 | 2.8 | **2.8** |" in charlm
    assert "| muon | 3 | 0 | 0.1 | 0.95 | 0.3 | 0.05 | diverged | - |" in charlm
    paths = write_sweep(sweep, tmp_path)
    assert sorted(p.name for p in paths) == ["lr-adamw.png", "lr-muon.png", "sweep.json", "sweep.md"]
    assert all(p.read_bytes()[:8] == PNG for p in paths if p.suffix == ".png")
    with pytest.raises(ValueError, match="no trial of optimizer 'sgd'"):
        report.plot_lr_sensitivity(sweep, "sgd", tmp_path / "x.png")


def test_writes_are_atomic_and_keep_the_previous_file_on_error(results, tmp_path):
    (tmp_path / "results.json").write_text('{"previous": true}\n')
    bad = json.loads(json.dumps(results))
    bad["runs"][0]["wall_time_s"] = math.nan
    with pytest.raises(ValueError):
        write_results(bad, tmp_path)
    assert (tmp_path / "results.json").read_text() == '{"previous": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temporary file left behind
