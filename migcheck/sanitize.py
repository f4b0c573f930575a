"""What migcheck prints is safe to print: no password, and no GitHub Actions workflow command.

A URL's password can reach a message by many roads (a URL that does not parse, a driver's error,
the app's own output), so the masking is applied to everything written to stdout and stderr and to
every report, not where each message is made. A URL is recognised by its shape, parsed or not; a
password with an unencoded `@` is masked up to the last `@` of the URL.

In GitHub Actions, a line of the log that starts with `::` (after blanks) is a workflow command, and
so is `##[...]` anywhere in a line (the older syntax): text from an exception or the app could set
outputs, add masks or stop commands. Such sequences are escaped in everything but migcheck's own
annotations.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

# scheme://user:password@ (the password: up to the last "@" before a blank or a quote)
_URL_PASSWORD = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/?#@'\"]*):([^\s'\"]*)@")
_COMMAND_START = re.compile(r"^(\s*)::", re.MULTILINE)


def mask_passwords(text: str) -> str:
    return _URL_PASSWORD.sub(r"\1:***@", text)


def escape_commands(text: str, at_line_start: bool = True) -> str:
    """GitHub's workflow commands made inert: `::` at a line's start, `##[` anywhere.

    `at_line_start`: whether `text` starts a line (else its first line continues one written before).
    """
    text = text.replace("##[", "##%5B")
    if at_line_start:
        return _COMMAND_START.sub(r"\1%3A%3A", text)
    head, newline, rest = text.partition("\n")
    return head + newline + _COMMAND_START.sub(r"\1%3A%3A", rest)


class SafeStream:
    """A text stream that masks passwords and, in GitHub Actions, escapes workflow commands.

    `commands` writes migcheck's own annotations unescaped (passwords are still masked).
    """

    def __init__(self, stream: TextIO, in_actions: bool) -> None:
        self.stream = stream
        self.in_actions = in_actions
        self.at_line_start = True

    def write(self, text: str) -> int:
        safe = mask_passwords(text)
        if self.in_actions:
            safe = escape_commands(safe, self.at_line_start)
        if text:
            self.at_line_start = text.endswith("\n")
        self.stream.write(safe)
        return len(text)

    def commands(self, text: str) -> None:
        self.stream.write(mask_passwords(text))
        self.at_line_start = text.endswith("\n")

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, buffer...
        return getattr(self.stream, name)
