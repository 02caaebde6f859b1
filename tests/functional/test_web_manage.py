"""Browser login and the management forms (docs/reliability.md WM cases): headless
Chromium logs in, creates a token (used by twine), creates an index, yanks a release
and logs out, on SQLite and PostgreSQL; the session cookie dies at logout even when
replayed, also after a restart; every refused form (CSRF missing or wrong, another
site's form, someone else's index, an invalid setting, a forged or expired cookie)
changes nothing; the API never accepts the cookie."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy
from playwright.sync_api import Browser, Page

from lockgate.accounts.sessions import KEY_FILENAME, SESSION_COOKIE, SessionKeys
from tests.support.browser import page_context
from tests.support.dists import make_wheel
from tests.support.receiver import CIReceiver
from tests.support.server import Clients, LockgateServer
from tests.support.waiting import wait_until
from tests.unit.test_web_negotiation import CHROMIUM as BROWSER_ACCEPT

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def _screenshot(page: Page, name: str) -> None:
    """Regenerate docs/screenshots/<name>.png only when asked (LOCKGATE_SCREENSHOTS=1)."""
    if os.environ.get("LOCKGATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 800})
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


class Browserish:
    """A browser as the server sees it (cookies, Origin, Accept), driven by requests:
    for the refusals, which need exact control over what is sent."""

    def __init__(self, server: LockgateServer) -> None:
        self.server = server
        self.http = requests.Session()
        self.headers = {"Accept": BROWSER_ACCEPT, "Origin": server.url}

    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("headers", self.headers)
        return self.http.get(self.server.url + path, allow_redirects=False, timeout=60, **kw)

    def post(self, path: str, data: dict[str, str], **kw: Any) -> requests.Response:
        kw.setdefault("headers", self.headers)
        return self.http.post(
            self.server.url + path, data=data, allow_redirects=False, timeout=60, **kw
        )

    def login(self, user: str, password: str) -> requests.Response:
        page = self.get("/+login")
        token = CSRF_RE.search(page.text)
        assert token, page.text
        return self.post(
            "/+login", {"username": user, "password": password, "csrf_token": token.group(1)}
        )

    def csrf(self, path: str) -> str:
        page = self.get(path)
        assert page.status_code == 200, page.text
        found = CSRF_RE.search(page.text)
        assert found, page.text
        return found.group(1)

    @property
    def cookie(self) -> str:
        return str(self.http.cookies.get(SESSION_COOKIE))


def _signed_in_as(server: LockgateServer, cookie: str) -> bool:
    """Whether a page sent with only this session cookie shows a signed-in user."""
    page = requests.get(
        server.url + "/",
        headers={"Accept": BROWSER_ACCEPT},
        cookies={SESSION_COOKIE: cookie},
        timeout=60,
    )
    assert page.status_code == 200
    return "Log out" in page.text


def _yanked(server: LockgateServer, index: str, project: str) -> list[Any]:
    page = server.get(f"/{index}/+simple/{project}/", headers=SIMPLE_JSON).json()
    return [f.get("yanked", False) for f in page["files"]]


# --- the walk, in Chromium ---------------------------------------------------------


def test_browser_walk_login_token_index_upload_yank_logout(
    make_server: Any, backend: str, browser: Browser, clients: Clients, tmp_path: Path
) -> None:
    """docs/reliability.md WM-1, WM-2, WM-8, WM-9."""
    server: LockgateServer = make_server()
    server.create_user(*ALICE)
    with page_context(browser, server.url) as (context, _outside):
        page = context.new_page()
        # An anonymous browser on a management page is sent to the login page.
        page.goto("/alice/+manage")
        assert "/+login?next=/alice/%2Bmanage" in page.url or "/+login" in page.url
        _screenshot(page, "login")
        page.get_by_label("User name").fill("alice")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        assert "Invalid user name or password" in page.get_by_role("alert").inner_text()
        page.get_by_label("Password").fill("alice-pw")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/alice/+manage")
        assert page.get_by_role("heading", level=1).inner_text() == "Manage alice"
        cookies = {c["name"]: c for c in context.cookies()}
        session = cookies[SESSION_COOKIE]
        assert session["httpOnly"] and session["sameSite"] == "Lax" and not session["secure"]
        # A script in a page of this origin cannot read the session (HttpOnly).
        assert SESSION_COOKIE not in page.evaluate("document.cookie")

        # A token: its secret once, on the answer to the form.
        page.get_by_label("Name", exact=True).fill("ci-upload")
        page.get_by_label("read").uncheck()
        page.get_by_label("upload").check()
        page.get_by_role("button", name="Create token").click()
        secret = page.locator("#token-secret").inner_text().strip()
        assert re.fullmatch(r"lgt_[A-Za-z0-9_-]{43}", secret)
        _screenshot(page, "token-created")
        page.goto("/alice/+manage")
        assert secret not in page.content()
        assert "ci-upload" in page.content()
        _screenshot(page, "manage-user")

        # An index, through the form.
        page.get_by_role("link", name="New index").first.click()
        page.get_by_label("Name", exact=True).fill("dev")
        page.get_by_label("Title").fill("Alice's development index")
        page.get_by_label("Gates: push requires passing results in").fill("")
        _screenshot(page, "index-form")
        page.get_by_role("button", name="Create index").click()
        page.wait_for_url("**/alice/dev/+manage?done=created")
        config = server.get("/alice/dev", headers={"Accept": "application/json"}).json()
        assert config["result"]["title"] == "Alice's development index"
        assert config["result"]["acl_upload"] == ["alice"]

        # twine uploads with the token made in the browser.
        wheel = make_wheel(tmp_path / "dist", "web-demo", "1.0")
        result = clients.twine_upload(f"{server.url}/alice/dev/", [wheel], "__token__", secret)
        assert result.returncode == 0, result.stdout + result.stderr

        # Yank it through the release's page; the simple API says so. The page also shows
        # what a push to a gated index would need.
        server.create_index("alice/prod", ALICE, volatile=False, push_requires=["py311"])
        page.goto("/alice/dev/web-demo/1.0/+manage")
        assert "py311 has no passing result" in page.content()
        page.get_by_label("Reason (optional)").fill("broken on Windows")
        page.get_by_role("button", name="Yank").click()
        page.wait_for_url("**/+manage?done=yanked")
        assert page.get_by_role("status").inner_text().startswith("The release was yanked")
        _screenshot(page, "release-manage")
        assert _yanked(server, "alice/dev", "web-demo") == ["broken on Windows"]
        entry = server.get("/alice/dev/pypi/web-demo/json").json()
        assert entry["urls"][0]["yanked"] is True

        # Log out: the cookie is dead, even replayed by someone who copied it.
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(server.url + "/")
        assert page.get_by_role("link", name="Log in").count() == 1
    assert not _signed_in_as(server, session["value"])


def test_a_session_cookie_is_not_readable_by_page_scripts_and_pages_carry_no_script(
    server: LockgateServer, browser: Browser
) -> None:
    """docs/reliability.md WM-9: the session cookie is HttpOnly and every management page sends
    the script-free CSP; a script running in the server's origin (as one in an uploaded
    document would) sees no session."""
    server.create_user(*ALICE)
    with page_context(browser, server.url) as (context, _outside):
        page = context.new_page()
        page.goto("/+login")
        page.get_by_label("User name").fill("alice")
        page.get_by_label("Password").fill("alice-pw")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(server.url + "/")
        for path in ("/alice/+manage", "/alice/+manage/new-index"):
            response = page.goto(path)
            assert response is not None and response.status == 200
            assert "script-src" not in response.headers["content-security-policy"]
            assert "default-src 'none'" in response.headers["content-security-policy"]
            assert SESSION_COOKIE not in page.evaluate("document.cookie")
            assert page.locator("script").count() == 0
        # A script in this origin (as in an uploaded document) can neither read a
        # management page (and its form token) nor send a form, even with the right token.
        token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
        # Our pages' CSP forbids a script any request (connect-src falls to 'none'); a
        # document of this origin without that CSP (here the stylesheet, which carries no
        # CSP) stands for the worst.
        page.goto("/+static/style.css")
        answers = page.evaluate(
            """async (token) => {
                const read = await fetch('/alice/+manage');
                const body = new URLSearchParams({csrf_token: token, name: 'stolen',
                                                  scope_admin: 'on'});
                const sent = await fetch('/alice/+manage/tokens', {method: 'POST', body});
                return [read.status, sent.status, await sent.text()];
            }""",
            token,
        )
        assert answers[0] == 403 and answers[1] == 403, answers
        assert "not for scripts" in answers[2]
    listed = server.request("GET", "/alice/+tokens", auth=ALICE).json()["result"]
    assert listed == []


# --- sessions ------------------------------------------------------------------------


def test_logout_ends_the_session_everywhere_also_after_a_restart(
    make_server: Any, backend: str
) -> None:
    """docs/reliability.md WM-2: a logged-out cookie is refused, replayed, also after a
    restart; a password change ends every session of the user; a deleted user's session is
    dead."""
    server: LockgateServer = make_server()
    server.create_user(*ALICE)
    first, second = Browserish(server), Browserish(server)
    assert first.login(*ALICE).status_code == 303
    assert second.login(*ALICE).status_code == 303
    assert _signed_in_as(server, first.cookie) and _signed_in_as(server, second.cookie)
    # A private index is listed to its reader's session only.
    server.create_index("alice/secret", ALICE, acl_read=["alice"])
    assert 'href="/alice/secret"' in first.get("/").text
    anonymous = server.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert 'href="/alice/secret"' not in anonymous.text
    stolen = first.cookie
    token = first.csrf("/alice/+manage")
    logout = first.post("/+logout", {"csrf_token": token})
    assert logout.status_code == 303 and logout.headers["Location"] == "/"
    assert not _signed_in_as(server, stolen)
    # The other session of the same user is untouched by that logout.
    assert _signed_in_as(server, second.cookie)
    server.stop()
    server.start()
    assert not _signed_in_as(server, stolen)
    assert _signed_in_as(server, second.cookie)
    # A form sent with the dead cookie is refused and changes nothing.
    serial = server.serial()
    replay = requests.post(
        server.url + "/alice/+manage/tokens",
        data={"csrf_token": token, "name": "x", "scope_read": "on"},
        headers={"Origin": server.url, "Accept": BROWSER_ACCEPT},
        cookies={SESSION_COOKIE: stolen},
        allow_redirects=False,
        timeout=60,
    )
    assert replay.status_code == 403 and "not signed in" in replay.text
    assert server.serial() == serial
    # A new password ends the user's other sessions.
    changed = server.request("PATCH", "/alice", auth=ALICE, json={"password": "new-pw"})
    assert changed.status_code == 200, changed.text
    assert not _signed_in_as(server, second.cookie)
    # Deleting the user ends their sessions too (a new user of that name gets none).
    third = Browserish(server)
    assert third.login("alice", "new-pw").status_code == 303
    assert _signed_in_as(server, third.cookie)
    deleted = server.request("DELETE", "/alice", auth=server.root_auth())
    assert deleted.status_code == 200, deleted.text
    server.create_user("alice", "new-pw")
    assert not _signed_in_as(server, third.cookie)


def test_forged_expired_and_tampered_cookies_are_refused(server: LockgateServer) -> None:
    """docs/reliability.md WM-2: a cookie whose signature does not hold, or that expired, signs
    nobody in."""
    server.create_user(*ALICE)
    visitor = Browserish(server)
    visitor.login(*ALICE)
    good = visitor.cookie
    assert _signed_in_as(server, good)
    version, body, mac = good.split(".")
    flipped = mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB")
    for bad in (f"{version}.{body}.{flipped}", f"{version}.{body}x.{mac}", "garbage", ""):
        assert not _signed_in_as(server, bad), bad
    # Signed with the server's own key, but expired: refused.
    keys = SessionKeys(bytes.fromhex((server.serverdir / KEY_FILENAME).read_text()))
    stored = _password_hash(server, "alice")
    expired, _ = keys.issue("alice", stored, now=time.time() - 13 * 3600)
    fresh, _ = keys.issue("alice", stored)
    assert _signed_in_as(server, fresh)
    assert not _signed_in_as(server, expired)
    # Another server's key: refused.
    other = SessionKeys(b"k" * 32).issue("alice", stored)[0]
    assert not _signed_in_as(server, other)


def _password_hash(server: LockgateServer, user: str) -> str:
    """The stored hash, read from the server's database (SQLite or PostgreSQL)."""
    url = server.db_url or f"sqlite:///{server.serverdir / 'lockgate.sqlite'}"
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as db:
            query = sqlalchemy.text("select password_hash from users where name = :name")
            return str(db.execute(query, {"name": user}).scalar_one())
    finally:
        engine.dispose()


