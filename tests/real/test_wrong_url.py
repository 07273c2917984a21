"""A wrong base URL against llama-server: its own 404s stop the run, and the fix finishes it.

llama-server serves ``/chat/completions`` with and without ``/v1``, so the
wrong URL here is one under a path it does not serve at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlift.cli import EXIT_ENDPOINT, main
from real.real_support import MODEL, RealServer, spec


def requests_file(path: Path, n: int) -> Path:
    lines = [json.dumps({"messages": [{"role": "user", "content": f"Name a colour ({i})."}],
                         "max_tokens": 8}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_wrong_base_url_stops_the_run_naming_it_and_the_right_one_answers_all(
        server: RealServer, kind: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    src, out = requests_file(tmp_path / "in.jsonl", 6), tmp_path / "out.jsonl"
    wrong = server.url + ("/api/v1" if kind == "openai" else "/api")
    common = ["requests", str(src), "--out", str(out), "--config", str(server.config_path),
              "--provider", spec(kind), "--no-cache", "-q"]
    assert main([*common, "--base-url", wrong]) == EXIT_ENDPOINT
    err = capsys.readouterr().err
    assert wrong in err and MODEL in err and "404" in err and "--base-url" in err
    assert "Traceback" not in err
    assert not out.exists() or out.read_text() == ""  # no line burned on the URL
    assert main(common) == 0  # the profile's own, right URL
    done = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(done) == 6 and all("response" in line for line in done)
