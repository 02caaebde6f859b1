"""`lockgate user …`, `lockgate index …` and `lockgate token …`: admin commands that
talk to a running server.

They go through the HTTP API (not the database) so the server sees every change
at once, exactly as devpi-client does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

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
