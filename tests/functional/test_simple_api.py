"""Black-box conformance of the simple repository API against a real `lockgate serve`.

Test ids (T01…) refer to docs/standards.md §7; the base URL `/simple/` of the standard
is `/{user}/{index}/+simple/` here. One server per database backend is started
for the whole module and filled once with twine; tests that change state work on
projects of their own, so the `Foo.Bar` fixture below never changes:

- `foo_bar-1.0.tar.gz`
- `foo_bar-1.0-py3-none-any.whl` with `Requires-Python: >=3.8,<4`
- `foo_bar-2.0-py3-none-any.whl`, yanked with the reason "bad build"
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit

import pytest
import requests

from tests.support.dists import make_sdist, make_wheel, wheel_metadata
from tests.support.server import Clients, LockgateServer

pytestmark = pytest.mark.e2e

USER, PASSWORD = "alice", "alice-pw"
AUTH = (USER, PASSWORD)
STAGE = "alice/stage"  # volatile (the default for stage indexes)
PROD = "alice/prod"  # volatile=False
SIMPLE = f"/{STAGE}/+simple/"
PAGE = f"{SIMPLE}foo-bar/"

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
J = {"Accept": JSON_V1}
PIP_ACCEPT = f"{JSON_V1}, {HTML_V1}; q=0.1, text/html; q=0.01"
UV_ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.2, text/html;q=0.01"
POETRY_ACCEPT = f"{JSON_V1}, */*;q=0.1"

SDIST = "foo_bar-1.0.tar.gz"
WHEEL1 = "foo_bar-1.0-py3-none-any.whl"
WHEEL2 = "foo_bar-2.0-py3-none-any.whl"
LOCAL = "local_ver-1.0+cpu-py3-none-any.whl"
KEEPER = "keeper-1.0-py3-none-any.whl"
UPLOAD_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


# --- parsing helpers ----------------------------------------------------------


@dataclass
class Anchor:
    attrs: dict[str, str | None]
    text: str = ""

    @property
    def href(self) -> str:
        return self.attrs["href"] or ""

    @property
    def filename(self) -> str:
        """The percent-decoded last path segment of the href (what pip and uv use)."""
        return unquote(urlsplit(self.href).path.rsplit("/", 1)[-1])


@dataclass
class Page:
    doctype: str | None = None
    base: str | None = None
    metas: list[dict[str, str | None]] = field(default_factory=list)
    anchors: list[Anchor] = field(default_factory=list)

    def meta(self, name: str) -> str | None:
        found = [m.get("content") for m in self.metas if m.get("name") == name]
        assert len(found) <= 1, f"several <meta name={name!r}>"
        return found[0] if found else None

    def anchor(self, filename: str) -> Anchor:
        found = [a for a in self.anchors if a.text == filename]
        assert len(found) == 1, f"{filename}: {[a.text for a in self.anchors]}"
        return found[0]


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._open: Anchor | None = None

    def handle_decl(self, decl: str) -> None:
        self.page.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = Anchor(dict(attrs))
            self.page.anchors.append(self._open)
        elif tag == "meta":
            self.page.metas.append(dict(attrs))
        elif tag == "base" and self.page.base is None:
            self.page.base = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.text += data


def parse_html(body: bytes) -> Page:
    parser = _PageParser()
    parser.feed(body.decode("utf-8"))
    parser.close()
    return parser.page


def raw_anchor(body: bytes, filename: str) -> bytes:
    """The raw `<a …>` start tag whose text is `filename`."""
    found = re.findall(rb"<a\s[^>]*>" + re.escape(filename.encode()) + rb"</a>", body)
    assert len(found) == 1, body.decode()
    return found[0]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the module-wide server and its data --------------------------------------


@dataclass
class World:
    server: LockgateServer
    clients: Clients
    tmp: Path
    files: dict[str, Path]

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.server.get(path, **kw)

    def url(self, path: str) -> str:
        return self.server.url + path

    def page(self, path: str = PAGE) -> tuple[requests.Response, Page]:
        response = self.get(path, headers={"Accept": "text/html"})
        assert response.status_code == 200, response.text
        return response, parse_html(response.content)

    def json_page(self, path: str = PAGE) -> dict[str, Any]:
        response = self.get(path, headers=J)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == JSON_V1
        return response.json()

    def file_url(self, filename: str, path: str = PAGE) -> str:
        """Absolute download URL (fragment dropped) of `filename` on the HTML page."""
        response, page = self.page(path)
        return urldefrag(urljoin(page.base or response.url, page.anchor(filename).href)).url

    def upload(self, index: str, *files: Path) -> None:
        result = self.clients.twine_upload(f"{self.server.url}/{index}/", files, *AUTH)
        assert result.returncode == 0, result.stdout + result.stderr

    def yank(self, project: str, version: str, yanked: bool, reason: str | None = None) -> None:
        body: dict[str, object] = {"yanked": yanked}
        if reason is not None:
            body["reason"] = reason
        response = self.server.request(
            "PATCH", f"/{STAGE}/{project}/{version}", auth=AUTH, json=body
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"simple-{request.param}")
    db_url = None
    if request.param == "postgresql":
        db_url = request.getfixturevalue("postgres_databases").create()
    server = LockgateServer(tmp / "server", db_url).start()
    try:
        w = World(server, Clients(tmp), tmp, {})
        server.create_user(USER, PASSWORD)
        server.create_index(STAGE, AUTH)
        server.create_index(PROD, AUTH, volatile=False)
        dist = tmp / "dist"
        stage_files = [
            make_sdist(dist, "Foo.Bar", "1.0"),
            make_wheel(dist, "Foo.Bar", "1.0", requires_python=">=3.8,<4"),
            make_wheel(dist, "Foo.Bar", "2.0"),
            make_wheel(dist, "local-ver", "1.0+cpu"),
            make_wheel(dist, "yank-cycle", "1.0"),
            make_wheel(dist, "yank-cycle", "2.0"),
            make_wheel(dist, "growing", "1.0"),
            make_sdist(dist, "doomed", "1.0"),
            make_wheel(dist, "doomed", "1.0"),
            make_wheel(dist, "doomed", "2.0"),
        ]
        w.upload(STAGE, *stage_files)
        keeper = make_wheel(tmp / "prod", "keeper", "1.0")
        w.upload(PROD, keeper)
        w.files = {p.name: p for p in [*stage_files, keeper]}
        w.yank("foo-bar", "2.0", True, "bad build")
        yield w
    finally:
        server.stop()


# --- T01-T12: names, URLs, HTML -----------------------------------------------


def test_t01_project_list_html(world: World) -> None:
    response = world.get(SIMPLE)
    assert response.status_code == 200
    content_type = response.headers["Content-Type"]
    assert content_type.split(";")[0].strip() in ("text/html", HTML_V1)
    assert response.content.lstrip().lower().startswith(b"<!doctype html>")
    page = parse_html(response.content)
    assert page.doctype is not None and page.doctype.lower() == "doctype html"
    assert re.fullmatch(r"1\.\d+", page.meta("pypi:repository-version") or "")
    targets = [urljoin(response.url, a.href) for a in page.anchors]
    assert targets.count(world.url(PAGE)) == 1, targets
    (foo,) = [a for a in page.anchors if urljoin(response.url, a.href) == world.url(PAGE)]
    assert foo.text in ("Foo.Bar", "foo-bar")
    # One anchor per project, each leading to that project's own page.
    assert len(targets) == len(set(targets))


def test_head_matches_get_on_simple_pages(world: World) -> None:
    # C6.1: pip may HEAD a project page first; status and Content-Type must match GET.
    for path in (SIMPLE, PAGE, f"{SIMPLE}does-not-exist/"):
        got = world.get(path, headers={"Accept": PIP_ACCEPT})
        head = world.server.request("HEAD", path, headers={"Accept": PIP_ACCEPT})
        assert head.status_code == got.status_code, path
        assert head.headers.get("Content-Type") == got.headers.get("Content-Type"), path
        assert head.content == b""


def test_t02_project_page_anchors_and_hashes(world: World) -> None:
    response, page = world.page()
    assert response.headers["Content-Type"].split(";")[0] in ("text/html", HTML_V1)
    assert re.fullmatch(r"1\.\d+", page.meta("pypi:repository-version") or "")
    assert sorted(a.text for a in page.anchors) == sorted([SDIST, WHEEL1, WHEEL2])
    for anchor in page.anchors:
        assert anchor.text == anchor.filename
        url, fragment = urldefrag(urljoin(page.base or response.url, anchor.href))
        name, _, digest = fragment.partition("=")
        assert name == "sha256" and HEX64.match(digest), anchor.href
        download = world.server.http.get(url, timeout=30)
        assert download.status_code == 200
        assert sha256(download.content) == digest
        assert download.content == world.files[anchor.filename].read_bytes()


@pytest.mark.parametrize("spelling", ["Foo.Bar", "FOO_bar", "foo--bar", "foo_bar", "Foo-Bar"])
def test_t03_non_normalized_names_redirect(world: World, spelling: str) -> None:
    response = world.get(f"{SIMPLE}{spelling}/")
    assert response.status_code in (301, 308)
    assert urljoin(response.url, response.headers["Location"]) == world.url(PAGE)
    followed = world.get(f"{SIMPLE}{spelling}/", allow_redirects=True)
    assert followed.status_code == 200
    assert followed.url == world.url(PAGE)
    assert followed.content == world.get(PAGE).content


def test_t04_missing_trailing_slash_redirects(world: World) -> None:
    for path, target in ((PAGE.rstrip("/"), PAGE), ("/" + STAGE + "/+simple", SIMPLE)):
        response = world.get(path)
        assert 300 <= response.status_code < 400, path
        assert urljoin(response.url, response.headers["Location"]) == world.url(target)
    # The query string survives the redirect (e.g. ?format=).
    response = world.get(f"{SIMPLE}Foo.Bar?format={quote(JSON_V1)}", allow_redirects=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_V1


@pytest.mark.parametrize("accept", [None, JSON_V1, "text/html", PIP_ACCEPT])
def test_t05_unknown_project_is_404(world: World, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    response = world.get(f"{SIMPLE}does-not-exist/", headers=headers)
    assert response.status_code == 404
    # Not the normalized-name redirect either: an unknown spelling ends in 404 too.
    response = world.get(f"{SIMPLE}Does.Not.Exist/", headers=headers, allow_redirects=True)
    assert response.status_code == 404


def test_t06_requires_python_is_escaped_once(world: World) -> None:
    response, page = world.page()
    raw = raw_anchor(response.content, WHEEL1)
    assert b'data-requires-python="&gt;=3.8,&lt;4"' in raw
    assert b"&amp;" not in raw
    assert page.anchor(WHEEL1).attrs["data-requires-python"] == ">=3.8,<4"
    # The other 1.0 file has no Requires-Python of its own; 2.0 neither.
    assert "data-requires-python" not in page.anchor(WHEEL2).attrs


def test_t07_yank_reason_in_html(world: World) -> None:
    response, page = world.page()
    assert b'data-yanked="bad build"' in raw_anchor(response.content, WHEEL2)
    assert page.anchor(WHEEL2).attrs["data-yanked"] == "bad build"
    for name in (SDIST, WHEEL1):
        assert "data-yanked" not in page.anchor(name).attrs
        assert b"data-yanked" not in raw_anchor(response.content, name)


def test_t07_unyank_shows_on_next_fetch_t08_reasonless_yank(world: World) -> None:
    path = f"{SIMPLE}yank-cycle/"
    wheel = "yank_cycle-2.0-py3-none-any.whl"
    before = world.get(path)
    assert b"data-yanked" not in before.content

    world.yank("yank-cycle", "2.0", True, 'broken <b>"quoted"</b> & more')
    yanked = world.get(path, headers={"If-None-Match": before.headers["ETag"]})
    assert yanked.status_code == 200, "a stale 304 after the yank"
    assert yanked.headers["ETag"] != before.headers["ETag"]
    raw = raw_anchor(yanked.content, wheel)
    # The reason is attribute-escaped; html.parser gives back the original.
    assert b'data-yanked="broken &lt;b&gt;&quot;quoted&quot;&lt;/b&gt; &amp; more"' in raw
    page = parse_html(yanked.content)
    assert page.anchor(wheel).attrs["data-yanked"] == 'broken <b>"quoted"</b> & more'
    assert "data-yanked" not in page.anchor("yank_cycle-1.0-py3-none-any.whl").attrs
    json_file = {f["filename"]: f for f in world.json_page(path)["files"]}[wheel]
    assert json_file["yanked"] == 'broken <b>"quoted"</b> & more'

    world.yank("yank-cycle", "2.0", False)
    unyanked = world.get(path, headers={"If-None-Match": yanked.headers["ETag"]})
    assert unyanked.status_code == 200, "a stale 304 after the unyank"
    assert unyanked.headers["ETag"] != yanked.headers["ETag"]
    assert b"data-yanked" not in unyanked.content
    assert "data-yanked" not in parse_html(unyanked.content).anchor(wheel).attrs
    json_file = {f["filename"]: f for f in world.json_page(path)["files"]}[wheel]
    assert json_file.get("yanked", False) is False

    # T08: a yank without a reason is data-yanked="" (never a bare attribute),
    # and JSON `true` (never "").
    world.yank("yank-cycle", "2.0", True)
    response = world.get(path)
    raw = raw_anchor(response.content, wheel)
    assert b'data-yanked=""' in raw
    assert re.search(rb"data-yanked(?!=)", raw) is None
    assert parse_html(response.content).anchor(wheel).attrs["data-yanked"] == ""
    json_file = {f["filename"]: f for f in world.json_page(path)["files"]}[wheel]
    assert json_file["yanked"] is True


def test_t09_t11_core_metadata_for_wheels(world: World) -> None:
    response, page = world.page()
    for name in (WHEEL1, WHEEL2):
        anchor = page.anchor(name)
        value = anchor.attrs.get("data-core-metadata")
        assert value is not None and value.startswith("sha256="), anchor.attrs
        assert HEX64.match(value.removeprefix("sha256="))
        if "data-dist-info-metadata" in anchor.attrs:
            assert anchor.attrs["data-dist-info-metadata"] == value
        url = urldefrag(urljoin(response.url, anchor.href)).url
        metadata = world.server.http.get(url + ".metadata", timeout=30)
        assert metadata.status_code == 200
        assert "Content-Encoding" not in metadata.headers
        assert sha256(metadata.content) == value.removeprefix("sha256=")
        # T11: byte for byte the wheel's own METADATA, not the distribution's hash.
        assert metadata.content == wheel_metadata(world.files[name])
        assert value.removeprefix("sha256=") != urldefrag(anchor.href).fragment.partition("=")[2]


def test_t10_sdist_has_no_false_core_metadata(world: World) -> None:
    response, page = world.page()
    attrs = page.anchor(SDIST).attrs
    assert b'="false"' not in response.content
    for key in ("data-core-metadata", "data-dist-info-metadata"):
        if key in attrs:
            # Allowed only as `true` or a hash, and then the file must exist.
            assert attrs[key] == "true" or (attrs[key] or "").startswith("sha256=")
            url = world.file_url(SDIST)
            assert world.server.http.get(url + ".metadata", timeout=30).status_code == 200
    if "data-core-metadata" not in attrs:
        url = world.file_url(SDIST)
        assert world.server.http.get(url + ".metadata", timeout=30).status_code == 404


def test_t12_downloads_are_exact_and_never_content_encoded(world: World) -> None:
    response, page = world.page()
    for anchor in page.anchors:
        url = urldefrag(urljoin(response.url, anchor.href)).url
        for encoding in ("gzip", "gzip, deflate, br", "identity"):
            download = requests.get(
                url, headers={"Accept-Encoding": encoding}, stream=True, timeout=30
            )
            raw = download.raw.read(decode_content=False)
            assert download.status_code == 200
            assert "Content-Encoding" not in download.headers, download.headers
            assert raw == world.files[anchor.filename].read_bytes()
            assert int(download.headers["Content-Length"]) == len(raw)
            content_type = download.headers["Content-Type"].split(";")[0]
            assert content_type in (
                "application/octet-stream",
                "application/gzip",
                "application/x-gzip",
                "application/zip",
            )


# --- T13-T28: negotiation and JSON --------------------------------------------


@pytest.mark.parametrize(
    "accept", [PIP_ACCEPT, UV_ACCEPT, POETRY_ACCEPT, JSON_V1], ids=["pip", "uv", "poetry", "J"]
)
def test_t13_t14_clients_get_json(world: World, accept: str) -> None:
    for path in (SIMPLE, PAGE):
        response = world.get(path, headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["Content-Type"] == JSON_V1
        assert isinstance(response.json(), dict)


def test_t15_html_types(world: World) -> None:
    for path in (SIMPLE, PAGE):
        response = world.get(path, headers={"Accept": "text/html"})
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        response = world.get(path, headers={"Accept": HTML_V1})
        assert response.status_code == 200
        assert response.headers["Content-Type"] == HTML_V1
        assert response.content.lstrip().lower().startswith(b"<!doctype html>")
        # Dependabot: text/html only. */* ties go to text/html, as on PyPI.
        response = world.get(path, headers={"Accept": "*/*"})
        assert response.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (f"{JSON_V1};q=0.1, text/html;q=0.9", "text/html"),
        (f"text/html;q=0.5, {JSON_V1};q=0.6", JSON_V1),
        (f"{HTML_V1}; q=0.3, {JSON_V1} ;q=0.2", HTML_V1),
        (f"{JSON_V1};q=0, text/html", "text/html"),
        (f"text/*;q=0.9, {JSON_V1};q=0.5", "text/html"),
        # Ties at equal q follow PyPI's order: text/html, v1+html, v1+json.
        ("application/*;q=0.9, text/html;q=0.5", HTML_V1),
        ("*/*", "text/html"),
        (f"{HTML_V1}, {JSON_V1}", HTML_V1),
    ],
)
def test_t16_quality_values_are_honoured(world: World, accept: str, expected: str) -> None:
    response = world.get(PAGE, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == expected


@pytest.mark.parametrize(
    "accept", ["application/x-foo", "application/json", "text/plain", f"{JSON_V1};q=0"]
)
def test_t17_nothing_acceptable_is_406_with_a_message(world: World, accept: str) -> None:
    # Documented choice (R2.6): 406 rather than a default type.
    for path in (SIMPLE, PAGE):
        response = world.get(path, headers={"Accept": accept})
        assert response.status_code == 406, (accept, response.headers)
        assert JSON_V1 in response.text and "text/html" in response.text


def test_t18_latest_answers_with_the_concrete_type(world: World) -> None:
    for path in (SIMPLE, PAGE):
        response = world.get(path, headers={"Accept": "application/vnd.pypi.simple.latest+json"})
        assert response.status_code == 200
        assert response.headers["Content-Type"] == JSON_V1
        assert "latest" not in response.headers["Content-Type"]
        response = world.get(path, headers={"Accept": "application/vnd.pypi.simple.latest+html"})
        assert response.status_code == 200
        assert response.headers["Content-Type"] == HTML_V1


def test_t19_vary_accept_on_negotiated_responses(world: World) -> None:
    for path in (SIMPLE, PAGE):
        for accept in (None, "text/html", HTML_V1, JSON_V1, PIP_ACCEPT):
            headers = {"Accept": accept} if accept else {}
            response = world.get(path, headers=headers)
            assert response.status_code == 200
            vary = [v.strip().lower() for v in response.headers.get("Vary", "").split(",")]
            assert "accept" in vary, (path, accept, response.headers)
            again = world.get(path, headers={**headers, "If-None-Match": response.headers["ETag"]})
            assert again.status_code == 304
            assert "accept" in again.headers.get("Vary", "").lower()


def test_t20_format_parameter_overrides_accept(world: World) -> None:
    for path in (SIMPLE, PAGE):
        # Percent-encoded, and raw as in the spec's example (the '+' then reads as a space).
        for value in (quote(JSON_V1, safe="/"), JSON_V1):
            response = world.get(f"{path}?format={value}")
            assert response.status_code == 200, value
            assert response.headers["Content-Type"] == JSON_V1, value
            assert isinstance(response.json(), dict)
        response = world.get(f"{path}?format=text/html", headers=J)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        response = world.get(f"{path}?format={HTML_V1}", headers=J)
        assert response.headers["Content-Type"] == HTML_V1
        # The JSON and HTML answers for one URL are different representations.
        assert response.headers["ETag"] != world.get(path, headers=J).headers["ETag"]


def test_t21_json_project_list(world: World) -> None:
    data = world.json_page(SIMPLE)
    assert re.fullmatch(r"1\.\d+", data["meta"]["api-version"])
    names = [p["name"] for p in data["projects"]]
    normalized = [re.sub(r"[-_.]+", "-", n).lower() for n in names]
    assert normalized.count("foo-bar") == 1
    assert len(normalized) == len(set(normalized))
    assert {"local-ver", "yank-cycle", "growing", "doomed"} <= set(normalized)


def test_t22_json_project_page(world: World) -> None:
    data = world.json_page()
    assert data["name"] == "foo-bar"
    assert re.fullmatch(r"^1\.\d+$", data["meta"]["api-version"])
    versions = data["versions"]
    assert {"1.0", "2.0"} <= set(versions)
    assert len(versions) == len(set(versions))
    assert sorted(f["filename"] for f in data["files"]) == sorted([SDIST, WHEEL1, WHEEL2])
    by_name = {f["filename"]: f for f in data["files"]}
    assert by_name[SDIST]["filename"].startswith("foo_bar-1.0")
    for filename in by_name:
        version = filename.removeprefix("foo_bar-").split("-")[0].removesuffix(".tar.gz")
        assert version in versions
    for key in ("alternate-locations", "tracks", "namespaces"):
        assert key not in data and key not in data["meta"]


def test_t23_json_files_hashes_size_upload_time(world: World) -> None:
    data = world.json_page()
    for f in data["files"]:
        assert isinstance(f["filename"], str) and isinstance(f["url"], str)
        assert HEX64.match(f["hashes"]["sha256"])
        assert isinstance(f["size"], int) and not isinstance(f["size"], bool)
        assert UPLOAD_TIME.match(f["upload-time"]), f["upload-time"]
        url = urljoin(world.url(PAGE), f["url"])
        assert urlsplit(url).query == "" and "#" not in f["url"]
        download = world.server.http.get(url, timeout=30)
        assert download.status_code == 200
        assert int(download.headers["Content-Length"]) == f["size"] == len(download.content)
        assert sha256(download.content) == f["hashes"]["sha256"]
        assert download.content == world.files[f["filename"]].read_bytes()


def test_t24_json_yank_state(world: World) -> None:
    by_name = {f["filename"]: f for f in world.json_page()["files"]}
    assert by_name[WHEEL2]["yanked"] == "bad build"
    for name in (SDIST, WHEEL1):
        assert by_name[name].get("yanked", False) is False
    for f in by_name.values():
        assert f.get("yanked") != ""


def test_t25_json_core_metadata(world: World) -> None:
    response = world.get(PAGE, headers=J)
    assert b"dist-info-metadata" not in response.content
    by_name = {f["filename"]: f for f in response.json()["files"]}
    for name in (WHEEL1, WHEEL2):
        core = by_name[name]["core-metadata"]
        assert set(core) == {"sha256"}
        url = urljoin(response.url, by_name[name]["url"]) + ".metadata"
        metadata = world.server.http.get(url, timeout=30)
        assert metadata.status_code == 200
        assert sha256(metadata.content) == core["sha256"]
        assert metadata.content == wheel_metadata(world.files[name])
    # The sdist: absent, or falsy (and then no .metadata advertised).
    assert not by_name[SDIST].get("core-metadata", False)


def test_t26_json_requires_python_is_not_escaped(world: World) -> None:
    by_name = {f["filename"]: f for f in world.json_page()["files"]}
    assert by_name[WHEEL1]["requires-python"] == ">=3.8,<4"
    assert by_name[WHEEL2].get("requires-python") is None


def test_t27_html_and_json_agree(world: World) -> None:
    response, page = world.page()
    data = world.json_page()
    from_html = {}
    for a in page.anchors:
        url, fragment = urldefrag(urljoin(response.url, a.href))
        yanked = a.attrs.get("data-yanked")
        from_html[a.filename] = (
            url,
            fragment.partition("=")[2],
            yanked if yanked else ("data-yanked" in a.attrs),
            a.attrs.get("data-requires-python"),
            (a.attrs.get("data-core-metadata") or "").removeprefix("sha256=") or None,
        )
    from_json = {}
    for f in data["files"]:
        core = f.get("core-metadata")
        from_json[f["filename"]] = (
            urljoin(world.url(PAGE), f["url"]),
            f["hashes"]["sha256"],
            f.get("yanked", False),
            f.get("requires-python"),
            core["sha256"] if isinstance(core, dict) else None,
        )
    assert from_html == from_json


def test_t28_caching_headers_etag_and_304(world: World) -> None:
    for path, headers in ((PAGE, {}), (PAGE, J), (SIMPLE, {}), (SIMPLE, J)):
        response = world.get(path, headers=headers)
        cache_control = response.headers["Cache-Control"]
        match = re.search(r"max-age=(\d+)", cache_control)
        assert "no-cache" in cache_control or (match and int(match.group(1)) <= 600)
        etag = response.headers["ETag"]
        assert re.fullmatch(r'"[^"]+"', etag), etag  # strong, not W/"…"
        again = world.get(path, headers={**headers, "If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["ETag"] == etag
        listed = world.get(path, headers={**headers, "If-None-Match": f'"nope", {etag}'})
        assert listed.status_code == 304
        assert world.get(path, headers={**headers, "If-None-Match": "*"}).status_code == 304
        other = world.get(path, headers={**headers, "If-None-Match": '"nope"'})
        assert other.status_code == 200 and other.content == response.content


def test_new_upload_changes_the_etag_at_once(world: World) -> None:
    path = f"{SIMPLE}growing/"
    html, data = world.get(path), world.get(path, headers=J)
    listing = world.get(SIMPLE, headers=J)
    newer = make_wheel(world.tmp / "growing", "growing", "1.1")
    world.upload(STAGE, newer)
    for before, headers in ((html, {}), (data, J)):
        after = world.get(path, headers={**headers, "If-None-Match": before.headers["ETag"]})
        assert after.status_code == 200, "a stale 304 right after an upload"
        assert after.headers["ETag"] != before.headers["ETag"]
        assert newer.name.encode() in after.content
    assert "1.1" in world.json_page(path)["versions"]
    # The listing did not change in content; revalidation may answer 304 or 200.
    relisted = world.get(SIMPLE, headers={**J, "If-None-Match": listing.headers["ETag"]})
    assert relisted.status_code in (200, 304)


# --- T31, T32: file transport -------------------------------------------------


def test_t31_head_and_range_requests(world: World) -> None:
    url = world.file_url(WHEEL1)
    body = world.files[WHEEL1].read_bytes()
    head = requests.head(url, timeout=30)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == len(body)
    assert head.headers.get("Accept-Ranges") == "bytes"
    assert "Content-Encoding" not in head.headers
    assert head.content == b""
    cached = requests.get(url, headers={"If-None-Match": head.headers["ETag"]}, timeout=30)
    assert cached.status_code == 304 and cached.content == b""

    first = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=30)
    assert first.status_code == 206
    assert first.headers["Content-Range"] == f"bytes 0-99/{len(body)}"
    assert first.content == body[:100]
    assert int(first.headers["Content-Length"]) == 100

    # Suffix range (poetry's lazy wheel, uv): the last 100 bytes.
    last = requests.get(
        url, headers={"Range": "bytes=-100", "Accept-Encoding": "identity"}, timeout=30
    )
    assert last.status_code == 206
    assert last.headers["Content-Range"] == f"bytes {len(body) - 100}-{len(body) - 1}/{len(body)}"
    assert last.content == body[-100:]

    middle = requests.get(url, headers={"Range": f"bytes=100-{len(body) + 50}"}, timeout=30)
    assert middle.status_code == 206
    assert middle.content == body[100:]


def test_t32_local_version_with_encoded_plus(world: World) -> None:
    path = f"{SIMPLE}local-ver/"
    response, page = world.page(path)
    anchor = page.anchor(LOCAL)
    assert anchor.filename == LOCAL
    url = urldefrag(urljoin(response.url, anchor.href)).url
    body = world.files[LOCAL].read_bytes()
    prefix = url.rsplit("/", 1)[0]
    literal = world.server.http.get(f"{prefix}/{LOCAL}", timeout=30)
    assert literal.status_code == 200 and literal.content == body
    encoded = world.server.http.get(f"{prefix}/{LOCAL.replace('+', '%2B')}", timeout=30)
    assert encoded.status_code == 200 and encoded.content == body
    lower = world.server.http.get(f"{prefix}/{LOCAL.replace('+', '%2b')}", timeout=30)
    assert lower.status_code == 200 and lower.content == body
    # A '+' is literal, never a space.
    assert world.server.http.get(f"{prefix}/{LOCAL.replace('+', '%20')}").status_code == 404
    metadata = world.server.http.get(f"{prefix}/{LOCAL.replace('+', '%2B')}.metadata", timeout=30)
    assert metadata.status_code == 200
    assert metadata.content == wheel_metadata(world.files[LOCAL])
    data = world.json_page(path)
    assert data["versions"] == ["1.0+cpu"]
    assert urljoin(world.url(path), data["files"][0]["url"]) in (
        f"{prefix}/{LOCAL}",
        f"{prefix}/{LOCAL.replace('+', '%2B')}",
    )


# --- deletion ---------------------------------------------------------------------


def test_delete_file_and_release_on_a_volatile_index(world: World) -> None:
    path = f"{SIMPLE}doomed/"
    sdist, wheel1, wheel2 = (
        "doomed-1.0.tar.gz",
        "doomed-1.0-py3-none-any.whl",
        "doomed-2.0-py3-none-any.whl",
    )
    urls = {name: world.file_url(name, path) for name in (sdist, wheel1, wheel2)}
    assert requests.delete(urls[sdist], timeout=30).status_code == 401

    deleted = requests.delete(urls[sdist], auth=AUTH, timeout=30)
    assert deleted.status_code == 200, deleted.text
    assert requests.get(urls[sdist], timeout=30).status_code == 404
    _, page = world.page(path)
    assert sorted(a.text for a in page.anchors) == [wheel1, wheel2]
    assert sdist not in [f["filename"] for f in world.json_page(path)["files"]]
    assert requests.get(urls[wheel1], timeout=30).status_code == 200

    deleted = world.server.request("DELETE", f"/{STAGE}/doomed/2.0", auth=AUTH)
    assert deleted.status_code == 200, deleted.text
    assert requests.get(urls[wheel2], timeout=30).status_code == 404
    assert requests.get(urls[wheel2] + ".metadata", timeout=30).status_code == 404
    _, page = world.page(path)
    assert [a.text for a in page.anchors] == [wheel1]
    data = world.json_page(path)
    assert [f["filename"] for f in data["files"]] == [wheel1]
    assert "2.0" not in data["versions"]
    assert world.server.request("DELETE", f"/{STAGE}/doomed/2.0", auth=AUTH).status_code == 404

    # Deleting the last file leaves a tombstone: the name stays held (an empty
    # page, so mirror releases of it stay hidden) until the project is deleted.
    assert requests.delete(urls[wheel1], auth=AUTH, timeout=30).status_code == 200
    assert world.get(path).status_code == 200
    assert world.json_page(path)["files"] == []
    deleted = world.server.request("DELETE", f"/{STAGE}/doomed", auth=AUTH)
    assert deleted.status_code == 200, deleted.text
    assert world.get(path).status_code == 404
    assert world.get(path, headers=J).status_code == 404
    assert world.server.request("DELETE", f"/{STAGE}/doomed", auth=AUTH).status_code == 404


def test_non_volatile_index_refuses_deletes(world: World) -> None:
    path = f"/{PROD}/+simple/keeper/"
    url = world.file_url(KEEPER, path)
    refused = requests.delete(url, auth=AUTH, timeout=30)
    assert refused.status_code == 403
    assert "volatile" in refused.text
    refused = world.server.request("DELETE", f"/{PROD}/keeper/1.0", auth=AUTH)
    assert refused.status_code == 403
    assert "volatile" in refused.text
    download = requests.get(url, timeout=30)
    assert download.status_code == 200
    assert download.content == world.files[KEEPER].read_bytes()
    _, page = world.page(path)
    assert [a.text for a in page.anchors] == [KEEPER]


def test_json_bodies_are_objects_with_meta(world: World) -> None:
    # R2.11/R2.12: every JSON answer is an object with meta.api-version.
    for path in (SIMPLE, PAGE):
        data = json.loads(world.get(path, headers=J).content)
        assert isinstance(data, dict) and isinstance(data["meta"], dict)
        assert re.fullmatch(r"1\.\d+", data["meta"]["api-version"])
