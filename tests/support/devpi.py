"""The real devpi-server (and devpi-client) from PyPI, for the devpi import tests.

`devpi_venv()` builds a separate virtual environment once (uv venv + uv pip install)
under a cached path shared by every test session and worker (a lock file keeps two
workers from building it at once). `DevpiServer` runs `devpi-init` and
`devpi-server` in a temp server directory on a free loopback port, offline: no
root/pypi mirror is created and `--offline-mode` keeps it from ever asking an
upstream, so the tests never reach the internet. `offline=False` lets a mirror index
the test creates (on a loopback fake upstream, never PyPI) fetch from its upstream.
"""

from __future__ import annotations

import base64
import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.support.server import BIN, free_port

# Pinned so that the export format the tests read is the one this code was written
# against; bump together with a look at devpi_server/importexport.py.
DEVPI_PACKAGES = ("devpi-server==6.20.3", "devpi-client==7.3.0")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lockgate-tests"


def devpi_venv() -> Path:
    """The bin directory of a virtual environment holding devpi-server and devpi-client."""
    tag = "-".join(p.replace("==", "") for p in DEVPI_PACKAGES)
    venv = CACHE / f"devpi-{tag}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"devpi-{tag}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
            uv = str(BIN / "uv")
            subprocess.run(
                [uv, "venv", "-q", "--python", sys.executable, str(venv)],
                check=True,
                env=env,
                timeout=300,
            )
            subprocess.run(
                [
                    uv,
                    "pip",
                    "install",
                    "-q",
                    "--python",
                    str(venv / "bin" / "python"),
                    *DEVPI_PACKAGES,
                ],
                check=True,
                env=env,
                timeout=900,
            )
            (venv / ".complete").write_text("ok\n")
    return venv / "bin"


def _quiet_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "DEVPI_", "LOCKGATE_", "VIRTUAL_ENV"))
    }
    # pyramid warns about pkg_resources on every start; the noise hides real errors.
    env["PYTHONWARNINGS"] = "ignore"
    return env


class DevpiServer:
    """A devpi-server process and the small HTTP driver the tests read like sentences."""

    def __init__(
        self, bindir: Path, serverdir: Path, root_password: str, *, offline: bool = True
    ) -> None:
        self.bindir = bindir
        self.offline = offline
        self.serverdir = serverdir
        self.root_password = root_password
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = serverdir.parent / f"{serverdir.name}-devpi.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            env=_quiet_env(),
            timeout=timeout,
        )

    def start(self, timeout: float = 120) -> DevpiServer:
        init = self.run(
            "devpi-init",
            "--serverdir",
            str(self.serverdir),
            "--no-root-pypi",
            "--root-passwd",
            self.root_password,
        )
        assert init.returncode == 0, init.stdout + init.stderr
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                str(self.bindir / "devpi-server"),
                "--serverdir",
                str(self.serverdir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *(["--offline-mode"] if self.offline else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_quiet_env(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"devpi-server exited early:\n{self.log_path.read_text()}")
            try:
                if requests.get(self.url + "/+api", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"devpi-server did not come up:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def export(self, directory: Path) -> subprocess.CompletedProcess[str]:
        """`devpi-export` (the server must be stopped: it reads the server directory)."""
        return self.run("devpi-export", "--serverdir", str(self.serverdir), str(directory))

    # --- HTTP, with devpi's own login token (X-Devpi-Auth) ------------------
    def login(self, user: str, password: str) -> dict[str, str]:
        response = self.http.post(
            self.url + "/+login", json={"user": user, "password": password}, timeout=60
        )
        assert response.status_code == 200, response.text
        token = response.json()["result"]["password"]
        auth = base64.b64encode(f"{user}:{token}".encode()).decode()
        return {"X-Devpi-Auth": auth, "Accept": "application/json"}

    def request(self, method: str, path: str, headers: dict[str, str], **kw: Any) -> Any:
        kw.setdefault("timeout", 120)
        response = self.http.request(method, self.url + path, headers=headers, **kw)
        assert response.status_code < 300, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response

    def client(self, clientdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """devpi-client, with its own state directory."""
        result = self.run("devpi", "--clientdir", str(clientdir), *args)
        assert result.returncode == 0, f"devpi {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result
