"""Reserved namespaces end to end (docs/reliability.md DC-6): root reserves `acme-` for
`team`; a public `acme-utils` on the (fake) PyPI never installs through `team/dev` with pip
or uv, even before the private one exists, and its name never even reaches the upstream;
only team (or root) may create projects in the namespace; a whitelist brings the public
one back, on a replica too. Also: the API and `lockgate namespace` refuse bad input and
change nothing. Real `lockgate serve`, twine, pip, uv and `lockgate namespace`, SQLite and
PostgreSQL.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.dists import make_wheel
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import (
    LOCKGATE,
    Clients,
    LockgateServer,
    server_events,
    start_replica,
    tmp_entries,
    upload_form,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
TEAM = ("team", "team-pw")
BOB = ("bob", "bob-pw")
FAST_MIRROR = {"mirror_timeout": 2, "mirror_offline_retry": 1, "mirror_cache_expiry": 3600}


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


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(tmp_path / "upstream")
    fake.add_wheel("acme-utils", "99.0")  # the attacker's release of the private name
    fake.add_wheel("acme-lib", "2.0")  # a public project in the namespace someone wants
    fake.add_wheel("acmeutils", "1.0")  # outside the namespace: no separator after acme
    fake.add_wheel("alpha", "1.0")
    fake.start()
    yield fake
    fake.close()


def _setup(server: LockgateServer) -> None:
    response = server.request("PATCH", "/root/pypi", auth=server.root_auth(), json=FAST_MIRROR)
    assert response.status_code == 200, response.text
    server.create_user(*TEAM)
    server.create_user(*BOB)
    server.create_index("team/dev", TEAM, bases=["root/pypi"])
    server.create_index("bob/dev", BOB, bases=["root/pypi"])


def _installed(target: Path) -> set[str]:
    return {p.name for p in target.iterdir() if p.name.endswith(".dist-info")}


def _blobs(server: LockgateServer) -> set[str]:
    return {p.name for p in (server.serverdir / "blobs").rglob("*") if p.is_file()}


def _in_namespace(upstream: FakeUpstream) -> list[tuple[str, str]]:
    """Upstream requests naming a project of the namespace acme- (pages or files)."""
    return [r for r in upstream.requests if re.search(r"/acme(?:[-_.]|/)", r[1], re.IGNORECASE)]


def test_dc6_reserved_namespace_never_comes_from_the_mirror(
    make_server: Any, upstream: FakeUpstream, clients: Clients, tmp_path: Path
) -> None:
    server: LockgateServer = make_server(upstream=upstream.url)
    _setup(server)
    reserved = _lockgate(server, "namespace", "reserve", "acme-", "--owner", "team")
    assert reserved.returncode == 0, reserved.stdout + reserved.stderr
    assert "namespace acme- reserved for team" in reserved.stdout
    listed = _lockgate(server, "namespace", "list")
    assert listed.returncode == 0, listed.stderr
    assert "acme-  owner=team  matches=acme,acme-*" in listed.stdout
    upstream.clear_requests()

    # No private acme-utils exists yet: still, the public 99.0 never installs.
    dev = server.simple_url("team/dev")
    for run, target in (
        (clients.pip_install, tmp_path / "pip-none"),
        (clients.uv_install, tmp_path / "uv-none"),
    ):
        failed = run(dev, "acme-utils", target=target)
        assert failed.returncode != 0, failed.stdout + failed.stderr
        assert not target.exists() or not _installed(target)
    page = server.get("/team/dev/+simple/acme-utils/", headers=JSON)
    assert page.status_code == 404
    assert "namespace 'acme-' reserved for team" in page.text
    assert server.get("/team/dev/pypi/acme-utils/json").status_code == 404
    # The mirror itself refuses the name too, and any spelling of it.
    direct = server.get("/root/pypi/+simple/acme-utils/", headers=JSON)
    assert direct.status_code == 404 and "reserved for the organisation" in direct.text
    assert server.get("/root/pypi/+simple/Acme.Utils/", allow_redirects=True).status_code == 404
    assert server.get("/team/dev/+simple/acme/").status_code == 404  # the namespace's own name
    # `mirror refresh` does not send the name upstream either.
    refresh = _lockgate(server, "mirror", "refresh", "acme-utils")
    assert refresh.returncode == 0, refresh.stderr
    assert "not asked" in refresh.stdout
    # Not even asked: no request for any name in the namespace reached the upstream.
    assert _in_namespace(upstream) == []
    assert "acme-utils" not in {
        p["name"] for p in server.get("/team/dev/+simple/", headers=JSON).json()["projects"]
    }

    # Names outside the namespace still come through ("acmeutils" has no separator).
    outside = clients.pip_install(dev, "acmeutils", "alpha", target=tmp_path / "outside")
    assert outside.returncode == 0, outside.stdout + outside.stderr
    assert {"acmeutils-1.0.dist-info", "alpha-1.0.dist-info"} <= _installed(tmp_path / "outside")

    # team uploads the private acme-utils 1.0 with twine: that is what installs.
    private = make_wheel(tmp_path / "team-dist", "acme-utils", "1.0")
    upload = clients.twine_upload(f"{server.url}/team/dev/", [private], *TEAM)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    for run, target in (
        (clients.pip_install, tmp_path / "pip-private"),
        (clients.uv_install, tmp_path / "uv-private"),
    ):
        installed = run(dev, "acme-utils", target=target)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert _installed(target) == {"acme_utils-1.0.dist-info"}

    # Another user cannot create a project in the namespace, not even on its own index.
    before = (server.serial(), _blobs(server))
    other = make_wheel(tmp_path / "bob-dist", "acme-other", "1.0")
    refused = clients.twine_upload(f"{server.url}/bob/dev/", [other], *BOB)
    assert refused.returncode != 0
    assert "403" in refused.stdout + refused.stderr
    assert "reserved for 'team'" in refused.stdout + refused.stderr
    response = _upload(server, "bob/dev", BOB, other, "acme-other")
    assert response.status_code == 403, response.text
    assert "namespace 'acme-' reserved for 'team'" in response.text
    assert "acme-" in response.reason and "team" in response.reason
    assert (server.serial(), _blobs(server)) == before, "nothing stored"
    assert tmp_entries(server) == []
    listed = server.get("/bob/dev/+simple/", headers=JSON).json()["projects"]
    assert "acme-other" not in {project["name"] for project in listed}
    # team's token uploads as team: it may create projects in the namespace.
    token = server.request(
        "POST", "/team/+tokens", auth=TEAM, json={"scopes": ["upload"], "indexes": ["team/dev"]}
    ).json()["result"]["token"]
    cli = make_wheel(tmp_path / "team-dist", "acme-cli", "0.1")
    upload = clients.twine_upload(f"{server.url}/team/dev/", [cli], "__token__", token)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    # bob's own token is still bob.
    bob_token = server.request(
        "POST", "/bob/+tokens", auth=BOB, json={"scopes": ["upload"]}
    ).json()["result"]["token"]
    response = _upload(server, "bob/dev", ("__token__", bob_token), other, "acme-other")
    assert response.status_code == 403, response.text
    assert _in_namespace(upstream) == []

    # A stage index that lists the name itself lets the public project through ...
    response = server.request(
        "PATCH", "/bob/dev", auth=BOB, json={"mirror_whitelist": ["acme-lib"]}
    )
    assert response.status_code == 200, response.text
    lib = clients.uv_install(server.simple_url("bob/dev"), "acme-lib", target=tmp_path / "lib")
    assert lib.returncode == 0, lib.stdout + lib.stderr
    assert _installed(tmp_path / "lib") == {"acme_lib-2.0.dist-info"}
    # ... for that index only: not through team/dev, not on the mirror directly.
    assert server.get("/team/dev/+simple/acme-lib/").status_code == 404
    assert server.get("/root/pypi/+simple/acme-lib/").status_code == 404
    assert upstream.requests_for("acme-utils") == []

    # '*' is not enough for a reserved name; naming it brings the public 99.0 back.
    response = server.request("PATCH", "/team/dev", auth=TEAM, json={"mirror_whitelist": ["*"]})
    assert response.status_code == 200, response.text
    files = server.get("/team/dev/+simple/acme-utils/", headers=JSON).json()["files"]
    assert [f["filename"] for f in files] == ["acme_utils-1.0-py3-none-any.whl"]
    assert upstream.requests_for("acme-utils") == []
    whitelist = {"mirror_whitelist": ["acme-utils"]}
    response = server.request("PATCH", "/team/dev", auth=TEAM, json=whitelist)
    assert response.status_code == 200, response.text
    public = clients.pip_install(dev, "acme-utils", target=tmp_path / "pip-public")
    assert public.returncode == 0, public.stdout + public.stderr
    assert _installed(tmp_path / "pip-public") == {"acme_utils-99.0.dist-info"}
    assert upstream.requests_for("acme-utils"), "the whitelisted name is asked upstream"

    # Released: the names are everybody's again, on the mirror too.
    released = _lockgate(server, "namespace", "release", "acme-")
    assert released.returncode == 0, released.stdout + released.stderr
    assert server.get("/+namespaces").json()["result"] == {}
    assert server.get("/root/pypi/+simple/acme-utils/").status_code == 200
    assert _upload(server, "bob/dev", BOB, other, "acme-other").status_code == 200
    _assert_no_server_errors(server)


def test_dc6_a_replica_follows_namespaces_and_whitelists(
    make_server: Any,
    make_db_url: Callable[[], str | None],
    upstream: FakeUpstream,
    clients: Clients,
    tmp_path: Path,
) -> None:
    """The replica decides with the same (replicated) namespaces and whitelists; for a
    whitelisted reserved name it asks its primary through the stage index, since the
    primary's mirror itself refuses the name."""
    primary: LockgateServer = make_server("primary", upstream=upstream.url)
    _setup(primary)
    assert _put(primary, "acme-", primary.root_auth(), owner="team").status_code == 201
    whitelist = {"mirror_whitelist": ["acme-lib"]}
    assert primary.request("PATCH", "/bob/dev", auth=BOB, json=whitelist).ok
    replica = start_replica(primary, tmp_path / "replica", make_db_url())
    try:
        deadline = time.monotonic() + 20
        while replica.serial() != primary.serial():
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.1)
        assert list(replica.get("/+namespaces").json()["result"]) == ["acme-"]
        upstream.clear_requests()
        for index in ("team/dev", "root/pypi"):
            failed = clients.pip_install(
                replica.simple_url(index), "acme-utils", target=tmp_path / index.replace("/", "-")
            )
            assert failed.returncode != 0, failed.stdout + failed.stderr
        assert replica.get("/root/pypi/+simple/acme-lib/").status_code == 404
        assert _in_namespace(upstream) == [], upstream.requests
        lib = clients.pip_install(replica.simple_url("bob/dev"), "acme-lib", target=tmp_path / "l")
        assert lib.returncode == 0, lib.stdout + lib.stderr
        assert _installed(tmp_path / "l") == {"acme_lib-2.0.dist-info"}
        assert upstream.requests_for("acme-lib") and upstream.requests_for("acme-utils") == []
        refused = replica.request("PUT", "/+namespaces/other-", auth=replica.root_auth(), json={})
        assert refused.status_code == 403 and primary.url in refused.text
        _assert_no_server_errors(replica)
    finally:
        replica.stop()
    _assert_no_server_errors(primary)
