"""The replica's one client towards its primary (a `replicate` token of root's, timeouts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from lockgate import __version__
from lockgate.config import Settings

USER_AGENT = f"lockgate/{__version__} (+replica)"


class PrimaryUnavailable(Exception):
    """The primary could not be reached or failed."""


class PrimaryClient:
    def __init__(self, settings: Settings) -> None:
        assert settings.primary_url
        self.url = settings.primary_url.rstrip("/")
        self._token = settings.primary_token
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        headers = {"User-Agent": USER_AGENT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        self._session = aiohttp.ClientSession(headers=headers, trust_env=True)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @asynccontextmanager
    async def get(
        self, path: str, *, read_timeout: float = 30.0, headers: dict[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        assert self._session is not None, "PrimaryClient.start() was not called"
        try:
            async with self._session.get(
                self.url + path,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=read_timeout),
                allow_redirects=False,
            ) as response:
                if response.status >= 500:
                    raise PrimaryUnavailable(f"the primary answered {response.status} for {path}")
                yield response
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PrimaryUnavailable(f"the primary {self.url} is unreachable ({exc})") from None


PRIMARY = web.AppKey("primary", PrimaryClient)