def test_the_api_never_accepts_the_session_cookie(server: LockgateServer, tmp_path: Path) -> None:
    """docs/reliability.md WM-6: PUT /{user}/{index}, an upload and the token API with only the
    cookie are unauthenticated (401), whatever the Origin."""
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    visitor = Browserish(server)
    visitor.login(*ALICE)
    cookies = {SESSION_COOKIE: visitor.cookie}
    serial = server.serial()
    put = requests.put(
        server.url + "/alice/other", json={"type": "stage"}, cookies=cookies, timeout=60
    )
    assert put.status_code == 401
    tokens = requests.post(
        server.url + "/alice/+tokens", json={"scopes": ["read"]}, cookies=cookies, timeout=60
    )
    assert tokens.status_code == 401
    wheel = make_wheel(tmp_path, "cookie-upload", "1.0")
    with wheel.open("rb") as handle:
        upload = requests.post(
            server.url + "/alice/dev/",
            data={":action": "file_upload", "name": "cookie-upload", "version": "1.0"},
            files={"content": (wheel.name, handle)},
            cookies=cookies,
            timeout=60,
        )
    assert upload.status_code == 401, upload.text
    assert server.serial() == serial


# --- login ---------------------------------------------------------------------------


def test_login_refusals_rate_limit_and_safe_next(server: LockgateServer) -> None:
    """docs/reliability.md WM-1: a wrong password is a clear message (no session); ten failures
    pause the name for this client (429, Retry-After) as for Basic auth; the login form's
    own CSRF token and origin are checked; `next` never leads to another site."""
    server.create_user(*ALICE)
    visitor = Browserish(server)
    wrong = visitor.login("alice", "nope")
    assert wrong.status_code == 401
    assert "Invalid user name or password" in wrong.text
    assert 'value="alice"' in wrong.text  # the name typed is kept
    assert SESSION_COOKIE not in visitor.http.cookies
    # Without the login form's token, or from another site: refused.
    no_token = visitor.post("/+login", {"username": "alice", "password": "alice-pw"})
    assert no_token.status_code == 403 and "expired" in no_token.text
    token = visitor.csrf("/+login")
    cross = visitor.post(
        "/+login",
        {"username": "alice", "password": "alice-pw", "csrf_token": token},
        headers={"Origin": "https://evil.example", "Accept": BROWSER_ACCEPT},
    )
    assert cross.status_code == 403 and "another site" in cross.text
    assert SESSION_COOKIE not in visitor.http.cookies
    # Open redirects: the next page is always on this server.
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        visitor = Browserish(server)
        token = visitor.csrf(f"/+login?next={requests.utils.quote(evil)}")
        answer = visitor.post(
            "/+login",
            {"username": "alice", "password": "alice-pw", "csrf_token": token, "next": evil},
        )
        assert answer.status_code == 303 and answer.headers["Location"] == "/", evil
    # JSON (devpi-client's login) is dispatched apart; other bodies are refused clearly.
    odd = visitor.http.post(
        server.url + "/+login", data=b"x", headers={"Content-Type": "text/plain"}
    )
    assert odd.status_code == 415
    # Ten failures pause the name for this client.
    attacker = Browserish(server)
    for _ in range(10):
        assert attacker.login("alice", "guess").status_code == 401
    paused = attacker.login("alice", "alice-pw")
    assert paused.status_code == 429 and "Retry-After" in paused.headers
    assert "too many failed logins" in paused.text.lower()


