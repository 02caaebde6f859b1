"""Running a loopback test server (aiohttp) on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any


def run_loop_forever(loop: asyncio.AbstractEventLoop) -> None:
    """The thread's body: run until stopped, then cancel what is left and close."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        with contextlib.suppress(Exception):
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def start_loop_thread(
    name: str,
    startup: Callable[[socket.socket], Coroutine[Any, Any, None]],
    sock: socket.socket,
    timeout: float,
) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """Start a loop in a daemon thread and wait for `startup(sock)` on it;
    on failure the socket is closed and the thread ended before raising."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=run_loop_forever, args=(loop,), name=name, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(startup(sock), loop).result(timeout)
    except BaseException:
        sock.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        raise
    return loop, thread
