"""Tests of adaptim.bench.stats against hand-computed cases: Student-t intervals, paired differences, paired
log-ratios, "faster" only where the paired interval excludes the null, and a task summary of synthetic runs."""

from __future__ import annotations

import math

import pytest

from adaptim.bench.stats import (
    censored_mean,
    censored_ratio,
    excludes,
    mean_interval,
    paired_difference,
    paired_ratio,
    summarize_task,
)

# Student t quantiles t_{0.975, df} from the printed tables (df = 1, 2)
T975 = {1: 12.706204736, 2: 4.302652730}


def test_mean_interval_is_student_t():
    # 1, 2, 3: mean 2, sample sd 1, half-width t_{0.975,2} / sqrt(3)
    s = mean_interval([1.0, 2.0, 3.0])
    half = T975[2] / math.sqrt(3)
    assert s["n"] == 3 and s["mean"] == 2.0
    assert s["lo"] == pytest.approx(2 - half, rel=1e-9) and s["hi"] == pytest.approx(2 + half, rel=1e-9)
    # a 90% interval is narrower; equal values give a zero-width interval
    assert mean_interval([1.0, 2.0, 3.0], confidence=0.9)["hi"] < s["hi"]
    assert mean_interval([5.0, 5.0]) == {"mean": 5.0, "lo": 5.0, "hi": 5.0, "n": 2}


def test_mean_interval_small_and_bad_inputs():
    assert mean_interval([]) == {"mean": None, "lo": None, "hi": None, "n": 0}
    assert mean_interval([None, 4.0]) == {"mean": 4.0, "lo": None, "hi": None, "n": 1}
    with pytest.raises(ValueError, match="finite"):
        mean_interval([1.0, math.nan])
    with pytest.raises(ValueError, match="confidence"):
        mean_interval([1.0, 2.0], confidence=1.0)


def test_paired_difference_pairs_by_seed():
    a = {0: 1.0, 1: 2.0, 2: 4.0, 5: 7.0}  # seed 5 has no partner: left out
    b = {0: 0.5, 1: 1.5, 2: 2.5, 3: 9.0, 4: None}
    s = paired_difference(a, b)
    # differences 0.5, 0.5, 1.5: mean 5/6, sd sqrt(1/3)
    half = T975[2] * math.sqrt(1 / 3) / math.sqrt(3)
    assert s["n"] == 3 and s["mean"] == pytest.approx(5 / 6)
    assert s["lo"] == pytest.approx(5 / 6 - half) and s["hi"] == pytest.approx(5 / 6 + half)
    assert excludes(s, 0.0) is False  # lo = -0.60 < 0 < hi
    # a difference that moves with the seed is resolved by pairing where an unpaired comparison is not
    base = {0: 1.0, 1: 3.0, 2: 5.0}
    better = {k: v - 0.1 for k, v in base.items()}
    assert paired_difference(better, base) == pytest.approx({"mean": -0.1, "lo": -0.1, "hi": -0.1, "n": 3})
    assert excludes(paired_difference(better, base), 0.0) is True


def test_paired_ratio_is_the_geometric_mean_of_ratios():
    # every ratio 1/2: the interval is the point 1/2
    s = paired_ratio({0: 2.0, 1: 4.0}, {0: 4.0, 1: 8.0})
    assert s == pytest.approx({"mean": 0.5, "lo": 0.5, "hi": 0.5, "n": 2})
    # ratios 1/2 and 2: log-ratios -ln 2, ln 2, mean 0 (ratio 1), sd ln 2 sqrt 2, half-width t_{0.975,1} ln 2
    s = paired_ratio({0: 1.0, 1: 4.0}, {0: 2.0, 1: 2.0})
    assert s["mean"] == pytest.approx(1.0)
    assert s["lo"] == pytest.approx(math.exp(-T975[1] * math.log(2)), rel=1e-8)
    assert s["hi"] == pytest.approx(math.exp(T975[1] * math.log(2)), rel=1e-8)
    # a seed that did not reach the target (None) is dropped from the pairs
    assert paired_ratio({0: 1.0, 1: None}, {0: 2.0, 1: 2.0})["n"] == 1


def _run(opt, seed, horizon, steps, loss, status="ok", ms=2.0):
    return {
        "task": "t",
        "optimizer": opt,
        "seed": seed,
        "seed_role": "report",
        "horizon": horizon,
        "steps": steps,
        "status": status,
        "final_test_loss": loss if status == "ok" else None,
        "ms_per_step": ms,
    }


