"""Render a report page in headless Chromium (Debian's package) through playwright.

No browser is downloaded: playwright drives the system ``chromium`` executable. Tests skip
when either is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]


def chromium_path() -> str:
    for name in (os.environ.get("WATTLAS_CHROMIUM"), "chromium", "chromium-browser"):
        if name and (path := shutil.which(name)):
            return path
    pytest.skip("no chromium executable (Debian: apt-get install chromium)")


def render(page_path: Path, screenshot: Path, *, timeout_s: float = 60) -> dict:
    """Open ``page_path``, wait until every plotly figure has drawn, screenshot it.

    Returns ``{"errors": [...], "figures": n_expected, "drawn": n_drawn, "console_errors": [...]}``.
    """
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    exe = chromium_path()
    errors: list[str] = []
    console: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            # Any request leaving the file is a failure: the report must be self-contained.
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                       else (errors.append(f"network request to {route.request.url}"), route.abort()))
            page.goto(page_path.resolve().as_uri(), wait_until="load", timeout=timeout_s * 1000)
            expected = int(page.get_attribute("body", "data-figures") or 0)
            page.wait_for_function(
                "n => document.querySelectorAll('.plotly-graph-div .main-svg').length > 0 && "
                "Array.from(document.querySelectorAll('.plotly-graph-div'))"
                ".filter(d => d.querySelector('.main-svg') && d._fullLayout).length >= n",
                arg=expected, timeout=timeout_s * 1000,
            )
            drawn = page.evaluate(
                "Array.from(document.querySelectorAll('.plotly-graph-div'))"
                ".filter(d => d._fullData && d._fullData.length > 0 && d.querySelector('.main-svg')).length"
            )
            page.screenshot(path=str(screenshot), full_page=False)
        finally:
            browser.close()
    return {"errors": errors, "console_errors": console, "figures": expected, "drawn": drawn}
