"""Release descriptions rendered as PyPI renders them (Warehouse's `utils/readme.py`):
readme_renderer picks Markdown, reStructuredText or plain text by the release's
Description-Content-Type, and its output is sanitized (nh3): nothing a package author
writes ever runs as script on a page (docs/reliability.md WEB-3).

Rendering a big README takes a while, so it runs in a thread, and the result is kept
per description (its sha256 and content type) for as long as it is used.
"""

from __future__ import annotations

import asyncio
import email.message
import hashlib
import importlib
from collections import OrderedDict
from types import ModuleType

from markupsafe import Markup

# Warehouse's table: no content type (or an empty one) means reStructuredText, an
# unknown one plain text. The renderers (readme_renderer with docutils, Pygments and
# the Markdown parsers: ~6 MiB of memory in every worker, and a noticeable share of
# start-up) are imported on the first description rendered, not when the server starts.
_RENDERERS = {
    None: "readme_renderer.rst",
    "": "readme_renderer.rst",
    "text/plain": "readme_renderer.txt",
    "text/x-rst": "readme_renderer.rst",
    "text/markdown": "readme_renderer.markdown",
}
_PLAIN = "readme_renderer.txt"


def _renderer(module: str) -> ModuleType:
    return importlib.import_module(module)


# Descriptions at least this long are rendered off the event loop.
THREAD_ABOVE_CHARS = 4096
CACHE_ENTRIES = 512


def _content_type(header: str | None) -> tuple[str | None, dict[str, str]]:
    if not header:
        return header, {}
    message = email.message.EmailMessage()
    message["content-type"] = header
    params = dict(message["content-type"].params)
    # Only `variant` means anything to the renderers (Markdown's GFM or CommonMark).
    return message.get_content_type(), {k: v for k, v in params.items() if k == "variant"}


def render_description(text: str, content_type: str | None) -> str:
    """Sanitized HTML for a description, exactly as Warehouse builds it."""
    kind, params = _content_type(content_type)
    renderer = _renderer(_RENDERERS.get(kind, _PLAIN))
    try:
        rendered = renderer.render(text, **params)
    except Exception:  # noqa: BLE001 - a renderer crash falls back to plain text, as below
        rendered = None
    if kind == "text/plain" and rendered is not None:
        rendered = f"<pre>{rendered}</pre>"
    if rendered is None:
        # Could not be rendered (e.g. invalid reST): plain text, sanitized by the renderer.
        rendered = f"<pre>{_renderer(_PLAIN).render(text)}</pre>"
    return str(rendered)


class DescriptionCache:
    def __init__(self, limit: int = CACHE_ENTRIES) -> None:
        self._rendered: OrderedDict[str, Markup] = OrderedDict()
        self._limit = limit

    async def render(self, text: str | None, content_type: str | None) -> Markup | None:
        """The description as safe HTML for a template, or None when there is none."""
        if not text or not text.strip():
            return None
        key = hashlib.sha256(f"{content_type}\0{text}".encode()).hexdigest()
        found = self._rendered.get(key)
        if found is not None:
            self._rendered.move_to_end(key)
            return found
        if len(text) >= THREAD_ABOVE_CHARS:
            html = await asyncio.to_thread(render_description, text, content_type)
        else:
            html = render_description(text, content_type)
        # readme_renderer has sanitized it: the one place author text is marked safe.
        rendered = Markup(html)  # noqa: S704
        self._rendered[key] = rendered
        while len(self._rendered) > self._limit:
            self._rendered.popitem(last=False)
        return rendered


DESCRIPTIONS = DescriptionCache()
