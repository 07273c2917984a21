"""``mlift prompts list|show|check|lock`` through ``mlift.cli.main``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlift.cli import main
from mlift.prompts import bundled_dir, load_prompts


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    root = tmp_path / "prompts"
    shutil.copytree(bundled_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_list_prints_a_row_per_prompt_version_with_its_hash(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "VERSION", "STAGE", "OUTPUT", "HASH"]
    rows = {tuple(line.split()[:2]): line.split() for line in out[1:]}
    for t in load_prompts():
        assert rows[t.id, f"v{t.version}"] == [t.id, f"v{t.version}", t.stage, t.output,
                                               t.content_hash[:12]]
    assert rows["instruct/styles", "v1"][3] == "data"


def test_list_filters_by_stage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "list", "--stage", "judge"]) == 0
    ids = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert ids == ["judge/fit", "judge/fit", "judge/fit_line", "judge/fit_score_first"]  # v1, v2


def test_list_includes_prompts_from_a_user_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fit = (bundled_dir() / "judge/fit/v1.toml").read_text(encoding="utf-8")
    (tmp_path / "judge/fit").mkdir(parents=True)
    (tmp_path / "judge/fit/v9.toml").write_text(fit.replace("version = 1", "version = 9"),
                                                encoding="utf-8")
    assert main(["prompts", "list", "--stage", "judge", "--prompts", str(tmp_path)]) == 0
    versions = [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]
                if line.startswith("judge/fit ")]
    assert versions == ["v1", "v2", "v9"]


def test_show_prints_metadata_and_raw_messages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "show", "translate/back"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(load_prompts().get("translate/back").ref)
    assert "variables: text, target_lang, target_name" in out
    assert "--- system ---" in out and "--- user ---" in out
    assert "{target_name}" in out  # raw template, not rendered


def test_show_render_fills_variables_and_shows_the_route_and_schema(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["prompts", "show", "judge/fit@v2", "--render", "instruction=Name a river",
                 "response=The Godavari = a river"])
    assert code == 0
    out = capsys.readouterr().out
    assert "<instruction>\nName a river\n</instruction>" in out
    assert "<response>\nThe Godavari = a river\n</response>" in out
    assert "route (sent as the X-Mlift-Prompt header): judge/fit@v2 judge format=json" in out
    assert 'schema (judge_fit): {"type": "object"' in out
    assert "<!--" not in out


def test_show_render_with_missing_variables_exits_2_listing_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "show", "instruct/summary", "--render", "style=chat"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "missing variables: length_hint, response_en, style_hint" in captured.err


def test_show_unknown_prompt_suggests_the_nearest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "show", "instruct/sumary"]) == 2
    assert "Did you mean 'instruct/summary'?" in capsys.readouterr().err


def test_show_styles_prints_weights_as_shares(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "show", "instruct/styles"]) == 0
    out = capsys.readouterr().out
    assert "length hints:" in out and "formal" in out and "%" in out


def test_check_passes_on_the_bundled_prompts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "check"]) == 0
    assert "all prompt versions match" in capsys.readouterr().out


def test_check_fails_listing_each_problem(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for rel in ("judge/fit/v1.toml", "instruct/list/v1.toml"):
        path = copy / rel
        path.write_text(path.read_text(encoding="utf-8").replace("max_tokens = ",
                                                                 "max_tokens = 1"),
                        encoding="utf-8")
    assert main(["prompts", "check", "--root", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "2 problem(s)" in out
    assert "instruct/list@v1: content changed" in out
    assert "judge/fit@v1: content changed" in out


def test_lock_refuses_changed_releases_without_force(
        copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = copy / "judge/fit/v1.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("strict", "kind"), encoding="utf-8")
    assert main(["prompts", "lock", "--root", str(copy)]) == 2
    assert "refusing to rewrite released versions" in capsys.readouterr().err
    assert main(["prompts", "check", "--root", str(copy)]) == 1
    assert main(["prompts", "lock", "--root", str(copy), "--force"]) == 0
    assert main(["prompts", "check", "--root", str(copy)]) == 0


def test_prompts_without_an_action_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["prompts"])
    assert exc.value.code == 2
