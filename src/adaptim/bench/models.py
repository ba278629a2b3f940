"""The bench's models: a multilayer perceptron, a 1-D convolutional classifier and a causal transformer over characters.

Both are plain ``torch.nn`` modules written out in full, so that a reader sees every parameter an optimizer is
given (logistic regression is a ``torch.nn.Linear``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "Conv1dNet", "CausalSelfAttention", "Block", "CharTransformer", "count_parameters"]


class MLP(nn.Module):
    """x -> Linear -> GELU -> ... -> Linear: logits of shape (batch, n_out) from inputs of shape (batch, n_in).

    Args:
        sizes: layer widths (n_in, hidden..., n_out), at least two entries.
    """

    def __init__(self, sizes: tuple[int, ...]) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"sizes must have at least two entries (n_in, n_out), got {sizes!r}")
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.gelu(x)
        return x


class Conv1dNet(nn.Module):
    """A 1-D convolutional classifier: signals (batch, length) -> logits (batch, n_classes).

    ``n_conv`` convolutions of ``width`` channels, each halving the length (stride 2; kernel 5 for the first,
    3 after; zero padding), each followed by GELU, then a linear layer on the flattened features. At
    ``length=40``, three convolutions leave 5 positions: ``6 width^2 + 58 width + 10`` parameters for 10
    classes (8,010 at width 32). PyTorch's default initialization.

    Raises:
        ValueError: ``width``, ``n_conv`` or ``n_classes`` < 1, or ``length`` too short for ``n_conv`` halvings.
    """

    def __init__(self, length: int = 40, n_classes: int = 10, width: int = 32, n_conv: int = 3) -> None:
        super().__init__()
        if width < 1 or n_conv < 1 or n_classes < 1:
            raise ValueError(f"width, n_conv and n_classes must be >= 1, got {width!r}, {n_conv!r}, {n_classes!r}")
        convs, n = [], length
        for i in range(n_conv):
            k = 5 if i == 0 else 3
            convs.append(nn.Conv1d(1 if i == 0 else width, width, k, stride=2, padding=k // 2))
            n = (n + 2 * (k // 2) - k) // 2 + 1
        if n < 1:
            raise ValueError(f"length {length} is too short for {n_conv} stride-2 convolutions")
        self.convs = nn.ModuleList(convs)
        self.head = nn.Linear(width * n, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)  # (batch, 1 channel, length)
        for conv in self.convs:
            x = F.gelu(conv(x))
        return self.head(x.flatten(1))


def count_parameters(build: Callable[[], nn.Module]) -> int:
    """The number of parameter entries of the model ``build()`` returns.

    The model is built on the CPU with torch's CPU random state saved and restored, so counting leaves the next
    run's initialization unchanged. (Not on the meta device: its first ``normal_`` costs seconds.)"""
    with torch.random.fork_rng(devices=[]):
        return sum(p.numel() for p in build().parameters())


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t sees positions <= t; input and output (batch, T, d_model)."""

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        if d_model % n_head != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        # (b, t, d) -> (b, heads, t, d / heads)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """A pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)) with a 4x GELU hidden layer."""

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.out = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class CharTransformer(nn.Module):
    """A GPT-style causal language model over characters.

    Token and learned position embeddings, ``n_layer`` pre-norm blocks, a final LayerNorm and an untied output
    layer. Linear and embedding weights start from N(0, 0.02^2), residual output projections from
    N(0, (0.02 / sqrt(2 n_layer))^2), biases from zero (GPT-2's initialization).

    Args:
        vocab_size: number of token ids.
        context: the longest input length T.
        d_model, n_head, n_layer: width, attention heads (dividing d_model), depth.

    Shapes: ``forward`` maps int64 ids (batch, T <= context) to logits (batch, T, vocab_size).
    """

    def __init__(self, vocab_size: int, context: int, d_model: int = 64, n_head: int = 4, n_layer: int = 2) -> None:
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        if t > self.context:
            raise ValueError(f"input length {t} exceeds the model's context {self.context}")
        x = self.tok(ids) + self.pos(torch.arange(t, device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))
