"""The lock file: a released version's hash may not change without a version bump."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

from mlift.errors import PromptError, PromptLockError
from mlift.prompts.load import (
    _read_toml,
    bundled_dir,
)
from mlift.prompts.model import (
    LOCK_NAME,
    STYLES_ID,
    PromptLibrary,
)


class LockProblem(NamedTuple):
    kind: str  # "changed" | "missing" | "new"
    name: str
    message: str


def _lock_path(root: Path | None) -> Path:
    return (root if root is not None else bundled_dir()) / LOCK_NAME


def read_lock(path: Path) -> dict[str, str]:
    """``id@vN`` → sha256 from a lock file; a missing file is an empty lock."""
    if not path.exists():
        return {}
    data = _read_toml(path)
    entries = data.get("prompts", {})
    if set(data) - {"prompts"} or not isinstance(entries, dict) or not all(
            isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in entries.values()):
        raise PromptError(f"{path}: field 'prompts': must be a table of \"id@vN\" = "
                          "\"<sha256 hex>\" and nothing else")
    return dict(entries)


def _current(library: PromptLibrary, root: Path) -> dict[str, tuple[str, bool]]:
    """Name → (hash, is_style_data) for everything in ``library`` loaded from ``root``."""
    root = root.resolve()
    items: list[tuple[str, str, Path, bool]] = [
        (t.name, t.content_hash, t.path, False) for t in library]
    if library.has_style_data:
        s = library.style_data
        items.append((s.name, s.content_hash, s.path, True))
    return {name: (h, style) for name, h, path, style in items
            if path.resolve().is_relative_to(root)}


def lock_problems(library: PromptLibrary, root: Path | None = None) -> list[LockProblem]:
    """Compare ``library``'s files under ``root`` (default: bundled) with ``root``/prompts.lock."""
    path = _lock_path(root)
    locked = read_lock(path)
    current = _current(library, path.parent)
    problems = []
    for name, (digest, _) in sorted(current.items()):
        if name not in locked:
            problems.append(LockProblem("new", name, f"{name}: new, run `mlift prompts lock`"))
        elif locked[name] != digest:
            problems.append(LockProblem(
                "changed", name,
                f"{name}: content changed since it was released (locked {locked[name][:12]}, "
                f"now {digest[:12]}); released versions are frozen: revert the edit and put "
                "the change in a new version file"))
    has_styles = any(style for _, style in current.values())
    for name in sorted(set(locked) - set(current)):
        if name.startswith(f"{STYLES_ID}@") and has_styles:
            continue  # the one styles file moved to a new version; the old one retires
        problems.append(LockProblem(
            "missing", name, f"{name}: released but its file is gone; restore it (outputs "
            "record this version) or run `mlift prompts lock --force` to drop it"))
    return problems


def check_lock(library: PromptLibrary, root: Path | None = None) -> list[str]:
    """Every lock problem as a message; empty when the lock matches."""
    return [p.message for p in lock_problems(library, root)]


def write_lock(library: PromptLibrary, root: Path | None = None, *,
               force: bool = False) -> Path:
    """Record the current hashes in ``root``/prompts.lock and return its path.

    Refuses (``PromptLockError``) to overwrite the hash of a changed released
    version or drop a missing one unless ``force``.
    """
    path = _lock_path(root)
    blocking = [p for p in lock_problems(library, root) if p.kind != "new"]
    if blocking and not force:
        raise PromptLockError("refusing to rewrite released versions (use --force if you "
                              "really mean to):\n  " + "\n  ".join(p.message for p in blocking))
    current = _current(library, path.parent)
    lines = ["# mlift prompt lock: sha256 of every released prompt version (canonical JSON",
             "# of the parsed file). Never edit a released version: add v<N+1>.toml, then",
             "# run `mlift prompts lock`. `mlift prompts check` compares files to this list.",
             "", "[prompts]"]
    lines += [f"{json.dumps(name)} = {json.dumps(digest)}"
              for name, (digest, _) in sorted(current.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
