"""Tests of the bench's persistence (adaptim.bench.store and the runner's use of it): --out checked before any
training, runs.jsonl appended run by run, atomic JSON writes, resume skipping finished runs, and an interrupted
bench keeping every finished run."""

from __future__ import annotations

import json
import os

import pytest

import adaptim.bench.runner as runner
from adaptim.bench.store import RunStore, check_out, run_key, write_json_atomic
from adaptim.bench.tasks import LogRegTask

_LOGREG = LogRegTask()  # set up once (its reference optimum), shared by the benches below
ARGS = dict(tasks=[_LOGREG], optimizers=["adamw", "sgd"], seeds=2, horizons=(0.5,), steps=4, progress=False)
N_RUNS = 2 * 2  # optimizers x seeds (logreg is unranked: it runs the full horizon only)


def _record(seed=0, **hp):
    return {
        "task": "t",
        "variant": None,
        "optimizer": "o",
        "seed": seed,
        "horizon": 1.0,
        "steps": 10,
        "hparams": {"lr": 0.1, "beta2": None, **hp},
    }


# ------------------------------------------------------------------------------------------------- --out
def test_out_is_checked_before_any_training(tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking out")

    monkeypatch.setattr(runner, "run_one", no_training)
    existing = tmp_path / "a-file"
    existing.write_text("keep me")
    with pytest.raises(ValueError, match="existing file"):
        runner.run_bench(out=existing, **ARGS)
    with pytest.raises(ValueError, match="existing file"):
        runner.run_sweep(tasks=["logreg"], trials=1, out=existing, progress=False)
    assert existing.read_text() == "keep me"
    with pytest.raises(ValueError, match="not a writable directory"):
        check_out(existing / "below")  # a path under a file cannot be created
    with pytest.raises(ValueError, match="empty"):
        check_out("")
    assert check_out(tmp_path / "new" / "dir").is_dir()  # created with its parents


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions (not root)")
def test_unwritable_out_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="not a writable directory"):
            check_out(locked)
    finally:
        locked.chmod(0o700)


# ----------------------------------------------------------------------------------------------- atomic
def test_atomic_write_leaves_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json_atomic(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(ValueError):
        write_json_atomic(path, {"a": float("nan")})  # JSON has no NaN: refused before writing
    assert json.loads(path.read_text()) == {"a": 1}

    def killed(src, dst):
        raise KeyboardInterrupt  # interrupted between writing the temporary file and renaming it

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temporary file left


# -------------------------------------------------------------------------------------------- runs.jsonl
def test_run_store_appends_refuses_to_overwrite_and_reads_back(tmp_path):
    store = RunStore(tmp_path)
    store.append(_record(0))
    store.append(_record(1))
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 2
    with pytest.raises(ValueError, match="resume"):
        RunStore(tmp_path)  # an earlier bench's runs are not overwritten
    again = RunStore(tmp_path, resume=True)
    assert _record(1) in again and _record(2) not in again and again.get(_record(0)) == _record(0)
    # the key is the run's identity: another hparams value is another run
    assert run_key(_record(0)) != run_key(_record(0, weight_decay=0.1))
    # so is another length (a --quick or --steps run) or another preset or device: never reused for the default
    for change in ({"steps": 20}, {"preset": "gpu"}, {"device": "cuda"}):
        assert run_key(_record(0)) != run_key({**_record(0), **change})
    assert run_key(_record(0)) == run_key({**_record(0), "preset": "cpu", "device": "cpu"})
    # a line torn by a kill mid-write is dropped (that run is run again), the others kept
    with open(tmp_path / "runs.jsonl", "a") as f:
        f.write('{"task": "t", "opt')
    torn = RunStore(tmp_path, resume=True)
    assert len(torn.records) == 2
    torn.append(_record(3))
    assert len(RunStore(tmp_path, resume=True).records) == 3


def test_resume_skips_finished_runs(tmp_path, monkeypatch):
    first = runner.run_bench(out=tmp_path, **ARGS)
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    assert len(lines) == len(first["runs"]) == N_RUNS
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(json.dumps(first))
    calls = []
    real = runner.run_one
    monkeypatch.setattr(runner, "run_one", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = runner.run_bench(out=tmp_path, resume=True, **ARGS)
    assert calls == [] and again["runs"] == first["runs"]
    # one more seed: only its runs are trained
    more = runner.run_bench(out=tmp_path, resume=True, **{**ARGS, "seeds": 3})
    assert len(calls) == N_RUNS // 2 and len(more["runs"]) == 3 * N_RUNS // 2


def test_an_interrupted_bench_keeps_its_finished_runs(tmp_path, monkeypatch):
    real, calls = runner.run_one, []

    def interrupted_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third run
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_one", interrupted_third)
    with pytest.raises(KeyboardInterrupt):
        runner.run_bench(out=tmp_path, **ARGS)
    kept = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert len(kept) == 2 and not (tmp_path / "results.json").exists()
    calls.clear()
    monkeypatch.setattr(runner, "run_one", lambda *a, **k: calls.append(1) or real(*a, **k))
    done = runner.run_bench(out=tmp_path, resume=True, **ARGS)
    assert len(calls) == N_RUNS - 2 and done["runs"][:2] == kept and len(done["runs"]) == N_RUNS


def test_resume_with_another_step_count_reruns_instead_of_mixing_lengths(tmp_path, monkeypatch):
    runner.run_bench(out=tmp_path, **ARGS)
    calls = []
    real = runner.run_one
    monkeypatch.setattr(runner, "run_one", lambda *a, **k: calls.append(1) or real(*a, **k))
    longer = runner.run_bench(out=tmp_path, resume=True, **{**ARGS, "steps": 6})
    assert len(calls) == N_RUNS and {r["steps"] for r in longer["runs"]} == {6}
