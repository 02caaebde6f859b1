"""No write transaction is open while a password is checked: one request's password check
blocks, and another user's upload still commits meanwhile (SQLite and PostgreSQL).

The case is docs/architecture.md (invariants: authentication before the write
transaction). A password check is scrypt, run in a thread; if a handler checks the
password inside `db.write()`, every other writer of the server waits behind that scrypt:
on SQLite behind the process's single writer lock, on PostgreSQL behind the serial row
that every write transaction locks first.

To make one check slow with real parts only, user `slow` is created through the API and
then its `users.password_hash` row is overwritten, directly in the server's database, with
a valid scrypt hash of its own password whose parameters (N=2**14, r=8 as the server's,
so 16 MiB of memory, but a large p) make one verification take several seconds. The
server re-reads the user per request and verifies with the parameters stored in the hash;
its cache of successful checks is keyed on the stored hash, so the new hash is checked
for real.

Then a write request of `slow` is sent from a thread. Once the server is seen burning CPU
on it (the scrypt) and it has not been answered, `alice` uploads a wheel: the upload must
be answered 200 and be listed on the simple page while the slow request is still in
flight, and its serial must come before the slow request's. This is an ordering
assertion, not a speed one; every wait is bounded. Last, the slow request must get its
normal answer.

It runs for every write request that authenticates a user (users, indexes, releases,
files, projects; creating a user needs `--allow-self-registration` for a non-root), and
needs Linux (/proc) to see the server's CPU time.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy

from tests.support.dists import make_wheel, sha256_file
from tests.support.server import LockgateServer, upload_form
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ALICE = ("alice", "alice-pw")
SLOW = ("slow", "slow-pw")
JSON_V1 = {"Accept": "application/vnd.pypi.simple.v1+json"}

# The server's own scrypt cost (lockgate/accounts/passwords.py): 16 MiB per check.
SCRYPT_N = 2**14
SCRYPT_R = 8
# How long one check of the slow hash should take, and the bounds on p that keep it sane
# on a much faster or slower machine.
SLOW_CHECK_SECONDS = 5.0
MIN_P, MAX_P = 16, 4096
# Server CPU time that shows the slow check is under way (a normal check is ~50 ms).
CHECK_UNDER_WAY_CPU = 1.0
HTTP_TIMEOUT = 120


# ----------------------------------------------------------------------------------------------
# The slow hash, computed once for the module (it costs one slow check)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlowHash:
    stored: str  # scrypt$N$r$p$<b64 salt>$<b64 hash>, as lockgate stores it
    p: int
    seconds: float  # what computing it took here: about what the server's check takes


def _scrypt(password: str, salt: bytes, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=p, dklen=32, maxmem=64 * 2**20
    )


@pytest.fixture(scope="module")
def slow_hash() -> SlowHash:
    # A call pays once for its 16 MiB and then per unit of p: time p=1 and p=9 (best of
    # two each) and take the cost of one more unit of p from the difference.
    def best_of_two(p: int) -> float:
        times = []
        for _ in range(2):
            started = time.perf_counter()
            _scrypt("calibration", b"\0" * 16, p)
            times.append(time.perf_counter() - started)
        return min(times)

    one, nine = best_of_two(1), best_of_two(9)
    per_p = max((nine - one) / 8, 1e-4)
    p = max(MIN_P, min(MAX_P, 1 + round((SLOW_CHECK_SECONDS - one) / per_p)))
    salt = secrets.token_bytes(16)
    started = time.perf_counter()
    derived = _scrypt(SLOW[1], salt, p)
    seconds = time.perf_counter() - started
    stored = (
        f"scrypt${SCRYPT_N}${SCRYPT_R}${p}${b64encode(salt).decode()}${b64encode(derived).decode()}"
    )
    return SlowHash(stored, p, seconds)


def set_password_hash(server: LockgateServer, user: str, stored: str) -> None:
    """Overwrite one user's password hash in the server's database, behind its back."""
    url = server.db_url or f"sqlite:///{server.serverdir / 'lockgate.sqlite'}"
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            changed = conn.execute(
                sqlalchemy.text("UPDATE users SET password_hash = :stored WHERE name = :name"),
                {"stored": stored, "name": user},
            ).rowcount
    finally:
        engine.dispose()
    assert changed == 1, f"user {user!r} not found in {url}"


def upload_wheel(
    server: LockgateServer, index: str, auth: tuple[str, str], wheel: Path, project: str
) -> requests.Response:
    """Upload a 1.0 wheel as twine does."""
    with wheel.open("rb") as handle:
        return server.request(
            "POST",
            f"/{index}/",
            auth=auth,
            data=upload_form(project, "1.0", wheel),
            files={"content": (wheel.name, handle, "application/octet-stream")},
            timeout=HTTP_TIMEOUT,
        )


def server_cpu_seconds(server: LockgateServer) -> float:
    """User + system CPU time of the `lockgate serve` process (Linux /proc)."""
    assert server.process is not None
    stat = Path(f"/proc/{server.process.pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()
    # Fields 14 and 15 of stat (utime, stime); fields[0] here is field 3 (state).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------------------
# The write requests of `slow` whose password check is made slow
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlowWrite:
    """One write request by `slow`: what it sends and the answer it normally gets.

    `path` is given slow's wheel (`slowpkg` 1.0, uploaded to `slow/dev` beforehand);
    `flags` are the server's command-line options the request needs.
    """

    method: str
    path: Callable[[Path], str]
    body: dict[str, Any] | None
    status: int
    answer: str  # a phrase of the JSON answer
    flags: dict[str, str] = field(default_factory=dict)


def file_path(wheel: Path) -> str:
    return f"/slow/dev/+f/{sha256_file(wheel)[:16]}/{wheel.name}"


YANK = {"yanked": True, "reason": "testing"}
SLOW_WRITES = {
    # Users (lockgate/accounts/views.py)
    "PUT user": SlowWrite(
        "PUT",
        lambda _: "/slow2",
        {"password": "slow2-pw"},
        201,
        '"username": "slow2"',
        flags={"allow_self_registration": ""},
    ),
    "PATCH user": SlowWrite(
        "PATCH", lambda _: "/slow", {"email": "s@example.org"}, 200, '"email": "s@example.org"'
    ),
    "DELETE user": SlowWrite("DELETE", lambda _: "/slow", None, 200, "user slow deleted"),
    # Indexes (lockgate/indexes/views.py)
    "PUT index": SlowWrite("PUT", lambda _: "/slow/more", {}, 201, "indexconfig"),
    "PATCH index": SlowWrite("PATCH", lambda _: "/slow/dev", {"title": "Slow"}, 200, "Slow"),
    "DELETE index": SlowWrite("DELETE", lambda _: "/slow/dev", None, 200, "slow/dev deleted"),
    # Releases, files and projects (lockgate/packages/views.py)
    "PATCH release": SlowWrite("PATCH", lambda _: "/slow/dev/slowpkg/1.0", YANK, 200, "yanked"),
    "DELETE release": SlowWrite("DELETE", lambda _: "/slow/dev/slowpkg/1.0", None, 200, "deleted"),
    "DELETE file": SlowWrite("DELETE", file_path, None, 200, "deleted"),
    "DELETE project": SlowWrite("DELETE", lambda _: "/slow/dev/slowpkg", None, 200, "deleted"),
    # devpi-client's login (lockgate/devpi/views.py): the password is in the body.
    "POST login": SlowWrite(
        "POST", lambda _: "/+login", {"user": SLOW[0], "password": SLOW[1]}, 200, "proxyauth"
    ),
}


class InFlight:
    """One request sent from a thread; the answer (or the error) once it is back."""

    def __init__(self, method: str, url: str, auth: tuple[str, str], body: Any) -> None:
        self.response: requests.Response | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._request = (method, url, auth, body)
        self.thread = threading.Thread(target=self._run, name="slow-request", daemon=True)

    def _run(self) -> None:
        method, url, auth, body = self._request
        try:
            self.response = requests.request(
                method, url, auth=auth, json=body, timeout=HTTP_TIMEOUT, allow_redirects=False
            )
        except BaseException as exc:  # reported by the test thread
            self.error = exc
        finally:
            self.done.set()

    def start(self) -> InFlight:
        self.thread.start()
        return self

    def result(self) -> requests.Response:
        assert self.done.wait(HTTP_TIMEOUT + 10), "the slow request never returned"
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response


@pytest.fixture
def in_flight() -> Iterator[list[InFlight]]:
    started: list[InFlight] = []
    yield started
    for request in started:
        request.thread.join(HTTP_TIMEOUT + 10)


@pytest.mark.parametrize("kind", list(SLOW_WRITES))
def test_an_upload_commits_while_another_users_password_check_runs(
    make_server: Callable[..., LockgateServer],
    slow_hash: SlowHash,
    in_flight: list[InFlight],
    tmp_path: Path,
    kind: str,
) -> None:
    write = SLOW_WRITES[kind]
    server = make_server(**write.flags)
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    server.create_user(*SLOW)
    server.create_index("slow/dev", SLOW)
    slow_wheel = make_wheel(tmp_path / "slow", "slowpkg", "1.0")
    response = upload_wheel(server, "slow/dev", SLOW, slow_wheel, "slowpkg")
    assert response.status_code == 200, response.text
    alice_wheel = make_wheel(tmp_path / "alice", "alicepkg", "1.0")

    set_password_hash(server, "slow", slow_hash.stored)

    cpu_before = server_cpu_seconds(server)
    slow = InFlight(write.method, server.url + write.path(slow_wheel), SLOW, write.body)
    in_flight.append(slow.start())
    # The server is checking slow's password once it has spent far more CPU than any
    # normal request needs; it must not have answered yet.
    wait_until(
        lambda: (
            server_cpu_seconds(server) - cpu_before >= CHECK_UNDER_WAY_CPU or slow.done.is_set()
        ),
        "the server to start checking slow's password",
        timeout=60,
    )
    assert not slow.done.is_set(), (
        f"{kind}: the slow request was answered before its check could be seen: "
        f"{slow.response.status_code if slow.response is not None else slow.error}"
    )

    upload_started = time.monotonic()
    uploaded = upload_wheel(server, "alice/dev", ALICE, alice_wheel, "alicepkg")
    assert uploaded.status_code == 200, uploaded.text
    page = server.get("/alice/dev/+simple/alicepkg/", headers=JSON_V1)
    assert page.status_code == 200, page.text
    assert alice_wheel.name in page.text, page.text
    upload_seconds = time.monotonic() - upload_started
    assert not slow.done.is_set(), (
        f"{kind}: alice's upload was answered and listed only after slow's request "
        f"(scrypt p={slow_hash.p}, one check ~{slow_hash.seconds:.1f}s here) "
        f"had returned; the upload took {upload_seconds:.1f}s: a write transaction was open "
        "during the password check"
    )

    answer = slow.result()
    assert answer.status_code == write.status, f"{kind}: {answer.status_code} {answer.text}"
    assert write.answer in answer.text, f"{kind}: {answer.text}"
    upload_serial = int(uploaded.headers["X-Lockgate-Serial"])
    slow_serial = int(answer.headers["X-Lockgate-Serial"])
    assert upload_serial < slow_serial, (
        f"{kind}: the upload committed at serial {upload_serial}, after slow's write "
        f"at {slow_serial}"
    )
    page = server.get("/alice/dev/+simple/alicepkg/", headers=JSON_V1)
    assert page.status_code == 200 and alice_wheel.name in page.text, page.text
