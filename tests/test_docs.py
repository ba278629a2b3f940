"""docs/equations.md stays current: every `file.py::name` it cites exists (code under src/adaptim, tests here)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "equations.md"


def _refs() -> list[tuple[str, str]]:
    refs = []
    for token in re.findall(r"`([^`]+)`", DOC.read_text()):
        m = re.fullmatch(r"([\w/]+\.py)::(\w+\*?)(?:\(.*\))?(?:\.\w+)?", token)
        if m:
            refs.append((m.group(1), m.group(2)))
    return refs


def _find(path: str) -> Path:
    base = ROOT / "tests" if Path(path).name.startswith("test_") else ROOT / "src" / "adaptim"
    hits = [p for p in base.rglob(Path(path).name) if p.as_posix().endswith(path)]
    assert len(hits) == 1, f"docs/equations.md cites {path}, found {hits}"
    return hits[0]


def test_doc_cites_something():
    assert len(_refs()) > 50


@pytest.mark.parametrize("path,name", _refs())
def test_cited_name_exists(path, name):
    text = _find(path).read_text()
    if name.endswith("*"):
        pattern = rf"^\s*(def|class) {re.escape(name[:-1])}\w*"
    else:
        pattern = rf"^\s*(def|class) {re.escape(name)}\b|^{re.escape(name)}\s*[:=]"
    assert re.search(pattern, text, re.M), f"docs/equations.md cites {path}::{name}, which does not exist"
