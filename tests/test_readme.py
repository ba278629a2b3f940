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


def test_readme_theory_lab_example_runs_and_its_regret_is_below_the_bound():
    import re

    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```py\n(.*?)```", text, re.S)
    assert blocks, "the README's theory-lab example (a ```py block) is missing"
    namespace: dict = {}
    exec(blocks[0], namespace)
    run, bound = namespace["run"], namespace["sgd_bound"]
    assert 0 < run.regret() <= bound(run, lr=0.05)


def test_readme_reproduce_commands_name_real_claims():
    import re

    from adaptim.claims import all_claims

    text = (ROOT / "README.md").read_text()
    named = re.findall(r"adaptim reproduce ([a-z][a-z0-9.-]*) ", text)
    assert named and all(n in all_claims() for n in named)
    assert f"({len(all_claims())} of them" in text
