"""The bench's data: real data sets that ship with its dependencies, loaded deterministically, no network.

* :func:`load_digits_split` - scikit-learn's bundled handwritten digits (1,797 images of 8x8, 10 classes).
* :func:`load_breast_cancer_split` - scikit-learn's bundled Wisconsin breast-cancer table (569 x 30, 2 classes),
  standardized with the training split's mean and standard deviation.
* :func:`load_mnist1d_split` - the MNIST-1D signals (Greydanus 2020), generated procedurally by the ``mnist1d``
  package from its fixed seed (no download): 10 classes of length-40 signals, the package's own train/test split.
* :func:`load_stdlib_corpus` - the characters of the installed Python standard library's own ``.py`` files, as
  token ids (one token per character), split by file into training, validation and test text.

Every split is fixed (no random number generator of ours; MNIST-1D's generator is seeded by the package): the same
installation always gives the same arrays.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import random
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
    "load_mnist1d_split",
    "MNIST1D_LENGTH",
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


#: samples per MNIST-1D signal (the package's ``final_seq_length``)
MNIST1D_LENGTH = 40


@dataclass(frozen=True)
class ArraySplit:
    """A fixed train/validation (and, where there is one, test) split of a feature table.

    Attributes:
        x_train, x_val, x_test: float tensors of shape (n, d); ``x_test`` is ``None`` without a test split.
        y_train, y_val, y_test: int64 class labels of shape (n,); ``y_test`` likewise.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> ArraySplit:
        """The same split with every tensor on ``device``."""
        parts = (getattr(self, f.name) for f in dataclasses.fields(self))
        return ArraySplit(*(None if t is None else t.to(device) for t in parts))


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


@functools.lru_cache(maxsize=4)
def load_mnist1d_split(n_samples: int = 5000, val_every: int = 5) -> ArraySplit:
    """MNIST-1D (Greydanus 2020): x float32 of shape (n, 40), y int64 in 0..9, with a test split.

    ``mnist1d.data.make_dataset`` generates ``n_samples`` signals (``n_samples // 10`` per class) from the
    package's default arguments and seed 42, standardized over all of them, and splits them 80/20 into its
    training and test parts (4,000 / 1,000 by default). Our validation part is every ``val_every``-th sample of
    each class of the package's *training* part (800 by default); the package's test part is the test split,
    for reporting only. Nothing is downloaded (``make_dataset`` never reads the package's URL, which is blanked
    here as well). Python's and NumPy's global random states, which the package reseeds, are restored after.
    Cached per argument tuple (about 1 ms of generation per sample).

    Raises:
        ValueError: ``n_samples < 100`` (fewer than 10 per class in the 80/20 split) or ``val_every < 2``.
    """
    if n_samples < 100:
        raise ValueError(f"n_samples must be >= 100, got {n_samples!r}")
    if val_every < 2:
        raise ValueError(f"val_every must be >= 2, got {val_every!r}")
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.url = int(n_samples), None
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    if data["x"].shape[1] != MNIST1D_LENGTH:
        raise RuntimeError(f"mnist1d made signals of length {data['x'].shape[1]}, expected {MNIST1D_LENGTH}")
    x = torch.tensor(data["x"], dtype=torch.float32)
    y = torch.tensor(data["y"], dtype=torch.int64)
    tr, va = stratified_split(data["y"], val_every)
    return ArraySplit(
        x[tr],
        y[tr],
        x[va],
        y[va],
        torch.tensor(data["x_test"], dtype=torch.float32),
        torch.tensor(data["y_test"], dtype=torch.int64),
    )


@dataclass(frozen=True)
class Corpus:
    """Character-level text split by file into training, validation and test token streams.

    Attributes:
        train, val, test: uint8 tensors of token ids in [0, CHAR_VOCAB_SIZE) (``test`` is empty without a test
            split).
        files: the file names read, in order (relative to the standard-library directory).
        val_files, test_files: the subsets of ``files`` that went to validation and to test.
        unigram_entropy_bits: entropy, in bits, of the empirical token distribution of training + validation text
            (the test text is left out): the loss of the best model that ignores context.
        sha256: hash of the token streams (train, validation, test in that order), to tell whether two machines
            trained and evaluated on the same text.
    """

    train: torch.Tensor
    val: torch.Tensor
    files: tuple[str, ...]
    val_files: tuple[str, ...]
    unigram_entropy_bits: float
    sha256: str
    test: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0, dtype=torch.uint8))
    test_files: tuple[str, ...] = ()

    @property
    def n_chars(self) -> int:
        return int(self.train.numel() + self.val.numel() + self.test.numel())


