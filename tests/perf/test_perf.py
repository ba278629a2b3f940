"""Tests of ``adaptim perf``: a tiny setting runs end to end from the CLI and writes well-formed perf.json /
perf.md / perf.png; the byte floor and the theoretical state of each rule against a hand count; the timing order
is round-robin; the shapes; size parsing and name checks. No timing is asserted."""

from __future__ import annotations

import json

import pytest
import torch

from adaptim.cli import main
from adaptim.perf import KEYS, RULES, floor_bytes, gpt2_shapes, parse_size, round_robin, run_perf, theory_state_bytes
from adaptim.perf.runner import _measure

ROW_KEYS = {
    "name", "key", "library", "variant", "n_params", "first_step_ms", "compiled", "wall", "cpu", "ns_per_param",
    "floor_ms", "ratio_floor", "state_bytes", "state_bytes_theory", "state_ratio", "reference", "ratio_ref",
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("perf")
    argv = ["perf", "--size", "20k", "--rounds", "2", "--optimizers", "adamw,sgd,adafactor", "--threads", "1"]
    argv += ["--low-precision-steps", "20"]
    assert main([*argv, "--out", str(out)]) == 0
    return out


def test_tiny_run_writes_every_field(tiny_run):
    results = json.loads((tiny_run / "perf.json").read_text())
    meta = results["meta"]
    assert meta["rounds"] == 2 and meta["threads"] == 1 and meta["size"] == 20_000
    assert set(meta["floors"]) == {"adamw", "sgd", "adafactor"}
    assert results["n_params"] == sum(torch.Size(s).numel() for s in results["shapes"])
    assert results["triad"]["bandwidth_GBps"] > 0 and results["triad"]["bytes"] == 16 * results["triad"]["entries"]
    assert results["scaling"] is None
    names = {r["name"] for r in results["rows"]}
    # adaptim's, and torch's three variants where torch has them (Adafactor: no fused in torch 2.13)
    assert {"adaptim.adamw", "torch.AdamW[forloop]", "torch.AdamW[foreach]", "torch.AdamW[fused]"} <= names
    assert {"adaptim.sgd", "torch.SGD[fused]", "adaptim.adafactor", "torch.Adafactor[foreach]"} <= names
    assert any("Adafactor has no fused" in n for n in meta["notes"])
    for r in results["rows"]:
        assert set(r) == ROW_KEYS, r["name"]
        assert r["n_params"] == results["n_params"]
        for t in ("wall", "cpu"):
            assert 0 <= r[t]["min_ms"] <= r[t]["median_ms"]
        assert r["state_bytes"] > 0 and r["ratio_floor"] > 0 and r["first_step_ms"] > 0
        # the default adaptim path of an elementwise rule is the fused (compiled) one; torch's and adaptim's
        # foreach rows, and Adafactor, are eager
        fused_row = r["library"] == "adaptim" and r["variant"] in ("", "unchecked") and r["key"] in ("adamw", "sgd")
        assert r["compiled"] is fused_row
    ref = {r["key"]: r["reference"] for r in results["rows"]}
    assert ref == {"adamw": "torch.AdamW[fused]", "sgd": "torch.SGD[fused]", "adafactor": "torch.Adafactor[foreach]"}
    for r in results["rows"]:
        if r["name"] == r["reference"]:
            assert r["ratio_ref"] == 1.0
    # m and v, plus a 4-byte step counter per tensor in both libraries
    by_name = {r["name"]: r for r in results["rows"]}
    for name in ("adaptim.adamw", "torch.AdamW[fused]"):
        assert by_name[name]["state_bytes_theory"] == 8 * results["n_params"]
        assert by_name[name]["state_bytes"] == 8 * results["n_params"] + 4 * len(results["shapes"])


def test_tiny_run_markdown_and_png(tiny_run):
    md = (tiny_run / "perf.md").read_text()
    results = json.loads((tiny_run / "perf.json").read_text())
    assert "| optimizer | wall ms (median / min) |" in md and "× ref" in md and "× floor" in md
    for r in results["rows"]:
        assert f"| {r['name']} |" in md
    assert "read p, g, m, v; write p, m, v" in md
    assert (tiny_run / "perf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_order_is_round_robin_and_recorded():
    assert round_robin(["a", "b", "c"], 2) == [(0, "a"), (0, "b"), (0, "c"), (1, "a"), (1, "b"), (1, "c")]
    notes: list[str] = []
    run = _measure(["sgd"], 2_000, 3, torch.device("cpu"), notes)
    names = ["triad", *[r["name"] for r in run["rows"]]]
    assert len(names) == 7  # triad, adaptim (fused), [foreach] and [unchecked], torch forloop / foreach / fused
    assert run["order"] == names * 3


def test_scaling_covers_the_elementwise_rules_only():
    results = run_perf(size=2_000, optimizers=["sgd", "adafactor"], threads=1, rounds=1, scaling_sizes=[1_000, 2_000])
    scaling = results["scaling"]
    assert scaling["sizes"] == [1_000, 2_000]
    assert {r["name"] for r in scaling["rows"]} == {
        "adaptim.sgd", "adaptim.sgd[foreach]", "adaptim.sgd[unchecked]",
        "torch.SGD[forloop]", "torch.SGD[foreach]", "torch.SGD[fused]",
    }  # fmt: skip
    for r in scaling["rows"]:
        assert set(r["ns_per_param"]) == {"1000", "2000"} and r["spread"] >= 1


# a (3, 2) matrix and a (4,) vector: 6 + 4 = 10 entries, float32
HAND = {
    # read p, g, m, v + write p, m, v = 7 words per entry; state m, v
    "adamw": (7 * 4 * 10, 2 * 4 * 10),
    "adam": (7 * 4 * 10, 2 * 4 * 10),
    "adam_atan2": (7 * 4 * 10, 2 * 4 * 10),
    # read p, g, buf + write p, buf = 5 words; state buf
    "sgd": (5 * 4 * 10, 4 * 10),
    "adagrad": (5 * 4 * 10, 4 * 10),
    "rmsprop": (7 * 4 * 10, 2 * 4 * 10),
    # matrix: g, p, g read, p written = 4 words x 6; vector: 5 words x 4; state: 3 rows + 2 columns + 4
    "adafactor": (4 * 4 * 6 + 5 * 4 * 4, 4 * (3 + 2 + 4)),
    "muon": (5 * 4 * 10, 4 * 10),
}


@pytest.mark.parametrize("key", list(KEYS))
def test_floor_and_state_by_hand(key):
    assert set(HAND) == set(KEYS) == set(RULES)
    floor, state = HAND[key]
    assert floor_bytes(key, [(3, 2), (4,)]) == floor
    assert theory_state_bytes(key, [(3, 2), (4,)]) == state


def test_adamw_floor_is_28_bytes_per_param():
    assert floor_bytes("adamw", [(1000,)]) == 28_000
    assert floor_bytes("sgd", [(10, 10)]) == 2_000


@pytest.mark.parametrize("size", [1_000, 20_000, 4_000_000, 16_000_000])
def test_gpt2_shapes(size):
    shapes = gpt2_shapes(size)
    n = sum(torch.Size(s).numel() for s in shapes)
    assert 0.5 * size <= n <= 1.5 * size
    d = shapes[0][0]
    assert (4 * d, d) in shapes and (d, 4 * d) in shapes and (d,) in shapes
    if size >= 16_000_000:
        assert d == 768


def test_parse_size():
    assert parse_size("16M") == 16_000_000 and parse_size("20k") == 20_000 and parse_size("4096") == 4096
    assert parse_size("1.5M") == 1_500_000
    for bad in ("", "M", "abc", "0", "-3k"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


def test_cli_refuses_unknown_names_and_sizes(capsys):
    with pytest.raises(SystemExit) as e:
        main(["perf", "--optimizers", "adamw,nope"])
    assert e.value.code == 2 and "nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["perf", "--size", "lots"])
    assert e.value.code == 2


def test_run_perf_refuses_bad_arguments():
    with pytest.raises(KeyError, match="nope"):
        run_perf(size=1_000, optimizers=["nope"])
    with pytest.raises(ValueError, match="rounds"):
        run_perf(size=1_000, optimizers=["sgd"], rounds=0)