def test_session_cookie_is_secure_behind_tls(make_server: Any) -> None:
    """docs/reliability.md WM-1: with an https public URL the cookies carry Secure."""
    server: LockgateServer = make_server(env={"LOCKGATE_PUBLIC_URL": "https://pkgs.example"})
    server.create_user(*ALICE)
    page = requests.get(server.url + "/+login", headers={"Accept": BROWSER_ACCEPT}, timeout=60)
    assert "Secure" in page.headers["Set-Cookie"]
    token = CSRF_RE.search(page.text)
    assert token
    answer = requests.post(
        server.url + "/+login",
        data={"username": "alice", "password": "alice-pw", "csrf_token": token.group(1)},
        headers={"Origin": "https://pkgs.example"},
        # requests keeps Secure cookies from plain http; a browser behind TLS sends them.
        cookies={"lockgate_login": str(page.cookies.get("lockgate_login"))},
        allow_redirects=False,
        timeout=60,
    )
    assert answer.status_code == 303
    assert "Secure" in answer.headers["Set-Cookie"] and "HttpOnly" in answer.headers["Set-Cookie"]


# --- forms refused -------------------------------------------------------------------


def test_forms_refuse_missing_wrong_or_cross_site_tokens(make_server: Any, backend: str) -> None:
    """docs/reliability.md WM-3, WM-4: a form POST without this session's token, from another
    site, or with no Origin/Referer is a 403 page; nothing changes."""
    server: LockgateServer = make_server()
    server.create_user(*ALICE)
    alice = Browserish(server)
    alice.login(*ALICE)
    good = alice.csrf("/alice/+manage")
    other = Browserish(server)
    server.create_user(*BOB)
    other.login(*BOB)
    bobs = other.csrf("/bob/+manage")
    new_index = {"name": "dev", "acl_read": ":ANONYMOUS:", "volatile": "on"}
    serial = server.serial()
    attempts = [
        ({**new_index}, alice.headers),  # no token
        ({**new_index, "csrf_token": "forged"}, alice.headers),
        ({**new_index, "csrf_token": bobs}, alice.headers),  # another session's token
        (
            {**new_index, "csrf_token": good},
            {"Accept": BROWSER_ACCEPT, "Origin": "https://evil.example"},
        ),
        ({**new_index, "csrf_token": good}, {"Accept": BROWSER_ACCEPT}),  # no Origin/Referer
        ({**new_index, "csrf_token": good}, {**alice.headers, "Sec-Fetch-Site": "cross-site"}),
        (
            {**new_index, "csrf_token": good},
            {"Accept": BROWSER_ACCEPT, "Referer": "https://evil.example/page"},
        ),
    ]
    for data, headers in attempts:
        refused = alice.post("/alice/+manage/new-index", data, headers=headers)
        assert refused.status_code == 403, (data, headers, refused.text)
        assert "nothing was changed" in refused.text
        assert refused.headers["Content-Type"].startswith("text/html")
    assert server.serial() == serial
    assert server.get("/alice/dev").status_code == 404
    # A same-origin Referer (no Origin) with the right token is accepted.
    accepted = alice.post(
        "/alice/+manage/new-index",
        {**new_index, "csrf_token": good},
        headers={"Accept": BROWSER_ACCEPT, "Referer": f"{server.url}/alice/+manage/new-index"},
    )
    assert accepted.status_code == 303, accepted.text
    # Logout needs the token too.
    assert alice.post("/+logout", {"csrf_token": "forged"}).status_code == 403
    assert _signed_in_as(server, alice.cookie)


