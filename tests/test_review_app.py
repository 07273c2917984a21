"""The review server over HTTP: what it shows, what it stores, and what it refuses.

Fixed run folders are written by hand (one ``mlift run`` folder with kept,
below-threshold and rejected items in two languages, one translation
baseline), and the server is started on a free loopback port and spoken to
with a plain aiohttp client, as a browser (or an attacker's page) would.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mlift.errors import ConfigError, RunFolderError
from mlift.records import repair_torn_tail
from mlift.review.app import Review, serve
from mlift.review.blind import build_deck
from mlift.review.pairs import Pair
from mlift.review.store import Label, append, read

pytestmark = pytest.mark.usefixtures("no_blocking")

INJECTION = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
SECRET = "TOP-SECRET-MARKER-7f3a"


def _jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")


def _kept(pid: str, lang: str, instruction: str, response: str, task: str, score: int,
          **extra: Any) -> dict[str, Any]:
    return {"id": pid, "lang": lang, "instruction": instruction, "response": response,
            "instruction_en": f"(en) {instruction}", "response_en": f"(en) {response}",
            "task": task, "style": "formal", "score": score, "reason": f"reason of {pid}",
            "models": {"judge": "sim:default"},
            "source": {"file": f"corpus-{lang}.jsonl", "line": 1}, **extra}


def write_review_run(folder: Path) -> Path:
    """es: 3 kept (one holding a script), 1 below λ; ja: 1 kept, 1 rejected after judging,
    1 rejected at selection."""
    folder.mkdir(parents=True)
    kept = [
        _kept("es-1", "es", "Explica por qué el sol brilla.", "El sol brilla por la fusión.",
              "explain", 5),
        _kept("es-2", "es", "Describe la luna llena.", "La luna llena ilumina la noche.",
              "article", 4),
        _kept("es-3", "es", INJECTION, "Una respuesta con <b>etiquetas</b> & signos.",
              "question", 4),
        _kept("ja-1", "ja", "月について説明してください。", "月は地球の衛星です。", "explain", 5),
    ]
    below = {**_kept("es-4", "es", "", "El mar es azul.", "list", 2), "kept": False}
    judged_then_rejected = {**_kept("ja-2", "ja", "", "富士山は高い。", "question", 4),
                            "kept": True}
    _jsonl(folder / "dataset.jsonl", kept)
    _jsonl(folder / "scored.jsonl", [{**k, "kept": True} for k in kept]
           + [below, judged_then_rejected])
    _jsonl(folder / "rejects.jsonl", [
        {"id": "ja-2", "lang": "ja", "stage": "back", "code": "wrong_language",
         "detail": "the translation is not Japanese", "response": "富士山は高い。"},
        {"id": "ja-3", "lang": "ja", "stage": "select", "code": "too_short",
         "detail": "4 characters", "response": "短い。"}])
    (folder / "run.json").write_text(json.dumps({"config": {"min_score": 4}}),
                                     encoding="utf-8")
    return folder


def write_review_baseline(folder: Path) -> Path:
    """A translation baseline with two Spanish rows."""
    folder.mkdir(parents=True)
    _jsonl(folder / "dataset.jsonl", [
        {"id": "t-1", "lang": "es", "instruction": "Escribe un poema sobre el mar.",
         "response": "El mar canta.", "task": "translated",
         "source": {"file": "english_ift.jsonl", "line": 1}},
        {"id": "t-2", "lang": "es", "instruction": "Resume el texto.",
         "response": "Un resumen corto.", "task": "translated",
         "source": {"file": "english_ift.jsonl", "line": 2}}])
    (folder / "run.json").write_text(json.dumps({"baseline": "translate"}), encoding="utf-8")
    return folder


async def raw_get(c: Client, target: str) -> tuple[int, str]:
    """GET ``target`` exactly as written: no client-side normalisation of ``..`` or ``%2e``."""
    host, port = c.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                 f"X-Mlift-Token: {c.review.token}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = response.decode("utf-8", "replace").partition("\r\n\r\n")
    return int(head.split()[1]), body


class Client:
    """Talks to one running review server, with or without the page's credentials."""

    def __init__(self, review: Review, url: str, http: aiohttp.ClientSession) -> None:
        self.review, self.url, self.http = review, url.rstrip("/"), http
        self.origin = self.url

    def headers(self, **extra: str) -> dict[str, str]:
        return {"X-Mlift-Token": self.review.token, **extra}

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        kw.setdefault("headers", self.headers())
        async with self.http.get(self.url + path, **kw) as r:
            text = await r.text()
            return r.status, json.loads(text) if r.content_type == "application/json" else text

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        kw.setdefault("headers", self.headers(Origin=self.origin))
        async with self.http.post(self.url + path, json=body, **kw) as r:
            text = await r.text()
            return r.status, json.loads(text) if r.content_type == "application/json" else text


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Any]:
    runners = []
    http = aiohttp.ClientSession()

    async def start_server(*folders: Path, labeller: str = "ana") -> Client:
        # Built before serving, as `mlift review` does before its loop (it reads the folders).
        review = await asyncio.to_thread(Review, list(folders), labeller=labeller, seed=1)
        runner, url = await serve(review, port=0)
        runners.append(runner)
        return Client(review, url, http)

    yield start_server
    await http.close()
    for runner in runners:
        await runner.cleanup()


