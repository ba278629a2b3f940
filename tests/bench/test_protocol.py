"""Tests of the bench's protocol (adaptim.bench.protocol, runner): the same Sobol points for every optimizer, the
search space's ranges, each method's own beta2 and decoupled decay, tuning seeds apart from reported seeds,
selection on validation alone, horizons as separate compressed runs, the target and steps-to-target interpolation,
run statuses, the thread choice and the untuned fallback. A tiny regression task with a test split keeps it fast."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adaptim.bench import protocol
from adaptim.bench.registry import OPTIMIZERS
from adaptim.bench.runner import choose_threads, run_bench, run_one, run_sweep
from adaptim.bench.tasks import Task


@dataclass(frozen=True)
class _Eval:
    train_loss: float
    val_loss: float
    val_accuracy: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None


class Regression(Task):
    """Least squares y = X w + noise with a 2-layer linear model, train / validation / test splits."""

    name = "regression"
    steps = 12
    log_every = 1
    eval_every = 100  # the runner validates at least every 25 steps anyway
    warmup_fraction = 0.1

    def setup(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(96, 6, generator=g)
        y = x @ torch.randn(6, 1, generator=g) + 0.1 * torch.randn(96, 1, generator=g)
        self.splits = {"train": (x[:64], y[:64]), "val": (x[64:80], y[64:80]), "test": (x[80:], y[80:])}

    def build_model(self):
        return nn.Sequential(nn.Linear(6, 8), nn.Linear(8, 1))

    def batch_loss(self, model, generator):
        x, y = self.splits["train"]
        idx = torch.randint(0, len(y), (16,), generator=generator)
        return F.mse_loss(model(x[idx]), y[idx])

    def _loss(self, model, split):
        x, y = self.splits[split]
        return F.mse_loss(model(x), y).item()

    @torch.no_grad()
    def evaluate(self, model):
        return _Eval(self._loss(model, "train"), self._loss(model, "val"), test_loss=self._loss(model, "test"))


@pytest.fixture(scope="module")
def task():
    t = Regression()
    t.setup()
    return t


# ---------------------------------------------------------------------------------------------- the space
def test_sobol_points_are_fixed_and_shared_by_every_optimizer(task):
    a, b = protocol.sobol_points(8), protocol.sobol_points(8)
    assert a.shape == (8, 4) and (a == b).all() and ((a >= 0) & (a < 1)).all()
    assert not (protocol.sobol_points(8, seed=1) == a).all()
    sweep = run_sweep([task], ["adamw", "shampoo", "sgd"], trials=4, steps=3, progress=False, threads=1)
    by = {o: [r["hparams"] for r in sweep["trials"] if r["optimizer"] == o] for o in ("adamw", "shampoo", "sgd")}
    for i in range(4):
        hs = [by[o][i] for o in by]
        # the same point: equal warm-up, equal position in each optimizer's lr range
        assert len({h["warmup_fraction"] for h in hs}) == 1
        pos = [math.log10(h["lr"] / OPTIMIZERS[o].lr_for(task.name)) for o, h in zip(by, hs)]
        assert max(pos) - min(pos) < 1e-3  # (values are kept to 4 significant digits)
        assert by["adamw"][i]["beta2"] == by["shampoo"][i]["beta2"]
        assert by["adamw"][i]["weight_decay"] * by["adamw"][i]["lr"] == pytest.approx(
            by["shampoo"][i]["weight_decay"] * by["shampoo"][i]["lr"], rel=1e-3
        )
        assert by["sgd"][i]["beta2"] is None and by["sgd"][i]["weight_decay"] is None
    assert sweep["space"]["one_minus_beta2"] == (1e-3, 1e-1)


def test_trial_hparams_cover_the_space():
    spec, space = OPTIMIZERS["adamw"], protocol.SPACE
    center = spec.lr_for("charlm")
    corners = [protocol.trial_hparams(p, spec, "charlm") for p in ([0, 0, 0, 0], [1 - 1e-12] * 4)]
    lo, hi = corners
    assert lo["lr"] == pytest.approx(center / 10, rel=1e-3) and hi["lr"] == pytest.approx(center * 10, rel=1e-3)
    assert lo["beta2"] == pytest.approx(1 - space.one_minus_beta2[0]) and hi["beta2"] == pytest.approx(0.9)
    assert lo["weight_decay"] * lo["lr"] == pytest.approx(1e-5, rel=1e-3)
    assert hi["weight_decay"] * hi["lr"] == pytest.approx(1e-2, rel=1e-3)
    assert lo["warmup_fraction"] == 0 and hi["warmup_fraction"] == pytest.approx(0.2)


def test_each_method_takes_its_own_beta2_and_decay():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    hp = {"lr": 1e-3, "beta2": 0.95, "weight_decay": 0.1, "warmup_fraction": 0.0}
    adamw = OPTIMIZERS["adamw"].build_with(model, hp)
    assert all(g["betas"] == (0.9, 0.95) for g in adamw.param_groups)
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.1, 0.0]  # biases not decayed
    shampoo = OPTIMIZERS["shampoo"].build_with(model, hp)
    assert all(g["beta2"] == 0.95 and g["grafting_beta2"] == 0.95 for g in shampoo.param_groups)
    assert OPTIMIZERS["adafactor"].build_with(model, hp).param_groups[0]["beta2"] == 0.95
    muon = OPTIMIZERS["muon"].build_with(model, hp)
    assert all(g["betas"][1] == 0.95 for g in muon.param_groups)  # the AdamW side's (Muon's own keeps none)
    # a method without a second moment or decoupled decay refuses them; None keeps the method's own
    with pytest.raises(ValueError, match="takes no beta2"):
        OPTIMIZERS["sgd"].build_with(model, hp)
    with pytest.raises(ValueError, match="takes no weight_decay"):
        OPTIMIZERS["adam"].build_with(model, {**hp, "beta2": None})
    sgd = OPTIMIZERS["sgd"].build_with(model, {**hp, "beta2": None, "weight_decay": None})
    assert sgd.param_groups[0]["lr"] == 1e-3


# ------------------------------------------------------------------------------------- seeds, selection
def test_tuning_seeds_are_disjoint_from_report_seeds(task):
    assert protocol.report_seeds(3) == [0, 1, 2] and protocol.tuning_seeds(2) == [1000, 1001]
    with pytest.raises(ValueError, match="tuning seeds"):
        protocol.report_seeds([0, 1000])
    sweep = run_sweep([task], ["adamw"], trials=2, seeds=2, steps=2, progress=False, threads=1, confirm=1, extend=0)
    res = run_bench([task], ["adamw"], seeds=2, horizons=(1.0,), steps=2, progress=False, threads=1, tuned={})
    tune = {r["seed"] for r in sweep["trials"]}
    report = {r["seed"] for r in res["runs"]}
    # the confirmation re-runs the leading trial on two more tuning seeds
    assert tune == {1000, 1001, 1002, 1003} and report == {0, 1}
    assert sweep["best"][task.name]["adamw"]["seeds"] == [1000, 1001, 1002, 1003]
    assert {r["seed_role"] for r in res["runs"]} == {"report"}


def test_selection_reads_validation_only():
    def row(trial, seed, val, test, status="ok"):
        hp = {"lr": 10.0**-trial, "beta2": None, "weight_decay": None, "warmup_fraction": 0.0}
        return {
            "task": "t",
            "optimizer": "o",
            "trial": trial,
            "hparams": hp,
            "seed": seed,
            "final_val_loss": val,
            "final_test_loss": test,
            "status": status,
        }

    rows = [
        row(0, 1000, 1.0, 0.1),  # best test loss: must not matter
        row(1, 1000, 0.6, 9.0),
        row(1, 1001, 0.8, 9.0),  # mean validation 0.7
        row(2, 1000, 0.5, 0.5),
        row(2, 1001, math.inf, 0.5, status="nonfinite"),  # a failed seed disqualifies the trial
    ]
    best = protocol.select_best(rows)["t"]["o"]
    assert best["trial"] == 1 and best["val_loss"] == pytest.approx(0.7) and best["lr"] == 0.1


def test_sweep_selects_its_lowest_validation_trial(task):
    sweep = run_sweep([task], ["adamw"], trials=4, steps=4, progress=False, threads=1, confirm=0, extend=0)
    rows = sweep["trials"]
    best = sweep["best"][task.name]["adamw"]
    assert best["val_loss"] == min(r["final_val_loss"] for r in rows if r["status"] == "ok")
    assert best["lr"] == rows[best["trial"]]["hparams"]["lr"]


def test_selection_among_confirmed_trials_uses_their_mean():
    def row(trial, seed, val):
        hp = {"lr": 10.0**-trial, "beta2": None, "weight_decay": None, "warmup_fraction": 0.0}
        return {
            "task": "t",
            "optimizer": "o",
            "trial": trial,
            "hparams": hp,
            "seed": seed,
            "final_val_loss": val,
            "status": "ok",
        }

    # trial 0 won on one lucky seed; re-run on two more it averages 0.9, trial 1 averages 0.6
    rows = [row(0, 1000, 0.1), row(1, 1000, 0.5), row(2, 1000, 0.55), row(3, 1000, 0.9)]
    rows += [row(0, 1001, 1.3), row(0, 1002, 1.3), row(1, 1001, 0.6), row(1, 1002, 0.7)]
    rows += [row(2, 1001, 0.7), row(2, 1002, 0.8)]
    best = protocol.select_best(rows)["t"]["o"]
    assert best["trial"] == 1 and best["val_loss"] == pytest.approx(0.6) and best["seeds"] == [1000, 1001, 1002]


def test_sweep_extends_the_lr_range_past_an_edge(task):
    # a centre 1e4 x too small: the best lr is at the range's top, so a second round moves the centre up a decade
    spec = OPTIMIZERS["sgd"]
    import dataclasses

    low = dataclasses.replace(spec, lrs={task.name: 1e-7})
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(OPTIMIZERS, "sgd", low)
        sweep = run_sweep([task], ["sgd"], trials=16, steps=6, progress=False, threads=1, confirm=0, extend=1)
    best = sweep["best"][task.name]["sgd"]
    assert best["centers"] == [1e-7, 1e-6] and {r["round"] for r in sweep["trials"]} == {0, 1}
    assert best["lr"] > 1e-7 and "lr high" in best["edges"]  # still on the edge after one round: reported
    assert protocol.edges({"lr": 1e-6}, [1e-6]) == [] and protocol.edges({"lr": 9e-6}, [1e-6]) == ["lr high"]


# ------------------------------------------------------------------------------- horizons, target, steps
def test_horizons_rerun_the_whole_schedule(task):
    res = run_bench([task], ["adamw"], seeds=1, horizons=(0.25, 0.5), steps=12, progress=False, threads=1, tuned={})
    by_h = {r["horizon"]: r for r in res["runs"]}
    assert sorted(by_h) == [0.25, 0.5, 1.0, 1.5]  # 1 is always run; the baseline also past it
    assert [by_h[h]["steps"] for h in (0.25, 0.5, 1.0, 1.5)] == [3, 6, 12, 18]
    for r in by_h.values():  # each its own run: its curve ends at its own steps with a test loss there
        assert r["curve"][-1][0] == r["steps"] and r["curve"][-1][3] == r["final_test_loss"]
    # the 3-step run is not the first 3 steps of the 12-step one (its schedule decays within 3 steps)
    assert by_h[0.25]["curve"][3][1] != by_h[1.0]["curve"][3][1]
    with pytest.raises(ValueError, match="horizon"):
        run_bench([task], ["adamw"], horizons=(0.0,), progress=False)
    with pytest.raises(ValueError, match="baseline_horizons"):
        run_bench([task], ["adamw"], baseline_horizons=(0.5,), progress=False)


def test_shorter_horizons_validate_only_at_the_end(task):
    res = run_bench([task], ["sgd"], seeds=1, horizons=(0.5,), steps=60, progress=False, threads=1, tuned={})
    by_h = {r["horizon"]: r for r in res["runs"]}
    assert [p[0] for p in by_h[1.0]["curve"] if p[2] is not None] == [0, 25, 50, 60]
    assert [p[0] for p in by_h[0.5]["curve"] if p[2] is not None] == [0, 30]


def test_validation_every_25_steps_at_most(task):
    rec = run_one(task, OPTIMIZERS["sgd"], 0.01, 60, progress=False)
    assert [p[0] for p in rec["curve"] if p[2] is not None] == [0, 25, 50, 60]


def test_steps_to_target_interpolates_in_log_steps_with_bounds():
    pts = [(200, 2.0), (100, 3.0), (300, 1.5)]
    s, b = protocol.steps_to_target(pts, 2.5)  # halfway from 3.0 to 2.0: the geometric mean of 100 and 200
    assert s == pytest.approx(math.sqrt(100 * 200)) and b == "="
    assert protocol.steps_to_target(pts, 2.0) == (pytest.approx(200.0), "=")
    assert protocol.steps_to_target(pts, 1.75)[0] == pytest.approx(math.sqrt(200 * 300))
    assert protocol.steps_to_target(pts, 3.5) == (100.0, "<=")  # the shortest horizon already reaches it
    assert protocol.steps_to_target(pts, 1.0) == (300.0, ">")  # not reached: more than the longest
    assert protocol.steps_to_target([(100, None), (200, 1.0)], 2.0) == (200.0, "=")  # nothing to interpolate from
    assert protocol.steps_to_target([(100, None), (200, None)], 2.0) == (200.0, ">")  # failed runs never reach
    assert protocol.steps_to_target(pts, None) is None and protocol.steps_to_target([], 1.0) is None
    # on L(s) = 1 + 100/s the log interpolation errs less than a linear one (the review's example: +4%)
    curve = [(s, 1 + 100 / s) for s in (250, 500, 1000)]
    est = protocol.steps_to_target(curve, 1 + 100 / 400)[0]
    lin = 250 + (500 - 250) * (1.4 - 1.25) / (1.4 - 1.2)
    assert abs(est - 400) < abs(lin - 400)


def test_target_is_the_median_of_adamw_at_horizon_one():
    def r(opt, h, loss, status="ok", role="report"):
        return {
            "task": "t",
            "optimizer": opt,
            "horizon": h,
            "final_test_loss": loss,
            "status": status,
            "seed_role": role,
        }

    runs = [r("adamw", 1.0, x) for x in (3.0, 1.0, 2.0)] + [
        r("adamw", 0.5, 0.1),
        r("adamw", 1.0, 0.1, role="tune"),
        r("adamw", 1.0, None, status="diverged"),
        r("muon", 1.0, 0.1),
    ]
    assert protocol.target_loss(runs, "t") == 2.0
    assert protocol.target_loss(runs, "other") is None


def test_bench_summary_end_to_end(task):
    res = run_bench([task], ["adamw", "sgd"], seeds=3, horizons=(0.5,), steps=8, progress=False, threads=1, tuned={})
    assert len(res["runs"]) == 2 * 3 * 2 + 3  # adamw also at horizon 1.5
    finals = sorted(r["final_test_loss"] for r in res["runs"] if r["optimizer"] == "adamw" and r["horizon"] == 1)
    s = res["summary"][task.name]
    assert s["target"] == finals[1] and s["ranked"] is True
    adamw = s["optimizers"]["adamw"]
    assert adamw["n_ok"] == 3 and adamw["steps_to_target"]["n"] == 3  # every seed has a value (or a bound)
    longer = {r["seed"]: r["final_test_loss"] for r in res["runs"] if r["optimizer"] == "adamw" and r["horizon"] == 1.5}
    reaching = sum(v <= s["target"] for v in longer.values())
    assert adamw["steps_to_target"]["reached"] >= min(2, reaching)
    assert adamw["diff_vs_adamw"] == {"mean": 0.0, "lo": 0.0, "hi": 0.0, "n": 3}
    for r in res["runs"]:
        assert r["status"] == "ok" and r["hparams_source"] == "untuned"
        assert r["cpu_time_s"] > 0 and 0 < r["optimizer_ms_per_step"] <= r["ms_per_step"]
    assert res["meta"]["horizons"] == [0.5, 1.0] and res["meta"]["seeds"] == [0, 1, 2]


# ------------------------------------------------------------------------------ statuses, tuned, threads
def test_statuses_are_reported_never_dropped(task):
    hp = {"lr": 1e30, "beta2": None, "weight_decay": None, "warmup_fraction": 0.0}
    rec = run_one(task, OPTIMIZERS["sgd"], hp, 10)
    assert rec["status"] == "diverged" and "non-finite" in rec["reason"] and rec["final_test_loss"] is None
    res = run_bench(
        [task], ["full_matrix_adagrad"], seeds=1, horizons=(1.0,), steps=2, progress=False, threads=1, tuned={}
    )
    assert res["runs"][0]["status"] == "ok"  # 8 x 6 weights are small enough
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Regression, "build_model", lambda self: nn.Linear(40, 40))  # 1,600 entries: refused
        (rec,) = run_bench([task], ["full_matrix_adagrad"], seeds=1, horizons=(1.0,), steps=2, progress=False)["runs"]
    assert rec["status"] == "refused" and "max_dim" in rec["reason"]


def test_tuned_entries_are_used_and_others_reported_untuned(task):
    entry = {"lr": 0.02, "beta2": 0.97, "weight_decay": 0.05, "warmup_fraction": 0.1, "trial": 3, "val_loss": 1.0}
    tuned = {task.name: {"adamw": entry}}
    res = run_bench(
        [task], ["adamw", "muon"], seeds=1, horizons=(1.0,), steps=2, progress=False, threads=1, tuned=tuned
    )
    a, m = [r for r in res["runs"] if r["horizon"] == 1.0]
    assert a["hparams_source"] == "tuned" and a["hparams"] == {k: entry[k] for k in protocol_keys()}
    assert m["hparams_source"] == "untuned" and m["hparams"] == OPTIMIZERS["muon"].default_hparams(task.name, 0.1)
    assert res["meta"]["tuned"] == tuned
    # the package's tuned.json parses into that shape
    from adaptim.bench.registry import load_tuned

    assert isinstance(load_tuned(), dict)


def protocol_keys():
    return ("lr", "beta2", "weight_decay", "warmup_fraction")


def test_process_choice_backs_off_on_a_busy_machine():
    from adaptim.bench.execute import choose_jobs

    assert choose_jobs(cpus=2, load=0.1)[:2] == (2, 1)
    assert choose_jobs(cpus=2, load=1.2)[:2] == (1, 1)
    assert choose_jobs(cpus=2, load=4.0)[:2] == (1, 1)
    assert choose_jobs(cpus=64, load=3.0)[:2] == (8, 1)  # capped


def test_worker_processes_give_the_same_numbers(task):
    # a task built by name runs in worker processes; each run's numbers do not depend on which process ran it
    kw = {"tasks": ["logreg"], "optimizers": ["adamw", "sgd"], "seeds": 2, "steps": 20, "progress": False}
    one = run_bench(**kw, jobs=1, threads=1, tuned={})
    two = run_bench(**kw, jobs=2, threads=1, tuned={})
    assert [r["final_test_loss"] for r in one["runs"]] == [r["final_test_loss"] for r in two["runs"]]
    assert [r["curve"] for r in one["runs"]] == [r["curve"] for r in two["runs"]]
    assert two["meta"]["jobs"] == 2


def test_thread_choice_backs_off_on_a_busy_machine():
    assert choose_threads(cpus=2, load=0.1)[0] == 2
    assert choose_threads(cpus=2, load=1.2)[0] == 1
    assert choose_threads(cpus=2, load=4.0)[0] == 1
    assert choose_threads(cpus=16, load=3.0)[0] == 2
    n, why = choose_threads()
    assert n in (1, 2) and "load" in why
