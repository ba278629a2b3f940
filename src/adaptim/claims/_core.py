"""The claim framework: what a claim is, how its checks are recorded, and how a set of claims is run.

A claim module (any module of :mod:`adaptim.claims` whose name does not start with ``_``) defines ``CLAIM``, a
:class:`Claim`, or ``CLAIMS``, a sequence of them. A claim's ``run(ctx)`` computes what the notes predict and
what the library measures, and records each comparison with ``ctx.close``, ``ctx.le``, ``ctx.ge`` or
``ctx.true``; it may return a matplotlib figure, which the runner saves as ``<name>.png``. A claim passes when
every check passes and it raised nothing.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pkgutil
import re
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Check", "Claim", "ClaimResult", "Context", "all_claims", "get_claim", "run_claims", "write_claims"]


@dataclass(frozen=True)
class Claim:
    """One quantitative claim of the notes.

    ``name`` is the command-line name (lower case, hyphens), ``section`` the notes' section, equation or lemma
    (e.g. ``"2.1, (22)-(24)"``), ``statement`` the claim in one or two sentences, and ``run(ctx)`` computes and
    checks it (returning a matplotlib figure or ``None``).
    """

    name: str
    section: str
    statement: str
    run: Callable[[Context], Any]


@dataclass
class Check:
    """One comparison inside a claim: ``measured`` against ``predicted`` under ``tolerance`` (a phrase)."""

    label: str
    predicted: Any
    measured: Any
    tolerance: str
    passed: bool


def _jsonable(x: Any) -> Any:
    """Plain Python numbers, strings, lists and dicts (tensors and arrays become lists; NaN becomes a string)."""
    if hasattr(x, "tolist"):  # torch tensors and numpy arrays/scalars
        x = x.tolist()
    if isinstance(x, bool) or x is None or isinstance(x, (int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else repr(x)
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return str(x)


def _float(x: Any) -> float:
    if hasattr(x, "item"):
        x = x.item()
    return float(x)


class Context:
    """What a claim's ``run`` receives: the mode, a seeded generator, and the check recorders.

    Attributes:
        quick: ``True`` under ``--quick``; a claim then uses its smaller sizes (every claim together must stay
            within 3 minutes on 2 CPU cores) and may use looser tolerances, which it states.
        seed: the seed the runner set in torch, numpy and ``random`` before ``run`` (0).
        checks: the recorded :class:`Check` objects, in order.
        notes: free-form facts the claim wants in the report (``ctx.note(key, value)``).
    """

    def __init__(self, quick: bool = False, seed: int = 0):
        self.quick = quick
        self.seed = seed
        self.checks: list[Check] = []
        self.notes: dict[str, Any] = {}

    def size(self, quick: Any, full: Any) -> Any:
        """``quick`` under ``--quick``, else ``full`` (sizes, horizons, tolerances)."""
        return quick if self.quick else full

    def note(self, key: str, value: Any) -> None:
        """Record a fact for the report that is not a pass/fail check."""
        self.notes[key] = value

    def _add(self, label: str, predicted: Any, measured: Any, tolerance: str, passed: bool) -> bool:
        taken = {c.label for c in self.checks}
        if label in taken:  # claims.json keys predicted/measured/tolerance by label: keep every check
            label = next(f"{label} ({k})" for k in range(2, len(taken) + 3) if f"{label} ({k})" not in taken)
        self.checks.append(Check(label, _jsonable(predicted), _jsonable(measured), tolerance, bool(passed)))
        return bool(passed)

    def close(self, label: str, predicted: Any, measured: Any, *, rtol: float = 0.0, atol: float = 0.0) -> bool:
        """Check ``|measured - predicted| <= atol + rtol * |predicted|`` elementwise (scalars, tensors, arrays)."""
        import numpy as np

        p = np.asarray(predicted.detach().cpu() if hasattr(predicted, "detach") else predicted, dtype=np.float64)
        m = np.asarray(measured.detach().cpu() if hasattr(measured, "detach") else measured, dtype=np.float64)
        if p.shape != m.shape:
            return self._add(label, predicted, measured, f"shapes {p.shape} vs {m.shape}", False)
        ok = bool(np.all(np.isfinite(m)) and np.all(np.abs(m - p) <= atol + rtol * np.abs(p)))
        tol = " + ".join(t for t in (f"{atol:g}" if atol else "", f"{rtol:g}·|predicted|" if rtol else "") if t)
        if p.size > 4:  # report the worst entry instead of the whole array
            err = float(np.max(np.abs(m - p))) if m.size else 0.0
            return self._add(
                label,
                f"array of {p.size} (max |.| {float(np.max(np.abs(p))):.6g})",
                f"max abs error {err:.3g}",
                f"|error| <= {tol or 0}",
                ok,
            )
        return self._add(label, p.tolist(), m.tolist(), f"|error| <= {tol or 0}", ok)

    def le(self, label: str, measured: Any, bound: Any, *, factor: float = 1.0, atol: float = 0.0) -> bool:
        """Check ``measured <= factor * bound + atol`` (a bound the notes prove, or a prediction's ceiling)."""
        m, b = _float(measured), _float(bound)
        tol = "measured <= bound" + (f" x {factor:g}" if factor != 1.0 else "") + (f" + {atol:g}" if atol else "")
        return self._add(label, b, m, tol, math.isfinite(m) and m <= factor * b + atol)

    def ge(self, label: str, measured: Any, bound: Any, *, factor: float = 1.0, atol: float = 0.0) -> bool:
        """Check ``measured >= factor * bound - atol``."""
        m, b = _float(measured), _float(bound)
        tol = "measured >= bound" + (f" x {factor:g}" if factor != 1.0 else "") + (f" - {atol:g}" if atol else "")
        return self._add(label, b, m, tol, math.isfinite(m) and m >= factor * b - atol)

    def true(
        self, label: str, condition: Any, *, predicted: Any = True, measured: Any = None, tolerance: str = "exact"
    ) -> bool:
        """Record a yes/no fact (e.g. "the effective step never increases") with the values that decided it."""
        return self._add(
            label, predicted, bool(condition) if measured is None else measured, tolerance, bool(condition)
        )


@dataclass
class ClaimResult:
    """The outcome of one claim, as written to ``claims.json``."""

    name: str
    section: str
    statement: str
    passed: bool
    checks: list[Check]
    notes: dict[str, Any] = field(default_factory=dict)
    figure: str | None = None
    seconds: float = 0.0
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "section": self.section,
            "statement": self.statement,
            "predicted": {c.label: c.predicted for c in self.checks},
            "measured": {c.label: c.measured for c in self.checks},
            "tolerance": {c.label: c.tolerance for c in self.checks},
            "passed": self.passed,
            "figure": self.figure,
            "checks": [vars(c) for c in self.checks],
            "notes": _jsonable(self.notes),
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


_REGISTRY: dict[str, Claim] | None = None


def all_claims() -> dict[str, Claim]:
    """Every claim of :mod:`adaptim.claims`, by name, in the order of the notes' sections.

    Raises:
        RuntimeError: two claim modules define the same name.
    """
    global _REGISTRY
    if _REGISTRY is None:
        import adaptim.claims as pkg

        found: dict[str, Claim] = {}
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"adaptim.claims.{info.name}")
            claims = list(getattr(module, "CLAIMS", ())) + ([module.CLAIM] if hasattr(module, "CLAIM") else [])
            for claim in claims:
                if claim.name in found:
                    raise RuntimeError(f"claim {claim.name!r} is defined twice (second in {module.__name__})")
                found[claim.name] = claim
        _REGISTRY = dict(sorted(found.items(), key=lambda kv: (_section_key(kv[1].section), kv[0])))
    return _REGISTRY


