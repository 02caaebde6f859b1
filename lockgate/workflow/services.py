"""The release workflow's logic: storing test results, the gates a push must
pass, pushing a release between stage indexes, and automatic promotion.

Gates (a target index's `push_requires`): for every required environment, the
release must have a passing result on at least one of its files, and no failing
one on any file. Only the latest result of an environment on a file counts: a
re-run replaces the verdict of the run before it (all of them stay visible in the
JSON API). Results are looked for on the release's files in the index it is
pushed from; a push carries them along, so the target shows them too.

Automatic promotion (`promote_to` of the index a result was posted to): after the
result is recorded, in the same write transaction, the release is pushed (actor
`system`) when it meets the gates of the promote_to index; when that index
requires nothing, every environment that reported must have passed. A pushed
release is then checked against its new index's promote_to, and so on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from packaging.utils import canonicalize_name
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.services import ROOT_USER
from lockgate.changelog.codec import SYSTEM, Actor
from lockgate.changelog.writer import lock_serial, record, utcnow_iso
from lockgate.db.session import Database
from lockgate.docs.services import copy_docs_on_push
from lockgate.errors import BadRequest, Conflict, Forbidden, NotFound
from lockgate.indexes.config import StageConfig
from lockgate.indexes.models import Index
from lockgate.indexes.services import (
    IndexView,
    get_index,
    require_index,
    require_upload_permission,
)
from lockgate.packages.models import Project, Release, ReleaseFile
from lockgate.packages.services import OwnFile, find_own_file
from lockgate.storage.blobs import BlobStore
from lockgate.workflow.entries import PushedFile, ReleasePush, ResultPost
from lockgate.workflow.models import ReleaseProvenance, ResultRow
from lockgate.workflow.results import ResultSpec, bound_log

log = structlog.get_logger("lockgate.workflow")

# promote_to chains cannot cycle (checked when set); this only bounds the walk.
MAX_PROMOTION_HOPS = 32


# --- test results ---------------------------------------------------------------


@dataclass(frozen=True)
class StoredLog:
    sha256: str | None
    size: int
    truncated: bool


@dataclass(frozen=True)
class PostedResults:
    serial: int
    filename: str
    results: list[dict[str, Any]]
    promoted: list[str]  # indexes the release was promoted to, in order


def _store_log(blobs: BlobStore, text: str) -> StoredLog:
    if not text:
        return StoredLog(None, 0, False)
    bounded = bound_log(text)
    return StoredLog(blobs.put_bytes(bounded.data), len(bounded.data), bounded.truncated)


async def _result_file(
    session: AsyncSession, actor: Actor, user: str, name: str, key: str, filename: str
) -> tuple[IndexView, OwnFile]:
    index = await require_index(session, user, name)
    if index.is_mirror:
        raise Forbidden(
            f"index {index.path} is a mirror: test results are posted for files of stage indexes"
        )
    found = await find_own_file(session, index, filename)
    if found is None or not found.sha256.startswith(key.lower()):
        raise NotFound(f"file {filename!r} not found on index {index.path}")
    require_upload_permission(actor.name, index, found.project)
    return index, found


async def post_results(
    db: Database,
    blobs: BlobStore,
    actor: Actor,
    user: str,
    name: str,
    key: str,
    filename: str,
    specs: list[ResultSpec],
) -> PostedResults:
    """Record one `test.result` entry per result for a file of a stage index, then
    promote the release where its index's promote_to says so."""
    # Refuse a missing file or a caller without rights before any log is written.
    async with db.read() as session:
        await _result_file(session, actor, user, name, key, filename)
    # Logs are blobs, written (and fsynced) before the write transaction.
    logs = [await asyncio.to_thread(_store_log, blobs, spec.log) for spec in specs]
    async with db.write() as session:
        await lock_serial(session)
        index, file = await _result_file(session, actor, user, name, key, filename)
        posted_at = utcnow_iso()
        payloads = [
            ResultPost(
                user=index.user,
                index=index.name,
                filename=file.filename,
                sha256=file.sha256,
                environment=spec.environment,
                outcome=spec.outcome,
                posted_at=posted_at,
                poster=actor.name,
                python=spec.python,
                platform=spec.platform,
                duration=spec.duration,
                url=spec.url,
                log_sha256=stored.sha256,
                log_size=stored.size,
                log_truncated=stored.truncated,
            )
            for spec, stored in zip(specs, logs, strict=True)
        ]
        serial = 0
        for payload in payloads:
            serial = await record(session, payload, actor)
        promoted = await promote(session, index, file.project, file.version)
        if promoted:
            serial = (await lock_serial(session)).serial
    log.info(
        "test results",
        index=index.path,
        filename=filename,
        results={p.environment: p.outcome for p in payloads},
        promoted=promoted,
    )
    return PostedResults(
        serial, filename, [_result_json(p, index.path) for p in payloads], promoted
    )


