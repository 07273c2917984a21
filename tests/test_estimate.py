"""``mlift estimate``: exact input tokens, prices never $0, cache hits free, pilot extrapolation."""

from __future__ import annotations

import json
import random
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlift.cli import main
from mlift.prompts import load_prompts, render
from mlift.tokens import tokenizer_name

# The real commands, end to end: none may block its event loop (tests/noblock.py).
pytestmark = pytest.mark.usefixtures("no_blocking")

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _estimate(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["estimate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def _first(lang: str, n: int, tmp_path: Path) -> Path:
    lines = (SAMPLES / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    path = tmp_path / f"{lang}{n}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def listening_port() -> Iterator[socket.socket]:
    """A socket that listens but is never served: any connection would queue on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        s.setblocking(False)
        yield s


def test_estimate_sends_nothing_and_needs_no_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        listening_port: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEAD_KEY", raising=False)
    port = listening_port.getsockname()[1]
    config = tmp_path / "mlift.toml"
    config.write_text(f'[providers.dead]\nkind = "openai"\n'
                      f'base_url = "http://127.0.0.1:{port}/v1"\napi_key_env = "DEAD_KEY"\n')
    est = _estimate(capsys, str(_first("hi", 5, tmp_path)), "--provider", "dead:gpt-4o-mini",
                    "--config", str(config), "--cache-dir", str(tmp_path / "cache"))
    with pytest.raises(BlockingIOError):
        listening_port.accept()  # nobody connected
    assert est["stages"]["to_en"]["requests"]["expected"] == 5
    assert est["total"]["cost_usd"]["expected"] > 0


@pytest.mark.parametrize("lang", ["hi", "te", "ja"])
def test_input_tokens_equal_tiktoken_for_hi_te_ja(
        lang: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if tokenizer_name("gpt-4o-mini") != "o200k_base":
        pytest.skip("o200k_base encoding not available offline")
    import tiktoken

    enc = tiktoken.get_encoding("o200k_base")
    est = _estimate(capsys, str(_first(lang, 4, tmp_path)), "--provider", "sim:gpt-4o-mini",
                    "--cache-dir", str(tmp_path / "cache"))
    to_en = load_prompts().get("translate/to_en")
    from mlift.langs import get_language

    language = get_language(lang)
    expected = 0
    for line in _first(lang, 4, tmp_path).read_text(encoding="utf-8").splitlines():
        text = json.loads(line)["text"]
        messages = render(to_en, {"text": text, "source_lang": lang,
                                  "source_name": language.name})
        expected += 3 + sum(4 + len(enc.encode_ordinary(m.content)) for m in messages)
    stage = est["stages"]["to_en"]
    assert stage["tokenizer"] == "o200k_base"
    assert stage["input_tokens"]["expected"] == expected


def test_model_without_price_is_an_error_and_price_flag_fixes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inp = str(_first("es", 3, tmp_path))
    cache = str(tmp_path / "cache")
    assert main(["estimate", inp, "--provider", "openai:my-finetune", "--cache-dir", cache]) == 2
    assert "no price for openai:my-finetune" in capsys.readouterr().err
    est = _estimate(capsys, inp, "--provider", "openai:my-finetune", "--price", "1,2",
                    "--cache-dir", cache)
    assert est["stages"]["to_en"]["price_per_1m"] == {"input": 1.0, "output": 2.0,
                                                       "source": "config profile 'openai'"}
    assert est["stages"]["to_en"]["tokenizer"] == "approx"
    assert any("approximation" in n for n in est["notes"])


def test_items_already_answered_in_the_cache_cost_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inp = str(_first("te", 3, tmp_path))
    cache = str(tmp_path / "cache")
    before = _estimate(capsys, inp, "--provider", "sim:default", "--cache-dir", cache)
    assert before["total"]["cached_requests"] == 0
    assert main(["run", inp, "--out", str(tmp_path / "run"), "--provider", "sim:default",
                 "--cache-dir", cache, "-q"]) == 0
    capsys.readouterr()
    after = _estimate(capsys, inp, "--provider", "sim:default", "--cache-dir", cache)
    assert after["total"]["cost_usd"] == {"expected": 0.0, "low": 0.0, "high": 0.0}
    assert after["stages"]["to_en"]["cached_requests"] == 3
    assert after["stages"]["judge"]["cached_requests"] >= 3


def test_json_estimate_has_stages_ranges_and_wall_time(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    est = _estimate(capsys, str(_first("ja", 3, tmp_path)), "--provider", "sim:gpt-4o-mini",
                    "--rpm", "60", "--cache-dir", str(tmp_path / "cache"),
                    "--out", str(tmp_path / "run"))
    assert est["schema"] == "mlift-estimate-v1"
    assert set(est["stages"]) == {"to_en", "instruct", "judge", "back"}
    for name, stage in est["stages"].items():
        c = stage["cost_usd"]
        # Of 3 judged pairs, none may pass: the back translation's low can be $0.
        assert 0 <= c["low"] <= c["expected"] <= c["high"]
        assert c["low"] > 0 or name == "back"
    # ~3 items x ~3.7 requests at 60 rpm: about 11 s, and rpm is the bound.
    (endpoint,) = est["wall_time_s"]["endpoints"]
    assert endpoint["bound"] == "rpm"
    assert est["wall_time_s"]["expected"] == pytest.approx(endpoint["requests"], rel=1e-6)
    saved = json.loads((tmp_path / "run" / "estimate.json").read_text())
    assert saved["total"] == est["total"]


def test_human_table_names_stages_and_tokenizer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", str(_first("hi", 2, tmp_path)), "--provider", "sim:gpt-4o-mini",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    # o200k_base where tiktoken's encoding loads, else the labelled approximation
    assert re.search(rf"to_en\s+sim:gpt-4o-mini\s+{tokenizer_name('gpt-4o-mini')}", out)
    assert "wall time" in out


def _mixed(tmp_path: Path, per_lang: int) -> Path:
    """Fresh paragraphs per language: sample sentences recombined with a seeded RNG."""
    rng = random.Random(5)
    rows = []
    for lang in ("hi", "te", "ja", "es"):
        sents: list[str] = []
        for line in (SAMPLES / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines():
            sents += [s for s in re.split(r"(?<=[।。.!?])\s*", json.loads(line)["text"]) if s]
        for i in range(per_lang):
            text = ("" if lang == "ja" else " ").join(rng.sample(sents, rng.randint(3, 6)))
            rows.append(json.dumps({"id": f"{lang}-{i}", "lang": lang, "text": text},
                                   ensure_ascii=False))
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_pilot_extrapolates_to_the_real_cost(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inp = str(_mixed(tmp_path, 10))
    common = ["--provider", "sim:gpt-4o-mini", "--cache-dir", str(tmp_path / "cache"), "-q"]
    est = _estimate(capsys, inp, *common, "--pilot", "12")
    assert est["pilot"]["items"] == 12
    assert est["pilot"]["cost_usd"] > 0
    assert est["factors"]["en"]["source"].startswith("pilot")
    assert main(["run", inp, "--out", str(tmp_path / "run"), *common]) == 0
    capsys.readouterr()
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    actual = run["accounting"]["totals"]["cost_usd"]
    cost = est["total"]["cost_usd"]
    assert cost["expected"] == pytest.approx(actual, rel=0.10)
    assert cost["low"] <= actual <= cost["high"]
