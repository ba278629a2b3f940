"""adaptim.create_optimizer: names and classes, the class defaults, the weight-decay split of a model's parameters
(biases and normalization parameters not decayed, frozen ones left out), Muon's split, Adafactor's explicit lr,
parameters given as they are, errors, and the one table of names shared with ``adaptim list`` and the bench."""

from __future__ import annotations

import inspect

import pytest
import torch
from _assertions import assert_same
from torch import nn

import adaptim
from adaptim.optim.factory import NAMED_OPTIMIZERS


class ScaleNorm(nn.Module):
    """A user-defined normalization layer with a matrix-shaped gain (recognized by its class name)."""

    def __init__(self, shape):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(shape))

    def forward(self, x):
        return self.gain * x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)


class Net(nn.Module):
    """Every kind of parameter the split distinguishes, each at most 1024 entries (full-matrix AdaGrad takes it)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 6)
        self.conv = nn.Conv1d(2, 3, 2)  # weight (3, 2, 2): decayed
        self.bn = nn.BatchNorm1d(3)
        self.fc = nn.Linear(6, 6)
        self.ln = nn.LayerNorm((2, 3))  # a 2-D weight, still a norm's: not decayed
        self.gn = nn.GroupNorm(2, 6)
        self.rms = nn.RMSNorm(6)
        self.scale = ScaleNorm((2, 3))
        self.frozen = nn.Linear(6, 6)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(6, 4)
        self.temperature = nn.Parameter(torch.tensor(1.0))  # a scalar: not decayed

    def forward(self, idx):
        x = self.emb(idx)  # (b, 6, 6)
        c = self.bn(self.conv(x[:, :2, :]))  # (b, 3, 5)
        h = self.fc(x).mean(1) + c.mean((1, 2))[:, None]  # (b, 6)
        h = h + self.ln(h.view(-1, 2, 3)).reshape(-1, 6) + self.scale(h.view(-1, 2, 3)).reshape(-1, 6)
        h = self.gn(h) + self.rms(h) + self.frozen(h)
        return self.head(h) * self.temperature


def net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


DECAYED = ["emb.weight", "conv.weight", "fc.weight", "head.weight"]
NOT_DECAYED = [
    "conv.bias",
    "bn.weight",
    "bn.bias",
    "fc.bias",
    "ln.weight",
    "ln.bias",
    "gn.weight",
    "gn.bias",
    "rms.weight",
    "scale.gain",
    "head.bias",
    "temperature",
]


def names(model: nn.Module, params) -> list[str]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    return sorted(by_id[id(p)] for p in params)


def hyper(group: dict) -> dict:
    return {k: v for k, v in group.items() if k != "params"}


def assert_same_groups(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    """The same parameters (by identity, in order) and hyperparameters in every group."""
    assert type(a) is type(b)
    assert len(a.param_groups) == len(b.param_groups)
    for ga, gb in zip(a.param_groups, b.param_groups, strict=True):
        assert [id(p) for p in ga["params"]] == [id(p) for p in gb["params"]]
        assert hyper(ga) == hyper(gb)


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(0, 5, (8, 6), generator=gen)
        opt.zero_grad()
        model(idx).square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def classes() -> list[type]:
    return list(dict.fromkeys(e.cls for e in NAMED_OPTIMIZERS.values()))


# ------------------------------------------------------------------------------------------------- names
def test_every_name_builds_its_class_with_its_preset():
    assert adaptim.list_optimizers() == list(NAMED_OPTIMIZERS)
    for name, entry in NAMED_OPTIMIZERS.items():
        model = net()
        opt = adaptim.create_optimizer(name, model, lr=0.01)
        assert type(opt) is entry.cls, name
        for group in opt.param_groups:
            assert group["lr"] == 0.01, name
            for key, value in entry.kwargs.items():
                if key != "weight_decay" or group["weight_decay"] != 0:  # a no-decay group has 0
                    assert group[key] == value, (name, key)
        assert entry.description


def test_names_are_case_insensitive_and_a_preset_is_overridden_by_an_argument():
    opt = adaptim.create_optimizer(" SGD_Nesterov ", net(), lr=0.1, momentum=0.5)
    assert isinstance(opt, adaptim.SGD)
    (group,) = opt.param_groups
    assert group["nesterov"] is True and group["momentum"] == 0.5 and group["lr"] == 0.1


def test_unknown_name_is_refused_listing_every_valid_name():
    with pytest.raises(ValueError, match="unknown optimizer name 'adamx'") as info:
        adaptim.create_optimizer("adamx", net())
    for name in NAMED_OPTIMIZERS:
        assert name in str(info.value)


@pytest.mark.parametrize("bad", [3, adaptim.Adam, nn.Linear, None])
def test_neither_a_name_nor_an_optimizer_class_is_a_type_error(bad):
    if bad is adaptim.Adam:
        bad = adaptim.Adam([torch.zeros(1, requires_grad=True)])  # an instance, not the class
    with pytest.raises(TypeError, match="name_or_class"):
        adaptim.create_optimizer(bad, net())


# ----------------------------------------------------------------------------------------------- classes
@pytest.mark.parametrize("cls", classes(), ids=lambda c: c.__name__)
def test_a_class_with_no_decay_in_force_is_exactly_the_class_on_the_trainable_params(cls):
    """Defaults (lr=None keeps the class's lr), one group of the trainable parameters, the same steps bit for bit;
    where the class's default decays (AdamW), weight_decay=0 gives that one group."""
    decays = (inspect.signature(cls).parameters.get("weight_decay") or inspect.Parameter("x", 1, default=0)).default
    kwargs = dict(weight_decay=0.0) if decays else {}
    a, b = net(), net()
    if cls is adaptim.Muon:
        opt_a = adaptim.create_optimizer(cls, a)
        opt_b = cls(adaptim.muon_param_groups(b))
        assert [hyper(g)["lr"] for g in opt_a.param_groups] == [0.02, 3e-4]  # muon_param_groups' AdamW lr
    else:
        opt_a = adaptim.create_optimizer(cls, a, **kwargs)
        opt_b = cls([p for p in b.parameters() if p.requires_grad], **kwargs)
        (group,) = opt_a.param_groups
        assert names(a, group["params"]) == sorted(n for n, p in a.named_parameters() if p.requires_grad)
    for ga, gb in zip(opt_a.param_groups, opt_b.param_groups, strict=True):
        assert names(a, ga["params"]) == names(b, gb["params"]) and hyper(ga) == hyper(gb)
    for pa, pb in zip(train(a, opt_a), train(b, opt_b), strict=True):
        assert_same(pa, pb)


def test_lr_none_keeps_the_class_default_and_a_given_lr_is_used():
    assert adaptim.create_optimizer(adaptim.Adam, net()).param_groups[0]["lr"] == 1e-3
    assert adaptim.create_optimizer(adaptim.Shampoo, net()).param_groups[0]["lr"] == 1e-3
    assert adaptim.create_optimizer("adam", net(), lr=0.3).param_groups[0]["lr"] == 0.3


def test_torch_optimizer_classes_are_accepted():
    model = net()
    opt = adaptim.create_optimizer(torch.optim.AdamW, model, lr=0.01, weight_decay=0.1)
    assert isinstance(opt, torch.optim.AdamW)
    decay, no_decay = opt.param_groups
    assert names(model, decay["params"]) == sorted(DECAYED) and decay["weight_decay"] == 0.1
    assert names(model, no_decay["params"]) == sorted(NOT_DECAYED) and no_decay["weight_decay"] == 0.0


# ------------------------------------------------------------------------------------------ decay split
def test_no_weight_decay_on_biases_and_normalization_parameters():
    model = net()
    opt = adaptim.create_optimizer("adamw", model, lr=0.01, weight_decay=0.05)
    decay, no_decay = opt.param_groups
    assert names(model, decay["params"]) == sorted(DECAYED) and decay["weight_decay"] == 0.05
    assert names(model, no_decay["params"]) == sorted(NOT_DECAYED) and no_decay["weight_decay"] == 0.0
    assert not any(p is model.frozen.weight or p is model.frozen.bias for g in opt.param_groups for p in g["params"])
    # the split's effect: a zero gradient shrinks the decayed weights by (1 - lr wd) and leaves the rest
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p) if p.requires_grad else None
    opt.step()
    for n, p in model.named_parameters():
        if n in DECAYED:
            torch.testing.assert_close(p.detach(), before[n] * (1 - 0.01 * 0.05), rtol=1e-6, atol=0)
            assert not torch.equal(p.detach(), before[n])
        else:
            assert_same(p.detach(), before[n])


