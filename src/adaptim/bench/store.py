"""Keeping the bench's work: the output directory's checks, ``runs.jsonl`` (one line per finished run, written as
each finishes) and atomic JSON writes (a temporary file in the same directory, renamed into place by
:func:`os.replace`, so a reader sees the old file or the new one, never a truncated one).

A run is identified by :func:`run_key`: (task, variant, optimizer, seed, horizon, hparams). ``resume`` skips the
runs whose key is already in ``runs.jsonl``; an interrupted bench (Ctrl-C, a crash, a kill) keeps every run that
finished before it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["check_out", "run_key", "RunStore", "write_json_atomic", "RUNS_FILE", "RESULTS_FILE", "SWEEP_FILE"]

RUNS_FILE = "runs.jsonl"
RESULTS_FILE = "results.json"
SWEEP_FILE = "sweep.json"


def check_out(out: str | os.PathLike[str]) -> Path:
    """Check that ``out`` can hold the bench's files, before any training; create it (and its parents) if needed.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``out`` is empty, names an existing file (not a directory), or a directory that cannot be
            created or written (the message names ``out`` and the cause).
    """
    if out is None or str(out) == "":
        raise ValueError("out must name a directory, got an empty path")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"out {str(path)!r} is an existing file, not a directory; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".adaptim-write-check-"):
            pass
    except OSError as exc:
        raise ValueError(f"out {str(path)!r} is not a writable directory: {exc.strerror or exc}") from exc
    return path


def run_key(record: dict[str, Any]) -> str:
    """The identity of a run: JSON of its task, variant, preset, device, optimizer, seed, horizon, step count and
    hparams (sorted keys); a ``--quick`` or ``--steps`` run is another run than the default one, never reused."""
    return json.dumps(
        [
            record["task"],
            record.get("variant"),
            record.get("preset", "cpu"),
            str(record.get("device", "cpu")),
            record["optimizer"],
            record["seed"],
            float(record["horizon"]),
            int(record["steps"]),
            {k: record["hparams"][k] for k in sorted(record["hparams"])},
        ],
        sort_keys=True,
    )


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (temporary file in the same directory, flushed, renamed).

    Raises:
        ValueError: ``obj`` holds a NaN or an infinity (JSON has neither); ``path`` is left as it was.
        OSError: the directory cannot be written; ``path`` is left as it was.
    """
    path = Path(path)
    text = json.dumps(obj, indent=indent, allow_nan=False) + "\n"  # (raises before anything is written)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class RunStore:
    """``runs.jsonl`` of an output directory: the finished runs, one JSON object per line.

    Args:
        out: the directory (checked with :func:`check_out`).
        resume: keep and read the runs already there; without it, an existing non-empty ``runs.jsonl`` is refused
            (it holds an earlier bench's work, which would be lost).
        name: the file's name inside ``out``.

    Raises:
        ValueError: as :func:`check_out`, or ``runs.jsonl`` exists with runs and ``resume`` is false.
    """

    def __init__(self, out: str | os.PathLike[str], resume: bool = False, name: str = RUNS_FILE) -> None:
        self.out = check_out(out)
        self.path = self.out / name
        self.records: list[dict[str, Any]] = []
        if self.path.exists() and self.path.stat().st_size > 0:
            if not resume:
                raise ValueError(
                    f"{str(self.path)!r} holds the finished runs of an earlier bench; pass resume=True (--resume) "
                    "to continue it, or choose another out (--out)"
                )
            self.records = self._read()
        self.keys = {run_key(r) for r in self.records}

    def _read(self) -> list[dict[str, Any]]:
        records = []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # the last line of a bench killed mid-write: that run is re-run
                    continue
                raise ValueError(f"{str(self.path)!r} line {i + 1} is not JSON; the file is damaged") from None
        if lines and records and not self.path.read_text(encoding="utf-8").endswith("\n"):
            self._rewrite(records)  # drop the torn tail so the next append starts on its own line
        return records

    def _rewrite(self, records: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
        fd, tmp = tempfile.mkstemp(dir=self.out, prefix=f".{self.path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def __contains__(self, record: dict[str, Any]) -> bool:
        return run_key(record) in self.keys

    def get(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The stored run with ``record``'s key, or ``None``."""
        key = run_key(record)
        return next((r for r in self.records if run_key(r) == key), None) if key in self.keys else None

    def append(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line, flushed to disk before returning."""
        line = json.dumps(record, allow_nan=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)
        self.keys.add(run_key(record))
