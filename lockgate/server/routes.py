"""Every URL, method and handler in one table.

Literal segments starting with '+' are registered before the `{project}`-style
catch-alls, and user/index/project patterns never match a leading '+'.
"""

from __future__ import annotations

from aiohttp import web

from lockgate.accounts import login
from lockgate.accounts import manage as account_forms
from lockgate.accounts import pages as account_pages
from lockgate.accounts import views as accounts
from lockgate.accounts.forms import form_view
from lockgate.browse import pages as browse
from lockgate.devpi import views as devpi
from lockgate.docs import views as docs
from lockgate.downloads.views import counted
from lockgate.errors import NotFound
from lockgate.hooks import forms as hook_forms
from lockgate.hooks import views as hooks
from lockgate.http.requests import wants_devpi_json
from lockgate.indexes import forms as index_forms
from lockgate.indexes import views as indexes
from lockgate.jsonapi import views as jsonapi
from lockgate.mirror import admin as mirror_admin
from lockgate.names import check_name
from lockgate.namespaces import views as namespaces
from lockgate.packages import views as packages
from lockgate.replica import views as replication
from lockgate.search import pages as search_pages
from lockgate.search import views as search
from lockgate.server import status
from lockgate.simple import views as simple
from lockgate.uploads import views as uploads
from lockgate.web.negotiation import page_or, wants_project_page
from lockgate.web.static import serve_static
from lockgate.workflow import forms as release_forms
from lockgate.workflow import views as workflow

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
# No segment below may hold a NUL (%00): no name, version or file name has one, and
# PostgreSQL refuses it in a text parameter (a 500 instead of a 404 or 400).
SEGMENT = r"[^/\x00]+"
PROJECT = r"[^+/\x00][^/\x00]*"
VERSION = r"[^/\x00]+"
RELEASE_VERSION = r"[^/+\x00][^/\x00]*"
HASH = r"[0-9a-fA-F]{8,64}"
FILENAME = r"[^/\x00]+"
# A path segment NAME cannot match (the router matches both on the same text),
# e.g. '..', '+blobs', 'a\b' or '%2F..' (the router sees '%2F' still encoded).
BAD_NAME = rf"(?!{NAME}(?:/|\Z))[^/]+"

U = f"{{user:{NAME}}}"
I = f"{{index:{NAME}}}"  # noqa: E741 - reads as a path segment name


