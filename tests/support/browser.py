"""Headless Chromium for the web pages' tests: Debian's `chromium`, driven by Playwright.

Playwright is only the driver; the browser is the machine's own (`/usr/bin/chromium`, or
`LOCKGATE_CHROMIUM`), which `.ci/run` installs. Every page a test opens may only fetch
from the lockgate server under test: a request anywhere else fails the test (the pages
must need no CDN, font or script from outside, as in a closed network).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Playwright, Route, sync_playwright


def chromium_path() -> str | None:
    configured = os.environ.get("LOCKGATE_CHROMIUM")
    if configured:
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        raise RuntimeError("no chromium on this machine (apt-get install chromium)")
    playwright: Playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


class OutsideRequests:
    """Requests a page made to anything but the allowed origin (each one is aborted)."""

    def __init__(self, allowed_origin: str) -> None:
        self.allowed = urlsplit(allowed_origin).netloc
        self.seen: list[str] = []

    def route(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about") or parts.netloc == self.allowed:
            route.continue_()
            return
        self.seen.append(url)
        route.abort()


@contextmanager
def page_context(
    browser: Browser, base_url: str, *, color_scheme: str = "light"
) -> Iterator[tuple[BrowserContext, OutsideRequests]]:
    """A fresh browser profile (no cookies) pointed at `base_url`."""
    context = browser.new_context(
        base_url=base_url,
        color_scheme=color_scheme,
        accept_downloads=True,  # type: ignore[arg-type]
    )
    outside = OutsideRequests(base_url)
    context.route("**/*", outside.route)
    try:
        yield context, outside
    finally:
        context.close()
    assert not outside.seen, f"pages fetched from outside the server: {outside.seen}"
