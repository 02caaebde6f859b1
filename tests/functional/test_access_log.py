"""One access-log line per request, written directly in JSON mode (not through
structlog's processors) with the same keys as before: a request id (the client's
X-Request-Id when given), the status (also of errors and redirects), the duration,
and `auth_failed` on a refused login (docs/reliability.md WK-6)."""

from __future__ import annotations

import time

from tests.support.server import LockgateServer, server_events


def requests_logged(server: LockgateServer) -> list[dict[str, object]]:
    return [e for e in server_events(server) if e.get("event") == "request"]


def test_one_line_per_request_with_the_usual_keys(server: LockgateServer) -> None:
    before = len(requests_logged(server))
    ok = server.get("/+status", headers={"X-Request-Id": "trace-me-42"})
    missing = server.get("/nobody/nothing/+simple/")
    moved = server.get("/root/pypi/+simple")
    refused = server.request("PUT", "/someone", auth=("root", "wrong"), json={"password": "x"})
    assert (ok.status_code, missing.status_code, moved.status_code) == (200, 404, 301)
    assert refused.status_code == 401
    assert ok.headers["X-Lockgate-Worker"].isdigit()

    deadline = time.monotonic() + 30
    while len(requests_logged(server)) < before + 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = requests_logged(server)[before:]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("GET", "/+status", 200),
        ("GET", "/nobody/nothing/+simple/", 404),
        ("GET", "/root/pypi/+simple", 301),
        ("PUT", "/someone", 401),
    ]
    assert lines[0]["request_id"] == "trace-me-42"
    ids = [str(e["request_id"]) for e in lines]
    assert len(set(ids)) == 4
    for event in lines:
        assert set(event) >= {"duration_ms", "level", "timestamp", "request_id"}
        assert str(event["timestamp"]).endswith("Z")
    assert lines[3].get("auth_failed") is True
    assert "auth_failed" not in lines[0]
