"""Tests of the bench's constrained tasks (adaptim.bench.constrained): each runs at a tiny size with its own
contenders, the constraints hold at the end (and the unconstrained baseline leaves them, so the measure can fail),
``--optimizers`` filters across tasks, the mixture's optimum is certified, and the joint optimizer steps its parts
as one (scheduler, state_dict)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import adaptim
from adaptim.bench import run_bench, run_sweep
from adaptim.bench.constrained import JointOptimizer, MixtureTask
from adaptim.bench.registry import OPTIMIZERS
from adaptim.bench.runner import optimizer_names
from adaptim.bench.tasks import DEFAULT_TASKS, TASKS, make_task
from adaptim.cli import main

CONSTRAINED = ("digits_sphere", "digits_stiefel", "mixture")
# the Stiefel task needs D >= d: a hidden width of at least the 64 inputs
TINY = {
    "digits_sphere": {"hidden": (16,), "batch_size": 16, "max_train": 200},
    "digits_stiefel": {"hidden": (64,), "batch_size": 16, "max_train": 200},
    "mixture": {"components": 8, "dims": 4},
}
CONTENDERS = {
    "digits_sphere": ["adamw", "sphere_sgd", "adamw_sphere", "muon_sphere"],
    "digits_stiefel": ["adamw", "stiefel_project", "stiefel_manifold_muon", "adamw_stiefel"],
    "mixture": ["exponentiated_gradient", "mirror_entropy", "projected_sgd", "adam_softmax"],
}


@pytest.fixture(scope="module")
def tiny_results():
    return run_bench(tasks=list(CONSTRAINED), steps=8, seeds=[0], task_options=TINY, progress=False)


def test_tasks_are_registered_but_not_in_the_default_run():
    for name in CONSTRAINED:
        assert name in TASKS and name not in DEFAULT_TASKS
    assert DEFAULT_TASKS == ("mnist1d", "charlm", "logreg")


def test_contenders_are_the_listed_ones_each_with_its_rate():
    for name, expected in CONTENDERS.items():
        specs = make_task(name).contenders()
        assert [s.name for s in specs] == expected
        for s in specs:
            assert s.lrs.get(name, 0) > 0, (name, s.name)
    # the digits baselines are the registry's AdamW at its digits rate
    for name in ("digits_sphere", "digits_stiefel"):
        (adamw,) = [s for s in make_task(name).contenders() if s.name == "adamw"]
        assert adamw.lr_for(name) == OPTIMIZERS["adamw"].lr_for("digits")
    # the unconstrained tasks still run the registry
    for name in DEFAULT_TASKS:
        assert make_task(name).contenders() is None


def test_each_task_runs_tiny_and_its_constraint_holds(tiny_results):
    runs = tiny_results["runs"]
    assert [(r["task"], r["optimizer"]) for r in runs] == [(t, o) for t in CONSTRAINED for o in CONTENDERS[t]]
    for r in runs:
        task = TASKS[r["task"]]
        assert r["skipped"] is None and r["diverged"] is None, r
        assert math.isfinite(r["final_train_loss"]), r["optimizer"]
        v = r["constraint_violation"]
        assert set(v) == set(task.constraint_metrics)
        if r["optimizer"] == "adamw":  # the baseline ignores the constraint: the measure sees it leave
            assert max(v.values()) > 100 * task.tolerance
        elif r["task"] == "mixture":
            assert v["sum_error"] <= 1e-12 and v["min_weight"] >= 0
        else:
            assert max(v.values()) <= task.tolerance, r
    for r in (r for r in runs if r["task"] == "mixture"):
        assert r["optimality_gap"] == pytest.approx(
            r["final_train_loss"] - tiny_results["meta"]["tasks"]["mixture"]["optimum"]
        )
        assert r["optimality_gap"] > -1e-12
    # the task's constraint targets are in the checks, and hold
    statements = [
        c for c in tiny_results["meta"]["checks"] if "constraint" in c["statement"] or "sum pi" in c["statement"]
    ]
    assert len(statements) == 10 and all(c["holds"] for c in statements)  # every contender but the two baselines
    # exponentiated gradient and mirror descent with the entropy map are the same update (91)
    eg, md = (r for r in runs if r["optimizer"] in ("exponentiated_gradient", "mirror_entropy"))
    assert eg["final_train_loss"] == pytest.approx(md["final_train_loss"], rel=1e-12, abs=0)


def test_violation_measures_against_literal_values():
    sphere = make_task("digits_sphere", **TINY["digits_sphere"])
    model = sphere.build_model()
    w = sphere.hidden_weight(model)
    assert torch.allclose(w.detach().norm(dim=1), torch.ones(16), atol=1e-6)  # the model starts on the sphere
    with torch.no_grad():
        w[3] *= 1.5
    assert sphere.constraint_violation(model)["row_norm_error"] == pytest.approx(0.5, abs=1e-6)
    stiefel = make_task("digits_stiefel", **TINY["digits_stiefel"])
    model = stiefel.build_model()
    w = stiefel.hidden_weight(model).detach().double()
    assert torch.allclose(w.T @ w, torch.eye(64, dtype=torch.float64), atol=1e-5)
    with torch.no_grad():
        stiefel.hidden_weight(model)[:, 0] *= 2  # column 0 of norm 2: W^T W differs from I by 3 at (0, 0)
    assert stiefel.constraint_violation(model)["orthonormality_error"] == pytest.approx(3.0, abs=1e-4)
    mixture = make_task("mixture", **TINY["mixture"])
    model = mixture.build_model()
    with torch.no_grad():
        model.pi.copy_(torch.tensor([0.5, -0.25, 0.5, 0.25, 0, 0, 0, 0], dtype=torch.float64))
    assert mixture.constraint_violation(model) == {"sum_error": 0.0, "min_weight": -0.25}


def test_optimizers_filter_across_tasks():
    res = run_bench(
        tasks=["digits_sphere", "mixture", "logreg"],
        optimizers=["adam_softmax", "adamw"],
        steps=2,
        seeds=[0],
        horizons=(1.0,),
        task_options=TINY,
        progress=False,
    )
    assert [(r["task"], r["optimizer"]) for r in res["runs"]] == [
        ("digits_sphere", "adamw"),
        ("mixture", "adam_softmax"),
        ("logreg", "adamw"),
    ]
    assert "constraint_violation" not in res["runs"][2]  # an unconstrained task's records are as before
    # a task none of whose names is asked for is left out
    res = run_bench(
        tasks=["digits_sphere", "mixture"],
        optimizers=["projected_sgd"],
        steps=2,
        seeds=[0],
        task_options=TINY,
        progress=False,
    )
    assert list(res["meta"]["tasks"]) == ["mixture"] and len(res["runs"]) == 1
    # a name no chosen task runs: KeyError listing the chosen tasks' names
    with pytest.raises(KeyError, match="valid optimizers: exponentiated_gradient, mirror_entropy"):
        run_bench(tasks=["mixture"], optimizers=["adamw"], progress=False)
    with pytest.raises(KeyError, match="'sphere_sgd'"):
        run_bench(optimizers=["sphere_sgd"], progress=False)  # not in the default tasks
    assert optimizer_names() == list(OPTIMIZERS)
    assert optimizer_names(["digits_stiefel", "digits"]) == CONTENDERS["digits_stiefel"] + [
        n for n in OPTIMIZERS if n != "adamw"
    ]


def test_cli_runs_a_constrained_task_and_lists_contenders(tmp_path, capsys):
    args = ["bench", "--tasks", "mixture", "--optimizers", "exponentiated_gradient,adam_softmax", "--steps", "3"]
    args += ["--seeds", "1"]
    assert main([*args, "--out", str(tmp_path), "--no-progress"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["optimizer"] for r in results["runs"]] == ["exponentiated_gradient", "adam_softmax"]
    table = (tmp_path / "results.md").read_text()
    assert "abs(sum pi - 1) | min pi |" in table and "certified" in table
    assert (tmp_path / "mixture.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--tasks", "digits", "--optimizers", "sphere_sgd", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "sphere_sgd" in capsys.readouterr().err
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name, contenders in CONTENDERS.items():
        assert f"contenders of {name}" in out and f"--tasks {name}" in out
        assert all(c in out for c in contenders)


def test_sweep_runs_a_task_s_contenders():
    res = run_sweep(
        tasks=["mixture"],
        optimizers=["exponentiated_gradient", "projected_sgd"],
        trials=2,
        steps=5,
        task_options=TINY,
        progress=False,
    )
    rows = res["trials"]
    first = [r for r in rows if r["round"] == 0 and r["seed"] == 1000]  # then the confirmation's extra seeds
    assert [(r["task"], r["optimizer"], r["trial"]) for r in first] == [
        ("mixture", name, i) for name in ("exponentiated_gradient", "projected_sgd") for i in (0, 1)
    ]
    # the contenders take no beta2 and no decoupled decay: the lr and the warm-up are searched
    assert all(r["hparams"]["beta2"] is None and r["hparams"]["weight_decay"] is None for r in rows)
    assert set(res["best"]["mixture"]) == {"exponentiated_gradient", "projected_sgd"}


# ------------------------------------------------------------------------------------------------ mixture
def _literal_nll(task: MixtureTask, pi: np.ndarray) -> float:
    """-(1/n) sum_i log sum_k pi_k N(z_i; c_k, h^2 I), from the densities, with numpy's logsumexp."""
    from scipy.special import logsumexp

    s, m = (t.numpy() for t in task.fit)
    logn = np.log(s) + m[:, None]  # log N(z_i; c_k), back from the task's scaled form
    with np.errstate(divide="ignore"):
        return float(-logsumexp(logn + np.log(pi)[None, :], axis=1).mean())


