"""The web pages' shared ground (lockgate/web): a browser gets HTML on `/` while scripts
keep devpi's JSON, the stylesheet is served from the server itself with a long cache,
pages carry a script-free Content-Security-Policy, and headless Chromium renders the
front page in light and dark without fetching anything from outside."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser

from tests.support.browser import page_context
from tests.support.server import LockgateServer
from tests.unit.test_web_negotiation import CHROMIUM as BROWSER_ACCEPT

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-pw")


def test_front_page_for_browsers_json_for_scripts(server: LockgateServer) -> None:
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    page = server.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert 'href="/alice/dev"' in page.text
    assert "<script" not in page.text
    # devpi-client and scripts: the JSON listing, unchanged.
    for accept in ("application/json", "*/*", None):
        headers = {"Accept": accept} if accept else {}
        listing = server.get("/", headers=headers)
        assert listing.status_code == 200
        assert listing.json()["type"] == "list:userconfig"
        assert "dev" in listing.json()["result"]["alice"]["indexes"]


def test_stylesheet_is_served_with_a_content_hash(server: LockgateServer) -> None:
    page = server.get("/", headers={"Accept": BROWSER_ACCEPT}).text
    match = re.search(r'href="(/\+static/style\.css\?v=([0-9a-f]+))"', page)
    assert match, page
    css = server.get(match.group(1))
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert "immutable" in css.headers["Cache-Control"]
    again = server.get(match.group(1), headers={"If-None-Match": css.headers["ETag"]})
    assert again.status_code == 304
    for bad in ("/+static/nope.css", "/+static/..%2Fstatic.py", "/+static/.hidden"):
        assert server.get(bad).status_code == 404, bad


def test_chromium_renders_the_front_page_light_and_dark(
    server: LockgateServer, browser: Browser
) -> None:
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    backgrounds = {}
    for scheme in ("light", "dark"):
        with page_context(browser, server.url, color_scheme=scheme) as (context, _outside):
            page = context.new_page()
            response = page.goto("/")
            assert response is not None and response.status == 200
            assert page.get_by_role("heading", level=1).inner_text() == "Package indexes"
            assert page.get_by_role("link", name="alice/dev").get_attribute("href") == "/alice/dev"
            assert page.get_by_role("search").count() == 1
            backgrounds[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert backgrounds["light"] == "rgb(255, 255, 255)"
    assert backgrounds["dark"] != backgrounds["light"]
