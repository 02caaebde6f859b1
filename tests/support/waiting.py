"""Bounded waits for something a test can only observe from outside.

`wait_until` polls a predicate until it holds and fails the test (an assertion naming
what it waited for) once the timeout has passed: no wait in the suite is unbounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], bool], what: str, timeout: float = 15.0, interval: float = 0.05
) -> None:
    """Poll `predicate` every `interval` seconds until it is true; after `timeout`
    seconds fail with "timed out waiting for {what}"."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)
