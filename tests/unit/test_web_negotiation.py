"""Browser, installer or script: what each real client's Accept header gets (lockgate/web)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from lockgate.web.negotiation import wants_page

# Accept headers as the clients send them.
CHROMIUM = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
PIP = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
OLD_PIP = "text/html"  # pip < 22.2 sends plain text/html: devpi treats it as an installer too


@pytest.mark.parametrize(
    ("accept", "page"),
    [
        (CHROMIUM, True),
        (FIREFOX, True),
        (PIP, False),
        (UV, False),
        ("application/json", False),  # devpi-client
        ("*/*", False),  # curl, requests
        (None, False),
        ("text/html;q=0.5, application/json", False),
        ("application/json;q=0.5, text/html", True),
    ],
)
def test_who_gets_a_page(accept: str | None, page: bool) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    assert wants_page(make_mocked_request("GET", "/", headers=headers)) is page


def test_plain_text_html_is_a_page() -> None:
    # Without PEP 691 types, `text/html` alone reads as a browser; the project route
    # (installer redirects) decides separately which old installers it still redirects.
    assert wants_page(make_mocked_request("GET", "/", headers={"Accept": OLD_PIP}))
