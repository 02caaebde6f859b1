"""Reserved namespaces (docs/reliability.md DC-6): root reserves name prefixes for an
owner over `/+namespaces` and `lockgate namespace`; prefixes are PEP 503-normalized (PEP
752's shape); bad input gets a clear 4xx and changes nothing; an owner cannot be deleted;
only the owner (or root) creates projects in a namespace, existing ones are kept.
Real `lockgate serve`, SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.dists import make_wheel
from tests.support.server import (
    LOCKGATE,
    LockgateServer,
    server_events,
    tmp_entries,
    upload_form,
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


def _upload(
    server: LockgateServer, index: str, auth: tuple[str, str], wheel: Path, name: str
) -> requests.Response:
    with wheel.open("rb") as handle:
        return server.request(
            "POST",
            f"/{index}/",
            auth=auth,
            data=upload_form(name, wheel.name.split("-")[1], wheel),
            files={"content": (wheel.name, handle, "application/octet-stream")},
        )


def test_only_the_owner_creates_projects_in_a_namespace(make_server: Any, tmp_path: Path) -> None:
    server: LockgateServer = make_server()
    root = server.root_auth()
    server.create_user(*TEAM)
    server.create_user(*BOB)
    server.create_index("bob/dev", BOB)
    server.create_index("team/dev", TEAM, acl_upload=["team", "bob"])
    # Before the reservation bob created acme-old: it is kept, and reported.
    old = make_wheel(tmp_path / "dist", "acme-old", "1.0")
    assert _upload(server, "bob/dev", BOB, old, "acme-old").status_code == 200
    created = _put(server, "acme-", root, owner="team")
    assert created.json()["result"]["existing_projects"] == ["bob/dev/acme-old"]

    # The existing project keeps taking releases; new ones in the namespace are refused,
    # also on team's own index when bob (allowed to upload there) would create them.
    old2 = make_wheel(tmp_path / "dist", "acme-old", "2.0")
    assert _upload(server, "bob/dev", BOB, old2, "acme-old").status_code == 200
    before = server.serial()
    for index, name in (
        ("bob/dev", "acme-new"),
        ("bob/dev", "acme"),
        ("bob/dev", "ACME.Tools"),
        ("team/dev", "acme-new"),
    ):
        wheel = make_wheel(tmp_path / "dist", name, "1.0")
        response = _upload(server, index, BOB, wheel, name)
        assert response.status_code == 403, f"{name}: {response.text}"
        assert "only team (or root) may create" in response.text
    assert server.serial() == before and tmp_entries(server) == []
    # team creates it on its index; then bob may upload further releases there.
    new = make_wheel(tmp_path / "dist", "acme-new", "1.0")
    assert _upload(server, "team/dev", TEAM, new, "acme-new").status_code == 200
    new2 = make_wheel(tmp_path / "dist", "acme-new", "2.0")
    assert _upload(server, "team/dev", BOB, new2, "acme-new").status_code == 200
    # acmeutils is outside acme- (PEP 752: the namespace is followed by a separator).
    outside = make_wheel(tmp_path / "dist", "acmeutils", "1.0")
    assert _upload(server, "bob/dev", BOB, outside, "acmeutils").status_code == 200
    # root may create projects anywhere.
    server.create_index("root/dev", root)
    rooted = make_wheel(tmp_path / "dist", "acme-root", "1.0")
    assert _upload(server, "root/dev", root, rooted, "acme-root").status_code == 200

    # A nested namespace for another owner: the most specific one decides.
    assert _put(server, "acme-ml-", root, owner="bob").status_code == 201
    core = make_wheel(tmp_path / "dist", "acme-ml-core", "1.0")
    assert _upload(server, "bob/dev", BOB, core, "acme-ml-core").status_code == 200
    models = make_wheel(tmp_path / "dist", "acme-ml-models", "1.0")
    response = _upload(server, "team/dev", TEAM, models, "acme-ml-models")
    assert response.status_code == 403 and "'acme-ml-' reserved for 'bob'" in response.text

    # A project deleted from an index releases its name there: re-creating it is a
    # creation again, under the namespace's rule.
    deleted = server.request("DELETE", "/bob/dev/acme-old", auth=BOB)
    assert deleted.status_code == 200, deleted.text
    assert _upload(server, "bob/dev", BOB, old2, "acme-old").status_code == 403
    _assert_no_server_errors(server)
