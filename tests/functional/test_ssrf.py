"""SSRF through mirror URLs (docs/reliability.md SS-1, SS-2): private, loopback and
link-local upstreams are refused unless the operator allows them in the server
configuration, and the check follows every redirect hop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.fake_upstream import FakeUpstream
from tests.support.server import LockgateServer
from tests.support.threads import start_loop_thread

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}

REFUSED_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://127.0.0.1:5432/",
    "http://localhost/",
    "http://0x7f.1/",
    "http://2130706433/",
    "http://[::ffff:127.0.0.1]/",
    "http://10.0.0.7/simple/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "ftp://127.0.0.1/",
]


def test_private_upstreams_are_refused_by_default(server: LockgateServer) -> None:
    serial = server.serial()
    for url in REFUSED_URLS:
        response = server.request(
            "PUT",
            "/root/inside",
            auth=server.root_auth(),
            json={"type": "mirror", "mirror_url": url},
        )
        assert response.status_code == 400, (url, response.status_code, response.text)
        assert "upstream_allow" in response.text or "http(s)" in response.text, url
        moved = server.request(
            "PATCH", "/root/pypi", auth=server.root_auth(), json={"mirror_url": url}
        )
        assert moved.status_code == 400, (url, moved.text)
    assert server.serial() == serial


class Redirector:
    """Answers every request with a 302 to `target` + the request path."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.runner: web.AppRunner | None = None

    async def _startup(self, sock: socket.socket) -> None:
        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound(self.target + request.path_qs)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", redirect)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self.runner.setup()
        await web.SockSite(self.runner, sock).start()

    def __enter__(self) -> Redirector:
        self.loop, self.thread = start_loop_thread(
            f"redirector-{self.port}", self._startup, self.sock, 10
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(tmp_path / "upstream")
    fake.add_wheel("alpha", "1.0")
    fake.start()
    yield fake
    fake.close()


def test_redirects_to_private_addresses_are_refused_on_every_hop(
    make_server: Callable[..., LockgateServer], upstream: FakeUpstream
) -> None:
    # The operator allows the name "localhost" only, not the address 127.0.0.1.
    server = make_server("redirects", upstream_allow="localhost")
    to_address = f"http://127.0.0.1:{upstream.port}"
    to_name = f"http://localhost:{upstream.port}"
    with Redirector(to_address) as bad, Redirector(to_name) as good:
        for redirector, expected in ((bad, 404), (good, 200)):
            mirror_url = f"http://localhost:{redirector.port}/simple/"
            response = server.request(
                "PATCH", "/root/pypi", auth=server.root_auth(), json={"mirror_url": mirror_url}
            )
            assert response.status_code == 200, response.text
            page = server.get("/root/pypi/+simple/alpha/", headers=JSON)
            assert page.status_code == expected, page.text
            if expected == 404:
                assert "upstream_allow" in page.text
    assert upstream.requests_for("alpha"), "the allowed route reached the upstream"