#: top-level directories of the standard-library directory that hold third-party packages, not the library
_NOT_STDLIB = ("site-packages", "dist-packages")


def stdlib_source_files(stdlib_dir: str | Path | None = None, recursive: bool = False) -> list[Path]:
    """The standard library's ``*.py`` files, sorted by their path relative to ``stdlib_dir``.

    Args:
        stdlib_dir: the directory to read; default ``sysconfig.get_paths()["stdlib"]``.
        recursive: also the files of its subpackages (tests included; ``site-packages`` and ``dist-packages``,
            which hold installed third-party packages, left out); default: the top-level files only.

    Raises:
        FileNotFoundError: no ``.py`` file in that directory.
    """
    root = Path(stdlib_dir if stdlib_dir is not None else sysconfig.get_paths()["stdlib"])
    found = root.rglob("*.py") if recursive else root.glob("*.py")
    files = [p for p in found if p.is_file() and p.relative_to(root).parts[0] not in _NOT_STDLIB]
    files.sort(key=lambda p: p.relative_to(root).as_posix())
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
def load_stdlib_corpus(
    val_every: int = 10,
    max_files: int | None = None,
    stdlib_dir: str | None = None,
    test_at: int | None = None,
    recursive: bool = False,
) -> Corpus:
    """Read the standard library's source as one character stream per split.

    Files come in the order of :func:`stdlib_source_files`; the file at (0-based) position ``i`` goes to
    validation when ``i % val_every == val_every - 1`` (the 10th, 20th, ... file), to test when
    ``i % val_every == test_at`` (e.g. ``test_at=5``: the 6th, 16th, ... file), to training otherwise; each part
    is concatenated in order. Files are decoded as UTF-8 with replacement of undecodable bytes. Cached per
    argument tuple.

    Args:
        val_every: >= 2 (>= 3 with a test split).
        max_files: read only the first files of the sorted list (for fast tests); at least ``val_every``.
        stdlib_dir, recursive: as :func:`stdlib_source_files`.
        test_at: the position, modulo ``val_every``, of the test files, in ``0 .. val_every - 2``; ``None``
            (default): no test split.

    Raises:
        ValueError: ``val_every < 2``, ``test_at`` outside ``0 .. val_every - 2``, or ``max_files < val_every``
            (no validation file).
    """
    if val_every < 2:
        raise ValueError(f"val_every must be >= 2, got {val_every!r}")
    if test_at is not None and not 0 <= test_at <= val_every - 2:
        raise ValueError(f"test_at must be None or in 0..{val_every - 2} (val_every - 2), got {test_at!r}")
    files = stdlib_source_files(stdlib_dir, recursive=recursive)
    root = Path(stdlib_dir if stdlib_dir is not None else sysconfig.get_paths()["stdlib"])
    if max_files is not None:
        if max_files < val_every:
            raise ValueError(
                f"max_files must be >= val_every ({val_every}) so validation is not empty, got {max_files!r}"
            )
        files = files[:max_files]
    names = tuple(f.relative_to(root).as_posix() for f in files)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    owner: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for i, (f, name) in enumerate(zip(files, names)):
        split = "val" if i % val_every == val_every - 1 else "test" if i % val_every == test_at else "train"
        parts[split].append(encode_chars(f.read_text(encoding="utf-8", errors="replace")))
        owner[split].append(name)
    train, val, test = (
        np.concatenate(parts[k]) if parts[k] else np.zeros(0, dtype=np.uint8) for k in ("train", "val", "test")
    )
    return Corpus(
        train=torch.from_numpy(train),
        val=torch.from_numpy(val),
        files=names,
        val_files=tuple(owner["val"]),
        unigram_entropy_bits=unigram_entropy_bits(np.concatenate([train, val])),
        sha256=hashlib.sha256(np.concatenate([train, val, test]).tobytes()).hexdigest(),
        test=torch.from_numpy(test),
        test_files=tuple(owner["test"]),
    )