@pytest.fixture(scope="module")
def mixture():
    task = MixtureTask()
    task.setup()
    return task


def test_mixture_optimum_is_certified(mixture):
    assert mixture.certificate <= 1e-9
    pi_star = torch.from_numpy(mixture.pi_star)
    assert abs(float(pi_star.sum()) - 1) < 1e-12 and float(pi_star.min()) >= 0
    assert _literal_nll(mixture, mixture.pi_star) == pytest.approx(mixture.f_star, rel=1e-12)
    gen = np.random.default_rng(0)
    for _ in range(5):  # at any simplex point: 0 <= f(pi) - f* <= the Frank-Wolfe gap there
        pi = gen.dirichlet(np.ones(mixture.k))
        gap = _literal_nll(mixture, pi) - mixture.f_star
        assert -1e-12 <= gap <= mixture.frank_wolfe_gap(torch.from_numpy(pi)) + 1e-12


def test_a_long_exponentiated_gradient_run_reaches_the_optimum(mixture):
    model = mixture.build_model()
    opt = adaptim.ExponentiatedGradient(model.parameters(), lr=1.0)
    for _ in range(1500):
        opt.zero_grad()
        mixture.batch_loss(model, None).backward()
        opt.step()
    gap = mixture.optimality_gap(mixture.evaluate(model).train_loss)
    assert -1e-12 <= gap < 1e-9


