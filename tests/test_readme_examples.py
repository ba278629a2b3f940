"""Every Python example of the README trains sensibly: run as written on a small linear regression started near
its solution, the loss does not blow up and the weights keep their scale.

The README's first example used to be ``AdamW(lr=1e-3, weight_decay=0.1, decoupled_weight_decay=True)``, which
removed 10 % of every weight per step: 300 steps took this regression from loss 0.23 to 23.6 and ||w|| from 5.0
to 0.045.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
STEPS = 300


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


class NearSolution:
    """The examples' ``data``: batches of y = x w* + b* + noise with ||w*|| = 5. The examples build ``model``
    before their loop, so iterating first moves the namespace's ``model`` next to the solution."""

    def __init__(self, namespace: dict, steps: int = STEPS) -> None:
        gen = torch.Generator().manual_seed(0)
        self.namespace, self.steps, self.gen = namespace, steps, gen
        w = torch.randn(1, 10, generator=gen)
        self.w_star, self.b_star = w * (5.0 / w.norm()), torch.tensor([0.5])
        self.x_test = torch.randn(256, 10, generator=gen)
        self.y_test = self.x_test @ self.w_star.T + self.b_star

    def loss(self) -> float:
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(self.namespace["model"](self.x_test), self.y_test))

    def __iter__(self):
        model = self.namespace["model"]
        with torch.no_grad():
            model.weight.copy_(self.w_star + 0.1 * torch.randn(1, 10, generator=self.gen))
            model.bias.copy_(self.b_star)
        self.start_loss, self.start_norm = self.loss(), float(model.weight.detach().norm())
        for _ in range(self.steps):
            x = torch.randn(32, 10, generator=self.gen)
            yield x, x @ self.w_star.T + self.b_star + 0.05 * torch.randn(32, 1, generator=self.gen)


def test_readme_has_a_python_example():
    assert python_examples()


@pytest.mark.parametrize("index", range(len(python_examples())))
def test_readme_example_trains_sensibly(index):
    namespace: dict = {}
    data = NearSolution(namespace)
    namespace["data"] = data
    torch.manual_seed(0)
    exec(compile(python_examples()[index], f"README.md example {index}", "exec"), namespace)
    assert hasattr(data, "start_loss"), "the example did not iterate over `data`"
    end_norm = float(namespace["model"].weight.detach().norm())
    assert data.loss() <= max(2 * data.start_loss, 0.05), (data.start_loss, data.loss())
    assert 0.8 * data.start_norm <= end_norm <= 1.2 * data.start_norm, (data.start_norm, end_norm)
