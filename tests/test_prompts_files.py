"""Loading prompt folders: validation errors, user overrides, and the lock file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mlift.errors import PromptError, PromptLockError
from mlift.prompts import (
    bundled_dir,
    check_lock,
    load_prompts,
    lock_problems,
    read_lock,
    write_lock,
)

VALID = '''id = "instruct/haiku"
version = 1
stage = "instruct"
task = "haiku"
description = "Write the request for which the text is a haiku."
variables = ["response_en", "style"]
output = "text"
sim = "instruct task=haiku style={style}"

[params]
max_tokens = 100
temperature = 0.5

[[messages]]
role = "system"
content = "Write a request; literal braces look like {{this}}."

[[messages]]
role = "user"
content = "<response>{response_en}</response>"
'''


def write_prompt(root: Path, text: str = VALID, rel: str = "instruct/haiku/v1.toml") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the bundled prompt folder, lock included."""
    root = tmp_path / "prompts"
    shutil.copytree(bundled_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_user_folder_adds_a_prompt_next_to_the_bundled_ones(tmp_path: Path) -> None:
    write_prompt(tmp_path)
    lib = load_prompts([tmp_path])
    assert lib.get("instruct/haiku").version == 1
    assert "haiku" in {t.task for t in lib.pool("instruct")}
    assert lib.get("judge/fit").path.is_relative_to(bundled_dir())


def test_user_folder_new_version_becomes_the_latest(tmp_path: Path) -> None:
    fit = (bundled_dir() / "judge/fit/v1.toml").read_text(encoding="utf-8")
    write_prompt(tmp_path, fit.replace("version = 1", "version = 9").replace("strict", "fair"),
                 "judge/fit/v9.toml")
    lib = load_prompts([tmp_path])
    assert lib.get("judge/fit").version == 9
    assert "fair" in lib.get("judge/fit").messages[0].content
    assert lib.get("judge/fit@v1").path.is_relative_to(bundled_dir())


def test_user_copy_identical_to_a_bundled_version_is_accepted(tmp_path: Path) -> None:
    original = (bundled_dir() / "judge/fit/v1.toml").read_text(encoding="utf-8")
    write_prompt(tmp_path, original, "judge/fit/v1.toml")
    lib = load_prompts([tmp_path])
    assert lib.get("judge/fit").content_hash == load_prompts().get("judge/fit").content_hash


def test_same_id_and_version_with_other_content_is_an_error_naming_both_files(
        tmp_path: Path) -> None:
    fit = (bundled_dir() / "judge/fit/v1.toml").read_text(encoding="utf-8")
    path = write_prompt(tmp_path, fit.replace("strict", "lenient"), "judge/fit/v1.toml")
    with pytest.raises(PromptError) as err:
        load_prompts([tmp_path])
    assert str(path) in str(err.value)
    assert str(bundled_dir() / "judge/fit/v1.toml") in str(err.value)
    assert "judge/fit@v1" in str(err.value)


def test_comments_and_layout_do_not_change_the_hash(tmp_path: Path) -> None:
    a = load_prompts([write_prompt(tmp_path / "a").parents[2]], bundled=False)
    spaced = "# a comment\n" + VALID.replace('version = 1', 'version    =    1')
    b = load_prompts([write_prompt(tmp_path / "b", spaced).parents[2]], bundled=False)
    assert a.get("instruct/haiku").content_hash == b.get("instruct/haiku").content_hash


def test_user_styles_replace_the_bundled_ones(tmp_path: Path) -> None:
    write_prompt(tmp_path, '''id = "instruct/styles"
version = 7
description = "one style"
[styles.pirate]
hint = "talk like a pirate"
weight = 1
[length_hints.none]
hint = "no length"
weight = 2
''', "instruct/styles.toml")
    lib = load_prompts([tmp_path])
    assert [c.name for c in lib.styles] == ["pirate"]
    assert lib.style_data.ref.startswith("instruct/styles@v7#")


@pytest.mark.parametrize(("edit", "field", "message"), [
    (lambda s: s.replace('task = "haiku"\n', ""), "task", "missing"),
    (lambda s: s.replace("version = 1", 'version = "1"'), "version", "must be int"),
    (lambda s: s.replace('output = "text"', 'output = "xml"'), "output", "must be one of"),
    (lambda s: s.replace('stage = "instruct"', 'stage = "polish"'), "stage", "must be one of"),
    (lambda s: 'colour = "blue"\n' + s, "colour", "unknown field"),
    (lambda s: s.replace('["response_en", "style"]', '["response_en"]'), "variables",
     "not declared: style"),
    (lambda s: s.replace('["response_en", "style"]', '["response_en", "style", "extra"]'),
     "variables", "never used: extra"),
    (lambda s: s.replace("{{this}}", "{this"), "messages[0].content", "unescaped '{'"),
    (lambda s: s.replace('role = "user"', 'role = "assistant"'), "messages[1].role",
     "must be 'user'"),
    (lambda s: s.replace("sim = \"instruct", "sim = \"judge"), "sim", "must look like"),
    (lambda s: s.replace("max_tokens = 100", "max_tokens = 0"), "params.max_tokens", ">= 1"),
    (lambda s: s.replace("temperature = 0.5\n", ""), "params.temperature", "missing"),
    (lambda s: s.replace("version = 1", "version = 2"), "version", "must live at"),
    (lambda s: s.replace('id = "instruct/haiku"', 'id = "instruct/poem"'), "id",
     "must be instruct/haiku"),
])
def test_invalid_file_error_names_the_file_and_the_field(
        tmp_path: Path, edit: Callable[[str], str], field: str, message: str) -> None:
    path = write_prompt(tmp_path, edit(VALID))
    with pytest.raises(PromptError) as err:
        load_prompts([tmp_path], bundled=False)
    text = str(err.value)
    assert text.startswith(f"{path}: field {field!r}:"), text
    assert message in text


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write_prompt(tmp_path, VALID.replace('task = "haiku"', "task = haiku"))
    with pytest.raises(PromptError, match=r"invalid TOML: .*line 4") as err:
        load_prompts([tmp_path], bundled=False)
    assert str(path) in str(err.value)


def test_file_outside_the_layout_is_rejected(tmp_path: Path) -> None:
    path = write_prompt(tmp_path, VALID, "haiku.toml")
    with pytest.raises(PromptError, match="not a prompt file") as err:
        load_prompts([tmp_path], bundled=False)
    assert str(path) in str(err.value)


def test_missing_prompt_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="prompt folder not found"):
        load_prompts([tmp_path / "nope"])


