"""The checks, in the order they run. Each module has NAME and `check(project) -> list[Finding]`."""

CHECKS = ("graph", "upgrade", "drift", "imports", "roundtrip", "safety", "data")

# The database types a project can deploy on (`--target`), which decide the safety check's rules.
TARGETS = ("postgresql", "mysql", "mariadb", "sqlite", "mssql", "oracle")
