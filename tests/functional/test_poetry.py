"""Poetry against a real lockgate, as a poetry user runs it: build, publish, lock, install.

Poetry runs from the test environment's ``bin/`` with its own config, cache and
data directories under the test's tmp dir, so the machine's poetry setup (and
any ``POETRY_*``, ``PIP_*`` or ``UV_*`` variable) plays no part. The project
sources are ``priority = "primary"``, which makes poetry drop its implicit PyPI
source (poetry >= 2.0; see ``Factory.create_pool``): nothing here needs the
internet, and the server log proves poetry consulted lockgate alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.support.dists import make_wheel
from tests.support.server import BIN, Clients, LockgateServer, client_env

POETRY = str(BIN / "poetry")
USER, PASSWORD = "team", "team-pw"
INDEX = "team/dev"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(POETRY).exists(), reason="poetry is not installed"),
]


def poetry_env(tmp: Path) -> dict[str, str]:
    """The environment of a poetry user with a fresh home: nothing inherited counts."""
    env = {
        k: v
        for k, v in client_env(tmp).items()
        if not k.startswith("POETRY_")
        # An activated virtualenv would become poetry's target environment.
        and k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "PYTHONPATH")
    }
    env.update(
        {
            "POETRY_CONFIG_DIR": str(tmp / "poetry-config"),
            "POETRY_CACHE_DIR": str(tmp / "poetry-cache"),
            "POETRY_DATA_DIR": str(tmp / "poetry-data"),
            "POETRY_VIRTUALENVS_IN_PROJECT": "true",
            # The project's .venv uses the interpreter poetry runs on, not whatever
            # `python3` is first on PATH.
            "POETRY_VIRTUALENVS_USE_POETRY_PYTHON": "true",
            "POETRY_NO_INTERACTION": "1",
            "POETRY_KEYRING_ENABLED": "false",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
    )
    return env


class Poetry:
    def __init__(self, tmp: Path) -> None:
        self.env = poetry_env(tmp)

    def __call__(self, cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [POETRY, "--no-ansi", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=180,
        )
        if ok:
            assert result.returncode == 0, f"poetry {' '.join(args)}:\n{output(result)}"
        return result


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def write_project(path: Path, pyproject: str, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "pyproject.toml").write_text(textwrap.dedent(pyproject).lstrip())
    (path / "README.md").write_text("A lockgate test project.\n")
    for name, text in (files or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def greeting_project(path: Path, greeting: str = "hello") -> Path:
    """A tiny poetry-core project, `lg-greeting 1.0.0`, depending on `lg-base`."""
    return write_project(
        path,
        """
        [project]
        name = "lg-greeting"
        version = "1.0.0"
        description = "Says hello"
        readme = "README.md"
        requires-python = ">=3.9"
        dependencies = ["lg-base>=1.0"]

        [build-system]
        requires = ["poetry-core>=2.0"]
        build-backend = "poetry.core.masonry.api"
        """,
        {"lg_greeting/__init__.py": f'__version__ = "1.0.0"\nGREETING = "{greeting}"\n'},
    )


def requests_seen(server: LockgateServer) -> list[dict[str, object]]:
    entries = []
    for line in server.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "request":
            entries.append(entry)
    return entries


def test_poetry_publish_then_lock_and_install_from_lockgate(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    server.create_user(USER, PASSWORD)
    # Not volatile: a changed file under an existing name is refused, as on PyPI.
    server.create_index(INDEX, (USER, PASSWORD), volatile=False)
    poetry = Poetry(tmp_path)
    poetry.env.update(
        {
            "POETRY_HTTP_BASIC_LOCKGATE_USERNAME": USER,
            "POETRY_HTTP_BASIC_LOCKGATE_PASSWORD": PASSWORD,
        }
    )
    poetry(tmp_path, "config", "repositories.lockgate", f"{server.url}/{INDEX}/")

    # --- a. poetry build + poetry publish -----------------------------------
    project = greeting_project(tmp_path / "greeting")
    poetry(project, "build")
    dist = sorted(p.name for p in (project / "dist").iterdir())
    assert dist == ["lg_greeting-1.0.0-py3-none-any.whl", "lg_greeting-1.0.0.tar.gz"]
    published = poetry(project, "publish", "--repository", "lockgate")
    assert "Uploading lg_greeting-1.0.0-py3-none-any.whl" in output(published)
    serial = server.serial()
    files = server.get(
        f"/{INDEX}/+simple/lg-greeting/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    ).json()["files"]
    assert sorted(f["filename"] for f in files) == dist
    wheel = next(f for f in files if f["filename"].endswith(".whl"))
    assert wheel["core-metadata"], "lockgate advertises the wheel's METADATA (PEP 658)"

    # The same files again: identical bytes are a no-op success, with or
    # without --skip-existing, and the index does not change.
    poetry(project, "publish", "--repository", "lockgate")
    poetry(project, "publish", "--repository", "lockgate", "--skip-existing")
    assert server.serial() == serial

    # A changed build of the same version: refused (409 "File already exists"),
    # and --skip-existing recognises that answer and skips it.
    changed = greeting_project(tmp_path / "changed", greeting="hi")
    poetry(changed, "build")
    refused = poetry(changed, "publish", "--repository", "lockgate", ok=False)
    assert refused.returncode != 0
    assert "HTTP Error 409" in output(refused)
    assert "File already exists" in output(refused)
    skipped = poetry(changed, "publish", "--repository", "lockgate", "--skip-existing")
    assert "File exists. Skipping" in output(skipped)
    assert server.serial() == serial

    # --- b. dependencies uploaded with twine, resolved by poetry ----------
    wheels = tmp_path / "twine-dist"
    wheels.mkdir()
    uploaded = clients.twine_upload(
        f"{server.url}/{INDEX}/",
        [
            make_wheel(wheels, "lg-base", "1.0"),
            make_wheel(wheels, "lg-base", "1.1"),
            make_wheel(wheels, "lg-helper", "2.0", requires_dist=["lg-base>=1.1"]),
        ],
        USER,
        PASSWORD,
    )
    assert uploaded.returncode == 0, output(uploaded)

    app = write_project(
        tmp_path / "app",
        f"""
        [project]
        name = "lg-app"
        version = "0.1.0"
        requires-python = ">=3.9"
        dependencies = ["lg-greeting>=1.0", "lg-helper>=2.0"]

        [tool.poetry]
        package-mode = false

        [[tool.poetry.source]]
        name = "lockgate"
        url = "{server.simple_url(INDEX)}"
        priority = "primary"
        """,
    )
    # Poetry's Accept header (repositories/http_repository.py); it reads the page as
    # JSON only when the Content-Type, parameters dropped, is exactly the v1+json type.
    page = server.get(
        f"/{INDEX}/+simple/lg-helper/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json, */*;q=0.1"},
    )
    assert page.status_code == 200
    assert page.headers["Content-Type"].split(";")[0].strip() == (
        "application/vnd.pypi.simple.v1+json"
    )
    log_start = len(requests_seen(server))
    poetry(app, "lock")
    lock = (app / "poetry.lock").read_text()
    for name, version in [("lg-greeting", "1.0.0"), ("lg-helper", "2.0"), ("lg-base", "1.1")]:
        assert f'name = "{name}"\nversion = "{version}"' in lock, lock
    # Poetry records the source URL without its trailing slash.
    assert lock.count(f'url = "{server.simple_url(INDEX).rstrip("/")}"') == 3, lock
    locked_wheel = f'"{wheel["filename"]}", hash = "sha256:{wheel["hashes"]["sha256"]}"'
    assert locked_wheel in lock, lock
    assert "pypi.org" not in lock

    installed = poetry(app, "install")
    assert "lg-helper" in output(installed)
    python = app / ".venv" / "bin" / "python"
    imported = subprocess.run(
        [
            str(python),
            "-c",
            "import sys, lg_greeting, lg_helper, lg_base; print(sys.prefix, "
            "lg_greeting.GREETING, lg_helper.__version__, lg_base.__version__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert imported.returncode == 0, output(imported)
    prefix, *versions = imported.stdout.split()
    assert Path(prefix) == app / ".venv"
    assert versions == ["hello", "2.0", "1.1"]

    # Resolution read the wheels' metadata through PEP 658 files, every answer
    # poetry got was a success or a 304 revalidation of its HTTP cache, and
    # nothing was redirected.
    seen = requests_seen(server)[log_start:]
    paths = [str(e["path"]) for e in seen]
    assert any(p.endswith("lg_helper-2.0-py3-none-any.whl.metadata") for p in paths), paths
    assert any(p.endswith("lg_greeting-1.0.0-py3-none-any.whl.metadata") for p in paths), paths
    bad = [e for e in seen if int(str(e["status"])) not in (200, 206, 304)]
    assert not bad, bad


@pytest.mark.parametrize("slash", ["", "/"])
def test_poetry_with_a_devpi_style_index_url(
    server: LockgateServer, clients: Clients, tmp_path: Path, slash: str
) -> None:
    """devpi guides give poetry the index URL itself (no `+simple/`): lock and install
    follow the redirect to the simple pages (the devpi issue, part 1)."""
    server.create_user(USER, PASSWORD)
    server.create_index(INDEX, (USER, PASSWORD))
    wheels = tmp_path / "dist"
    wheels.mkdir()
    uploaded = clients.twine_upload(
        f"{server.url}/{INDEX}/",
        [make_wheel(wheels, "Lg.Base", "1.0"), make_wheel(wheels, "lg-base", "1.1")],
        USER,
        PASSWORD,
    )
    assert uploaded.returncode == 0, output(uploaded)
    app = write_project(
        tmp_path / "app",
        f"""
        [project]
        name = "lg-app"
        version = "0.1.0"
        requires-python = ">=3.9"
        dependencies = ["lg-base>=1.0"]

        [tool.poetry]
        package-mode = false

        [[tool.poetry.source]]
        name = "team"
        url = "{server.url}/{INDEX}{slash}"
        priority = "primary"
        """,
    )
    poetry = Poetry(tmp_path)
    poetry(app, "lock")
    lock = (app / "poetry.lock").read_text()
    assert 'name = "lg-base"\nversion = "1.1"' in lock, lock
    poetry(app, "install")
    python = app / ".venv" / "bin" / "python"
    imported = subprocess.run(
        [str(python), "-c", "import lg_base; print(lg_base.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert imported.returncode == 0, output(imported)
    assert imported.stdout.strip() == "1.1"
    redirected = [e for e in requests_seen(server) if e["status"] == 302]
    assert any(str(e["path"]) == f"/{INDEX}/lg-base/" for e in redirected), redirected