def test_class_default_decay_is_split_too_and_the_split_can_be_switched_off():
    model = net()
    decay, no_decay = adaptim.create_optimizer(adaptim.AdamW, model).param_groups  # AdamW's default 0.01
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert names(model, decay["params"]) == sorted(DECAYED)
    (group,) = adaptim.create_optimizer(adaptim.AdamW, model, filter_bias_and_bn=False).param_groups
    assert group["weight_decay"] == 0.01
    assert names(model, group["params"]) == sorted(DECAYED + NOT_DECAYED)  # frozen ones still left out
    (group,) = adaptim.create_optimizer("adam", model, weight_decay=0.0).param_groups
    assert names(model, group["params"]) == sorted(DECAYED + NOT_DECAYED)


def test_shared_parameter_is_listed_once():
    model = nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 7))
    model[1].weight = model[0].weight  # tied (7, 4)
    opt = adaptim.create_optimizer("adamw", model, lr=0.01)
    listed = [p for g in opt.param_groups for p in g["params"]]
    assert len(listed) == len({id(p) for p in listed}) == 2


def test_weight_decay_for_a_class_without_decay_is_refused():
    with pytest.raises(ValueError, match="AdaGradNorm has no weight decay"):
        adaptim.create_optimizer("adagrad_norm", net(), weight_decay=0.1)
    assert isinstance(adaptim.create_optimizer("adagrad_norm", net(), weight_decay=0.0), adaptim.AdaGradNorm)


