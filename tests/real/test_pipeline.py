"""`mlift run` with the real model in each role: the funnel balances and rejects say why.

A 135M model's content proves nothing about quality; what is checked is that
whatever it writes ends as a kept pair, a scored pair or a reject with a
reason code and the model's own words.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlift.cli import main
from real.real_support import ROOT, RealServer, spec

MODEL_STAGES = {"to_en", "to_en_context", "instruct", "judge", "back", "emit"}


def rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def inputs(tmp_path: Path, per_lang: int, langs: tuple[str, ...]) -> list[str]:
    files = []
    for lang in langs:
        lines = (ROOT / "samples" / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()
        path = tmp_path / f"{lang}.jsonl"
        path.write_text("\n".join(lines[:per_lang]) + "\n", encoding="utf-8")
        files.append(str(path))
    return files


def run(server: RealServer, out: Path, files: list[str], **models: str) -> dict[str, Any]:
    flags = [item for role, target in models.items() for item in (f"--{role}", target)]
    code = main(["run", *files, "--out", str(out), "--config", str(server.config_path),
                 "--no-cache", "--concurrency", "4", "-q", *flags])
    assert code in (0, 4), f"mlift run exited {code}"
    run_json: dict[str, Any] = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return run_json


def check_rejects(out: Path) -> list[dict[str, Any]]:
    rejects = rows(out / "rejects.jsonl")
    for reject in rejects:
        if reject["stage"] in MODEL_STAGES and not reject["code"].startswith("provider_"):
            assert reject["raw"], f"{reject['id']} {reject['stage']}:{reject['code']} has no raw"
    return rejects


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_run_with_the_real_model_as_generator_and_judge_balances(
        server: RealServer, tmp_path: Path, kind: str) -> None:
    out = tmp_path / "run"
    data = run(server, out, inputs(tmp_path, 2, ("es", "hi")), translator="sim:default",
               generator=spec(kind), judge=spec(kind))
    funnel = data["funnel"]
    assert funnel["balanced"] and funnel["input"] == 4
    check_rejects(out)
    assert data["accounting"]["stages"]["instruct"]["requests"] >= 1


def test_a_run_with_the_real_model_as_translator_balances(server: RealServer,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "run"
    data = run(server, out, inputs(tmp_path, 1, ("es",)), provider=spec("openai"))
    assert data["funnel"]["balanced"] and data["funnel"]["input"] == 1
    rejects = check_rejects(out)
    kept = rows(out / "dataset.jsonl")
    below = [r for r in rows(out / "scored.jsonl") if not r["kept"]]
    assert len(rejects) + len(kept) + len(below) == 1
