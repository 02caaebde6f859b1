"""Rendered pages cached in memory, valid for exactly one serial.

Any committed change bumps the serial and so invalidates every entry: coarse,
but never stale, which is what lets new uploads show at once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class CachedPage:
    serial: int
    body: bytes
    content_type: str
    etag: str
    # Whatever the page's freshness also depends on (the mirror indexes whose
    # upstream pages went into it); opaque to the cache.
    depends_on: tuple[Any, ...] = ()


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


# Bounded by count and by bytes (least recently used first out): a worker's memory
# must not grow with the number of projects asked for (bench/ measures RSS).
PAGE_LIMIT = 4096
PAGE_BYTES_LIMIT = 16 * 1024 * 1024


class PageCache:
    def __init__(self, limit: int = PAGE_LIMIT, byte_limit: int = PAGE_BYTES_LIMIT) -> None:
        self._pages: OrderedDict[tuple[str, ...], CachedPage] = OrderedDict()
        self._limit = limit
        self._byte_limit = byte_limit
        self._bytes = 0

    def get(self, key: tuple[str, ...], serial: int) -> CachedPage | None:
        page = self._pages.get(key)
        if page is None or page.serial != serial:
            return None
        self._pages.move_to_end(key)
        return page

    def put(
        self,
        key: tuple[str, ...],
        serial: int,
        body: bytes,
        content_type: str,
        depends_on: tuple[Any, ...] = (),
    ) -> CachedPage:
        page = CachedPage(serial, body, content_type, strong_etag(body), depends_on)
        old = self._pages.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        self._pages[key] = page
        self._bytes += len(body)
        while self._pages and (len(self._pages) > self._limit or self._bytes > self._byte_limit):
            _key, dropped = self._pages.popitem(last=False)
            self._bytes -= len(dropped.body)
        return page


class SerialMemo:
    """Small lookups (which blob a file URL names) remembered for one serial,
    so hot file downloads skip the database the way cached pages do."""

    def __init__(self, limit: int = 65536) -> None:
        self._entries: OrderedDict[tuple[str, ...], tuple[int, Any]] = OrderedDict()
        self._limit = limit

    def get(self, key: tuple[str, ...], serial: int) -> Any | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != serial:
            return None
        return entry[1]

    def put(self, key: tuple[str, ...], serial: int, value: Any) -> None:
        self._entries[key] = (serial, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)


PAGES = web.AppKey("pages", PageCache)
FILES = web.AppKey("files", SerialMemo)
