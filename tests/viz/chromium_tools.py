"""Load a page in headless Chromium: the DOM after its scripts ran, every console message
(Chromium logs them to stderr with ``--enable-logging=stderr``: uncaught exceptions,
Content-Security-Policy violations, console.error), and optionally a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# [pid:tid:time:INFO:CONSOLE:12] "message", source: file:///... (12)   (older: CONSOLE(12))
CONSOLE_LINE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)")


def chromium_or_skip() -> str:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (Debian/Ubuntu: apt-get install chromium)")


@dataclass(frozen=True)
class PageLoad:
    dom: str  # document.documentElement.outerHTML after the scripts ran
    console: list[str]  # every console message of the page
    stderr: str


def load_page(url: str, scratch: Path, screenshot: Path | None = None,
              window: tuple[int, int] = (1280, 1600), timeout: float = 60) -> PageLoad:
    """Open ``url`` in a fresh headless Chromium profile under ``scratch``."""
    chromium = chromium_or_skip()
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=scratch)
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--hide-scrollbars", f"--window-size={window[0]},{window[1]}",
           "--virtual-time-budget=5000", "--dump-dom"]
    if screenshot is not None:
        cmd.append(f"--screenshot={screenshot}")
    r = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"chromium exited {r.returncode}: {r.stderr[-2000:]}"
    console = [m[1] for line in r.stderr.splitlines() if (m := CONSOLE_LINE.search(line))]
    return PageLoad(r.stdout, console, r.stderr)