def _section_key(section: str) -> tuple:
    """Sort key: numbered sections first (1, 2.1, ...), then appendices (A, B, ...)."""
    head = section.split(",")[0].split()[0] if section.strip() else ""
    if head[:1].isdigit():
        return (0, tuple(int(p) if p.isdigit() else 0 for p in head.split(".")))
    return (1, (head,))


def get_claim(name: str) -> Claim:
    """The claim called ``name``.

    Raises:
        KeyError: no claim has that name (the message lists the names).
    """
    claims = all_claims()
    if name not in claims:
        raise KeyError(f"unknown claim {name!r}; claims: {', '.join(claims)}")
    return claims[name]


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_claims(
    names: Iterable[str] | None = None,
    *,
    quick: bool = False,
    out: str | os.PathLike | None = None,
    progress: Callable[[ClaimResult], None] | None = None,
) -> list[ClaimResult]:
    """Run the named claims (all by default), saving each figure under ``out`` when given.

    Each claim runs with seed 0 in torch, numpy and ``random``, on one torch CPU thread (its tensors are small:
    a thread pool only adds contention, most of all on a shared machine, and the figures then do not depend on
    the core count); torch's default dtype and thread count are restored after it.
    An exception inside a claim fails that claim with the
    traceback's last line as ``error``; it does not stop the others.

    Raises:
        KeyError: an unknown name.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    claims = all_claims()
    chosen = [get_claim(n) for n in names] if names else list(claims.values())
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for claim in chosen:
        ctx = Context(quick=quick)
        _seed_everything(ctx.seed)
        start = time.perf_counter()
        figure_path, error, fig = None, None, None
        default_dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            fig = claim.run(ctx)
        except Exception as e:  # a claim that crashes fails; the others still run
            error = f"{type(e).__name__}: {e}"
            ctx.notes["traceback"] = traceback.format_exc(limit=6)
        finally:
            torch.set_default_dtype(default_dtype)
            torch.set_num_threads(threads)
        seconds = time.perf_counter() - start
        if out_dir is not None:  # a figure left by an earlier run of this claim would be read as this run's
            (out_dir / f"{claim.name}.png").unlink(missing_ok=True)
        if fig is not None:
            if out_dir is not None:
                figure_path = f"{claim.name}.png"
                fig.savefig(out_dir / figure_path, dpi=110, bbox_inches="tight")
            plt.close(fig)
        passed = error is None and bool(ctx.checks) and all(c.passed for c in ctx.checks)
        if error is None and not ctx.checks:
            error = "the claim recorded no check"
        result = ClaimResult(
            claim.name, claim.section, claim.statement, passed, ctx.checks, ctx.notes, figure_path, seconds, error
        )
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def write_claims(
    results: Sequence[ClaimResult],
    out: str | os.PathLike,
    *,
    quick: bool = False,
    doc: str | os.PathLike | None = None,
) -> list[Path]:
    """Write ``out/claims.json`` and ``out/claims.md`` (atomically: a temporary file renamed into place).

    ``doc``, when given, is a second copy of the Markdown report anywhere else (e.g. ``docs/claims.md``) whose
    figure links point into ``out``.
    """
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"quick": quick, "claims": [r.as_json() for r in results]}
    paths = []
    for name, text in (("claims.json", json.dumps(payload, indent=1)), ("claims.md", claims_markdown(results))):
        _write_atomic(out_dir / name, text)
        paths.append(out_dir / name)
    if doc is not None:
        doc = Path(doc)
        prefix = os.path.relpath(out_dir.resolve(), doc.resolve().parent).replace(os.sep, "/") + "/"
        command = f"adaptim reproduce{' --quick' if quick else ''} --out {out_dir.as_posix()} --doc {doc.as_posix()}"
        header = f"<!-- written by `{command}`; do not edit by hand -->\n"
        _write_atomic(doc, header + claims_markdown(results, figure_prefix=prefix))
        paths.append(doc)
    return paths


def _short(value: Any, width: int = 60) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value) and len(value) <= 4:
        text = "[" + ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value) + "]"
    else:
        text = str(value)
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("|", "\\|")  # a literal bar would end the table cell


def _anchor(heading: str) -> str:
    """The fragment a Markdown renderer (GitHub's) gives a heading: lower case, punctuation other than "-" dropped."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def claims_markdown(results: Sequence[ClaimResult], figure_prefix: str = "") -> str:
    """A Markdown report: one section per claim with its statement, every check and its figure.

    ``figure_prefix`` is prepended to each figure's file name in the links (the figures' folder, relative to
    where the Markdown file will live).
    """
    lines = [
        "# Claims of the notes, reproduced",
        "",
        "| claim | section | passed | checks | seconds |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for r in results:
        ok = sum(c.passed for c in r.checks)
        lines.append(
            f"| [{r.name}](#{_anchor(r.name)}) | {r.section} | {'yes' if r.passed else '**no**'} | "
            f"{ok}/{len(r.checks)} | {r.seconds:.2f} |"
        )
    for r in results:
        lines += ["", f"## {r.name}", "", f"*{r.section}.* {r.statement}", ""]
        if r.error:
            lines += [f"**error:** {r.error}", ""]
        lines += ["| check | predicted | measured | tolerance | passed |", "| --- | --- | --- | --- | --- |"]
        for c in r.checks:
            label, tol = _short(c.label, 200), _short(c.tolerance, 200)
            lines.append(
                f"| {label} | {_short(c.predicted)} | {_short(c.measured)} | {tol} | "
                f"{'yes' if c.passed else '**no**'} |"
            )
        for key, value in r.notes.items():
            if key != "traceback":
                lines.append(f"\n- {key}: {_short(value, 200)}")
        if r.figure:
            lines += ["", f"![{r.name}]({figure_prefix}{r.figure})"]
    return "\n".join(lines)
