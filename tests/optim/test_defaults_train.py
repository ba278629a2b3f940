"""Every optimizer trains a standard small model at its defaults (only the parameters given).

The model is a small CNN (two 3x3 convolutions with 16 and 32 channels, ReLU, 2x2 max-pooling, a linear head:
6,090 parameters) on scikit-learn's 8x8 digits, standardized per pixel; 100 steps on batches of 128 images drawn
with a fixed seed. ``torch.optim.Adam()`` at its defaults, measured here on the same run, is the reference:
every adaptim optimizer must end within 5 points of its validation accuracy (about 93%) and at a training loss
at most twice its own, which the old defaults missed by far (Shampoo: 20% accuracy, a loss that barely moved).

Two classes are judged otherwise, as their defaults are defined by something else:

* ``SGD``'s default lr is torch's (1e-3), which moves this model slowly (20% after 100 steps, as
  ``torch.optim.SGD()``): it must take torch's SGD steps and lower the loss.
* ``FullMatrixAdaGrad`` refuses parameters of more than ``max_dim = 1024`` entries (a d x d statistic and a d^3
  root each step): it must refuse the CNN, and train a linear classifier on 2x2-average-pooled digits (170
  parameters) to at least 80% (it reaches about 87%; the same model fit to convergence by L-BFGS, 88%).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import adaptim
import adaptim.functional.shampoo as fshampoo
from adaptim.bench.data import load_digits_split

STEPS, BATCH, SEED = 100, 128, 0


@pytest.fixture(scope="module")
def digits():
    d = load_digits_split()
    mean, std = d.x_train.mean(0), d.x_train.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    shape = (-1, 1, 8, 8)
    return ((d.x_train - mean) / std).reshape(shape), d.y_train, ((d.x_val - mean) / std).reshape(shape), d.y_val


def cnn() -> nn.Module:
    torch.manual_seed(SEED)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128, 10),
    )


def pooled_linear() -> nn.Module:
    torch.manual_seed(SEED)
    return nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 10))


def train(model: nn.Module, opt: torch.optim.Optimizer, data) -> dict[str, float]:
    """``STEPS`` steps on seeded batches; the full training loss before and after, the validation accuracy."""
    x, y, xv, yv = data
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        initial = F.cross_entropy(model(x), y).item()
    for _ in range(STEPS):
        idx = torch.randint(0, len(y), (BATCH,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    with torch.no_grad():
        return {
            "initial": initial,
            "loss": F.cross_entropy(model(x), y).item(),
            "accuracy": (model(xv).argmax(1) == yv).double().mean().item(),
        }


@pytest.fixture(scope="module")
def adam_reference(digits):
    model = cnn()
    return train(model, torch.optim.Adam(model.parameters()), digits)


def at_defaults(cls: type, model: nn.Module) -> torch.optim.Optimizer:
    if cls is adaptim.Muon:  # hidden matrices to Muon, the rest to its AdamW side (muon_param_groups' split)
        return adaptim.create_optimizer(cls, model)
    return cls(model.parameters())


def test_reference_trains(adam_reference):
    assert adam_reference["accuracy"] > 0.85 and adam_reference["loss"] < 0.25 * adam_reference["initial"]


def test_defaults_train_a_small_cnn(optimizer_class, digits, adam_reference):
    optimizer_class.skip_unless_whole_models()
    cls = optimizer_class.cls
    model = cnn()
    if cls is adaptim.FullMatrixAdaGrad:
        with pytest.raises(ValueError, match="max_dim"):
            at_defaults(cls, model)
        model = pooled_linear()
        got = train(model, at_defaults(cls, model), digits)
        assert got["accuracy"] >= 0.8 and got["loss"] <= 0.25 * got["initial"], got
        return
    if optimizer_class.simplex:  # its parameters are probability vectors: a CNN's weights are refused, clearly
        with pytest.raises(ValueError, match="probability simplex"):
            at_defaults(cls, model)
        return
    got = train(model, at_defaults(cls, model), digits)
    if cls in (adaptim.SGD, adaptim.MirrorDescent):  # MirrorDescent's default map is Euclidean: SGD, bitwise
        twin = cnn()
        want = train(twin, torch.optim.SGD(twin.parameters()), digits)
        assert got == want and got["loss"] < got["initial"], (got, want)
        return
    ref = adam_reference
    assert got["accuracy"] >= ref["accuracy"] - 0.05 and got["loss"] <= 2 * ref["loss"], (got, ref)


# -------------------------------------------------------------------------------- the defaults themselves
@pytest.mark.parametrize("cls", [adaptim.SGD, adaptim.Steepest])
def test_a_group_lr_suffices(cls):
    """torch accepts ``SGD([{"params": [w], "lr": 0.1}])``: every class has a default lr."""
    w = torch.ones(3, 2, requires_grad=True)
    opt = cls([{"params": [w], "lr": 0.1}])
    assert opt.param_groups[0]["lr"] == 0.1
    assert cls([torch.ones(2, requires_grad=True)]).defaults["lr"] == {adaptim.SGD: 1e-3, adaptim.Steepest: 0.02}[cls]


def test_shampoo_defaults_graft_adam_and_compute_roots_every_10_steps(monkeypatch):
    calls, now = [], {"step": 0}
    real = fshampoo.psd_power
    monkeypatch.setattr(fshampoo, "psd_power", lambda *a, **k: calls.append(now["step"]) or real(*a, **k))
    W = torch.zeros(4, 3, requires_grad=True)
    opt = adaptim.Shampoo([W])
    group = opt.param_groups[0]
    assert group["grafting"] == "adam"
    assert group["precondition_frequency"] == group["start_preconditioning_step"] == 10
    gen = torch.Generator().manual_seed(0)
    for t in range(1, 26):
        now["step"] = t
        W.grad = torch.randn(4, 3, generator=gen)
        opt.step()
    assert sorted(set(calls)) == [10, 20]
    # the first preconditioned step follows the frequency: a frequency alone is a valid configuration
    assert adaptim.Shampoo([W], precondition_frequency=50).param_groups[0]["start_preconditioning_step"] == 50
    assert adaptim.Shampoo([W], precondition_frequency=1).param_groups[0]["start_preconditioning_step"] == 1