def test_forms_for_what_another_user_owns_are_refused(server: LockgateServer) -> None:
    """docs/reliability.md WM-5: bob's session cannot change alice's index, tokens or hooks
    (403 pages), but root's can; a form page of someone else's is refused too."""
    server.create_user(*ALICE)
    server.create_user(*BOB)
    server.create_index("alice/dev", ALICE)
    bob = Browserish(server)
    bob.login(*BOB)
    token = bob.csrf("/bob/+manage")
    serial = server.serial()
    for path in ("/alice/+manage", "/alice/dev/+manage", "/alice/dev/+manage/hooks"):
        assert bob.get(path).status_code == 403, path
    for path, data in (
        ("/alice/dev/+manage", {"title": "bob was here", "acl_read": ":ANONYMOUS:"}),
        ("/alice/+manage/tokens", {"name": "bob", "scope_upload": "on"}),
        ("/alice/dev/+manage/delete", {"confirm": "alice/dev"}),
        ("/alice/+manage/new-index", {"name": "bobs", "acl_read": ":ANONYMOUS:"}),
        ("/alice/dev/+manage/hooks", {"name": "h", "kind": "generic", "url": "http://x/"}),
    ):
        refused = bob.post(path, {**data, "csrf_token": token})
        assert refused.status_code == 403, (path, refused.text)
        assert "may not manage" in refused.text
    assert server.serial() == serial
    root = Browserish(server)
    root.login(*server.root_auth())
    token = root.csrf("/alice/dev/+manage")
    saved = root.post(
        "/alice/dev/+manage",
        {
            "title": "root was here",
            "acl_read": ":ANONYMOUS:",
            "volatile": "on",
            "csrf_token": token,
        },
    )
    assert saved.status_code == 303, saved.text
    config = server.get("/alice/dev", headers={"Accept": "application/json"}).json()["result"]
    assert config["title"] == "root was here"
    # Root sees the mirror settings; an unchanged upstream URL is kept as it is.
    mirror_form = root.get("/root/pypi/+manage")
    assert "Mirror settings (root only)" in mirror_form.text
    before = server.get("/root/pypi", headers={"Accept": "application/json"}).json()["result"]
    saved = root.post(
        "/root/pypi/+manage",
        {"title": "PyPI mirror", "acl_read": ":ANONYMOUS:", "csrf_token": token,
         "mirror_url": before["mirror_url"], "mirror_cache_expiry": "600",
         "mirror_timeout": "10", "mirror_offline_retry": "10", "mirror_ca_bundle": ""},
    )  # fmt: skip
    assert saved.status_code == 303, saved.text
    after = server.get("/root/pypi", headers={"Accept": "application/json"}).json()["result"]
    assert after["mirror_cache_expiry"] == 600 and after["mirror_url"] == before["mirror_url"]
    # Bob sees no mirror settings on a page of his own.
    assert "Mirror settings" not in bob.get("/bob/+manage/new-index").text


