"""Sending deliveries: on the primary, in the background, at least once.

A delivery is claimed (its next attempt pushed out by a lease) in a short write
transaction, sent without one, and its outcome written back: a 2xx is recorded as
a `hook.delivered` entry (so a promoted replica does not send it again), anything
else is retried with exponential backoff for about twelve hours, then marked
failed (it can be sent again by hand). Targets pass the egress policy
(`hook_allow`) at every request and every DNS resolution; redirects are not
followed; secrets are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import structlog
from aiohttp import web
from sqlalchemy import Select, select

from lockgate import __version__
from lockgate.changelog.codec import SYSTEM
from lockgate.changelog.writer import record, utcnow_iso
from lockgate.db.session import Database
from lockgate.egress import EgressPolicy, EgressRefused, GuardedResolver
from lockgate.hooks.entries import HookDeliveredSet
from lockgate.hooks.models import Hook, HookDelivered, HookOutbox
from lockgate.hooks.outbox import derive
from lockgate.indexes.models import Index

log = structlog.get_logger("lockgate.hooks")

USER_AGENT = f"lockgate/{__version__} (+hooks)"
TIMEOUT_SECONDS = 10.0
LEASE_SECONDS = 30.0  # a claimed delivery waits this long if its sender dies
FIRST_RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 600.0
# 2 s, 4 s, … then every 10 minutes: about 12 hours of attempts before giving up.
MAX_ATTEMPTS = 80
HOOK_REMOVED = "the hook was removed"
IDLE_SECONDS = 5.0
BATCH = 20
MAX_ANSWER = 500


def backoff(attempts: int) -> float:
    return float(min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(0, attempts - 1)))


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    answer: str


@dataclass(frozen=True)
class Claimed:
    id: str
    index: str
    hook: str
    event: str
    body: dict[str, Any]
    attempts: int
    created_at: str


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(extra)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _values(body: dict[str, Any]) -> dict[str, str]:
    """The event as the flat parameters CI jobs read (Jenkins, GitLab)."""
    return {
        "LOCKGATE_EVENT": str(body.get("event") or ""),
        "LOCKGATE_INDEX": str(body.get("index") or ""),
        "LOCKGATE_PROJECT": str(body.get("project") or ""),
        "LOCKGATE_VERSION": str(body.get("version") or ""),
        "LOCKGATE_FILES": " ".join(f["url"] for f in body.get("files", [])),
        "LOCKGATE_RESULTS_URL": str(body.get("results_url") or ""),
        "LOCKGATE_DELIVERY": str(body.get("delivery") or ""),
    }


def build_request(
    kind: str, settings: dict[str, Any], claimed: Claimed
) -> tuple[str, dict[str, str], bytes]:
    """(url, headers, body) of one delivery, as the target expects it."""
    headers = {
        "User-Agent": USER_AGENT,
        "X-Lockgate-Event": claimed.event,
        "X-Lockgate-Delivery": claimed.id,
    }
    if kind == "generic":
        body = json.dumps(claimed.body, sort_keys=True).encode("utf-8")
        headers["Content-Type"] = "application/json"
        headers["X-Lockgate-Signature"] = signature(settings["secret"], body)
        return settings["url"], headers, body
    form = _values(claimed.body)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    if kind == "jenkins":
        if settings.get("user"):
            pair = f"{settings['user']}:{settings['api_token']}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        url = _with_query(settings["url"], {"token": settings["trigger_token"]})
        return url, headers, urlencode(form).encode("ascii")
    fields = {"token": settings["trigger_token"], "ref": settings["ref"]}
    fields.update({f"variables[{key}]": value for key, value in form.items()})
    return settings["url"], headers, urlencode(fields).encode("ascii")


class HookSender:
    def __init__(self, db: Database, policy: EgressPolicy, base_url: str, sends: bool) -> None:
        self.db = db
        self.policy = policy
        self.base_url = base_url
        self.sends = sends  # only a primary sends; every node derives
        self._session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=GuardedResolver(self.policy)),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
            trust_env=True,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            seen = self.db.serial
            try:
                await derive(self.db, self.base_url)
                if self.sends:
                    while await self.send_due():
                        pass
            except Exception:  # noqa: BLE001 - a failing round must not end the loop
                log.exception("hook delivery round failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_SECONDS):
                    waiter = asyncio.ensure_future(self.db.wait_for_serial(seen, IDLE_SECONDS))
                    wake = asyncio.ensure_future(self._wake.wait())
                    try:
                        await asyncio.wait({waiter, wake}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
                        wake.cancel()
            self._wake.clear()

    @staticmethod
    def _due(now: float) -> Select[Any]:
        return (
            select(HookOutbox)
            .outerjoin(HookDelivered, HookDelivered.delivery_id == HookOutbox.id)
            .where(
                HookOutbox.next_attempt <= now,
                (HookOutbox.status == "resend")
                | ((HookOutbox.status == "pending") & HookDelivered.delivery_id.is_(None)),
            )
            .order_by(HookOutbox.serial)
        )

    async def _claim(self) -> list[tuple[Claimed, str | None, dict[str, Any] | None]]:
        now = time.time()
        claimed: list[tuple[Claimed, str | None, dict[str, Any] | None]] = []
        async with self.db.read() as session:
            # Most rounds find nothing due: look before taking the writers' lock.
            if (await session.execute(self._due(now).limit(1))).first() is None:
                return claimed
        async with self.db.write() as session:
            rows = (await session.execute(self._due(now).limit(BATCH))).scalars().all()
            for row in rows:
                row.next_attempt = now + LEASE_SECONDS
                user, name = row.index_path.split("/", 1)
                hook = (
                    await session.execute(
                        select(Hook)
                        .join(Index, Index.id == Hook.index_id)
                        .where(
                            Index.user_name == user, Index.name == name, Hook.name == row.hook_name
                        )
                    )
                ).scalar_one_or_none()
                item = Claimed(
                    row.id,
                    row.index_path,
                    row.hook_name,
                    row.event,
                    json.loads(row.body),
                    row.attempts,
                    row.created_at,
                )
                if hook is None:
                    claimed.append((item, None, None))
                else:
                    claimed.append((item, hook.kind, json.loads(hook.config)))
        return claimed

    async def send_due(self) -> int:
        """Send what is due now; how many were tried."""
        claimed = await self._claim()
        if not claimed:
            return 0
        outcomes: dict[str, Outcome] = {}
        for item, kind, settings in claimed:
            if kind is None or settings is None:
                outcomes[item.id] = Outcome(False, HOOK_REMOVED)
                continue
            outcomes[item.id] = await self._send(kind, settings, item)
        await self._write_back(outcomes)
        return len(claimed)

    async def _send(self, kind: str, settings: dict[str, Any], item: Claimed) -> Outcome:
        assert self._session is not None, "HookSender.start() was not called"
        url, headers, body = build_request(kind, settings, item)
        try:
            self.policy.check_url(url)
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                text = (await response.content.read(MAX_ANSWER)).decode("utf-8", "replace")
                answer = f"{response.status} {' '.join(text.split())}".strip()[:MAX_ANSWER]
                ok = 200 <= response.status < 300
        except EgressRefused as exc:
            ok, answer = False, f"refused by the egress policy: {exc}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            ok, answer = False, f"unreachable: {type(exc).__name__}: {exc}"[:MAX_ANSWER]
        log.info(
            "hook delivery",
            index=item.index,
            hook=item.hook,
            delivery=item.id,
            hook_event=item.event,
            delivered=ok,
            answer=answer.split(" ", 1)[0],
        )
        return Outcome(ok, answer)

    async def _write_back(self, outcomes: dict[str, Outcome]) -> None:
        now = time.time()
        delivered = sorted(key for key, outcome in outcomes.items() if outcome.delivered)
        async with self.db.write() as session:
            for key, outcome in outcomes.items():
                row = await session.get(HookOutbox, key)
                if row is None:
                    continue
                row.attempts += 1
                row.last_answer = outcome.answer
                if outcome.delivered:
                    row.status = "delivered"
                    continue
                if row.attempts >= MAX_ATTEMPTS or outcome.answer == HOOK_REMOVED:
                    row.status = "failed"
                else:
                    row.next_attempt = now + backoff(row.attempts)
            if delivered:
                await record(session, HookDeliveredSet(tuple(delivered), utcnow_iso()), SYSTEM)


HOOKS = web.AppKey("hooks", HookSender)
