"""The test tree stays collectable as one run: the test folders are not packages, so two test files with the same
name in different folders stop pytest at collection ("import file mismatch")."""

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def test_test_file_names_are_unique():
    names = Counter(p.name for p in ROOT.rglob("test_*.py"))
    assert not [n for n, k in names.items() if k > 1], [n for n, k in names.items() if k > 1]
