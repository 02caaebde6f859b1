"""Download counts: how often each file was downloaded, per day, counted by each node.

Node-local on purpose: a download is not a change of state, so it is never a changelog
entry, never replicated and never exported. Each process counts in memory and adds its
counts to the `download_counts` table in one batch every few seconds and at shutdown.
"""