async def test_state_lists_runs_with_their_kind_languages_and_statuses(tmp_path: Path,
                                                                        start: Any) -> None:
    c = await start(write_review_run(tmp_path / "run"), write_review_baseline(tmp_path / "tr"))
    status, state = await c.get("/api/state")
    assert status == 200
    run, base = state["runs"]
    assert (run["name"], run["kind"], run["count"]) == ("run", "mlift", 7)
    assert run["statuses"] == {"kept": 4, "below": 1, "rejected": 2}
    assert run["langs"] == ["es", "ja"] and base["kind"] == "translate"
    assert state["blind"] == {"items": 2, "langs": ["es"]}  # only es is in both


async def test_filters_and_search_select_the_matching_pairs(tmp_path: Path, start: Any) -> None:
    c = await start(write_review_run(tmp_path / "run"))

    async def ids(query: str) -> list[str]:
        status, data = await c.get(f"/api/pairs?run=0&{query}")
        assert status == 200
        assert data["total"] == len(data["items"])
        return [p["id"] for p in data["items"]]

    assert await ids("lang=ja") == ["ja-1", "ja-2", "ja-3"]
    assert await ids("status=rejected") == ["ja-2", "ja-3"]
    assert await ids("status=below") == ["es-4"]
    assert await ids("score=5") == ["es-1", "ja-1"]
    assert await ids("score=none") == ["ja-3"]
    assert await ids("task=explain&lang=es") == ["es-1"]
    assert await ids("q=LUNA") == ["es-2"]  # case-insensitive, in the instruction
    assert await ids("q=fusión") == ["es-1"]  # in the response
    assert await ids("q=not%20Japanese") == ["ja-2"]  # in the reject's detail
    _, data = await c.get("/api/pairs?run=0&limit=2&offset=5")
    assert data["total"] == 7 and [p["id"] for p in data["items"]] == ["ja-2", "ja-3"]


async def test_a_judged_then_rejected_pair_keeps_its_score_and_says_where_it_left(
        tmp_path: Path, start: Any) -> None:
    c = await start(write_review_run(tmp_path / "run"))
    _, data = await c.get("/api/pair?run=0&id=ja-2")
    pair = data["pair"]
    assert (pair["status"], pair["score"], pair["reject"]["stage"]) == ("rejected", 4, "back")
    assert pair["response_en"] == "(en) 富士山は高い。"


