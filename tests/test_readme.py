"""The README's set-up commands and CI agree: CI must run exactly the README's test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_two_commands():
    text = (ROOT / "README.md").read_text()
    assert text.index("```bash") < 40, "the set-up commands must open the README"
    cmds = readme_commands()
    assert len(cmds) == 2
    assert "adaptim bench" in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci


def test_ci_runs_the_linter_and_the_format_check():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "ruff check" in ci and "ruff format --check" in ci
    assert "[tool.ruff" in (ROOT / "pyproject.toml").read_text()
