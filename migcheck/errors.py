"""The exception types that end a run with a message and exit code 2."""


class UsageError(Exception):
    """Bad input: a message for the user, no traceback (unless --verbose)."""

    exit_code = 2


class InternalError(Exception):
    """An exception raised in migcheck's own code (its cause): a bug in migcheck, reported as one,
    never as the user's env.py, revision or app failing."""


class Terminated(SystemExit):
    """migcheck stopped by a signal: unwinds the run, so that the scratch area is removed."""


class ProjectExit(Exception):
    """The project's code (a revision, env.py, a helper they call) called exit() or sys.exit():
    `flask db upgrade` stops there, so it is a failure of the step that ran, not the end of migcheck."""


class Refused(UsageError):
    """migcheck refused what the user's code asked for; the message names the line that asked.
    Raised again at the end of the run when that code caught it and went on."""


class UnsafeConnection(Refused):
    """Something tried to connect to a database that is not one of migcheck's scratch databases."""


class ReadsTerminal(Refused):
    """The user's code read from stdin (input()), which migcheck runs without a terminal."""
