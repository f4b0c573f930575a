"""The exception types that end a run with a message and exit code 2."""


class UsageError(Exception):
    """Bad input: a message for the user, no traceback (unless --verbose)."""

    exit_code = 2


class InternalError(Exception):
    """An exception raised in migcheck's own code (its cause): a bug in migcheck, reported as one,
    never as the user's env.py, revision or app failing."""


class UnsafeConnection(UsageError):
    """Something tried to connect to a database that is not one of migcheck's scratch databases.

    The message names the line of the user's code that asked for the connection.
    """
