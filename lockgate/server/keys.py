"""Typed application keys for the objects every handler shares."""

from __future__ import annotations

from aiohttp import web

from lockgate.accounts.services import CredentialCache
from lockgate.config import Settings
from lockgate.db.session import Database
from lockgate.mirror.services import MirrorService
from lockgate.replica.client import PrimaryClient
from lockgate.replica.follower import Follower
from lockgate.server.pagecache import PageCache, SerialMemo
from lockgate.storage.blobs import BlobStore

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
BLOBS = web.AppKey("blobs", BlobStore)
CREDENTIALS = web.AppKey("credentials", CredentialCache)
PAGES = web.AppKey("pages", PageCache)
MIRROR = web.AppKey("mirror", MirrorService)
FILES = web.AppKey("files", SerialMemo)
FOLLOWER = web.AppKey("follower", Follower)
PRIMARY = web.AppKey("primary", PrimaryClient)
