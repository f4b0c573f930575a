"""The checks, in the order they run. Each module has NAME and `check(project) -> list[Finding]`."""

CHECKS = ("graph", "upgrade", "drift", "imports", "roundtrip", "data")