def test_summary_of_synthetic_runs():
    runs = []
    for seed in (0, 1, 2):
        # adamw: 3.0 at 50 steps, 2.0 at 100 -> target 2.0 (median), reached at 100 steps on every seed
        runs += [_run("adamw", seed, 0.5, 50, 3.0), _run("adamw", seed, 1.0, 100, 2.0)]
        # fast: 2.0 - 0.5 at 50 steps: reaches on the first horizon, at most 50 steps, 1 ms per step
        runs += [_run("fast", seed, 0.5, 50, 1.5 + 0.1 * seed, ms=1.0), _run("fast", seed, 1.0, 100, 1.0, ms=1.0)]
        # slow: never reaches; one seed diverges at horizon 1
        status = "diverged" if seed == 2 else "ok"
        runs += [_run("slow", seed, 0.5, 50, 4.0), _run("slow", seed, 1.0, 100, 2.5, status=status)]
    s = summarize_task(runs, "t", target=2.0)
    assert s["target"] == 2.0 and s["ranked"] is True and s["baseline"] == "adamw"
    a, f, w = (s["optimizers"][n] for n in ("adamw", "fast", "slow"))
    assert a["steps_to_target"]["mean"] == 100 and a["steps_to_target"]["reached"] == 3 and a["faster"] is None
    assert a["steps_to_target"]["bound"] == "=" and a["steps_to_target"]["seeds"] == 3
    # fast reached at the shortest horizon: at most 50 steps, a bound, and still faster (every seed paired)
    assert f["steps_to_target"]["mean"] == 50 and f["steps_to_target"]["bound"] == "<="
    assert f["steps_ratio_vs_adamw"] == pytest.approx(
        {"mean": 0.5, "lo": 0.5, "hi": 0.5, "n": 3, "bound": "<=", "censored": 3}
    )
    assert f["time_to_target_s"]["mean"] == pytest.approx(0.05) and a["time_to_target_s"]["mean"] == pytest.approx(0.2)
    assert f["time_ratio_vs_adamw"]["mean"] == pytest.approx(0.25)
    assert f["faster"] is True and f["diff_vs_adamw"]["mean"] == pytest.approx(-1.0)
    # slow never reached: every seed enters at the longest horizon (a lower bound), none is dropped
    assert w["n_ok"] == 2 and w["n_failed"] == 1 and w["final_test_loss"]["n"] == 2
    assert w["steps_to_target"]["reached"] == 0 and w["steps_to_target"]["n"] == 3
    assert w["steps_to_target"]["bound"] == ">=" and w["steps_ratio_vs_adamw"]["n"] == 3
    assert w["steps_ratio_vs_adamw"]["mean"] == pytest.approx(1.0) and w["steps_ratio_vs_adamw"]["bound"] == ">="
    assert w["faster"] is False
    assert w["diff_vs_adamw"]["n"] == 2  # the diverged seed has no loss to pair
    # without a target nothing is reached and nothing is faster
    none = summarize_task(runs, "t", target=None)["optimizers"]["fast"]
    assert none["steps_to_target"]["reached"] == 0 and none["steps_to_target"]["n"] == 0 and none["faster"] is None


def test_a_seed_that_misses_the_target_is_counted_not_dropped():
    # two seeds at 0.5x, one that never reached: dropping it would read "0.5x, faster"
    steps = {0: (50.0, "="), 1: (50.0, "="), 2: (100.0, ">")}
    base = {0: (100.0, "="), 1: (100.0, "="), 2: (100.0, "=")}
    r = censored_ratio(steps, base)
    assert r["n"] == 3 and r["bound"] == ">=" and r["censored"] == 1
    assert r["mean"] == pytest.approx(0.5 ** (2 / 3))  # exp(mean(log .5, log .5, log 1)): a lower bound
    # a baseline seed that reached at its shortest horizon makes the ratio a lower bound too
    assert censored_ratio({0: (50.0, "=")}, {0: (40.0, "<=")})["bound"] == ">="
    # the two ways at once: unknown
    assert censored_ratio({0: (50.0, "<=")}, {0: (40.0, "<=")})["bound"] == "?"
    m = censored_mean({0: (10.0, "<="), 1: (20.0, "="), 2: None})
    assert m["mean"] == 15.0 and m["n"] == 2 and m["bound"] == "<=" and m["censored"] == 1
    g = censored_mean({0: (1.0, "="), 1: (4.0, "=")}, log=True)
    assert g["mean"] == pytest.approx(2.0) and g["bound"] == "="
