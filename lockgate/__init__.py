"""lockgate: a private Python package index for closed networks."""

from __future__ import annotations

import sys

__version__ = "0.1.0"


def _import_structlog_without_rich() -> None:
    """Import structlog with `rich` hidden from it.

    `structlog.dev` (imported by `import structlog`) imports rich's console and traceback
    (and with them pygments) whenever rich is installed, only so a console renderer can
    draw exceptions in colour; that is ~3.5 MiB in every `lockgate serve` worker, whose
    logs are JSON lines or plain console lines (lockgate/logs.py asks for the plain
    traceback formatter, so the output is the same either way). rich stays installed
    and importable for the commands that draw progress bars (`lockgate import`); only
    structlog's optional import of it is skipped. A `None` in sys.modules makes `import
    rich` raise ImportError, which structlog handles as "rich is not installed".
    """
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog  # noqa: F401 - imported for its side effect on sys.modules
    finally:
        del sys.modules["rich"]


_import_structlog_without_rich()
