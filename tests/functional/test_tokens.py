"""Scoped API tokens end to end (docs/reliability.md TK cases): created over the
API and the command line, used by twine, `uv publish` and poetry as `__token__`,
limited to their scopes and indexes, refused once expired or revoked, and every
malformed request a clear 4xx that changes nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.functional.test_poetry import POETRY, Poetry, greeting_project, output
from tests.support.dists import make_wheel
from tests.support.server import BIN, Clients, LockgateServer

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-pw")
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def _team(server: LockgateServer) -> None:
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    server.create_index("alice/prod", ALICE, volatile=False)


def _token(server: LockgateServer, auth: Any = ALICE, user: str = "alice", **body: Any) -> Any:
    response = server.request("POST", f"/{user}/+tokens", auth=auth, json=body)
    assert response.status_code == 201, response.text
    return response.json()["result"]


def _files(server: LockgateServer, index: str, project: str) -> list[str]:
    response = server.get(f"/{index}/+simple/{project}/", headers=JSON)
    return sorted(f["filename"] for f in response.json()["files"]) if response.ok else []


def test_token_lifecycle_over_the_api(server: LockgateServer) -> None:
    _team(server)
    created = _token(server, name="ci-upload", scopes=["upload"], indexes=["alice/dev"])
    secret = created["token"]
    assert secret.startswith("lgt_") and len(secret) == 47
    assert created["scopes"] == ["upload"] and created["indexes"] == ["alice/dev"]
    listed = server.request("GET", "/alice/+tokens", auth=ALICE).json()["result"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0] and secret not in str(listed)
    # The secret is stored only as a hash: not in the database, not in the log.
    database = server.serverdir / "lockgate.sqlite"
    if database.exists():
        assert secret.encode() not in database.read_bytes()
    assert secret not in server.log()
    # Another user (not root) sees nothing; root may manage alice's tokens.
    server.create_user("bob", "bob-pw")
    assert server.request("GET", "/alice/+tokens", auth=("bob", "bob-pw")).status_code == 403
    assert server.request("GET", "/alice/+tokens", auth=server.root_auth()).ok
    # Revoked: refused at once.
    wheel_auth = ("__token__", secret)
    assert server.request("GET", "/alice/+tokens", auth=wheel_auth).status_code == 403
    gone = server.request("DELETE", f"/alice/+tokens/{created['id']}", auth=ALICE)
    assert gone.ok, gone.text
    refused = server.request("PATCH", "/alice/dev/x/1.0", auth=wheel_auth, json={"yanked": True})
    assert refused.status_code == 401 and "revoked" in refused.text
    again = server.request("DELETE", f"/alice/+tokens/{created['id']}", auth=ALICE)
    assert again.status_code == 404


def test_twine_uv_and_poetry_upload_with_a_token(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    _team(server)
    secret = _token(server, name="ci", scopes=["upload"], indexes=["alice/dev"])["token"]
    dist = tmp_path / "dist"
    dist.mkdir()
    first = make_wheel(dist, "tok-twine", "1.0")
    result = clients.twine_upload(f"{server.url}/alice/dev/", [first], "__token__", secret)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _files(server, "alice/dev", "tok-twine") == [first.name]

    second = make_wheel(dist, "tok-uv", "1.0")
    published = clients.run(
        [
            str(BIN / "uv"),
            "publish",
            "--publish-url",
            f"{server.url}/alice/dev/",
            "--token",
            secret,
            "--trusted-publishing",
            "never",
            str(second),
        ]
    )
    assert published.returncode == 0, published.stdout + published.stderr
    assert _files(server, "alice/dev", "tok-uv") == [second.name]

    # The owner's name with the token works as well as __token__.
    third = make_wheel(dist, "tok-owner", "1.0")
    result = clients.twine_upload(f"{server.url}/alice/dev/", [third], "alice", secret)
    assert result.returncode == 0, result.stdout + result.stderr

    assert Path(POETRY).exists(), "poetry is a test dependency (pip install -e '.[test]')"
    poetry = Poetry(tmp_path)
    poetry.env["POETRY_PYPI_TOKEN_LOCKGATE"] = secret
    poetry(tmp_path, "config", "repositories.lockgate", f"{server.url}/alice/dev/")
    project = greeting_project(tmp_path / "greeting")
    poetry(project, "build")
    published = poetry(project, "publish", "--repository", "lockgate")
    assert "Uploading lg_greeting-1.0.0-py3-none-any.whl" in output(published)
    assert "lg_greeting-1.0.0-py3-none-any.whl" in _files(server, "alice/dev", "lg-greeting")


def test_a_token_stays_within_its_scopes_and_indexes(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    _team(server)
    dev_only = _token(server, scopes=["upload"], indexes=["alice/dev"])["token"]
    wheel = make_wheel(tmp_path, "limited", "1.0")
    serial = server.serial()
    result = clients.twine_upload(f"{server.url}/alice/prod/", [wheel], "__token__", dev_only)
    assert result.returncode != 0
    assert "limited to alice/dev" in result.stdout + result.stderr
    assert server.serial() == serial and _files(server, "alice/prod", "limited") == []
    # An upload token cannot administer: no index changes, no users, no tokens.
    token_auth = ("__token__", dev_only)
    for method, path, body in (
        ("PATCH", "/alice/dev", {"title": "x"}),
        ("PUT", "/alice/other", {}),
        ("POST", "/alice/+tokens", {"scopes": ["upload"]}),
        ("DELETE", "/alice", None),
    ):
        response = server.request(method, path, auth=token_auth, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert "lacks the 'admin' scope" in response.text
    # A read-only token cannot upload anywhere.
    reader = _token(server, scopes=["read"])["token"]
    result = clients.twine_upload(f"{server.url}/alice/dev/", [wheel], "__token__", reader)
    assert result.returncode != 0 and "lacks the 'upload' scope" in result.stdout + result.stderr
    # Bearer works like Basic.
    bearer = {"Authorization": f"Bearer {dev_only}"}
    yank = server.request("PATCH", "/alice/dev/limited/1.0", headers=bearer, json={"yanked": True})
    assert yank.status_code == 404  # authenticated and allowed: the release just is not there
    # An admin token may create a narrower token, never a wider one.
    admin = _token(server, scopes=["admin", "upload"], indexes=["alice/dev"])["token"]
    wider = server.request(
        "POST", "/alice/+tokens", auth=("__token__", admin), json={"scopes": ["upload"]}
    )
    assert wider.status_code == 403
    narrower = server.request(
        "POST",
        "/alice/+tokens",
        auth=("__token__", admin),
        json={"scopes": ["upload"], "indexes": ["alice/dev"]},
    )
    assert narrower.status_code == 201, narrower.text
    assert server.serial() == serial + 3  # three tokens created, nothing else changed


def test_expired_tokens_and_tokens_of_deleted_users_are_refused(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    _team(server)
    server.create_user("carol", "carol-pw")
    server.create_index("carol/dev", ("carol", "carol-pw"))
    carols = _token(server, auth=("carol", "carol-pw"), user="carol", scopes=["upload"])["token"]
    expiring = _token(server, scopes=["upload"], expires="2030-01-01")
    assert expiring["expires"] == "2030-01-02T00:00:00Z"
    # Expiry is checked on every use: make one that has just run out, through the
    # database as an operator's clock change would (the API refuses past dates).
    short = _token(server, scopes=["upload"], expires="1d")
    _expire(server, short["id"])
    wheel = make_wheel(tmp_path, "late", "1.0")
    result = clients.twine_upload(f"{server.url}/alice/dev/", [wheel], "__token__", short["token"])
    assert result.returncode != 0 and "expired" in result.stdout + result.stderr
    assert server.request("DELETE", "/carol", auth=server.root_auth()).ok
    response = server.request(
        "PATCH", "/carol/dev/x/1.0", auth=("__token__", carols), json={"yanked": True}
    )
    assert response.status_code == 401


def _expire(server: LockgateServer, token_id: str) -> None:
    import sqlalchemy

    url = server.db_url or f"sqlite:///{server.serverdir / 'lockgate.sqlite'}"
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sqlalchemy.text("UPDATE tokens SET expires_at = :past WHERE id = :id"),
                {"past": "2000-01-01T00:00:00Z", "id": token_id},
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"scopes": ["upload", "everything"]}, "unknown scope(s) everything"),
        ({"scopes": []}, "'scopes' must be a non-empty list"),
        ({"scopes": ["upload"], "expires": "2001-01-01"}, "is in the past"),
        ({"scopes": ["upload"], "expires": "soon"}, "is not a date"),
        ({"scopes": ["upload"], "indexes": ["nope"]}, "'user/index'"),
        (
            {"scopes": ["upload"], "indexes": ["alice/missing"]},
            "index alice/missing does not exist",
        ),
        ({"scopes": ["upload"], "secret": "x"}, "unknown token field(s): secret"),
        ({"scopes": ["upload"], "name": ""}, "'name' must be a non-empty string"),
    ],
)
def test_bad_token_requests_are_refused_and_change_nothing(
    server: LockgateServer, body: dict[str, Any], phrase: str
) -> None:
    _team(server)
    serial = server.serial()
    response = server.request("POST", "/alice/+tokens", auth=ALICE, json=body)
    assert response.status_code == 400, response.text
    assert phrase in response.text
    assert server.serial() == serial


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer lgt_" + "A" * 43},  # well formed, unknown
        {"Authorization": "Token lgt_" + "A" * 43},  # the wrong scheme: no credentials
        {"X-Api-Key": "lgt_" + "A" * 43},  # the wrong header: no credentials
    ],
)
def test_malformed_and_misplaced_tokens_get_a_clear_401(
    server: LockgateServer, headers: dict[str, str]
) -> None:
    _team(server)
    response = server.request("PATCH", "/alice/dev", headers=headers, json={"title": "x"})
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == 'Basic realm="lockgate"'
    assert response.text.strip()


def test_token_command_line(server: LockgateServer, tmp_path: Path) -> None:
    _team(server)

    def lockgate(*args: str) -> subprocess.CompletedProcess[str]:
        env = {
            "LOCKGATE_URL": server.url,
            "LOCKGATE_USER": "alice",
            "LOCKGATE_PASSWORD": "alice-pw",
            "PATH": str(BIN),
        }
        return subprocess.run(
            [sys.executable, "-m", "lockgate", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    created = lockgate(
        "token", "create", "--name", "ci", "--scope", "upload", "--index", "alice/dev",
        "--expires", "30d",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("lgt_") and len(secret) == 47
    listed = lockgate("token", "list")
    assert listed.returncode == 0 and "ci" in listed.stdout and secret not in listed.stdout
    token_id = listed.stdout.split()[0]
    bad = lockgate("token", "create", "--scope", "root-powers")
    assert bad.returncode != 0 and "unknown scope" in bad.stderr
    revoked = lockgate("token", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert lockgate("token", "list").stdout.strip() == ""


def test_repeated_bad_tokens_pause_that_client(server: LockgateServer) -> None:
    """docs/reliability.md TK-9: the token path counts failures like passwords do."""
    _team(server)
    good = _token(server, scopes=["admin"])["token"]
    bad = "lgt_" + "B" * 43
    for _ in range(10):
        response = server.request("GET", "/alice/+tokens", auth=("__token__", bad))
        assert response.status_code == 401
    paused = server.request("GET", "/alice/+tokens", auth=("__token__", good))
    assert paused.status_code == 429 and int(paused.headers["Retry-After"]) > 0
    # Passwords are counted apart: alice's password still works from this client.
    assert server.request("GET", "/alice/+tokens", auth=ALICE).ok
