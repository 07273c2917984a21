#!/usr/bin/env bash
# Install headless Chromium (Debian's packages) and fonts for the review page's browser tests.
#
#   bash scripts/setup_browser.sh      (CI runs it through `make browser` before `make test`)
#
# Never fails the build: where Chromium cannot be installed (no apt-get, not root,
# no network), it says why and exits 0, and tests/test_review_browser.py skips
# with the same advice. Fonts: Devanagari and Telugu (small), so screenshots of
# Hindi and Telugu pairs show letters, not boxes; for Japanese add fonts-noto-cjk
# by hand (large, and no test reads glyphs).
set -u
if command -v chromium >/dev/null 2>&1; then
  echo "setup_browser: $(chromium --version 2>/dev/null | head -n1) already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_browser: no apt-get here; install Chromium yourself to run the browser tests"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "setup_browser: not root and no password-less sudo; the browser tests will be skipped"
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq >/dev/null 2>&1 &&
   $SUDO apt-get install -y -qq chromium fonts-lohit-deva fonts-lohit-telu >/dev/null 2>&1; then
  echo "setup_browser: installed $(chromium --version 2>/dev/null | head -n1)"
else
  echo "setup_browser: apt-get could not install chromium; the browser tests will be skipped"
fi
exit 0