# -------------------------------------------------------------------------------------- params as given
def test_params_and_param_groups_are_used_as_given():
    model = net()
    opt = adaptim.create_optimizer("sgd", (p for p in model.fc.parameters()), lr=0.1)  # a generator
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in model.fc.parameters()]
    groups = [{"params": [model.fc.weight], "lr": 0.5}, {"params": [model.fc.bias]}]
    opt = adaptim.create_optimizer("adamw", groups, lr=0.1, weight_decay=0.2)
    assert [(g["lr"], g["weight_decay"]) for g in opt.param_groups] == [(0.5, 0.2), (0.1, 0.2)]  # no split
    frozen = adaptim.create_optimizer("adam", [model.frozen.weight])  # as given: a frozen tensor too
    assert frozen.param_groups[0]["params"][0] is model.frozen.weight


# ---------------------------------------------------------------------------------------------------- Muon
def test_muon_split_with_one_lr_and_the_decay_rule_on_the_adamw_side():
    model = net()
    opt = adaptim.create_optimizer("muon", model, lr=0.05, weight_decay=0.1)
    muon, adamw_decay, adamw_no_decay = opt.param_groups
    hidden = names(model, adaptim.muon_param_groups(model)[0]["params"])  # >= 2 dims, not embedding or head
    assert "conv.weight" in hidden and "fc.weight" in hidden
    assert muon["use_muon"] and names(model, muon["params"]) == hidden
    assert muon["weight_decay"] == 0.1 and muon["adjust_lr"] == "match_rms_adamw"
    assert not adamw_decay["use_muon"] and names(model, adamw_decay["params"]) == ["emb.weight", "head.weight"]
    assert adamw_decay["weight_decay"] == 0.1
    assert not adamw_no_decay["use_muon"] and adamw_no_decay["weight_decay"] == 0.0
    assert names(model, adamw_no_decay["params"]) == sorted(set(NOT_DECAYED) - set(hidden))
    # "match_rms_adamw" gives both sides the same lr; the betas and eps are Muon's (for its AdamW side)
    assert {g["lr"] for g in opt.param_groups} == {0.05}
    assert all(g["betas"] == (0.9, 0.95) and g["eps"] == 1e-8 for g in opt.param_groups)
    # an explicit adamw_lr, betas and eps reach the AdamW side
    opt = adaptim.create_optimizer("muon", model, lr=0.05, adamw_lr=1e-3, betas=(0.8, 0.9), eps=1e-6)
    muon, adamw = opt.param_groups
    assert muon["lr"] == 0.05 and adamw["lr"] == 1e-3 and adamw["betas"] == (0.8, 0.9) and adamw["eps"] == 1e-6
    with pytest.raises(ValueError, match="adamw_lr"):
        adaptim.create_optimizer("muon", adaptim.muon_param_groups(model), adamw_lr=1e-3)


