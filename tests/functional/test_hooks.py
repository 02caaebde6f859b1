"""Webhooks and CI triggers end to end, against loopback stand-ins that check the
exact requests Jenkins, GitLab and a signed generic receiver expect: an upload
triggers within seconds; a receiver that is down gets the delivery once it is
back, across a restart of lockgate and across a failover to a promoted replica,
with one stable id; bad hook configurations are refused and change nothing.
SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import posixpath
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.functional.test_replica import _wait_caught_up
from tests.support.dists import make_wheel
from tests.support.receiver import CIReceiver, Received
from tests.support.server import LOCKGATE, Clients, LockgateServer, start_replica

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-pw")
SECRET = "s3cret-signing-key"


def _setup(server: LockgateServer) -> None:
    server.create_user(*ALICE)
    server.create_index("alice/staging", ALICE)


def _hook(server: LockgateServer, name: str, body: dict[str, Any], status: int = 201) -> Any:
    response = server.request("PUT", f"/alice/staging/+hooks/{name}", auth=ALICE, json=body)
    assert response.status_code == status, response.text
    return response.json()


def _upload(server: LockgateServer, clients: Clients, path: Path) -> None:
    result = clients.twine_upload(f"{server.url}/alice/staging/", [path], *ALICE)
    assert result.returncode == 0, result.stdout + result.stderr


def _wait_for(receiver: CIReceiver, count: int, seconds: float = 30) -> list[Received]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        accepted = receiver.accepted()
        if len(accepted) >= count:
            return accepted
        time.sleep(0.1)
    raise AssertionError(
        f"{len(receiver.accepted())} of {count} deliveries arrived: {receiver.received}"
    )


def _deliveries(server: LockgateServer, name: str) -> list[dict[str, Any]]:
    response = server.request("GET", f"/alice/staging/+hooks/{name}/deliveries", auth=ALICE)
    assert response.ok, response.text
    return list(response.json()["result"])


def _owed(server: LockgateServer, name: str, count: int, seconds: float = 20) -> list[Any]:
    """The deliveries, once the server has derived `count` of them from its changelog."""
    deadline = time.monotonic() + seconds
    while True:
        found = _deliveries(server, name)
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, found
            return found
        time.sleep(0.1)


def _settled(server: LockgateServer, name: str, seconds: float = 20) -> list[dict[str, Any]]:
    """The deliveries once none is still on its way (the receiver's answer written back)."""
    deadline = time.monotonic() + seconds
    while True:
        found = _deliveries(server, name)
        if all(d["status"] == "delivered" for d in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_generic_hook_signs_and_delivers_an_upload(
    make_server: Callable[..., LockgateServer], clients: Clients, tmp_path: Path
) -> None:
    receiver = CIReceiver("generic", secret=SECRET).start()
    try:
        server = make_server(hook_allow="127.0.0.1")
        _setup(server)
        saved = _hook(server, "ci", {"kind": "generic", "url": receiver.url, "secret": SECRET,
                                     "events": ["upload"]})  # fmt: skip
        assert saved["result"]["secret"] == "****"
        shown = server.request("GET", "/alice/staging/+hooks/ci", auth=ALICE).json()["result"]
        assert shown["secret"] == "****" and shown["events"] == ["upload"]
        wheel = make_wheel(tmp_path, "hooked", "1.0")
        started = time.monotonic()
        _upload(server, clients, wheel)
        (received,) = _wait_for(receiver, 1)
        assert time.monotonic() - started < 10
        body = json.loads(received.body)
        assert (
            received.headers["X-Lockgate-Signature"]
            == "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
        )
        assert received.headers["X-Lockgate-Event"] == "upload"
        assert received.headers["X-Lockgate-Delivery"] == body["delivery"]
        assert (body["event"], body["index"], body["project"], body["version"]) == (
            "upload", "alice/staging", "hooked", "1.0",
        )  # fmt: skip
        (file,) = body["files"]
        assert file["filename"] == wheel.name and file["url"].startswith(server.url)
        assert server.get(file["url"].removeprefix(server.url)).content == wheel.read_bytes()
        assert body["actor"] == "alice" and body["results_url"] == file["url"]
        (delivery,) = _settled(server, "ci")
        assert delivery["id"] == body["delivery"] and delivery["status"] == "delivered"
        # A yank is not an event this hook listens to; its secret never reaches the log.
        assert server.request("PATCH", "/alice/staging/hooked/1.0", auth=ALICE,
                              json={"yanked": True}).ok  # fmt: skip
        time.sleep(1.5)
        assert len(receiver.received) == 1
        assert SECRET not in server.log()
        # Sent again by hand: the same id.
        again = server.request(
            "POST", f"/alice/staging/+hooks/ci/deliveries/{delivery['id']}", auth=ALICE
        )
        assert again.status_code == 202, again.text
        second = _wait_for(receiver, 2)[1]
        assert json.loads(second.body)["delivery"] == delivery["id"]
    finally:
        receiver.stop()


def test_jenkins_and_gitlab_triggers_are_exactly_what_they_expect(
    make_server: Callable[..., LockgateServer], clients: Clients, tmp_path: Path
) -> None:
    jenkins = CIReceiver(
        "jenkins", job="acme-tests", trigger_token="jt0k", user="ci-bot", api_token="11aa22bb"
    ).start()
    gitlab = CIReceiver("gitlab", trigger_token="glptt-123", project_id=42).start()
    try:
        server = make_server(hook_allow="127.0.0.1")
        _setup(server)
        _hook(server, "jenkins", {"kind": "jenkins", "url": jenkins.url, "trigger_token": "jt0k",
                                  "user": "ci-bot", "api_token": "11aa22bb"})  # fmt: skip
        _hook(server, "gitlab", {"kind": "gitlab", "url": gitlab.url,
                                 "trigger_token": "glptt-123", "ref": "release"})  # fmt: skip
        wheel = make_wheel(tmp_path, "triggered", "2.0")
        _upload(server, clients, wheel)
        (build,) = _wait_for(jenkins, 1)
        assert build.path == "/job/acme-tests/buildWithParameters"
        assert build.query == {"token": "jt0k"} and build.status == 201
        assert build.form["LOCKGATE_INDEX"] == "alice/staging"
        assert build.form["LOCKGATE_PROJECT"] == "triggered"
        assert build.form["LOCKGATE_VERSION"] == "2.0"
        assert build.form["LOCKGATE_FILES"].endswith("/" + wheel.name)
        assert build.form["LOCKGATE_RESULTS_URL"] == build.form["LOCKGATE_FILES"]
        (pipeline,) = _wait_for(gitlab, 1)
        assert pipeline.form["token"] == "glptt-123" and pipeline.form["ref"] == "release"
        assert pipeline.form["variables[LOCKGATE_VERSION]"] == "2.0"
        assert pipeline.form["variables[LOCKGATE_INDEX]"] == "alice/staging"
        # A wrong trigger token is a failed delivery, retried, shown with the answer.
        _hook(server, "jenkins", {"kind": "jenkins", "url": jenkins.url, "trigger_token": "nope",
                                  "user": "ci-bot", "api_token": "****"}, status=200)  # fmt: skip
        _upload(server, clients, make_wheel(tmp_path, "triggered", "3.0"))
        _owed(server, "jenkins", 2)  # newest first from here on
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            latest = _deliveries(server, "jenkins")[0]
            if latest["attempts"]:
                break
            time.sleep(0.2)
        assert latest["status"] == "pending" and latest["last_answer"].startswith("403")
    finally:
        jenkins.stop()
        gitlab.stop()


def test_deliveries_survive_a_dead_receiver_and_a_restart(
    make_server: Callable[..., LockgateServer], clients: Clients, tmp_path: Path
) -> None:
    receiver = CIReceiver("generic", secret=SECRET)  # not started: the target is down
    server = make_server(hook_allow="127.0.0.1")
    _setup(server)
    _hook(server, "ci", {"kind": "generic", "url": receiver.url, "secret": SECRET})
    for version in ("1.0", "2.0"):
        _upload(server, clients, make_wheel(tmp_path, "patient", version))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        owed = _deliveries(server, "ci")
        if len(owed) == 2 and all(d["attempts"] >= 1 for d in owed):
            break
        time.sleep(0.2)
    assert all(d["status"] == "pending" and "unreachable" in d["last_answer"] for d in owed)
    server.stop()
    server.start()
    receiver.start()
    try:
        arrived = _wait_for(receiver, 2, seconds=60)
        time.sleep(1)
        ids = [json.loads(r.body)["delivery"] for r in receiver.received]
        assert sorted(ids) == sorted(d["id"] for d in owed), "each once, with its own id"
        assert {json.loads(r.body)["version"] for r in arrived} == {"1.0", "2.0"}
        assert all(d["status"] == "delivered" for d in _settled(server, "ci"))
    finally:
        receiver.stop()


def test_a_promoted_replica_sends_what_the_primary_could_not(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    clients: Clients,
    tmp_path: Path,
) -> None:
    receiver = CIReceiver("generic", secret=SECRET)  # down while the primary runs
    primary = make_server("primary", hook_allow="127.0.0.1")
    _setup(primary)
    _hook(primary, "ci", {"kind": "generic", "url": receiver.url, "secret": SECRET})
    replica = start_replica(primary, tmp_path / "replica", make_db_url(), hook_allow="127.0.0.1")
    try:
        _upload(primary, clients, make_wheel(tmp_path, "failover", "1.0"))
        owed = _owed(primary, "ci", 1)
        _wait_caught_up(primary, replica)
        primary.stop()
        replica.stop()
        promoted = subprocess.run(
            [LOCKGATE, "promote", "--serverdir", str(replica.serverdir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert promoted.returncode == 0, promoted.stderr
        replica.flags.pop("primary")
        replica.flags.pop("primary_token")
        replica.start()
        receiver.start()
        (received,) = _wait_for(receiver, 1, seconds=60)
        assert json.loads(received.body)["delivery"] == owed[0]["id"]
    finally:
        receiver.stop()
        replica.stop()


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"kind": "carrier-pigeon", "url": "http://127.0.0.1:9/"}, "'kind' must be one of"),
        ({"kind": "generic", "url": "http://127.0.0.1:9/"}, "needs 'secret'"),
        ({"kind": "generic", "url": "ftp://127.0.0.1/", "secret": "x"}, "http(s) URL"),
        ({"kind": "generic", "url": "http://u:p@127.0.0.1:9/", "secret": "x"}, "credentials"),
        (
            {"kind": "generic", "url": "http://127.0.0.1:9/", "secret": "x", "events": ["boom"]},
            "unknown event(s) boom",
        ),  # fmt: skip
        (
            {"kind": "jenkins", "url": "http://127.0.0.1:9/", "trigger_token": "t", "user": "u"},
            "both 'user' and 'api_token'",
        ),  # fmt: skip
        ({"kind": "gitlab", "url": "http://127.0.0.1:9/", "token": "t"}, "unknown key"),
    ],
)
def test_bad_hooks_are_refused_and_change_nothing(
    server: LockgateServer, body: dict[str, Any], phrase: str
) -> None:
    _setup(server)
    serial = server.serial()
    response = server.request("PUT", "/alice/staging/+hooks/bad", auth=ALICE, json=body)
    assert response.status_code == 400, response.text
    assert phrase in response.text
    assert server.serial() == serial


def test_private_targets_need_hook_allow_and_owners_manage_hooks(server: LockgateServer) -> None:
    _setup(server)
    serial = server.serial()
    body = {"kind": "generic", "url": "http://127.0.0.1:9/hook", "secret": SECRET}
    refused = server.request("PUT", "/alice/staging/+hooks/ci", auth=ALICE, json=body)
    assert refused.status_code == 400 and "hook_allow" in refused.text
    metadata = {**body, "url": "http://169.254.169.254/latest/meta-data/"}
    refused = server.request("PUT", "/alice/staging/+hooks/ci", auth=ALICE, json=metadata)
    assert refused.status_code == 400
    server.create_user("bob", "bob-pw")
    stranger = server.request("PUT", "/alice/staging/+hooks/ci", auth=("bob", "bob-pw"), json=body)
    assert stranger.status_code == 403
    assert server.request("GET", "/alice/staging/+hooks/ci", auth=ALICE).status_code == 404
    assert server.serial() == serial + 1  # only bob was created


def _hook_on(server: LockgateServer, index: str, receiver: CIReceiver, events: list[str]) -> None:
    body = {"kind": "generic", "url": receiver.url, "secret": SECRET, "events": events}
    response = server.request("PUT", f"/{index}/+hooks/ci", auth=ALICE, json=body)
    assert response.status_code == 201, response.text


def test_test_results_pushes_and_promotions_are_events(
    make_server: Callable[..., LockgateServer], clients: Clients, tmp_path: Path
) -> None:
    """A result is a `test-result` on the file's index; a push a `push`, and a push the
    server made by itself (`promote_to`) a `promote`, on the target index."""
    staging = CIReceiver("generic", secret=SECRET).start()
    prod = CIReceiver("generic", secret=SECRET).start()
    other = CIReceiver("generic", secret=SECRET).start()
    try:
        server = make_server(hook_allow="127.0.0.1")
        _setup(server)
        server.create_index("alice/prod", ALICE, push_requires=["py311"])
        server.create_index("alice/other", ALICE)
        assert server.request(
            "PATCH", "/alice/staging", auth=ALICE, json={"promote_to": "alice/prod"}
        ).ok
        _hook_on(server, "alice/staging", staging, ["test-result"])
        _hook_on(server, "alice/prod", prod, ["push", "promote"])
        _hook_on(server, "alice/other", other, ["push", "promote"])
        wheel = make_wheel(tmp_path, "gated", "1.0")
        _upload(server, clients, wheel)
        page = server.get(
            "/alice/staging/+simple/gated/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        ).json()
        file_path = posixpath.normpath("/alice/staging/+simple/gated/" + page["files"][0]["url"])
        posted = server.request(
            "POST", file_path, auth=ALICE, json={"environment": "py311", "outcome": "passed"}
        )
        assert posted.ok, posted.text
        (result,) = _wait_for(staging, 1)
        body = json.loads(result.body)
        assert (body["event"], body["outcome"], body["environment"]) == (
            "test-result", "passed", "py311",
        )  # fmt: skip
        assert body["files"][0]["filename"] == wheel.name
        (promoted,) = _wait_for(prod, 1)
        body = json.loads(promoted.body)
        assert (body["event"], body["index"], body["source_index"]) == (
            "promote", "alice/prod", "alice/staging",
        )  # fmt: skip
        assert body["actor"] == "system" and body["files"][0]["filename"] == wheel.name
        pushed = server.request(
            "POST",
            "/alice/staging",
            auth=ALICE,
            json={"name": "gated", "version": "1.0", "targetindex": "alice/other"},
        )
        assert pushed.ok, pushed.text
        (manual,) = _wait_for(other, 1)
        body = json.loads(manual.body)
        assert (body["event"], body["actor"]) == ("push", "alice")
    finally:
        for receiver in (staging, prod, other):
            receiver.stop()
