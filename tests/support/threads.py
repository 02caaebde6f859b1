"""Running a loopback test server (aiohttp) on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any


def start_loop_thread(
    name: str,
    run_loop: Callable[[asyncio.AbstractEventLoop], None],
    startup: Callable[[socket.socket], Coroutine[Any, Any, None]],
    sock: socket.socket,
    timeout: float,
) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """Start `run_loop` in a daemon thread and wait for `startup(sock)` on it;
    on failure the socket is closed and the thread ended before raising."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=run_loop, args=(loop,), name=name, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(startup(sock), loop).result(timeout)
    except BaseException:
        sock.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        raise
    return loop, thread