def test_adam_softmax_starts_at_the_uniform_point():
    task = make_task("mixture", **TINY["mixture"])
    task.setup()
    model = task.build_model()
    (spec,) = [s for s in task.contenders() if s.name == "adam_softmax"]
    opt = spec.build(model, 0.1)
    (logits,) = opt.param_groups[0]["params"]
    assert torch.allclose(logits, torch.full((8,), math.log(1 / 8), dtype=torch.float64))
    assert torch.allclose(model.pi, torch.full((8,), 1 / 8, dtype=torch.float64), rtol=0, atol=1e-15)


# -------------------------------------------------------------------------------------------- joint optimizer
def _joint():
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2))
    return a, b, JointOptimizer(adaptim.SGD([a], lr=0.1, momentum=0.9), adaptim.Adam([b], lr=0.01))


def _steps(params, opt, n, sched=None):
    for _ in range(n):
        opt.zero_grad()
        sum((p**2).sum() for p in params).backward()
        opt.step()
        if sched is not None:
            sched.step()


def test_joint_optimizer_steps_parts_as_one_and_resumes():
    a, b, joint = _joint()
    a0, b0 = a.detach().clone(), b.detach().clone()
    sched = adaptim.warmup_cosine(joint, warmup_steps=2, total_steps=10)
    _steps([a, b], joint, 3, sched)
    # the scheduler drives each part's own lr
    assert [g["lr"] for g in joint.param_groups] == [g["lr"] for o in joint.parts for g in o.param_groups]
    assert joint.param_groups[0]["initial_lr"] == 0.1 and joint.param_groups[1]["initial_lr"] == 0.01
    # the same as stepping the parts alone with the same rates
    a2, b2 = torch.nn.Parameter(a0.clone()), torch.nn.Parameter(b0.clone())
    sgd, adam = adaptim.SGD([a2], lr=0.1, momentum=0.9), adaptim.Adam([b2], lr=0.01)
    scheds = [adaptim.warmup_cosine(o, warmup_steps=2, total_steps=10) for o in (sgd, adam)]
    for _ in range(3):
        for o in (sgd, adam):
            o.zero_grad()
        ((a2**2).sum() + (b2**2).sum()).backward()
        for o, s in zip((sgd, adam), scheds):
            o.step()
            s.step()
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert set(joint.state) == {a, b} and "momentum_buffer" in joint.state[a] and "exp_avg" in joint.state[b]
    # a checkpoint resumes the same trajectory
    saved = joint.state_dict()
    a3, b3, other = _joint()
    with torch.no_grad():
        a3.copy_(a)
        b3.copy_(b)
    other.load_state_dict(saved)
    _steps([a, b], joint, 2)
    _steps([a3, b3], other, 2)
    assert torch.equal(a, a3) and torch.equal(b, b3)


def test_joint_optimizer_refuses_a_shared_parameter_and_new_groups():
    a, _b, joint = _joint()
    with pytest.raises(ValueError, match="share a parameter"):
        JointOptimizer(adaptim.SGD([a], lr=0.1), adaptim.Adam([a], lr=0.1))
    with pytest.raises(ValueError, match="at least one"):
        JointOptimizer()
    with pytest.raises(TypeError, match="one of the parts"):
        joint.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))]})
