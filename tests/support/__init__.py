"""Shared helpers for the lockgate test suite."""
