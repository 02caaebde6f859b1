"""The release workflow end to end (README "Release workflow"): `lockgate test` runs
the real tox on an sdist it downloads from the index and posts the results; the
results show in the JSON API; a push to a gated index is refused (409 naming what
is missing) until they pass; `promote_to` moves a passing release by itself and
never a failing one; devpi's toxresult shape is accepted; bad input is a clear 4xx
that stores nothing; results and pushes replicate and survive export/import.
SQLite and PostgreSQL, real clients, no mocks."""

from __future__ import annotations

import asyncio
import json
import posixpath
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lockgate import migrations
from tests.functional.test_changelog_replay import _digest, _replay, _source_url
from tests.functional.test_replica import _wait_caught_up
from tests.functional.test_transfer import _lockgate, _state
from tests.support.dists import make_sdist, make_wheel
from tests.support.server import (
    LOCKGATE,
    Clients,
    LockgateServer,
    client_env,
    server_events,
    start_replica,
)

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-pw")
# The environment a tox run of this interpreter reports, and what `--runner` defaults to.
ENV = f"py{sys.version_info.major}{sys.version_info.minor}-{sys.platform}"
OTHER_ENV = "py399-other"


def _tox_ini(*commands: str) -> str:
    """A one-environment tox.ini that installs nothing (so tox needs no network)."""
    lines = "\n".join(f"    {command}" for command in commands)
    return f"[tox]\nenvlist = {ENV}\n\n[testenv]\nskip_install = true\ncommands =\n{lines}\n"


PASSING = _tox_ini("python -c \"print('all 3 tests passed')\"")
FAILING = _tox_ini("python -c \"import sys; print('boom: test_answer failed'); sys.exit(3)\"")


def _no_server_errors(*servers: LockgateServer) -> None:
    """INV-5: no 5xx and no unhandled error in any server's log."""
    for server in servers:
        bad = [
            event
            for event in server_events(server)
            if event.get("level") in ("error", "critical") or int(event.get("status", 0)) >= 500
        ]
        assert not bad, bad


def _token(server: LockgateServer, *scopes: str, indexes: list[str] | None = None) -> str:
    body: dict[str, Any] = {"name": "-".join(scopes), "scopes": list(scopes)}
    if indexes:
        body["indexes"] = indexes
    response = server.request("POST", "/alice/+tokens", auth=ALICE, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["result"]["token"])


def _upload(server: LockgateServer, clients: Clients, index: str, *files: Path) -> None:
    result = clients.twine_upload(f"{server.url}/{index}/", list(files), *ALICE)
    assert result.returncode == 0, result.stdout + result.stderr


def _release_json(server: LockgateServer, index: str, project: str, version: str) -> Any:
    response = server.get(f"/{index}/pypi/{project}/{version}/json")
    assert response.status_code == 200, response.text
    return response.json()


def _results(server: LockgateServer, index: str, project: str, version: str) -> dict[str, Any]:
    """filename → its test results, from the JSON API."""
    body = _release_json(server, index, project, version)
    return {f["filename"]: f["test_results"] for f in body["urls"]}