def test_bench_muon_entry_is_the_factory_and_the_old_recipe():
    """The bench's muon entry builds what it built before the factory existed: muon_param_groups(model,
    adamw_lr=lr) and Muon(groups, lr=lr, adjust_lr="match_rms_adamw"): same groups and the same steps."""
    from adaptim.bench import OPTIMIZERS

    a, b = net(), net()
    opt_a = OPTIMIZERS["muon"].build(a, 0.02)
    opt_b = adaptim.Muon(adaptim.muon_param_groups(b, adamw_lr=0.02), lr=0.02, adjust_lr="match_rms_adamw")
    for ga, gb in zip(opt_a.param_groups, opt_b.param_groups, strict=True):
        assert names(a, ga["params"]) == names(b, gb["params"]) and hyper(ga) == hyper(gb)
    for pa, pb in zip(train(a, opt_a), train(b, opt_b), strict=True):
        assert_same(pa, pb)


# ----------------------------------------------------------------------------------------------- Adafactor
def test_adafactor_explicit_lr_replaces_the_relative_step():
    """As timm: no lr keeps the relative step at the class's default cap 1e-2; an lr becomes rho_t itself
    (relative_step=False), unless relative_step=True is passed too: then it caps min(lr, 1/sqrt(t))."""
    (group,) = adaptim.create_optimizer("adafactor", net()).param_groups
    assert group["relative_step"] is True and group["lr"] == 1e-2
    (group,) = adaptim.create_optimizer("adafactor", net(), lr=0.1).param_groups
    assert group["relative_step"] is False and group["lr"] == 0.1
    (group,) = adaptim.create_optimizer("adafactor", net(), lr=0.1, relative_step=True).param_groups
    assert group["relative_step"] is True and group["lr"] == 0.1


# ------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(lr=-1.0), ValueError, "lr"),
        (dict(betas=(1.0, 0.9)), ValueError, "betas"),
        (dict(weight_decay=-0.1), ValueError, "weight_decay"),
        (dict(bettas=(0.9, 0.99)), TypeError, "bettas"),
    ],
)
def test_bad_arguments_give_the_class_own_error(kwargs, error, match):
    with pytest.raises(error, match=match):
        adaptim.create_optimizer("adam", net(), **kwargs)


def test_a_model_without_trainable_parameters_is_refused_by_the_class():
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="empty parameter list"):
        adaptim.create_optimizer("adam", model)


# --------------------------------------------------------------------------------- one table, three users
def test_bench_and_adaptim_list_use_the_table(capsys):
    from adaptim.bench import OPTIMIZERS
    from adaptim.cli import main

    assert list(OPTIMIZERS) == list(NAMED_OPTIMIZERS)
    for name, spec in OPTIMIZERS.items():
        assert spec.description == NAMED_OPTIMIZERS[name].description
        a = net()
        assert_same_groups(spec.build(a, 0.03), adaptim.create_optimizer(name, a, lr=0.03))
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name, entry in NAMED_OPTIMIZERS.items():
        assert f"{name} " in out and entry.description in out


def test_table_entries_are_read_only():
    with pytest.raises(TypeError):
        NAMED_OPTIMIZERS["sgd_nesterov"].kwargs["momentum"] = 0.5
