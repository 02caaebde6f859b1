"""The mirror's upstream connection settings end to end, against a real `lockgate serve`:
basic-auth credentials in `mirror_url`, an HTTP proxy taken from the environment, and
an extra CA bundle (`mirror_ca_bundle`) for an upstream with a private certificate.

Why the proxy test can use 127.0.0.1: aiohttp (`trust_env=True`) asks
`aiohttp.helpers.get_env_proxy_for_url`, which skips the proxy only when
`urllib.request.proxy_bypass(host)` says so. On Linux that is
`proxy_bypass_environment`, which consults `no_proxy`/`NO_PROXY` and nothing else:
loopback is *not* special-cased. So the lockgate process gets HTTP_PROXY and an
empty `no_proxy`/`NO_PROXY` (urllib treats an empty value as unset, overriding
anything inherited); the test first checks, in that environment, that aiohttp
really picks the proxy for the upstream's 127.0.0.1 URL, and skips otherwise
(e.g. macOS/Windows system proxy settings that exclude local addresses).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import ForwardProxy
from tests.support.server import Clients, LockgateServer

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
HTML = {"Accept": "text/html"}
FAST_MIRROR = {"mirror_timeout": 2, "mirror_offline_retry": 1, "mirror_cache_expiry": 3600}
USER = "mirroruser"
SECRET = "Zq7-upstream-s3cret-pw"  # distinctive, so a leak anywhere is found
WRONG = "Zq7-wrong-pw"


def _patch(server: LockgateServer, **config: object) -> requests.Response:
    return server.request("PATCH", "/root/pypi", auth=server.root_auth(), json=config)


def _page(server: LockgateServer, project: str) -> dict[str, dict[str, object]]:
    response = server.get(f"/root/pypi/+simple/{project}/", headers=JSON)
    assert response.status_code == 200, response.text
    return {f["filename"]: f for f in response.json()["files"]}


def _through_lockgate(server: LockgateServer, project: str, url: object) -> bytes:
    response = server.get(f"/root/pypi/+simple/{project}/{url}", allow_redirects=True)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text}"
    return response.content


def _fill(upstream: FakeUpstream) -> FakeUpstream:
    upstream.add_wheel("alpha", "1.0")
    upstream.add_sdist("alpha", "1.0")
    upstream.add_wheel("beta", "2.0", requires_dist=["alpha>=1.0"])
    upstream.add_wheel("gamma", "0.1")
    return upstream


# --- 1. credentials in mirror_url ----------------------------------------------------
@pytest.fixture
def auth_upstream(tmp_path: Path) -> Iterator[FakeUpstream]:
    fake = _fill(FakeUpstream(tmp_path / "upstream", require_auth=(USER, SECRET)))
    fake.start()
    yield fake
    fake.close()


def test_mirror_url_credentials_reach_the_upstream_and_nowhere_else(
    make_server: Callable[..., LockgateServer], auth_upstream: FakeUpstream
) -> None:
    upstream = auth_upstream
    anonymous = requests.get(upstream.project_url("alpha"), timeout=10)
    assert anonymous.status_code == 401 and "Basic" in anonymous.headers["WWW-Authenticate"]
    upstream.clear_requests()

    secret_url = upstream.url.replace("http://", f"http://{USER}:{SECRET}@")
    server = make_server(upstream=secret_url)
    assert _patch(server, **FAST_MIRROR).status_code == 200

    # Pages, .metadata and files all come through lockgate with the right bytes.
    files = _page(server, "alpha")
    assert set(files) == {f.filename for f in upstream.files("alpha")}
    for file in upstream.files("alpha"):
        served = files[file.filename]
        if file.metadata is not None:  # asked before the wheel: lockgate fetches it upstream
            metadata = _through_lockgate(server, "alpha", f"{served['url']}.metadata")
            assert metadata == file.metadata
            assert upstream.requests_for(file.filename + ".metadata")
        body = _through_lockgate(server, "alpha", served["url"])
        assert hashlib.sha256(body).hexdigest() == file.sha256
    # An HTML-only upstream: relative file links resolve on the credential-free URL
    # and still get the credentials, the host being the mirror_url's.
    upstream.formats = {"html"}
    (gamma,) = upstream.files("gamma")
    served_gamma = _page(server, "gamma")[gamma.filename]
    body = _through_lockgate(server, "gamma", served_gamma["url"])
    assert hashlib.sha256(body).hexdigest() == gamma.sha256
    listing = server.get("/root/pypi/+simple/", headers=JSON)
    assert {"alpha", "beta", "gamma"} <= {p["name"] for p in listing.json()["projects"]}

    # Every upstream request carried the credentials (so none was answered 401).
    seen = upstream.authorizations
    assert {path for path, _ in seen} >= {"/simple/", "/simple/alpha/", "/simple/gamma/"}
    assert any(path.startswith("/files/") for path, _ in seen)
    assert all(creds == (USER, SECRET) for _, creds in seen), seen

    # The password is shown nowhere: API, simple pages, log, files on disk.
    index_config = server.get("/root/pypi", headers=JSON).json()["result"]
    assert index_config["mirror_url"] == upstream.url.replace("http://", f"http://{USER}:****@")
    shown = [server.get(p, headers=JSON).text for p in ("/", "/root", "/root/pypi")]
    for project in ("alpha", "gamma", ""):
        path = f"/root/pypi/+simple/{project}/" if project else "/root/pypi/+simple/"
        shown += [server.get(path, headers=h).text for h in (JSON, HTML)]
    for text in shown:
        assert SECRET not in text
    # Replicas need the real URL, so the changelog carries it -- in the index
    # configuration only, never in the mirrored pages' file URLs.
    changelog = server.get("/+changelog", auth=server.root_auth())
    assert changelog.status_code == 200, changelog.text
    entries = [json.loads(line) for line in changelog.text.splitlines()]
    assert {e["kind"] for e in entries if SECRET in json.dumps(e)} == {"index.put"}
    assert any(e["kind"] == "mirror.page" for e in entries)
    on_disk = [server.serverdir / "lockgate.toml"]
    for folder in ("blobs", "tmp"):
        on_disk += [p for p in (server.serverdir / folder).rglob("*") if p.is_file()]
    assert len(on_disk) > 3, on_disk  # the toml, the files, the .metadata, the project list
    for stored in on_disk:
        assert SECRET.encode() not in stored.read_bytes(), stored

    # A wrong password: a never-cached project is a clean 404 naming the upstream's 401.
    wrong_url = upstream.url.replace("http://", f"http://{USER}:{WRONG}@")
    assert _patch(server, mirror_url=wrong_url).status_code == 200
    upstream.clear_requests()
    refused = server.get("/root/pypi/+simple/beta/", headers=JSON)
    assert refused.status_code == 404, refused.text
    assert "upstream" in refused.text and "401" in refused.text, refused.text
    assert upstream.authorizations == [("/simple/beta/", (USER, WRONG))]
    assert SECRET not in server.log() and WRONG not in server.log()


# --- 2. HTTP proxy from the environment ------------------------------------------------
@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FakeUpstream]:
    fake = _fill(FakeUpstream(tmp_path / "upstream"))
    fake.start()
    yield fake
    fake.close()


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as running:
        yield running


def test_http_proxy_from_the_environment_carries_pages_and_files(
    make_server: Callable[..., LockgateServer],
    upstream: FakeUpstream,
    proxy: ForwardProxy,
    clients: Clients,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "NO_PROXY": "", "no_proxy": ""}
    with monkeypatch.context() as patched:  # what aiohttp decides in lockgate's environment
        for key, value in env.items():
            patched.setenv(key, value)
        patched.delenv("REQUEST_METHOD", raising=False)  # urllib drops HTTP_PROXY under CGI
        try:
            chosen, _ = get_env_proxy_for_url(URL(upstream.url))
        except LookupError as exc:
            pytest.skip(f"aiohttp bypasses the proxy for 127.0.0.1 here: {exc}")
        assert str(chosen) == proxy.url
    server = make_server(upstream=upstream.url, env=env)
    assert _patch(server, **FAST_MIRROR).status_code == 200

    installed = clients.pip_install(server.simple_url("root/pypi"), "beta", target=tmp_path / "t")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (tmp_path / "t" / "alpha").is_dir() and (tmp_path / "t" / "beta").is_dir()

    forwarded = proxy.forwarded
    assert upstream.project_url("beta") in forwarded
    assert upstream.project_url("alpha") in forwarded
    wanted = {upstream.file_url(f) for p in ("alpha", "beta") for f in upstream.files(p)}
    wanted |= {url + ".metadata" for url in wanted}  # pip reads PEP 658 metadata first
    assert {url for url in forwarded if "/files/" in url} <= wanted
    assert any(upstream.file_url(f) in forwarded for f in upstream.files("beta"))
    # Every request the upstream saw came through the proxy, none directly.
    assert sorted(path for _, path in upstream.requests) == sorted(
        urlsplit(url).path for url in forwarded
    )
    assert proxy.refused == []

    # No proxy, no upstream: lockgate does not fall back to a direct connection.
    proxy.close()
    upstream.clear_requests()
    missing = server.get("/root/pypi/+simple/gamma/", headers=JSON)
    assert missing.status_code == 404 and "upstream" in missing.text, missing.text
    assert upstream.requests == []


# --- 3. an extra CA bundle --------------------------------------------------------------
OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
x509_extensions = v3
prompt = no
[dn]
CN = 127.0.0.1
[v3]
subjectAltName = IP:127.0.0.1
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyCertSign
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def _self_signed(folder: Path, name: str) -> ssl.SSLContext:
    """A self-signed certificate for IP 127.0.0.1 in `folder/name.pem` (with its key
    in `name.key`), and a server context serving it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "openssl.cnf"
    config.write_text(OPENSSL_CONFIG)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-days", "2", "-keyout", str(key), "-out", str(cert)]
        + ["-config", str(config)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_extra_ca_bundle_lets_the_mirror_trust_a_private_certificate(
    make_server: Callable[..., LockgateServer],
    clients: Clients,
    tmp_path: Path,
) -> None:
    certs = tmp_path / "certs"
    upstream = _fill(FakeUpstream(tmp_path / "upstream", ssl_context=_self_signed(certs, "one")))
    upstream.add_wheel("delta", "1.0")
    assert upstream.url.startswith("https://127.0.0.1:")
    with upstream:
        server = make_server(upstream=upstream.url)
        # A long offline retry: fixing the configuration must not wait for the breaker.
        slow_retry = {**FAST_MIRROR, "mirror_offline_retry": 60}
        assert _patch(server, **slow_retry).status_code == 200

        # Not trusted yet: a clean 404 that names the upstream's certificate problem.
        untrusted = server.get("/root/pypi/+simple/beta/", headers=JSON)
        assert untrusted.status_code == 404, untrusted.text
        assert "upstream" in untrusted.text and "certificate" in untrusted.text.lower()
        assert upstream.requests == [], "no HTTP request may pass a failed handshake"

        # Bundles that cannot work are refused when configured.
        not_pem = tmp_path / "not-a-bundle.pem"
        not_pem.write_text("this is not a certificate\n")
        for bad in (str(tmp_path / "missing.pem"), str(not_pem), str(tmp_path), "one.pem"):
            refused = _patch(server, mirror_ca_bundle=bad)
            assert refused.status_code == 400, f"{bad}: {refused.status_code} {refused.text}"
            assert "mirror_ca_bundle" in refused.text
        assert server.get("/root/pypi", headers=JSON).json()["result"]["mirror_ca_bundle"] == ""

        # Trusted: the same project installs with pip, at once.
        bundle = tmp_path / "bundle.pem"
        shutil.copy(certs / "one.pem", bundle)
        assert _patch(server, mirror_ca_bundle=str(bundle)).status_code == 200
        installed = clients.pip_install(
            server.simple_url("root/pypi"), "beta", target=tmp_path / "t"
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert (tmp_path / "t" / "alpha").is_dir() and (tmp_path / "t" / "beta").is_dir()
        assert upstream.requests_for("/files/"), "the files came from the HTTPS upstream"

        # The upstream's certificate is replaced, and so is the bundle file at the same
        # path: the next request trusts the new one, without a restart.
        upstream.stop()
        upstream.ssl_context = _self_signed(certs, "two")
        upstream.start()
        os.replace(certs / "two.pem", bundle)
        (gamma,) = upstream.files("gamma")
        served = _page(server, "gamma")[gamma.filename]
        body = _through_lockgate(server, "gamma", served["url"])
        assert hashlib.sha256(body).hexdigest() == gamma.sha256

        # A bundle that goes bad after it was accepted: a clear 404, not a 500.
        bundle.write_text("garbage\n")
        broken = server.get("/root/pypi/+simple/delta/", headers=JSON)
        assert broken.status_code == 404, broken.text
        assert "mirror_ca_bundle" in broken.text, broken.text
        assert "Traceback" not in server.log()
