"""Tests of the ``adaptim`` command line around the bench: ``--version``, case-insensitive names, unknown names and
an unusable ``--out`` exiting with status 2 before any training, options that need or exclude each other, the
progress bar with its ETA on stderr, the terminal ending with the ranking, and the sweep with ``--write-tuned``."""

from __future__ import annotations

import json

import pytest

import adaptim
import adaptim.bench
import adaptim.bench.protocol
from adaptim.bench import OPTIMIZERS
from adaptim.cli import main


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


@pytest.fixture
def no_training(monkeypatch):
    """Make any bench or sweep fail the test: the command must stop before training."""

    def fail(*args, **kwargs):
        raise AssertionError("training started")

    for name in ("run_bench", "run_sweep"):
        monkeypatch.setattr(adaptim.bench, name, fail)
        monkeypatch.setattr(adaptim.bench.runner, name, fail)


def test_version(capsys):
    assert _exit_code(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"adaptim {adaptim.__version__}"


def test_names_are_case_insensitive_and_the_terminal_ends_with_the_ranking(tmp_path, capsys):
    argv = ["bench", "--tasks", "Digits,LOGREG", "--optimizers", "AdamW,Muon", "--steps", "6", "--seeds", "2"]
    assert main([*argv, "--out", str(tmp_path), "--no-progress"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert {(r["task"], r["optimizer"]) for r in results["runs"]} == {
        (t, o) for t in ("digits", "logreg") for o in ("adamw", "muon")
    }
    assert results["meta"]["seeds"] == [0, 1]
    out = capsys.readouterr().out
    ranking = out.index("Ranking (95% intervals")
    if not results["summary"]["logreg"]["ranked"]:  # the correctness probe comes first, outside the ranking
        assert out.index("logreg (correctness probe") < ranking
    last = out.rstrip().split("\n\n")[-1].splitlines()  # the last block: a ranking table
    assert last[0].startswith(("digits: ", "logreg: ")) and last[1].split()[:3] == ["#", "optimizer", "test"]
    assert [line.split()[0] for line in last[2:]] == ["1", "2"]
    assert {line.split()[1] for line in last[2:]} == {"adamw", "muon"}
    assert "[x]" not in out and "[ ]" not in out  # no checklist
    for name in ("results.md", "digits.png", "logreg.png", "profile.png", "runs.jsonl"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.parametrize(
    "flag, bad, valid",
    [("--tasks", "Digits,NOPE", "digits, charlm, logreg"), ("--optimizers", "ADAM,nope", ", ".join(OPTIMIZERS))],
)
def test_unknown_name_exits_2_listing_the_valid_ones(flag, bad, valid, tmp_path, capsys, no_training):
    assert _exit_code(["bench", flag, bad, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and valid in err
    assert not (tmp_path / "out").exists()


def test_out_naming_a_file_exits_2_before_training(tmp_path, capsys, no_training):
    out = tmp_path / "results.txt"
    out.write_text("a user's file\n")
    for extra in ([], ["--sweep"]):
        assert _exit_code(["bench", "--tasks", "logreg", "--out", str(out), *extra]) == 2
        assert "is an existing file, not a directory" in capsys.readouterr().err
    assert out.read_text() == "a user's file\n"


def test_out_with_an_earlier_bench_needs_resume(tmp_path, capsys, no_training):
    (tmp_path / "runs.jsonl").write_text('{"task": "logreg"}\n')
    assert _exit_code(["bench", "--tasks", "logreg", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "another --out" in err
    assert (tmp_path / "runs.jsonl").read_text() == '{"task": "logreg"}\n'


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--trials", "4"], "--trials needs --sweep"),
        (["--write-tuned"], "--write-tuned needs --sweep"),
        (["--sweep", "--lr", "0.1"], "--lr does not apply to --sweep"),
        (["--sweep", "--heldout"], "--heldout does not apply to --sweep"),
        (["--quick", "--full"], "not allowed with argument"),
        (["--quick", "--seeds", "5"], "--seeds does not apply to --quick"),
        (["--seeds", "0"], "must be an integer >= 1"),
        (["--preset", "tpu"], "invalid choice"),
    ],
)
def test_options_that_need_or_exclude_each_other_exit_2(argv, message, tmp_path, capsys, no_training):
    assert _exit_code(["bench", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_device_cuda_without_a_gpu_exits_2(tmp_path, capsys, no_training):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert _exit_code(["bench", "--device", "CUDA", "--out", str(tmp_path)]) == 2
    assert "torch sees no GPU" in capsys.readouterr().err


def test_progress_with_eta_on_stderr(tmp_path, capsys):
    assert (
        main(
            ["bench", "--tasks", "logreg", "--optimizers", "sgd", "--steps", "4", "--seeds", "1"]
            + [
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "adaptim bench" in captured.err and "<" in captured.err  # tqdm's "elapsed<remaining"
    assert "adaptim bench" not in captured.out


def test_sweep_writes_its_files_and_write_tuned_the_chosen_hparams(tmp_path, capsys, monkeypatch):
    tuned = tmp_path / "tuned.json"
    monkeypatch.setattr(adaptim.bench.protocol, "TUNED_PATH", tuned)
    argv = ["bench", "--sweep", "--trials", "2", "--tasks", "logreg", "--optimizers", "AdamW", "--steps", "3"]
    assert main([*argv, "--write-tuned", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    sweep = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [t["trial"] for t in sweep["trials"] if t["round"] == 0 and t["seed"] == 1000] == [0, 1]
    for name in ("sweep.md", "lr-adamw.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert json.loads(tuned.read_text())["logreg"]["adamw"] == sweep["best"]["logreg"]["adamw"]
    out = capsys.readouterr().out
    assert out.startswith("Chosen trials") and "logreg  adamw" in out


def _report_fixtures():
    """tests/bench/test_report.py, whose synthetic results dict these tests reuse."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "_report_fixtures", Path(__file__).parent / "bench" / "test_report.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_heldout_runs_the_ranked_tasks_variant_and_reports_it_apart(tmp_path, capsys, monkeypatch):
    full = _report_fixtures().synthetic_results()
    base = {
        "meta": full["meta"],
        "runs": [r for r in full["runs"] if r["variant"] is None],
        "summary": {k: v for k, v in full["summary"].items() if ":" not in k},
    }
    held = {
        "meta": full["meta"],
        "runs": [r for r in full["runs"] if r["variant"] == "heldout"],
        "summary": {"mnist1d": full["summary"]["mnist1d:heldout"]},
    }
    calls = []

    def fake_run_bench(**kwargs):
        calls.append(kwargs)
        return held if kwargs.get("variant") == "heldout" else base

    monkeypatch.setattr(adaptim.bench, "run_bench", fake_run_bench)
    assert main(["bench", "--heldout", "--seeds", "3", "--out", str(tmp_path), "--no-progress"]) == 0
    assert [c.get("variant") for c in calls] == [None, "heldout"]
    assert calls[1]["tasks"] == ["mnist1d", "charlm"] and calls[1]["resume"] is True  # the ranked tasks
    written = json.loads((tmp_path / "results.json").read_text())
    assert list(written["summary"]) == list(full["summary"]) and len(written["runs"]) == len(full["runs"])
    assert written["meta"]["variants"] == {"heldout": ["mnist1d"]}
    assert "# Held-out variants" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "mnist1d-heldout.png").read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert out.rstrip().split("\n\n")[-1].startswith("mnist1d (heldout variant): target")


def test_ctrl_c_says_what_was_kept_and_how_to_resume(tmp_path, capsys, monkeypatch):
    from adaptim.bench.execute import Interrupted

    def interrupted(**kwargs):
        raise Interrupted(3, 10)

    monkeypatch.setattr(adaptim.bench, "run_bench", interrupted)
    assert main(["bench", "--out", str(tmp_path), "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert "interrupted: 3 finished runs kept" in err and "--resume" in err and "Traceback" not in err


def test_quick_bench_end_to_end(tmp_path, capsys):
    """`adaptim bench --quick` as CI runs it: the default tasks and optimizers, tuned, every run finished, a target
    per ranked task that AdamW's seeds reach, the report and its figures, the ranking last."""
    assert main(["bench", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["meta"]["quick"] is True and res["meta"]["seeds"] == [0, 1]
    assert {r["status"] for r in res["runs"]} == {"ok"}
    assert {r["hparams_source"] for r in res["runs"]} == {"tuned"}  # tuned.json covers the default set
    ranked = [k for k, e in res["summary"].items() if e["ranked"]]
    assert ranked == ["mnist1d", "charlm"]
    for key in ranked:
        entry = res["summary"][key]
        assert entry["target"] is not None and set(entry["optimizers"]) == {"adamw", "muon", "shampoo", "adafactor"}
        assert entry["optimizers"]["adamw"]["steps_to_target"]["n"] == 2  # every seed has a value or a bound
        horizons = {r["horizon"] for r in res["runs"] if r["task"] == key and r["optimizer"] == "adamw"}
        assert horizons == {0.25, 0.5, 1.0, 1.5}
    for name in ("results.md", "mnist1d.png", "charlm.png", "profile.png", "runs.jsonl"):
        assert (tmp_path / name).stat().st_size > 0
    out = capsys.readouterr().out
    assert out.rstrip().split("\n\n")[-1].startswith("charlm: target")


def test_ctrl_c_with_worker_processes_keeps_the_finished_runs(tmp_path):
    """A real SIGINT to `adaptim bench` running 2 worker processes: exit 130, the finished runs kept in runs.jsonl,
    the message pointing to --resume, and the workers ended (the command returns)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    argv = ["bench", "--tasks", "logreg", "--optimizers", "adamw,sgd,adam", "--seeds", "3", "--steps", "2000"]
    code = "import sys; from adaptim.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, *argv, "--jobs", "2", "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    runs = out / "runs.jsonl"
    try:
        deadline = time.monotonic() + 120
        while not (runs.exists() and runs.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, "no run finished in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = runs.read_text().splitlines()
    assert proc.returncode == 130 and 1 <= len(kept) < 9
    assert f"interrupted: {len(kept)} finished runs kept" in err and "--resume" in err
    assert all(json.loads(line)["status"] == "ok" for line in kept)


def test_perf_nproc_measures_owner_computes_on_two_processes(tmp_path, capsys):
    assert main(["perf", "--nproc", "2", "--rounds", "2", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "distributed.json").read_text())
    replicated = [r["replicated"]["ns_matrices_per_step"] for r in res["ranks"]]
    sharded = [r["sharded"]["ns_matrices_per_step"] for r in res["ranks"]]
    assert replicated == [res["matrices"]] * 2 and sum(sharded) == res["matrices"]  # the work split, none repeated
    assert all(r["sharded"]["comm"]["all_gather"] == 1 for r in res["ranks"])
    assert "| 0 | sharded |" in capsys.readouterr().out