def test_invalid_settings_rerender_the_form_and_change_nothing(
    make_server: Any, backend: str
) -> None:
    """docs/reliability.md WM-7: an invalid index setting, token or hook re-renders its form
    with the message and what was typed (4xx); nothing changes."""
    server: LockgateServer = make_server()
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    alice = Browserish(server)
    alice.login(*ALICE)
    token = alice.csrf("/alice/+manage")
    serial = server.serial()
    bad_base = alice.post(
        "/alice/+manage/new-index",
        {"name": "qa", "bases": "nobody/nothing", "acl_read": ":ANONYMOUS:", "csrf_token": token},
    )
    assert bad_base.status_code == 400
    assert "nobody/nothing" in bad_base.text and 'value="qa"' in bad_base.text
    assert 'role="alert"' in bad_base.text
    bad_name = alice.post(
        "/alice/+manage/new-index", {"name": "../x", "acl_read": "", "csrf_token": token}
    )
    assert bad_name.status_code == 400
    taken = alice.post(
        "/alice/+manage/new-index", {"name": "DEV", "acl_read": ":ANONYMOUS:", "csrf_token": token}
    )
    assert taken.status_code == 409 and "already exists" in taken.text
    bad_edit = alice.post(
        "/alice/dev/+manage",
        {"push_requires": "py 3!", "acl_read": ":NOBODY:", "csrf_token": token},
    )
    assert bad_edit.status_code == 400 and ":NOBODY:" in bad_edit.text
    promote_self = alice.post(
        "/alice/dev/+manage",
        {"promote_to": "alice/dev", "acl_read": ":ANONYMOUS:", "csrf_token": token},
    )
    assert promote_self.status_code == 400 and "itself" in promote_self.text
    # Only root says where a server fetches from: no mirror for alice.
    mirror = alice.post(
        "/alice/+manage/new-index",
        {
            "name": "mine",
            "type": "mirror",
            "mirror_url": "http://127.0.0.1:1/simple/",
            "acl_read": ":ANONYMOUS:",
            "csrf_token": token,
        },
    )
    assert mirror.status_code == 403 and "only root" in mirror.text
    bad_token = alice.post(
        "/alice/+manage/tokens",
        {"name": "t", "expires": "yesterday", "scope_read": "on", "csrf_token": token},
    )
    assert bad_token.status_code == 400 and "is not a date" in bad_token.text
    no_scope = alice.post("/alice/+manage/tokens", {"name": "t", "csrf_token": token})
    assert no_scope.status_code == 400 and "scopes" in no_scope.text
    bad_hook = alice.post(
        "/alice/dev/+manage/hooks",
        {
            "name": "ci",
            "kind": "generic",
            "url": "ftp://ci/",
            "generic_secret": "s3cret",
            "event_upload": "on",
            "csrf_token": token,
        },
    )
    assert bad_hook.status_code == 400 and "http(s) URL" in bad_hook.text
    assert "s3cret" not in bad_hook.text
    wrong_confirm = alice.post(
        "/alice/dev/+manage/delete", {"confirm": "alice/de", "csrf_token": token}
    )
    assert wrong_confirm.status_code == 400 and "to confirm" in wrong_confirm.text
    assert server.serial() == serial
    assert server.get("/alice/qa").status_code == 404


