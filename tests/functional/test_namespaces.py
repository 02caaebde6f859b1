"""Reserved namespaces (docs/reliability.md DC-6): root reserves name prefixes for an
owner over `/+namespaces` and `lockgate namespace`; prefixes are PEP 503-normalized (PEP
752's shape); bad input gets a clear 4xx and changes nothing; an owner cannot be deleted.
Real `lockgate serve`, SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.server import (
    LOCKGATE,
    LockgateServer,
    server_events,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TEAM = ("team", "team-pw")
BOB = ("bob", "bob-pw")


def _put(server: LockgateServer, prefix: str, auth: Any, **body: Any) -> requests.Response:
    return server.request("PUT", f"/+namespaces/{prefix}", auth=auth, json=body)


def _lockgate(server: LockgateServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKGATE_", "PIP_"))}
    env.update({"LOCKGATE_URL": server.url, "LOCKGATE_PASSWORD": server.root_auth()[1]})
    return subprocess.run([LOCKGATE, *args], capture_output=True, text=True, timeout=120, env=env)


def _assert_no_server_errors(server: LockgateServer) -> None:
    problems = [
        event
        for event in server_events(server)
        if event.get("level") in ("error", "critical") or int(event.get("status", 0)) >= 500
    ]
    assert not problems, f"server errors: {problems}"


def test_namespace_api_refuses_bad_input_and_changes_nothing(
    make_server: Any, tmp_path: Path
) -> None:
    server: LockgateServer = make_server()
    server.create_user(*TEAM)
    server.create_user(*BOB)
    root = server.root_auth()
    serial = server.serial()
    refusals = {
        "anonymous": (_put(server, "acme-", None, owner="team"), 401, "authentication"),
        "not root": (_put(server, "acme-", TEAM, owner="team"), 403, "only root"),
        "wildcard": (_put(server, "acme*", root, owner="team"), 400, "invalid namespace"),
        "leading dash": (_put(server, "-acme", root, owner="team"), 400, "invalid namespace"),
        "only dashes": (_put(server, "--", root, owner="team"), 400, "invalid namespace"),
        "space": (_put(server, "ac%20me-", root, owner="team"), 400, "invalid namespace"),
        "non-ascii": (_put(server, "%C3%A4cme-", root, owner="team"), 400, "invalid namespace"),
        "too long": (_put(server, "a" * 250, root, owner="team"), 400, "invalid namespace"),
        "empty": (_put(server, "", root, owner="team"), 400, "prefix is required"),
        "unknown owner": (_put(server, "acme-", root, owner="nobody"), 400, "'nobody'"),
        "no owner": (_put(server, "acme-", root), 400, "'owner'"),
        "owner not a string": (_put(server, "acme-", root, owner=["team"]), 400, "'owner'"),
        "unknown field": (_put(server, "acme-", root, owner="team", open=True), 400, "open"),
        "release unknown": (
            server.request("DELETE", "/+namespaces/acme-", auth=root),
            404,
            "no namespace acme-",
        ),
        "release not root": (
            server.request("DELETE", "/+namespaces/acme-", auth=TEAM),
            403,
            "only root",
        ),
    }
    body = server.request(
        "PUT",
        "/+namespaces/acme-",
        auth=root,
        data=b"{nope",
        headers={"Accept": "application/json"},
    )
    refusals["not json"] = (body, 400, "JSON")
    for what, (response, status, phrase) in refusals.items():
        assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
        assert phrase in response.text, f"{what}: {response.text}"
    assert server.serial() == serial, "refusals change nothing"
    assert server.get("/+namespaces").json()["result"] == {}
    # A root token without the admin scope may not reserve either.
    token = server.request("POST", "/root/+tokens", auth=root, json={"scopes": ["upload"]})
    upload_only = ("__token__", token.json()["result"]["token"])
    assert _put(server, "acme-", upload_only, owner="team").status_code == 403
    serial = server.serial()

    # acme-, acme_, Acme. and acme are one namespace (PEP 503 normalization).
    created = _put(server, "Acme.", root, owner="team")
    assert created.status_code == 201, created.text
    result = created.json()["result"]
    assert result["namespace"] == "acme" and result["prefix"] == "acme-"
    assert result["display"] == "Acme." and result["owner"] == "team"
    assert result["matches"] == ["acme", "acme-*"] and result["existing_projects"] == []
    again = _put(server, "acme_", root, owner="team")
    assert again.status_code == 200, again.text
    serial = server.serial()
    assert _put(server, "acme_", root, owner="team").status_code == 200
    assert server.serial() == serial, "the same reservation again records nothing"
    listed = server.get("/+namespaces").json()["result"]
    assert list(listed) == ["acme-"] and listed["acme-"]["display"] == "acme_"
    assert server.get("/+namespaces/ACME-").json()["result"]["owner"] == "team"
    assert server.get("/+namespaces/other-").status_code == 404

    # A user owning a namespace cannot be deleted (the reservation would lapse).
    response = server.request("DELETE", "/team", auth=root)
    assert response.status_code == 409 and "acme-" in response.text, response.text
    assert server.get("/team").status_code == 200
    # Given to another owner (a PUT again), team can go.
    assert _put(server, "acme-", root, owner="bob").json()["result"]["owner"] == "bob"
    assert server.request("DELETE", "/team", auth=root).status_code == 200
    released = server.request("DELETE", "/+namespaces/acme", auth=root)
    assert released.status_code == 200 and "acme- released" in released.text
    assert server.get("/+namespaces").json()["result"] == {}

    # The same through `lockgate namespace` (as root, from LOCKGATE_URL/LOCKGATE_PASSWORD).
    reserved = _lockgate(server, "namespace", "reserve", "Tools.", "--owner", "bob")
    assert reserved.returncode == 0, reserved.stdout + reserved.stderr
    assert "namespace tools- reserved for bob" in reserved.stdout
    listed = _lockgate(server, "namespace", "list")
    assert listed.returncode == 0, listed.stderr
    assert "tools-  owner=bob  matches=tools,tools-*  reserved_as=Tools." in listed.stdout
    unknown = _lockgate(server, "namespace", "reserve", "more-", "--owner", "nobody")
    assert unknown.returncode != 0 and "400" in unknown.stderr and "nobody" in unknown.stderr
    empty = _lockgate(server, "namespace", "reserve", "", "--owner", "bob")
    assert empty.returncode != 0 and "prefix is required" in empty.stderr
    released = _lockgate(server, "namespace", "release", "tools")
    assert released.returncode == 0, released.stdout + released.stderr
    assert server.get("/+namespaces").json()["result"] == {}
    _assert_no_server_errors(server)