def _file_path(server: LockgateServer, index: str, project: str, filename: str) -> str:
    page = server.get(
        f"/{index}/+simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    ).json()
    url = next(f["url"] for f in page["files"] if f["filename"] == filename)
    return posixpath.normpath(f"/{index}/+simple/{project}/" + url.split("#")[0])


def _run_lockgate(
    tmp_path: Path, *args: str, user: str, password: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    """A `lockgate` command as CI runs it: credentials from the environment, and no
    package index at all (tox must not need one)."""
    env = client_env(
        tmp_path,
        LOCKGATE_USER=user,
        LOCKGATE_PASSWORD=password,
        PIP_NO_INDEX="1",
        VIRTUALENV_NO_DOWNLOAD="1",
        **extra,
    )
    return subprocess.run([LOCKGATE, *args], capture_output=True, text=True, env=env, timeout=600)


def _post(server: LockgateServer, path: str, auth: Any, body: Any) -> Any:
    return server.request("POST", path, auth=auth, json=body)


def _blob_count(server: LockgateServer) -> int:
    return sum(1 for p in (server.serverdir / "blobs").rglob("*") if p.is_file())


def _projects(tmp_path: Path) -> tuple[Path, Path]:
    dist = tmp_path / "dist"
    good = make_sdist(dist, "goodpkg", "1.0", extra_files={"tox.ini": PASSING})
    bad = make_sdist(dist, "badpkg", "1.0", extra_files={"tox.ini": FAILING})
    return good, bad


def test_lockgate_test_runs_tox_and_results_gate_a_push(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    """docs/reliability.md WF-1: the gate refuses until the real tox run passed."""
    server.create_user(*ALICE)
    server.create_index("alice/staging", ALICE)
    server.create_index("alice/prod", ALICE, volatile=False, push_requires=[ENV])
    good, bad = _projects(tmp_path)
    _upload(server, clients, "alice/staging", good, bad)
    ci = _token(server, "test-results", indexes=["alice/staging"])
    pusher = _token(server, "push", indexes=["alice/prod"])
    staging_url = f"{server.url}/alice/staging"

    # No results yet: the gate refuses, naming the environment; nothing changes.
    serial = server.serial()
    refused = _run_lockgate(
        tmp_path,
        "push",
        "goodpkg==1.0",
        "alice/prod",
        "--index",
        "alice/staging",
        "--url",
        server.url,
        user="__token__",
        password=pusher,
    )
    assert refused.returncode != 0
    assert "409" in refused.stderr and ENV in refused.stderr, refused.stderr
    assert server.serial() == serial
    assert server.get("/alice/prod/pypi/goodpkg/json").status_code == 404

    # CI runs the real tox on the sdists it downloads, and posts with its token.
    ran = _run_lockgate(
        tmp_path,
        "test",
        "goodpkg",
        "--index",
        staging_url,
        "--ci-url",
        "https://ci.example.org/run/17",
        user="__token__",
        password=ci,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "all 3 tests passed" in ran.stdout
    assert f"{ENV}: passed" in ran.stdout
    failed = _run_lockgate(
        tmp_path, "test", "badpkg==1.0", "--index", staging_url, user="__token__", password=ci
    )
    assert failed.returncode != 0, failed.stdout + failed.stderr
    assert f"{ENV}: failed" in failed.stdout

    # The results are in the JSON API of the release, beside every standard key.
    [good_result] = _results(server, "alice/staging", "goodpkg", "1.0")["goodpkg-1.0.tar.gz"]
    assert good_result["environment"] == ENV and good_result["outcome"] == "passed"
    assert good_result["python"] == ".".join(map(str, sys.version_info[:3]))
    assert good_result["platform"] == sys.platform and good_result["duration"] > 0
    assert good_result["url"] == "https://ci.example.org/run/17"
    assert good_result["posted_by"] == "alice" and good_result["index"] == "alice/staging"
    body = _release_json(server, "alice/staging", "goodpkg", "1.0")
    assert {"digests", "upload_time_iso_8601", "yanked", "uploader"} <= set(body["urls"][0])
    assert body["info"]["provenance"] is None and body["urls"][0]["pushed_from"] is None
    [bad_result] = _results(server, "alice/staging", "badpkg", "1.0")["badpkg-1.0.tar.gz"]
    assert bad_result["outcome"] == "failed" and bad_result["log_size"] > 0
    log = server.get(bad_result["log_url"].removeprefix(server.url))
    assert log.status_code == 200 and "boom: test_answer failed" in log.text
    assert log.headers["Content-Type"].startswith("text/plain")

    # Now the push passes: a server-side copy referencing the same blobs.
    blobs = _blob_count(server)
    pushed = _run_lockgate(
        tmp_path,
        "push",
        "goodpkg==1.0",
        "alice/prod",
        "--index",
        staging_url,
        user="__token__",
        password=pusher,
    )
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert "store_releasefile alice/prod/goodpkg-1.0.tar.gz" in pushed.stdout
    assert _blob_count(server) == blobs
    prod = _release_json(server, "alice/prod", "goodpkg", "1.0")
    staging = _release_json(server, "alice/staging", "goodpkg", "1.0")
    assert prod["urls"][0]["digests"] == staging["urls"][0]["digests"]
    assert prod["urls"][0]["pushed_from"] == "alice/staging"
    assert prod["info"]["provenance"]["pushed_from"] == "alice/staging"
    assert prod["info"]["provenance"]["pushed_by"] == "alice"
    assert prod["urls"][0]["test_results"][0]["outcome"] == "passed"
    download = server.get(_file_path(server, "alice/prod", "goodpkg", "goodpkg-1.0.tar.gz"))
    assert download.status_code == 200 and download.content == good.read_bytes()
    # Pushing again changes nothing; the failing release is refused, naming why.
    serial = server.serial()
    again = _post(
        server,
        "/alice/staging",
        ("__token__", pusher),
        {"name": "goodpkg", "version": "1.0", "targetindex": "alice/prod"},
    )
    assert again.status_code == 200 and again.json()["type"] == "actionlog"
    assert server.serial() == serial
    bad_push = _post(
        server,
        "/alice/staging/",
        ("__token__", pusher),
        {"name": "badpkg", "version": "1.0", "targetindex": "alice/prod"},
    )
    assert bad_push.status_code == 409 and f"{ENV} failed" in bad_push.json()["message"]
    assert server.serial() == serial

    # A command instead of tox: one result, named by --env; a wheel when there is no sdist.
    wheel = make_wheel(tmp_path / "wheels", "wheelonly", "2.0")
    _upload(server, clients, "alice/staging", wheel)
    ran = _run_lockgate(
        tmp_path,
        "test",
        "wheelonly==2.0",
        "--index",
        "alice/staging",
        "--url",
        server.url,
        "--runner",
        "python -c \"import os; print('unpacked', sorted(os.listdir('.')))\"",
        "--env",
        "smoke",
        user="alice",
        password="alice-pw",
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "wheelonly" in ran.stdout
    [smoke] = _results(server, "alice/staging", "wheelonly", "2.0")[wheel.name]
    assert smoke["environment"] == "smoke" and smoke["outcome"] == "passed"
    assert smoke["posted_by"] == "alice"
    _no_server_errors(server)


def test_promote_to_moves_the_passing_release_and_not_the_failing_one(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    """docs/reliability.md WF-2 and WF-5."""
    server.create_user(*ALICE)
    server.create_index("alice/prod", ALICE, volatile=False, push_requires=[ENV, OTHER_ENV])
    server.create_index("alice/staging", ALICE, promote_to="alice/prod")
    good, bad = _projects(tmp_path)
    _upload(server, clients, "alice/staging", good, bad)
    ci = ("__token__", _token(server, "test-results", indexes=["alice/staging"]))
    good_path = _file_path(server, "alice/staging", "goodpkg", good.name)
    bad_path = _file_path(server, "alice/staging", "badpkg", bad.name)

    # One required environment is not enough.
    first = _post(server, good_path, ci, {"environment": ENV, "outcome": "passed"})
    assert first.status_code == 200, first.text
    assert first.json()["result"]["promoted"] == []
    assert server.get("/alice/prod/pypi/goodpkg/json").status_code == 404
    # The second one promotes it, in the same transaction, with no person involved.
    second = _post(
        server, good_path, ci, {"environment": OTHER_ENV, "outcome": "passed", "duration": 2}
    )
    assert second.status_code == 200, second.text
    assert second.json()["result"]["promoted"] == ["alice/prod"]
    prod = _release_json(server, "alice/prod", "goodpkg", "1.0")
    assert prod["info"]["provenance"]["pushed_from"] == "alice/staging"
    assert prod["info"]["provenance"]["pushed_by"] == "system"
    assert {r["environment"] for r in prod["urls"][0]["test_results"]} == {ENV, OTHER_ENV}

    # A failing required environment: never promoted, whatever else passes.
    both = [
        {"environment": ENV, "outcome": "passed"},
        {"environment": OTHER_ENV, "outcome": "failed", "log": "E assert 41 == 42"},
    ]
    posted = _post(server, bad_path, ci, both)
    assert posted.status_code == 200 and posted.json()["result"]["promoted"] == []
    assert server.get("/alice/prod/pypi/badpkg/json").status_code == 404

    # The same real run through `lockgate test` for a new release: promoted by itself.
    server.create_index("alice/quick", ALICE, volatile=False)
    assert server.request(
        "PATCH", "/alice/staging", auth=ALICE, json={"promote_to": "alice/quick"}
    ).ok
    newer = make_sdist(tmp_path / "dist2", "goodpkg", "1.1", extra_files={"tox.ini": PASSING})
    _upload(server, clients, "alice/staging", newer)
    ran = _run_lockgate(
        tmp_path,
        "test",
        "goodpkg==1.1",
        "--index",
        f"{server.url}/alice/staging/+simple/",
        user="__token__",
        password=ci[1],
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "promoted to alice/quick" in ran.stdout
    quick = _release_json(server, "alice/quick", "goodpkg", "1.1")
    assert quick["info"]["provenance"]["pushed_by"] == "system"
    # A failing run is not promoted (quick requires nothing: every reported env must pass).
    failing = _run_lockgate(
        tmp_path, "test", "badpkg", "--index", f"{server.url}/alice/staging",
        user="__token__", password=ci[1],
    )  # fmt: skip
    assert failing.returncode != 0
    assert server.get("/alice/quick/pypi/badpkg/json").status_code == 404

    # promote_to is checked when it is set; each refusal changes nothing.
    server.create_user("bob", "bob-pw")
    server.create_index("bob/prod", ("bob", "bob-pw"))
    serial = server.serial()
    for change, phrase in (
        ({"promote_to": "alice/nowhere"}, "does not exist"),
        ({"promote_to": "root/pypi"}, "mirror"),
        ({"promote_to": "alice/staging"}, "itself"),
        ({"promote_to": "not-an-index"}, "user/index"),
        ({"promote_to": "bob/prod"}, "acl_upload"),
        ({"push_requires": ["py 311!"]}, "invalid environment"),
        ({"push_requires": ["x" * 65]}, "invalid environment"),
    ):
        answer = server.request("PATCH", "/alice/staging", auth=ALICE, json=change)
        assert answer.status_code == 400, (change, answer.text)
        assert phrase in answer.json()["message"], (change, answer.text)
    cycle = server.request(
        "PATCH", "/alice/quick", auth=ALICE, json={"promote_to": "alice/staging"}
    )
    assert cycle.status_code == 400 and "cycle" in cycle.json()["message"]
    gone = server.request("DELETE", "/alice/quick", auth=ALICE)
    assert gone.status_code == 409 and "promote_to" in gone.text
    assert server.serial() == serial
    _no_server_errors(server)


def _toxresult(filename: str, sha256: str) -> dict[str, Any]:
    """devpi's toxresult, written by hand from its documented shape (tox 3 kept
    retcodes as strings and output as text)."""
    return {
        "reportversion": "1",
        "toxversion": "3.28.0",
        "platform": "linux",
        "host": "ci-runner-7",
        "installpkg": {"basename": filename, "sha256": sha256, "md5": "0" * 32},
        "testenvs": {
            "py311": {
                "python": {"version": "3.11.7 (main, Dec  8 2023) [GCC 12.2.0]"},
                "setup": [{"command": ["pip", "install", filename], "retcode": "0", "output": ""}],
                "test": [
                    {"command": ["pytest"], "retcode": "0", "output": "3 passed in 0.1s"},
                ],
            },
            "py312": {
                "python": {"version": "3.12.1"},
                "test": [{"command": ["pytest"], "retcode": "1", "output": "1 failed"}],
            },
        },
    }


def test_devpi_toxresult_shape_and_bad_input(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    """devpi's shape accepted; docs/reliability.md WF-3 and WF-4."""
    server.create_user(*ALICE)
    server.create_index("alice/staging", ALICE)
    server.create_index("alice/prod", ALICE, volatile=False)
    good, _ = _projects(tmp_path)
    _upload(server, clients, "alice/staging", good)
    path = _file_path(server, "alice/staging", "goodpkg", good.name)
    sha256 = path.split("/")[-2]

    # devpi test posts its toxresult to the file URL; the GET still serves the file.
    posted = _post(server, path, ALICE, _toxresult(good.name, sha256))
    assert posted.status_code == 200, posted.text
    by_env = {r["environment"]: r for r in _results(server, "alice/staging", "goodpkg", "1.0")[
        good.name
    ]}  # fmt: skip
    assert by_env["py311"]["outcome"] == "passed" and by_env["py311"]["python"] == "3.11.7"
    assert by_env["py312"]["outcome"] == "failed" and by_env["py311"]["platform"] == "linux"
    log = server.get(by_env["py312"]["log_url"].removeprefix(server.url))
    assert "1 failed" in log.text
    # WF-4: a log is served only through an index whose results name it; no other blob is.
    log_sha = by_env["py312"]["log_url"].rsplit("/", 1)[1]
    assert server.get(f"/alice/prod/+testlog/{log_sha}").status_code == 404
    file_sha = _release_json(server, "alice/staging", "goodpkg", "1.0")["urls"][0]["digests"]
    assert server.get(f"/alice/staging/+testlog/{file_sha['sha256']}").status_code == 404
    assert server.get(path).content == good.read_bytes()

    # A log over 1 MiB keeps its end, behind a marker.
    long_log = "x" * (1536 * 1024) + "\nTHE END\n"
    answer = _post(
        server, path, ALICE, {"environment": "big", "outcome": "passed", "log": long_log}
    )
    assert answer.status_code == 200, answer.text
    [big] = answer.json()["result"]["results"]
    assert big["log_truncated"] and big["log_size"] <= 1024 * 1024
    [shown] = [r for r in _results(server, "alice/staging", "goodpkg", "1.0")[good.name]
               if r["environment"] == "big"]  # fmt: skip
    text = server.get(shown["log_url"].removeprefix(server.url)).text
    assert text.startswith("[lockgate: log truncated") and text.endswith("THE END\n")

    # Bad input: a clear 4xx each, nothing stored (serial and blobs unchanged).
    no_scope = ("__token__", _token(server, "upload", indexes=["alice/staging", "alice/prod"]))
    serial, blobs = server.serial(), _blob_count(server)
    missing = path.rsplit("/", 1)[0] + "/goodpkg-9.9.tar.gz"
    cases: list[tuple[str, str, Any, Any, int, str]] = [
        ("result", path, ALICE, {"environment": "py 311!", "outcome": "passed"}, 400, "invalid"),
        ("result", path, ALICE, {"environment": "x" * 65, "outcome": "passed"}, 400, "invalid"),
        ("result", path, ALICE, {"environment": "py311", "outcome": "ok"}, 400, "outcome"),
        ("result", path, ALICE, {"environment": "py311"}, 400, "outcome"),
        ("result", path, ALICE, {"environment": "py311", "outcome": "passed", "x": 1}, 400, "x"),
        ("result", path, ALICE, {"environment": "a", "outcome": "passed", "duration": -1}, 400,
         "duration"),
        ("result", path, ALICE, {"environment": "a", "outcome": "passed", "url": "file:///x"}, 400,
         "url"),
        ("result", path, ALICE, {"testenvs": {"bad name": {}}}, 400, "invalid"),
        ("result", path, ALICE, {"testenvs": {"py": {"test": [{"command": []}]}}}, 400,
         "retcode"),
        ("result", path, ALICE, [], 400, "list"),
        ("result", missing, ALICE, {"environment": "py311", "outcome": "passed", "log": "l"},
         404, "not found"),
        ("result", path, no_scope, {"environment": "py311", "outcome": "passed"}, 403,
         "test-results"),
        ("push", "/alice/staging", ALICE, {"name": "goodpkg", "version": "9.9",
                                           "targetindex": "alice/prod"}, 404, "not found"),
        ("push", "/alice/staging", ALICE, {"name": "goodpkg", "version": "1.0",
                                           "targetindex": "alice/none"}, 404, "does not exist"),
        ("push", "/alice/staging", ALICE, {"name": "goodpkg", "version": "1.0",
                                           "targetindex": "root/pypi"}, 400, "mirror"),
        ("push", "/alice/staging", ALICE, {"name": "goodpkg", "version": "1.0",
                                           "targetindex": "alice/staging"}, 400, "itself"),
        ("push", "/alice/staging", ALICE, {"name": "goodpkg", "version": "1.0"}, 400,
         "targetindex"),
        ("push", "/alice/staging", ALICE, {"name": "goodpkg", "version": "1.0",
                                           "posturl": "https://upload.pypi.org/legacy/"}, 400,
         "not supported"),
        ("push", "/alice/staging", no_scope, {"name": "goodpkg", "version": "1.0",
                                              "targetindex": "alice/prod"}, 403, "push"),
    ]  # fmt: skip
    for what, url, auth, body, status, phrase in cases:
        answer = _post(server, url, auth, body)
        assert answer.status_code == status, (what, body, answer.status_code, answer.text)
        assert phrase in answer.json()["message"], (what, body, answer.text)
    for url in (path, "/alice/staging"):
        malformed = server.request(
            "POST", url, auth=ALICE, data=b'{"environment": ',
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert malformed.status_code == 400 and "JSON" in malformed.text, malformed.text
    too_large = server.request(
        "POST", path, auth=ALICE, data=b" " * (16 * 1024 * 1024 + 1),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert too_large.status_code == 413, too_large.text
    anonymous = _post(server, path, None, {"environment": "py311", "outcome": "passed"})
    assert anonymous.status_code == 401
    wrong = _post(server, path, ("alice", "wrong"), {"environment": "a", "outcome": "passed"})
    assert wrong.status_code == 401
    assert server.serial() == serial and _blob_count(server) == blobs
    assert server.get("/alice/prod/pypi/goodpkg/json").status_code == 404
    _no_server_errors(server)


def test_results_and_pushes_replicate_replay_and_survive_export_import(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    clients: Clients,
    tmp_path: Path,
) -> None:
    """docs/reliability.md WF-6 (and INV-3 for the new entry kinds)."""
    primary = make_server("primary")
    replica = start_replica(primary, tmp_path / "replica", make_db_url())
    try:
        primary.create_user(*ALICE)
        primary.create_index("alice/prod", ALICE, volatile=False, push_requires=[ENV])
        primary.create_index("alice/staging", ALICE, promote_to="alice/prod")
        primary.create_index("alice/manual", ALICE)
        good, bad = _projects(tmp_path)
        _upload(primary, clients, "alice/staging", good, bad)
        good_path = _file_path(primary, "alice/staging", "goodpkg", good.name)
        bad_path = _file_path(primary, "alice/staging", "badpkg", bad.name)
        promoted = _post(
            primary, good_path, ALICE, {"environment": ENV, "outcome": "passed", "log": "ok\n"}
        )
        assert promoted.json()["result"]["promoted"] == ["alice/prod"]
        failed = _post(
            primary, bad_path, ALICE, {"environment": ENV, "outcome": "failed", "log": "no\n"}
        )
        assert failed.status_code == 200
        manual = _post(
            primary,
            "/alice/staging",
            ALICE,
            {"name": "badpkg", "version": "1.0", "targetindex": "alice/manual"},
        )
        assert manual.status_code == 200, manual.text
        _wait_caught_up(primary, replica)

        # The replica shows the same results, provenance and logs.
        for index, project in (
            ("alice/staging", "goodpkg"),
            ("alice/prod", "goodpkg"),
            ("alice/manual", "badpkg"),
        ):
            there = _release_json(replica, index, project, "1.0")
            here = _release_json(primary, index, project, "1.0")
            assert json.dumps(there).replace(replica.url, "") == json.dumps(here).replace(
                primary.url, ""
            ), index
        log_url = _results(replica, "alice/prod", "goodpkg", "1.0")[good.name][0]["log_url"]
        assert replica.get(log_url.removeprefix(replica.url)).text == "ok\n"
        assert asyncio.run(_digest(_source_url(replica))) == asyncio.run(
            _digest(_source_url(primary))
        )
        refused = _post(replica, good_path, ALICE, {"environment": ENV, "outcome": "passed"})
        assert refused.status_code == 403 and primary.url in refused.text
    finally:
        replica.stop()
    _no_server_errors(primary, replica)

    # Export, then import into a fresh server: the same state, the same answers.
    bundle = tmp_path / "full.tar"
    exported = _lockgate("export", "--serverdir", str(primary.serverdir), str(bundle))
    assert exported.returncode == 0, exported.stderr
    target = make_server("target")
    imported = _lockgate("import", "--serverdir", str(target.serverdir), str(bundle))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert _state(target) == _state(primary)
    assert _state(target)["test_results"] and _state(target)["release_provenance"]
    checked = _lockgate("fsck", "--serverdir", str(target.serverdir))
    assert checked.returncode == 0, checked.stdout
    imported_results = _results(target, "alice/prod", "goodpkg", "1.0")[good.name]
    assert imported_results[0]["outcome"] == "passed"
    assert target.get(imported_results[0]["log_url"].removeprefix(target.url)).text == "ok\n"
    assert (
        _release_json(target, "alice/manual", "badpkg", "1.0")["info"]["provenance"]["pushed_from"]
        == "alice/staging"
    )

    # And replaying the changelog into an empty database gives the same state (INV-3).
    primary.stop()
    replayed = make_db_url() or f"sqlite:///{tmp_path / 'replayed.sqlite'}"
    migrations.upgrade(replayed)
    asyncio.run(_replay(_source_url(primary), replayed))
    assert asyncio.run(_digest(replayed)) == asyncio.run(_digest(_source_url(primary)))
    _no_server_errors(target)