def setup_routes(app: web.Application) -> None:
    r = app.router
    # The hottest routes first: aiohttp tries the patterns under one prefix ('/' for
    # all of these) in the order they were added, a regex each. None of these can
    # match a path another route below wants ('+simple', '+f' are not names).
    r.add_get(f"/{U}/{I}/+simple/{{project:{PROJECT}}}/", simple.simple_project, name="simple")
    r.add_get(
        f"/{U}/{I}/+f/{{hash:{HASH}}}/{{filename:{FILENAME}}}",
        counted(packages.serve_file),
        name="file",
    )
    r.add_get(f"/{U}/{I}/+simple/", simple.simple_list, name="simple_list")
    r.add_get(f"/{U}/{I}/+simple", simple.simple_list_redirect)
    r.add_get(f"/{U}/{I}/+simple/{{project:{PROJECT}}}", simple.simple_project)
    # Browsers get pages, devpi-client and scripts JSON, on the same URLs (lockgate/web).
    r.add_get("/", page_or(account_pages.root_page, accounts.root_listing), name="root")
    r.add_get("/+static/{name:[^/]+}", serve_static, name="static")
    r.add_get("/+status", page_or(status.status_page, status.status), name="status")
    r.add_get("/+search", page_or(search_pages.search_page, search.search_json), name="search")
    r.add_get("/+changelog", replication.changelog, name="changelog")
    r.add_get("/+blobs/{sha256}", replication.blob, name="blob")

    # devpi-client: discovery at the root, a user or an index (its login: below).
    r.add_get("/+api", devpi.api_view, name="devpi_api")
    r.add_get(f"/{U}/+api", devpi.api_view)
    r.add_get(f"/{U}/{I}/+api", devpi.api_view)

    r.add_get("/+namespaces", namespaces.list_view, name="namespaces")
    r.add_get("/+namespaces/", namespaces.list_view)
    # An empty prefix reaches the handlers, which answer 400 saying a prefix is needed.
    prefix = f"/+namespaces/{{prefix:{SEGMENT}}}"
    r.add_get(prefix, namespaces.get_view)
    r.add_put(prefix, namespaces.reserve_view)
    r.add_delete(prefix, namespaces.release_view)
    r.add_put("/+namespaces/", namespaces.reserve_view)
    r.add_delete("/+namespaces/", namespaces.release_view)

    # Browser login and the management forms (never the API's URLs: the API does not
    # accept the session cookie). `+manage` segments cannot be a user, index or project.
    r.add_get("/+login", login.login_page, name="login")
    r.add_post("/+login", login_post)  # the browser's form, or devpi-client's JSON
    r.add_post("/+logout", form_view(login.logout_post), name="logout")
    r.add_get(f"/{U}/+manage", account_forms.manage_user_page, name="manage_user")
    r.add_post(f"/{U}/+manage/tokens", account_forms.create_token_form)
    r.add_post(
        f"/{U}/+manage/tokens/{{token:[0-9a-f]{{1,32}}}}/revoke", account_forms.revoke_token_form
    )
    r.add_get(f"/{U}/+manage/new-index", index_forms.new_index_page)
    r.add_post(f"/{U}/+manage/new-index", index_forms.new_index_post)
    r.add_get(f"/{U}/{I}/+manage", index_forms.edit_index_page, name="manage_index")
    r.add_post(f"/{U}/{I}/+manage", index_forms.edit_index_post)
    r.add_get(f"/{U}/{I}/+manage/delete", index_forms.delete_index_page)
    r.add_post(f"/{U}/{I}/+manage/delete", index_forms.delete_index_post)
    r.add_get(f"/{U}/{I}/+manage/hooks", hook_forms.hooks_page)
    r.add_post(f"/{U}/{I}/+manage/hooks", hook_forms.add_hook_post)
    r.add_get(f"/{U}/{I}/+manage/hooks/{{hook:{NAME}}}", hook_forms.hook_page)
    r.add_post(f"/{U}/{I}/+manage/hooks/{{hook:{NAME}}}/delete", hook_forms.delete_hook_post)
    # Any delivery id reaches the form, so a wrong one gets the hook's page saying so.
    r.add_post(
        f"/{U}/{I}/+manage/hooks/{{hook:{NAME}}}/deliveries/{{delivery:[^/]{{1,100}}}}/resend",
        hook_forms.resend_delivery_post,
    )
    managed = f"/{U}/{I}/{{project:{PROJECT}}}/{{version:{RELEASE_VERSION}}}/+manage"
    r.add_get(managed, release_forms.release_page, name="manage_release")
    r.add_post(f"{managed}/yank", release_forms.yank_post)
    r.add_post(f"{managed}/unyank", release_forms.unyank_post)
    r.add_post(f"{managed}/delete", release_forms.delete_post)
    r.add_post(f"{managed}/push", release_forms.push_post)

    r.add_post(f"/{U}/+tokens", accounts.create_token_view, name="tokens")
    r.add_get(f"/{U}/+tokens", accounts.list_tokens_view)
    r.add_delete(f"/{U}/+tokens/{{token:[0-9a-f]{{1,32}}}}", accounts.revoke_token_view)

    r.add_post(f"/{U}/{I}/+mirror/refresh", mirror_admin.refresh)

    hook = f"/{U}/{I}/+hooks/{{hook:{NAME}}}"
    r.add_get(f"/{U}/{I}/+hooks", hooks.list_hooks_view)
    r.add_put(hook, hooks.put_hook_view)
    r.add_get(hook, hooks.get_hook_view, name="hook")
    r.add_delete(hook, hooks.delete_hook_view)
    r.add_get(f"{hook}/deliveries", hooks.deliveries_view)
    r.add_post(f"{hook}/deliveries/{{delivery:[0-9a-f-]{{36}}}}", hooks.resend_view)

    file_path = f"/{U}/{I}/+f/{{hash:{HASH}}}/{{filename:{FILENAME}}}"
    r.add_delete(file_path, packages.delete_file_view)
    r.add_post(file_path, workflow.post_result_view)  # test results (CI, devpi test)
    r.add_get(f"/{U}/{I}/+testlog/{{sha256:[0-9a-fA-F]{{64}}}}", workflow.serve_log)
    r.add_get(f"{file_path}/+toxresult/{{number:[0-9]{{1,6}}}}", workflow.serve_toxresult)

    json_path = f"/{U}/{I}/pypi/{{project:{PROJECT}}}"
    r.add_get(f"{json_path}/json", jsonapi.project_json)
    r.add_get(f"{json_path}/json/", jsonapi.project_json)
    r.add_get(f"{json_path}/{{version:{VERSION}}}/json", jsonapi.project_json)
    r.add_get(f"{json_path}/{{version:{VERSION}}}/json/", jsonapi.project_json)

    # devpi-client deletes a project at its URL with the slash (`devpi remove NAME`).
    r.add_delete(f"/{U}/{I}/{{project:{PROJECT}}}", packages.delete_project_view)
    r.add_delete(f"/{U}/{I}/{{project:{PROJECT}}}/", packages.delete_project_view)
    # devpi-style index URLs without +simple/: browsers get the project page, pip and uv
    # (which append the project) are redirected to the simple page, devpi-client asks
    # for JSON there.
    project = page_or(browse.project_page, project_page, wants_project_page)
    r.add_get(f"/{U}/{I}/{{project:{PROJECT}}}", project)
    r.add_get(f"/{U}/{I}/{{project:{PROJECT}}}/", project)
    release = f"/{U}/{I}/{{project:{PROJECT}}}/{{version:{RELEASE_VERSION}}}"
    # Documentation out of the release's zip (any member path; `latest` as version).
    r.add_get(f"{release}/+doc", docs.serve_docs)
    r.add_get(f"{release}/+doc/{{relpath:.*}}", docs.serve_docs, name="docs")
    r.add_get(release, page_or(browse.version_page, release_page))
    r.add_delete(release, packages.delete_release_view)
    r.add_patch(release, packages.patch_release)

    # Twine posts to the index URL with or without the trailing slash; never redirect.
    # devpi-client pushes with a JSON body to the same URL.
    r.add_post(f"/{U}/{I}/", upload_or_push, name="upload")
    r.add_post(f"/{U}/{I}", upload_or_push)
    # devpi-client sends its push with the method PUSH (lockgate.http.protocol lets
    # such a request through the HTTP parser).
    r.add_route("PUSH", f"/{U}/{I}", workflow.push_view)
    r.add_route("PUSH", f"/{U}/{I}/", workflow.push_view)

    index_page = page_or(browse.index_page, indexes.get_index_view)
    r.add_get(f"/{U}/{I}", index_page, name="index")
    r.add_get(f"/{U}/{I}/", index_page)
    r.add_put(f"/{U}/{I}", indexes.put_index)
    r.add_patch(f"/{U}/{I}", indexes.patch_index)
    r.add_delete(f"/{U}/{I}", indexes.delete_index_view)

    r.add_get(f"/{U}", page_or(account_pages.user_page, accounts.get_user_view), name="user")
    r.add_put(f"/{U}", accounts.put_user)
    r.add_patch(f"/{U}", accounts.patch_user)
    r.add_delete(f"/{U}", accounts.delete_user_view)

    # Names the patterns above refuse still reach the creating handlers, which
    # answer 400 saying what a valid name is (instead of a bare 404); with a NUL,
    # refuse_invalid_names below answers that 400 without a database query.
    r.add_put(f"/{{user:{SEGMENT}}}/{{index:{SEGMENT}}}", indexes.put_index)
    r.add_put(f"/{{user:{SEGMENT}}}", accounts.put_user)
    # Any other method on such a path gets the same 400 (docs/reliability.md PT-4), not a
    # 405 from the PUT-only routes above. Valid names never get this far.
    for path in (
        f"/{{user:{BAD_NAME}}}",
        f"/{{user:{BAD_NAME}}}/{{index:[^/]+}}",
        f"/{{user:[^/]+}}/{{index:{BAD_NAME}}}",
    ):
        r.add_route("*", path, refuse_invalid_names)


