"""Serving on every core: one process per worker, all listening on one port.

`serve(settings, workers=1)` runs the application in this process. With more workers
a small supervisor (this process, which never runs an event loop) forks them after the
imports are done, so each starts in milliseconds and shares the imported code's pages.
Each worker binds the port itself with SO_REUSEPORT: the kernel spreads new
connections over them, with no proxy in between. Workers share the server directory
and the database the way several `lockgate serve` processes already can (commits are
noticed through the serial watch).

Worker 0 is the *leader*: only it runs the loops that must run once per server (a
replica's changelog follower, the hook sender and its changelog walk); the others run
only what each needs for itself (the serial watch). When a worker dies the supervisor
forks a new one in its slot after a bounded backoff, so a new leader takes over.
SIGTERM and SIGINT are forwarded to every worker; the supervisor exits when they have
stopped. A worker that dies before it ever answered, on the first start, ends the
whole server with a message saying so (a port in use, a database that cannot be
opened): nothing would be served.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lockgate.config import Settings
from lockgate.http.protocol import LockgateRunner

# A worker whose slot failed this many times in a row without ever answering is not
# restarted again: the supervisor gives up and exits non-zero.
MAX_FAILED_STARTS = 5
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
SHUTDOWN_TIMEOUT = 30.0
POLL_SECONDS = 0.05
PR_SET_PDEATHSIG = 1


def default_workers() -> int:
    """The cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def check_port_free(host: str, port: int) -> None:
    """Raise OSError when something listens on host:port already. Workers bind with
    SO_REUSEPORT, which would silently share the port with another multi-worker
    lockgate started by mistake; a plain bind first refuses that case."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)


class WorkersFailed(Exception):
    """The workers could not start (or kept dying before they answered)."""


async def serve_app(
    make_app: Callable[[], web.Application],
    settings: Settings,
    *,
    reuse_port: bool = False,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run the app until SIGTERM/SIGINT, then shut down gracefully (what
    `web.run_app` does, plus a `ready` callback once the port is bound)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # LockgateRunner: aiohttp's runner, whose connections also take devpi-client's PUSH.
    runner = LockgateRunner(make_app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    trimmer: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None)
        await site.start()
        if ready is not None:
            ready()
        # What start-up allocated and dropped (the schema check, the app's set-up) goes
        # back to the system a moment after the first answers, and so, every few
        # seconds, does what requests freed (not before: start-up waits for nothing).
        trimmer = asyncio.create_task(trim_periodically(TRIM_SECONDS, first=TRIM_FIRST_SECONDS))
        await stop.wait()
    finally:
        if trimmer is not None:
            trimmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trimmer
        await runner.cleanup()


M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core),
    and the hashing, zip and file threads each keep theirs resident: two arenas keep
    a worker's RSS near its live data. Before any thread starts; ignored elsewhere,
    and MALLOC_ARENA_MAX in the environment still wins."""
    if sys.platform.startswith("linux") and "MALLOC_ARENA_MAX" not in os.environ:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).mallopt(M_ARENA_MAX, MALLOC_ARENAS)


TRIM_SECONDS = 10.0
TRIM_FIRST_SECONDS = 2.0
_libc: Any = None


def trim_malloc() -> None:
    """Hand the free pages of glibc's heaps back to the system (`malloc_trim`).

    glibc keeps freed memory for reuse: after a burst (a cold mirror fill, pages
    rendered, upstream pages parsed, uploads hashed) a worker's RSS stayed ~10 MiB
    above its live data, which is all Python objects that were freed. Cheap (it walks
    the free lists); a no-op elsewhere than glibc."""
    global _libc
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        if _libc is None:
            _libc = ctypes.CDLL(None)
        _libc.malloc_trim(0)


async def trim_periodically(seconds: float, *, first: float) -> None:
    """`trim_malloc` after `first` seconds, then every `seconds`, in a thread (it holds
    the heap's lock briefly)."""
    await asyncio.sleep(first)
    while True:
        await asyncio.to_thread(trim_malloc)
        await asyncio.sleep(seconds)


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the supervisor dies (even by SIGKILL), so no
    worker outlives it holding the port."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class _Slot:
    index: int
    pid: int | None = None
    ready: bool = False
    ever_ready: bool = False
    failures: int = 0
    restart_at: float = 0.0
    exits: list[int] = field(default_factory=list)


