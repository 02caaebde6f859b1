"""Export and import: the changelog and its blobs as a verified bundle, to carry
a server's content (or a week of changes) across an air gap."""