async def upload_or_push(request: web.Request) -> web.StreamResponse:
    """A JSON body is a push (devpi's `{"name", "version", "targetindex"}`); anything
    else is an upload, as twine, uv and poetry send it."""
    if request.content_type == "application/json":
        return await workflow.push_view(request)
    return await uploads.upload(request)


_login_form_post = form_view(login.login_post)


async def login_post(request: web.Request) -> web.StreamResponse:
    """`POST /+login`: devpi-client's JSON `{"user", "password"}` gets a login token
    (its errors JSON, as devpi-client reads them); anything else is the browser's form,
    whose errors are pages."""
    if request.content_type == "application/json":
        return await devpi.login_view(request)
    return await _login_form_post(request)


async def project_page(request: web.Request) -> web.StreamResponse:
    """`/{user}/{index}/{project}/` for all but browsers: devpi's project JSON for
    devpi-client (`Accept: application/json`); installers are redirected to the simple
    page."""
    if wants_devpi_json(request):
        return await devpi.project_view(request)
    return await simple.devpi_project_redirect(request)


async def release_page(request: web.Request) -> web.StreamResponse:
    """`/{user}/{index}/{project}/{version}` for all but browsers: devpi's versiondata
    for JSON clients, else a 404 pointing to the JSON API."""
    if wants_devpi_json(request):
        return await devpi.version_view(request)
    return await browse.release_for_clients(request)


async def refuse_invalid_names(request: web.Request) -> web.StreamResponse:
    """400 naming the invalid user or index name in the path, whatever the method."""
    check_name("user", request.match_info["user"])
    if "index" in request.match_info:
        check_name("index", request.match_info["index"])
    # BAD_NAME only matches what check_name refuses; should they ever disagree, no such path.
    raise NotFound(f"no such path: {request.path}")
