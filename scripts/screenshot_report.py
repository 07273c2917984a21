"""Render ``mlift report --html`` for run folders in headless Chromium and check the plots show.

    python scripts/screenshot_report.py DIR [DIR ...] [--png OUT.png] [--html OUT.html]

Writes the page and a 1200x2400 screenshot of it, then counts the pixels of
matplotlib's first colour (#1f77b4, which only the plots use): a page whose
embedded PNGs failed to decode has none. Exit 0 when plots are visible, 1 when
not, 2 when no Chromium is installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PLOT_BLUE = (31, 119, 180)  # matplotlib's default first colour, "tab:blue"


def find_chromium() -> str | None:
    """The Chromium executable on PATH, if any."""
    return next((p for name in ("chromium", "chromium-browser", "google-chrome")
                 if (p := shutil.which(name))), None)


def screenshot(html: Path, png: Path, *, chromium: str, size: str = "1200,2400") -> None:
    """Screenshot a local page with headless Chromium (no network, a throw-away profile)."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={png}",
             f"--window-size={size}", html.resolve().as_uri()],
            check=True, capture_output=True, timeout=120)


def plot_pixels(png: Path) -> int:
    """How many pixels of the screenshot are (within a few levels of) the plots' blue."""
    import numpy as np
    from matplotlib import image

    rgb = (np.asarray(image.imread(png))[..., :3] * 255).round()
    return int((np.abs(rgb - np.array(PLOT_BLUE)).max(axis=-1) <= 6).sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    parser.add_argument("--png", type=Path, default=Path("report.png"))
    parser.add_argument("--html", type=Path, default=None)
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("screenshot_report: no chromium on PATH (apt-get install chromium)",
              file=sys.stderr)
        return 2
    from mlift.report import dataset_stats, load_folder, render_html

    page = render_html([dataset_stats(load_folder(d)) for d in args.dirs])
    html = args.html or args.png.with_suffix(".html")
    html.write_text(page, encoding="utf-8")
    screenshot(html, args.png, chromium=chromium)
    blue = plot_pixels(args.png)
    print(f"screenshot_report: {args.png} ({blue} plot pixels); page {html}")
    return 0 if blue else 1


if __name__ == "__main__":
    sys.exit(main())
