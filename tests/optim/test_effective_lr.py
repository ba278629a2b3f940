"""adaptim.optim.effective_lr.adam_effective_lr: eta_t / (sqrt(vbar_t) + eps) read from Adam's state."""

from __future__ import annotations

import math

import pytest
import torch

import adaptim
from adaptim.optim.effective_lr import adam_effective_lr


def _step(opt, p, g):
    p.grad = torch.tensor(g, dtype=torch.float64)
    opt.step()


def test_one_step_is_lr_over_abs_g_plus_eps():
    p = torch.zeros(2, dtype=torch.float64)
    opt = adaptim.Adam([p], lr=0.5, eps=0.25, fused=False)
    _step(opt, p, [3.0, -4.0])  # vbar_1 = g^2
    torch.testing.assert_close(adam_effective_lr(opt, p), torch.tensor([0.5 / 3.25, 0.5 / 4.25], dtype=torch.float64))


def test_two_steps_amsgrad_keeps_the_max_of_the_bias_corrected_vbar():
    b2 = 0.5
    p = torch.zeros(1, dtype=torch.float64)
    opt = adaptim.Adam([p], lr=1.0, betas=(0.9, b2), eps=0.0, amsgrad=True, fused=False)
    _step(opt, p, [2.0])  # v_1 = 0.5 * 4 = 2, vbar_1 = 2 / 0.5 = 4
    assert adam_effective_lr(opt, p).item() == pytest.approx(1 / 2)
    _step(opt, p, [1.0])  # v_2 = 0.5 * 2 + 0.5 * 1 = 1.5, vbar_2 = 1.5 / 0.75 = 2 < 4: the max stays 4
    assert adam_effective_lr(opt, p).item() == pytest.approx(1 / 2)
    q = torch.zeros(1, dtype=torch.float64)
    plain = adaptim.Adam([q], lr=1.0, betas=(0.9, b2), eps=0.0, fused=False)
    _step(plain, q, [2.0])
    _step(plain, q, [1.0])
    assert adam_effective_lr(plain, q).item() == pytest.approx(1 / math.sqrt(2))  # without the max: vbar_2 = 2


def test_eps_inside_sqrt_and_the_current_lr():
    p = torch.zeros(1, dtype=torch.float64)
    opt = adaptim.AdamW([p], lr=0.1, eps=0.44, eps_inside_sqrt=True, weight_decay=0.0, fused=False)
    _step(opt, p, [-0.6])  # sqrt(0.36 + 0.44) = sqrt(0.8)
    assert adam_effective_lr(opt, p).item() == pytest.approx(0.1 / math.sqrt(0.8))
    opt.param_groups[0]["lr"] = 0.05
    assert adam_effective_lr(opt, p).item() == pytest.approx(0.05 / math.sqrt(0.8))


def test_zero_denominator_divides_by_one_as_the_update_does():
    p = torch.zeros(2, dtype=torch.float64)
    opt = adaptim.Adam([p], lr=0.3, eps=0.0, fused=False)
    _step(opt, p, [0.0, 1.0])
    assert adam_effective_lr(opt, p).tolist() == pytest.approx([0.3, 0.3])


def test_is_the_step_the_parameter_took_per_unit_of_mbar():
    gen = torch.Generator().manual_seed(0)
    p = torch.zeros(5, dtype=torch.float64)
    opt = adaptim.Adam([p], lr=1e-2, amsgrad=True, fused=False)
    for t in range(1, 20):
        before = p.clone()
        p.grad = torch.randn(5, generator=gen, dtype=torch.float64) * (1 + t % 3)
        opt.step()
        mbar = opt.state[p]["exp_avg"] / (1 - 0.9**t)
        torch.testing.assert_close((before - p) / mbar, adam_effective_lr(opt, p), rtol=1e-9, atol=0)


def test_refusals():
    p = torch.zeros(1, dtype=torch.float64)
    with pytest.raises(ValueError, match="no step"):
        adam_effective_lr(adaptim.Adam([p], fused=False), p)
    opt = adaptim.Adam([p], fused=False)
    with pytest.raises(ValueError, match="not one of"):
        adam_effective_lr(opt, torch.zeros(1))
    with pytest.raises(TypeError, match="AdamAtan2"):
        adam_effective_lr(adaptim.AdamAtan2([p]), p)
    with pytest.raises(TypeError, match="Adam"):
        adam_effective_lr(torch.optim.Adam([p]), p)
