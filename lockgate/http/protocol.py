"""HTTP methods aiohttp's fast request parser refuses, let through without slowing
every request.

devpi-client pushes a release with the method `PUSH`. aiohttp parses requests with
llhttp (C), which knows a fixed list of methods and answers anything else with
`400 Invalid method encountered` before any handler runs. aiohttp's pure-Python
parser accepts any token as a method, but is several times slower on every request.

So each connection starts with the C parser; when it refuses a request that
starts with one of `EXTRA_METHODS`, that connection (only) continues with the
Python parser, fed the same bytes. The refused request was then the first thing in
the chunk (a method is only parsed at the start of a message), so nothing is lost —
unless a client pipelined it behind other requests in the same chunk, which
devpi-client (requests) never does; such a request still gets the 400.
Every other request costs one Python call more per chunk received.

`LockgateRunner` is aiohttp's `AppRunner` with this parser on every connection.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod
from aiohttp.http_parser import HttpRequestParserPy
from aiohttp.web_protocol import MAX_MSG_QUEUE_SIZE, RequestHandler, RequestPayloadError
from aiohttp.web_server import Server

# Methods lockgate routes that llhttp does not know, as they start a request line.
EXTRA_METHODS = (b"PUSH ",)


class FallbackRequestParser:
    """The C parser, until a request with an extra method arrives."""

    __slots__ = ("_parser", "_make_fallback", "switched")

    def __init__(self, parser: Any, make_fallback: Callable[[], Any]) -> None:
        self._parser = parser
        self._make_fallback = make_fallback
        self.switched = False

    def feed_data(self, data: bytes) -> Any:
        try:
            return self._parser.feed_data(data)
        except BadHttpMethod:
            if self.switched or not bytes(data[:8]).startswith(EXTRA_METHODS):
                raise
            self._parser = self._make_fallback()
            self.switched = True
            return self._parser.feed_data(data)

    def message_consumed(self) -> None:
        self._parser.message_consumed()

    def __getattr__(self, name: str) -> Any:
        # feed_eof, set_upgraded, pause_reading, …: whatever the parser offers.
        return getattr(self._parser, name)


class LockgateRequestHandler(RequestHandler):
    """aiohttp's connection handler with the fallback parser."""

    def __init__(self, manager: Server, *, loop: asyncio.AbstractEventLoop, **kwargs: Any):
        super().__init__(manager, loop=loop, **kwargs)
        make_fallback = functools.partial(
            HttpRequestParserPy,
            self,
            loop,
            self._read_bufsize,
            max_line_size=self.max_line_size,
            max_field_size=self.max_field_size,
            max_headers=self.max_headers,
            payload_exception=RequestPayloadError,
            auto_decompress=kwargs.get("auto_decompress", True),
            max_msg_queue_size=MAX_MSG_QUEUE_SIZE,
        )
        # Duck-typed: the handler calls only what FallbackRequestParser passes on.
        self._parser = FallbackRequestParser(self._parser, make_fallback)  # type: ignore[assignment]


class LockgateServer(Server):
    def __call__(self) -> RequestHandler:
        return LockgateRequestHandler(self, loop=self._loop, **self._kwargs)


class LockgateRunner(web.AppRunner):
    """`AppRunner` whose connections use `LockgateRequestHandler`."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        return LockgateServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
