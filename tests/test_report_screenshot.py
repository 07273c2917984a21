"""The HTML report renders with its plots in a real browser (headless Chromium, if installed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from test_report import write_baseline, write_run

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "screenshot_report.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshot_report", _SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chromium_shows_the_embedded_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the HTML report needs matplotlib ([report] extra)")
    script = _script()
    if script.find_chromium() is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); CI lacks it")
    run, base = write_run(tmp_path / "run"), write_baseline(tmp_path / "translate")
    png = tmp_path / "shot.png"
    assert script.main([str(run), str(base), "--png", str(png)]) == 0
    assert png.stat().st_size > 10_000
    assert script.plot_pixels(png) > 1_000
