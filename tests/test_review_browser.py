"""The review page in a real browser: headless Chromium driven over the DevTools protocol.

Filtering, keyboard labelling, a label surviving a reload and a server
restart, the blind view hiding its sources, and a pair whose text is a
script showing as text. Each test leaves a screenshot of its view in
``$MLIFT_SCREENSHOTS`` (default: the test's temporary folder).

Chromium comes from Debian's packages (``scripts/setup_browser.sh`` installs
it); without it these tests are skipped, saying so.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from review_cdp import Browser, find_chromium
from test_review_app import INJECTION, write_review_baseline, write_review_run

from mlift.review.app import Review, serve

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH: run scripts/setup_browser.sh "
                             "(Debian: apt-get install chromium) to run the browser tests")


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("MLIFT_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    b = await Browser(CHROMIUM).start()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
async def server() -> AsyncIterator[Any]:
    runners: list[Any] = []

    async def start(*folders: Path) -> str:
        runner, url = await serve(Review(list(folders), labeller="ana", seed=3), port=0)
        runners.append(runner)
        return url

    async def stop_all() -> None:
        while runners:
            await runners.pop().cleanup()

    start.stop_all = stop_all  # type: ignore[attr-defined]
    yield start
    await stop_all()


async def listed(b: Browser) -> list[str]:
    return list(await b.eval("[...document.querySelectorAll('#list .item')]"
                             ".map(li => li.dataset.id)"))


async def shown(b: Browser, pid: str) -> None:
    """Wait until the detail pane shows pair ``pid``."""
    await b.wait_for(f"document.getElementById('detail').dataset.id === {json.dumps(pid)}")


async def set_select(b: Browser, select_id: str, value: str) -> None:
    """Choose an option as a person would: the value changes and a change event fires."""
    await b.eval(f"(() => {{ const s = document.getElementById({json.dumps(select_id)}); "
                 f"s.value = {json.dumps(value)}; "
                 "s.dispatchEvent(new Event('change', {bubbles: true})); })()")


async def test_filters_and_search_narrow_the_list(tmp_path: Path, browser: Browser,
                                                  server: Any, shots: Path) -> None:
    url = await server(write_review_run(tmp_path / "run"))
    await browser.goto(url)
    assert await listed(browser) == ["es-1", "es-2", "es-3", "ja-1", "es-4", "ja-2", "ja-3"]
    await set_select(browser, "f-lang", "ja")
    await browser.wait_for("document.getElementById('count').textContent === '3 pairs'")
    assert await listed(browser) == ["ja-1", "ja-2", "ja-3"]
    await set_select(browser, "f-status", "rejected")
    await browser.wait_for("document.getElementById('count').textContent === '2 pairs'")
    assert await listed(browser) == ["ja-2", "ja-3"]
    # The first match is shown, and the URL keeps the filters for a reload.
    assert "rejected at back: wrong_language" in (await browser.eval(
        "document.getElementById('detail').innerText")).lower()  # headings are upper case
    await browser.screenshot(shots / "browse-filtered.png")
    await browser.reload()
    assert await listed(browser) == ["ja-2", "ja-3"]
    # Search from the keyboard: "/" focuses the box, the list follows the typing.
    await set_select(browser, "f-lang", "")
    await set_select(browser, "f-status", "")
    await browser.wait_for("document.getElementById('count').textContent === '7 pairs'")
    await browser.press("/")
    assert await browser.eval("document.activeElement.id") == "f-q"
    await browser.type("luna")
    await browser.wait_for("document.getElementById('count').textContent === '1 pair'")
    assert await listed(browser) == ["es-2"]
    await browser.screenshot(shots / "browse-search.png")


async def test_a_list_that_answers_late_never_replaces_a_newer_filters_list(
        tmp_path: Path, browser: Browser, server: Any) -> None:
    url = await server(write_review_run(tmp_path / "run"))
    await browser.goto(url)
    pairs = ("performance.getEntriesByType('resource')"
             ".filter(e => e.name.includes('/api/pairs?')).length")
    before = await browser.eval(pairs)
    # Hold the lists' requests, so the first filter's answer comes after the second's.
    await browser.send("Fetch.enable", {"patterns": [{"urlPattern": "*/api/pairs?*"}]})
    await set_select(browser, "f-lang", "ja")
    first = await browser.next_event("Fetch.requestPaused")
    await set_select(browser, "f-status", "rejected")
    second = await browser.next_event("Fetch.requestPaused")
    assert "status=rejected" in second["request"]["url"]
    await browser.send("Fetch.continueRequest", {"requestId": second["requestId"]})
    await browser.wait_for("document.getElementById('count').textContent === '2 pairs'")
    await browser.send("Fetch.continueRequest", {"requestId": first["requestId"]})
    await browser.wait_for(f"{pairs} === {before + 2}")  # the late answer is in
    await browser.eval("new Promise(resolve => setTimeout(resolve, 100))")
    assert await browser.eval("document.getElementById('count').textContent") == "2 pairs"
    assert await listed(browser) == ["ja-2", "ja-3"]


async def test_keyboard_label_survives_a_reload_and_a_server_restart(
        tmp_path: Path, browser: Browser, server: Any, shots: Path) -> None:
    folder = write_review_run(tmp_path / "run")
    url = await server(folder)
    await browser.goto(url)
    await browser.press("j")  # to the second pair
    await shown(browser, "es-2")
    for key in ("2", "u", "g", "n"):
        await browser.press(key)
    assert await browser.eval("document.activeElement.id") == "note"
    await browser.type("wörtlich übersetzt <b>")
    await browser.press("Escape")
    await browser.press("Enter")  # save, then on to the next pair
    await shown(browser, "es-3")
    label = json.loads((folder / "labels.jsonl").read_text())
    assert (label["id"], label["labeller"], label["score"]) == ("es-2", "ana", 2)
    assert label["flags"] == ["unnatural", "gives_away"]
    assert label["note"] == "wörtlich übersetzt <b>"

    async def shows_label() -> None:
        await browser.wait_for("document.querySelector('#list .item[data-id=\"es-2\"] .mine')"
                               "?.textContent === 'mine 2'")
        await browser.press("k")
        await shown(browser, "es-2")
        await browser.wait_for("document.querySelector('.scores button.on')?.dataset.score "
                               "=== '2'")
        checked = await browser.eval("[...document.querySelectorAll('.flags input:checked')]"
                                     ".map(i => i.dataset.flag)")
        assert sorted(checked) == ["gives_away", "unnatural"]
        assert await browser.eval("document.getElementById('note').value") == \
            "wörtlich übersetzt <b>"

    await browser.reload()
    await shows_label()
    await browser.screenshot(shots / "browse-labelled.png")
    await server.stop_all()
    url = await server(folder)  # a new server process state, a new port and token
    await browser.goto(url + "#browse?id=es-3")
    await shows_label()


async def test_blind_view_hides_which_run_is_which(tmp_path: Path, browser: Browser,
                                                    server: Any, shots: Path) -> None:
    ours, theirs = write_review_run(tmp_path / "ours"), write_review_baseline(tmp_path / "tr")
    url = await server(ours, theirs)
    await browser.goto(url + "#compare")
    await browser.wait_for("document.querySelectorAll('#blind-sides .side').length === 2")
    page = await browser.eval("document.documentElement.outerHTML")
    shown = await browser.eval("document.body.innerText")
    for leak in ("ours", "tr (", "translate", "mlift (", "es-1", "es-2", "t-1", "t-2",
                 "english_ift", "corpus-es", "reason of", "sim:default", "(en)"):
        assert leak not in page, leak
    assert "Left" in shown and "Right" in shown
    await browser.screenshot(shots / "compare.png")
    await browser.press("1")  # the left one is better
    await browser.wait_for("document.getElementById('blind-progress').textContent"
                           ".startsWith('1 of 2')")
    pref = json.loads((ours / "preferences.jsonl").read_text())
    assert pref["winner"] == pref["shown"][0]["run"] and pref["labeller"] == "ana"
    await browser.press("t")
    await browser.wait_for("document.getElementById('blind-progress').textContent"
                           ".startsWith('2 of 2')")
    await browser.eval("document.getElementById('blind-results-button').click()")
    await browser.wait_for("!document.getElementById('blind-results').hidden")
    results = await browser.eval("document.getElementById('blind-results').innerText")
    assert "ours (mlift)" in results and "tr (translate)" in results
    await browser.screenshot(shots / "compare-results.png")


async def test_a_pair_whose_text_is_a_script_shows_as_text(tmp_path: Path, browser: Browser,
                                                           server: Any, shots: Path) -> None:
    url = await server(write_review_run(tmp_path / "run"))
    await browser.goto(url + "#browse?id=es-3")
    await shown(browser, "es-3")
    await browser.wait_for("document.getElementById('detail').innerText.includes('<script>')")
    detail = await browser.eval("document.getElementById('detail').innerText")
    assert INJECTION in detail and "<b>etiquetas</b>" in detail
    assert await browser.eval("typeof window.__pwned") == "undefined"
    assert await browser.eval("document.querySelectorAll('#detail script, #detail img, "
                              "#list script, #list img').length") == 0
    assert await browser.eval("[...document.querySelectorAll('b')]"
                              ".some(b => b.textContent === 'etiquetas')") is False
    await browser.screenshot(shots / "browse-injection.png")
