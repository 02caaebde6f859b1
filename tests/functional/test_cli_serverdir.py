"""The two commands and the server directory: init, serve, migrate and the admin CLI."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import requests

from lockgate import migrations
from lockgate.indexes.config import PYPI_SIMPLE_URL
from tests.support.dists import make_wheel, sha256_file
from tests.support.server import LOCKGATE, Clients, LockgateServer, free_port


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    return subprocess.run(
        [LOCKGATE, *args], capture_output=True, text=True, timeout=120, env={**base, **(env or {})}
    )


def _listing(path: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in sorted(path.rglob("*"))}


def test_init_creates_then_refuses_a_second_time(tmp_path: Path) -> None:
    serverdir = tmp_path / "srv"
    first = _run("init", "--serverdir", str(serverdir), "--root-password", "pw")
    assert first.returncode == 0, first.stderr
    assert (serverdir / "lockgate.toml").is_file()
    assert (serverdir / "lockgate.sqlite").is_file()
    before = _listing(serverdir)
    second = _run("init", "--serverdir", str(serverdir), "--root-password", "other")
    assert second.returncode != 0
    assert "already a lockgate server directory" in second.stderr
    assert _listing(serverdir) == before


def test_init_generates_and_prints_a_strong_password_once(tmp_path: Path) -> None:
    result = _run("init", "--serverdir", str(tmp_path / "srv"))
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    password = lines[lines.index(next(x for x in lines if "Generated password" in x)) + 1]
    assert len(password) >= 20
    assert password not in (tmp_path / "srv" / "lockgate.toml").read_text()


def test_init_refuses_a_foreign_non_empty_directory(tmp_path: Path) -> None:
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for command in ("init", "serve"):
        result = (
            _run(command, "--serverdir", str(foreign), "--port", str(free_port()))
            if (command == "serve")
            else _run(command, "--serverdir", str(foreign))
        )
        assert result.returncode != 0
        assert "not a lockgate server directory" in result.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_serve_initialises_a_new_directory_and_the_password_works(tmp_path: Path) -> None:
    serverdir = tmp_path / "fresh" / "srv"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [LOCKGATE, "serve", "--serverdir", str(serverdir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line.strip())
            if "serving" in line:
                break
        password = lines[lines.index(next(x for x in lines if "Generated password" in x)) + 1]
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{port}/+status", timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        response = requests.put(
            f"http://127.0.0.1:{port}/carol",
            json={"password": "x"},
            auth=("root", password),
            timeout=10,
        )
        assert response.status_code == 201, response.text
        root = requests.get(
            f"http://127.0.0.1:{port}/", headers={"Accept": "application/json"}, timeout=10
        ).json()
        # The default upstream is PyPI's (only compared, never contacted).
        assert root["result"]["root"]["indexes"]["pypi"]["mirror_url"] == PYPI_SIMPLE_URL
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert list((serverdir / "tmp").iterdir()) == []


def test_serve_defaults_to_a_per_user_data_directory(tmp_path: Path) -> None:
    server = LockgateServer(tmp_path / "unused")
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    result = _run("init", "--root-password", "pw", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "xdg" / "lockgate" / "server" / "lockgate.toml").is_file()
    del server


def test_serve_refuses_an_outdated_schema_until_migrated(tmp_path: Path) -> None:
    serverdir = tmp_path / "srv"
    assert _run("init", "--serverdir", str(serverdir), "--root-password", "pw").returncode == 0
    with sqlite3.connect(serverdir / "lockgate.sqlite") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0000'")
    result = _run("serve", "--serverdir", str(serverdir), "--port", str(free_port()))
    assert result.returncode != 0
    assert "lockgate migrate" in result.stderr
    with sqlite3.connect(serverdir / "lockgate.sqlite") as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (migrations.head_revision(),))
    migrated = _run("migrate", "--serverdir", str(serverdir))
    assert migrated.returncode == 0, migrated.stderr
    assert f"already at {migrations.head_revision()}" in migrated.stdout


def test_admin_cli_manages_users_and_indexes(server: LockgateServer) -> None:
    env = {"LOCKGATE_URL": server.url, "LOCKGATE_PASSWORD": "root-secret-pw"}
    created = _run("user", "create", "dave", "--password", "dave-pw", env=env)
    assert created.returncode == 0, created.stderr
    index = _run("index", "create", "dave/dev", "bases=root/pypi", "volatile=false", env=env)
    assert index.returncode == 0, index.stderr
    shown = _run("index", "show", "dave/dev", env=env)
    assert '"volatile": false' in shown.stdout
    listed = _run("user", "list", env=env)
    assert "dave  indexes: dev" in listed.stdout
    bad = _run("index", "create", "dave/../x", env=env)
    assert bad.returncode != 0
    wrong = _run("user", "delete", "dave", env={**env, "LOCKGATE_PASSWORD": "nope"})
    assert wrong.returncode != 0 and "401" in wrong.stderr


def test_sigterm_lets_in_flight_requests_finish(server: LockgateServer) -> None:
    """A long-poll in flight when SIGTERM arrives still gets its answer, and the
    process exits 0 with nothing left in tmp/."""
    import threading

    serial = server.serial()
    answers: list[requests.Response] = []

    def long_poll() -> None:
        answers.append(
            requests.get(
                f"{server.url}/+changelog?since={serial}&wait=6",
                auth=server.root_auth(),
                timeout=30,
            )
        )

    thread = threading.Thread(target=long_poll)
    thread.start()
    time.sleep(1.5)  # let the long-poll reach the server before the signal
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    thread.join(30)
    assert answers and answers[0].status_code == 200
    assert server.process.wait(30) == 0
    assert list((server.serverdir / "tmp").iterdir()) == []


def test_fsck_finds_missing_corrupt_and_orphan_blobs(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    server.create_user("fi", "fi-pw")
    server.create_index("fi/dev", ("fi", "fi-pw"))
    wheel = make_wheel(tmp_path, "checked", "1.0")
    assert clients.twine_upload(f"{server.url}/fi/dev/", [wheel], "fi", "fi-pw").returncode == 0
    server.stop()
    clean = _run("fsck", "--serverdir", str(server.serverdir))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 problem(s)" in clean.stdout
    blob = next(p for p in (server.serverdir / "blobs").rglob("*") if p.name == sha256_file(wheel))
    orphan = blob.parent / ("f" * 64)
    orphan.write_bytes(b"left by a crash")
    blob.write_bytes(b"bit rot")
    broken = _run("fsck", "--serverdir", str(server.serverdir))
    assert broken.returncode == 1
    assert f"blob {blob.name}: content has sha256" in broken.stdout
    assert f"orphan blob {orphan.name}" in broken.stdout
    blob.unlink()
    missing = _run("fsck", "--serverdir", str(server.serverdir))
    assert missing.returncode == 1 and f"blob {blob.name}: missing" in missing.stdout