def test_release_forms_push_with_gates_unyank_delete_and_hooks(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    """docs/reliability.md WM-8: the release page shows which gates each target meets; a gated
    push is refused with the API's message and accepted once the results pass; unyank and
    delete (volatile only) through forms; a hook added, listed with its deliveries, removed."""
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    server.create_index("alice/prod", ALICE, volatile=False, push_requires=["py311"])
    wheel = make_wheel(tmp_path / "dist", "gated", "1.0")
    result = clients.twine_upload(f"{server.url}/alice/dev/", [wheel], *ALICE)
    assert result.returncode == 0, result.stderr
    alice = Browserish(server)
    alice.login(*ALICE)
    page = alice.get("/alice/dev/gated/1.0/+manage")
    assert page.status_code == 200
    assert "alice/prod" in page.text and "py311 has no passing result" in page.text
    token = CSRF_RE.search(page.text)
    assert token
    csrf = token.group(1)
    serial = server.serial()
    refused = alice.post(
        "/alice/dev/gated/1.0/+manage/push", {"target": "alice/prod", "csrf_token": csrf}
    )
    assert refused.status_code == 409 and "py311" in refused.text
    assert server.serial() == serial
    # A passing result (as CI posts it) meets the gate.
    sha = server.get("/alice/dev/+simple/gated/", headers=SIMPLE_JSON).json()["files"][0]
    posted = server.request(
        "POST",
        f"/alice/dev/+f/{sha['hashes']['sha256'][:16]}/{sha['filename']}",
        auth=ALICE,
        json={"environment": "py311", "outcome": "passed"},
    )
    assert posted.status_code in (200, 201), posted.text
    page = alice.get("/alice/dev/gated/1.0/+manage")
    assert "py311 passed" in page.text and "can be pushed" in page.text
    pushed = alice.post(
        "/alice/dev/gated/1.0/+manage/push", {"target": "alice/prod", "csrf_token": csrf}
    )
    assert pushed.status_code == 303, pushed.text
    files = server.get("/alice/prod/+simple/gated/", headers=SIMPLE_JSON).json()["files"]
    assert [f["filename"] for f in files] == [wheel.name]
    # prod is not volatile: no delete form; a forged delete is refused by the service.
    prod_page = alice.get("/alice/prod/gated/1.0/+manage")
    assert "cannot be deleted" in prod_page.text
    no_delete = alice.post(
        "/alice/prod/gated/1.0/+manage/delete", {"confirm": "on", "csrf_token": csrf}
    )
    assert no_delete.status_code == 403 and "not volatile" in no_delete.text
    # Yank, unyank, then delete from dev.
    assert alice.post("/alice/dev/gated/1.0/+manage/yank", {"csrf_token": csrf}).status_code == 303
    assert _yanked(server, "alice/dev", "gated") == [True]
    assert (
        alice.post("/alice/dev/gated/1.0/+manage/unyank", {"csrf_token": csrf}).status_code == 303
    )
    assert _yanked(server, "alice/dev", "gated") == [False]
    unconfirmed = alice.post("/alice/dev/gated/1.0/+manage/delete", {"csrf_token": csrf})
    assert unconfirmed.status_code == 400
    deleted = alice.post(
        "/alice/dev/gated/1.0/+manage/delete", {"confirm": "on", "csrf_token": csrf}
    )
    assert deleted.status_code == 303
    assert alice.get("/alice/dev/gated/1.0/+manage").status_code == 404


def test_hook_forms_add_list_deliveries_and_remove(
    make_server: Any, clients: Clients, tmp_path: Path
) -> None:
    """docs/reliability.md WM-8: a hook added through the form is the API's hook (secret masked
    on every page), its deliveries are listed, and it is removed through the form."""
    receiver = CIReceiver("generic", secret="s3cret-hook").start()
    try:
        server: LockgateServer = make_server(hook_allow="127.0.0.1")
        server.create_user(*ALICE)
        server.create_index("alice/dev", ALICE)
        alice = Browserish(server)
        alice.login(*ALICE)
        csrf = alice.csrf("/alice/dev/+manage/hooks")
        added = alice.post(
            "/alice/dev/+manage/hooks",
            {"name": "ci", "kind": "generic", "url": receiver.url,
             "generic_secret": "s3cret-hook", "event_upload": "on", "csrf_token": csrf},
        )  # fmt: skip
        assert added.status_code == 303, added.text
        shown = server.request("GET", "/alice/dev/+hooks/ci", auth=ALICE).json()["result"]
        assert shown["secret"] == "****" and shown["events"] == ["upload"]
        listing = alice.get("/alice/dev/+manage/hooks")
        assert receiver.url in listing.text and "s3cret-hook" not in listing.text
        wheel = make_wheel(tmp_path, "hooked-web", "1.0")
        assert clients.twine_upload(f"{server.url}/alice/dev/", [wheel], *ALICE).returncode == 0
        wait_until(lambda: len(receiver.received) == 1, "the upload hook", timeout=60)

        def delivered() -> bool:
            return "delivered" in alice.get("/alice/dev/+manage/hooks/ci").text

        wait_until(delivered, "the delivery listed", timeout=60)
        page = alice.get("/alice/dev/+manage/hooks/ci")
        assert "upload" in page.text and "s3cret-hook" not in page.text
        removed = alice.post("/alice/dev/+manage/hooks/ci/delete", {"csrf_token": csrf})
        assert removed.status_code == 303
        assert server.request("GET", "/alice/dev/+hooks/ci", auth=ALICE).status_code == 404
        # A target the operator did not allow: the API's message, nothing saved.
        refused = alice.post(
            "/alice/dev/+manage/hooks",
            {"name": "ci2", "kind": "generic", "url": "http://10.1.2.3/hook",
             "generic_secret": "x", "event_upload": "on", "csrf_token": csrf},
        )  # fmt: skip
        assert refused.status_code == 400 and "hook_allow" in refused.text
        assert server.request("GET", "/alice/dev/+hooks", auth=ALICE).json()["result"] == []
    finally:
        receiver.stop()


def test_hook_page_resends_an_undelivered_delivery_through_the_api_service(
    make_server: Any, clients: Clients, tmp_path: Path
) -> None:
    """docs/reliability.md WM-10: a delivery the receiver did not take (it was down) gets a
    Resend form with the session's CSRF token; sending it queues the delivery again, as the
    API's resend does, and the receiver gets it with the same delivery id. An unknown
    delivery ⇒ 404 naming it, another user ⇒ 403, a missing token ⇒ 403, nothing queued."""
    receiver = CIReceiver("generic", secret="s3cret-hook")  # not started: down
    try:
        server: LockgateServer = make_server(hook_allow="127.0.0.1")
        server.create_user(*ALICE)
        server.create_user(*BOB)
        server.create_index("alice/dev", ALICE)
        hook = {"kind": "generic", "url": receiver.url, "secret": "s3cret-hook",
                "events": ["upload"]}  # fmt: skip
        assert server.request("PUT", "/alice/dev/+hooks/ci", auth=ALICE, json=hook).ok
        wheel = make_wheel(tmp_path, "resent-web", "1.0")
        assert clients.twine_upload(f"{server.url}/alice/dev/", [wheel], *ALICE).returncode == 0

        def deliveries() -> list[dict[str, Any]]:
            found = server.request("GET", "/alice/dev/+hooks/ci/deliveries", auth=ALICE)
            return list(found.json()["result"])

        wait_until(
            lambda: [d["attempts"] for d in deliveries()] == [1], "a failed attempt", timeout=60
        )
        (delivery,) = deliveries()
        assert delivery["status"] == "pending"
        alice = Browserish(server)
        alice.login(*ALICE)
        page = alice.get("/alice/dev/+manage/hooks/ci")
        action = f"/alice/dev/+manage/hooks/ci/deliveries/{delivery['id']}/resend"
        assert page.status_code == 200 and f'action="{action}"' in page.text
        form = page.text[page.text.index(f'action="{action}"') :]
        csrf = CSRF_RE.search(form)
        assert csrf and csrf.group(1) == alice.csrf("/alice/dev/+manage/hooks/ci")
        # The bad paths first: nothing is queued again by any of them.
        bob = Browserish(server)
        bob.login(*BOB)
        bobs = bob.csrf("/bob/+manage")
        refused = bob.post(action, {"csrf_token": bobs})
        assert refused.status_code == 403 and "may not manage" in refused.text
        no_token = alice.post(action, {"csrf_token": ""})
        assert no_token.status_code == 403 and "nothing was changed" in no_token.text
        unknown = "00000000-0000-0000-0000-000000000000"
        missing = alice.post(
            f"/alice/dev/+manage/hooks/ci/deliveries/{unknown}/resend",
            {"csrf_token": csrf.group(1)},
        )
        assert missing.status_code == 404
        assert f"hook ci of alice/dev has no delivery {unknown}" in missing.text
        no_hook = alice.post(
            f"/alice/dev/+manage/hooks/nope/deliveries/{delivery['id']}/resend",
            {"csrf_token": csrf.group(1)},
        )
        assert no_hook.status_code == 404 and "has no hook &#39;nope&#39;" in no_hook.text
        assert [d["status"] for d in deliveries()] == ["pending"]
        assert receiver.received == []
        # The receiver is back; the form sends the delivery again.
        receiver.start()
        resent = alice.post(action, {"csrf_token": csrf.group(1)})
        assert resent.status_code == 303, resent.text
        assert resent.headers["Location"] == "/alice/dev/+manage/hooks/ci?done=resent"
        assert "queued to be sent again" in alice.get(resent.headers["Location"]).text
        wait_until(lambda: len(receiver.received) >= 1, "the resent delivery", timeout=60)
        body = receiver.received[0].body
        assert json.loads(body)["delivery"] == delivery["id"]
        wait_until(
            lambda: [d["status"] for d in deliveries()] == ["delivered"], "delivered", timeout=60
        )
        # Delivered: no Resend button any more.
        assert f'action="{action}"' not in alice.get("/alice/dev/+manage/hooks/ci").text
    finally:
        receiver.stop()


def test_read_pages_link_to_the_management_pages_for_their_owner(
    server: LockgateServer, clients: Any, tmp_path: Path
) -> None:
    """The user, index and release pages (browse) show links to the forms to whoever may
    use them, and only to them; the cached page body stays the same for everyone."""
    server.create_user(*ALICE)
    server.create_user(*BOB)
    server.create_index("alice/dev", ALICE)
    wheel = make_wheel(tmp_path, "linked", "1.0")
    assert clients.twine_upload(f"{server.url}/alice/dev/", [wheel], *ALICE).returncode == 0
    alice, bob, anonymous = Browserish(server), Browserish(server), Browserish(server)
    alice.login(*ALICE)
    bob.login(*BOB)
    links = {
        "/alice": 'href="/alice/+manage"',
        "/alice/dev": 'href="/alice/dev/+manage"',
        "/alice/dev/linked/1.0": 'href="/alice/dev/linked/1.0/+manage"',
    }
    for path, link in links.items():
        assert link in alice.get(path).text, path
        assert link not in anonymous.get(path).text, path
        shown_to_bob = link in bob.get(path).text
        # Anyone signed in may open a release's page (it says who may act); not the others.
        assert shown_to_bob == path.endswith("/1.0"), path