def _result_json(payload: ResultPost, index_path: str) -> dict[str, Any]:
    return {
        "environment": payload.environment,
        "outcome": payload.outcome,
        "python": payload.python,
        "platform": payload.platform,
        "duration": payload.duration,
        "url": payload.url,
        "posted_at": payload.posted_at,
        "posted_by": payload.poster,
        "index": index_path,
        "log_size": payload.log_size,
        "log_truncated": payload.log_truncated,
        "log_sha256": payload.log_sha256,
    }


# --- gates ----------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    id: int
    filename: str
    sha256: str
    core_metadata_sha256: str | None


@dataclass
class PushPlan:
    source: IndexView
    target: IndexView
    project: str  # normalized
    version: str
    yanked: bool
    files: list[SourceFile] = field(default_factory=list)  # what the target lacks
    held: list[str] = field(default_factory=list)  # identical files the target holds
    problems: list[str] = field(default_factory=list)  # why the push is refused


async def _release_files(
    session: AsyncSession, index: IndexView, project: str, version: str
) -> tuple[list[SourceFile], bool] | None:
    rows = (
        await session.execute(
            select(ReleaseFile, Release.yanked)
            .join(Release, Release.id == ReleaseFile.release_id)
            .join(Project, Project.id == Release.project_id)
            .where(
                Project.index_id == index.id,
                Project.name == canonicalize_name(project),
                Release.version == version,
            )
            .order_by(ReleaseFile.filename)
        )
    ).all()
    if not rows:
        return None
    files = [SourceFile(f.id, f.filename, f.sha256, f.core_metadata_sha256) for f, _ in rows]
    return files, any(yanked for _, yanked in rows)


async def _latest_outcomes(
    session: AsyncSession, file_ids: Iterable[int]
) -> dict[int, dict[str, str]]:
    """file id → environment → the outcome of its latest result."""
    rows = (
        await session.execute(
            select(ResultRow.file_id, ResultRow.environment, ResultRow.outcome)
            .where(ResultRow.file_id.in_(list(file_ids)))
            .order_by(ResultRow.id)
        )
    ).all()
    latest: dict[int, dict[str, str]] = {}
    for file_id, environment, outcome in rows:
        latest.setdefault(file_id, {})[environment] = outcome
    return latest


def gate_problems(
    required: Iterable[str], files: list[SourceFile], latest: dict[int, dict[str, str]]
) -> list[str]:
    """What keeps a release's files from meeting `required` (empty: nothing)."""
    problems = []
    for environment in required:
        failed = [f.filename for f in files if latest.get(f.id, {}).get(environment) == "failed"]
        passed = [f for f in files if latest.get(f.id, {}).get(environment) == "passed"]
        if failed:
            problems.append(f"{environment} failed (on {', '.join(failed)})")
        elif not passed:
            problems.append(f"{environment} has no passing result")
    return problems


async def plan_push(
    session: AsyncSession,
    source: IndexView,
    target: IndexView,
    project: str,
    version: str,
    *,
    automatic: bool = False,
) -> PushPlan:
    """What pushing `project` `version` from `source` to `target` would copy, and
    what refuses it. 404 when the source does not hold the release."""
    found = await _release_files(session, source, project, version)
    if found is None:
        raise NotFound(f"release {project} {version} not found on index {source.path}")
    files, yanked = found
    plan = PushPlan(source, target, canonicalize_name(project), version, yanked)
    assert isinstance(target.config, StageConfig)
    latest = await _latest_outcomes(session, (f.id for f in files))
    required: Iterable[str] = target.config.push_requires
    if automatic and not required:
        # Nothing required: promote once something reported and nothing failed.
        required = sorted({env for outcomes in latest.values() for env in outcomes})
        if not required:
            plan.problems.append("no test results yet")
    plan.problems += gate_problems(required, files, latest)
    for file in files:
        existing = await find_own_file(session, target, file.filename)
        if existing is None:
            plan.files.append(file)
        elif existing.sha256 == file.sha256:
            plan.held.append(file.filename)
        elif not target.volatile:
            plan.problems.append(
                f"{target.path} already holds a different {file.filename} and is not "
                "volatile (files cannot be overwritten)"
            )
        else:
            plan.files.append(file)
    return plan


