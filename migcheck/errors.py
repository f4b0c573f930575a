"""The one exception type that ends a run with a message and exit code 2."""


class UsageError(Exception):
    """Bad input: a message for the user, no traceback (unless --verbose)."""

    exit_code = 2