# ---------------------------------------------------------------- the lock

def test_bundled_prompts_match_their_lock() -> None:
    assert check_lock(load_prompts()) == []
    locked = read_lock(bundled_dir() / "prompts.lock")
    assert set(locked) == {t.name for t in load_prompts()} | {"instruct/styles@v1"}


def test_editing_a_released_prompt_is_reported(copy: Path) -> None:
    path = copy / "judge/fit/v1.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("strict", "lenient"),
                    encoding="utf-8")
    problems = check_lock(load_prompts([copy], bundled=False), copy)
    assert len(problems) == 1
    assert problems[0].startswith("judge/fit@v1: content changed since it was released")


def test_a_new_version_is_reported_as_new(copy: Path) -> None:
    write_prompt(copy, VALID)
    problems = check_lock(load_prompts([copy], bundled=False), copy)
    assert problems == ["instruct/haiku@v1: new, run `mlift prompts lock`"]


def test_lock_records_new_versions_then_check_is_clean(copy: Path) -> None:
    write_prompt(copy, VALID)
    lib = load_prompts([copy], bundled=False)
    write_lock(lib, copy)
    assert check_lock(lib, copy) == []
    assert "instruct/haiku@v1" in read_lock(copy / "prompts.lock")


def test_lock_refuses_to_overwrite_a_changed_release_unless_forced(copy: Path) -> None:
    path = copy / "translate/back/v1.toml"
    path.write_text(path.read_text(encoding="utf-8") + "\n# comment only\n", encoding="utf-8")
    assert check_lock(load_prompts([copy], bundled=False), copy) == []  # comments don't count
    path.write_text(path.read_text(encoding="utf-8").replace("temperature = 0.0",
                                                             "temperature = 0.3"),
                    encoding="utf-8")
    lib = load_prompts([copy], bundled=False)
    before = (copy / "prompts.lock").read_text(encoding="utf-8")
    with pytest.raises(PromptLockError, match="translate/back@v1: content changed"):
        write_lock(lib, copy)
    assert (copy / "prompts.lock").read_text(encoding="utf-8") == before
    write_lock(lib, copy, force=True)
    assert check_lock(lib, copy) == []


def test_a_deleted_release_is_reported(copy: Path) -> None:
    (copy / "instruct/opinion/v1.toml").unlink()
    [problem] = lock_problems(load_prompts([copy], bundled=False), copy)
    assert (problem.kind, problem.name) == ("missing", "instruct/opinion@v1")


def test_bumping_the_styles_version_retires_the_old_entry(copy: Path) -> None:
    path = copy / "instruct/styles.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("version = 1", "version = 2")
                    .replace("weight = 0.35", "weight = 0.5"), encoding="utf-8")
    lib = load_prompts([copy], bundled=False)
    assert check_lock(lib, copy) == ["instruct/styles@v2: new, run `mlift prompts lock`"]
    write_lock(lib, copy)
    assert "instruct/styles@v1" not in read_lock(copy / "prompts.lock")


def test_a_malformed_lock_is_an_error_naming_it(copy: Path) -> None:
    (copy / "prompts.lock").write_text('[prompts]\n"judge/fit@v1" = "nothex"\n',
                                       encoding="utf-8")
    with pytest.raises(PromptError, match=r"prompts\.lock: field 'prompts'"):
        check_lock(load_prompts([copy], bundled=False), copy)
