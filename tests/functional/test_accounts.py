"""Users and indexes over the admin API: permissions, self-registration,
password storage, and the devpi-shaped answers."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.dists import make_wheel
from tests.support.server import Clients, LockgateServer

JSON = {"Accept": "application/json"}


def test_only_root_creates_users_unless_self_registration(
    make_server: Callable[..., LockgateServer],
) -> None:
    closed = make_server("closed")
    anonymous = closed.request("PUT", "/eve", json={"password": "pw"})
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    closed.create_user("frank", "frank-pw")
    by_user = closed.request("PUT", "/eve", json={"password": "pw"}, auth=("frank", "frank-pw"))
    assert by_user.status_code == 403 and "only root" in by_user.text

    open_server = make_server("open", allow_self_registration="")
    created = open_server.request("PUT", "/eve", json={"password": "pw", "email": "e@x.org"})
    assert created.status_code == 201, created.text
    assert created.json() == {
        "type": "userconfig",
        "result": {"username": "eve", "email": "e@x.org", "indexes": {}},
    }


def test_users_change_only_themselves_and_root_stays(server: LockgateServer) -> None:
    server.create_user("gina", "gina-pw")
    server.create_user("hank", "hank-pw")
    assert server.request("PATCH", "/gina", auth=("hank", "hank-pw"), json={}).status_code == 403
    changed = server.request(
        "PATCH", "/gina", auth=("gina", "gina-pw"), json={"password": "new-pw"}
    )
    assert changed.status_code == 200, changed.text
    assert server.request("PATCH", "/gina", auth=("gina", "gina-pw"), json={}).status_code == 401
    assert server.request("PATCH", "/gina", auth=("gina", "new-pw"), json={}).status_code == 200
    wrong_field = server.request("PATCH", "/gina", auth=("gina", "new-pw"), json={"admin": True})
    assert wrong_field.status_code == 400 and "admin" in wrong_field.text
    root = server.request("DELETE", "/root", auth=server.root_auth())
    assert root.status_code == 403
    duplicate = server.request("PUT", "/gina", auth=server.root_auth(), json={"password": "x"})
    assert duplicate.status_code == 409


def test_passwords_are_stored_as_slow_salted_hashes(server: LockgateServer) -> None:
    server.create_user("ivan", "plain-text-secret")
    server.stop()
    if server.db_url is None:
        with sqlite3.connect(server.serverdir / "lockgate.sqlite") as conn:
            stored = conn.execute("SELECT password_hash FROM users WHERE name='ivan'").fetchone()[0]
            entries = " ".join(row[0] for row in conn.execute("SELECT payload FROM changelog"))
        assert stored.startswith("scrypt$")
        assert "plain-text-secret" not in stored + entries


def test_index_config_round_trip_and_validation(server: LockgateServer) -> None:
    server.create_user("jo", "jo-pw")
    jo = ("jo", "jo-pw")
    server.create_index("jo/base", jo)
    created = server.request(
        "PUT",
        "/jo/dev",
        auth=jo,
        json={
            "type": "stage",
            "bases": ["jo/base", "root/pypi"],
            "volatile": False,
            "acl_upload": ["jo"],
            "mirror_whitelist": ["Some_Name", "*"],
        },
    )
    assert created.status_code == 201, created.text
    config = server.get("/jo/dev", headers=JSON).json()["result"]
    assert config["bases"] == ["jo/base", "root/pypi"]
    assert config["mirror_whitelist"] == ["*", "some-name"]
    assert config["volatile"] is False
    for body, phrase in [
        ({"bases": ["nobody/none"]}, "does not exist"),
        ({"bases": "jo/bad"}, "cannot be its own base"),
        ({"type": "other"}, "unknown index type"),
        ({"colour": "blue"}, "unknown key"),
        ({"volatile": "maybe"}, "true or false"),
    ]:
        response = server.request("PUT", "/jo/bad", auth=jo, json=body)
        assert response.status_code == 400 and phrase in response.text, (body, response.text)
    cycle = server.request("PATCH", "/jo/base", auth=jo, json={"bases": ["jo/dev"]})
    assert cycle.status_code == 400 and "cycle" in cycle.text
    in_use = server.request("DELETE", "/jo/base", auth=jo)
    assert in_use.status_code == 409 and "jo/dev" in in_use.text
    other = server.request("PUT", "/jo/x", auth=server.root_auth(), json={})
    assert other.status_code == 201  # root may act for anyone
    server.create_user("kim", "kim-pw")
    assert server.request("PUT", "/jo/y", auth=("kim", "kim-pw"), json={}).status_code == 403
    not_json = server.request(
        "PUT", "/jo/z", auth=jo, data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400 and "not valid JSON" in not_json.text
    root = server.get("/", headers=JSON).json()["result"]
    assert set(root["jo"]["indexes"]) == {"base", "dev", "x"}
    assert root["root"]["indexes"]["pypi"]["type"] == "mirror"


def test_oversized_upload_is_refused_before_the_body(
    make_server: Callable[..., LockgateServer],
) -> None:
    server = make_server("small", max_upload_bytes="1000000")
    server.create_user("lu", "lu-pw")
    server.create_index("lu/dev", ("lu", "lu-pw"))
    import base64

    token = base64.b64encode(b"lu:lu-pw").decode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            (
                "POST /lu/dev/ HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Basic {token}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {50 * 1024 * 1024 * 1024}\r\n\r\n"
            ).encode()
        )
        started = time.monotonic()
        answer = sock.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "File too large" in answer
    assert time.monotonic() - started < 5
    assert list((server.serverdir / "tmp").iterdir()) == []


def test_project_delete_needs_the_owner_and_a_volatile_index(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    server.create_user("mo", "mo-pw")
    server.create_user("ned", "ned-pw")
    mo = ("mo", "mo-pw")
    server.create_index("mo/prod", mo, volatile=False, acl_upload=["mo", "ned"])
    wheel = make_wheel(tmp_path, "held-name", "1.0")
    assert clients.twine_upload(f"{server.url}/mo/prod/", [wheel], *mo).returncode == 0
    by_uploader = server.request("DELETE", "/mo/prod/held-name", auth=("ned", "ned-pw"))
    assert by_uploader.status_code == 403
    refused = server.request("DELETE", "/mo/prod/held-name", auth=mo)
    assert refused.status_code == 403 and "not volatile" in refused.text
    assert server.get("/mo/prod/+simple/held-name/").status_code == 200
    assert server.request("DELETE", "/mo/prod/nothing", auth=mo).status_code == 404


def test_only_root_points_mirrors_somewhere(server: LockgateServer) -> None:
    server.create_user("oz", "oz-pw")
    oz = ("oz", "oz-pw")
    for body in (
        {"type": "mirror", "mirror_url": "http://169.254.169.254/latest/meta-data/"},
        {"type": "mirror"},
    ):
        refused = server.request("PUT", "/oz/mirror", auth=oz, json=body)
        assert refused.status_code == 403 and "only root" in refused.text
    made = server.request("PUT", "/oz/mirror", auth=server.root_auth(), json={"type": "mirror"})
    assert made.status_code == 201, made.text
    moved = server.request(
        "PATCH", "/oz/mirror", auth=oz, json={"mirror_url": "http://127.0.0.1:5432/"}
    )
    assert moved.status_code == 403
    tuned = server.request("PATCH", "/oz/mirror", auth=oz, json={"mirror_cache_expiry": 60})
    assert tuned.status_code == 200, tuned.text


def test_nul_in_credentials_is_refused_and_405_says_what_is_allowed(
    server: LockgateServer,
) -> None:
    import base64

    token = base64.b64encode(b"ro\x00ot:" + b"root-secret-pw").decode()
    response = server.request(
        "PUT", "/nobody", json={"password": "x"}, headers={"Authorization": f"Basic {token}"}
    )
    assert response.status_code == 401, response.text
    wrong_method = server.request("DELETE", "/root/pypi/+simple/")
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.headers.get("Allow", "")


def test_repeated_failed_logins_pause_that_client_and_name(server: LockgateServer) -> None:
    server.create_user("gus", "gus-pw")
    server.create_user("hal", "hal-pw")
    for _ in range(10):
        wrong = server.request("PATCH", "/gus", auth=("gus", "guess"), json={})
        assert wrong.status_code == 401
    paused = server.request("PATCH", "/gus", auth=("gus", "gus-pw"), json={})
    assert paused.status_code == 429, paused.text
    assert int(paused.headers["Retry-After"]) > 0
    assert "too many failed logins" in paused.text
    # Other names are not affected.
    assert server.request("PATCH", "/hal", auth=("hal", "hal-pw"), json={}).status_code == 200