async def test_labels_are_appended_with_labeller_and_time_and_survive_a_restart(
        tmp_path: Path, start: Any) -> None:
    folder = write_review_run(tmp_path / "run")
    c = await start(folder)
    body = {"run": 0, "id": "es-2", "labeller": "ana", "score": 3,
            "flags": ["unnatural", "gives_away"], "note": "demasiado literal"}
    status, saved = await c.post("/api/label", body)
    assert status == 200, saved
    status, _ = await c.post("/api/label", {**body, "labeller": "ben", "score": 5, "flags": []})
    assert status == 200
    status, _ = await c.post("/api/label", {**body, "score": 2})  # ana changes her mind
    lines = [json.loads(x) for x in (folder / "labels.jsonl").read_text().splitlines()]
    assert [(x["labeller"], x["score"]) for x in lines] == [("ana", 3), ("ben", 5), ("ana", 2)]
    assert all(x["at"].endswith("Z") and x["id"] == "es-2" for x in lines)

    again = await start(folder)  # a new server on the same folder
    status, data = await again.get("/api/pair?run=0&id=es-2")
    by = {x["labeller"]: x for x in data["labels"]}
    assert (by["ana"]["score"], by["ben"]["score"]) == (2, 5)
    assert by["ana"]["flags"] == ["unnatural", "gives_away"]
    _, mine = await again.get("/api/pairs?run=0&labelled=mine&labeller=ben")
    assert [p["id"] for p in mine["items"]] == ["es-2"]
    _, rest = await again.get("/api/pairs?run=0&labelled=not-mine&labeller=ana")
    assert "es-2" not in [p["id"] for p in rest["items"]] and rest["total"] == 6


@pytest.mark.parametrize("change, message", [
    ({"score": 7}, "score must be"), ({"score": True}, "score must be"),
    ({"flags": ["rude"]}, "unknown flag"), ({"flags": "unnatural"}, "flags must be"),
    ({"labeller": ""}, "labeller name"), ({"labeller": "a\nb"}, "printable"),
    ({"id": "nope"}, "no such pair"), ({"run": 5}, "no such run"),
    ({"note": "x" * 5000}, "note must be"),
])
async def test_bad_labels_are_refused_with_a_reason_and_not_written(
        tmp_path: Path, start: Any, change: dict[str, Any], message: str) -> None:
    folder = write_review_run(tmp_path / "run")
    c = await start(folder)
    body = {"run": 0, "id": "es-1", "labeller": "ana", "score": 4, "flags": [], "note": ""}
    status, data = await c.post("/api/label", {**body, **change})
    assert status == 400 and message in data["error"]
    assert not (folder / "labels.jsonl").exists()


