"""The README's examples run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_python_api_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- python-api-example[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert match, "the README lost its Python API example"
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    (tmp_path / "example.py").write_text(match.group(1), encoding="utf-8")
    env = {**os.environ, "MLIFT_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("MLIFT_CONFIG", None)
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()[:2]
    assert re.match(r"30 in: \d+ kept, \d+ below, \d+ rejected, \$0\.\d{4}$", first), first
    assert second.startswith("[sim]")
    assert (tmp_path / "runs" / "api-demo" / "manifest.json").is_file()


def test_the_export_example_writes_under_runs_not_the_repository_root() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("mlift export"):
            out = line.split("--out", 1)[1].split()[0]
            assert out.startswith("runs/"), line
