"""Descriptions rendered as Warehouse renders them (lockgate/browse/describe.py), and
sanitized (docs/reliability.md WEB-3)."""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser

import pytest

from lockgate.browse.describe import DescriptionCache, render_description


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/markdown", "<em>there</em>"),
        ("text/markdown; charset=UTF-8; variant=GFM", "<em>there</em>"),
        ("text/markdown; variant=CommonMark", "<em>there</em>"),
        ("text/x-rst", "<em>there</em>"),
        (None, "<em>there</em>"),  # no content type: reStructuredText, as on PyPI
        ("", "<em>there</em>"),
        ("text/plain", "<pre>hi *there*</pre>"),
        ("text/unknown", "hi *there*"),  # an unknown type: plain text
    ],
)
def test_content_types_pick_the_renderer(content_type: str | None, expected: str) -> None:
    assert expected in render_description("hi *there*", content_type)


def test_invalid_rst_falls_back_to_escaped_text() -> None:
    rendered = render_description(".. raw:: html\n\n   <script>x()</script>\n", "text/x-rst")
    assert rendered.startswith("<pre>") and "&lt;script&gt;" in rendered
    assert "<script" not in rendered


@pytest.mark.parametrize("content_type", ["text/markdown", "text/x-rst", None, "text/plain"])
def test_nothing_runs(content_type: str | None) -> None:
    evil = (
        "<script>alert(1)</script>\n\n[x](javascript:alert(1))\n\n"
        '<img src="x" onerror="alert(1)"> <a href="javascript:alert(2)" onclick="f()">y</a>\n'
    )
    rendered = render_description(evil, content_type)
    # As a browser parses it: no script element, no event attribute, no javascript: URL
    # (the same words as escaped text are harmless).
    found: list[tuple[str, str, str]] = []

    class Elements(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            for name, value in attrs:
                found.append((tag, name, (value or "").strip().lower()))
            found.append((tag, "", ""))

    Elements().feed(rendered)
    assert not [f for f in found if f[0] in ("script", "iframe")], rendered
    assert not [f for f in found if f[1].startswith("on")], rendered
    assert not [f for f in found if f[2].startswith("javascript")], rendered


def test_cache_renders_once_and_skips_empty() -> None:
    cache = DescriptionCache(limit=2)

    async def run() -> None:
        first = await cache.render("# Title", "text/markdown")
        assert first is not None and "Title" in first
        assert await cache.render("# Title", "text/markdown") is first
        assert await cache.render("   ", "text/markdown") is None
        assert await cache.render(None, None) is None
        big = "word " * 2000  # rendered in a thread
        assert "word" in str(await cache.render(big, "text/plain"))

    asyncio.run(run())
