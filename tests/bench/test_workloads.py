"""Tests of the bench's workloads at tiny sizes: the mnist1d and charlm splits (disjoint, deterministic, the test
split out of every validation number), the parameter counts of each preset and variant, the option checks, the
Chinchilla arithmetic of charlm, and a few mnist1d steps that lower the loss."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import adaptim
from adaptim.bench.data import CHAR_VOCAB_SIZE, encode_chars, load_mnist1d_split, load_stdlib_corpus
from adaptim.bench.data import stdlib_source_files as source_files
from adaptim.bench.tasks import DEFAULT_TASKS, TASKS, CharLMTask, Evaluation, MNIST1DTask, make_task

# tiny settings: data in well under a second, models of a few hundred parameters
TINY_MNIST1D = {"n_samples": 200, "width": 4, "batch_size": 16}
TINY_CHARLM = {"context": 8, "d_model": 8, "n_head": 2, "n_layer": 1, "batch_size": 4, "n_eval": 4, "max_files": 10}


def conv1dnet_params(width: int) -> int:
    """Conv1dNet(40, 10, width, 3): convolutions 1->w (k 5), w->w (k 3) twice, a linear layer on w x 5 features."""
    return (5 * width + width) + 2 * (3 * width * width + width) + (5 * width * 10 + 10)


def transformer_params(vocab: int, context: int, d: int, n_layer: int) -> int:
    """CharTransformer: embeddings, per block two LayerNorms, qkv, proj, the 4x MLP; final LayerNorm, head."""
    block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    return vocab * d + context * d + n_layer * block + 2 * d + (d * vocab + vocab)


# ---------------------------------------------------------------------------------------------------- splits
def test_mnist1d_split_is_disjoint_stratified_deterministic_and_offline(monkeypatch):
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d tried the network")

    monkeypatch.setattr(requests, "get", no_network)
    load_mnist1d_split.cache_clear()
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    a = load_mnist1d_split(n_samples=200)
    # the package reseeds the global generators: they are restored
    assert np.array_equal(np.random.get_state()[1], np_state) and random.getstate() == py_state
    load_mnist1d_split.cache_clear()
    b = load_mnist1d_split(n_samples=200)
    assert a is not b
    for f in dataclasses.fields(a):
        assert torch.equal(getattr(a, f.name), getattr(b, f.name)), f.name
    # the package's 80/20 split; validation is every 5th training signal of each class
    assert len(a.y_train) + len(a.y_val) == 160 and len(a.y_test) == 40
    assert a.x_train.shape[1:] == (40,) and a.x_train.dtype == torch.float32 and a.y_test.dtype == torch.int64
    train_part = torch.cat([a.y_train, a.y_val])
    assert torch.bincount(a.y_val, minlength=10).tolist() == (torch.bincount(train_part, minlength=10) // 5).tolist()
    # no signal is in two splits (the signals are continuous: equal rows would be the same sample)
    rows = [tuple(r) for x in (a.x_train, a.x_val, a.x_test) for r in x.tolist()]
    assert len(set(rows)) == len(rows) == 200


def test_charlm_corpus_has_disjoint_validation_and_test_files():
    c = load_stdlib_corpus(max_files=20, test_at=5)
    assert c.val_files == (c.files[9], c.files[19]) and c.test_files == (c.files[5], c.files[15])
    # the three streams are the files' characters, each file in exactly one of them, in order
    root = source_files()[0].parent
    text = {name: encode_chars((root / name).read_text(encoding="utf-8", errors="replace")) for name in c.files}
    train_files = [f for f in c.files if f not in c.val_files + c.test_files]
    for stream, names in ((c.train, train_files), (c.val, c.val_files), (c.test, c.test_files)):
        assert stream.numpy().tolist() == np.concatenate([text[n] for n in names]).tolist()
    assert c.n_chars == sum(len(t) for t in text.values())
    # deterministic, and without test_at the old two-way split
    load_stdlib_corpus.cache_clear()
    again = load_stdlib_corpus(max_files=20, test_at=5)
    assert torch.equal(again.test, c.test) and again.sha256 == c.sha256
    two_way = load_stdlib_corpus(max_files=20)
    assert two_way.test_files == () and two_way.test.numel() == 0 and two_way.val_files == c.val_files
    with pytest.raises(ValueError, match="test_at"):
        load_stdlib_corpus(max_files=20, test_at=9)


@pytest.mark.parametrize("name, options", [("mnist1d", TINY_MNIST1D), ("charlm", TINY_CHARLM)])
def test_validation_never_reads_the_test_split(name, options):
    task = make_task(name, **options)
    task.setup()
    torch.manual_seed(0)
    model = task.build_model()
    before = task.evaluate(model)
    assert before.test_loss == pytest.approx(task.test_loss(model), rel=1e-6)
    # poison the test split: validation numbers do not change, test numbers do
    if name == "mnist1d":
        task.data = dataclasses.replace(task.data, x_test=torch.full_like(task.data.x_test, float("nan")))
        assert np.isnan(task.test_loss(model))
    else:
        task.eval_test = torch.full_like(task.eval_test, CHAR_VOCAB_SIZE + 1000)  # an id out of the embedding
        with pytest.raises(IndexError):
            task.test_loss(model)
    assert task.val_loss(model) == before.val_loss
    if name == "mnist1d":
        after = task.evaluate(model)
        assert (after.train_loss, after.val_loss, after.val_accuracy) == (
            before.train_loss,
            before.val_loss,
            before.val_accuracy,
        )


def test_evaluation_fields_and_ranking_flags():
    mnist = make_task("mnist1d", **TINY_MNIST1D)
    mnist.setup()
    torch.manual_seed(0)
    ev = mnist.evaluate(mnist.build_model())
    assert isinstance(ev, Evaluation) and 0 <= ev.test_accuracy <= 1 and ev.test_loss > 0
    logreg = make_task("logreg")
    logreg.setup()
    ev = logreg.evaluate(logreg.build_model())
    assert ev.test_loss is None and ev.test_accuracy is None and ev.val_accuracy is not None
    with pytest.raises(ValueError, match="no test split"):
        logreg.test_loss(logreg.build_model())
    assert DEFAULT_TASKS == ("mnist1d", "charlm", "logreg") and "digits" in TASKS
    assert [make_task(n).ranked for n in DEFAULT_TASKS] == [True, True, False]
    info = mnist.info()
    assert (info["n_train"], info["n_val"], info["n_test"]) == (len(mnist.data.y_train), len(mnist.data.y_val), 40)
    assert info["n_train"] + info["n_val"] == 160 and info["n_params"] == conv1dnet_params(4)
    assert info["ranked"] and info["variant"] is None and info["preset"] == "cpu"


# ------------------------------------------------------------------------------------ sizes of presets, variants
def test_mnist1d_parameter_counts_per_preset_and_variant():
    for preset in ("cpu", "gpu"):
        base = MNIST1DTask(preset=preset)
        held = MNIST1DTask(preset=preset, variant="heldout-1")  # seed 1 draws "width x1.5"
        assert held.heldout[1] == "width x1.5" and held.variant == "heldout-1"
        assert held.width == round(1.5 * base.width) and held.heldout[0] == 1
        assert base.n_params() == conv1dnet_params(base.width) and held.n_params() == conv1dnet_params(held.width)
        deeper = MNIST1DTask(preset=preset, variant="heldout")  # seed 0: "one more convolution"
        assert deeper.n_conv == base.n_conv + 1 and deeper.width == base.width
    assert 5_000 <= MNIST1DTask().n_params() <= 30_000 and MNIST1DTask(preset="gpu").n_params() >= 10_000_000
    assert MNIST1DTask(preset="gpu").n_samples > MNIST1DTask().n_samples
    # the count without building equals the built model's
    tiny = MNIST1DTask(**TINY_MNIST1D)
    assert tiny.n_params() == sum(p.numel() for p in tiny.build_model().parameters())


def test_charlm_parameter_counts_per_preset_and_variant():
    cpu, gpu = CharLMTask(), CharLMTask(preset="gpu")
    for task in (cpu, gpu, CharLMTask(variant="heldout-5"), CharLMTask(preset="gpu", variant="heldout-5")):
        assert task.n_params() == transformer_params(CHAR_VOCAB_SIZE, task.context, task.d_model, task.n_layer)
    assert CharLMTask(variant="heldout-5").n_layer == cpu.n_layer + 1  # seed 5 draws "one more layer"
    assert CharLMTask(preset="gpu", variant="heldout-5").n_layer == gpu.n_layer + 1
    heads = CharLMTask(variant="heldout")  # seed 0 draws "twice the heads": the same parameters, the same budget
    assert heads.n_head == 2 * cpu.n_head and heads.n_params() == cpu.n_params() and heads.steps == cpu.steps
    longer = CharLMTask(variant="heldout-8")  # "context x2": the steps follow the 20 tokens per parameter
    assert longer.context == 2 * cpu.context and longer.steps == longer.budget_steps(longer.n_params())
    # every seed draws one of the task's changes, the same one every time
    draws = {CharLMTask(variant=f"heldout-{k}").heldout[1] for k in range(12)}
    assert draws == {d for d, _ in CharLMTask.HELDOUT}
    assert CharLMTask(variant="heldout-3").heldout == CharLMTask(variant="heldout-3").heldout
    with pytest.raises(ValueError, match="heldout-<seed>"):
        CharLMTask(variant="heldout-x")
    assert cpu.n_params() < 200_000
    for task in (gpu, CharLMTask(preset="gpu", variant="heldout")):
        assert 10_000_000 <= task.n_params() <= 125_000_000
    tiny = CharLMTask(**TINY_CHARLM)
    assert tiny.n_params() == sum(p.numel() for p in tiny.build_model().parameters())


def test_digits_heldout_variant_doubles_the_hidden_width():
    assert make_task("digits", hidden=(16, 8), variant="heldout").hidden == (32, 16)


# ---------------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    "name, options, match",
    [
        ("mnist1d", {"preset": "tpu"}, "preset"),
        ("charlm", {"variant": "wide"}, "variant"),
        ("logreg", {"variant": "heldout"}, "variant"),
        ("digits", {"device": "tpu"}, "device"),
        ("mnist1d", {"device": "nonsense"}, "device"),
        ("mnist1d", {"batch_size": 0}, "batch_size"),
        ("mnist1d", {"n_samples": 50}, "n_samples"),
        ("charlm", {"d_model": 10, "n_head": 4}, "divisible"),
        ("charlm", {"tokens_per_param": 0}, "tokens_per_param"),
        ("charlm", {"steps": 2.5}, "steps"),
        ("logreg", {"steps": -1}, "steps"),
    ],
)
def test_bad_options_raise_naming_the_option(name, options, match):
    with pytest.raises(ValueError, match=match):
        make_task(name, **options)


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in DEFAULT_TASKS:
        with pytest.raises(ValueError, match=r"cuda.*is_available\(\) is False"):
            make_task(name, device="cuda")
    assert make_task("mnist1d", device="cpu").device == torch.device("cpu")


def test_unknown_task_and_option():
    with pytest.raises(KeyError, match="valid tasks: digits, charlm, logreg, mnist1d"):
        make_task("nope")
    with pytest.raises(TypeError):
        make_task("mnist1d", hidden=(3,))


# ------------------------------------------------------------------------------------------ Chinchilla budget
def test_charlm_steps_give_the_tokens_per_parameter_budget():
    task = CharLMTask(**TINY_CHARLM)
    n = task.n_params()
    assert task.tokens_per_step == TINY_CHARLM["batch_size"] * TINY_CHARLM["context"]
    assert task.steps == round(20 * n / task.tokens_per_step)
    task.setup()
    info = task.info()
    assert info["tokens"] == task.steps * task.tokens_per_step and info["n_params"] == n
    assert info["tokens_per_param"] == pytest.approx(task.steps * task.tokens_per_step / n)
    assert abs(info["tokens_per_param"] - 20) <= task.tokens_per_step / n  # within one step's tokens
    assert info["n_test_chars"] > 0 and info["n_test_files"] == 1 and info["n_val_files"] == 1
    # an explicit budget, an explicit step count
    assert CharLMTask(**TINY_CHARLM, tokens_per_param=5).steps == round(5 * n / task.tokens_per_step)
    fixed = CharLMTask(**TINY_CHARLM, steps=7)
    fixed.setup()
    assert fixed.steps == 7 and fixed.info()["tokens_per_param"] == pytest.approx(7 * task.tokens_per_step / n)
    # the default (cpu) preset: one Chinchilla budget by construction
    cpu = CharLMTask()
    assert abs(cpu.steps * cpu.tokens_per_step / cpu.n_params() - 20) <= cpu.tokens_per_step / cpu.n_params()


# ------------------------------------------------------------------------------------------------- training
def test_a_few_adamw_steps_lower_the_mnist1d_loss():
    task = MNIST1DTask(**{**TINY_MNIST1D, "width": 8})
    task.setup()
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = adaptim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    first = task.evaluate(model)
    for _ in range(30):
        optimizer.zero_grad()
        task.batch_loss(model, generator).backward()
        optimizer.step()
    last = task.evaluate(model)
    assert last.train_loss < 0.9 * first.train_loss
    # batch_loss is the cross-entropy of a batch of training signals
    x, y = task.data.x_train, task.data.y_train
    assert last.train_loss == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)
