"""Loopback stand-ins for the CI servers lockgate triggers (docs/architecture.md,
webhooks): each answers as the real one does and records every request.

- `kind="generic"`: any POST; 200 when the body's HMAC matches the secret, else 401.
- `kind="jenkins"`: Jenkins' remote build trigger: `POST /job/NAME/buildWithParameters`
  with `token=<trigger token>` in the query and HTTP Basic with a user's API token;
  201 with a `Location` of the queue item, 403 for a wrong token or credentials,
  404 for another path (what Jenkins answers).
- `kind="gitlab"`: `POST /api/v4/projects/ID/trigger/pipeline` with form fields
  `token`, `ref` and `variables[…]`; 201 with a pipeline JSON, 404 for a wrong token.

`stop()` and `start()` keep the port, so a receiver can be "down" for a while.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import socket
import threading
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.threads import start_loop_thread


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    form: dict[str, str] = field(default_factory=dict)
    status: int = 0  # what the receiver answered


class CIReceiver:
    def __init__(
        self,
        kind: str,
        *,
        secret: str = "",
        job: str = "lockgate-ci",
        trigger_token: str = "",
        user: str = "",
        api_token: str = "",
        project_id: int = 7,
    ) -> None:
        self.kind = kind
        self.secret, self.job, self.trigger_token = secret, job, trigger_token
        self.user, self.api_token, self.project_id = user, api_token, project_id
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()

    @property
    def url(self) -> str:
        if self.kind == "jenkins":
            return f"http://127.0.0.1:{self.port}/job/{self.job}/buildWithParameters"
        if self.kind == "gitlab":
            return (
                f"http://127.0.0.1:{self.port}/api/v4/projects/{self.project_id}/trigger/pipeline"
            )
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.status < 300]

    # --- lifecycle -------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> CIReceiver:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        sock.setblocking(False)
        self._loop, self._thread = start_loop_thread(
            f"receiver-{self.port}", self._startup, sock, timeout
        )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            with contextlib.suppress(Exception):
                future.result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._loop = self._thread = None

    async def _startup(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- HTTP ------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        received = Received(
            request.method, request.path, dict(request.query), dict(request.headers), body
        )
        if request.content_type == "application/x-www-form-urlencoded":
            received.form = {k: str(v) for k, v in (await request.post()).items()}
        response = self._answer(request, received)
        received.status = response.status
        with self._lock:
            self._received.append(received)
        return response

    def _answer(self, request: web.Request, received: Received) -> web.Response:
        if request.method != "POST":
            return web.Response(status=405)
        if self.kind == "generic":
            expected = (
                "sha256="
                + hmac.new(self.secret.encode(), received.body, hashlib.sha256).hexdigest()
            )
            if not hmac.compare_digest(request.headers.get("X-Lockgate-Signature", ""), expected):
                return web.Response(status=401, text="bad signature")
            return web.Response(text="ok")
        if self.kind == "jenkins":
            if request.path != f"/job/{self.job}/buildWithParameters":
                return web.Response(status=404, text="Not Found")
            credentials = base64.b64encode(f"{self.user}:{self.api_token}".encode()).decode()
            if (
                request.query.get("token") != self.trigger_token
                or request.headers.get("Authorization") != f"Basic {credentials}"
            ):
                return web.Response(status=403, text="Authentication required")
            return web.Response(
                status=201, headers={"Location": f"http://127.0.0.1:{self.port}/queue/item/1/"}
            )
        if request.path != f"/api/v4/projects/{self.project_id}/trigger/pipeline":
            return web.Response(status=404, text='{"message":"404 Not Found"}')
        if received.form.get("token") != self.trigger_token or not received.form.get("ref"):
            return web.Response(status=404, text='{"message":"404 Not Found"}')
        return web.json_response(
            {"id": 1, "ref": received.form["ref"], "status": "created"}, status=201
        )
