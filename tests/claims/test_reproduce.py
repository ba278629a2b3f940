"""`adaptim reproduce --quick` passes every claim; the runner's contract (JSON, figures, exit codes)."""

from __future__ import annotations

import json

import pytest

from adaptim.claims import Claim, Context, all_claims, run_claims
from adaptim.cli import main

NAMES = list(all_claims())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims")
    status = main(["reproduce", "--quick", "--out", str(out)])
    return status, json.loads((out / "claims.json").read_text()), out


def test_quick_run_exits_zero(quick_run):
    status, payload, _ = quick_run
    failed = [c["name"] for c in payload["claims"] if not c["passed"]]
    assert status == 0, f"failed claims: {failed}"
    assert [c["name"] for c in payload["claims"]] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_claim_passes(quick_run, name):
    _, payload, out = quick_run
    (claim,) = [c for c in payload["claims"] if c["name"] == name]
    bad = [c for c in claim["checks"] if not c["passed"]]
    assert claim["error"] is None, claim["error"] + "\n" + claim["notes"].get("traceback", "")
    assert claim["checks"] and not bad, bad
    assert claim["passed"]
    for key in ("section", "statement", "predicted", "measured", "tolerance", "figure"):
        assert key in claim
    if claim["figure"] is not None:
        assert (out / claim["figure"]).stat().st_size > 1000


def test_every_claim_has_section_and_statement():
    for claim in all_claims().values():
        assert claim.name == claim.name.lower() and " " not in claim.name
        assert claim.section.strip() and len(claim.statement) > 20, claim.name


def test_unknown_name_exits_2_and_lists_names(capsys):
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "no-such-claim"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no-such-claim" in err and NAMES[0] in err


def test_list(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES)


def test_out_naming_a_file_is_refused_before_running(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "rms", "--out", str(f)])
    assert e.value.code == 2


def test_failing_and_crashing_claims_fail_without_stopping_others(monkeypatch, tmp_path):
    import adaptim.claims._core as core

    def fails(ctx: Context):
        ctx.close("one is two", 1.0, 2.0, rtol=1e-9)

    def crashes(ctx: Context):
        raise ArithmeticError("boom")

    def silent(ctx: Context):
        return None

    fake = {
        c.name: c
        for c in (
            Claim("fails", "1", "a claim that fails", fails),
            Claim("crashes", "1", "a claim that crashes", crashes),
            Claim("silent", "1", "a claim that checks nothing", silent),
            all_claims()["rms"],
        )
    }
    monkeypatch.setattr(core, "_REGISTRY", fake)
    results = {r.name: r for r in run_claims(out=tmp_path)}
    assert not results["fails"].passed and results["fails"].error is None
    assert not results["crashes"].passed and "boom" in results["crashes"].error
    assert not results["silent"].passed and "no check" in results["silent"].error
    assert results["rms"].passed
    assert main(["reproduce", "fails", "rms", "--out", str(tmp_path)]) == 1


def test_context_checks():
    ctx = Context()
    assert ctx.close("a", 1.0, 1.0 + 1e-10, rtol=1e-9)
    assert not ctx.close("b", 1.0, float("nan"), atol=1.0)
    assert ctx.le("c", 1.0, 2.0) and not ctx.le("d", 3.0, 2.0) and ctx.le("e", 3.0, 2.0, factor=1.5)
    assert ctx.ge("f", 2.0, 1.0) and not ctx.ge("g", 0.5, 1.0)
    assert not ctx.close("h", [1.0, 2.0], [1.0], atol=1)
    assert [c.passed for c in ctx.checks] == [True, False, True, False, True, True, False, False]


def test_doc_copy_links_figures_in_out(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    import adaptim.claims._core as core

    def drawn(ctx: Context):
        ctx.true("drawn", True)
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        return fig

    monkeypatch.setattr(core, "_REGISTRY", {"drawn": Claim("drawn", "1", "a claim with a figure", drawn)})
    doc = tmp_path / "docs" / "claims.md"
    doc.parent.mkdir()
    assert main(["reproduce", "--out", str(tmp_path / "docs" / "claims"), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "![drawn](claims/drawn.png)" in text and (tmp_path / "docs" / "claims" / "drawn.png").exists()


def test_docs_claims_md_lists_every_claim_with_its_figure():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "claims.md").read_text()
    for name in NAMES:
        assert f"\n## {name}\n" in text, f"docs/claims.md lacks {name}: re-run the command at its top"
    for link in __import__("re").findall(r"\]\((claims/[^)]+\.png)\)", text):
        assert (root / "docs" / link).is_file(), link


def test_names_are_case_insensitive_deduplicated_and_checked_with_list(tmp_path, capsys):
    assert main(["reproduce", "RMS", "rms", "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "claims.json").read_text())
    assert [c["name"] for c in payload["claims"]] == ["rms"]
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "--list", "rms", "nope"])
    assert e.value.code == 2
    capsys.readouterr()
    assert main(["reproduce", "--list", "rms"]) == 0
    assert capsys.readouterr().out.startswith("rms")


def test_out_or_doc_under_a_file_is_refused_before_running(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    for argv in (["--out", str(f / "sub")], ["--out", str(tmp_path / "o"), "--doc", str(f / "x.md")]):
        with pytest.raises(SystemExit) as e:
            main(["reproduce", "rms", *argv])
        assert e.value.code == 2
    assert not (tmp_path / "o").exists()


def test_a_stale_figure_of_a_rerun_claim_is_removed(tmp_path, monkeypatch):
    import adaptim.claims._core as core

    (tmp_path / "quiet.png").write_bytes(b"old")
    (tmp_path / "other.png").write_bytes(b"kept")

    def quiet(ctx: Context):
        ctx.true("ran", True)

    monkeypatch.setattr(core, "_REGISTRY", {"quiet": Claim("quiet", "1", "a claim without a figure now", quiet)})
    run_claims(out=tmp_path)
    assert not (tmp_path / "quiet.png").exists() and (tmp_path / "other.png").read_bytes() == b"kept"


def test_repeated_check_labels_are_kept_apart():
    ctx = Context()
    ctx.true("same", True)
    ctx.true("same", False)
    ctx.true("same", True)
    assert [c.label for c in ctx.checks] == ["same", "same (2)", "same (3)"]
