"""Counting file downloads around the `+f` handler (stage and mirror files alike)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from lockgate.downloads.services import DOWNLOADS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _whole_file(request: web.Request) -> bool:
    """A plain GET of the file (a range request continuing a download is not another one)."""
    if request.method != "GET" or request.match_info["filename"].endswith(".metadata"):
        return False
    wanted = request.headers.get("Range", "").replace(" ", "")
    return not wanted or wanted.startswith("bytes=0-")


def counted(handler: Handler) -> Handler:
    """`handler`, with each answered download noted in this process's counter."""

    async def count_download(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        counter = request.app.get(DOWNLOADS)
        if counter is not None and response.status == 200 and _whole_file(request):
            user, index = request.match_info["user"], request.match_info["index"]
            counter.note(f"{user}/{index}", request.match_info["filename"])
        return response

    count_download.__name__ = getattr(handler, "__name__", "handler")
    return count_download
