"""`lockgate user …`, `lockgate index …`, `lockgate token …` and `lockgate namespace …`:
admin commands that talk to a running server.

They go through the HTTP API (not the database) so the server sees every change
at once, exactly as devpi-client does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import aiohttp
import click

SERVER_OPTIONS = [
    click.option(
        "--url",
        envvar="LOCKGATE_URL",
        default="http://127.0.0.1:3141",
        show_default=True,
        help="Server URL.",
    ),
    click.option("--auth-user", envvar="LOCKGATE_USER", default="root", show_default=True),
    click.option(
        "--auth-password",
        envvar="LOCKGATE_PASSWORD",
        default=None,
        help="Password of --auth-user (or LOCKGATE_PASSWORD).",
    ),
]


def server_options(func: Any) -> Any:
    for option in reversed(SERVER_OPTIONS):
        func = option(func)
    return func


async def _call(
    method: str, url: str, path: str, user: str, password: str | None, body: Any = None
) -> Any:
    auth = aiohttp.BasicAuth(user, password) if password else None
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(
            method,
            url.rstrip("/") + path,
            json=body,
            auth=auth,
            headers={"Accept": "application/json"},
        ) as response,
    ):
        text = await response.text()
        try:
            data = json.loads(text) if text else {}
        except json.JSONDecodeError:
            data = {"message": text.strip()}
        if response.status >= 400:
            message = data.get("message") if isinstance(data, dict) else None
            raise click.ClickException(f"{response.status}: {message or text.strip()}")
        return data


def call(ctx_args: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
    try:
        return asyncio.run(
            _call(
                method,
                ctx_args["url"],
                path,
                ctx_args["auth_user"],
                ctx_args["auth_password"],
                body,
            )
        )
    except aiohttp.ClientError as exc:
        raise click.ClickException(f"cannot reach {ctx_args['url']}: {exc}") from None


def _echo(data: Any) -> None:
    click.echo(json.dumps(data.get("result", data), indent=2, sort_keys=True))


@click.group("user")
def user_group() -> None:
    """Manage users on a running server."""


@user_group.command("list")
@server_options
def user_list(**kw: Any) -> None:
    data = call(kw, "GET", "/")
    for name, config in sorted(data["result"].items()):
        click.echo(f"{name}  indexes: {', '.join(sorted(config['indexes'])) or '-'}")


@user_group.command("create")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--email", default=None)
@server_options
def user_create(name: str, password: str, email: str | None, **kw: Any) -> None:
    body = {"password": password, **({"email": email} if email else {})}
    _echo(call(kw, "PUT", f"/{name}", body))


@user_group.command("modify")
@click.argument("name")
@click.option("--password", default=None)
@click.option("--email", default=None)
@server_options
def user_modify(name: str, password: str | None, email: str | None, **kw: Any) -> None:
    body = {k: v for k, v in (("password", password), ("email", email)) if v is not None}
    if not body:
        raise click.UsageError("give --password and/or --email")
    _echo(call(kw, "PATCH", f"/{name}", body))


@user_group.command("delete")
@click.argument("name")
@server_options
def user_delete(name: str, **kw: Any) -> None:
    _echo(call(kw, "DELETE", f"/{name}"))


def _parse_settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.UsageError(f"settings are key=value, not {pair!r}")
        if key in ("bases", "acl_upload", "acl_read", "mirror_whitelist", "push_requires"):
            config[key] = [v for v in value.split(",") if v]
        elif value.lower() in ("true", "false"):
            config[key] = value.lower() == "true"
        else:
            config[key] = value
    return config


@click.group("index")
def index_group() -> None:
    """Manage indexes on a running server (settings as key=value, lists comma-separated)."""


@index_group.command("show")
@click.argument("path")
@server_options
def index_show(path: str, **kw: Any) -> None:
    _echo(call(kw, "GET", f"/{path}"))


@index_group.command("create")
@click.argument("path")
@click.argument("settings", nargs=-1)
@server_options
def index_create(path: str, settings: tuple[str, ...], **kw: Any) -> None:
    """Create USER/INDEX, e.g. `lockgate index create team/dev bases=root/pypi`."""
    _echo(call(kw, "PUT", f"/{path}", _parse_settings(settings)))


@index_group.command("modify")
@click.argument("path")
@click.argument("settings", nargs=-1, required=True)
@server_options
def index_modify(path: str, settings: tuple[str, ...], **kw: Any) -> None:
    _echo(call(kw, "PATCH", f"/{path}", _parse_settings(settings)))


@index_group.command("delete")
@click.argument("path")
@server_options
def index_delete(path: str, **kw: Any) -> None:
    _echo(call(kw, "DELETE", f"/{path}"))


@click.group("token")
def token_group() -> None:
    """Manage API tokens on a running server (for LOCKGATE_USER, or --user as root)."""


@token_group.command("create")
@click.option("--name", default="token", show_default=True)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="read, upload, push, test-results, replicate or admin (repeat for several).",
)
@click.option("--index", "indexes", multiple=True, help="Limit the token to USER/INDEX (repeat).")
@click.option("--expires", default=None, help="YYYY-MM-DD, an ISO date-time, or e.g. 30d.")
@click.option("--user", "owner", default=None, help="Whose token (default: --auth-user).")
@server_options
def token_create(
    name: str,
    scopes: tuple[str, ...],
    indexes: tuple[str, ...],
    expires: str | None,
    owner: str | None,
    **kw: Any,
) -> None:
    """Create a token; its secret is printed alone on the last line, this one time."""
    body: dict[str, Any] = {"name": name, "scopes": list(scopes)}
    if indexes:
        body["indexes"] = list(indexes)
    if expires:
        body["expires"] = expires
    result = call(kw, "POST", f"/{owner or kw['auth_user']}/+tokens", body)["result"]
    click.echo(
        f"token {result['id']} ({result['name']}): scopes {', '.join(result['scopes'])}"
        + (f"; indexes {', '.join(result['indexes'])}" if result["indexes"] else "")
        + (f"; expires {result['expires']}" if result["expires"] else "")
    )
    click.echo(result["token"])


@token_group.command("list")
@click.option("--user", "owner", default=None, help="Whose tokens (default: --auth-user).")
@server_options
def token_list(owner: str | None, **kw: Any) -> None:
    for token in call(kw, "GET", f"/{owner or kw['auth_user']}/+tokens")["result"]:
        click.echo(
            f"{token['id']}  {token['name']}  scopes={','.join(token['scopes'])}  "
            f"indexes={','.join(token['indexes'] or ['*'])}  created={token['created']}  "
            f"expires={token['expires'] or '-'}  last_used={token['last_used'] or '-'}"
        )


@token_group.command("revoke")
@click.argument("token_id")
@click.option("--user", "owner", default=None, help="Whose token (default: --auth-user).")
@server_options
def token_revoke(token_id: str, owner: str | None, **kw: Any) -> None:
    _echo(call(kw, "DELETE", f"/{owner or kw['auth_user']}/+tokens/{token_id}"))


@click.group("hook")
def hook_group() -> None:
    """Manage an index's webhooks and CI triggers on a running server."""


