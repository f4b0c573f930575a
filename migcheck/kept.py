"""JSON files kept in the cache directory between runs, trusted only while their hash matches."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any


def seal(text: str) -> str:
    """`text` with its hash, as `unseal` reads it back."""
    return json.dumps({"sha256": hashlib.sha256(text.encode()).hexdigest(), "content": text})


def unseal(sealed: str) -> str | None:
    """The text `seal` was given; None if `sealed` is not such a text or was altered since."""
    try:
        envelope = json.loads(sealed)
        text = envelope["content"]
        if hashlib.sha256(text.encode()).hexdigest() != envelope["sha256"]:
            return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return text


def read(path: Path) -> Any:
    """What `write` kept in `path`; None if it is missing, unreadable or altered."""
    try:
        text = unseal(path.read_text(encoding="utf-8"))
        return None if text is None else json.loads(text)
    except (OSError, ValueError):
        return None


def write(path: Path, content: Any) -> None:
    """Replace `path` with `content` at once (a concurrent run reads the old file or the new one);
    a file that cannot be written only costs the next run speed."""
    sealed = seal(json.dumps(content))
    with suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=".new-", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(sealed)
            os.replace(staging, path)
        finally:
            with suppress(OSError):
                os.unlink(staging)