async def _record_push(session: AsyncSession, plan: PushPlan, actor: Actor) -> int:
    serial = await record(
        session,
        ReleasePush(
            user=plan.target.user,
            index=plan.target.name,
            source_user=plan.source.user,
            source_index=plan.source.name,
            project=plan.project,
            version=plan.version,
            files=tuple(
                PushedFile(f.filename, f.sha256, f.core_metadata_sha256) for f in plan.files
            ),
            pushed_at=utcnow_iso(),
            pushed_by=actor.name,
        ),
        actor,
    )
    # The release's documentation goes along (devpi's push does the same).
    docs_serial = await copy_docs_on_push(
        session, plan.source, plan.target, plan.project, plan.version, actor
    )
    return docs_serial or serial


# --- promotion --------------------------------------------------------------------


async def promote(session: AsyncSession, index: IndexView, project: str, version: str) -> list[str]:
    """Follow promote_to from `index` while the release meets each next index's
    gates, recording a push (actor `system`) for every hop; inside the caller's
    write transaction. Returns the indexes the release was pushed to."""
    promoted: list[str] = []
    current = index
    for _ in range(MAX_PROMOTION_HOPS):
        config = current.config
        if not isinstance(config, StageConfig) or config.promote_to is None:
            break
        target_user, target_name = config.promote_to.split("/")
        target = await get_index(session, target_user, target_name)
        if target is None or not isinstance(target.config, StageConfig):
            log.warning("promote_to names no stage index", index=current.path)
            break
        if current.user != ROOT_USER and not target.config.may_upload(current.user):
            log.warning(
                "promote_to target no longer accepts the index owner",
                index=current.path,
                target=target.path,
            )
            break
        plan = await plan_push(session, current, target, project, version, automatic=True)
        if plan.yanked or plan.problems:
            break
        if plan.files:
            await _record_push(session, plan, SYSTEM)
            promoted.append(target.path)
        current = target
    return promoted


# --- pushing ----------------------------------------------------------------------


@dataclass(frozen=True)
class PushOutcome:
    serial: int
    target: str
    pushed: list[str]  # file names copied
    held: list[str]  # file names the target already had
    promoted: list[str]


async def push_release(
    session: AsyncSession,
    actor: Actor,
    user: str,
    name: str,
    project: str,
    version: str,
    target_path: str,
) -> PushOutcome:
    """Push a release of `user/name` to `target_path` (in the caller's write
    transaction): 409 naming every gate it misses; nothing changes then."""
    await lock_serial(session)  # the plan depends on rows other writers may add
    source = await require_index(session, user, name)
    if source.is_mirror:
        raise BadRequest(f"index {source.path} is a mirror: push releases from stage indexes")
    target_user, _, target_name = target_path.partition("/")
    target = await require_index(session, target_user, target_name)
    if not isinstance(target.config, StageConfig):
        raise BadRequest(f"index {target.path} is a mirror: push to a stage index")
    if target.path == source.path:
        raise BadRequest(f"cannot push {source.path} onto itself")
    require_upload_permission(actor.name, target, project)
    plan = await plan_push(session, source, target, project, version)
    if plan.problems:
        raise Conflict(
            f"push of {project} {version} from {source.path} to {target.path} refused: "
            + "; ".join(plan.problems)
            + (
                f" ({target.path} requires passing results in: "
                f"{', '.join(target.config.push_requires)})"
                if target.config.push_requires
                else ""
            )
        )
    promoted: list[str] = []
    if plan.files:
        await _record_push(session, plan, actor)
        promoted = await promote(session, target, project, version)
    serial = (await lock_serial(session)).serial
    log.info(
        "pushed",
        source=source.path,
        target=target.path,
        project=plan.project,
        version=version,
        files=[f.filename for f in plan.files],
        promoted=promoted,
    )
    return PushOutcome(serial, target.path, [f.filename for f in plan.files], plan.held, promoted)


# --- reading ----------------------------------------------------------------------


