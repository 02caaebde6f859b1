"""Replicas: follow a primary's changelog and blobs, serve the same read API,
refuse writes, and ask the primary (never the upstream) on a mirror cache miss."""
