"""The `lockgate` command line."""
