"""A real `lockgate serve` process for functional tests, and the real clients.

`LockgateServer` starts the installed command in a temp server directory on a
free loopback port and stops it with SIGTERM. `Clients` runs pip, uv and twine
from the test environment as subprocesses, isolated from the machine's own
pip/uv configuration so that nothing but the test server is consulted.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

BIN = Path(sys.executable).parent
LOCKGATE = str(BIN / "lockgate")
ROOT_PASSWORD = "root-secret-pw"


# Servers the tests start get ports below the kernel's ephemeral range (32768 and up
# on Linux): a port the kernel handed out with bind(0) may be taken, before the server
# binds it, by the local end of any outgoing connection (to PostgreSQL, say). Each
# xdist worker draws from its own slice, so two workers never race for one port.
_PORT_RANGE = (20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    low, high = _PORT_RANGE
    size = (high - low) // max(count, 1)
    start = low + size * (int(worker) if worker.isdigit() else 0)
    for _ in range(200):
        port = random.randrange(start, start + size)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {start}..{start + size}")


def client_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "TWINE_", "LOCKGATE_"))
    }
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "UV_NO_CONFIG": "1",
            "UV_CACHE_DIR": str(tmp / "uv-cache"),
            "UV_PYTHON_DOWNLOADS": "never",
            "NO_COLOR": "1",
        }
    )
    env.update(extra)
    return env


class LockgateServer:
    def __init__(
        self,
        serverdir: Path,
        db_url: str | None = None,
        env: dict[str, str] | None = None,
        **flags: str,
    ) -> None:
        self.serverdir = serverdir
        self.db_url = db_url
        #: Extra environment for the `lockgate serve` process, merged over ours.
        self.env = dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.flags = flags
        self.process: subprocess.Popen[str] | None = None
        self.log_path = serverdir.parent / f"{serverdir.name}-server.log"
        self.http = requests.Session()

    def command(self) -> list[str]:
        cmd = [
            LOCKGATE,
            "serve",
            "--serverdir",
            str(self.serverdir),
            "--port",
            str(self.port),
            "--root-password",
            ROOT_PASSWORD,
            "--log-format",
            "json",
        ]
        if self.db_url:
            cmd += ["--db", self.db_url]
        if "workers" not in self.flags:
            # One process (no supervisor) unless a test asks for workers: a kill -9 of
            # `process` then kills the server, as the crash tests mean it to.
            cmd += ["--workers", "1"]
        for key, value in self.flags.items():
            cmd += [f"--{key.replace('_', '-')}"] + ([value] if value else [])
        return cmd

    def start(self, timeout: float = 30.0) -> LockgateServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
        env.update(self.env)
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, text=True, env=env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"lockgate serve exited early:\n{self.log()}")
            try:
                if requests.get(self.url + "/+status", timeout=5).status_code == 200:
                    return self
            # Not listening yet (refused), or too busy to answer in time on a loaded machine.
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"lockgate serve did not come up:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    # --- HTTP verbs, the small driver the tests read like sentences ---------
    def request(
        self, method: str, path: str, auth: tuple[str, str] | None = None, **kw: Any
    ) -> requests.Response:
        kw.setdefault("timeout", 30)
        kw.setdefault("allow_redirects", False)
        return self.http.request(method, self.url + path, auth=auth, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def root_auth(self) -> tuple[str, str]:
        return ("root", ROOT_PASSWORD)

    def create_user(self, name: str, password: str, email: str | None = None) -> None:
        body = {"password": password, **({"email": email} if email else {})}
        response = self.request("PUT", f"/{name}", auth=self.root_auth(), json=body)
        assert response.status_code == 201, response.text

    def create_index(self, path: str, auth: tuple[str, str], **config: Any) -> None:
        response = self.request("PUT", f"/{path}", auth=auth, json=config)
        assert response.status_code == 201, response.text

    def serial(self) -> int:
        return int(self.get("/+status").json()["serial"])

    def simple_url(self, index: str) -> str:
        return f"{self.url}/{index}/+simple/"


def replicate_token(primary: LockgateServer) -> str:
    """A token of the primary's root that may follow it, and do nothing else."""
    response = primary.request(
        "POST",
        "/root/+tokens",
        auth=primary.root_auth(),
        json={"name": "replica", "scopes": ["replicate"]},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["result"]["token"])


def start_replica(
    primary: LockgateServer, serverdir: Path, db_url: str | None, **flags: str
) -> LockgateServer:
    """A replica of `primary` (following with a `replicate` token), started."""
    return LockgateServer(
        serverdir, db_url, primary=primary.url, primary_token=replicate_token(primary), **flags
    ).start()


class Clients:
    """pip, uv and twine, as the user runs them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = client_env(tmp)

    def run(self, args: Sequence[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), capture_output=True, text=True, env=self.env, timeout=timeout
        )

    def twine_upload(
        self, url: str, files: Sequence[Path], user: str, password: str, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            [
                str(BIN / "twine"),
                "upload",
                "--non-interactive",
                "--disable-progress-bar",
                "--repository-url",
                url,
                "-u",
                user,
                "-p",
                password,
                *extra,
                *map(str, files),
            ]
        )

    def pip_install(
        self, index_url: str, *requirements: str, target: Path
    ) -> subprocess.CompletedProcess[str]:
        if target.exists():
            shutil.rmtree(target)
        return self.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-cache-dir",
                "--index-url",
                index_url,
                "--target",
                str(target),
                *requirements,
            ]
        )

    def uv_install(
        self, index_url: str, *requirements: str, target: Path
    ) -> subprocess.CompletedProcess[str]:
        if target.exists():
            shutil.rmtree(target)
        return self.run(
            [
                str(BIN / "uv"),
                "pip",
                "install",
                "--no-cache",
                "--python",
                sys.executable,
                "--index-url",
                index_url,
                "--target",
                str(target),
                *requirements,
            ]
        )


def server_events(server: LockgateServer) -> list[dict[str, Any]]:
    """The JSON events of the server's log (`--log-format json`), oldest first."""
    events = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                events.append(json.loads(line))
    return events


def tmp_entries(server: LockgateServer) -> list[str]:
    """The names in the server directory's `tmp/` (uploads in flight or left behind)."""
    return sorted(p.name for p in (server.serverdir / "tmp").iterdir())


def upload_form(name: str, version: str, path: Path, **extra: str) -> dict[str, str]:
    """The legacy-upload form fields twine sends for a wheel (override with `extra`)."""
    import hashlib

    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": name,
        "version": version,
        "metadata_version": "2.1",
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": hashlib.sha256(path.read_bytes()).hexdigest(),
        **extra,
    }
