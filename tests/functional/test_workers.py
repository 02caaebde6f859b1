"""`lockgate serve --workers N`: N processes answer on one port (SO_REUSEPORT) under a
supervisor that replaces a worker that dies, stops them all on SIGTERM, and refuses
to start when the port is taken; the once-per-server loops run in one worker only
(docs/reliability.md WK-1..WK-5). On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.support.dists import make_wheel
from tests.support.server import LOCKGATE, Clients, LockgateServer, server_events, start_replica

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
WAIT = 60.0


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent has not reaped it yet).
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def workers_seen(server: LockgateServer, wanted: int, tries: int = 400) -> set[int]:
    """Worker pids answering on the port: every request on a fresh connection, which
    the kernel hands to any of the listening workers."""
    pids: set[int] = set()
    for _ in range(tries):
        response = requests.get(server.url + "/+status", timeout=30)
        assert response.status_code == 200
        pids.add(int(response.headers["X-Lockgate-Worker"]))
        if len(pids) >= wanted:
            break
    return pids


def started_events(server: LockgateServer) -> list[dict[str, object]]:
    return [e for e in server_events(server) if e.get("event") == "worker started"]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_workers_share_the_port_and_one_leads(
    make_server: Callable[..., LockgateServer], clients: Clients, tmp_path: Path
) -> None:
    """WK-1, WK-2: two worker processes, children of the supervisor, answer on the one
    port; an upload through one is seen by the other; only one is the leader."""
    server = make_server(workers="2")
    assert server.process is not None
    pids = workers_seen(server, 2)
    assert len(pids) == 2, pids
    assert all(parent_of(pid) == server.process.pid for pid in pids)

    server.create_user("pat", "pat-pw")
    server.create_index("pat/dev", ("pat", "pat-pw"))
    wheel = make_wheel(tmp_path, "shared", "1.0")
    assert clients.twine_upload(f"{server.url}/pat/dev/", [wheel], "pat", "pat-pw").returncode == 0
    seen: dict[int, list[str]] = {}

    def both_see_it() -> bool:
        response = requests.get(server.url + "/pat/dev/+simple/shared/", headers=JSON, timeout=30)
        if response.status_code == 200:
            files = [f["filename"] for f in response.json()["files"]]
            seen[int(response.headers["X-Lockgate-Worker"])] = files
        return len(seen) == 2 and all(files == [wheel.name] for files in seen.values())

    wait_for(both_see_it, "both workers to list the upload")

    events = started_events(server)
    assert sorted(int(str(e["worker"])) for e in events) == sorted(pids)
    assert [e["leader"] for e in events].count(True) == 1, events


def test_a_killed_worker_is_replaced_and_a_new_leader_takes_over(
    make_server: Callable[..., LockgateServer],
) -> None:
    """WK-3: kill -9 of a worker (the leader): the supervisor starts a new one in its
    slot, which leads; the server keeps answering throughout."""
    server = make_server(workers="2")
    workers_seen(server, 2)
    leader = next(int(str(e["worker"])) for e in started_events(server) if e["leader"])
    os.kill(leader, signal.SIGKILL)

    def replaced() -> bool:
        leaders = [int(str(e["worker"])) for e in started_events(server) if e["leader"]]
        return len(leaders) == 2 and leaders[-1] != leader

    wait_for(replaced, "a new leader")
    assert server.process is not None and server.process.poll() is None
    pids = workers_seen(server, 2)
    assert leader not in pids and len(pids) == 2
    assert "worker 0 (pid" in server.log() and "SIGKILL" in server.log()


def test_sigterm_stops_every_worker(make_server: Callable[..., LockgateServer]) -> None:
    """WK-4: SIGTERM to the supervisor stops the workers (gracefully) and then itself,
    exit code 0; kill -9 of the supervisor takes the workers with it."""
    server = make_server(workers="2")
    pids = workers_seen(server, 2)
    assert server.stop(signal.SIGTERM) == 0
    wait_for(lambda: not any(alive(pid) for pid in pids), "the workers to exit")

    again = LockgateServer(server.serverdir, server.db_url, workers="2").start()
    pids = workers_seen(again, 2)
    assert again.stop(signal.SIGKILL) == -signal.SIGKILL
    wait_for(lambda: not any(alive(pid) for pid in pids), "orphaned workers to exit")


def test_a_taken_port_is_refused_with_a_message(
    make_server: Callable[..., LockgateServer], tmp_path: Path
) -> None:
    """WK-5: the port is in use: the command exits non-zero saying so, nothing listens
    beside the other program (SO_REUSEPORT would otherwise share its port)."""
    server = make_server()  # initialises the server directory and its database
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [LOCKGATE, "serve", "--serverdir", str(server.serverdir), "--port", str(port)]
        if server.db_url:
            command += ["--db", server.db_url]
        result = subprocess.run(
            [*command, "--workers", "2"], capture_output=True, text=True, timeout=120
        )
    assert result.returncode != 0
    assert f"cannot listen on http://127.0.0.1:{port}/" in result.stderr, result.stderr


@pytest.mark.parametrize("count", ["0", "two"])
def test_a_bad_worker_count_is_refused(
    make_server: Callable[..., LockgateServer], count: str
) -> None:
    """WK-5: --workers must be a whole number from 1."""
    server = make_server()
    result = subprocess.run(
        [LOCKGATE, "serve", "--serverdir", str(server.serverdir), "--workers", count],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--workers" in result.stderr


def test_a_hook_is_sent_once_by_two_workers(
    make_server: Callable[..., LockgateServer], clients: Clients, tmp_path: Path
) -> None:
    """WK-2: with two workers, the hook sender and its changelog walk run in the leader
    only: one upload is delivered exactly once, and a resend asked of either worker is
    sent (by the leader)."""
    from tests.support.receiver import CIReceiver

    receiver = CIReceiver("generic", secret="s3cret").start()
    try:
        server = make_server(workers="2", hook_allow="127.0.0.1")
        workers_seen(server, 2)
        server.create_user("alice", "alice-pw")
        server.create_index("alice/staging", ("alice", "alice-pw"))
        hook = {"kind": "generic", "url": receiver.url, "secret": "s3cret", "events": ["upload"]}
        response = server.request(
            "PUT", "/alice/staging/+hooks/ci", auth=("alice", "alice-pw"), json=hook
        )
        assert response.status_code == 201, response.text
        wheel = make_wheel(tmp_path, "hooked", "1.0")
        result = clients.twine_upload(f"{server.url}/alice/staging/", [wheel], "alice", "alice-pw")
        assert result.returncode == 0, result.stderr
        wait_for(lambda: len(receiver.accepted()) >= 1, "the delivery")
        time.sleep(3)  # a second sender would have sent it again by now
        assert len(receiver.received) == 1, receiver.received
        delivery = json.loads(receiver.received[0].body)["delivery"]
        for sent in (2, 3):  # whichever worker answers, the leader sends it
            again = requests.post(
                f"{server.url}/alice/staging/+hooks/ci/deliveries/{delivery}",
                auth=("alice", "alice-pw"),
                timeout=30,
            )
            assert again.status_code == 202, again.text
            wait_for(lambda n=sent: len(receiver.accepted()) >= n, "the resent delivery")
    finally:
        receiver.stop()


def test_a_replica_with_two_workers_follows_once(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    clients: Clients,
    tmp_path: Path,
) -> None:
    """WK-2: on a replica with two workers only the leader runs the changelog follower
    (each entry is applied once, so the chains agree), both workers serve what it
    applied, and both say they are a replica."""

    primary = make_server("primary")
    replica = start_replica(primary, tmp_path / "replica", make_db_url(), workers="2")
    try:
        workers_seen(replica, 2)
        primary.create_user("rita", "rita-pw")
        primary.create_index("rita/dev", ("rita", "rita-pw"))
        wheel = make_wheel(tmp_path, "replicated", "1.0")
        result = clients.twine_upload(f"{primary.url}/rita/dev/", [wheel], "rita", "rita-pw")
        assert result.returncode == 0, result.stderr
        seen: dict[int, dict[str, object]] = {}

        def both_serve_it() -> bool:
            response = requests.get(
                replica.url + "/rita/dev/+simple/replicated/", headers=JSON, timeout=30
            )
            if response.status_code == 200:
                status = requests.get(replica.url + "/+status", timeout=30).json()
                seen[int(response.headers["X-Lockgate-Worker"])] = status
            return len(seen) == 2

        wait_for(both_serve_it, "both replica workers to serve the upload")
        assert all(status["role"] == "replica" for status in seen.values())
        wait_for(lambda: replica.serial() == primary.serial(), "the replica to catch up")
        primary_status = primary.get("/+status").json()
        replica_status = replica.get("/+status").json()
        assert replica_status["last_hash"] == primary_status["last_hash"]
        events = started_events(replica)
        assert [e["leader"] for e in events].count(True) == 1, events
    finally:
        replica.stop()
