"""structlog configuration: readable on a TTY, JSON lines otherwise."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

AccessLog = Callable[[str, str, int, float, str, bool], None]
_json_mode = False


def configure_logging(log_format: str = "auto", level: int = logging.INFO) -> None:
    global _json_mode
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    _json_mode = use_json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        # Plain tracebacks whether or not rich is installed (lockgate/__init__.py keeps
        # rich out of the server's memory).
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def access_logger() -> AccessLog:
    """The function writing the one access-log line per request. In JSON mode the line
    is made directly (the same keys and order structlog writes) rather than through
    the processor chain, which cost more than a cached page itself; on a console it
    is an ordinary structlog event."""
    if not _json_mode:
        log = structlog.get_logger("lockgate.http")

        def console(
            method: str, path: str, status: int, ms: float, request_id: str, auth_failed: bool
        ) -> None:
            extra = {"auth_failed": True} if auth_failed else {}
            log.info("request", method=method, path=path, status=status, duration_ms=ms, **extra)

        return console

    dumps = json.dumps
    now = datetime.now
    write = sys.stderr.write

    def line(
        method: str, path: str, status: int, ms: float, request_id: str, auth_failed: bool
    ) -> None:
        stamp = now(UTC).isoformat().replace("+00:00", "Z")
        failed = ', "auth_failed": true' if auth_failed else ""
        write(
            f'{{"method": {dumps(method)}, "path": {dumps(path)}, "status": {status}, '
            f'"duration_ms": {ms}, "event": "request", "request_id": {dumps(request_id)}'
            f'{failed}, "level": "info", "timestamp": "{stamp}"}}\n'
        )

    return line