async def test_cross_origin_and_tokenless_posts_are_refused(tmp_path: Path, start: Any) -> None:
    folder = write_review_run(tmp_path / "run")
    c = await start(folder)
    body = {"run": 0, "id": "es-1", "labeller": "mallory", "score": 1}
    attempts = [
        {"X-Mlift-Token": c.review.token, "Origin": "http://evil.example"},
        {"X-Mlift-Token": c.review.token, "Origin": "null"},
        {"X-Mlift-Token": c.review.token},  # no Origin at all
        {"Origin": c.origin},  # the right origin, no token
        {"Origin": c.origin, "X-Mlift-Token": "guessed"},
    ]
    for headers in attempts:
        status, _ = await c.post("/api/label", body, headers=headers)
        assert status == 403, headers
    # What a cross-site <form> can send: a simple content type, no custom header.
    async with c.http.post(c.url + "/api/label", data="run=0&id=es-1&score=1",
                           headers={"Origin": c.origin, "X-Mlift-Token": c.review.token,
                                    "Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 415
    status, _ = await c.post("/api/blind", {"key": "x", "choice": 0, "labeller": "m"},
                             headers={"Origin": "http://evil.example"})
    assert status == 403
    assert not (folder / "labels.jsonl").exists()
    assert not (folder / "preferences.jsonl").exists()


async def test_api_reads_need_the_token_and_a_rebound_host_gets_nothing(
        tmp_path: Path, start: Any) -> None:
    c = await start(write_review_run(tmp_path / "run"))
    status, _ = await c.get("/api/pairs?run=0", headers={})
    assert status == 403
    # DNS rebinding: the attacker's name resolves to 127.0.0.1, so the Host is theirs.
    for path in ("/", "/api/state", "/static/app.js"):
        status, body = await c.get(path, headers={**c.headers(), "Host": "evil.example:80"})
        assert status == 421 and c.review.token not in str(body)
    status, page = await c.get("/", headers={"Host": "localhost"})
    assert status == 200 and c.review.token in page


async def test_no_request_path_reads_a_file_outside_the_package_or_the_runs(
        tmp_path: Path, start: Any) -> None:
    folder = write_review_run(tmp_path / "run")
    (tmp_path / "secret.txt").write_text(SECRET)
    (folder / "secret.txt").write_text(SECRET)  # even inside a run folder: not served
    c = await start(folder)
    paths = [
        "/static/../secret.txt", "/static/..%2f..%2fsecret.txt", "/static/%2e%2e/app.py",
        "/static/..%5c..%5csecret.txt", f"/static/{tmp_path}/secret.txt",
        "/static/index.html", "/static/", "/static/app.js%00.txt", "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/secret.txt", "/run/secret.txt",
        "/api/pair?run=0&id=../secret.txt", "/api/pair?run=../../&id=secret.txt",
        "/api/pair?run=-9&id=es-1", "/api/pairs?run=1", "/api/pair?run=0&id=%2fetc%2fpasswd",
    ]
    for path in paths:
        status, body = await raw_get(c, path)
        assert status in (400, 404), (path, status)
        assert SECRET not in body and "root:" not in body, path
    status, script = await c.get("/static/app.js")
    assert status == 200 and "textContent" in script


async def test_every_response_carries_a_strict_content_security_policy(
        tmp_path: Path, start: Any) -> None:
    c = await start(write_review_run(tmp_path / "run"))
    for path in ("/", "/static/app.js", "/api/state", "/api/pair?run=0&id=nope"):
        async with c.http.get(c.url + path, headers=c.headers()) as r:
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp, path
            assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_script_in_the_data_is_sent_as_json_text_not_markup(
        tmp_path: Path, start: Any) -> None:
    c = await start(write_review_run(tmp_path / "run"))
    _, data = await c.get("/api/pair?run=0&id=es-3")
    assert data["pair"]["instruction"] == INJECTION
    _, page = await c.get("/")
    assert "<script>window" not in page  # the page itself holds no data


async def test_blind_comparison_shows_only_texts_and_stores_the_winner(
        tmp_path: Path, start: Any) -> None:
    run, base = write_review_run(tmp_path / "ours"), write_review_baseline(tmp_path / "theirs")
    c = await start(run, base)
    status, data = await c.get("/api/blind?labeller=ana")
    item = data["item"]
    assert (data["total"], data["done"]) == (2, 0)
    assert set(item) == {"key", "lang", "sides"}
    assert all(set(side) == {"instruction", "response"} for side in item["sides"])
    raw = json.dumps(data, ensure_ascii=False)
    for leak in ("ours", "theirs", "translate", "mlift", "es-", "t-1", "t-2", "english_ift",
                 "translated", "score"):
        assert leak not in raw, leak
    status, _ = await c.post("/api/blind", {"key": item["key"], "choice": 0, "labeller": "ana"})
    assert status == 200
    pref = json.loads((run / "preferences.jsonl").read_text())
    left_run = pref["shown"][0]["run"]
    assert pref["winner"] == left_run and pref["labeller"] == "ana" and pref["lang"] == "es"
    status, data = await c.get("/api/blind?labeller=ana")
    assert data["done"] == 1 and data["item"]["key"] != item["key"]
    status, data = await c.get("/api/blind?labeller=ben")
    assert data["done"] == 0  # done is per labeller
    status, _ = await c.post("/api/blind", {"key": item["key"], "choice": 2,
                                            "labeller": "ana"})
    assert status == 400
    _, results = await c.get("/api/blind/results")
    (rate,) = results["rates"]
    assert (rate["a"], rate["b"], rate["n"]) == ("ours", "theirs", 1)
    assert rate["a_wins" if left_run == "ours" else "b_wins"] == 1


def test_a_torn_last_label_line_is_skipped_then_cut_before_the_next_append(
        tmp_path: Path) -> None:
    folder = write_review_run(tmp_path / "run")
    append(folder, Label(id="es-1", labeller="ana", at="2026-01-01T00:00:00.000Z", score=4))
    with (folder / "labels.jsonl").open("ab") as fh:
        fh.write(b'{"id": "es-2", "labeller": "ana", "sc')  # killed mid-line
    assert [x.id for x in read(folder, Label)] == ["es-1"]
    append(folder, Label(id="es-3", labeller="ana", at="2026-01-01T00:00:01.000Z", score=2))
    assert [x.id for x in read(folder, Label)] == ["es-1", "es-3"]
    assert repair_torn_tail(folder / "labels.jsonl") == 0


def test_a_damaged_label_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    folder = write_review_run(tmp_path / "run")
    (folder / "labels.jsonl").write_text(
        '{"id": "es-1", "labeller": "ana", "at": "t", "score": 4}\n'
        '{"id": "es-2", "labeller": "ana", "at": "t", "score": 9}\n')
    with pytest.raises(RunFolderError, match=r"labels.jsonl:2"):
        read(folder, Label)
    with pytest.raises(RunFolderError, match=r"labels.jsonl:2.*labeller"):
        (folder / "labels.jsonl").write_text('{"id": "x", "labeller": "a", "at": "t"}\n'
                                             '{"id": "es-2", "at": "t"}\n')
        read(folder, Label)


def test_a_folder_that_is_not_a_run_is_refused_early(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="no such folder"):
        Review([tmp_path / "missing"], labeller="ana")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not an mlift run folder"):
        Review([tmp_path / "empty"], labeller="ana")


async def test_the_command_listens_on_loopback_and_prints_its_url(tmp_path: Path) -> None:
    folder = write_review_run(tmp_path / "run")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlift", "review", str(folder), "--port", "0",
        "--labeller", "ana", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        url = line.split("open ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            assert r.status == 200 and "mlift review" in await r.text()
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0
    assert proc.stderr is not None
    assert "7 pairs in 1 run folder" in (await proc.stderr.read()).decode()


def test_three_folders_are_compared_two_at_a_time_in_a_seeded_order() -> None:
    def pairs(run: str, n: int) -> list[Pair]:
        return [Pair(id=f"{run}{i}", lang="hi", status="kept", instruction=f"i{i}",
                     response=f"r{i}") for i in range(n)]

    runs = {"ours": pairs("o", 6), "translate": pairs("t", 4), "template": pairs("p", 5)}
    deck = build_deck(runs, seed=1, per_lang=3)
    combos = sorted({tuple(sorted(run for run, _ in item.sides)) for item in deck})
    assert combos == [("ours", "template"), ("ours", "translate"), ("template", "translate")]
    assert len(deck) == 9 and len({i.key for i in deck}) == 9
    assert {item.sides[0][0] for item in deck} == {"ours", "template", "translate"}  # sides mix
    assert [i.key for i in build_deck(runs, seed=1, per_lang=3)] == [i.key for i in deck]
    assert [i.key for i in build_deck(runs, seed=2, per_lang=3)] != [i.key for i in deck]
    assert all(set(i.public()["sides"][0]) == {"instruction", "response"} for i in deck)
