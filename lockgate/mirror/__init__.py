"""The caching mirror: `root/pypi` and any index of type `mirror`.

Pages are fetched from the upstream simple index and stored through the
changelog; files are fetched on first request, streamed to the client while
they are written to the blob store, verified against the upstream hash and
recorded. When the upstream is down, what was cached keeps being served.
"""