@hook_group.command("add")
@click.argument("index")
@click.argument("name")
@click.option("--kind", type=click.Choice(["generic", "jenkins", "gitlab"]), required=True)
@click.option("--url", "target", required=True, help="Where to send (the receiver or trigger URL).")
@click.option("--secret", default=None, help="generic: the HMAC-SHA256 signing secret.")
@click.option("--trigger-token", default=None, help="jenkins/gitlab: the trigger token.")
@click.option("--user", "jenkins_user", default=None, help="jenkins: user of the API token.")
@click.option("--api-token", default=None, help="jenkins: that user's API token.")
@click.option("--ref", default=None, help="gitlab: the ref to run the pipeline on (main).")
@click.option(
    "--event",
    "events",
    multiple=True,
    help="upload, push, yank, delete, test-result or promote (repeat; default: all).",
)
@server_options
def hook_add(
    index: str,
    name: str,
    kind: str,
    target: str,
    secret: str | None,
    trigger_token: str | None,
    jenkins_user: str | None,
    api_token: str | None,
    ref: str | None,
    events: tuple[str, ...],
    **kw: Any,
) -> None:
    """Add or change hook NAME of INDEX (USER/INDEX)."""
    body: dict[str, Any] = {"kind": kind, "url": target}
    for key, value in (
        ("secret", secret),
        ("trigger_token", trigger_token),
        ("user", jenkins_user),
        ("api_token", api_token),
        ("ref", ref),
    ):
        if value is not None:
            body[key] = value
    if events:
        body["events"] = list(events)
    _echo(call(kw, "PUT", f"/{index}/+hooks/{name}", body))


