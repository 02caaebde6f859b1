"""deploy/nginx.conf, as shipped, in front of a real lockgate: twine uploads and
pip/uv installs through it (so the example stays correct)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.support.dists import make_sdist, make_wheel
from tests.support.server import Clients, LockgateServer, free_port

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _nginx() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        if IN_CI:
            pytest.fail("CI=true but nginx is not installed (.ci/run installs nginx-light)")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return found


@pytest.fixture
def proxied(server: LockgateServer, tmp_path: Path) -> Iterator[str]:
    nginx = _nginx()
    port = free_port()
    site = (REPO / "deploy" / "nginx.conf").read_text()
    site = site.replace("server 127.0.0.1:3141;", f"server 127.0.0.1:{server.port};")
    site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{site}
}}
"""
    )
    process = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            if process.poll() is not None:
                raise RuntimeError(
                    f"nginx exited: {process.stderr.read() if process.stderr else ''}"
                )
            try:
                if requests.get(url + "/+status", timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_upload_and_install_through_the_shipped_nginx_config(
    server: LockgateServer, proxied: str, clients: Clients, tmp_path: Path
) -> None:
    server.create_user("ngi", "ngi-pw")
    server.create_index("ngi/dev", ("ngi", "ngi-pw"))
    dist = tmp_path / "dist"
    dist.mkdir()
    files = [
        make_wheel(dist, "behind-proxy", "1.0", payload_size=3 * 1024 * 1024),
        make_sdist(dist, "behind-proxy", "1.0"),
    ]
    upload = clients.twine_upload(f"{proxied}/ngi/dev/", files, "ngi", "ngi-pw")
    assert upload.returncode == 0, upload.stdout + upload.stderr
    index = f"{proxied}/ngi/dev/+simple/"
    pip = clients.pip_install(index, "behind-proxy", target=tmp_path / "p")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    uv = clients.uv_install(index, "behind-proxy", target=tmp_path / "u")
    assert uv.returncode == 0, uv.stdout + uv.stderr
    page = requests.get(index + "behind-proxy/", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert page.status_code == 200 and page.headers.get("ETag")


def test_public_url_names_the_server_in_json_api_links(
    make_server: Callable[..., LockgateServer], clients: Clients, tmp_path: Path
) -> None:
    server = make_server("public", public_url="https://pypi.example.org/")
    server.create_user("pub", "pub-pw")
    server.create_index("pub/dev", ("pub", "pub-pw"))
    wheel = make_wheel(tmp_path, "linked", "1.0")
    assert clients.twine_upload(f"{server.url}/pub/dev/", [wheel], "pub", "pub-pw").returncode == 0
    data = server.get("/pub/dev/pypi/linked/json").json()
    assert data["urls"][0]["url"].startswith("https://pypi.example.org/pub/dev/+f/")
    assert data["info"]["project_url"] == "https://pypi.example.org/pub/dev/pypi/linked/"
