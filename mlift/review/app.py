"""The review server: browse and label the pairs of run folders, compare them blind.

An aiohttp application over the run folders given on the command line. The
page and its script and style are files of this package, read once at start
(no CDN, nothing fetched: it works offline). The JSON API:

* ``GET /api/state`` — the runs, their languages, tasks and counts, the flags;
* ``GET /api/pairs?run=&lang=&task=&status=&score=&labelled=&labeller=&q=&offset=&limit=``
  — the matching pairs (summaries) and how many match;
* ``GET /api/pair?run=&id=`` — one pair in full, with every labeller's label;
* ``POST /api/label`` — save a label (appended to the run folder's labels file);
* ``GET /api/blind?labeller=`` — the next blind comparison this labeller has not done;
* ``POST /api/blind`` — store a choice; ``GET /api/blind/results`` — win rates.

:mod:`mlift.review.guard` checks every request first.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from mlift.errors import ConfigError
from mlift.report.load import FolderView
from mlift.review import blind, store
from mlift.review.guard import guard
from mlift.review.pairs import STATUSES, Pair, load_pairs
from mlift.review.store import FLAGS, Label, Preference
from mlift.runfolder import RunFolder

STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
PAGE_LIMIT = 500
SUMMARY_CHARS = 160


@dataclass(slots=True)
class Run:
    """One run folder as the server holds it; ``labels[id][labeller]`` is the latest label."""

    index: int
    name: str
    path: Path
    kind: str
    pairs: list[Pair]
    by_id: dict[str, Pair] = field(default_factory=dict)
    labels: dict[str, dict[str, Label]] = field(default_factory=dict)
    search: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, index: int, name: str, path: Path) -> Run:
        folder = RunFolder.load(path)
        pairs = load_pairs(folder)
        if not pairs:
            raise ConfigError(f"{path}: no pairs yet (dataset.jsonl, scored.jsonl and "
                              "rejects.jsonl are empty or missing)")
        kind = FolderView(path, command=folder.command).kind
        run = cls(index, name, path, kind, pairs)
        run.by_id = {p.id: p for p in pairs}
        run.search = {p.id: p.text() for p in pairs}
        for label in store.read(path, Label):
            run.labels.setdefault(label.id, {})[label.labeller] = label
        return run

    def summary(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "kind": self.kind,
                "count": len(self.pairs),
                "langs": sorted({p.lang for p in self.pairs if p.lang}),
                "tasks": sorted({p.task for p in self.pairs if p.task}),
                "statuses": {s: sum(p.status == s for p in self.pairs) for s in STATUSES},
                "labelled": len(self.labels)}


def _names(paths: list[Path]) -> list[str]:
    """Folder names, or the paths as given where two folders share a name."""
    names = [p.resolve().name or str(p) for p in paths]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(paths, names, strict=True)]


def _clip(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS - 1] + "…"


class Review:
    """The server's state and request handlers."""

    def __init__(self, paths: list[Path], *, labeller: str, seed: int = 0,
                 per_lang: int = blind.DEFAULT_PER_LANG, token: str | None = None,
                 allow_hosts: tuple[str, ...] = ()) -> None:
        if not paths:
            raise ConfigError("give at least one run folder")
        self.runs = [Run.load(i, n, p) for i, (n, p) in enumerate(zip(_names(paths), paths,
                                                                      strict=True))]
        self.labeller = store.check_name(labeller)
        self.token = token or secrets.token_urlsafe(32)
        self.allow_hosts = allow_hosts
        # Preferences live in the first folder: it is "ours" in the comparison.
        self.deck = blind.build_deck({r.name: r.pairs for r in self.runs}, seed=seed,
                                     per_lang=per_lang) if len(self.runs) > 1 else []
        self.deck_by_key = {item.key: item for item in self.deck}
        self.preferences = store.read(self.runs[0].path, Preference)
        self._write = asyncio.Lock()
        package = resources.files("mlift.review") / "static"
        self.static = {name: (package / name).read_bytes() for name in STATIC}
        self.page = (package / "index.html").read_text(encoding="utf-8")

    # -- pages -------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[guard(self.token, self.allow_hosts)],
                              client_max_size=64 * 1024)
        app.router.add_get("/", self.index)
        app.router.add_get("/static/{name}", self.static_file)
        app.router.add_get("/api/state", self.state)
        app.router.add_get("/api/pairs", self.list_pairs)
        app.router.add_get("/api/pair", self.pair)
        app.router.add_post("/api/label", self.save_label)
        app.router.add_get("/api/blind", self.blind_next)
        app.router.add_post("/api/blind", self.blind_choose)
        app.router.add_get("/api/blind/results", self.blind_results)
        return app

    async def index(self, request: web.Request) -> web.Response:
        page = self.page.replace("{{TOKEN}}", escape(self.token))
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    async def static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:  # a fixed set: no request names a path on disk
            raise web.HTTPNotFound()
        return web.Response(body=self.static[name], content_type=STATIC[name],
                            charset="utf-8")

    # -- browsing ----------------------------------------------------------

    def _run(self, request: web.Request) -> Run:
        try:
            return self.runs[int(request.query.get("run", "0"))]
        except (ValueError, IndexError):
            raise _bad("no such run (run is the folder's number, from 0)") from None

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response({
            "runs": [r.summary() for r in self.runs], "flags": FLAGS,
            "labeller": self.labeller, "statuses": list(STATUSES),
            "blind": {"items": len(self.deck),
                      "langs": sorted({i.lang for i in self.deck})}})

    async def list_pairs(self, request: web.Request) -> web.Response:
        run, q = self._run(request), request.query
        try:
            offset = max(0, int(q.get("offset", "0")))
            limit = min(PAGE_LIMIT, max(1, int(q.get("limit", "200"))))
        except ValueError:
            raise _bad("offset and limit are whole numbers") from None
        who = q.get("labeller", self.labeller)
        text = q.get("q", "").strip().casefold()
        score = q.get("score", "")
        matches = []
        for p in run.pairs:
            if q.get("lang") and p.lang != q["lang"]:
                continue
            if q.get("task") and p.task != q["task"]:
                continue
            if q.get("status") and p.status != q["status"]:
                continue
            if score and (str(p.score) if p.score is not None else "none") != score:
                continue
            labels = run.labels.get(p.id, {})
            mine = who in labels
            wanted = q.get("labelled", "")
            if (wanted == "mine" and not mine) or (wanted == "not-mine" and mine) or \
                    (wanted == "any" and not labels) or (wanted == "none" and labels):
                continue
            if text and text not in run.search[p.id]:
                continue
            matches.append(p)
        items = [self._summary(run, p, who) for p in matches[offset:offset + limit]]
        return web.json_response({"total": len(matches), "offset": offset, "items": items})

    def _summary(self, run: Run, p: Pair, who: str) -> dict[str, Any]:
        labels = run.labels.get(p.id, {})
        mine = labels.get(who)
        return {"id": p.id, "lang": p.lang, "task": p.task, "status": p.status,
                "score": p.score, "text": _clip(p.instruction or p.instruction_en
                                                or p.response),
                "labels": len(labels), "mine": mine.score if mine else None,
                "mine_done": mine is not None}

    async def pair(self, request: web.Request) -> web.Response:
        run = self._run(request)
        pair = run.by_id.get(request.query.get("id", ""))
        if pair is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "no such pair"}),
                                   content_type="application/json")
        labels = sorted(run.labels.get(pair.id, {}).values(), key=lambda x: x.at)
        return web.json_response({"run": run.index, "pair": pair.to_json(),
                                  "labels": [label.to_json() for label in labels]})

    async def save_label(self, request: web.Request) -> web.Response:
        body = await _json(request)
        try:
            run = self.runs[int(body.get("run", -1))]
        except (ValueError, TypeError, IndexError):
            raise _bad("no such run") from None
        pid = body.get("id")
        if not isinstance(pid, str) or pid not in run.by_id:
            raise _bad("no such pair in that run")
        flags = body.get("flags") or []
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            raise _bad("flags must be a list of flag names")
        try:
            label = Label(id=pid, labeller=store.check_name(body.get("labeller")),
                          at=store.now(), score=body.get("score"), flags=list(flags),
                          note=body.get("note") or "")
        except ValueError as exc:
            raise _bad(str(exc)) from None
        async with self._write:
            await asyncio.to_thread(store.append, run.path, label)
            run.labels.setdefault(pid, {})[label.labeller] = label
        return web.json_response({"saved": label.to_json()})

    # -- blind comparison ----------------------------------------------------

    async def blind_next(self, request: web.Request) -> web.Response:
        who = request.query.get("labeller", self.labeller)
        done = {item for item, labeller in blind.latest(self.preferences) if labeller == who}
        todo = [i for i in self.deck if i.key not in done]
        return web.json_response({"total": len(self.deck), "done": len(self.deck) - len(todo),
                                  "item": todo[0].public() if todo else None})

    async def blind_choose(self, request: web.Request) -> web.Response:
        body = await _json(request)
        item = self.deck_by_key.get(str(body.get("key")))
        if item is None:
            raise _bad("no such comparison")
        choice = body.get("choice")
        if choice not in (0, 1, "tie"):
            raise _bad('choice is 0 (left), 1 (right) or "tie"')
        try:
            who = store.check_name(body.get("labeller"))
        except ValueError as exc:
            raise _bad(str(exc)) from None
        winner = None if choice == "tie" else item.sides[int(choice)][0]
        pref = Preference(item=item.key, lang=item.lang, labeller=who, at=store.now(),
                          shown=[{"run": run, "id": p.id} for run, p in item.sides],
                          winner=winner)
        async with self._write:
            await asyncio.to_thread(store.append, self.runs[0].path, pref)
            self.preferences.append(pref)
        return web.json_response({"saved": True})

    async def blind_results(self, request: web.Request) -> web.Response:
        return web.json_response({"kinds": {r.name: r.kind for r in self.runs},
                                  "rates": [r.to_json() for r in
                                            blind.win_rates(self.preferences)]})


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}),
                              content_type="application/json")


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _bad("the body is not JSON") from None
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    return body


async def serve(review: Review, host: str = "127.0.0.1", port: int = 8765
                ) -> tuple[web.AppRunner, str]:
    """Start the server; returns its runner (``await runner.cleanup()`` stops it) and URL."""
    runner = web.AppRunner(review.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another "
                          "--port (0 = any free port)") from None
    bound = runner.addresses[0]
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return runner, f"http://{shown}:{bound[1]}/"
