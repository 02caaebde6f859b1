"""The release workflow: test results posted for release files (CI, `lockgate test`,
`devpi test`), pushing a release from one stage index to another behind the
target's gates, and automatic promotion (`promote_to`)."""
