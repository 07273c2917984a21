"""A small Chrome DevTools Protocol client for the review page's browser tests.

Starts Debian's headless Chromium with a throw-away profile and no network
features, connects to its DevTools websocket with aiohttp (no driver
package), and offers what the tests need: navigate, evaluate, press keys,
type, screenshot, wait for an event (e.g. a request held with the Fetch
domain). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--remote-debugging-port=0", "--window-size=1280,860")

# key -> (code, Windows virtual key code, text typed)
KEYS = {"Enter": ("Enter", 13, "\r"), "Escape": ("Escape", 27, ""),
        "ArrowDown": ("ArrowDown", 40, ""), "ArrowUp": ("ArrowUp", 38, ""),
        "ArrowLeft": ("ArrowLeft", 37, ""), "ArrowRight": ("ArrowRight", 39, ""),
        "/": ("Slash", 191, "/"), "?": ("Slash", 191, "?")}


def find_chromium() -> str | None:
    return next((p for name in ("chromium", "chromium-browser", "google-chrome")
                 if (p := shutil.which(name))), None)


class CDPError(RuntimeError):
    pass


class Browser:
    """One headless Chromium and one page in it."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._profile = tempfile.TemporaryDirectory(prefix="mlift-chromium-")
        self._proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._reader: asyncio.Task[None] | None = None
        self.session = ""
        self.console: list[str] = []

    async def start(self, limit_s: float = 30.0) -> Browser:
        profile = Path(self._profile.name)
        self._proc = await asyncio.create_subprocess_exec(
            self.executable, *FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self._proc.returncode is not None or loop.time() > deadline:
                raise CDPError("chromium did not open its DevTools port")
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().split("\n")[:2]
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        target = await self.send("Target.createTarget", {"url": "about:blank"}, session=None)
        attached = await self.send("Target.attachToTarget",
                                   {"targetId": target["targetId"], "flatten": True},
                                   session=None)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime"):
            await self.send(f"{domain}.enable")
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._pending:
                fut = self._pending.pop(data["id"])
                if not fut.done():
                    if "error" in data:
                        fut.set_exception(CDPError(str(data["error"])))
                    else:
                        fut.set_result(data.get("result", {}))
            elif "method" in data:
                self._events.append((data["method"], data.get("params", {})))
                if data["method"] == "Runtime.consoleAPICalled":
                    self.console.append(" ".join(str(a.get("value", a.get("description")))
                                                 for a in data["params"].get("args", [])))

    async def send(self, method: str, params: dict[str, Any] | None = None, *,
                   session: str | bool | None = True, limit_s: float = 20.0) -> Any:
        assert self._ws is not None
        message: dict[str, Any] = {"id": next(self._ids), "method": method,
                                   "params": params or {}}
        if session is True:
            message["sessionId"] = self.session
        elif isinstance(session, str):
            message["sessionId"] = session
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message["id"]] = fut
        await self._ws.send_str(json.dumps(message))
        return await asyncio.wait_for(fut, limit_s)

    # -- the page --------------------------------------------------------------

    async def goto(self, url: str, ready: str = "document.body.dataset.ready === '1'") -> None:
        self._events.clear()
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("document.readyState === 'complete'")
        if ready:
            await self.wait_for(ready)

    async def reload(self) -> None:
        await self.send("Page.reload", {"ignoreCache": True})
        await asyncio.sleep(0.1)
        await self.wait_for("document.readyState === 'complete' && "
                            "document.body.dataset.ready === '1'")

    async def eval(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise CDPError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, limit_s: float = 10.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while True:
            with contextlib.suppress(CDPError):
                value = await self.eval(expression)
                if value:
                    return value
            if loop.time() > deadline:
                raise CDPError(f"timed out waiting for {expression}")
            await asyncio.sleep(0.05)

    async def next_event(self, method: str, limit_s: float = 10.0) -> dict[str, Any]:
        """The oldest ``method`` event not taken yet (waiting for one, bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while True:
            for i, (name, params) in enumerate(self._events):
                if name == method:
                    del self._events[i]
                    return params
            if loop.time() > deadline:
                raise CDPError(f"no {method} event came")
            await asyncio.sleep(0.02)

    async def press(self, key: str) -> None:
        """A key press as a person makes it: keyDown (with its text) and keyUp."""
        if key in KEYS:
            code, vk, text = KEYS[key]
        elif len(key) == 1 and key.isalnum():
            code = f"Digit{key}" if key.isdigit() else f"Key{key.upper()}"
            vk, text = ord(key.upper()), key
        else:
            raise ValueError(f"no key mapping for {key!r}")
        down: dict[str, Any] = {"type": "keyDown" if text else "rawKeyDown", "key": key,
                                "code": code, "windowsVirtualKeyCode": vk}
        if text:
            down["text"] = text
        await self.send("Input.dispatchKeyEvent", down)
        await self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": key, "code": code,
                                                   "windowsVirtualKeyCode": vk})

    async def type(self, text: str) -> None:
        await self.send("Input.insertText", {"text": text})

    async def screenshot(self, path: Path) -> Path:
        data = await self.send("Page.captureScreenshot", {"format": "png"})
        await asyncio.to_thread(path.write_bytes, base64.b64decode(data["data"]))
        return path

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._ws is not None:
                await self.send("Browser.close", session=None, limit_s=5)
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._http is not None:
            await self._http.close()
        if self._proc is not None:
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        self._profile.cleanup()