async def results_of_files(
    session: AsyncSession, keys: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], list[dict[str, Any]]]:
    """(index id, filename) → the file's test results, oldest first, as the JSON API
    shows them (`log_sha256` names the log, served by `log_of_index`)."""
    wanted = set(keys)
    if not wanted:
        return {}
    rows = (
        await session.execute(
            select(ResultRow, ReleaseFile.index_id, ReleaseFile.filename)
            .join(ReleaseFile, ReleaseFile.id == ResultRow.file_id)
            .where(
                ReleaseFile.index_id.in_({index_id for index_id, _ in wanted}),
                ReleaseFile.filename.in_({filename for _, filename in wanted}),
            )
            .order_by(ResultRow.id)
        )
    ).all()
    found: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row, index_id, filename in rows:
        if (index_id, filename) not in wanted:
            continue
        found.setdefault((index_id, filename), []).append(
            {
                "environment": row.environment,
                "outcome": row.outcome,
                "python": row.python,
                "platform": row.platform,
                "duration": row.duration,
                "url": row.url,
                "posted_at": row.posted_at,
                "posted_by": row.poster,
                "index": row.origin,
                "log_size": row.log_size,
                "log_truncated": row.log_truncated,
                "log_sha256": row.log_sha256,
            }
        )
    return found


async def provenance_of_releases(
    session: AsyncSession, keys: Iterable[tuple[int, str, str]]
) -> dict[tuple[int, str, str], dict[str, str]]:
    """(index id, normalized project, version) → where the release was pushed from."""
    wanted = set(keys)
    if not wanted:
        return {}
    rows = (
        await session.execute(
            select(ReleaseProvenance, Project.index_id, Project.name, Release.version)
            .join(Release, Release.id == ReleaseProvenance.release_id)
            .join(Project, Project.id == Release.project_id)
            .where(Project.index_id.in_({index_id for index_id, _, _ in wanted}))
        )
    ).all()
    return {
        (index_id, name, version): {
            "pushed_from": p.pushed_from,
            "pushed_at": p.pushed_at,
            "pushed_by": p.pushed_by,
        }
        for p, index_id, name, version in rows
        if (index_id, name, version) in wanted
    }


async def results_of_own_file(
    session: AsyncSession, user: str, name: str, key: str, filename: str
) -> tuple[OwnFile, list[dict[str, Any]]]:
    """A file held by `user/name` (its URL's key must match) and its test results,
    oldest first; 404 when the index holds no such file."""
    index = await require_index(session, user, name)
    found = await find_own_file(session, index, filename)
    if found is None or not found.sha256.startswith(key.lower()):
        raise NotFound(f"file {filename!r} not found on index {index.path}")
    results = await results_of_files(session, {(index.id, found.filename)})
    return found, results.get((index.id, found.filename), [])


async def log_of_index(session: AsyncSession, user: str, name: str, sha256: str) -> bool:
    """Whether a test result on a file of `user/name` has this log (so a log is only
    ever served through an index its result belongs to)."""
    index = await require_index(session, user, name)
    row = (
        await session.execute(
            select(ResultRow.id)
            .join(ReleaseFile, ReleaseFile.id == ResultRow.file_id)
            .where(ReleaseFile.index_id == index.id, ResultRow.log_sha256 == sha256)
            .limit(1)
        )
    ).first()
    return row is not None


@dataclass(frozen=True)
class PushChoice:
    """A stage index a release could be pushed to, and what its gates say."""

    target: str
    required: tuple[str, ...]  # the target's push_requires
    problems: list[str]  # empty: a push would be accepted now

    @property
    def gates(self) -> list[tuple[str, str | None]]:
        """Each required environment with what it misses (None: it is met)."""
        return [
            (env, next((p for p in self.problems if p.startswith(f"{env} ")), None))
            for env in self.required
        ]

    @property
    def other_problems(self) -> list[str]:
        gated = {problem for _, problem in self.gates if problem}
        return [problem for problem in self.problems if problem not in gated]


async def push_choices(
    session: AsyncSession, actor: str, source: IndexView, project: str, version: str
) -> list[PushChoice]:
    """Every stage index `actor` may upload to (other than the source), with the gates
    the release meets or misses there — what `push_release` would decide, read-only."""
    if source.is_mirror:
        return []
    rows = (await session.execute(select(Index))).scalars().all()
    choices = []
    for row in sorted(rows, key=lambda r: (r.user_name, r.name)):
        target = IndexView.from_row(row)
        if target.path == source.path or not isinstance(target.config, StageConfig):
            continue
        if actor != ROOT_USER and not target.config.may_upload(actor):
            continue
        plan = await plan_push(session, source, target, project, version)
        choices.append(PushChoice(target.path, target.config.push_requires, plan.problems))
    return choices