@hook_group.command("list")
@click.argument("index")
@server_options
def hook_list(index: str, **kw: Any) -> None:
    for hook in call(kw, "GET", f"/{index}/+hooks")["result"]:
        click.echo(f"{hook['name']}  {hook['kind']}  {hook['url']}  {','.join(hook['events'])}")


@hook_group.command("show")
@click.argument("index")
@click.argument("name")
@server_options
def hook_show(index: str, name: str, **kw: Any) -> None:
    _echo(call(kw, "GET", f"/{index}/+hooks/{name}"))


@hook_group.command("remove")
@click.argument("index")
@click.argument("name")
@server_options
def hook_remove(index: str, name: str, **kw: Any) -> None:
    _echo(call(kw, "DELETE", f"/{index}/+hooks/{name}"))


@hook_group.command("deliveries")
@click.argument("index")
@click.argument("name")
@server_options
def hook_deliveries(index: str, name: str, **kw: Any) -> None:
    """Each delivery: id, event, serial, status, attempts, last answer."""
    for item in call(kw, "GET", f"/{index}/+hooks/{name}/deliveries")["result"]:
        click.echo(
            f"{item['id']}  {item['event']}  serial={item['serial']}  {item['status']}  "
            f"attempts={item['attempts']}  {item['last_answer'] or '-'}"
        )


@hook_group.command("resend")
@click.argument("index")
@click.argument("name")
@click.argument("delivery")
@server_options
def hook_resend(index: str, name: str, delivery: str, **kw: Any) -> None:
    """Send DELIVERY again (with its id)."""
    _echo(call(kw, "POST", f"/{index}/+hooks/{name}/deliveries/{delivery}"))


@click.group("namespace")
def namespace_group() -> None:
    """Reserve name prefixes for an owner on a running server (root only; PEP 752)."""


def _namespace_path(prefix: str) -> str:
    return "/+namespaces/" + quote(prefix, safe="")


@namespace_group.command("reserve")
@click.argument("prefix")
@click.option("--owner", required=True, help="The user that may create projects in it.")
@server_options
def namespace_reserve(prefix: str, owner: str, **kw: Any) -> None:
    """Reserve PREFIX (such as acme-) for OWNER, or give a reserved one to OWNER.

    Only OWNER (and root) may then create projects named like `acme` or `acme-*` on any
    stage index, and mirror indexes never take such names from their upstream unless a
    stage index lists the name in its mirror_whitelist. Existing projects are kept.
    """
    result = call(kw, "PUT", _namespace_path(prefix), {"owner": owner})["result"]
    click.echo(f"namespace {result['prefix']} reserved for {result['owner']}")
    for project in result["existing_projects"]:
        click.echo(f"  already exists (kept): {project}")


@namespace_group.command("list")
@server_options
def namespace_list(**kw: Any) -> None:
    """The reserved namespaces, their owners and the names they cover."""
    for prefix, namespace in sorted(call(kw, "GET", "/+namespaces")["result"].items()):
        click.echo(
            f"{prefix}  owner={namespace['owner']}  matches={','.join(namespace['matches'])}  "
            f"reserved_as={namespace['display']}  created={namespace['created']}"
        )


@namespace_group.command("release")
@click.argument("prefix")
@server_options
def namespace_release(prefix: str, **kw: Any) -> None:
    """Release PREFIX: its names are open to everybody again (and to the mirrors)."""
    _echo(call(kw, "DELETE", _namespace_path(prefix)))
