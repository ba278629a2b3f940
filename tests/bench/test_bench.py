"""Tests of ``adaptim bench``: end to end on a tiny setting, the results schema, determinism, name checks,
skipped optimizers, the registry's entries (every one builds and steps; Muon's parameter split on the bench's
models; the state each matrix method holds), the data loaders and the logreg reference optimum (the protocol,
the sweep and the statistics: test_protocol.py, test_stats.py, test_store.py)."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

import adaptim
from adaptim.bench import OPTIMIZERS, OptimizerSpec, from_class, run_bench, state_bytes, write_results
from adaptim.bench.data import (
    OTHER_CHAR_ID,
    encode_chars,
    load_breast_cancer_split,
    load_digits_split,
    load_stdlib_corpus,
    stratified_split,
    unigram_entropy_bits,
)
from adaptim.bench.models import MLP, CharTransformer
from adaptim.bench.registry import ladder, ladder_index, load_tuned, register, sweep_grid
from adaptim.bench.tasks import LogRegTask, make_task
from adaptim.cli import main

# A tiny setting of every task: a run takes milliseconds.
TINY = {
    "digits": {"hidden": (32,), "batch_size": 16, "max_train": 200},
    "charlm": {"context": 16, "d_model": 16, "n_head": 2, "n_layer": 1, "batch_size": 4, "n_eval": 4, "max_files": 10},
    "logreg": {},
}
TINY_OPTIMIZERS = ["sgd", "adam", "full_matrix_adagrad", "muon", "shampoo"]

RUN_KEYS = {
    "task",
    "variant",
    "optimizer",
    "seed",
    "seed_role",
    "horizon",
    "steps",
    "preset",
    "device",
    "hparams",
    "worker",
    "hparams_source",
    "status",
    "reason",
    "final_train_loss",
    "final_val_loss",
    "final_test_loss",
    "test_accuracy",
    "val_accuracy",
    "optimality_gap",
    "wall_time_s",
    "cpu_time_s",
    "ms_per_step",
    "optimizer_ms_per_step",
    "state_bytes",
    "curve",
    "skipped",
    "diverged",
}
TIMES = ("wall_time_s", "cpu_time_s", "ms_per_step", "optimizer_ms_per_step")


def tiny_bench(**kwargs):
    args = dict(
        tasks=list(TINY),
        optimizers=TINY_OPTIMIZERS,
        steps=6,
        seeds=[0],
        horizons=(1.0,),
        task_options=TINY,
        progress=False,
        jobs=1,
        threads=1,
    )
    args.update(kwargs)
    return run_bench(**args)


@pytest.fixture(scope="module")
def tiny_results():
    return tiny_bench()


# ----------------------------------------------------------------------------------------------- end to end
def test_end_to_end_writes_json_table_and_plots(tiny_results, tmp_path):
    paths = write_results(tiny_results, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["charlm.png", "digits.png", "logreg.png", "profile.png", "results.json", "results.md"]
    for p in paths:
        assert p.stat().st_size > 0
    assert (tmp_path / "digits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = json.loads((tmp_path / "results.json").read_text())
    assert loaded == json.loads(json.dumps(tiny_results))
    table = (tmp_path / "results.md").read_text()
    for task in ("digits", "charlm", "logreg"):  # a ranked task, or a correctness probe outside the ranking
        assert f"## {task}" in table or f"## Correctness probe: {task}" in table
    assert "unigram entropy" in table
    assert "| adam |" in table


def test_results_schema(tiny_results):
    assert set(tiny_results) == {"meta", "runs", "summary"}
    meta = tiny_results["meta"]
    for key in ("python", "torch", "adaptim_version", "seeds", "device", "threads", "tasks"):
        assert key in meta
    assert meta["adaptim_version"] == adaptim.__version__ and meta["torch"] == torch.__version__
    assert set(meta["tasks"]) == {"digits", "charlm", "logreg"}
    assert meta["tasks"]["charlm"]["unigram_entropy_bits"] > 0
    runs = tiny_results["runs"]
    assert [(r["task"], r["optimizer"]) for r in runs] == [
        (t, o) for t in ("digits", "charlm", "logreg") for o in TINY_OPTIMIZERS
    ]
    for r in runs:
        assert set(r) == RUN_KEYS
        if r["skipped"]:
            continue
        tuned = load_tuned().get(r["task"], {}).get(r["optimizer"])
        lr = tuned["lr"] if tuned else OPTIMIZERS[r["optimizer"]].lr_for(r["task"])
        assert r["steps"] == 6 and r["hparams"]["lr"] == lr
        assert r["hparams_source"] == ("tuned" if tuned else "untuned")
        for key in ("final_train_loss", "final_val_loss", *TIMES):
            assert isinstance(r[key], float) and math.isfinite(r[key])
        assert isinstance(r["state_bytes"], int)
        assert (r["val_accuracy"] is None) == (r["task"] == "charlm")
        assert (r["optimality_gap"] is None) == (r["task"] != "logreg")
        steps = [p[0] for p in r["curve"]]
        assert steps[0] == 0 and steps[-1] == 6 and steps == sorted(steps)
        assert all(len(p) == 4 and isinstance(p[1], float) for p in r["curve"])
        assert r["curve"][-1][2] is not None  # validation loss at the last step


def test_optimality_gap_matches_reference_optimum(tiny_results):
    f_star = tiny_results["meta"]["tasks"]["logreg"]["optimum"]
    for r in (r for r in tiny_results["runs"] if r["task"] == "logreg"):
        assert r["optimality_gap"] == pytest.approx(r["final_train_loss"] - f_star, abs=1e-15)
        assert r["optimality_gap"] > -1e-12  # no run beats the optimum


def test_state_bytes_counts_optimizer_state_tensors():
    model = torch.nn.Linear(3, 2)
    opt = adaptim.Adam(model.parameters(), lr=0.1)
    assert state_bytes(opt) == 0
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    n = sum(p.numel() for p in model.parameters())
    # exp_avg and exp_avg_sq in float32 per entry, plus one float32 step counter per parameter tensor
    assert state_bytes(opt) == 2 * 4 * n + 4 * 2


# ------------------------------------------------------------------------------- registry: matrix methods
def test_every_registered_optimizer_has_a_rate_per_task_builds_and_steps():
    for name in TINY:  # the tasks that run the registry (a constrained task has its own contenders)
        task = make_task(name, **TINY[name])
        task.setup()
        for spec in OPTIMIZERS.values():
            torch.manual_seed(0)
            model = task.build_model()
            try:
                opt = spec.build(model, spec.lr_for(name))
            except ValueError:  # refuses the model: reported as skipped, and then it has no tuned rate there
                assert name not in spec.lrs, (spec.name, name)
                continue
            assert name in spec.lrs, f"{spec.name} has no tuned learning rate on {name}"
            before = [p.detach().clone() for p in model.parameters()]
            task.batch_loss(model, torch.Generator().manual_seed(0)).backward()
            opt.step()
            after = list(model.parameters())
            assert all(torch.isfinite(p).all() for p in after), (spec.name, name)
            assert any(not torch.equal(a, b) for a, b in zip(after, before)), (spec.name, name)


def _names(model, params):
    by_id = {id(p): n for n, p in model.named_parameters()}
    return sorted(by_id[id(p)] for p in params)


def test_muon_entry_splits_the_bench_models():
    build = OPTIMIZERS["muon"].build
    # transformer: the blocks' matrices to Muon; embeddings, the head, biases and norms to AdamW at the same lr
    model = CharTransformer(vocab_size=20, context=8, d_model=8, n_head=2, n_layer=2)
    muon, adamw = build(model, 0.02).param_groups
    hidden = sorted(n for n, p in model.named_parameters() if n.startswith("blocks.") and p.dim() == 2)
    assert muon["use_muon"] and _names(model, muon["params"]) == hidden and len(hidden) == 8
    assert not adamw["use_muon"] and _names(model, adamw["params"]) == sorted(
        n for n, _ in model.named_parameters() if n not in hidden
    )
    assert muon["lr"] == adamw["lr"] == 0.02 and muon["adjust_lr"] == "match_rms_adamw"
    # tied input and output embeddings: the shared matrix is listed once, on the AdamW side
    model.head.weight = model.tok.weight
    muon, adamw = build(model, 0.02).param_groups
    assert _names(model, muon["params"]) == hidden
    assert sum(p is model.tok.weight for p in adamw["params"]) == 1
    assert len(adamw["params"]) + len(muon["params"]) == len(list(model.parameters()))
    # MLP: the last layer is the head; logistic regression is all head, so Muon there is AdamW alone
    mlp = MLP((8, 16, 16, 4))
    muon, adamw = build(mlp, 0.02).param_groups
    assert _names(mlp, muon["params"]) == ["layers.0.weight", "layers.1.weight"]
    assert _names(mlp, adamw["params"]) == ["layers.0.bias", "layers.1.bias", "layers.2.bias", "layers.2.weight"]
    (only,) = build(torch.nn.Linear(30, 1), 3.0).param_groups
    assert only["use_muon"] is False and only["lr"] == 3.0


def test_state_bytes_of_the_matrix_methods():
    """state_bytes counts what each method documents: Adafactor m + n floats per matrix, AdamNMF r (m + n),
    Shampoo its statistics and cached roots, Muon its momentum and the AdamW side's two moments."""
    torch.manual_seed(0)
    mlp = MLP((5, 7, 3))  # weights (7, 5), (3, 7); biases (7,), (3,)
    params = list(mlp.parameters())
    mats, vecs = [p for p in params if p.dim() == 2], [p for p in params if p.dim() == 1]
    step = 4  # every per-parameter step counter is one float32

    def stepped(name):
        opt = OPTIMIZERS[name].build(mlp, 1e-3)
        mlp.zero_grad()
        mlp(torch.randn(4, 5)).square().sum().backward()
        opt.step()
        return state_bytes(opt)

    assert stepped("adafactor") == sum(4 * (m + n) + step for m, n in (p.shape for p in mats)) + sum(
        4 * p.numel() + step for p in vecs
    )
    assert stepped("adam_nmf") == sum(4 * (m + n) + step for m, n in (p.shape for p in mats)) + step * len(vecs)
    # per tensor: one statistic and one cached root per dimension d (a vector: one full matrix), the two
    # symmetric matrices in d (d + 1) floats; Adam grafting's second moment and the momentum buffer
    assert stepped("shampoo") == sum(4 * (sum(d * (d + 1) for d in p.shape) + 2 * p.numel()) + step for p in params)
    # IdealizedShampoo: the two statistics of the matrix view (a vector is an (n, 1) column), no cached roots
    assert stepped("idealized_shampoo") == sum(
        4 * (p.shape[0] ** 2 + (p.numel() // p.shape[0]) ** 2) + step for p in params
    )
    # Muon: momentum for the hidden matrix (7, 5); AdamW's two moments and step for the head and the biases
    hidden = mats[0]
    assert stepped("muon") == 4 * hidden.numel() + sum(2 * 4 * p.numel() + step for p in params if p is not hidden)
    assert stepped("steepest_spectral") == 4 * sum(p.numel() for p in params)  # the momentum alone


# -------------------------------------------------------------------------------------------- determinism
def _numbers(results):
    # the times, and the worker process that ran each run (which may differ between two benches)
    return [{k: v for k, v in r.items() if k not in {*TIMES, "worker"}} for r in results["runs"]]


def test_same_seed_same_numbers(tiny_results):
    again = tiny_bench(jobs=2)  # in worker processes this time: the same numbers
    assert {r["worker"] for r in again["runs"]} != {None}
    assert _numbers(again) == _numbers(tiny_results)
    other = tiny_bench(seeds=[1])
    assert _numbers(other) != _numbers(tiny_results)


# ------------------------------------------------------------------------------------------ names, skips
@pytest.mark.parametrize(
    "flag, bad, valid",
    [("--tasks", "digits,nope", "digits, charlm, logreg"), ("--optimizers", "adam,nope", ", ".join(OPTIMIZERS))],
)
def test_unknown_name_exits_2_listing_valid_names(flag, bad, valid, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["bench", flag, bad, "--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "nope" in err and valid in err
    assert not (tmp_path / "results.json").exists()


def test_unknown_name_in_api_raises_key_error():
    with pytest.raises(KeyError, match="valid tasks: digits, charlm, logreg"):
        run_bench(tasks=["nope"], progress=False)
    with pytest.raises(KeyError, match="valid optimizers: sgd,"):
        run_bench(tasks=["logreg"], optimizers=["nope"], progress=False)


def test_skipped_optimizer_reports_its_reason(tiny_results):
    task = make_task("digits", **TINY["digits"])
    task.setup()
    with pytest.raises(ValueError) as exc:
        adaptim.FullMatrixAdaGrad(task.build_model().parameters())
    run = next(r for r in tiny_results["runs"] if r["task"] == "digits" and r["optimizer"] == "full_matrix_adagrad")
    assert run["skipped"] == str(exc.value) and "max_dim" in run["skipped"]
    for key in ("final_train_loss", "final_val_loss", "val_accuracy", "optimality_gap", "wall_time_s"):
        assert run[key] is None
    # logreg's parameters are small enough: full-matrix AdaGrad runs there
    assert (
        next(r for r in tiny_results["runs"] if r["task"] == "logreg" and r["optimizer"] == "full_matrix_adagrad")[
            "skipped"
        ]
        is None
    )


def test_cli_end_to_end(tmp_path, capsys):
    assert (
        main(
            [
                "bench",
                "--tasks",
                "logreg",
                "--optimizers",
                "adam,full_matrix_adagrad",
                "--steps",
                "3",
                "--seeds",
                "1",
                "--lr",
                "0.05",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["meta"]["seeds"] == [0]
    assert [(r["optimizer"], r["hparams"]["lr"], r["steps"]) for r in results["runs"] if r["horizon"] == 1] == [
        ("adam", 0.05, 3),
        ("full_matrix_adagrad", 0.05, 3),
    ]
    assert (tmp_path / "logreg.png").exists()
    assert "full_matrix_adagrad" in capsys.readouterr().out


def test_cli_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in [*OPTIMIZERS, "digits", "charlm", "logreg"]:
        assert name in out


# --------------------------------------------------------------------------------------- registry, sweep
def test_registry_entry_may_be_a_factory_of_the_model(monkeypatch):
    def grouped(model, lr):  # weights and biases in separate groups, as Muon-like entries need
        weights = [p for p in model.parameters() if p.dim() >= 2]
        others = [p for p in model.parameters() if p.dim() < 2]
        return adaptim.SGD([{"params": weights}, {"params": others, "lr": lr / 10}], lr=lr)

    spec = OptimizerSpec("grouped_sgd", grouped, lrs={"logreg": 0.5})
    monkeypatch.setitem(OPTIMIZERS, spec.name, spec)
    # jobs=2: a worker process would not know an entry registered at run time, so the bench keeps the runs here
    res = run_bench(
        tasks=["logreg"], optimizers=["grouped_sgd", "sgd"], steps=4, seeds=[0], horizons=(1.0,), progress=False, jobs=2
    )
    assert {r["worker"] for r in res["runs"]} == {None}
    a, _b = res["runs"]
    assert a["hparams"]["lr"] == 0.5 and a["skipped"] is None and a["final_train_loss"] < a["curve"][0][1]
    with pytest.raises(ValueError, match="already registered"):
        register(OptimizerSpec("sgd", from_class(adaptim.SGD)))


def test_sweep_grid_is_the_1_3_10_ladder():
    assert sweep_grid(3e-3) == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1]
    assert sweep_grid(1.0, half_width=1) == [0.3, 1.0, 3.0]
    assert [ladder(i) for i in (-2, -1, 0, 1, 2)] == [0.1, 0.3, 1.0, 3.0, 10.0]
    assert ladder_index(0.0949) == ladder_index(0.1) and ladder_index(2.9e-3) == ladder_index(3e-3)


# ------------------------------------------------------------------------------------------------- data
def test_stratified_split_partitions_and_keeps_proportions():
    labels = np.array([0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0])
    tr, va = stratified_split(labels, val_every=2)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(labels)))
    # the 2nd, 4th, ... occurrence of each class goes to validation
    expected_val = [i for c in (0, 1) for k, i in enumerate(np.flatnonzero(labels == c)) if k % 2 == 1]
    assert va.tolist() == sorted(expected_val)


def test_digits_and_breast_cancer_loaders_are_deterministic():
    from sklearn.datasets import load_breast_cancer, load_digits

    a, b = load_digits_split(), load_digits_split()
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    per_class = np.bincount(load_digits().target)
    assert torch.bincount(a.y_val).tolist() == (per_class // 5).tolist()  # every 5th of each class
    assert a.x_train.shape == (1797 - (per_class // 5).sum(), 64) and float(a.x_train.max()) == 1.0
    c, d = load_breast_cancer_split(), load_breast_cancer_split()
    per_class = np.bincount(load_breast_cancer().target)
    assert torch.bincount(c.y_val).tolist() == (per_class // 5).tolist()
    assert c.x_train.shape == (569 - (per_class // 5).sum(), 30) and c.x_train.dtype == torch.float64
    assert torch.equal(c.x_train, d.x_train) and torch.equal(c.y_val, d.y_val)
    assert torch.allclose(c.x_train.mean(0), torch.zeros(30, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(c.x_train.std(0, unbiased=False), torch.ones(30, dtype=torch.float64), atol=1e-12)


def test_stdlib_corpus_is_deterministic_and_split_by_file():
    first = load_stdlib_corpus(max_files=20)
    load_stdlib_corpus.cache_clear()
    second = load_stdlib_corpus(max_files=20)
    assert first is not second
    assert torch.equal(first.train, second.train) and torch.equal(first.val, second.val)
    assert first.sha256 == second.sha256 and first.files == second.files
    assert list(first.files) == sorted(first.files) and len(first.files) == 20
    assert first.val_files == (first.files[9], first.files[19])
    assert int(first.train.max()) <= OTHER_CHAR_ID and first.train.dtype == torch.uint8


def test_encode_chars_and_unigram_entropy_literal():
    text = "aab\u00e9\n\u4e2d"
    ids = encode_chars(text)
    assert ids.tolist() == [97, 97, 98, OTHER_CHAR_ID, 10, OTHER_CHAR_ID]
    counts = Counter(ids.tolist())
    expected = -sum(c / len(ids) * math.log2(c / len(ids)) for c in counts.values())
    assert unigram_entropy_bits(ids) == pytest.approx(expected, rel=1e-12)
    assert unigram_entropy_bits(np.array([5, 5, 5], dtype=np.uint8)) == 0.0


def test_logreg_reference_optimum_is_stationary_and_minimal():
    task = LogRegTask()
    task.setup()
    assert task.ref_grad_norm < 1e-8
    # the same objective in torch: its autograd gradient vanishes at SciPy's argmin, and f* is its value there
    model = task.model_at(task.theta_star)
    loss = task.batch_loss(model, torch.Generator())
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert grad.norm().item() < 1e-8
    assert loss.item() == task.f_star
    gen = np.random.default_rng(0)
    for _ in range(3):  # f only grows away from the optimum
        moved = task.model_at(task.theta_star + 1e-3 * gen.standard_normal(len(task.theta_star)))
        assert task.evaluate(moved).train_loss > task.f_star