class Supervisor:
    """Forks `count` workers, each calling `run_worker(index, ready)`, and keeps them
    running until told to stop."""

    def __init__(self, count: int, run_worker: Callable[[int, Callable[[], None]], None]) -> None:
        self.count = count
        self.run_worker = run_worker
        self.slots = [_Slot(i) for i in range(count)]
        self.stopping = False
        self._signal: int | None = None
        self._ready_r, self._ready_w = os.pipe()
        os.set_blocking(self._ready_r, False)

    # --- in the worker ---------------------------------------------------------
    def _child(self, slot: _Slot) -> None:
        code = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _die_with_parent()
            os.close(self._ready_r)
            ready_w = self._ready_w

            def ready() -> None:
                os.write(ready_w, bytes([slot.index]))

            self.run_worker(slot.index, ready)
            code = 0
        except BaseException as exc:  # noqa: BLE001 - report, then leave with a code
            if not isinstance(exc, SystemExit | KeyboardInterrupt):
                import traceback

                traceback.print_exc()
                print(f"lockgate: worker {slot.index} failed: {exc}", file=sys.stderr)
            elif isinstance(exc, SystemExit) and isinstance(exc.code, int):
                code = exc.code
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    # --- in the supervisor -----------------------------------------------------
    def _spawn(self, slot: _Slot) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._child(slot)  # never returns
        slot.pid, slot.ready = pid, False

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signal = signum
        self.stopping = True
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        for slot in self.slots:
            if slot.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signum)

    def _read_ready(self) -> None:
        with contextlib.suppress(BlockingIOError):
            for index in os.read(self._ready_r, 1024):
                slot = self.slots[index]
                slot.ready = slot.ever_ready = True
                slot.failures = 0

    def run(self) -> int:
        """Returns the exit code for the command; raises WorkersFailed when the
        workers cannot start."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        # Everything imported so far is shared with the workers copy-on-write; frozen,
        # the workers' garbage collector never writes to (and so never copies) it.
        gc.collect()
        gc.freeze()
        for slot in self.slots:
            self._spawn(slot)
        failure: str | None = None
        while True:
            self._read_ready()
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid, status = 0, 0
                if all(s.pid is None for s in self.slots) and (
                    self.stopping or failure is not None
                ):
                    break
            if pid:
                self._read_ready()  # a worker may have become ready just before it died
                died = next((s for s in self.slots if s.pid == pid), None)
                if died is not None:
                    died.pid = None
                    code = os.waitstatus_to_exitcode(status)
                    died.exits.append(code)
                    if not self.stopping:
                        failure = self._handle_exit(died, pid, code)
                        if failure is not None:
                            self.stopping = True
                            self._forward(signal.SIGTERM)
                continue
            if not self.stopping:
                now = time.monotonic()
                for slot in self.slots:
                    if slot.pid is None and slot.restart_at <= now:
                        self._spawn(slot)
            elif all(slot.pid is None for slot in self.slots):
                break
            time.sleep(POLL_SECONDS)
        if failure is not None:
            raise WorkersFailed(failure)
        return 0

    def _handle_exit(self, slot: _Slot, pid: int, code: int) -> str | None:
        """Plan the slot's restart; a message when the server should give up."""
        how = f"exit code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        if not slot.ready:
            slot.failures += 1
            if not any(s.ever_ready for s in self.slots):
                return (
                    f"worker {slot.index} exited ({how}) before it could serve; "
                    "see the messages above (is the port in use? can the database be opened?)"
                )
            if slot.failures >= MAX_FAILED_STARTS:
                return (
                    f"worker {slot.index} exited ({how}) {slot.failures} times in a row "
                    "before it could serve; giving up"
                )
        delay = min(BACKOFF_FIRST * 2 ** max(slot.failures - 1, 0), BACKOFF_MAX)
        if slot.ready:
            delay = BACKOFF_FIRST
        slot.restart_at = time.monotonic() + delay
        print(
            f"lockgate: worker {slot.index} (pid {pid}) exited ({how}); "
            f"starting a new one in {delay:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        return None
