"""devpi-client, unchanged from PyPI, against lockgate (README "Coming from devpi:
devpi-client"): `devpi use`, `login`, `logoff`, `user -c/-m/-l`, `index
-c/-m/-l/--delete` (devpi's keys, key-value changes and lockgate's own keys), `upload`
(wheel and sdist; `--with-docs`/`--only-docs` from a source tree with real Sphinx),
`list` (with `-t`/`-f`: test results), `getjson`, `test` (real tox, results posted), `push`
(the HTTP method PUSH), `install` (pip with the login token in the index URL) and
`remove`; each checked through lockgate's own API afterwards. The bad input of
docs/reliability.md DV-1..DV-6 changes nothing (DV-7, DV-8: test results and docs).
Both backends."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.dists import make_sdist, make_wheel
from tests.support.server import BIN, ROOT_PASSWORD, LockgateServer, client_env, start_replica

pytestmark = pytest.mark.e2e

DEVPI = str(BIN / "devpi")
ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
ENV = f"py{sys.version_info.major}{sys.version_info.minor}"
# A tox.ini that installs nothing, so tox needs no package index.
TOX_INI = (
    f"[tox]\nenvlist = {ENV}\n\n[testenv]\nskip_install = true\n"
    "commands =\n    python -c \"print('all 3 tests passed')\"\n"
)
JSON = {"Accept": "application/json"}


class Devpi:
    """The `devpi` command with its own client directory, as a user runs it."""

    def __init__(self, tmp: Path, name: str = "devpi") -> None:
        self.clientdir = tmp / f"{name}-client"
        env = client_env(tmp, VIRTUALENV_NO_DOWNLOAD="1")
        # Nothing of the machine's devpi or virtualenv settings may leak in.
        for key in list(env):
            if key.startswith("DEVPI_") or key == "VIRTUAL_ENV":
                del env[key]
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        self.env = env
        self.cwd = tmp

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DEVPI, "--clientdir", str(self.clientdir), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=timeout,
        )

    def ok(self, *args: str, timeout: float = 300) -> str:
        result = self.run(*args, timeout=timeout)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"devpi {' '.join(args)}:\n{output}"
        # lockgate declares devpi's API version on every JSON answer.
        assert "unversioned reply" not in output, output
        return output

    def fails(self, *args: str) -> str:
        result = self.run(*args)
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"devpi {' '.join(args)} succeeded:\n{output}"
        return output


def _json(server: LockgateServer, path: str, auth: Any = None) -> Any:
    response = server.get(path, auth=auth, headers=JSON)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json()


def _release(server: LockgateServer, index: str, project: str) -> dict[str, Any]:
    return dict(_json(server, f"/{index}/pypi/{project}/json", auth=server.root_auth()))


def _dists(tmp_path: Path) -> list[Path]:
    dist = tmp_path / "dist"
    return [
        make_wheel(dist, "acme-pkg", "1.0", tag="py2.py3-none-any"),
        make_sdist(dist, "acme-pkg", "1.0", extra_files={"tox.ini": TOX_INI}),
    ]


def _login_tokens(server: LockgateServer, user: str) -> list[dict[str, Any]]:
    tokens = _json(server, f"/{user}/+tokens", auth=server.root_auth())["result"]
    return [token for token in tokens if token["name"] == "devpi-login"]


def test_devpi_client_commands_end_to_end(server: LockgateServer, tmp_path: Path) -> None:
    devpi = Devpi(tmp_path)
    out = devpi.ok("use", server.url)
    assert f"using server: {server.url}/ (not logged in)" in out

    # Users, as root.
    out = devpi.ok("login", "root", "--password", ROOT_PASSWORD)
    assert "logged in 'root'" in out and "credentials valid for 10.00 hours" in out
    devpi.ok("user", "-c", "alice", "password=alice-pw", "email=alice@example.org")
    devpi.ok("user", "-c", "bob", "password=bob-pw")
    assert _json(server, "/alice")["result"]["email"] == "alice@example.org"
    listed = devpi.ok("user", "-l").split()
    assert {"alice", "bob", "root"} <= set(listed)

    # Indexes, as alice: devpi's keys as key=value strings, then key-value changes.
    out = devpi.ok("login", "alice", "--password", "alice-pw")
    assert "logged in 'alice'" in out
    (token,) = _login_tokens(server, "alice")
    assert token["expires"] is not None and "replicate" not in token["scopes"]
    devpi.ok("index", "-c", "dev")
    devpi.ok("index", "-c", "prod", "volatile=False", "acl_upload=alice")
    devpi.ok("index", "-c", "staging", "bases=alice/dev", "mirror_whitelist=foo")
    staging = _json(server, "/alice/staging")["result"]
    assert staging["bases"] == ["alice/dev"] and staging["mirror_whitelist"] == ["foo"]
    assert _json(server, "/alice/prod")["result"]["volatile"] is False
    assert set(devpi.ok("index", "-l").split()) >= {"alice/dev", "alice/prod", "alice/staging"}
    listed = devpi.ok("use", "-l")
    assert "alice/staging" in listed and "bases=alice/dev" in listed
    devpi.ok("index", "alice/dev", "acl_upload+=bob")
    assert _json(server, "/alice/dev")["result"]["acl_upload"] == ["alice", "bob"]
    devpi.ok("index", "alice/dev", "acl_upload-=bob", "mirror_whitelist=foo,bar")
    dev = _json(server, "/alice/dev")["result"]
    assert dev["acl_upload"] == ["alice"] and dev["mirror_whitelist"] == ["bar", "foo"]
    devpi.ok("index", "alice/staging", "mirror_whitelist-=")
    assert _json(server, "/alice/staging")["result"]["mirror_whitelist"] == []
    # lockgate's own keys go the same way.
    devpi.ok("index", "alice/prod", f"push_requires={ENV}-x")
    assert _json(server, "/alice/prod")["result"]["push_requires"] == [f"{ENV}-x"]
    devpi.ok("index", "alice/prod", "push_requires-=")
    assert _json(server, "/alice/prod")["result"]["push_requires"] == []
    out = devpi.ok("index", "alice/prod")
    assert "volatile=False" in out and "push_requires=" in out
    devpi.ok("index", "--delete", "-y", "alice/staging")
    assert server.get("/alice/staging", headers=JSON).status_code == 404
    devpi.ok("user", "-m", "alice", "email=alice@new.example.org")
    assert _json(server, "/alice")["result"]["email"] == "alice@new.example.org"
    carol = Devpi(tmp_path, "carol")
    carol.ok("use", server.url)
    carol.ok("login", "root", "--password", ROOT_PASSWORD)
    carol.ok("user", "-c", "carol", "password=carol-pw")
    carol.ok("user", "--delete", "-y", "carol")
    assert server.get("/carol", headers=JSON).status_code == 404

    # Upload a wheel and an sdist to alice/dev, then list and read them.
    out = devpi.ok("use", "alice/dev")
    assert f"current devpi index: {server.url}/alice/dev (logged in as alice)" in out
    devpi.ok("upload", *map(str, _dists(tmp_path)))
    release = _release(server, "alice/dev", "acme-pkg")
    # Documentation (what `devpi upload --with-docs` builds and sends): stored and served.
    docs = tmp_path / "docs" / "acme_pkg-1.0.doc.zip"
    docs.parent.mkdir()
    with zipfile.ZipFile(docs, "w") as archive:
        archive.writestr("index.html", "<html>acme docs</html>")
    devpi.ok("upload", str(docs))
    served = server.get("/alice/dev/acme-pkg/1.0/+doc/index.html")
    assert served.status_code == 200 and served.text == "<html>acme docs</html>"
    assert served.headers["Content-Security-Policy"].startswith("sandbox")
    assert sorted(f["filename"] for f in release["urls"]) == [
        "acme_pkg-1.0-py2.py3-none-any.whl",
        "acme_pkg-1.0.tar.gz",
    ]
    assert {f["uploader"] for f in release["urls"]} == {"alice"}
    assert devpi.ok("list").split() == ["acme-pkg"]
    hrefs = devpi.ok("list", "acme-pkg").split()
    assert sorted(hrefs) == sorted(f["url"] for f in release["urls"])
    index = json.loads(devpi.ok("getjson", "/alice/dev"))
    assert index["type"] == "indexconfig" and index["result"]["projects"] == ["acme-pkg"]
    project = json.loads(devpi.ok("getjson", "/alice/dev/acme-pkg"))
    assert project["type"] == "projectconfig"
    links = project["result"]["1.0"]["+links"]
    assert {link["rel"] for link in links} == {"releasefile"}
    assert {link["hash_spec"] for link in links} == {
        f"sha256={f['digests']['sha256']}" for f in release["urls"]
    }
    assert {entry["who"] for link in links for entry in link["log"]} == {"alice"}

    # devpi test: the real tox on the sdist and the wheel; results posted to lockgate.
    out = devpi.ok("test", "acme-pkg", timeout=600)
    assert out.count("posting tox result data") == 2 and "all 3 tests passed" in out
    results = {
        f["filename"]: [(r["environment"], r["outcome"]) for r in f["test_results"]]
        for f in _release(server, "alice/dev", "acme-pkg")["urls"]
    }
    assert results == {name: [(ENV, "passed")] for name in results} and len(results) == 2

    # devpi push, sent with the HTTP method PUSH.
    out = devpi.ok("push", "acme-pkg==1.0", "alice/prod")
    assert "200 register acme-pkg 1.0 -> alice/prod" in out
    pushed = _release(server, "alice/prod", "acme-pkg")
    assert pushed["info"]["provenance"]["pushed_from"] == "alice/dev"
    assert {f["pushed_from"] for f in pushed["urls"]} == {"alice/dev"}
    assert len(pushed["urls"]) == 2

    # devpi install into a fresh venv, from a private index: pip sends the login token.
    devpi.ok("index", "alice/dev", "acl_read=alice")
    assert server.get("/alice/dev/+simple/acme-pkg/").status_code == 401
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    devpi.ok("install", "--venv", str(venv), "acme-pkg")
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import acme_pkg"], capture_output=True, timeout=60
    )
    assert imported.returncode == 0, imported.stderr

    # devpi remove: the release is gone from alice/dev, the pushed copy stays.
    out = devpi.ok("remove", "-y", "acme-pkg==1.0")
    assert "deleting release 1.0 of acme-pkg" in out
    assert server.get("/alice/dev/pypi/acme-pkg/json", auth=ALICE).status_code == 404
    assert len(_release(server, "alice/prod", "acme-pkg")["urls"]) == 2

    # devpi logoff: the client forgets the login.
    assert "login information deleted" in devpi.ok("logoff")
    assert "you need to be logged in" in devpi.fails("index", "-c", "alice/other")
    assert server.get("/alice/other", headers=JSON).status_code == 404


def _serial(server: LockgateServer) -> int:
    return server.serial()


def test_dv1_wrong_password_at_login_stores_nothing(server: LockgateServer, tmp_path: Path) -> None:
    """docs/reliability.md DV-1: a wrong password (or an unknown user) at `/+login` is
    401 saying so; no token is made, the serial does not move."""
    server.create_user(*ALICE)
    devpi = Devpi(tmp_path)
    devpi.ok("use", server.url)
    before = _serial(server)
    for user, password in (("alice", "wrong-pw"), ("nobody", "whatever")):
        out = devpi.fails("login", user, "--password", password)
        assert "401" in out and f"user '{user}' could not be authenticated" in out
    assert _serial(server) == before
    assert _login_tokens(server, "alice") == []
    assert "not logged in" in devpi.ok("use")
    # Malformed bodies: 400 naming what is missing.
    for body in ({}, {"user": "alice"}, {"user": 3, "password": "x"}):
        response = server.request("POST", "/+login", json=body, headers=JSON)
        assert response.status_code == 400, response.text
        assert response.json()["message"] == "Bad request: no user/password specified"
    assert _serial(server) == before


def test_dv2_push_to_an_index_the_user_may_not_write(
    server: LockgateServer, tmp_path: Path
) -> None:
    """docs/reliability.md DV-2: bob may read alice/dev but not upload to alice/prod:
    `devpi push` fails with 403 saying so, and alice/prod stays empty."""
    server.create_user(*ALICE)
    server.create_user(*BOB)
    server.create_index("alice/dev", ALICE)
    server.create_index("alice/prod", ALICE)
    alice = Devpi(tmp_path, "alice")
    alice.ok("use", f"{server.url}/alice/dev")
    alice.ok("login", "alice", "--password", "alice-pw")
    alice.ok("upload", *map(str, _dists(tmp_path)))
    bob = Devpi(tmp_path, "bob")
    bob.ok("use", f"{server.url}/alice/dev")
    bob.ok("login", "bob", "--password", "bob-pw")
    before = _serial(server)
    out = bob.fails("push", "acme-pkg==1.0", "alice/prod")
    assert "PUSH" in out and "403" in out and "bob" in out and "alice/prod" in out
    # And to an index that does not exist: 404, nothing made.
    out = bob.fails("push", "acme-pkg==1.0", "bob/nowhere")
    assert "404" in out and "bob/nowhere" in out
    assert _serial(server) == before
    assert server.get("/alice/prod/pypi/acme-pkg/json").status_code == 404


def test_dv3_revoked_login_is_refused_and_forgotten(server: LockgateServer, tmp_path: Path) -> None:
    """docs/reliability.md DV-3: a login token that was revoked (or expired) is a 401
    carrying devpi's `Location` to log in again: devpi-client says it removed the
    login; `/+api` reports the status 'expired'; nothing is changed."""
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    devpi = Devpi(tmp_path)
    devpi.ok("use", f"{server.url}/alice/dev")
    devpi.ok("login", "alice", "--password", "alice-pw")
    (token,) = _login_tokens(server, "alice")
    secret = json.loads((devpi.clientdir / "auth.json").read_text())["auth"][f"{server.url}/"]
    header = base64.b64encode(f"alice:{secret[0][1]}".encode()).decode()
    assert _json(server, "/+api")["result"]["authstatus"][0] == "noauth"
    api = server.get("/+api", headers={**JSON, "X-Devpi-Auth": header}).json()
    assert api["result"]["authstatus"] == ["ok", "alice", []]
    revoked = server.request("DELETE", f"/alice/+tokens/{token['id']}", auth=ALICE)
    assert revoked.status_code == 200, revoked.text
    before = _serial(server)
    refused = server.request(
        "PUT", "/alice/other", json={}, headers={**JSON, "X-Devpi-Auth": header}
    )
    assert refused.status_code == 401 and refused.headers["Location"] == "/+login"
    assert "revoked" in refused.json()["message"]
    api = server.get("/+api", headers={**JSON, "X-Devpi-Auth": header}).json()
    assert api["result"]["authstatus"][0] == "expired"
    out = devpi.fails("index", "-c", "alice/other")
    assert "removed expired authentication information" in out
    assert _serial(server) == before
    assert server.get("/alice/other", headers=JSON).status_code == 404


def test_dv4_malformed_devpi_auth_header(server: LockgateServer) -> None:
    """docs/reliability.md DV-4: an X-Devpi-Auth that is not base64 of user:password
    is a 401 saying so, never an anonymous request."""
    server.create_user(*ALICE)
    before = _serial(server)
    for value in ("not base64!", base64.b64encode(b"no-colon").decode()):
        response = server.request(
            "PUT", "/alice/dev", json={}, headers={**JSON, "X-Devpi-Auth": value}
        )
        assert response.status_code == 401, response.text
        assert "X-Devpi-Auth" in response.json()["message"]
    # A password works there as in devpi (devpi-client logged in elsewhere sends it).
    good = base64.b64encode(b"alice:alice-pw").decode()
    created = server.request("PUT", "/alice/dev", json={}, headers={"X-Devpi-Auth": good})
    assert created.status_code == 201, created.text
    assert _serial(server) == before + 1


def test_dv5_bad_key_value_changes_change_nothing(server: LockgateServer, tmp_path: Path) -> None:
    """docs/reliability.md DV-5: devpi's key-value changes that make no sense are 400
    naming the problem; the index stays as it was."""
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    devpi = Devpi(tmp_path)
    devpi.ok("use", f"{server.url}/alice/dev")
    devpi.ok("login", "alice", "--password", "alice-pw")
    config = _json(server, "/alice/dev")["result"]
    before = _serial(server)
    cases = {
        ("volatile+=x",): "'volatile' is not a list setting",
        ("acl_upload-=nobody",): "doesn't have value 'nobody'",
        ("colour=blue",): "unknown key(s) for a stage index: colour",
        ("bases+=alice/nowhere",): "base index alice/nowhere does not exist",
        ("acl_upload+=bob", "volatile=maybe"): "'volatile' must be true or false",
    }
    for changes, message in cases.items():
        out = devpi.fails("index", "alice/dev", *changes)
        assert "400" in out and message in out, (changes, out)
    for body in ([], ["no-equals-sign"], [3], "text"):
        response = server.request("PATCH", "/alice/dev", auth=ALICE, json=body, headers=JSON)
        assert response.status_code == 400, (body, response.text)
    assert _serial(server) == before
    assert _json(server, "/alice/dev")["result"] == config


def test_dv6_push_method_through_the_http_parser(server: LockgateServer) -> None:
    """docs/reliability.md DV-6: a PUSH request reaches the handler wherever it comes
    on a keep-alive connection (first, or after other requests, then followed by
    more); other unknown methods are still refused by the parser with 400."""
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    auth = base64.b64encode(b"alice:alice-pw").decode()
    body = b'{"name": "nothing-here", "version": "1.0", "targetindex": "alice/dev"}'
    push = (
        b"PUSH /alice/dev HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
        b"Content-Type: application/json\r\nX-Devpi-Auth: " + auth.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    get = b"GET /+status HTTP/1.1\r\nHost: x\r\n\r\n"
    for sequence in ([push, get], [get, push, get]):
        answers = []
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            for request in sequence:
                sock.sendall(request)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += sock.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                while len(rest) < length:
                    rest += sock.recv(65536)
                answers.append((head.split(b" ")[1], rest))
        statuses = [status for status, _ in answers]
        pushed = answers[sequence.index(push)]
        # The push reached lockgate's handler, which refuses this one.
        assert pushed[0] == b"400" and b"cannot push alice/dev onto itself" in pushed[1], answers
        assert statuses.count(b"200") == len(sequence) - 1, answers
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"FOO /+status HTTP/1.1\r\nHost: x\r\n\r\n")
        first_line = sock.recv(65536).split(b"\r\n")[0]
    assert b" 400 " in first_line, first_line


def test_login_token_works_on_a_replica(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    tmp_path: Path,
) -> None:
    """A devpi login made on the primary replicates: the replica reads a private
    index for X-Devpi-Auth (and for pip's Basic auth with the token); a login sent to
    the replica is refused naming the primary."""
    primary = make_server("primary")
    replica = start_replica(primary, tmp_path / "replica", make_db_url())
    try:
        primary.create_user(*ALICE)
        primary.create_index("alice/dev", ALICE, acl_read=["alice"])
        devpi = Devpi(tmp_path)
        # A private index: devpi-client is told to log in (a 403, as devpi answers it).
        out = devpi.ok("use", f"{primary.url}/alice/dev")
        assert "403" in out and "You might have to login first" in out
        devpi.ok("login", "alice", "--password", "alice-pw")
        assert "(logged in as alice)" in devpi.ok("use")
        secret = json.loads((devpi.clientdir / "auth.json").read_text())["auth"][f"{primary.url}/"][
            0
        ][1]
        deadline = time.monotonic() + 30
        while replica.serial() < primary.serial() and time.monotonic() < deadline:
            time.sleep(0.1)
        header = base64.b64encode(f"alice:{secret}".encode()).decode()
        answer = replica.get("/alice/dev", headers={**JSON, "X-Devpi-Auth": header})
        assert answer.status_code == 200 and answer.json()["type"] == "indexconfig"
        assert replica.get("/alice/dev/+simple/", auth=("alice", secret)).status_code == 200
        assert replica.get("/alice/dev/+simple/").status_code == 401
        refused = replica.request(
            "POST", "/+login", json={"user": "alice", "password": "alice-pw"}, headers=JSON
        )
        assert refused.status_code == 403 and primary.url in refused.json()["message"]
    finally:
        replica.stop()


# A failing toxresult as tox 4 writes it (`--result-json`) and `devpi test` posts it.
FAILING_TOXRESULT = {
    "reportversion": "1",
    "toxversion": "4.11.0",
    "platform": "linux",
    "host": "ci-7",
    "testenvs": {
        "lint": {
            "python": {"version": "3.11.7 (main, Dec  4 2023) [GCC 12.2.0]"},
            "setup": [
                {
                    "command": ["python", "-I", "-m", "pip", "install", "flake8"],
                    "retcode": 0,
                    "output": "Successfully installed flake8-7.0.0",
                }
            ],
            "test": [
                {"command": ["python", "-c", "print(1)"], "retcode": 0, "output": "1\n"},
                {
                    "command": ["flake8", "src"],
                    "retcode": 1,
                    "output": "src/acme.py:1:1: F401 'os' imported but unused\n1 error\n",
                },
            ],
        }
    },
}


def test_dv7_devpi_list_shows_test_results(server: LockgateServer, tmp_path: Path) -> None:
    """docs/reliability.md DV-7: `devpi list -t` and `devpi list -f` show the test
    results lockgate stores as devpi shows them: a passing `devpi test` on both files,
    a failing toxresult (setup and test commands) and a result in lockgate's own shape
    on the wheel. The version JSON has one rel "toxresult" link per result (for_href
    the file's href); each answers devpi's toxresult JSON; a result that does not
    exist is a 404 and an anonymous reader of a private index is refused."""
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    devpi = Devpi(tmp_path)
    devpi.ok("use", f"{server.url}/alice/dev")
    devpi.ok("login", "alice", "--password", "alice-pw")
    devpi.ok("upload", *map(str, _dists(tmp_path)))
    out = devpi.ok("test", "acme-pkg", timeout=600)
    assert out.count("posting tox result data") == 2, out
    files = {f["filename"]: f for f in _release(server, "alice/dev", "acme-pkg")["urls"]}
    wheel = files["acme_pkg-1.0-py2.py3-none-any.whl"]
    wheel_path = wheel["url"].split(server.url, 1)[1]
    posted = server.request("POST", wheel_path, auth=ALICE, json=FAILING_TOXRESULT)
    assert posted.status_code == 200, posted.text
    own = {"environment": "docs", "outcome": "passed", "log": "build succeeded\n"}
    posted = server.request("POST", wheel_path, auth=ALICE, json=own)
    assert posted.status_code == 200, posted.text

    # The version JSON: a toxresult link per result, oldest first, for its file.
    data = json.loads(devpi.ok("getjson", "/alice/dev/acme-pkg/1.0"))["result"]
    toxlinks = [link for link in data["+links"] if link["rel"] == "toxresult"]
    assert [link["for_href"] for link in toxlinks].count(wheel["url"]) == 3
    assert {link["for_href"] for link in toxlinks} == {f["url"] for f in files.values()}
    assert all(link["log"][0]["who"] == "alice" for link in toxlinks)
    failing = server.get(f"{wheel_path}/+toxresult/1", auth=ALICE)
    assert failing.status_code == 200 and failing.headers["Content-Type"].startswith(
        "application/json"
    )
    env = failing.json()["testenvs"]["lint"]
    assert env["python"] == {"version": "3.11.7"}
    assert env["setup"] == [
        {
            "command": ["python", "-I", "-m", "pip", "install", "flake8"],
            "retcode": 0,
            "output": "Successfully installed flake8-7.0.0",
        }
    ]
    assert [c["command"] for c in env["test"]] == [["python", "-c", "print(1)"], ["flake8", "src"]]
    assert env["test"][1]["retcode"] == 1
    assert env["test"][1]["output"] == "src/acme.py:1:1: F401 'os' imported but unused\n1 error"

    # devpi list -t: every environment's verdict, per file.
    out = devpi.ok("list", "-t", "acme-pkg")
    assert re.search(rf"alice\s+linux\s+{ENV}\s+3\.\d+\.\d+ tests passed", out), out
    assert out.count(" tests passed") == 3, out  # py3x on both files, docs on the wheel
    assert re.search(r"alice\s+linux\s+lint\s+3\.11\.7 tests failed", out), out
    assert re.search(r"alice\s+docs\s+no setup was performed", out), out
    assert "FAIL:" not in out
    # devpi list -f: the failing command and its output as well.
    out = devpi.ok("list", "-f", "acme-pkg")
    assert "tests failed" in out and "    OK:  python -c print(1)" in out, out
    assert "    FAIL: flake8 src" in out, out
    assert "    src/acme.py:1:1: F401 'os' imported but unused" in out, out

    # Bad requests: a result that does not exist, a file that does not exist.
    missing = server.get(f"{wheel_path}/+toxresult/3", auth=ALICE)
    assert missing.status_code == 404 and "no test result 3" in missing.text
    other = wheel_path.rsplit("/", 1)[0] + "/acme_pkg-9.9-py3-none-any.whl/+toxresult/0"
    assert server.get(other, auth=ALICE).status_code == 404
    # A private index: its results are as private as its files.
    devpi.ok("index", "alice/dev", "acl_read=alice")
    assert server.get(f"{wheel_path}/+toxresult/0").status_code == 401
    assert server.get(f"{wheel_path}/+toxresult/0", auth=ALICE).status_code == 200


def _source_tree_with_docs(root: Path) -> Path:
    """A project as a developer has it: pyproject.toml (setuptools), a module and a
    Sphinx doc tree in docs/ (conf.py, index.rst), no VCS."""
    project = root / "acme-docs"
    (project / "src" / "acme_docs").mkdir(parents=True)
    (project / "docs").mkdir()
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=70.1"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "acme-docs"\nversion = "1.0"\ndescription = "documented"\n'
    )
    (project / "src" / "acme_docs" / "__init__.py").write_text('"""Acme docs."""\n')
    (project / "docs" / "conf.py").write_text(
        'project = "acme-docs"\nextensions: list[str] = []\nhtml_theme = "alabaster"\n'
    )
    (project / "docs" / "index.rst").write_text(
        "Acme Docs\n=========\n\nThe acme-docs manual, built by sphinx-build.\n\n"
        ".. toctree::\n\n   usage\n"
    )
    (project / "docs" / "usage.rst").write_text("Usage\n=====\n\nCall it.\n")
    return project


def test_dv8_devpi_upload_with_docs_builds_and_serves_sphinx_docs(
    server: LockgateServer, tmp_path: Path
) -> None:
    """docs/reliability.md DV-8: `devpi upload --with-docs` in a project's source tree
    (devpi-client runs `python -m build` and `sphinx-build -E docs build`, zips the
    HTML and posts it with `:action=doc_upload` after the files): lockgate serves the
    built pages under `+doc/` with the docs sandbox CSP and its JSON names the docs.
    `--only-docs` again on a volatile index replaces them. Nothing is fetched: the
    build runs without isolation from the test environment's setuptools."""
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    project = _source_tree_with_docs(tmp_path)
    devpi = Devpi(tmp_path)
    devpi.cwd = project
    devpi.ok("use", f"{server.url}/alice/dev")
    devpi.ok("login", "alice", "--password", "alice-pw")
    out = devpi.ok("upload", "--with-docs", "--no-vcs", "--no-isolation", timeout=600)
    assert "[sphinx docs]" in out and "doc_upload of acme-docs-1.0.doc.zip" in out, out
    release = _release(server, "alice/dev", "acme-docs")
    assert sorted(f["filename"] for f in release["urls"]) == [
        "acme_docs-1.0-py3-none-any.whl",
        "acme_docs-1.0.tar.gz",
    ]
    assert release["info"]["docs_url"] == f"{server.url}/alice/dev/acme-docs/1.0/+doc/"
    page = server.get("/alice/dev/acme-docs/1.0/+doc/index.html")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "The acme-docs manual, built by sphinx-build." in page.text
    assert 'href="usage.html"' in page.text
    assert page.headers["Content-Security-Policy"].startswith("sandbox allow-scripts")
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    usage = server.get("/alice/dev/acme-docs/latest/+doc/usage.html")
    assert usage.status_code == 200 and "Call it." in usage.text
    assert server.get("/alice/dev/acme-docs/1.0/+doc/_static/alabaster.css").status_code == 200

    # --only-docs: the docs are rebuilt and replace the old ones (volatile index).
    (project / "docs" / "usage.rst").write_text("Usage\n=====\n\nCall it twice.\n")
    out = devpi.ok("upload", "--only-docs", "--no-vcs", "--no-isolation", timeout=600)
    assert "doc_upload of acme-docs-1.0.doc.zip" in out and "file_upload" not in out, out
    usage = server.get("/alice/dev/acme-docs/1.0/+doc/usage.html")
    assert "Call it twice." in usage.text
    assert len(_release(server, "alice/dev", "acme-docs")["urls"]) == 2
