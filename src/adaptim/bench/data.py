"""The bench's data: real data sets that ship with its dependencies, loaded deterministically, no network.

* :func:`load_digits_split` - scikit-learn's bundled handwritten digits (1,797 images of 8x8, 10 classes).
* :func:`load_breast_cancer_split` - scikit-learn's bundled Wisconsin breast-cancer table (569 x 30, 2 classes),
  standardized with the training split's mean and standard deviation.
* :func:`load_stdlib_corpus` - the characters of the installed Python standard library's own top-level ``.py``
  files, as token ids (one token per character).

Every split is fixed (no random number generator): the same installation always gives the same arrays.
"""

from __future__ import annotations

import functools
import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "ArraySplit",
    "Corpus",
    "stratified_split",
    "load_digits_split",
    "load_breast_cancer_split",
    "load_stdlib_corpus",
    "stdlib_source_files",
    "encode_chars",
    "unigram_entropy_bits",
    "CHAR_VOCAB_SIZE",
    "OTHER_CHAR_ID",
]

#: token ids 0..127 are the ASCII code points; every non-ASCII character is the single token 128
OTHER_CHAR_ID = 128
CHAR_VOCAB_SIZE = 129


@dataclass(frozen=True)
class ArraySplit:
    """A fixed train/validation split of a feature table.

    Attributes:
        x_train, x_val: float tensors of shape (n, d).
        y_train, y_val: int64 class labels of shape (n,).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def stratified_split(labels: np.ndarray, val_every: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) that put every ``val_every``-th sample *of each class* (in data order) in validation.

    Deterministic and independent of any random number generator, so class proportions are kept in both parts.

    Args:
        labels: shape (n,), integer class labels.
        val_every: >= 2; validation gets about 1/val_every of each class.

    Returns:
        Two sorted int64 index arrays that partition ``range(n)``.

    Raises:
        ValueError: ``val_every < 2``.
    """
    if val_every < 2:
        raise ValueError(f"val_every must be >= 2, got {val_every!r}")
    val = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        val[idx[val_every - 1 :: val_every]] = True
    return np.flatnonzero(~val), np.flatnonzero(val)


def load_digits_split(val_every: int = 5, max_train: int | None = None) -> ArraySplit:
    """scikit-learn's handwritten digits: x float32 of shape (n, 64) in [0, 1] (pixel / 16), y in 0..9.

    The validation part is every ``val_every``-th image of each class (355 of 1,797 by default).
    ``max_train`` keeps only the first training rows (for fast tests).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.int64)
    tr, va = stratified_split(data.target, val_every)
    tr = tr[:max_train] if max_train is not None else tr
    return ArraySplit(x[tr], y[tr], x[va], y[va])


def load_breast_cancer_split(val_every: int = 5, dtype: torch.dtype = torch.float64) -> ArraySplit:
    """scikit-learn's breast-cancer table, standardized: x of shape (n, 30), y in {0, 1}.

    Each feature is shifted and scaled by the *training* part's mean and standard deviation; the validation
    part is every ``val_every``-th sample of each class (113 of 569 by default).
    """
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    tr, va = stratified_split(data.target, val_every)
    x = np.asarray(data.data, dtype=np.float64)
    mean, std = x[tr].mean(axis=0), x[tr].std(axis=0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    xt = torch.tensor(x, dtype=dtype)
    yt = torch.tensor(data.target, dtype=torch.int64)
    return ArraySplit(xt[tr], yt[tr], xt[va], yt[va])


@dataclass(frozen=True)
class Corpus:
    """Character-level text split into training and validation token streams.

    Attributes:
        train, val: uint8 tensors of token ids in [0, CHAR_VOCAB_SIZE).
        files: the file names read, in order (relative to the standard-library directory).
        val_files: the subset of ``files`` that went to validation.
        unigram_entropy_bits: entropy, in bits, of the empirical token distribution of the whole corpus
            (train + validation): the loss of the best model that ignores context.
        sha256: hash of the token stream, to tell whether two machines trained on the same text.
    """

    train: torch.Tensor
    val: torch.Tensor
    files: tuple[str, ...]
    val_files: tuple[str, ...]
    unigram_entropy_bits: float
    sha256: str

    @property
    def n_chars(self) -> int:
        return int(self.train.numel() + self.val.numel())


def stdlib_source_files(stdlib_dir: str | Path | None = None) -> list[Path]:
    """The standard library's top-level ``*.py`` files, sorted by name (subpackages and tests are left out).

    Args:
        stdlib_dir: the directory to read; default ``sysconfig.get_paths()["stdlib"]``.

    Raises:
        FileNotFoundError: no ``.py`` file in that directory.
    """
    root = Path(stdlib_dir if stdlib_dir is not None else sysconfig.get_paths()["stdlib"])
    files = sorted((p for p in root.glob("*.py") if p.is_file()), key=lambda p: p.name)
    if not files:
        raise FileNotFoundError(f"no .py files found in the standard-library directory {root}")
    return files


def encode_chars(text: str) -> np.ndarray:
    """Token ids (uint8) of ``text``: the code point for ASCII characters, ``OTHER_CHAR_ID`` for any other."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return np.where(codes < 128, codes, OTHER_CHAR_ID).astype(np.uint8)


def unigram_entropy_bits(tokens: np.ndarray, vocab_size: int = CHAR_VOCAB_SIZE) -> float:
    """Entropy -sum_c p_c log2 p_c of the empirical distribution of ``tokens`` (bits per token)."""
    counts = np.bincount(tokens, minlength=vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


@functools.lru_cache(maxsize=4)
def load_stdlib_corpus(val_every: int = 10, max_files: int | None = None, stdlib_dir: str | None = None) -> Corpus:
    """Read the standard library's source as one character stream per split.

    Files come in the order of :func:`stdlib_source_files`; every ``val_every``-th file (the 10th, 20th, ...)
    goes to validation, the rest to training, each part concatenated in order. Files are decoded as UTF-8 with
    replacement of undecodable bytes. Cached per argument tuple.

    Args:
        val_every: >= 2.
        max_files: read only the first files of the sorted list (for fast tests); at least ``val_every``.
        stdlib_dir: as :func:`stdlib_source_files`.

    Raises:
        ValueError: ``val_every < 2`` or ``max_files < val_every`` (no validation file).
    """
    if val_every < 2:
        raise ValueError(f"val_every must be >= 2, got {val_every!r}")
    files = stdlib_source_files(stdlib_dir)
    if max_files is not None:
        if max_files < val_every:
            raise ValueError(
                f"max_files must be >= val_every ({val_every}) so validation is not empty, got {max_files!r}"
            )
        files = files[:max_files]
    parts: dict[bool, list[np.ndarray]] = {False: [], True: []}
    val_names = []
    for i, f in enumerate(files):
        is_val = (i + 1) % val_every == 0
        parts[is_val].append(encode_chars(f.read_text(encoding="utf-8", errors="replace")))
        if is_val:
            val_names.append(f.name)
    train, val = np.concatenate(parts[False]), np.concatenate(parts[True])
    both = np.concatenate([train, val])
    return Corpus(
        train=torch.from_numpy(train),
        val=torch.from_numpy(val),
        files=tuple(f.name for f in files),
        val_files=tuple(val_names),
        unigram_entropy_bits=unigram_entropy_bits(both),
        sha256=hashlib.sha256(both.tobytes()).hexdigest(),
    )
