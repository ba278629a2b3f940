"""The per-step time model of docs/distributed.md ("Scale on paper"), against hand-computed values."""

from __future__ import annotations

import math

import pytest

from adaptim.distributed.scale import (
    H100,
    TRANSFORMERS,
    Hardware,
    Transformer,
    newton_schulz_flops,
    scale_table,
    shampoo_root_flops,
    step_model,
)


def test_flop_counts_by_hand():
    # 5 steps of 4 k^2 l + 2 k^3 with k = 2, l = 3: 5 x (48 + 16)
    assert newton_schulz_flops(3, 2) == newton_schulz_flops(2, 3) == 5 * (4 * 4 * 3 + 2 * 8)
    assert shampoo_root_flops(2, 3) == 9.0 * (8 + 27)


def test_step_model_by_hand():
    # one layer of d = 2: four 2 x 2 and two 8 x 2 matrices; 1 flop/s, 1 byte/s inside a node of 4
    model = Transformer("t", 2, 1, vocab=10)
    hw = Hardware("unit", 1.0, 1.0, 0.5, per_node=4)
    items = [newton_schulz_flops(2, 2)] * 4 + [newton_schulz_flops(8, 2)] * 2
    r = step_model(model, hw, 2, "muon", bytes_per_param=2)
    assert r["replicated_s"] == sum(items)
    assert r["sharded_s"] == max(sum(items) / 2, max(items))
    assert r["allgather_s"] == pytest.approx((1 / 2) * (4 * 4 + 2 * 16) * 2 / 1.0)
    # across nodes the slower bandwidth counts
    r8 = step_model(model, hw, 8, "muon", bytes_per_param=2)
    assert r8["allgather_s"] == pytest.approx((7 / 8) * 48 * 2 / 0.5)
    assert r["pays"] == (r["sharded_s"] + r["allgather_s"] < r["replicated_s"])
    with pytest.raises(ValueError, match="method"):
        step_model(model, hw, 2, "adam")
    with pytest.raises(ValueError, match="ranks"):
        step_model(model, hw, 0)


def test_the_table_picks_one_node_for_muon():
    one, seven = TRANSFORMERS
    assert 1.0e9 < one.n_params() < 1.5e9 and 6e9 < seven.n_params() < 8e9
    for model in TRANSFORMERS:
        totals = {n: sum(step_model(model, H100, n, "muon")[k] for k in ("sharded_s", "allgather_s")) for n in (8, 64)}
        assert totals[8] < totals[64]  # within a node the all-gather is cheap; across nodes it dominates
    table = scale_table()
    assert table.count("**this one**") == 4 and math.isfinite(float(table.split("|")[-5].split()[0]))
