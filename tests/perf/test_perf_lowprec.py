"""The low-precision section of ``adaptim perf``: bytes per parameter measured from the tensors, and the
trajectory rows, on a tiny setting (no figure asserted beyond what the dtypes fix)."""

from __future__ import annotations

import math

import pytest

from adaptim.perf import perf_markdown, run_perf
from adaptim.perf.lowprec import MODES, TRAJECTORY_OPTIMIZERS, low_precision_markdown, low_precision_results

SHAPES = [(8, 6), (6,), (3, 4, 2)]


@pytest.fixture(scope="module")
def section():
    return low_precision_results(SHAPES, steps=15)


def test_memory_rows_count_every_byte(section):
    n = sum(math.prod(s) for s in SHAPES)
    rows = {r["name"]: r for r in section["memory"]}
    assert list(rows) == ["float32", "bfloat16 + nearest", "bfloat16 + stochastic", "bfloat16 + kahan"]
    adam_state = 8 * n + 4 * len(SHAPES)  # float32 m and v, a float32 step counter per tensor
    assert rows["float32"]["param_bytes"] == 4 * n and rows["float32"]["state_bytes"] == adam_state
    for name in ("bfloat16 + nearest", "bfloat16 + stochastic"):  # half the parameter bytes, no extra state
        assert rows[name]["param_bytes"] == 2 * n and rows[name]["state_bytes"] == adam_state
    assert rows["bfloat16 + kahan"]["state_bytes"] == adam_state + 2 * n  # the bfloat16 compensation
    for r in rows.values():
        assert r["n_params"] == n
        assert r["bytes_per_param"] == (r["param_bytes"] + r["state_bytes"]) / n
        assert r["bytes_per_param_with_grad"] == r["bytes_per_param"] + r["grad_bytes"] / n


def test_trajectory_rows(section):
    rows = section["trajectory"]["rows"]
    assert section["trajectory"]["steps"] == 15
    assert len(rows) == len(TRAJECTORY_OPTIMIZERS) * len(MODES)
    for r in rows:
        assert all(math.isfinite(r[k]) and r[k] >= 0 for k in ("final_loss", "max_loss_gap", "weight_deviation"))
        if r["name"] == "float32":  # the reference itself
            assert r["max_loss_gap"] == 0 and r["weight_deviation"] == 0
    lines = "\n".join(low_precision_markdown(section))
    assert "| bfloat16 + kahan |" in lines and "weight dev." in lines
    for label, _, _ in TRAJECTORY_OPTIMIZERS:
        assert f"| {label} | bfloat16 + stochastic |" in lines


def test_run_perf_carries_the_section():
    results = run_perf(size=2_000, optimizers=["sgd"], threads=1, rounds=1, low_precision_steps=0)
    assert results["low_precision"]["trajectory"]["rows"] == []
    assert len(results["low_precision"]["memory"]) == len(MODES)
    md = perf_markdown(results)
    assert "## Low-precision parameters" in md and "| float32 |" in md and "Trajectory:" not in md
    with pytest.raises(ValueError, match="low_precision_steps must be >= 0"):
        run_perf(size=1_000, optimizers=["sgd"], low_precision_steps=-1)
