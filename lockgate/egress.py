"""Where the server may send requests (docs/reliability.md SS-1, SS-2): mirror
upstreams and webhook targets on public addresses by default; private, loopback
and link-local targets (cloud metadata services, the database, the admin's
laptop) only when the operator lists them in the server configuration
(`upstream_allow`, `hook_allow`), never through the API alone. The check runs on
the resolved address of every hop."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.request
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(Exception):
    """The target is not a place this server may send requests to."""


def _address(value: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(value.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class EgressPolicy:
    def __init__(self, allow: Iterable[str] = (), setting: str = "upstream_allow") -> None:
        # The setting that widens this policy, named in refusals.
        self.setting = setting
        self.networks: list[IPNetwork] = []
        self.hosts: set[str] = set()
        for entry in allow:
            entry = entry.strip()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

    @classmethod
    def with_proxies(cls, allow: Iterable[str], setting: str = "upstream_allow") -> EgressPolicy:
        """The configured allow-list plus the proxies from the environment
        (operator-set, and the proxy is what the connection goes to)."""
        proxies = [urlsplit(url).hostname or "" for url in urllib.request.getproxies().values()]
        return cls([*allow, *proxies], setting)

    def ip_allowed(self, value: str) -> bool:
        address = _address(value)
        if address is None:
            return False
        return address.is_global or any(address in network for network in self.networks)

    def host_named(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def check_url(self, url: str) -> None:
        """Refuse non-HTTP schemes and literal private addresses (names are
        checked when they are resolved)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EgressRefused(f"only http(s) upstreams are allowed, not {parts.scheme or url!r}")
        host = parts.hostname
        if self.host_named(host):
            return
        if _address(host) is not None and not self.ip_allowed(host):
            raise EgressRefused(self.refusal(host, host))

    async def check_url_resolved(self, url: str) -> None:
        """check_url, plus the addresses a name resolves to now (for the API)."""
        self.check_url(url)
        host = urlsplit(url).hostname or ""
        if self.host_named(host) or _address(host) is not None:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError:
            # Not resolvable from here (yet): accepted; every connection is
            # checked again when the name is resolved (GuardedResolver).
            return
        for info in infos:
            address = str(info[4][0])
            if not self.ip_allowed(address):
                raise EgressRefused(self.refusal(host, address))

    def refusal(self, host: str, address: str) -> str:
        what = self.setting.removesuffix("_allow")
        flag = self.setting.replace("_", "-")
        return (
            f"{what} host {host!r} is a private, loopback or link-local address ({address}); "
            f"an operator may allow it with {self.setting} in lockgate.toml "
            f"(or --{flag} / LOCKGATE_{self.setting.upper()})"
        )


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops addresses the policy refuses, so a name that
    resolves (or re-resolves) to a private address is never connected to."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self.policy.host_named(host):
            return results
        allowed = [r for r in results if self.policy.ip_allowed(str(r["host"]))]
        if not allowed:
            address = str(results[0]["host"]) if results else "?"
            raise OSError(self.policy.refusal(host, address))
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def private_host(url: str) -> str | None:
    """The URL's host when it is (or resolves to) a non-public address, else None."""
    host = urlsplit(url).hostname
    if not host:
        return None
    literal = _address(host)
    if literal is not None:
        return None if literal.is_global else host
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return None
    return host if any(not EgressPolicy().ip_allowed(str(i[4][0])) for i in infos) else None


EGRESS = web.AppKey("egress", EgressPolicy)
