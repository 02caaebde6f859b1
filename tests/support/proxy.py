"""A tiny forward HTTP proxy on loopback, for testing that lockgate honours HTTP_PROXY.

`ForwardProxy` runs an aiohttp server in a background thread (like `FakeUpstream`)
on ``127.0.0.1``. It accepts absolute-form requests (``GET http://host:port/path``,
as a client configured with a proxy sends them), forwards each with its own
aiohttp session -- which ignores the environment, so it never proxies to itself
-- and streams the answer back unchanged (no redirect following, no
decompression). Every forwarded URL is recorded in `forwarded`. Origin-form
requests (a client talking to the proxy as if it were the server) and CONNECT
tunnels are refused with 400 and 405 and recorded in `refused`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

import aiohttp
from aiohttp import web
from yarl import URL

from tests.support.threads import start_loop_thread

__all__ = ["ForwardProxy"]

# Hop-by-hop headers (RFC 9110 7.6.1) are never forwarded; Host is rebuilt by aiohttp.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
}
_CHUNK = 256 * 1024


class ForwardProxy:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forwarded: list[str] = []
        self._refused: list[str] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.ServerRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The proxy URL, as HTTP_PROXY wants it."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def forwarded(self) -> list[str]:
        """The absolute URLs forwarded so far, in arrival order."""
        with self._lock:
            return list(self._forwarded)

    @property
    def refused(self) -> list[str]:
        with self._lock:
            return list(self._refused)

    # --- lifecycle -------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> ForwardProxy:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        loop, thread = start_loop_thread(f"proxy-{self.port}", self._startup, sock, timeout)
        self._loop, self._thread = loop, thread
        return self

    def close(self, timeout: float = 5.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(timeout / 2), loop)
            with contextlib.suppress(Exception):
                future.result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._loop = self._thread = None

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _startup(self, sock: socket.socket) -> None:
        # trust_env=False (the default, spelled out): never proxy through ourselves.
        self._session = aiohttp.ClientSession(trust_env=False, auto_decompress=False)
        # A low-level server: no router, so absolute-form targets reach the handler as-is.
        runner = web.ServerRunner(web.Server(self._handle), handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def _shutdown(self, budget: float) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(budget):
                if self._runner is not None:
                    await self._runner.cleanup()
                if self._session is not None:
                    await self._session.close()

    # --- HTTP ------------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        # The raw request-target: a whole URL in absolute form, a path in origin form.
        target = URL(request.raw_path, encoded=True)
        if request.method == "CONNECT" or not target.absolute:
            with self._lock:
                self._refused.append(f"{request.method} {request.raw_path}")
            status = 405 if request.method == "CONNECT" else 400
            return web.Response(status=status, text="test proxy: absolute-form HTTP only\n")
        with self._lock:
            self._forwarded.append(str(target))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Via"] = "1.1 lockgate-test-proxy"
        assert self._session is not None
        body = await request.read() if request.body_exists else None
        try:
            upstream = await self._session.request(
                request.method,
                target,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=60),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.Response(status=502, text=f"test proxy: {type(exc).__name__}: {exc}\n")
        async with upstream:
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            response.headers.update(out)
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in upstream.content.iter_chunked(_CHUNK):
                    await response.write(chunk)
            await response.write_eof()
            return response
